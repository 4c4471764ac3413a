using TorchBoltzmann.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Evaluation;

public class ClassificationMetricsTests
{
    [Fact]
    public void FromPredictions_CountsTruthByPrediction()
    {
        using var predicted = torch.tensor(new long[] { 0, 1, 2, 2, 1, 0 });
        using var truth = torch.tensor(new long[] { 0, 1, 1, 2, 1, 2 });
        var m = ClassificationMetrics.FromPredictions(predicted, truth, 3);
        Assert.Equal(6, m.Count);
        Assert.Equal(2, m.Errors);
        Assert.Equal(2.0 / 6, m.ErrorRate, 12);
        Assert.Equal(new int[,] { { 1, 0, 0 }, { 0, 2, 1 }, { 1, 0, 1 } }, m.ConfusionMatrix);
        Assert.Equal(new[] { 1.0, 2.0 / 3, 0.5 }, m.Recall());   // per true class: diagonal over row sum
        var four = ClassificationMetrics.FromPredictions(predicted, truth, 4);
        Assert.True(double.IsNaN(four.Recall()[3]), "a class without examples has no recall");
        using var bad = torch.tensor(new long[] { 0, 1, 3, 2, 1, 0 });
        var ex = Assert.Throws<ArgumentException>(() => ClassificationMetrics.FromPredictions(bad, truth, 3));
        Assert.Contains("predictions: expected class indices in [0, 2], got values in [0, 3]", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => ClassificationMetrics.FromPredictions(truth, bad, 3));
        Assert.Contains("labels: expected class indices in [0, 2], got values in [0, 3]", ex.Message);
    }

    [Fact]
    public void Evaluate_UsesArgmaxOfTheLogits_InEvalMode()
    {
        using var model = nn.Sequential(("drop", nn.Dropout(0.9)), ("id", nn.Identity()));
        model.train();
        using var logits = torch.tensor(new float[,] { { 2, 1, 0 }, { 0, 3, 1 }, { 0, 0, 5 }, { 4, 0, 0 } });
        using var y = torch.tensor(new long[] { 0, 1, 2, 1 });
        var m = ClassificationMetrics.Evaluate(model, logits, y, 3, batch_size: 3);
        Assert.Equal(1, m.Errors);
        Assert.Equal(1, m.ConfusionMatrix[1, 0]);
        Assert.True(model.training, "training flag restored");
        Assert.True(m.MeanLoss > 0);
        using var tooBig = torch.tensor(new long[] { 0, 1, 2, 3 });
        var e = Assert.Throws<ArgumentException>(() => ClassificationMetrics.Evaluate(model, logits, tooBig, 3));
        Assert.Contains("labels: expected class indices in [0, 2], got values in [0, 3]", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ClassificationMetrics.Evaluate(model, logits, y, 0));
    }
}

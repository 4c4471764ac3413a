using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Evaluation;

public class DbnMetricsTests
{
    /// <summary>
    /// A 4-4 + 2 labels → 8 DBN whose label decides its samples: top hidden unit j ∈ {0, 1} is driven by label j
    /// (+8, and −20 from the other label) and turns on feature pair j ({0, 1} or {2, 3}, +8 against a −4 bias), which
    /// keeps it on; the other hidden units are off (bias −20). The lower RBM copies features to pixels (W = 8 I, b = −4).
    /// So a chain clamped to label j settles in "pixels of pair j on" within a few steps.
    /// </summary>
    private static DBN LabelDrivenDbn()
    {
        var dbn = boltzmann.DBN([4, 4, 8], 2, dtype: ScalarType.Float64);
        using var _ = torch.no_grad();
        var low = dbn.layers[0];
        low.weight.copy_(torch.eye(4, dtype: ScalarType.Float64) * 8);
        low.visible_bias.fill_(-4);
        low.hidden_bias.fill_(-4);
        var top = dbn.top;   // visible: 4 features, then 2 labels
        using var w = torch.zeros(8, 6, dtype: ScalarType.Float64);
        for (int j = 0; j < 2; j++)
        {
            w[j, 2 * j] = 8; w[j, 2 * j + 1] = 8;   // feature pair j
            w[j, 4 + j] = 8; w[j, 5 - j] = -20;      // its label on, the other off
        }
        top.weight.copy_(w);
        top.visible_bias.fill_(-4);
        top.hidden_bias.fill_(-20);
        top.hidden_bias.narrow(0, 0, 2).fill_(-4);
        return dbn;
    }

    /// <summary>Logits z = (x₀ + x₁ − x₂ − x₃, −x₀ − x₁ + x₂ + x₃): which pixel pair is on.</summary>
    private static nn.Module<Tensor, Tensor> PairClassifier()
    {
        var linear = nn.Linear(4, 2, hasBias: true, dtype: ScalarType.Float64);
        using var _ = torch.no_grad();
        linear.weight!.copy_(torch.tensor(new double[,] { { 1, 1, -1, -1 }, { -1, -1, 1, 1 } }));
        linear.bias!.zero_();
        return linear;
    }

    [Fact]
    public void ConditionalSamples_OfALabelDrivenDbn_AreOfTheirClass_AndAConstantJudgeScoresChance()
    {
        using var dbn = LabelDrivenDbn();
        using var judge = PairClassifier();
        using var g = new Generator(3);
        var m = DbnMetrics.conditional_sample_metrics(dbn, judge, per_class: 100, burn_in: 50, generator: g);
        Assert.Equal(200, m.Count);
        // p(the wrong pair) ≤ σ(−4)² per step: all but a handful of the 200 samples are of the clamped class.
        Assert.True(m.Accuracy >= 0.97, $"accuracy {m.Accuracy:F3}");
        Assert.All(m.Recall(), r => Assert.True(r >= 0.95, $"recall {r:F3}"));

        // A judge that always says class 0 gets the samples drawn for class 0 right and no others: accuracy 1/C.
        using var constant = nn.Linear(4, 2, hasBias: true, dtype: ScalarType.Float64);
        using (torch.no_grad()) { constant.weight!.zero_(); constant.bias!.copy_(torch.tensor(new double[] { 1, 0 })); }
        var c = DbnMetrics.conditional_sample_metrics(dbn, constant, per_class: 10, burn_in: 5, generator: g);
        Assert.Equal(0.5, c.Accuracy, 12);
        Assert.Equal(new[] { 1.0, 0.0 }, c.Recall());

        // The same DBN with its labels cut off from the top hidden units draws pairs regardless of the label: the judge
        // agrees with the clamped class about half the time (200 samples: 0.5 ± 0.035 s.d.; bound ±0.2).
        using (torch.no_grad()) dbn.top.weight.narrow(1, 4, 2).zero_();
        using (torch.no_grad()) dbn.top.hidden_bias.narrow(0, 0, 2).fill_(-1);
        var blind = DbnMetrics.conditional_sample_metrics(dbn, judge, per_class: 100, burn_in: 50, generator: g);
        Assert.InRange(blind.Accuracy, 0.3, 0.7);
    }

    [Fact]
    public void ConditionalSamples_HandedBack_AreTheOnesJudged_ClassMajor()
    {
        using var dbn = LabelDrivenDbn();
        using var judge = PairClassifier();
        using var g = new Generator(5);
        var m = DbnMetrics.conditional_sample_metrics(dbn, judge, out var samples, per_class: 30, burn_in: 20, generator: g);
        using (samples)
        {
            Assert.Equal(new long[] { 60, 4 }, samples.shape);
            // Judging the handed-back rows again, with rows y·n … y·n + n − 1 labelled y, gives the same confusion matrix.
            using var labels = torch.arange(2, dtype: ScalarType.Int64).repeat_interleave(30);
            var again = ClassificationMetrics.Evaluate(judge, samples, labels, 2);
            Assert.Equal(m.ConfusionMatrix, again.ConfusionMatrix);
            Assert.True(m.Accuracy >= 0.9, $"accuracy {m.Accuracy:F3}");   // so that class-major order is what the match tests
            // They are exactly the draw DBN.generate makes from the same seed with the labels class-major.
            using var g2 = new Generator(5);
            using var expected = dbn.generate(60, 20, labels, generator: g2);
            using var same = samples.eq(expected).all();
            Assert.True(same.item<bool>(), "the handed-back samples are not the generator's draw, class-major");
        }
        // Same seed, same draws: the overload without samples judges the same chains (the mean loss depends on every pixel).
        using var g3 = new Generator(5);
        var other = DbnMetrics.conditional_sample_metrics(dbn, judge, per_class: 30, burn_in: 20, generator: g3);
        Assert.Equal(m.MeanLoss, other.MeanLoss);
        Assert.Equal(m.ConfusionMatrix, other.ConfusionMatrix);
    }

    [Fact]
    public void ConditionalSamples_NeedLabelUnits_AndAtLeastOneSamplePerClass()
    {
        using var plain = boltzmann.DBN([4, 3], dtype: ScalarType.Float64);
        using var judge = PairClassifier();
        var e = Assert.Throws<ArgumentException>(() => DbnMetrics.conditional_sample_metrics(plain, judge));
        Assert.Contains("expected a class-conditional DBN", e.Message);
        using var dbn = LabelDrivenDbn();
        Assert.Throws<ArgumentOutOfRangeException>(() => DbnMetrics.conditional_sample_metrics(dbn, judge, per_class: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => DbnMetrics.conditional_sample_metrics(dbn, judge, burn_in: -1));
    }
}

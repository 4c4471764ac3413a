using System.Text.Json.Nodes;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Recipes;
using TorchBoltzmann.Tests.Cli;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Training;

namespace TorchBoltzmann.Tests.Recipes;

/// <summary>The run/report service behind <c>tbm mnist</c>, in process on the small fake MNIST.</summary>
public sealed class MnistClassifierRunTests(FakeMnist fake) : IClassFixture<FakeMnist>
{
    /// <summary>784-32 without labels, one CD epoch, two fine-tuning epochs on 400 digits with 100 for validation.</summary>
    private static DbnClassifierPreset Tiny { get; } = DbnClassifierPreset.Quick with
    {
        LayerSizes = [784, 32], ClassConditional = false,
        Pretraining = new DbnPretrainingOptions { Layer = new RbmTrainingOptions { Epochs = 1, BatchSize = 50, MetricsEvery = 1, MetricsSamples = 100 } },
        FineTuning = new ClassifierTrainingOptions { Epochs = 2, BatchSize = 50, LearningRate = 0.1, Momentum = 0.9, ValidationCount = 100, Patience = 0 },
    };

    private MnistRunRequest Request(string output, DbnClassifierPreset? preset = null) =>
        new(preset ?? Tiny, output, fake.Path) { Limit = 500, Seed = 3 };

    [Fact]
    public void Run_WritesEveryReportFile_ThenItsCheckpointsGo()
    {
        using var dir = new TempDirectory();
        string output = Path.Combine(dir.Path, "sub", "dbn.pt");
        using var run = MnistClassifierRun.Create(Request(output));
        Assert.True(Directory.Exists(Path.GetDirectoryName(output)), "the output's directory is created before training");
        Assert.Empty(run.PresentCheckpoints());
        run.Load();
        Assert.Equal((500, 400, 200), (run.TrainCount, run.FitCount, run.TestCount));
        var (result, from) = run.Train();
        using var owner = result;
        Assert.Null(from);
        // Fine-tuning checkpointed every epoch and the DBN after its layer: what a rerun would continue from.
        Assert.Equal([DbnClassifierPipeline.PretrainedCheckpointPath(run.CheckpointStem!), DbnClassifierPipeline.FineTuningCheckpointPath(run.CheckpointStem!)],
                     run.PresentCheckpoints());

        var report = run.WriteReport(result, 1.5, from);
        Assert.All(report.Files, f => Assert.True(File.Exists(f), $"{f} written"));
        Assert.Contains(report.Stem + "-pretrain.png", report.Files);
        Assert.Null(report.SamplesJudged);   // no labels: free samples, nothing judged
        var metrics = JsonNode.Parse(File.ReadAllText(report.Stem + "-metrics.json"))!;
        Assert.Equal(result.Test.ErrorRate, metrics["summary"]!["test_error"]!.GetValue<double>());
        Assert.Equal(500, metrics["summary"]!["limit"]!.GetValue<int>());
        var csv = File.ReadAllLines(report.Stem + "-finetune.csv");
        Assert.Equal(1 + result.FineTuning.Epochs.Count, csv.Length);
        using (var back = Checkpoint.Load<DBN>(report.DbnPath))
            Assert.True(back.layers[0].weight.eq(result.Dbn.layers[0].weight).all().item<bool>(), "the saved DBN is the trained one");

        run.DeleteCheckpoints();
        Assert.Empty(run.PresentCheckpoints());
        Assert.All(run.CheckpointFiles, f => Assert.False(File.Exists(f), $"{f} deleted"));
        var (_, error, lastLoss) = MnistClassifierRun.Judged(result);
        Assert.False(MnistClassifierRun.Failed(error, lastLoss), $"the fake digits are learnt (error {error}, loss {lastLoss})");
    }

    [Fact]
    public void BadRequests_AreRefusedBeforeTraining_NamingTheSetting()
    {
        using var dir = new TempDirectory();
        string output = Path.Combine(dir.Path, "dbn.pt");
        var e = Assert.Throws<OutputLocationException>(() => MnistClassifierRun.Create(Request(dir.Path + "/")));
        Assert.Contains("Output", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => MnistClassifierRun.Create(Request(output) with { Limit = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => MnistClassifierRun.Create(Request(output) with { CheckpointEvery = -1 }));

        using (var run = MnistClassifierRun.Create(Request(output, Tiny with { FineTuning = Tiny.FineTuning with { ValidationCount = 500 } })))
            Assert.Equal("ValidationCount", Assert.Throws<ArgumentOutOfRangeException>(run.Load).ParamName);
        using (var run = MnistClassifierRun.Create(Request(output, Tiny with { FineTuning = Tiny.FineTuning with { BatchSize = 401 } })))
            Assert.Equal("BatchSize", Assert.Throws<ArgumentOutOfRangeException>(run.Load).ParamName);
        using (var run = MnistClassifierRun.Create(Request(output)))
            Assert.Throws<InvalidOperationException>(() => run.Train());

        // A pretrained DBN with labels for a preset without: refused naming the value that would fit it, nothing trained.
        string labelled = Path.Combine(dir.Path, "labelled.pt");
        using (var dbn = boltzmann.DBN([784, 32], 10)) Checkpoint.Save(dbn, labelled);
        using (var run = MnistClassifierRun.Create(Request(output) with { PretrainedPath = labelled }))
        {
            run.Load();
            var m = Assert.Throws<ArgumentException>(() => run.Train()).Message;
            Assert.Contains("set ClassConditional to true", m);
            Assert.Empty(run.PresentCheckpoints());
        }
    }
}

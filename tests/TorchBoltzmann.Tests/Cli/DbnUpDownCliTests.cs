using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Cli;

/// <summary>
/// <c>tbm dbn-updown</c> run as a child process on the fake MNIST (<see cref="FakeMnist"/>): its one-line option errors,
/// and a short run from a small class-conditional DBN checkpoint to the untied DBN, the sample grid and the metrics.
/// </summary>
public sealed class DbnUpDownCliTests(FakeMnist fake) : IClassFixture<FakeMnist>
{
    /// <summary>A random class-conditional DBN 784-16-20 (+10 labels) saved as <paramref name="path"/>.</summary>
    private static void SaveSmallDbn(string path)
    {
        using var g = new Generator(5);
        using var dbn = boltzmann.DBN([784, 16, 20], 10, generator: g);
        Checkpoint.Save(dbn, path);
    }

    [Theory]
    [InlineData("--epochs must be ≥ 0, got -1", "--epochs", "-1")]
    [InlineData("--lr must be > 0 and finite, got -1", "--lr", "-1")]
    [InlineData("--momentum must be in [0, 1), got 1", "--momentum", "1")]
    [InlineData("--k-schedule must list whole numbers ≥ 1 separated by commas (e.g. 3,6,10), got '3,x'", "--k-schedule", "3,x")]
    [InlineData("--k-schedule must list whole numbers ≥ 1 separated by commas (e.g. 3,6,10), got '3,0'", "--k-schedule", "3,0")]
    [InlineData("--judge-burn-in must be ≥ 1, got 0", "--judge-burn-in", "0")]
    [InlineData("--dbn runs/dbn-quick.pt: no such checkpoint (make one with: tbm mnist -o runs/dbn-quick.pt)")]
    [InlineData("--judge nowhere.pt: no such checkpoint ('none' skips judging)", "--dbn", "{dbn}", "--judge", "nowhere.pt")]
    [InlineData("--validation must be less than the number of training digits, 300, got 300", "--dbn", "{dbn}", "--data", "{data}", "--no-verify", "--limit", "300", "--validation", "300")]
    public void BadOption_IsOneErrorLineOnStderr_NamingTheFlag(string expected, params string[] args)
    {
        using var work = new TempDirectory();
        SaveSmallDbn(work.File("small.pt"));
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            ["dbn-updown", .. args.Select(a => a.Replace("{data}", fake.Path).Replace("{dbn}", work.File("small.pt")))]);
        Assert.Equal(1, code);
        Assert.DoesNotContain('\n', stderr);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(expected, stderr);
        Assert.DoesNotContain("Exception", stderr);
        Assert.DoesNotContain("error", stdout);
    }

    /// <summary>
    /// Two epochs on 200 fake digits: exit 0; the untied DBN loads (with its recognition weights), the sample grid and the
    /// metrics are written, both error figures are printed, and the run checkpoint is gone once the results are written.
    /// </summary>
    [Fact]
    public void ShortRun_WritesTheUntiedDbn_Samples_AndMetrics()
    {
        using var work = new TempDirectory();
        SaveSmallDbn(work.File("small.pt"));
        using (var judge = nn.Sequential(("fc1", (nn.Module<Tensor, Tensor>)nn.Linear(784, 10))))
            Checkpoint.Save(judge, work.File("small-classifier.pt"));
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "dbn-updown", "--dbn", work.File("small.pt"), "--data", fake.Path, "--no-verify", "--limit", "300", "--validation", "100",
            "--epochs", "2", "--batch", "20", "--judge-per-class", "3", "--judge-burn-in", "5", "--threads", "1");
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("Before: generative classifier test error", stdout);
        Assert.Contains("After 2 epochs", stdout);
        Assert.Contains("of the class-conditional samples their digit", stdout);   // judged by small-classifier.pt, found beside --dbn
        Assert.Contains("up-down epoch 2/2  k 6", stdout);
        using var untied = Checkpoint.Load<DBN>(work.File("small-updown.pt"));
        Assert.True(untied.is_untied);
        Assert.True(File.Exists(work.File("small-updown-samples.png")));
        var metrics = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(work.File("small-updown-metrics.json")))!;
        Assert.InRange(metrics["summary"]!["test_error_after"]!.GetValue<double>(), 0, 1);
        Assert.Equal(2, metrics["history"]!.AsArray().Count);
        Assert.False(File.Exists(work.File("small-updown-train.ckpt")));

        // --epochs 0 measures the untied DBN as saved: its "before" figures are the trained run's "after" figures (same
        // weights, same seeded draws), and nothing is written.
        var (code0, stdout0, stderr0) = CliProcess.Run(work.Path, null,
            "dbn-updown", "--dbn", work.File("small-updown.pt"), "--judge", work.File("small-classifier.pt"), "--data", fake.Path, "--no-verify", "--limit", "300", "--validation", "100",
            "--epochs", "0", "--batch", "20", "--judge-per-class", "3", "--judge-burn-in", "5", "--threads", "1", "-o", work.File("again.pt"));
        Assert.True(code0 == 0, $"exit {code0}\n{stdout0}\n{stderr0}");
        static string Figures(string line) => line[line.IndexOf("generative classifier", StringComparison.Ordinal)..];
        string after = Figures(Assert.Single(stdout.Split('\n'), l => l.StartsWith("After 2 epochs", StringComparison.Ordinal)));
        string before = Figures(Assert.Single(stdout0.Split('\n'), l => l.StartsWith("Before:", StringComparison.Ordinal)));
        Assert.Equal(after, before);
        Assert.Contains("was measured, not trained; nothing was written", stdout0);
        Assert.Contains(": no training digits read, 200 test digits, 0 epochs, ", stdout0);
        Assert.False(File.Exists(work.File("again.pt")));
    }

    /// <summary>
    /// <c>--epochs 0</c> with a run checkpoint beside <c>--output</c> measures the run in flight: a run of 1000 epochs stopped
    /// by SIGTERM after epoch E is measured as "After epoch E of 1000", with the same figures as the "After E epochs" line of
    /// an unbroken E-epoch run (k fixed at 3, so the first epochs do not depend on the run's length); the stopped run's
    /// checkpoint is left as it was, and a corrupt checkpoint is one error line naming it.
    /// </summary>
    [Fact]
    public void EpochsZero_BesideARunCheckpoint_MeasuresTheRunInFlight()
    {
        using var work = new TempDirectory();
        SaveSmallDbn(work.File("small.pt"));
        string[] Args(string epochs, string output) => ["dbn-updown", "--dbn", work.File("small.pt"), "--judge", "none", "--data", fake.Path, "--no-verify", "--limit", "300",
                                                        "--validation", "100", "--epochs", epochs, "--k-schedule", "3", "--batch", "10", "--threads", "1", "-o", output];
        int stoppedAfter;
        using (var cli = CliProcess.Start(work.Path, null, Args("1000", "b/run.pt")))
        {
            cli.WaitForLine(l => l.StartsWith("up-down epoch 1/1000 ", StringComparison.Ordinal), TimeSpan.FromMinutes(2));
            cli.Signal(CliProcess.SIGTERM);
            int stopped = cli.WaitForExit(TimeSpan.FromMinutes(2));
            Assert.True(stopped == 130, $"exit {stopped}\n{cli.Stdout}\n{cli.Stderr}");
            stoppedAfter = cli.Stdout.Split('\n').Count(l => l.StartsWith("up-down epoch ", StringComparison.Ordinal) && l.Contains(" validation error ", StringComparison.Ordinal));
        }
        Assert.InRange(stoppedAfter, 1, 999);
        string ckpt = work.File("b/run-train.ckpt");
        var before = File.ReadAllBytes(ckpt);

        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, Args("0", "b/run.pt"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        static string Figures(string line) => line[line.IndexOf("generative classifier", StringComparison.Ordinal)..];
        string measured = Assert.Single(stdout.Split('\n'), l => l.StartsWith($"After epoch {stoppedAfter} of 1000 (the run checkpoint b/run-train.ckpt): ", StringComparison.Ordinal));
        Assert.Contains("--epochs 0: b/run-train.ckpt was measured, not trained; nothing was written.", stdout);
        Assert.Equal(before, File.ReadAllBytes(ckpt));

        var (code2, stdout2, stderr2) = CliProcess.Run(work.Path, null, Args(stoppedAfter.ToString(System.Globalization.CultureInfo.InvariantCulture), "a/run.pt"));
        Assert.True(code2 == 0, $"exit {code2}\n{stdout2}\n{stderr2}");
        string unbroken = Assert.Single(stdout2.Split('\n'), l => l.StartsWith($"After {stoppedAfter} epoch", StringComparison.Ordinal));
        Assert.Equal(Figures(unbroken), Figures(measured));

        File.WriteAllText(ckpt, "not a checkpoint");
        var (code3, _, stderr3) = CliProcess.Run(work.Path, null, Args("0", "b/run.pt"));
        Assert.Equal(1, code3);
        Assert.StartsWith("error: --epochs 0 measures the run checkpoint beside --output, which cannot be read: 'b/run-train.ckpt': ", stderr3);
        Assert.DoesNotContain('\n', stderr3.TrimEnd());
        Assert.DoesNotContain("Delete", stderr3);

        using (var rbm = boltzmann.RBM(4, 3))   // another kind of run's checkpoint: refused before its model is built
            TorchBoltzmann.Training.RunCheckpoint.Save(ckpt, "rbm", new Dictionary<string, string>(), [new TorchBoltzmann.Training.ModuleState("model", rbm)]);
        var (code4, _, stderr4) = CliProcess.Run(work.Path, null, Args("0", "b/run.pt"));
        Assert.Equal(1, code4);
        Assert.Equal("error: --epochs 0 measures the run checkpoint beside --output, b/run-train.ckpt, but that is the checkpoint of a rbm run, not of an up-down run", stderr4.TrimEnd());
    }
}

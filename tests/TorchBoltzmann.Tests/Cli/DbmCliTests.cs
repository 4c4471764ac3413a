using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.Data;

namespace TorchBoltzmann.Tests.Cli;

/// <summary><c>tbm dbm</c> run as a child process on the fake MNIST (<see cref="FakeMnist"/>): one-line option errors, and a short run to the checkpoint, pictures and metrics.</summary>
public sealed class DbmCliTests(FakeMnist fake) : IClassFixture<FakeMnist>
{
    [Theory]
    [InlineData("--layers must give the visible layer and at least two hidden layers (e.g. 784,500,1000), got '784,500'", "--layers", "784,500")]
    [InlineData("--layers must be comma-separated positive sizes, visible first, got '784,x,10'", "--layers", "784,x,10")]
    [InlineData("--layers must start with 784 (MNIST's pixels), got 700", "--layers", "700,10,10")]
    [InlineData("--ais-runs must be 0 (no estimate) or at least 2 (the interval needs two weights), got 1", "--ais-runs", "1")]
    [InlineData("--mf-iters must be ≥ 1, got 0", "--mf-iters", "0")]
    [InlineData("--pretrain-epochs must be ≥ 0, got -1", "--pretrain-epochs", "-1")]
    [InlineData("--pretrain-epochs must be ≥ 0, got -2", "--pretrain-epochs", "100,-2")]
    [InlineData("--pretrain-epochs must be a number of epochs or one per RBM separated by commas (e.g. 100,200), got '10,x'", "--pretrain-epochs", "10,x")]
    [InlineData("--pretrain-epochs must give one number, or one per RBM (2 for --layers of 3 sizes), got 3: '1,2,3'", "--pretrain-epochs", "1,2,3")]
    [InlineData("--pretrain-epochs must be 0 for every RBM (no pretraining) or at least 1 for each, got '0,5'", "--pretrain-epochs", "0,5")]
    [InlineData("--stream binarises the streamed images at 0.5; it does not combine with --binarize stochastic", "--binarize", "stochastic", "--stream", "/tmp")]
    [InlineData("--stream binarises the streamed images at 0.5; it does not combine with --binarize each-batch", "--binarize", "each-batch", "--stream", "/tmp")]
    [InlineData("--pretrain-k-every must be ≥ 0, got -1", "--pretrain-k-every", "-1")]
    [InlineData("--pretrain-lr must be positive and finite, got 0", "--pretrain-lr", "0")]
    [InlineData("--final-momentum must be in [0, 1), got 1", "--final-momentum", "1")]
    [InlineData("--preset paper is the recipe of a DBM with two hidden layers (784,500,1000), got --layers '784,500,500,1000'", "--preset", "paper", "--layers", "784,500,500,1000")]
    [InlineData("--centering-rate must be in (0, 1], got 0", "--centering", "--centering-rate", "0")]
    [InlineData("--finetune-lr must be > 0 and finite, got 0", "--finetune-epochs", "1", "--finetune-lr", "0")]
    [InlineData("--finetune-epochs needs the training labels, which --stream does not read; fine-tune without --stream", "--finetune-epochs", "1", "--stream", "/tmp")]
    [InlineData("--stream expects an uncompressed IDX file or a directory holding train-images-idx3-ubyte, got '/nonexistent-stream' (no such file or directory)", "--stream", "/nonexistent-stream")]
    public void BadOption_IsOneErrorLineOnStderr_NamingTheFlag(string expected, params string[] args)
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, ["dbm", .. args]);
        Assert.Equal(1, code);
        Assert.DoesNotContain('\n', stderr.TrimEnd());
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(expected, stderr);
        Assert.DoesNotContain("error", stdout);
    }

    /// <summary>One epoch of a 784-16-20 DBM on 200 fake digits with a tiny AIS: exit 0, the machine loads, log Ẑ and the bound are printed and recorded, the pictures and CSV are written, the run checkpoint is gone.</summary>
    [Fact]
    public void ShortRun_WritesTheDbm_Pictures_AndMetrics()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "dbm", "--data", fake.Path, "--no-verify", "--limit", "200", "--layers", "784,16,20", "--batch", "20", "--chains", "10",
            "--gibbs-steps", "1", "--ais-runs", "10", "--ais-steps", "20", "--test-rows", "50", "--threads", "1", "-o", work.File("dbm.pt"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("DBM epoch 1/1", stdout);
        Assert.Contains("test : variational (mean-field) lower bound on average log p(v) = ", stdout);
        Assert.Contains("by AIS (10 runs, 20 steps; log(Ẑ ± 3σ̂) = [", stdout);
        using var dbm = Checkpoint.Load<DBM>(work.File("dbm.pt"));
        Assert.Equal(new[] { 784, 16, 20 }, dbm.layer_sizes);
        Assert.True(File.Exists(work.File("dbm-samples.png")));
        Assert.True(File.Exists(work.File("dbm-filters.png")));
        Assert.StartsWith("epoch,train_seconds,learning_rate,mean_field_sweeps,reconstruction_error,mean_field_bound\n1,", File.ReadAllText(work.File("dbm-metrics.csv")));
        var metrics = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(work.File("dbm-metrics.json")))!;
        double logZ = metrics["summary"]!["log_z"]!.GetValue<double>(), lower = metrics["summary"]!["log_z_lower"]!.GetValue<double>();
        Assert.True(lower <= logZ && double.IsFinite(logZ), $"log Ẑ {logZ}, lower end {lower}");
        Assert.True(metrics["summary"]!["test_lower_bound"]!.GetValue<double>() < 0);
        Assert.False(File.Exists(work.File("dbm-train.ckpt")));
    }

    /// <summary><c>--compute-dtype bfloat16</c> with pretraining: the run says so in its training line, records it in the
    /// metrics' summary, and the DBM (and its sidecar's options) stay float32.</summary>
    [Fact]
    public void ComputeDtypeBfloat16_IsAnnouncedRecorded_AndLeavesTheMachineFloat32()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "dbm", "--data", fake.Path, "--no-verify", "--limit", "100", "--layers", "784,12,10", "--batch", "20", "--chains", "10",
            "--gibbs-steps", "1", "--pretrain-epochs", "1", "--compute-dtype", "bfloat16", "--ais-runs", "0", "--test-rows", "20", "--threads", "1", "-o", work.File("dbm.pt"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("BFloat16 products", stdout);
        var metrics = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(work.File("dbm-metrics.json")))!;
        Assert.Equal("bfloat16", metrics["summary"]!["compute_dtype"]!.GetValue<string>());
        using var dbm = Checkpoint.Load<DBM>(work.File("dbm.pt"));
        Assert.All(dbm.parameters(), p => Assert.Equal(TorchSharp.torch.ScalarType.Float32, p.dtype));
        Assert.Null(dbm.compute_dtype);
    }

    /// <summary>
    /// <c>--pretrain-epochs 1</c> on 100 fake digits: one progress line per pretrained layer before the DBM's epoch, the
    /// pretraining's metrics in the sidecar, and no checkpoint of either stage left behind.
    /// </summary>
    [Fact]
    public void PretrainEpochs_PretrainsEachLayer_ThenTrainsTheDbm()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "dbm", "--data", fake.Path, "--no-verify", "--limit", "100", "--layers", "784,12,10", "--batch", "20", "--chains", "10",
            "--gibbs-steps", "1", "--pretrain-epochs", "1", "--ais-runs", "0", "--test-rows", "20", "--threads", "1", "-o", work.File("dbm.pt"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("Pretraining 2 modified RBMs greedily (784-12 ×2 up ×1 down, 12-10 ×1 up ×2 down)", stdout);
        int layer1 = stdout.IndexOf("layer 1/2 epoch 1/1", StringComparison.Ordinal), layer2 = stdout.IndexOf("layer 2/2 epoch 1/1", StringComparison.Ordinal);
        int dbmEpoch = stdout.IndexOf("DBM epoch 1/1", StringComparison.Ordinal);
        Assert.True(layer1 >= 0 && layer2 > layer1 && dbmEpoch > layer2, stdout);
        var sidecar = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(work.File("dbm.json")))!;
        Assert.Equal(2, sidecar["training"]!["pretraining"]!.AsArray().Count);
        Assert.False(File.Exists(work.File("dbm-train.ckpt")));
        Assert.False(File.Exists(work.File("dbm-pretrain.ckpt")));
    }

    /// <summary>
    /// SIGTERM inside the bottom RBM's pretraining (once its epoch 1 of 100 is printed) ends the run with 130 and a notice
    /// naming that layer's checkpoint; the same command continues from it (no epoch 1 of layer 1 again), deletes every
    /// checkpoint when done, and saves a DBM bit-identical to an unbroken run's (one thread each).
    /// </summary>
    [Fact]
    public void StoppedInsideAPretrainingLayer_TheSameCommandContinuesFromThatLayer_AndEndsAsTheUnbrokenRun()
    {
        using var work = new TempDirectory();
        string[] Args(string output) => ["dbm", "--data", fake.Path, "--no-verify", "--limit", "1000", "--layers", "784,12,10", "--batch", "20", "--chains", "10",
                                         "--gibbs-steps", "1", "--pretrain-epochs", "100,1", "--ais-runs", "0", "--test-rows", "20", "--threads", "1", "-o", output];
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, Args("a/dbm.pt"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        using (var cli = CliProcess.Start(work.Path, null, Args("b/dbm.pt")))
        {
            cli.WaitForLine(l => l.StartsWith("layer 1/2 epoch 1/100 ", StringComparison.Ordinal), TimeSpan.FromMinutes(2));
            cli.Signal(CliProcess.SIGTERM);
            int stopped = cli.WaitForExit(TimeSpan.FromMinutes(2));
            Assert.True(stopped == 130, $"exit {stopped}\n{cli.Stdout}\n{cli.Stderr}");
            Assert.Contains("Interrupted by SIGTERM. Saved b/dbm-pretrain.layer1.ckpt (the pretraining so far). Continue with: ", cli.Stderr);
        }
        var (again, stdout2, stderr2) = CliProcess.Run(work.Path, null, Args("b/dbm.pt"));
        Assert.True(again == 0, $"exit {again}\n{stdout2}\n{stderr2}");
        Assert.Contains("Continuing the pretraining from b/dbm-pretrain.layer1.ckpt", stdout2);
        Assert.DoesNotContain("layer 1/2 epoch 1/100 ", stdout2);
        Assert.Contains("layer 1/2 epoch 100/100 ", stdout2);
        Assert.Equal(["dbm-filters.png", "dbm-metrics.csv", "dbm-metrics.json", "dbm-samples.png", "dbm.json", "dbm.pt"],
                     Directory.GetFiles(work.File("b")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        using var a = Checkpoint.Load<DBM>(work.File("a/dbm.pt"));
        using var b = Checkpoint.Load<DBM>(work.File("b/dbm.pt"));
        foreach (var ((name, pa), (_, pb)) in a.named_parameters().Zip(b.named_parameters()))
            TestUtil.AllClose(pa, pb, 0, name);
    }

    /// <summary>
    /// <c>--pretrain-epochs 1,2</c>: each RBM pretrains for its own number of epochs (the bottom one 1, the top one 2),
    /// and the sidecar records the list.
    /// </summary>
    [Fact]
    public void PretrainEpochs_PerRbm_TrainsEachForItsOwnEpochs()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "dbm", "--data", fake.Path, "--no-verify", "--limit", "100", "--layers", "784,12,10", "--batch", "20", "--chains", "10",
            "--gibbs-steps", "1", "--pretrain-epochs", "1,2", "--binarize", "stochastic", "--binarize-seed", "7", "--ais-runs", "0", "--test-rows", "20", "--threads", "1", "-o", work.File("dbm.pt"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("1, 2 epochs, CD-1", stdout);
        Assert.Contains("on 100 digits binarised stochastically (seed 7)", stdout);
        Assert.Contains("layer 1/2 epoch 1/1", stdout);
        Assert.Contains("layer 2/2 epoch 2/2", stdout);
        Assert.DoesNotContain("layer 1/2 epoch 2", stdout);
        var sidecar = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(work.File("dbm.json")))!;
        var pretraining = sidecar["training"]!["pretraining"]!.AsArray();
        Assert.Equal(new[] { 1, 2 }, pretraining.Select(layer => layer!.AsArray().Count).ToArray());
        Assert.Equal(new[] { 1, 2 }, sidecar["training"]!["summary"]!["pretrain_epochs"]!.AsArray().Select(e => e!.GetValue<int>()).ToArray());
        Assert.Equal("stochastic", sidecar["training"]!["summary"]!["binarize"]!.GetValue<string>());
        Assert.Equal(7UL, sidecar["training"]!["summary"]!["binarize_seed"]!.GetValue<ulong>());
    }

    /// <summary>
    /// <c>--preset paper</c>: the recipe's values replace the defaults of options not given (the authors' code: digits
    /// binarised anew every batch, pretraining at rate 0.05 with weight decay 0.001 and the top RBM's growing k, the DBM
    /// at 0.001 ×0.991 per epoch with floor 0.0001 and momentum 0.5 then 0.9, CG fine-tuning) while options given keep
    /// theirs (here the epochs, pretraining and fine-tuning batch, shrunk to run on 200 fake digits); the preset is
    /// printed and recorded.
    /// </summary>
    [Fact]
    public void PresetPaper_FillsTheOptionsNotGiven()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "dbm", "--preset", "paper", "--data", fake.Path, "--no-verify", "--limit", "200", "--layers", "784,16,12", "--batch", "20", "--chains", "10",
            "--gibbs-steps", "1", "--epochs", "1", "--pretrain-epochs", "1", "--finetune-epochs", "1", "--finetune-batch", "50", "--finetune-validation", "50",
            "--ais-runs", "0", "--test-rows", "30", "--threads", "1", "-o", work.File("dbm.pt"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("Preset paper: Salakhutdinov & Hinton 2009", stdout);
        Assert.Contains("on 200 digits binarised anew at every batch (the test and fine-tuning digits stochastically once, seed 1), 1 epoch(s), " +
                        "lr 0.001 (×0.991/epoch), floor 0.0001, momentum 0.5 then 0.9 after 5 epochs", stdout);
        Assert.Contains("CD-k with k + 1 every 20 epochs at the top (lr ÷ k), lr 0.05, weight decay 0.001, batch 20", stdout);
        Assert.Contains("conjugate gradients (3 line searches per batch), batch 50", stdout);
        var summary = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(work.File("dbm-metrics.json")))!["summary"]!;
        Assert.Equal("paper", summary["preset"]!.GetValue<string>());
        Assert.Equal("each-batch", summary["binarize"]!.GetValue<string>());

        // With --stream the preset does not fine-tune (no labels are read); with too few digits for its validation split
        // the refusal says that the preset fine-tunes.
        (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "dbm", "--preset", "paper", "--data", fake.Path, "--no-verify", "--stream", fake.Path, "--limit", "100", "--layers", "784,12,10", "--batch", "20", "--chains", "10",
            "--gibbs-steps", "1", "--epochs", "1", "--pretrain-epochs", "0", "--ais-runs", "0", "--test-rows", "20", "--threads", "1", "-o", work.File("s.pt"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.DoesNotContain("Fine-tuning", stdout);
        Assert.DoesNotContain("stochastically", stdout);
        (code, _, stderr) = CliProcess.Run(work.Path, null,
            "dbm", "--preset", "paper", "--data", fake.Path, "--no-verify", "--limit", "200", "--layers", "784,12,10", "--epochs", "1", "--pretrain-epochs", "0", "-o", work.File("v.pt"));
        Assert.Equal(1, code);
        Assert.Contains("--finetune-validation must leave training digits: at most 199 of the 200, got 10000 (--preset paper fine-tunes: give --finetune-validation, or --finetune-epochs 0)", stderr);
    }

    /// <summary>
    /// <c>--finetune-epochs 2</c>: the DBM-initialised classifier fine-tuned on 150 of 200 fake digits (50 held out) and
    /// measured on 60 test digits; its test error is printed and recorded as errors / digits, its checkpoint written,
    /// and no fine-tuning checkpoint is left. <c>--finetune-validation</c> that leaves no training digit is refused.
    /// </summary>
    [Theory]
    [InlineData("sgd", "SGD lr 0.1")]
    [InlineData("cg", "conjugate gradients (3 line searches per batch)")]
    public void FinetuneEpochs_FineTunesTheDbmClassifier_AndReportsItsTestError(string optimizer, string described)
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "dbm", "--data", fake.Path, "--no-verify", "--limit", "200", "--layers", "784,16,12", "--batch", "20", "--chains", "10", "--gibbs-steps", "1",
            "--finetune-epochs", "2", "--finetune-validation", "50", "--finetune-batch", "25", "--finetune-optimizer", optimizer,
            "--ais-runs", "0", "--test-rows", "60", "--threads", "1", "-o", work.File("dbm.pt"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("Fine-tuning the DBM-initialised classifier (input [v ; μ₂(v)], 796-16-12-10) for at most 2 epochs, " + described, stdout);
        Assert.Contains("fine-tune epoch 2/2", stdout);
        Assert.Matches(@"DBM classifier: test error \d+\.\d\d % \(\d+/60\), best validation error", stdout);
        var summary = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(work.File("dbm-metrics.json")))!["summary"]!;
        double error = summary["classifier_test_error"]!.GetValue<double>();
        Assert.Equal(summary["classifier_test_errors"]!.GetValue<int>() / 60.0, error, 12);
        Assert.True(File.Exists(work.File("dbm-classifier.pt")) && File.Exists(work.File("dbm-classifier.json")));
        Assert.False(File.Exists(work.File("dbm-finetune.ckpt")));
        Assert.False(File.Exists(work.File("dbm-train.ckpt")));

        (code, _, stderr) = CliProcess.Run(work.Path, null,
            "dbm", "--data", fake.Path, "--no-verify", "--limit", "200", "--layers", "784,16,12", "--batch", "20", "--finetune-epochs", "1", "--finetune-validation", "200", "-o", work.File("x.pt"));
        Assert.Equal(1, code);
        Assert.Contains("--finetune-validation must leave training digits: at most 199 of the 200, got 200", stderr);
    }

    /// <summary>
    /// <c>--stream</c>: the fake training images read from their IDX file while the modified RBMs pretrain and the DBM
    /// trains; the bound's training rows come from the stream, the summary names the file and its rows, no checkpoint is left.
    /// </summary>
    [Fact]
    public void Stream_PretrainsAndTrainsFromTheIdxFile()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "dbm", "--data", fake.Path, "--no-verify", "--stream", fake.Path, "--limit", "120", "--layers", "784,12,10", "--batch", "20", "--chains", "10",
            "--gibbs-steps", "1", "--pretrain-epochs", "1", "--ais-runs", "4", "--ais-steps", "10", "--test-rows", "30", "--threads", "1", "-o", work.File("dbm.pt"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        string file = Path.Combine(fake.Path, "train-images-idx3-ubyte");
        Assert.Contains("on 120 digits streamed from " + file, stdout);
        Assert.Contains("The streamed pretraining keeps no checkpoint", stdout);
        int layer2 = stdout.IndexOf("layer 2/2 epoch 1/1", StringComparison.Ordinal), dbmEpoch = stdout.IndexOf("DBM epoch 1/1", StringComparison.Ordinal);
        Assert.True(layer2 >= 0 && dbmEpoch > layer2, stdout);
        Assert.Contains("train: variational (mean-field) lower bound on average log p(v) = ", stdout);
        var summary = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(work.File("dbm-metrics.json")))!["summary"]!;
        Assert.Equal(Path.GetFullPath(file), summary["stream"]!.GetValue<string>());
        Assert.Equal(120, summary["train_rows"]!.GetValue<long>());
        Assert.True(double.IsFinite(summary["train_lower_bound"]!.GetValue<double>()));
        Assert.False(File.Exists(work.File("dbm-train.ckpt")));
        Assert.False(File.Exists(work.File("dbm-pretrain.ckpt")));
    }
}

using System.Security.Cryptography;
using TorchBoltzmann.Tests.Data;

namespace TorchBoltzmann.Tests.Cli;

/// <summary>
/// The built CLI run as a child process on a small fake MNIST (<see cref="FakeMnist"/>, read with <c>--no-verify</c>):
/// its error lines, exit codes, output streams, default output directory, and what Ctrl+C / SIGTERM do.
/// </summary>
public sealed class CliTests(FakeMnist fake) : IClassFixture<FakeMnist>
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    /// <summary>The options of a short mnist run on the fake data: two quick layers, no class-conditional sampling, no refit.</summary>
    private string[] QuickMnist(params string[] more) =>
    [
        "mnist", "--data", fake.Path, "--no-verify", "--limit", "500", "--validation", "100", "--pretrain-epochs", "1",
        "--class-conditional", "false", "--refit", "false", "--patience", "0", "--threads", "1", .. more,
    ];

    /// <summary>
    /// Whether SIGINT is ignored by this process (bit 1 of SigIgn in /proc/self/status): a shell starts background jobs
    /// so, and a child inherits it, so a SIGINT test cannot reach the CLI there.
    /// </summary>
    private static bool SigintIgnored()
    {
        if (!OperatingSystem.IsLinux()) return false;
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return line is not null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & 0x2) != 0;
    }

    private static void AssertPlain(string text) =>
        Assert.False(text.Contains('\u001b'), $"escape codes in redirected output:\n{text}");

    [Theory]
    [InlineData("--epochs must be ≥ 1, got -3", "train-rbm", "--epochs", "-3")]
    [InlineData("--epochs must be ≥ 1, got 0", "train-rbm", "--epochs", "0")]
    [InlineData("--lr must be > 0 and finite, got -1", "train-rbm", "--lr", "-1")]
    [InlineData("--k must be ≥ 1, got 0", "train-rbm", "--k", "0")]
    [InlineData("--visible must be bernoulli, gaussian or gaussian-learned, got 'poisson'", "train-rbm", "--visible", "poisson")]
    [InlineData("--tempering must be 0 (off) or at least 2 levels, got 1", "train-rbm", "--tempering", "1")]
    [InlineData("--tempering-min-beta must be in (0, 1), got 1.5", "train-rbm", "--tempering", "3", "--tempering-min-beta", "1.5")]
    [InlineData("--tempering-min-beta must be in (0, 1), got 0", "train-rbm", "--tempering", "3", "--tempering-min-beta", "0")]
    [InlineData("--device must be cpu, cuda or cuda:N (N = 0, 1, …), got 'tpu'", "train-rbm", "--device", "tpu")]
    [InlineData("--device cuda:7: ", "train-rbm", "--device", "cuda:7")]
    [InlineData("--lr-decay must be in (0, 1], got 0", "train-rbm", "--lr-decay", "0")]
    [InlineData("--momentum must be in [0, 1), got 1.5", "train-rbm", "--momentum", "1.5")]
    [InlineData("--binarize must be threshold or stochastic, got 'maybe'", "train-rbm", "--binarize", "maybe")]
    [InlineData("--binarize stochastic: binarisation is for --visible bernoulli, got --visible gaussian", "train-rbm", "--binarize", "stochastic", "--visible", "gaussian", "--lr", "0.001")]
    [InlineData("--validation must be ≥ 0, got -1", "train-rbm", "--validation", "-1")]
    [InlineData("--validation must leave training digits: expected at most 499 of the 500 loaded, got 500", "train-rbm", "--data", "{data}", "--no-verify", "--limit", "500", "--validation", "500")]
    [InlineData("--finetune-epochs must be ≥ 1, got 0", "mnist", "--finetune-epochs", "0")]
    [InlineData("--pretrain-epochs must be ≥ 1, got 0", "mnist", "--pretrain-epochs", "0")]
    [InlineData("--momentum must be in [0, 1), got 1.5", "mnist", "--momentum", "1.5")]
    [InlineData("--validation must be ≥ 0, got -1", "mnist", "--validation", "-1")]
    [InlineData("--top-k must be ≥ 1, got 0", "mnist", "--top-k", "0")]
    [InlineData("--no-verify needs the directory of the IDX files", "train-rbm", "--no-verify")]
    [InlineData("--stream expects an uncompressed IDX file or a directory holding train-images-idx3-ubyte, got '/nonexistent-stream' (no such file or directory)", "train-rbm", "--stream", "/nonexistent-stream")]
    [InlineData("--stream trains Bernoulli units on binarised images; it does not combine with --visible gaussian", "train-rbm", "--stream", "{data}", "--visible", "gaussian", "--lr", "0.001")]
    [InlineData("--batch must be at most the number of training digits, 500, got 100000", "train-rbm", "--data", "{data}", "--no-verify", "--limit", "500", "--batch", "100000")]
    [InlineData("--batch-size must be at most the number of training digits left after the 100 held out for validation, 400, got 100000",
                "mnist", "--data", "{data}", "--no-verify", "--limit", "500", "--validation", "100", "--batch-size", "100000")]
    public void BadOption_IsOneErrorLineOnStderr_NamingTheFlag(string expected, params string[] args)
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, args.Select(a => a.Replace("{data}", fake.Path)).ToArray());
        Assert.Equal(1, code);
        Assert.DoesNotContain('\n', stderr);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(expected, stderr);
        Assert.DoesNotContain("Exception", stderr);
        Assert.DoesNotContain("error", stdout);   // errors go to stderr only
        AssertPlain(stdout + stderr);
    }

    /// <summary>A value that does not parse is named in the command line's words (not .NET type names), on stderr, with where the help is.</summary>
    [Fact]
    public void UnparsableValue_IsNamedInTheCommandLinesWords()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, "mnist", "--lr", "fast");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Equal("error: --lr: expected a number, got 'fast'\n('tbm mnist --help' lists the options.)", stderr);
    }

    /// <summary>A value outside an option's list is named with the option and the values it takes.</summary>
    [Theory]
    [InlineData("error: --pretrain-compute-dtype: expected one of float32, bfloat16, got 'float16'\n('tbm mnist --help' lists the options.)", "mnist", "--pretrain-compute-dtype", "float16")]
    [InlineData("error: --optimizer: expected one of sgd, cg, got 'adam'\n('tbm mnist --help' lists the options.)", "mnist", "--optimizer", "adam")]
    [InlineData("error: --preset: expected one of none, paper, got 'fast'\n('tbm dbm --help' lists the options.)", "dbm", "--preset", "fast")]
    [InlineData("error: --binarize: expected one of threshold, stochastic, each-batch, got 'random'\n('tbm dbm --help' lists the options.)", "dbm", "--binarize", "random")]
    [InlineData("error: --compute-dtype: expected one of float32, bfloat16, got 'float16'\n('tbm dbm --help' lists the options.)", "dbm", "--compute-dtype", "float16")]
    [InlineData("error: --compute-dtype: expected one of float32, bfloat16, got 'half'\n('tbm train-rbm --help' lists the options.)", "train-rbm", "--compute-dtype", "half")]
    public void ValueOutsideItsList_IsNamedWithTheOption(string expected, params string[] args)
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, args);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Equal(expected, stderr);
    }

    /// <summary>A --data or $MNIST_DIR that does not exist is an error naming it; nothing is created or fetched.</summary>
    [Fact]
    public void MissingDataDirectory_IsAnErrorNamingIt_AndNothingIsCreated()
    {
        using var work = new TempDirectory();
        string missing = work.File("no-such-mnist");
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, "train-rbm", "--data", missing);
        Assert.Equal(1, code);
        Assert.Equal($"error: --data {missing}: no such directory; pass the directory that holds the MNIST IDX files, or --fetch-into {missing} to download MNIST there", stderr);
        Assert.DoesNotContain("MNIST:", stdout);

        (code, _, stderr) = CliProcess.Run(work.Path, new Dictionary<string, string?> { ["MNIST_DIR"] = missing }, "mnist");
        Assert.Equal(1, code);
        Assert.StartsWith($"error: $MNIST_DIR={missing}: no such directory;", stderr);

        Assert.False(Directory.Exists(missing));
        Assert.False(Directory.Exists(work.File("data")));
    }

    /// <summary>Files under MNIST's names with other content are refused by name and digest, and left byte for byte.</summary>
    [Fact]
    public void ForeignFilesInData_AreRefusedByName_AndLeftAlone()
    {
        using var work = new TempDirectory();
        string copy = Directory.CreateDirectory(work.File("mine")).FullName;
        foreach (var f in Directory.GetFiles(fake.Path)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var before = Directory.GetFiles(copy).ToDictionary(f => f, f => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(f))));

        var (code, _, stderr) = CliProcess.Run(work.Path, null, "train-rbm", "--data", copy, "--limit", "100", "--epochs", "1");
        Assert.Equal(1, code);
        Assert.DoesNotContain('\n', stderr);
        foreach (var (file, sha) in before)
            Assert.Contains($"{file}: SHA-256 mismatch (expected ", stderr);
        Assert.Contains($"got {before[Path.Combine(copy, "train-images-idx3-ubyte")]}", stderr);
        Assert.Contains("Move them away", stderr);
        Assert.Equal(before, Directory.GetFiles(copy).ToDictionary(f => f, f => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(f)))));
    }

    /// <summary>An output location that cannot be written is an error before MNIST is even looked for, let alone trained on.</summary>
    [Fact]
    public void UnwritableOutput_IsAnError_BeforeAnyTraining()
    {
        using var work = new TempDirectory();
        File.WriteAllText(work.File("a-file"), "not a directory");
        foreach (var verb in new[] { "train-rbm", "mnist" })
        {
            string output = Path.Combine(work.File("a-file"), "sub", "model.pt");
            var (code, stdout, stderr) = CliProcess.Run(work.Path, null, verb, "--data", fake.Path, "--no-verify", "--limit", "500", "--output", output);
            Assert.Equal(1, code);
            Assert.StartsWith($"error: --output {output}: cannot write in the directory {Path.GetDirectoryName(output)} (", stderr);
            Assert.DoesNotContain("MNIST", stdout);
            Assert.DoesNotContain("epoch", stdout);
        }
    }

    /// <summary>
    /// train-rbm's default output is runs/rbm-mnist.pt under the working directory (ignored by git, not models/), and its
    /// redirected output has no escape codes and no line wrapped at 80 columns.
    /// </summary>
    [Fact]
    public void TrainRbm_WritesToRuns_AndRedirectedOutputIsPlainAndUnwrapped()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "train-rbm", "--data", fake.Path, "--no-verify", "--limit", "500", "--epochs", "1", "--hidden", "32", "--threads", "1");
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        foreach (var f in new[] { "rbm-mnist.pt", "rbm-mnist.json", "rbm-mnist-filters.png", "rbm-mnist-metrics.json" })
            Assert.True(File.Exists(Path.Combine(work.Path, "runs", f)), f);
        Assert.False(Directory.Exists(work.File("models")));
        AssertPlain(stdout + stderr);
        string done = Assert.Single(stdout.Split('\n'), l => l.StartsWith("Done in "));
        Assert.True(done.Length > 80 && done.EndsWith("rbm-mnist-metrics.json"), done);
    }

    /// <summary>train-rbm --stream: the fake training images streamed from their IDX file, held-out digits from the test file.</summary>
    [Fact]
    public void TrainRbm_Stream_TrainsFromTheIdxFile()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "train-rbm", "--data", fake.Path, "--no-verify", "--stream", fake.Path, "--limit", "300", "--epochs", "1", "--hidden", "16", "--threads", "1", "-o", work.File("s.pt"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("on 300 digits streamed from " + Path.Combine(fake.Path, "train-images-idx3-ubyte"), stdout);
        Assert.True(File.Exists(work.File("s.pt")));
    }

    /// <summary>
    /// --tensorboard DIR: one run directory DIR/train-rbm-seed42-TIME whose reconstruction-error scalars are the metrics the
    /// command wrote to its metrics file, epoch by epoch, with filter images; without the option no event file is written.
    /// </summary>
    [Fact]
    public void TrainRbm_TensorBoard_LogsTheReturnedMetrics_AndNothingWithoutTheOption()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "train-rbm", "--data", fake.Path, "--no-verify", "--limit", "500", "--epochs", "2", "--hidden", "32", "--threads", "1",
            "--tensorboard", "tb");
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        string run = Assert.Single(Directory.GetDirectories(work.File("tb")));
        Assert.Matches(@"train-rbm-seed42-\d{8}-\d{6}$", run);
        Assert.Contains($"TensorBoard: writing {run}", stdout);
        var values = TorchBoltzmann.Logging.TensorBoardEventReader.ReadDirectory(run);
        using var metrics = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(work.Path, "runs", "rbm-mnist-metrics.json")));
        var expected = metrics.RootElement.EnumerateArray()
            .Select(e => (float)e.EnumerateObject().Single(p => p.Name.Replace("_", "").Equals("ReconstructionError", StringComparison.OrdinalIgnoreCase)).Value.GetDouble())
            .ToList();
        var logged = values.Where(v => v.Tag == "rbm/reconstruction_error").ToList();
        Assert.Equal([1L, 2L], logged.Select(v => v.Step));
        Assert.Equal(expected, logged.Select(v => v.Scalar));
        Assert.Contains(values, v => v.Tag == "rbm/filters" && v.Kind == TorchBoltzmann.Logging.TensorBoardValueKind.Image && v.Step == 2);
        Assert.Contains(values, v => v.Tag == "rbm/reconstructions" && v.Step == 2);
        Assert.Equal(2, values.Count(v => v.Tag == "rbm/update_to_weight_ratio/weight"));

        Assert.Contains(values, v => v.Tag == "rbm/samples" && v.Step == 2);

        // The same run without the option: no event file anywhere, and the same training (logging draws nothing from
        // the training's random stream).
        using var plain = new TempDirectory();
        (code, stdout, stderr) = CliProcess.Run(plain.Path, null,
            "train-rbm", "--data", fake.Path, "--no-verify", "--limit", "500", "--epochs", "2", "--hidden", "32", "--threads", "1");
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Empty(Directory.GetFiles(plain.Path, "events.out.tfevents.*", SearchOption.AllDirectories));
        Assert.DoesNotContain("TensorBoard", stdout);
        using var plainMetrics = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(plain.Path, "runs", "rbm-mnist-metrics.json")));
        Assert.Equal(expected, plainMetrics.RootElement.EnumerateArray()
            .Select(e => (float)e.EnumerateObject().Single(p => p.Name.Replace("_", "").Equals("ReconstructionError", StringComparison.OrdinalIgnoreCase)).Value.GetDouble()));
    }

    /// <summary>
    /// tbm mnist --tensorboard: one run directory quick-seed42-TIME holding every pretraining layer's and fine-tuning's
    /// epoch scalars (the fine-tuning losses equal those of the -finetune.csv the command wrote), parameter histograms
    /// and update ratios of the layers and the classifier, and the bottom layer's filters.
    /// </summary>
    [Fact]
    public void Mnist_TensorBoard_LogsEveryStage()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, QuickMnist("--finetune-epochs", "2", "--tensorboard", "tb"));
        Assert.True(code is 0 or 3, $"exit {code}\n{stdout}\n{stderr}");
        string run = Assert.Single(Directory.GetDirectories(work.File("tb")));
        Assert.Matches(@"quick-seed42-\d{8}-\d{6}$", run);
        var values = TorchBoltzmann.Logging.TensorBoardEventReader.ReadDirectory(run);
        var tags = values.Select(v => v.Tag).ToHashSet();
        foreach (var t in new[] { "layer1/reconstruction_error", "layer2/reconstruction_error", "layer1/weight", "layer1/update_to_weight_ratio/weight",
                                  "layer1/filters", "fine-tune/train_loss", "fine-tune/validation_error", "fine-tune/fc1.weight" })
            Assert.Contains(t, tags);
        var csv = File.ReadAllLines(Path.Combine(work.Path, "runs", "dbn-quick-finetune.csv")).Skip(1)
            .Select(l => (float)double.Parse(l.Split(',')[1], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        var logged = values.Where(v => v.Tag == "fine-tune/train_loss").Select(v => v.Scalar).ToList();
        Assert.Equal(csv.Count, logged.Count);
        for (int i = 0; i < csv.Count; i++) Assert.Equal(csv[i], logged[i], 5e-6 * Math.Abs(csv[i]));   // the CSV holds 6 significant digits
    }

    /// <summary>A learning rate that wrecks the RBM ends with a warning naming --lr and exit code 3 (the files are still written).</summary>
    [Fact]
    public void TrainRbm_LearningRateFarTooHigh_WarnsAndExits3()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "train-rbm", "--data", fake.Path, "--no-verify", "--limit", "500", "--epochs", "1", "--hidden", "32", "--threads", "1", "--lr", "1000");
        Assert.True(code == 3, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("warning: --lr 1000: at 1 and above", stderr);
        Assert.Contains("warning: the RBM reconstructs held-out digits no better than the training pixel means", stderr);
        Assert.Contains("(--lr 1000; the default is 0.1)", stderr);
        Assert.True(File.Exists(Path.Combine(work.Path, "runs", "rbm-mnist.pt")));
    }

    /// <summary>
    /// --visible gaussian trains a Gaussian–Bernoulli RBM on the grey levels standardised per pixel: the checkpoint holds
    /// Gaussian visible units, and after 50 updates at --lr 0.005 its held-out reconstructions (in standardised units) beat
    /// reconstructing every digit as the pixel means.
    /// </summary>
    [Fact]
    public void TrainRbm_GaussianVisible_TrainsOnStandardisedGreyLevels()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "train-rbm", "--data", fake.Path, "--no-verify", "--limit", "500", "--epochs", "5", "--batch", "50", "--hidden", "32",
            "--threads", "1", "--visible", "gaussian", "--lr", "0.005");
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("Training Gaussian–Bernoulli RBM 784×32", stdout);
        Assert.DoesNotContain("warning", stderr);
        using (var rbm = TorchBoltzmann.IO.Checkpoint.Load<TorchBoltzmann.Modules.RBM>(Path.Combine(work.Path, "runs", "rbm-mnist.pt")))
            Assert.IsType<TorchBoltzmann.Units.GaussianUnits>(rbm.visible_units);
        var line = Assert.Single(stdout.Split('\n'), l => l.StartsWith("Held-out reconstruction error "));
        var numbers = System.Text.RegularExpressions.Regex.Matches(line, @"\d+\.\d+").Select(m => double.Parse(m.Value, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.True(numbers[0] < numbers[1], line);
    }

    /// <summary>--tempering 4: parallel tempering as the negative phase (the header says so) and for the samples picture.</summary>
    [Fact]
    public void TrainRbm_Tempering_TrainsWithReplicasOnALadder()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "train-rbm", "--data", fake.Path, "--no-verify", "--limit", "200", "--epochs", "2", "--batch", "50", "--hidden", "16",
            "--threads", "1", "--tempering", "4");
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("PT(4 levels)-1", stdout);
        var rates = Assert.Single(stdout.Split('\n'), l => l.StartsWith("Tempering swap acceptance per neighbour pair (β 1 → 0.7 → 0.4 → 0.1): "));
        var values = rates[(rates.LastIndexOf(':') + 1)..].Split(',').Select(x => double.Parse(x, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(3, values.Length);
        Assert.All(values, r => Assert.InRange(r, 0.0, 1.0));
        Assert.True(File.Exists(Path.Combine(work.Path, "runs", "rbm-mnist-samples.png")));
        var (code3, stdout3, stderr3) = CliProcess.Run(work.Path, null,
            "train-rbm", "--data", fake.Path, "--no-verify", "--limit", "200", "--epochs", "1", "--batch", "50", "--hidden", "16",
            "--threads", "1", "--tempering", "3", "--tempering-min-beta", "0.6", "-o", "runs/hot.pt");
        Assert.True(code3 == 0, $"exit {code3}\n{stdout3}\n{stderr3}");
        Assert.Contains("Tempering swap acceptance per neighbour pair (β 1 → 0.8 → 0.6): ", stdout3);
        var (code2, _, stderr2) = CliProcess.Run(work.Path, null, "train-rbm", "--data", fake.Path, "--no-verify", "--tempering", "4", "--pcd");
        Assert.NotEqual(0, code2);
        Assert.Contains("--tempering", stderr2);
    }

    /// <summary>--visible gaussian-learned: the checkpoint holds Gaussian units with a learned log-variance per pixel, moved from its start 0.</summary>
    [Fact]
    public void TrainRbm_GaussianLearnedVisible_LearnsAVariancePerPixel()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "train-rbm", "--data", fake.Path, "--no-verify", "--limit", "200", "--epochs", "2", "--batch", "50", "--hidden", "16",
            "--threads", "1", "--visible", "gaussian-learned", "--lr", "0.005");
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        using var rbm = TorchBoltzmann.IO.Checkpoint.Load<TorchBoltzmann.Modules.RBM>(Path.Combine(work.Path, "runs", "rbm-mnist.pt"));
        Assert.IsType<TorchBoltzmann.Units.LearnedGaussianUnits>(rbm.visible_units);
        using var moved = rbm.visible_log_variance!.abs().max();
        Assert.True(moved.item<float>() > 0, "the log-variances never moved");
    }

    /// <summary>--visible gaussian with a learning rate far too high: a warning first, then the divergence stop names --lr.</summary>
    [Fact]
    public void TrainRbm_GaussianVisible_LearningRateFarTooHigh_DivergesNamingTheRate()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null,
            "train-rbm", "--data", fake.Path, "--no-verify", "--limit", "500", "--epochs", "2", "--hidden", "32", "--threads", "1",
            "--visible", "gaussian", "--lr", "1000");
        Assert.True(code == 1, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("warning: --lr 1000 with --visible gaussian", stderr);
        Assert.Contains("The likely cause with Gaussian visible units is the learning rate (--lr 1000): try 10 times smaller, e.g. --lr 100.", stderr);
    }

    /// <summary>A classifier that ends at chance level or with an exploding loss is a warning naming --lr, and exit code 3.</summary>
    [Fact]
    public void Mnist_LearningRateFarTooHigh_WarnsAndExits3()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, QuickMnist("--finetune-epochs", "1", "--lr", "1e6"));
        Assert.True(code == 3, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("warning: the classifier did not learn", stderr);
        Assert.Contains("--lr 1000000; preset quick's is 0.1", stderr);
        Assert.True(File.Exists(Path.Combine(work.Path, "runs", "dbn-quick.pt")));
    }

    /// <summary>
    /// Ctrl+C during fine-tuning: exit 130, the notice names the checkpoints and the command that continues; that
    /// command continues from them (no pretraining, fine-tuning from the saved epoch on) and finishes; the checkpoints
    /// are then gone. Default output: runs/dbn-quick.pt.
    /// </summary>
    [SkippableFact(DisplayName = "CliTests.Mnist_Sigint_KeepsTheCheckpoints_AndTheSameCommandContinues (runs only where SIGINT is not ignored, as a shell's background jobs ignore it)")]
    public void Mnist_Sigint_KeepsTheCheckpoints_AndTheSameCommandContinues()
    {
        Skip.If(SigintIgnored(), "SIGINT is ignored by this process (started as a background job), and so by the CLI it starts");
        using var work = new TempDirectory();
        string[] args = QuickMnist("--finetune-epochs", "40");
        int savedEpoch;
        using (var cli = CliProcess.Start(work.Path, null, args))
        {
            string line = cli.WaitForLine(l => l.StartsWith("fine-tune epoch 2/40 "), Patience);
            cli.Signal(CliProcess.SIGINT);
            int code = cli.WaitForExit(Patience);
            Assert.True(code == 130, $"exit {code}\n{cli.Stdout}\n{cli.Stderr}");
            string stderr = cli.Stderr;
            Assert.Contains("SIGINT received: stopping at the next batch", stderr);
            Assert.Contains("Interrupted by SIGINT. Saved runs/dbn-quick-pretrained.ckpt (the DBN after 2 of 2 layers' pretraining), runs/dbn-quick-finetune.ckpt (fine-tuning after epoch ", stderr);
            Assert.Contains($"Continue with: tbm {string.Join(" ", args)}", stderr);
            savedEpoch = int.Parse(System.Text.RegularExpressions.Regex.Match(stderr, @"fine-tuning after epoch (\d+)").Groups[1].Value);
            Assert.InRange(savedEpoch, 2, 39);
            AssertPlain(cli.Stdout + stderr);
        }
        Assert.True(File.Exists(Path.Combine(work.Path, "runs", "dbn-quick-finetune.ckpt")));
        Assert.False(File.Exists(Path.Combine(work.Path, "runs", "dbn-quick.pt")));

        var (again, stdout, stderr2) = CliProcess.Run(work.Path, null, args);
        Assert.True(again == 0, $"exit {again}\n{stdout}\n{stderr2}");
        Assert.Contains("Continuing from the checkpoint runs/dbn-quick-finetune.ckpt", stdout);
        Assert.DoesNotContain("layer 1/2 epoch", stdout);                      // pretraining came from its checkpoint
        Assert.DoesNotContain($"fine-tune epoch {savedEpoch}/40 ", stdout);    // nor the saved epochs
        Assert.Contains($"fine-tune epoch {savedEpoch + 1}/40 ", stdout);
        Assert.Contains("fine-tune epoch 40/40 ", stdout);
        Assert.True(File.Exists(Path.Combine(work.Path, "runs", "dbn-quick.pt")));
        Assert.Empty(Directory.GetFiles(Path.Combine(work.Path, "runs"), "*.ckpt"));
        Assert.False(File.Exists(Path.Combine(work.Path, "runs", "dbn-quick-pretrained.ckpt")));
    }

    /// <summary>
    /// SIGTERM during the second pretraining layer: exit 130, the first layer is kept and so is the second's epoch 1; the
    /// same command continues the second layer from its epoch 2 (neither the first layer nor that epoch is trained again).
    /// </summary>
    [Fact]
    public void Mnist_Sigterm_DuringPretraining_KeepsTheFinishedLayer_AndARerunContinues()
    {
        using var work = new TempDirectory();
        string[] args = QuickMnist("--top-epochs", "200", "--finetune-epochs", "1", "--output", "out/m.pt");
        using (var cli = CliProcess.Start(work.Path, null, args))
        {
            cli.WaitForLine(l => l.StartsWith("layer 2/2 epoch 1/200 "), Patience);
            cli.Signal(CliProcess.SIGTERM);
            int code = cli.WaitForExit(Patience);
            Assert.True(code == 130, $"exit {code}\n{cli.Stdout}\n{cli.Stderr}");
            Assert.Contains("Interrupted by SIGTERM. Saved out/m-pretrained.ckpt (the DBN after 1 of 2 layers' pretraining), " +
                            "out/m-pretrained.layer2.ckpt (layer 2's pretraining so far). Continue with: tbm mnist ", cli.Stderr);
        }

        using (var cli = CliProcess.Start(work.Path, null, args))
        {
            cli.WaitForLine(l => l.StartsWith("Continuing from the checkpoint out/m-pretrained.layer2.ckpt"), Patience);
            cli.WaitForLine(l => l.StartsWith("layer 2/2 epoch ") && l.Contains("/200  "), Patience);   // an epoch's metrics line
            Assert.DoesNotContain(cli.StdoutLines, l => l.StartsWith("layer 1/2 epoch"));
            Assert.DoesNotContain(cli.StdoutLines, l => l.StartsWith("layer 2/2 epoch 1/200 "));
            cli.Signal(CliProcess.SIGTERM);
            Assert.Equal(130, cli.WaitForExit(Patience));
        }
    }

    /// <summary>train-rbm with --checkpoint-every 0 keeps no checkpoint: SIGTERM ends it with 130, nothing written, and the notice says so and how to start over.</summary>
    [Fact]
    public void TrainRbm_SigtermWithoutCheckpoints_WritesNothing_AndSaysSo()
    {
        using var work = new TempDirectory();
        string[] args = ["train-rbm", "--data", fake.Path, "--no-verify", "--limit", "1000", "--epochs", "1000", "--hidden", "64", "--threads", "1", "--checkpoint-every", "0"];
        using var cli = CliProcess.Start(work.Path, null, args);
        cli.WaitForLine(l => l.StartsWith("RBM epoch 1/1000 "), Patience);
        cli.Signal(CliProcess.SIGTERM);
        int code = cli.WaitForExit(Patience);
        Assert.True(code == 130, $"exit {code}\n{cli.Stdout}\n{cli.Stderr}");
        Assert.Contains("Interrupted by SIGTERM. train-rbm keeps no checkpoint to continue from with --checkpoint-every 0: nothing was written", cli.Stderr);
        Assert.Contains($"Run it again to start over: tbm {string.Join(" ", args)}", cli.Stderr);
        Assert.Empty(Directory.GetFiles(work.Path, "*", SearchOption.AllDirectories));
    }

    /// <summary>
    /// train-rbm checkpoints every epoch by default: SIGTERM ends it with 130 keeping runs/rbm-mnist-train.ckpt, the notice
    /// names it and the command that continues, and that command continues after the saved epoch.
    /// </summary>
    [Fact]
    public void TrainRbm_Sigterm_KeepsItsCheckpoint_AndTheSameCommandContinues()
    {
        using var work = new TempDirectory();
        string[] args = ["train-rbm", "--data", fake.Path, "--no-verify", "--limit", "1000", "--epochs", "1000", "--hidden", "64", "--threads", "1", "--pcd"];
        var checkpoint = Path.Combine("runs", "rbm-mnist-train.ckpt");
        using (var cli = CliProcess.Start(work.Path, null, args))
        {
            cli.WaitForLine(l => l.StartsWith("RBM epoch 2/1000 "), Patience);
            cli.Signal(CliProcess.SIGTERM);
            int code = cli.WaitForExit(Patience);
            Assert.True(code == 130, $"exit {code}\n{cli.Stdout}\n{cli.Stderr}");
            Assert.Contains($"Interrupted by SIGTERM. Saved {checkpoint} (the run after epoch ", cli.Stderr);
            Assert.Contains($"Continue with: tbm {string.Join(" ", args)}", cli.Stderr);
        }
        Assert.True(File.Exists(Path.Combine(work.Path, checkpoint)), "the checkpoint is kept");
        Assert.False(File.Exists(Path.Combine(work.Path, "runs", "rbm-mnist.pt")), "no model is written before training ends");
        using (var cli = CliProcess.Start(work.Path, null, args))
        {
            cli.WaitForLine(l => l.StartsWith($"Continuing from the checkpoint {checkpoint}"), Patience);
            // The first epoch this process trains comes after the saved ones (at least two: epoch 2's line was printed).
            var line = cli.WaitForLine(l => l.StartsWith("RBM epoch "), Patience);
            int epoch = int.Parse(line["RBM epoch ".Length..line.IndexOf('/')], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(epoch >= 3, line);
            cli.Signal(CliProcess.SIGTERM);
            Assert.Equal(130, cli.WaitForExit(Patience));
        }
    }
}

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
    [InlineData("--device must be cpu, cuda or cuda:N (N = 0, 1, …), got 'tpu'", "train-rbm", "--device", "tpu")]
    [InlineData("--device cuda:7: ", "train-rbm", "--device", "cuda:7")]
    [InlineData("--finetune-epochs must be ≥ 1, got 0", "mnist", "--finetune-epochs", "0")]
    [InlineData("--pretrain-epochs must be ≥ 1, got 0", "mnist", "--pretrain-epochs", "0")]
    [InlineData("--momentum must be in [0, 1), got 1.5", "mnist", "--momentum", "1.5")]
    [InlineData("--validation must be ≥ 0, got -1", "mnist", "--validation", "-1")]
    [InlineData("--top-k must be ≥ 1, got 0", "mnist", "--top-k", "0")]
    [InlineData("--no-verify needs the directory of the IDX files", "train-rbm", "--no-verify")]
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
    /// SIGTERM during the second pretraining layer: exit 130, the first layer is kept; the same command continues with
    /// the second layer (the first is not trained again).
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
            Assert.Contains("Interrupted by SIGTERM. Saved out/m-pretrained.ckpt (the DBN after 1 of 2 layers' pretraining). Continue with: tbm mnist ", cli.Stderr);
        }

        using (var cli = CliProcess.Start(work.Path, null, args))
        {
            cli.WaitForLine(l => l.StartsWith("Continuing from the checkpoint out/m-pretrained.ckpt"), Patience);
            cli.WaitForLine(l => l.StartsWith("layer 2/2 epoch 1/200 "), Patience);
            Assert.DoesNotContain(cli.StdoutLines, l => l.StartsWith("layer 1/2 epoch"));
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

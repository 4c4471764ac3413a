using TorchBoltzmann.Tests.Data;

namespace TorchBoltzmann.Tests.Cli;

/// <summary><c>tbm anneal</c> and <c>tbm bm</c>, run as processes.</summary>
public class BoltzmannCommandsTests
{
    [Fact]
    public void Anneal_FindsTheMaxCutOfASmallGraph_AndSaysSoAgainstEnumeration()
    {
        // A 6-cycle with unit weights: the largest cut takes all six edges (sides alternating round the ring); the command
        // compares its energy with enumeration (--exact) and prints the cut and the state.
        using var work = new TempDirectory();
        File.WriteAllLines(work.File("ring.txt"), ["# a 6-cycle", "0 1 1", "1 2 1", "2 3 1", "3 4 1", "4 5 1", "5 0 1"]);
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, "anneal", "ring.txt", "--max-cut", "--exact", "--stages", "30", "--chains", "4");
        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        Assert.Contains("cut: 6 ", stdout);
        Assert.Contains(": annealing found it", stdout);
        Assert.True(stdout.Contains("state: +-+-+-") || stdout.Contains("state: -+-+-+"), stdout);
    }

    [Fact]
    public void Anneal_RefusesABadLine_NamingFileLineAndWhatCame()
    {
        using var work = new TempDirectory();
        File.WriteAllLines(work.File("bad.txt"), ["0 1 1", "2 2 0.5"]);
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, "anneal", "bad.txt");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Equal("error: instance 'bad.txt' line 2: expected 'i j J_ij' (two distinct indices ≥ 0 and a finite number) or 'i h_i', got '2 2 0.5'", stderr);
    }

    [Fact]
    public void Bm_PrintsTheExactLogLikelihood_AndWritesTheCheckpoint()
    {
        // A short run (40 epochs): the printed log-likelihood must rise from its start, and the checkpoint load back as a
        // BoltzmannMachine. (Completion needs the full 400 epochs; exit code 3 is allowed here.)
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, "bm", "--epochs", "40", "--print-every", "20", "-o", "out/bm.pt", "--tensorboard", "tb");
        Assert.True(code is 0 or 3, stderr);
        var start = double.Parse(stdout.Split("at the start ")[1].Split('\n')[0], System.Globalization.CultureInfo.InvariantCulture);
        var last = double.Parse(stdout.Split("epoch   40: log-likelihood ")[1].Split('\n')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(last > start + 1, $"from {start} to {last}");
        using var bm = Assert.IsType<TorchBoltzmann.Modules.BoltzmannMachine>(TorchBoltzmann.IO.Checkpoint.Load(work.File("out/bm.pt")));
        Assert.Equal(8, bm.n_visible);
        // --tensorboard: the printed epoch-40 log-likelihood is the logged one, and the weights have their histogram.
        var values = TorchBoltzmann.Logging.TensorBoardEventReader.ReadDirectory(Assert.Single(Directory.GetDirectories(work.File("tb"), "bm-seed5-*")));
        var logged = values.Single(v => v.Tag == "bm/log_likelihood" && v.Step == 40).Scalar;
        Assert.Equal(last, logged, 1e-4);
        Assert.Contains(values, v => v.Tag == "bm/weight" && v.Kind == TorchBoltzmann.Logging.TensorBoardValueKind.Histogram);
    }

    [Fact]
    public void Bm_StoppedBySigtermAndRunAgain_ContinuesFromItsCheckpoint_AndEndsAsTheUnbrokenRun()
    {
        // --checkpoint-every 1 with persistent clamped chains: SIGTERM once epoch 3 is printed ends the run with 130 and a
        // notice naming the kept checkpoint; the same command continues from it (the per-example chains, free chains,
        // optimizer and generator restored), deletes it when done, and saves weights and biases bit-identical to those of
        // an unbroken run of the same command (one thread each).
        using var work = new TempDirectory();
        string[] Args(string output) => ["bm", "--epochs", "60", "--print-every", "1", "--checkpoint-every", "1", "--clamped-chains", "persistent",
                                         "--burn-in", "1", "--free-chains", "50", "--threads", "1", "-o", output];
        var (code, _, stderr) = CliProcess.Run(work.Path, null, Args("a/bm.pt"));
        Assert.True(code is 0 or 3, stderr);
        using (var cli = CliProcess.Start(work.Path, null, Args("b/bm.pt")))
        {
            cli.WaitForLine(l => l.StartsWith("epoch    3: "), TimeSpan.FromMinutes(2));
            cli.Signal(CliProcess.SIGTERM);
            int stopped = cli.WaitForExit(TimeSpan.FromMinutes(2));
            Assert.True(stopped == 130, $"exit {stopped}\n{cli.Stdout}\n{cli.Stderr}");
            Assert.Contains("Interrupted by SIGTERM. Saved b/bm-train.ckpt (the run after epoch ", cli.Stderr);
        }
        var (again, stdout, stderr2) = CliProcess.Run(work.Path, null, Args("b/bm.pt"));
        Assert.True(again is 0 or 3, stderr2);
        Assert.Contains("Continuing from the checkpoint b/bm-train.ckpt", stdout);
        Assert.DoesNotContain("epoch    1: ", stdout);
        Assert.Contains("epoch   60: ", stdout);
        Assert.False(File.Exists(work.File("b/bm-train.ckpt")));
        using var a = Assert.IsType<TorchBoltzmann.Modules.BoltzmannMachine>(TorchBoltzmann.IO.Checkpoint.Load(work.File("a/bm.pt")));
        using var b = Assert.IsType<TorchBoltzmann.Modules.BoltzmannMachine>(TorchBoltzmann.IO.Checkpoint.Load(work.File("b/bm.pt")));
        TestUtil.AllClose(a.weight, b.weight, 0, "weights");
        TestUtil.AllClose(a.bias, b.bias, 0, "biases");
    }

    [Fact]
    public void Bm_RefusesAnUnknownPhaseWord_NamingTheFlag()
    {
        using var work = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, "bm", "--free", "gibbs");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Equal("error: --free: expected sampling or mean-field, got 'gibbs'", stderr);
    }
}

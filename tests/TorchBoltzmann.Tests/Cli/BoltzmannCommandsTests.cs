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
}

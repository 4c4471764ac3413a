using System.Globalization;
using TorchBoltzmann.Data;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.IO;
using TorchBoltzmann.Tests.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Cli;

/// <summary><c>tbm evaluate</c> run as a child process on the fake MNIST (<see cref="FakeMnist"/>, <c>--no-verify</c>).</summary>
public sealed class EvaluateCliTests(FakeMnist fake) : IClassFixture<FakeMnist>
{
    /// <summary>A random 784 × <paramref name="hidden"/> RBM (W ~ N(0, 0.05²), biases N(0, 0.5²)) saved as a checkpoint.</summary>
    private static string SaveRbm(TempDirectory work, int hidden, ulong seed)
    {
        using var g = new Generator(seed);
        using var rbm = boltzmann.RBM(784, hidden, generator: g);
        using (torch.no_grad())
        {
            rbm.weight.normal_(0, 0.05, g);
            rbm.visible_bias.normal_(0, 0.5, g);
            rbm.hidden_bias.normal_(0, 0.5, g);
        }
        return Checkpoint.Save(rbm, work.File($"rbm{hidden}.pt"));
    }

    private string[] Evaluate(string model, params string[] more) =>
        ["evaluate", model, "--data", fake.Path, "--no-verify", "--threads", "1", .. more];

    private static double Figure(string stdout, string prefix)
    {
        var line = Assert.Single(stdout.Split('\n'), l => l.StartsWith(prefix, StringComparison.Ordinal));
        var m = System.Text.RegularExpressions.Regex.Match(line, @"= (−?[0-9.]+) nats");
        Assert.True(m.Success, line);
        return double.Parse(m.Groups[1].Value.Replace("−", "-"), CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// A DBM checkpoint (784-6-4, random weights): AIS's interval holds the exact log Z, which the test computes by listing
    /// the 2¹⁰ hidden states (the visible units summed out: log Z = logsumexp_h [c₁ᵀh₁ + c₂ᵀh₂ + h₂ᵀW₂h₁ + Σᵢ softplus(bᵢ + (W₁ᵀh₁)ᵢ)]),
    /// and the printed test bound is B̄ − log Ẑ with B̄ the mean-field bound of the same digits binarised from the seed.
    /// </summary>
    [Fact]
    public void Dbm_PrintsLogZByAis_AroundTheExactValue_AndTheMeanFieldBound()
    {
        using var work = new TempDirectory();
        using var g = new Generator(3);
        using var dbm = boltzmann.DBM(new[] { 784, 6, 4 }, generator: g);
        using (torch.no_grad())
        {
            dbm.weight(1).normal_(0, 0.05, g);
            dbm.weight(2).normal_(0, 0.5, g);
            for (int l = 0; l < 3; l++) dbm.bias(l).normal_(0, 0.5, g);
        }
        string model = Checkpoint.Save(dbm, work.File("dbm.pt"));
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, Evaluate(model, "--limit", "120", "--seed", "5", "--runs", "32", "--betas", "300"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        var logZLine = Assert.Single(stdout.Split('\n'), l => l.StartsWith("log Z = ", StringComparison.Ordinal));
        var m = System.Text.RegularExpressions.Regex.Match(logZLine, @"log Z = (−?[0-9.]+) by AIS \(32 runs, 300 steps; log\(Ẑ ± 3σ̂\) = \[(−?[0-9.]+|−∞), (−?[0-9.]+)\]");
        Assert.True(m.Success, logZLine);
        static double N(string x) => x == "−∞" ? double.NegativeInfinity : double.Parse(x.Replace("−", "-"), CultureInfo.InvariantCulture);
        double logZ = N(m.Groups[1].Value), lower = N(m.Groups[2].Value), upper = N(m.Groups[3].Value);

        using var h1 = ExactEnumeration.all_binary_states(6, ScalarType.Float64);
        using var h2 = ExactEnumeration.all_binary_states(4, ScalarType.Float64);
        using var w1 = dbm.weight(1).detach().to(ScalarType.Float64);
        using var w2 = dbm.weight(2).detach().to(ScalarType.Float64);
        using var b = dbm.bias(0).detach().to(ScalarType.Float64);
        using var c1 = dbm.bias(1).detach().to(ScalarType.Float64);
        using var c2 = dbm.bias(2).detach().to(ScalarType.Float64);
        using var visible = nn.functional.softplus(h1.matmul(w1).add(b)).sum(1);               // (64): Σᵢ softplus(bᵢ + (W₁ᵀh₁)ᵢ)
        using var lower1 = h1.matmul(c1).add(visible);                                          // (64)
        using var pair = h2.matmul(w2).matmul(h1.t());                                          // (16, 64): h₂ᵀW₂h₁
        using var terms = pair.add(h2.matmul(c2).unsqueeze(1)).add(lower1.unsqueeze(0));
        double exact = terms.flatten().logsumexp(0).item<double>();
        Assert.True(lower - 0.01 <= exact && exact <= upper + 0.01, $"exact log Z {exact} outside AIS's interval [{lower}, {upper}] (log Ẑ {logZ})");

        using var gen = new Generator(5);
        using var trainSet = MnistDataset.Load(fake.Path, MnistSplit.Train, 120);
        using var testSet = MnistDataset.Load(fake.Path, MnistSplit.Test, 120);
        using var train = Binarize.Stochastic(trainSet.Images, gen);
        using var test = Binarize.Stochastic(testSet.Images, gen);
        Assert.Equal(DbmLikelihood.lower_bound(dbm, test, 0) - logZ, Figure(stdout, "test :"), 1);
        Assert.Contains("variational (mean-field) lower bound on average log p(v)", stdout);
    }

    [Fact]
    public void Rbm_WithAnEnumerableLayer_PrintsTheExactLogLikelihood_OfTheDigitsBinarisedFromTheSeed()
    {
        // 784 × 8: log Z exact over the 2⁸ hidden states. The test recomputes the figure from the same data: the first 150
        // training and test digits, binarised stochastically from Generator(seed 5), train first (the fake digits are 0/1,
        // so here the draw cannot change them; the order still matters for real MNIST).
        using var work = new TempDirectory();
        string model = SaveRbm(work, 8, 1);
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, Evaluate(model, "--limit", "150", "--seed", "5"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("log Z = ", stdout);
        Assert.Contains("(exact: one layer enumerated)", stdout);
        using var rbm = Checkpoint.Load<TorchBoltzmann.Modules.RBM>(model);
        using var gen = new Generator(5);
        using var trainSet = MnistDataset.Load(fake.Path, MnistSplit.Train, 150);
        using var testSet = MnistDataset.Load(fake.Path, MnistSplit.Test, 150);
        using var train = Binarize.Stochastic(trainSet.Images, gen);
        using var test = Binarize.Stochastic(testSet.Images, gen);
        Assert.Equal(ExactEnumeration.log_likelihood(rbm, train), Figure(stdout, "train:"), 2);
        Assert.Equal(ExactEnumeration.log_likelihood(rbm, test), Figure(stdout, "test :"), 2);
        Assert.Contains("150 digits", stdout);
    }

    /// <summary>
    /// The recipe-choosing round trip: <c>train-rbm --binarize stochastic --validation N</c> trains on all but the last N
    /// of the digits it binarised, and <c>evaluate --validation N</c> with the same seed reports those N apart, its figure the
    /// exact log-likelihood of the rows train-rbm held out.
    /// </summary>
    [Fact]
    public void TrainRbmValidationSplit_IsTheSplitEvaluateReports()
    {
        using var work = new TempDirectory();
        string model = work.File("rbm.pt");
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, "train-rbm", "--data", fake.Path, "--no-verify", "--limit", "300", "--validation", "100",
            "--binarize", "stochastic", "--binarize-seed", "7", "--hidden", "8", "--epochs", "1", "--batch", "50", "--lr-decay", "0.9", "--threads", "1", "-o", model);
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("on 200 digits (binarised stochastically, seed 7; held out: the last 100 training digits)", stdout);
        Assert.Contains("lr 0.1 × 0.9^epoch", stdout);
        using (var sidecar = System.Text.Json.JsonDocument.Parse(File.ReadAllText(work.File("rbm.json"))))
        {
            var training = sidecar.RootElement.GetProperty("training");
            Assert.Equal("stochastic", training.GetProperty("binarize").GetString());
            Assert.Equal(100, training.GetProperty("validation").GetInt32());
        }
        (code, stdout, stderr) = CliProcess.Run(work.Path, null, Evaluate(model, "--limit", "300", "--validation", "100", "--seed", "7"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        using var rbm = Checkpoint.Load<TorchBoltzmann.Modules.RBM>(model);
        using var gen = new Generator(7);
        using var trainSet = MnistDataset.Load(fake.Path, MnistSplit.Train, 300);
        using var all = Binarize.Stochastic(trainSet.Images, gen);
        using var held = all.narrow(0, 200, 100);
        using var train = all.narrow(0, 0, 200);
        Assert.Equal(ExactEnumeration.log_likelihood(rbm, held), Figure(stdout, "valid:"), 2);
        Assert.Equal(ExactEnumeration.log_likelihood(rbm, train), Figure(stdout, "train:"), 2);
        Assert.Contains("100 digits", Assert.Single(stdout.Split('\n'), l => l.StartsWith("valid:", StringComparison.Ordinal)));
    }

    [Fact]
    public void Rbm_TooLargeToEnumerate_RunsAis_AndPrintsTheIntervalAroundEachFigure_AndRaiseOnRequest()
    {
        using var work = new TempDirectory();
        string model = SaveRbm(work, 30, 2);
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, Evaluate(model, "--limit", "100", "--runs", "8", "--betas", "60", "--raise"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("by AIS (8 runs, 60 steps; log(Ẑ ± 3σ̂) = [", stdout);
        foreach (var prefix in new[] { "train:", "test :" })
        {
            var line = Assert.Single(stdout.Split('\n'), l => l.StartsWith(prefix, StringComparison.Ordinal));
            var m = System.Text.RegularExpressions.Regex.Match(line, @"= (−?[0-9.]+) nats \(interval \[(−?[0-9.]+|−∞), (−?[0-9.]+|∞)\]");
            Assert.True(m.Success, line);
            double Parse(string s) => s == "∞" ? double.PositiveInfinity : s == "−∞" ? double.NegativeInfinity
                                    : double.Parse(s.Replace("−", "-"), CultureInfo.InvariantCulture);
            double mid = Parse(m.Groups[1].Value), lo = Parse(m.Groups[2].Value), hi = Parse(m.Groups[3].Value);
            Assert.True(lo <= mid && mid <= hi, line);
        }
        Assert.Contains("100 digits", stdout);
        Assert.True(double.IsFinite(Figure(stdout, "test, conservative (RAISE, 60 steps")), stdout);
        Assert.Contains("a stochastic lower bound", stdout);
    }

    [Fact]
    public void Dbn_PrintsTheVariationalLowerBound()
    {
        using var work = new TempDirectory();
        using var g = new Generator(3);
        using var dbn = boltzmann.DBN(new[] { 784, 12, 6 }, generator: g);
        string model = Checkpoint.Save(dbn, work.File("dbn.pt"));
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, Evaluate(model, "--limit", "50", "--samples", "2"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("log Z of the top RBM = ", stdout);
        Assert.Contains("train: variational lower bound on average log p(v) = ", stdout);
        Assert.Contains("test : variational lower bound on average log p(v) = ", stdout);
    }

    /// <summary>
    /// A DBM run's checkpoint (784-6-4, one epoch on 30 random binary rows, run checkpoint written by the trainer) is
    /// measured as the run stood: the report names the run and its epoch, and its log Z and bounds are the figures that
    /// evaluate prints for the same weights saved as a model checkpoint (same seed, so the same digits and AIS draws).
    /// A checkpoint of a run that records no model is one error line naming the file.
    /// </summary>
    [Fact]
    public void DbmRunCheckpoint_IsMeasuredAsTheRunStood_WithTheFiguresOfItsWeights()
    {
        using var work = new TempDirectory();
        using var g = new Generator(3);
        using var dbm = boltzmann.DBM(new[] { 784, 6, 4 }, generator: g);
        using var rows = torch.rand(30, 784, generator: g).lt_(0.2).to_type(ScalarType.Float32);
        var run = work.File("dbm-train.ckpt");
        using (var trainer = new TorchBoltzmann.Training.DbmTrainer(dbm, new TorchBoltzmann.Training.DbmTrainingOptions { Epochs = 1, BatchSize = 10, Chains = 10, GibbsSteps = 1, Seed = 4 }) { CheckpointPath = run })
            trainer.Fit(rows);
        string model = Checkpoint.Save(dbm, work.File("dbm.pt"));
        string[] flags = ["--limit", "60", "--seed", "5", "--runs", "8", "--betas", "50"];
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, Evaluate(run, flags));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains($"from the dbm run checkpoint {run} (finished after 1 epoch) on", stdout);
        var (code2, stdout2, stderr2) = CliProcess.Run(work.Path, null, Evaluate(model, flags));
        Assert.True(code2 == 0, $"exit {code2}\n{stdout2}\n{stderr2}");
        foreach (var prefix in new[] { "train:", "test :" })
            Assert.Equal(Figure(stdout2, prefix), Figure(stdout, prefix));
        string LogZ(string text) => Assert.Single(text.Split('\n'), l => l.StartsWith("log Z = ", StringComparison.Ordinal)).Split(" (")[0];
        Assert.Equal(LogZ(stdout2), LogZ(stdout));

        var other = work.File("pretraining.ckpt");
        using (var linear = nn.Linear(2, 2)) TorchBoltzmann.Training.RunCheckpoint.Save(other, "pretraining", new Dictionary<string, string>(), [new TorchBoltzmann.Training.ModuleState("model", linear)]);
        var (code3, _, stderr3) = CliProcess.Run(work.Path, null, Evaluate(other));
        Assert.Equal(1, code3);
        Assert.StartsWith("error: ", stderr3);
        Assert.DoesNotContain('\n', stderr3.TrimEnd());
        Assert.Contains($"a pretraining run checkpoint records no model to rebuild", stderr3);
    }

    [Theory]
    [InlineData("--runs must be ≥ 2, got 1", "--runs", "1")]
    [InlineData("--betas must be ≥ 3, got 2", "--betas", "2")]
    [InlineData("--limit must be ≥ 1, got 0", "--limit", "0")]
    [InlineData("--samples must be ≥ 1, got 0", "--samples", "0")]
    [InlineData("--validation must be ≥ 0, got -1", "--validation", "-1")]
    [InlineData("--validation must leave training digits: expected at most 49 of the 50 loaded, got 50", "--limit", "50", "--validation", "50")]
    [InlineData("no such checkpoint", "{missing}")]
    [InlineData("expected a model of 784 visible units (28×28 MNIST), got 10", "{small}")]
    public void BadInput_IsOneErrorLine_NamingTheOptionOrFile(string expected, params string[] args)
    {
        using var work = new TempDirectory();
        string model = SaveRbm(work, 4, 4);
        using (var small = boltzmann.RBM(10, 3)) Checkpoint.Save(small, work.File("small.pt"));
        string target = args[0] == "{missing}" ? work.File("missing.pt") : args[0] == "{small}" ? work.File("small.pt") : model;
        var rest = args[0].StartsWith('{') ? args[1..] : args;
        var (code, stdout, stderr) = CliProcess.Run(work.Path, null, Evaluate(target, rest));
        Assert.Equal(1, code);
        Assert.DoesNotContain('\n', stderr);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(expected, stderr);
        Assert.DoesNotContain("Exception", stderr);
    }
}

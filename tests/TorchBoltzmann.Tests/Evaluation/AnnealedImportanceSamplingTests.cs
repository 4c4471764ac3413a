using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Units;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Evaluation;

public class AnnealedImportanceSamplingTests(ITestOutputHelper output)
{
    /// <summary>Rows drawn from the model by Gibbs sampling (200 steps of burn-in).</summary>
    internal static Tensor ModelSamples(RBM rbm, int n, ulong seed)
    {
        using var g = new Generator(seed);
        return rbm.generate(n, burn_in: 200, generator: g);
    }

    [Fact]
    public void Interval_CoversExactLogZ_InAtLeast9Of10Seeds_AndRaiseStaysBelowTheExactLikelihood_InTheSameCases()
    {
        // Ten 24×20 RBMs (W, b, c ~ N(0, 1): strongly multimodal), log Z exact over the 2²⁰ hidden states. AIS: 100 runs,
        // 500 steps in the paper's proportions, base rate from N = 300 Gibbs samples of the model. Rule: the exact log Z
        // lies in [log(Ẑ − 3σ̂), log(Ẑ + 3σ̂)] for at least 9 of the 10 seeds.
        // RAISE on those 300 rows, same schedule, in the seeds whose interval covered log Z: with independent chains
        // E[Π_n ŵ(v_n)] = Π_n p_ann(v_n), so by Markov P(mean log ŵ > mean log p_ann + t) ≤ e^{−Nt}; t = ln(1000)/N makes
        // that 0.001. The rows come from the model, so mean log p − mean log p_ann fluctuates around KL(p ‖ p_ann) ≥ 0.
        // Rules: RAISE's mean ≤ the exact mean log p(v) + t in each such seed, and strictly below it pooled over them.
        var schedule = BetaSchedule.Scaled(500);
        const int n = 300;
        double t = Math.Log(1000) / n;
        int covered = 0;
        double pooledGap = 0;
        var lines = new List<string>();
        for (ulong seed = 1; seed <= 10; seed++)
        {
            using var rbm = TestUtil.RandomRbm(24, 20, seed, std: 1.0);
            double exact = ExactEnumeration.log_partition(rbm);
            using var data = ModelSamples(rbm, n, seed);
            using var bA = AnnealedImportanceSampling.base_rate_bias(rbm.visible_units, data);
            using var g = new Generator(100 + seed);
            var est = AnnealedImportanceSampling.log_partition(rbm, bA, new AisOptions { Runs = 100, Schedule = schedule }, g);
            Assert.Equal(100, est.Runs);
            Assert.Equal(500, est.Steps);
            bool inside = est.LogZLower <= exact && exact <= est.LogZUpper;
            var raise = ReverseAnnealing.log_likelihood(rbm, data, bA, new AisOptions { Schedule = schedule }, g);
            double exactLl = ExactEnumeration.log_likelihood(rbm, data, exact);
            lines.Add($"seed {seed}: log Z {exact:F4}, AIS {est.LogZ:F4} in [{est.LogZLower:F4}, {est.LogZUpper:F4}]; mean log p {exactLl:F4}, RAISE {raise.MeanLogLikelihood:F4}");
            output.WriteLine(lines[^1]);
            if (!inside) continue;
            covered++;
            pooledGap += raise.MeanLogLikelihood - exactLl;
            Assert.True(raise.MeanLogLikelihood <= exactLl + t, $"RAISE above the exact log-likelihood by more than {t:F4}: {lines[^1]}");
        }
        Assert.True(covered >= 9, $"exact log Z inside AIS's interval for {covered} of 10 seeds:\n{string.Join("\n", lines)}");
        Assert.True(pooledGap < 0, $"RAISE's mean not below the exact mean log p(v) pooled over the covered seeds (sum of gaps {pooledGap:F4}):\n{string.Join("\n", lines)}");
    }

    [Fact]
    public void Interval_CoversExactLogZ_ForALabelledVisibleLayer()
    {
        // One-of-K units: 10 binary units and a 3-class softmax group, 16 hidden units; log Z exact over the 3·2¹⁰ valid
        // visible states. 100 runs, 1,000 steps, uniform base (no data). Fixed seed; rule: exact inside the interval.
        using var g0 = new Generator(7);
        using var rbm = boltzmann.RBM(13, 16, visible: new LabelledBernoulliUnits(3), dtype: ScalarType.Float64, generator: g0);
        using (torch.no_grad())
            foreach (var p in rbm.parameters()) p.normal_(0, 0.8, g0);
        double exact = ExactEnumeration.log_partition(rbm);
        using var g = new Generator(8);
        var est = AnnealedImportanceSampling.log_partition(rbm, null, new AisOptions { Schedule = BetaSchedule.Scaled(1000) }, g);
        Assert.InRange(exact, est.LogZLower, est.LogZUpper);
        Assert.True(est.LogZUpper - est.LogZLower < 0.5, $"interval [{est.LogZLower}, {est.LogZUpper}] too wide to mean anything");
    }

    [Fact]
    public void Estimate_IsExact_WhenTheBaseIsTheModel()
    {
        // W = 0 and b_A = b: every f_k is the same function up to the hidden units' β-dependent constant, so every run
        // has the same weight, σ̂ = 0, and log Ẑ = log Z = Σ softplus(b) + Σ softplus(c) exactly (1e-9).
        using var rbm = TestUtil.RandomRbm(7, 5, 3);
        using (torch.no_grad()) rbm.weight.zero_();
        using var g = new Generator(1);
        using var bA = rbm.visible_bias.detach().clone();
        var est = AnnealedImportanceSampling.log_partition(rbm, bA, new AisOptions { Runs = 10, Schedule = BetaSchedule.Linear(20) }, g);
        double exact = ExactEnumeration.log_partition(rbm);
        Assert.Equal(exact, est.LogZ, 9);
        Assert.Equal(exact, est.LogZLower, 9);
        Assert.Equal(exact, est.LogZUpper, 9);
        Assert.Equal(10, est.EffectiveSampleSize, 9);
    }

    [Fact]
    public void Estimate_IsReproducibleFromTheSeed_AndDiffersForAnotherSeed()
    {
        using var rbm = TestUtil.RandomRbm(8, 6, 4, dtype: ScalarType.Float32);
        var options = new AisOptions { Runs = 20, Schedule = BetaSchedule.Linear(50) };
        double Run(ulong seed)
        {
            using var g = new Generator(seed);
            return AnnealedImportanceSampling.log_partition(rbm, null, options, g).LogZ;
        }
        Assert.Equal(Run(5), Run(5));
        Assert.NotEqual(Run(5), Run(6));
    }

    [Fact]
    public void FromLogWeights_IsTheMeanAndStandardErrorOfTheWeights_WithoutOverflow()
    {
        // Direct formula on small weights: Ẑ = Z_A · mean(w), σ̂ = Z_A · std(w) / √M (divisor M − 1).
        double[] l = [-0.5, 0.1, 0.3, -1.2, 0.7];
        var w = l.Select(Math.Exp).ToArray();
        double mean = w.Average(), sd = Math.Sqrt(w.Sum(x => (x - mean) * (x - mean)) / 4), se = sd / Math.Sqrt(5);
        var est = PartitionFunctionEstimate.FromLogWeights(l, 2.0, 7);
        Assert.Equal(2.0 + Math.Log(mean), est.LogZ, 12);
        Assert.Equal(2.0 + Math.Log(mean + 3 * se), est.LogZUpper, 12);
        Assert.Equal(2.0 + Math.Log(mean - 3 * se), est.LogZLower, 12);
        Assert.Equal(w.Sum() * w.Sum() / w.Sum(x => x * x), est.EffectiveSampleSize, 12);
        // Weights of e^1000 would overflow a direct computation; in the log domain everything shifts by 1000.
        var shifted = PartitionFunctionEstimate.FromLogWeights(l.Select(x => x + 1000).ToArray(), 2.0, 7);
        Assert.Equal(est.LogZ + 1000, shifted.LogZ, 9);
        Assert.Equal(est.LogZUpper + 1000, shifted.LogZUpper, 9);
        // One dominant weight: Ẑ − 3σ̂ < 0, so the lower end is −∞.
        var spread = PartitionFunctionEstimate.FromLogWeights([0, -30, -30, -30], 0, 1);
        Assert.Equal(double.NegativeInfinity, spread.LogZLower);
        Assert.Throws<ArgumentException>(() => PartitionFunctionEstimate.FromLogWeights([1.0], 0, 1));
        Assert.Throws<ArgumentException>(() => PartitionFunctionEstimate.FromLogWeights([1.0, double.NaN], 0, 1));
    }

    [Fact]
    public void BaseRateBias_IsTheLogOddsOfTheSmoothedMeans()
    {
        // Column means 0, 0.5, 1 with λ = 0.05: p = (m + λ)/(1 + λ), capped at 1 − λ/(1 + λ).
        using var data = torch.tensor(new double[,] { { 0, 0, 1 }, { 0, 1, 1 } });
        using var b = AnnealedImportanceSampling.base_rate_bias(UnitType.Bernoulli, data);
        double Logit(double p) => Math.Log(p / (1 - p));
        var got = TestUtil.ToArray(b);
        Assert.Equal(Logit(0.05 / 1.05), got[0], 12);
        Assert.Equal(Logit(0.55 / 1.05), got[1], 12);
        Assert.Equal(Logit(1 - 0.05 / 1.05), got[2], 12);
        // A label group: log of the smoothed class frequencies.
        using var labelled = torch.tensor(new double[,] { { 1, 1, 0, 0 }, { 0, 0, 1, 0 }, { 1, 1, 0, 0 }, { 1, 0, 0, 1 } });
        using var bl = AnnealedImportanceSampling.base_rate_bias(new LabelledBernoulliUnits(3), labelled);
        var gl = TestUtil.ToArray(bl);
        Assert.Equal(Math.Log((0.5 + 0.05) / 1.15), gl[1], 12);
        Assert.Equal(Math.Log((0.25 + 0.05) / 1.15), gl[3], 12);
    }

    [Fact]
    public void Schedules_HaveThePapersSegments_AndRejectInvalidValues()
    {
        var paper = BetaSchedule.SalakhutdinovMurray2008;
        Assert.Equal(14500, paper.steps);
        Assert.Equal(0.0, paper.betas[0]);
        Assert.Equal(0.5, paper.betas[500], 12);
        Assert.Equal(0.9, paper.betas[4500], 12);
        Assert.Equal(1.0, paper.betas[^1]);
        for (int i = 1; i < paper.betas.Count; i++) Assert.True(paper.betas[i] > paper.betas[i - 1]);
        var scaled = BetaSchedule.Scaled(145);
        Assert.Equal(145, scaled.steps);
        Assert.Equal(0.5, scaled.betas[5], 12);
        Assert.Equal(0.9, scaled.betas[45], 12);
        Assert.Equal(3, BetaSchedule.Scaled(3).steps);
        Assert.Throws<ArgumentOutOfRangeException>(() => BetaSchedule.Scaled(2));
        Assert.Throws<ArgumentException>(() => BetaSchedule.From([0, 0.5, 0.5, 1]));
        Assert.Throws<ArgumentException>(() => BetaSchedule.From([0.1, 1]));
    }

    [Fact]
    public void LogPartition_RejectsBadOptionsAndBases_NamingThem()
    {
        using var rbm = TestUtil.RandomRbm(5, 4, 1);
        var e = Assert.Throws<ArgumentException>(() => AnnealedImportanceSampling.log_partition(rbm, null, new AisOptions { Runs = 1 }));
        Assert.Contains("Runs", e.Message);
        using var wrong = torch.zeros(6, ScalarType.Float64);
        e = Assert.Throws<ArgumentException>(() => AnnealedImportanceSampling.log_partition(rbm, wrong));
        Assert.Contains("base_visible_bias", e.Message);
    }
}

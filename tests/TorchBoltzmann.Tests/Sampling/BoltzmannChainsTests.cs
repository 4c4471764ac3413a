using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Sampling;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Tests.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Sampling;

/// <summary><see cref="GibbsChains"/> over a general <see cref="BoltzmannMachine"/>: every scan against exact enumeration.</summary>
public class BoltzmannChainsTests
{
    /// <summary>Mean state and mean xxᵀ over <paramref name="sweeps"/> sweeps of every chain after <paramref name="burnIn"/>.</summary>
    private static (Tensor mean, Tensor second) LongRun(GibbsChains chains, int burnIn, int sweeps, long rows = -1)
    {
        for (int s = 0; s < burnIn; s++) chains.step();
        int n = chains.width;
        var sum = torch.zeros(n, ScalarType.Float64);
        var outer = torch.zeros(n, n, ScalarType.Float64);
        long count = 0;
        for (int s = 0; s < sweeps; s++)
        {
            chains.step();
            using var x = chains.states.narrow(0, 0, rows < 0 ? chains.states.shape[0] : rows);
            using var xt = x.t();
            using var xx = xt.mm(x);
            using var colSum = x.sum(new long[] { 0 });
            sum.add_(colSum);
            outer.add_(xx);
            count += x.shape[0];
        }
        return (sum.div_(count), outer.div_(count));
    }

    private static void AssertMatches(BoltzmannMachine bm, double beta, Tensor mean, Tensor second, double tol, string what)
    {
        using var exactMean = ExactEnumeration.unit_means(bm, beta);
        using var exactSecond = ExactEnumeration.pairwise_correlations(bm, beta);
        TestUtil.AllClose(exactMean, mean, tol, $"{what}: unit means");
        TestUtil.AllClose(exactSecond, second, tol, $"{what}: pairwise correlations ⟨x_i x_j⟩");
    }

    [Theory]
    [InlineData(GibbsScan.Systematic, 1.0)]
    [InlineData(GibbsScan.Systematic, 2.0)]
    [InlineData(GibbsScan.Random, 1.0)]
    [InlineData(GibbsScan.Blocked, 0.7)]
    public void LongRunMarginalsAndCorrelations_OfALateralMachine_MatchEnumeration(GibbsScan scan, double temperature)
    {
        // 11 units, fully connected (visible–visible, hidden–hidden and visible–hidden), weights N(0, 0.6²): 1,000 chains,
        // 30 burn-in sweeps, 150 sweeps averaged (150,000 correlated samples). Tolerance 0.02 absolute on every mean and
        // every ⟨x_i x_j⟩; the Monte Carlo standard error is about 0.003 here, while changing T from 1 to 2 moves the
        // exact statistics by up to ~0.15, which the test would see.
        using var bm = BmTestUtil.Random(6, 5, 21, std: 0.6);
        using var g = new Generator(100 + (ulong)scan);
        using var chains = new GibbsChains(bm, g, temperature, scan);
        chains.start_random(1000);
        var (mean, second) = LongRun(chains, 30, 150);
        using (mean) using (second) AssertMatches(bm, 1 / temperature, mean, second, 0.02, $"{scan} at T = {temperature}");
    }

    [Fact]
    public void BlockedSweeps_OfALayeredSpinMachine_AndPerChainTemperatures_MatchEnumeration()
    {
        // A layered spin machine (4-4-3, two blocks) and two temperatures in one run: chains 0..499 at T = 1, 500..999 at
        // T = 2.5 (temperatures tensor); each half's statistics against enumeration at its own β, tolerance 0.03.
        using var bm = BmTestUtil.Random(4, 7, 22, std: 0.6, connectivity: Connectivity.Layered, spins: true, hiddenLayers: [4, 3]);
        using var g = new Generator(23);
        using var chains = new GibbsChains(bm, g, scan: GibbsScan.Blocked);
        chains.start_random(1000);
        using var temps = torch.cat(new[] { torch.ones(500, ScalarType.Float64), torch.full(500, 2.5, ScalarType.Float64) }, 0);
        chains.temperatures = temps;
        for (int s = 0; s < 30; s++) chains.step();
        var sums = new[] { torch.zeros(11, ScalarType.Float64), torch.zeros(11, ScalarType.Float64) };
        var outers = new[] { torch.zeros(11, 11, ScalarType.Float64), torch.zeros(11, 11, ScalarType.Float64) };
        for (int s = 0; s < 200; s++)
        {
            chains.step();
            for (int half = 0; half < 2; half++)
            {
                using var x = chains.states.narrow(0, half * 500, 500);
                using var xx = x.t().mm(x);
                using var cs = x.sum(new long[] { 0 });
                sums[half].add_(cs);
                outers[half].add_(xx);
            }
        }
        for (int half = 0; half < 2; half++)
        {
            sums[half].div_(500 * 200);
            outers[half].div_(500 * 200);
            AssertMatches(bm, half == 0 ? 1 : 1 / 2.5, sums[half], outers[half], 0.03, $"half {half}");
            sums[half].Dispose(); outers[half].Dispose();
        }
    }

    [Fact]
    public void ClampedVisibleUnits_StayFixed_AndTheHiddenUnitsSampleTheirExactConditional()
    {
        // Visible units clamped to v = (1, 0, 1, 1): they never change, and the hidden means match
        // E[h | v] from the joint distribution restricted to that v (tolerance 0.02; 1,000 chains × 150 sweeps).
        using var bm = BmTestUtil.Random(4, 5, 24, std: 0.7);
        using var g = new Generator(25);
        using var chains = new GibbsChains(bm, g, scan: GibbsScan.Systematic);
        using var v = torch.tensor(new double[] { 1, 0, 1, 1 });
        chains.clamp(0, v);
        chains.start_random(1000);
        var (mean, second) = LongRun(chains, 20, 150);
        using (mean) using (second)
        {
            using var vis = chains.visible;
            using var expectedVis = v.unsqueeze(0).expand(1000, -1);
            TestUtil.AllClose(expectedVis, vis, 0, "clamped units");
            using var states = ExactEnumeration.joint_states(bm);
            using var p = ExactEnumeration.joint_distribution(bm);
            using var match = states.narrow(1, 0, 4).eq(v.unsqueeze(0)).all(1).to_type(ScalarType.Float64);
            using var pc = p.mul(match);
            using var pcn = pc.div(pc.sum());
            using var exact = pcn.matmul(states);
            TestUtil.AllClose(exact.narrow(0, 4, 5), mean.narrow(0, 4, 5), 0.02, "E[h | v]");
        }
    }

    [Fact]
    public void SaveAndLoad_ContinueTheChainsExactly()
    {
        using var dir = new TempDirectory();
        using var bm = BmTestUtil.Random(3, 3, 26);
        using var g1 = new Generator(27);
        using var a = new GibbsChains(bm, g1, 1.3, GibbsScan.Random);
        a.start_random(8);
        a.run(3);
        string path = Path.Combine(dir.Path, "chains.bin");
        a.save(path);
        a.run(4);
        using var g2 = new Generator(0);
        using var b = new GibbsChains(bm, g2, 1.0, GibbsScan.Random);
        b.load(path);
        Assert.Equal(1.3, b.temperature);
        b.run(4);
        TestUtil.AllClose(a.states, b.states, 0, "states after the same four sweeps");
        // The states are valid spins/bits, and the visible view is the first n_visible columns.
        using var vis = a.states.narrow(1, 0, 3);
        TestUtil.AllClose(vis, a.visible, 0, "visible view");
        Assert.Throws<InvalidOperationException>(() => a.hidden_mean());
        var e = Assert.Throws<ArgumentException>(() => a.step(sample_visible: false));
        Assert.StartsWith("step: for a BoltzmannMachine every update draws", e.Message);
    }
}

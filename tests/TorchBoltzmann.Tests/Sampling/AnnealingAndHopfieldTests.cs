using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Sampling;
using TorchBoltzmann.Tests.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Sampling;

public class AnnealingAndHopfieldTests
{
    /// <summary>A ±J spin glass on all pairs of n spins (Sherrington–Kirkpatrick style), no fields.</summary>
    private static BoltzmannMachine SpinGlass(int n, ulong seed)
    {
        using var g = new Generator(seed);
        var bm = boltzmann.BM(n, 0, spins: true, dtype: ScalarType.Float64);
        using var signs = torch.rand(n, n, ScalarType.Float64, generator: g).lt(0.5).to_type(ScalarType.Float64).mul(2).sub(1);
        bm.set_parameters(signs, torch.zeros(n, ScalarType.Float64));
        return bm;
    }

    [Theory]
    [InlineData(1UL)]
    [InlineData(2UL)]
    [InlineData(3UL)]
    public void Annealing_FindsTheGroundStateEnergyOfASpinGlass_FoundByEnumeration(ulong seed)
    {
        // 16 spins, ±1 couplings on all pairs (2¹⁶ states enumerated for the oracle); geometric schedule from T = 5 to
        // 0.05 in 80 stages, 2 sweeps each, 32 chains: the best energy equals the ground-state energy (to 1e-9), and
        // the reported state has that energy.
        using var bm = SpinGlass(16, seed);
        var (ground, e0) = ExactEnumeration.ground_state(bm);
        ground.Dispose();
        using var g = new Generator(seed + 10);
        using var result = SimulatedAnnealing.run(bm, AnnealingSchedule.Geometric(5, 0.05, 80), n_chains: 32, sweeps_per_temperature: 2, generator: g);
        Assert.Equal(e0, result.energy, 9);
        using var e = bm.energy(result.state);
        Assert.Equal(result.energy, e.ToDouble(), 9);
        Assert.Equal(160, result.sweeps);
    }

    [Fact]
    public void Annealing_SolvesMaxCut_AsTheGroundStateOfAnAntiferromagnet()
    {
        // Max-cut of a random weighted graph on 14 nodes: cut(s) = Σ_{i<j} w_ij (1 − s_i s_j)/2, so maximising the cut is
        // minimising E(s) = −½ sᵀ(−w)s. The annealed cut equals the largest cut over all 2¹⁴ partitions (by loops).
        const int n = 14;
        using var g = new Generator(31);
        using var raw = torch.rand(n, n, ScalarType.Float64, generator: g);
        using var keep = torch.rand(n, n, ScalarType.Float64, generator: g).lt(0.4).to_type(ScalarType.Float64);
        using var upper = raw.mul(keep).triu(1);
        using var w = upper.add(upper.t());
        using var bm = boltzmann.BM(n, 0, spins: true, dtype: ScalarType.Float64);
        using var negW = w.neg();
        bm.set_parameters(negW, torch.zeros(n, ScalarType.Float64));
        var wm = BmTestUtil.Matrix(w);
        double Cut(int[] s) { double c = 0; for (int i = 0; i < n; i++) for (int j = i + 1; j < n; j++) if (s[i] != s[j]) c += wm[i, j]; return c; }
        double best = 0;
        for (int mask = 0; mask < 1 << n; mask++)
            best = Math.Max(best, Cut(Enumerable.Range(0, n).Select(i => (mask >> i) & 1).ToArray()));
        using var result = SimulatedAnnealing.run(bm, AnnealingSchedule.Linear(3, 0.02, 60), n_chains: 16, sweeps_per_temperature: 2,
                                                  scan: GibbsScan.Random, generator: g);
        var s = TestUtil.ToArray(result.state).Select(x => x > 0 ? 1 : 0).ToArray();
        Assert.Equal(best, Cut(s), 9);
    }

    [Fact]
    public void Schedules_HaveTheirFormulas_AndRefuseBadTemperatures()
    {
        var geo = AnnealingSchedule.Geometric(8, 1, 4).Temperatures;
        Assert.Equal(new[] { 8.0, 4.0, 2.0, 1.0 }, geo.Select(t => Math.Round(t, 12)));
        Assert.Equal(new[] { 3.0, 2.0, 1.0 }, AnnealingSchedule.Linear(3, 1, 3).Temperatures);
        Assert.Equal(new[] { 2.0 }, AnnealingSchedule.Linear(2, 1, 1).Temperatures);
        var e = Assert.Throws<ArgumentException>(() => AnnealingSchedule.Given([1, 0.5, 0]));
        Assert.StartsWith("temperatures: expected finite T > 0, got 0 at stage 2.", e.Message);
        var e2 = Assert.Throws<ArgumentOutOfRangeException>(() => AnnealingSchedule.Geometric(1, 0, 5));
        Assert.StartsWith("end: expected a finite T > 0.", e2.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AsynchronousZeroTemperatureUpdates_NeverRaiseTheEnergy(bool spins)
    {
        // Random machine with hidden units and lateral connections, 64 random starts, 5 systematic sweeps of single-unit
        // deterministic updates: after every update each chain's energy is ≤ its energy before (float64, slack 1e-12),
        // and at least one update lowers some energy (the property is not vacuous).
        using var bm = BmTestUtil.Random(6, 4, 41, std: 1.0, spins: spins);
        using var g = new Generator(42);
        using var x = bm.units.initial_states(64, 10, ScalarType.Float64, generator: g);
        var before = TestUtil.ToArray(bm.energy(x));
        double lowered = 0;
        for (int sweep = 0; sweep < 5; sweep++)
            for (int i = 0; i < 10; i++)
            {
                Hopfield.update_(bm, x, i);
                var after = TestUtil.ToArray(bm.energy(x));
                for (int c = 0; c < after.Length; c++)
                {
                    Assert.True(after[c] <= before[c] + 1e-12, $"chain {c}, unit {i}: energy rose from {before[c]} to {after[c]}");
                    lowered += before[c] - after[c];
                }
                before = after;
            }
        Assert.True(lowered > 1);
    }

    [Fact]
    public void HebbianStorage_RecallsStoredPatternsFromCorruptedStarts_BelowCapacity_AndFailsFarAboveIt()
    {
        // N = 100 spins. W = (1/N) Σ ξξᵀ with a zero diagonal (checked entry by entry against the formula). With 5 random
        // patterns (0.05 N) every pattern is recalled exactly from a start with 10 of its 100 spins flipped; with 40
        // patterns (0.4 N, far above ≈ 0.14 N) fewer than half are.
        const int n = 100;
        using var g = new Generator(51);
        foreach (var (p, recalledAtLeast, recalledAtMost) in new[] { (5, 5, 5), (40, 0, 19) })
        {
            using var xi = torch.rand(p, n, ScalarType.Float64, generator: g).lt(0.5).to_type(ScalarType.Float64).mul(2).sub(1);
            using var bm = Hopfield.store(xi);
            using var w = bm.weight_matrix();
            using var hebb = xi.t().mm(xi).div(n);
            using var eye = torch.eye(n, dtype: ScalarType.Float64);
            using var notEye = eye.neg().add(1);
            using var offDiag = hebb.mul(notEye);
            TestUtil.AllClose(offDiag, w, 1e-12, "W = (1/N) Σ ξξᵀ, zero diagonal");
            using var flips = torch.ones(p, n, ScalarType.Float64);
            using (var idx = torch.rand(p, n, ScalarType.Float64, generator: g).argsort(1).narrow(1, 0, 10))
                flips.scatter_(1, idx, torch.full(p, 10, -1.0, ScalarType.Float64));
            using var start = xi.mul(flips);
            var (recalled, sweeps) = Hopfield.recall(bm, start);
            using (recalled)
            {
                using var exact = recalled.eq(xi).all(1).sum();
                long k = exact.ToInt64();
                Assert.InRange(k, recalledAtLeast, recalledAtMost);
                Assert.InRange(sweeps, 1, 100);
            }
        }
    }
}

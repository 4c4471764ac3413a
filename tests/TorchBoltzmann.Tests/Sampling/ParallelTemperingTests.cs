using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Sampling;

public class ParallelTemperingTests
{
    /// <summary>
    /// An RBM with two well-separated modes: 8 visible units, one hidden unit with weight w = 8 to each, visible biases
    /// −w/2, hidden bias −8w/2 + ln 3. With h = 0 every visible unit is on with probability σ(−4) ≈ 0.018 ("all off");
    /// with h = 1 with σ(4) ≈ 0.98 ("all on"); h turns on only once about half the units are on. Summing out the states,
    /// the "on" mode carries ≈ 3/4 of the mass, so p(v_i = 1) ≈ 0.73.
    /// </summary>
    private static RBM TwoModes()
    {
        var rbm = boltzmann.RBM(8, 1, dtype: ScalarType.Float64);
        using (torch.no_grad())
        {
            rbm.weight.fill_(8.0);
            rbm.visible_bias.fill_(-4.0);
            rbm.hidden_bias.fill_(-32.0 + Math.Log(3));
        }
        return rbm;
    }

    /// <summary>Mean visible state of the β = 1 level over <paramref name="steps"/> steps after <paramref name="burn"/> steps.</summary>
    private static Tensor ColdMean(Action step, Func<Tensor> visible, int burn, int steps)
    {
        for (int s = 0; s < burn; s++) step();
        using var sum = torch.zeros(visible().shape[1], ScalarType.Float64);
        long rows = visible().shape[0];
        for (int s = 0; s < steps; s++)
        {
            step();
            using var m = visible().sum(new long[] { 0 });
            sum.add_(m);
        }
        return sum / (steps * (double)rows);
    }

    [Fact]
    public void TwoWellSeparatedModes_TemperingMatchesEnumeration_WhereOneGibbsChainStaysInItsMode()
    {
        using var rbm = TwoModes();
        using var exact = ExactEnumeration.visible_marginals(rbm);
        var e = TestUtil.ToArray(exact);
        Assert.All(e, p => Assert.InRange(p, 0.6, 0.85));   // the construction: most mass in the "on" mode

        // Every chain starts in the lighter "off" mode (all zeros).
        using var off = torch.zeros(100, 8, ScalarType.Float64);

        // Plain Gibbs at T = 1, 100 chains × 1600 steps: leaving "off" needs ≥ 4 of 8 units on at once (≈ 7·10⁻⁶ per
        // step), so the chains stay there and their marginals stay near σ(−4) ≈ 0.018, far from the exact ≈ 0.73.
        using var g1 = new Generator(5);
        using var gibbs = new GibbsChains(rbm, g1);
        gibbs.start(off);
        using var stuck = ColdMean(() => gibbs.step(), () => gibbs.visible, 400, 1200);
        Assert.All(TestUtil.ToArray(stuck), p => Assert.True(p < 0.1, $"a Gibbs chain left its mode: marginal {p:F3}"));

        // Parallel tempering from the same start, 10 levels β = 1, 0.9, …, 0.1, 100 replicas each, same number of steps.
        using var g2 = new Generator(5);
        using var pt = new ParallelTempering(rbm, TemperingLadder.Linear(10, 0.1), g2);
        pt.start(off);
        using var mixed = ColdMean(() => pt.step(), () => pt.visible, 400, 1200);
        // 120 000 correlated draws of the β = 1 level; a mode switch of a cold replica takes a few swap rounds, so the
        // effective sample is in the thousands and the standard error of a marginal ≈ 0.01: tolerance 0.05.
        TestUtil.AllClose(exact, mixed, 0.05, "p(v_i = 1) by parallel tempering");

        var rates = pt.swap_acceptance;
        Assert.Equal(9, rates.Count);
        Assert.All(rates, r => Assert.True(r > 0 && r < 1, $"swap acceptance {r}"));
        Assert.Equal(1600, pt.rounds);
        Assert.All(pt.swaps_attempted, a => Assert.Equal(800 * 100, a));   // each pair in every other round
    }

    [Fact]
    public void RandomRbm_TemperingSamples_MatchExactMarginals()
    {
        // A generic model (Gaussian weights, std 0.8): the swaps leave the β = 1 marginals where they belong.
        using var rbm = TestUtil.RandomRbm(6, 4, seed: 41, std: 0.8);
        using var exact = ExactEnumeration.visible_marginals(rbm);
        using var g = new Generator(9);
        using var pt = new ParallelTempering(rbm, TemperingLadder.Geometric(4, 0.3), g);
        using var samples = pt.generate(10000, burn_in: 50, thin: 2, replicas: 250);
        using var m = samples.mean(new long[] { 0 });
        // 10 000 samples, standard error ≤ 0.005 per marginal (more with autocorrelation): tolerance 0.025.
        TestUtil.AllClose(exact, m, 0.025, "p(v_i = 1) of generated samples");
    }

    [Fact]
    public void StateDict_RoundTrip_ContinuesTheSameRun()
    {
        using var rbm = TestUtil.RandomRbm(5, 3, seed: 2, std: 1.0);
        using var g = new Generator(3);
        using var pt = new ParallelTempering(rbm, TemperingLadder.Linear(3, 0.4), g);
        pt.start_random(7);
        pt.run(5);
        var saved = pt.state_dict();
        pt.run(6);
        using var expected = pt.states.clone();
        var acc = pt.swaps_accepted.ToArray();

        using var g2 = new Generator(99);
        using var other = new ParallelTempering(rbm, TemperingLadder.Linear(3, 0.4), g2);
        other.load_state_dict(saved);
        other.run(6);
        Assert.True(expected.eq(other.states).all().item<bool>(), "the continued replicas differ");
        Assert.Equal(acc, other.swaps_accepted);
        Assert.Equal(pt.rounds, other.rounds);

        using var g3 = new Generator(1);
        using var wrong = new ParallelTempering(rbm, TemperingLadder.Linear(4, 0.4), g3);
        var ex = Assert.Throws<ArgumentException>(() => wrong.load_state_dict(saved));
        Assert.Contains("states", ex.Message);
        foreach (var t in saved.Values) t.Dispose();
    }

    [Fact]
    public void Ladder_RefusesBadInverseTemperatures_NamingThem()
    {
        Assert.Contains("β₀ = 1", Assert.Throws<ArgumentException>(() => new TemperingLadder([0.9, 0.5])).Message);
        Assert.Contains("strictly decreasing", Assert.Throws<ArgumentException>(() => new TemperingLadder([1, 0.5, 0.6])).Message);
        Assert.Contains("above 0", Assert.Throws<ArgumentException>(() => new TemperingLadder([1, 0.0])).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => TemperingLadder.Linear(1, 0.1));
        Assert.Throws<ArgumentOutOfRangeException>(() => TemperingLadder.Geometric(5, 1.0));
        var l = TemperingLadder.Linear(4, 0.25);
        Assert.Equal(new[] { 1.0, 0.75, 0.5, 0.25 }, l.betas);
        var geo = TemperingLadder.Geometric(3, 0.25);
        Assert.Equal(0.5, geo.betas[1], 12);
    }
}

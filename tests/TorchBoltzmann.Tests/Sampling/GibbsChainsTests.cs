using TorchBoltzmann.Data;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Sampling;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Sampling;

public class GibbsChainsTests
{
    /// <summary>Average visible state over <paramref name="steps"/> steps of all chains (after 50 steps of burn-in).</summary>
    private static Tensor LongRunMean(GibbsChains chains, int steps)
    {
        for (int s = 0; s < 50; s++) chains.step();
        using var sum = torch.zeros(chains.visible.shape[1], ScalarType.Float64);
        for (int s = 0; s < steps; s++)
        {
            chains.step();
            using var m = chains.visible.sum(new long[] { 0 });
            sum.add_(m);
        }
        return sum / (steps * (double)chains.n_chains);
    }

    [Fact]
    public void VisibleField_IsNotTempered_ChainsSampleTheEquivalentRbm()
    {
        // With field a at T = 2 the chains sample p(v, h) ∝ e^{aᵀv − E(v,h)/T}: the RBM with W/T, b/T + a, c/T at T = 1.
        // 400 chains × 400 steps; tolerance 0.02 as above (~8 standard errors of independent draws); fixed seeds.
        using var rbm = TestUtil.RandomRbm(6, 4, 22, std: 0.8);
        using var field = torch.tensor(new double[] { 1.5, -1.0, 0.5, -2.0, 0.0, 1.0 });
        using var equivalent = TestUtil.RandomRbm(6, 4, 22);
        using (torch.no_grad())
        {
            equivalent.weight.copy_(rbm.weight / 2);
            equivalent.visible_bias.copy_(rbm.visible_bias / 2 + field);
            equivalent.hidden_bias.copy_(rbm.hidden_bias / 2);
        }
        using var g = new Generator(6);
        using var chains = new GibbsChains(rbm, g, temperature: 2.0) { visible_field = field };
        chains.start_random(400);
        using var exact = ExactEnumeration.visible_marginals(equivalent);
        using var m = LongRunMean(chains, 400);
        TestUtil.AllClose(exact, m, 0.02, "p(v_i = 1) with an untempered field");
        // Without the field the same chains sample the tempered RBM alone, whose marginals differ from these by more
        // than the tolerance (the test above would notice a field that is ignored).
        using var plain = TestUtil.RandomRbm(6, 4, 22);
        using (torch.no_grad())
        {
            plain.weight.copy_(rbm.weight / 2);
            plain.visible_bias.copy_(rbm.visible_bias / 2);
            plain.hidden_bias.copy_(rbm.hidden_bias / 2);
        }
        using var withoutField = ExactEnumeration.visible_marginals(plain);
        using var diff = (withoutField - exact).abs().max();
        Assert.True(diff.ToDouble() > 0.1);
        var e = Assert.Throws<ArgumentException>(() => chains.visible_field = torch.zeros(5, ScalarType.Float64));
        Assert.Contains("visible_field", e.Message);
    }

    [Fact]
    public void LongRunMarginals_MatchEnumeration_AtTheModelsTemperature_AndPerChainTemperatures()
    {
        // 6×4 RBM, 400 chains × 400 steps = 160,000 (correlated) draws per unit: the tolerance 0.02 is ~8 standard errors
        // of an independent estimate; fixed seeds.
        using var rbm = TestUtil.RandomRbm(6, 4, 21, std: 0.6);
        using var g = new Generator(5);
        using var chains = new GibbsChains(rbm, g);
        chains.start_random(400);
        using var exact = ExactEnumeration.visible_marginals(rbm);
        using var m = LongRunMean(chains, 400);
        TestUtil.AllClose(exact, m, 0.02, "p(v_i = 1), T = 1");

        // Half the chains at T = 2 (β = 0.5), half at T = 1: each half matches p_β.
        using var temps = torch.cat(new[] { torch.full(200, 2.0, ScalarType.Float64), torch.ones(200, ScalarType.Float64) });
        chains.temperatures = temps;
        for (int s = 0; s < 50; s++) chains.step();
        using var hot = torch.zeros(6, ScalarType.Float64);
        using var cold = torch.zeros(6, ScalarType.Float64);
        for (int s = 0; s < 400; s++)
        {
            chains.step();
            using var a = chains.visible.narrow(0, 0, 200).sum(new long[] { 0 });
            using var b = chains.visible.narrow(0, 200, 200).sum(new long[] { 0 });
            hot.add_(a); cold.add_(b);
        }
        using var exactHot = ExactEnumeration.visible_marginals(rbm, beta: 0.5);
        TestUtil.AllClose(exactHot, hot / 80_000.0, 0.02, "p_0.5(v_i = 1), per-chain T = 2");
        TestUtil.AllClose(exact, cold / 80_000.0, 0.02, "p(v_i = 1), per-chain T = 1");
        // The temperature matters at this tolerance: the hot and cold marginals differ by more than it somewhere.
        using var gap = (exactHot - exact).abs().max();
        Assert.True(gap.ToDouble() > 0.05, $"test too weak: p_0.5 and p_1 differ by only {gap.ToDouble():G3}");
    }

    [Fact]
    public void ClampedUnits_KeepTheirValues_AndTheOthersFollowTheConditional()
    {
        using var rbm = TestUtil.RandomRbm(5, 4, 33, std: 0.8);
        using var g = new Generator(9);
        using var chains = new GibbsChains(rbm, g);
        using var fixedValues = torch.tensor(new double[] { 1, 0 });
        chains.clamp(3, fixedValues);     // v_3 = 1, v_4 = 0
        chains.start_random(400);
        using var m = LongRunMean(chains, 400);
        var got = TestUtil.ToArray(m);
        Assert.Equal(1.0, got[3]);
        Assert.Equal(0.0, got[4]);
        // Exact p(v_0..2 | v_3 = 1, v_4 = 0) ∝ e^{−F(v)} over the 8 completions.
        using var all = ExactEnumeration.all_binary_states(5, ScalarType.Float64);
        using var keep = all.select(1, 3).eq(1).logical_and(all.select(1, 4).eq(0));
        using var rows = all.index(keep);
        using var f = rbm.free_energy(rows);
        using var p = torch.softmax(f.neg(), 0);
        using var exact = p.matmul(rows);
        TestUtil.AllClose(exact.narrow(0, 0, 3), m.narrow(0, 0, 3), 0.02, "p(v_i = 1 | clamped units)");
        chains.release();
        chains.step();
        Assert.Throws<ArgumentException>(() => chains.clamp(4, fixedValues));   // units 4..5 do not exist
    }

    [Fact]
    public void SavedChains_ContinueExactlyAsAnUnbrokenRun()
    {
        using var rbm = TestUtil.RandomRbm(8, 5, 3, dtype: ScalarType.Float32);
        using var temps = torch.tensor(new float[] { 1, 1.5f, 2, 3 });
        using var dir = new TempDirectory();
        string path = Path.Combine(dir.Path, "chains.bin");

        Tensor Run(bool interrupt)
        {
            using var g = new Generator(77);
            var chains = new GibbsChains(rbm, g);
            try
            {
                chains.clamp(6, torch.tensor(new float[] { 1, 0 }));
                chains.start_random(4);
                chains.temperatures = temps;
                for (int s = 0; s < 5; s++) chains.step();
                if (interrupt)
                {
                    chains.save(path);
                    chains.Dispose();
                    using var g2 = new Generator(12345);          // another process: another generator, restored from the file
                    chains = new GibbsChains(rbm, g2);
                    chains.load(path);
                    for (int s = 0; s < 5; s++) chains.step();
                    return chains.visible.clone();
                }
                for (int s = 0; s < 5; s++) chains.step();
                return chains.visible.clone();
            }
            finally { chains.Dispose(); }
        }

        using var unbroken = Run(false);
        using var resumed = Run(true);
        using var same = unbroken.eq(resumed).all();
        Assert.True(same.item<bool>(), "the resumed chains differ from the unbroken run");
        // A corrupt file is refused with a clear error.
        File.WriteAllBytes(path, File.ReadAllBytes(path).AsSpan(0, 40).ToArray());
        using var g3 = new Generator(1);
        using var fresh = new GibbsChains(rbm, g3);
        var e = Assert.Throws<InvalidDataException>(() => fresh.load(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void UnitTypes_SupplyTheInitialStates()
    {
        // A labelled layer starts with exactly one label on, drawn uniformly; binary features with p = 0.5.
        var units = new LabelledBernoulliUnits(4);
        using var g = new Generator(2);
        using var x = units.initial_states(20_000, 10, ScalarType.Float64, generator: g);
        units.check_values(x, "initial states");
        using var labels = x.narrow(1, 6, 4);
        using var ones = labels.sum(1);
        Assert.True(ones.eq(1).all().item<bool>());
        TestUtil.AllClose(torch.full(4, 0.25, ScalarType.Float64), labels.mean(new long[] { 0 }), 0.015, "label frequencies");
        TestUtil.AllClose(torch.full(6, 0.5, ScalarType.Float64), x.narrow(1, 0, 6).mean(new long[] { 0 }), 0.015, "feature frequencies");
    }

    [Fact]
    public void StepsAndState_HaveClearErrors()
    {
        using var rbm = TestUtil.RandomRbm(4, 3, 1);
        using var chains = new GibbsChains(rbm);
        Assert.Throws<InvalidOperationException>(() => chains.step());
        Assert.Throws<ArgumentOutOfRangeException>(() => chains.temperature = 0);
        chains.start_random(3);
        Assert.Throws<ArgumentException>(() => chains.temperatures = torch.ones(2, ScalarType.Float64));
        Assert.Throws<ArgumentException>(() => chains.start(torch.full(2, 4, 2.0, ScalarType.Float64)));   // not binary
        Assert.Throws<ArgumentOutOfRangeException>(() => chains.run(0));
    }
}

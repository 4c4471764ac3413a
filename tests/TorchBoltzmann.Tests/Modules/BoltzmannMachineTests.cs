using TorchBoltzmann.Evaluation;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Sampling;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Training;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Modules;

public class BoltzmannMachineTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Energy_AndConditionals_MatchLoopsAndEnumeration(bool spins)
    {
        // E(x) against a plain-loop oracle for every one of the 2⁷ states; p(x_i = +|rest) against the ratio of the
        // enumerated joint probabilities p(x with x_i = +) / (p(x with x_i = +) + p(x with x_i = −)), to 1e-12.
        using var bm = BmTestUtil.Random(4, 3, 1, spins: spins);
        using var states = ExactEnumeration.joint_states(bm);
        using var w = bm.weight_matrix();
        var wm = BmTestUtil.Matrix(w);
        var b = TestUtil.ToArray(bm.bias);
        using var e = bm.energy(states);
        var energies = TestUtil.ToArray(e);
        var xs = TestUtil.ToArray(states);
        int n = bm.n_units, s = (int)states.shape[0];
        for (int k = 0; k < s; k++)
            Assert.Equal(BmTestUtil.LoopEnergy(wm, b, xs.Skip(k * n).Take(n).ToArray()), energies[k], 12);

        using var p = ExactEnumeration.joint_distribution(bm);
        var pj = TestUtil.ToArray(p);
        using var cond = bm.conditional_mean(states);
        var cm = TestUtil.ToArray(cond);
        double lo = spins ? -1 : 0;
        for (int k = 0; k < s; k++)
            for (int i = 0; i < n; i++)
            {
                int up = k | (1 << i), down = k & ~(1 << i);     // unit i varies with bit i of the state index
                double pUp = pj[up] / (pj[up] + pj[down]);
                double mean = spins ? 2 * pUp - 1 : pUp;
                Assert.True(Math.Abs(mean - cm[k * n + i]) < 1e-12, $"state {k}, unit {i}: mean {cm[k * n + i]} against enumeration {mean}");
            }
        Assert.Equal(lo, xs.Min());
    }

    [Fact]
    public void WeightMatrix_StaysSymmetricWithZeroDiagonalAndMask_AfterAdamStepsWithWeightDecay()
    {
        // Store-one-triangle: whatever Adam (with decoupled weight decay, which touches every stored entry) does to the
        // (n, n) parameter, W = U + Uᵀ with U = triu(weight, 1) ⊙ mask is exactly symmetric, zero on the diagonal and on
        // unconnected pairs. Gradients come from autograd through free_energy and from the trainer's statistics.
        using var bm = BmTestUtil.Random(4, 5, 2, connectivity: Connectivity.Layered, hiddenLayers: [3, 2]);
        using var opt = optim.AdamW(bm.parameters(), lr: 0.05, weight_decay: 0.1);
        using var g = new Generator(3);
        for (int step = 0; step < 20; step++)
        {
            using var scope = torch.NewDisposeScope();
            opt.zero_grad();
            var v = torch.rand(8, 4, ScalarType.Float64, generator: g).round();
            if (step % 2 == 0) bm.free_energy(v).mean().backward();
            else
            {
                var x = torch.rand(8, 9, ScalarType.Float64, generator: g).round();
                var y = torch.rand(8, 9, ScalarType.Float64, generator: g).round();
                BoltzmannTrainer.WriteGradients(bm, x, y, 1.0, 0.01);
            }
            opt.step();
        }
        using var w = bm.weight_matrix();
        using var wt = w.t();
        using var asym = w.sub(wt).abs().max();
        Assert.Equal(0.0, asym.ToDouble());                       // exact, not approximately
        using var diag = w.diagonal().abs().max();
        Assert.Equal(0.0, diag.ToDouble());
        using var off = torch.ones_like(bm.mask).sub(bm.mask);
        using var outside = w.mul(off).abs().max();
        Assert.Equal(0.0, outside.ToDouble());
        using var inside = w.mul(bm.mask).abs().max();
        Assert.True(inside.ToDouble() > 0.1, "the connected weights moved");
        // The lower triangle of the stored parameter moved under weight decay's reach only through its gradient-free
        // decay: it is ignored. Autograd gives it exactly zero gradient.
        opt.zero_grad();
        using (var v = torch.ones(2, 4, ScalarType.Float64)) bm.free_energy(v).sum().backward();
        using var lower = bm.weight.grad!.tril().abs().max();
        Assert.Equal(0.0, lower.ToDouble());
    }

    [Fact]
    public void BipartiteMask_GivesTheRbmsEnergiesConditionalsFreeEnergyAndCdStatistics()
    {
        // The same parameters in both modules: RBM weight (n_h, n_v) = W_hv. Energies and free energies to 1e-12, forward
        // (mean-field of an unconnected hidden layer) = p(h|v), visible conditionals = p(v|h), and the gradient
        // WriteGradients writes from the states [v, p(h|v)] equals RbmTrainer.WriteCdGradients on the same v⁰, vᵏ.
        using var rbm = TestUtil.RandomRbm(5, 3, 4);
        using var bm = boltzmann.BM(5, 3, Connectivity.Bipartite, dtype: ScalarType.Float64);
        using (torch.no_grad())
        {
            using var w = torch.zeros(8, 8, ScalarType.Float64);
            w.narrow(0, 0, 5).narrow(1, 5, 3).copy_(rbm.weight.t());
            using var b = torch.cat(new Tensor[] { rbm.visible_bias, rbm.hidden_bias }, 0);
            bm.set_parameters(w, b);
        }
        var (v, h) = TestUtil.AllJointStates(5, 3);
        using (v) using (h)
        {
            using var x = torch.cat(new[] { v, h }, 1);
            using var er = rbm.energy(v, h);
            using var eb = bm.energy(x);
            TestUtil.AllClose(er, eb, 1e-12, "energies");
            using var fr = rbm.free_energy(v);
            using var fb = bm.free_energy(v);
            TestUtil.AllClose(fr, fb, 1e-12, "free energies");
            using var ph = rbm.prob_h(v);
            using var mf = bm.forward(v);
            TestUtil.AllClose(ph, mf, 1e-12, "forward = p(h|v)");
            using var pv = rbm.prob_v(h);
            using var cm = bm.conditional_mean(x);
            using var cmv = cm.narrow(1, 0, 5);
            TestUtil.AllClose(pv, cmv, 1e-12, "p(v|h)");
            Assert.Equal(ExactEnumeration.log_partition(rbm), ExactEnumeration.log_partition(bm), 10);
        }
        using var g = new Generator(5);
        using var v0 = torch.rand(16, 5, ScalarType.Float64, generator: g).round();
        using var vk = torch.rand(16, 5, ScalarType.Float64, generator: g).round();
        RbmTrainer.WriteCdGradients(rbm, v0, vk);
        using var h0 = bm.forward(v0);
        using var hk = bm.forward(vk);
        using var x0 = torch.cat(new[] { v0, h0 }, 1);
        using var xk = torch.cat(new[] { vk, hk }, 1);
        BoltzmannTrainer.WriteGradients(bm, x0, xk);
        using var gvh = bm.weight.grad!.narrow(0, 0, 5).narrow(1, 5, 3);
        using var grbm = rbm.weight.grad!.t();
        TestUtil.AllClose(grbm, gvh, 1e-7, "weight gradient (RbmTrainer's 1/B goes through float32)");
        using var gb = bm.bias.grad!;
        using var gbr = torch.cat(new Tensor[] { rbm.visible_bias.grad!, rbm.hidden_bias.grad! }, 0);
        TestUtil.AllClose(gbr, gb, 1e-7, "bias gradients");
    }

    [Fact]
    public void SpinAndBinaryEncodings_GiveTheSameDistribution_UnderSEquals2XMinus1()
    {
        // p(x) of a {0,1} machine and p(s) of its to_spins() agree state by state (enumeration orders match: bit i of the
        // index is x_i = 1 or s_i = +1), at T = 1 and T = 0.5, and back again through to_binary(), to 1e-12.
        using var bm = BmTestUtil.Random(4, 3, 6);
        using var sm = bm.to_spins();
        using var back = sm.to_binary();
        Assert.True(sm.spins);
        foreach (double beta in new[] { 1.0, 2.0 })
        {
            using var px = ExactEnumeration.joint_distribution(bm, beta);
            using var ps = ExactEnumeration.joint_distribution(sm, beta);
            using var pb = ExactEnumeration.joint_distribution(back, beta);
            TestUtil.AllClose(px, ps, 1e-12, $"p(x) against p(s) at β = {beta}");
            TestUtil.AllClose(px, pb, 1e-12, $"p(x) after the round trip at β = {beta}");
        }
        // p(s_i = +1 | rest) = σ(2η_i / T).
        using var states = ExactEnumeration.joint_states(sm);
        using var eta = sm.net(states);
        using var mean = sm.conditional_mean(states, 0.7);
        using var pUp = mean.add(1).div(2);
        using var expected = torch.sigmoid(eta.mul(2 / 0.7));
        TestUtil.AllClose(expected, pUp, 1e-12, "p(s = +1 | rest)");
    }

    [Fact]
    public void FreeEnergy_SumsOutTheHiddenUnits_AsJointEnumerationDoes()
    {
        // With hidden–hidden and visible–visible connections: log Z from −F(v) over visible states (the generic path)
        // equals log Z over all joint states; p(v) equals the joint distribution summed over h; at β = 1 and 0.4.
        using var bm = BmTestUtil.Random(5, 4, 7);
        using var vs = ExactEnumeration.all_binary_states(5, ScalarType.Float64);
        foreach (double beta in new[] { 1.0, 0.4 })
        {
            using var f = bm.free_energy(vs, beta);
            using var negF = f.neg();
            using var lse = negF.logsumexp(0);
            Assert.Equal(ExactEnumeration.log_partition(bm, beta), lse.ToDouble(), 10);
            using var pv = ExactEnumeration.visible_distribution(bm, beta);
            using var pj = ExactEnumeration.joint_distribution(bm, beta);
            using var summed = pj.reshape(16, 32).sum(new long[] { 0 });     // joint index = v + 32·h: rows h, columns v
            TestUtil.AllClose(summed, pv, 1e-12, $"p(v) at β = {beta}");
        }
        using var noHidden = BmTestUtil.Random(4, 0, 8);
        using var v4 = ExactEnumeration.all_binary_states(4, ScalarType.Float64);
        using var f0 = noHidden.free_energy(v4, 0.5);
        using var e0 = noHidden.energy(v4);
        using var half = e0.mul(0.5);
        TestUtil.AllClose(half, f0, 1e-12, "F_β = βE without hidden units");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PseudoLogLikelihood_IsTheSumOfExactConditionals_FromTheEnumeratedVisibleDistribution(bool spins)
    {
        // Σ_i log p(v_i | v_{−i}) against p(v) / (p(v) + p(v⁽ⁱ⁾)) read from ExactEnumeration.visible_distribution, for
        // every visible state of a 5-visible, 3-hidden fully connected machine, to 1e-10.
        using var bm = BmTestUtil.Random(5, 3, 11, spins: spins);
        using var pv = ExactEnumeration.visible_distribution(bm);
        using var vs = bm.units.enumerate_states(5, 0, 32, ScalarType.Float64)!;
        var p = TestUtil.ToArray(pv);
        using var pll = bm.pseudo_log_likelihood(vs);
        var got = TestUtil.ToArray(pll);
        for (int k = 0; k < 32; k++)
        {
            double expected = 0;
            for (int i = 0; i < 5; i++) expected += Math.Log(p[k] / (p[k] + p[k ^ (1 << i)]));   // flipping unit i flips bit i of the index
            Assert.Equal(expected, got[k], 10);
        }
    }

    [Fact]
    public void Forward_IsAFixedPointOfTheMeanFieldEquations_WithLateralHiddenConnections()
    {
        using var bm = BmTestUtil.Random(4, 5, 9, std: 0.5);
        using var v = torch.tensor(new double[] { 1, 0, 1, 1, 0, 0, 1, 0 }, 2, 4);
        using var m = bm.forward(v);
        using var x = torch.cat(new[] { v, m }, 1);
        using var next = bm.conditional_mean(x);
        using var nh = next.narrow(1, 4, 5);
        TestUtil.AllClose(nh, m, 1e-5, "m_h = σ(b_h + W_hv v + W_hh m_h)");
        using var single = bm.forward(v[0]);
        Assert.Equal(new long[] { 5 }, single.shape);
    }

    [Theory]
    [InlineData(false, 1.0, 0.0)]
    [InlineData(false, 2.0, 0.5)]
    [InlineData(true, 1.5, 0.3)]
    public void MeanFieldFixedPoint_SatisfiesTheMeanFieldEquations_AtConvergence(bool spins, double temperature, double damping)
    {
        // A fully connected 12-unit machine (weights N(0, 0.3²)), 6 starts uniform in the units' range: at convergence
        // (tolerance 1e-10) every row satisfies m = mean((W m + b) / T) to 1e-8: σ for bits, tanh for spins, also with
        // damping and after a mean-field annealing pass through T = 5 … T. One pass (cap 1) does not get there (residual
        // > 1e-3), so the check can fail. clamp_visible keeps the visible columns and mean_field(v) is the hidden part.
        using var bm = BmTestUtil.Random(5, 7, 21, std: 0.3, spins: spins);
        using var g = new Generator(4);
        using var u = torch.rand(6, 12, ScalarType.Float64, generator: g);
        using var start = spins ? u.mul(2).sub(1) : u.clone();
        double Residual(Tensor m, bool visibleToo)
        {
            using var target = bm.units.mean(bm.net(m), temperature);
            using var diff = target.sub(m).abs();
            using var part = visibleToo ? diff.alias() : diff.narrow(1, 5, 7);
            using var max = part.max();
            return max.ToDouble();
        }
        using var m = bm.mean_field_fixed_point(start, temperature, max_iterations: 1000, tolerance: 1e-10, damping: damping);
        Assert.True(Residual(m, true) <= 1e-8, $"residual {Residual(m, true):E3}");
        using var annealed = bm.mean_field_fixed_point(start, temperature, 1000, 1e-10, damping, annealing: AnnealingSchedule.Geometric(5, temperature, 6).Temperatures);
        Assert.True(Residual(annealed, true) <= 1e-8, $"annealed residual {Residual(annealed, true):E3}");
        using var onePass = bm.mean_field_fixed_point(start, temperature, max_iterations: 1, tolerance: 0, damping: damping);
        Assert.True(Residual(onePass, true) > 1e-3, $"one pass already at residual {Residual(onePass, true):E3}");

        using var v = spins ? torch.tensor(new double[] { 1, -1, 1, 1, -1 }) : torch.tensor(new double[] { 1, 0, 1, 1, 0 });
        using var vStart = torch.cat(new[] { v.unsqueeze(0).expand(6, -1), start.narrow(1, 5, 7) }, 1);
        using var clamped = bm.mean_field_fixed_point(vStart, temperature, 1000, 1e-10, damping, clamp_visible: true);
        using (var vis = clamped.narrow(1, 0, 5)) TestUtil.AllClose(vStart.narrow(1, 0, 5), vis, 0, "clamped visible units");
        Assert.True(Residual(clamped, false) <= 1e-8, $"clamped residual {Residual(clamped, false):E3}");
        using var mh = bm.mean_field(v, temperature, 1000, 1e-10, damping);
        using (var first = clamped[0].narrow(0, 5, 7)) TestUtil.AllClose(first, mh, 1e-7, "mean_field(v) against the clamped fixed point");

        Assert.StartsWith("damping: expected a number in [0, 1), got 1.", Assert.Throws<ArgumentOutOfRangeException>(() => bm.mean_field_fixed_point(start, damping: 1)).Message);
        Assert.StartsWith("mean-field start", Assert.ThrowsAny<ArgumentException>(() => bm.mean_field_fixed_point(torch.zeros(2, 11, ScalarType.Float64))).Message);
    }

    [Fact]
    public void ColourClasses_AreIndependentSetsCoveringEveryUnit_TwoForBipartiteAndLayered()
    {
        foreach (var (bm, expected) in new[]
                 {
                     (boltzmann.BM(4, 3, Connectivity.Bipartite), 2),
                     (boltzmann.BM(3, 5, Connectivity.Layered, hidden_layers: [2, 3]), 2),
                     (boltzmann.BM(3, 3), 6),
                 })
        {
            using (bm)
            {
                var classes = bm.colour_classes();
                var adj = bm.neighbours();
                Assert.Equal(expected, classes.Length);
                Assert.Equal(Enumerable.Range(0, bm.n_units), classes.SelectMany(c => c).OrderBy(i => i));
                foreach (var c in classes)
                    foreach (int i in c)
                        Assert.DoesNotContain(adj[i], j => c.Contains(j));
            }
        }
    }

    [Fact]
    public void Checkpoint_RoundTripsWeightsMaskAndSpins()
    {
        using var dir = new TempDirectory();
        using var bm = BmTestUtil.Random(3, 4, 10, spins: true, connectivity: Connectivity.Layered, hiddenLayers: [2, 2]);
        string path = Path.Combine(dir.Path, "bm.pt");
        Checkpoint.Save(bm, path);
        using var loaded = Assert.IsType<BoltzmannMachine>(Checkpoint.Load(path));
        Assert.True(loaded.spins);
        Assert.Equal(ScalarType.Float64, loaded.dtype);
        using var a = bm.weight_matrix();
        using var b = loaded.weight_matrix();
        TestUtil.AllClose(a, b, 0, "W");
        TestUtil.AllClose(bm.mask, loaded.mask, 0, "mask");
        TestUtil.AllClose(bm.bias, loaded.bias, 0, "b");
        Assert.Equal(bm.ToString(), loaded.ToString());
    }

    [Fact]
    public void BadArguments_GiveOneLineMessagesNamingTheOption()
    {
        var e1 = Assert.Throws<ArgumentException>(() => boltzmann.BM(3, 2, Connectivity.Layered, hidden_layers: [1, 2, 3]));
        Assert.Equal("hidden_layers: expected positive sizes summing to n_hidden = 2, got [1, 2, 3]. (Parameter 'hidden_layers')", e1.Message);
        using var asym = torch.zeros(3, 3);
        asym[0, 1] = torch.tensor(1f);
        var e2 = Assert.Throws<ArgumentException>(() => boltzmann.BM(2, 1, Connectivity.Given, mask: asym));
        Assert.StartsWith("mask: expected a symmetric matrix, got an asymmetric one.", e2.Message);
        using var diag = torch.eye(3);
        var e3 = Assert.Throws<ArgumentException>(() => boltzmann.BM(2, 1, Connectivity.Given, mask: diag));
        Assert.StartsWith("mask: expected a zero diagonal (no self-connections), got 3 ones on it.", e3.Message);
        var e4 = Assert.Throws<ArgumentException>(() => new BoltzmannMachine(2, 1, units: new LabelledBernoulliUnits(2)));
        Assert.StartsWith("units: expected Bernoulli or Spin, got Bernoulli+Softmax(2).", e4.Message);
        var e5 = Assert.Throws<ArgumentException>(() => boltzmann.BM(2, 1, Connectivity.Full, mask: diag));
        Assert.StartsWith("mask: only for connectivity Given, got connectivity Full.", e5.Message);
        using var bm = boltzmann.BM(3, 2, spins: true);
        using var bad = torch.zeros(2, 4);
        var e6 = Assert.Throws<ArgumentException>(() => bm.energy(bad));
        Assert.Contains("energy input: expected 5 units in the last dimension", e6.Message);
        using var tooHigh = torch.full(2, 3, 2.0f);
        var e7 = Assert.Throws<ArgumentException>(() => bm.forward(tooHigh));
        Assert.Equal("mean_field input: expected values in [−1, 1] for Spin units, got values in [2, 2].", e7.Message);
        using var big = boltzmann.BM(2, 21);
        using var v = torch.zeros(1, 2);
        var e8 = Assert.Throws<NotSupportedException>(() => big.free_energy(v));
        Assert.StartsWith("free_energy: sums over the hidden states, expected at most 20 hidden units, got 21", e8.Message);
        var e9 = Assert.Throws<ArgumentOutOfRangeException>(() => new BoltzmannTrainingOptions { FreeChains = 0 }.Validate());
        Assert.StartsWith("FreeChains must be at least 1.", e9.Message);
        Assert.Contains("Actual value was 0.", e9.Message);
    }
}

using TorchBoltzmann.Evaluation;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Modules;

/// <summary>Small random DBMs for the tests.</summary>
internal static class DbmTestUtil
{
    /// <summary>A DBM with every weight and bias ~ N(0, std²), float64.</summary>
    public static DBM Random(int[] sizes, ulong seed, double std = 0.8)
    {
        using var g = new Generator(seed);
        var dbm = boltzmann.DBM(sizes, dtype: ScalarType.Float64, generator: g);
        using (torch.no_grad())
        {
            dbm.reset_parameters(std, g);
            foreach (var b in dbm.biases) b.normal_(0, std, g);
        }
        return dbm;
    }

    /// <summary>Splits joint states (S, Σn_l) into the layers' states, v first.</summary>
    public static Tensor[] Split(DBM dbm, Tensor joint)
    {
        var parts = new Tensor[dbm.layer_sizes.Count];
        long offset = 0;
        for (int l = 0; l < parts.Length; l++)
        {
            parts[l] = joint.narrow(1, offset, dbm.layer_sizes[l]);
            offset += dbm.layer_sizes[l];
        }
        return parts;
    }
}

public class DBMTests
{
    public static TheoryData<int[]> Shapes => new() { new[] { 6, 4, 3 }, new[] { 5, 3, 3, 2 } };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Energy_MatchesPlainLoops_ForEveryJointState(int[] sizes)
    {
        // E(v, h) against a loop oracle over .NET arrays, −Σ b_l·h_l − Σ h_l·W_l·h_{l−1}, for all 2^13 joint states, to 1e-10.
        using var dbm = DbmTestUtil.Random(sizes, 1);
        using var bm = dbm.to_boltzmann_machine();
        using var joint = ExactEnumeration.joint_states(bm);
        var parts = DbmTestUtil.Split(dbm, joint);
        using var e = dbm.energy(parts);
        var energies = TestUtil.ToArray(e);
        var xs = TestUtil.ToArray(joint);
        var w = dbm.weights.Select(p => TestUtil.ToArray(p)).ToArray();
        var b = dbm.biases.Select(p => TestUtil.ToArray(p)).ToArray();
        int n = sizes.Sum();
        for (int k = 0; k < energies.Length; k += 7)
        {
            var layers = new double[sizes.Length][];
            int off = 0;
            for (int l = 0; l < sizes.Length; l++) { layers[l] = xs.Skip(k * n + off).Take(sizes[l]).ToArray(); off += sizes[l]; }
            double expected = 0;
            for (int l = 0; l < sizes.Length; l++)
                for (int i = 0; i < sizes[l]; i++) expected -= b[l][i] * layers[l][i];
            for (int l = 1; l < sizes.Length; l++)
                for (int j = 0; j < sizes[l]; j++)
                    for (int i = 0; i < sizes[l - 1]; i++) expected -= layers[l][j] * w[l - 1][j * sizes[l - 1] + i] * layers[l - 1][i];
            Assert.True(Math.Abs(expected - energies[k]) < 1e-10, $"state {k}: energy {energies[k]}, loops {expected}");
        }
        // The equivalent general machine has the same energy state by state.
        using var eb = bm.energy(joint);
        TestUtil.AllClose(eb, e, 1e-10, "energy of the layered BoltzmannMachine");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Conditionals_MatchRatiosOfTheEnumeratedJoint(int[] sizes)
    {
        // p(unit = 1 | rest) of every unit of every layer, at T = 1 and T = 2, against p(x with unit on) / (p(on) + p(off))
        // from the enumerated joint distribution at β = 1/T, for every joint state; to 1e-10.
        using var dbm = DbmTestUtil.Random(sizes, 2);
        using var bm = dbm.to_boltzmann_machine();
        using var joint = ExactEnumeration.joint_states(bm);
        var parts = DbmTestUtil.Split(dbm, joint);
        int n = sizes.Sum();
        foreach (double t in new[] { 1.0, 2.0 })
        {
            using var p = ExactEnumeration.joint_distribution(bm, 1.0 / t);
            var pj = TestUtil.ToArray(p);
            int offset = 0;
            for (int l = 0; l < sizes.Length; l++)
            {
                using var cm = dbm.conditional_mean(parts, l, t);
                var c = TestUtil.ToArray(cm);
                for (int k = 0; k < pj.Length; k++)
                    for (int i = 0; i < sizes[l]; i++)
                    {
                        int bit = offset + i, up = k | (1 << bit), down = k & ~(1 << bit);
                        double expected = pj[up] / (pj[up] + pj[down]);
                        Assert.True(Math.Abs(expected - c[k * sizes[l] + i]) < 1e-10, $"T={t}, layer {l}, unit {i}, state {k}: {c[k * sizes[l] + i]} against {expected}");
                    }
                offset += sizes[l];
            }
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void FreeEnergy_AndLogZ_MatchTheGeneralMachineSummingEveryHiddenUnit(int[] sizes)
    {
        // F_β(v) with the odd layers summed in closed form against the BoltzmannMachine's sum over all 2^n_hidden hidden
        // states, for all visible states at β = 1 and 0.5; log Z from the visible states against the joint enumeration.
        using var dbm = DbmTestUtil.Random(sizes, 3);
        using var bm = dbm.to_boltzmann_machine();
        using var vs = ExactEnumeration.all_binary_states(sizes[0], ScalarType.Float64);
        foreach (double beta in new[] { 1.0, 0.5 })
        {
            using var f = dbm.free_energy(vs, beta);
            using var fb = bm.free_energy(vs, beta);
            TestUtil.AllClose(fb, f, 1e-10, $"free energy at β = {beta}");
            double logZ = ExactEnumeration.log_partition(dbm, beta);
            double logZJoint = ExactEnumeration.log_partition(bm, beta);
            Assert.True(Math.Abs(logZ - logZJoint) < 1e-10, $"β = {beta}: log Z {logZ} against the joint enumeration {logZJoint}");
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MeanField_ReachesAFixedPointOfItsEquations_AndItsBoundIsBelowTheExactLogProbability(int[] sizes)
    {
        // Converged means satisfy μ_l = σ(b_l + W_l μ_{l−1} + W_{l+1}ᵀ μ_{l+1}) to 1e-9 for all 2^n_v visible vectors; the
        // bound B(v) − log Z is at most the exact log p(v) = −F(v) − log Z for every v (the gap is KL(q‖p(h|v)) ≥ 0), and
        // the sweeps never lower the bound of the bottom-up start. Damped inference reaches a fixed point too.
        using var dbm = DbmTestUtil.Random(sizes, 4);
        using var vs = ExactEnumeration.all_binary_states(sizes[0], ScalarType.Float64);
        foreach (double damping in new[] { 0.0, 0.5 })
        {
            using var mf = dbm.mean_field(vs, max_iterations: 500, tolerance: 1e-11, damping: damping);
            Assert.True(mf.converged, $"damping {damping}: not converged after {mf.iterations} sweeps (last change {mf.last_change})");
            var states = new[] { vs }.Concat(mf.means).ToArray();
            for (int l = 1; l < sizes.Length; l++)
            {
                using var rhs = dbm.conditional_mean(states, l);
                TestUtil.AllClose(rhs, mf.means[l - 1], 1e-9, $"damping {damping}, fixed point of layer {l}");
            }
            using var bound = dbm.variational_bound(vs, mf.means);
            using var negF = dbm.free_energy(vs).neg();
            var bnd = TestUtil.ToArray(bound);
            var exact = TestUtil.ToArray(negF);
            for (int k = 0; k < bnd.Length; k++) Assert.True(bnd[k] <= exact[k] + 1e-10, $"v #{k}: bound {bnd[k]} above −F(v) = {exact[k]}");
            Assert.True(exact.Zip(bnd).Max(p => p.First - p.Second) > 1e-4, "the bound is tight everywhere: the test would not see a wrong sign");
            var start = dbm.initial_means(vs);
            using var startBound = dbm.variational_bound(vs, start);
            var sb = TestUtil.ToArray(startBound);
            if (damping == 0)
                for (int k = 0; k < bnd.Length; k++) Assert.True(bnd[k] >= sb[k] - 1e-10, $"v #{k}: the sweeps lowered the bound from {sb[k]} to {bnd[k]}");
            foreach (var t in start) t.Dispose();
        }
    }

    [Fact]
    public void InitialMeans_AreTheBottomUpPassWithDoubledWeightsBelowTheTop()
    {
        using var dbm = DbmTestUtil.Random([5, 3, 3, 2], 5);
        using var g = new Generator(6);
        using var v = torch.rand(4, 5, dtype: ScalarType.Float64, generator: g).round_();
        var mu = dbm.initial_means(v);
        using var m1 = torch.sigmoid(nn.functional.linear(v, dbm.weight(1)).mul(2).add(dbm.bias(1)));
        using var m2 = torch.sigmoid(nn.functional.linear(m1, dbm.weight(2)).mul(2).add(dbm.bias(2)));
        using var m3 = torch.sigmoid(nn.functional.linear(m2, dbm.weight(3)).add(dbm.bias(3)));
        TestUtil.AllClose(m1, mu[0], 1e-12, "μ_1");
        TestUtil.AllClose(m2, mu[1], 1e-12, "μ_2");
        TestUtil.AllClose(m3, mu[2], 1e-12, "μ_3 (single weights at the top)");
        foreach (var t in mu) t.Dispose();
        using var top = dbm.forward(v);
        using var mf = dbm.mean_field(v);
        TestUtil.AllClose(mf.top, top, 0, "forward = the top layer's mean-field means");
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(2.0)]
    public void BlockGibbs_LongRunMeansOfEveryUnit_MatchEnumeration(double temperature)
    {
        // 2,000 chains on a 6-4-3 DBM (weights N(0, 0.8²)), 30 steps of burn-in, then 100 steps averaged: every unit's mean
        // against the exact E_β[x_i] at β = 1/T. Seeded; tolerance 0.02 (the standard error of a mean is below 0.004).
        using var dbm = DbmTestUtil.Random([6, 4, 3], 7);
        using var bm = dbm.to_boltzmann_machine();
        using var exact = ExactEnumeration.unit_means(bm, 1.0 / temperature);
        using var g = new Generator(8);
        var states = dbm.random_states(2000, g);
        using var sums = torch.zeros(13, dtype: ScalarType.Float64);
        for (int s = 0; s < 130; s++)
        {
            dbm.gibbs_step(states, temperature, g).Dispose();
            if (s < 30) continue;
            using var joint = torch.cat(states, 1);
            using var m = joint.mean([0L]);
            sums.add_(m, alpha: 1.0 / 100);
        }
        foreach (var t in states) t.Dispose();
        using var err = sums.sub(exact).abs_().max();
        double worst = err.ToDouble();
        Assert.True(worst < 0.02, $"T = {temperature}: largest error of a unit's mean {worst:G3}");
    }

    [Fact]
    public void Checkpoint_RoundTrip_KeepsStateDictNamesAndTheDistribution()
    {
        using var dbm = DbmTestUtil.Random([6, 4, 3], 9);
        Assert.Equal(new[] { "biases.0", "biases.1", "biases.2", "weights.0", "weights.1" }, dbm.state_dict().Keys.OrderBy(k => k, StringComparer.Ordinal));
        var dir = Directory.CreateTempSubdirectory("dbm-ckpt").FullName;
        try
        {
            var path = Path.Combine(dir, "dbm.pt");
            Checkpoint.Save(dbm, path);
            using var loaded = Checkpoint.Load<DBM>(path);
            Assert.Equal(dbm.layer_sizes, loaded.layer_sizes);
            Assert.Equal(ScalarType.Float64, loaded.dtype);
            using var vs = ExactEnumeration.all_binary_states(6, ScalarType.Float64);
            using var f0 = dbm.free_energy(vs);
            using var f1 = loaded.free_energy(vs);
            TestUtil.AllClose(f0, f1, 0, "free energy after the round trip");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void BadArguments_AreRefusedWithOneLineMessages()
    {
        var e = Assert.Throws<ArgumentException>(() => boltzmann.DBM([6, 4]));
        Assert.Contains("layer_sizes", e.Message);
        Assert.Contains("[6, 4]", e.Message);
        using var dbm = boltzmann.DBM([6, 4, 3]);
        using var wrong = torch.zeros(2, 5);
        var w = Assert.Throws<ArgumentException>(() => dbm.forward(wrong));
        Assert.Contains("6", w.Message);
        using var v = torch.zeros(2, 6);
        Assert.Throws<ArgumentOutOfRangeException>(() => dbm.mean_field(v, damping: 1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => dbm.mean_field(v, max_iterations: 0));
        using var big = boltzmann.DBM([4, 3, 21]);
        using var v4 = torch.zeros(1, 4);
        Assert.Throws<NotSupportedException>(() => big.free_energy(v4));
    }
}

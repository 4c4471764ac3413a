using TorchBoltzmann.Evaluation;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Units;

/// <summary>
/// General one-of-K groups (<see cref="SoftmaxGroupUnits"/>); the identities every type must satisfy run for
/// "Bernoulli+Softmax(2,2)" and "Softmax(2,3)" in <see cref="UnitTypeConformanceTests"/> through the registry.
/// </summary>
public class SoftmaxGroupUnitsTests
{
    [Fact]
    public void Names_RoundTrip_AndTheOneGroupNameStillLoadsTheLabelGroupType()
    {
        Assert.Equal("Bernoulli+Softmax(2,3,4)", UnitType.FromName("Bernoulli+Softmax(2,3,4)").Name);
        var alone = Assert.IsType<SoftmaxGroupUnits>(UnitType.FromName("Softmax(3)"));
        Assert.False(alone.binary_units);
        Assert.Equal(new[] { 3 }, alone.group_sizes);
        // The name written by checkpoints before general groups existed keeps its type.
        var labelled = Assert.IsType<LabelledBernoulliUnits>(UnitType.FromName("Bernoulli+Softmax(3)"));
        Assert.Equal(3, labelled.n_classes);
        foreach (var bad in new[] { "Softmax()", "Softmax(1)", "Softmax(2,1)", "Softmax(2,x)", "Softmax(2, 3)", "Bernoulli+Softmax(2,)", "Softmax(2,3" })
            Assert.Throws<ArgumentException>(() => UnitType.FromName(bad));
        Assert.Throws<ArgumentException>(() => new SoftmaxGroupUnits([]));
        Assert.Throws<ArgumentException>(() => new SoftmaxGroupUnits([3, 1]));
    }

    [Fact]
    public void OneGroupAfterBinaryUnits_EqualsTheLabelGroupType()
    {
        // Same log-partition, mean, enumerated states and (same generator) samples as LabelledBernoulliUnits(3), to 1e-15.
        var general = new SoftmaxGroupUnits([3]);
        var labelled = new LabelledBernoulliUnits(3);
        Assert.Equal(labelled.Name, general.Name);
        using var g = new Generator(1);
        using var net = torch.randn(7, 6, ScalarType.Float64, generator: g).mul_(2);
        using var bias = torch.randn(6, ScalarType.Float64, generator: g);
        foreach (double beta in new[] { 1.0, 0.4 })
        {
            using var a = labelled.log_partition(net, bias, beta); using var b = general.log_partition(net, bias, beta);
            TestUtil.AllClose(a, b, 1e-15, $"log-partition at β = {beta}");
            using var ma = labelled.mean(net, 1 / beta); using var mb = general.mean(net, 1 / beta);
            TestUtil.AllClose(ma, mb, 1e-15, $"mean at T = {1 / beta}");
        }
        Assert.Equal(labelled.state_count(6), general.state_count(6));
        using var sa = labelled.enumerate_states(6, 0, 24, ScalarType.Float64)!;
        using var sb = general.enumerate_states(6, 0, 24, ScalarType.Float64)!;
        TestUtil.AllClose(sa, sb, 0, "enumerated states");
        using var m = labelled.mean(net);
        using var g1 = new Generator(5); using var g2 = new Generator(5);
        using var xa = labelled.sample_from_mean(m, g1); using var xb = general.sample_from_mean(m, g2);
        TestUtil.AllClose(xa, xb, 0, "samples");
    }

    [Fact]
    public void AnRbmWithGroups_SamplesOneActiveUnitPerGroup_AndMatchesEnumeration()
    {
        // 2 binary units then groups of 2 and 3 on the visible side: p(v | h)'s samples have exactly one active unit per
        // group, and over 20,000 Gibbs-free draws the group frequencies match softmax(η_g) within 5 standard errors + 1e-3;
        // the exact visible marginals sum to 1 within each group (to 1e-12).
        var units = (SoftmaxGroupUnits)UnitType.FromName("Bernoulli+Softmax(2,3)");
        using var gen = new Generator(2);
        using var rbm = boltzmann.RBM(7, 3, visible: units, dtype: ScalarType.Float64, generator: gen);
        using (torch.no_grad()) { rbm.weight.normal_(0, 1, gen); rbm.visible_bias.normal_(0, 1, gen); }
        const int n = 20_000;
        using var h = torch.tensor(new double[] { 1, 0, 1 }, ScalarType.Float64).unsqueeze(0).expand(n, -1).contiguous();
        var (mean, v) = rbm.sample_v(h, generator: gen);
        using (mean) using (v)
        using (var scope = torch.NewDisposeScope())
        {
            var perGroup = torch.stack(new[] { v.narrow(1, 2, 2).sum(1), v.narrow(1, 4, 3).sum(1) }, 1);
            Assert.True(perGroup.eq(1).all().item<bool>(), "a group without exactly one active unit");
            var freq = TestUtil.ToArray(v.mean(new long[] { 0 }));
            var p = TestUtil.ToArray(mean[0]);
            for (int i = 0; i < 7; i++)
                Assert.True(Math.Abs(freq[i] - p[i]) <= 5 * Math.Sqrt(p[i] * (1 - p[i]) / n) + 1e-3, $"unit {i}: frequency {freq[i]} against {p[i]}");
            var marginals = ExactEnumeration.visible_marginals(rbm);
            var sums = TestUtil.ToArray(torch.stack(new[] { marginals.narrow(0, 2, 2).sum(), marginals.narrow(0, 4, 3).sum() }));
            Assert.Equal(1.0, sums[0], 12); Assert.Equal(1.0, sums[1], 12);
        }
        using var bad = boltzmann.RBM(5, 3, visible: units, dtype: ScalarType.Float64);
        var e2 = Assert.Throws<ArgumentException>(() => bad.free_energy(torch.zeros(1, 5, ScalarType.Float64)));
        Assert.Equal("free_energy input: expected more than 5 units (binary units followed by groups of 2, 3) for Bernoulli+Softmax(2,3) units, got 5.", e2.Message);
    }

    [Fact]
    public void Checkpoint_KeepsTheGroups()
    {
        var dir = Directory.CreateTempSubdirectory("tbm-softmax-").FullName;
        try
        {
            using var gen = new Generator(3);
            using var rbm = boltzmann.RBM(5, 2, visible: UnitType.FromName("Softmax(2,3)"), dtype: ScalarType.Float64, generator: gen);
            using (torch.no_grad()) rbm.visible_bias.normal_(0, 1, gen);
            var path = Path.Combine(dir, "rbm.pt");
            Checkpoint.Save(rbm, path);
            using var loaded = Checkpoint.Load<RBM>(path);
            var units = Assert.IsType<SoftmaxGroupUnits>(loaded.visible_units);
            Assert.Equal("Softmax(2,3)", units.Name);
            Assert.Equal(ExactEnumeration.log_partition(rbm), ExactEnumeration.log_partition(loaded), 12);
        }
        finally { Directory.Delete(dir, true); }
    }
}

using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Units;

/// <summary>
/// Gaussian visible units with unit variance beside Bernoulli hidden units (the identities every type must satisfy are in
/// <see cref="UnitTypeConformanceTests"/>, which runs for "Gaussian" through the registry). All in float64.
/// </summary>
public class GaussianUnitsTests
{
    private static RBM GaussianRbm(int nv, int nh, ulong seed)
    {
        using var g = new Generator(seed);
        var rbm = boltzmann.RBM(nv, nh, visible: UnitType.Gaussian, dtype: ScalarType.Float64, generator: g);
        using (torch.no_grad())
        {
            rbm.weight.normal_(0, 0.5, g); rbm.visible_bias.normal_(0, 1, g); rbm.hidden_bias.normal_(0, 0.5, g);
        }
        return rbm;
    }

    [Fact]
    public void FreeEnergy_IsTheClosedForm()
    {
        // F(v) = Σ_i (v_i − b_i)²/2 − Σ_j softplus(c_j + W_j v), to 1e-12.
        using var rbm = GaussianRbm(4, 3, 1);
        using var g = new Generator(2);
        using var v = torch.randn(6, 4, ScalarType.Float64, generator: g).mul_(2);
        using var scope = torch.NewDisposeScope();
        var want = (v - rbm.visible_bias).square().sum(-1).mul(0.5)
                   - nn.functional.softplus(nn.functional.linear(v, rbm.weight, rbm.hidden_bias)).sum(-1);
        using var _ = torch.no_grad();
        TestUtil.AllClose(want, rbm.free_energy(v), 1e-12, "F(v)");
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(0.5)]
    [InlineData(2.0)]
    public void SampleV_IsNormal_WithMeanBPlusWTh_AndVarianceT(double temperature)
    {
        // 40,000 draws of v ~ p(v | h) at T for one h: the sample mean within 5 standard errors (5·√(T/n)) of b + Wᵀh, the
        // sample variance within 5 standard errors (5·T·√(2/n)) of T.
        const int n = 40_000;
        using var rbm = GaussianRbm(3, 4, 3);
        using var h1 = torch.tensor(new double[] { 1, 0, 1, 1 }, ScalarType.Float64);
        using var h = h1.unsqueeze(0).expand(n, -1).contiguous();
        using var g = new Generator(4);
        var (mean, v) = rbm.sample_v(h, temperature, g);
        using (mean) using (v)
        using (var scope = torch.NewDisposeScope())
        {
            var want = TestUtil.ToArray(rbm.visible_net(h1).detach());
            var m = TestUtil.ToArray(v.mean(new long[] { 0 }));
            var s2 = TestUtil.ToArray(v.var(new long[] { 0 }));
            var mu = TestUtil.ToArray(mean[0]);
            for (int i = 0; i < 3; i++)
            {
                Assert.Equal(want[i], mu[i], 12);
                Assert.True(Math.Abs(m[i] - want[i]) <= 5 * Math.Sqrt(temperature / n), $"unit {i}: sample mean {m[i]} against {want[i]}");
                Assert.True(Math.Abs(s2[i] - temperature) <= 5 * temperature * Math.Sqrt(2.0 / n), $"unit {i}: sample variance {s2[i]} against T = {temperature}");
            }
        }
    }

    [Fact]
    public void TemperedChains_DrawWithVarianceT_PerChain()
    {
        // GibbsChains with one temperature per chain: chains at T = 0.25 and T = 4 starting from the same state. With zero
        // weights p(v | h) = N(b, T) whatever h is, so after one step the visible states have mean b and variance T
        // per chain group (5 standard errors as above; a type whose mean were η/T would put the mean at b/T).
        const int n = 20_000;
        using var rbm = GaussianRbm(2, 3, 5);
        using (torch.no_grad()) rbm.weight.zero_();
        using var g = new Generator(6);
        using var chains = new TorchBoltzmann.Sampling.GibbsChains(rbm, g);
        using var start = torch.zeros(2 * n, 2, ScalarType.Float64);
        chains.start(start);
        using var temps = torch.cat(new[] { torch.full(n, 0.25, ScalarType.Float64), torch.full(n, 4.0, ScalarType.Float64) });
        chains.temperatures = temps;
        chains.step();
        var b = TestUtil.ToArray(rbm.visible_bias.detach());
        foreach (var (first, t) in new[] { (0L, 0.25), ((long)n, 4.0) })
        {
            using var scope = torch.NewDisposeScope();
            var rows = chains.visible.narrow(0, first, n);
            var m = TestUtil.ToArray(rows.mean(new long[] { 0 }));
            var s2 = TestUtil.ToArray(rows.var(new long[] { 0 }));
            for (int i = 0; i < 2; i++)
            {
                Assert.True(Math.Abs(m[i] - b[i]) <= 5 * Math.Sqrt(t / n), $"T = {t}, unit {i}: mean {m[i]} against b = {b[i]}");
                Assert.True(Math.Abs(s2[i] - t) <= 5 * t * Math.Sqrt(2.0 / n), $"T = {t}, unit {i}: variance {s2[i]} against {t}");
            }
        }
    }

    [Fact]
    public void DirectCdGradients_EqualAutogradOfTheSurrogateLoss()
    {
        // E_self = (v − b)²/2 is linear in b up to b²/2, which cancels between the phases: the trainer's direct gradients
        // (⟨v⟩_model − ⟨v⟩_data for b) equal autograd of cd_loss = mean F(v_data) − mean F(v_model), to 1e-10 (batches of
        // 8: the trainer's 1/B is exact in single precision for powers of two).
        using var rbm = GaussianRbm(5, 4, 7);
        using var g = new Generator(8);
        using var v0 = torch.randn(8, 5, ScalarType.Float64, generator: g);
        using var vk = torch.randn(8, 5, ScalarType.Float64, generator: g).mul_(1.5).add_(0.3);
        Assert.True(rbm.visible_units.has_linear_bias);
        rbm.zero_grad();
        using (var loss = rbm.cd_loss(v0, vk)) loss.backward();
        using var gw = rbm.weight.grad!.clone();
        using var gb = rbm.visible_bias.grad!.clone();
        using var gc = rbm.hidden_bias.grad!.clone();
        rbm.zero_grad();
        RbmTrainer.WriteCdGradients(rbm, v0, vk);
        TestUtil.AllClose(gw, rbm.weight.grad!, 1e-10, "∂L/∂W");
        TestUtil.AllClose(gb, rbm.visible_bias.grad!, 1e-10, "∂L/∂b");
        TestUtil.AllClose(gc, rbm.hidden_bias.grad!, 1e-10, "∂L/∂c");
        // The bias gradient is not the Bernoulli −(v0 − vk) with a wrong sign or a stray b: check it directly too.
        using var want = vk.mean(new long[] { 0 }) - v0.mean(new long[] { 0 });
        TestUtil.AllClose(want, gb, 1e-12, "∂L/∂b = ⟨v⟩_model − ⟨v⟩_data");
    }

    [Fact]
    public void ValueChecks_AcceptAnyFiniteReal_AndNameWhatCame()
    {
        using var rbm = GaussianRbm(3, 2, 9);
        using var ok = torch.tensor(new double[] { -40, 0.5, 1e6 }, ScalarType.Float64);
        using (var f = rbm.free_energy(ok)) Assert.True(double.IsFinite(f.ToDouble()));
        using var nan = torch.tensor(new double[] { 0, double.NaN, 1 }, ScalarType.Float64);
        var e = Assert.Throws<ArgumentException>(() => rbm.free_energy(nan));
        Assert.Equal("free_energy input: expected finite real values for Gaussian units, got 1 NaN and 0 infinite value(s).", e.Message);
        using var inf = torch.tensor(new double[] { double.PositiveInfinity, 0, double.NegativeInfinity }, ScalarType.Float64);
        e = Assert.Throws<ArgumentException>(() => rbm.forward(inf));
        Assert.Equal("forward input: expected finite real values for Gaussian units, got 0 NaN and 2 infinite value(s).", e.Message);
        using var ints = torch.tensor(new long[] { 0, 1, 2 });
        e = Assert.Throws<ArgumentException>(() => UnitType.Gaussian.check_values(ints, "data"));
        Assert.Equal("data: expected finite real values (a floating-point tensor) for Gaussian units, got Int64.", e.Message);
    }

    [Fact]
    public void LogPartition_RefusesZeroInverseTemperature()
    {
        using var rbm = GaussianRbm(2, 2, 10);
        using var v = torch.zeros(1, 2, ScalarType.Float64);
        // β = 0 concerns the Bernoulli hidden layer only in F_0(v), which is finite; log Z_0 needs the Gaussian integral.
        using (var f = rbm.free_energy(v, 0)) Assert.Equal(-2 * Math.Log(2), f.ToDouble(), 12);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => TorchBoltzmann.Evaluation.ExactEnumeration.log_partition(rbm, 0));
        Assert.Contains("at β = 0 the integral over the reals diverges", e.Message);
    }

    [Fact]
    public void Ais_RefusesGaussianVisibleUnits_WhileExactEnumerationSumsOverTheHiddenLayer()
    {
        // AIS's base-rate path does not fit continuous units: refused with a message naming the type. log Z is exact over
        // the 2³ hidden states: Σ_h e^{cᵀh} Π_i √(2π) e^{((b + Wᵀh)_i² − b_i²)/2}, computed here by hand to 1e-10.
        using var rbm = GaussianRbm(4, 3, 12);
        var e = Assert.Throws<ArgumentException>(() => TorchBoltzmann.Evaluation.AnnealedImportanceSampling.log_partition(rbm));
        Assert.Contains("has Gaussian visible units", e.Message);
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var hs = TorchBoltzmann.Evaluation.ExactEnumeration.all_binary_states(3, ScalarType.Float64);
        var eta = rbm.visible_net(hs);
        var b = rbm.visible_bias;
        var terms = hs.matmul(rbm.hidden_bias) + (eta.square() - b.square()).sum(-1).mul(0.5) + 4 * 0.5 * Math.Log(2 * Math.PI);
        Assert.Equal(terms.logsumexp(0).ToDouble(), TorchBoltzmann.Evaluation.ExactEnumeration.log_partition(rbm), 10);
    }

    [Fact]
    public void Checkpoint_KeepsTheVisibleUnitType()
    {
        var dir = Directory.CreateTempSubdirectory("tbm-gaussian-").FullName;
        try
        {
            using var rbm = GaussianRbm(3, 2, 11);
            var path = Path.Combine(dir, "rbm.pt");
            Checkpoint.Save(rbm, path);
            Assert.Equal("Gaussian", Checkpoint.ReadSidecar(path)["architecture"]?["visible_units"]?.GetValue<string>());
            using var loaded = Checkpoint.Load<RBM>(path);
            Assert.IsType<GaussianUnits>(loaded.visible_units);
            using var v = torch.tensor(new double[] { -1, 0.5, 2 }, ScalarType.Float64);
            using var a = rbm.free_energy(v);
            using var b = loaded.free_energy(v);
            Assert.Equal(a.ToDouble(), b.ToDouble(), 12);
        }
        finally { Directory.Delete(dir, true); }
    }
}

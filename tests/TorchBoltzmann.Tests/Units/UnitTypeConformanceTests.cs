using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Units;

/// <summary>
/// The identities every unit type must satisfy, run for each type in <see cref="UnitType.Registered"/> (a new type is
/// tested by registering it) and at several inverse temperatures β:
/// (1) (1/β) ∂ log-partition(η; β) / ∂η = E[x | η] at T = 1/β (autograd, float64, to 1e-10);
/// (2) the layer's log-partition equals log Σ_x e^{−β[E_self(x;a) − x·(η − a)]} over the listed states (to 1e-10);
/// (3) the sampler's draws are valid states and their average matches the mean (fixed seed, 20,000 draws, within five
///     standard errors of each unit's mean plus 10⁻³);
/// (4) an RBM with the type on either side has the free energy and log Z of brute-force enumeration over (v, h).
/// A continuous type (no <see cref="UnitType.state_count"/>) cannot be listed, so for it
/// (2) integrates each unit's e^{−β[E_self(x;a) − x·(η − a)]} numerically instead (Riemann sum over ±15 standard
///     deviations of the sampler's draws, 6,001 points, to 1e-8 relative);
/// (3) checks that the draws are valid and, in place of "is a listed state", that their variance is T ∂mean/∂η
///     (= (1/β²) ∂² log-partition/∂η², the exponential-family identity) within five standard errors
///     (√(2/20,000) of the variance, relative) plus 10⁻³;
/// (4) uses RBMs with one unit of the type beside three binary units, so that the one continuous dimension can be
///     integrated numerically (Riemann sum over [−60, 60], 24,001 points): F_β and log Z to 1e-8 against that integral
///     and against enumeration of the binary side.
/// </summary>
public class UnitTypeConformanceTests
{
    private const int LayerSize = 5;

    public static TheoryData<string> RegisteredTypes()
    {
        var data = new TheoryData<string>();
        foreach (var u in UnitType.Registered) data.Add(u.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(RegisteredTypes))]
    public void Conforms(string name) => AssertConforms(UnitType.FromName(name));

    [Fact]
    public void TheBuiltInTypesAreRegistered_AndRoundTripThroughTheirNames()
    {
        var names = UnitType.Registered.Select(u => u.Name).ToList();
        Assert.Contains("Bernoulli", names);
        Assert.Contains(names, n => n.StartsWith("Bernoulli+Softmax(", StringComparison.Ordinal));
        foreach (var u in UnitType.Registered) Assert.Equal(u.Name, UnitType.FromName(u.Name).Name);
        Assert.IsType<GaussianUnits>(UnitType.FromName("Gaussian"));
        var e = Assert.Throws<ArgumentException>(() => UnitType.FromName("Poisson"));
        Assert.Contains("Known: Bernoulli, Bernoulli+Softmax(K) with K ≥ 2, Spin, Gaussian", e.Message);
    }

    [Fact]
    public void ANewTypeRegisters_WithoutEditingTheBaseClass_AndIsFoundByName_AndConforms()
    {
        var spins = new SpinUnits();
        if (!UnitType.Registered.Any(u => u.Name == spins.Name))
            UnitType.Register("TestSpin", n => n == "TestSpin" ? new SpinUnits() : null, spins);
        Assert.IsType<SpinUnits>(UnitType.FromName("TestSpin"));
        Assert.Contains(UnitType.Registered, u => u.Name == "TestSpin");
        Assert.Throws<ArgumentException>(() => UnitType.Register("TestSpin", n => n == "TestSpin" ? new SpinUnits() : null, spins));
        AssertConforms(spins);
    }

    [Fact]
    public void AWrongType_FailsTheConformanceChecks()
    {
        // A type whose mean is not the derivative of its log-partition (σ(2η) against softplus(η)) must be caught.
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AssertConforms(new InconsistentUnits()));
    }

    [Theory]
    [InlineData("variance")]
    [InlineData("log-partition")]
    public void AWrongContinuousType_FailsTheConformanceChecks(string flaw)
    {
        // Gaussian units with the sampler's variance doubled, or with the log-partition's constant ½ log(2π/β) dropped:
        // the numerical checks that replace enumeration for continuous types must catch both.
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AssertConforms(new FlawedGaussian(flaw)));
    }

    [Fact]
    public void ZeroInverseTemperature_GivesTheUniformDistribution()
    {
        using var rbm = TestUtil.RandomRbm(4, 3, 5);
        Assert.Equal(7 * Math.Log(2), ExactEnumeration.log_partition(rbm, 0), 10);
        using var pv = ExactEnumeration.visible_distribution(rbm, 0);
        TestUtil.AllClose(torch.full(16, 1.0 / 16, ScalarType.Float64), pv, 1e-12, "p_0(v)");
        Assert.Throws<ArgumentOutOfRangeException>(() => ExactEnumeration.log_partition(rbm, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => rbm.free_energy(torch.zeros(1, 4, ScalarType.Float64), double.NaN));
    }

    [Fact]
    public void TheGenericPath_ForAnyEnergyModel_AgreesWithTheRbmPath()
    {
        using var rbm = TestUtil.RandomRbm(6, 9, 11);
        var wrapped = new WrappedModel(rbm);   // an IEnergyModel that is not an RBM: ExactEnumeration lists its visible states
        foreach (double beta in new[] { 1.0, 0.4 })
        {
            Assert.Equal(ExactEnumeration.log_partition(rbm, beta), ExactEnumeration.log_partition(wrapped, beta), 10);
            using var a = ExactEnumeration.visible_marginals(rbm, beta);
            using var b = ExactEnumeration.visible_marginals(wrapped, beta);
            TestUtil.AllClose(a, b, 1e-12, "visible marginals");
        }
        using var data = torch.tensor(new double[] { 1, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0 }, 2, 6);
        Assert.Equal(ExactEnumeration.log_likelihood(rbm, data), ExactEnumeration.log_likelihood(wrapped, data), 10);
        Assert.Equal(RbmMetrics.mean_free_energy(rbm, data), RbmMetrics.mean_free_energy(wrapped, data), 12);
    }

    /// <summary>Runs the four checks of the class summary on <paramref name="units"/>.</summary>
    internal static void AssertConforms(UnitType units)
    {
        var states = units.state_count(LayerSize) is { } count ? units.enumerate_states(LayerSize, 0, (long)count, ScalarType.Float64) : null;
        using var g = new Generator(7);
        using var bias = torch.randn(LayerSize, ScalarType.Float64, generator: g);
        using var coupling = torch.randn(4, LayerSize, ScalarType.Float64, generator: g).mul_(1.5);
        using var net0 = coupling + bias;
        foreach (double beta in new[] { 1.0, 0.5, 2.0 })
        {
            string at = $"{units.Name} at β = {beta}";
            // (1) mean = (1/β) ∂ log-partition / ∂η.
            using (var net = net0.detach().requires_grad_())
            {
                using var lp = units.log_partition(net, bias, beta);
                using var total = lp.sum();
                total.backward();
                using var mean = units.mean(net0, 1 / beta);
                using var scaled = mean * beta;
                TestUtil.AllClose(scaled, net.grad!, 1e-10, $"{at}: ∂ log-partition/∂η against β·mean");
            }
            // (2) log-partition against the listed states, or (continuous units) against numerical integration.
            if (states is null)
                AssertLogPartitionIntegrates(units, net0, bias, beta, g, at);
            if (states is not null)
            {
                using var lp = units.log_partition(net0, bias, beta);
                using var layer = lp.sum(-1);
                using var se = units.self_energy(states, bias).sum(-1);              // (S)
                using var coupled = net0.sub(bias).matmul(states.t());              // (B, S): x·(η − a)
                using var exponent = coupled.sub(se.unsqueeze(0)).mul(beta);
                using var brute = exponent.logsumexp(1);
                TestUtil.AllClose(brute, layer, 1e-10, $"{at}: log-partition against enumeration");
            }
            // (3) samples are valid and average to the mean.
            using (var mean = units.mean(net0, 1 / beta))
            {
                const int draws = 20_000;
                using var many = mean.unsqueeze(0).expand(draws, -1, -1).reshape(-1, LayerSize).contiguous();
                using var x = units.sample_from_mean(many, 1 / beta, g).reshape(draws, -1, LayerSize);
                units.check_values(x.reshape(-1, LayerSize), $"{at}: samples");
                if (states is not null)
                {
                    using var flat = x.reshape(-1, 1, LayerSize);
                    using var isState = flat.eq(states.unsqueeze(0)).all(-1).any(-1).all();
                    Assert.True(isState.item<bool>(), $"{at}: a sample is not one of the layer's states");
                }
                using var avg = x.mean(new long[] { 0 });
                using var sd = x.std(new long[] { 0 });
                var m = TestUtil.ToArray(mean); var a = TestUtil.ToArray(avg); var s = TestUtil.ToArray(sd);
                for (int i = 0; i < m.Length; i++)
                    Assert.True(Math.Abs(m[i] - a[i]) <= 5 * s[i] / Math.Sqrt(draws) + 1e-3, $"{at}: sample mean {a[i]:G6} against mean {m[i]:G6} (unit {i})");
                if (states is null)
                {
                    // Var_T[x] = T ∂mean/∂η for independent units (autograd gives the diagonal of the Jacobian).
                    using var net = net0.detach().requires_grad_();
                    using var mt = units.mean(net, 1 / beta);
                    using var total = mt.sum();
                    total.backward();
                    using var variance = net.grad!.div(beta);
                    using var sampleVar = x.var(new long[] { 0 });
                    var want = TestUtil.ToArray(variance); var got = TestUtil.ToArray(sampleVar);
                    for (int i = 0; i < want.Length; i++)
                        Assert.True(Math.Abs(want[i] - got[i]) <= 5 * Math.Sqrt(2.0 / draws) * want[i] + 1e-3, $"{at}: sample variance {got[i]:G6} against T ∂mean/∂η = {want[i]:G6} (unit {i})");
                }
            }
        }
        // (4) free energy and log Z against brute force, the type on the hidden side and on the visible side.
        if (states is null)
        {
            AssertContinuousRbmIntegrates(units);
            return;
        }
        foreach (bool onVisible in new[] { false, true })
        {
            using var gen = new Generator(3);
            using var rbm = onVisible
                ? boltzmann.RBM(LayerSize, 3, visible: units, dtype: ScalarType.Float64, generator: gen)
                : boltzmann.RBM(3, LayerSize, hidden: units, dtype: ScalarType.Float64, generator: gen);
            using (torch.no_grad())
            {
                rbm.weight.normal_(0, 0.8, gen); rbm.visible_bias.normal_(0, 0.8, gen); rbm.hidden_bias.normal_(0, 0.8, gen);
            }
            using var binary = ExactEnumeration.all_binary_states(3, ScalarType.Float64);
            var (vs, hs) = onVisible ? (states, binary) : (binary, states);
            long nv = vs.shape[0], nh = hs.shape[0];
            using var v = vs.repeat_interleave(nh, 0);
            using var h = hs.repeat(nv, 1);
            foreach (double beta in new[] { 1.0, 0.3 })
            {
                string at = $"{units.Name} on the {(onVisible ? "visible" : "hidden")} side, β = {beta}";
                using var _ = torch.no_grad();
                using var e = rbm.energy(v, h);
                using var negBE = e.mul(-beta).reshape(nv, nh);
                using var bruteF = negBE.logsumexp(1).neg();
                using var f = rbm.free_energy(vs, beta);
                TestUtil.AllClose(bruteF, f, 1e-10, $"{at}: F_β(v)");
                using var all = negBE.reshape(-1).logsumexp(0);
                Assert.True(Math.Abs(all.ToDouble() - ExactEnumeration.log_partition(rbm, beta)) < 1e-9, $"{at}: log Z_β");
            }
        }
        states.Dispose();
    }

    /// <summary>Check (2) for a continuous type: each unit's log-partition against a Riemann sum over a wide grid.</summary>
    private static void AssertLogPartitionIntegrates(UnitType units, Tensor net0, Tensor bias, double beta, Generator g, string at)
    {
        using var scope = torch.NewDisposeScope();
        using var __ = torch.no_grad();
        var lp = TestUtil.ToArray(units.log_partition(net0, bias, beta));
        var mean = units.mean(net0, 1 / beta);
        var draws = units.sample_from_mean(mean.unsqueeze(0).expand(2_000, -1, -1).contiguous(), 1 / beta, g);
        var sd = TestUtil.ToArray(draws.std(new long[] { 0 }));
        var m = TestUtil.ToArray(mean);
        var a = TestUtil.ToArray(bias);
        var eta = TestUtil.ToArray(net0);
        const int points = 6_001;
        for (int k = 0; k < eta.Length; k++)
        {
            int i = k % LayerSize;
            double half = 15 * sd[k], dx = 2 * half / (points - 1);
            var x = torch.linspace(m[k] - half, m[k] + half, points, dtype: ScalarType.Float64).reshape(points, 1);
            var biasI = torch.full(1, a[i], dtype: ScalarType.Float64);
            var selfE = units.self_energy(x, biasI).reshape(points);
            var integrand = x.reshape(points).mul(eta[k] - a[i]).sub(selfE).mul(beta);
            double numeric = integrand.logsumexp(0).ToDouble() + Math.Log(dx);
            Assert.True(Math.Abs(numeric - lp[k]) <= 1e-8 * Math.Max(1, Math.Abs(lp[k])),
                $"{at}: log-partition {lp[k]:R} against numerical integration {numeric:R} (η = {eta[k]:G4}, a = {a[i]:G4})");
        }
    }

    /// <summary>
    /// Check (4) for a continuous type: RBMs with one unit of the type (visible or hidden) and three binary units on the
    /// other side. F_β of the binary side's enumeration and of the continuous unit's integral, and log Z both ways.
    /// </summary>
    private static void AssertContinuousRbmIntegrates(UnitType units)
    {
        const int points = 24_001;
        const double half = 60;
        double dx = 2 * half / (points - 1);
        foreach (bool onVisible in new[] { false, true })
        {
            using var gen = new Generator(3);
            using var rbm = onVisible
                ? boltzmann.RBM(1, 3, visible: units, dtype: ScalarType.Float64, generator: gen)
                : boltzmann.RBM(3, 1, hidden: units, dtype: ScalarType.Float64, generator: gen);
            using (torch.no_grad())
            {
                rbm.weight.normal_(0, 0.8, gen); rbm.visible_bias.normal_(0, 0.8, gen); rbm.hidden_bias.normal_(0, 0.8, gen);
            }
            using var scope = torch.NewDisposeScope();
            using var _ = torch.no_grad();
            var binary = ExactEnumeration.all_binary_states(3, ScalarType.Float64);            // (8, 3)
            var grid = torch.linspace(-half, half, points, dtype: ScalarType.Float64).reshape(points, 1);
            foreach (double beta in new[] { 1.0, 0.3 })
            {
                string at = $"{units.Name} (one unit) on the {(onVisible ? "visible" : "hidden")} side, β = {beta}";
                // −βE over every (binary state, grid point) pair, shape (8, points).
                var v = onVisible ? grid.repeat(8, 1) : binary.repeat_interleave(points, 0);
                var h = onVisible ? binary.repeat_interleave(points, 0) : grid.repeat(8, 1);
                var negBE = rbm.energy(v, h).mul(-beta).reshape(8, points);
                double logZ = negBE.reshape(-1).logsumexp(0).ToDouble() + Math.Log(dx);
                Assert.True(Math.Abs(logZ - ExactEnumeration.log_partition(rbm, beta)) <= 1e-8 * Math.Max(1, Math.Abs(logZ)),
                    $"{at}: log Z_β {ExactEnumeration.log_partition(rbm, beta):R} against numerical integration {logZ:R}");
                if (onVisible)
                {
                    // F_β(v) = −log Σ_h e^{−βE(v,h)} at some grid points, against the enumeration over h.
                    var vs = grid.narrow(0, points / 2 - 300, 600);   // v ∈ [−1.5, 1.5)
                    var brute = negBE.narrow(1, points / 2 - 300, 600).logsumexp(0).neg();
                    TestUtil.AllClose(brute, rbm.free_energy(vs, beta), 1e-10, $"{at}: F_β(v)");
                }
                else
                {
                    // F_β(v) = −log ∫ e^{−βE(v,h)} dh for each binary v, against the closed form.
                    var brute = negBE.logsumexp(1).add(Math.Log(dx)).neg();
                    var f = rbm.free_energy(binary, beta);
                    var diff = (brute - f).abs().max().ToDouble();
                    Assert.True(diff <= 1e-8, $"{at}: F_β(v) off numerical integration by {diff:G3}");
                }
            }
        }
    }

    /// <summary>Spins x ∈ {−1, +1}: E_self = −a·x, log-partition log(e^{βη} + e^{−βη}), mean tanh(η/T).</summary>
    private sealed class SpinUnits : UnitType
    {
        public override string Name => "TestSpin";
        public override Tensor self_energy(Tensor x, Tensor bias) => x.mul(bias).neg_();
        public override Tensor log_partition(Tensor net, Tensor bias, double beta = 1.0)
        {
            using var scaled = net.mul(2 * beta);
            using var sp = nn.functional.softplus(scaled);
            using var shift = net.mul(beta);
            return sp - shift;
        }
        public override Tensor mean(Tensor net, double temperature = 1.0) => torch.tanh(net / temperature);
        public override Tensor sample_from_mean(Tensor mean, Generator? generator = null)
        {
            using var u = torch.rand(mean.shape, dtype: mean.dtype, device: mean.device, generator: generator);
            using var p = mean.add(1).div_(2);
            using var up = u.lt(p).to_type(mean.dtype);
            return up.mul(2).sub_(1);
        }
        public override bool has_linear_bias => true;
        public override IReadOnlyList<double>? discrete_values { get; } = new double[] { -1, 1 };
        public override void check_values(Tensor x, string what)
        {
            using var ok = x.abs().eq(1).all();
            if (!ok.item<bool>()) throw new ArgumentException($"{what}: expected values in {{−1, +1}}.");
        }
    }

    /// <summary>Bernoulli with a mean that does not match its log-partition: must fail check (1).</summary>
    private sealed class InconsistentUnits : UnitType
    {
        public override string Name => "Inconsistent";
        public override Tensor self_energy(Tensor x, Tensor bias) => UnitType.Bernoulli.self_energy(x, bias);
        public override Tensor log_partition(Tensor net, Tensor bias, double beta = 1.0) => UnitType.Bernoulli.log_partition(net, bias, beta);
        public override Tensor mean(Tensor net, double temperature = 1.0) => torch.sigmoid(net * (2 / temperature));
        public override Tensor sample_from_mean(Tensor mean, Generator? generator = null) => UnitType.Bernoulli.sample_from_mean(mean, generator);
        public override IReadOnlyList<double>? discrete_values => UnitType.Bernoulli.discrete_values;
        public override void check_values(Tensor x, string what) => UnitType.Bernoulli.check_values(x, what);
    }

    /// <summary>Gaussian units with one flaw: the sampler's variance doubled, or the log-partition's constant dropped.</summary>
    private sealed class FlawedGaussian(string flaw) : UnitType
    {
        private static readonly UnitType G = UnitType.Gaussian;
        public override string Name => "FlawedGaussian";
        public override Tensor self_energy(Tensor x, Tensor bias) => G.self_energy(x, bias);
        public override Tensor log_partition(Tensor net, Tensor bias, double beta = 1.0)
        {
            var lp = G.log_partition(net, bias, beta);
            return flaw == "log-partition" ? lp.sub_(0.5 * Math.Log(2 * Math.PI / beta)) : lp;
        }
        public override Tensor mean(Tensor net, double temperature = 1.0) => G.mean(net, temperature);
        public override Tensor sample_from_mean(Tensor mean, Generator? generator = null) => sample_from_mean(mean, 1.0, generator);
        public override Tensor sample_from_mean(Tensor mean, double temperature, Generator? generator = null)
            => G.sample_from_mean(mean, flaw == "variance" ? 2 * temperature : temperature, generator);
        public override bool has_linear_bias => true;
        public override IReadOnlyList<double>? discrete_values => null;
        public override void check_values(Tensor x, string what) => G.check_values(x, what);
    }

    /// <summary>An <see cref="IEnergyModel"/> that is not an <see cref="RBM"/>, delegating to one.</summary>
    private sealed class WrappedModel(RBM rbm) : IEnergyModel
    {
        public int n_visible => rbm.n_visible;
        public UnitType visible_units => rbm.visible_units;
        public Device device => rbm.device;
        public ScalarType dtype => rbm.dtype;
        public Tensor free_energy(Tensor v, double beta = 1.0) => rbm.free_energy(v, beta);
        public void check_visible(Tensor v, string what = "visible input") => rbm.check_visible(v, what);
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Units;

/// <summary>
/// Noisy rectified linear hidden units (Nair &amp; Hinton 2010): given the net input x = η, a unit takes
/// <code>h = max(0, x + ε),   ε ~ N(0, σ(x)),   σ the logistic sigmoid (a variance, not a standard deviation).</code>
/// They approximate a stepped sigmoid unit (SSU): infinitely many binary copies with the same weights and biases offset by
/// −0.5, −1.5, −2.5, …, whose number of active copies has mean Σ_{i≥1} σ(x − i + 0.5) ≈ log(1 + e^x) and variance ≈ σ(x).
/// </summary>
/// <remarks>
/// <para><b>Conditional mean.</b> The mean that <see cref="mean(Tensor, double)"/> returns is that of the sampler, the
/// rectified Gaussian: with s = √σ(x),
/// <code>E[h | x] = x Φ(x/s) + s φ(x/s)</code>
/// (Φ, φ the standard normal distribution and density), so that sample averages converge to it.</para>
/// <para><b>Temperature.</b> At T the SSU's copies are on with σ((x − i + 0.5)/T), whose sum is ≈ T·log(1 + e^{x/T}); the
/// unit at T is taken as T times the unit at T = 1 fed x/T: h = T·max(0, x/T + ε), ε ~ N(0, σ(x/T)), mean T·E[h | x/T].</para>
/// <para><b>Free energy (an approximation, stated).</b> The rectified unit has no closed-form log-partition. The one used
/// is that of the SSU it approximates, with N = <see cref="Copies"/> copies:
/// <code>log-partition(x; β) = Σ_{i=1}^{N} softplus(β(x − i + 0.5))</code>
/// exact for an SSU of N copies. Its derivative (1/β)∂/∂x = Σ_i σ(β(x − i + 0.5)) is the SSU mean, close to log(1 + e^x)
/// but not the rectified-Gaussian mean above (at x = 0 they are ≈ 0.68 and φ(0)·√σ(0) ≈ 0.28), so free energies, AIS and
/// exact enumeration over visible states for a model with these hidden units describe the SSU model, while Gibbs chains
/// sample the NReLU one. The type is therefore not registered with the conformance tests (<see cref="UnitType.Registered"/>),
/// whose identities it meets only approximately; its name still loads from checkpoints through
/// <see cref="UnitType.Register"/> when an application registers it.</para>
/// <para><b>Training.</b> E_self(h; c) = −c·h is linear in the bias, so the trainer's direct CD gradients apply with
/// p(h|v) replaced by E[h | v]: ⟨E[h|v] vᵀ⟩_data − ⟨E[h|v] vᵀ⟩_model, as Nair &amp; Hinton train their NReLU RBMs.</para>
/// <para><b>Sampling from the mean.</b> The library's samplers pass the conditional mean, not x. E[h | x] is increasing in x,
/// so <see cref="sample_from_mean(Tensor, Generator?)"/> recovers x by bisection (60 halvings on [−10, max(m, 0)],
/// since E[h|x] ≥ x; below x ≈ −3 the mean is 0 to double precision and so is every sample) and then draws.</para>
/// </remarks>
public sealed class NReluUnits : UnitType
{
    /// <summary>The name stored in checkpoints.</summary>
    public const string TypeName = "NReLU";

    /// <summary>Copies N of the stepped sigmoid unit whose log-partition stands in for the free energy (64).</summary>
    public const int Copies = 64;

    /// <inheritdoc />
    public override string Name => TypeName;

    /// <summary>E_self(h; c) = −c·h, elementwise.</summary>
    public override Tensor self_energy(Tensor x, Tensor bias) => x.mul(bias).neg_();

    /// <summary>The SSU approximation Σ_{i=1}^{N} softplus(β(η − i + 0.5)), N = <see cref="Copies"/> (see the remarks).</summary>
    public override Tensor log_partition(Tensor net, Tensor bias, double beta = 1.0)
    {
        CheckBeta(beta);
        using var scope = torch.NewDisposeScope();
        var offsets = torch.arange(1, Copies + 1, dtype: net.dtype, device: net.device).sub_(0.5);
        var lp = nn.functional.softplus(net.unsqueeze(-1).sub(offsets).mul_(beta)).sum(-1);
        return lp.MoveToOuterDisposeScope();
    }

    /// <summary>E[h | x] = x Φ(x/s) + s φ(x/s), s = √σ(x), for x = η at T = 1; at T, T·E[h | η/T].</summary>
    public override Tensor mean(Tensor net, double temperature = 1.0)
    {
        Checks.Temperature(temperature);
        using var scope = torch.NewDisposeScope();
        var x = temperature == 1.0 ? net : net.div(temperature);
        var m = RectifiedMean(x);
        if (temperature != 1.0) m = m.mul_(temperature);
        return m.MoveToOuterDisposeScope();
    }

    /// <summary>In place, one temperature per row: η ← T·E[h | η/T].</summary>
    public override Tensor mean_(Tensor net, Tensor temperature)
    {
        using var scope = torch.NewDisposeScope();
        var m = RectifiedMean(net.div(temperature)).mul_(temperature);
        return net.copy_(m);
    }

    /// <summary>The rectified-Gaussian mean at T = 1: x Φ(x/s) + s φ(x/s), s = √σ(x).</summary>
    private static Tensor RectifiedMean(Tensor x)
    {
        var s = torch.sigmoid(x).sqrt_();
        var z = x.div(s);
        var cdf = z.div(-Math.Sqrt(2)).erfc().mul_(0.5);                          // Φ(z) = ½ erfc(−z/√2)
        var pdf = z.square().mul_(-0.5).exp_().mul_(1 / Math.Sqrt(2 * Math.PI)); // φ(z)
        return x.mul(cdf).add_(s.mul(pdf));
    }

    /// <summary>The net input x whose rectified mean is <paramref name="mean"/> (T = 1), by bisection (see the remarks).</summary>
    public static Tensor net_from_mean(Tensor mean)
    {
        ArgumentNullException.ThrowIfNull(mean);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var lo = torch.full_like(mean, -10.0);
        var hi = mean.clamp_min(0).add(1e-12);
        for (int i = 0; i < 60; i++)
        {
            using var inner = torch.NewDisposeScope();
            var mid = lo.add(hi).mul_(0.5);
            var below = RectifiedMean(mid).lt(mean);   // g(mid) < m: the root is above mid
            lo.copy_(torch.where(below, mid, lo));
            hi.copy_(torch.where(below, hi, mid));
        }
        return lo.add(hi).mul_(0.5).MoveToOuterDisposeScope();
    }

    /// <summary>h = max(0, x + √σ(x) ε), ε ~ N(0, 1), with x recovered from the mean (T = 1).</summary>
    public override Tensor sample_from_mean(Tensor mean, Generator? generator = null) => Draw(mean, null, generator);

    /// <summary>h = T·max(0, x + √σ(x) ε) with x = η/T recovered from the mean at T.</summary>
    public override Tensor sample_from_mean(Tensor mean, double temperature, Generator? generator = null)
    {
        Checks.Temperature(temperature);
        if (temperature == 1.0) return Draw(mean, null, generator);
        using var t = torch.tensor(temperature, mean.dtype, mean.device);
        return Draw(mean, t, generator);
    }

    /// <summary>As above with one temperature per row, broadcast against <paramref name="mean"/>.</summary>
    public override Tensor sample_from_mean(Tensor mean, Tensor temperature, Generator? generator = null) => Draw(mean, temperature, generator);

    private static Tensor Draw(Tensor mean, Tensor? temperature, Generator? generator)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var m = temperature is null ? mean : mean.div(temperature);
        var x = net_from_mean(m);
        var noise = torch.randn(mean.shape, dtype: mean.dtype, device: mean.device, generator: generator);
        var h = noise.mul_(torch.sigmoid(x).sqrt_()).add_(x).clamp_min_(0);
        if (temperature is not null) h = h.mul_(temperature);
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>Start states: draws at x = 0 (mean ≈ 0.28).</summary>
    public override Tensor initial_states(int n_chains, int n, ScalarType dtype, Device? device = null, Generator? generator = null)
    {
        using var zero = torch.zeros(n_chains, n, dtype: dtype, device: device);
        using var m = mean(zero);
        return sample_from_mean(m, generator);
    }

    /// <inheritdoc />
    public override bool has_linear_bias => true;

    /// <summary>Null: the units are continuous.</summary>
    public override IReadOnlyList<double>? discrete_values => null;

    /// <summary>Requires finite values ≥ 0.</summary>
    public override void check_values(Tensor x, string what)
    {
        if (x.numel() == 0) return;
        using var _ = torch.no_grad();
        double lo, hi;
        using (var min = x.min()) lo = min.ToDouble();
        using (var max = x.max()) hi = max.ToDouble();
        if (double.IsNaN(lo) || double.IsNaN(hi) || !double.IsFinite(hi) || lo < 0)
            throw new ArgumentException($"{what}: expected finite values ≥ 0 for NReLU units, got values in [{lo:G4}, {hi:G4}].");
    }
}

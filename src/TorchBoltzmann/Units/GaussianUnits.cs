using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Units;

/// <summary>
/// Real-valued units with unit variance (for standardised data: each visible unit with mean 0 and variance 1 over the
/// training set), as in the Gaussian–Bernoulli RBM of Hinton's practical guide (§13.2) with σ = 1:
/// E_self(x; a) = (x − a)²/2, so that p(x | η) = N(η, 1) with η = a + coupling.
/// </summary>
/// <remarks>
/// <para>At temperature T = 1/β, p_β(x | η) ∝ e^{−β[(x − a)²/2 − x(η − a)]} ∝ e^{−β(x − η)²/2}: the mean stays η and the
/// variance is T. <see cref="mean(Tensor, double)"/> therefore ignores T, and the samplers that take a temperature
/// (<see cref="sample_from_mean(Tensor, double, Generator?)"/>) draw with variance T; the temperature-free
/// <see cref="sample_from_mean(Tensor, Generator?)"/> draws at T = 1.</para>
/// <para>The log-partition is the Gaussian integral in closed form,
/// log ∫ e^{−β[(x − a)²/2 − x(η − a)]} dx = β(η² − a²)/2 + ½ log(2π/β); it diverges at β = 0 (no uniform
/// distribution over the reals), so β must be positive.</para>
/// <para>E_self is linear in the bias up to the term a²/2, which does not depend on x: the free energy's gradient
/// ∂F/∂a = a − x differs from the Bernoulli one (−x) by a, which is the same in the positive and negative phase and so
/// cancels in every CD / PCD difference. The trainer's direct CD gradients (⟨x⟩_model − ⟨x⟩_data for the bias) are
/// therefore exact for this type, and <see cref="has_linear_bias"/> is true.</para>
/// </remarks>
public sealed class GaussianUnits : UnitType
{
    /// <summary>The name stored in checkpoints.</summary>
    public const string TypeName = "Gaussian";

    /// <inheritdoc />
    public override string Name => TypeName;

    /// <summary>E_self(x; a) = (x − a)²/2, elementwise.</summary>
    public override Tensor self_energy(Tensor x, Tensor bias)
    {
        using var d = x.sub(bias);
        return d.square().mul_(0.5);
    }

    /// <summary>
    /// log ∫ e^{−β[(x − a)²/2 − x(η − a)]} dx = β(η² − a²)/2 + ½ log(2π/β) per unit (completing the square:
    /// (x − a)²/2 − x(η − a) = (x − η)²/2 + (a² − η²)/2).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">β is not finite and positive.</exception>
    public override Tensor log_partition(Tensor net, Tensor bias, double beta = 1.0)
    {
        CheckBeta(beta);
        if (beta == 0)
            throw new ArgumentOutOfRangeException(nameof(beta), beta, "Gaussian units need β > 0: at β = 0 the integral over the reals diverges.");
        using var scope = torch.NewDisposeScope();
        var lp = net.square().sub(bias.square()).mul(0.5 * beta).add(0.5 * Math.Log(2 * Math.PI / beta));
        return lp.MoveToOuterDisposeScope();
    }

    /// <summary>E[x | η] = η at every temperature (a copy of <paramref name="net"/>).</summary>
    public override Tensor mean(Tensor net, double temperature = 1.0) => net.clone();

    /// <summary>In place: E[x | η] = η, so <paramref name="net"/> is returned unchanged.</summary>
    public override Tensor mean_(Tensor net, double temperature = 1.0) => net;

    /// <summary>In place: E[x | η] = η at every per-row temperature, so <paramref name="net"/> is returned unchanged.</summary>
    public override Tensor mean_(Tensor net, Tensor temperature) => net;

    /// <summary>x = μ + ε, ε ~ N(0, 1): a draw at T = 1.</summary>
    public override Tensor sample_from_mean(Tensor mean, Generator? generator = null)
    {
        var noise = torch.randn(mean.shape, dtype: mean.dtype, device: mean.device, generator: generator);
        return noise.add_(mean);
    }

    /// <summary>x = μ + √T ε, ε ~ N(0, 1): variance T.</summary>
    public override Tensor sample_from_mean(Tensor mean, double temperature, Generator? generator = null)
    {
        Checks.Temperature(temperature);
        var noise = torch.randn(mean.shape, dtype: mean.dtype, device: mean.device, generator: generator);
        return noise.mul_(Math.Sqrt(temperature)).add_(mean);
    }

    /// <summary>x = μ + √T ε per row, T broadcast against <paramref name="mean"/> (e.g. shape (B, 1)).</summary>
    public override Tensor sample_from_mean(Tensor mean, Tensor temperature, Generator? generator = null)
    {
        var noise = torch.randn(mean.shape, dtype: mean.dtype, device: mean.device, generator: generator);
        using var sd = temperature.sqrt();
        return noise.mul_(sd).add_(mean);
    }

    /// <summary>Start states N(0, 1), the distribution of standardised data.</summary>
    public override Tensor initial_states(int n_chains, int n, ScalarType dtype, Device? device = null, Generator? generator = null)
        => torch.randn(n_chains, n, dtype: dtype, device: device, generator: generator);

    /// <inheritdoc />
    public override bool has_linear_bias => true;

    /// <summary>Null: the units are continuous.</summary>
    public override IReadOnlyList<double>? discrete_values => null;

    /// <summary>Requires finite real values (no NaN, no ±∞).</summary>
    public override void check_values(Tensor x, string what)
    {
        if (x.numel() == 0) return;
        using var _ = torch.no_grad();
        if (!x.is_floating_point())
            throw new ArgumentException($"{what}: expected finite real values (a floating-point tensor) for Gaussian units, got {x.dtype}.");
        using var finite = torch.isfinite(x);
        using var all = finite.all();
        if (all.item<bool>()) return;
        using var nan = torch.isnan(x);
        using var nanCount = nan.sum();
        using var notFinite = finite.logical_not();
        using var badCount = notFinite.sum();
        long nans = nanCount.ToInt64(), bad = badCount.ToInt64();
        throw new ArgumentException($"{what}: expected finite real values for Gaussian units, got {nans} NaN and {bad - nans} infinite value(s).");
    }
}

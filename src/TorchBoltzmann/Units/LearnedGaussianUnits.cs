using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Units;

/// <summary>
/// Real-valued visible units with a learned variance per unit, in the parametrisation of Cho, Ilin &amp; Raiko (2011,
/// "Improved learning of Gaussian–Bernoulli restricted Boltzmann machines"):
/// <code>E(v, h) = Σ_i (v_i − b_i)²/(2σ_i²) − Σ_ij h_j W_ji v_i/σ_i² − Σ_j c_j h_j,   σ_i² = e^{z_i}</code>
/// so that p(v_i | h) = N(b_i + (Wᵀh)_i, σ_i²) and p(h_j = 1 | v) = σ(c_j + Σ_i W_ji v_i/σ_i²). The log-variances
/// z = <see cref="Modules.RBM.visible_log_variance"/> are a parameter of the RBM (kept positive through the exponential),
/// trained with the others.
/// </summary>
/// <remarks>
/// <para>The RBM binds the type to its parameter when it is created (<c>boltzmann.RBM(n, m, visible: new LearnedGaussianUnits())</c>);
/// the coupling then sees v/σ² (<see cref="UnitType.coupling_input"/>). An unbound instance (as <see cref="UnitType.FromName"/>
/// returns it, and as the registry's conformance example) has σ² = 1 and behaves as <see cref="GaussianUnits"/>.</para>
/// <para>At inverse temperature β, with the visible net input η = b + Wᵀh:
/// p_β(v_i | h) ∝ e^{−β[(v_i − b_i)²/(2σ_i²) − v_i(η_i − b_i)/σ_i²]} ∝ e^{−β(v_i − η_i)²/(2σ_i²)}, a normal with mean η_i
/// and variance σ_i²/β, and the log-partition per unit is
/// <code>log ∫ e^{−β[(x − b)²/(2σ²) − x(η − b)/σ²]} dx = β(η² − b²)/(2σ²) + ½ log(2πσ²/β).</code></para>
/// <para>Gradients: the bias term is not linear (E_self = (v − b)²/(2σ²)) and z enters the coupling, so the trainer
/// takes the autograd path (the surrogate loss <see cref="Modules.RBM.cd_loss"/>; <see cref="has_linear_bias"/> is
/// false). Its gradient is Cho et al.'s: for the free energy F(v) = Σ_i (v_i − b_i)²/(2σ_i²) − Σ_j softplus(c_j + Σ_i W_ji v_i/σ_i²),
/// ∂F/∂b_i = −(v_i − b_i)/σ_i², ∂F/∂W_ji = −p_j v_i/σ_i², ∂F/∂z_i = −(v_i − b_i)²/(2σ_i²) + v_i (Wᵀp)_i/σ_i², p = p(h|v)
/// (checked against autograd in the tests).</para>
/// </remarks>
public sealed class LearnedGaussianUnits : UnitType
{
    /// <summary>The name stored in checkpoints.</summary>
    public const string TypeName = "GaussianLearnedVariance";

    private readonly Func<Tensor>? _logVariance;

    /// <summary>An unbound instance (σ² = 1 until an RBM binds it to its log-variance parameter).</summary>
    public LearnedGaussianUnits() { }

    private LearnedGaussianUnits(Func<Tensor> logVariance) => _logVariance = logVariance;

    /// <summary>An instance reading its log-variances z (shape (n)) from <paramref name="log_variance"/> at every call (the RBM passes its parameter).</summary>
    public LearnedGaussianUnits bind(Func<Tensor> log_variance) => new(log_variance ?? throw new ArgumentNullException(nameof(log_variance)));

    /// <summary>The log-variances z = log σ² this instance reads, or null when unbound (σ² = 1).</summary>
    public Tensor? log_variance => _logVariance?.Invoke();

    /// <inheritdoc />
    public override string Name => TypeName;

    /// <summary>E_self(x; b) = (x − b)²/(2σ²) = ½(x − b)² e^{−z}, elementwise.</summary>
    public override Tensor self_energy(Tensor x, Tensor bias)
    {
        using var scope = torch.NewDisposeScope();
        var e = x.sub(bias).square().mul_(0.5);
        if (log_variance is { } z) e = e.mul(z.neg().exp());
        return e.MoveToOuterDisposeScope();
    }

    /// <summary>β(η² − b²)/(2σ²) + ½ log(2πσ²/β) per unit (see the remarks).</summary>
    /// <exception cref="ArgumentOutOfRangeException">β is not finite and positive.</exception>
    public override Tensor log_partition(Tensor net, Tensor bias, double beta = 1.0)
    {
        CheckBeta(beta);
        if (beta == 0)
            throw new ArgumentOutOfRangeException(nameof(beta), beta, "Gaussian units need β > 0: at β = 0 the integral over the reals diverges.");
        using var scope = torch.NewDisposeScope();
        var quad = net.square().sub(bias.square()).mul(0.5 * beta);
        Tensor lp;
        if (log_variance is { } z) lp = quad.mul(z.neg().exp()).add(z.mul(0.5)).add(0.5 * Math.Log(2 * Math.PI / beta));
        else lp = quad.add(0.5 * Math.Log(2 * Math.PI / beta));
        return lp.MoveToOuterDisposeScope();
    }

    /// <summary>x/σ² = x e^{−z}: what the hidden layer's net input sees (c + W(v/σ²)).</summary>
    public override Tensor coupling_input(Tensor x) => log_variance is { } z ? x.mul(z.neg().exp()) : x.alias();

    /// <inheritdoc />
    public override bool scales_coupling => _logVariance is not null;

    /// <summary>E[x | η] = η at every temperature (a copy).</summary>
    public override Tensor mean(Tensor net, double temperature = 1.0) => net.clone();

    /// <summary>In place: E[x | η] = η, so <paramref name="net"/> is returned unchanged.</summary>
    public override Tensor mean_(Tensor net, double temperature = 1.0) => net;

    /// <summary>In place, per-row temperatures: E[x | η] = η.</summary>
    public override Tensor mean_(Tensor net, Tensor temperature) => net;

    /// <summary>x = μ + σε, ε ~ N(0, 1).</summary>
    public override Tensor sample_from_mean(Tensor mean, Generator? generator = null) => Draw(mean, null, generator);

    /// <summary>x = μ + σ√T ε: variance σ²T.</summary>
    public override Tensor sample_from_mean(Tensor mean, double temperature, Generator? generator = null)
    {
        Checks.Temperature(temperature);
        return Draw(mean, Math.Sqrt(temperature), generator);
    }

    /// <summary>x = μ + σ√T ε with one T per row, broadcast against <paramref name="mean"/>.</summary>
    public override Tensor sample_from_mean(Tensor mean, Tensor temperature, Generator? generator = null)
    {
        using var scope = torch.NewDisposeScope();
        var noise = torch.randn(mean.shape, dtype: mean.dtype, device: mean.device, generator: generator).mul_(temperature.sqrt());
        if (log_variance is { } z) noise = noise.mul_(z.detach().mul(0.5).exp_());
        return noise.add_(mean).MoveToOuterDisposeScope();
    }

    private Tensor Draw(Tensor mean, double? sd, Generator? generator)
    {
        using var scope = torch.NewDisposeScope();
        var noise = torch.randn(mean.shape, dtype: mean.dtype, device: mean.device, generator: generator);
        if (sd is { } s && s != 1.0) noise = noise.mul_(s);
        if (log_variance is { } z) noise = noise.mul_(z.detach().mul(0.5).exp_());
        return noise.add_(mean).MoveToOuterDisposeScope();
    }

    /// <summary>Start states N(0, 1), the distribution of standardised data.</summary>
    public override Tensor initial_states(int n_chains, int n, ScalarType dtype, Device? device = null, Generator? generator = null)
        => torch.randn(n_chains, n, dtype: dtype, device: device, generator: generator);

    /// <summary>False: the self-energy is quadratic in the bias and σ² enters the coupling, so the trainer uses autograd.</summary>
    public override bool has_linear_bias => false;

    /// <summary>Null: the units are continuous.</summary>
    public override IReadOnlyList<double>? discrete_values => null;

    /// <summary>Requires finite real values (as <see cref="GaussianUnits"/>).</summary>
    public override void check_values(Tensor x, string what) => Gaussian.check_values(x, what);
}

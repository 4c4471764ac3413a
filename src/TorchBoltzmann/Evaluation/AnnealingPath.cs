using TorchBoltzmann.Modules;
using TorchBoltzmann.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Evaluation;

/// <summary>
/// The geometric path of Salakhutdinov &amp; Murray (2008) between a base-rate model A (no weights, visible biases b_A)
/// and an RBM B (W, b, c), with the hidden units summed out:
/// <code>log f_β(v) = −(1−β) Σ_i E_self(v_i; b_A,i) − β Σ_i E_self(v_i; b_i) + Σ_j log-partition_j(c_j + W_j v; β)</code>
/// f_0 ∝ p_A (times the hidden units' β = 0 partition, a constant), f_1 = e^{−F(v)} of B. Its normaliser at β = 0 is
/// <code>log Z_0 = Σ_i log-partition_i(b_A,i; 1) + Σ_j log-partition_j(·; 0)</code>
/// (Bernoulli: Σ_i softplus(b_A,i) + n_hidden log 2). The transition at β is a block-Gibbs step of
/// p_β(v, h) ∝ e^{−(1−β) E_self(v; b_A) − βE(v,h)}: h ~ mean_h(β(c + Wv)), v ~ mean_v(β(b + Wᵀh) + (1−β) b_A), which
/// <see cref="GibbsChains"/> takes at T = 1/β with the untempered visible field (1 − β) b_A. The bookkeeping (log f) is in
/// float64 whatever the model's dtype: sums of 10⁴ increments lose digits in float32.
/// </summary>
internal sealed class AnnealingPath : IDisposable
{
    private readonly Tensor _baseBias, _bA, _bB, _c;

    private AnnealingPath(RBM model, Tensor baseBias)
    {
        Model = model;
        using var _ = torch.no_grad();
        _baseBias = baseBias.to(model.dtype, model.device).clone().DetachFromDisposeScope();
        _bA = baseBias.to(ScalarType.Float64, model.device).clone().DetachFromDisposeScope();
        using (var b = model.visible_bias.detach()) _bB = b.to(ScalarType.Float64).clone().DetachFromDisposeScope();
        using (var c = model.hidden_bias.detach()) _c = c.to(ScalarType.Float64).clone().DetachFromDisposeScope();
        using var scope = torch.NewDisposeScope();
        var lpv = model.visible_units.log_partition(_bA, _bA, 1.0).sum();
        var lph = model.hidden_units.log_partition(_c, _c, 0.0).sum();
        LogZBase = (lpv + lph).ToDouble();
    }

    /// <summary>The target RBM B.</summary>
    public RBM Model { get; }

    /// <summary>log Z_0, the normaliser of f_0.</summary>
    public double LogZBase { get; }

    /// <summary>
    /// The path for <paramref name="model"/> from base visible biases <paramref name="baseBias"/> (null: zeros, the uniform
    /// distribution over the visible states).
    /// </summary>
    /// <exception cref="ArgumentException">The visible unit type's self-energy is not linear in its bias, its states are not a finite list (continuous units), or the base biases do not fit.</exception>
    public static AnnealingPath Create(RBM model, Tensor? baseBias)
    {
        ArgumentNullException.ThrowIfNull(model);
        // The base-rate factor enters the visible conditional as the field (1 − β) b_A added to the net input, which is
        // right only when E_self is linear in the bias; the hidden side needs only its log-partition at β.
        if (!model.visible_units.has_linear_bias)
            throw new ArgumentException($"Annealing needs visible units whose self-energy is linear in the bias (E_self = −a·x); {model} has {model.visible_units.Name} visible units.", nameof(model));
        // The transitions are block Gibbs steps; they leave p_β invariant only when the down-pass is the joint's conditional.
        if (model.up_scale != model.down_scale)
            throw new ArgumentException($"Annealing needs an RBM whose up_scale equals its down_scale (its Gibbs steps then sample its energy), got {model}.", nameof(model));
        // Continuous units have no normalisable base-rate model e^{b_Aᵀv} and their mean is not a function of η/T + a.
        if (model.visible_units.state_count(model.n_visible) is null)
            throw new ArgumentException($"Annealing from a base-rate model needs visible units with a finite set of states; {model} has {model.visible_units.Name} visible units (for a small hidden layer, ExactEnumeration.log_partition sums over it exactly).", nameof(model));
        if (baseBias is null)
        {
            using var zeros = torch.zeros(model.n_visible, dtype: ScalarType.Float64, device: model.device);
            return new AnnealingPath(model, zeros);
        }
        if (baseBias.dim() != 1 || baseBias.shape[0] != model.n_visible)
            throw new ArgumentException($"base_visible_bias: expected shape ({model.n_visible}), got ({string.Join(", ", baseBias.shape)}).", nameof(baseBias));
        using (var finite = baseBias.isfinite().all())
            if (!finite.ToBoolean()) throw new ArgumentException("base_visible_bias: expected finite values.", nameof(baseBias));
        return new AnnealingPath(model, baseBias);
    }

    /// <summary>
    /// log f_to(x) − log f_from(x) for states x (model dtype) with hidden net inputs η = c + Wx:
    /// −(to − from) Σ_i [E_self(x_i; b_i) − E_self(x_i; b_A,i)] + Σ_j [log-partition_j(η; to) − log-partition_j(η; from)],
    /// float64, shape (B).
    /// </summary>
    public Tensor LogRatio(Tensor x, Tensor eta, double to, double from)
    {
        using var scope = torch.NewDisposeScope();
        var x64 = x.to_type(ScalarType.Float64);
        var eta64 = eta.to_type(ScalarType.Float64);
        var units = Model.visible_units;
        var e = units.self_energy(x64, _bB).sum(-1) - units.self_energy(x64, _bA).sum(-1);
        var lpTo = Model.hidden_units.log_partition(eta64, _c, to).sum(-1);
        var lpFrom = Model.hidden_units.log_partition(eta64, _c, from).sum(-1);
        return (lpTo - lpFrom - e.mul(to - from)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// log f_β(x) = −β Σ_i E_self(x_i; b_i) − (1−β) Σ_i E_self(x_i; b_A,i) + Σ_j log-partition_j(η; β), float64 (B), for
    /// states x with hidden net inputs η = c + Wx. At β = 1 it is −F(x).
    /// </summary>
    public Tensor LogF(Tensor x, Tensor eta, double beta)
    {
        using var scope = torch.NewDisposeScope();
        var x64 = x.to_type(ScalarType.Float64);
        var eta64 = eta.to_type(ScalarType.Float64);
        var units = Model.visible_units;
        var eB = units.self_energy(x64, _bB).sum(-1).mul(beta);
        var eA = units.self_energy(x64, _bA).sum(-1).mul(1.0 - beta);
        var lp = Model.hidden_units.log_partition(eta64, _c, beta).sum(-1);
        return (lp - eB - eA).MoveToOuterDisposeScope();
    }

    /// <summary>n exact samples of p_A (the unit type's sampler at mean_v(b_A)), shape (n, n_visible), model dtype.</summary>
    public Tensor SampleBase(int n, Generator? generator)
    {
        using var scope = torch.NewDisposeScope();
        var mean = Model.visible_units.mean(_baseBias.unsqueeze(0).expand(n, -1).contiguous(), 1.0);
        return Model.visible_units.sample_from_mean(mean, generator).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One transition at β &gt; 0 of every chain, leaving p_β invariant: T = 1/β, visible field (1 − β) b_A, hidden means
    /// mean_h(η, T) from the η the caller has already computed for the current states.
    /// </summary>
    public void Step(GibbsChains chains, Tensor eta, double beta)
    {
        chains.temperature = 1.0 / beta;
        using (var field = _baseBias.mul(1.0 - beta)) chains.visible_field = field;
        using var hm = Model.hidden_units.mean(eta, 1.0 / beta);
        chains.step(hidden_mean: hm);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _baseBias.Dispose();
        _bA.Dispose();
        _bB.Dispose();
        _c.Dispose();
    }
}

using TorchBoltzmann.Units;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace TorchBoltzmann.Modules;

/// <summary>
/// The result of mean-field inference in a <see cref="DBM"/>: the means μ_1 … μ_L of the hidden layers (bottom first,
/// each (B, n_l)), how many fixed-point sweeps ran and whether the largest change fell to the tolerance. Owns its tensors.
/// </summary>
public sealed class MeanFieldResult : IDisposable
{
    internal MeanFieldResult(Tensor[] means, int iterations, bool converged, double change)
    {
        this.means = means;
        this.iterations = iterations;
        this.converged = converged;
        last_change = change;
    }

    /// <summary>μ_l for l = 1 … L (index 0 is the first hidden layer), each (B, n_l) or (n_l) for a single vector.</summary>
    public IReadOnlyList<Tensor> means { get; }

    /// <summary>Fixed-point sweeps run (each updates every hidden layer once).</summary>
    public int iterations { get; }

    /// <summary>True when the largest change of a mean in the last sweep was at most the tolerance.</summary>
    public bool converged { get; }

    /// <summary>The largest absolute change of any mean in the last sweep.</summary>
    public double last_change { get; }

    /// <summary>The top layer's means μ_L.</summary>
    public Tensor top => means[^1];

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var m in means) m.Dispose();
    }
}

/// <summary>
/// A deep Boltzmann machine (Salakhutdinov &amp; Hinton 2009) as a TorchSharp module: a visible layer h_0 = v and
/// L ≥ 2 hidden layers h_1 … h_L of Bernoulli units, each layer coupled only to the layers directly above and below
/// it, with the energy
/// <code>E(v, h) = Σ_i E_self(v_i; b_0,i) − Σ_{l=1}^{L} b_lᵀh_l − Σ_{l=1}^{L} h_lᵀ W_l h_{l−1},   p_T(v, h) = e^{−E(v,h)/T} / Z_T</code>
/// For Bernoulli visible units E_self(v_i; b) = −b v_i, so E = −Σ_l b_lᵀh_l − Σ_l h_lᵀW_l h_{l−1}. W_l =
/// <c>weights[l−1]</c>, shape (n_l, n_{l−1}) (the <c>nn.Linear</c> layout of the coupling from layer l−1 up to layer l);
/// b_l = <c>biases[l]</c>, shape (n_l), b_0 the visible biases.
/// </summary>
/// <remarks>
/// <para><b>Conditionals.</b> Given its neighbours, the units of layer l are independent with net input
/// <code>η_l = b_l + W_l h_{l−1} + W_{l+1}ᵀ h_{l+1}</code>
/// (the terms that do not exist left out: no h_{−1}, no W_{L+1}) and p(h_l = 1 | rest) = σ(η_l / T); the visible layer's
/// conditional is its unit type's mean at η_0 / T (<see cref="UnitType.mean"/>). The odd layers are conditionally
/// independent given the even ones (v included) and vice versa, so block Gibbs sampling alternates the two
/// (<see cref="gibbs_step"/>).</para>
/// <para><b>Mean-field inference</b> (<see cref="mean_field"/>) approximates p(h | v) by a factorised q(h) = Π_l Π_j
/// μ_lj^{h_lj} (1 − μ_lj)^{1 − h_lj}. It starts from a bottom-up pass with doubled weights (the inputs from the missing
/// upper layers are stood in for by doubling the lower input, as in the paper's recognition pass; the top layer has no
/// layer above and gets single weights):
/// <code>μ_l⁽⁰⁾ = σ((b_l + 2 W_l μ_{l−1}⁽⁰⁾) / T) for l &lt; L,   μ_L⁽⁰⁾ = σ((b_L + W_L μ_{L−1}⁽⁰⁾) / T),   μ_0 = v</code>
/// and then repeats sweeps of the fixed-point equations, first the odd layers, then the even ones (each block update is
/// exact coordinate ascent on the variational bound):
/// <code>μ_l ← (1 − d) σ((b_l + W_l μ_{l−1} + W_{l+1}ᵀ μ_{l+1}) / T) + d μ_l</code>
/// with damping d ∈ [0, 1) (0: none), until no mean changes by more than the tolerance or the cap on sweeps is reached.
/// <see cref="forward"/>(v) returns μ_L, the top layer's mean-field posterior at T = 1 (<see cref="DefaultMeanFieldIterations"/>
/// sweeps at most, tolerance <see cref="DefaultMeanFieldTolerance"/>), so a DBM drops into <c>Sequential</c> as a
/// feature extractor.</para>
/// <para><b>Variational bound.</b> For any factorised q, log Σ_h e^{−E(v,h)} ≥ −E_q[E(v, h)] + H(q), and because E is
/// linear in each layer E_q[E(v, h)] = E(v, μ). <see cref="variational_bound(Tensor, IReadOnlyList{Tensor})"/> returns
/// <code>B(v) = −E(v, μ_1, …, μ_L) + Σ_{l≥1} Σ_j H(μ_lj),   H(μ) = −μ log μ − (1 − μ) log(1 − μ)</code>
/// so log p(v) ≥ B(v) − log Z (Salakhutdinov &amp; Hinton 2009, eq. 6).</para>
/// <para><b>Free energy.</b> <see cref="free_energy"/> is exact: given v and the even hidden layers, the odd layers
/// are independent and sum out in closed form, so only the even hidden layers (h_2, h_4, …; at most
/// <see cref="MaxEnumeratedHidden"/> units together) are listed. That makes the DBM an <see cref="IEnergyModel"/>, and
/// <see cref="Evaluation.ExactEnumeration"/> gives log Z and the log-likelihood of small machines.</para>
/// <para>Every method returns fresh tensors and never disposes its inputs. State lists (<c>states</c>) hold L + 1
/// tensors, v first, each (B, n_l).</para>
/// <para>Reference: Salakhutdinov &amp; Hinton (2009) Deep Boltzmann machines, AISTATS; Salakhutdinov &amp; Hinton
/// (2012) An efficient learning procedure for deep Boltzmann machines, Neural Computation 24.</para>
/// </remarks>
public sealed class DBM : nn.Module<Tensor, Tensor>, IEnergyModel
{
    [ComponentName(Name = "weights")] private readonly ParameterList _weights;
    [ComponentName(Name = "biases")] private readonly ParameterList _biases;
    private readonly int[] _sizes;

    /// <summary>Most units the even hidden layers may have together for <see cref="free_energy"/> to list them: 20 (2^20 states).</summary>
    public const int MaxEnumeratedHidden = 20;

    /// <summary>Sweeps of <see cref="forward"/>'s mean-field inference at most: 50.</summary>
    public const int DefaultMeanFieldIterations = 50;

    /// <summary>Tolerance of <see cref="forward"/>'s mean-field inference: 1e-5.</summary>
    public const double DefaultMeanFieldTolerance = 1e-5;

    /// <summary>Creates a DBM; see <see cref="boltzmann.DBM"/>.</summary>
    /// <param name="layer_sizes">[n_visible, n_1, …, n_L], L ≥ 2, every size ≥ 1.</param>
    /// <param name="visible_units">Unit type of the visible layer (default Bernoulli); the hidden layers are Bernoulli.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Floating-point type of the parameters.</param>
    /// <param name="generator">Generator for the initial weights.</param>
    /// <exception cref="ArgumentException">Fewer than three layer sizes, a size below 1, or a dtype that is not floating-point.</exception>
    public DBM(IReadOnlyList<int> layer_sizes, UnitType? visible_units = null, Device? device = null, ScalarType? dtype = null,
               Generator? generator = null) : base(nameof(DBM))
    {
        ArgumentNullException.ThrowIfNull(layer_sizes);
        if (layer_sizes.Count < 3 || layer_sizes.Any(s => s < 1))
            throw new ArgumentException($"layer_sizes: expected [n_visible, n_1, …, n_L] with at least two hidden layers and every size ≥ 1, got [{string.Join(", ", layer_sizes)}].", nameof(layer_sizes));
        var dt = dtype ?? get_default_dtype();
        if (!Functional.DTypes.IsFloat(dt)) throw new ArgumentException($"dtype: expected a floating-point type, got {dt}.", nameof(dtype));
        _sizes = layer_sizes.ToArray();
        this.visible_units = visible_units ?? UnitType.Bernoulli;
        if (this.visible_units.discrete_values is null && this.visible_units is not GaussianUnits)
            throw new ArgumentException($"visible_units: expected independent units (Bernoulli, Spin or Gaussian), got {this.visible_units.Name}.", nameof(visible_units));
        var ws = new List<Parameter>();
        for (int l = 1; l < _sizes.Length; l++) ws.Add(new Parameter(torch.empty(_sizes[l], _sizes[l - 1], dtype: dt, device: device)));
        var bs = _sizes.Select(n => new Parameter(torch.empty(n, dtype: dt, device: device))).ToList();
        _weights = new ParameterList(ws.ToArray());
        _biases = new ParameterList(bs.ToArray());
        reset_parameters(generator: generator);
        RegisterComponents();
    }

    /// <summary>[n_visible, n_1, …, n_L].</summary>
    public IReadOnlyList<int> layer_sizes => _sizes;
    /// <summary>Number of hidden layers L (≥ 2).</summary>
    public int n_hidden_layers => _sizes.Length - 1;
    /// <summary>Number of visible units.</summary>
    public int n_visible => _sizes[0];
    /// <summary>Unit type of the visible layer.</summary>
    public UnitType visible_units { get; }
    /// <summary>Unit type of every hidden layer: Bernoulli.</summary>
    public UnitType hidden_units => UnitType.Bernoulli;
    /// <summary>The couplings, bottom first: <c>weights[l − 1]</c> = W_l of shape (n_l, n_{l−1}), l = 1 … L.</summary>
    public ParameterList weights => _weights;
    /// <summary>The biases of every layer, visible first: <c>biases[l]</c> = b_l of shape (n_l), l = 0 … L.</summary>
    public ParameterList biases => _biases;
    /// <summary>W_l, the coupling between layers l − 1 and l (l = 1 … L), shape (n_l, n_{l−1}).</summary>
    public Parameter weight(int l) => _weights[l - 1];
    /// <summary>b_l, the biases of layer l (l = 0 … L, 0 the visible layer).</summary>
    public Parameter bias(int l) => _biases[l];
    /// <summary>Unit type of layer l (0: <see cref="visible_units"/>; others Bernoulli).</summary>
    public UnitType units(int l) => l == 0 ? visible_units : hidden_units;

    /// <inheritdoc />
    public Device device => _biases[0].device;
    /// <inheritdoc />
    public ScalarType dtype => _biases[0].dtype;

    /// <summary>When true (default), public methods check visible inputs' values (range, NaN), not only their shape.</summary>
    public bool validate_values { get; set; } = true;

    /// <summary>Re-initialises the parameters: W_l ~ N(0, std²), every b_l = 0.</summary>
    /// <param name="std">Standard deviation of the weights.</param>
    /// <param name="generator">Random generator, or null for the global one.</param>
    public void reset_parameters(double std = 0.01, Generator? generator = null)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        foreach (var w in _weights) w.normal_(0.0, std, generator);
        foreach (var b in _biases) b.zero_();
    }

    // ---------------------------------------------------------------- energies and conditionals

    /// <summary>
    /// E(v, h_1, …, h_L) = Σ_i E_self(v_i; b_0,i) − Σ_{l≥1} b_lᵀh_l − Σ_{l≥1} h_lᵀW_l h_{l−1} per row (means in place of
    /// states give E(v, μ), the expected energy under a factorised q). Differentiable.
    /// </summary>
    /// <param name="states">L + 1 tensors, v first, each (B, n_l) or (n_l).</param>
    /// <returns>Energies, (B) or a scalar.</returns>
    /// <exception cref="ArgumentException">Not L + 1 tensors of the layers' widths.</exception>
    public Tensor energy(IReadOnlyList<Tensor> states)
    {
        CheckStates(states, "energy input");
        using var scope = torch.NewDisposeScope();
        var e = visible_units.self_energy(states[0], _biases[0]).sum(-1);
        for (int l = 1; l < _sizes.Length; l++)
        {
            var coupling = nn.functional.linear(states[l - 1], _weights[l - 1]).mul(states[l]).sum(-1);   // h_lᵀ W_l h_{l−1}
            e = e.sub(coupling).add(hidden_units.self_energy(states[l], _biases[l]).sum(-1));             // − b_lᵀh_l
        }
        return e.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Net input of layer l given its neighbours, η_l = b_l + W_l h_{l−1} + W_{l+1}ᵀ h_{l+1} (missing terms left out).
    /// Differentiable.
    /// </summary>
    /// <param name="states">L + 1 tensors, v first (only layers l − 1 and l + 1 are read).</param>
    /// <param name="l">Layer, 0 (visible) … L.</param>
    public Tensor net_input(IReadOnlyList<Tensor> states, int l)
    {
        CheckStates(states, "net_input states");
        return NetInput(states, l);
    }

    private Tensor NetInput(IReadOnlyList<Tensor> states, int l)
    {
        if (l < 0 || l >= _sizes.Length) throw new ArgumentOutOfRangeException(nameof(l), l, $"l: expected a layer in [0, {_sizes.Length - 1}].");
        using var scope = torch.NewDisposeScope();
        Tensor eta = l > 0 ? Coupled(states[l - 1], _weights[l - 1], _biases[l])                 // b_l + W_l h_{l−1}
                           : Coupled(states[1], _weights[0].t(), _biases[0]);                    // b_0 + W_1ᵀ h_1
        if (l > 0 && l < _sizes.Length - 1) eta = eta.add_(Coupled(states[l + 1], _weights[l].t()));   // + W_{l+1}ᵀ h_{l+1}
        return eta.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The dtype the coupling products W_l h_{l−1} and W_{l+1}ᵀ h_{l+1} of the net inputs, the mean-field sweeps and the
    /// Gibbs steps are computed in (null, the default: the machine's own). With <c>BFloat16</c> each product is
    /// (x_c M_cᵀ), ·_c the cast to bfloat16, cast back to the machine's dtype before the bias is added, so the means and
    /// states stay in the machine's dtype; the parameters too. A setting of the running module, not saved with it:
    /// <see cref="Training.DbmTrainer"/> sets it for the training passes only (<see cref="Training.DbmTrainingOptions.ComputeDtype"/>),
    /// so energies, metrics and likelihoods use the machine's own products, as <see cref="RBM.compute_dtype"/> does for an RBM.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A dtype other than bfloat16, float32 or float64.</exception>
    public ScalarType? compute_dtype
    {
        get => _computeDtype;
        set => _computeDtype = Checks.ComputeDtype(value, nameof(compute_dtype));
    }
    private ScalarType? _computeDtype;

    /// <summary>x Mᵀ (+ bias): one fused <c>linear</c>; with a <see cref="compute_dtype"/> other than x's, the product
    /// (x_c M_cᵀ) in that dtype, cast back to x's, then the bias.</summary>
    private Tensor Coupled(Tensor x, Tensor m, Tensor? bias = null)
    {
        if (_computeDtype is { } cd && cd != x.dtype)
        {
            using var cast = torch.NewDisposeScope();
            var product = nn.functional.linear(x.to(cd), m.to(cd)).to(x.dtype);
            return (bias is null ? product : product.add_(bias)).MoveToOuterDisposeScope();
        }
        return bias is null ? nn.functional.linear(x, m) : nn.functional.linear(x, m, bias);
    }

    /// <summary>
    /// The conditional mean of layer l given its neighbours at temperature T: σ(η_l / T) for a hidden layer, the visible
    /// unit type's mean at η_0 / T for l = 0 (p(v_i = 1 | h_1) for Bernoulli units).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">T is not finite and positive, or l is not a layer.</exception>
    public Tensor conditional_mean(IReadOnlyList<Tensor> states, int l, double temperature = 1.0)
    {
        Checks.Temperature(temperature);
        CheckStates(states, "conditional_mean states");
        return units(l).mean_(NetInput(states, l), temperature);
    }

    // ---------------------------------------------------------------- mean-field inference

    /// <summary>
    /// The bottom-up pass that starts mean-field inference (formula in the class remarks): doubled weights W_l for every
    /// hidden layer below the top, single weights for the top one. Without autograd.
    /// </summary>
    /// <param name="v">Visible input, (B, n_visible) or (n_visible).</param>
    /// <param name="temperature">Temperature T.</param>
    /// <returns>μ_1⁽⁰⁾ … μ_L⁽⁰⁾.</returns>
    public Tensor[] initial_means(Tensor v, double temperature = 1.0)
    {
        check_visible(v, "initial_means input");
        Checks.Temperature(temperature);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var vb = v.to(dtype, device);
        var mu = new Tensor[_sizes.Length - 1];
        var below = vb;
        for (int l = 1; l < _sizes.Length; l++)
        {
            var input = Coupled(below, _weights[l - 1]);
            if (l < _sizes.Length - 1) input = input.mul_(2.0);          // 2 W_l μ_{l−1} below the top
            mu[l - 1] = hidden_units.mean_(input.add_(_biases[l]), temperature);
            below = mu[l - 1];
        }
        foreach (var m in mu) m.MoveToOuterDisposeScope();
        return mu;
    }

    /// <summary>
    /// Mean-field inference of q(h | v) (class remarks): the doubled-weight bottom-up start, then sweeps over the odd and
    /// then the even hidden layers of μ_l ← (1 − d) σ(η_l(μ) / T) + d μ_l until the largest change is at most
    /// <paramref name="tolerance"/> or <paramref name="max_iterations"/> sweeps have run. Without autograd.
    /// </summary>
    /// <param name="v">Visible input, (B, n_visible) or (n_visible).</param>
    /// <param name="temperature">Temperature T.</param>
    /// <param name="max_iterations">Cap on sweeps (≥ 1).</param>
    /// <param name="tolerance">Stop when no mean moved by more than this in a sweep (≥ 0; 0 runs all sweeps unless a fixed point is hit exactly).</param>
    /// <param name="damping">d ∈ [0, 1): the weight of the old mean in each update.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public MeanFieldResult mean_field(Tensor v, double temperature = 1.0, int max_iterations = DefaultMeanFieldIterations,
                                      double tolerance = DefaultMeanFieldTolerance, double damping = 0.0)
    {
        if (max_iterations < 1) throw new ArgumentOutOfRangeException(nameof(max_iterations), max_iterations, "max_iterations: expected at least 1.");
        if (!(tolerance >= 0) || double.IsInfinity(tolerance)) throw new ArgumentOutOfRangeException(nameof(tolerance), tolerance, "tolerance: expected a finite value ≥ 0.");
        if (!(damping >= 0 && damping < 1)) throw new ArgumentOutOfRangeException(nameof(damping), damping, "damping: expected d in [0, 1).");
        var mu = initial_means(v, temperature);
        using var _ = torch.no_grad();
        var states = new Tensor[_sizes.Length];
        using var vb = v.to(dtype, device);
        states[0] = vb;
        for (int l = 1; l < _sizes.Length; l++) states[l] = mu[l - 1];
        // η_1's input from the clamped v does not change between sweeps: b_1 + W_1 v once (the same operations NetInput does).
        using var bottom = Coupled(vb, _weights[0], _biases[1]);
        int it = 0;
        double change = double.PositiveInfinity;
        while (it < max_iterations)
        {
            it++;
            change = 0;
            foreach (int parity in new[] { 1, 0 })
                for (int l = parity == 1 ? 1 : 2; l < _sizes.Length; l += 2)
                {
                    using var scope = torch.NewDisposeScope();
                    var eta = l == 1 ? Coupled(states[2], _weights[1].t()).add_(bottom) : NetInput(states, l);
                    var updated = hidden_units.mean_(eta, temperature);
                    if (damping > 0) updated = updated.mul_(1 - damping).add_(states[l], alpha: damping);
                    using (var diff = updated.sub(states[l]).abs_().max()) change = Math.Max(change, diff.ToDouble());
                    states[l].copy_(updated);
                }
            if (change <= tolerance) break;
        }
        return new MeanFieldResult(mu, it, change <= tolerance, change);
    }

    /// <summary>
    /// μ_L, the top hidden layer's mean-field posterior at T = 1 (<see cref="mean_field"/> with the default cap and
    /// tolerance). Without autograd: in a <c>Sequential</c> the DBM is a fixed feature extractor (fine-tune its weights
    /// through <see cref="DbmClassifier"/> instead).
    /// </summary>
    /// <param name="v">Visible input, (B, n_visible) or (n_visible).</param>
    /// <returns>(B, n_L) or (n_L).</returns>
    public override Tensor forward(Tensor v)
    {
        using var result = mean_field(v);
        return result.top.clone();
    }

    /// <summary>
    /// The variational lower bound on log Σ_h e^{−E(v,h)} of each row from factorised means μ (class remarks):
    /// B(v) = −E(v, μ) + Σ_l Σ_j H(μ_lj), H(μ) = −μ log μ − (1 − μ) log(1 − μ) (0 log 0 = 0), float64. With log Z,
    /// log p(v) ≥ B(v) − log Z.
    /// </summary>
    /// <param name="v">Visible input, (B, n_visible).</param>
    /// <param name="means">μ_1 … μ_L for the rows of v (e.g. <see cref="MeanFieldResult.means"/>).</param>
    /// <returns>(B), float64.</returns>
    public Tensor variational_bound(Tensor v, IReadOnlyList<Tensor> means)
    {
        ArgumentNullException.ThrowIfNull(means);
        check_visible(v, "variational_bound input");
        if (means.Count != _sizes.Length - 1) throw new ArgumentException($"means: expected {_sizes.Length - 1} tensors (one per hidden layer), got {means.Count}.", nameof(means));
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var states = new List<Tensor> { v.to(dtype, device) };
        states.AddRange(means);
        var bound = energy(states).to_type(ScalarType.Float64).neg();
        foreach (var m in means)
        {
            var m64 = m.to_type(ScalarType.Float64);
            var one = m64.neg().add_(1);
            // x log x with 0 log 0 = 0: log of x clamped to the smallest normal double, times x.
            var h = m64.mul(m64.clamp_min(1e-300).log()).add_(one.mul(one.clamp_min(1e-300).log())).neg_().sum(-1);
            bound = bound.add(h);
        }
        return bound.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Mean-field inference followed by <see cref="variational_bound(Tensor, IReadOnlyList{Tensor})"/>: per row, a lower bound on log Σ_h e^{−E(v,h)},
    /// float64 (B). Subtract log Z for a lower bound on log p(v).
    /// </summary>
    public Tensor mean_field_bound(Tensor v, int max_iterations = DefaultMeanFieldIterations, double tolerance = DefaultMeanFieldTolerance, double damping = 0.0)
    {
        using var mf = mean_field(v, 1.0, max_iterations, tolerance, damping);
        return variational_bound(v, mf.means);
    }

    // ---------------------------------------------------------------- free energy

    /// <summary>Indices of the even hidden layers (2, 4, …) and their total width.</summary>
    private (int[] layers, int units) EvenHidden()
    {
        var layers = Enumerable.Range(1, _sizes.Length - 1).Where(l => l % 2 == 0).ToArray();
        return (layers, layers.Sum(l => _sizes[l]));
    }

    /// <summary>
    /// Exact free energy F_β(v) = −log Σ_h e^{−βE(v,h)}. The even hidden layers h_e = (h_2, h_4, …) are listed (at most
    /// <see cref="MaxEnumeratedHidden"/> units together) and the odd ones summed out in closed form:
    /// <code>F_β(v) = β Σ_i E_self(v_i; b_0,i) − log Σ_{h_e} exp(β Σ_{even l≥2} b_lᵀh_l + Σ_{odd l} Σ_j softplus(β η_lj)),
    /// η_l = b_l + W_l h_{l−1} + W_{l+1}ᵀ h_{l+1}</code>
    /// Differentiable.
    /// </summary>
    /// <exception cref="NotSupportedException">The even hidden layers have more than <see cref="MaxEnumeratedHidden"/> units.</exception>
    public Tensor free_energy(Tensor v, double beta = 1.0)
    {
        check_visible(v, "free_energy input");
        Checks.Beta(beta);
        var (even, nEven) = EvenHidden();
        if (nEven > MaxEnumeratedHidden)
            throw new NotSupportedException($"free_energy: lists the even hidden layers, expected at most {MaxEnumeratedHidden} units in them, got {nEven}; use the variational bound and AIS for larger machines.");
        using var scope = torch.NewDisposeScope();
        bool single = v.dim() == 1;
        var vb = (single ? v.unsqueeze(0) : v).to(dtype, device);
        long b = vb.shape[0];
        var fv = visible_units.self_energy(vb, _biases[0]).sum(-1).mul(beta);                    // β Σ E_self(v)
        long total = 1L << nEven;
        long chunk = Math.Max(1, Math.Min(total, (1L << 22) / Math.Max(1L, b * _sizes.Max())));
        Tensor? lse = null;
        for (long first = 0; first < total; first += chunk)
        {
            long count = Math.Min(chunk, total - first);
            var he = hidden_units.enumerate_states(nEven, first, count, dtype, device)!;           // (H, nEven)
            // states[l] for the listed layers: (1, H, n_l); v: (B, 1, n_0).
            var states = new Tensor[_sizes.Length];
            states[0] = vb.unsqueeze(1);
            long offset = 0;
            var logTerm = torch.zeros(1, count, dtype: dtype, device: device);
            foreach (int l in even)
            {
                states[l] = he.narrow(1, offset, _sizes[l]).unsqueeze(0);
                offset += _sizes[l];
                logTerm = logTerm.add(states[l].matmul(_biases[l]).mul(beta));                    // β b_lᵀh_l, (1, H)
            }
            for (int l = 1; l < _sizes.Length; l += 2)
            {
                var eta = nn.functional.linear(states[l - 1], _weights[l - 1], _biases[l]);         // (B or 1, 1 or H, n_l)
                if (l < _sizes.Length - 1) eta = eta.add(states[l + 1].matmul(_weights[l]));
                logTerm = logTerm.add(hidden_units.log_partition(eta, _biases[l], beta).sum(-1));   // Σ_j softplus(β η_lj)
            }
            var part = logTerm.expand(b, count).logsumexp(1);
            lse = lse is null ? part : torch.logaddexp(lse, part);
        }
        var f = fv.sub(lse!);
        return (single ? f.squeeze(0) : f).MoveToOuterDisposeScope();
    }

    // ---------------------------------------------------------------- sampling

    /// <summary>
    /// Random start states for <paramref name="n_chains"/> chains: every layer drawn from its unit type's
    /// <see cref="UnitType.initial_states"/> (binary units: uniform), v first.
    /// </summary>
    public Tensor[] random_states(int n_chains, Generator? generator = null)
    {
        if (n_chains < 1) throw new ArgumentOutOfRangeException(nameof(n_chains), n_chains, "n_chains: expected at least 1.");
        using var _ = torch.no_grad();
        return Enumerable.Range(0, _sizes.Length).Select(l => units(l).initial_states(n_chains, _sizes[l], dtype, device, generator)).ToArray();
    }

    /// <summary>
    /// Samples layer l of every chain from its conditional at temperature T, replacing <c>states[l]</c> (the old tensor
    /// is disposed). Returns the conditional mean the sample was drawn from (the caller owns it). Without autograd.
    /// </summary>
    public Tensor sample_layer(Tensor[] states, int l, double temperature = 1.0, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(states);
        using var _ = torch.no_grad();
        var mean = units(l).mean_(NetInput(states, l), temperature);
        var sample = units(l).sample_from_mean(mean, temperature, generator);
        states[l].Dispose();
        states[l] = sample;
        return mean;
    }

    /// <summary>
    /// One block Gibbs step at temperature T for every chain, in place: the odd layers h_1, h_3, … from
    /// p(h_odd | even layers), then the even layers v, h_2, … from p(even | h_odd), drawn in that order (layer by layer,
    /// bottom first within each block) from <paramref name="generator"/>. Returns the visible conditional mean of the step
    /// (the caller owns it). Without autograd.
    /// </summary>
    /// <param name="states">L + 1 tensors, v first, each (n_chains, n_l); replaced by the new states.</param>
    /// <param name="temperature">Temperature T.</param>
    /// <param name="generator">Random generator, or null for the global one.</param>
    public Tensor gibbs_step(Tensor[] states, double temperature = 1.0, Generator? generator = null)
    {
        CheckStates(states, "Gibbs states");
        Checks.Temperature(temperature);
        for (int l = 1; l < _sizes.Length; l += 2) sample_layer(states, l, temperature, generator).Dispose();
        Tensor? visibleMean = null;
        for (int l = 0; l < _sizes.Length; l += 2)
        {
            var m = sample_layer(states, l, temperature, generator);
            if (l == 0) visibleMean = m; else m.Dispose();
        }
        return visibleMean!;
    }

    /// <summary>
    /// Generates <paramref name="n"/> visible samples: n chains from random states (<see cref="random_states"/>),
    /// <paramref name="steps"/> block Gibbs steps at temperature T, then the visible samples (or their conditional means,
    /// smoother images). Without autograd.
    /// </summary>
    /// <returns>(n, n_visible).</returns>
    public Tensor generate(int n, int steps = 1000, double temperature = 1.0, Generator? generator = null, bool return_means = false)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "steps: expected at least 1.");
        Checks.Temperature(temperature);
        var states = random_states(n, generator);
        Tensor? mean = null;
        try
        {
            for (int s = 0; s < steps; s++)
            {
                mean?.Dispose();
                mean = gibbs_step(states, temperature, generator);
            }
            return return_means ? mean!.clone() : states[0].clone();
        }
        finally
        {
            mean?.Dispose();
            foreach (var t in states) t.Dispose();
        }
    }

    // ---------------------------------------------------------------- conversion

    /// <summary>
    /// The same machine as a general <see cref="BoltzmannMachine"/> over all n = Σ_l n_l units (v, then h_1, …, h_L) with
    /// the layered mask (<see cref="BoltzmannMachine.layered_mask"/>): its symmetric weight matrix holds W_l in the block
    /// (layer l, layer l − 1) and W_lᵀ in (layer l − 1, layer l), its biases are [b_0; b_1; …; b_L], so both define the
    /// same energy state by state. Useful for exact enumeration of small machines and for the general samplers. Needs
    /// Bernoulli visible units. Same device and dtype; a copy.
    /// </summary>
    /// <exception cref="NotSupportedException">The visible units are not Bernoulli.</exception>
    public BoltzmannMachine to_boltzmann_machine()
    {
        if (visible_units is not BernoulliUnits)
            throw new NotSupportedException($"to_boltzmann_machine: a BoltzmannMachine of {{0, 1}} units needs Bernoulli visible units, got {visible_units.Name}.");
        int n = _sizes.Sum();
        using var _ = torch.no_grad();
        BoltzmannMachine bm;
        using (var mask = BoltzmannMachine.layered_mask(_sizes, dtype, device))
            bm = new BoltzmannMachine(_sizes[0], n - _sizes[0], mask, UnitType.Bernoulli, device, dtype);
        using var scope = torch.NewDisposeScope();
        var w = torch.zeros(n, n, dtype: dtype, device: device);
        int lower = 0;
        for (int l = 1; l < _sizes.Length; l++)
        {
            int upper = lower + _sizes[l - 1];
            w.narrow(0, upper, _sizes[l]).narrow(1, lower, _sizes[l - 1]).copy_(_weights[l - 1]);
            w.narrow(0, lower, _sizes[l - 1]).narrow(1, upper, _sizes[l]).copy_(_weights[l - 1].t());
            lower = upper;
        }
        bm.set_parameters(w, torch.cat(_biases.Select(b => (Tensor)b).ToArray(), 0));
        return bm;
    }

    // ---------------------------------------------------------------- validation

    /// <inheritdoc />
    public void check_visible(Tensor v, string what = "visible input")
    {
        Checks.Width(v, n_visible, what);
        if (validate_values) visible_units.check_values(v, what);
    }

    private void CheckStates(IReadOnlyList<Tensor> states, string what)
    {
        ArgumentNullException.ThrowIfNull(states, what);
        if (states.Count != _sizes.Length)
            throw new ArgumentException($"{what}: expected {_sizes.Length} tensors (v and {_sizes.Length - 1} hidden layers), got {states.Count}.");
        for (int l = 0; l < _sizes.Length; l++) Checks.Width(states[l], _sizes[l], $"{what}[{l}]");
    }

    /// <summary>The hyperparameters, PyTorch <c>extra_repr</c> style.</summary>
    public override string ToString() => $"DBM(layer_sizes=[{string.Join(", ", _sizes)}], visible={visible_units.Name})";
}

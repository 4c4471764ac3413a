using TorchBoltzmann.Units;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace TorchBoltzmann.Modules;

/// <summary>
/// A restricted Boltzmann machine as a TorchSharp module: visible units v (n_visible), hidden units h (n_hidden), no
/// lateral connections. With Bernoulli units on both sides the energy is
/// <code>E(v, h) = −hᵀWv − bᵀv − cᵀh</code>
/// with W = <see cref="weight"/> (n_hidden × n_visible, the <c>nn.Linear</c> layout), b = <see cref="visible_bias"/> and
/// c = <see cref="hidden_bias"/>; p(v, h) = e^{−E(v,h)/T} / Z. Other unit types replace the bias terms by their
/// self-energies (see <see cref="UnitType"/>).
/// </summary>
/// <remarks>
/// <para><c>forward(v)</c> = p(h = 1 | v), so an RBM drops into <c>Sequential</c> as a feature extractor.</para>
/// <para>Every method returns fresh tensors and never disposes its inputs. Sampling methods take an optional
/// <see cref="Generator"/> and run without autograd; <see cref="free_energy"/>, <see cref="energy"/> and
/// <see cref="cd_loss"/> are differentiable.</para>
/// <para>Shapes: visible tensors (B, n_visible) or (n_visible); hidden tensors (B, n_hidden) or (n_hidden).</para>
/// <para>References: Hinton (2002) Training products of experts by minimizing contrastive divergence; Hinton (2010)
/// A practical guide to training RBMs; Tieleman (2008) PCD.</para>
/// </remarks>
public sealed class RBM : nn.Module<Tensor, Tensor>, IEnergyModel
{
    [ComponentName(Name = "weight")] private Parameter _weight;
    [ComponentName(Name = "visible_bias")] private Parameter _visible_bias;
    [ComponentName(Name = "hidden_bias")] private Parameter _hidden_bias;
    [ComponentName(Name = "visible_log_variance")] private Parameter? _visible_log_variance;

    /// <summary>Creates an RBM; see <see cref="boltzmann.RBM"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    public RBM(int n_visible, int n_hidden, UnitType? visible = null, UnitType? hidden = null,
               Device? device = null, ScalarType? dtype = null, Generator? generator = null) : base(nameof(RBM))
    {
        if (n_visible <= 0) throw new ArgumentOutOfRangeException(nameof(n_visible), n_visible, "n_visible must be positive.");
        if (n_hidden <= 0) throw new ArgumentOutOfRangeException(nameof(n_hidden), n_hidden, "n_hidden must be positive.");
        var dt = dtype ?? get_default_dtype();
        if (!Functional.DTypes.IsFloat(dt)) throw new ArgumentException($"dtype: expected a floating-point type, got {dt}.", nameof(dtype));
        this.n_visible = n_visible;
        this.n_hidden = n_hidden;
        visible_units = visible ?? UnitType.Bernoulli;
        hidden_units = hidden ?? UnitType.Bernoulli;
        _weight = new Parameter(torch.empty(n_hidden, n_visible, dtype: dt, device: device));
        _visible_bias = new Parameter(torch.empty(n_visible, dtype: dt, device: device));
        _hidden_bias = new Parameter(torch.empty(n_hidden, dtype: dt, device: device));
        if (visible_units is LearnedGaussianUnits learned)
        {
            // Gaussian visible units with learned variances (Cho et al. 2011): z = log σ² is a parameter of this model,
            // which the unit type reads at every call (so it follows the parameter through to(), loads and optimizers).
            _visible_log_variance = new Parameter(torch.zeros(n_visible, dtype: dt, device: device));
            visible_units = learned.bind(() => _visible_log_variance!);
        }
        reset_parameters(generator: generator);
        RegisterComponents();
    }

    /// <summary>Number of visible units.</summary>
    public int n_visible { get; }
    /// <summary>Number of hidden units.</summary>
    public int n_hidden { get; }
    /// <summary>Unit type of the visible layer.</summary>
    public UnitType visible_units { get; }
    /// <summary>Unit type of the hidden layer.</summary>
    public UnitType hidden_units { get; }

    /// <summary>W, shape (n_hidden, n_visible). The setter replaces the parameter (as <c>Linear.weight</c> does).</summary>
    public Parameter weight { get => _weight; set => _weight = Replace(_weight, value, "weight", n_hidden, n_visible); }
    /// <summary>b, shape (n_visible).</summary>
    public Parameter visible_bias { get => _visible_bias; set => _visible_bias = Replace(_visible_bias, value, "visible_bias", n_visible); }
    /// <summary>c, shape (n_hidden).</summary>
    public Parameter hidden_bias { get => _hidden_bias; set => _hidden_bias = Replace(_hidden_bias, value, "hidden_bias", n_hidden); }

    /// <summary>
    /// z = log σ², shape (n_visible), for <see cref="LearnedGaussianUnits"/> visible units (starts at 0: σ² = 1); null for
    /// every other visible type.
    /// </summary>
    public Parameter? visible_log_variance => _visible_log_variance;

    /// <summary>The device the parameters live on.</summary>
    public Device device => _weight.device;
    /// <summary>The element type of the parameters.</summary>
    public ScalarType dtype => _weight.dtype;

    /// <summary>When true (default), public methods check visible inputs' values (range, NaN), not only their shape.</summary>
    public bool validate_values { get; set; } = true;

    /// <summary>
    /// The factor s↑ on the coupling in the up-pass: η_h = c + s↑·W v, so p(h = 1 | v) = σ(c + s↑·W v) for Bernoulli
    /// hidden units (default 1: an ordinary RBM). The joint energy and the free energy carry the same factor,
    /// E(v, h) = −s↑·hᵀWv + self-energies and F(v) = −bᵀv − Σ_j softplus(c_j + s↑·W_j v), so the up-pass conditional is
    /// the joint's and every trainer, sampler and evaluator that goes through <see cref="hidden_net"/>,
    /// <see cref="energy"/> and <see cref="free_energy"/> follows it. s↑ = 2 is the bottom RBM of a deep Boltzmann
    /// machine's greedy pretraining (Salakhutdinov &amp; Hinton 2009, §3.1: the visible layer copied twice with tied
    /// weights, so a data vector's two copies give h the input 2Wv; see <see cref="Training.DbmPretrainer"/>). Saved in
    /// the checkpoint sidecar when not 1.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The factor is not a finite positive number.</exception>
    public double up_scale { get => _upScale; set => _upScale = Scale(value, nameof(up_scale)); }
    private double _upScale = 1.0;

    /// <summary>
    /// The dtype the coupling products W v and Wᵀh are computed in (null, the default: the model's own). With
    /// <c>BFloat16</c>, <see cref="hidden_net"/> and <see cref="visible_net"/> compute c + s↑·(v_c W_cᵀ) with ·_c the cast to
    /// bfloat16 and the product cast back before the scale and bias are applied in the model's dtype; the parameters stay
    /// in the model's dtype. A setting of the running module, not saved with it: <see cref="Training.RbmTrainer"/> sets it
    /// for the training passes only (<see cref="Training.RbmTrainingOptions.ComputeDtype"/>), so metrics, sampling and
    /// likelihoods use the model's own products.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A dtype other than bfloat16, float32 or float64.</exception>
    public ScalarType? compute_dtype
    {
        get => _computeDtype;
        set => _computeDtype = Checks.ComputeDtype(value, nameof(compute_dtype));
    }
    private ScalarType? _computeDtype;

    /// <summary>
    /// The factor s↓ on the coupling in the down-pass: η_v = b + s↓·Wᵀh, so p(v = 1 | h) = σ(b + s↓·Wᵀh) for Bernoulli
    /// visible units (default 1). Unlike <see cref="up_scale"/> it does not enter the energy: when s↓ ≠ s↑ the down-pass
    /// is not the conditional of the joint <see cref="energy"/> but the training device of Salakhutdinov &amp; Hinton
    /// (2009, §3.1) for the top RBM of a deep Boltzmann machine (the hidden layer copied twice: v receives 2Wᵀh, while
    /// p(h | v) and F(v) stay those of s↑ = 1). Block Gibbs sampling (<see cref="Sampling.GibbsChains"/>), hence CD and
    /// PCD, uses it; parallel tempering (<see cref="Training.RbmTrainer"/>) and annealed importance sampling and RAISE
    /// (<see cref="Evaluation.AnnealedImportanceSampling"/>, <see cref="Evaluation.ReverseAnnealing"/>) refuse an RBM whose
    /// two factors differ, centering one whose factors are not 1. Saved in the checkpoint sidecar when not 1.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The factor is not a finite positive number.</exception>
    public double down_scale { get => _downScale; set => _downScale = Scale(value, nameof(down_scale)); }
    private double _downScale = 1.0;

    private static double Scale(double value, string name)
        => double.IsFinite(value) && value > 0 ? value : throw new ArgumentOutOfRangeException(name, value, $"{name}: expected a finite positive factor, got {value}.");

    private Parameter Replace(Parameter old, Parameter value, string name, params long[] shape)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (!value.shape.SequenceEqual(shape))
            throw new ArgumentException($"{name}: expected shape ({string.Join(", ", shape)}), got ({string.Join(", ", value.shape)}).");
        if (ReferenceEquals(old, value)) return old;
        old.Dispose();
        var p = (Parameter)value.DetachFromDisposeScope();
        ConditionallyRegisterParameter(name, p);
        return p;
    }

    /// <summary>
    /// Re-initialises the parameters as in Hinton's practical guide: W ~ N(0, std²) (std = 0.01), b = c = 0.
    /// </summary>
    /// <param name="std">Standard deviation of the weights.</param>
    /// <param name="generator">Random generator, or null for the global one.</param>
    public void reset_parameters(double std = 0.01, Generator? generator = null)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();   // the handles the in-place calls return (same storage, new wrappers)
        _weight.normal_(0.0, std, generator);
        _visible_bias.zero_();
        _hidden_bias.zero_();
        _visible_log_variance?.zero_();
    }

    /// <summary>
    /// Sets the visible biases from the data as Hinton's guide recommends: b_i = log(p_i / (1 − p_i)), p_i the
    /// fraction of training vectors with unit i on (clamped to [eps, 1 − eps]).
    /// </summary>
    /// <param name="data">Training vectors, (N ≥ 1, n_visible), values valid for the visible units.</param>
    /// <param name="eps">Clamp for p_i, so that a unit never (or always) on gets a finite bias.</param>
    /// <exception cref="ArgumentException">Not a non-empty (N, n_visible) batch, or values invalid for the visible units.</exception>
    public void init_visible_bias_from_data(Tensor data, double eps = 1e-3)
    {
        check_visible(data, "data");
        Checks.Rows(data, n_visible, "data", param: nameof(data));
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var p = data.to(dtype, device).mean(new long[] { 0 }).clamp(eps, 1 - eps);
        _visible_bias.copy_(p.log() - (1 - p).log());
    }

    /// <summary>p(h = 1 | v): the up-pass, <c>hidden_units.mean(c + W v)</c>.</summary>
    /// <param name="v">Visible input, shape (B, n_visible) or (n_visible).</param>
    /// <returns>Hidden conditional means, shape (B, n_hidden) or (n_hidden).</returns>
    public override Tensor forward(Tensor v)
    {
        check_visible(v, "forward input");
        return prob_h(v);
    }

    // ---------------------------------------------------------------- net inputs and conditionals

    /// <summary>Hidden net input η_h = c + s↑·W v (= <c>linear(v, W, c)</c> when s↑ = <see cref="up_scale"/> = 1);
    /// c + s↑·W(v/σ²) for <see cref="LearnedGaussianUnits"/>.</summary>
    public Tensor hidden_net(Tensor v)
    {
        if (!visible_units.scales_coupling) return Coupled(v, _weight, _hidden_bias, _upScale);
        using var u = visible_units.coupling_input(v);
        return Coupled(u, _weight, _hidden_bias, _upScale);
    }

    /// <summary>Visible net input η_v = b + s↓·Wᵀ h (= <c>linear(h, Wᵀ, b)</c> when s↓ = <see cref="down_scale"/> = 1).</summary>
    public Tensor visible_net(Tensor h)
    {
        using var wt = _weight.t();
        return Coupled(h, wt, _visible_bias, _downScale);
    }

    /// <summary>bias + s·(x Mᵀ): one fused <c>linear</c> when s = 1, else the product scaled before the bias is added; with a
    /// <see cref="compute_dtype"/> other than x's, the product (x_c M_cᵀ) in that dtype, cast back to x's.</summary>
    private Tensor Coupled(Tensor x, Tensor m, Tensor bias, double s)
    {
        if (_computeDtype is { } cd && cd != x.dtype)
        {
            using var cast = torch.NewDisposeScope();
            var product = nn.functional.linear(x.to(cd), m.to(cd)).to(x.dtype);
            return (s == 1.0 ? product.add_(bias) : product.mul_(s).add_(bias)).MoveToOuterDisposeScope();
        }
        if (s == 1.0) return nn.functional.linear(x, m, bias);
        using var scope = torch.NewDisposeScope();
        return nn.functional.linear(x, m).mul(s).add(bias).MoveToOuterDisposeScope();
    }

    /// <summary>p(h = 1 | v) at temperature T: σ((c + W v) / T) for Bernoulli hidden units.</summary>
    /// <exception cref="ArgumentOutOfRangeException">T is not a finite positive number.</exception>
    public Tensor prob_h(Tensor v, double temperature = 1.0)
    {
        Checks.Temperature(temperature);
        return hidden_units.mean_(hidden_net(v), temperature);
    }

    /// <summary>p(v = 1 | h) at temperature T: σ((b + Wᵀ h) / T) for Bernoulli visible units; E[v | h] = b + Wᵀh at every
    /// T for Gaussian ones (<see cref="GaussianUnits"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">T is not a finite positive number.</exception>
    public Tensor prob_v(Tensor h, double temperature = 1.0)
    {
        Checks.Temperature(temperature);
        return visible_units.mean_(visible_net(h), temperature);
    }

    /// <summary>Samples h ~ p(h | v) at temperature T. Returns (probabilities, sample).</summary>
    public (Tensor prob, Tensor sample) sample_h(Tensor v, double temperature = 1.0, Generator? generator = null)
    {
        using var _ = torch.no_grad();
        var p = prob_h(v, temperature);
        return (p, hidden_units.sample_from_mean(p, temperature, generator));
    }

    /// <summary>Samples v ~ p(v | h) at temperature T. Returns (probabilities, sample).</summary>
    public (Tensor prob, Tensor sample) sample_v(Tensor h, double temperature = 1.0, Generator? generator = null)
    {
        using var _ = torch.no_grad();
        var p = prob_v(h, temperature);
        return (p, visible_units.sample_from_mean(p, temperature, generator));
    }

    // ---------------------------------------------------------------- energies

    /// <summary>
    /// Joint energy E(v, h) = −s↑·hᵀWv + Σ_i E_self(v_i; b_i) + Σ_j E_self(h_j; c_j); for Bernoulli units
    /// E(v, h) = −hᵀWv − bᵀv − cᵀh (s↑ = <see cref="up_scale"/>, 1 unless set). Differentiable.
    /// </summary>
    /// <param name="v">Visible states, (B, n_visible).</param>
    /// <param name="h">Hidden states, (B, n_hidden).</param>
    /// <returns>Energies, shape (B).</returns>
    public Tensor energy(Tensor v, Tensor h)
    {
        Checks.Width(v, n_visible, "visible states");
        Checks.Width(h, n_hidden, "hidden states");
        using var scope = torch.NewDisposeScope();
        var coupling = (nn.functional.linear(visible_units.scales_coupling ? visible_units.coupling_input(v) : v, _weight) * h).sum(-1);
        if (_upScale != 1.0) coupling = coupling.mul(_upScale);
        var ev = visible_units.self_energy(v, _visible_bias).sum(-1);
        var eh = hidden_units.self_energy(h, _hidden_bias).sum(-1);
        return (ev + eh - coupling).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Free energy at inverse temperature β, F_β(v) = −log Σ_h e^{−βE(v,h)} = β Σ_i E_self(v_i; b_i) − Σ_j
    /// log-partition_j(c_j + s↑·W_j v; β) (s↑ = <see cref="up_scale"/>, 1 unless set); for Bernoulli units
    /// F_β(v) = −βbᵀv − Σ_j softplus(β(c_j + W_j v)), computed with
    /// a numerically stable softplus. At β = 1 (the default) it is the model's free energy F(v), with p(v) = e^{−F(v)}/Z.
    /// Differentiable: ∂F/∂W = −p(h|v) vᵀ, ∂F/∂b = −v, ∂F/∂c = −p(h|v) (at β = 1).
    /// </summary>
    /// <param name="v">Visible states, (B, n_visible) or (n_visible).</param>
    /// <param name="beta">Inverse temperature β ≥ 0 (β = 0: F_0(v) = −Σ_j log-partition_j(·; 0), e.g. −n_hidden log 2).</param>
    /// <returns>Free energies, shape (B) or scalar.</returns>
    /// <exception cref="ArgumentOutOfRangeException">β is negative or not finite.</exception>
    public Tensor free_energy(Tensor v, double beta = 1.0)
    {
        check_visible(v, "free_energy input");
        return free_energy_unchecked(v, beta);
    }

    internal Tensor free_energy_unchecked(Tensor v, double beta = 1.0)
    {
        using var scope = torch.NewDisposeScope();
        var net = hidden_net(v);
        var lp = hidden_units.log_partition(net, _hidden_bias, beta).sum(-1);
        var fv = visible_units.self_energy(v, _visible_bias).sum(-1);
        if (beta != 1.0) fv = fv.mul(beta);
        return (fv - lp).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Contrastive-divergence surrogate loss L = mean_n F(v_data,n) − mean_n F(v_model,n) with v_model detached. Its
    /// autograd gradient is the CD-k / PCD estimate of −∂ log p / ∂θ:
    /// ∂L/∂W = −(⟨p(h|v) vᵀ⟩_data − ⟨p(h|v) vᵀ⟩_model), so any <c>torch.optim</c> optimizer can take the step.
    /// </summary>
    /// <param name="v_data">Positive-phase batch, (B, n_visible).</param>
    /// <param name="v_model">Negative-phase samples (e.g. from <see cref="gibbs"/>), (B', n_visible).</param>
    public Tensor cd_loss(Tensor v_data, Tensor v_model)
    {
        check_visible(v_data, "v_data");
        check_visible(v_model, "v_model");
        using var scope = torch.NewDisposeScope();
        var neg = v_model.detach();
        var loss = free_energy_unchecked(v_data).mean() - free_energy_unchecked(neg).mean();
        return loss.MoveToOuterDisposeScope();
    }

    // ---------------------------------------------------------------- sampling

    /// <summary>
    /// k steps of block Gibbs sampling v → h ~ p(h|v) → v ~ p(v|h), at temperature T, without autograd.
    /// </summary>
    /// <param name="v0">Start states, (B, n_visible).</param>
    /// <param name="k">Number of full steps (≥ 1).</param>
    /// <param name="temperature">Temperature T.</param>
    /// <param name="generator">Random generator.</param>
    /// <param name="sample_last_visible">When false, the last visible layer is the mean p(v|h) rather than a sample.</param>
    /// <returns>The visible states after k steps, (B, n_visible).</returns>
    public Tensor gibbs(Tensor v0, int k = 1, double temperature = 1.0, Generator? generator = null, bool sample_last_visible = true)
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be at least 1.");
        check_visible(v0, "Gibbs start");
        using var _ = torch.no_grad();
        using var chains = new Sampling.GibbsChains(this, generator, temperature);
        chains.step(k > 1 || sample_last_visible, from: v0);
        if (k > 1) chains.run(k - 1, sample_last_visible);
        return chains.visible.clone();
    }

    /// <summary>
    /// One block Gibbs step at temperature T without autograd: h ~ p(h | v), then v' ~ p(v | h). Returns
    /// (p(v | h), v'). The library's samplers take their steps through <see cref="Sampling.GibbsChains"/>, which draws in
    /// the same order.
    /// </summary>
    public (Tensor mean, Tensor sample) gibbs_step(Tensor v, double temperature = 1.0, Generator? generator = null)
    {
        var (ph, h) = sample_h(v, temperature, generator);
        using (ph) using (h) return sample_v(h, temperature, generator);
    }

    /// <summary>Mean-field reconstruction p(v | p(h | v)): one deterministic down-pass of the up-pass probabilities.</summary>
    public Tensor reconstruct(Tensor v)
    {
        check_visible(v, "reconstruct input");
        using var _ = torch.no_grad();
        using var ph = prob_h(v);
        return prob_v(ph);
    }

    /// <summary>
    /// Generates <paramref name="n"/> visible samples by block Gibbs sampling at temperature T. <paramref name="chains"/>
    /// chains start from <paramref name="start"/> (rows reused cyclically) or from the visible unit type's random states
    /// (<see cref="UnitType.initial_states"/>; binary units: uniform); after
    /// <paramref name="burn_in"/> steps each chain contributes a sample every <paramref name="thin"/> steps until n are
    /// collected.
    /// </summary>
    /// <param name="n">Number of samples.</param>
    /// <param name="burn_in">Gibbs steps before the first sample, which is the state after step <paramref name="burn_in"/> (≥ 1 used: 0 runs one step).</param>
    /// <param name="thin">Steps between successive samples of one chain (≥ 1).</param>
    /// <param name="temperature">Temperature T.</param>
    /// <param name="chains">Number of parallel chains (default: n, one sample each).</param>
    /// <param name="start">Optional start states, (S, n_visible).</param>
    /// <param name="generator">Random generator.</param>
    /// <param name="return_means">Return p(v|h) of the step that produced each sample instead of binary samples (smoother images).</param>
    /// <returns>Samples, (n, n_visible); chain c's samples are rows c, c + chains, ….</returns>
    public Tensor generate(int n, int burn_in = 1000, int thin = 1, double temperature = 1.0, int? chains = null,
                           Tensor? start = null, Generator? generator = null, bool return_means = false)
    {
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(n), n, "n must be at least 1.");
        if (burn_in < 0) throw new ArgumentOutOfRangeException(nameof(burn_in), burn_in, "burn_in must be non-negative.");
        if (thin < 1) throw new ArgumentOutOfRangeException(nameof(thin), thin, "thin must be at least 1.");
        int c = chains ?? n;
        if (c < 1 || c > n) throw new ArgumentOutOfRangeException(nameof(chains), c, $"chains must be in [1, n = {n}].");
        Checks.Temperature(temperature);
        using var _ = torch.no_grad();
        using var sampler = new Sampling.GibbsChains(this, generator, temperature);
        if (start is null)
        {
            sampler.start_random(c);   // the visible unit type's random states (binary units: uniform)
        }
        else
        {
            check_visible(start, "generate start");
            using var s = start.to(dtype, device).reshape(-1, n_visible);
            using var rows = torch.arange(c, device: device);
            using var idx = rows.remainder(s.shape[0]);
            using var picked = s.index_select(0, idx);
            sampler.start(picked);
        }
        var collected = new List<Tensor>();
        int rounds = (n + c - 1) / c;
        try
        {
            for (int r = 0; r < rounds; r++)
            {
                int steps = r == 0 ? Math.Max(1, burn_in) : thin;
                for (int s = 0; s < steps; s++)
                {
                    sampler.step();
                    if (s == steps - 1) collected.Add((return_means ? sampler.visible_mean! : sampler.visible).clone());
                }
            }
            using var all = torch.cat(collected, 0);
            return all.narrow(0, 0, n).clone();
        }
        finally
        {
            foreach (var t in collected) t.Dispose();
        }
    }

    // ---------------------------------------------------------------- validation

    /// <summary>
    /// Checks a visible tensor: rank 1 or 2, last dimension n_visible, and (when <see cref="validate_values"/>) values
    /// valid for the visible unit type. Throws <see cref="ArgumentException"/> naming what was expected and what came.
    /// </summary>
    public void check_visible(Tensor v, string what = "visible input")
    {
        Checks.Width(v, n_visible, what);
        if (validate_values) visible_units.check_values(v, what);
    }

    /// <summary>The hyperparameters, PyTorch <c>extra_repr</c> style.</summary>
    public override string ToString()
        => $"RBM(n_visible={n_visible}, n_hidden={n_hidden}, visible={visible_units.Name}, hidden={hidden_units.Name}" +
           (_upScale != 1.0 ? $", up_scale={_upScale}" : "") + (_downScale != 1.0 ? $", down_scale={_downScale}" : "") + ")";
}

using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Sampling;

/// <summary>
/// Parallel tempering over an <see cref="RBM"/> (Desjardins, Courville, Bengio, Vincent &amp; Delalleau 2010; Cho, Raiko
/// &amp; Ilin 2010): R replicas at each inverse temperature of a <see cref="TemperingLadder"/> β₀ = 1 &gt; β₁ &gt; … &gt;
/// β_M, each taking block Gibbs steps at its own temperature, with swaps of states between neighbouring levels so that
/// what the hot levels explore reaches the β = 1 level. The samples of the model are the β₀ replicas
/// (<see cref="visible"/>). Usable as a sampler (<see cref="generate"/>) and as the negative phase of
/// <see cref="Training.RbmTrainer"/> (<see cref="Training.RbmTrainingOptions.Tempering"/>).
/// </summary>
/// <remarks>
/// <para>One <see cref="step"/>: one Gibbs step of every replica at its level's temperature T_m = 1/β_m (through one
/// <see cref="GibbsChains"/> with per-chain temperatures), then one round of swap proposals. Rounds alternate between the
/// pairs (0,1), (2,3), … and (1,2), (3,4), …; each proposal pairs replica r of level m with replica r of level m + 1.</para>
/// <para>Swap acceptance. Level m's target is p_m(v) = e^{−F_{β_m}(v)}/Z_{β_m}, with the tempered free energy
/// F_β(v) = −log Σ_h e^{−βE(v,h)} = β Σ_i E_self(v_i; b_i) − Σ_j log-partition_j(c_j + W_j v; β)
/// (<see cref="RBM.free_energy"/>). Exchanging the states v_m ↔ v_{m+1} is a symmetric proposal on the product
/// Π_m p_m(v_m), so Metropolis–Hastings accepts it with probability
/// <code>min(1, p_m(v_{m+1}) p_{m+1}(v_m) / (p_m(v_m) p_{m+1}(v_{m+1})))
///   = min(1, exp(F_{β_m}(v_m) + F_{β_{m+1}}(v_{m+1}) − F_{β_m}(v_{m+1}) − F_{β_{m+1}}(v_m)))</code>
/// (the partition functions cancel). Had the replicas kept joint states x = (v, h), the same argument with βE(x) in
/// place of F_β gives the familiar min(1, exp((β_m − β_{m+1})(E(x_m) − E(x_{m+1})))). The replicas here keep only v
/// (the hidden layer is drawn afresh at the next step), so the acceptance is the one with h summed out: the exact
/// Metropolis–Hastings ratio of the chains' own state, and for Bernoulli hidden units F_β(v) = −βbᵀv − Σ_j softplus(β(c_j + W_j v)).</para>
/// <para>Swap statistics: <see cref="swap_acceptance"/> is the fraction of proposals accepted per neighbour pair since
/// the chains started (or <see cref="reset_swap_counts"/>). A pair near 0 cuts the ladder in two (add levels there); near
/// 1 everywhere, fewer levels would do.</para>
/// <para>State: <see cref="state_dict"/> / <see cref="load_state_dict"/> hold the replicas' states, the ladder, the
/// swap counts and the round parity (and the generator's state where the caller asks for it), so a stopped run continues
/// exactly.</para>
/// </remarks>
public sealed class ParallelTempering : IDisposable
{
    private readonly RBM _rbm;
    private readonly GibbsChains _chains;
    private Tensor? _accepted;        // (M) int64 on the model's device: accepted proposals per pair
    private readonly long[] _attempted;
    private long _round;
    private Tensor? _coldView;
    private Tensor? _coldMeanView;
    private int _replicas;

    /// <summary>Creates the sampler without states: start it with <see cref="start"/> or <see cref="start_random"/>.</summary>
    /// <param name="model">The RBM to sample.</param>
    /// <param name="ladder">The inverse temperatures (default <see cref="TemperingLadder.Linear"/>: 10 levels down to 0.1).</param>
    /// <param name="generator">Random generator on the model's device, or null for the global one. Not disposed here.</param>
    public ParallelTempering(RBM model, TemperingLadder? ladder = null, Generator? generator = null)
    {
        _rbm = model ?? throw new ArgumentNullException(nameof(model));
        this.ladder = ladder ?? TemperingLadder.Linear();
        _chains = new GibbsChains(model, generator);
        _attempted = new long[this.ladder.levels - 1];
    }

    /// <summary>The sampled model.</summary>
    public RBM model => _rbm;

    /// <summary>The inverse temperatures.</summary>
    public TemperingLadder ladder { get; }

    /// <summary>The generator the steps and swaps draw from (null: the global one).</summary>
    public Generator? generator
    {
        get => _chains.generator;
        set => _chains.generator = value;
    }

    /// <summary>Replicas per level, R (0 before the sampler is started).</summary>
    public int replicas => _replicas;

    /// <summary>Number of swap rounds taken (each <see cref="step"/> takes one).</summary>
    public long rounds => _round;

    /// <summary>
    /// Every replica's visible state, (levels × R, n_visible), level m in rows [mR, (m + 1)R); owned by this object and
    /// valid until the next step.
    /// </summary>
    /// <exception cref="InvalidOperationException">The sampler has not been started.</exception>
    public Tensor states => _chains.states;

    /// <summary>The β₀ = 1 replicas' visible states, (R, n_visible): samples of the model. Valid until the next step.</summary>
    /// <exception cref="InvalidOperationException">The sampler has not been started.</exception>
    public Tensor visible => _coldView ??= states.narrow(0, 0, _replicas).DetachFromDisposeScope();

    /// <summary>p(v | h) of the β₀ replicas' last step (the means of which <see cref="visible"/> is a sample), or null before the first step.</summary>
    public Tensor? visible_mean
    {
        get
        {
            if (_chains.visible_mean is not { } m || ReferenceEquals(m, _chains.visible)) return null;
            return _coldMeanView ??= m.narrow(0, 0, _replicas).DetachFromDisposeScope();
        }
    }

    /// <summary>Starts R = rows of <paramref name="states"/> replicas at every level, each level at a copy of these visible states.</summary>
    /// <exception cref="ArgumentException">The states do not fit the visible layer.</exception>
    public void start(Tensor states)
    {
        ArgumentNullException.ThrowIfNull(states);
        _rbm.check_visible(states, "tempering start");
        using var _ = torch.no_grad();
        using var s = states.reshape(-1, _rbm.n_visible);
        using var all = s.repeat(ladder.levels, 1);
        Begin((int)s.shape[0], all);
    }

    /// <summary>Starts <paramref name="replicas"/> replicas per level at the visible unit type's random states (<see cref="Units.UnitType.initial_states"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="replicas"/> is not positive.</exception>
    public void start_random(int replicas)
    {
        if (replicas < 1) throw new ArgumentOutOfRangeException(nameof(replicas), replicas, "replicas must be at least 1.");
        using var _ = torch.no_grad();
        using var all = _rbm.visible_units.initial_states(replicas * ladder.levels, _rbm.n_visible, _rbm.dtype, _rbm.device, generator);
        Begin(replicas, all);
    }

    private void Begin(int replicas, Tensor all)
    {
        DropViews();
        _replicas = replicas;
        _chains.start(all);
        using var t = PerRowTemperatures();
        _chains.temperatures = t;
        reset_swap_counts();
        _round = 0;
    }

    private Tensor PerRowTemperatures()
    {
        using var b = torch.tensor(ladder.betas.Select(x => 1.0 / x).ToArray(), ScalarType.Float64);
        return b.repeat_interleave(_replicas).to(_rbm.dtype, _rbm.device);
    }

    /// <summary>Zeroes the swap counts behind <see cref="swap_acceptance"/>.</summary>
    public void reset_swap_counts()
    {
        _accepted?.Dispose();
        _accepted = torch.zeros(ladder.levels - 1, ScalarType.Int64, _rbm.device).DetachFromDisposeScope();
        Array.Clear(_attempted);
    }

    /// <summary>Swap proposals made per neighbour pair (m, m + 1), m = 0 … M − 1, since the counts were reset.</summary>
    public IReadOnlyList<long> swaps_attempted => _attempted;

    /// <summary>Swap proposals accepted per neighbour pair since the counts were reset.</summary>
    public IReadOnlyList<long> swaps_accepted
    {
        get
        {
            if (_accepted is null) return new long[_attempted.Length];
            using var c = _accepted.cpu();
            return c.data<long>().ToArray();
        }
    }

    /// <summary>Accepted / attempted swaps per neighbour pair (NaN for a pair not yet proposed).</summary>
    public IReadOnlyList<double> swap_acceptance
        => swaps_accepted.Select((a, m) => _attempted[m] == 0 ? double.NaN : a / (double)_attempted[m]).ToArray();

    /// <summary>One Gibbs step of every replica at its temperature, then one round of swaps (see the class remarks).</summary>
    /// <param name="sample_visible">Draw the visible states (true) or keep p(v | h) (a mean-field visible layer, e.g. for pictures; the swaps then act on the means).</param>
    /// <exception cref="InvalidOperationException">The sampler has not been started.</exception>
    public void step(bool sample_visible = true)
    {
        if (_replicas == 0) throw new InvalidOperationException("The tempering sampler has no states yet: call start or start_random.");
        DropViews();
        _chains.step(sample_visible);
        Swap();
    }

    /// <summary><paramref name="k"/> steps.</summary>
    public void run(int k)
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be at least 1.");
        for (int s = 0; s < k; s++) step();
    }

    /// <summary>
    /// One round of swap proposals between the pairs (m, m + 1) with m of this round's parity, accepted with probability
    /// min(1, exp(F_{β_m}(v_m) + F_{β_{m+1}}(v_{m+1}) − F_{β_m}(v_{m+1}) − F_{β_{m+1}}(v_m))) (class remarks): one uniform
    /// draw per pair and replica, u &lt; that probability ⇔ log u &lt; the exponent.
    /// </summary>
    private void Swap()
    {
        int parity = (int)(_round++ % 2);
        int levels = ladder.levels, r = _replicas;
        if (parity + 1 >= levels) return;
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = _chains.states;
        var net = _rbm.hidden_net(x);                                                   // (L·R, H)
        var selfEnergy = _rbm.visible_units.self_energy(x, _rbm.visible_bias).sum(-1);   // Σ_i E_self(v_i; b_i), (L·R)
        var hb = _rbm.hidden_bias.detach();
        // F_β(rows) = β Σ_i E_self − Σ_j log-partition_j(η_j; β)
        Tensor F(double beta, int level)
        {
            var lp = _rbm.hidden_units.log_partition(net.narrow(0, (long)level * r, r), hb, beta).sum(-1);
            return selfEnergy.narrow(0, (long)level * r, r).mul(beta).sub_(lp);
        }
        var perm = torch.arange(levels * (long)r, ScalarType.Int64, x.device);
        bool any = false;
        for (int m = parity; m + 1 < levels; m += 2)
        {
            double bm = ladder.betas[m], bn = ladder.betas[m + 1];
            var logAccept = F(bm, m).add_(F(bn, m + 1)).sub_(F(bm, m + 1)).sub_(F(bn, m));
            var u = torch.rand(r, x.dtype, x.device, generator: generator);
            var accept = u.log_().lt(logAccept);
            var a = torch.arange((long)m * r, (long)(m + 1) * r, ScalarType.Int64, x.device);
            var b = a.add(r);
            perm.narrow(0, (long)m * r, r).copy_(torch.where(accept, b, a));
            perm.narrow(0, (long)(m + 1) * r, r).copy_(torch.where(accept, a, b));
            _accepted!.narrow(0, m, 1).add_(accept.sum());
            _attempted[m] += r;
            any = true;
        }
        if (!any) return;
        x.copy_(x.index_select(0, perm));
        if (_chains.visible_mean is { } mean && !ReferenceEquals(mean, x)) mean.copy_(mean.index_select(0, perm));
    }

    /// <summary>
    /// Draws <paramref name="n"/> samples of the model from the β₀ replicas: <paramref name="replicas"/> per level start
    /// at <paramref name="start"/> (rows reused cyclically) or at random states; after <paramref name="burn_in"/> steps
    /// the β₀ replicas contribute their states every <paramref name="thin"/> steps until n are collected.
    /// </summary>
    /// <param name="n">Number of samples.</param>
    /// <param name="burn_in">Steps before the first sample (≥ 1 used).</param>
    /// <param name="thin">Steps between successive samples of one replica.</param>
    /// <param name="replicas">Replicas per level (default: n, one sample each).</param>
    /// <param name="start">Optional start states, (S, n_visible).</param>
    /// <param name="return_means">Return p(v|h) of the β₀ replicas' last step instead of their states.</param>
    /// <returns>Samples, (n, n_visible); replica r's samples are rows r, r + replicas, ….</returns>
    public Tensor generate(int n, int burn_in = 1000, int thin = 1, int? replicas = null, Tensor? start = null, bool return_means = false)
    {
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(n), n, "n must be at least 1.");
        if (burn_in < 0) throw new ArgumentOutOfRangeException(nameof(burn_in), burn_in, "burn_in must be non-negative.");
        if (thin < 1) throw new ArgumentOutOfRangeException(nameof(thin), thin, "thin must be at least 1.");
        int c = replicas ?? n;
        if (c < 1 || c > n) throw new ArgumentOutOfRangeException(nameof(replicas), c, $"replicas must be in [1, n = {n}].");
        using var _ = torch.no_grad();
        if (start is null) start_random(c);
        else
        {
            _rbm.check_visible(start, "generate start");
            using var s = start.to(_rbm.dtype, _rbm.device).reshape(-1, _rbm.n_visible);
            using var rows = torch.arange(c, device: _rbm.device);
            using var idx = rows.remainder(s.shape[0]);
            using var picked = s.index_select(0, idx);
            this.start(picked);
        }
        var collected = new List<Tensor>();
        try
        {
            int rounds = (n + c - 1) / c;
            for (int k = 0; k < rounds; k++)
            {
                int steps = k == 0 ? Math.Max(1, burn_in) : thin;
                for (int s = 0; s < steps; s++) step();
                collected.Add((return_means ? visible_mean ?? visible : visible).clone());
            }
            using var all = torch.cat(collected, 0);
            return all.narrow(0, 0, n).clone();
        }
        finally { foreach (var t in collected) t.Dispose(); }
    }

    /// <summary>
    /// The sampler's state as named tensors (copies the caller owns): <c>states</c> (all replicas), <c>betas</c> (the
    /// ladder, float64), <c>swap_accepted</c>, <c>swap_attempted</c>, <c>swap_round</c>, and with
    /// <paramref name="include_generator"/> <c>generator_state</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The sampler has not been started.</exception>
    public Dictionary<string, Tensor> state_dict(bool include_generator = true)
    {
        using var _ = torch.no_grad();
        var d = new Dictionary<string, Tensor>
        {
            ["states"] = states.clone(),
            ["betas"] = torch.tensor(ladder.betas.ToArray(), ScalarType.Float64),
            ["swap_accepted"] = _accepted!.to(DeviceType.CPU, copy: true),
            ["swap_attempted"] = torch.tensor(_attempted.ToArray(), ScalarType.Int64),
            ["swap_round"] = torch.tensor(_round, ScalarType.Int64),
        };
        if (include_generator && generator is not null) d["generator_state"] = generator.get_state();
        return d;
    }

    /// <summary>Restores a state written by <see cref="state_dict"/> (the tensors are copied).</summary>
    /// <exception cref="ArgumentException">A tensor is missing, or the state belongs to another ladder or model size.</exception>
    public void load_state_dict(IReadOnlyDictionary<string, Tensor> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        foreach (var name in new[] { "states", "betas", "swap_accepted", "swap_attempted", "swap_round" })
            if (!state.ContainsKey(name)) throw new ArgumentException($"tempering state: '{name}' is missing.");
        var s = state["states"];
        int levels = ladder.levels;
        if (s.dim() != 2 || s.shape[1] != _rbm.n_visible || s.shape[0] % levels != 0 || s.shape[0] == 0)
            throw new ArgumentException($"tempering state: 'states' expected shape (levels·R = {levels}·R, {_rbm.n_visible}), got ({string.Join(", ", s.shape)}).");
        using var b = state["betas"].to(ScalarType.Float64, torch.CPU, copy: true);
        var betas = b.data<double>().ToArray();
        if (!betas.SequenceEqual(ladder.betas))
            throw new ArgumentException($"tempering state: saved for the ladder {new TemperingLadder(betas)}, this sampler has {ladder}.");
        using var _ = torch.no_grad();
        using var states = s.to(_rbm.dtype, _rbm.device, copy: true);
        Begin((int)(s.shape[0] / levels), states);
        using (var acc = state["swap_accepted"].to(ScalarType.Int64, _rbm.device, copy: true)) _accepted!.copy_(acc);
        using (var att = state["swap_attempted"].to(ScalarType.Int64, torch.CPU, copy: true)) att.data<long>().ToArray().CopyTo(_attempted, 0);
        _round = state["swap_round"].ToInt64();
        if (state.TryGetValue("generator_state", out var g))
        {
            if (generator is null) throw new ArgumentException("tempering state: it holds a generator state, but this sampler draws from the global generator.");
            generator.set_state(g);
        }
    }

    private void DropViews()
    {
        _coldView?.Dispose();
        _coldView = null;
        _coldMeanView?.Dispose();
        _coldMeanView = null;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        DropViews();
        _chains.Dispose();
        _accepted?.Dispose();
        _accepted = null;
    }
}

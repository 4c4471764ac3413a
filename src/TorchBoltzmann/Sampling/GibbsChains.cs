using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Sampling;

/// <summary>
/// A set of block-Gibbs chains over an <see cref="RBM"/> that owns their state: the visible states of every chain, the
/// temperature (one for all chains, or one per chain for tempering), units held fixed (clamped), and the generator the
/// steps draw from. Every Gibbs loop of the library runs through it: <see cref="RBM.gibbs"/>, <see cref="RBM.generate"/>,
/// <see cref="DBN.sample_top"/> and the trainer's negative phase (CD restarts the chains at the data every batch, PCD
/// keeps them).
/// </summary>
/// <remarks>
/// <para>One step at temperature T (per chain: T_c), without autograd:
/// <code>h ~ p(h | v) = mean_h((c + W v) / T),   v' ~ p(v | h) = mean_v((b + Wᵀ h) / T)</code>
/// drawn in that order from <see cref="generator"/> (the hidden sample, then the visible sample), so a run is
/// reproducible from the generator's state. Clamped units are reset to their values after every step.</para>
/// <para>Memory: the chains' states are tensors of this object, outside any dispose scope, replaced (not copied) at each
/// step; <see cref="visible"/> and <see cref="visible_mean"/> are valid until the next step or <see cref="Dispose"/>.</para>
/// <para>State: <see cref="state_dict"/> / <see cref="load_state_dict"/> hold the visible states, temperatures, clamp
/// and generator state, and <see cref="save"/> / <see cref="load"/> write them to a file, so a run that stops can
/// continue its chains exactly.</para>
/// </remarks>
public sealed class GibbsChains : IDisposable
{
    private Tensor? _visible;
    private Tensor? _visibleMean;
    private Tensor? _temperatures;
    private Tensor? _clampValues;
    private Tensor? _visibleField;
    private long _clampFirst;
    private double _temperature = 1.0;

    /// <summary>Creates chains over <paramref name="model"/> without states yet: start them with <see cref="start"/>,
    /// <see cref="start_random"/>, or a step <c>from</c> given states.</summary>
    /// <param name="model">The machine whose conditionals the steps sample.</param>
    /// <param name="generator">Random generator on the model's device, or null for the global one. Not disposed here.</param>
    /// <param name="temperature">Temperature T of every chain (see <see cref="temperatures"/> for one per chain).</param>
    public GibbsChains(RBM model, Generator? generator = null, double temperature = 1.0)
    {
        this.model = model ?? throw new ArgumentNullException(nameof(model));
        this.generator = generator;
        this.temperature = temperature;
    }

    /// <summary>The machine the chains sample.</summary>
    public RBM model { get; }

    /// <summary>The generator every step draws from (null: the global one).</summary>
    public Generator? generator { get; set; }

    /// <summary>Temperature T of every chain, unless <see cref="temperatures"/> is set.</summary>
    /// <exception cref="ArgumentOutOfRangeException">T is not finite and positive.</exception>
    public double temperature
    {
        get => _temperature;
        set { Checks.Temperature(value); _temperature = value; }
    }

    /// <summary>
    /// One temperature per chain, shape (n_chains) (parallel tempering), or null to use <see cref="temperature"/> for all.
    /// The tensor is copied.
    /// </summary>
    /// <exception cref="ArgumentException">Not a vector of positive finite values, one per chain.</exception>
    public Tensor? temperatures
    {
        get => _temperatures;
        set
        {
            _temperatures?.Dispose();
            _temperatures = null;
            if (value is null) return;
            using var _ = torch.no_grad();
            if (value.dim() != 1 || (_visible is not null && value.shape[0] != n_chains))
                throw new ArgumentException($"temperatures: expected one per chain, shape ({(_visible is null ? "n_chains" : n_chains)}), got ({string.Join(", ", value.shape)}).");
            using var lo = value.min();
            using var hi = value.max();
            if (!(lo.ToDouble() > 0) || !double.IsFinite(hi.ToDouble()))
                throw new ArgumentException("temperatures: expected finite positive values.");
            _temperatures = value.to(model.dtype, model.device).clone().DetachFromDisposeScope();
        }
    }

    /// <summary>
    /// An external field a on the visible units that the temperature does not scale, shape (n_visible), or null (none):
    /// with it the chains sample p(v, h) ∝ e^{aᵀv − E(v,h)/T}, so p(v | h) = mean_v((b + Wᵀh)/T + a). Annealed importance
    /// sampling moves along p_β ∝ e^{(1−β) b_Aᵀv − βE(v,h)} from a base-rate model with visible biases b_A: it steps at
    /// T = 1/β with a = (1 − β) b_A. Meant for unit types whose self-energy is linear in the bias
    /// (<see cref="Units.UnitType.has_linear_bias"/>) and whose mean depends on η/T. The tensor is copied; it is not part of
    /// <see cref="state_dict"/> (a caller that sets it sets it again after a load).
    /// </summary>
    /// <exception cref="ArgumentException">Not a vector of n_visible finite values.</exception>
    public Tensor? visible_field
    {
        get => _visibleField;
        set
        {
            _visibleField?.Dispose();
            _visibleField = null;
            if (value is null) return;
            using var _ = torch.no_grad();
            if (value.dim() != 1 || value.shape[0] != model.n_visible)
                throw new ArgumentException($"visible_field: expected shape ({model.n_visible}), got ({string.Join(", ", value.shape)}).");
            using (var finite = value.isfinite().all())
                if (!finite.ToBoolean()) throw new ArgumentException("visible_field: expected finite values.");
            _visibleField = value.to(model.dtype, model.device).clone().DetachFromDisposeScope();
        }
    }

    /// <summary>Number of chains (0 before they are started).</summary>
    public long n_chains => _visible?.shape[0] ?? 0;

    /// <summary>The chains' visible states, (n_chains, n_visible); owned by this object.</summary>
    /// <exception cref="InvalidOperationException">The chains have not been started.</exception>
    public Tensor visible => _visible ?? throw new InvalidOperationException("The chains have no states yet: call start, start_random or step(from: …).");

    /// <summary>p(v | h) of the last step, the visible means of which <see cref="visible"/> is a sample; null before the first step.</summary>
    public Tensor? visible_mean => _visibleMean;

    /// <summary>Starts the chains at a copy of <paramref name="states"/>, (n_chains, n_visible), with the clamp applied.</summary>
    /// <exception cref="ArgumentException">The states do not fit the visible layer.</exception>
    public void start(Tensor states)
    {
        ArgumentNullException.ThrowIfNull(states);
        model.check_visible(states, "chain start");
        using var _ = torch.no_grad();
        var v = states.to(model.dtype, model.device).reshape(-1, model.n_visible).clone().DetachFromDisposeScope();
        Replace(v, null);
        ApplyClamp(v);
    }

    /// <summary>
    /// Starts <paramref name="n_chains"/> chains at random states supplied by the visible unit type
    /// (<see cref="Units.UnitType.initial_states"/>, drawn from <see cref="generator"/>), with the clamp applied.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="n_chains"/> is not positive.</exception>
    public void start_random(int n_chains)
    {
        if (n_chains < 1) throw new ArgumentOutOfRangeException(nameof(n_chains), n_chains, "n_chains must be at least 1.");
        using var _ = torch.no_grad();
        var v = model.visible_units.initial_states(n_chains, model.n_visible, model.dtype, model.device, generator).DetachFromDisposeScope();
        Replace(v, null);
        ApplyClamp(v);
    }

    /// <summary>
    /// Holds units [first_unit, first_unit + m) of every chain at <paramref name="values"/>, (n_chains, m) or (m),
    /// after every step (and now, when the chains have states); <see cref="release"/> frees them. A class-conditional
    /// DBN clamps its label group this way.
    /// </summary>
    /// <exception cref="ArgumentException">The range does not fit the visible layer, or the values' shape does not fit it.</exception>
    public void clamp(long first_unit, Tensor values)
    {
        ArgumentNullException.ThrowIfNull(values);
        long m = values.shape[^1];
        if (first_unit < 0 || m < 1 || first_unit + m > model.n_visible || values.dim() > 2)
            throw new ArgumentException($"clamp: expected units within [0, {model.n_visible}) and values of shape (n_chains, m) or (m), got first unit {first_unit} and shape ({string.Join(", ", values.shape)}).");
        using var _ = torch.no_grad();
        release();
        _clampFirst = first_unit;
        _clampValues = values.to(model.dtype, model.device).clone().DetachFromDisposeScope();
        if (_visible is not null) ApplyClamp(_visible);
    }

    /// <summary>Frees the clamped units.</summary>
    public void release()
    {
        _clampValues?.Dispose();
        _clampValues = null;
    }

    /// <summary>
    /// One block Gibbs step of every chain (or of the first <paramref name="count"/>): h ~ p(h | v), then v' ~ p(v | h)
    /// when <paramref name="sample_visible"/>, else v' = p(v | h) (a mean-field visible layer: no draw); clamped units
    /// reset. <see cref="visible"/> becomes v', <see cref="visible_mean"/> p(v | h).
    /// </summary>
    /// <param name="sample_visible">Draw the visible states (true), or take their means.</param>
    /// <param name="from">Start this step at these states instead of the chains' own (CD restarts at the data); read, not kept.</param>
    /// <param name="hidden_mean">p(h | v) of the step's start states when the caller has it already (read, not kept).</param>
    /// <param name="count">Step only the first <paramref name="count"/> chains (a short last batch of PCD); the others keep their states.</param>
    public void step(bool sample_visible = true, Tensor? from = null, Tensor? hidden_mean = null, long? count = null)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var v = from ?? visible;
        bool partial = from is null && count is { } c0 && c0 < n_chains;
        if (partial) v = v.narrow(0, 0, count!.Value);
        if (_temperatures is not null && _temperatures.shape[0] != (partial ? n_chains : v.shape[0]))
            throw new ArgumentException($"temperatures: expected one per chain ({v.shape[0]}), got {_temperatures.shape[0]}.");
        var t = _temperatures is null ? null : (partial ? _temperatures.narrow(0, 0, count!.Value) : _temperatures).unsqueeze(1);
        var hm = hidden_mean ?? Mean(model.hidden_net(v), model.hidden_units, t);
        var h = Sample(model.hidden_units, hm, t);
        var pv = Mean(model.visible_net(h), model.visible_units, t, _visibleField);
        var next = sample_visible ? Sample(model.visible_units, pv, t) : pv;
        ApplyClamp(next);
        if (partial)
        {
            using (var rows = _visible!.narrow(0, 0, count!.Value)) rows.copy_(next);
            if (_visibleMean is not null && !ReferenceEquals(_visibleMean, _visible)) _visibleMean.Dispose();
            _visibleMean = pv.DetachFromDisposeScope();
        }
        else
        {
            Replace(next.DetachFromDisposeScope(), ReferenceEquals(next, pv) ? next : pv.DetachFromDisposeScope());
        }
    }

    /// <summary><paramref name="k"/> steps (<see cref="step"/>), the last one drawing the visible states only when <paramref name="sample_last_visible"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="k"/> is less than 1.</exception>
    public void run(int k, bool sample_last_visible = true)
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be at least 1.");
        for (int s = 0; s < k; s++) step(s < k - 1 || sample_last_visible);
    }

    /// <summary>p(h | v) of the chains' current states at their temperatures (a new tensor; the caller owns it).</summary>
    public Tensor hidden_mean()
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var t = _temperatures?.unsqueeze(1);
        return Mean(model.hidden_net(visible), model.hidden_units, t).MoveToOuterDisposeScope();
    }

    /// <summary>Moves the chains' tensors to <paramref name="device"/> (the model must be moved separately).</summary>
    public void to(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        static Tensor? Move(Tensor? t, Device d)
        {
            if (t is null || t.device == d) return t;
            var moved = t.to(d).DetachFromDisposeScope();
            t.Dispose();
            return moved;
        }
        _visible = Move(_visible, device);
        _visibleMean = Move(_visibleMean, device);
        _temperatures = Move(_temperatures, device);
        _clampValues = Move(_clampValues, device);
    }

    /// <summary>
    /// The chains' state as named tensors (copies the caller owns): <c>visible</c>, and where set <c>temperatures</c>,
    /// <c>clamp_values</c> with <c>clamp_first</c>, and <c>generator_state</c> (the generator's state bytes).
    /// </summary>
    public Dictionary<string, Tensor> state_dict()
    {
        using var _ = torch.no_grad();
        var d = new Dictionary<string, Tensor> { ["visible"] = visible.clone() };
        d["temperature"] = torch.tensor(_temperature, ScalarType.Float64);
        if (_temperatures is not null) d["temperatures"] = _temperatures.clone();
        if (_clampValues is not null)
        {
            d["clamp_values"] = _clampValues.clone();
            d["clamp_first"] = torch.tensor(_clampFirst);
        }
        if (generator is not null) d["generator_state"] = generator.get_state();
        return d;
    }

    /// <summary>Restores a state written by <see cref="state_dict"/> (tensors are copied; the generator's state is set).</summary>
    /// <exception cref="ArgumentException">A tensor is missing or does not fit the model.</exception>
    public void load_state_dict(IReadOnlyDictionary<string, Tensor> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (!state.TryGetValue("visible", out var v)) throw new ArgumentException("chain state: 'visible' is missing.");
        if (v.dim() != 2 || v.shape[1] != model.n_visible)
            throw new ArgumentException($"chain state: 'visible' expected shape (n_chains, {model.n_visible}), got ({string.Join(", ", v.shape)}).");
        using var _ = torch.no_grad();
        release();
        temperatures = null;
        Replace(v.to(model.dtype, model.device).clone().DetachFromDisposeScope(), null);
        if (state.TryGetValue("temperature", out var t)) temperature = t.ToDouble();
        if (state.TryGetValue("temperatures", out var ts)) temperatures = ts;
        if (state.TryGetValue("clamp_values", out var cv) && state.TryGetValue("clamp_first", out var cf)) clamp(cf.ToInt64(), cv);
        if (state.TryGetValue("generator_state", out var g))
        {
            if (generator is null) throw new ArgumentException("chain state: it holds a generator state, but these chains draw from the global generator.");
            generator.set_state(g);
        }
    }

    /// <summary>Writes <see cref="state_dict"/> to <paramref name="path"/> atomically (a crash leaves the old file or the new one).</summary>
    public void save(string path)
    {
        var d = state_dict();
        try
        {
            AtomicFile.Write(path, stream =>
            {
                using var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
                w.Write(FileMagic);
                w.Write(d.Count);
                foreach (var (name, tensor) in d.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    w.Write(name);
                    w.Write((int)tensor.dtype);
                    w.Write((int)tensor.dim());
                    foreach (long s in tensor.shape) w.Write(s);
                    using var cpu = tensor.cpu().contiguous();
                    w.Write(cpu.bytes.ToArray());
                }
            });
        }
        finally { foreach (var t in d.Values) t.Dispose(); }
    }

    /// <summary>Restores chains written by <see cref="save"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not a chain-state file, or is truncated or corrupt.</exception>
    public void load(string path)
    {
        var d = new Dictionary<string, Tensor>();
        try
        {
            using var stream = File.OpenRead(path);
            using var r = new BinaryReader(stream, System.Text.Encoding.UTF8);
            try
            {
                if (r.ReadString() != FileMagic) throw new InvalidDataException($"'{path}': not a chain-state file.");
                int n = r.ReadInt32();
                if (n < 1 || n > 16) throw new InvalidDataException($"'{path}': expected 1–16 tensors, got {n}.");
                for (int i = 0; i < n; i++)
                {
                    string name = r.ReadString();
                    var dtype = (ScalarType)r.ReadInt32();
                    if (dtype is not (ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int64 or ScalarType.Byte))
                        throw new InvalidDataException($"'{path}': tensor '{name}' has an unexpected dtype {(int)dtype}.");
                    int rank = r.ReadInt32();
                    if (rank < 0 || rank > 4) throw new InvalidDataException($"'{path}': tensor '{name}' has rank {rank}.");
                    var shape = new long[rank];
                    long numel = 1;
                    for (int j = 0; j < rank; j++)
                    {
                        shape[j] = r.ReadInt64();
                        if (shape[j] < 0 || shape[j] > stream.Length) throw new InvalidDataException($"'{path}': tensor '{name}' has a bad shape.");
                        numel *= shape[j];
                    }
                    using var probe = torch.empty(0, dtype);
                    long bytes = numel * probe.ElementSize;
                    if (bytes > stream.Length - stream.Position) throw new InvalidDataException($"'{path}': truncated in tensor '{name}'.");
                    var t = torch.empty(shape, dtype);
                    t.bytes = r.ReadBytes((int)bytes);
                    d[name] = t;
                }
            }
            catch (EndOfStreamException e) { throw new InvalidDataException($"'{path}': truncated chain-state file.", e); }
            load_state_dict(d);
        }
        finally { foreach (var t in d.Values) t.Dispose(); }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Replace(null, null);
        temperatures = null;
        visible_field = null;
        release();
    }

    private const string FileMagic = "TorchBoltzmann.GibbsChains/1";

    /// <summary>A draw at the chains' temperature: one for all, or one per chain (a continuous type's spread depends on it).</summary>
    private Tensor Sample(Units.UnitType units, Tensor mean, Tensor? perChain)
        => perChain is null ? units.sample_from_mean(mean, _temperature, generator) : units.sample_from_mean(mean, perChain, generator);

    /// <summary>
    /// The unit type's mean at per-chain temperatures T (B, 1) or at the scalar temperature, in place (for types whose
    /// self-energy is linear in x: mean(η / T)); with an untempered <paramref name="field"/> a, mean(η / T + a).
    /// </summary>

    private Tensor Mean(Tensor net, Units.UnitType units, Tensor? perChain, Tensor? field = null)
    {
        if (field is null)
            return perChain is null ? units.mean_(net, _temperature) : units.mean_(net, perChain);
        if (perChain is null) net.div_(_temperature); else net.div_(perChain);
        return units.mean_(net.add_(field), 1.0);
    }

    private void ApplyClamp(Tensor v)
    {
        if (_clampValues is null) return;
        using var scope = torch.NewDisposeScope();
        var values = _clampValues.dim() == 1 ? _clampValues.expand(v.shape[0], -1)
            : _clampValues.shape[0] == 1 ? _clampValues.expand(v.shape[0], -1)
            : _clampValues.narrow(0, 0, Math.Min(v.shape[0], _clampValues.shape[0]));
        v.narrow(1, _clampFirst, _clampValues.shape[^1]).copy_(values);
    }

    private void Replace(Tensor? visible, Tensor? mean)
    {
        if (_visibleMean is not null && !ReferenceEquals(_visibleMean, _visible)) _visibleMean.Dispose();
        _visible?.Dispose();
        _visible = visible;
        _visibleMean = mean;
    }
}

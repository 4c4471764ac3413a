using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Sampling;

/// <summary>
/// A set of Gibbs chains over an <see cref="RBM"/> or a <see cref="BoltzmannMachine"/> that owns their state: the visible states of every chain, the
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
/// <para>Over a <see cref="BoltzmannMachine"/> the chains hold all n units (visible first) and one step is one sweep
/// at temperature T_c, each update drawn for every chain at once:
/// <list type="bullet">
/// <item><see cref="GibbsScan.Systematic"/>: units 0, 1, …, n − 1 in turn, x_i ~ p(x_i | rest) = mean(η_i / T), η = xW + b;</item>
/// <item><see cref="GibbsScan.Random"/>: n updates, each of a unit drawn uniformly for each chain on its own;</item>
/// <item><see cref="GibbsScan.Blocked"/>: the colour classes of the connectivity graph
/// (<see cref="BoltzmannMachine.colour_classes"/>) in turn, each class at once (its units are conditionally
/// independent given the rest): two blocks for a bipartite or layered mask, one block per unit for a full one.</item>
/// </list>
/// Clamped units are never updated (the other units see their clamped values throughout the sweep).
/// <see cref="visible_mean"/> holds every unit's conditional mean at its last update, (n_chains, n).
/// The blocks are computed from the mask when the chains are created.</para>
/// <para>Memory: the chains' states are tensors of this object, outside any dispose scope, replaced (not copied) at each
/// step; <see cref="visible"/> and <see cref="visible_mean"/> are valid until the next step or <see cref="Dispose"/>.</para>
/// <para>State: <see cref="state_dict"/> / <see cref="load_state_dict"/> hold the visible states, temperatures, clamp
/// and generator state, and <see cref="save"/> / <see cref="load"/> write them to a file, so a run that stops can
/// continue its chains exactly.</para>
/// </remarks>
public sealed class GibbsChains : IDisposable
{
    private readonly RBM? _rbm;
    private readonly BoltzmannMachine? _bm;
    private readonly int[][]? _colours;
    private List<Tensor>? _blocks;
    private Tensor? _freeUnits;
    private Tensor? _visibleView;
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
        _rbm = model ?? throw new ArgumentNullException(nameof(model));
        this.model = model;
        this.generator = generator;
        this.temperature = temperature;
    }

    /// <summary>
    /// Creates chains over a general <paramref name="machine"/>, whose states are all its units (see the remarks for
    /// what one step does with each <paramref name="scan"/>).
    /// </summary>
    /// <param name="machine">The machine whose conditionals the sweeps sample (on its device already).</param>
    /// <param name="generator">Random generator on the machine's device, or null for the global one. Not disposed here.</param>
    /// <param name="temperature">Temperature T of every chain.</param>
    /// <param name="scan">The order of the updates within a sweep.</param>
    public GibbsChains(BoltzmannMachine machine, Generator? generator = null, double temperature = 1.0, GibbsScan scan = GibbsScan.Systematic)
    {
        _bm = machine ?? throw new ArgumentNullException(nameof(machine));
        if (!Enum.IsDefined(scan)) throw new ArgumentOutOfRangeException(nameof(scan), scan, "scan: expected Systematic, Random or Blocked.");
        this.model = machine;
        this.scan = scan;
        this.generator = generator;
        this.temperature = temperature;
        if (scan == GibbsScan.Blocked) _colours = machine.colour_classes();
        BuildBlocks();
    }

    /// <summary>The machine the chains sample (an <see cref="RBM"/> or a <see cref="BoltzmannMachine"/>).</summary>
    public IEnergyModel model { get; }

    /// <summary>The general machine the chains sample, or null for RBM chains.</summary>
    public BoltzmannMachine? machine => _bm;

    /// <summary>The update order of a <see cref="BoltzmannMachine"/>'s sweep (RBM chains always update whole layers).</summary>
    public GibbsScan scan { get; }

    /// <summary>Units per chain state: n_visible for an RBM, all n units for a <see cref="BoltzmannMachine"/>.</summary>
    public int width => _bm?.n_units ?? _rbm!.n_visible;

    private RBM Rbm => _rbm ?? throw new InvalidOperationException("This operation is for RBM chains; these chains sample a BoltzmannMachine.");

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

    /// <summary>
    /// The chains' visible states, (n_chains, n_visible); owned by this object. For a <see cref="BoltzmannMachine"/> a
    /// view of the first n_visible columns of <see cref="states"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The chains have not been started.</exception>
    public Tensor visible
    {
        get
        {
            var s = states;
            if (_bm is null) return s;
            return _visibleView ??= s.narrow(1, 0, _bm.n_visible).DetachFromDisposeScope();
        }
    }

    /// <summary>The chains' full states, (n_chains, <see cref="width"/>): the visible states for an RBM, all units for a <see cref="BoltzmannMachine"/>.</summary>
    /// <exception cref="InvalidOperationException">The chains have not been started.</exception>
    public Tensor states => _visible ?? throw new InvalidOperationException("The chains have no states yet: call start, start_random or step(from: …).");

    /// <summary>
    /// For an RBM, p(v | h) of the last step, the visible means of which <see cref="visible"/> is a sample; for a
    /// <see cref="BoltzmannMachine"/>, every unit's conditional mean at its last update, (n_chains, n). Null before the
    /// first step.
    /// </summary>
    public Tensor? visible_mean => _visibleMean;

    /// <summary>Starts the chains at a copy of <paramref name="states"/>, (n_chains, <see cref="width"/>), with the clamp applied.</summary>
    /// <exception cref="ArgumentException">The states do not fit the visible layer (RBM) or the machine's units.</exception>
    public void start(Tensor states)
    {
        ArgumentNullException.ThrowIfNull(states);
        CheckStates(states, "chain start");
        using var _ = torch.no_grad();
        var v = states.to(model.dtype, model.device).reshape(-1, width).clone().DetachFromDisposeScope();
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
        var v = model.visible_units.initial_states(n_chains, width, model.dtype, model.device, generator).DetachFromDisposeScope();
        Replace(v, null);
        ApplyClamp(v);
    }

    /// <summary>
    /// Holds units [first_unit, first_unit + m) of every chain at <paramref name="values"/>, (n_chains, m) or (m),
    /// after every step (and now, when the chains have states); <see cref="release"/> frees them. A class-conditional
    /// DBN clamps its label group this way.
    /// </summary>
    /// <exception cref="ArgumentException">The range does not fit the state (<see cref="width"/> units), or the values' shape does not fit it.</exception>
    public void clamp(long first_unit, Tensor values)
    {
        ArgumentNullException.ThrowIfNull(values);
        long m = values.shape[^1];
        if (first_unit < 0 || m < 1 || first_unit + m > width || values.dim() > 2)
            throw new ArgumentException($"clamp: expected units within [0, {width}) and values of shape (n_chains, m) or (m), got first unit {first_unit} and shape ({string.Join(", ", values.shape)}).");
        using var _ = torch.no_grad();
        release();
        _clampFirst = first_unit;
        _clampValues = values.to(model.dtype, model.device).clone().DetachFromDisposeScope();
        if (_visible is not null) ApplyClamp(_visible);
        BuildBlocks();
    }

    /// <summary>Frees the clamped units.</summary>
    public void release()
    {
        bool had = _clampValues is not null;
        _clampValues?.Dispose();
        _clampValues = null;
        if (had) BuildBlocks();
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
    /// <remarks>For a <see cref="BoltzmannMachine"/> one step is one sweep (see the class remarks); every update draws,
    /// so <paramref name="sample_visible"/> must be true and <paramref name="hidden_mean"/> null.</remarks>
    /// <exception cref="ArgumentException">An argument that does not apply to the chains' machine, or per-chain temperatures that do not fit.</exception>
    public void step(bool sample_visible = true, Tensor? from = null, Tensor? hidden_mean = null, long? count = null)
    {
        if (_bm is not null)
        {
            if (!sample_visible || hidden_mean is not null)
                throw new ArgumentException("step: for a BoltzmannMachine every update draws; expected sample_visible = true and no hidden_mean.");
            Sweep(from, count);
            return;
        }
        var model = Rbm;
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
    /// <exception cref="InvalidOperationException">The chains sample a <see cref="BoltzmannMachine"/> (whose hidden units are part of <see cref="states"/>).</exception>
    public Tensor hidden_mean()
    {
        var model = Rbm;
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
        _visibleView?.Dispose();
        _visibleView = null;
        _visibleMean = ReferenceEquals(_visibleMean, _visible) ? null : Move(_visibleMean, device);
        _visible = Move(_visible, device);
        _temperatures = Move(_temperatures, device);
        _clampValues = Move(_clampValues, device);
    }

    /// <summary>
    /// The chains' state as named tensors (copies the caller owns): <c>visible</c> (the <see cref="states"/>: for a
    /// <see cref="BoltzmannMachine"/> all units), and where set <c>temperatures</c>,
    /// <c>clamp_values</c> with <c>clamp_first</c>, and <c>generator_state</c> (the generator's state bytes).
    /// </summary>
    public Dictionary<string, Tensor> state_dict()
    {
        using var _ = torch.no_grad();
        var d = new Dictionary<string, Tensor> { ["visible"] = states.clone() };
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
        if (v.dim() != 2 || v.shape[1] != width)
            throw new ArgumentException($"chain state: 'visible' expected shape (n_chains, {width}), got ({string.Join(", ", v.shape)}).");
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

    /// <summary>Restores chains written by <see cref="save"/>. A refused file changes nothing: the chains keep their states,
    /// temperatures, clamped units and generator state.</summary>
    /// <exception cref="InvalidDataException">The file is not a chain-state file, is truncated or corrupt, or does not fit
    /// these chains (the message names the file).</exception>
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
                    using var probe = torch.empty(0, dtype);
                    long left = stream.Length - stream.Position;
                    for (int j = 0; j < rank; j++)
                    {
                        shape[j] = r.ReadInt64();
                        if (shape[j] < 0 || shape[j] > stream.Length) throw new InvalidDataException($"'{path}': tensor '{name}' has a bad shape.");
                        numel *= shape[j];
                        // Each factor is at most the file's length, so the product cannot overflow before it passes this.
                        if (numel * probe.ElementSize > left) throw new InvalidDataException($"'{path}': truncated in tensor '{name}'.");
                    }
                    long bytes = numel * probe.ElementSize;
                    if (bytes > stream.Length - stream.Position) throw new InvalidDataException($"'{path}': truncated in tensor '{name}'.");
                    var t = torch.empty(shape, dtype);
                    t.bytes = r.ReadBytes((int)bytes);
                    d[name] = t;
                }
            }
            catch (EndOfStreamException e) { throw new InvalidDataException($"'{path}': truncated chain-state file.", e); }
            catch (FormatException e) { throw new InvalidDataException($"'{path}': a string's length is malformed ({e.Message})", e); }
            catch (IOException e) when (e is not EndOfStreamException && stream.CanRead)   // BinaryReader: a negative string length
            { throw new InvalidDataException($"'{path}': a string's length is malformed ({e.Message})", e); }
            LoadOrKeep(path, d);
        }
        finally { foreach (var t in d.Values) t.Dispose(); }
    }

    /// <summary>
    /// <see cref="load_state_dict"/> of a state read from <paramref name="path"/>, after the checks it does not make
    /// (state values of the units' type; a generator state libtorch's <c>set_state</c> accepts, since its refusal is a
    /// C++ exception that ends the process); on any refusal the chains are put back as they were.
    /// </summary>
    private void LoadOrKeep(string path, Dictionary<string, Tensor> d)
    {
        double temperature0 = _temperature;
        long clampFirst0 = _clampFirst;
        using var clamp0 = _clampValues?.clone();
        using var temperatures0 = _temperatures?.clone();
        using var generator0 = generator?.get_state();
        var before = _visible is null ? null : state_dict();
        try
        {
            if (d.TryGetValue("visible", out var v) && v.dim() == 2 && v.shape[1] == width)
            {
                using var converted = v.to(model.dtype, model.device);
                CheckStates(converted, "visible");
            }
            if (d.TryGetValue("generator_state", out var g) && generator is not null)
            {
                if (g.dtype != ScalarType.Byte || g.dim() != 1)
                    throw new InvalidDataException($"'{path}': the generator state is not a byte vector.");
                FineTuningCheckpoint.CheckGeneratorState(path, g.bytes.ToArray(), (int)generator0!.numel(), model.device.type, "the generator state");
            }
            load_state_dict(d);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            if (before is not null) load_state_dict(before);
            else
            {
                release();
                temperatures = null;
                Replace(null, null);
                if (temperatures0 is not null) temperatures = temperatures0;
                _temperature = temperature0;
                if (generator0 is not null) generator!.set_state(generator0);
            }
            if (clamp0 is not null && before is null) clamp(clampFirst0, clamp0);
            string why = e is InvalidDataException ? e.Message : $"'{path}': {e.Message.ReplaceLineEndings(" ")}";
            throw new InvalidDataException(why.StartsWith($"'{path}'", StringComparison.Ordinal) ? why : $"'{path}': {why}", e);
        }
        finally { if (before is not null) foreach (var t in before.Values) t.Dispose(); }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Replace(null, null);
        temperatures = null;
        visible_field = null;
        release();
        DisposeBlocks();
    }

    private const string FileMagic = "TorchBoltzmann.GibbsChains/1";

    /// <summary>Checks start states: visible states for an RBM, states of all units for a <see cref="BoltzmannMachine"/>.</summary>
    private void CheckStates(Tensor states, string what)
    {
        if (_bm is not null) _bm.check_states(states, what);
        else Rbm.check_visible(states, what);
    }

    /// <summary>
    /// The update blocks of a <see cref="BoltzmannMachine"/>'s sweep over its free (unclamped) units, as index tensors on
    /// the machine's device: one unit each (systematic), the colour classes (blocked), or the list to draw from (random).
    /// </summary>
    private void BuildBlocks()
    {
        if (_bm is null) return;
        DisposeBlocks();
        long first = _clampValues is null ? 0 : _clampFirst;
        long last = _clampValues is null ? 0 : _clampFirst + _clampValues.shape[^1];
        bool Free(int i) => i < first || i >= last;
        var device = _bm.device;
        _blocks = new List<Tensor>();
        if (scan == GibbsScan.Random)
        {
            var free = Enumerable.Range(0, width).Where(Free).Select(i => (long)i).ToArray();
            if (free.Length > 0) _freeUnits = torch.tensor(free, device: device).DetachFromDisposeScope();
            return;
        }
        var groups = scan == GibbsScan.Blocked ? _colours! : Enumerable.Range(0, width).Select(i => new[] { i }).ToArray();
        foreach (var g in groups)
        {
            var free = g.Where(Free).Select(i => (long)i).ToArray();
            if (free.Length > 0) _blocks.Add(torch.tensor(free, device: device).DetachFromDisposeScope());
        }
    }

    private void DisposeBlocks()
    {
        if (_blocks is not null) foreach (var b in _blocks) b.Dispose();
        _blocks = null;
        _freeUnits?.Dispose();
        _freeUnits = null;
    }

    /// <summary>
    /// One sweep over a <see cref="BoltzmannMachine"/>'s free units for every chain (or the first <paramref name="count"/>),
    /// in place: for each block B (or randomly drawn unit), η_B = x W_{:,B} + b_B, m_B = mean(η_B / T_c), x_B ~ m_B.
    /// </summary>
    private void Sweep(Tensor? from, long? count)
    {
        var bm = _bm!;
        using var _ = torch.no_grad();
        if (from is not null)
        {
            CheckStates(from, "step start");
            var v = from.to(bm.dtype, bm.device).reshape(-1, width).clone().DetachFromDisposeScope();
            Replace(v, null);
            ApplyClamp(v);
        }
        var x = states;
        long c = x.shape[0];
        if (_temperatures is not null && _temperatures.shape[0] != c)
            throw new ArgumentException($"temperatures: expected one per chain ({c}), got {_temperatures.shape[0]}.");
        if (_blocks is null || (_blocks.Count > 0 ? _blocks[0].device : _freeUnits?.device ?? bm.device) != bm.device) BuildBlocks();
        if (_visibleMean is null || ReferenceEquals(_visibleMean, _visible))
            _visibleMean = x.clone().DetachFromDisposeScope();   // units not updated yet report their state
        bool partial = count is { } k && k < c;
        using var scope = torch.NewDisposeScope();
        var xs = partial ? x.narrow(0, 0, count!.Value) : x;
        var means = partial ? _visibleMean.narrow(0, 0, count!.Value) : _visibleMean;
        var t = _temperatures is null ? null : (partial ? _temperatures.narrow(0, 0, count!.Value) : _temperatures).unsqueeze(1);
        var w = bm.weight_matrix();
        var b = bm.bias.detach();
        var units = bm.units;
        if (scan == GibbsScan.Random)
        {
            if (_freeUnits is null) return;
            long f = _freeUnits.shape[0], rows = xs.shape[0];
            for (long r = 0; r < f; r++)
            {
                using var inner = torch.NewDisposeScope();
                // Each chain updates its own uniformly drawn free unit u_c: η_c = b_u + W_u · x_c.
                var pick = torch.randint(0, f, new long[] { rows }, ScalarType.Int64, bm.device, generator: generator);
                var u = _freeUnits.index_select(0, pick).unsqueeze(1);                 // (C, 1)
                var eta = w.index_select(0, u.squeeze(1)).mul_(xs).sum(1, keepdim: true).add_(b.index_select(0, u.squeeze(1)).unsqueeze(1));
                var m = Mean(eta, units, t);
                var sample = units.sample_from_mean(m, generator);
                xs.scatter_(1, u, sample);
                means.scatter_(1, u, m);
            }
            return;
        }
        foreach (var idx in _blocks!)
        {
            using var inner = torch.NewDisposeScope();
            var eta = xs.mm(w.index_select(1, idx)).add_(b.index_select(0, idx));   // (C, |B|)
            var m = Mean(eta, units, t);
            var sample = units.sample_from_mean(m, generator);
            xs.index_copy_(1, idx, sample);
            means.index_copy_(1, idx, m);
        }
    }

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
        _visibleView?.Dispose();
        _visibleView = null;
        if (_visibleMean is not null && !ReferenceEquals(_visibleMean, _visible)) _visibleMean.Dispose();
        _visible?.Dispose();
        _visible = visible;
        _visibleMean = mean;
    }
}

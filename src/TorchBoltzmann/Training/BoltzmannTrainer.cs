using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Sampling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// Trains a <see cref="BoltzmannMachine"/> by the contrastive Hebbian rule (Ackley, Hinton &amp; Sejnowski 1985) with any
/// <c>torch.optim</c> optimizer, in the style of <see cref="RbmTrainer"/>.
/// </summary>
/// <remarks>
/// <para>The log-likelihood gradient of p_T(v) = Σ_h e^{−E(v,h)/T} / Z_T is
/// <code>∂ log p / ∂w_ij = (⟨x_i x_j⟩_clamped − ⟨x_i x_j⟩_free) / T,   ∂ log p / ∂b_i = (⟨x_i⟩_clamped − ⟨x_i⟩_free) / T</code>
/// Per mini-batch of B examples: the <b>clamped phase</b> fixes the visible units of one chain per example and samples
/// the hidden units (<see cref="BoltzmannTrainingOptions.ClampedBurnIn"/> sweeps, then
/// <see cref="BoltzmannTrainingOptions.ClampedSamples"/> sweeps averaged; the chains start from random states at every
/// update, or with <see cref="ClampedChains.Persistent"/> from where each example's chain stopped at its previous update,
/// <see cref="ClampedHiddenStates"/>) or takes their mean-field means; the <b>free phase</b> runs
/// <see cref="BoltzmannTrainingOptions.FreeChains"/> persistent chains (Tieleman 2008) for
/// <see cref="BoltzmannTrainingOptions.FreeSweeps"/> sweeps and averages <see cref="BoltzmannTrainingOptions.FreeSamples"/>
/// more, or (<see cref="FreePhase.MeanField"/>) as many mean-field fixed points m = mean((W m + b) / T), each continued
/// from the last update's (<see cref="FreeMeans"/>). Both statistics are matrix products over the chains' states or
/// means, XᵀX / rows; with both phases mean-field this is the deterministic learning of Peterson &amp; Anderson (1987),
/// ⟨x_i x_j⟩ ≈ m_i m_j. The negative log-likelihood gradient is written into <c>.grad</c> (<see cref="WriteGradients"/>), so any
/// optimizer steps; the default is SGD with the options' learning rate and momentum.</para>
/// <para><see cref="Fit"/> runs on the shared <see cref="TrainingLoop{TMetrics}"/>, which owns epochs, batches, progress,
/// cancellation, the divergence stop and run checkpoints (<see cref="ResumableTrainer.CheckpointPath"/>).</para>
/// <para>Epoch metrics: the exact mean log-likelihood of the training data (<see cref="ExactEnumeration"/>) when the
/// machine has at most <see cref="ExactEnumeration.MaxEnumeratedUnits"/> units; otherwise, with at most
/// <see cref="BoltzmannMachine.MaxEnumeratedHidden"/> hidden units, the exact pseudo-log-likelihood of the first 1,000
/// training rows (<see cref="BoltzmannMachine.pseudo_log_likelihood"/>); else neither.</para>
/// <para>Memory: one dispose scope per batch; the chains are allocated once and updated in place.</para>
/// <para>Run checkpoint (<see cref="ResumableTrainer.CheckpointPath"/>): when set, <see cref="Fit"/> writes a run checkpoint here (<see cref="RunCheckpoint"/>, kind
/// <c>boltzmann-machine</c>) every <see cref="ResumableTrainer.CheckpointEvery"/> epochs and at the end, and a <see cref="Fit"/> that
/// finds the file continues from it: weights and mask, optimizer state, generator, the persistent free chains and the
/// epochs' metrics, the free mean-field fixed points (<see cref="FreePhase.MeanField"/>) and the per-example clamped
/// chains (<see cref="ClampedChains.Persistent"/>), so a stopped run continues as one that never stopped. The file must
/// come from a run with the same machine, options (<see cref="BoltzmannTrainingOptions.Epochs"/> aside), optimizer type, number of training
/// rows and device.</para>
/// </remarks>
public sealed class BoltzmannTrainer : ResumableTrainer, IDisposable
{
    private readonly BoltzmannMachine _bm;
    private readonly optim.Optimizer _optimizer;
    private readonly bool _ownsOptimizer;
    private readonly Generator _generator;
    private readonly bool _ownsGenerator;
    private GibbsChains? _clamped;
    private GibbsChains? _free;
    private Tensor? _clampedHidden;
    private Tensor? _freeMeans;

    /// <summary>Creates a trainer.</summary>
    /// <param name="bm">The machine (already on its device).</param>
    /// <param name="options">Hyperparameters (validated here).</param>
    /// <param name="optimizer">Any optimizer over <c>bm.parameters()</c>; default SGD(learning rate, momentum). Not disposed when given.</param>
    /// <param name="generator">Random generator on the machine's device; default <c>new Generator(options.Seed, device)</c>.</param>
    public BoltzmannTrainer(BoltzmannMachine bm, BoltzmannTrainingOptions? options = null, optim.Optimizer? optimizer = null, Generator? generator = null)
        : base("BM")
    {
        _bm = bm ?? throw new ArgumentNullException(nameof(bm));
        Options = options ?? new BoltzmannTrainingOptions();
        Options.Validate();
        _ownsOptimizer = optimizer is null;
        _optimizer = optimizer ?? optim.SGD(bm.parameters(), Options.LearningRate, momentum: Options.Momentum);
        _ownsGenerator = generator is null;
        _generator = generator ?? new Generator(Options.Seed, bm.device);
    }

    /// <summary>The hyperparameters.</summary>
    public BoltzmannTrainingOptions Options { get; }

    /// <summary>The optimizer taking the steps.</summary>
    public optim.Optimizer Optimizer => _optimizer;

    /// <summary>The persistent chains of the free phase (null before the first batch, and with <see cref="FreePhase.MeanField"/>).</summary>
    public GibbsChains? FreeChains => _free;

    /// <summary>The free phase's mean-field fixed points, (<see cref="BoltzmannTrainingOptions.FreeChains"/>, n), with <see cref="FreePhase.MeanField"/> (null before the first batch and otherwise).</summary>
    public Tensor? FreeMeans => _freeMeans;

    /// <summary>
    /// With <see cref="ClampedChains.Persistent"/>: each training example's hidden state where its clamped chain stopped,
    /// (N, n_hidden), row i for example i (allocated with random states by <see cref="Fit"/>); otherwise null.
    /// </summary>
    public Tensor? ClampedHiddenStates => _clampedHidden;

    /// <summary>
    /// Trains for <see cref="BoltzmannTrainingOptions.Epochs"/> epochs on <paramref name="train"/> (N × n_visible) on the
    /// shared <see cref="TrainingLoop{TMetrics}"/>: shuffled batches, one dispose scope per batch, progress after every
    /// batch and with the metrics after every epoch, cancellation, a divergence stop naming epoch and batch, and a run
    /// checkpoint when <see cref="ResumableTrainer.CheckpointPath"/> is set.
    /// </summary>
    /// <param name="train">Training data; moved to the machine's device and dtype once.</param>
    /// <param name="progress">Receives a report after every batch, and with <see cref="LoopProgress{TMetrics}.EpochMetrics"/> after every epoch.</param>
    /// <param name="cancellationToken">Checked before every batch.</param>
    /// <returns>The metrics of every epoch.</returns>
    /// <exception cref="ArgumentException">Bad data shape or values.</exception>
    /// <exception cref="TrainingDivergedException">The net inputs, the gradient or the weights became NaN or infinite (naming epoch and batch).</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="IO.CheckpointException">The file at <see cref="ResumableTrainer.CheckpointPath"/> cannot be continued from.</exception>
    public IReadOnlyList<BoltzmannEpochMetrics> Fit(Tensor train, IProgress<LoopProgress<BoltzmannEpochMetrics>>? progress = null,
                                                    CancellationToken cancellationToken = default)
    {
        _bm.check_visible(train, "training data");
        Checks.Rows(train, _bm.n_visible, "training data");
        CheckCheckpointEvery();
        using var data = train.to(_bm.dtype, _bm.device);
        if (PersistentClamped && (_clampedHidden is null || _clampedHidden.shape[0] != data.shape[0]))
        {
            _clampedHidden?.Dispose();
            _clampedHidden = _bm.units.initial_states((int)data.shape[0], _bm.n_hidden, _bm.dtype, _bm.device, _generator).DetachFromDisposeScope();
        }
        var loop = new TrainingLoop<BoltzmannEpochMetrics>
        {
            Stage = Stage, Epochs = Options.Epochs, BatchSize = Options.BatchSize, Generator = _generator, Shuffle = Options.Shuffle,
            Checkpoint = CheckpointPath is null ? null : new CheckpointPolicy(CheckpointPath, "boltzmann-machine", Identity(data), CheckpointEvery),
        };
        if (CheckpointPath is not null)
            loop.State.AddRange([new ModuleState("model", _bm), new OptimizerCheckpointState("optimizer", _optimizer),
                                 new GeneratorState("generator", _generator)]);
        if (CheckpointPath is not null && Options.Free == FreePhase.Sampling) loop.State.Add(new FreeChainsState(this));
        if (CheckpointPath is not null && Options.Free == FreePhase.MeanField)
            loop.State.Add(new TableState("free_means", () => _freeMeans, t => { _freeMeans?.Dispose(); _freeMeans = t; }, [Options.FreeChains, _bm.n_units], _bm.dtype));
        if (CheckpointPath is not null && PersistentClamped)
            loop.State.Add(new TableState("clamped_chains", () => _clampedHidden, t => { _clampedHidden?.Dispose(); _clampedHidden = t; }, [data.shape[0], _bm.n_hidden], _bm.dtype));
        var previous = _bm.validate_values;
        _bm.validate_values = false;   // checked once above
        try
        {
            return loop.Run(new EpochStep(this, data), data.shape[0], data.device, progress, cancellationToken).ToList();
        }
        finally
        {
            RestoredSeconds = loop.RestoredSeconds;
            _bm.validate_values = previous;
        }
    }

    /// <summary>Persistent clamped chains are kept (sampling clamped phase with hidden units).</summary>
    private bool PersistentClamped => Options.ClampedChains == ClampedChains.Persistent && _bm.n_hidden > 0;

    /// <summary>What a run continuing from a checkpoint must share with the run that wrote it.</summary>
    private Dictionary<string, string> Identity(Tensor data)
    {
        var id = typeof(BoltzmannTrainingOptions).GetProperties()
            .Where(p => p.Name != nameof(BoltzmannTrainingOptions.Epochs))
            .ToDictionary(p => "options." + p.Name, p => Convert.ToString(p.GetValue(Options), System.Globalization.CultureInfo.InvariantCulture) ?? "null");
        var (type, architecture) = IO.Checkpoint.Describe(_bm);
        id["model"] = $"{type} {architecture.ToJsonString()}";
        id["optimizer"] = _optimizer.GetType().Name;
        id["training_rows"] = data.shape[0].ToString(System.Globalization.CultureInfo.InvariantCulture);
        id["device"] = _bm.device.ToString();
        AddCheckpointTag(id);
        return id;
    }

    /// <summary>The trainer's part of the loop: one contrastive Hebbian update per batch; the weights' check and the exact log-likelihood per epoch.</summary>
    private sealed class EpochStep(BoltzmannTrainer trainer, Tensor data) : ITrainingStep<BoltzmannEpochMetrics>
    {
        public double TrainBatch(Batch batch)
        {
            // The batch's example indices: rows of the persistent clamped chains.
            using var examples = batch.Order is null ? torch.arange(batch.Start, batch.Start + batch.Size, ScalarType.Int64, data.device) : batch.Order.narrow(0, batch.Start, batch.Size);
            if (!trainer.Step(batch.Rows(data), trainer.PersistentClamped ? examples : null)) throw batch.Diverged("the net inputs or the gradient");
            return double.NaN;
        }

        public BoltzmannEpochMetrics EndEpoch(EpochEnd end)
        {
            if (!Checks.AllFinite(trainer._bm)) throw end.Diverged("the weights");
            var o = trainer.Options;
            var bm = trainer._bm;
            bool measure = end.Measures(o.MetricsEvery, o.Epochs);
            bool exact = bm.n_units <= ExactEnumeration.MaxEnumeratedUnits && bm.n_hidden <= BoltzmannMachine.MaxEnumeratedHidden;
            double? ll = measure && exact ? ExactEnumeration.log_likelihood(bm, data) : null;
            double? pll = null;
            if (measure && !exact && bm.n_hidden <= BoltzmannMachine.MaxEnumeratedHidden)
            {
                using var subset = data.narrow(0, 0, Math.Min(1000, data.shape[0]));
                using var rows = bm.pseudo_log_likelihood(subset);
                using var mean = rows.mean();
                pll = mean.ToDouble();
            }
            return new BoltzmannEpochMetrics(end.Epoch + 1, o.Epochs, end.Seconds, ll, pll);
        }
    }

    /// <summary>The persistent free-phase chains as a checkpoint component (their states; the generator is saved once, as the trainer's).</summary>
    private sealed class FreeChainsState(BoltzmannTrainer trainer) : IStateful
    {
        public string StateName => "free_chains";

        public void SaveState(StateSection section)
        {
            section.Values["started"] = trainer._free is { n_chains: > 0 };
            if (trainer._free is not { n_chains: > 0 } chains) return;
            foreach (var (name, t) in chains.state_dict())
            {
                if (name == "generator_state") t.Dispose();
                else section.PutCopy(name, t);
            }
        }

        public Action PrepareLoad(StateSection section)
        {
            var bm = trainer._bm;
            if (!section.Value<bool>("started")) return () => { trainer._free?.Dispose(); trainer._free = null; };
            var states = section.Tensor("visible");
            if (states.dim() != 2 || states.shape[1] != bm.n_units || states.dtype != bm.dtype)
                throw section.Refuse($"the free chains' states are {StateSection.Describe(states)}, expected (n_chains, {bm.n_units}) {bm.dtype}");
            var unexpected = section.Tensors.Select(t => t.Name).Except(["visible", "temperature", "temperatures"]).ToList();
            if (unexpected.Count > 0) throw section.Refuse($"unexpected tensors {string.Join(", ", unexpected)}");
            var state = section.Tensors.ToDictionary(t => t.Name, t => t.Tensor);
            return () =>
            {
                trainer._free ??= new GibbsChains(bm, trainer._generator, trainer.Options.Temperature, trainer.Options.Scan);
                trainer._free.load_state_dict(state);
            };
        }
    }

    /// <summary>A tensor the trainer keeps across updates (the free mean-field fixed points, the per-example clamped chains) as a checkpoint component.</summary>
    private sealed class TableState(string name, Func<Tensor?> get, Action<Tensor?> set, long[] shape, ScalarType dtype) : IStateful
    {
        public string StateName => name;

        public void SaveState(StateSection section)
        {
            var t = get();
            section.Values["started"] = t is not null;
            if (t is not null) section.Put("states", t);   // borrowed until the file is written
        }

        public Action PrepareLoad(StateSection section)
        {
            if (!section.Value<bool>("started")) return () => set(null);
            var states = section.Tensor("states");
            if (!states.shape.SequenceEqual(shape) || states.dtype != dtype)
                throw section.Refuse($"the states are {StateSection.Describe(states)}, expected ({string.Join(", ", shape)}) {dtype}");
            var unexpected = section.Tensors.Select(t => t.Name).Except(["states"]).ToList();
            if (unexpected.Count > 0) throw section.Refuse($"unexpected tensors {string.Join(", ", unexpected)}");
            return () =>
            {
                var current = get();
                if (current is not null && current.shape.SequenceEqual(shape)) { using (torch.no_grad()) current.copy_(states); }
                else set(states.to(dtype, current?.device ?? states.device).clone().DetachFromDisposeScope());
            };
        }
    }

    /// <summary>
    /// One update on a batch v⁰ (B × n_visible, on the machine's device): clamped and free statistics, gradient into
    /// <c>.grad</c>, optimizer step. Returns false (and takes no step) when the chains' conditional means or the gradient
    /// are not finite (weights so large that net inputs overflow).
    /// </summary>
    /// <param name="v0">The batch, (B, n_visible).</param>
    /// <param name="examples">With <see cref="ClampedChains.Persistent"/>: the batch's rows of the training set, (B) integers, which select (and
    /// receive back) the examples' hidden chain states in <see cref="ClampedHiddenStates"/>; else ignored.</param>
    /// <exception cref="ArgumentException">v⁰ is not a (B, n_visible) batch of valid values, or <paramref name="examples"/> is missing or does not fit.</exception>
    /// <exception cref="InvalidOperationException">Persistent clamped chains before <see cref="Fit"/> allocated them.</exception>
    public bool Step(Tensor v0, Tensor? examples = null)
    {
        _bm.check_visible(v0, "batch");
        Checks.Rows(v0, _bm.n_visible, "batch", "B", param: nameof(v0));
        if (PersistentClamped)
        {
            if (_clampedHidden is null)
                throw new InvalidOperationException("Step: persistent clamped chains (ClampedChains = Persistent) are allocated by Fit, one per training example; call Fit, or use Restarted.");
            if (examples is null || examples.dim() != 1 || examples.shape[0] != v0.shape[0] || examples.is_floating_point())
                throw new ArgumentException($"examples: expected {v0.shape[0]} integer row indices of the training set (ClampedChains = Persistent), got {(examples is null ? "none" : StateSection.Describe(examples))}.", nameof(examples));
        }
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var clamped = ClampedStates(v0, examples);
        var free = Options.Free == FreePhase.MeanField ? FreeMeanField() : FreeStates();
        // Sampled states are always 0/1 (a NaN mean draws 0), so a NaN net input shows only in the chains' means.
        if (!Checks.Finite(clamped) || !Checks.Finite(free) || (_free is { } f && !Checks.Finite(f.visible_mean)) || (_clamped is { } c && !Checks.Finite(c.visible_mean))) return false;
        WriteGradients(_bm, clamped, free, Options.Temperature, Options.WeightDecay);
        using (var g = _bm.bias.grad!)
            if (!Checks.Finite(g)) return false;
        _optimizer.step();
        return true;
    }

    /// <summary>
    /// Writes the negative log-likelihood gradient estimated from two sets of states (rows of (R, n); sampled states, or
    /// means for mean-field statistics) into <c>bm.weight.grad</c> and <c>bm.bias.grad</c>, overwriting them:
    /// <code>C = XᵀX / R,   m = Xᵀ1 / R   (for the clamped X⁺ and the free X⁻)
    /// ∂L/∂weight = −triu(C⁺ − C⁻, 1) ⊙ mask / T + λ triu(weight, 1) ⊙ mask,   ∂L/∂b = −(m⁺ − m⁻) / T</code>
    /// Only the used (upper, connected) entries of <c>weight</c> get a gradient, so no optimizer can break the symmetry.
    /// </summary>
    /// <param name="bm">The machine.</param>
    /// <param name="clamped">Clamped-phase states X⁺, (R⁺, n).</param>
    /// <param name="free">Free-phase states X⁻, (R⁻, n).</param>
    /// <param name="temperature">Temperature T of the model whose likelihood is maximised.</param>
    /// <param name="weight_decay">λ (≥ 0).</param>
    /// <exception cref="ArgumentException">A state set is not (R ≥ 1, n).</exception>
    public static void WriteGradients(BoltzmannMachine bm, Tensor clamped, Tensor free, double temperature = 1.0, double weight_decay = 0)
    {
        ArgumentNullException.ThrowIfNull(bm);
        Checks.Width(clamped, bm.n_units, "clamped states");
        Checks.Width(free, bm.n_units, "free states");
        Checks.Rows(clamped, bm.n_units, "clamped states", "R");
        Checks.Rows(free, bm.n_units, "free states", "R");
        Checks.Temperature(temperature);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var xp = clamped.to(bm.dtype, bm.device);
        var xn = free.to(bm.dtype, bm.device);
        // −(C⁺ − C⁻)/T = (xnᵀxn / R⁻ − xpᵀxp / R⁺) / T, as two matrix products.
        var diff = xn.t().mm(xn).div_(xn.shape[0] * temperature).sub_(xp.t().mm(xp).div_(xp.shape[0] * temperature));
        var used = bm.mask.triu(1);
        var gw = diff.triu_(1).mul_(used);
        if (weight_decay > 0) gw.add_(bm.weight.triu(1).mul_(used), alpha: weight_decay);
        var gb = xn.mean(new long[] { 0 }).sub_(xp.mean(new long[] { 0 })).div_(temperature);
        SetGrad(bm.weight, gw);
        SetGrad(bm.bias, gb);
    }

    private static void SetGrad(Parameter p, Tensor value)
    {
        var g = p.grad;
        if (g is null) p.grad = value.detach().clone().DetachFromDisposeScope();
        else { g.copy_(value); g.Dispose(); }
    }

    /// <summary>
    /// The clamped phase's states, (rows, n): sampled hidden units (several sweeps stacked; from random states, or from
    /// the examples' persistent states, to which the last sweep's hidden states are written back) or [v, m_h].
    /// </summary>
    private Tensor ClampedStates(Tensor v0, Tensor? examples)
    {
        long b = v0.shape[0];
        if (Options.Clamped == ClampedPhase.MeanField || _bm.n_hidden == 0)
        {
            if (_bm.n_hidden == 0) return v0.clone();
            var mh = _bm.mean_field(v0, Options.Temperature, Options.MeanFieldIterations, Options.MeanFieldTolerance, Options.MeanFieldDamping,
                                    Options.AnnealClamped ? Options.Annealing!.Temperatures : null);
            return torch.cat(new[] { v0, mh }, 1);
        }
        _clamped ??= new GibbsChains(_bm, _generator, Options.Temperature, Options.Scan);
        _clamped.clamp(0, v0);
        Tensor? rows = null;
        if (PersistentClamped)
        {
            rows = examples!.to(ScalarType.Int64, _bm.device);
            _clamped.start(torch.cat(new[] { v0, _clampedHidden!.index_select(0, rows) }, 1));
        }
        else _clamped.start_random((int)b);
        if (Options.AnnealClamped) Anneal(_clamped);
        for (int s = 0; s < Options.ClampedBurnIn; s++) _clamped.step();
        var states = Collect(_clamped, Options.ClampedSamples);
        if (rows is not null) _clampedHidden!.index_copy_(0, rows, _clamped.states.narrow(1, _bm.n_visible, _bm.n_hidden));
        return states;
    }

    /// <summary>
    /// The free phase's mean-field fixed points, (R, n): m = mean((W m + b) / T) from the last update's fixed points
    /// (uniform random means at the first update: U(0, 1) for {0, 1} units, U(−1, 1) for spins), through the annealing
    /// schedule first when <see cref="BoltzmannTrainingOptions.AnnealFree"/> is set.
    /// </summary>
    private Tensor FreeMeanField()
    {
        if (_freeMeans is null)
        {
            var r = torch.rand(Options.FreeChains, _bm.n_units, _bm.dtype, _bm.device, generator: _generator);
            _freeMeans = (_bm.spins ? r.mul_(2).sub_(1) : r).DetachFromDisposeScope();
        }
        var m = _bm.mean_field_fixed_point(_freeMeans, Options.Temperature, Options.MeanFieldIterations, Options.MeanFieldTolerance, Options.MeanFieldDamping,
                                           annealing: Options.AnnealFree ? Options.Annealing!.Temperatures : null);
        _freeMeans.copy_(m);
        return m;
    }

    /// <summary>The free phase's states from the persistent chains, (rows, n).</summary>
    private Tensor FreeStates()
    {
        if (_free is null)
        {
            _free = new GibbsChains(_bm, _generator, Options.Temperature, Options.Scan);
            _free.start_random(Options.FreeChains);
        }
        if (Options.AnnealFree) Anneal(_free);
        for (int s = 0; s < Options.FreeSweeps; s++) _free.step();
        return Collect(_free, Options.FreeSamples);
    }

    /// <summary>One sweep at each temperature of <see cref="BoltzmannTrainingOptions.Annealing"/>, then back to <see cref="BoltzmannTrainingOptions.Temperature"/>.</summary>
    private void Anneal(GibbsChains chains)
    {
        foreach (double t in Options.Annealing!.Temperatures)
        {
            chains.temperature = t;
            chains.step();
        }
        chains.temperature = Options.Temperature;
    }

    private static Tensor Collect(GibbsChains chains, int samples)
    {
        var taken = new Tensor[samples];
        for (int s = 0; s < samples; s++)
        {
            chains.step();
            taken[s] = chains.states.clone();
        }
        return samples == 1 ? taken[0] : torch.cat(taken, 0);
    }



    /// <summary>Releases the chains and the optimizer/generator the trainer created.</summary>
    public void Dispose()
    {
        _clamped?.Dispose();
        _free?.Dispose();
        _clamped = _free = null;
        _clampedHidden?.Dispose();
        _freeMeans?.Dispose();
        _clampedHidden = _freeMeans = null;
        if (_ownsOptimizer) (_optimizer as IDisposable)?.Dispose();
        if (_ownsGenerator) _generator.Dispose();
    }
}

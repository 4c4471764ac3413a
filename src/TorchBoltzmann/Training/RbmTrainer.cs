using TorchBoltzmann.Data;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Sampling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// Trains an <see cref="RBM"/> by contrastive divergence (CD-k, Hinton 2002) or persistent CD (PCD-k, Tieleman 2008)
/// with any <c>torch.optim</c> optimizer. Usable from code, the CLI and notebooks.
/// </summary>
/// <remarks>
/// <para>Each mini-batch v⁰ of size B: positive statistics p(h|v⁰); a negative sample vᵏ after k block-Gibbs steps
/// (from v⁰ for CD, from the persistent chains for PCD); then the gradient of
/// L = mean F(v⁰) − mean F(vᵏ):
/// <code>∂L/∂W = −(p(h|v⁰)ᵀv⁰ − p(h|vᵏ)ᵀvᵏ)/B + λW,  ∂L/∂b = −mean(v⁰ − vᵏ),  ∂L/∂c = −mean(p(h|v⁰) − p(h|vᵏ))</code>
/// is written into the parameters' <c>.grad</c> (<see cref="GradientMode.Direct"/>) or obtained by autograd
/// (<see cref="GradientMode.Autograd"/>), and the optimizer steps. λ is <see cref="RbmTrainingOptions.WeightDecay"/>.
/// With the trainer's own optimizer and direct gradients, <c>.grad</c> holds the momentum buffer u ← μu + ∂L/∂θ instead
/// and the optimizer is plain SGD (θ ← θ − ηu), the same update as SGD with momentum (see <see cref="FoldsMomentum"/>).</para>
/// <para>Memory: one dispose scope per batch; each epoch draws one permutation and every batch gathers its rows from it
/// (a cache-sized copy, rather than a copy of the whole data set per epoch);
/// persistent chains are allocated once and updated in place. Move the model to its device before creating the trainer.</para>
/// <para><see cref="Fit"/> runs on the shared <see cref="TrainingLoop{TMetrics}"/>: the trainer supplies the CD/PCD update
/// of a batch and the epoch's metrics, and a momentum schedule as a component; with <see cref="ResumableTrainer.CheckpointPath"/> the run
/// is checkpointed (<see cref="RunCheckpoint"/>) and continues bit for bit, persistent chains included.</para>
/// <para>Run checkpoint (<see cref="ResumableTrainer.CheckpointPath"/>): when set, <see cref="Fit"/> writes a checkpoint of the whole run here (<see cref="RunCheckpoint"/>, atomically) every
/// <see cref="ResumableTrainer.CheckpointEvery"/> epochs and at the end, and a <see cref="Fit"/> that finds this file continues from it:
/// the weights, the optimizer's state and the folded momentum buffers, the generator's state, the persistent chains of
/// PCD and the epochs' metrics are restored, so on the CPU a run stopped after epoch k and continued ends exactly as one
/// that never stopped (same thread count). The file must come from a run with the same model, hyperparameters
/// (<see cref="RbmTrainingOptions.Epochs"/> aside), <see cref="ResumableTrainer.CheckpointTag"/>, numbers of training and validation rows
/// and device; a finished run's file makes <see cref="Fit"/> load its final weights and return its history (delete it to
/// train again). Needs an optimizer whose state TorchSharp saves (the default SGD, Adam, …), checked when
/// <see cref="Fit"/> starts.</para>
/// </remarks>
public sealed class RbmTrainer : ResumableTrainer, IDisposable
{
    private readonly RBM _rbm;
    private readonly optim.Optimizer _optimizer;
    private readonly bool _ownsOptimizer;
    private readonly Generator _generator;
    private readonly bool _ownsGenerator;
    private GibbsChains? _negative;
    private ParallelTempering? _tempering;
    private Tensor? _visibleOffset;   // centering: μ
    private Tensor? _hiddenOffset;    // centering: λ
    private Tensor? _sparsityEstimate; // sparsity: q
    private readonly bool _direct;
    private double _momentum;
    private readonly double[] _baseRates;
    private readonly SwapWindow _swaps;

    /// <summary>Creates a trainer.</summary>
    /// <param name="rbm">The model (already on its device).</param>
    /// <param name="options">Hyperparameters (validated here).</param>
    /// <param name="optimizer">Any optimizer over <c>rbm.parameters()</c>; default SGD with the options' learning rate and momentum schedule (folded into the gradient buffer with direct gradients, see <see cref="FoldsMomentum"/>). The trainer does not dispose a caller's optimizer.</param>
    /// <param name="generator">Random generator on the model's device; default <c>new Generator(options.Seed, device)</c>.</param>
    public RbmTrainer(RBM rbm, RbmTrainingOptions? options = null, optim.Optimizer? optimizer = null, Generator? generator = null)
        : base("RBM")
    {
        _rbm = rbm ?? throw new ArgumentNullException(nameof(rbm));
        Options = options ?? new RbmTrainingOptions();
        Options.Validate();
        // Centering reparametrises W and the biases of an ordinary RBM; tempering swaps replicas by the joint's energy,
        // which the Gibbs steps leave invariant only when both passes use the same coupling (RBM.up_scale, down_scale).
        if (Options.Centering && (rbm.up_scale != 1 || rbm.down_scale != 1))
            throw new ArgumentException($"options: Centering needs an RBM with up_scale = down_scale = 1, got {rbm}.", nameof(options));
        if (Options.Tempering is not null && rbm.up_scale != rbm.down_scale)
            throw new ArgumentException($"options: Tempering needs an RBM whose up_scale equals its down_scale, got {rbm}.", nameof(options));
        _ownsOptimizer = optimizer is null;
        _direct = Options.Gradient == GradientMode.Direct && rbm.visible_units.has_linear_bias && rbm.hidden_units.has_linear_bias;
        // Default optimizer with direct gradients: plain SGD, with the momentum folded into the gradient the trainer
        // writes (see FoldsMomentum), which saves two passes over W per step.
        FoldsMomentum = optimizer is null && _direct && !Options.Centering;   // the centering transform needs the bare gradient
        _momentum = Options.InitialMomentum;
        _k = Options.K;
        _optimizer = optimizer ?? optim.SGD(rbm.parameters(), Options.LearningRate, momentum: FoldsMomentum ? 0 : Options.InitialMomentum);
        // The folded momentum buffer starts at zero, as a new SGD's does: whatever .grad holds (an earlier trainer's buffer,
        // a cd_loss().backward()) is not carried into the first step.
        if (FoldsMomentum) ClearGradients();
        _baseRates = _optimizer.ParamGroups.Select(g => g.LearningRate).ToArray();   // η₀ of the rate schedule, whatever later fits set
        _swaps = new SwapWindow(this);
        _ownsGenerator = generator is null;
        if (Options.BinarizeEachBatch) Checks.BernoulliVisible(rbm.visible_units, "BinarizeEachBatch", nameof(options));
        _generator = generator ?? new Generator(Options.Seed, rbm.device);
    }

    /// <summary>The hyperparameters.</summary>
    public RbmTrainingOptions Options { get; }

    /// <summary>The optimizer taking the steps.</summary>
    public optim.Optimizer Optimizer => _optimizer;

    /// <summary>
    /// True when the trainer created its own optimizer and computes gradients directly: the optimizer is then plain SGD
    /// and each parameter's <c>.grad</c> holds the heavy-ball momentum buffer u ← μu + ∂L/∂θ, accumulated by the same
    /// matrix product that computes the statistics (<c>addmm_</c> with β = μ), so the step θ ← θ − ηu is PyTorch's SGD with
    /// momentum exactly, with two fewer elementwise passes over W. With a caller's optimizer <c>.grad</c> holds ∂L/∂θ and
    /// the momentum schedule is applied to the optimizer (when it implements <c>IMomentum</c>).
    /// </summary>
    public bool FoldsMomentum { get; }

    /// <summary>The momentum in effect (the schedule sets it at the start of every epoch).</summary>
    public double Momentum => FoldsMomentum ? _momentum : GroupMomentum(_optimizer) ?? 0;

    /// <summary>The persistent chains of PCD (visible states, B × n_visible), null before PCD training; not part of the state_dict.</summary>
    public Tensor? PersistentChains => Options.Persistent && _negative is { n_chains: > 0 } n ? n.visible : null;

    /// <summary>
    /// The chains of the negative phase (null before the first batch): for PCD the persistent chains, whose state
    /// (<see cref="GibbsChains.save"/>) a resumed run loads to continue them; for CD the chains restarted at each batch.
    /// </summary>
    public GibbsChains? NegativeChains => _negative;

    /// <summary>
    /// The parallel-tempering sampler of the negative phase (<see cref="RbmTrainingOptions.Tempering"/>), null before the
    /// first batch or without tempering; its <see cref="ParallelTempering.swap_acceptance"/> reports the swap rates.
    /// </summary>
    public ParallelTempering? Tempering => _tempering;

    /// <summary>
    /// Trains for <see cref="RbmTrainingOptions.Epochs"/> epochs on <paramref name="train"/> (N × n_visible, values valid
    /// for the visible units), reporting progress after every batch and metrics after every epoch.
    /// </summary>
    /// <param name="train">Training data; moved to the model's device and dtype once.</param>
    /// <param name="validation">Optional held-out data for the free-energy gap and validation reconstruction error.</param>
    /// <param name="progress">Receives <see cref="TrainingProgress"/> reports.</param>
    /// <param name="cancellationToken">Checked before every batch; the model keeps the updates of completed batches.</param>
    /// <returns>The metrics of every epoch.</returns>
    /// <exception cref="ArgumentException">Bad data shape or values.</exception>
    /// <exception cref="TrainingDivergedException">Gradients or weights became NaN/inf.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public IReadOnlyList<RbmEpochMetrics> Fit(Tensor train, Tensor? validation = null, IProgress<TrainingProgress>? progress = null,
                                              CancellationToken cancellationToken = default)
    {
        _rbm.check_visible(train, "training data");
        Checks.Rows(train, _rbm.n_visible, "training data");
        if (validation is not null)
        {
            _rbm.check_visible(validation, "validation data");
            Checks.Rows(validation, _rbm.n_visible, "validation data", "M", "; pass null to skip validation");
        }
        CheckCheckpointEvery();
        var state = CheckpointPath is null ? null : StateComponents();   // before an epoch is spent: the optimizer must be saveable

        using var data = train.to(_rbm.dtype, _rbm.device);
        using var source = new TensorSource(data);
        var previousValidate = _rbm.validate_values;
        _rbm.validate_values = false; // the data was checked once above
        try { return FitCore(source, validation, state, progress, cancellationToken); }
        finally { _rbm.validate_values = previousValidate; }
    }

    /// <summary>
    /// Trains for <see cref="RbmTrainingOptions.Epochs"/> epochs on the batches of <paramref name="train"/>: a
    /// <see cref="TensorSource"/> (a float tensor, or a compact uint8 one converted per batch) or an <see cref="IdxStream"/>
    /// read while training. From a tensor source the run draws the same permutations as <see cref="Fit"/>
    /// and is the same run bit for bit for the same values; a stream hands out its batches in its own order
    /// (<see cref="IdxStreamOptions.Seed"/>), and the trainer's generator then draws no permutation. Each batch's values are
    /// checked for the visible units as it arrives (when the model validates values).
    /// </summary>
    /// <param name="train">The training data; the caller keeps and disposes it.</param>
    /// <param name="validation">Optional held-out data for the free-energy gap and validation reconstruction error.</param>
    /// <param name="progress">Receives <see cref="TrainingProgress"/> reports.</param>
    /// <param name="cancellationToken">Checked before every batch; also stops a stream's reader.</param>
    /// <returns>The metrics of every epoch.</returns>
    /// <exception cref="ArgumentException">The source's rows do not fit the model, or a batch holds values invalid for the visible units.</exception>
    /// <exception cref="TrainingDivergedException">Gradients or weights became NaN/inf.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public IReadOnlyList<RbmEpochMetrics> FitSource(BatchSource train, Tensor? validation = null, IProgress<TrainingProgress>? progress = null,
                                              CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        train.CheckFeatures(_rbm.n_visible, "training data");
        if (validation is not null)
        {
            _rbm.check_visible(validation, "validation data");
            Checks.Rows(validation, _rbm.n_visible, "validation data", "M", "; pass null to skip validation");
        }
        CheckCheckpointEvery();
        var state = CheckpointPath is null ? null : StateComponents();
        return FitCore(train, validation, state, progress, cancellationToken);
    }

    private IReadOnlyList<RbmEpochMetrics> FitCore(BatchSource source, Tensor? validation, List<IStateful>? state,
                                                     IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        using var held = validation?.to(_rbm.dtype, _rbm.device);
        if (Options.Centering)
        {
            using var _ = torch.no_grad();
            _visibleOffset?.Dispose();
            _visibleOffset = source.Mean(_rbm.dtype, _rbm.device).DetachFromDisposeScope();   // μ: the training data's mean
        }
        var loop = new TrainingLoop<RbmEpochMetrics>
        {
            Stage = Stage, Epochs = Options.Epochs, BatchSize = Options.BatchSize, Generator = _generator, Shuffle = Options.Shuffle && !source.InOwnOrder,
            Checkpoint = CheckpointPath is null ? null : new CheckpointPolicy(CheckpointPath, "rbm", Identity(source.Count, held), CheckpointEvery),
        };
        loop.Callbacks.Add(new MomentumSchedule(this));
        loop.Callbacks.Add(_swaps);
        if (Options.KIncreaseEvery > 0) loop.Callbacks.Add(new CdSchedule(this));
        // η_e = η₀ γ^e K / k_e: the growing k divides the rate (Salakhutdinov's rbm_l2), a constant k leaves it alone.
        if (Options.KIncreaseEvery > 0 || Options.LearningRateDecay != 1.0)
            loop.Callbacks.Add(new ExponentialLearningRate(_optimizer, Options.LearningRateDecay, _baseRates, epochFactor: e => (double)Options.K / KAt(e)));
        if (state is not null) loop.State.AddRange(state);
        try
        {
            var history = loop.Run(new EpochStep(this, source, held, Options.BatchSize, cancellationToken), source.Count, _rbm.device,
                MappedProgress<LoopProgress<RbmEpochMetrics>, TrainingProgress>.Of(progress, p => new TrainingProgress(p.Stage, p.Epoch, p.Epochs, p.Batch, p.Batches, p.EpochMetrics)),
                cancellationToken);
            return history.ToList();
        }
        finally
        {
            source.StopEpoch();
            RestoredSeconds = loop.RestoredSeconds;
        }
    }

    /// <summary>What a checkpoint of this run holds besides the loop's record: weights, optimizer, folded momentum, generator, PCD chains.</summary>
    private List<IStateful> StateComponents()
    {
        var list = new List<IStateful> { new ModuleState("model", _rbm), new OptimizerCheckpointState("optimizer", _optimizer) };
        if (FoldsMomentum) list.Add(new GradientBuffers("momentum", _rbm));
        list.Add(new GeneratorState("generator", _generator));
        if (Options.Persistent) list.Add(new PersistentChainsState(this));
        if (Options.Tempering is not null) list.Add(new TemperingState(this));
        if (Options.Centering || Options.SparsityTarget is not null) list.Add(new OffsetsState(this));
        return list;
    }

    /// <summary>What a run continuing from a checkpoint must share with the run that wrote it.</summary>
    private Dictionary<string, string> Identity(long rows, Tensor? held)
    {
        var id = typeof(RbmTrainingOptions).GetProperties()
            .Where(p => p.Name != nameof(RbmTrainingOptions.Epochs))
            .ToDictionary(p => "options." + p.Name, p => Convert.ToString(p.GetValue(Options), System.Globalization.CultureInfo.InvariantCulture) ?? "null");
        // Options that act only when their switch is on read "null" when it is off, as an absent entry does: a checkpoint
        // written before they existed continues, and their settings do not tie runs that do not use them.
        if (Options.SparsityTarget is null) id["options.SparsityCost"] = id["options.SparsityDecay"] = "null";
        if (!Options.Centering) id["options.Centering"] = id["options.CenteringRate"] = "null";
        if (Options.KIncreaseEvery == 0) id["options.KIncreaseEvery"] = "null";
        if (!Options.BinarizeEachBatch) id["options.BinarizeEachBatch"] = "null";
        var (type, architecture) = IO.Checkpoint.Describe(_rbm);
        id["model"] = $"{type} {architecture.ToJsonString()}";
        id["optimizer"] = _optimizer.GetType().Name;
        id["training_rows"] = rows.ToString(System.Globalization.CultureInfo.InvariantCulture);
        id["validation_rows"] = (held?.shape[0] ?? 0).ToString(System.Globalization.CultureInfo.InvariantCulture);
        id["device"] = _rbm.device.ToString();
        AddCheckpointTag(id);
        return id;
    }

    /// <summary>The momentum schedule: μ = <see cref="RbmTrainingOptions.InitialMomentum"/> before epoch
    /// <see cref="RbmTrainingOptions.MomentumSwitchEpoch"/>, <see cref="RbmTrainingOptions.FinalMomentum"/> from it on; set
    /// at the start of every epoch (folded into the gradient buffer, or in every parameter group of a caller's optimizer).</summary>
    private sealed class MomentumSchedule(RbmTrainer trainer) : ITrainingCallback
    {
        public void OnEpochStart(TrainingLoop loop, int epoch)
        {
            var o = trainer.Options;
            double scheduled = epoch < o.MomentumSwitchEpoch ? o.InitialMomentum : o.FinalMomentum;
            trainer._epochMomentum = null;
            if (trainer.FoldsMomentum) trainer._epochMomentum = trainer._momentum = scheduled;
            else if (SetMomentum(trainer._optimizer, scheduled)) trainer._epochMomentum = scheduled;
        }
    }

    /// <summary>The growing CD-k schedule's k in epoch e (zero-based): k_e = K + ⌊e / N⌋ with N =
    /// <see cref="RbmTrainingOptions.KIncreaseEvery"/>; K throughout when N is 0.</summary>
    private int KAt(int epoch) => Options.KIncreaseEvery > 0 ? Options.K + epoch / Options.KIncreaseEvery : Options.K;

    /// <summary>The growing CD-k schedule (<see cref="RbmTrainingOptions.KIncreaseEvery"/>): k_e at the start of epoch e;
    /// the rate's K / k_e goes through the loop's <see cref="ExponentialLearningRate"/>.</summary>
    private sealed class CdSchedule(RbmTrainer trainer) : ITrainingCallback
    {
        public void OnEpochStart(TrainingLoop loop, int epoch) => trainer._k = trainer.KAt(epoch);
    }

    /// <summary>Gibbs steps of the current epoch's negative phase (<see cref="RbmTrainingOptions.K"/>, or the growing schedule's k_e).</summary>
    private int _k;

    /// <summary>The Gibbs steps k the negative phase takes now (<see cref="RbmTrainingOptions.K"/>, or the growing schedule's k_e in its epoch).</summary>
    internal int CurrentK => _k;

    /// <summary>The momentum of the current epoch as its metrics report it (null when the optimizer has none).</summary>
    private double? _epochMomentum;

    /// <summary>The trainer's part of the loop: one CD/PCD update per batch, the divergence check and metrics per epoch.</summary>
    private sealed class EpochStep(RbmTrainer trainer, BatchSource data, Tensor? held, int batchSize, CancellationToken token) : ITrainingStep<RbmEpochMetrics>
    {
        public void BeginEpoch(int epoch) => data.StartEpoch(epoch, batchSize, token);

        public double TrainBatch(Batch batch)
        {
            var x = data.Batch(batch, trainer._rbm.dtype, trainer._rbm.device);
            if (trainer.Options.BinarizeEachBatch) x = Data.Binarize.Stochastic(x, trainer._generator);   // v ~ Bernoulli(x), anew every batch
            if (!trainer.Step(x)) throw batch.Diverged("the gradient");
            return double.NaN;
        }

        public RbmEpochMetrics EndEpoch(EpochEnd end)
        {
            data.StopEpoch();
            if (!Checks.AllFinite(trainer._rbm)) throw end.Diverged("the weights");
            var o = trainer.Options;
            int epoch = end.Epoch;
            bool measure = end.Measures(o.MetricsEvery, o.Epochs);
            var metrics = measure ? trainer.Measure(epoch, end.Seconds, trainer._epochMomentum, data, held)
                                  : new RbmEpochMetrics(epoch + 1, o.Epochs, end.Seconds, trainer._epochMomentum, null, null, null, null, null);
            return metrics with { LearningRate = trainer._optimizer.ParamGroups.FirstOrDefault()?.LearningRate, SwapAcceptance = trainer._swaps.EpochAcceptance() };
        }
    }

    /// <summary>
    /// Parallel tempering's swap counts at the start of each epoch, so that an epoch's acceptance per neighbour pair is
    /// (accepted − accepted at start) / (attempted − attempted at start); the sampler's own counts run on over the fit.
    /// </summary>
    private sealed class SwapWindow(RbmTrainer trainer) : ITrainingCallback
    {
        private long[]? _attempted, _accepted;

        public void OnEpochStart(TrainingLoop loop, int epoch)
        {
            _attempted = trainer._tempering?.swaps_attempted.ToArray();
            _accepted = trainer._tempering?.swaps_accepted.ToArray();
        }

        public IReadOnlyList<double>? EpochAcceptance()
        {
            if (trainer._tempering is not { } pt) return null;
            var attempted = pt.swaps_attempted;
            var accepted = pt.swaps_accepted;
            return attempted.Select((n, m) =>
            {
                long tried = n - (_attempted?[m] ?? 0), took = accepted[m] - (_accepted?[m] ?? 0);
                return tried > 0 ? took / (double)tried : double.NaN;
            }).ToArray();
        }
    }

    /// <summary>The persistent chains of PCD as a checkpoint component (their states; the generator is saved once, as the trainer's).</summary>
    private sealed class PersistentChainsState(RbmTrainer trainer) : IStateful
    {
        public string StateName => "chains";

        public void SaveState(StateSection section)
        {
            section.Values["started"] = trainer._negative is { n_chains: > 0 };
            if (trainer._negative is not { n_chains: > 0 } chains) return;
            foreach (var (name, t) in chains.state_dict())
            {
                if (name == "generator_state") t.Dispose();   // the trainer's generator, saved by its own component
                else section.PutCopy(name, t);
            }
        }

        public Action PrepareLoad(StateSection section)
        {
            var rbm = trainer._rbm;
            if (!section.Value<bool>("started")) return () => { trainer._negative?.Dispose(); trainer._negative = null; };
            var visible = section.Tensor("visible");
            if (visible.dim() != 2 || visible.shape[1] != rbm.n_visible || visible.dtype != rbm.dtype)
                throw section.Refuse($"the chains' states are {StateSection.Describe(visible)}, expected (n_chains, {rbm.n_visible}) {rbm.dtype}");
            // The trainer's chains run at T = 1 without clamps: their state is the visible states and that temperature.
            var unexpected = section.Tensors.Select(t => t.Name).Except(["visible", "temperature"]).ToList();
            if (unexpected.Count > 0) throw section.Refuse($"unexpected tensors {string.Join(", ", unexpected)}");
            var temperature = section.Tensor("temperature");
            if (temperature.numel() != 1 || temperature.dtype != ScalarType.Float64 || temperature.ToDouble() != 1.0)
                throw section.Refuse($"the chains' temperature is {StateSection.Describe(temperature)}{(temperature.numel() == 1 ? $" {temperature.ToDouble()}" : "")}, expected 1");
            var state = section.Tensors.ToDictionary(t => t.Name, t => t.Tensor);
            return () =>
            {
                trainer._negative ??= new GibbsChains(rbm, trainer._generator);
                trainer._negative.load_state_dict(state);
            };
        }
    }

    /// <summary>The running estimates of centering (μ, λ) and of the sparsity target (q) as a checkpoint component.</summary>
    private sealed class OffsetsState(RbmTrainer trainer) : IStateful
    {
        public string StateName => "offsets";

        public void SaveState(StateSection section)
        {
            if (trainer._visibleOffset is { } mu) section.Put("visible_offset", mu);
            if (trainer._hiddenOffset is { } lambda) section.Put("hidden_offset", lambda);
            if (trainer._sparsityEstimate is { } q) section.Put("sparsity_estimate", q);
        }

        public Action PrepareLoad(StateSection section)
        {
            var rbm = trainer._rbm;
            Tensor? Read(string name, int n)
            {
                if (!section.Has(name)) return null;
                var t = section.Tensor(name);
                if (t.dim() != 1 || t.shape[0] != n || t.dtype != rbm.dtype)
                    throw section.Refuse($"'{name}' is {StateSection.Describe(t)}, expected ({n}) {rbm.dtype}");
                return t;
            }
            var mu = Read("visible_offset", rbm.n_visible);
            var lambda = Read("hidden_offset", rbm.n_hidden);
            var q = Read("sparsity_estimate", rbm.n_hidden);
            return () =>
            {
                static Tensor? Load(Tensor? old, Tensor? saved, Device device)
                {
                    old?.Dispose();
                    return saved?.to(device, copy: true).DetachFromDisposeScope();
                }
                trainer._visibleOffset = Load(trainer._visibleOffset, mu, rbm.device);
                trainer._hiddenOffset = Load(trainer._hiddenOffset, lambda, rbm.device);
                trainer._sparsityEstimate = Load(trainer._sparsityEstimate, q, rbm.device);
            };
        }
    }

    /// <summary>The tempering replicas as a checkpoint component (states, swap counts and round; the generator is saved once, as the trainer's).</summary>
    private sealed class TemperingState(RbmTrainer trainer) : IStateful
    {
        public string StateName => "tempering";

        public void SaveState(StateSection section)
        {
            section.Values["started"] = trainer._tempering is { replicas: > 0 };
            if (trainer._tempering is not { replicas: > 0 } pt) return;
            foreach (var (name, t) in pt.state_dict(include_generator: false)) section.PutCopy(name, t);
        }

        public Action PrepareLoad(StateSection section)
        {
            var rbm = trainer._rbm;
            if (!section.Value<bool>("started")) return () => { trainer._tempering?.Dispose(); trainer._tempering = null; };
            var ladder = trainer.Options.Tempering!;
            var states = section.Tensor("states");
            if (states.dim() != 2 || states.shape[1] != rbm.n_visible || states.dtype != rbm.dtype || states.shape[0] % ladder.levels != 0)
                throw section.Refuse($"the tempering replicas are {StateSection.Describe(states)}, expected ({ladder.levels}·R, {rbm.n_visible}) {rbm.dtype}");
            var unexpected = section.Tensors.Select(t => t.Name).Except(["states", "betas", "swap_accepted", "swap_attempted", "swap_round"]).ToList();
            if (unexpected.Count > 0) throw section.Refuse($"unexpected tensors {string.Join(", ", unexpected)}");
            var state = section.Tensors.ToDictionary(t => t.Name, t => t.Tensor);
            foreach (var name in new[] { "betas", "swap_accepted", "swap_attempted", "swap_round" })
                if (!state.ContainsKey(name)) throw section.Refuse($"the tensor '{name}' is missing");
            using (var b = state["betas"].to(ScalarType.Float64, torch.CPU, copy: true))
                if (b.numel() != ladder.levels || !b.data<double>().ToArray().SequenceEqual(ladder.betas))
                    throw section.Refuse($"the replicas were saved for another ladder of inverse temperatures than {ladder}");
            return () =>
            {
                trainer._tempering ??= new ParallelTempering(rbm, ladder, trainer._generator);
                trainer._tempering.load_state_dict(state);
            };
        }
    }

    /// <summary>
    /// One parameter update on a batch v⁰ (B × n_visible, already on the model's device): negative sample, gradient,
    /// optimizer step. Returns false when the gradient is not finite (the step is then not taken, and a folded momentum
    /// buffer, which the non-finite gradient has entered, is reset to zero).
    /// </summary>
    /// <exception cref="ArgumentException">v⁰ is not (B, n_visible), or (when the model validates values) holds values
    /// invalid for the visible units.</exception>
    public bool Step(Tensor v0)
    {
        _rbm.check_visible(v0, "batch");
        Checks.Rows(v0, _rbm.n_visible, "batch", "B", param: nameof(v0));
        using var scope = torch.NewDisposeScope();
        var modelDtype = _rbm.compute_dtype;
        _rbm.compute_dtype = Options.ComputeDtype ?? modelDtype;
        try
        {
            return StepIn(v0);
        }
        finally
        {
            _rbm.compute_dtype = modelDtype;
        }
    }

    /// <summary>The body of <see cref="Step"/>, with the model's products in <see cref="RbmTrainingOptions.ComputeDtype"/>.</summary>
    private bool StepIn(Tensor v0)
    {
        if (!_direct)
        {
            var vk = NegativeSample(v0, null).vk;
            _optimizer.zero_grad();
            var loss = _rbm.cd_loss(v0, vk);
            if (!double.IsFinite(loss.ToDouble())) return false;
            loss.backward();
            if (Options.WeightDecay > 0)
                using (torch.no_grad()) { _rbm.weight.grad!.add_(_rbm.weight, alpha: Options.WeightDecay); }
        }
        else
        {
            using var _ = torch.no_grad();
            var ph0 = _rbm.prob_h(v0);                       // shared by the positive statistics and the first Gibbs step
            var (vk, phk) = NegativeSample(v0, ph0);
            WriteCdGradients(_rbm, v0, ph0, vk, phk!, Options.WeightDecay, FoldsMomentum ? _momentum : 0, Options.ComputeDtype);
        }
        if (Options.Centering || Options.SparsityTarget is not null) Regularise(v0);
        using (torch.no_grad())
        {
            // A NaN/inf anywhere in W, the biases or the statistics reaches the hidden-bias gradient
            // (mean p(h|v) with p = σ(c + Wv) for both phases); W itself is checked in full at the end of every epoch.
            using var gc = _rbm.hidden_bias.grad!;
            using var sum = gc.sum();
            if (!double.IsFinite(sum.ToDouble()))
            {
                if (FoldsMomentum) ClearGradients();
                return false;
            }
        }
        _optimizer.step();
        return true;
    }

    /// <summary>
    /// The gradient changes that follow the CD/PCD gradient in <c>.grad</c>, with the batch's positive statistics:
    /// <list type="number">
    /// <item>centering (<see cref="RbmTrainingOptions.Centering"/>): G ← the centered step in plain parameters
    /// (<see cref="Centering.center_gradients"/>) at the current offsets μ, λ; then λ ← (1 − ν)λ + ν·mean p(h|v⁰);</item>
    /// <item>sparsity (<see cref="RbmTrainingOptions.SparsityTarget"/>, Hinton's guide §11): q ← δq + (1 − δ)·mean p(h|v⁰)
    /// (q starts at the first batch's mean), then G_c += κ(q − p) and G_W += κ(q − p)·mean(v⁰)ᵀ, κ the cost. With a folded
    /// momentum buffer u = μu + G the addition lands in G, since the buffer is linear in it.</item>
    /// </list>
    /// </summary>
    private void Regularise(Tensor v0)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var ph0 = _rbm.prob_h(v0);
        var activation = ph0.mean(new long[] { 0 });
        var gw = _rbm.weight.grad!;
        var gb = _rbm.visible_bias.grad!;
        var gc = _rbm.hidden_bias.grad!;
        if (Options.Centering)
        {
            _visibleOffset ??= v0.mean(new long[] { 0 }).DetachFromDisposeScope();   // Step without Fit: the first batch's mean
            _hiddenOffset ??= torch.full(_rbm.n_hidden, 0.5, dtype: _rbm.dtype, device: _rbm.device).DetachFromDisposeScope();
            Centering.center_gradients(gw, gb, gc, _visibleOffset, _hiddenOffset);
            _hiddenOffset.mul_(1 - Options.CenteringRate).add_(activation, alpha: Options.CenteringRate);
        }
        if (Options.SparsityTarget is { } p)
        {
            if (_sparsityEstimate is null) _sparsityEstimate = activation.clone().DetachFromDisposeScope();
            else _sparsityEstimate.mul_(Options.SparsityDecay).add_(activation, alpha: 1 - Options.SparsityDecay);
            var excess = _sparsityEstimate.sub(p).mul_(Options.SparsityCost);   // κ(q − p)
            gc.add_(excess);
            gw.add_(torch.outer(excess, v0.mean(new long[] { 0 })));
        }
    }

    /// <summary>
    /// Writes the CD gradient of L = mean F(v⁰) − mean F(vᵏ) (+ λ/2‖W‖²) into the parameters' <c>.grad</c>, without
    /// autograd, for unit types with a linear bias term:
    /// <code>∂L/∂W = s↑·((p(h|vᵏ)ᵀvᵏ)/Bₖ − (p(h|v⁰)ᵀv⁰)/B₀) + λW,  ∂L/∂b = mean(vᵏ) − mean(v⁰),  ∂L/∂c = mean p(h|vᵏ) − mean p(h|v⁰)</code>
    /// (s↑ = <see cref="RBM.up_scale"/>, 1 for an ordinary RBM: F(v) depends on W through c + s↑·W v).
    /// Existing gradient buffers are overwritten in place (no allocation after the first call).
    /// </summary>
    /// <exception cref="NotSupportedException">A unit type without a linear bias term (use <see cref="GradientMode.Autograd"/>).</exception>
    /// <param name="rbm">The model whose <c>.grad</c> buffers are written.</param>
    /// <param name="v0">The data batch v⁰.</param>
    /// <param name="vk">The negative sample vᵏ.</param>
    /// <param name="weightDecay">λ.</param>
    /// <param name="computeDtype">The dtype of the weight statistics' product (<see cref="RbmTrainingOptions.ComputeDtype"/>); null: the model's.</param>
    public static void WriteCdGradients(RBM rbm, Tensor v0, Tensor vk, double weightDecay = 0, ScalarType? computeDtype = null)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using var ph0 = rbm.prob_h(v0);
        using var phk = rbm.prob_h(vk);
        WriteCdGradients(rbm, v0, ph0, vk, phk, weightDecay, 0, computeDtype);
    }

    /// <summary>
    /// Writes g = ∂L/∂θ into each <c>.grad</c> (μ = 0), or accumulates the momentum buffer u ← μu + g there (μ &gt; 0):
    /// the first matrix product scales the old buffer by β = μ, so momentum costs no extra pass over W.
    /// </summary>
    private static void WriteCdGradients(RBM rbm, Tensor v0, Tensor ph0, Tensor vk, Tensor phk, double weightDecay, double momentum, ScalarType? computeDtype)
    {
        if (!rbm.visible_units.has_linear_bias || !rbm.hidden_units.has_linear_bias)
            throw new NotSupportedException($"Direct CD gradients need unit types with a linear bias term; {rbm} needs GradientMode.Autograd.");
        // Callers run this under no_grad inside a dispose scope (Step's, or the public overload's).
        float b0 = v0.shape[0], bk = vk.shape[0];
        var gw = GradBuffer(rbm.weight);
        // gw ← μ·gw − ph0ᵀv0/B₀ + phkᵀvk/Bₖ + λW, accumulated in place. TorchSharp's addmm_ takes α and β as floats: λ is
        // added with add_ (exact in float64), μ goes through Beta; 1/B is exact for power-of-two batches and otherwise
        // rounded to single precision (a relative 3·10⁻⁸ in float64 models).
        float beta = Beta(gw, momentum);
        float s = (float)rbm.up_scale;   // ∂F/∂W = −s↑·p(h|v)vᵀ
        if (computeDtype is { } cd && cd != gw.dtype && b0 == bk)
        {
            // One product in the compute dtype: [ph0; phk]ᵀ·[−v0; vk] = phkᵀvk − ph0ᵀv0, rounded once, after the phases cancel.
            using var hs = torch.cat([ph0, phk]).to(cd);
            using var vs = torch.cat([v0.neg(), vk]).to(cd);
            using var stat = hs.t().matmul(vs);
            if (beta != 1f) gw.mul_(beta);
            gw.add_(stat, alpha: s / b0);
        }
        else
        {
            gw.addmm_(ph0.t(), v0, beta: beta, alpha: -s / b0);
            gw.addmm_(phk.t(), vk, beta: 1f, alpha: s / bk);
        }
        if (weightDecay > 0) gw.add_(rbm.weight, alpha: weightDecay);
        var ones0 = torch.ones(v0.shape[0], dtype: v0.dtype, device: v0.device);
        var onesK = vk.shape[0] == v0.shape[0] ? ones0 : torch.ones(vk.shape[0], dtype: vk.dtype, device: vk.device);
        Accumulate(GradBuffer(rbm.visible_bias), vk, v0, onesK, ones0, momentum);
        Accumulate(GradBuffer(rbm.hidden_bias), phk, ph0, onesK, ones0, momentum);
    }

    /// <summary>
    /// The β that makes <c>addmm_</c>/<c>addmv_</c> scale the old buffer by μ: TorchSharp passes β in single precision,
    /// which is exact for float32 buffers; a float64 buffer whose μ is not a float is scaled separately (β = 1 then).
    /// </summary>
    private static float Beta(Tensor buffer, double momentum)
    {
        float beta = (float)momentum;
        if (momentum == 0 || (double)beta == momentum || buffer.dtype != ScalarType.Float64) return beta;
        buffer.mul_(momentum);
        return 1f;
    }

    /// <summary>
    /// g ← μg + mean(neg) − mean(pos) over the batch (μ = 0 overwrites g), as two matrix–vector products with a ones
    /// vector (g ← βg + negᵀ1/Bₖ, then g −= posᵀ1/B₀): fewer, cheaper calls than two means and three elementwise ops.
    /// </summary>
    private static void Accumulate(Tensor g, Tensor negative, Tensor positive, Tensor onesK, Tensor ones0, double momentum)
    {
        float beta = Beta(g, momentum);
        using var nt = negative.t();
        using var pt = positive.t();
        g.addmv_(nt, onesK, beta: beta, alpha: 1f / negative.shape[0]);
        g.addmv_(pt, ones0, beta: 1f, alpha: -1f / positive.shape[0]);
    }

    private static Tensor GradBuffer(Parameter p)
    {
        var g = p.grad;
        if (g is null)
        {
            p.grad = torch.zeros_like(p);
            g = p.grad!;
        }
        return g;
    }

    /// <summary>
    /// The negative phase for a batch: vᵏ after k Gibbs steps from the batch (CD) or from the persistent chains (PCD),
    /// and p(h|vᵏ) when <paramref name="ph0"/> = p(h|v⁰) is given (the direct path reuses it for the first step).
    /// </summary>
    private (Tensor vk, Tensor? phk) NegativeSample(Tensor v0, Tensor? ph0)
    {
        using var _ = torch.no_grad();
        if (Options.Tempering is { } ladder)
        {
            // Parallel tempering: B replicas per level, started at samples of the first batch; k tempering steps per
            // batch, the β = 1 replicas are the negative sample (the first b of them for a short last batch).
            _tempering ??= new ParallelTempering(_rbm, ladder, _generator);
            if (_tempering.replicas == 0)
            {
                using var init = _rbm.visible_units.sample_from_mean(v0, _generator);
                _tempering.start(init);
            }
            for (int step = 0; step < Options.K; step++) _tempering.step();
            long rows = Math.Min(v0.shape[0], _tempering.replicas);
            var cold = rows == _tempering.replicas ? _tempering.visible.alias() : _tempering.visible.narrow(0, 0, rows);
            return (cold, ph0 is null ? null : _rbm.prob_h(cold));
        }
        _negative ??= new GibbsChains(_rbm, _generator);
        // Learned variances need sampled negatives: the means b + Wᵀh carry no spread, and ∂F/∂z would push σ² up without bound.
        bool sampleLast = Options.Persistent || Options.SampleVisible || _rbm.visible_units is Units.LearnedGaussianUnits;
        int k = _k;
        Tensor vk;
        if (Options.Persistent)
        {
            long b = v0.shape[0];
            if (_negative.n_chains == 0)
            {
                using var init = _rbm.visible_units.sample_from_mean(v0, _generator);   // PCD's chains start at samples of the first batch
                _negative.start(init);
            }
            long? count = b < _negative.n_chains ? b : null;   // a short last batch steps the first b chains
            for (int step = 0; step < k; step++) _negative.step(step < k - 1 || sampleLast, count: count);
            vk = count is null ? _negative.visible : _negative.visible.narrow(0, 0, b);
        }
        else
        {
            // CD restarts the chains at the data; p(h | v⁰) of the positive phase serves the first step.
            _negative.step(k > 1 || sampleLast, from: v0, hidden_mean: ph0);
            for (int step = 1; step < k; step++) _negative.step(step < k - 1 || sampleLast);
            vk = _negative.visible;
        }
        return (vk, ph0 is null ? null : _rbm.prob_h(vk));
    }

    /// <summary>
    /// Sets the momentum of an optimizer that has one, in every parameter group: TorchSharp's <c>IMomentum.Momentum</c> on
    /// the optimizer changes only its defaults for groups added later, while <c>step()</c> reads each group's own value.
    /// Returns false when the optimizer has no momentum.
    /// </summary>
    internal static bool SetMomentum(optim.Optimizer optimizer, double value)
    {
        if (optimizer is not optim.IMomentum m) return false;
        m.Momentum = value;
        foreach (var g in optimizer.ParamGroups)
            if (g is optim.IMomentum gm) gm.Momentum = value;
        return true;
    }

    /// <summary>The momentum the optimizer's first parameter group will use (null when it has none).</summary>
    private static double? GroupMomentum(optim.Optimizer optimizer)
        => optimizer.ParamGroups.FirstOrDefault() is optim.IMomentum gm ? gm.Momentum : (optimizer as optim.IMomentum)?.Momentum;

    /// <summary>Zeroes the parameters' <c>.grad</c> where they exist (the folded momentum buffers).</summary>
    private void ClearGradients()
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();   // the .grad wrappers and what zero_() returns (handles, not the buffers)
        foreach (var p in _rbm.parameters())
            p.grad?.zero_();
    }


    private RbmEpochMetrics Measure(int epoch, double seconds, double? momentum, BatchSource data, Tensor? held)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var trainSubset = data.Rows(0, Math.Min(Options.MetricsSamples, data.Count), _rbm.dtype, _rbm.device);
        var heldSubset = held?.narrow(0, 0, Math.Min(Options.MetricsSamples, held.shape[0]));
        if (Options.BinarizeEachBatch)
        {
            // One fixed draw of the metric rows (seeded by the options' seed, apart from the run's generator): every
            // epoch's figures are on the same binary vectors, which the grey levels the run draws from are not.
            using var draw = new Generator(Options.Seed, _rbm.device);
            trainSubset = Data.Binarize.Stochastic(trainSubset, draw);
            heldSubset = heldSubset is null ? null : Data.Binarize.Stochastic(heldSubset.to(_rbm.dtype, _rbm.device), draw);
        }
        return new RbmEpochMetrics(
            epoch + 1, Options.Epochs, seconds, momentum,
            RbmMetrics.reconstruction_error(_rbm, trainSubset),
            heldSubset is null ? null : RbmMetrics.reconstruction_error(_rbm, heldSubset),
            RbmMetrics.pseudo_log_likelihood(_rbm, trainSubset, _generator),
            RbmMetrics.mean_free_energy(_rbm, trainSubset),
            heldSubset is null ? null : RbmMetrics.mean_free_energy(_rbm, heldSubset));
    }

    /// <summary>Releases the persistent chains and the optimizer/generator the trainer created.</summary>
    public void Dispose()
    {
        _negative?.Dispose();
        _negative = null;
        _tempering?.Dispose();
        _tempering = null;
        _visibleOffset?.Dispose();
        _hiddenOffset?.Dispose();
        _sparsityEstimate?.Dispose();
        _visibleOffset = _hiddenOffset = _sparsityEstimate = null;
        if (_ownsOptimizer) (_optimizer as IDisposable)?.Dispose();
        if (_ownsGenerator) _generator.Dispose();
    }
}

using System.Globalization;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Sampling;
using TorchBoltzmann.Units;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// Fine-tunes a pretrained <see cref="DBN"/> as a generative model with the up-down algorithm (contrastive wake-sleep;
/// Hinton, Osindero &amp; Teh 2006, section 5 and appendix B), on the shared <see cref="TrainingLoop{TMetrics}"/>.
/// </summary>
/// <remarks>
/// <para>The DBN is untied first (<see cref="DBN.untie"/>): the L − 1 lower layers get recognition weights R_l, r_l beside
/// their generative weights W_l, b_l. With s⁰ = v (the data as given) and, in a class-conditional DBN, y the one-hot
/// label, one mini-batch of B examples is (η the learning rate; every statistic a mean over the batch):</para>
/// <para><b>Wake phase</b> (stochastic up-pass with the recognition weights, then the generative weights learn to
/// reconstruct each layer from the one above):
/// <code>s^{l+1} ~ σ(R_l s^l + r_l),   l = 0 … L − 2
/// ΔW_l = η s^{l+1} (s^l − p^l)ᵀ,   Δb_l = η (s^l − p^l),   p^l = p_gen(s^l = 1 | s^{l+1}) = σ(b_l + W_lᵀ s^{l+1})</code></para>
/// <para><b>Top associative memory</b> (CD-k from the wake state, through <see cref="GibbsChains"/>): x⁰ = [s^{L−1} ; y],
/// k block-Gibbs steps h ~ p(h | x), x ~ p(x | h) give xᵏ (the label group softmax-sampled, not clamped); with
/// x̃ᵏ = [s_neg^{L−1} ; p(y | h)] (the sampled features and the label probabilities, as in the paper's pseudo-code):
/// <code>ΔW_top = η (p(h | x⁰) x⁰ᵀ − p(h | x̃ᵏ) x̃ᵏᵀ),   Δb_top = η (x⁰ − x̃ᵏ),   Δc_top = η (p(h | x⁰) − p(h | x̃ᵏ))</code>
/// (<see cref="RbmTrainer.WriteCdGradients(RBM, Tensor, Tensor, double, ScalarType?)"/>).</para>
/// <para><b>Sleep phase</b> (stochastic down-pass with the generative weights from the negative sample, then the
/// recognition weights learn to infer each layer from the one below):
/// <code>d^{L−1} = s_neg^{L−1},   d^l ~ σ(b_l + W_lᵀ d^{l+1}) for l = L − 2 … 1,   d⁰ = σ(b₀ + W₀ᵀ d¹) (probabilities)
/// ΔR_l = η (d^{l+1} − q^{l+1}) d^{lᵀ},   Δr_l = η (d^{l+1} − q^{l+1}),   q^{l+1} = p_rec(d^{l+1} = 1 | d^l) = σ(r_l + R_l d^l)</code></para>
/// <para>The three phases' statistics are written, negated, into the parameters' <c>.grad</c> (with λW added for weight
/// decay) and one SGD step with momentum takes them all: θ ← θ − η u, u ← μu + g (the first step: θ + η·statistics).
/// The lower RBMs' hidden biases take part in neither pass and are not trained.</para>
/// <para>Random draws, all from the run's generator, in this order per batch: the wake states s¹ … s^{L−1}; each Gibbs
/// step's hidden then visible sample; the sleep states d^{L−2} … d¹. Binary units are drawn as [u &lt; p], u ~ U(0, 1).</para>
/// <para>The CD-k schedule: k = <see cref="UpDownOptions.GibbsStepsAt"/> for the epoch (the paper's 3, then 6, then 10,
/// over thirds of the run), set at the start of each epoch by a loop callback.</para>
/// <para>Memory: one dispose scope per batch (the loop's); the chain's states outlive the batch inside
/// <see cref="GibbsChains"/>; metrics leave as .NET numbers.</para>
/// <para>Run checkpoint (<see cref="ResumableTrainer.CheckpointPath"/>): when set, <see cref="Fit"/> checkpoints the run here (<see cref="RunCheckpoint"/>, kind "up-down") every
/// <see cref="ResumableTrainer.CheckpointEvery"/> epochs and at the end, and a <see cref="Fit"/> that finds the file continues from it:
/// the DBN's weights (both sets), the optimizer's momentum, the generator and the epochs' metrics are restored, so on
/// the CPU a run stopped after epoch e and continued ends bit-identical to one that never stopped (same thread count).
/// The file must come from a run with the same DBN architecture, options (the epochs included: they set the k
/// schedule), <see cref="ResumableTrainer.CheckpointTag"/>, numbers of training and validation rows and device.</para>
/// </remarks>
public sealed class UpDownTrainer : ResumableTrainer, IDisposable
{
    private readonly DBN _dbn;
    private readonly Generator _generator;
    private readonly bool _ownsGenerator;
    private readonly optim.Optimizer _optimizer;
    private readonly List<Parameter> _parameters;
    private GibbsChains? _chains;
    private int _k;

    /// <summary>Creates a trainer; unties <paramref name="dbn"/> when it is tied (which changes none of its outputs).</summary>
    /// <param name="dbn">A pretrained DBN of at least two RBMs, already on its device.</param>
    /// <param name="options">Hyperparameters (validated here).</param>
    /// <param name="generator">Random generator on the DBN's device; default <c>new Generator(options.Seed, device)</c>. Not disposed here.</param>
    /// <exception cref="InvalidOperationException">The DBN has a single RBM (no lower layers to untie).</exception>
    public UpDownTrainer(DBN dbn, UpDownOptions? options = null, Generator? generator = null)
        : base("up-down")
    {
        _dbn = dbn ?? throw new ArgumentNullException(nameof(dbn));
        Options = options ?? new UpDownOptions();
        Options.Validate();
        if (!dbn.is_untied) dbn.untie();
        _ownsGenerator = generator is null;
        _generator = generator ?? new Generator(Options.Seed, dbn.device);
        _parameters = TrainedParameters();
        // Two groups when the top memory has its own step: the lower layers' R, r, W, b at η, the top RBM at η_top.
        _optimizer = Options.TopLearningRate is { } top
            ? optim.SGD([new SGD.ParamGroup(_parameters.Take(_parameters.Count - 3), Options.LearningRate, Options.Momentum),
                         new SGD.ParamGroup(_parameters.Skip(_parameters.Count - 3), top, Options.Momentum)], Options.LearningRate, momentum: Options.Momentum)
            : optim.SGD(_parameters, Options.LearningRate, momentum: Options.Momentum);
        _k = Options.GibbsStepsAt(0);
    }

    /// <summary>The hyperparameters.</summary>
    public UpDownOptions Options { get; }

    /// <summary>The optimizer taking the steps (SGD with <see cref="UpDownOptions.Momentum"/>).</summary>
    public optim.Optimizer Optimizer => _optimizer;

    /// <summary>The parameters the algorithm trains: R_l, r_l, W_l, b_l of the lower layers and all of the top RBM.</summary>
    private List<Parameter> TrainedParameters()
    {
        var list = new List<Parameter>();
        for (int l = 0; l < _dbn.n_layers - 1; l++)
        {
            var r = _dbn.recognition![l];
            list.AddRange([r.weight, r.bias, _dbn.layers[l].weight, _dbn.layers[l].visible_bias]);
        }
        list.AddRange([_dbn.top.weight, _dbn.top.visible_bias, _dbn.top.hidden_bias]);
        return list;
    }

    /// <summary>
    /// Trains for <see cref="UpDownOptions.Epochs"/> epochs on <paramref name="train"/> (N × n_visible, values in [0, 1]),
    /// measuring the generative classifier's error on the validation data after every
    /// <see cref="UpDownOptions.MetricsEvery"/> epochs.
    /// </summary>
    /// <param name="train">Training data; moved to the DBN's device and dtype once.</param>
    /// <param name="labels">Class labels (int64, N), required for a class-conditional DBN and refused otherwise.</param>
    /// <param name="validation">Optional held-out data (M × n_visible).</param>
    /// <param name="validationLabels">Its labels (M); required with validation data of a class-conditional DBN.</param>
    /// <param name="progress">Per-batch and per-epoch progress.</param>
    /// <param name="cancellationToken">Checked before every batch; the DBN keeps the completed batches' updates.</param>
    /// <returns>The metrics of every epoch.</returns>
    /// <exception cref="ArgumentException">Bad data or labels.</exception>
    /// <exception cref="TrainingDivergedException">An update or the weights became NaN or infinite (names epoch and batch).</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="IO.CheckpointException">The checkpoint cannot be continued from.</exception>
    public IReadOnlyList<UpDownEpochMetrics> Fit(Tensor train, Tensor? labels, Tensor? validation = null, Tensor? validationLabels = null,
                                                 IProgress<LoopProgress<UpDownEpochMetrics>>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        _dbn.check_input(train, "training data");
        Checks.Rows(train, _dbn.n_visible, "training data");
        CheckLabels(labels, train.shape[0], nameof(labels));
        if (validation is not null)
        {
            _dbn.check_input(validation, "validation data");
            Checks.Rows(validation, _dbn.n_visible, "validation data", "M", "; pass null to skip validation");
            CheckLabels(validationLabels, validation.shape[0], nameof(validationLabels));
        }
        CheckCheckpointEvery();

        using var data = train.to(_dbn.dtype, _dbn.device);
        using var y = labels is null ? null : DBN.one_hot(labels, _dbn.n_classes, _dbn.dtype, _dbn.device);
        using var classOf = Options.BalancedBatches && Options.Shuffle && labels is not null ? labels.to(ScalarType.Int64, _dbn.device, copy: true) : null;
        using var held = validation?.to(_dbn.dtype, _dbn.device);
        using var heldLabels = validationLabels?.to(ScalarType.Int64, _dbn.device);
        var loop = new TrainingLoop<UpDownEpochMetrics>
        {
            Stage = Stage, Epochs = Options.Epochs, BatchSize = Options.BatchSize, Generator = _generator, Shuffle = Options.Shuffle,
            Arrange = classOf is null ? null : BalancedOrder.ByClass(classOf, _dbn.n_classes),
            Checkpoint = CheckpointPath is null ? null : new CheckpointPolicy(CheckpointPath, "up-down", Identity(data, held), CheckpointEvery),
        };
        loop.Callbacks.Add(new GibbsSchedule(this));
        if (CheckpointPath is not null)
            loop.State.AddRange([new ModuleState("model", _dbn), new OptimizerCheckpointState("optimizer", _optimizer), new GeneratorState("generator", _generator)]);
        var previousValidate = _dbn.validate_values;
        _dbn.validate_values = false;   // the data was checked once above
        try
        {
            return loop.Run(new EpochStep(this, data, y, held, heldLabels), data.shape[0], data.device, progress, cancellationToken).ToList();
        }
        finally
        {
            RestoredSeconds = loop.RestoredSeconds;
            _dbn.validate_values = previousValidate;
        }
    }

    private void CheckLabels(Tensor? labels, long rows, string what)
    {
        if (_dbn.is_class_conditional)
        {
            if (labels is null) throw new ArgumentException($"{what}: a class-conditional DBN needs the labels.", what);
            _dbn.CheckLabels(labels, rows, what);
        }
        else if (labels is not null) throw new ArgumentException($"{what}: this DBN has no label units (n_classes = 0).", what);
    }

    /// <summary>What a run continuing from a checkpoint must share with the run that wrote it.</summary>
    private Dictionary<string, string> Identity(Tensor data, Tensor? held)
    {
        var o = Options;
        var id = new Dictionary<string, string>
        {
            ["options.Epochs"] = o.Epochs.ToString(CultureInfo.InvariantCulture),
            ["options.BatchSize"] = o.BatchSize.ToString(CultureInfo.InvariantCulture),
            ["options.LearningRate"] = o.LearningRate.ToString("R", CultureInfo.InvariantCulture),
            ["options.TopLearningRate"] = o.TopLearningRate?.ToString("R", CultureInfo.InvariantCulture) ?? "null",   // null reads as absent: earlier checkpoints continue
            ["options.Momentum"] = o.Momentum.ToString("R", CultureInfo.InvariantCulture),
            ["options.WeightDecay"] = o.WeightDecay.ToString("R", CultureInfo.InvariantCulture),
            ["options.GibbsSchedule"] = string.Join(",", o.GibbsSchedule),
            ["options.Seed"] = o.Seed.ToString(CultureInfo.InvariantCulture),
            ["options.Shuffle"] = o.Shuffle.ToString(),
            ["options.BalancedBatches"] = o.BalancedBatches ? "True" : "null",   // off reads as absent: earlier checkpoints continue
            ["options.MetricsEvery"] = o.MetricsEvery.ToString(CultureInfo.InvariantCulture),
        };
        var (type, architecture) = IO.Checkpoint.Describe(_dbn);
        id["model"] = $"{type} {architecture.ToJsonString()}";
        id["training_rows"] = data.shape[0].ToString(CultureInfo.InvariantCulture);
        id["validation_rows"] = (held?.shape[0] ?? 0).ToString(CultureInfo.InvariantCulture);
        id["device"] = _dbn.device.ToString();
        AddCheckpointTag(id);
        return id;
    }

    /// <summary>Sets k for the epoch from <see cref="UpDownOptions.GibbsStepsAt"/> (the paper's 3 → 6 → 10).</summary>
    private sealed class GibbsSchedule(UpDownTrainer trainer) : ITrainingCallback
    {
        public void OnEpochStart(TrainingLoop loop, int epoch) => trainer._k = trainer.Options.GibbsStepsAt(epoch);
    }

    /// <summary>The trainer's part of the loop: one up-down update per batch; the divergence check and the validation error per epoch.</summary>
    private sealed class EpochStep(UpDownTrainer trainer, Tensor data, Tensor? y, Tensor? held, Tensor? heldLabels) : ITrainingStep<UpDownEpochMetrics>
    {
        private double _reconstruction;
        private int _batches;

        public void BeginEpoch(int epoch) => (_reconstruction, _batches) = (0, 0);

        public double TrainBatch(Batch batch)
        {
            var yb = y is null ? null : batch.Rows(y);
            if (!trainer.StepOneHot(batch.Rows(data), yb, trainer._k, out double recon)) throw batch.Diverged("the up-down statistics");
            _reconstruction += recon;
            _batches++;
            return recon;
        }

        public UpDownEpochMetrics EndEpoch(EpochEnd end)
        {
            if (!Checks.AllFinite(trainer._dbn)) throw end.Diverged("the weights");
            var o = trainer.Options;
            bool measure = held is not null && heldLabels is not null && end.Measures(o.MetricsEvery, o.Epochs);
            double? error = null;
            if (measure)
            {
                using var scope = torch.NewDisposeScope();
                using var predicted = trainer._dbn.classify(held!);
                using var wrong = predicted.ne(heldLabels!);
                using var mean = wrong.to_type(ScalarType.Float64).mean();
                error = mean.ToDouble();
            }
            return new UpDownEpochMetrics(end.Epoch + 1, o.Epochs, trainer._k, end.Seconds, _batches == 0 ? double.NaN : _reconstruction / _batches, error);
        }
    }


    /// <summary>
    /// One up-down update on a batch (B × n_visible, values in [0, 1]) with k Gibbs iterations in the top associative
    /// memory; see the class remarks for the formulas and the order of the random draws. Returns false (without
    /// stepping) when a statistic is NaN or infinite.
    /// </summary>
    /// <param name="v">The batch.</param>
    /// <param name="labels">Its labels (int64, B) for a class-conditional DBN; null otherwise.</param>
    /// <param name="k">Gibbs iterations of the top associative memory (≥ 1).</param>
    /// <exception cref="ArgumentException">Bad batch or labels.</exception>
    public bool Step(Tensor v, Tensor? labels, int k)
    {
        ArgumentNullException.ThrowIfNull(v);
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be at least 1.");
        _dbn.check_input(v, "batch");
        Checks.Rows(v, _dbn.n_visible, "batch", "B", param: nameof(v));
        CheckLabels(labels, v.shape[0], nameof(labels));
        using var scope = torch.NewDisposeScope();
        var x = v.to(_dbn.dtype, _dbn.device);
        var y = labels is null ? null : DBN.one_hot(labels, _dbn.n_classes, _dbn.dtype, _dbn.device);
        return StepOneHot(x, y, k, out _);
    }

    /// <summary>The update of <see cref="Step"/> with one-hot labels, inside the caller's dispose scope.</summary>
    private bool StepOneHot(Tensor v, Tensor? y, int k, out double reconstruction)
    {
        using var _ = torch.no_grad();
        int lower = _dbn.n_layers - 1;
        var bernoulli = UnitType.Bernoulli;
        var rec = _dbn.recognition!;
        double batch = v.shape[0];

        // Wake phase: s^{l+1} ~ σ(R_l s^l + r_l).
        var s = new Tensor[lower + 1];
        s[0] = v;
        for (int l = 0; l < lower; l++) s[l + 1] = bernoulli.sample_from_mean(rec[l].forward(s[l]), _generator);

        // Top associative memory: CD-k from x⁰ = [s^{L−1} ; y].
        var top = _dbn.top;
        var x0 = y is null ? s[lower] : torch.cat([s[lower], y], 1);
        _chains ??= new GibbsChains(top, _generator);
        _chains.step(from: x0);
        for (int i = 1; i < k; i++) _chains.step();
        var xk = _chains.visible.clone();
        int nf = _dbn.n_features;
        if (y is not null) xk.narrow(1, nf, _dbn.n_classes).copy_(_chains.visible_mean!.narrow(1, nf, _dbn.n_classes));

        // Sleep phase: d^{L−1} = s_neg^{L−1}, d^l ~ σ(b_l + W_lᵀ d^{l+1}), d⁰ = probabilities.
        var d = new Tensor[lower + 1];
        d[lower] = xk.narrow(1, 0, nf);
        for (int l = lower - 1; l >= 0; l--)
        {
            var p = _dbn.layers[l].prob_v(d[l + 1]);
            d[l] = l > 0 ? bernoulli.sample_from_mean(p, _generator) : p;
        }

        // Wake statistics → generative gradients: g_W = −s^{l+1}ᵀ(s^l − p^l)/B, g_b = −mean(s^l − p^l).
        reconstruction = double.NaN;
        for (int l = 0; l < lower; l++)
        {
            var layer = _dbn.layers[l];
            var e = s[l] - layer.prob_v(s[l + 1]);
            if (l == 0) reconstruction = e.square().sum(1).mean().ToDouble();
            SetGrad(layer.weight, s[l + 1].t().mm(e).div_(-batch));
            SetGrad(layer.visible_bias, e.mean([0]).neg_());
        }
        // Top: the CD gradient of mean F(x⁰) − mean F(x̃ᵏ).
        RbmTrainer.WriteCdGradients(top, x0, xk);
        // Sleep statistics → recognition gradients: g_R = −(d^{l+1} − q^{l+1})ᵀ d^l / B, g_r = −mean(d^{l+1} − q^{l+1}).
        for (int l = 0; l < lower; l++)
        {
            var e = d[l + 1] - rec[l].forward(d[l]);
            SetGrad(rec[l].weight, e.t().mm(d[l]).div_(-batch));
            SetGrad(rec[l].bias, e.mean([0]).neg_());
        }
        if (Options.WeightDecay > 0)
            foreach (var p in _parameters)
                if (p.dim() == 2) p.grad!.add_(p, alpha: Options.WeightDecay);

        // A NaN or infinity anywhere reaches some bias gradient (each is a mean over the batch of that layer's errors).
        double check = 0;
        foreach (var p in _parameters)
            if (p.dim() == 1) check += p.grad!.sum().ToDouble();
        if (!double.IsFinite(check)) return false;
        _optimizer.step();
        return true;
    }

    private static void SetGrad(Parameter p, Tensor g)
    {
        if (p.grad is null) p.grad = torch.zeros_like(p);
        p.grad!.copy_(g);
    }

    /// <summary>Frees the chain, the optimizer and (when the trainer made it) the generator.</summary>
    public void Dispose()
    {
        _chains?.Dispose();
        _chains = null;
        (_optimizer as IDisposable)?.Dispose();
        if (_ownsGenerator) _generator.Dispose();
    }
}

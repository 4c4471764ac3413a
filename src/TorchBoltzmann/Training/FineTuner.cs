using System.Diagnostics;
using System.Runtime.ExceptionServices;
using TorchBoltzmann.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// Supervised fine-tuning of any classifier module (logits (B, n_classes)), e.g. one built by
/// <see cref="Modules.DbnClassifier.Build(Modules.DBN, int, double, double, Generator?, bool)"/>: mini-batch minimisation of the
/// cross-entropy L = −(1/B) Σ_n log softmax(z_n)_{y_n} by backpropagation with any <c>torch.optim</c> optimizer, closure-based
/// ones (L-BFGS, <see cref="ConjugateGradient"/>) included (default SGD, momentum 0.9; or conjugate gradients with
/// <see cref="ClassifierTrainingOptions.Optimizer"/>), an exponential learning-rate schedule η_e = η₀ γ^e, a validation split, early stopping on the
/// validation error and restoration of the best weights.
/// </summary>
/// <remarks>
/// <para>The model is put in training mode for the updates (so dropout is active; <c>nn.Dropout</c> and <see cref="Modules.FastDropout"/> are inverted,
/// scaling kept units by 1/(1 − p) at training time, so no weight rescaling is needed at test time) and in eval mode for
/// validation.</para>
/// <para>The best weights are kept as an in-memory copy of the state_dict and copied back in place at the end, so the
/// model's parameter objects (and optimizers over them) stay valid.</para>
/// <para>Options beyond plain SGD: <see cref="ClassifierTrainingOptions.HeadOnlyEpochs"/> trains the output layer alone
/// first (the other parameters get <c>requires_grad = false</c> and are restored at the end), and
/// <see cref="ClassifierTrainingOptions.AverageDecay"/> keeps an exponential moving average of the weights, which
/// validation measures and the model ends with.</para>
/// <para>Memory: one dispose scope per batch, each gathering its rows through the epoch's permutation; metrics leave
/// scopes as .NET numbers.</para>
/// <para><see cref="Fit"/> runs on the shared <see cref="TrainingLoop{TMetrics}"/>: the fine-tuner supplies the closure step
/// of a batch and the epoch's validation, and its options become components (<see cref="ExponentialLearningRate"/>,
/// <see cref="MaxNorm"/>, <see cref="EarlyStopping"/>, <see cref="IterateAverage"/>, the momentum ramp and head-only
/// epochs), each saving its own state in the run's checkpoints.</para>
/// <para>Run checkpoint (<see cref="ResumableTrainer.CheckpointPath"/>): when set, <see cref="Fit"/> writes a checkpoint of the whole run here (a <see cref="RunCheckpoint"/>, atomically) every
/// <see cref="ResumableTrainer.CheckpointEvery"/> epochs and at the end, and a <see cref="Fit"/> that finds this file continues from it:
/// the weights, the optimizer's state (momentum buffers), the metrics, early stopping's record and best weights, the
/// iterate average and the states of the shuffling generator and the global CPU generator are restored, so on the CPU a
/// run stopped after epoch k and continued ends exactly as one that never stopped (same thread count). On CUDA, dropout
/// draws from the CUDA default generator, whose state is not saved: a continued run is then statistically, not bitwise,
/// the same. The file must come from a run with the same model, hyperparameters (<see cref="ClassifierTrainingOptions.Epochs"/>
/// and <see cref="ClassifierTrainingOptions.Patience"/> aside), <see cref="ResumableTrainer.CheckpointTag"/>, number of training
/// examples and device; a finished run's file makes <see cref="Fit"/> load its final weights and return its history (delete
/// it to train again). Needs an optimizer whose state TorchSharp saves (SGD, <see cref="ConjugateGradient"/>, …; not the
/// native L-BFGS), checked when <see cref="Fit"/> starts. A checkpoint of the format written before the run checkpoint
/// (<c>TBMFT</c> 2) is continued from too; the next checkpoint replaces it in the new format.
/// Its <see cref="ResumableTrainer.CheckpointTag"/> carries what else the run depends on beyond the hyperparameters, the
/// model's tensors, the number of training examples and the device: e.g. the dropout probabilities, the data, how the
/// model was pretrained.</para>
/// </remarks>
public sealed class FineTuner : ResumableTrainer, IDisposable
{
    private readonly nn.Module<Tensor, Tensor> _model;
    private readonly optim.Optimizer _optimizer;
    private readonly bool _ownsOptimizer;
    private readonly bool _managedOptimizer;
    private readonly Generator _generator;
    private readonly bool _ownsGenerator;
    private readonly Device _device;
    private readonly ScalarType _dtype;

    /// <summary>Creates a fine-tuner.</summary>
    /// <param name="model">The classifier (already on its device), returning logits.</param>
    /// <param name="options">Hyperparameters (validated here).</param>
    /// <param name="optimizer">Any optimizer over <c>model.parameters()</c>; default SGD(η₀, momentum, weight decay) from the options. A caller's optimizer is not disposed.</param>
    /// <param name="generator">Generator for shuffling, on the model's device; default <c>new Generator(options.Seed, device)</c>.</param>
    /// <exception cref="NotSupportedException"><see cref="ClassifierTrainingOptions.ComputeDtype"/> asks for casting in a model other than a <c>Sequential</c> of <c>Linear</c> and parameter-free modules.</exception>
    /// <exception cref="ArgumentException">Conjugate gradients (from the options or passed) on a model with a dropout of p &gt; 0
    /// (named); the non-inverted dropout convention with an optimizer other than the SGD built here; momentum schedules
    /// without SGD; a model without parameters.</exception>
    public FineTuner(nn.Module<Tensor, Tensor> model, ClassifierTrainingOptions? options = null, optim.Optimizer? optimizer = null, Generator? generator = null)
        : base("fine-tune")
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        Options = options ?? new ClassifierTrainingOptions();
        Options.Validate();
        var first = model.parameters().FirstOrDefault() ?? throw new ArgumentException("model: expected a module with parameters.", nameof(model));
        _device = first.device;
        _dtype = first.dtype;
        _keep = Options.DropoutConvention == DropoutConvention.NonInverted
            ? DropoutKeepProbabilities(model).Where(k => k.Keep < 1).ToList()
            : new List<(TorchSharp.Modules.Parameter, double)>();
        if (_keep.Count > 0 && (optimizer is not null || Options.Optimizer != FineTuningOptimizer.Sgd))
            throw new ArgumentException("DropoutConvention.NonInverted sets each layer's learning rate (η q²) in the SGD optimizer the fine-tuner builds; "
                + (optimizer is not null ? $"a {optimizer.GetType().Name} was passed instead." : $"Optimizer is {Options.Optimizer}."), nameof(options));
        // Conjugate gradients' line searches compare losses of one batch at several steps: a dropout mask drawn anew for
        // each evaluation makes those comparisons noise (DbnClassifierPipeline refuses the same for presets).
        if ((optimizer is null ? Options.Optimizer == FineTuningOptimizer.ConjugateGradient : optimizer is ConjugateGradient)
            && ActiveDropout(model) is { } drop)
            throw new ArgumentException($"conjugate-gradient fine-tuning needs a deterministic loss, but dropout '{drop.Name}' (p = {drop.P}) is in the model; use SGD, or p = 0.", nameof(model));
        // May throw: before the optimizer is built.
        _trainingForward = Options.ComputeDtype is not { } cd || cd == _dtype ? model.forward
            : cd == ScalarType.BFloat16 ? MixedPrecision.Forward(model, cd)
            : throw new ArgumentException($"ComputeDtype = {cd}: expected BFloat16 or the model's own dtype ({_dtype}).", nameof(options));
        _ownsOptimizer = optimizer is null;
        _optimizer = optimizer ?? Options.Optimizer switch
        {
            FineTuningOptimizer.ConjugateGradient => new ConjugateGradient(model.parameters(), Options.LineSearches, Options.LearningRate),
            _ => BuildSgd(model),
        };
        _managedOptimizer = _optimizer is TorchSharp.Modules.OptimizerHelper;
        if ((Options.MomentumRampEpochs > 0 || Options.DampenMomentum) && _optimizer is not TorchSharp.Modules.SGD)
        {
            if (_ownsOptimizer) _optimizer.Dispose();
            throw new ArgumentException($"MomentumRampEpochs and DampenMomentum need an SGD optimizer; got {_optimizer.GetType().Name}.", nameof(options));
        }
        _ownsGenerator = generator is null;
        _generator = generator ?? new Generator(Options.Seed, _device);
        _baseRates = _optimizer.ParamGroups.Select(g => g.LearningRate).ToArray();
    }

    /// <summary>Each parameter group's η₀ as the optimizer came, which the schedule multiplies by γ^epoch (read once, so a
    /// second <c>Fit</c> starts from η₀ again rather than from the rate the first one ended at).</summary>
    private readonly double[] _baseRates;

    /// <summary>The hyperparameters.</summary>
    public ClassifierTrainingOptions Options { get; }

    /// <summary>The training passes' forward: the model's, or its mixed-precision twin (<see cref="ClassifierTrainingOptions.ComputeDtype"/>).</summary>
    private readonly Func<Tensor, Tensor> _trainingForward;

    /// <summary>
    /// The number of logits K the model returns: one forward pass of the first row of <paramref name="x"/> in eval mode
    /// under no_grad (no randomness drawn; the training flag is restored).
    /// </summary>
    private long LogitCount(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        bool wasTraining = _model.training;
        _model.eval();
        try { return _model.forward(x.narrow(0, 0, 1)).shape[^1]; }
        finally { _model.train(wasTraining); }
    }

    /// <summary>
    /// Checks a data set once before training: finite inputs, and labels that index the model's K logits, 0 ≤ y &lt; K.
    /// Without this, NaN inputs surface as a diverged loss in epoch 1 and a bad label as libtorch's "Target out of bounds".
    /// </summary>
    private static void CheckInputs(Tensor x, Tensor y, long logits, string what)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var finite = x.isfinite();
        if (!finite.all().item<bool>())
            throw new ArgumentException($"{what} inputs: expected finite values, got NaN or infinity (at row {finite.logical_not().reshape(x.shape[0], -1).any(1).nonzero()[0, 0].ToInt64()}).");
        Checks.ClassRange(y, logits, $"{what} labels", $" (the model returns {logits} logits)");
    }

    /// <summary>The weights behind dropout (keep probability q &lt; 1) under <see cref="DropoutConvention.NonInverted"/>; empty otherwise.</summary>
    private readonly List<(TorchSharp.Modules.Parameter Weight, double Keep)> _keep;

    /// <summary>
    /// The default SGD: one parameter group (η₀, λ) under <see cref="DropoutConvention.Inverted"/>; under
    /// <see cref="DropoutConvention.NonInverted"/> one group per keep probability q of the weights behind dropout, with
    /// η₀ q² and λ / q² (the papers' parametrisation W′ = W / q, see <see cref="DropoutConvention"/>), and one group (η₀, λ)
    /// for the rest. The learning-rate schedule multiplies every group's own rate.
    /// </summary>
    private TorchSharp.Modules.SGD BuildSgd(nn.Module<Tensor, Tensor> model)
    {
        double m = MomentumAt(0), tau = Options.DampenMomentum ? m : 0;
        var behind = _keep.Select(k => k.Weight.Handle).ToHashSet();
        var groups = new List<TorchSharp.Modules.SGD.ParamGroup>();
        var rest = model.parameters().Where(p => !behind.Contains(p.Handle)).ToList();
        if (rest.Count > 0)
            groups.Add(new TorchSharp.Modules.SGD.ParamGroup(rest, Options.LearningRate, m, tau, Options.WeightDecay));
        foreach (var byKeep in _keep.GroupBy(k => k.Keep))
        {
            double q = byKeep.Key;
            groups.Add(new TorchSharp.Modules.SGD.ParamGroup(byKeep.Select(k => k.Weight).ToList(), Options.LearningRate * q * q, m, tau, Options.WeightDecay / (q * q)));
        }
        return optim.SGD(groups, Options.LearningRate, momentum: m, dampening: tau, weight_decay: Options.WeightDecay);
    }

    /// <summary>The drop probability p of a dropout module (TorchSharp's <c>Dropout</c> or <see cref="Modules.FastDropout"/>);
    /// null for any other module.</summary>
    private static double? DropoutRate(nn.Module module) => module switch
    {
        Modules.FastDropout f => f.p,
        TorchSharp.Modules.Dropout d => d.p,
        _ => null,
    };

    /// <summary>The first dropout module with p &gt; 0 anywhere in the model, or null.</summary>
    private static (string Name, double P)? ActiveDropout(nn.Module<Tensor, Tensor> model)
    {
        foreach (var (name, child) in model.named_modules())
            if (DropoutRate(child) is { } p && p > 0) return (name, p);
        return null;
    }

    /// <summary>
    /// For each <c>Linear</c> of a <c>Sequential</c> (nested ones flattened, children in forward order) its weight and the
    /// keep probability q = Π (1 − p) of the dropout modules (<c>nn.Dropout</c>, <see cref="Modules.FastDropout"/>) right
    /// before it (q = 1 when none).
    /// </summary>
    /// <exception cref="ArgumentException">The model is not a <c>Sequential</c>, or a dropout is followed by something
    /// other than a <c>Linear</c> (where the papers' learning-rate convention has no meaning).</exception>
    internal static List<(TorchSharp.Modules.Parameter Weight, double Keep)> DropoutKeepProbabilities(nn.Module<Tensor, Tensor> model)
    {
        if (model is not TorchSharp.Modules.Sequential sequential)
            throw new ArgumentException($"DropoutConvention.NonInverted needs a Sequential model (its children in forward order tell which Linear follows which dropout); got {model.GetType().Name}.", nameof(model));
        var result = new List<(TorchSharp.Modules.Parameter, double)>();
        double keep = 1;
        string? dropout = null;
        foreach (var (name, child) in SequentialLayers.Flatten(sequential))
        {
            if (DropoutRate(child) is { } p) { keep *= 1 - p; dropout = name; continue; }
            switch (child)
            {
                case TorchSharp.Modules.Linear linear:
                    result.Add((linear.weight!, keep));
                    (keep, dropout) = (1, null);
                    break;
                default:
                    if (dropout is not null)
                        throw new ArgumentException($"DropoutConvention.NonInverted: dropout '{dropout}' is followed by {child.GetType().Name} '{name}'; expected a Linear (the convention rescales the steps of the weights the dropped units feed).", nameof(model));
                    break;
            }
        }
        return result;
    }

    /// <summary>
    /// The momentum of epoch e (0-based): m_e = m₀ + (m − m₀)·min(e / R, 1) with R = <see cref="ClassifierTrainingOptions.MomentumRampEpochs"/>,
    /// m₀ = <see cref="ClassifierTrainingOptions.InitialMomentum"/> and m = <see cref="ClassifierTrainingOptions.Momentum"/>; m when R = 0.
    /// </summary>
    public double MomentumAt(int epoch)
    {
        int ramp = Options.MomentumRampEpochs;
        if (ramp == 0) return Options.Momentum;
        double m0 = Options.InitialMomentum ?? Options.Momentum;
        return m0 + (Options.Momentum - m0) * Math.Min((double)epoch / ramp, 1.0);
    }

    /// <summary>
    /// Sets epoch <paramref name="epoch"/>'s momentum m_e on every SGD parameter group (and dampening τ = m_e with
    /// <see cref="ClassifierTrainingOptions.DampenMomentum"/>, so v ← m_e v + (1 − m_e) g). Only when a ramp or dampening is asked
    /// for: otherwise a caller's SGD keeps its own momentum.
    /// </summary>
    private void SetMomentum(int epoch)
    {
        if (Options.MomentumRampEpochs == 0 && !Options.DampenMomentum) return;
        double m = MomentumAt(epoch);
        foreach (var g in _optimizer.ParamGroups.OfType<TorchSharp.Modules.SGD.ParamGroup>())
        {
            g.Options.momentum = m;
            g.Options.dampening = Options.DampenMomentum ? m : 0;
        }
    }

    /// <summary>The optimizer taking the steps.</summary>
    public optim.Optimizer Optimizer => _optimizer;
    /// <summary>
    /// Trains on (x, y). Validation: (<paramref name="validationX"/>, <paramref name="validationY"/>) when given, otherwise
    /// the last <see cref="ClassifierTrainingOptions.ValidationCount"/> rows of x are held out (and not trained on).
    /// </summary>
    /// <param name="x">Inputs (N, …).</param>
    /// <param name="y">Int64 class labels (N).</param>
    /// <param name="validationX">Optional validation inputs.</param>
    /// <param name="validationY">Their labels.</param>
    /// <param name="progress">Receives per-batch and per-epoch progress.</param>
    /// <param name="cancellationToken">Checked before every batch.</param>
    /// <exception cref="ArgumentException">Shapes do not match, a validation set given has no rows, the validation split
    /// leaves no training data, an input is NaN or infinite, or a label is not a class index of the model's output.</exception>
    /// <exception cref="TrainingDivergedException">The loss became NaN or infinite.</exception>
    /// <exception cref="IO.CheckpointException">The file at <see cref="ResumableTrainer.CheckpointPath"/> cannot be continued from: not a
    /// fine-tuning checkpoint, truncated or corrupt, or written by another run (the differences are named). Nothing in
    /// the model, the optimizer or the generators has changed then.</exception>
    /// <exception cref="NotSupportedException"><see cref="ResumableTrainer.CheckpointPath"/> is set and TorchSharp cannot save the optimizer's state.</exception>
    public ClassifierHistory Fit(Tensor x, Tensor y, Tensor? validationX = null, Tensor? validationY = null,
                                 IProgress<ClassifierProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (y.dim() != 1 || x.dim() < 1 || x.shape[0] != y.shape[0])
            throw new ArgumentException($"expected inputs (N, …) and labels (N), got ({string.Join(", ", x.shape)}) and ({string.Join(", ", y.shape)}).");
        if ((validationX is null) != (validationY is null))
            throw new ArgumentException("validationX and validationY must be given together.");
        if (validationX is not null && (validationX.dim() < 1 || validationX.shape[0] == 0 || validationY!.dim() != 1 || validationY.shape[0] != validationX.shape[0]))
            throw new ArgumentException($"validation set: expected inputs (M, …) and labels (M) with M ≥ 1, got ({string.Join(", ", validationX.shape)}) and ({string.Join(", ", validationY!.shape)}); pass none to skip validation.");
        long n = x.shape[0];
        long nVal = validationX is null ? Options.ValidationCount : 0;
        if (nVal >= n)
            throw new ArgumentException($"ValidationCount = {nVal} leaves no training data out of {n} examples; pass a validation set or lower ValidationCount.");
        long nTrain = n - nVal;

        Tensor trainX, trainY;
        Tensor? valX = null, valY = null;
        using (var setup = torch.NewDisposeScope())
        {
            trainX = x.narrow(0, 0, nTrain).to(_dtype, _device).MoveToOuterDisposeScope();
            trainY = y.narrow(0, 0, nTrain).to(ScalarType.Int64, _device).MoveToOuterDisposeScope();
            if (validationX is not null)
            {
                valX = validationX.to(_dtype, _device).MoveToOuterDisposeScope();
                valY = validationY!.to(ScalarType.Int64, _device).MoveToOuterDisposeScope();
            }
            else if (nVal > 0)
            {
                valX = x.narrow(0, nTrain, nVal).to(_dtype, _device).MoveToOuterDisposeScope();
                valY = y.narrow(0, nTrain, nVal).to(ScalarType.Int64, _device).MoveToOuterDisposeScope();
            }
        }
        using var trainXOwned = trainX;
        using var trainYOwned = trainY;
        using var valXOwned = valX;
        using var valYOwned = valY;

        long logits = LogitCount(trainX);
        CheckInputs(trainX, trainY, logits, "training");
        if (valX is not null) CheckInputs(valX, valY!, logits, "validation");
        var frozen = Options.HeadOnlyEpochs > 0 ? BodyParameters() : new List<TorchSharp.Modules.Parameter>();
        CheckCheckpointEvery();
        var optimizerState = CheckpointPath is null ? null : new OptimizerCheckpointState("optimizer", _optimizer);   // before an epoch is spent
        bool wasTraining = _model.training;
        using var early = new EarlyStopping(_model, Options.Patience, Options.RestoreBest);
        using var average = Options.AverageDecay > 0 ? new IterateAverage(_model, Options.AverageDecay, yieldsTo: early) : null;
        var rate = new ExponentialLearningRate(_optimizer, Options.LearningRateDecay, _baseRates);
        var loop = new TrainingLoop<ClassifierEpochMetrics>
        {
            Stage = Stage, Epochs = Options.Epochs, BatchSize = Options.BatchSize, Generator = _generator, Shuffle = Options.Shuffle,
            Checkpoint = CheckpointPath is null ? null : new CheckpointPolicy(CheckpointPath, "fine-tuning", Identity(nTrain), CheckpointEvery),
        };
        // Order matters where two act at the same point: max-norm before the average's update after each batch; early
        // stopping's best weights before the average at the end (the model keeps the one that was put back).
        loop.Callbacks.Add(new Schedule(this, frozen));
        loop.Callbacks.Add(rate);
        if (Options.MaxNorm > 0) loop.Callbacks.Add(new MaxNorm(_model, p => Options.MaxNorm * KeepOf(p)));
        loop.Callbacks.Add(early);
        if (average is not null) loop.Callbacks.Add(average);
        if (optimizerState is not null)
            loop.State.AddRange([new ModuleState("model", _model), optimizerState, new GeneratorState("generator", _generator), GeneratorState.Global()]);
        try
        {
            RestoredSeconds = 0;
            if (CheckpointPath is not null && File.Exists(CheckpointPath) && !RunCheckpoint.IsRunCheckpoint(CheckpointPath))
                RestoreEarlierFormat(CheckpointPath, nTrain, loop, early, average);
            var step = new EpochStep(this, trainX, trainY, valX, valY, early, average, rate);
            loop.Run(step, nTrain, _device, MappedProgress<LoopProgress<ClassifierEpochMetrics>, ClassifierProgress>.Of(progress,
                p => new ClassifierProgress(p.Stage, p.Epoch, p.Epochs, p.Batch, p.Batches, p.EpochMetrics)), cancellationToken);
        }
        finally
        {
            RestoredSeconds = loop.History.Take(loop.RestoredEpochs).Sum(m => m.Seconds);
            foreach (var p in frozen) p.requires_grad = true;
            _model.train(wasTraining);
        }
        return new ClassifierHistory(loop.History.ToList(), early.BestEpoch, early.BestError, loop.StoppedEarly, early.Restored);
    }

    /// <summary>
    /// The keep probability q of the dropout before a weight under <see cref="DropoutConvention.NonInverted"/> (1 otherwise):
    /// its max-norm bound is q c.
    /// </summary>
    private double KeepOf(TorchSharp.Modules.Parameter p)
    {
        foreach (var (w, q) in _keep) if (w.Handle == p.Handle) return q;
        return 1;
    }

    /// <summary>What a run continuing from a checkpoint must share with the run that wrote it: the hyperparameters but
    /// <see cref="ClassifierTrainingOptions.Epochs"/> and <see cref="ClassifierTrainingOptions.Patience"/>, the
    /// <see cref="ResumableTrainer.CheckpointTag"/>, the number of training examples and the device (the model's tensors are checked by
    /// shape when they are read).</summary>
    private Dictionary<string, string> Identity(long nTrain)
    {
        var id = FineTuningCheckpoint.Fingerprint(Options).ToDictionary(kv => "options." + kv.Key, kv => kv.Value);
        AddCheckpointTag(id);
        id["training_rows"] = nTrain.ToString(System.Globalization.CultureInfo.InvariantCulture);
        id["device"] = _device.ToString();
        return id;
    }

    /// <summary>
    /// Continues from a checkpoint in the format before the run checkpoint (<see cref="FineTuningCheckpoint"/>, TBMFT 2):
    /// the weights, optimizer, generators, best weights and averages go where the loop's components keep them, and the
    /// loop's and early stopping's records are set. The next checkpoint is written in the run-checkpoint format.
    /// </summary>
    private void RestoreEarlierFormat(string path, long nTrain, TrainingLoop<ClassifierEpochMetrics> loop, EarlyStopping early, IterateAverage? average)
    {
        var identity = new FineTuningCheckpoint.Identity(Options, CheckpointTag, nTrain, _device);
        var state = FineTuningCheckpoint.Load(path, _model, _optimizer, identity, _generator, names =>
        {
            var tensors = new List<Tensor>();
            foreach (var name in names)
            {
                if (name.StartsWith("best:", StringComparison.Ordinal) && early.BestBuffers().TryGetValue(name["best:".Length..], out var best))
                    tensors.Add(best);
                else if (name.StartsWith("average:", StringComparison.Ordinal) && average is not null
                         && int.TryParse(name["average:".Length..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int i)
                         && i < average.Averages.Count)
                    tensors.Add(average.Averages[i]);
                else throw new IO.CheckpointException($"'{path}': unexpected tensor '{name}' for these options.");
            }
            return tensors;
        });
        loop.RestoreRecord(state.Epochs, state.EpochsDone, state.Finished, state.StoppedEarly, state.Epochs.Sum(m => m.Seconds));
        early.SetRecord(state.BestEpoch, state.BestError, state.SinceBest, state.Restored);
    }

    /// <summary>The per-epoch settings: the output layer alone for the first <see cref="ClassifierTrainingOptions.HeadOnlyEpochs"/>
    /// epochs (the other parameters frozen), and the momentum ramp (<see cref="MomentumAt"/>).</summary>
    private sealed class Schedule(FineTuner tuner, List<TorchSharp.Modules.Parameter> frozen) : ITrainingCallback
    {
        public void OnEpochStart(TrainingLoop loop, int epoch)
        {
            bool headOnly = epoch < tuner.Options.HeadOnlyEpochs;
            foreach (var p in frozen) p.requires_grad = !headOnly;
            tuner.SetMomentum(epoch);
        }
    }

    /// <summary>The fine-tuner's part of the loop: the closure step on a batch, validation and the epoch's record.</summary>
    private sealed class EpochStep(FineTuner tuner, Tensor trainX, Tensor trainY, Tensor? valX, Tensor? valY,
                                   EarlyStopping early, IterateAverage? average, ExponentialLearningRate rate) : ITrainingStep<ClassifierEpochMetrics>
    {
        private Stopwatch _clock = new();
        private double _lossSum;

        public void BeginEpoch(int epoch)
        {
            _clock = Stopwatch.StartNew();
            tuner._model.train();
            _lossSum = 0;
        }

        public double TrainBatch(Batch batch)
        {
            var optimizer = tuner._optimizer;
            var xb = batch.Rows(trainX);
            var yb = batch.Rows(trainY);
            // One closure serves every optimizer: SGD-like ones call it once, line-search ones (L-BFGS,
            // ConjugateGradient) once per function evaluation. The loss reported is the first call's.
            double l = double.NaN;
            int calls = 0;
            ExceptionDispatchInfo? failure = null;
            Tensor BatchLoss()
            {
                optimizer.zero_grad();
                return nn.functional.cross_entropy(tuner._trainingForward(xb), yb);
            }
            Tensor Closure()
            {
                if (tuner._managedOptimizer)
                {
                    // Managed optimizers evaluate the closure before touching the weights, so an exception here
                    // leaves them as they were.
                    var loss = BatchLoss();
                    if (calls++ == 0)
                    {
                        l = loss.ToDouble();
                        if (!double.IsFinite(l)) throw batch.Diverged("the loss");
                    }
                    loss.backward();
                    return loss;
                }
                // Native optimizers (L-BFGS) call this from native code, which an exception must not cross: keep it
                // for after the step, and leave the gradients zero so that the optimizer stops (L-BFGS returns
                // without a step when the first gradient is zero).
                using var evaluation = torch.NewDisposeScope();
                try
                {
                    var loss = BatchLoss();
                    double v = loss.ToDouble();
                    if (calls++ == 0) l = v;
                    if (failure is null && double.IsFinite(l)) loss.backward();
                    return loss.detach().MoveToOuterDisposeScope();
                }
                catch (Exception e)
                {
                    failure ??= ExceptionDispatchInfo.Capture(e);
                    calls++;
                    optimizer.zero_grad();
                    return torch.tensor(double.NaN).MoveToOuterDisposeScope();
                }
            }
            optimizer.step(Closure)?.Dispose();
            failure?.Throw();
            if (!double.IsFinite(l)) throw batch.Diverged("the loss");
            _lossSum += l * batch.Size;
            return l;
        }

        public ClassifierEpochMetrics EndEpoch(EpochEnd end)
        {
            double? valError = null, valLoss = null, rawError = null;
            bool isBest = false;
            if (valX is not null)
            {
                // With iterate averaging the averaged weights are measured (and kept as the best) in place of θ; the
                // raw iterate θ is measured too, before the swap, for comparison.
                if (average is not null) rawError = tuner.ClassificationMetricsFor(valX, valY!).error;
                using var swapped = average?.Swap();
                var m = tuner.ClassificationMetricsFor(valX, valY!);
                (valError, valLoss) = (m.error, m.loss);
                isBest = early.Observe(end.Epoch, m.error);
            }
            _clock.Stop();
            var o = tuner.Options;
            return new ClassifierEpochMetrics(end.Epoch + 1, o.Epochs, _lossSum / trainX.shape[0], valError, valLoss, rate.Rate,
                                              _clock.Elapsed.TotalSeconds, isBest, rawError);
        }
    }

    /// <summary>
    /// The parameters outside the output layer: every trainable parameter except those of the last submodule that holds
    /// parameters directly (for a <see cref="Modules.DbnClassifier"/> Sequential, the final Linear).
    /// </summary>
    private List<TorchSharp.Modules.Parameter> BodyParameters()
    {
        var owners = _model.named_modules().Where(m => m.module.named_parameters(recurse: false).Any()).ToList();
        if (owners.Count < 2)
            throw new ArgumentException($"HeadOnlyEpochs = {Options.HeadOnlyEpochs} needs a model with an output layer below other layers; this model has {owners.Count} module(s) with parameters.");
        var head = owners[^1].module.parameters(recurse: false).Select(p => p.Handle).ToHashSet();
        return _model.parameters().Where(p => p.requires_grad && !head.Contains(p.Handle)).ToList();
    }

    /// <summary>Error rate, loss and confusion matrix of the model on (x, y), in eval mode, batched.</summary>
    public ClassificationMetrics Evaluate(Tensor x, Tensor y, int n_classes = 10)
        => ClassificationMetrics.Evaluate(_model, x, y, n_classes, Options.EvaluationBatchSize);

    private (double error, double loss) ClassificationMetricsFor(Tensor x, Tensor y)
    {
        _model.eval();
        try
        {
            using var _ = torch.no_grad();
            long n = x.shape[0], wrong = 0;
            double loss = 0;
            for (long s = 0; s < n; s += Options.EvaluationBatchSize)
            {
                using var scope = torch.NewDisposeScope();
                long b = Math.Min(Options.EvaluationBatchSize, n - s);
                var z = _model.forward(x.narrow(0, s, b));
                var yb = y.narrow(0, s, b);
                loss += nn.functional.cross_entropy(z, yb, reduction: nn.Reduction.Sum).ToDouble();
                wrong += z.argmax(1).ne(yb).sum().ToInt64();
            }
            return ((double)wrong / n, loss / n);
        }
        finally { _model.train(); }
    }

    /// <summary>Releases the optimizer and generator the fine-tuner created.</summary>
    public void Dispose()
    {
        if (_ownsOptimizer) _optimizer.Dispose();
        if (_ownsGenerator) _generator.Dispose();
    }
}

using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// One mini-batch of an epoch: rows <c>[Start, Start + Size)</c> of the epoch's order of the training examples.
/// </summary>
/// <param name="Epoch">Zero-based epoch.</param>
/// <param name="Index">Zero-based batch within the epoch.</param>
/// <param name="Count">Batches per epoch.</param>
/// <param name="Start">First position in the epoch's order.</param>
/// <param name="Size">Rows in this batch.</param>
/// <param name="Order">The epoch's permutation of the examples (null: in stored order).</param>
public readonly record struct Batch(int Epoch, int Index, int Count, long Start, long Size, Tensor? Order)
{
    /// <summary>The batch's rows of <paramref name="data"/> (N × …): <c>data[order[Start : Start + Size]]</c>, or a narrow view without shuffling.</summary>
    public Tensor Rows(Tensor data)
    {
        if (Order is null) return data.narrow(0, Start, Size);
        using var index = Order.narrow(0, Start, Size);
        return data.index_select(0, index);
    }

    /// <summary>The exception that stops the run here, naming the one-based epoch and batch and what became NaN or infinite.</summary>
    public TrainingDivergedException Diverged(string what) => new(Epoch + 1, Index + 1, what);
}

/// <summary>The end of an epoch, as the <see cref="ITrainingStep{TMetrics}"/> sees it.</summary>
/// <param name="Epoch">Zero-based epoch.</param>
/// <param name="Batches">Batches run in it.</param>
/// <param name="Seconds">Wall time of its batches (the updates, without end-of-epoch measurements).</param>
public readonly record struct EpochEnd(int Epoch, int Batches, double Seconds)
{
    /// <summary>The exception that stops the run after this epoch's last batch, naming what became NaN or infinite.</summary>
    public TrainingDivergedException Diverged(string what) => new(Epoch + 1, Batches, what);

    /// <summary>
    /// Whether a trainer that measures every <paramref name="every"/> epochs (0: never) measures this one: every
    /// <paramref name="every"/>-th epoch, and always the last of <paramref name="epochs"/>.
    /// </summary>
    public bool Measures(int every, int epochs) => every > 0 && ((Epoch + 1) % every == 0 || Epoch == epochs - 1);
}

/// <summary>
/// What a trainer supplies to the <see cref="TrainingLoop{TMetrics}"/>: the update on one mini-batch and the measurements
/// at the end of an epoch. Everything else (epochs, batches, shuffling, dispose scopes, progress, cancellation,
/// divergence, callbacks, checkpoints) is the loop's.
/// </summary>
/// <typeparam name="TMetrics">The record of one epoch.</typeparam>
public interface ITrainingStep<TMetrics> where TMetrics : class
{
    /// <summary>Called before the epoch's first batch (after the callbacks' <see cref="ITrainingCallback.OnEpochStart"/>).</summary>
    void BeginEpoch(int epoch) { }

    /// <summary>
    /// One update on <paramref name="batch"/>, inside the batch's dispose scope. Returns the batch's mean loss (or NaN
    /// when the trainer measures none); throws <see cref="Batch.Diverged"/> when something became NaN or infinite.
    /// </summary>
    double TrainBatch(Batch batch);

    /// <summary>The epoch's record, after its last batch (measurements, validation). May throw <see cref="EpochEnd.Diverged"/>.</summary>
    TMetrics EndEpoch(EpochEnd end);
}

/// <summary>
/// A component that acts at fixed points of the <see cref="TrainingLoop{TMetrics}"/>: schedules (learning rate,
/// momentum, frozen layers) at the start of an epoch, constraints (max-norm) and averages after each batch, early
/// stopping and best weights at the end of an epoch. A callback that owns state implements <see cref="IStateful"/> too
/// and is then saved in the run's checkpoints.
/// </summary>
/// <remarks>Callbacks run in the order they were added; every method has an empty default.</remarks>
public interface ITrainingCallback
{
    /// <summary>Before the first epoch of this call (after a checkpoint was restored).</summary>
    void OnFitStart(TrainingLoop loop) { }
    /// <summary>At the start of epoch <paramref name="epoch"/> (zero-based), before it is shuffled.</summary>
    void OnEpochStart(TrainingLoop loop, int epoch) { }
    /// <summary>After the update on <paramref name="batch"/>, inside its dispose scope.</summary>
    void OnBatchEnd(TrainingLoop loop, Batch batch) { }
    /// <summary>After epoch <paramref name="epoch"/>'s record <paramref name="metrics"/> is in the history, before the checkpoint; may set <see cref="TrainingLoop.StopRequested"/>.</summary>
    void OnEpochEnd(TrainingLoop loop, int epoch, object metrics) { }
    /// <summary>After the last epoch (or an early stop), before the final checkpoint.</summary>
    void OnFitEnd(TrainingLoop loop) { }
}

/// <summary>Progress of a <see cref="TrainingLoop{TMetrics}"/>: after every batch, and with <paramref name="EpochMetrics"/> at the end of each epoch.</summary>
/// <param name="Stage">What is being trained.</param>
/// <param name="Epoch">One-based epoch.</param>
/// <param name="Epochs">Maximum epochs.</param>
/// <param name="Batch">Batches done in this epoch.</param>
/// <param name="Batches">Batches per epoch.</param>
/// <param name="EpochMetrics">The epoch's record, once it has ended.</param>
public sealed record LoopProgress<TMetrics>(string Stage, int Epoch, int Epochs, int Batch, int Batches, TMetrics? EpochMetrics) where TMetrics : class;

/// <summary>Example orders for <see cref="TrainingLoop{TMetrics}.Arrange"/>.</summary>
public static class BalancedOrder
{
    /// <summary>
    /// Class-balanced batches from a random permutation p of N examples with labels y ∈ {0 … C − 1}: each example's
    /// rank r among the examples of its class in p, then the order of the keys r·C + y (stable), so that every run of C
    /// consecutive examples holds one of each class while every class has examples left (the classes with more examples
    /// fill the end). Batches of C (or a multiple) are then balanced, as the up-down paper's mini-batches of ten digits,
    /// one of each class, were. Nothing random is drawn: the order is a function of p and y.
    /// </summary>
    /// <param name="labels">y, int64 (N), on the permutation's device.</param>
    /// <param name="classes">C.</param>
    public static Func<Tensor, Tensor> ByClass(Tensor labels, int classes)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (classes < 1) throw new ArgumentOutOfRangeException(nameof(classes), classes, "classes: expected at least 1.");
        return p =>
        {
            using var scope = torch.NewDisposeScope();
            var y = labels.index_select(0, p);                                             // labels in the drawn order
            var (sorted, byClass) = y.sort(stable: true);                                   // by class, drawn order kept within a class
            var counts = torch.bincount(y, minlength: classes);
            var starts = counts.cumsum(0).sub(counts);                                      // first position of each class in the sort
            var rank = torch.arange(y.shape[0], device: y.device).sub(starts.index_select(0, sorted));   // r within its class
            var key = torch.empty_like(y).index_put_(rank.mul(classes).add(sorted), byClass);             // key of each drawn position
            var (_, arranged) = key.sort(stable: true);
            return p.index_select(0, arranged).MoveToOuterDisposeScope();
        };
    }
}

/// <summary>Where a run checkpoints: a <see cref="RunCheckpoint"/> file, written every <see cref="Every"/> epochs, after an early stop and when the run ends.</summary>
/// <param name="Path">The file; a run that finds it continues from it.</param>
/// <param name="Kind">The kind of run ("rbm", "fine-tuning", …).</param>
/// <param name="Identity">What a continuing run must share with the one that wrote it (hyperparameters, data size, device, …).</param>
/// <param name="Every">Epochs between checkpoints (≥ 1).</param>
public sealed record CheckpointPolicy(string Path, string Kind, IReadOnlyDictionary<string, string> Identity, int Every = 1);

/// <summary>The state every <see cref="TrainingLoop{TMetrics}"/> shares with its callbacks, whatever its metrics type.</summary>
public abstract class TrainingLoop
{
    /// <summary>Label of the progress reports.</summary>
    public string Stage { get; init; } = "train";
    /// <summary>Maximum epochs.</summary>
    public required int Epochs { get; init; }
    /// <summary>Epochs completed (restored ones included).</summary>
    public int EpochsDone { get; protected set; }
    /// <summary>Set by a callback (early stopping) to end the run after the current epoch.</summary>
    public bool StopRequested { get; set; }
    /// <summary>Whether the run ended before <see cref="Epochs"/> because a callback asked it to.</summary>
    public bool StoppedEarly { get; protected set; }
    /// <summary>Wall time recorded for the epochs restored from a checkpoint (0 for a fresh run).</summary>
    public double RestoredSeconds { get; protected set; }
    /// <summary>Epochs restored from a checkpoint (0 for a fresh run).</summary>
    public int RestoredEpochs { get; protected set; }
}

/// <summary>
/// The training loop the library's trainers share (<see cref="RbmTrainer"/>, hence <see cref="GreedyPretrainer"/>;
/// <see cref="FineTuner"/>): epochs of shuffled mini-batches, one dispose scope per batch, a seeded generator, progress
/// through <see cref="IProgress{T}"/>, cancellation before every batch, a divergence stop naming epoch and batch,
/// <see cref="ITrainingCallback"/> components, and checkpoints (<see cref="RunCheckpoint"/>) from which a later run
/// continues bit for bit.
/// </summary>
/// <remarks>
/// <para>A trainer implements <see cref="ITrainingStep{TMetrics}"/> (one batch's update, one epoch's record), lists what
/// a checkpoint must hold in <see cref="State"/> (<see cref="ModuleState"/>, <see cref="OptimizerCheckpointState"/>,
/// <see cref="GeneratorState"/>, its own <see cref="IStateful"/> pieces) and its components in <see cref="Callbacks"/>,
/// then calls <see cref="Run"/>. Per epoch e: callbacks' <c>OnEpochStart</c>; the step's <c>BeginEpoch</c>; a permutation
/// of the N examples from <see cref="Generator"/> (<c>randperm</c>, when shuffling); for every batch, in its own dispose
/// scope, the step's <c>TrainBatch</c> and the callbacks' <c>OnBatchEnd</c>, then progress; the step's <c>EndEpoch</c>;
/// the record into <see cref="History"/>; callbacks' <c>OnEpochEnd</c>; a checkpoint every <see cref="CheckpointPolicy.Every"/>
/// epochs (and on an early stop); progress with the record. After the last epoch: callbacks' <c>OnFitEnd</c> and a final
/// checkpoint marked finished, from which a later <see cref="Run"/> returns the history without training.</para>
/// <para>The checkpoint holds the loop's own section ("loop": epochs done, finished, stopped early, seconds, history),
/// then <see cref="State"/>, then every callback that is <see cref="IStateful"/>.</para>
/// </remarks>
/// <typeparam name="TMetrics">The record of one epoch (serialisable with System.Text.Json).</typeparam>
public sealed class TrainingLoop<TMetrics> : TrainingLoop, IStateful where TMetrics : class
{
    private static readonly JsonSerializerOptions Json = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };
    private readonly List<TMetrics> _history = new();
    private double _seconds;
    private bool _finished;
    private bool _recordRestored;

    /// <summary>Examples per mini-batch (the last batch may be smaller).</summary>
    public required int BatchSize { get; init; }
    /// <summary>Draws each epoch's permutation; a checkpoint saves its state.</summary>
    public required Generator Generator { get; init; }
    /// <summary>Shuffle the examples every epoch.</summary>
    public bool Shuffle { get; init; } = true;
    /// <summary>
    /// Rearranges each epoch's random permutation before its batches are cut from it (e.g. <see cref="BalancedOrder"/>);
    /// null: the permutation as drawn. It must return a permutation of the same N examples and draw nothing random, so
    /// that a continued run orders its epochs as an unbroken one.
    /// </summary>
    public Func<Tensor, Tensor>? Arrange { get; init; }
    /// <summary>Where and how often to checkpoint (null: never).</summary>
    public CheckpointPolicy? Checkpoint { get; init; }
    /// <summary>The trainer's state a checkpoint holds besides the loop's own and the callbacks'.</summary>
    public List<IStateful> State { get; } = new();
    /// <summary>The components, called in order.</summary>
    public List<ITrainingCallback> Callbacks { get; } = new();
    /// <summary>The records of the epochs done, restored ones first.</summary>
    public IReadOnlyList<TMetrics> History => _history;

    /// <summary>Everything a checkpoint holds, in file order.</summary>
    private List<IStateful> Components => [this, .. State, .. Callbacks.OfType<IStateful>()];

    /// <summary>
    /// Trains on <paramref name="count"/> examples (continuing from <see cref="Checkpoint"/>'s file when it exists) and
    /// returns the history.
    /// </summary>
    /// <param name="step">The trainer's update and epoch record.</param>
    /// <param name="count">Training examples N (rows of the data the step gathers from).</param>
    /// <param name="device">Where the permutation is drawn (the data's device).</param>
    /// <param name="progress">Receives per-batch and per-epoch progress.</param>
    /// <param name="cancellationToken">Checked before every batch; the model keeps the completed batches' updates.</param>
    /// <exception cref="TrainingDivergedException">The step found NaN or infinity.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="IO.CheckpointException">The checkpoint cannot be continued from (nothing has changed then).</exception>
    public IReadOnlyList<TMetrics> Run(ITrainingStep<TMetrics> step, long count, Device device, IProgress<LoopProgress<TMetrics>>? progress = null,
                                        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(step);
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "expected at least one training example.");
        if (Checkpoint is { Every: < 1 }) throw new ArgumentOutOfRangeException(nameof(Checkpoint), Checkpoint.Every, "CheckpointPolicy.Every must be ≥ 1.");
        var names = Components.Select(c => c.StateName).ToList();
        if (names.Distinct().Count() != names.Count) throw new InvalidOperationException($"state components with the same name: {string.Join(", ", names)}.");
        // A file the trainer has already read (an earlier format, RestoreRecord) is not read again; any other file must
        // be a run checkpoint of this run, or is refused.
        if (Checkpoint is not null && !_recordRestored && File.Exists(Checkpoint.Path))
            RunCheckpoint.Restore(Checkpoint.Path, Checkpoint.Kind, Checkpoint.Identity, Components);
        if (_finished) return History;
        StopRequested = false;

        int batches = (int)((count + BatchSize - 1) / BatchSize);
        foreach (var c in Callbacks) c.OnFitStart(this);
        for (int epoch = StoppedEarly ? Epochs : EpochsDone; epoch < Epochs; epoch++)
        {
            var clock = Stopwatch.StartNew();
            foreach (var c in Callbacks) c.OnEpochStart(this, epoch);
            step.BeginEpoch(epoch);
            var batchClock = Stopwatch.StartNew();
            using (var drawn = Shuffle ? torch.randperm(count, generator: Generator, device: device) : null)
            using (var order = drawn is not null && Arrange is not null ? Arrange(drawn) : drawn?.alias())
            {
                for (int b = 0; b < batches; b++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    using (var scope = torch.NewDisposeScope())
                    {
                        long start = (long)b * BatchSize;
                        var batch = new Batch(epoch, b, batches, start, Math.Min(BatchSize, count - start), order);
                        step.TrainBatch(batch);
                        foreach (var c in Callbacks) c.OnBatchEnd(this, batch);
                    }
                    NativeAllocator.ReleaseIfGrown();   // glibc fragmentation, see NativeAllocator
                    progress?.Report(new LoopProgress<TMetrics>(Stage, epoch + 1, Epochs, b + 1, batches, null));
                }
            }
            batchClock.Stop();
            var metrics = step.EndEpoch(new EpochEnd(epoch, batches, batchClock.Elapsed.TotalSeconds));
            _history.Add(metrics);
            EpochsDone = epoch + 1;
            foreach (var c in Callbacks) c.OnEpochEnd(this, epoch, metrics);
            StoppedEarly = StopRequested && epoch < Epochs - 1;
            _seconds += clock.Elapsed.TotalSeconds;
            if (Checkpoint is not null && (EpochsDone % Checkpoint.Every == 0 || StoppedEarly)) Save();
            progress?.Report(new LoopProgress<TMetrics>(Stage, epoch + 1, Epochs, batches, batches, metrics));
            if (StoppedEarly) break;
        }
        foreach (var c in Callbacks) c.OnFitEnd(this);
        _finished = true;
        if (Checkpoint is not null) Save();
        return History;
    }

    /// <summary>Writes the checkpoint now (the loop does so on its schedule).</summary>
    private void Save() => RunCheckpoint.Save(Checkpoint!.Path, Checkpoint.Kind, Checkpoint.Identity, Components);

    /// <summary>Sets the loop's record from a checkpoint of an earlier format (the fine-tuner's reader of its old files).</summary>
    internal void RestoreRecord(IEnumerable<TMetrics> history, int epochsDone, bool finished, bool stoppedEarly, double seconds)
    {
        _history.Clear();
        _history.AddRange(history);
        (EpochsDone, _finished, StoppedEarly, _seconds, RestoredSeconds, RestoredEpochs) = (epochsDone, finished, stoppedEarly, seconds, seconds, epochsDone);
        _recordRestored = true;
    }

    string IStateful.StateName => "loop";

    void IStateful.SaveState(StateSection section)
    {
        section.Values["epochs_done"] = EpochsDone;
        section.Values["epochs"] = Epochs;   // the run's planned epochs, for readers of a run in flight (RunCheckpoint.LoadModel); not checked on resume
        section.Values["finished"] = _finished;
        section.Values["stopped_early"] = StoppedEarly;
        section.Values["seconds"] = _seconds;
        section.Values["history"] = JsonSerializer.SerializeToNode(_history, Json);
    }

    Action IStateful.PrepareLoad(StateSection section)
    {
        int done = section.Value<int>("epochs_done");
        bool finished = section.Value<bool>("finished"), stopped = section.Value<bool>("stopped_early");
        double seconds = section.Value<double>("seconds");
        if (done < 0) throw section.Refuse($"{done} epochs done");
        List<TMetrics>? history;
        try { history = section.Values["history"].Deserialize<List<TMetrics>>(Json); }
        catch (JsonException e) { throw section.Refuse($"the history is unreadable ({e.Message})"); }
        if (history is null || history.Any(h => h is null) || history.Count != done)
            throw section.Refuse($"expected the records of {done} epochs, found {history?.Count(h => h is not null) ?? 0}");
        return () =>
        {
            RestoreRecord(history, done, finished, stopped, seconds);
            _recordRestored = false;   // read from this run's checkpoint, not from an earlier format
        };
    }
}

namespace TorchBoltzmann.Training;

/// <summary>
/// What the library's trainers (<see cref="RbmTrainer"/>, <see cref="DbmTrainer"/>, <see cref="BoltzmannTrainer"/>,
/// <see cref="UpDownTrainer"/>, <see cref="FineTuner"/>) share about their runs: the label of its progress reports and its run checkpoint
/// (<see cref="RunCheckpoint"/>, through the shared <see cref="TrainingLoop{TMetrics}"/>), which lets a stopped <c>Fit</c>
/// continue: where it is written, how often, what else a continuing run must share with the one that wrote it, and the
/// wall time it restored. Each trainer's remarks say what its checkpoint holds and which differences it refuses. Only
/// the library derives from it.
/// </summary>
public abstract class ResumableTrainer
{
    /// <summary>Sets the default label of the progress reports.</summary>
    /// <param name="stage">The label, e.g. "RBM".</param>
    private protected ResumableTrainer(string stage) => Stage = stage;

    /// <summary>Label of the progress reports (<see cref="LoopProgress{TMetrics}.Stage"/>, <see cref="TrainingProgress.Stage"/>, <see cref="ClassifierProgress.Stage"/>).</summary>
    public string Stage { get; init; }

    /// <summary>
    /// When set, <c>Fit</c> writes a run checkpoint here (atomically) every <see cref="CheckpointEvery"/> epochs and at the
    /// end, and a <c>Fit</c> that finds the file continues from it; the trainer's remarks say what it holds. A checkpoint
    /// of another run (model, hyperparameters, <see cref="CheckpointTag"/>, data size or device) is refused with the
    /// differences named, leaving the trainer untouched.
    /// </summary>
    public string? CheckpointPath { get; init; }

    /// <summary>Epochs between checkpoints when <see cref="CheckpointPath"/> is set (default 1: after every epoch; ≥ 1).</summary>
    public int CheckpointEvery { get; init; } = 1;

    /// <summary>
    /// What else a continuing run must share with the one that wrote the checkpoint (e.g. the data's origin), compared as
    /// strings; a checkpoint with another tag is refused, naming the entries that differ.
    /// </summary>
    public IReadOnlyDictionary<string, string>? CheckpointTag { get; init; }

    /// <summary>
    /// Wall time, in seconds, recorded for the epochs the last <c>Fit</c> restored from <see cref="CheckpointPath"/> (0 when
    /// it started afresh): add it to the time <c>Fit</c> itself took for the whole run's time.
    /// </summary>
    public double RestoredSeconds { get; private protected set; }

    /// <summary>Throws when <see cref="CheckpointEvery"/> is below 1; called before a <c>Fit</c> spends an epoch.</summary>
    /// <exception cref="ArgumentOutOfRangeException">CheckpointEvery &lt; 1.</exception>
    private protected void CheckCheckpointEvery()
    {
        if (CheckpointEvery < 1) throw new ArgumentOutOfRangeException(nameof(CheckpointEvery), CheckpointEvery, "CheckpointEvery must be ≥ 1.");
    }

    /// <summary>Adds <see cref="CheckpointTag"/>'s entries to a checkpoint identity, each key prefixed with "tag.".</summary>
    /// <param name="identity">The identity the trainer has built from its model, options and data.</param>
    private protected void AddCheckpointTag(IDictionary<string, string> identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        foreach (var (k, v) in CheckpointTag ?? new Dictionary<string, string>()) identity["tag." + k] = v;
    }
}

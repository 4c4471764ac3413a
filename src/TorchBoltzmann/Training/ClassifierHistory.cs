namespace TorchBoltzmann.Training;

/// <summary>The result of a fine-tuning run.</summary>
/// <param name="Epochs">Metrics of every epoch run.</param>
/// <param name="BestEpoch">One-based epoch with the lowest validation error (0 without validation).</param>
/// <param name="BestValidationError">That error (null without validation).</param>
/// <param name="StoppedEarly">Whether early stopping ended the run before the maximum number of epochs.</param>
/// <param name="RestoredBest">Whether the best epoch's weights were restored into the model.</param>
public sealed record ClassifierHistory(
    IReadOnlyList<ClassifierEpochMetrics> Epochs, int BestEpoch, double? BestValidationError, bool StoppedEarly, bool RestoredBest);

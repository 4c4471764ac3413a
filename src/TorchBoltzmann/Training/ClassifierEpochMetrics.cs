namespace TorchBoltzmann.Training;

/// <summary>What one epoch of fine-tuning measured.</summary>
/// <param name="Epoch">One-based epoch.</param>
/// <param name="Epochs">Maximum epochs of the run.</param>
/// <param name="TrainLoss">Mean cross-entropy −log softmax(z)_y over the epoch's mini-batches (with dropout active).</param>
/// <param name="ValidationError">Fraction of misclassified validation examples (null without validation).</param>
/// <param name="ValidationLoss">Mean validation cross-entropy (null without validation).</param>
/// <param name="LearningRate">Learning rate used in this epoch.</param>
/// <param name="Seconds">Wall time of the epoch, evaluation included.</param>
/// <param name="IsBest">Whether this epoch has the lowest validation error so far.</param>
/// <param name="RawValidationError">
/// With iterate averaging (<see cref="ClassifierTrainingOptions.AverageDecay"/>), where <paramref name="ValidationError"/>
/// measures the averaged weights θ̄: the raw iterate θ's validation error at the same epoch, so one run shows what the
/// averaging buys. Null without averaging or without validation.
/// </param>
public sealed record ClassifierEpochMetrics(
    int Epoch, int Epochs, double TrainLoss, double? ValidationError, double? ValidationLoss, double LearningRate,
    double Seconds, bool IsBest, double? RawValidationError = null);

namespace TorchBoltzmann.Training;

/// <summary>Progress of fine-tuning, reported after every mini-batch and, with <see cref="EpochMetrics"/>, after each epoch.</summary>
/// <param name="Stage">What is being trained (default "fine-tune").</param>
/// <param name="Epoch">One-based epoch.</param>
/// <param name="Epochs">Maximum epochs.</param>
/// <param name="Batch">Batches done in this epoch.</param>
/// <param name="Batches">Batches per epoch.</param>
/// <param name="EpochMetrics">Set once per epoch, when the epoch has ended.</param>
public sealed record ClassifierProgress(string Stage, int Epoch, int Epochs, int Batch, int Batches, ClassifierEpochMetrics? EpochMetrics);

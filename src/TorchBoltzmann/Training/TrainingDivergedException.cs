namespace TorchBoltzmann.Training;

/// <summary>Training stopped because the loss, gradients or weights became NaN or infinite.</summary>
public sealed class TrainingDivergedException : Exception
{
    /// <summary>Creates the exception for a one-based epoch and batch.</summary>
    public TrainingDivergedException(int epoch, int batch, string what)
        : base($"Training diverged at epoch {epoch}, batch {batch}: {what} became NaN or infinite. " +
               "Lower the learning rate, check the input data, or raise the weight decay.")
    {
        Epoch = epoch;
        Batch = batch;
    }

    /// <summary>One-based epoch in which divergence was detected.</summary>
    public int Epoch { get; }
    /// <summary>One-based batch in which divergence was detected.</summary>
    public int Batch { get; }
}

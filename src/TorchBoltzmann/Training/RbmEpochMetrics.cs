namespace TorchBoltzmann.Training;

/// <summary>What one epoch of RBM training measured. Metric fields are null in epochs without metrics.</summary>
/// <param name="Epoch">One-based epoch number.</param>
/// <param name="Epochs">Total epochs of the run.</param>
/// <param name="TrainSeconds">Wall time of the epoch's parameter updates (excluding metrics).</param>
/// <param name="Momentum">Momentum used in this epoch (null when the optimizer has none).</param>
/// <param name="ReconstructionError">Mean squared mean-field reconstruction error per training example (subset).</param>
/// <param name="ValidationReconstructionError">The same on held-out data.</param>
/// <param name="PseudoLogLikelihood">Stochastic pseudo-log-likelihood per training example (subset).</param>
/// <param name="FreeEnergyTrain">Mean free energy of training examples (subset).</param>
/// <param name="FreeEnergyValidation">Mean free energy of held-out examples.</param>
public sealed record RbmEpochMetrics(
    int Epoch, int Epochs, double TrainSeconds, double? Momentum,
    double? ReconstructionError, double? ValidationReconstructionError, double? PseudoLogLikelihood,
    double? FreeEnergyTrain, double? FreeEnergyValidation)
{
    /// <summary>
    /// Mean F(held-out) − mean F(train): grows when the model overfits (Hinton 2010, §6), since the ratio of the two
    /// likelihoods is e^{gap} and Z cancels.
    /// </summary>
    public double? FreeEnergyGap => FreeEnergyValidation - FreeEnergyTrain;

    /// <summary>The first parameter group's learning rate in this epoch (η₀ γ^e under <see cref="RbmTrainingOptions.LearningRateDecay"/>).</summary>
    public double? LearningRate { get; init; }

    /// <summary>
    /// Parallel tempering: the fraction of swap proposals accepted in this epoch per neighbour pair (β_m, β_{m+1}),
    /// m = 0 … M − 2, NaN for a pair not proposed; null without tempering.
    /// </summary>
    public IReadOnlyList<double>? SwapAcceptance { get; init; }

    /// <summary>
    /// The lowest of <see cref="SwapAcceptance"/>: the bottleneck of the ladder, through which a state must pass to travel
    /// from the hottest replica to β = 1 (near 0: add temperatures there or move them closer).
    /// </summary>
    public double? LowestSwapAcceptance => SwapAcceptance?.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Min();
}

/// <summary>Progress of a training run, reported after every mini-batch and, with <see cref="EpochMetrics"/>, at the end of each epoch.</summary>
/// <param name="Stage">What is being trained (e.g. "RBM" or "layer 2/3").</param>
/// <param name="Epoch">One-based epoch.</param>
/// <param name="Epochs">Total epochs.</param>
/// <param name="Batch">Batches done in this epoch.</param>
/// <param name="Batches">Batches per epoch.</param>
/// <param name="EpochMetrics">Set once per epoch, when the epoch has ended.</param>
public sealed record TrainingProgress(string Stage, int Epoch, int Epochs, int Batch, int Batches, RbmEpochMetrics? EpochMetrics);

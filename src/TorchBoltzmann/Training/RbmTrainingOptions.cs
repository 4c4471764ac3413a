namespace TorchBoltzmann.Training;

/// <summary>How the trainer obtains the parameter gradients.</summary>
public enum GradientMode
{
    /// <summary>
    /// Computes the CD statistics directly and writes them into each parameter's <c>.grad</c>
    /// (∂L/∂W = −(⟨p(h|v)vᵀ⟩_data − ⟨p(h|v)vᵀ⟩_model)/B etc.): close to the cost of the matrix products. Default; unit
    /// types without a linear bias term fall back to autograd.
    /// </summary>
    Direct,
    /// <summary>Backpropagates the surrogate loss <see cref="Modules.RBM.cd_loss"/>; same gradient, ~3× slower.</summary>
    Autograd,
}

/// <summary>
/// Hyperparameters of RBM training by CD-k or PCD. Defaults follow Hinton's practical guide (2010): learning rate 0.1,
/// momentum 0.5 for five epochs then 0.9, L2 weight decay 2·10⁻⁴ on the weights (not the biases), CD-1, batch 100.
/// </summary>
public sealed record RbmTrainingOptions
{
    /// <summary>Passes over the training data.</summary>
    public int Epochs { get; init; } = 10;
    /// <summary>Examples per mini-batch.</summary>
    public int BatchSize { get; init; } = 100;
    /// <summary>Learning rate of the default SGD optimizer.</summary>
    public double LearningRate { get; init; } = 0.1;
    /// <summary>Gibbs steps per negative sample (CD-k / PCD-k).</summary>
    public int K { get; init; } = 1;
    /// <summary>Persistent contrastive divergence (Tieleman 2008): negative chains carry over between batches.</summary>
    public bool Persistent { get; init; }
    /// <summary>Momentum during the first <see cref="MomentumSwitchEpoch"/> epochs (applied to any optimizer implementing IMomentum).</summary>
    public double InitialMomentum { get; init; } = 0.5;
    /// <summary>Momentum from epoch <see cref="MomentumSwitchEpoch"/> on.</summary>
    public double FinalMomentum { get; init; } = 0.9;
    /// <summary>Zero-based epoch at which momentum switches from initial to final.</summary>
    public int MomentumSwitchEpoch { get; init; } = 5;
    /// <summary>L2 weight-decay coefficient λ added to the weight gradient (λW); biases are not decayed.</summary>
    public double WeightDecay { get; init; } = 2e-4;
    /// <summary>Whether the last negative-phase visible layer of CD is sampled (true) or its probabilities used (false, less noise). PCD chains always hold samples.</summary>
    public bool SampleVisible { get; init; }
    /// <summary>How gradients are computed.</summary>
    public GradientMode Gradient { get; init; } = GradientMode.Direct;
    /// <summary>Shuffle the training examples every epoch.</summary>
    public bool Shuffle { get; init; } = true;
    /// <summary>Compute epoch metrics every this many epochs (and always after the last); 0 turns them off.</summary>
    public int MetricsEvery { get; init; } = 1;
    /// <summary>How many training (and validation) examples the epoch metrics use.</summary>
    public int MetricsSamples { get; init; } = 1000;
    /// <summary>Seed of the trainer's generator when none is passed to the trainer.</summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a value outside its range, naming it.</summary>
    public void Validate()
    {
        OptionRules.Sgd(Epochs, BatchSize, LearningRate);
        OptionRules.AtLeastOne(K, nameof(K));
        OptionRules.FractionBelowOne(InitialMomentum, nameof(InitialMomentum));
        OptionRules.FractionBelowOne(FinalMomentum, nameof(FinalMomentum));
        OptionRules.NonNegative(MomentumSwitchEpoch, nameof(MomentumSwitchEpoch));
        OptionRules.NonNegativeFinite(WeightDecay, nameof(WeightDecay));
        OptionRules.NonNegative(MetricsEvery, nameof(MetricsEvery));
        OptionRules.AtLeastOne(MetricsSamples, nameof(MetricsSamples));
    }
}

using static TorchSharp.torch;
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
    /// <summary>Learning rate η₀ of the default SGD optimizer (the rate of epoch e, zero-based, is η₀ γ^e with γ = <see cref="LearningRateDecay"/>).</summary>
    public double LearningRate { get; init; } = 0.1;
    /// <summary>
    /// γ, the learning rate's factor per epoch: epoch e (zero-based) runs at η₀ γ^e on every parameter group of the
    /// optimizer (<see cref="ExponentialLearningRate"/>); 1 keeps the rate constant. PCD needs a rate that falls toward the
    /// end of training for its persistent chains to follow the model (Tieleman 2008).
    /// </summary>
    public double LearningRateDecay { get; init; } = 1.0;
    /// <summary>Gibbs steps per negative sample (CD-k / PCD-k).</summary>
    public int K { get; init; } = 1;
    /// <summary>
    /// 0 (default): k stays <see cref="K"/>. N ≥ 1: k grows by one every N epochs, k_e = K + ⌊e / N⌋ for epoch e
    /// (zero-based), and the learning rate of that epoch is divided by k_e / K, η_e = η₀ γ^e K / k_e: the schedule of
    /// Salakhutdinov's code for a DBM's top RBM (k = ⌈epoch / 20⌉ one-based, rate 0.05 / k).
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]   // off: options serialised as before it existed
    public int KIncreaseEvery { get; init; }
    /// <summary>
    /// Draw the batch's binary states afresh from its values at every batch, v ~ Bernoulli(x) (values in [0, 1] taken as
    /// probabilities), from the trainer's generator: grey-level digits binarised anew at every pass, as Salakhutdinov's
    /// code does, instead of once. The epoch metrics are measured on one fixed draw of their rows (seeded by <see cref="Seed"/>).
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public bool BinarizeEachBatch { get; init; }
    /// <summary>Persistent contrastive divergence (Tieleman 2008): negative chains carry over between batches.</summary>
    public bool Persistent { get; init; }
    /// <summary>
    /// Parallel tempering as the negative phase (Desjardins et al. 2010), or null (CD / PCD): persistent replicas on this
    /// ladder of inverse temperatures, B per level (B = <see cref="BatchSize"/>), each batch taking <see cref="K"/>
    /// tempering steps (<see cref="Sampling.ParallelTempering.step"/>: a Gibbs step per replica, then a round of swaps)
    /// and using the β = 1 replicas as the negative sample. Excludes <see cref="Persistent"/> (the replicas persist already).
    /// </summary>
    public Sampling.TemperingLadder? Tempering { get; init; }
    /// <summary>Momentum during the first <see cref="MomentumSwitchEpoch"/> epochs (applied to any optimizer implementing IMomentum).</summary>
    public double InitialMomentum { get; init; } = 0.5;
    /// <summary>Momentum from epoch <see cref="MomentumSwitchEpoch"/> on.</summary>
    public double FinalMomentum { get; init; } = 0.9;
    /// <summary>Zero-based epoch at which momentum switches from initial to final.</summary>
    public int MomentumSwitchEpoch { get; init; } = 5;
    /// <summary>L2 weight-decay coefficient λ added to the weight gradient (λW); biases are not decayed.</summary>
    public double WeightDecay { get; init; } = 2e-4;
    /// <summary>Whether the last negative-phase visible layer of CD is sampled (true) or its probabilities used (false, less noise). PCD chains, tempering replicas and <see cref="Units.LearnedGaussianUnits"/> (whose variance the means would not teach) always use samples.</summary>
    public bool SampleVisible { get; init; }
    /// <summary>How gradients are computed.</summary>
    public GradientMode Gradient { get; init; } = GradientMode.Direct;
    /// <summary>
    /// The dtype of the training passes' matrix products (null: the model's own). With <c>BFloat16</c> the net inputs
    /// of the positive phase and the Gibbs steps are computed from bfloat16 products (<see cref="Modules.RBM.compute_dtype"/>,
    /// set for each <see cref="RbmTrainer.Step"/> and restored after it), and the direct path computes the weight
    /// statistics as one bfloat16 product of the stacked phases, [p(h|v⁰); p(h|vᵏ)]ᵀ·[−v⁰; vᵏ] / B, so that the
    /// positive and negative statistics cancel inside the product's float32 accumulator before its result is rounded
    /// (two separately rounded statistics would lose their difference). Parameters, gradients, momentum and
    /// updates stay in the model's dtype, and the epoch metrics, sampling and likelihoods use the model's own
    /// products. Speed and quality: bench <c>--compare</c> and the benchmarks article. Only for CPUs (or GPUs) with
    /// bfloat16 instructions: on an AMD EPYC with AVX2 and no AVX-512 a 784×500 CD-1 epoch took 16.9× its float32 time
    /// (bench <c>--compare</c> at 2d7d9fb, 2026-12-02).
    /// </summary>
    public ScalarType? ComputeDtype { get; init; }
    /// <summary>Shuffle the training examples every epoch.</summary>
    public bool Shuffle { get; init; } = true;
    /// <summary>Compute epoch metrics every this many epochs (and always after the last); 0 turns them off.</summary>
    public int MetricsEvery { get; init; } = 1;
    /// <summary>How many training (and validation) examples the epoch metrics use.</summary>
    public int MetricsSamples { get; init; } = 1000;
    /// <summary>Seed of the trainer's generator when none is passed to the trainer.</summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>
    /// Sparsity target p for the hidden units (Hinton's practical guide, §11), or null (off): a running estimate
    /// q ← δq + (1 − δ)·mean p(h|v⁰) of each hidden unit's activation on the data (δ = <see cref="SparsityDecay"/>) is
    /// pulled toward p by adding <see cref="SparsityCost"/>·(q − p) to each hidden bias's gradient and
    /// <see cref="SparsityCost"/>·(q − p)·mean v⁰ to its incoming weights' (the derivative of the cross-entropy penalty
    /// −p log q − (1 − p) log(1 − q) with respect to the unit's total input, for logistic hidden units). The guide's
    /// range: p from 0.01 to 0.1.
    /// </summary>
    public double? SparsityTarget { get; init; }
    /// <summary>Weight of the sparsity penalty's gradient (the guide's "sparsity-cost"; used with <see cref="SparsityTarget"/>).</summary>
    public double SparsityCost { get; init; } = 0.1;
    /// <summary>Decay δ of the running activation estimate q (the guide: 0.9 to 0.99).</summary>
    public double SparsityDecay { get; init; } = 0.95;
    /// <summary>
    /// The centering trick (Montavon &amp; Müller 2012; Melchior, Fischer &amp; Wiskott 2016; see <see cref="Training.Centering"/>):
    /// gradient steps taken in coordinates centered at μ = the training data's mean (visible) and λ = a running mean of
    /// p(h|v⁰) on the data (hidden, starting at 0.5, updated λ ← (1 − ν)λ + ν·mean p(h|v⁰) with ν = <see cref="CenteringRate"/>).
    /// The model stays in the plain parameters. Momentum then runs in the optimizer (it is not folded into the gradient
    /// buffer, <see cref="RbmTrainer.FoldsMomentum"/>).
    /// </summary>
    public bool Centering { get; init; }
    /// <summary>Sliding factor ν of the hidden offset λ (Melchior et al. 2016 recommend 0.01 or smaller).</summary>
    public double CenteringRate { get; init; } = 0.01;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a value outside its range, naming it.</summary>
    public void Validate()
    {
        OptionRules.Sgd(Epochs, BatchSize, LearningRate);
        OptionRules.AtLeastOne(K, nameof(K));
        OptionRules.NonNegative(KIncreaseEvery, nameof(KIncreaseEvery));
        if (KIncreaseEvery > 0 && (Persistent || Tempering is not null))
            throw new ArgumentException($"KIncreaseEvery: the growing CD-k schedule is for contrastive divergence; expected 0 with {(Persistent ? "Persistent" : "Tempering")}, got {KIncreaseEvery}.", nameof(KIncreaseEvery));
        OptionRules.Decay(LearningRateDecay, nameof(LearningRateDecay));
        OptionRules.FractionBelowOne(InitialMomentum, nameof(InitialMomentum));
        OptionRules.FractionBelowOne(FinalMomentum, nameof(FinalMomentum));
        OptionRules.NonNegative(MomentumSwitchEpoch, nameof(MomentumSwitchEpoch));
        OptionRules.NonNegativeFinite(WeightDecay, nameof(WeightDecay));
        OptionRules.NonNegative(MetricsEvery, nameof(MetricsEvery));
        OptionRules.AtLeastOne(MetricsSamples, nameof(MetricsSamples));
        if (SparsityTarget is { } p && !(p > 0 && p < 1))
            throw new ArgumentOutOfRangeException(nameof(SparsityTarget), p, "SparsityTarget: expected a value in (0, 1).");
        OptionRules.NonNegativeFinite(SparsityCost, nameof(SparsityCost));
        OptionRules.FractionBelowOne(SparsityDecay, nameof(SparsityDecay));
        OptionRules.Decay(CenteringRate, nameof(CenteringRate));
        if (ComputeDtype is { } cd && cd is not (ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64))
            throw new ArgumentOutOfRangeException(nameof(ComputeDtype), cd, "ComputeDtype: expected BFloat16, Float32 or Float64 (Float16 products without loss scaling lose small statistics).");
        if (Tempering is not null && Persistent)
            throw new ArgumentException("Tempering: parallel tempering keeps its own persistent replicas; expected Persistent = false, got true.", nameof(Tempering));
    }
}

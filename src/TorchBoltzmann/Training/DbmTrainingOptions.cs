using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// Hyperparameters of the stochastic-approximation learning of a <see cref="Modules.DBM"/> (see <see cref="DbmTrainer"/>):
/// a mean-field positive phase and persistent Gibbs chains for the negative phase (Salakhutdinov &amp; Hinton 2009).
/// </summary>
public sealed record DbmTrainingOptions
{
    /// <summary>Passes over the training data.</summary>
    public int Epochs { get; init; } = 10;
    /// <summary>Examples per mini-batch.</summary>
    public int BatchSize { get; init; } = 100;
    /// <summary>Learning rate η₀ of the default SGD optimizer (per-epoch rate η₀ γ^e with γ = <see cref="LearningRateDecay"/>).</summary>
    public double LearningRate { get; init; } = 0.005;
    /// <summary>γ ∈ (0, 1]: the learning rate is multiplied by γ at every epoch (1: constant). Applies to any optimizer's groups.</summary>
    public double LearningRateDecay { get; init; } = 1.0;
    /// <summary>The learning rate never falls below this: η_e = max(η₀ γ^e, floor) (Salakhutdinov's code: 10⁻⁴). 0: no floor.</summary>
    public double MinLearningRate { get; init; }
    /// <summary>Momentum of the default SGD optimizer (before <see cref="MomentumSwitchEpoch"/> when <see cref="FinalMomentum"/> is set).</summary>
    public double Momentum { get; init; } = 0.5;
    /// <summary>Null (default): <see cref="Momentum"/> throughout. Else the momentum from epoch <see cref="MomentumSwitchEpoch"/>
    /// (zero-based) on, set in every parameter group of the optimizer (Salakhutdinov's code: 0.5, then 0.9 after 5 epochs).</summary>
    public double? FinalMomentum { get; init; }
    /// <summary>The zero-based epoch from which <see cref="FinalMomentum"/> applies.</summary>
    public int MomentumSwitchEpoch { get; init; } = 5;
    /// <summary>
    /// Draw the batch's binary visible states afresh at every batch, v ~ Bernoulli(x) from its grey levels, with the
    /// trainer's generator (Salakhutdinov's code binarises the digits anew at every pass); the epoch metrics are measured
    /// on one fixed draw of their rows (seeded by <see cref="Seed"/>).
    /// </summary>
    public bool BinarizeEachBatch { get; init; }
    /// <summary>L2 weight decay λ added to the gradient of every weight matrix (λW_l); biases are not decayed.</summary>
    public double WeightDecay { get; init; } = 0.0002;
    /// <summary>Negative phase: number of persistent chains (the paper's "fantasy particles": 100).</summary>
    public int Chains { get; init; } = 100;
    /// <summary>Negative phase: block Gibbs steps of the persistent chains per update (the paper: 5).</summary>
    public int GibbsSteps { get; init; } = 5;
    /// <summary>Positive phase: cap on mean-field sweeps per batch (the paper: 10 in training).</summary>
    public int MeanFieldIterations { get; init; } = 10;
    /// <summary>Positive phase: mean-field stops when no mean moves by more than this.</summary>
    public double MeanFieldTolerance { get; init; } = 1e-5;
    /// <summary>Positive phase: damping d ∈ [0, 1) of the mean-field updates.</summary>
    public double MeanFieldDamping { get; init; }
    /// <summary>
    /// The centering trick for DBMs (Montavon &amp; Müller 2012; Melchior, Fischer &amp; Wiskott 2016; see
    /// <see cref="Training.Centering.center_dbm_gradients"/>): gradient steps taken in coordinates centered at μ_0 = the
    /// training data's mean and, for every hidden layer l, μ_l = a running mean of the positive phase's mean-field means
    /// (starting at 0.5, μ_l ← (1 − ν)μ_l + ν·mean μ_l(v) over the batch after each update, ν = <see cref="CenteringRate"/>).
    /// The machine stays in the plain parameters, so mean-field inference, sampling and AIS are unchanged.
    /// </summary>
    public bool Centering { get; init; }
    /// <summary>Sliding factor ν ∈ (0, 1] of the hidden offsets (Melchior et al. 2016 recommend 0.01 or smaller).</summary>
    public double CenteringRate { get; init; } = 0.01;
    /// <summary>
    /// Mixed precision: the dtype of the coupling products in the positive phase's mean-field sweeps and the chains' Gibbs
    /// steps (<see cref="Modules.DBM.compute_dtype"/>, set for each <see cref="DbmTrainer.Step"/> and restored after it);
    /// null, the default: the machine's own. The means, the chains' states, the gradient statistics
    /// (1/C) Σ x⁻_l x⁻_{l−1}ᵀ − (1/B) Σ x⁺_l x⁺_{l−1}ᵀ, the parameters and the updates stay in the machine's dtype, and the
    /// epoch metrics, sampling and likelihoods use the machine's own products. For CPUs (or GPUs) with bfloat16
    /// instructions (AVX512-BF16, AMX): elsewhere the products run much slower than float32 (see
    /// <see cref="RbmTrainingOptions.ComputeDtype"/>).
    /// </summary>
    public ScalarType? ComputeDtype { get; init; }
    /// <summary>Shuffle the training examples every epoch.</summary>
    public bool Shuffle { get; init; } = true;
    /// <summary>Compute epoch metrics every this many epochs and after the last; 0 turns them off.</summary>
    public int MetricsEvery { get; init; } = 1;
    /// <summary>Rows of the training data the epoch metrics are computed on (the first ones).</summary>
    public int MetricsRows { get; init; } = 1000;
    /// <summary>Seed of the trainer's generator when none is passed to the trainer.</summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first option outside its range, the rule and the value.</summary>
    public void Validate()
    {
        OptionRules.Sgd(Epochs, BatchSize, LearningRate);
        OptionRules.Decay(LearningRateDecay, nameof(LearningRateDecay));
        OptionRules.FractionBelowOne(Momentum, nameof(Momentum));
        OptionRules.NonNegativeFinite(MinLearningRate, nameof(MinLearningRate));
        if (FinalMomentum is { } fm) OptionRules.FractionBelowOne(fm, nameof(FinalMomentum));
        OptionRules.NonNegative(MomentumSwitchEpoch, nameof(MomentumSwitchEpoch));
        OptionRules.NonNegativeFinite(WeightDecay, nameof(WeightDecay));
        OptionRules.AtLeastOne(Chains, nameof(Chains));
        OptionRules.AtLeastOne(GibbsSteps, nameof(GibbsSteps));
        OptionRules.AtLeastOne(MeanFieldIterations, nameof(MeanFieldIterations));
        OptionRules.NonNegativeFinite(MeanFieldTolerance, nameof(MeanFieldTolerance));
        OptionRules.FractionBelowOne(MeanFieldDamping, nameof(MeanFieldDamping));
        OptionRules.NonNegative(MetricsEvery, nameof(MetricsEvery));
        OptionRules.AtLeastOne(MetricsRows, nameof(MetricsRows));
        OptionRules.Decay(CenteringRate, nameof(CenteringRate));
        Checks.ComputeDtype(ComputeDtype, nameof(ComputeDtype));
    }
}

/// <summary>What one epoch of DBM learning measured.</summary>
/// <param name="Epoch">One-based epoch.</param>
/// <param name="Epochs">Total epochs of the run.</param>
/// <param name="TrainSeconds">Wall time of the epoch's updates (excluding metrics).</param>
/// <param name="LearningRate">The first parameter group's learning rate in this epoch.</param>
/// <param name="MeanFieldSweeps">Mean-field sweeps per batch in the positive phase, averaged over the epoch.</param>
/// <param name="ReconstructionError">Mean squared error Σ_i (v_i − E[v_i | μ_1])² / n_visible between the metric rows and the visible means given their first layer's mean-field means; null without metrics this epoch.</param>
/// <param name="MeanFieldBound">Mean over the metric rows of the variational bound B(v) on log Σ_h e^{−E(v,h)} (<see cref="Modules.DBM.variational_bound(TorchSharp.torch.Tensor, IReadOnlyList{TorchSharp.torch.Tensor})"/>); log p(v) ≥ B(v) − log Z; null without metrics.</param>
/// <param name="LogLikelihood">Exact mean log-likelihood of the metric rows, when the machine is small enough to enumerate (at most 16 visible units and 16 units in the even hidden layers); else null.</param>
public sealed record DbmEpochMetrics(int Epoch, int Epochs, double TrainSeconds, double LearningRate, double MeanFieldSweeps,
                                     double? ReconstructionError, double? MeanFieldBound, double? LogLikelihood);

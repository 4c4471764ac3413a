using TorchBoltzmann.Sampling;

namespace TorchBoltzmann.Training;

/// <summary>How the clamped phase of contrastive Hebbian learning estimates ⟨x xᵀ⟩ with the visible units fixed.</summary>
public enum ClampedPhase
{
    /// <summary>Gibbs sampling of the hidden units (burn-in, then averaged sweeps): the original procedure.</summary>
    Sampling,
    /// <summary>
    /// The hidden units' mean-field means m_h (<see cref="Modules.BoltzmannMachine.mean_field"/>), statistics from
    /// [v, m_h][v, m_h]ᵀ: deterministic (Peterson &amp; Anderson 1987; with persistent free chains as in Salakhutdinov &amp;
    /// Hinton 2009). Exact for a bipartite mask.
    /// </summary>
    MeanField,
}

/// <summary>How the free phase of contrastive Hebbian learning estimates ⟨x xᵀ⟩ of the model.</summary>
public enum FreePhase
{
    /// <summary>Persistent Gibbs chains (Tieleman 2008): <see cref="BoltzmannTrainingOptions.FreeSweeps"/> sweeps, then <see cref="BoltzmannTrainingOptions.FreeSamples"/> averaged.</summary>
    Sampling,
    /// <summary>
    /// Deterministic mean-field fixed points m = mean((W m + b) / T) of all units
    /// (<see cref="Modules.BoltzmannMachine.mean_field_fixed_point"/>), one per free "chain", each started from the last
    /// update's fixed point (random means at the first); statistics Σ_r m_r m_rᵀ / R. With
    /// <see cref="ClampedPhase.MeanField"/>, the mean-field learning of Peterson &amp; Anderson (1987).
    /// </summary>
    MeanField,
}

/// <summary>Where the clamped phase's sampled hidden units start at each update.</summary>
public enum ClampedChains
{
    /// <summary>From random states at every update (burn-in from scratch).</summary>
    Restarted,
    /// <summary>
    /// From where the same training example's chain stopped at its previous update: one hidden state per training
    /// example, kept across batches and epochs (and in the run checkpoint), so a short burn-in suffices once the chains
    /// have mixed. Random states at the first visit.
    /// </summary>
    Persistent,
}

/// <summary>
/// Hyperparameters of contrastive Hebbian learning of a <see cref="Modules.BoltzmannMachine"/> (see
/// <see cref="BoltzmannTrainer"/>). Sweeps are Gibbs sweeps over all free units.
/// </summary>
public sealed record BoltzmannTrainingOptions
{
    /// <summary>Passes over the training data.</summary>
    public int Epochs { get; init; } = 100;
    /// <summary>Examples per mini-batch (one clamped chain each).</summary>
    public int BatchSize { get; init; } = 10;
    /// <summary>Learning rate of the default SGD optimizer.</summary>
    public double LearningRate { get; init; } = 0.1;
    /// <summary>Momentum of the default SGD optimizer.</summary>
    public double Momentum { get; init; } = 0.5;
    /// <summary>L2 weight decay λ added to the gradient of the used weights (λw_ij); biases are not decayed.</summary>
    public double WeightDecay { get; init; }
    /// <summary>How the clamped phase is estimated.</summary>
    public ClampedPhase Clamped { get; init; } = ClampedPhase.Sampling;
    /// <summary>Clamped phase (sampling): sweeps from random hidden states before statistics are taken.</summary>
    public int ClampedBurnIn { get; init; } = 10;
    /// <summary>Clamped phase (sampling): sweeps whose states are averaged into ⟨x xᵀ⟩_clamped.</summary>
    public int ClampedSamples { get; init; } = 5;
    /// <summary>Clamped phase (sampling): hidden chains restarted every update, or one persistent chain per training example.</summary>
    public ClampedChains ClampedChains { get; init; } = ClampedChains.Restarted;
    /// <summary>How the free phase is estimated.</summary>
    public FreePhase Free { get; init; } = FreePhase.Sampling;
    /// <summary>Mean-field phases: cap on the passes of the fixed-point iteration per update.</summary>
    public int MeanFieldIterations { get; init; } = 100;
    /// <summary>Mean-field phases: the iteration stops once no unit's residual |mean((W m + b)_i / T) − m_i| exceeds this.</summary>
    public double MeanFieldTolerance { get; init; } = 1e-6;
    /// <summary>Mean-field phases: damping λ in [0, 1), m_B ← (1 − λ) mean((m W_{:,B} + b_B) / T) + λ m_B (0: plain updates).</summary>
    public double MeanFieldDamping { get; init; }
    /// <summary>Free phase: number of persistent chains (or mean-field fixed points).</summary>
    public int FreeChains { get; init; } = 100;
    /// <summary>Free phase: sweeps of the persistent chains per update before statistics are taken.</summary>
    public int FreeSweeps { get; init; } = 1;
    /// <summary>Free phase: sweeps whose states are averaged into ⟨x xᵀ⟩_free (after <see cref="FreeSweeps"/>).</summary>
    public int FreeSamples { get; init; } = 1;
    /// <summary>
    /// Temperatures to sweep through (one sweep each) before a phase's burn-in when <see cref="AnnealClamped"/> or
    /// <see cref="AnnealFree"/> is set: the original procedure (Ackley, Hinton &amp; Sejnowski 1985) annealed each phase
    /// towards <see cref="Temperature"/> before collecting statistics.
    /// </summary>
    public AnnealingSchedule? Annealing { get; init; }
    /// <summary>Anneal the clamped phase: its chains sweep through <see cref="Annealing"/> before <see cref="ClampedBurnIn"/>; with <see cref="ClampedPhase.MeanField"/>, one mean-field pass at each temperature before the passes at <see cref="Temperature"/>.</summary>
    public bool AnnealClamped { get; init; }
    /// <summary>Anneal the free phase: the persistent chains sweep through <see cref="Annealing"/> before <see cref="FreeSweeps"/> at every update (re-heating them, so they keep less of their past); with <see cref="FreePhase.MeanField"/>, one mean-field pass at each temperature from the last fixed points.</summary>
    public bool AnnealFree { get; init; }
    /// <summary>Update order of every sweep.</summary>
    public GibbsScan Scan { get; init; } = GibbsScan.Systematic;
    /// <summary>Temperature T of both phases (the gradient of log p_T carries 1/T).</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Shuffle the training examples every epoch.</summary>
    public bool Shuffle { get; init; } = true;
    /// <summary>Compute epoch metrics (exact log-likelihood where the machine can be enumerated) every this many epochs and after the last; 0 turns them off.</summary>
    public int MetricsEvery { get; init; } = 1;
    /// <summary>Seed of the trainer's generator when none is passed to the trainer.</summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>
    /// Throws <see cref="ArgumentOutOfRangeException"/> for a value outside its range, naming the option, the rule and the
    /// value, and <see cref="ArgumentException"/> for annealing asked for without a schedule.
    /// </summary>
    public void Validate()
    {
        OptionRules.Sgd(Epochs, BatchSize, LearningRate);
        OptionRules.FractionBelowOne(Momentum, nameof(Momentum));
        OptionRules.NonNegativeFinite(WeightDecay, nameof(WeightDecay));
        OptionRules.NonNegative(ClampedBurnIn, nameof(ClampedBurnIn));
        OptionRules.AtLeastOne(ClampedSamples, nameof(ClampedSamples));
        OptionRules.AtLeastOne(FreeChains, nameof(FreeChains));
        OptionRules.NonNegative(FreeSweeps, nameof(FreeSweeps));
        OptionRules.AtLeastOne(FreeSamples, nameof(FreeSamples));
        OptionRules.PositiveFinite(Temperature, nameof(Temperature));
        OptionRules.NonNegative(MetricsEvery, nameof(MetricsEvery));
        if (!Enum.IsDefined(Clamped)) throw new ArgumentOutOfRangeException(nameof(Clamped), Clamped, "Clamped must be Sampling or MeanField.");
        if (!Enum.IsDefined(Free)) throw new ArgumentOutOfRangeException(nameof(Free), Free, "Free must be Sampling or MeanField.");
        if (!Enum.IsDefined(ClampedChains)) throw new ArgumentOutOfRangeException(nameof(ClampedChains), ClampedChains, "ClampedChains must be Restarted or Persistent.");
        OptionRules.AtLeastOne(MeanFieldIterations, nameof(MeanFieldIterations));
        OptionRules.NonNegativeFinite(MeanFieldTolerance, nameof(MeanFieldTolerance));
        OptionRules.FractionBelowOne(MeanFieldDamping, nameof(MeanFieldDamping));
        if (ClampedChains == ClampedChains.Persistent && Clamped == ClampedPhase.MeanField)
            throw new ArgumentException("ClampedChains: expected Restarted with Clamped = MeanField (a mean-field clamped phase has no chains to keep), got Persistent.", nameof(ClampedChains));
        if (!Enum.IsDefined(Scan)) throw new ArgumentOutOfRangeException(nameof(Scan), Scan, "Scan must be Systematic, Random or Blocked.");
        if ((AnnealClamped || AnnealFree) && Annealing is null)
            throw new ArgumentException($"Annealing: expected a schedule when {(AnnealClamped ? nameof(AnnealClamped) : nameof(AnnealFree))} is set, got none.", nameof(Annealing));
    }
}

/// <summary>What one epoch of contrastive Hebbian learning measured.</summary>
/// <param name="Epoch">One-based epoch.</param>
/// <param name="Epochs">Total epochs of the run.</param>
/// <param name="TrainSeconds">Wall time of the epoch's updates (excluding metrics).</param>
/// <param name="LogLikelihood">Exact mean log-likelihood of the training data (null without metrics this epoch, or when the machine has more than 24 units).</param>
/// <param name="PseudoLogLikelihood">Exact mean pseudo-log-likelihood of the training data, Σ_i log p(v_i | v_{−i}), when the log-likelihood cannot be enumerated but the hidden units can be summed out (at most 20); else null.</param>
public sealed record BoltzmannEpochMetrics(int Epoch, int Epochs, double TrainSeconds, double? LogLikelihood, double? PseudoLogLikelihood = null);

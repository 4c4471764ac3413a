using static TorchSharp.torch;
namespace TorchBoltzmann.Training;

/// <summary>
/// Hyperparameters of supervised fine-tuning (<see cref="FineTuner"/>). Defaults: SGD with learning rate 0.1 and
/// momentum 0.9, the rate multiplied by <see cref="LearningRateDecay"/> = 0.95 after every epoch
/// (η_e = η₀ · γ^e), mini-batches of 100, no weight decay, the last 10 000 training examples held out for validation,
/// early stopping after 5 epochs without a lower validation error, best weights restored.
/// </summary>
public sealed record ClassifierTrainingOptions
{
    /// <summary>
    /// The optimizer <see cref="FineTuner"/> builds when none is passed: SGD (learning rate, momentum, weight decay below)
    /// or <see cref="ConjugateGradient"/> (<see cref="LineSearches"/> line searches per mini-batch, the learning rate as its
    /// expected first reduction; momentum and weight decay unused). Conjugate gradients need a deterministic loss: no dropout.
    /// </summary>
    public FineTuningOptimizer Optimizer { get; init; } = FineTuningOptimizer.Sgd;
    /// <summary>Line searches per mini-batch with <see cref="FineTuningOptimizer.ConjugateGradient"/> (Hinton &amp; Salakhutdinov 2006: 3 per 1,000 digits).</summary>
    public int LineSearches { get; init; } = 3;
    /// <summary>Maximum passes over the training data.</summary>
    public int Epochs { get; init; } = 10;
    /// <summary>
    /// Epochs at the start that train only the output layer (the last submodule holding parameters), with the pretrained
    /// layers frozen, before the whole network trains (Hinton &amp; Salakhutdinov 2006 trained the new softmax layer alone
    /// first, so its random weights do not send large, random gradients into the pretrained features). Counted in
    /// <see cref="Epochs"/>.
    /// </summary>
    public int HeadOnlyEpochs { get; init; }
    /// <summary>
    /// Iterate averaging (Polyak &amp; Juditsky 1992): when &gt; 0, an exponential moving average of the parameters,
    /// θ̄ ← a θ̄ + (1 − a) θ after every step, is what validation measures, what early stopping keeps and what the model
    /// holds at the end; training itself follows the raw iterates θ (whose validation error each epoch's
    /// <see cref="ClassifierEpochMetrics.RawValidationError"/> reports beside θ̄'s). 0 (default) turns it off; 0.999
    /// averages over the last ~1,000 steps (two MNIST epochs of batch 100).
    /// </summary>
    public double AverageDecay { get; init; }
    /// <summary>Examples per mini-batch.</summary>
    public int BatchSize { get; init; } = 100;
    /// <summary>Initial learning rate η₀ of the default SGD optimizer.</summary>
    public double LearningRate { get; init; } = 0.1;
    /// <summary>Momentum of the default SGD optimizer.</summary>
    public double Momentum { get; init; } = 0.9;
    /// <summary>
    /// Momentum of the default SGD optimizer at the first epoch when <see cref="MomentumRampEpochs"/> &gt; 0; null: the same
    /// as <see cref="Momentum"/> (constant momentum).
    /// </summary>
    public double? InitialMomentum { get; init; }
    /// <summary>
    /// Momentum schedule of Hinton et al. (2012): over the first R epochs the momentum rises linearly from
    /// <see cref="InitialMomentum"/> to <see cref="Momentum"/>, m_e = m₀ + (m − m₀)·min(e / R, 1) (e = 0, 1, …), and stays
    /// there. 0 (default): constant <see cref="Momentum"/>. Needs an SGD optimizer.
    /// </summary>
    public int MomentumRampEpochs { get; init; }
    /// <summary>
    /// Dampened momentum: the velocity is an exponential average of the gradients, v ← m v + (1 − m) g, and the step is
    /// θ ← θ − η v (<c>torch.optim.SGD</c> with dampening = m). This is Hinton et al.'s (2012) "learning rate multiplied by
    /// (1 − momentum)": a step's size is set by η alone, whatever m is, so a momentum ramp towards 0.99 does not
    /// multiply the effective rate η/(1 − m) by 100. false (default): v ← m v + g (PyTorch's default). Needs an SGD optimizer.
    /// (PyTorch's SGD starts the velocity at v₁ = g₁ without dampening, so the very first step is η g₁ either way.)
    /// </summary>
    public bool DampenMomentum { get; init; }
    /// <summary>
    /// Max-norm constraint (Srivastava et al. 2014): after every step, each unit's incoming weight vector (each row w_j of
    /// every 2-D weight matrix) is rescaled to ‖w_j‖₂ ≤ c when it is longer: w_j ← w_j · min(1, c / ‖w_j‖₂). 0 (default): off.
    /// </summary>
    public double MaxNorm { get; init; }
    /// <summary>
    /// What <see cref="LearningRate"/>, <see cref="WeightDecay"/> and <see cref="MaxNorm"/> mean for a network with dropout.
    /// <see cref="Training.DropoutConvention.Inverted"/> (default): they apply to the parameters as they are, as with
    /// <c>torch.optim</c>. <see cref="Training.DropoutConvention.NonInverted"/>: they mean what they mean in Hinton et al.
    /// (2012) and Srivastava et al. (2014), whose dropout is not inverted, so that a recipe from those papers can be
    /// taken over unchanged: the weights of a <c>Linear</c> whose inputs pass through dropout with keep probability q
    /// step with η q², decay with λ / q², and are held to ‖w_j‖₂ ≤ q c (see <see cref="Training.DropoutConvention"/>).
    /// Needs the SGD optimizer the <see cref="FineTuner"/> builds, and a <c>Sequential</c> model.
    /// </summary>
    public DropoutConvention DropoutConvention { get; init; }
    /// <summary>
    /// Mixed precision: the dtype of the training forward pass's matrix products. Null (default), or the model's own
    /// dtype: no casting. <c>BFloat16</c>: every <c>Linear</c> computes y = (x_c W_cᵀ + b_c) with its input, weight and
    /// bias cast to bfloat16, and y is cast back to the model's dtype; autograd runs through the casts (the gradients
    /// are computed through bfloat16 products, and accumulated, stored and applied in the model's dtype). The weights
    /// and their updates stay in the model's dtype, and only the training passes change: validation and test errors are
    /// the model's own, while the training loss reported is the bfloat16 pass's. Needs a <c>Sequential</c> whose
    /// modules with parameters are all <c>Linear</c> (as <see cref="Modules.DbnClassifier"/>.Build makes; nested
    /// <c>Sequential</c>s, such as a pretrained encoder inside a larger model, are walked in forward order). Float16 is
    /// refused: without loss scaling its small gradients underflow to zero. Timed with SGD only (bench
    /// <c>--bf16</c>: a dropout fine-tuning epoch of the 784-500-500-2000-10 classifier took 0.58× its float32 time on
    /// an AMD EPYC with AVX512-BF16); with conjugate gradients it is tested on a small problem only: their line searches
    /// compare small loss differences, which bfloat16 rounding may blur. CPUs without bfloat16 instructions run the products much slower than float32 (an RBM CD-1 epoch took 16.9× its float32 time on an AVX2-only AMD EPYC: <see cref="RbmTrainingOptions.ComputeDtype"/>).
    /// </summary>
    public ScalarType? ComputeDtype { get; init; }
    /// <summary>Exponential decay γ of the learning rate per epoch: η_e = η₀ γ^e (1 = constant). Applies to any optimizer.</summary>
    public double LearningRateDecay { get; init; } = 0.95;
    /// <summary>L2 weight decay of the default SGD optimizer (applied to all parameters).</summary>
    public double WeightDecay { get; init; }
    /// <summary>
    /// When no validation set is passed, the LAST this many training examples are held out for validation (MNIST: the
    /// last 10 000 of the 60 000 training digits); 0 disables validation (and early stopping).
    /// </summary>
    public int ValidationCount { get; init; } = 10_000;
    /// <summary>Stop after this many epochs without a new lowest validation error; 0 never stops early.</summary>
    public int Patience { get; init; } = 5;
    /// <summary>Restore the weights of the epoch with the lowest validation error at the end (kept as an in-memory copy of the state_dict).</summary>
    public bool RestoreBest { get; init; } = true;
    /// <summary>Examples per batch when evaluating.</summary>
    public int EvaluationBatchSize { get; init; } = 1000;
    /// <summary>Shuffle the training examples every epoch.</summary>
    public bool Shuffle { get; init; } = true;
    /// <summary>
    /// Seed of the fine-tuner's generator (shuffling) when none is passed. Dropout masks come from the global generator,
    /// as <c>nn.Dropout</c>'s do: call <c>torch.manual_seed</c> before <c>Fit</c> for reproducible masks
    /// (the recipes' <c>DbnClassifierPipeline</c> does, with its seed).
    /// </summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a value outside its range, naming it.</summary>
    public void Validate()
    {
        OptionRules.Sgd(Epochs, BatchSize, LearningRate);
        OptionRules.FractionBelowOne(Momentum, nameof(Momentum));
        if (InitialMomentum is double m0) OptionRules.FractionBelowOne(m0, nameof(InitialMomentum));
        OptionRules.NonNegative(MomentumRampEpochs, nameof(MomentumRampEpochs));
        OptionRules.NonNegativeFinite(MaxNorm, nameof(MaxNorm));
        OptionRules.Decay(LearningRateDecay, nameof(LearningRateDecay));
        OptionRules.NonNegativeFinite(WeightDecay, nameof(WeightDecay));
        OptionRules.NonNegative(ValidationCount, nameof(ValidationCount));
        OptionRules.NonNegative(Patience, nameof(Patience));
        OptionRules.NonNegative(HeadOnlyEpochs, nameof(HeadOnlyEpochs));
        OptionRules.FractionBelowOne(AverageDecay, nameof(AverageDecay));
        OptionRules.AtLeastOne(EvaluationBatchSize, nameof(EvaluationBatchSize));
        OptionRules.AtLeastOne(LineSearches, nameof(LineSearches));
        if (Optimizer != FineTuningOptimizer.Sgd && (MomentumRampEpochs > 0 || DampenMomentum))
            throw new ArgumentException($"MomentumRampEpochs and DampenMomentum need the SGD optimizer; Optimizer is {Optimizer}.");
        if (!Enum.IsDefined(DropoutConvention)) throw new ArgumentOutOfRangeException(nameof(DropoutConvention), DropoutConvention, $"expected one of: {string.Join(", ", Enum.GetNames<DropoutConvention>())}.");
        if (ComputeDtype is { } cd && cd is not (ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64))
            throw new ArgumentOutOfRangeException(nameof(ComputeDtype), cd, cd == ScalarType.Float16
                ? "Float16 is not supported: without loss scaling its small gradients underflow to zero; use BFloat16."
                : "expected BFloat16, the model's own dtype (Float32 or Float64), or null.");
        if (!Enum.IsDefined(Optimizer)) throw new ArgumentOutOfRangeException(nameof(Optimizer), Optimizer, $"expected one of: {string.Join(", ", Enum.GetNames<FineTuningOptimizer>())}.");
    }
}

/// <summary>The optimizer <see cref="FineTuner"/> builds from <see cref="ClassifierTrainingOptions"/>.</summary>
public enum FineTuningOptimizer
{
    /// <summary>Stochastic gradient descent with momentum (<c>torch.optim.SGD</c>).</summary>
    Sgd,
    /// <summary>Polak–Ribière conjugate gradients with line searches on each mini-batch (<see cref="ConjugateGradient"/>).</summary>
    ConjugateGradient,
}

/// <summary>
/// The parametrisation in which <see cref="ClassifierTrainingOptions"/>' learning rate, weight decay and max-norm are
/// given for a network with dropout (<see cref="ClassifierTrainingOptions.DropoutConvention"/>).
/// </summary>
/// <remarks>
/// <para>Inverted dropout (<c>nn.Dropout</c>, <see cref="Modules.FastDropout"/>) trains a layer as z = W (r ⊙ x) / q + b
/// (r_i ~ Bernoulli(q), q the keep probability) and tests it as z = W x + b. The papers' dropout trains
/// z = W′ (r ⊙ x) + b and tests z = q W′ x + b; the two compute the same functions when W = q W′ (Srivastava et al.
/// 2014, §5.2: pretrained weights are "scaled up by a factor of 1/p" to start dropout fine-tuning, which W = q W′ does by
/// itself). The gradients differ: ∂L/∂W′ = δ (r ⊙ x)ᵀ = q ∂L/∂W. So a step ΔW′ = −η ∂L/∂W′ is, in W,
/// ΔW = q ΔW′ = −η q² ∂L/∂W: the same η moves an inverted network's weights 1/q² times as far (4× behind a dropout of
/// 0.5, 1.5625× behind 0.2). Momentum buffers scale with the gradient, so the step stays η q² under any momentum;
/// an L2 penalty λ‖W′‖²/2 becomes λ‖W‖²/(2q²); a max-norm ‖w′_j‖ ≤ c becomes ‖w_j‖ ≤ q c. Biases are not
/// multiplied by the dropped inputs and keep η and λ.</para>
/// </remarks>
public enum DropoutConvention
{
    /// <summary>Learning rate, weight decay and max-norm apply to the parameters as they are (<c>torch.optim</c>'s convention).</summary>
    Inverted,
    /// <summary>
    /// As in Hinton et al. (2012) and Srivastava et al. (2014): each <c>Linear</c> weight whose inputs pass through dropout
    /// with keep probability q gets learning rate η q², weight decay λ / q² and max-norm q c; other parameters η, λ.
    /// </summary>
    NonInverted,
}

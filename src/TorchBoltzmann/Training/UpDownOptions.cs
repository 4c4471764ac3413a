namespace TorchBoltzmann.Training;

/// <summary>
/// Hyperparameters of the up-down algorithm (<see cref="UpDownTrainer"/>; Hinton, Osindero &amp; Teh 2006, appendix B).
/// </summary>
/// <remarks>
/// The paper trained 784-500-500-2000 with 10 label units for 300 epochs of up-down on mini-batches of 10 (one of each
/// digit), with 3 Gibbs iterations in the top associative memory for the first 100 epochs, 6 for the next 100 and 10 for
/// the last 100 (<see cref="GibbsSchedule"/> = [3, 6, 10]). It does not give its learning rate, momentum or weight decay
/// ("chosen by training the network several times and observing its performance on a separate validation set"); the
/// defaults here are small-step SGD values, not the paper's.
/// </remarks>
public sealed record UpDownOptions
{
    /// <summary>Epochs over the training data (the paper: 300).</summary>
    public int Epochs { get; init; } = 300;

    /// <summary>Examples per mini-batch (the paper: 10).</summary>
    public int BatchSize { get; init; } = 10;

    /// <summary>η, the step of every update (generative, top associative memory, recognition).</summary>
    public double LearningRate { get; init; } = 0.01;

    /// <summary>
    /// The step of the top associative memory's parameters (W_top, b_top, c_top) when it differs from
    /// <see cref="LearningRate"/>, which the generative and recognition weights of the lower layers keep; null: one rate
    /// for all. The paper does not give its rates; this separates the memory that holds the labels from the layers below.
    /// </summary>
    public double? TopLearningRate { get; init; }

    /// <summary>μ of SGD with momentum (heavy ball, PyTorch's convention: u ← μu + g, θ ← θ − ηu).</summary>
    public double Momentum { get; init; } = 0.5;

    /// <summary>λ, L2 weight decay on the weight matrices (not the biases): g_W += λW.</summary>
    public double WeightDecay { get; init; }

    /// <summary>
    /// Gibbs iterations k of the top associative memory, in equal spans of the run: with s entries, epoch e (zero-based)
    /// uses entry ⌊e·s / Epochs⌋. Default [3, 6, 10], the paper's.
    /// </summary>
    public IReadOnlyList<int> GibbsSchedule { get; init; } = [3, 6, 10];

    /// <summary>Seed of the run's generator (shuffling and every stochastic state of the up-pass, the chain and the down-pass).</summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>Shuffle the examples every epoch.</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>
    /// With <see cref="Shuffle"/> and labels: arrange each epoch's shuffled order so that every run of C consecutive
    /// examples holds one of each of the C classes (<see cref="BalancedOrder.ByClass"/>), as the paper's mini-batches of
    /// ten digits held one of each; a batch size that is a multiple of C then gives balanced batches.
    /// </summary>
    public bool BalancedBatches { get; init; }

    /// <summary>Measure the validation error every this many epochs (and after the last); 0: never.</summary>
    public int MetricsEvery { get; init; } = 1;

    /// <summary>k of epoch <paramref name="epoch"/> (zero-based): <see cref="GibbsSchedule"/>[⌊epoch·s / Epochs⌋].</summary>
    public int GibbsStepsAt(int epoch)
    {
        int s = GibbsSchedule.Count;
        long i = (long)Math.Clamp(epoch, 0, Math.Max(0, Epochs - 1)) * s / Math.Max(1, Epochs);
        return GibbsSchedule[(int)Math.Min(i, s - 1)];
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a value outside its range, naming it.</summary>
    public void Validate()
    {
        OptionRules.Sgd(Epochs, BatchSize, LearningRate);
        if (TopLearningRate is { } top && !(top >= 0 && double.IsFinite(top)))
            throw new ArgumentOutOfRangeException(nameof(TopLearningRate), top, "TopLearningRate: expected a finite value ≥ 0 (or null: the LearningRate).");
        OptionRules.FractionBelowOne(Momentum, nameof(Momentum));
        OptionRules.NonNegativeFinite(WeightDecay, nameof(WeightDecay));
        OptionRules.NonNegative(MetricsEvery, nameof(MetricsEvery));
        if (GibbsSchedule is null || GibbsSchedule.Count == 0)
            throw new ArgumentOutOfRangeException(nameof(GibbsSchedule), "GibbsSchedule must list at least one k.");
        foreach (int k in GibbsSchedule) OptionRules.AtLeastOne(k, nameof(GibbsSchedule));
    }
}

/// <summary>What one epoch of up-down training measured.</summary>
/// <param name="Epoch">One-based epoch.</param>
/// <param name="Epochs">Total epochs of the run.</param>
/// <param name="GibbsSteps">k, the Gibbs iterations of the top associative memory in this epoch.</param>
/// <param name="TrainSeconds">Wall time of the epoch's updates (without the validation).</param>
/// <param name="WakeReconstructionError">Mean over the epoch's batches of the mean squared error per example of the data
/// against its generative reconstruction p(v | s¹) from the wake state s¹: Σ_i (v_i − σ(b₀ + W₀ᵀ s¹)_i)², the quantity the
/// wake phase's bottom layer reduces.</param>
/// <param name="ValidationError">Error of the generative classifier (<see cref="Modules.DBN.classify"/>) on the validation
/// data; null in epochs without metrics, without validation data, or for an unconditional DBN.</param>
public sealed record UpDownEpochMetrics(int Epoch, int Epochs, int GibbsSteps, double TrainSeconds, double WakeReconstructionError, double? ValidationError);

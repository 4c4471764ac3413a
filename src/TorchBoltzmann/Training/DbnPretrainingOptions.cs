using TorchBoltzmann.Modules;

namespace TorchBoltzmann.Training;

/// <summary>
/// Hyperparameters of greedy layer-wise DBN pretraining: one <see cref="RbmTrainingOptions"/> shared by all layers,
/// with optional per-layer overrides.
/// </summary>
public sealed record DbnPretrainingOptions
{
    /// <summary>Options of every layer without an override (default: <see cref="RbmTrainingOptions"/>'s defaults).</summary>
    public RbmTrainingOptions Layer { get; init; } = new();

    /// <summary>
    /// Per-layer overrides, bottom first: entry l (when present and non-null) replaces <see cref="Layer"/> for RBM l,
    /// e.g. <c>PerLayer = [null, null, Layer with { Epochs = 30 }]</c>.
    /// </summary>
    public IReadOnlyList<RbmTrainingOptions?>? PerLayer { get; init; }

    /// <summary>
    /// Feed the next layer binary samples h ~ p(h | x) instead of the probabilities p(h | x) (default false:
    /// probabilities, as in Hinton &amp; Salakhutdinov 2006).
    /// </summary>
    public bool SampleHiddenInputs { get; init; }

    /// <summary>Rows per batch when computing the next layer's input.</summary>
    public int PropagationBatchSize { get; init; } = 1000;

    /// <summary>
    /// Initialise each RBM's visible biases from its training input (b_i = log p_i/(1 − p_i), Hinton 2010 §8); false
    /// leaves them as the RBM holds them (zero after <see cref="InitialWeightStd"/>'s re-initialisation, as in
    /// Hinton &amp; Salakhutdinov's <c>rbm.m</c>).
    /// </summary>
    public bool InitVisibleBiasFromData { get; init; } = true;

    /// <summary>
    /// When set, each RBM is re-initialised right before its layer trains: W ~ N(0, σ²) with σ this value, b = c = 0
    /// (<see cref="RBM.reset_parameters"/>), from a generator seeded by the layer's <see cref="RbmTrainingOptions.Seed"/>
    /// and its index, so a run continued from a checkpoint draws what the unbroken run drew. Null (default) trains
    /// the weights the DBN was built with (σ = 0.01, Hinton's practical guide). Hinton &amp; Salakhutdinov's
    /// <c>rbm.m</c> (the pretraining of <c>mnistclassify.m</c>) starts from σ = 0.1 with zero biases.
    /// </summary>
    public double? InitialWeightStd { get; init; }

    /// <summary>The options of RBM <paramref name="layer"/>.</summary>
    public RbmTrainingOptions ForLayer(int layer)
        => PerLayer is not null && layer < PerLayer.Count && PerLayer[layer] is { } o ? o : Layer;

    /// <summary>
    /// These options with <paramref name="change"/> applied to every layer's: <see cref="Layer"/> and each per-layer
    /// override (e.g. <c>o => o with { Seed = 7 }</c>), so an override cannot escape a setting meant for all layers.
    /// </summary>
    public DbnPretrainingOptions ForEveryLayer(Func<RbmTrainingOptions, RbmTrainingOptions> change)
    {
        ArgumentNullException.ThrowIfNull(change);
        return this with { Layer = change(Layer), PerLayer = PerLayer?.Select(o => o is null ? null : change(o)).ToList() };
    }

    /// <summary>
    /// These options with RBM <paramref name="layer"/> trained by <paramref name="options"/> (a per-layer override; the
    /// other layers keep what <see cref="ForLayer"/> gives them).
    /// </summary>
    public DbnPretrainingOptions WithLayer(int layer, RbmTrainingOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentNullException.ThrowIfNull(options);
        var per = Enumerable.Range(0, Math.Max(layer + 1, PerLayer?.Count ?? 0))
            .Select(l => l == layer ? options : PerLayer is not null && l < PerLayer.Count ? PerLayer[l] : null).ToList();
        return this with { PerLayer = per };
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a value outside its range, naming it.</summary>
    public void Validate(int layers)
    {
        ArgumentNullException.ThrowIfNull(Layer, nameof(Layer));
        if (InitialWeightStd is { } std) OptionRules.PositiveFinite(std, nameof(InitialWeightStd));
        OptionRules.AtLeastOne(PropagationBatchSize, nameof(PropagationBatchSize));
        if (PerLayer is not null && PerLayer.Count > layers)
            throw new ArgumentOutOfRangeException(nameof(PerLayer), PerLayer.Count, $"PerLayer has {PerLayer.Count} entries for {layers} layers.");
        for (int l = 0; l < layers; l++) ForLayer(l).Validate();
    }
}

using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// Greedy layer-wise pretraining of a <see cref="DBN"/> (Hinton, Osindero &amp; Teh 2006; Bengio et al. 2007): RBM 0
/// is trained on the data x⁰; then x^{l+1} = p(h | x^l) under the trained RBM l (or a sample,
/// <see cref="DbnPretrainingOptions.SampleHiddenInputs"/>) is computed ONCE, in batches, under no_grad, on the model's
/// device, and RBM l+1 is trained on it with its own <see cref="RbmTrainer"/>. In a class-conditional DBN the top RBM
/// trains on [x^{L−1} ; one_hot(y)], its label group sampled as a softmax in the negative phase.
/// </summary>
/// <remarks>
/// Memory: only the current layer's input (N × width) and the next one while it is computed are alive; every
/// RbmTrainer is disposed after its layer. Progress is reported with <see cref="TrainingProgress.Stage"/> = "layer l/L".
/// </remarks>
public sealed class GreedyPretrainer
{
    private readonly DBN _dbn;

    /// <summary>Creates a pretrainer for <paramref name="dbn"/> (already on its device).</summary>
    public GreedyPretrainer(DBN dbn, DbnPretrainingOptions? options = null)
    {
        _dbn = dbn ?? throw new ArgumentNullException(nameof(dbn));
        Options = options ?? new DbnPretrainingOptions();
        Options.Validate(dbn.n_layers);
    }

    /// <summary>The hyperparameters.</summary>
    public DbnPretrainingOptions Options { get; }

    /// <summary>Test hook: called with (layer, input) for each layer's training input before its RBM trains. The tensor is borrowed.</summary>
    internal Action<int, Tensor>? OnLayerInput { get; set; }

    /// <summary>
    /// Pretrains every RBM bottom-up, each on the one before's hidden probabilities (or samples).
    /// </summary>
    /// <param name="train">Training data (N × n_visible, values in [0, 1]).</param>
    /// <param name="labels">Int64 labels (N), required for a class-conditional DBN.</param>
    /// <param name="validation">Optional held-out data, propagated alongside for the per-epoch validation metrics.</param>
    /// <param name="validationLabels">Labels of <paramref name="validation"/> (class-conditional DBNs).</param>
    /// <param name="progress">Progress of every layer, Stage "layer l/L".</param>
    /// <param name="cancellationToken">Checked before every batch.</param>
    /// <returns>Per layer, the metrics of every epoch.</returns>
    /// <exception cref="ArgumentException">Bad data shape or values, or missing labels.</exception>
    public IReadOnlyList<IReadOnlyList<RbmEpochMetrics>> Fit(Tensor train, Tensor? labels = null, Tensor? validation = null,
        Tensor? validationLabels = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        _dbn.check_input(train, "training data");
        if (train.dim() != 2 || train.shape[0] == 0)
            throw new ArgumentException($"training data: expected shape (N ≥ 1, {_dbn.n_visible}), got ({string.Join(", ", train.shape)}).");
        if (validation is not null) _dbn.check_input(validation, "validation data");
        if (_dbn.is_class_conditional && labels is null)
            throw new ArgumentException("labels: a class-conditional DBN needs training labels.", nameof(labels));
        if (_dbn.is_class_conditional && validation is not null && validationLabels is null)
            throw new ArgumentException("validationLabels: a class-conditional DBN needs labels for its validation data.", nameof(validationLabels));

        int L = _dbn.n_layers;
        var history = new List<IReadOnlyList<RbmEpochMetrics>>();
        using var generator = new Generator(Options.Layer.Seed + 7919, _dbn.device);
        Tensor x = OwnedCopy(train);
        Tensor? vx = validation is null ? null : OwnedCopy(validation);
        try
        {
            for (int l = 0; l < L; l++)
            {
                var rbm = _dbn.layers[l];
                if (l == L - 1 && _dbn.is_class_conditional)
                {
                    Replace(ref x, _dbn.JoinLabels(x, labels!));
                    if (vx is not null) Replace(ref vx, _dbn.JoinLabels(vx, validationLabels!));
                }
                OnLayerInput?.Invoke(l, x);
                var options = Options.ForLayer(l);
                if (Options.InitVisibleBiasFromData) rbm.init_visible_bias_from_data(x);
                using (var trainer = new RbmTrainer(rbm, options) { Stage = $"layer {l + 1}/{L}" })
                    history.Add(trainer.Fit(x, vx, progress, cancellationToken));
                if (l < L - 1)
                {
                    Replace(ref x, DBN.PropagateUp(rbm, x, Options.SampleHiddenInputs, generator, Options.PropagationBatchSize));
                    if (vx is not null) Replace(ref vx, DBN.PropagateUp(rbm, vx, false, null, Options.PropagationBatchSize));
                }
            }
        }
        finally
        {
            x.Dispose();
            vx?.Dispose();
        }
        return history;
    }

    private Tensor OwnedCopy(Tensor t)
    {
        using var moved = t.to(_dbn.dtype, _dbn.device);
        return moved.clone();
    }

    private static void Replace(ref Tensor t, Tensor next)
    {
        t.Dispose();
        t = next;
    }
}

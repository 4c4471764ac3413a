using TorchBoltzmann.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// Greedy RBM pretraining of a user's own stack of <c>Linear</c> layers, IN PLACE: a DBN becomes a pretraining stage
/// inside any TorchSharp model (encoder → dropout → task head).
/// </summary>
/// <remarks>
/// For layers L_1 … L_n with L_l: in_l → out_l (and in_{l+1} = out_l), a temporary <see cref="DBN"/> with sizes
/// [in_1, out_1, …, out_n] is pretrained by <see cref="GreedyPretrainer"/>, then each RBM's W (out × in, the Linear
/// layout) and hidden bias c are copied into L_l's weight and bias under no_grad. The Linear parameter objects are
/// kept, so an optimizer built over the model before pretraining stays valid. The pretrained features are
/// σ(L_l(x)): follow each Linear with a Sigmoid in the model to use them as the RBMs learnt them.
/// </remarks>
public static class LinearStackPretrainer
{
    /// <summary>Pretrains <paramref name="layers"/> on <paramref name="data"/> and writes the weights into them.</summary>
    /// <param name="layers">The Linear layers, bottom first (any device and dtype, all the same).</param>
    /// <param name="data">Inputs of the first layer, (N, in_1), values in [0, 1].</param>
    /// <param name="options">Pretraining options.</param>
    /// <param name="progress">Progress, Stage "layer l/n".</param>
    /// <param name="cancellationToken">Checked before every batch; the Linears are unchanged when cancelled.</param>
    /// <param name="generator">Generator for the RBMs' initial weights (W ~ N(0, 0.01²)); training randomness comes from the options' seeds.</param>
    /// <returns>Per layer, the metrics of every epoch.</returns>
    /// <exception cref="ArgumentException">No layers, consecutive layers whose widths do not chain, or a layer without a bias.</exception>
    public static IReadOnlyList<IReadOnlyList<RbmEpochMetrics>> Pretrain(IReadOnlyList<Linear> layers, Tensor data,
        DbnPretrainingOptions? options = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default,
        Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Count == 0) throw new ArgumentException("layers: expected at least one Linear.", nameof(layers));
        var sizes = new List<int> { checked((int)layers[0].in_features) };
        for (int l = 0; l < layers.Count; l++)
        {
            if (layers[l].in_features != sizes[^1])
                throw new ArgumentException($"layers[{l}]: expected in_features = {sizes[^1]} (out_features of layers[{l - 1}]), got {layers[l].in_features}.", nameof(layers));
            if (layers[l].bias is null)   // checked before training: it would take the RBM's hidden bias c
                throw new ArgumentException($"layers[{l}]: expected a Linear with a bias to take the RBM's hidden bias c (p(h | x) = σ(W x + c)), got one without (hasBias: false).", nameof(layers));
            sizes.Add(checked((int)layers[l].out_features));
        }
        var w = layers[0].weight!;
        using var dbn = new DBN(sizes, device: w.device, dtype: w.dtype, generator: generator);
        var history = new GreedyPretrainer(dbn, options).Fit(data, progress: progress, cancellationToken: cancellationToken);
        for (int l = 0; l < layers.Count; l++) dbn.layers[l].CopyInto(layers[l]);
        return history;
    }
}

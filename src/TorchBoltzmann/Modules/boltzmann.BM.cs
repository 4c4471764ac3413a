using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann;

#pragma warning disable CS8981 // lowercase static class, like torch.nn
public static partial class boltzmann
#pragma warning restore CS8981
{
    /// <summary>
    /// Creates a general Boltzmann machine over n_visible + n_hidden units (visible first) with w_ij ~ N(0, 0.01²) on the
    /// connected pairs and zero biases; see <see cref="BoltzmannMachine"/>.
    /// </summary>
    /// <param name="n_visible">Number of visible units (≥ 1).</param>
    /// <param name="n_hidden">Number of hidden units (≥ 0).</param>
    /// <param name="connectivity">Which pairs are connected (default: all of them).</param>
    /// <param name="hidden_layers">For <see cref="Connectivity.Layered"/>: the hidden layer sizes, summing to n_hidden.</param>
    /// <param name="mask">For <see cref="Connectivity.Given"/>: a symmetric (n, n) 0/1 mask with a zero diagonal.</param>
    /// <param name="spins">Units take values in {−1, +1} (true) instead of {0, 1}.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Floating-point type of the parameters.</param>
    /// <param name="generator">Generator for the initial weights.</param>
    /// <exception cref="ArgumentException">An option does not fit the others (the message names it, what was expected and what came).</exception>
    public static BoltzmannMachine BM(int n_visible, int n_hidden, Connectivity connectivity = Connectivity.Full,
                                      int[]? hidden_layers = null, Tensor? mask = null, bool spins = false,
                                      Device? device = null, ScalarType? dtype = null, Generator? generator = null)
    {
        if (n_visible < 1) throw new ArgumentOutOfRangeException(nameof(n_visible), n_visible, "n_visible: expected at least 1.");
        if (n_hidden < 0) throw new ArgumentOutOfRangeException(nameof(n_hidden), n_hidden, "n_hidden: expected at least 0.");
        if (connectivity != Connectivity.Layered && hidden_layers is not null)
            throw new ArgumentException($"hidden_layers: only for connectivity Layered, got connectivity {connectivity}.", nameof(hidden_layers));
        if (connectivity != Connectivity.Given && mask is not null)
            throw new ArgumentException($"mask: only for connectivity Given, got connectivity {connectivity}.", nameof(mask));
        using var built = connectivity switch
        {
            Connectivity.Full => BoltzmannMachine.full_mask(n_visible + n_hidden),
            Connectivity.Bipartite => BoltzmannMachine.layered_mask(n_hidden == 0 ? [n_visible] : [n_visible, n_hidden]),
            Connectivity.Layered => BoltzmannMachine.layered_mask(LayerSizes(n_visible, n_hidden, hidden_layers)),
            Connectivity.Given => mask?.clone() ?? throw new ArgumentException("mask: connectivity Given needs a mask, got none.", nameof(mask)),
            _ => throw new ArgumentOutOfRangeException(nameof(connectivity), connectivity, "connectivity: expected Full, Bipartite, Layered or Given."),
        };
        return new BoltzmannMachine(n_visible, n_hidden, built, spins ? Units.UnitType.Spin : Units.UnitType.Bernoulli, device, dtype, generator);
    }

    private static int[] LayerSizes(int nVisible, int nHidden, int[]? hiddenLayers)
    {
        if (hiddenLayers is null || hiddenLayers.Length == 0 || hiddenLayers.Any(s => s < 1) || hiddenLayers.Sum() != nHidden)
            throw new ArgumentException($"hidden_layers: expected positive sizes summing to n_hidden = {nHidden}, got [{string.Join(", ", hiddenLayers ?? [])}].", "hidden_layers");
        return [nVisible, .. hiddenLayers];
    }
}

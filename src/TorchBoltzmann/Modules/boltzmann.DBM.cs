using TorchBoltzmann.Modules;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann;

#pragma warning disable CS8981 // lowercase static class, like torch.nn
public static partial class boltzmann
#pragma warning restore CS8981
{
    /// <summary>
    /// Creates a deep Boltzmann machine from layer widths, e.g. <c>boltzmann.DBM(new[] { 784, 500, 1000 })</c>: one
    /// weight matrix per pair of adjacent layers, W ~ N(0, 0.01²), zero biases; see <see cref="Modules.DBM"/>.
    /// </summary>
    /// <param name="layer_sizes">[n_visible, n_1, …, n_L], at least two hidden layers.</param>
    /// <param name="visible_units">The visible unit type (default Bernoulli); every hidden layer is Bernoulli.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Floating-point type of the parameters.</param>
    /// <param name="generator">Generator for the initial weights.</param>
    /// <exception cref="ArgumentException">Fewer than three sizes, a size below 1, or an unsupported unit type or dtype.</exception>
    public static DBM DBM(IReadOnlyList<int> layer_sizes, UnitType? visible_units = null, Device? device = null, ScalarType? dtype = null,
                          Generator? generator = null)
        => new(layer_sizes, visible_units, device, dtype, generator);
}

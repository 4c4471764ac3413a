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
    /// Creates a deep belief network from layer widths, e.g. <c>boltzmann.DBN([784, 500, 500, 2000])</c>: one RBM per
    /// adjacent pair, W ~ N(0, 0.01²), zero biases. With <paramref name="n_classes"/> &gt; 0 the top RBM's visible layer
    /// is [features ; one-hot label] (Hinton, Osindero &amp; Teh 2006), e.g. 500 + 10 → 2000.
    /// </summary>
    /// <param name="layer_sizes">[n_visible, n_hidden₁, …, n_hiddenᴸ], at least two entries.</param>
    /// <param name="n_classes">Softmax label units joined to the top RBM (0 = none).</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Floating-point type of the parameters.</param>
    /// <param name="generator">Generator for the initial weights.</param>
    /// <param name="visible_units">The bottom RBM's visible unit type (default Bernoulli); every hidden layer is Bernoulli.</param>
    public static DBN DBN(IReadOnlyList<int> layer_sizes, int n_classes = 0, Device? device = null, ScalarType? dtype = null,
                          Generator? generator = null, UnitType? visible_units = null)
        => new(layer_sizes, n_classes, device, dtype, generator, visible_units);
}

using TorchBoltzmann.Modules;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann;

/// <summary>
/// Factories for TorchBoltzmann modules, in the style of <c>torch.nn</c>: <c>boltzmann.RBM(784, 500)</c>.
/// </summary>
#pragma warning disable CS8981 // lowercase static class, like torch.nn
public static partial class boltzmann
#pragma warning restore CS8981
{
    /// <summary>
    /// Creates a restricted Boltzmann machine with W ~ N(0, 0.01²) and zero biases.
    /// </summary>
    /// <param name="n_visible">Number of visible units.</param>
    /// <param name="n_hidden">Number of hidden units.</param>
    /// <param name="visible">Visible unit type (default Bernoulli).</param>
    /// <param name="hidden">Hidden unit type (default Bernoulli).</param>
    /// <param name="device">Device of the parameters (default: TorchSharp's default device).</param>
    /// <param name="dtype">Floating-point type of the parameters (default: TorchSharp's default dtype).</param>
    /// <param name="generator">Generator for the initial weights.</param>
    public static RBM RBM(int n_visible, int n_hidden, UnitType? visible = null, UnitType? hidden = null,
                          Device? device = null, ScalarType? dtype = null, Generator? generator = null)
        => new(n_visible, n_hidden, visible, hidden, device, dtype, generator);
}

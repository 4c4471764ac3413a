using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann;

/// <summary>
/// A Boltzmann machine seen from its visible units: at inverse temperature β it defines
/// <code>p_β(v) = e^{−F_β(v)} / Z_β,   F_β(v) = −log Σ_h e^{−βE(v,h)},   Z_β = Σ_v e^{−F_β(v)}</code>
/// (the sum over h an integral for continuous hidden units; F_β(v) = βE(v) for a machine without hidden units). β = 1
/// is the model itself, β = 0 the uniform distribution; T = 1/β is the temperature of the samplers.
/// </summary>
/// <remarks>
/// This is what exact enumeration (<see cref="Evaluation.ExactEnumeration"/>), the likelihood and the free-energy
/// metrics (<see cref="Evaluation.RbmMetrics"/>) need, so they work on any machine that implements it:
/// <see cref="Modules.RBM"/> does. A new machine implements <see cref="free_energy"/> for its own structure and gets those
/// for free.
/// </remarks>
public interface IEnergyModel
{
    /// <summary>Number of visible units.</summary>
    int n_visible { get; }

    /// <summary>Unit type of the visible layer (its valid values, and the states exact enumeration lists).</summary>
    UnitType visible_units { get; }

    /// <summary>Device of the parameters; inputs must live there.</summary>
    Device device { get; }

    /// <summary>Floating-point type of the parameters.</summary>
    ScalarType dtype { get; }

    /// <summary>
    /// The free energy F_β(v) = −log Σ_h e^{−βE(v,h)} of each row of <paramref name="v"/>, differentiable in the
    /// parameters.
    /// </summary>
    /// <param name="v">Visible states, (B, n_visible) or (n_visible).</param>
    /// <param name="beta">Inverse temperature β ≥ 0.</param>
    /// <returns>Shape (B), or a scalar for a single vector.</returns>
    /// <exception cref="ArgumentException">The input's shape or values do not fit the visible layer.</exception>
    /// <exception cref="ArgumentOutOfRangeException">β is negative or not finite.</exception>
    Tensor free_energy(Tensor v, double beta = 1.0);

    /// <summary>
    /// Throws <see cref="ArgumentException"/> naming <paramref name="what"/> unless <paramref name="v"/> is a visible
    /// batch (B, n_visible) or vector (n_visible) of values the visible units can take.
    /// </summary>
    /// <param name="v">The tensor to check.</param>
    /// <param name="what">What it is, for the message.</param>
    void check_visible(Tensor v, string what = "visible input");
}

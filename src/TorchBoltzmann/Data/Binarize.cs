using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Data;

/// <summary>
/// Turns intensities x ∈ [0, 1] into binary {0, 1} data for Bernoulli visible units.
/// </summary>
/// <remarks>
/// Both methods require a floating-point tensor with every element in [0, 1] (no NaN) and return a new tensor of
/// the same shape, dtype and device.
/// </remarks>
public static class Binarize
{
    /// <summary>Deterministic binarization: y = 1 where x &gt; <paramref name="threshold"/>, else 0.</summary>
    /// <param name="x">Intensities in [0, 1], floating point.</param>
    /// <param name="threshold">The cut; a finite number (0.5 by default).</param>
    /// <returns>A tensor of 0s and 1s with the dtype of <paramref name="x"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="x"/> is not floating point, or holds NaN or values outside [0, 1].</exception>
    public static Tensor Threshold(Tensor x, double threshold = 0.5)
    {
        Validate(x);
        if (!double.IsFinite(threshold))
        {
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "The threshold must be a finite number.");
        }

        using var mask = x.gt(threshold);
        return mask.to_type(x.dtype);
    }

    /// <summary>Stochastic binarization: y ~ Bernoulli(x) elementwise, i.e. P(y = 1) = x, so E[y] = x.</summary>
    /// <param name="x">Probabilities in [0, 1], floating point.</param>
    /// <param name="generator">
    /// Random source, on the device of <paramref name="x"/>; the global generator when null.
    /// The same seed gives the same result.
    /// </param>
    /// <returns>A tensor of 0s and 1s with the dtype of <paramref name="x"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="x"/> is not floating point, or holds NaN or values outside [0, 1].</exception>
    public static Tensor Stochastic(Tensor x, Generator? generator = null)
    {
        Validate(x);
        return torch.bernoulli(x, generator);
    }

    /// <summary>Checks that <paramref name="x"/> is floating point with every element in [0, 1] and no NaN.</summary>
    internal static void Validate(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!torch.is_floating_point(x))
        {
            throw new ArgumentException($"Expected a floating-point tensor with values in [0, 1], got dtype {x.dtype}.", nameof(x));
        }

        if (x.numel() == 0)
        {
            return;
        }

        using var nan = x.isnan();
        using var anyNan = nan.any();
        if (anyNan.item<bool>())
        {
            using var nanCount = nan.sum();
            throw new ArgumentException(
                $"Expected values in [0, 1], got {nanCount.item<long>()} NaN value(s).", nameof(x));
        }

        using var min = x.min();
        using var max = x.max();
        double lo = min.ToDouble();
        double hi = max.ToDouble();
        if (lo < 0 || hi > 1)
        {
            throw new ArgumentException($"Expected values in [0, 1], got min {lo} and max {hi}.", nameof(x));
        }
    }
}

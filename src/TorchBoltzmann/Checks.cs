using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann;

/// <summary>
/// The argument checks that modules, samplers, trainers and metrics share, so that each rule has one wording: every
/// message names what was checked, what was expected and what came.
/// </summary>
internal static class Checks
{
    /// <summary>T must be finite and positive: T ≤ 0 would invert or zero the net inputs η / T (0/0 = NaN at T = 0).</summary>
    /// <exception cref="ArgumentOutOfRangeException">T is not finite and positive.</exception>
    public static void Temperature(double temperature)
    {
        if (!(temperature > 0) || double.IsPositiveInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature: expected a finite T > 0.");
    }

    /// <summary>β must be finite and ≥ 0 (β = 0: the uniform distribution).</summary>
    /// <exception cref="ArgumentOutOfRangeException">β is negative, infinite or NaN.</exception>
    public static void Beta(double beta)
    {
        if (!(beta >= 0) || double.IsInfinity(beta))
            throw new ArgumentOutOfRangeException(nameof(beta), beta, "beta: expected a finite β ≥ 0 (the inverse temperature).");
    }

    /// <summary>
    /// Requires a batch of rows, shape (<paramref name="rows"/> ≥ 1, width): rank 2 and not empty (the width itself is
    /// <see cref="Width"/>'s). <paramref name="hint"/> is appended to the message.
    /// </summary>
    public static void Rows(Tensor x, int width, string what, string rows = "N", string hint = "", string? param = null)
    {
        if (x.dim() != 2 || x.shape[0] == 0)
            throw new ArgumentException($"{what}: expected shape ({rows} ≥ 1, {width}), got ({string.Join(", ", x.shape)}){hint}.", param);
    }

    /// <summary>Requires a floating-point batch (B, width) or vector (width).</summary>
    public static void Width(Tensor x, int width, string what)
    {
        ArgumentNullException.ThrowIfNull(x, what);
        if (x.dim() < 1 || x.dim() > 2)
            throw new ArgumentException($"{what}: expected a tensor of shape (B, {width}) or ({width}), got rank {x.dim()} with shape ({string.Join(", ", x.shape)}).");
        if (x.shape[^1] != width)
            throw new ArgumentException($"{what}: expected {width} units in the last dimension, shape (B, {width}) or ({width}), got {x.shape[^1]} (shape ({string.Join(", ", x.shape)})).");
        if (!Functional.DTypes.IsFloat(x.dtype))
            throw new ArgumentException($"{what}: expected a floating-point tensor, got {x.dtype}.");
    }

    /// <summary>
    /// Requires every class index in [0, c) (none when empty), naming <paramref name="what"/> and the range found;
    /// <paramref name="why"/> (e.g. where c comes from) follows the expected range in the message.
    /// </summary>
    public static void ClassRange(Tensor classes, long c, string what, string why = "")
    {
        if (classes.numel() == 0) return;
        using var lo = classes.min();
        using var hi = classes.max();
        long min = lo.ToInt64(), max = hi.ToInt64();
        if (min < 0 || max >= c) throw new ArgumentException($"{what}: expected class indices in [0, {c - 1}]{why}, got values in [{min}, {max}].");
    }

    /// <summary>A module's <c>compute_dtype</c>: null (the model's own), bfloat16, float32 or float64; anything else refused.</summary>
    public static ScalarType? ComputeDtype(ScalarType? value, string param) =>
        value is null or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64 ? value
            : throw new ArgumentOutOfRangeException(param, value, $"{param}: expected BFloat16, Float32, Float64 or null (Float16 products without loss scaling lose small statistics).");

    /// <summary>Refuses an option that draws {0, 1} visible states (<paramref name="option"/>) for a model whose visible
    /// units are not Bernoulli.</summary>
    public static void BernoulliVisible(Units.UnitType visible, string option, string param)
    {
        if (visible.Name != Units.UnitType.Bernoulli.Name)
            throw new ArgumentException($"options: {option} draws {{0, 1}} visible states; expected Bernoulli visible units, got {visible.Name}.", param);
    }

    /// <summary>True when Σ t is finite, i.e. no element is NaN or ±∞ (null counts as finite): the trainers' cheap check of a
    /// statistic before they step (one reduction, one host read).</summary>
    public static bool Finite(Tensor? t)
    {
        if (t is null) return true;
        using var sum = t.sum();
        return double.IsFinite(sum.ToDouble());
    }

    /// <summary>True when every element of every parameter of <paramref name="module"/> is finite: the trainers' divergence check after an epoch.</summary>
    public static bool AllFinite(TorchSharp.torch.nn.Module module)
    {
        using var _ = torch.no_grad();
        foreach (var p in module.parameters())
        {
            using var finite = p.isfinite();
            using var ok = finite.all();
            if (!ok.item<bool>()) return false;
        }
        return true;
    }
}

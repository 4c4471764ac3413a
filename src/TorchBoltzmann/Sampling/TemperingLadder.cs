using System.Globalization;

namespace TorchBoltzmann.Sampling;

/// <summary>
/// The inverse temperatures of parallel tempering (<see cref="ParallelTempering"/>): β₀ = 1 (the model itself) &gt; β₁
/// &gt; … &gt; β_M &gt; 0, one replica set per level. Immutable.
/// </summary>
/// <remarks>
/// The hottest level β_M must make the model easy to mix (a chain at β_M crosses between the modes), and neighbouring
/// levels must overlap enough for swaps to be accepted (<see cref="ParallelTempering.swap_acceptance"/> reports how
/// often they are). β_M &gt; 0 is required: Gaussian units have no distribution at β = 0, and a Gibbs step at T = ∞ is
/// not defined.
/// </remarks>
public sealed class TemperingLadder
{
    private readonly double[] _betas;

    /// <summary>A ladder with the given inverse temperatures.</summary>
    /// <param name="betas">β₀ = 1 &gt; β₁ &gt; … &gt; β_M &gt; 0, at least two levels.</param>
    /// <exception cref="ArgumentException">Fewer than two levels, β₀ ≠ 1, not strictly decreasing, or β_M not positive.</exception>
    public TemperingLadder(IEnumerable<double> betas)
    {
        ArgumentNullException.ThrowIfNull(betas);
        _betas = betas.ToArray();
        string got = $"got [{string.Join(", ", _betas.Select(b => b.ToString("R", CultureInfo.InvariantCulture)))}]";
        if (_betas.Length < 2)
            throw new ArgumentException($"betas: expected at least two inverse temperatures, {got}.", nameof(betas));
        if (_betas[0] != 1.0)
            throw new ArgumentException($"betas: expected β₀ = 1 (the model itself), {got}.", nameof(betas));
        for (int i = 1; i < _betas.Length; i++)
            if (!(_betas[i] < _betas[i - 1]) || !(_betas[i] > 0) || !double.IsFinite(_betas[i]))
                throw new ArgumentException($"betas: expected strictly decreasing finite values above 0, {got}.", nameof(betas));
    }

    /// <summary>
    /// <paramref name="levels"/> inverse temperatures equally spaced from 1 down to <paramref name="min_beta"/>:
    /// β_m = 1 − m (1 − β_min)/(levels − 1). The default, 10 levels down to 0.1, is the library's choice (Desjardins et
    /// al. 2010 also space β linearly); state the ladder with a reported result.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Fewer than two levels, or β_min not in (0, 1).</exception>
    public static TemperingLadder Linear(int levels = 10, double min_beta = 0.1)
    {
        Check(levels, min_beta);
        return new TemperingLadder(Enumerable.Range(0, levels).Select(m => m == 0 ? 1.0 : m == levels - 1 ? min_beta : 1.0 - m * (1.0 - min_beta) / (levels - 1)));
    }

    /// <summary>
    /// <paramref name="levels"/> inverse temperatures in geometric progression from 1 to <paramref name="min_beta"/>:
    /// β_m = β_min^{m/(levels − 1)} (equal temperature ratios, denser near β = 1).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Fewer than two levels, or β_min not in (0, 1).</exception>
    public static TemperingLadder Geometric(int levels, double min_beta)
    {
        Check(levels, min_beta);
        return new TemperingLadder(Enumerable.Range(0, levels).Select(m => m == 0 ? 1.0 : m == levels - 1 ? min_beta : Math.Pow(min_beta, m / (double)(levels - 1))));
    }

    private static void Check(int levels, double min_beta)
    {
        if (levels < 2) throw new ArgumentOutOfRangeException(nameof(levels), levels, "levels: expected at least 2.");
        if (!(min_beta > 0 && min_beta < 1)) throw new ArgumentOutOfRangeException(nameof(min_beta), min_beta, "min_beta: expected a value in (0, 1).");
    }

    /// <summary>The inverse temperatures, β₀ = 1 first.</summary>
    public IReadOnlyList<double> betas => _betas;

    /// <summary>Number of levels M + 1.</summary>
    public int levels => _betas.Length;

    /// <summary>The ladder as text, e.g. <c>β(1, 0.9, …, 0.1)</c> with every value (used in checkpoint identities).</summary>
    public override string ToString() => $"β({string.Join(", ", _betas.Select(b => b.ToString("R", CultureInfo.InvariantCulture)))})";
}

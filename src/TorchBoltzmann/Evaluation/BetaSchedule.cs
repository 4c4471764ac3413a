using System.Globalization;

namespace TorchBoltzmann.Evaluation;

/// <summary>
/// The inverse temperatures 0 = β₀ &lt; β₁ &lt; … &lt; β_K = 1 of an annealing run (AIS, RAISE): K transitions, one per
/// intermediate distribution p_k ∝ p_A^{1−β_k} p_B^{β_k} between the base-rate model A and the target B.
/// </summary>
/// <remarks>
/// The default, <see cref="SalakhutdinovMurray2008"/>, is the schedule of Salakhutdinov &amp; Murray (2008, §4): β
/// spaced uniformly with 500 steps in [0, 0.5], 4,000 in [0.5, 0.9] and 10,000 in [0.9, 1] (K = 14,500).
/// <see cref="Scaled"/> keeps those proportions for another K (fewer steps: faster, larger variance of the weights).
/// </remarks>
public sealed class BetaSchedule
{
    private readonly double[] _betas;

    private BetaSchedule(double[] betas) => _betas = betas;

    /// <summary>β₀ … β_K (β₀ = 0, β_K = 1, strictly increasing).</summary>
    public IReadOnlyList<double> betas => _betas;

    /// <summary>Number of transitions K (one less than the number of β values).</summary>
    public int steps => _betas.Length - 1;

    /// <summary>The paper's schedule: 500 steps in [0, 0.5], 4,000 in [0.5, 0.9], 10,000 in [0.9, 1] (K = 14,500).</summary>
    public static BetaSchedule SalakhutdinovMurray2008 { get; } = Segments((0.5, 500), (0.9, 4000), (1.0, 10000));

    /// <summary>
    /// K steps in the proportions of <see cref="SalakhutdinovMurray2008"/>: round(500K/14500) in [0, 0.5],
    /// round(4000K/14500) in [0.5, 0.9], the rest in [0.9, 1], each at least 1.
    /// </summary>
    /// <param name="steps">K ≥ 3.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="steps"/> is less than 3.</exception>
    public static BetaSchedule Scaled(int steps)
    {
        if (steps < 3) throw new ArgumentOutOfRangeException(nameof(steps), steps, "steps: expected at least 3 (one per segment of the schedule).");
        int a = Math.Max(1, (int)Math.Round(steps * 500.0 / 14500));
        int b = Math.Max(1, (int)Math.Round(steps * 4000.0 / 14500));
        int c = steps - a - b;
        if (c < 1) { b -= 1 - c; c = 1; }
        return Segments((0.5, a), (0.9, b), (1.0, c));
    }

    /// <summary>K steps spaced uniformly in [0, 1]: β_k = k/K.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="steps"/> is less than 1.</exception>
    public static BetaSchedule Linear(int steps)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "steps: expected at least 1.");
        return Segments((1.0, steps));
    }

    /// <summary>A schedule from its values, which must start at 0, end at 1 and increase strictly.</summary>
    /// <exception cref="ArgumentException">The values are not such a sequence.</exception>
    public static BetaSchedule From(IEnumerable<double> betas)
    {
        ArgumentNullException.ThrowIfNull(betas);
        var b = betas.ToArray();
        if (b.Length < 2 || b[0] != 0 || b[^1] != 1)
            throw new ArgumentException($"betas: expected a sequence from 0 to 1, got {b.Length} values{(b.Length > 0 ? $" from {b[0].ToString(CultureInfo.InvariantCulture)} to {b[^1].ToString(CultureInfo.InvariantCulture)}" : "")}.", nameof(betas));
        for (int i = 1; i < b.Length; i++)
            if (!(b[i] > b[i - 1]))
                throw new ArgumentException($"betas: expected strictly increasing values, got β[{i - 1}] = {b[i - 1].ToString(CultureInfo.InvariantCulture)}, β[{i}] = {b[i].ToString(CultureInfo.InvariantCulture)}.", nameof(betas));
        return new BetaSchedule(b);
    }

    /// <summary>Uniform spacing within consecutive segments ending at the given β, starting from 0.</summary>
    private static BetaSchedule Segments(params (double End, int Steps)[] segments)
    {
        var b = new List<double> { 0.0 };
        double start = 0;
        foreach (var (end, n) in segments)
        {
            for (int i = 1; i <= n; i++) b.Add(i == n ? end : start + (end - start) * i / n);
            start = end;
        }
        return new BetaSchedule(b.ToArray());
    }

    /// <inheritdoc />
    public override string ToString() => $"BetaSchedule(steps={steps})";
}

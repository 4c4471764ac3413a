namespace TorchBoltzmann.Sampling;

/// <summary>
/// The temperatures of simulated annealing, one per stage, highest first as a rule (any positive finite sequence is
/// accepted): <see cref="Geometric"/>, <see cref="Linear"/> or <see cref="Given"/>.
/// </summary>
public sealed class AnnealingSchedule
{
    private AnnealingSchedule(double[] temperatures) => Temperatures = temperatures;

    /// <summary>The temperature of each stage, in order.</summary>
    public IReadOnlyList<double> Temperatures { get; }

    /// <summary>
    /// T_k = T₀ (T₁ / T₀)^{k / (steps − 1)}, k = 0 … steps − 1: a constant cooling factor per stage (Kirkpatrick, Gelatt &amp;
    /// Vecchi 1983). One step gives T₀.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A temperature is not finite and positive, or steps &lt; 1.</exception>
    public static AnnealingSchedule Geometric(double start, double end, int steps)
    {
        CheckEnds(start, end, steps);
        return new(Enumerable.Range(0, steps).Select(k => steps == 1 ? start : start * Math.Pow(end / start, k / (double)(steps - 1))).ToArray());
    }

    /// <summary>T_k = T₀ + (T₁ − T₀) k / (steps − 1), k = 0 … steps − 1. One step gives T₀.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A temperature is not finite and positive, or steps &lt; 1.</exception>
    public static AnnealingSchedule Linear(double start, double end, int steps)
    {
        CheckEnds(start, end, steps);
        return new(Enumerable.Range(0, steps).Select(k => steps == 1 ? start : start + (end - start) * k / (steps - 1)).ToArray());
    }

    /// <summary>The temperatures given, in order (copied).</summary>
    /// <exception cref="ArgumentException">Empty, or a temperature is not finite and positive.</exception>
    public static AnnealingSchedule Given(IEnumerable<double> temperatures)
    {
        ArgumentNullException.ThrowIfNull(temperatures);
        var t = temperatures.ToArray();
        if (t.Length == 0) throw new ArgumentException("temperatures: expected at least one, got none.", nameof(temperatures));
        for (int k = 0; k < t.Length; k++)
            if (!(t[k] > 0) || double.IsPositiveInfinity(t[k]))
                throw new ArgumentException($"temperatures: expected finite T > 0, got {t[k]} at stage {k}.", nameof(temperatures));
        return new(t);
    }

    private static void CheckEnds(double start, double end, int steps)
    {
        if (!(start > 0) || double.IsPositiveInfinity(start)) throw new ArgumentOutOfRangeException(nameof(start), start, "start: expected a finite T > 0.");
        if (!(end > 0) || double.IsPositiveInfinity(end)) throw new ArgumentOutOfRangeException(nameof(end), end, "end: expected a finite T > 0.");
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "steps: expected at least 1.");
    }

    /// <inheritdoc />
    public override string ToString() => $"AnnealingSchedule({Temperatures.Count} stages, T from {Temperatures[0]:G4} to {Temperatures[^1]:G4})";
}

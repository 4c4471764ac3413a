namespace TorchBoltzmann.Evaluation;

/// <summary>How a log-partition function was obtained.</summary>
public enum PartitionFunctionMethod
{
    /// <summary>Summed over every state of one layer (<see cref="ExactEnumeration.log_partition"/>): no error beyond rounding.</summary>
    Exact,

    /// <summary>Annealed importance sampling (<see cref="AnnealedImportanceSampling"/>): a stochastic estimate with an interval.</summary>
    Ais,
}

/// <summary>
/// A log-partition function log Z with its interval: exact (lower = upper = log Z), or estimated by AIS from M importance
/// weights w_m, as Ẑ = Z_A · (1/M) Σ_m w_m with the interval log(Ẑ ± 3σ̂).
/// </summary>
/// <remarks>
/// <para>σ̂ is the standard error of the mean weight: σ̂ = Z_A · s / √M with s the sample standard deviation of the w_m
/// (divisor M − 1). Everything is computed in the log domain, scaled by the largest weight: with ℓ_m = log w_m,
/// a = max ℓ, r_m = e^{ℓ_m − a} ∈ (0, 1],
/// <code>log Ẑ = log Z_A + a + log mean(r),   log(Ẑ ± 3σ̂) = log Z_A + a + log(mean(r) ± 3 std(r)/√M)</code>
/// so no weight over- or underflows. When mean(r) − 3 std(r)/√M ≤ 0 the lower end is −∞.</para>
/// <para>Which side the estimate errs on: E[Ẑ] = Z (AIS is unbiased in Z), so E[log Ẑ] ≤ log Z by Jensen's inequality
/// and P(log Ẑ &gt; log Z + t) ≤ e^{−t} by Markov's: log Ẑ is a stochastic lower bound on log Z, and a log-likelihood
/// −F(v) − log Ẑ computed from it is a stochastic upper bound (it tends to be optimistic). The interval assumes the
/// weights' variance is estimated well; with too few β steps the weights are heavy-tailed, s underestimates their spread,
/// and the interval can miss log Z (low). <see cref="EffectiveSampleSize"/> tells when: (Σw)²/Σw² far below M.</para>
/// </remarks>
public sealed record PartitionFunctionEstimate
{
    /// <summary>log Z (exact) or log Ẑ (AIS).</summary>
    public required double LogZ { get; init; }

    /// <summary>log(Ẑ − 3σ̂), −∞ when Ẑ − 3σ̂ ≤ 0; equal to <see cref="LogZ"/> when exact.</summary>
    public required double LogZLower { get; init; }

    /// <summary>log(Ẑ + 3σ̂); equal to <see cref="LogZ"/> when exact.</summary>
    public required double LogZUpper { get; init; }

    /// <summary>How it was obtained.</summary>
    public required PartitionFunctionMethod Method { get; init; }

    /// <summary>The raw log-weights log w_m of the AIS runs (without log Z_A); empty when exact.</summary>
    public IReadOnlyList<double> LogWeights { get; init; } = [];

    /// <summary>log Z_A of the base-rate model the AIS runs started from; NaN when exact.</summary>
    public double LogZBase { get; init; } = double.NaN;

    /// <summary>Number of annealing steps K (0 when exact).</summary>
    public int Steps { get; init; }

    /// <summary>Number of AIS runs M (0 when exact).</summary>
    public int Runs => LogWeights.Count;

    /// <summary>Effective sample size of the weights, (Σ w)² / Σ w² ∈ [1, M]; NaN when exact.</summary>
    public double EffectiveSampleSize { get; init; } = double.NaN;

    /// <summary>An exact log Z.</summary>
    public static PartitionFunctionEstimate Exact(double logZ) =>
        new() { LogZ = logZ, LogZLower = logZ, LogZUpper = logZ, Method = PartitionFunctionMethod.Exact };

    /// <summary>
    /// The AIS estimate from raw log-weights ℓ_m and the base model's log Z_A (formulas in the remarks).
    /// </summary>
    /// <param name="logWeights">log w_m of each run (at least 2).</param>
    /// <param name="logZBase">log Z_A.</param>
    /// <param name="steps">Annealing steps K (for the record).</param>
    /// <exception cref="ArgumentException">Fewer than two weights, or a weight that is NaN or +∞.</exception>
    public static PartitionFunctionEstimate FromLogWeights(IReadOnlyList<double> logWeights, double logZBase, int steps)
    {
        ArgumentNullException.ThrowIfNull(logWeights);
        int m = logWeights.Count;
        if (m < 2) throw new ArgumentException($"logWeights: expected at least 2 runs (σ̂ needs them), got {m}.", nameof(logWeights));
        if (logWeights.Any(l => double.IsNaN(l) || double.IsPositiveInfinity(l)))
            throw new ArgumentException("logWeights: a weight is NaN or +∞ (the annealing diverged).", nameof(logWeights));
        double a = logWeights.Max();
        var r = logWeights.Select(l => Math.Exp(l - a)).ToArray();
        double mean = r.Average();
        double var = r.Sum(x => (x - mean) * (x - mean)) / (m - 1);
        double se = Math.Sqrt(var / m);
        double sumSq = r.Sum(x => x * x);
        double lower = mean - 3 * se;
        return new PartitionFunctionEstimate
        {
            LogZ = logZBase + a + Math.Log(mean),
            LogZLower = lower > 0 ? logZBase + a + Math.Log(lower) : double.NegativeInfinity,
            LogZUpper = logZBase + a + Math.Log(mean + 3 * se),
            Method = PartitionFunctionMethod.Ais,
            LogWeights = logWeights.ToArray(),
            LogZBase = logZBase,
            Steps = steps,
            EffectiveSampleSize = m * mean * m * mean / sumSq,
        };
    }
}

namespace TorchBoltzmann.Evaluation;

/// <summary>Settings of annealed importance sampling (<see cref="AnnealedImportanceSampling"/>) and of RAISE (<see cref="ReverseAnnealing"/>).</summary>
public sealed record AisOptions
{
    /// <summary>AIS runs M, annealed in parallel as one batch of chains on the model's device (default 100, as in the paper).</summary>
    public int Runs { get; init; } = 100;

    /// <summary>The β schedule (default <see cref="BetaSchedule.SalakhutdinovMurray2008"/>, K = 14,500).</summary>
    public BetaSchedule Schedule { get; init; } = BetaSchedule.SalakhutdinovMurray2008;

    /// <summary>
    /// Smoothing λ of the base-rate model's pixel means (<see cref="AnnealedImportanceSampling.base_rate_bias"/>; default
    /// 0.05, as in Salakhutdinov's code).
    /// </summary>
    public double BaseRateSmoothing { get; init; } = 0.05;

    /// <summary>Data rows per batch of chains in RAISE (one chain per row; default 1,000).</summary>
    public int BatchSize { get; init; } = 1000;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (Runs < 2) throw new ArgumentException($"Runs: expected at least 2 (σ̂ needs two weights), got {Runs}.", nameof(Runs));
        ArgumentNullException.ThrowIfNull(Schedule, nameof(Schedule));
        if (!(BaseRateSmoothing > 0) || !double.IsFinite(BaseRateSmoothing))
            throw new ArgumentException($"BaseRateSmoothing: expected a finite λ > 0, got {BaseRateSmoothing}.", nameof(BaseRateSmoothing));
        if (BatchSize < 1) throw new ArgumentException($"BatchSize: expected at least 1, got {BatchSize}.", nameof(BatchSize));
    }
}

namespace TorchBoltzmann.Evaluation;

/// <summary>Where an annealing run (AIS or RAISE) stands: step <see cref="Step"/> of <see cref="Steps"/>.</summary>
/// <param name="Stage">What is being annealed, e.g. "AIS" or "RAISE".</param>
/// <param name="Step">Steps done.</param>
/// <param name="Steps">Steps in all.</param>
public readonly record struct AnnealingProgress(string Stage, long Step, long Steps);

using SkiaSharp;

namespace TorchBoltzmann.Visualization;

/// <summary>One line of a <see cref="LineChart"/>: points (X[i], Y[i]); NaN or infinite points are skipped (the line breaks there).</summary>
/// <param name="Name">Legend entry.</param>
/// <param name="X">X coordinates (for example epochs); same length as <paramref name="Y"/>.</param>
/// <param name="Y">Y coordinates (for example reconstruction error).</param>
public sealed record Series(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y)
{
    /// <summary>Line colour; null picks the next colour of <see cref="LineChart.Palette"/> by series index.</summary>
    public SKColor? Color { get; init; }

    /// <summary>Convenience: a series over X = 0, 1, 2, … (for example one value per epoch).</summary>
    /// <param name="name">Legend entry.</param>
    /// <param name="y">Y coordinates.</param>
    /// <returns>A series with X = 0 … y.Count − 1.</returns>
    public static Series FromValues(string name, IReadOnlyList<double> y)
    {
        ArgumentNullException.ThrowIfNull(y);
        return new Series(name, Enumerable.Range(0, y.Count).Select(i => (double)i).ToArray(), y);
    }
}

namespace TorchBoltzmann.Visualization;

/// <summary>What a <see cref="LineChart"/> draws.</summary>
/// <param name="Title">Chart title (drawn above the plot; empty for none).</param>
/// <param name="XLabel">X-axis label (empty for none).</param>
/// <param name="YLabel">Y-axis label (empty for none).</param>
/// <param name="Series">The lines, drawn in order; the legend lists them.</param>
/// <param name="Width">Image width in pixels (at least 100).</param>
/// <param name="Height">Image height in pixels (at least 100).</param>
public sealed record ChartSpec(
    string Title,
    string XLabel,
    string YLabel,
    IReadOnlyList<Series> Series,
    int Width = 800,
    int Height = 500);

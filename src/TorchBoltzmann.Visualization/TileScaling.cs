namespace TorchBoltzmann.Visualization;

/// <summary>How tile values are mapped to grey levels (black = 0, white = 255) by <see cref="ImageGrid"/>.</summary>
public enum TileScaling
{
    /// <summary>Values are taken as intensities in [0, 1]; values outside are clamped. Use for data and samples.</summary>
    Unit,

    /// <summary>Each tile is min-max scaled on its own: its minimum becomes black, its maximum white. Use for weight filters.</summary>
    PerTile,

    /// <summary>All tiles share one min-max scaling over every value: the global minimum is black, the maximum white.</summary>
    Global,
}

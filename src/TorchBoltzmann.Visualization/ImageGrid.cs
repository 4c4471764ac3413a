using System.Globalization;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Visualization;

/// <summary>
/// Renders a batch of images (data, samples, reconstructions or RBM weight filters) as a grey-scale PNG grid.
/// </summary>
/// <remarks>
/// Tiles are laid out row by row, each pixel enlarged to <c>scale × scale</c> image pixels, with <c>padding</c> pixels
/// between tiles (and in empty grid slots) drawn in <see cref="UnitPaddingGrey"/> (mid grey, which stands out against
/// black backgrounds and white strokes) for <see cref="TileScaling.Unit"/> and in <see cref="ScaledPaddingGrey"/>
/// (white, which stands out against filters centred on mid grey) for the min-max scalings. The image is
/// <c>columns·tileWidth·scale + (columns − 1)·padding</c> wide and <c>rows·tileHeight·scale + (rows − 1)·padding</c> high,
/// where <c>rows = ceil(N / columns)</c>.
/// </remarks>
public static class ImageGrid
{
    /// <summary>Grey level of the padding lines and empty grid slots with <see cref="TileScaling.Unit"/>.</summary>
    public const byte UnitPaddingGrey = 128;

    /// <summary>Grey level of the padding lines and empty grid slots with <see cref="TileScaling.PerTile"/> and <see cref="TileScaling.Global"/>.</summary>
    public const byte ScaledPaddingGrey = 255;

    /// <summary>Renders <paramref name="images"/> as a PNG grid and returns the PNG bytes.</summary>
    /// <param name="images">
    /// Shape [N, tileHeight·tileWidth] (flattened, row-major) or [N, tileHeight, tileWidth]; any real dtype, any device.
    /// Copied to the CPU as float32 without tracking gradients.
    /// </param>
    /// <param name="tileHeight">Height of one image in pixels.</param>
    /// <param name="tileWidth">Width of one image in pixels.</param>
    /// <param name="scaling">How values map to grey levels.</param>
    /// <param name="columns">Tiles per grid row; default <c>ceil(sqrt(N))</c>.</param>
    /// <param name="scale">Each image pixel becomes a <c>scale × scale</c> block (at least 1).</param>
    /// <param name="padding">Pixels between neighbouring tiles (0 or more).</param>
    /// <returns>The PNG file contents (8-bit grey).</returns>
    /// <exception cref="ArgumentException">
    /// The shape does not match the tile size, there are no images, a value is NaN or infinite, or an argument is out of range.
    /// </exception>
    public static byte[] EncodeTiles(Tensor images, int tileHeight, int tileWidth, TileScaling scaling = TileScaling.Unit,
        int? columns = null, int scale = 2, int padding = 1)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentOutOfRangeException.ThrowIfLessThan(tileHeight, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(tileWidth, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(padding);
        if (columns is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(columns), columns, "columns must be at least 1.");
        }
        if (!Enum.IsDefined(scaling))
        {
            throw new ArgumentOutOfRangeException(nameof(scaling), scaling, "Unknown tile scaling.");
        }

        var pixelsPerTile = checked(tileHeight * tileWidth);
        ValidateShape(images.shape, tileHeight, tileWidth, nameof(images));
        var count = checked((int)images.shape[0]);
        if (count == 0)
        {
            throw new ArgumentException(
                $"Expected at least one image; got shape {FormatShape(images.shape)} (N = 0).", nameof(images));
        }

        var values = ToCpuFloats(images, count, pixelsPerTile);
        for (var i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                var what = float.IsNaN(values[i]) ? "NaN" : "an infinite value";
                throw new ArgumentException(
                    $"Expected finite values; got {what} in image {i / pixelsPerTile} at pixel {i % pixelsPerTile}.",
                    nameof(images));
            }
        }

        var cols = columns ?? (int)Math.Ceiling(Math.Sqrt(count));
        var rows = (count + cols - 1) / cols;
        var tilePixelWidth = checked(tileWidth * scale);
        var tilePixelHeight = checked(tileHeight * scale);
        var width = checked(cols * tilePixelWidth + (cols - 1) * padding);
        var height = checked(rows * tilePixelHeight + (rows - 1) * padding);

        var grey = ToGrey(values, count, pixelsPerTile, scaling);

        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque));
        var rowBytes = bitmap.RowBytes;
        var pixels = bitmap.GetPixelSpan();
        pixels.Fill(scaling == TileScaling.Unit ? UnitPaddingGrey : ScaledPaddingGrey);
        for (var n = 0; n < count; n++)
        {
            var x0 = (n % cols) * (tilePixelWidth + padding);
            var y0 = (n / cols) * (tilePixelHeight + padding);
            for (var r = 0; r < tileHeight; r++)
            {
                for (var c = 0; c < tileWidth; c++)
                {
                    var g = grey[n * pixelsPerTile + r * tileWidth + c];
                    for (var dy = 0; dy < scale; dy++)
                    {
                        pixels.Slice((y0 + r * scale + dy) * rowBytes + x0 + c * scale, scale).Fill(g);
                    }
                }
            }
        }
        return PngFile.Encode(bitmap);
    }

    /// <summary>
    /// Renders <paramref name="images"/> like <see cref="EncodeTiles"/> and writes the PNG to <paramref name="path"/>
    /// atomically (temporary file in the same directory, then moved over the destination), creating the directory.
    /// </summary>
    /// <param name="path">Destination file; overwritten if it exists.</param>
    /// <param name="images">Shape [N, tileHeight·tileWidth] or [N, tileHeight, tileWidth].</param>
    /// <param name="tileHeight">Height of one image in pixels.</param>
    /// <param name="tileWidth">Width of one image in pixels.</param>
    /// <param name="scaling">How values map to grey levels.</param>
    /// <param name="columns">Tiles per grid row; default <c>ceil(sqrt(N))</c>.</param>
    /// <param name="scale">Each image pixel becomes a <c>scale × scale</c> block.</param>
    /// <param name="padding">Pixels between neighbouring tiles.</param>
    /// <exception cref="ArgumentException">See <see cref="EncodeTiles"/>.</exception>
    public static void SaveTiles(string path, Tensor images, int tileHeight, int tileWidth,
        TileScaling scaling = TileScaling.Unit, int? columns = null, int scale = 2, int padding = 1)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var png = EncodeTiles(images, tileHeight, tileWidth, scaling, columns, scale, padding);
        PngFile.WriteAtomic(path, png);
    }

    /// <summary>
    /// Renders the filters of an RBM weight matrix (each row one filter over the visible units), each tile min-max
    /// scaled on its own (<see cref="TileScaling.PerTile"/>), and returns the PNG bytes.
    /// </summary>
    /// <param name="weight">Shape (n_hidden, n_visible) with <c>n_visible = tileHeight·tileWidth</c>.</param>
    /// <param name="tileHeight">Height of the visible layer as an image.</param>
    /// <param name="tileWidth">Width of the visible layer as an image.</param>
    /// <param name="maxTiles">At most this many filters (the first rows) are drawn.</param>
    /// <param name="scale">Each weight becomes a <c>scale × scale</c> block.</param>
    /// <returns>The PNG file contents.</returns>
    /// <exception cref="ArgumentException">The weight is not 2-D with <c>tileHeight·tileWidth</c> columns, or it holds NaN.</exception>
    public static byte[] EncodeFilters(Tensor weight, int tileHeight, int tileWidth, int maxTiles = 100, int scale = 2)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTiles, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(tileHeight, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(tileWidth, 1);
        var visible = (long)tileHeight * tileWidth;
        if (weight.dim() != 2 || weight.shape[1] != visible)
        {
            throw new ArgumentException(
                $"Expected a weight of shape (n_hidden, {visible}) for {tileHeight}×{tileWidth} filters; got {FormatShape(weight.shape)}.",
                nameof(weight));
        }
        var take = (int)Math.Min(maxTiles, weight.shape[0]);
        if (take == weight.shape[0])
        {
            return EncodeTiles(weight, tileHeight, tileWidth, TileScaling.PerTile, scale: scale);
        }
        using var first = weight.narrow(0, 0, take);
        return EncodeTiles(first, tileHeight, tileWidth, TileScaling.PerTile, scale: scale);
    }

    /// <summary>
    /// Writes the filters of an RBM weight matrix as a PNG grid (see <see cref="EncodeFilters"/>), atomically.
    /// </summary>
    /// <param name="path">Destination file; overwritten if it exists; its directory is created.</param>
    /// <param name="weight">Shape (n_hidden, n_visible) with <c>n_visible = tileHeight·tileWidth</c>.</param>
    /// <param name="tileHeight">Height of the visible layer as an image.</param>
    /// <param name="tileWidth">Width of the visible layer as an image.</param>
    /// <param name="maxTiles">At most this many filters (the first rows) are drawn.</param>
    /// <param name="scale">Each weight becomes a <c>scale × scale</c> block.</param>
    /// <exception cref="ArgumentException">See <see cref="EncodeFilters"/>.</exception>
    public static void SaveFilters(string path, Tensor weight, int tileHeight, int tileWidth, int maxTiles = 100, int scale = 2)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var png = EncodeFilters(weight, tileHeight, tileWidth, maxTiles, scale);
        PngFile.WriteAtomic(path, png);
    }

    private static void ValidateShape(long[] shape, int tileHeight, int tileWidth, string paramName)
    {
        var flat = (long)tileHeight * tileWidth;
        var ok = shape.Length switch
        {
            2 => shape[1] == flat,
            3 => shape[1] == tileHeight && shape[2] == tileWidth,
            _ => false,
        };
        if (!ok)
        {
            throw new ArgumentException(
                $"Expected images of shape [N, {flat}] or [N, {tileHeight}, {tileWidth}] for {tileHeight}×{tileWidth} tiles; got {FormatShape(shape)}.",
                paramName);
        }
    }

    private static float[] ToCpuFloats(Tensor images, int count, int pixelsPerTile)
    {
        if (images.is_complex())
        {
            throw new ArgumentException($"Expected a real dtype; got {images.dtype}.", nameof(images));
        }
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var cpu = images.detach().to(torch.CPU).to_type(ScalarType.Float32).reshape(count, pixelsPerTile).contiguous();
        return cpu.data<float>().ToArray();
    }

    private static byte[] ToGrey(float[] values, int count, int pixelsPerTile, TileScaling scaling)
    {
        var grey = new byte[values.Length];
        switch (scaling)
        {
            case TileScaling.Unit:
                for (var i = 0; i < values.Length; i++)
                {
                    grey[i] = ToByte(values[i]);
                }
                break;
            case TileScaling.Global:
                MinMax(values, 0, values.Length, grey);
                break;
            case TileScaling.PerTile:
                for (var n = 0; n < count; n++)
                {
                    MinMax(values, n * pixelsPerTile, pixelsPerTile, grey);
                }
                break;
        }
        return grey;
    }

    /// <summary>Min-max scales <c>values[start..start+length]</c> into <paramref name="grey"/>; a constant range becomes mid grey.</summary>
    private static void MinMax(float[] values, int start, int length, byte[] grey)
    {
        var min = double.PositiveInfinity;
        var max = double.NegativeInfinity;
        for (var i = start; i < start + length; i++)
        {
            min = Math.Min(min, values[i]);
            max = Math.Max(max, values[i]);
        }
        var range = max - min;
        for (var i = start; i < start + length; i++)
        {
            grey[i] = range > 0 ? ToByte((values[i] - min) / range) : (byte)128;
        }
    }

    private static byte ToByte(double unit) => (byte)Math.Round(Math.Clamp(unit, 0.0, 1.0) * 255.0);

    internal static string FormatShape(long[] shape) =>
        "[" + string.Join(", ", shape.Select(s => s.ToString(CultureInfo.InvariantCulture))) + "]";
}

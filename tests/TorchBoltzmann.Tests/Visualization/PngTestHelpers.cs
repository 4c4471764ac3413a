using SkiaSharp;

namespace TorchBoltzmann.Tests.Visualization;

/// <summary>Decoding and pixel helpers for the visualization tests.</summary>
internal static class PngTestHelpers
{
    internal static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    internal static SKBitmap Decode(byte[] png)
    {
        Assert.True(png.AsSpan().StartsWith(Signature), "not a PNG");
        var bitmap = SKBitmap.Decode(png);
        Assert.NotNull(bitmap);
        return bitmap;
    }

    internal static double Luminance(SKColor c) => 0.2126 * c.Red + 0.7152 * c.Green + 0.0722 * c.Blue;

    internal static int CountNear(SKBitmap bitmap, SKColor target, int tolerance)
    {
        var n = 0;
        for (var y = 0; y < bitmap.Height; y++)
        {
            for (var x = 0; x < bitmap.Width; x++)
            {
                var c = bitmap.GetPixel(x, y);
                if (Math.Abs(c.Red - target.Red) <= tolerance && Math.Abs(c.Green - target.Green) <= tolerance
                    && Math.Abs(c.Blue - target.Blue) <= tolerance)
                {
                    n++;
                }
            }
        }
        return n;
    }

    internal static string NewTempDirectory()
    {
        var dir = Path.Combine(Path.GetTempPath(), "tb-viz-tests", Guid.NewGuid().ToString("N"));
        return dir;
    }
}

using SkiaSharp;

namespace TorchBoltzmann.Visualization;

/// <summary>PNG encoding and atomic file writing shared by the renderers.</summary>
internal static class PngFile
{
    /// <summary>The eight bytes every PNG file starts with.</summary>
    internal static ReadOnlySpan<byte> Signature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Encodes a bitmap as PNG bytes.</summary>
    internal static byte[] Encode(SKBitmap bitmap)
    {
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException("SkiaSharp failed to encode the image as PNG.");
        return data.ToArray();
    }

    /// <summary>
    /// Writes <paramref name="bytes"/> to <paramref name="path"/> atomically with <see cref="TorchBoltzmann.IO.AtomicFile"/>:
    /// to a flushed temporary file in the same directory, then renamed over the destination, so the previous image or
    /// the new one is there at every instant; a temporary left by a killed write is removed by the next write to the path.
    /// Creates the directory if needed.
    /// </summary>
    internal static void WriteAtomic(string path, byte[] bytes)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        TorchBoltzmann.IO.AtomicFile.WriteAllBytes(path, bytes);
    }
}

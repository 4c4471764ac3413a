namespace TorchBoltzmann.Data;

/// <summary>
/// Constants and helpers of the IDX format shared by <see cref="IdxReader"/> and <see cref="IdxWriter"/>.
/// </summary>
/// <remarks>
/// Layout (all integers big-endian):
/// <code>
/// offset 0      : 0x00 0x00          magic
/// offset 2      : type byte          0x08 = unsigned byte (the only one supported here)
/// offset 3      : ndim               number of dimensions
/// offset 4      : ndim × int32       the dimensions d0 … d(ndim-1)
/// offset 4+4·ndim: d0·…·d(ndim-1) elements, row-major
/// </code>
/// </remarks>
internal static class IdxFormat
{
    /// <summary>The type byte of unsigned 8-bit elements.</summary>
    internal const byte UnsignedByte = 0x08;

    /// <summary>The most dimensions accepted.</summary>
    internal const int MaxDimensions = 4;

    /// <summary>Human-readable name of an IDX type byte.</summary>
    internal static string TypeName(byte type) => type switch
    {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "int16",
        0x0C => "int32",
        0x0D => "float32",
        0x0E => "float64",
        _ => "unknown type",
    };

    /// <summary>Formats a shape as <c>60000x28x28</c>.</summary>
    internal static string FormatShape(IEnumerable<int> shape) => string.Join("x", shape);

    /// <summary>Checks 1 ≤ ndim ≤ 4, every dimension positive, and product ≤ Array.MaxLength; returns the product.</summary>
    internal static long CheckShape(int[] shape, string paramName)
    {
        if (shape.Length is < 1 or > MaxDimensions)
        {
            throw new ArgumentException($"An IDX shape needs 1 to {MaxDimensions} dimensions, got {shape.Length}.", paramName);
        }

        long product = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] <= 0)
            {
                throw new ArgumentException($"Dimension {i} must be positive, got {shape[i]}.", paramName);
            }

            product *= shape[i];
            if (product > Array.MaxLength)
            {
                throw new ArgumentException(
                    $"Shape [{FormatShape(shape)}] holds more than {Array.MaxLength} elements, the largest array .NET can allocate.", paramName);
            }
        }

        return product;
    }

    /// <summary>True when the stream starts with the gzip magic 0x1F 0x8B. The stream position is restored.</summary>
    internal static bool StartsWithGzipMagic(Stream stream)
    {
        long position = stream.Position;
        int b0 = stream.ReadByte();
        int b1 = b0 < 0 ? -1 : stream.ReadByte();
        stream.Position = position;
        return b0 == 0x1F && b1 == 0x8B;
    }
}

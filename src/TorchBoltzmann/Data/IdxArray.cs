namespace TorchBoltzmann.Data;

/// <summary>
/// The contents of an IDX file of unsigned bytes: a shape and the payload in row-major (C) order.
/// </summary>
/// <remarks>
/// The element at index (i0, i1, …, i(n-1)) lies at
/// <c>Data[((i0·d1 + i1)·d2 + i2)·… + i(n-1)]</c> where <c>d_k = Shape[k]</c>,
/// so <c>Data.Length = d0·d1·…·d(n-1)</c>.
/// </remarks>
public sealed class IdxArray
{
    /// <summary>Creates an array after checking that <paramref name="data"/> holds exactly product(<paramref name="shape"/>) bytes.</summary>
    /// <param name="shape">The dimensions, 1 to 4 of them, each positive.</param>
    /// <param name="data">The payload in row-major order.</param>
    /// <exception cref="ArgumentException">The shape is invalid or does not match the payload length.</exception>
    public IdxArray(int[] shape, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        long expected = IdxFormat.CheckShape(shape, nameof(shape));
        if (expected != data.Length)
        {
            throw new ArgumentException(
                $"Payload length must equal the product of the shape [{IdxFormat.FormatShape(shape)}]: expected {expected} bytes, got {data.Length}.",
                nameof(data));
        }

        Shape = shape;
        Data = data;
    }

    /// <summary>The dimensions, outermost first (for MNIST images: [N, 28, 28]).</summary>
    public int[] Shape { get; }

    /// <summary>The payload, row-major, <c>product(Shape)</c> bytes.</summary>
    public byte[] Data { get; }
}

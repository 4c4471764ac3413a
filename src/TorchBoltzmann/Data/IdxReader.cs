using System.Buffers.Binary;
using System.IO.Compression;

namespace TorchBoltzmann.Data;

/// <summary>
/// Reads IDX files of unsigned bytes (the format of the MNIST distribution), raw or gzip-compressed.
/// </summary>
/// <remarks>
/// Layout (integers big-endian): <c>00 00 | type | ndim | ndim × int32 dims | product(dims) bytes</c>.
/// Only type 0x08 (unsigned byte) is accepted, with 1 to 4 positive dimensions, and the payload must hold exactly
/// product(dims) bytes: a short file and trailing bytes are both errors.
/// Compression is detected from the content (gzip magic <c>1F 8B</c>), not from the file name.
/// </remarks>
public static class IdxReader
{
    /// <summary>The first buffer for a gzip payload; it doubles as data arrives (MNIST's 47 MB take 10 doublings).</summary>
    internal const int InitialGzipBuffer = 1 << 16;

    /// <summary>Reads an IDX file (raw or gzip).</summary>
    /// <param name="path">The file to read.</param>
    /// <returns>The shape and payload.</returns>
    /// <exception cref="InvalidDataException">
    /// The content is not a valid unsigned-byte IDX file; the message names the file, what was expected and what was found.
    /// </exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static IdxArray Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        bool gzip = IdxFormat.StartsWithGzipMagic(file);
        using Stream stream = gzip ? new GZipStream(file, CompressionMode.Decompress, leaveOpen: true) : file;
        return Read(stream, path, gzip);
    }

    private static IdxArray Read(Stream stream, string path, bool gzip)
    {
        var (shape, expected) = ReadHeader(stream, path, gzip, limitToArray: true);

        // The header is not trusted with the allocation: a raw file must hold the payload before it is allocated, and a
        // gzip stream's payload is read in chunks that grow with what actually arrives.
        if (!gzip && stream.CanSeek && stream.Length - stream.Position < expected)
        {
            throw Fail(path, $"truncated payload: expected {expected} bytes for shape [{IdxFormat.FormatShape(shape)}], got {stream.Length - stream.Position}");
        }

        var data = gzip ? ReadGrowing(stream, (int)expected, path) : new byte[expected];
        int got = gzip ? data.Length : ReadFully(stream, data, path, gzip);
        if (got < expected)
        {
            throw Fail(path, $"truncated payload: expected {expected} bytes for shape [{IdxFormat.FormatShape(shape)}], got {got}");
        }

        long trailing = CountRemaining(stream, path, gzip);
        if (trailing > 0)
        {
            throw Fail(path,
                $"expected end of data after {expected} payload bytes for shape [{IdxFormat.FormatShape(shape)}], got {trailing} trailing byte(s)");
        }

        return new IdxArray(shape, data);
    }

    /// <summary>
    /// Reads and checks the header (magic, unsigned-byte type, 1 to 4 positive dimensions) and returns the shape and the
    /// payload's size in bytes, d0·d1·…; with <paramref name="limitToArray"/> a payload larger than one .NET array is refused.
    /// </summary>
    internal static (int[] Shape, long Payload) ReadHeader(Stream stream, string path, bool gzip, bool limitToArray)
    {
        Span<byte> head = stackalloc byte[4];
        int got = ReadFully(stream, head, path, gzip);
        if (got < 4)
        {
            throw Fail(path, $"expected a 4-byte header (magic 0x00 0x00, type byte, ndim), got only {got} byte(s)");
        }

        if (head[0] != 0 || head[1] != 0)
        {
            throw Fail(path, $"expected magic bytes 0x00 0x00, got 0x{head[0]:X2} 0x{head[1]:X2}");
        }

        byte type = head[2];
        if (type != IdxFormat.UnsignedByte)
        {
            throw Fail(path,
                $"expected data type byte 0x08 ({IdxFormat.TypeName(IdxFormat.UnsignedByte)}), got 0x{type:X2} ({IdxFormat.TypeName(type)}); only unsigned-byte IDX files are supported");
        }

        int ndim = head[3];
        if (ndim is < 1 or > IdxFormat.MaxDimensions)
        {
            throw Fail(path, $"expected 1 to {IdxFormat.MaxDimensions} dimensions, got {ndim}");
        }

        Span<byte> dimBytes = stackalloc byte[4 * ndim];
        got = ReadFully(stream, dimBytes, path, gzip);
        if (got < dimBytes.Length)
        {
            throw Fail(path, $"header truncated: expected {4 + dimBytes.Length} header bytes for {ndim} dimension(s), got {4 + got}");
        }

        var shape = new int[ndim];
        long expected = 1;
        for (int i = 0; i < ndim; i++)
        {
            shape[i] = BinaryPrimitives.ReadInt32BigEndian(dimBytes.Slice(4 * i, 4));
            if (shape[i] <= 0)
            {
                throw Fail(path, $"expected dimension {i} to be positive, got {shape[i]}");
            }

            expected *= shape[i];
            if (limitToArray && expected > Array.MaxLength)
            {
                throw Fail(path, $"expected a payload of at most {Array.MaxLength} bytes, got a header declaring more (dimensions {IdxFormat.FormatShape(shape.Take(i + 1))}...)");
            }
        }

        return (shape, expected);
    }

    /// <summary>Reads until <paramref name="buffer"/> is full or the stream ends; returns the count read.</summary>
    private static int ReadFully(Stream stream, Span<byte> buffer, string path, bool gzip)
    {
        int total = 0;
        try
        {
            while (total < buffer.Length)
            {
                int n = stream.Read(buffer[total..]);
                if (n == 0)
                {
                    break;
                }

                total += n;
            }
        }
        catch (InvalidDataException ex) when (gzip)
        {
            throw Fail(path, $"expected a valid gzip stream, got a corrupt one ({ex.Message})", ex);
        }

        return total;
    }

    /// <summary>
    /// Reads up to <paramref name="expected"/> bytes of a gzip stream into a buffer that starts at ≤ 64 KiB and doubles
    /// only as data arrives; returns exactly the bytes read (fewer than expected when the stream ends early). The
    /// header's count is not trusted with the first allocation: a 50-byte gzip file declaring 16 MiB must not get them.
    /// </summary>
    private static byte[] ReadGrowing(Stream stream, int expected, string path)
    {
        var buffer = new byte[Math.Min(expected, InitialGzipBuffer)];
        int total = 0;
        while (true)
        {
            total += ReadFully(stream, buffer.AsSpan(total), path, gzip: true);
            if (total < buffer.Length || total == expected)
            {
                break;
            }

            Array.Resize(ref buffer, (int)Math.Min(expected, 2L * buffer.Length));
        }

        if (total < buffer.Length)
        {
            Array.Resize(ref buffer, total);
        }

        return buffer;
    }

    private static long CountRemaining(Stream stream, string path, bool gzip)
    {
        var buffer = new byte[8192];
        long total = 0;
        int n;
        while ((n = ReadFully(stream, buffer, path, gzip)) > 0)
        {
            total += n;
        }

        return total;
    }

    internal static InvalidDataException Fail(string path, string detail, Exception? inner = null) =>
        new($"IDX file '{path}': {detail}.", inner);
}

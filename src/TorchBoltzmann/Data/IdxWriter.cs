using System.Buffers.Binary;
using System.IO.Compression;

namespace TorchBoltzmann.Data;

/// <summary>
/// Writes IDX files of unsigned bytes, raw or gzip-compressed, atomically.
/// </summary>
/// <remarks>
/// Layout (integers big-endian): <c>00 00 | 08 | ndim | ndim × int32 dims | product(dims) bytes</c>.
/// The file is written under a temporary name in the target directory and then moved over <c>path</c>,
/// so readers never see a half-written file.
/// </remarks>
public static class IdxWriter
{
    /// <summary>Writes <paramref name="data"/> with the given <paramref name="shape"/> to <paramref name="path"/>.</summary>
    /// <param name="path">Destination; its directory is created when missing and an existing file is replaced.</param>
    /// <param name="shape">1 to 4 positive dimensions.</param>
    /// <param name="data">Row-major payload of exactly product(<paramref name="shape"/>) bytes.</param>
    /// <param name="gzip">Whether to gzip-compress; when null, compress if <paramref name="path"/> ends with ".gz".</param>
    /// <exception cref="ArgumentException">The shape is invalid or does not match the payload length.</exception>
    public static void Write(string path, int[] shape, byte[] data, bool? gzip = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var array = new IdxArray(shape, data); // validates shape and length
        bool compress = gzip ?? path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase);

        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath) ?? ".";
        Directory.CreateDirectory(directory);
        string temp = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                if (compress)
                {
                    using var gz = new GZipStream(file, CompressionLevel.Optimal, leaveOpen: true);
                    WriteContent(gz, array);
                }
                else
                {
                    WriteContent(file, array);
                }

                file.Flush(flushToDisk: true);
            }

            File.Move(temp, fullPath, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    private static void WriteContent(Stream output, IdxArray array)
    {
        Span<byte> header = stackalloc byte[4 + 4 * array.Shape.Length];
        header[0] = 0;
        header[1] = 0;
        header[2] = IdxFormat.UnsignedByte;
        header[3] = (byte)array.Shape.Length;
        for (int i = 0; i < array.Shape.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(header.Slice(4 + 4 * i, 4), array.Shape[i]);
        }

        output.Write(header);
        output.Write(array.Data);
    }
}

using System.Text;
using static TorchSharp.torch;

namespace TorchBoltzmann.IO;

/// <summary>
/// The names, dtypes and shapes of the tensors in a file written by TorchSharp's <c>Module.save</c>, read without
/// allocating a tensor, so that a checkpoint's sidecar can be checked against its weights before a model of the
/// sidecar's sizes is built.
/// </summary>
/// <remarks>
/// The format (TorchSharp 0.107 <c>Module.save</c> / <c>TensorExtensionMethods.Save</c>): the number of entries as an
/// unsigned LEB128; per entry the name (a <see cref="BinaryWriter"/> string: 7-bit-encoded length, UTF-8), the dtype
/// (LEB128 of the <see cref="ScalarType"/> value), the rank (LEB128), each dimension (LEB128), then the raw data,
/// element size × number of elements bytes.
/// </remarks>
internal static class StateDictHeader
{
    /// <summary>One tensor's entry.</summary>
    internal sealed record Entry(string Name, ScalarType DType, long[] Shape);

    /// <summary>
    /// The entries of <paramref name="bytes"/> in file order; null with <paramref name="problem"/> set if the bytes are
    /// not in that format (cut short, a length that overruns the file, an unknown dtype, bytes left over).
    /// </summary>
    internal static List<Entry>? TryRead(byte[] bytes, out string? problem)
    {
        var entries = new List<Entry>();
        int pos = 0;
        problem = null;
        try
        {
            long count = StateDictFormat.ReadLeb128(bytes, ref pos, "the number of entries");
            if (count > bytes.Length) { problem = $"{count} entries in {bytes.Length} bytes"; return null; }
            for (long i = 0; i < count; i++)
            {
                string name = StateDictFormat.ReadString(bytes, ref pos, $"entry {i}'s name");
                long code = StateDictFormat.ReadLeb128(bytes, ref pos, $"'{name}''s dtype");
                var dtype = (ScalarType)code;
                if (code > byte.MaxValue || ElementSize(dtype) is not { } size) { problem = $"'{name}': unknown dtype {code}"; return null; }
                long rank = StateDictFormat.ReadLeb128(bytes, ref pos, $"'{name}''s rank");
                if (rank > 64) { problem = $"'{name}': rank {rank}"; return null; }
                var shape = new long[rank];
                long dataBytes = size;
                for (int d = 0; d < rank; d++)
                {
                    shape[d] = StateDictFormat.ReadLeb128(bytes, ref pos, $"'{name}''s dimension {d}");
                    dataBytes = shape[d] == 0 ? 0 : dataBytes > (bytes.Length - pos) / shape[d] ? long.MaxValue : dataBytes * shape[d];
                }
                if (dataBytes > bytes.Length - pos) { problem = $"'{name}': {Describe(shape)} {dtype} runs past the end of the file"; return null; }
                pos += (int)dataBytes;
                entries.Add(new Entry(name, dtype, shape));
            }
            if (pos != bytes.Length) { problem = $"{bytes.Length - pos} bytes after the last entry"; return null; }
            return entries;
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException)
        {
            problem = e.Message;
            return null;
        }
    }

    /// <summary>"(6, 12)".</summary>
    internal static string Describe(long[] shape) => $"({string.Join(", ", shape)})";

    private static int? ElementSize(ScalarType t) => t switch
    {
        ScalarType.Byte or ScalarType.Int8 or ScalarType.Bool or ScalarType.QInt8 or ScalarType.QUInt8 => 1,
        ScalarType.Int16 or ScalarType.Float16 or ScalarType.BFloat16 => 2,
        ScalarType.Int32 or ScalarType.Float32 or ScalarType.QInt32 => 4,
        ScalarType.Int64 or ScalarType.Float64 or ScalarType.ComplexFloat32 => 8,
        ScalarType.ComplexFloat64 => 16,
        _ => null,
    };
}

using System.Text;
using static TorchSharp.torch;

namespace TorchBoltzmann.IO;

/// <summary>
/// Checks bytes in TorchSharp's serialisation format against the tensors that are to receive them, before TorchSharp
/// reads them. TorchSharp trusts the numbers it reads: a tensor's rank read as 2^27 allocates a 1 GiB array (and then
/// reads 2^27 numbers) before the shape is compared, so a damaged file must be refused by a reader that allocates
/// nothing the expected tensors do not already justify.
/// </summary>
/// <remarks>
/// Layout (TorchSharp 0.107, <c>Module.save</c> and <c>Tensor.Save</c>): a state_dict is an LEB128 entry count, then per
/// entry the key (a <see cref="BinaryWriter"/> string: 7-bit-encoded byte length, UTF-8) and the tensor; a tensor is its
/// LEB128 dtype, LEB128 rank, rank × LEB128 dimension, then numel × element-size raw bytes.
/// </remarks>
internal static class StateDictFormat
{
    /// <summary>
    /// Checks that <paramref name="bytes"/> is a state_dict holding exactly the tensors of <paramref name="expected"/>
    /// (names, dtypes, shapes, lengths), nothing missing, repeated or trailing.
    /// </summary>
    /// <exception cref="InvalidDataException">The first difference, with its byte offset.</exception>
    internal static void Check(ReadOnlySpan<byte> bytes, IReadOnlyDictionary<string, Tensor> expected)
    {
        int at = 0;
        long count = ReadLeb128(bytes, ref at, "the number of tensors");
        if (count != expected.Count)
            throw new InvalidDataException($"expected {expected.Count} tensors, the file holds {count}");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (long i = 0; i < count; i++)
        {
            string key = ReadString(bytes, ref at, $"the name of tensor {i}");
            if (!expected.TryGetValue(key, out var tensor))
                throw new InvalidDataException($"tensor {i} is named '{key}', which the model does not have (expected {string.Join(", ", expected.Keys)})");
            if (!seen.Add(key)) throw new InvalidDataException($"tensor '{key}' appears twice");
            CheckTensor(bytes, ref at, tensor, $"tensor '{key}'");
        }
        if (at != bytes.Length)
            throw new InvalidDataException($"expected the end of the state_dict at byte {at}, got {bytes.Length - at} more byte(s)");
    }

    /// <summary>Checks one serialised tensor at <paramref name="at"/> against <paramref name="tensor"/>'s dtype and shape, and moves past it.</summary>
    /// <exception cref="InvalidDataException">The first difference, with its byte offset.</exception>
    internal static void CheckTensor(ReadOnlySpan<byte> bytes, ref int at, Tensor tensor, string what)
    {
        int start = at;
        long dtype = ReadLeb128(bytes, ref at, $"the dtype of {what}");
        if (dtype != (long)tensor.dtype)
            throw new InvalidDataException($"{what} at byte {start}: expected dtype {tensor.dtype} ({(int)tensor.dtype}), got {dtype}");
        long rank = ReadLeb128(bytes, ref at, $"the rank of {what}");
        var shape = tensor.shape;
        if (rank != shape.Length)
            throw new InvalidDataException($"{what} at byte {start}: expected rank {shape.Length} ({string.Join("×", shape)}), got {rank}");
        for (int d = 0; d < shape.Length; d++)
        {
            long size = ReadLeb128(bytes, ref at, $"dimension {d} of {what}");
            if (size != shape[d])
                throw new InvalidDataException($"{what} at byte {start}: expected shape {string.Join("×", shape)}, got {size} for dimension {d}");
        }
        long length = tensor.NumberOfElements * tensor.ElementSize;
        if (bytes.Length - at < length)
            throw new InvalidDataException($"{what} at byte {start}: expected {length} bytes of data, the file holds {bytes.Length - at} (truncated)");
        at += (int)length;
    }

    /// <summary>An unsigned LEB128 number of at most 9 bytes (63 bits), as TorchSharp writes lengths and sizes.</summary>
    internal static long ReadLeb128(ReadOnlySpan<byte> bytes, ref int at, string what)
    {
        int start = at;
        long value = 0;
        for (int shift = 0; shift < 63; shift += 7)
        {
            if (at >= bytes.Length) throw new InvalidDataException($"the file ends inside {what} (byte {start}; truncated)");
            byte b = bytes[at++];
            value |= (long)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
        throw new InvalidDataException($"{what} at byte {start} is not a number below 2^63");
    }

    /// <summary>A <see cref="BinaryWriter"/> string: 7-bit-encoded byte length (at most 5 bytes), then UTF-8.</summary>
    internal static string ReadString(ReadOnlySpan<byte> bytes, ref int at, string what)
    {
        int start = at;
        long length = 0;
        for (int shift = 0; ; shift += 7)
        {
            if (shift > 28 || at >= bytes.Length) throw new InvalidDataException($"{what} at byte {start} has no valid length");
            byte b = bytes[at++];
            length |= (long)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) break;
        }
        if (length > bytes.Length - at)
            throw new InvalidDataException($"{what} at byte {start} claims {length} bytes, the file holds {bytes.Length - at} (truncated)");
        // BinaryReader decodes with a UTF8Encoding that replaces invalid bytes, as Encoding.UTF8 does: the same string.
        string text = Encoding.UTF8.GetString(bytes.Slice(at, (int)length));
        at += (int)length;
        return text;
    }
}

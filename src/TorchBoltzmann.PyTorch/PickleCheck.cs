using System.Buffers.Binary;
using System.IO.Compression;

namespace TorchBoltzmann.PyTorch;

/// <summary>
/// Walks the opcodes of a state_dict file's pickle (<c>…/data.pkl</c> in its zip) before TorchSharp.PyBridge's
/// unpickler reads it, refusing one whose length-prefixed arguments (strings, bytes, frames, long integers) claim more
/// bytes than the pickle holds: that unpickler allocates such a length before reading it, so one damaged byte in a
/// 2 KB file asked for 1.9 GB. Only the framing of the opcodes is checked here; what they build is PyBridge's concern.
/// </summary>
internal static class PickleCheck
{
    /// <summary>The largest pickle read (a state_dict's pickle holds keys and tensor descriptions: kilobytes).</summary>
    internal const int MaxPickleBytes = 16 << 20;

    /// <summary>Null when every data.pkl member of the zip <paramref name="file"/> is well framed, else what is wrong.</summary>
    /// <exception cref="InvalidDataException">The zip itself is damaged (the caller reports it as it reports the unpickler's errors).</exception>
    internal static string? Problem(byte[] file)
    {
        using var zip = new ZipArchive(new MemoryStream(file, writable: false), ZipArchiveMode.Read);
        foreach (var entry in zip.Entries)
        {
            if (entry.FullName != "data.pkl" && !entry.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)) continue;
            if (entry.Length > MaxPickleBytes)
                return $"its pickle '{entry.FullName}' declares {entry.Length} bytes, more than the {MaxPickleBytes} read";
            // Read what the entry holds, not what it declares: a damaged size field must not size a buffer.
            using var s = entry.Open();
            using var content = new MemoryStream();
            var chunk = new byte[8192];
            int got;
            while ((got = s.Read(chunk, 0, chunk.Length)) > 0)
            {
                if (content.Length + got > entry.Length)
                    return $"its pickle '{entry.FullName}' holds more than the {entry.Length} bytes its zip entry declares";
                content.Write(chunk, 0, got);
            }
            if (content.Length != entry.Length)
                return $"its pickle '{entry.FullName}' does not hold the {entry.Length} bytes its zip entry declares";
            if (Framing(content.GetBuffer().AsSpan(0, (int)content.Length)) is { } why) return $"its pickle '{entry.FullName}' {why}";
        }
        return null;
    }

    /// <summary>Null when the opcodes of <paramref name="p"/> are well framed up to STOP, else what is wrong.</summary>
    internal static string? Framing(ReadOnlySpan<byte> p)
    {
        int at = 0;
        while (at < p.Length)
        {
            byte op = p[at++];
            long arg;
            switch (op)
            {
                case (byte)'.':
                    return null;   // STOP
                // No argument.
                case (byte)'(' or (byte)'0' or (byte)'1' or (byte)'2' or (byte)'N' or (byte)'R' or (byte)'Q' or (byte)']'
                    or (byte)'a' or (byte)'b' or (byte)'d' or (byte)'}' or (byte)'e' or (byte)'l' or (byte)'o' or (byte)'s'
                    or (byte)'t' or (byte)')' or (byte)'u' or 0x81 or 0x85 or 0x86 or 0x87 or 0x88 or 0x89 or 0x8F or 0x90
                    or 0x91 or 0x92 or 0x93 or 0x94 or 0x97 or 0x98:
                    continue;
                // Fixed-size arguments.
                case (byte)'K' or (byte)'h' or (byte)'q' or 0x80 or 0x82: arg = 1; break;
                case (byte)'M' or 0x83: arg = 2; break;
                case (byte)'J' or (byte)'j' or (byte)'r' or 0x84: arg = 4; break;
                case (byte)'G': arg = 8; break;
                // Length-prefixed arguments: the length, then that many bytes.
                case (byte)'C' or (byte)'U' or 0x8C or 0x8A:
                    if (at + 1 > p.Length) return "ends inside an opcode's length";
                    arg = p[at++];
                    break;
                case (byte)'B' or (byte)'T' or (byte)'X' or 0x8B:
                    if (at + 4 > p.Length) return "ends inside an opcode's length";
                    arg = BinaryPrimitives.ReadInt32LittleEndian(p[at..]);
                    at += 4;
                    if (arg < 0) return $"has a negative length {arg} at byte {at - 5}";
                    break;
                case 0x8D or 0x8E or 0x96 or 0x95:
                    if (at + 8 > p.Length) return "ends inside an opcode's length";
                    arg = BinaryPrimitives.ReadInt64LittleEndian(p[at..]);
                    at += 8;
                    if (arg < 0) return $"has a negative length {arg} at byte {at - 9}";
                    if (op == 0x95) continue;   // FRAME: its length covers the opcodes that follow, checked as they come
                    break;
                // Newline-terminated arguments (GLOBAL and INST take two lines).
                case (byte)'c' or (byte)'i' or (byte)'I' or (byte)'L' or (byte)'F' or (byte)'S' or (byte)'V' or (byte)'P'
                    or (byte)'g' or (byte)'p':
                {
                    int lines = op is (byte)'c' or (byte)'i' ? 2 : 1;
                    for (int k = 0; k < lines; k++)
                    {
                        int nl = p[at..].IndexOf((byte)'\n');
                        if (nl < 0) return "ends inside a text argument";
                        at += nl + 1;
                    }
                    continue;
                }
                default:
                    return $"has an unknown opcode 0x{op:X2} at byte {at - 1}";
            }
            if (arg > p.Length - at) return $"claims {arg} bytes at byte {at} where {p.Length - at} remain";
            at += (int)arg;
        }
        return "ends without STOP";
    }
}

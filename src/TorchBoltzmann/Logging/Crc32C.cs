namespace TorchBoltzmann.Logging;

/// <summary>
/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TensorFlow's record files use it, and TensorFlow's mask
/// of it: masked(c) = ((c &gt;&gt; 15) | (c &lt;&lt; 17)) + 0xA282EAD8 (mod 2³²), which keeps a CRC of bytes that
/// themselves hold CRCs from being trivially predictable.
/// </summary>
internal static class Crc32C
{
    private static readonly uint[] Table = BuildTable();

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            table[i] = c;
        }
        return table;
    }

    /// <summary>CRC-32C of <paramref name="data"/> (initial value and final xor 0xFFFFFFFF).</summary>
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    /// <summary>TensorFlow's masked CRC-32C of <paramref name="data"/>.</summary>
    public static uint Masked(ReadOnlySpan<byte> data)
    {
        uint c = Compute(data);
        return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
    }
}

using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TorchBoltzmann.Tests.Fuzz;

/// <summary>Byte-level mutations of an input, each logged in words so that a failure says what was done.</summary>
internal static class Mutations
{
    /// <summary>An unsigned LEB128 number, as TorchSharp writes counts, dtypes, ranks and sizes (to find fields to mutate).</summary>
    public static long ReadLeb128(BinaryReader r)
    {
        long v = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte b = r.ReadByte();
            v |= (long)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return v;
        }
    }

    /// <summary>Single bytes at the edges of signed and unsigned ranges.</summary>
    public static readonly byte[] InterestingBytes = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE, 0x81, 0x08];

    /// <summary>32-bit values at the edges: zero, ±1, sign bits, powers of two, MNIST's counts, Array.MaxLength.</summary>
    public static readonly int[] InterestingInt32 =
        [0, 1, -1, 2, 28, 255, 256, 784, 10_000, 60_000, 65_535, 65_536, 0x0100_0000, 0x4000_0000, 0x7FFF_FFC7, int.MaxValue, int.MinValue, -2];

    /// <summary>LEB128 encodings (TorchSharp's counts, dtypes and dimensions) of huge values, negative after decoding, or overlong.</summary>
    public static readonly byte[][] HugeLeb128 =
    [
        [0x80, 0x80, 0x80, 0x40],                                           // 2^27: a 1 GiB long[] for a shape length
        [0xFF, 0xFF, 0xFF, 0xFF, 0x07],                                     // 2^31 - 1
        [0xFF, 0xFF, 0xFF, 0xFF, 0x0F],                                     // 2^32 - 1
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],             // 2^63 - 1
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],       // wraps to a negative long
        [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], // overlong zero
        [0xC0, 0x84, 0x3D],                                                 // 1,000,000
    ];

    /// <summary>Applies 1 to 4 random byte-level mutations; <paramref name="pool"/> supplies splice partners.</summary>
    public static byte[] Mutate(byte[] input, FuzzRandom rng, IReadOnlyList<byte[]> pool, List<string> log, int maxSteps = 4)
    {
        var data = input;
        int steps = 1 + rng.Next(maxSteps);
        for (int s = 0; s < steps; s++) data = MutateOnce(data, rng, pool, log);
        return data;
    }

    private static byte[] MutateOnce(byte[] data, FuzzRandom rng, IReadOnlyList<byte[]> pool, List<string> log)
    {
        int n = data.Length;
        switch (rng.Next(13))
        {
            case 0 when n > 0:
            {
                int at = rng.Next(n), bit = rng.Next(8);
                var d = (byte[])data.Clone();
                d[at] ^= (byte)(1 << bit);
                log.Add($"flip bit {bit} of byte {at}");
                return d;
            }
            case 1 when n > 0:
            {
                int at = rng.Next(n);
                byte v = rng.Pick(InterestingBytes);
                var d = (byte[])data.Clone();
                d[at] = v;
                log.Add($"byte {at} := 0x{v:X2}");
                return d;
            }
            case 2 when n > 0:
            {
                int at = rng.Next(n);
                byte v = rng.NextByte();
                var d = (byte[])data.Clone();
                d[at] = v;
                log.Add($"byte {at} := random 0x{v:X2}");
                return d;
            }
            case 3 when n >= 4:
            {
                int at = rng.Next(n - 3);
                int v = rng.Pick(InterestingInt32);
                bool big = rng.Chance(0.5);
                var d = (byte[])data.Clone();
                if (big) BinaryPrimitives.WriteInt32BigEndian(d.AsSpan(at, 4), v);
                else BinaryPrimitives.WriteInt32LittleEndian(d.AsSpan(at, 4), v);
                log.Add($"int32 {(big ? "BE" : "LE")} at {at} := {v}");
                return d;
            }
            case 4:
            {
                int at = rng.Next(n + 1);
                var leb = rng.Pick(HugeLeb128);
                bool insert = rng.Chance(0.5);
                log.Add($"{(insert ? "insert" : "overwrite")} LEB128 {Convert.ToHexString(leb)} at {at}");
                return insert ? Insert(data, at, leb) : Overwrite(data, at, leb);
            }
            case 5:
            {
                int len = rng.Next(n + 1);
                log.Add($"truncate to {len} of {n} bytes");
                return data[..len];
            }
            case 6:
            {
                int at = rng.Next(n + 1), len = 1 + rng.Next(16);
                var bytes = new byte[len];
                for (int i = 0; i < len; i++) bytes[i] = rng.Chance(0.5) ? rng.Pick(InterestingBytes) : rng.NextByte();
                log.Add($"insert {len} bytes {Convert.ToHexString(bytes)} at {at}");
                return Insert(data, at, bytes);
            }
            case 7 when n > 0:
            {
                int at = rng.Next(n), len = 1 + rng.Next(Math.Min(n - at, rng.Chance(0.2) ? n : 32));
                log.Add($"delete {len} bytes at {at}");
                return [.. data.AsSpan(0, at), .. data.AsSpan(at + len)];
            }
            case 8 when n > 0:
            {
                int from = rng.Next(n), len = 1 + rng.Next(Math.Min(n - from, 64)), to = rng.Next(n + 1);
                log.Add($"copy {len} bytes from {from} to {to} (inserted)");
                return Insert(data, to, data.AsSpan(from, len).ToArray());
            }
            case 9 when pool.Count > 0:
            {
                var other = rng.Pick(pool);
                int cut = rng.Next(n + 1), from = rng.Next(other.Length + 1);
                log.Add($"splice: first {cut} bytes, then another seed's bytes from {from} (of {other.Length})");
                return [.. data.AsSpan(0, cut), .. other.AsSpan(from)];
            }
            case 10 when n > 0:
            {
                int at = rng.Next(n), len = 1 + rng.Next(Math.Min(n - at, 16));
                byte v = rng.Chance(0.5) ? (byte)0xFF : (byte)0x00;
                log.Add($"fill {len} bytes at {at} with 0x{v:X2}");
                var d = (byte[])data.Clone();
                d.AsSpan(at, len).Fill(v);
                return d;
            }
            case 11 when n > 0:
            {
                int at = rng.Next(n), len = 1 + rng.Next(Math.Min(n - at, 8)), times = 2 + rng.Next(30);
                log.Add($"repeat {len} bytes at {at} {times} times");
                var chunk = data.AsSpan(at, len).ToArray();
                var rep = Enumerable.Repeat(chunk, times).SelectMany(c => c).ToArray();
                return Insert(data, at, rep);
            }
            default:
            {
                int at = rng.Next(n + 1);
                byte v = rng.Pick(InterestingBytes);
                log.Add($"insert byte 0x{v:X2} at {at}");
                return Insert(data, at, [v]);
            }
        }
    }

    public static byte[] Insert(byte[] data, int at, ReadOnlySpan<byte> bytes) => [.. data.AsSpan(0, at), .. bytes, .. data.AsSpan(at)];

    public static byte[] Overwrite(byte[] data, int at, ReadOnlySpan<byte> bytes)
    {
        var d = new byte[Math.Max(data.Length, at + bytes.Length)];
        data.CopyTo(d, 0);
        bytes.CopyTo(d.AsSpan(at));
        return d;
    }

    public static byte[] Gzip(byte[] raw, CompressionLevel level = CompressionLevel.Optimal)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, level, leaveOpen: true)) gz.Write(raw);
        return ms.ToArray();
    }
}

/// <summary>
/// JSON-aware mutations: numbers made huge, negative, fractional or NaN; values of another JSON type; keys removed,
/// renamed, duplicated; values nested deeply; long strings; plausible but wrong enum names.
/// </summary>
internal static class JsonMutations
{
    /// <summary>Numbers: huge, negative, zero, fractional, beyond double, and beyond long.</summary>
    public static readonly string[] Numbers =
    [
        "0", "-1", "1", "2.5", "-2147483648", "2147483647", "2147483648", "4294967296", "9223372036854775807",
        "9223372036854775808", "-9223372036854775809", "1e308", "-1e308", "1e400", "1e-400", "-0", "1E3", "0.0000001",
        "100000000000000000000000000000000000000000000000000",
    ];

    /// <summary>Values of every JSON type, and non-JSON literals.</summary>
    public static readonly string[] Values =
    [
        "null", "true", "false", "\"\"", "\"NaN\"", "\"Infinity\"", "\"-Infinity\"", "\"12\"", "\"x\"", "[]", "{}", "[1]", "[null]",
        "{\"a\":1}", "NaN", "Infinity", "-Infinity", "undefined", "'single'", "[1,", "{\"a\"", "\"\\ud800\"", "\"\\u0000\"",
    ];

    /// <summary>Names that parse as an enum or unit type but are wrong here, and ones that do not.</summary>
    public static readonly string[] Names =
    [
        "Float32", "Float64", "Float16", "BFloat16", "Int64", "Int32", "Byte", "Bool", "ComplexFloat32", "ComplexFloat64", "Int8",
        "Undefined", "QInt8", "6", "-1", "99", "float32", " Float32 ", "Float32, Float64", "Float32,Int64", "2147483647",
        "Bernoulli", "Gaussian", "Bernoulli+Softmax(3)", "Bernoulli+Softmax(0)", "Bernoulli+Softmax(-3)", "Bernoulli+Softmax(2147483647)",
        "Bernoulli+Softmax(99999999999)", "RBM", "DBN", "Sequential", "Linear", "Dropout", "Sigmoid", "ReLU", "Tanh", "Module",
        "torchboltzmann-checkpoint", "", "\u0000", "fc1", "../../etc/passwd",
    ];

    /// <summary>
    /// Applies one JSON-aware mutation to <paramref name="text"/> (which must parse); returns the new text, which need not
    /// parse.
    /// </summary>
    /// <param name="text">JSON text.</param>
    /// <param name="rng">The case's generator.</param>
    /// <param name="log">Receives what was done.</param>
    /// <param name="focus">
    /// Which paths (e.g. those under "$.architecture.") are picked half of the time: the fields a reader builds from are
    /// few among the whole document's.
    /// </param>
    public static string Mutate(string text, FuzzRandom rng, List<string> log, Func<string, bool>? focus = null)
    {
        // Text an earlier step left with an unpaired surrogate ("\ud800") parses but cannot be written back out.
        try { return MutateOnce(text, rng, log, focus); }
        catch (InvalidOperationException e) { throw new JsonException("the JSON text cannot be walked", e); }
    }

    private static string MutateOnce(string text, FuzzRandom rng, List<string> log, Func<string, bool>? focus)
    {
        // Text an earlier step left with a duplicate key parses, but cannot be walked: treated as text that does not parse.
        var root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false })
                   ?? throw new JsonException("the JSON text is null");
        var slots = new List<(JsonNode? parent, string? key, int index, JsonNode? value, string path)>();
        Collect(root, null, null, -1, "$", slots);
        var focused = focus is null ? [] : slots.Where(x => focus(x.path)).ToList();
        var (parent, key, index, value, path) = focused.Count > 0 && rng.Chance(0.5) ? rng.Pick(focused) : slots[rng.Next(slots.Count)];
        const string Marker = "\"__FUZZ_MARKER__\"";

        switch (rng.Next(10))
        {
            case 0:
            case 1:
            {
                string v = rng.Pick(Numbers);
                log.Add($"{path} := {v}");
                return Replace(root, parent, key, index, Marker, v);
            }
            case 2:
            {
                string v = rng.Pick(Values);
                log.Add($"{path} := {v}");
                return Replace(root, parent, key, index, Marker, v);
            }
            case 3:
            {
                string v = JsonSerializer.Serialize(rng.Pick(Names));
                log.Add($"{path} := {v}");
                return Replace(root, parent, key, index, Marker, v);
            }
            case 4 when parent is JsonObject o && key is not null:
            {
                o.Remove(key);
                log.Add($"remove {path}");
                return root.ToJsonString();
            }
            case 4 when parent is JsonArray a:
            {
                a.RemoveAt(index);
                log.Add($"remove {path}");
                return root.ToJsonString();
            }
            case 5 when parent is JsonObject && key is not null:
            {
                // A duplicate key cannot live in a JsonNode: write it into the text, before the original.
                string other = rng.Chance(0.5) ? rng.Pick(Numbers) : rng.Pick(Values[..13]);
                string duplicate = $"{JsonSerializer.Serialize(key)}:{other},";
                string rendered = Replace(root, parent, key, index, Marker, Marker);
                int at = rendered.IndexOf(JsonSerializer.Serialize(key) + ":" + Marker, StringComparison.Ordinal);
                string original = value?.ToJsonString() ?? "null";
                log.Add($"duplicate key {path} (first {other}, then the original)");
                return rendered.Insert(at, duplicate).Replace(Marker, original, StringComparison.Ordinal);
            }
            case 6:
            {
                int depth = rng.Pick(new[] { 63, 64, 65, 200, 10_000, 100_000 });
                bool arrays = rng.Chance(0.5);
                string nested = arrays
                    ? new string('[', depth) + "1" + new string(']', depth)
                    : string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + new string('}', depth);
                log.Add($"{path} := {(arrays ? "arrays" : "objects")} nested {depth} deep");
                return Replace(root, parent, key, index, Marker, nested);
            }
            case 7:
            {
                int len = rng.Pick(new[] { 1_000, 100_000 });
                log.Add($"{path} := a string of {len} characters");
                return Replace(root, parent, key, index, Marker, "\"" + new string('x', len) + "\"");
            }
            case 8 when parent is JsonObject o && key is not null:
            {
                string renamed = rng.Chance(0.5) ? key.ToUpperInvariant() : key + "_";
                o.Remove(key);
                o[renamed] = value;
                log.Add($"rename {path} to {renamed}");
                return root.ToJsonString();
            }
            case 9 when value is JsonValue v && v.TryGetValue<double>(out double d):
            {
                // A neighbouring number: off by one, sign flipped, scaled by 10 or 1000.
                var candidates = new[] { d + 1, d - 1, -d, d * 10, d * 1000, d / 2 };
                double c = rng.Pick(candidates);
                string s = c.ToString("R", CultureInfo.InvariantCulture);
                log.Add($"{path} := {s} (was {d.ToString("R", CultureInfo.InvariantCulture)})");
                return Replace(root, parent, key, index, Marker, s);
            }
            default:
            {
                // An extra unknown key at the top.
                log.Add("add key \"unexpected\": [1, 2]");
                if (root is JsonObject top) top["unexpected"] = new JsonArray(1, 2);
                return root.ToJsonString();
            }
        }
    }

    /// <summary>Replaces the slot's value by <paramref name="marker"/>, serialises, then puts <paramref name="raw"/> text in its place.</summary>
    private static string Replace(JsonNode root, JsonNode? parent, string? key, int index, string marker, string raw)
    {
        var placeholder = JsonNode.Parse(marker);
        if (parent is null) return raw;
        if (parent is JsonObject o) o[key!] = placeholder;
        else ((JsonArray)parent)[index] = placeholder;
        return root.ToJsonString().Replace(marker, raw, StringComparison.Ordinal);
    }

    private static void Collect(JsonNode? node, JsonNode? parent, string? key, int index, string path,
                                List<(JsonNode?, string?, int, JsonNode?, string)> slots)
    {
        slots.Add((parent, key, index, node, path));
        switch (node)
        {
            case JsonObject o:
                foreach (var (k, v) in o.ToList()) Collect(v, o, k, -1, $"{path}.{k}", slots);
                break;
            case JsonArray a:
                for (int i = 0; i < a.Count; i++) Collect(a[i], a, null, i, $"{path}[{i}]", slots);
                break;
        }
    }
}

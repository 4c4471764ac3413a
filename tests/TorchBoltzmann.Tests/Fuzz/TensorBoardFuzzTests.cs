using Xunit.Abstractions;
using System.Buffers.Binary;
using TorchBoltzmann.Logging;
using TorchBoltzmann.Visualization;
using TorchSharp;

namespace TorchBoltzmann.Tests.Fuzz;

/// <summary>
/// Mutation fuzzing of <see cref="TensorBoardEventReader.Read"/> (TensorBoard event files: TFRecord framing with masked
/// CRC-32C around protocol-buffer events). Raw mutations mostly meet the CRCs; so that the protocol-buffer parser is
/// reached too, half of the cases mutate one record's payload and frame it again with correct CRCs. Every case must
/// read, or be refused with the documented <see cref="InvalidDataException"/> naming the file, within the harness's
/// time and memory bounds.
/// </summary>
public sealed class TensorBoardFuzzTests(ITestOutputHelper output)
{
    private const int CiCases = 2000;
    private const string File = "events.out.tfevents.1.fuzz";

    /// <summary>An event file written by <see cref="TensorBoardEventWriter"/>: the file-version event, two scalars, a
    /// histogram and an image.</summary>
    internal static byte[] Seed()
    {
        var dir = Directory.CreateTempSubdirectory("tb-events-seed-").FullName;
        try
        {
            string path;
            using (var w = new TensorBoardEventWriter(dir))
            {
                path = w.FilePath;
                w.AddScalar("train/loss", 0.25, 1);
                w.AddScalar("train/loss", -3.5, 2);
                w.AddHistogram("weights/W", [1.0, 2.0, 2.0, 5.0, -1.5], 2, bins: 4);
                using var pixels = torch.ones(4, 9);
                w.AddImage("samples", ImageGrid.EncodeTiles(pixels, 3, 3), 3);
            }
            return System.IO.File.ReadAllBytes(path);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>The (offset, length) of every record's payload in <paramref name="file"/>.</summary>
    internal static List<(int at, int length)> Records(byte[] file)
    {
        var records = new List<(int, int)>();
        for (int at = 0; at + 12 <= file.Length;)
        {
            int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(at));
            records.Add((at + 12, n));
            at += 12 + n + 4;
        }
        return records;
    }

    /// <summary>One TFRecord: length, masked CRC of the length, payload, masked CRC of the payload.</summary>
    internal static byte[] Frame(ReadOnlySpan<byte> payload)
    {
        var r = new byte[12 + payload.Length + 4];
        BinaryPrimitives.WriteUInt64LittleEndian(r, (ulong)payload.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(8), Crc32C.Masked(r.AsSpan(0, 8)));
        payload.CopyTo(r.AsSpan(12));
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(12 + payload.Length), Crc32C.Masked(payload));
        return r;
    }

    [Fact]
    public void Read_MutatedEventFiles_ReadOrRefuseWithInvalidDataException()
    {
        byte[] seed = Seed();
        var records = Records(seed);
        var payloads = records.Select(r => seed[r.at..(r.at + r.length)]).ToList();
        var pool = new List<byte[]> { seed };
        pool.AddRange(payloads);
        using var runner = new FuzzRunner("tensorboard");
        var failures = runner.Run(FuzzConfig.Cases(CiCases), [Case(seed, "valid seed")], (i, rng) =>
        {
            var log = new List<string>();
            byte[] file;
            if (rng.Chance(0.5))
            {
                // A record's payload mutated and framed again with correct CRCs: the event parser sees the damage.
                int k = rng.Next(payloads.Count);
                log.Add($"payload of record {k} mutated, CRCs recomputed");
                var payload = Mutations.Mutate(payloads[k], rng, payloads, log);
                using var ms = new MemoryStream();
                for (int j = 0; j < payloads.Count; j++) ms.Write(j == k ? Frame(payload) : Frame(payloads[j]));
                file = ms.ToArray();
            }
            else
            {
                log.Add("file mutated");
                file = Mutations.Mutate(seed, rng, pool, log);
            }
            return Case(file, string.Join("; ", log));
        });
        output.WriteLine(runner.Summary);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static FuzzCase Case(byte[] file, string description) => new()
    {
        Description = description,
        Files = new Dictionary<string, byte[]?> { [File] = file },
        JustifiedBytes = 8L * file.Length,
        Judge = (e, dir) => e.GetType() != typeof(InvalidDataException) ? "undocumented exception type"
            : !e.Message.Contains(Path.Combine(dir, File), StringComparison.Ordinal) ? "the message does not name the file"
            : null,
        Read = dir => TensorBoardEventReader.Read(Path.Combine(dir, File)),
    };
}

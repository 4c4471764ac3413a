using Xunit.Abstractions;
using System.Buffers.Binary;
using System.IO.Compression;
using TorchBoltzmann.Data;
using TorchSharp;

namespace TorchBoltzmann.Tests.Fuzz;

/// <summary>
/// Mutation fuzzing of the IDX reader (raw and gzip) and of <see cref="MnistDataset.Load"/>: every case must read, or be
/// refused with the documented <see cref="InvalidDataException"/> naming the file, within the harness's time and memory
/// bounds; raw inputs are also checked against an independent reference parser (read exactly when valid).
/// </summary>
public sealed class IdxFuzzTests(ITestOutputHelper output)
{
    private const int CiCases = 4000, CiMnistCases = 1500;

    /// <summary>IDX type bytes: unsigned byte (read) and the others of the format (refused), with their element sizes.</summary>
    private static readonly (byte type, int size)[] Types = [(0x08, 1), (0x09, 1), (0x0B, 2), (0x0C, 4), (0x0D, 4), (0x0E, 8)];

    private static readonly int[][] Shapes = [[5], [2, 3], [2, 2, 3], [1, 2, 2, 2]];

    internal static byte[] IdxBytes(byte type, int elementSize, int[] shape, int salt = 0)
    {
        int count = shape.Aggregate(1, (a, b) => a * b) * elementSize;
        var bytes = new byte[4 + 4 * shape.Length + count];
        bytes[2] = type;
        bytes[3] = (byte)shape.Length;
        for (int i = 0; i < shape.Length; i++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * i), shape[i]);
        for (int i = 0; i < count; i++) bytes[4 + 4 * shape.Length + i] = (byte)(i * 37 + salt);
        return bytes;
    }

    private static readonly List<byte[]> RawSeeds =
        Types.SelectMany(t => Shapes.Select((s, k) => IdxBytes(t.type, t.size, s, k))).ToList();

    /// <summary>
    /// What a correct reader makes of raw (uncompressed) IDX bytes, decided independently of <see cref="IdxReader"/>:
    /// (shape, payload) when valid, else null.
    /// </summary>
    internal static (int[] shape, byte[] data)? Reference(byte[] b)
    {
        if (b.Length < 4 || b[0] != 0 || b[1] != 0 || b[2] != 0x08 || b[3] is < 1 or > 4) return null;
        int ndim = b[3];
        if (b.Length < 4 + 4 * ndim) return null;
        var shape = new int[ndim];
        long product = 1;
        for (int i = 0; i < ndim; i++)
        {
            shape[i] = BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(4 + 4 * i));
            if (shape[i] <= 0) return null;
            product *= shape[i];
            if (product > Array.MaxLength) return null;
        }
        return b.Length - (4 + 4 * ndim) == product ? (shape, b[(4 + 4 * ndim)..]) : null;
    }

    /// <summary>Header-aware mutation: a dimension, ndim or the type byte set to an interesting value.</summary>
    private static byte[] MutateHeader(byte[] raw, FuzzRandom rng, List<string> log)
    {
        var d = (byte[])raw.Clone();
        if (d.Length < 4) return d;
        switch (rng.Next(3))
        {
            case 0:
            {
                int ndim = Math.Clamp((int)d[3], 1, 4), k = rng.Next(ndim);
                if (d.Length < 8 + 4 * k) return d;
                int v = rng.Pick(Mutations.InterestingInt32);
                BinaryPrimitives.WriteInt32BigEndian(d.AsSpan(4 + 4 * k), v);
                log.Add($"dimension {k} := {v} (big-endian)");
                return d;
            }
            case 1:
                d[3] = rng.Pick(new byte[] { 0, 1, 3, 4, 5, 0x7F, 0x80, 0xFF });
                log.Add($"ndim := {d[3]}");
                return d;
            default:
                d[2] = rng.Pick(new byte[] { 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF });
                log.Add($"type := 0x{d[2]:X2}");
                return d;
        }
    }

    private static string? DocumentedIdxFailure(Exception e, string path) =>
        e.GetType() != typeof(InvalidDataException) ? "undocumented exception type"
        : !e.Message.Contains(path, StringComparison.Ordinal) ? "the message does not name the file"
        : null;

    [Fact]
    public void IdxReader_MutatedFiles_ReadOrRefuseWithInvalidDataException()
    {
        using var runner = new FuzzRunner("idx");
        var warmUp = RawSeeds.Where(s => s[2] == 0x08).SelectMany(s => new[] { (s, false), (s, true) })
            .Select(x => IdxCase(x.s, x.Item2 ? Mutations.Gzip(x.s) : x.s, "valid seed", checkedAgainstReference: true)).ToList();

        var failures = runner.Run(FuzzConfig.Cases(CiCases), warmUp, (i, rng) =>
        {
            var log = new List<string>();
            int which = rng.Next(RawSeeds.Count);
            var seed = RawSeeds[which];
            log.Add($"seed {which} (type 0x{seed[2]:X2}, {seed[3]} dims)");
            switch (rng.Next(3))
            {
                case 0:   // raw file
                {
                    var raw = rng.Chance(0.3) ? MutateHeader(seed, rng, log) : seed;
                    raw = rng.Chance(0.8) || ReferenceEquals(raw, seed) ? Mutations.Mutate(raw, rng, RawSeeds, log) : raw;
                    if (raw.Length >= 2 && raw[0] == 0x1F && raw[1] == 0x8B) log.Add("(now starts with the gzip magic)");
                    return IdxCase(raw, raw, string.Join("; ", log), checkedAgainstReference: !(raw.Length >= 2 && raw[0] == 0x1F && raw[1] == 0x8B));
                }
                case 1:   // gzip of a mutated IDX content
                {
                    var raw = rng.Chance(0.4) ? MutateHeader(seed, rng, log) : seed;
                    raw = rng.Chance(0.7) || ReferenceEquals(raw, seed) ? Mutations.Mutate(raw, rng, RawSeeds, log) : raw;
                    var level = rng.Pick(new[] { CompressionLevel.NoCompression, CompressionLevel.Fastest, CompressionLevel.Optimal });
                    log.Add($"gzip ({level})");
                    return IdxCase(raw, Mutations.Gzip(raw, level), string.Join("; ", log), checkedAgainstReference: true);
                }
                default:  // mutated gzip stream
                {
                    var gz = Mutations.Gzip(rng.Chance(0.3) ? MutateHeader(seed, rng, log) : seed);
                    log.Add("gzip, then");
                    var file = Mutations.Mutate(gz, rng, RawSeeds.Select(s => Mutations.Gzip(s)).Take(4).ToList(), log);
                    return IdxCase(null, file, string.Join("; ", log), checkedAgainstReference: false);
                }
            }
        });
        output.WriteLine(runner.Summary);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>A case reading <paramref name="file"/>; when checked, the result must be what <see cref="Reference"/> makes of <paramref name="content"/>.</summary>
    private static FuzzCase IdxCase(byte[]? content, byte[] file, string description, bool checkedAgainstReference)
    {
        const string Name = "data.idx";
        var expected = checkedAgainstReference && content is not null ? Reference(content) : null;
        // Deflate expands at most 1032:1, so a gzip file can justify 1032 bytes per byte; a raw one its own length.
        long justified = content is not null ? content.Length + file.Length : 1032L * file.Length;
        return new FuzzCase
        {
            Description = description,
            Files = new Dictionary<string, byte[]?> { [Name] = file },
            JustifiedBytes = justified,
            Judge = (e, dir) => DocumentedIdxFailure(e, Path.Combine(dir, Name)),
            Read = dir =>
            {
                IdxArray got;
                try { got = IdxReader.Read(Path.Combine(dir, Name)); }
                catch (InvalidDataException e) when (expected is not null)
                {
                    throw new FuzzPropertyException($"refused a valid IDX file of shape [{string.Join(", ", expected.Value.shape)}]: {e.Message}");
                }
                if (checkedAgainstReference && content is not null && expected is null)
                    throw new FuzzPropertyException($"read an invalid IDX file as shape [{string.Join(", ", got.Shape)}]");
                if (expected is { } x && (!x.shape.SequenceEqual(got.Shape) || !x.data.AsSpan().SequenceEqual(got.Data)))
                    throw new FuzzPropertyException($"read shape [{string.Join(", ", got.Shape)}] and {got.Data.Length} bytes, expected [{string.Join(", ", x.shape)}] and {x.data.Length}");
            },
        };
    }

    [Fact]
    public void MnistDatasetLoad_MutatedFiles_LoadOrRefuseWithInvalidDataException()
    {
        const int N = 3;
        var images = IdxBytes(0x08, 1, [N, 28, 28]);
        var labels = IdxBytes(0x08, 1, [N]);
        for (int i = 0; i < N; i++) labels[8 + i] = (byte)(i * 4 % 10);
        var pool = new List<byte[]> { images, labels };
        using var runner = new FuzzRunner("mnist");
        var warmUp = new[] { false, true }.Select(gz => MnistCase(images, labels, gz, gz, "valid seed")).ToList();

        var failures = runner.Run(FuzzConfig.Cases(CiMnistCases), warmUp, (i, rng) =>
        {
            var log = new List<string>();
            var img = images;
            var lab = labels;
            bool mutateImages = rng.Chance(0.6), both = rng.Chance(0.1);
            if (mutateImages || both)
            {
                log.Add("images:");
                img = rng.Chance(0.3) ? MutateHeader(img, rng, log) : img;
                img = Mutations.Mutate(img, rng, pool, log);
            }
            if (!mutateImages || both)
            {
                log.Add("labels:");
                lab = rng.Chance(0.3) ? MutateHeader(lab, rng, log) : lab;
                lab = Mutations.Mutate(lab, rng, pool, log);
            }
            bool gzImages = rng.Chance(0.5), gzLabels = rng.Chance(0.5);
            log.Add($"images {(gzImages ? "gzip" : "raw")}, labels {(gzLabels ? "gzip" : "raw")}");
            return MnistCase(img, lab, gzImages, gzLabels, string.Join(" ", log));
        });
        output.WriteLine(runner.Summary);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static FuzzCase MnistCase(byte[] images, byte[] labels, bool gzImages, bool gzLabels, string description)
    {
        string imagesName = "train-images-idx3-ubyte" + (gzImages ? ".gz" : ""), labelsName = "train-labels-idx1-ubyte" + (gzLabels ? ".gz" : "");
        return new FuzzCase
        {
            Description = description,
            Files = new Dictionary<string, byte[]?>
            {
                [imagesName] = gzImages ? Mutations.Gzip(images) : images,
                [labelsName] = gzLabels ? Mutations.Gzip(labels) : labels,
            },
            // The dataset holds the payload as bytes, as float32 and the labels as int64: a few times the input.
            JustifiedBytes = 6L * (images.Length + labels.Length),
            Judge = (e, dir) => e.GetType() != typeof(InvalidDataException) ? "undocumented exception type"
                : !e.Message.Contains(dir, StringComparison.Ordinal) ? "the message does not name the file" : null,
            Read = dir =>
            {
                using var ds = MnistDataset.Load(dir, MnistSplit.Train);
                var reference = Reference(images);
                if (reference is null || Reference(labels) is null)
                    throw new FuzzPropertyException("loaded a dataset from an invalid IDX file");
                if (ds.Count != reference.Value.shape[0] || ds.Images.shape[1] != 784)
                    throw new FuzzPropertyException($"loaded {ds.Count} images of shape [{string.Join(", ", ds.Images.shape)}] from [{string.Join(", ", reference.Value.shape)}]");
                using var max = ds.Labels.max();
                using var min = ds.Labels.min();
                if (max.ToInt64() > 9 || min.ToInt64() < 0) throw new FuzzPropertyException("a label outside 0..9 was accepted");
            },
        };
    }
}

using Xunit.Abstractions;
using System.IO.Compression;
using System.Text.Json.Nodes;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.PyTorch;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Fuzz;

/// <summary>
/// Mutation fuzzing of <see cref="PyTorchInterchange.Import(string, Device?)"/>: PyTorch's zip-of-pickle state_dict
/// files (read through TorchSharp.PyBridge's unpickler) with their metadata sidecars, seeded by an exported RBM and a
/// class-conditional DBN. The sidecar's size and hash are dropped (as a file written by PyTorch code may have none), so
/// mutated weights reach the unpickler; half the cases mutate one member of the zip (the pickle or a tensor's storage)
/// and zip it again, so the zip reader's own checks do not stop them first. Every case must import, or be refused with
/// the documented <see cref="CheckpointException"/> naming the file, within the harness's time and memory bounds.
/// </summary>
public sealed class PyTorchImportFuzzTests(ITestOutputHelper output)
{
    private const int CiCases = 1500;
    private const string File = "model.pth";

    private sealed record Seed(string Kind, byte[] Weights, string Sidecar, List<(string name, byte[] data)> Members);

    private static Seed Export(string kind, nn.Module module)
    {
        var dir = Directory.CreateTempSubdirectory("tb-pth-seed-").FullName;
        try
        {
            string path = Path.Combine(dir, File);
            var sidecar = PyTorchInterchange.Export(module, path);
            sidecar.Remove("weights_sha256");
            sidecar.Remove("weights_bytes");
            byte[] weights = System.IO.File.ReadAllBytes(path);
            var members = new List<(string, byte[])>();
            using (var zip = new ZipArchive(new MemoryStream(weights), ZipArchiveMode.Read))
                foreach (var e in zip.Entries)
                {
                    using var s = e.Open();
                    using var ms = new MemoryStream();
                    s.CopyTo(ms);
                    members.Add((e.FullName, ms.ToArray()));
                }
            return new Seed(kind, weights, sidecar.ToJsonString(), members);
        }
        finally
        {
            module.Dispose();
            Directory.Delete(dir, recursive: true);
        }
    }

    private static byte[] Zip(List<(string name, byte[] data)> members)
    {
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var (name, data) in members)
            {
                using var s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
                s.Write(data);
            }
        return ms.ToArray();
    }

    [Fact]
    public void Import_MutatedStateDictFiles_ImportOrRefuseWithCheckpointException()
    {
        Seed[] seeds;
        using (var g = new Generator(5))
            seeds =
            [
                Export("RBM", boltzmann.RBM(7, 4, generator: g)),
                Export("DBN", boltzmann.DBN([6, 5, 4], n_classes: 3, generator: g)),
            ];
        var pool = seeds.Select(s => s.Weights).Concat(seeds.SelectMany(s => s.Members.Select(m => m.data))).ToList();
        using var runner = new FuzzRunner("pytorch-import");
        var failures = runner.Run(FuzzConfig.Cases(CiCases), seeds.Select(s => Case(s.Weights, s.Sidecar, "valid seed")), (i, rng) =>
        {
            var seed = rng.Pick(seeds);
            var log = new List<string> { $"{seed.Kind} seed" };
            byte[] weights;
            if (rng.Chance(0.5))
            {
                int k = rng.Next(seed.Members.Count);
                log.Add($"zip member '{seed.Members[k].name}' mutated, zipped again");
                var members = seed.Members.ToList();
                members[k] = (members[k].name, Mutations.Mutate(members[k].data, rng, pool, log));
                weights = Zip(members);
            }
            else weights = Mutations.Mutate(seed.Weights, rng, pool, log);
            return Case(weights, seed.Sidecar, string.Join("; ", log));
        });
        output.WriteLine(runner.Summary);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>
    /// A pickle whose BINUNICODE opcode claims 1.9 GB (one damaged byte did this in a fuzz case): PyBridge's unpickler
    /// allocates the claimed length before reading it, so the import checks the pickle's framing first and refuses it.
    /// </summary>
    [Fact]
    public void Import_PickleClaimingAHugeString_IsRefusedBeforeTheUnpicklerAllocatesIt()
    {
        Seed seed;
        using (var g = new Generator(5)) seed = Export("RBM", boltzmann.RBM(7, 4, generator: g));
        var members = seed.Members.ToList();
        int k = members.FindIndex(m => m.name.EndsWith("/data.pkl", StringComparison.Ordinal));
        members[k] = (members[k].name, [0x80, 2, (byte)'X', 0x80, 0x07, 0x40, 0x71, (byte)'a', (byte)'b', (byte)'.']);
        using var dir = new Data.TempDirectory();
        string path = dir.File(File);
        System.IO.File.WriteAllBytes(path, Zip(members));
        System.IO.File.WriteAllText(path + ".json", seed.Sidecar);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<CheckpointException>(() => PyTorchInterchange.Import(path));
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, 16L << 20);
        Assert.Contains($"'{path}'", e.Message);
        Assert.Contains("claims 1900021632 bytes at byte 7 where 3 remain", e.Message);
    }

    /// <summary>
    /// pytorch-import cases 3192 and 13592 of a 15,000-case campaign (TB_FUZZ_SCALE=10): a zip whose entry for the pickle
    /// declares a larger size than it holds made the framing check allocate the declared size (up to its 16 MiB limit);
    /// it reads what the entry holds, and refuses the mismatch.
    /// </summary>
    [Fact]
    public void Import_ZipEntryDeclaringALargerPickle_IsRefusedAllocatingWhatItHolds()
    {
        Seed seed;
        using (var g = new Generator(5)) seed = Export("RBM", boltzmann.RBM(7, 4, generator: g));
        byte[] zip = Zip(seed.Members);
        for (int at = 0; at + 46 <= zip.Length; at++)
        {
            if (zip[at] != 0x50 || zip[at + 1] != 0x4B || zip[at + 2] != 1 || zip[at + 3] != 2) continue;   // central directory entry
            int nameLength = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(at + 28));
            if (System.Text.Encoding.UTF8.GetString(zip, at + 46, nameLength).EndsWith("/data.pkl", StringComparison.Ordinal))
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(at + 24), 15_000_000);   // uncompressed size
        }
        using var dir = new Data.TempDirectory();
        string path = dir.File(File);
        System.IO.File.WriteAllBytes(path, zip);
        System.IO.File.WriteAllText(path + ".json", seed.Sidecar);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<CheckpointException>(() => PyTorchInterchange.Import(path));
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, 4L << 20);
        Assert.Contains($"'{path}'", e.Message);
        Assert.Contains("15000000 bytes its zip entry declares", e.Message);
    }

    private static FuzzCase Case(byte[] weights, string sidecar, string description) => new()
    {
        Description = description,
        Files = new Dictionary<string, byte[]?> { [File] = weights, [File + ".json"] = System.Text.Encoding.UTF8.GetBytes(sidecar) },
        JustifiedBytes = 8L * weights.Length,
        Judge = (e, dir) => e.GetType() != typeof(CheckpointException) ? "undocumented exception type"
            : !e.Message.Contains(Path.Combine(dir, File), StringComparison.Ordinal) ? "the message does not name the file"
            : null,
        Read = dir =>
        {
            using var model = PyTorchInterchange.Import(Path.Combine(dir, File));
        },
    };
}

using System.Text;
using TorchBoltzmann.IO;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Visualization;

namespace TorchBoltzmann.Tests.IO;

public sealed class AtomicFileTests
{
    /// <summary>The writers of the library's single files: text (metrics JSON, CSV), a stream written in pieces (fine-tuning checkpoints), PNG images.</summary>
    public static TheoryData<string, bool> Writers => new()
    {
        { "text", true }, { "text", false }, { "pieces", true }, { "png", true }, { "png", false },
    };

    /// <summary>Writes version <paramref name="v"/> of the content with the writer <paramref name="kind"/>.</summary>
    private static void WriteVersion(string kind, string path, int v)
    {
        switch (kind)
        {
            case "text":
                // Long enough that a torn write is visibly partial.
                AtomicFile.WriteAllText(path, string.Concat(Enumerable.Range(0, 400).Select(i => $"version {v}, line {i}\n")));
                break;
            case "pieces":
                AtomicFile.Write(path, s =>
                {
                    using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
                    w.Write("header");
                    for (int i = 0; i < 4; i++) w.Write(Enumerable.Repeat((byte)(v * 16 + i), 1000).ToArray());
                    w.Write(v);
                });
                break;
            default:
                var counts = new int[3, 3];
                for (int i = 0; i < 3; i++) counts[i, i] = 10 * v + i;
                ConfusionMatrixImage.Save(path, counts, cellSize: 16);
                break;
        }
    }

    /// <summary>
    /// A crash (the process killed) before any one file operation of a write, for every operation in turn, leaves the
    /// previous content or the new one, whole, never a mix or a torn file (nor, for a first write, anything but the
    /// whole new file); and the next write, itself crashed at each of its operations in turn, also leaves the content
    /// before it or its own, and once it completes the target is alone in the directory: no temporary survives.
    /// </summary>
    [Theory]
    [MemberData(nameof(Writers))]
    public void Write_CrashedAtEveryOperation_LeavesTheOldOrTheNewContent_AndTheNextWriteRemovesTheLeftovers(string kind, bool existing)
    {
        using var dir = new TempDirectory();
        var path = dir.File("out.dat");
        var versions = Enumerable.Range(0, 3).Select(v =>
        {
            var scratch = dir.File($"v{v}");
            WriteVersion(kind, scratch, v);
            var bytes = File.ReadAllBytes(scratch);
            File.Delete(scratch);
            return bytes;
        }).ToArray();
        Assert.NotEqual(versions[0], versions[1]);

        // The state a crash at operation n of writing version 1 leaves.
        CrashingFileOperations Prepare(int n)
        {
            foreach (var f in Directory.GetFiles(dir.Path)) File.Delete(f);
            if (existing) WriteVersion(kind, path, 0);
            var crash = new CrashingFileOperations(n);
            crash.Run(() => WriteVersion(kind, path, 1));
            return crash;
        }
        int? Version(string what)
        {
            if (!File.Exists(path)) return null;
            var bytes = File.ReadAllBytes(path);
            int v = Array.FindIndex(versions, x => x.AsSpan().SequenceEqual(bytes));
            Assert.True(v >= 0, $"{what}: the file holds {bytes.Length} bytes that are no version written");
            return v;
        }

        bool leftovers = false;
        int n1 = 1;
        for (; n1 < 100; n1++)
        {
            var crash = Prepare(n1);
            var after = Version($"crash at {n1} ({string.Join(", ", crash.Log)})");
            // The rename is the write's last operation and the only one that changes the target: any crash leaves the old content.
            int? expected = crash.Crashed ? (existing ? 0 : null) : 1;
            Assert.True(after == expected, $"crash at {n1} ({string.Join(", ", crash.Log)}): version {after}, expected {expected}");
            leftovers |= Directory.GetFiles(dir.Path).Length > (after is null ? 0 : 1);

            for (int n2 = 1; n2 < 100; n2++)
            {
                Prepare(n1);
                var next = new CrashingFileOperations(n2);
                bool done = next.Run(() => WriteVersion(kind, path, 2));
                var v = Version($"crash at {n1}, then at {n2} of the next write ({string.Join(", ", next.Log)})");
                if (!done)
                {
                    Assert.True(v == after || v == 2, $"crash at {n1} then {n2}: version {v}, expected {after} or 2");
                    continue;
                }
                Assert.Equal(2, v);
                Assert.Equal([path], Directory.GetFiles(dir.Path));
                break;
            }
            if (!crash.Crashed) break;
        }
        Assert.InRange(n1, 4, 99);   // create, write(s), flush, rename at least: the sweep saw them all
        Assert.True(leftovers, "some crash left a temporary for the next write to remove");
    }

    [Fact]
    public void Write_OperationsAre_CreateWriteFlushThenOneRename_OfAHiddenTemporaryBesideTheTarget()
    {
        using var dir = new TempDirectory();
        var path = dir.File("metrics.json");
        var ops = new CrashingFileOperations(0);
        Assert.True(ops.Run(() => AtomicFile.WriteAllText(path, "{}")));
        Assert.Equal(4, ops.Log.Count);
        Assert.Matches(@"^create \.metrics\.json\.[0-9a-f]{32}\.tmp$", ops.Log[0]);
        Assert.Equal(["write 2 bytes", "flush"], ops.Log[1..3]);
        Assert.Matches(@"^move \.metrics\.json\.[0-9a-f]{32}\.tmp → metrics\.json$", ops.Log[3]);
        Assert.Equal("{}", File.ReadAllText(path));
    }

    [Fact]
    public void Write_RemovesOnlyTheLeftoversOfItsOwnNamingPattern()
    {
        using var dir = new TempDirectory();
        var path = dir.File("a.csv");
        string id = new string('0', 31) + "f";
        var ours = new[] { $".a.csv.{id}.tmp" };
        var others = new[]
        {
            ".a.csv.tmp", $".a.csv.{id}.tmp.bak", $".a.csv.{id[..^1]}.tmp", $".b.csv.{id}.tmp", $"a.csv.{id}.tmp",
            $".a.csv.{id.ToUpperInvariant().Replace('0', 'A')}.tmp", $".a.csv.{id}.pending", "notes.txt",
        };
        foreach (var f in ours.Concat(others)) File.WriteAllText(dir.File(f), "x");
        AtomicFile.WriteAllText(path, "new");
        Assert.Equal(others.Append("a.csv").Order(StringComparer.Ordinal), Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal("new", File.ReadAllText(path));
    }

    [Fact]
    public void Write_FailingWriter_LeavesTheTargetAndNoTemporary()
    {
        using var dir = new TempDirectory();
        var path = dir.File("x.txt");
        AtomicFile.WriteAllText(path, "old");
        Assert.Throws<IOException>(() => AtomicFile.Write(path, s => { s.Write("partial"u8); throw new IOException("disk full"); }));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFiles(dir.Path));
    }
}

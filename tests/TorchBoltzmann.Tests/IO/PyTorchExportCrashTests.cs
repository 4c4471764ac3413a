using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.PyTorch;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.IO;

/// <summary>
/// <see cref="PyTorchInterchange.Export"/> writes its <c>X.pth</c> and <c>X.pth.json</c> as a pair by the sequence of
/// <see cref="Checkpoint.Save"/> (<see cref="Checkpoint.SavePair"/>): killed at any file operation, the old export or
/// the new one imports, and the next export removes what the killed one left.
/// </summary>
public sealed class PyTorchExportCrashTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tb-export-crash-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static RBM Version(int v)
    {
        using var g = new Generator(100UL + (ulong)v);
        return boltzmann.RBM(5, 3, generator: g);
    }

    /// <summary>Which of <paramref name="versions"/> imports from <paramref name="path"/> (null: none imports).</summary>
    private static int? Imported(string path, RBM[] versions, string what)
    {
        RBM rbm;
        try { rbm = PyTorchInterchange.Import<RBM>(path); }
        catch (CheckpointException) { return null; }
        using (rbm)
        {
            for (int v = 0; v < versions.Length; v++)
                if (rbm.weight.bytes.ToArray().AsSpan().SequenceEqual(versions[v].weight.bytes.ToArray())) return v;
        }
        throw new Xunit.Sdk.XunitException($"{what}: imported weights of no version");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Export_CrashedAtEveryOperation_LeavesTheOldOrTheNewExport_AndTheNextExportRemovesTheLeftovers(bool existing)
    {
        var versions = Enumerable.Range(0, 3).Select(Version).ToArray();
        try
        {
            string path = Path.Combine(_dir, "rbm.pth");
            var complete = new CrashingFileOperations(0);
            Assert.True(complete.Run(() => PyTorchInterchange.Export(versions[1], path)));
            int operations = complete.Count, commit = complete.Log.FindIndex(l => l.StartsWith("move .rbm.pth.", StringComparison.Ordinal)) + 1;
            Assert.True(commit > 0, string.Join(", ", complete.Log));
            bool pendingSeen = false;
            for (int n = 1; n <= operations + 1; n++)
            {
                foreach (var f in Directory.GetFiles(_dir)) File.Delete(f);
                if (existing) PyTorchInterchange.Export(versions[0], path);
                var crash = new CrashingFileOperations(n);
                crash.Run(() => PyTorchInterchange.Export(versions[1], path));
                Assert.Equal(n <= operations, crash.Crashed);
                string what = $"crash at {n} ({string.Join(", ", crash.Log)})";
                int? after = Imported(path, versions, what), expected = n > commit ? 1 : existing ? 0 : null;
                Assert.True(after == expected, $"{what}: imports version {after?.ToString() ?? "none"}, expected {expected?.ToString() ?? "none"}");
                pendingSeen |= after == 1 && Directory.GetFiles(_dir).Any(f => f.EndsWith(Checkpoint.PendingSuffix, StringComparison.Ordinal));

                PyTorchInterchange.Export(versions[2], path);
                Assert.Equal(2, Imported(path, versions, $"{what}, then a whole export"));
                Assert.Equal(["rbm.pth", "rbm.pth.json"], Directory.GetFiles(_dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
            }
            Assert.True(pendingSeen, "no crash left the new weights with their sidecar pending: the test missed the window it exists for");
        }
        finally { foreach (var v in versions) v.Dispose(); }
    }
}

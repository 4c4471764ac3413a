using System.Diagnostics;
using System.Security.Cryptography;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Tests.Training;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.IO;

/// <summary>
/// <see cref="Checkpoint.Save"/> killed at every point: in process, through <see cref="CrashingFileOperations"/>, and in
/// child processes killed for real at every file operation (<see cref="CheckpointSaveChild"/>).
/// </summary>
public sealed partial class CheckpointTests
{
    private static RBM Version(int v) => TestUtil.RandomRbm(12, 5, seed: (ulong)(100 + v));

    /// <summary>Whether two RBMs hold exactly the same tensors.</summary>
    private static bool SameTensors(RBM a, RBM b)
        => DbnTestUtil.Same(a.weight, b.weight) && DbnTestUtil.Same(a.visible_bias, b.visible_bias) && DbnTestUtil.Same(a.hidden_bias, b.hidden_bias);

    /// <summary>Names and contents of every file in <paramref name="dir"/>.</summary>
    private static string Snapshot(string dir)
        => string.Join("\n", Directory.GetFiles(dir).Order(StringComparer.Ordinal)
            .Select(f => $"{Path.GetFileName(f)} {Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))}"));

    /// <summary>
    /// Which of <paramref name="versions"/> the checkpoint at <paramref name="path"/> loads, by exact comparison of its
    /// tensors (exactly one must match), or null if it does not load; also checks that loading changed nothing on disk,
    /// that <see cref="Checkpoint.Exists"/> agrees, and that <see cref="Checkpoint.ReadSidecar"/> gives the sidecar of
    /// the weights on disk.
    /// </summary>
    internal static int? LoadedVersion(string path, IReadOnlyList<RBM> versions, string what)
    {
        var dir = Path.GetDirectoryName(path)!;
        var before = Snapshot(dir);
        RBM loaded;
        try { loaded = Checkpoint.Load<RBM>(path); }
        catch (CheckpointException e)
        {
            Assert.False(Checkpoint.Exists(path), $"{what}: Exists, but Load says {e.Message}");
            return null;
        }
        using (loaded)
        {
            Assert.True(Checkpoint.Exists(path), $"{what}: loads, but Exists is false");
            var matches = Enumerable.Range(0, versions.Count).Where(i => SameTensors(versions[i], loaded)).ToList();
            Assert.True(matches.Count == 1, $"{what}: the loaded tensors match {matches.Count} of the versions saved");
            Assert.Equal(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))).ToLowerInvariant(),
                Checkpoint.ReadSidecar(path)["weights_sha256"]!.GetValue<string>());
            Assert.True(before == Snapshot(dir), $"{what}: loading changed the directory");
            return matches[0];
        }
    }

    /// <summary>
    /// A save killed before any one of its file operations, for every operation in turn, leaves the previous checkpoint
    /// or the new one loading with exactly its tensors (a first save: nothing, or the new one); only the rename of the
    /// weights switches from old to new. From every such state, the next save, itself killed at each of its operations
    /// in turn (finishing the interrupted save, deleting leftovers, …), leaves the checkpoint before it or its own; once
    /// it completes only the two files remain.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Save_CrashedAtEveryOperation_LeavesTheOldOrTheNewCheckpoint_AndTheNextSaveRemovesTheLeftovers(bool existing)
    {
        var versions = Enumerable.Range(0, 3).Select(Version).ToArray();
        try
        {
            var path = Path.Combine(_dir, "rbm.pt");
            CrashingFileOperations Prepare(int n)
            {
                foreach (var f in Directory.GetFiles(_dir)) File.Delete(f);
                if (existing) Checkpoint.Save(versions[0], path, new { version = 0 });
                var crash = new CrashingFileOperations(n);
                crash.Run(() => Checkpoint.Save(versions[1], path, new { version = 1 }));
                return crash;
            }

            var complete = new CrashingFileOperations(0);
            Assert.True(complete.Run(() => Checkpoint.Save(versions[1], path)));
            int operations = complete.Count, commit = complete.Log.FindIndex(l => l.StartsWith("move .rbm.pt.", StringComparison.Ordinal)) + 1;
            Assert.True(commit > 0, string.Join(", ", complete.Log));

            bool pendingSeen = false, temporarySeen = false;
            for (int n1 = 1; n1 <= operations + 1; n1++)
            {
                var crash = Prepare(n1);
                Assert.Equal(n1 <= operations, crash.Crashed);
                var what = $"crash at {n1} ({string.Join(", ", crash.Log)})";
                var after = LoadedVersion(path, versions, what);
                int? expected = n1 > commit ? 1 : existing ? 0 : null;
                Assert.True(after == expected, $"{what}: loads version {after?.ToString() ?? "none"}, expected {expected?.ToString() ?? "none"}");
                var files = Directory.GetFiles(_dir).Select(Path.GetFileName).ToList();
                pendingSeen |= files.Any(f => f!.EndsWith(Checkpoint.PendingSuffix, StringComparison.Ordinal)) && after == 1;
                temporarySeen |= files.Any(f => f!.EndsWith(".tmp", StringComparison.Ordinal));

                for (int n2 = 1; ; n2++)
                {
                    Prepare(n1);
                    var next = new CrashingFileOperations(n2);
                    bool done = next.Run(() => Checkpoint.Save(versions[2], path, new { version = 2 }));
                    var v = LoadedVersion(path, versions, $"{what}, then at {n2} of the next save ({string.Join(", ", next.Log)})");
                    if (!done)
                    {
                        Assert.True(v == after || v == 2, $"{what}, then at {n2}: version {v}, expected {after} or 2");
                        Assert.True(n2 < 30, "the next save ends");
                        continue;
                    }
                    Assert.Equal(2, v);
                    Assert.Equal(["rbm.json", "rbm.pt"], Directory.GetFiles(_dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
                    Assert.Equal(2, Checkpoint.ReadSidecar(path)["training"]!["version"]!.GetValue<int>());
                    break;
                }
            }
            Assert.True(pendingSeen, "a crash between the two renames was exercised: new weights beside a pending sidecar");
            Assert.True(temporarySeen, "some crash left a temporary for the next save to remove");
        }
        finally
        {
            foreach (var m in versions) m.Dispose();
        }
    }

    /// <summary>The operations are the ones Save's remarks list, in that order, on files named as they say.</summary>
    [Fact]
    public void Save_Operations_AreTheDocumentedSequence()
    {
        using var first = Version(0);
        using var second = Version(1);
        var path = Path.Combine(_dir, "m.pt");
        Checkpoint.Save(first, path);
        var ops = new CrashingFileOperations(0);
        Assert.True(ops.Run(() => Checkpoint.Save(second, path)));
        const string id = "[0-9a-f]{32}";
        var expected = new[]
        {
            $@"^create \.m\.pt\.{id}\.tmp$", @"^write \d+ bytes$", "^flush$",
            $@"^create \.m\.json\.{id}\.pending$", @"^write \d+ bytes$", "^flush$",
            $@"^move \.m\.pt\.{id}\.tmp → m\.pt$", $@"^move \.m\.json\.{id}\.pending → m\.json$",
        };
        Assert.Equal(expected.Length, ops.Log.Count);
        for (int i = 0; i < expected.Length; i++) Assert.Matches(expected[i], ops.Log[i]);
        Assert.Equal(new FileInfo(path).Length, long.Parse(ops.Log[1].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// The next save removes the leftovers of killed saves to the same path (temporaries of the weights and sidecar,
    /// pending sidecars), and only those: files of other names, or of other checkpoints, stay.
    /// </summary>
    [Fact]
    public void Save_RemovesOnlyTheLeftoversOfThisPathsKilledSaves()
    {
        using var model = Version(0);
        var path = Path.Combine(_dir, "m.pt");
        string id = "0123456789abcdef0123456789abcdef";
        var ours = new[] { $".m.pt.{id}.tmp", $".m.json.{id}.tmp", $".m.json.{id}.pending" };
        var others = new[] { $".n.pt.{id}.tmp", $".n.json.{id}.pending", $".m.pt.{id}.pending", $".m.json.{id}x.pending", ".m.json.pending", $"m.json.{id}.pending", "m.txt" };
        foreach (var f in ours.Concat(others)) File.WriteAllText(Path.Combine(_dir, f), "{}");
        Checkpoint.Save(model, path);
        Assert.Equal(others.Concat(["m.json", "m.pt"]).Order(StringComparer.Ordinal), Directory.GetFiles(_dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    /// <summary>
    /// The test assembly's entry point run as a child process (<see cref="CheckpointSaveChild"/>) saves a new checkpoint
    /// over an old one and stops before its N-th file operation (a write torn in half), where it is killed (SIGKILL:
    /// no finally block, no flush runs). One child per kill point, all at once (each costs a process start with
    /// libtorch, so not every operation: the in-process test above takes them all): in the middle of writing the new
    /// weights, in the middle of writing the new sidecar, just before the weights' rename and just after it (new
    /// weights beside the old sidecar). After each kill the old or the new checkpoint loads with exactly its tensors
    /// (the new one only once the weights were renamed), and the next save in this process leaves the new pair alone.
    /// </summary>
    [Fact]
    public void Save_ChildProcessKilledAtEveryOperation_LeavesTheOldOrTheNewCheckpoint()
    {
        var versions = Enumerable.Range(0, 3).Select(v => CheckpointSaveChild.Model(v)).ToArray();
        var children = new List<(int n, string dir, Process process)>();
        try
        {
            var probe = new CrashingFileOperations(0);
            var probeDir = Directory.CreateDirectory(Path.Combine(_dir, "probe")).FullName;
            Checkpoint.Save(versions[0], Path.Combine(probeDir, CheckpointSaveChild.FileName));
            Assert.True(probe.Run(() => Checkpoint.Save(versions[1], Path.Combine(probeDir, CheckpointSaveChild.FileName))));
            int commit = probe.Log.FindIndex(l => l.StartsWith("move .", StringComparison.Ordinal) && l.Contains(".pt.", StringComparison.Ordinal)) + 1;
            var writes = probe.Log.Select((l, i) => (l, n: i + 1)).Where(x => x.l.StartsWith("write", StringComparison.Ordinal)).Select(x => x.n).ToList();
            Assert.True(commit > 0 && writes.Count == 2, string.Join(", ", probe.Log));
            int[] killPoints = [writes[0], writes[1], commit, commit + 1];

            foreach (int n in killPoints)
            {
                var dir = Directory.CreateDirectory(Path.Combine(_dir, $"kill-{n}")).FullName;
                Checkpoint.Save(versions[0], Path.Combine(dir, CheckpointSaveChild.FileName));
                children.Add((n, dir, CheckpointSaveChild.Start(dir, n)));
            }
            foreach (var (n, dir, process) in children)
            {
                string line = CheckpointSaveChild.AwaitLine(process, TimeSpan.FromSeconds(90));
                Assert.True(line.StartsWith($"paused at {n}: ", StringComparison.Ordinal), $"child {n}: '{line}'");
                try { process.Kill(entireProcessTree: true); }
                catch (InvalidOperationException) { }   // exited on its own after "saved"
                process.WaitForExit();
                var path = Path.Combine(dir, CheckpointSaveChild.FileName);
                var v = LoadedVersion(path, versions, $"child killed at {n} ({line})");
                Assert.True(v == (n > commit ? 1 : 0), $"child killed at {n} ({line}): loads version {v}, expected {(n > commit ? 1 : 0)}");

                Checkpoint.Save(versions[2], path);
                Assert.Equal(2, LoadedVersion(path, versions, $"the save after child {n}"));
                Assert.Equal(2, Directory.GetFiles(dir).Length);
            }
        }
        finally
        {
            foreach (var (_, _, process) in children)
            {
                try { if (!process.HasExited) process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                process.Dispose();
            }
            foreach (var m in versions) m.Dispose();
        }
    }
}

/// <summary>
/// The child process of <see cref="CheckpointTests.Save_ChildProcessKilledAtEveryOperation_LeavesTheOldOrTheNewCheckpoint"/>:
/// <c>dotnet TorchBoltzmann.Tests.dll checkpoint-save DIR N</c> saves <see cref="Model"/>(1) to DIR/model.pt, stopping
/// for good before its N-th file operation (after writing half of it, for a write) with "paused at N: …" on stdout, or
/// printing "saved" if the save has fewer operations.
/// </summary>
internal static class CheckpointSaveChild
{
    public const string Command = "checkpoint-save";
    public const string FileName = "model.pt";

    /// <summary>Version <paramref name="v"/> of the model saved: 96 × 64 (~50 kB of weights).</summary>
    public static RBM Model(int v) => TestUtil.RandomRbm(96, 64, seed: (ulong)(200 + v));

    public static Process Start(string dir, int n)
    {
        var assembly = typeof(CheckpointSaveChild).Assembly.Location;
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h && File.Exists(h) ? h
            : Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        var info = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "exec", assembly, Command, dir, n.ToString(System.Globalization.CultureInfo.InvariantCulture) }) info.ArgumentList.Add(a);
        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {host}");
        process.ErrorDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>The child's first line on stdout (it prints one when it pauses or has saved).</summary>
    public static string AwaitLine(Process process, TimeSpan timeout)
    {
        var read = process.StandardOutput.ReadLineAsync();
        if (!read.Wait(timeout)) throw new TimeoutException($"no word from the child in {timeout.TotalSeconds} s");
        return read.Result ?? $"(exited with {process.ExitCode} without a word)";
    }

    /// <summary>The child's work.</summary>
    public static int Run(string[] args)
    {
        var dir = args[0];
        int n = int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
        using var model = Model(1);
        using (FileOperations.Use(new PausingFileOperations(n)))
            Checkpoint.Save(model, Path.Combine(dir, FileName));
        Console.Out.WriteLine("saved");
        Console.Out.Flush();
        return 0;
    }

    /// <summary>Real operations that stop the process for good before the N-th (half of a write done), saying so.</summary>
    private sealed class PausingFileOperations(int pauseAt) : FileOperations
    {
        private int _count;

        private void Step(string what, Action? partial = null)
        {
            if (++_count != pauseAt) return;
            partial?.Invoke();
            Console.Out.WriteLine($"paused at {_count}: {what}");
            Console.Out.Flush();
            Thread.Sleep(Timeout.Infinite);
        }

        public override Stream Create(string path)
        {
            Step($"create {Path.GetFileName(path)}");
            return new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0);
        }

        public override void Write(Stream file, ReadOnlySpan<byte> bytes)
        {
            var copy = bytes.ToArray();
            Step($"write {copy.Length} bytes", () => base.Write(file, copy.AsSpan(0, copy.Length / 2)));
            base.Write(file, copy);
        }

        public override void Flush(Stream file)
        {
            Step("flush");
            base.Flush(file);
        }

        public override void Move(string source, string destination)
        {
            Step($"move {Path.GetFileName(source)} → {Path.GetFileName(destination)}");
            base.Move(source, destination);
        }

        public override void Delete(string path)
        {
            Step($"delete {Path.GetFileName(path)}");
            base.Delete(path);
        }
    }
}

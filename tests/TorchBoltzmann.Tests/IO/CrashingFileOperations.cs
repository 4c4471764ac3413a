using TorchBoltzmann.IO;

namespace TorchBoltzmann.Tests.IO;

/// <summary>The process "died" here: thrown by <see cref="CrashingFileOperations"/>; not an IOException, so no cleanup swallows it.</summary>
internal sealed class SimulatedCrashException(string message) : Exception(message);

/// <summary>
/// File operations that perform the first <c>crashAt − 1</c> operations and die at operation <c>crashAt</c> (1-based):
/// that one is not done (a write is torn: half its bytes reach the file) and every later one throws too, as nothing runs
/// in a killed process. What is on disk afterwards is what a kill at that point leaves. Files are unbuffered, so every
/// write that returned is in the file. With <c>crashAt</c> = 0 nothing fails and the operations are only counted.
/// </summary>
internal sealed class CrashingFileOperations(int crashAt) : FileOperations
{
    /// <summary>Operations begun, the fatal one included.</summary>
    public int Count { get; private set; }

    /// <summary>Whether the crash happened.</summary>
    public bool Crashed { get; private set; }

    /// <summary>One line per operation begun: "create .x.pt.….tmp", "write 12 bytes", "flush", "move a → b", "delete …".</summary>
    public List<string> Log { get; } = [];

    /// <summary>Runs <paramref name="action"/> with these operations installed; true if it completed, false if it "crashed".</summary>
    public bool Run(Action action)
    {
        using (FileOperations.Use(this))
        {
            try
            {
                action();
                return true;
            }
            catch (SimulatedCrashException) when (Crashed)
            {
                return false;
            }
        }
    }

    private bool Fatal(string what)
    {
        if (Crashed) throw new SimulatedCrashException($"after the crash: {what}");
        Count++;
        Log.Add(what);
        if (Count != crashAt) return false;
        Crashed = true;
        return true;
    }

    public override Stream Create(string path)
    {
        if (Fatal($"create {Path.GetFileName(path)}")) throw new SimulatedCrashException($"crash at operation {Count}: {Log[^1]}");
        return new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0);
    }

    public override void Write(Stream file, ReadOnlySpan<byte> bytes)
    {
        if (Fatal($"write {bytes.Length} bytes"))
        {
            base.Write(file, bytes[..(bytes.Length / 2)]);   // torn
            throw new SimulatedCrashException($"crash at operation {Count}: {Log[^1]} (half written)");
        }
        base.Write(file, bytes);
    }

    public override void Flush(Stream file)
    {
        if (Fatal("flush")) throw new SimulatedCrashException($"crash at operation {Count}: flush");
        base.Flush(file);
    }

    public override void Move(string source, string destination)
    {
        if (Fatal($"move {Path.GetFileName(source)} → {Path.GetFileName(destination)}")) throw new SimulatedCrashException($"crash at operation {Count}: {Log[^1]}");
        base.Move(source, destination);
    }

    public override void Delete(string path)
    {
        if (Fatal($"delete {Path.GetFileName(path)}")) throw new SimulatedCrashException($"crash at operation {Count}: {Log[^1]}");
        base.Delete(path);
    }
}

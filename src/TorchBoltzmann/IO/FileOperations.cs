namespace TorchBoltzmann.IO;

/// <summary>
/// The file-system operations through which this library replaces files (<see cref="AtomicFile"/>,
/// <see cref="Checkpoint.Save"/>): create a new file, write bytes to it, flush it to disk, rename over a target, delete.
/// A seam for tests, which install one that fails at the N-th operation and refuses every later one, so that what is on
/// disk is exactly what a process killed at that point would leave.
/// </summary>
/// <remarks>
/// Reads (existence checks, directory listings, loading) do not go through it: they change nothing on disk. The
/// operations in use are per asynchronous flow (<see cref="Use"/>), so a test's replacement never reaches another
/// thread's writes.
/// </remarks>
internal class FileOperations
{
    /// <summary>The real file system.</summary>
    internal static FileOperations Real { get; } = new();

    private static readonly AsyncLocal<FileOperations?> Installed = new();

    /// <summary>The operations writes use now: the installed ones, else <see cref="Real"/>.</summary>
    internal static FileOperations Current => Installed.Value ?? Real;

    /// <summary>Installs <paramref name="operations"/> for this flow until the returned scope is disposed.</summary>
    internal static IDisposable Use(FileOperations operations)
    {
        ArgumentNullException.ThrowIfNull(operations);
        var previous = Installed.Value;
        Installed.Value = operations;
        return new Scope(previous);
    }

    /// <summary>Creates <paramref name="path"/>, which must not exist, for writing.</summary>
    public virtual Stream Create(string path) => new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);

    /// <summary>Writes <paramref name="bytes"/> at the end of a file opened by <see cref="Create"/>.</summary>
    public virtual void Write(Stream file, ReadOnlySpan<byte> bytes) => file.Write(bytes);

    /// <summary>Flushes a file opened by <see cref="Create"/> through the operating system's cache to the disk.</summary>
    public virtual void Flush(Stream file)
    {
        if (file is FileStream fs) fs.Flush(flushToDisk: true);
        else file.Flush();
    }

    /// <summary>Renames <paramref name="source"/> to <paramref name="destination"/>, replacing it if it exists (one rename(2) on Unix).</summary>
    public virtual void Move(string source, string destination) => File.Move(source, destination, overwrite: true);

    /// <summary>Deletes <paramref name="path"/>.</summary>
    public virtual void Delete(string path) => File.Delete(path);

    private sealed class Scope(FileOperations? previous) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            Installed.Value = previous;
        }
    }
}

/// <summary>
/// The stream a writer callback of <see cref="AtomicFile.Write"/> receives: every write goes through
/// <see cref="FileOperations.Write"/>, so a test can stop a save between any two of them.
/// </summary>
internal sealed class OperationStream(Stream file, FileOperations operations) : Stream
{
    private long _length;

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => _length;
    public override long Position { get => _length; set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (buffer.IsEmpty) return;
        operations.Write(file, buffer);
        _length += buffer.Length;
    }

    public override void WriteByte(byte value) => Write([value]);

    /// <summary>Buffered bytes go to the file; flushing to disk is the writer's last step, not the callback's.</summary>
    public override void Flush() { }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}

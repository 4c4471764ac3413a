namespace TorchBoltzmann.IO;

/// <summary>An output path that cannot be written: the message is one line naming the setting, the path and why.</summary>
public sealed class OutputLocationException : IOException
{
    /// <summary>Creates the exception with its one-line message.</summary>
    public OutputLocationException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// Checks an output location before any training, so that a long run cannot end with its model unwritable: used by
/// every command and recipe that writes a model.
/// </summary>
public static class OutputLocation
{
    /// <summary>
    /// Checks that <paramref name="path"/> names a file that can be written: not empty, not a directory, and its directory
    /// (created if needed) accepts a probe file, written there and deleted.
    /// </summary>
    /// <param name="setting">What the message calls the path: a command-line flag (<c>--output</c>) or an option's name.</param>
    /// <param name="path">The file to be written.</param>
    /// <returns><paramref name="path"/>.</returns>
    /// <exception cref="OutputLocationException">The path is empty, unusable or a directory, or its directory cannot be
    /// written; one line naming <paramref name="setting"/>.</exception>
    public static string Prepare(string setting, string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new OutputLocationException($"{setting}: expected a file path, got an empty one");
        string full;
        try
        {
            full = Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new OutputLocationException($"{setting} {path}: not a usable path ({e.Message})", e);
        }
        if (Directory.Exists(full) || path.EndsWith('/') || path.EndsWith(Path.DirectorySeparatorChar))
            throw new OutputLocationException($"{setting} {path}: expected a file path such as {Path.Combine(path, "model.pt")}, got a directory");
        string dir = Path.GetDirectoryName(full)!;
        try
        {
            Directory.CreateDirectory(dir);
            string probe = Path.Combine(dir, $".tbm-write-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OutputLocationException($"{setting} {path}: cannot write in the directory {dir} ({e.Message}); choose a writable location with {setting}", e);
        }
        return path;
    }
}

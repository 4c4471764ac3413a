using System.Text.RegularExpressions;

namespace TorchBoltzmann.IO;

/// <summary>Atomic file writes: write to a temporary file in the target directory, flush, then rename over the target.</summary>
/// <remarks>
/// A reader of the target sees the previous content or the new one, whole, at every instant, even if the writing
/// process is killed: the new content goes to <c>.NAME.&lt;32 hex digits&gt;.tmp</c> beside the target and only a
/// completed, flushed temporary is renamed over it (one rename, atomic on POSIX file systems and NTFS). A temporary left
/// by a killed write is removed by the next write to the same path. One writer per path at a time: a second writer's
/// cleanup may remove the first one's temporary, which then fails (leaving the target whole).
/// </remarks>
public static class AtomicFile
{
    /// <summary>
    /// Writes through <paramref name="write"/> into a temporary sibling of <paramref name="path"/> and renames it into
    /// place; on failure the target is untouched and the temporary removed.
    /// </summary>
    /// <remarks>
    /// The file-system operations, and why a crash after any of them is safe:
    /// <list type="number">
    /// <item>delete each <c>.NAME.&lt;hex&gt;.tmp</c> left by killed writes (never the target);</item>
    /// <item>create <c>.NAME.&lt;guid&gt;.tmp</c>, write the content into it, flush it to disk: until the rename the
    /// target is the previous file, and the partial temporary is a leftover for the next write to remove;</item>
    /// <item>rename the temporary over the target: the one step that switches readers from the old content to the new.</item>
    /// </list>
    /// </remarks>
    /// <exception cref="IOException">The file could not be written; the target is unchanged.</exception>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        var ops = FileOperations.Current;
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        RemoveLeftovers(full, ops, TemporarySuffix);
        var tmp = TemporaryName(full, NewId(), TemporarySuffix);
        try
        {
            WriteNew(tmp, write, ops);
            ops.Move(tmp, full);
        }
        catch
        {
            DeleteQuietly(tmp, ops);
            throw;
        }
    }

    /// <summary>Writes bytes atomically.</summary>
    /// <inheritdoc cref="Write" path="/exception"/>
    public static void WriteAllBytes(string path, byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        Write(path, s => s.Write(bytes));
    }

    /// <summary>Writes text (UTF-8) atomically.</summary>
    /// <inheritdoc cref="Write" path="/exception"/>
    public static void WriteAllText(string path, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));
    }

    /// <summary>The suffix of temporaries that a completed write renames into place.</summary>
    internal const string TemporarySuffix = ".tmp";

    /// <summary>A fresh id for a write's temporaries: 32 lower-case hex digits.</summary>
    internal static string NewId() => Guid.NewGuid().ToString("N");

    /// <summary><c>DIR/.NAME.&lt;id&gt;&lt;suffix&gt;</c> for the target <c>DIR/NAME</c> (a full path).</summary>
    internal static string TemporaryName(string fullPath, string id, string suffix)
        => Path.Combine(Path.GetDirectoryName(fullPath)!, $".{Path.GetFileName(fullPath)}.{id}{suffix}");

    /// <summary>
    /// The files beside <paramref name="fullPath"/> named as <see cref="TemporaryName"/> names them with one of
    /// <paramref name="suffixes"/> and a 32-hex-digit id (the only names this library's writes produce), in ordinal order.
    /// </summary>
    internal static List<string> Leftovers(string fullPath, params string[] suffixes)
    {
        var dir = Path.GetDirectoryName(fullPath)!;
        if (!Directory.Exists(dir)) return [];
        var name = Path.GetFileName(fullPath);
        var pattern = new Regex($"^\\.{Regex.Escape(name)}\\.[0-9a-f]{{32}}({string.Join("|", suffixes.Select(Regex.Escape))})$", RegexOptions.CultureInvariant);
        return Directory.EnumerateFiles(dir, $".{name}.*")
            .Where(f => pattern.IsMatch(Path.GetFileName(f)))
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Deletes the <see cref="Leftovers"/> of killed writes to <paramref name="fullPath"/>.</summary>
    internal static void RemoveLeftovers(string fullPath, FileOperations ops, params string[] suffixes)
    {
        foreach (var f in Leftovers(fullPath, suffixes))
        {
            try { ops.Delete(f); }
            catch (FileNotFoundException) { }   // removed meanwhile
        }
    }

    /// <summary>Creates <paramref name="tmp"/> (which must not exist), writes it through <paramref name="write"/> and flushes it to disk.</summary>
    internal static void WriteNew(string tmp, Action<Stream> write, FileOperations ops)
    {
        using var file = ops.Create(tmp);
        using (var stream = new OperationStream(file, ops)) write(stream);
        ops.Flush(file);
    }

    /// <summary>Deletes <paramref name="path"/> if it exists, ignoring I/O errors (cleanup after a failure that matters more).</summary>
    internal static void DeleteQuietly(string path, FileOperations ops)
    {
        try
        {
            if (File.Exists(path)) ops.Delete(path);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

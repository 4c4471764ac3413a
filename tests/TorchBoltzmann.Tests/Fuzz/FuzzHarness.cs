using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace TorchBoltzmann.Tests.Fuzz;

// Why a hand-written seeded mutation loop, and not SharpFuzz or FsCheck:
// - SharpFuzz needs an instrumented assembly and an out-of-process AFL or libFuzzer driver: coverage guidance finds more
//   in a long campaign, but it cannot run inside `dotnet test` on a CI machine within a minute, and the readers here
//   call into libtorch, whose native state AFL's fork server does not expect.
// - FsCheck generates values from types and shrinks them; our inputs are mutations of valid files (a gzip stream, a
//   TorchSharp state_dict, a JSON sidecar) where what matters is which mutation hits which field, and shrinking a
//   4 KB checkpoint with native calls per step is slow. A failure needs only (seed, case index) to be replayed.
// - A plain loop bounds each case in time and memory the same way for every reader, and its counts are exact.
// Each case draws its own generator from (seed, target, index), so any case replays alone:
//   TB_FUZZ_SEED=<seed> TB_FUZZ_CASE=<index> dotnet test -c Release --filter "FullyQualifiedName~<TestName>"

/// <summary>SplitMix64: a small, fully specified generator, so that a (seed, case) pair replays on any .NET version.</summary>
internal sealed class FuzzRandom(ulong seed)
{
    private ulong _state = seed;

    /// <summary>The generator of case <paramref name="index"/> of <paramref name="target"/> under <paramref name="seed"/>.</summary>
    public static FuzzRandom ForCase(ulong seed, string target, int index)
    {
        var r = new FuzzRandom(seed ^ Fnv1a(target) ^ ((ulong)(uint)index * 0x9E3779B97F4A7C15UL));
        r.NextUInt64();
        return r;
    }

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, <paramref name="maxExclusive"/>).</summary>
    public int Next(int maxExclusive) => maxExclusive <= 1 ? 0 : (int)(NextUInt64() % (ulong)maxExclusive);

    /// <summary>Uniform in [<paramref name="min"/>, <paramref name="maxExclusive"/>).</summary>
    public int Next(int min, int maxExclusive) => min + Next(maxExclusive - min);

    public bool Chance(double p) => (NextUInt64() >> 11) * (1.0 / (1UL << 53)) < p;

    public T Pick<T>(IReadOnlyList<T> items) => items[Next(items.Count)];

    public byte NextByte() => (byte)NextUInt64();

    private static ulong Fnv1a(string s)
    {
        ulong h = 0xCBF29CE484222325UL;
        foreach (char c in s) h = (h ^ c) * 0x100000001B3UL;
        return h;
    }
}

/// <summary>Settings from the environment, so that CI and a long campaign run the same tests.</summary>
internal static class FuzzConfig
{
    /// <summary>The default base seed: CI runs the same cases every time.</summary>
    public const ulong DefaultSeed = 20_260_131;

    /// <summary>TB_FUZZ_SEED (decimal or 0x-hex), else <see cref="DefaultSeed"/>.</summary>
    public static ulong Seed => Environment.GetEnvironmentVariable("TB_FUZZ_SEED") is { Length: > 0 } s
        ? s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.Parse(s[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture)
            : ulong.Parse(s, CultureInfo.InvariantCulture)
        : DefaultSeed;

    /// <summary>
    /// Cases per fuzz test: TB_FUZZ_CASES when set, else the test's CI count times TB_FUZZ_SCALE (default 1; a long
    /// campaign sets e.g. 100).
    /// </summary>
    public static int Cases(int ciCount) => Environment.GetEnvironmentVariable("TB_FUZZ_CASES") is { Length: > 0 } s
        ? int.Parse(s, CultureInfo.InvariantCulture)
        : checked(ciCount * (Environment.GetEnvironmentVariable("TB_FUZZ_SCALE") is { Length: > 0 } k ? int.Parse(k, CultureInfo.InvariantCulture) : 1));

    /// <summary>TB_FUZZ_CASE: run only this case index (to replay a failure).</summary>
    public static int? OnlyCase => Environment.GetEnvironmentVariable("TB_FUZZ_CASE") is { Length: > 0 } s
        ? int.Parse(s, CultureInfo.InvariantCulture)
        : null;

    /// <summary>Wall-clock limit of one case (TB_FUZZ_CASE_MS, default 5 s: healthy cases take milliseconds).</summary>
    public static TimeSpan CaseLimit => TimeSpan.FromMilliseconds(
        Environment.GetEnvironmentVariable("TB_FUZZ_CASE_MS") is { Length: > 0 } s ? int.Parse(s, CultureInfo.InvariantCulture) : 5000);

    /// <summary>Where failing inputs are written (TB_FUZZ_ARTIFACTS, default a folder under the temp directory).</summary>
    public static string ArtifactDirectory => Environment.GetEnvironmentVariable("TB_FUZZ_ARTIFACTS") is { Length: > 0 } s
        ? s
        : Path.Combine(Path.GetTempPath(), "tb-fuzz-failures");

    /// <summary>TB_FUZZ_REPORT: a file each fuzz test appends its summary line to (for long campaigns).</summary>
    public static string? ReportFile => Environment.GetEnvironmentVariable("TB_FUZZ_REPORT") is { Length: > 0 } s ? s : null;
}

/// <summary>One fuzz case: the files to write, the reader to call on them, and what its failure may be.</summary>
internal sealed class FuzzCase
{
    /// <summary>What was done to the seed input (printed with a failure).</summary>
    public required string Description { get; init; }

    /// <summary>File name → content, written into the case directory before <see cref="Read"/> (null: the file is absent).</summary>
    public required IReadOnlyDictionary<string, byte[]?> Files { get; init; }

    /// <summary>The reader under test, given the case directory. Throws <see cref="FuzzPropertyException"/> for a broken property.</summary>
    public required Action<string> Read { get; init; }

    /// <summary>Null when <paramref name="e"/> is a documented failure of the reader, else why it is not.</summary>
    public required Func<Exception, string, string?> Judge { get; init; }

    /// <summary>
    /// The most bytes the input can justify allocating (its length, or the largest payload it can decode to): the
    /// harness allows a constant plus a multiple of this, managed and native.
    /// </summary>
    public required long JustifiedBytes { get; init; }

    /// <summary>When set, the case is not run: it belongs to a family excluded from this run, named here.</summary>
    public string? ExcludedFamily { get; init; }
}

/// <summary>A property of a successful or refused read that does not hold (the model changed after a refusal, …).</summary>
internal sealed class FuzzPropertyException(string message) : Exception(message);

/// <summary>Peak-memory probes of this process (Linux /proc; absent elsewhere, then only managed allocation is bounded).</summary>
internal static class ProcessMemory
{
    private static readonly bool CanResetPeak = TryResetPeak();

    /// <summary>Resets VmHWM (peak resident size) to the current resident size; false where that is not possible.</summary>
    public static bool TryResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return false;
        }
    }

    /// <summary>(VmRSS, VmHWM, VmSize, VmPeak) in bytes, or null off Linux.</summary>
    public static (long rss, long peakRss, long size, long peakSize)? Read()
    {
        if (!CanResetPeak) return null;
        long rss = -1, hwm = -1, size = -1, peak = -1;
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = Kb(line);
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal)) hwm = Kb(line);
            else if (line.StartsWith("VmSize:", StringComparison.Ordinal)) size = Kb(line);
            else if (line.StartsWith("VmPeak:", StringComparison.Ordinal)) peak = Kb(line);
        }
        return rss < 0 || hwm < 0 || size < 0 || peak < 0 ? null : (rss, hwm, size, peak);

        static long Kb(string line) => 1024 * long.Parse(line.Split(':')[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }
}

/// <summary>
/// Runs fuzz cases on one dedicated worker thread, each within a wall-clock limit and memory bounds, and collects the
/// failures with what is needed to replay them.
/// </summary>
/// <remarks>
/// Bounds per case (input-justified bytes J, see <see cref="FuzzCase.JustifiedBytes"/>):
/// managed bytes allocated by the worker thread ≤ 4 MiB + 8·J; growth of the peak resident size ≤ 64 MiB + 8·J;
/// growth of the peak virtual size above the size at the start of the case ≤ 1 GiB + 8·J (a native allocation of
/// gigabytes that is never touched shows there, not in the resident size). One worker thread serves all cases, so
/// glibc's per-thread arenas and libtorch's thread pool are created once, by the warm-up, not by a case.
/// </remarks>
internal sealed class FuzzRunner : IDisposable
{
    private const long ManagedSlack = 4L << 20, ResidentSlack = 64L << 20, VirtualSlack = 1L << 30, PerJustifiedByte = 8;

    private readonly string _target;
    private readonly string _directory;
    private readonly Thread _worker;
    private readonly BlockingQueue _queue = new();
    private bool _abandoned;

    public FuzzRunner(string target)
    {
        _target = target;
        _directory = Directory.CreateTempSubdirectory($"tb-fuzz-{target}-").FullName;
        Directory.CreateDirectory(FuzzConfig.ArtifactDirectory);
        _worker = new Thread(_queue.Serve) { IsBackground = true, Name = $"fuzz-{target}" };
        _worker.Start();
    }

    /// <summary>Names the case being run, so that a crash of the process (a native abort) can be traced to it.</summary>
    private string InFlightFile => Path.Combine(FuzzConfig.ArtifactDirectory, $"in-flight-{_target}.txt");

    /// <summary>The summary of the last <see cref="Run"/>.</summary>
    public string Summary { get; private set; } = "";

    /// <summary>Runs <paramref name="warmUp"/> (the valid seeds, which must be read) and then <paramref name="cases"/> cases made by <paramref name="make"/>.</summary>
    /// <returns>The failures, each a paragraph; empty when every case ended as documented.</returns>
    public List<string> Run(int cases, IEnumerable<FuzzCase> warmUp, Func<int, FuzzRandom, FuzzCase> make)
    {
        var failures = new List<string>();
        ulong seed = FuzzConfig.Seed;
        foreach (var w in warmUp)
        {
            var f = Execute(w, -1, seed, requireSuccess: true);
            if (f is not null) failures.Add(f);
            if (_abandoned) return failures;
        }

        var outcomes = new SortedDictionary<string, int>(StringComparer.Ordinal);
        int run = 0, excluded = 0;
        long maxManaged = 0, maxResident = 0;
        double maxSeconds = 0;
        var clock = Stopwatch.StartNew();
        int? only = FuzzConfig.OnlyCase;
        for (int i = only ?? 0; i < (only is null ? cases : only.Value + 1); i++)
        {
            var rng = FuzzRandom.ForCase(seed, _target, i);
            FuzzCase c;
            try { c = make(i, rng); }
            catch (Exception e) { failures.Add($"case {i}: the harness could not build it: {e}"); continue; }
            if (c.ExcludedFamily is not null)
            {
                excluded++;
                outcomes[$"excluded: {c.ExcludedFamily}"] = outcomes.GetValueOrDefault($"excluded: {c.ExcludedFamily}") + 1;
                continue;
            }
            run++;
            // A crash ends the process before any report: the case in flight is named in a file that outlives it.
            File.WriteAllText(InFlightFile, $"{_target} case {i}, seed {seed}: {c.Description}\n  files: {_directory}\n  replay: TB_FUZZ_SEED={seed} TB_FUZZ_CASE={i}\n");
            var failure = Execute(c, i, seed, requireSuccess: false, outcomes, (m, r, t) => { maxManaged = Math.Max(maxManaged, m); maxResident = Math.Max(maxResident, r); maxSeconds = Math.Max(maxSeconds, t); });
            if (failure is not null) failures.Add(failure);
            if (_abandoned || failures.Count >= 20) break;
        }
        clock.Stop();
        if (!_abandoned) File.Delete(InFlightFile);
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{_target}: seed {seed}, {run} cases run, {excluded} excluded, {failures.Count} failures, {clock.Elapsed.TotalSeconds:F1} s; ");
        sb.Append(CultureInfo.InvariantCulture, $"slowest case {maxSeconds * 1000:F0} ms, max managed allocation {maxManaged / 1024} KiB, max resident growth {maxResident / 1024} KiB; outcomes: ");
        sb.Append(string.Join("; ", outcomes.Select(kv => $"{kv.Value} × {kv.Key}")));
        Summary = sb.ToString();
        if (FuzzConfig.ReportFile is { } report) File.AppendAllText(report, Summary + Environment.NewLine);
        return failures;
    }

    private string? Execute(FuzzCase c, int index, ulong seed, bool requireSuccess,
                            SortedDictionary<string, int>? outcomes = null, Action<long, long, double>? measured = null)
    {
        foreach (var file in Directory.EnumerateFiles(_directory)) File.Delete(file);
        foreach (var (name, bytes) in c.Files)
            if (bytes is not null) File.WriteAllBytes(Path.Combine(_directory, name), bytes);

        Exception? thrown = null;
        long managed = 0;
        (long rss, long peakRss, long size, long peakSize)? before = null, after = null;
        var done = new ManualResetEventSlim();
        _queue.Post(() =>
        {
            try
            {
                ProcessMemory.TryResetPeak();
                before = ProcessMemory.Read();
                long a0 = GC.GetAllocatedBytesForCurrentThread();
                try { c.Read(_directory); }
                catch (Exception e) { thrown = e; }
                managed = GC.GetAllocatedBytesForCurrentThread() - a0;
                after = ProcessMemory.Read();
            }
            finally { done.Set(); }
        });
        // The warm-up (the valid seeds) pays for first use, libtorch's start included: a longer limit, no memory bounds.
        var wall = Stopwatch.StartNew();
        var limit = requireSuccess ? TimeSpan.FromSeconds(Math.Max(60, FuzzConfig.CaseLimit.TotalSeconds)) : FuzzConfig.CaseLimit;
        if (!done.Wait(limit))
        {
            _abandoned = true;
            return Describe(c, index, seed, $"did not end within {limit.TotalSeconds:F0} s (a hang, or work out of proportion to the input); the worker thread is abandoned");
        }

        string? problem = null;
        long j = Math.Max(0, c.JustifiedBytes);
        long residentGrowth = before is { } b && after is { } a ? a.peakRss - b.rss : 0;
        measured?.Invoke(managed, residentGrowth, wall.Elapsed.TotalSeconds);
        if (thrown is FuzzPropertyException p) problem = $"a property failed: {p.Message}";
        else if (thrown is not null && requireSuccess) problem = $"the valid seed input was refused: {thrown}";
        else if (thrown is not null && c.Judge(thrown, _directory) is { } why) problem = $"{why}: {thrown}";
        else if (requireSuccess) problem = null;
        else if (managed > ManagedSlack + PerJustifiedByte * j)
            problem = $"allocated {managed:N0} managed bytes for an input that justifies {j:N0} (limit {ManagedSlack + PerJustifiedByte * j:N0})";
        else if (residentGrowth > ResidentSlack + PerJustifiedByte * j)
            problem = $"grew the resident size by {residentGrowth:N0} bytes for an input that justifies {j:N0}";
        else if (before is { } b2 && after is { } a2 && a2.peakSize > b2.peakSize && a2.peakSize - b2.size > VirtualSlack + PerJustifiedByte * j)
            problem = $"raised the peak virtual size {a2.peakSize - b2.size:N0} bytes above the case's start, for an input that justifies {j:N0} (an allocation sized by the input)";
        if (problem is not null) return Describe(c, index, seed, problem);

        if (outcomes is not null)
        {
            string key = thrown is null ? "read" : $"{thrown.GetType().Name}";
            outcomes[key] = outcomes.GetValueOrDefault(key) + 1;
        }
        return null;
    }

    private string Describe(FuzzCase c, int index, ulong seed, string problem)
    {
        string where = Path.Combine(FuzzConfig.ArtifactDirectory, $"{_target}-{seed}-{index}");
        try
        {
            Directory.CreateDirectory(where);
            foreach (var (name, bytes) in c.Files)
                if (bytes is not null) File.WriteAllBytes(Path.Combine(where, name), bytes);
        }
        catch (IOException) { where = "(could not be written)"; }
        string which = index < 0 ? "seed input (warm-up)" : $"case {index}";
        return $"{_target} {which}, seed {seed}: {problem}\n  input: {c.Description}\n  files: {where}\n" +
               (index < 0 ? "" : $"  replay: TB_FUZZ_SEED={seed} TB_FUZZ_CASE={index} dotnet test tests/TorchBoltzmann.Tests -c Release --filter \"FullyQualifiedName~Fuzz\"\n");
    }

    public void Dispose()
    {
        if (!_abandoned) _queue.Post(null);
        try { Directory.Delete(_directory, recursive: true); }
        catch (IOException) { }
    }

    /// <summary>A queue of actions served by one thread; a null action ends it.</summary>
    private sealed class BlockingQueue
    {
        private readonly System.Collections.Concurrent.BlockingCollection<Action?> _items = new();

        public void Post(Action? a) => _items.Add(a);

        public void Serve()
        {
            foreach (var a in _items.GetConsumingEnumerable())
            {
                if (a is null) return;
                a();
            }
        }
    }
}

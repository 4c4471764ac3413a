using System.Runtime.InteropServices;

namespace TorchBoltzmann;

/// <summary>
/// glibc's allocator under tensor workloads: opt-in tuning (<see cref="Tune"/>) and the training loops' releases of free
/// heap memory (<see cref="ReleaseIfGrown"/>: a process-wide action, on by default; an application embedding the library
/// turns it off with <c>NativeAllocator.ReleaseGrowthBytes = null</c>). By default glibc serves blocks above a (dynamic) threshold
/// with mmap and returns freed heap memory to the OS, so a training loop that frees and reallocates the same multi-MB
/// buffers every batch pays page faults each time: a 784×500 CD-1 epoch measured 7.4 s with defaults and 2.4 s with
/// these settings on a 2-core Debian 12 machine. Applications (the CLI, benchmarks, notebooks) call <see cref="Tune"/>
/// once at start-up; the library itself changes no allocator setting (it only releases free memory, below).
/// Equivalent to <c>GLIBC_TUNABLES=glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=268435456</c>.
/// <para>Fragmentation. Freed tensor memory can stay inside glibc's heap, too fragmented to serve the next buffer, while
/// the heap grows (most likely the aligned allocations libtorch makes with <c>posix_memalign</c>, which glibc serves by
/// splitting larger chunks and leaves small pieces between freed buffers; glibc 2.36 here). Measured (commit dcdd825, 2026-11-30; 784-500-500-2000-10 classifier,
/// conjugate-gradient steps on batches of 1,000): 25 live tensors, ~100 MB of managed heap, 84 MB of malloc'd memory in
/// use, yet 2.5 GB of resident heap after 3 epochs of 10 steps and up to 5–6 GB later (12.6 GB in a hinton2006 run),
/// with or without <see cref="Tune"/>; glibc only returns it when the top of the heap happens to be free. Training loops
/// (<see cref="Training.FineTuner"/>, <see cref="Training.RbmTrainer"/>) therefore call <see cref="ReleaseIfGrown"/>
/// after every batch: when the anonymous resident size has grown by <see cref="ReleaseGrowthBytes"/> since the last release it
/// hands the heap's free pages back (<c>malloc_trim(0)</c>, which changes no setting; the pages are faulted in again
/// only if reused). The same run then peaks at 1.3 GB instead of 7.0 GB (bench -- --heap).</para>
/// </summary>
public static class NativeAllocator
{
    private const int M_TRIM_THRESHOLD = -1;
    private const int M_MMAP_THRESHOLD = -3;

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int param, int value);

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int malloc_trim(nuint pad);

    private static bool _trimUnavailable;
    private static readonly GrowthRelease Policy = new(AnonymousResidentBytes, ReleaseFreeMemory, () => Environment.TickCount64);

    /// <summary>Whether <see cref="Tune"/> succeeded in this process, or GLIBC_TUNABLES already sets the thresholds.</summary>
    public static bool IsTuned { get; private set; } =
        Environment.GetEnvironmentVariable("GLIBC_TUNABLES")?.Contains("mmap_threshold") == true;

    /// <summary>
    /// Sets glibc's mmap threshold to 64 MiB and trim threshold to 256 MiB, so that freed tensor buffers are reused.
    /// Returns false (and does nothing) where glibc is not the C library (Windows, macOS, musl).
    /// </summary>
    public static bool Tune(int mmapThresholdBytes = 64 << 20, int trimThresholdBytes = 256 << 20)
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            bool ok = mallopt(M_MMAP_THRESHOLD, mmapThresholdBytes) == 1 && mallopt(M_TRIM_THRESHOLD, trimThresholdBytes) == 1;
            IsTuned |= ok;
            return ok;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    /// <summary>
    /// Growth of the anonymous resident size (bytes, over the size after the last release or the smallest size seen since) at
    /// which <see cref="ReleaseIfGrown"/> hands free heap pages back to the OS. Default 512 MiB; null turns the training
    /// loops' releases off.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A value ≤ 0.</exception>
    public static long? ReleaseGrowthBytes
    {
        get => Policy.GrowthBytes;
        set => Policy.GrowthBytes = value;
    }

    /// <summary>Number of times <see cref="ReleaseIfGrown"/> released memory in this process.</summary>
    public static int Releases => Policy.Releases;

    /// <summary>
    /// The process's anonymous resident memory in bytes (<c>RssAnon</c> in <c>/proc/self/status</c>: heap and other
    /// private memory, not the pages of mapped files such as libtorch's code), or −1 where it cannot be read (not Linux).
    /// </summary>
    public static long AnonymousResidentBytes() => StatusBytes("RssAnon:");

    /// <summary>
    /// The process's peak resident set size so far in bytes (<c>VmHWM</c> in <c>/proc/self/status</c>, the kernel's
    /// high-water mark, so no spike between samples is missed), or −1 where it cannot be read (not Linux).
    /// </summary>
    public static long PeakResidentBytes() => StatusBytes("VmHWM:");

    /// <summary>A "Field:   N kB" line of <c>/proc/self/status</c> in bytes; −1 when absent or unreadable.</summary>
    private static long StatusBytes(string field)
    {
        if (!OperatingSystem.IsLinux()) return -1;
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (!line.StartsWith(field, StringComparison.Ordinal)) continue;
                var kb = line[field.Length..].Trim().Split(' ')[0];
                return long.Parse(kb, System.Globalization.CultureInfo.InvariantCulture) * 1024;
            }
            return -1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return -1;
        }
    }

    /// <summary>
    /// Hands the free pages of glibc's heaps back to the OS (<c>malloc_trim(0)</c>). Returns whether memory was released;
    /// false (and nothing done) where glibc is not the C library.
    /// </summary>
    public static bool ReleaseFreeMemory()
    {
        if (!OperatingSystem.IsLinux() || Volatile.Read(ref _trimUnavailable)) return false;
        try
        {
            return malloc_trim(0) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            Volatile.Write(ref _trimUnavailable, true);
            return false;
        }
    }

    /// <summary>
    /// Called by training loops after each batch: at most every 100 ms it reads <see cref="AnonymousResidentBytes"/>, and when that has
    /// grown by <see cref="ReleaseGrowthBytes"/> over the baseline (the size after the last release, or the smallest
    /// seen since) it calls <see cref="ReleaseFreeMemory"/> and takes the size after it as the new baseline. Cheap when
    /// nothing grows (a clock read and an uncontended lock per call, a small file read per 100 ms). Process-wide: the heap
    /// is the process's, whoever allocated in it. Returns whether it released memory.
    /// </summary>
    public static bool ReleaseIfGrown() => OperatingSystem.IsLinux() && Policy.Check();
}

/// <summary>
/// The decision behind <see cref="NativeAllocator.ReleaseIfGrown"/>, apart from the process (size, release and clock
/// are given), so that it can be tested. Thread-safe.
/// </summary>
internal sealed class GrowthRelease(Func<long> residentBytes, Func<bool> release, Func<long> clockMs, long intervalMs = 100)
{
    private readonly object _gate = new();
    private long? _lastCheckMs;
    private long _baseline = -1;
    private long? _growth = 512L << 20;

    public long? GrowthBytes
    {
        get { lock (_gate) return _growth; }
        set
        {
            if (value is { } v && v <= 0)
                throw new ArgumentOutOfRangeException(nameof(value), v, "expected a number of bytes > 0, or null to turn releases off.");
            lock (_gate) { _growth = value; _baseline = -1; }
        }
    }

    public int Releases { get; private set; }

    /// <summary>Releases when size − baseline ≥ growth; baseline = size after a release, or the smallest size since.</summary>
    public bool Check()
    {
        long now = clockMs();
        lock (_gate)
        {
            if (_growth is not { } growth || (_lastCheckMs is { } last && now - last < intervalMs)) return false;
            _lastCheckMs = now;
            long size = residentBytes();
            if (size < 0) return false;
            if (_baseline < 0 || size < _baseline) { _baseline = size; return false; }
            if (size - _baseline < growth) return false;
            bool released = release();
            if (released) Releases++;
            long after = residentBytes();
            _baseline = after >= 0 ? after : size;
            return released;
        }
    }
}

using TorchBoltzmann;
using Xunit;

namespace TorchBoltzmann.Tests;

public class NativeAllocatorTests
{
    private const long MiB = 1L << 20;

    /// <summary>A process stand-in: a resident size the test sets, a release that drops it to <c>AfterRelease</c>.</summary>
    private sealed class FakeProcess
    {
        public long Size, Clock, AfterRelease = 100 * MiB;
        public int Calls;
        public bool Releases = true;
        public GrowthRelease Policy(long growth = 512 * MiB)
        {
            var p = new GrowthRelease(() => Size, () => { Calls++; if (Releases) Size = AfterRelease; return Releases; }, () => Clock) { GrowthBytes = growth };
            return p;
        }
    }

    [Fact]
    public void Release_HappensOnceTheSizeHasGrownByTheThreshold_AndTheSizeAfterItIsTheNewBaseline()
    {
        var proc = new FakeProcess { Size = 300 * MiB };
        var policy = proc.Policy();
        Assert.False(policy.Check());                       // first reading: the baseline (300 MiB)
        proc.Clock += 100; proc.Size = 300 * MiB + 511 * MiB;
        Assert.False(policy.Check());                       // 511 MiB of growth: below the threshold
        proc.Clock += 100; proc.Size = 300 * MiB + 512 * MiB;
        Assert.True(policy.Check());                        // 512 MiB: released
        Assert.Equal(1, proc.Calls);
        Assert.Equal(1, policy.Releases);
        Assert.Equal(100 * MiB, proc.Size);
        proc.Clock += 100; proc.Size = 100 * MiB + 511 * MiB;
        Assert.False(policy.Check());                       // measured from the size after the release, not from 300 MiB
        proc.Clock += 100; proc.Size = 100 * MiB + 600 * MiB;
        Assert.True(policy.Check());
        Assert.Equal(2, proc.Calls);
    }

    [Fact]
    public void Baseline_FollowsTheSmallestSizeSeen()
    {
        var proc = new FakeProcess { Size = 2000 * MiB };
        var policy = proc.Policy();
        Assert.False(policy.Check());
        proc.Clock += 100; proc.Size = 400 * MiB;           // e.g. a data set was freed
        Assert.False(policy.Check());
        proc.Clock += 100; proc.Size = 1000 * MiB;          // 600 MiB above the smallest size, below the first reading
        Assert.True(policy.Check());
    }

    [Fact]
    public void Checks_AreSpacedByTheInterval_AndNullTurnsThemOff()
    {
        var proc = new FakeProcess { Size = 100 * MiB };
        var policy = proc.Policy();
        Assert.False(policy.Check());
        proc.Size = 2000 * MiB;
        proc.Clock += 99;
        Assert.False(policy.Check());                       // within 100 ms of the last reading: not even read
        Assert.Equal(0, proc.Calls);
        policy.GrowthBytes = null;
        proc.Clock += 1000;
        Assert.False(policy.Check());
        Assert.Equal(0, proc.Calls);
        policy.GrowthBytes = 512 * MiB;                     // a new threshold starts from a new baseline
        Assert.False(policy.Check());
        proc.Clock += 100; proc.Size = 2600 * MiB;
        Assert.True(policy.Check());
    }

    [Fact]
    public void AFailedRelease_IsNotCounted_AndItsSizeBecomesTheBaseline()
    {
        var proc = new FakeProcess { Size = 100 * MiB, Releases = false };
        var policy = proc.Policy();
        policy.Check();
        proc.Clock += 100; proc.Size = 700 * MiB;
        Assert.False(policy.Check());
        Assert.Equal(1, proc.Calls);
        Assert.Equal(0, policy.Releases);
        proc.Clock += 100; proc.Size = 800 * MiB;           // 100 MiB above the new baseline: no second attempt
        Assert.False(policy.Check());
        Assert.Equal(1, proc.Calls);
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-1L)]
    public void GrowthThreshold_MustBePositive(long bytes)
    {
        var policy = new FakeProcess().Policy();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => policy.GrowthBytes = bytes);
        Assert.Contains("bytes > 0", e.Message);
        Assert.Equal(512 * MiB, policy.GrowthBytes);         // unchanged
    }

    [SkippableFact(DisplayName = "NativeAllocatorTests.OnLinux_TheAnonymousResidentSizeIsRead_AndFreeMemoryIsHandedBack_ByTheRealCalls (runs only on Linux)")]
    public void OnLinux_TheAnonymousResidentSizeIsRead_AndFreeMemoryIsHandedBack_ByTheRealCalls()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "/proc/self/status and glibc's malloc_trim are Linux's");
        long rss = NativeAllocator.AnonymousResidentBytes();
        // The test host with libtorch loaded holds well over 10 MiB and less than the machine's memory.
        Assert.InRange(rss, 10 * MiB, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
        Assert.InRange(NativeAllocator.PeakResidentBytes(), rss, long.MaxValue);   // the high-water mark of a larger set
        // 4,096 blocks of 64 KiB from malloc (below glibc's smallest mmap threshold, 128 KiB, so from the heap), touched,
        // then freed but the last, which keeps them from being the heap's top: only a trim returns their pages.
        var blocks = new List<IntPtr>();
        var ones = new byte[64 * 1024];
        Array.Fill(ones, (byte)1);
        for (int i = 0; i < 4096; i++)
        {
            var p = System.Runtime.InteropServices.Marshal.AllocHGlobal(ones.Length);
            System.Runtime.InteropServices.Marshal.Copy(ones, 0, p, ones.Length);   // touched: resident
            blocks.Add(p);
        }
        try
        {
            for (int i = 0; i < blocks.Count - 1; i++) System.Runtime.InteropServices.Marshal.FreeHGlobal(blocks[i]);
            // glibc's malloc_trim(0) reports 1 when it released memory; anything else means the binding does not work here.
            Assert.True(NativeAllocator.ReleaseFreeMemory(), "malloc_trim(0) released nothing after 256 MiB were freed inside the heap");
        }
        finally
        {
            System.Runtime.InteropServices.Marshal.FreeHGlobal(blocks[^1]);
        }
    }
}

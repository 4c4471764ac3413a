using System.Buffers.Binary;
using System.IO.Compression;
using TorchBoltzmann.Data;

namespace TorchBoltzmann.Tests.Fuzz;

/// <summary>
/// The failures the readers' fuzz tests found, each as a plain test of the input that showed it (seed 20260131 unless
/// said otherwise), so that it stays fixed whatever the fuzzers' mutations become.
/// </summary>
public sealed class FuzzRegressionTests
{
    /// <summary>
    /// mnist case 538 / idx case 66: a gzip IDX file of 40 bytes whose header declares 16,777,219 elements (one bit of
    /// the dimension flipped) got a 16 MiB buffer before the stream showed it holds 3 bytes. The reader must refuse it as
    /// truncated, allocating about what arrives.
    /// </summary>
    [Fact]
    public void IdxReader_GzipHeaderDeclaringMoreThanTheStreamHolds_IsRefusedWithoutAllocatingTheDeclaredSize()
    {
        using var dir = new Data.TempDirectory();
        byte[] raw = [0, 0, 0x08, 1, 0, 0, 0, 3, 4, 8, 2];   // labels [3]: 4, 8, 2
        BinaryPrimitives.WriteInt32BigEndian(raw.AsSpan(4), 0x0100_0003);
        var path = dir.File("labels.gz");
        using (var file = File.Create(path))
        using (var gz = new GZipStream(file, CompressionLevel.Optimal)) gz.Write(raw);

        Assert.Throws<InvalidDataException>(() => IdxReader.Read(path));   // JIT warm-up, outside the measurement
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(path));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Contains("truncated payload: expected 16777219 bytes", e.Message);
        Assert.True(allocated < 1 << 20, $"allocated {allocated:N0} bytes to refuse a {new FileInfo(path).Length}-byte file");
    }
}

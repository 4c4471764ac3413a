using System.IO.Compression;
using TorchBoltzmann.Data;

namespace TorchBoltzmann.Tests.Data;

public sealed class IdxTests
{
    private static byte[] Header(byte type, params int[] dims)
    {
        var bytes = new List<byte> { 0, 0, type, (byte)dims.Length };
        foreach (int d in dims)
        {
            bytes.AddRange([(byte)(d >> 24), (byte)(d >> 16), (byte)(d >> 8), (byte)d]);
        }

        return [.. bytes];
    }

    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    [Theory]
    [InlineData("a.idx", false)]
    [InlineData("a.idx.gz", true)]
    [InlineData("gzipped-without-extension", true)]
    public void RoundTrip(string name, bool gzip)
    {
        using var dir = new TempDirectory();
        string path = dir.File(name);
        int[] shape = [3, 4, 5];
        byte[] data = Enumerable.Range(0, 60).Select(i => (byte)(i * 37 % 256)).ToArray();

        IdxWriter.Write(path, shape, data, gzip);
        byte[] onDisk = File.ReadAllBytes(path);
        Assert.Equal(gzip, onDisk[0] == 0x1F && onDisk[1] == 0x8B);
        if (!gzip)
        {
            Assert.Equal(Concat(Header(0x08, 3, 4, 5), data), onDisk);
        }

        var read = IdxReader.Read(path);
        Assert.Equal(shape, read.Shape);
        Assert.Equal(data, read.Data);
        Assert.Single(Directory.GetFiles(dir.Path)); // no temp file left behind
    }

    [Fact]
    public void Write_ReplacesExistingFile()
    {
        using var dir = new TempDirectory();
        string path = dir.File("x");
        IdxWriter.Write(path, [2], [1, 2]);
        IdxWriter.Write(path, [3], [7, 8, 9]);
        var read = IdxReader.Read(path);
        Assert.Equal([3], read.Shape);
        Assert.Equal(new byte[] { 7, 8, 9 }, read.Data);
    }

    [Fact]
    public void Write_RejectsLengthMismatch()
    {
        using var dir = new TempDirectory();
        var ex = Assert.Throws<ArgumentException>(() => IdxWriter.Write(dir.File("x"), [2, 3], new byte[5]));
        Assert.Contains("expected 6", ex.Message);
        Assert.Contains("got 5", ex.Message);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    private static InvalidDataException ReadBad(TempDirectory dir, byte[] content, out string path)
    {
        path = dir.File("bad-idx");
        File.WriteAllBytes(path, content);
        string p = path;
        return Assert.Throws<InvalidDataException>(() => IdxReader.Read(p));
    }

    [Fact]
    public void WrongMagic_Throws()
    {
        using var dir = new TempDirectory();
        var ex = ReadBad(dir, Concat([0x01, 0x00, 0x08, 0x01, 0, 0, 0, 1], [5]), out string path);
        Assert.Contains(path, ex.Message);
        Assert.Contains("expected magic bytes 0x00 0x00", ex.Message);
        Assert.Contains("got 0x01 0x00", ex.Message);
    }

    [Fact]
    public void WrongTypeByte_Throws()
    {
        using var dir = new TempDirectory();
        var ex = ReadBad(dir, Concat(Header(0x0D, 1), new byte[4]), out string path);
        Assert.Contains(path, ex.Message);
        Assert.Contains("expected data type byte 0x08 (unsigned byte)", ex.Message);
        Assert.Contains("got 0x0D (float32)", ex.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    public void BadDimensionCount_Throws(int ndim)
    {
        using var dir = new TempDirectory();
        var ex = ReadBad(dir, Concat([0, 0, 8, (byte)ndim], new byte[4 * ndim], [1]), out _);
        Assert.Contains("expected 1 to 4 dimensions", ex.Message);
        Assert.Contains($"got {ndim}", ex.Message);
    }

    [Fact]
    public void NonPositiveDimension_Throws()
    {
        using var dir = new TempDirectory();
        var ex = ReadBad(dir, Header(0x08, 2, 0), out _);
        Assert.Contains("expected dimension 1 to be positive, got 0", ex.Message);
    }

    [Fact]
    public void TruncatedHeader_Throws()
    {
        using var dir = new TempDirectory();
        var ex = ReadBad(dir, [0, 0, 8, 3, 0, 0, 0, 2, 0, 0], out _);
        Assert.Contains("expected 16 header bytes", ex.Message);
        Assert.Contains("got 10", ex.Message);
    }

    [Fact]
    public void TruncatedPayload_Throws()
    {
        using var dir = new TempDirectory();
        var ex = ReadBad(dir, Concat(Header(0x08, 2, 3), [1, 2, 3, 4]), out string path);
        Assert.Contains(path, ex.Message);
        Assert.Contains("truncated payload: expected 6 bytes", ex.Message);
        Assert.Contains("got 4", ex.Message);
    }

    [Fact]
    public void TruncatedPayloadInsideGzip_Throws()
    {
        using var dir = new TempDirectory();
        string path = dir.File("t.gz");
        using (var file = File.Create(path))
        using (var gz = new GZipStream(file, CompressionLevel.Fastest))
        {
            gz.Write(Concat(Header(0x08, 10), [1, 2, 3]));
        }

        var ex = Assert.Throws<InvalidDataException>(() => IdxReader.Read(path));
        Assert.Contains("expected 10 bytes", ex.Message);
        Assert.Contains("got 3", ex.Message);
    }

    [Fact]
    public void TrailingBytes_Throws()
    {
        using var dir = new TempDirectory();
        var ex = ReadBad(dir, Concat(Header(0x08, 2, 3), [1, 2, 3, 4, 5, 6, 7, 8]), out string path);
        Assert.Contains(path, ex.Message);
        Assert.Contains("after 6 payload bytes", ex.Message);
        Assert.Contains("got 2 trailing byte(s)", ex.Message);
    }

    [Fact]
    public void CorruptGzip_Throws()
    {
        using var dir = new TempDirectory();
        var ex = ReadBad(dir, [0x1F, 0x8B, 0x08, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x03, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], out string path);
        Assert.Contains(path, ex.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void HugeDeclaredPayload_IsRefusedWithoutAllocatingIt(bool gzip)
    {
        // A 16-byte file whose header declares 2·10⁹ bytes: the reader must say "truncated", not allocate 2 GB first.
        using var dir = new TempDirectory();
        string path = dir.File(gzip ? "huge.gz" : "huge.idx");
        byte[] content = Concat(Header(0x08, 2_000_000_000), [1, 2, 3, 4]);
        using (var file = File.Create(path))
        using (Stream s = gzip ? new GZipStream(file, CompressionLevel.Fastest) : file)
        {
            s.Write(content);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<InvalidDataException>(() => IdxReader.Read(path));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("truncated payload: expected 2000000000 bytes", ex.Message);
        Assert.Contains("got 4", ex.Message);
        Assert.True(allocated < 64L << 20, $"allocated {allocated} bytes to read a 4-byte payload");
    }

    [Fact]
    public void GzipPayloadLargerThanTheFirstChunk_ReadsWhole()
    {
        // 40 MiB + 3: the gzip reader's buffer starts at 16 MiB and grows twice.
        using var dir = new TempDirectory();
        string path = dir.File("big.gz");
        int n = (40 << 20) + 3;
        var payload = new byte[n];
        for (int i = 0; i < n; i += 4099) payload[i] = (byte)(i % 251 + 1);
        payload[^1] = 77;
        using (var file = File.Create(path))
        using (var gz = new GZipStream(file, CompressionLevel.Fastest))
        {
            gz.Write(Header(0x08, n));
            gz.Write(payload);
        }

        var a = IdxReader.Read(path);
        Assert.Equal([n], a.Shape);
        Assert.True(payload.AsSpan().SequenceEqual(a.Data), "payload differs");
    }
}

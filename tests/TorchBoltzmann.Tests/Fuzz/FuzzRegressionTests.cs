using System.Buffers.Binary;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using TorchBoltzmann.Data;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using static TorchSharp.torch;

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

    /// <summary>
    /// checkpoint case 53: a sidecar with a key written twice ("training": [1] before the real one) parsed, and the first
    /// access to the object threw ArgumentException ("An item with the same key has already been added") out of
    /// Checkpoint.Load. A duplicate key, at the top or nested, must be a CheckpointException saying the JSON is invalid.
    /// </summary>
    [Theory]
    [InlineData("\"training\":", "\"training\":[1],\"training\":")]
    [InlineData("\"n_classes\":", "\"n_classes\":2,\"n_classes\":")]
    public void Checkpoint_SidecarWithADuplicateKey_IsRefusedAsInvalidJson(string key, string duplicated)
    {
        using var dir = new Data.TempDirectory();
        var path = dir.File("dbn.pt");
        using (var dbn = new DBN([12, 8, 6], n_classes: 3, dtype: ScalarType.Float32)) Checkpoint.Save(dbn, path, new { epochs = 1 });
        var sidecar = Checkpoint.SidecarPath(path);
        var text = File.ReadAllText(sidecar).ReplaceLineEndings("").Replace(" ", "");
        Assert.Contains(key, text);
        File.WriteAllText(sidecar, text.Replace(key, duplicated));

        foreach (var read in new Action[] { () => Checkpoint.Load<DBN>(path).Dispose(), () => Checkpoint.Provenance(path), () => Checkpoint.ReadSidecar(path) })
        {
            var e = Assert.Throws<CheckpointException>(read);
            Assert.Contains("is not valid JSON", e.Message);
            Assert.Contains(sidecar, e.Message);
        }
    }

    /// <summary>
    /// checkpoint cases 39 and 56: weights whose tensor rank reads as 2^27 (LEB128 80 80 80 40), beside a sidecar whose
    /// hash matches them (or has none: both fields are optional), made TorchSharp allocate a 1 GiB array for the shape
    /// before comparing it, and read on for seconds. The state_dict must be refused before TorchSharp reads it.
    /// </summary>
    [Fact]
    public void Checkpoint_WeightsDeclaringAHugeTensorRank_AreRefusedBeforeAllocating()
    {
        using var dir = new Data.TempDirectory();
        var path = dir.File("dbn.pt");
        using (var dbn = new DBN([12, 8, 6], n_classes: 3, dtype: ScalarType.Float32)) Checkpoint.Save(dbn, path);
        var weights = File.ReadAllBytes(path);
        var key = System.Text.Encoding.UTF8.GetBytes("layers.0.hidden_bias");
        int rankAt = weights.AsSpan().IndexOf(key) + key.Length + 1;   // after the name, the dtype (one byte), the rank
        Assert.Equal(1, weights[rankAt]);
        new byte[] { 0x80, 0x80, 0x80, 0x40 }.CopyTo(weights, rankAt);
        File.WriteAllBytes(path, weights);
        var sidecar = JsonNode.Parse(File.ReadAllText(Checkpoint.SidecarPath(path)))!.AsObject();
        sidecar["weights_bytes"] = weights.Length;
        sidecar["weights_sha256"] = Convert.ToHexString(SHA256.HashData(weights)).ToLowerInvariant();
        File.WriteAllText(Checkpoint.SidecarPath(path), sidecar.ToJsonString());

        Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));   // JIT warm-up, outside the measurement
        long before = GC.GetAllocatedBytesForCurrentThread();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Contains("tensor 'layers.0.hidden_bias'", e.Message);
        Assert.Contains("expected rank 1 (8), got 134217728", e.Message);
        Assert.True(allocated < 4 << 20, $"allocated {allocated:N0} bytes to refuse a {weights.Length}-byte file");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"took {clock.Elapsed}");
    }
}

using System.Diagnostics;
using TorchBoltzmann.Data;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Data;

/// <summary>Compact (uint8) and streamed training data: the same runs as from a float tensor, every row once per epoch, bounded memory, clean stops.</summary>
public sealed class BatchSourceTests
{
    /// <summary>Random {0, 1} data, N × F, float32.</summary>
    private static Tensor BinaryData(long n, long f, ulong seed)
    {
        using var g = new Generator(seed);
        using var p = torch.rand(n, f, generator: g);
        return p.gt(0.6).to_type(ScalarType.Float32);
    }

    /// <summary>Writes <paramref name="data"/> (uint8-valued) as an IDX file N × F and returns its path.</summary>
    private static string WriteIdx(TempDirectory dir, string name, Tensor data)
    {
        using var bytes = data.to_type(ScalarType.Byte).contiguous();
        var path = dir.File(name);
        IdxWriter.Write(path, [(int)data.shape[0], (int)data.shape[1]], bytes.data<byte>().ToArray(), gzip: false);
        return path;
    }

    /// <summary>An IDX file whose row i (N × 3) holds i in base 256: row ids survive the trip through the stream.</summary>
    private static string WriteNumbered(TempDirectory dir, int n)
    {
        var payload = new byte[n * 3];
        for (int i = 0; i < n; i++) (payload[3 * i], payload[3 * i + 1], payload[3 * i + 2]) = ((byte)(i >> 16), (byte)(i >> 8), (byte)i);
        var path = dir.File("numbered.idx");
        IdxWriter.Write(path, [n, 3], payload, gzip: false);
        return path;
    }

    /// <summary>The row ids of one epoch, batch by batch as the training loop asks for them.</summary>
    private static List<int> Epoch(IdxStream stream, int epoch, int batchSize)
    {
        stream.StartEpoch(epoch, batchSize, CancellationToken.None);
        var ids = new List<int>();
        long n = stream.Count;
        int batches = (int)((n + batchSize - 1) / batchSize);
        for (int b = 0; b < batches; b++)
        {
            long start = (long)b * batchSize;
            using var x = stream.Batch(new Batch(epoch, b, batches, start, Math.Min(batchSize, n - start), null), ScalarType.Float32, torch.CPU);
            var v = x.data<float>().ToArray();
            for (int r = 0; r < v.Length / 3; r++) ids.Add(((int)v[3 * r] << 16) | ((int)v[3 * r + 1] << 8) | (int)v[3 * r + 2]);
        }
        stream.StopEpoch();
        return ids;
    }

    private static bool Same(Tensor p, Tensor q)
    {
        using var eq = p.eq(q);
        using var all = eq.all();
        return all.item<bool>();
    }

    private static void AssertSameParameters(torch.nn.Module a, torch.nn.Module b)
    {
        foreach (var (p, q) in a.parameters().Zip(b.parameters()))
            Assert.True(Same(p, q), "parameters differ");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void CompactUint8Data_TrainTheSameRbmBitForBit(bool persistent)
    {
        // 300 binary rows, batches of 32 (a short last batch), shuffled: the uint8 copy converted per batch draws the same
        // permutations and gives the same batches, so weights, chains and metrics agree exactly.
        using var data = BinaryData(300, 12, 1);
        var options = new RbmTrainingOptions { Epochs = 3, BatchSize = 32, LearningRate = 0.1, Persistent = persistent, Seed = 7, MetricsEvery = 1 };
        using var g1 = new Generator(3);
        using var a = boltzmann.RBM(12, 6, generator: g1);
        using var g2 = new Generator(3);
        using var b = boltzmann.RBM(12, 6, generator: g2);
        IReadOnlyList<RbmEpochMetrics> ha, hb;
        using (var t = new RbmTrainer(a, options)) ha = t.Fit(data);
        using (var compact = TensorSource.Compact(data))
        using (var t = new RbmTrainer(b, options))
        {
            Assert.Equal(ScalarType.Byte, compact.Data.dtype);
            Assert.Equal(300L * 12, compact.ResidentBytes);
            hb = t.FitSource(compact);
        }
        AssertSameParameters(a, b);
        Assert.Equal(ha.Select(m => m.ReconstructionError), hb.Select(m => m.ReconstructionError));
        Assert.Equal(ha.Select(m => m.PseudoLogLikelihood), hb.Select(m => m.PseudoLogLikelihood));
    }

    [Fact]
    public void CompactUint8Data_TrainTheSameDbmBitForBit()
    {
        using var data = BinaryData(60, 6, 2);
        var options = new DbmTrainingOptions { Epochs = 2, BatchSize = 16, LearningRate = 0.05, Chains = 10, GibbsSteps = 2, Seed = 5, MetricsEvery = 0 };
        using var g1 = new Generator(6);
        using var a = boltzmann.DBM([6, 4, 3], generator: g1);
        using var g2 = new Generator(6);
        using var b = boltzmann.DBM([6, 4, 3], generator: g2);
        using (var t = new DbmTrainer(a, options)) t.Fit(data);
        using (var compact = TensorSource.Compact(data))
        using (var t = new DbmTrainer(b, options)) t.FitSource(compact);
        AssertSameParameters(a, b);
    }

    [Fact]
    public void DbnPretrainedFromCompactData_MatchesTheTensorRun()
    {
        // Layer 0 trains on the same batches as from the tensor; with biases from the data off it is the same run bit for
        // bit. Layer 1 sees p(h | x) computed per training batch rather than once for all rows in blocks of 1,000, which
        // may change the last bits of a product: its weights agree to 1e-5 after 2 epochs.
        using var data = BinaryData(150, 12, 6);
        var options = new DbnPretrainingOptions
        {
            Layer = new RbmTrainingOptions { Epochs = 2, BatchSize = 20, LearningRate = 0.1, Seed = 3, MetricsEvery = 0 },
            InitVisibleBiasFromData = false,
        };
        using var g1 = new Generator(4);
        using var a = boltzmann.DBN([12, 8, 5], generator: g1);
        using var g2 = new Generator(4);
        using var b = boltzmann.DBN([12, 8, 5], generator: g2);
        new GreedyPretrainer(a, options).Fit(data);
        using (var compact = TensorSource.Compact(data))
        {
            var history = new GreedyPretrainer(b, options).FitSource(compact);
            Assert.Equal([2, 2], history.Select(h => h.Count));
        }
        AssertSameParameters(a.layers[0], b.layers[0]);
        foreach (var (p, q) in a.layers[1].parameters().Zip(b.layers[1].parameters()))
            TestUtil.AllClose(p, q, 1e-5, "layer 1");
        var e = Assert.Throws<NotSupportedException>(() => new GreedyPretrainer(b, options) { CheckpointPath = "x.ckpt" }.FitSource(new TensorSource(data)));
        Assert.Contains("CheckpointPath", e.Message);
    }

    [Fact]
    public void DbmPretrainedFromCompactData_MatchesTheTensorRun()
    {
        // The modified RBMs (doubled inputs) through GreedyPretrainer.FitSource: the bottom RBM is the same run bit for bit,
        // the top one sees the bottom's up-pass per batch instead of once (last bits of a product), so the composed
        // machine agrees to 1e-5; and a checkpoint path is refused as for the DBN.
        using var data = BinaryData(120, 10, 7);
        var options = new DbnPretrainingOptions
        {
            Layer = new RbmTrainingOptions { Epochs = 2, BatchSize = 16, LearningRate = 0.1, Seed = 4, MetricsEvery = 0 },
            InitVisibleBiasFromData = false,
        };
        using var a = boltzmann.DBM([10, 6, 4]);
        using var b = boltzmann.DBM([10, 6, 4]);
        new DbmPretrainer(a, options).Fit(data);
        using (var compact = TensorSource.Compact(data))
            Assert.Equal([2, 2], new DbmPretrainer(b, options).FitSource(compact).Select(h => h.Count));
        Assert.True(Same(a.weight(1), b.weight(1)), "bottom weights differ");
        foreach (var (p, q) in a.parameters().Zip(b.parameters()))
            TestUtil.AllClose(p, q, 1e-5, "composed machine");
        using var before = b.weight(2).clone();
        var e = Assert.Throws<NotSupportedException>(() => new DbmPretrainer(b, options) { CheckpointPath = "x.ckpt" }.FitSource(new TensorSource(data)));
        Assert.Contains("CheckpointPath", e.Message);
        Assert.True(Same(before, b.weight(2)), "a refused pretraining changed the machine");
    }

    [Fact]
    public void Compact_RefusesNonBinaryData()
    {
        using var x = torch.tensor(new float[] { 0, 0.5f, 1, 1 }).reshape(2, 2);
        var e = Assert.Throws<ArgumentException>(() => TensorSource.Compact(x));
        Assert.Contains("0 or 1", e.Message);
    }

    [Fact]
    public void UnshuffledStream_TrainsTheSameRbmAsTheDataInMemory()
    {
        // Without shuffling the stream hands out the file's rows in order, the loop takes contiguous batches, and neither
        // draws from the trainer's generator: the same run bit for bit as from the compact tensor (CD-1, batch 25 of 110
        // rows, 2 epochs). Both hand the trainer fresh batch tensors; an unshuffled run from a float tensor reads views of
        // it instead, whose products may differ in the last bit.
        using var dir = new TempDirectory();
        using var data = BinaryData(110, 10, 4);
        var path = WriteIdx(dir, "train.idx", data);
        var options = new RbmTrainingOptions { Epochs = 2, BatchSize = 25, LearningRate = 0.1, Shuffle = false, Seed = 2, MetricsEvery = 1 };
        using var g1 = new Generator(8);
        using var a = boltzmann.RBM(10, 5, generator: g1);
        using var g2 = new Generator(8);
        using var b = boltzmann.RBM(10, 5, generator: g2);
        IReadOnlyList<RbmEpochMetrics> ha, hb;
        using (var compact = TensorSource.Compact(data))
        using (var t = new RbmTrainer(a, options)) ha = t.FitSource(compact);
        using var stream = new IdxStream(path, new IdxStreamOptions { Shuffle = false, ChunkRows = 7, WindowChunks = 2, Prefetch = 2 });
        using (var t = new RbmTrainer(b, options)) hb = t.FitSource(stream);
        AssertSameParameters(a, b);
        Assert.Equal(ha.Select(m => m.PseudoLogLikelihood), hb.Select(m => m.PseudoLogLikelihood));
        Assert.False(stream.ReaderRunning);
    }

    [Fact]
    public void ShuffledStream_TrainsAnRbmReproduciblyPerSeed()
    {
        using var dir = new TempDirectory();
        using var data = BinaryData(200, 8, 5);
        var path = WriteIdx(dir, "train.idx", data);
        var options = new RbmTrainingOptions { Epochs = 2, BatchSize = 32, LearningRate = 0.1, Seed = 2, MetricsEvery = 0 };
        torch.nn.Module Train(ulong seed)
        {
            using var g = new Generator(9);
            var rbm = boltzmann.RBM(8, 4, generator: g);
            using var stream = new IdxStream(path, new IdxStreamOptions { Seed = seed, ChunkRows = 16, WindowChunks = 3 });
            using var t = new RbmTrainer(rbm, options);
            t.FitSource(stream);
            return rbm;
        }
        using var a = Train(1);
        using var b = Train(1);
        using var c = Train(2);
        AssertSameParameters(a, b);
        Assert.False(a.parameters().Zip(c.parameters()).All(pq => Same(pq.First, pq.Second)), "another stream seed gave the same weights");
    }

    [Theory]
    [InlineData(1037, 64, 50, 3)]   // chunks and batches that divide nothing
    [InlineData(100, 100, 10, 4)]   // one batch
    [InlineData(90, 7, 200, 1)]     // one chunk larger than the file
    public void Stream_YieldsEveryRowExactlyOncePerEpoch_InAnOrderFixedBySeedAndEpoch(int n, int batch, int chunk, int window)
    {
        using var dir = new TempDirectory();
        var path = WriteNumbered(dir, n);
        using var s1 = new IdxStream(path, new IdxStreamOptions { Seed = 11, ChunkRows = chunk, WindowChunks = window, Prefetch = 2 });
        using var s2 = new IdxStream(path, new IdxStreamOptions { Seed = 11, ChunkRows = chunk, WindowChunks = window, Prefetch = 3 });
        using var s3 = new IdxStream(path, new IdxStreamOptions { Seed = 12, ChunkRows = chunk, WindowChunks = window });
        var e0 = Epoch(s1, 0, batch);
        var e1 = Epoch(s1, 1, batch);
        Assert.Equal(Enumerable.Range(0, n), e0.Order());
        Assert.Equal(Enumerable.Range(0, n), e1.Order());
        Assert.Equal(e0, Epoch(s2, 0, batch));   // same seed and epoch, another queue: same order
        Assert.Equal(e1, Epoch(s2, 1, batch));
        Assert.NotEqual(e0, e1);
        Assert.NotEqual(e0, Epoch(s3, 0, batch));
        using var plain = new IdxStream(path, new IdxStreamOptions { Shuffle = false, ChunkRows = chunk, WindowChunks = window });
        Assert.Equal(Enumerable.Range(0, n), Epoch(plain, 0, batch));
    }

    [Fact]
    public void Stream_LimitUsesTheFirstRows()
    {
        using var dir = new TempDirectory();
        var path = WriteNumbered(dir, 500);
        using var s = new IdxStream(path, new IdxStreamOptions { Seed = 1, ChunkRows = 30, Limit = 77 });
        Assert.Equal(77, s.Count);
        Assert.Equal(Enumerable.Range(0, 77), Epoch(s, 0, 10).Order());
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("trailing")]
    [InlineData("magic")]
    [InlineData("gzip")]
    public void CorruptFile_IsRefusedInOneLineNamingTheFile(string damage)
    {
        using var dir = new TempDirectory();
        var path = WriteNumbered(dir, 40);
        var bytes = File.ReadAllBytes(path);
        switch (damage)
        {
            case "truncated": File.WriteAllBytes(path, bytes[..^5]); break;
            case "trailing": File.WriteAllBytes(path, [.. bytes, 1, 2]); break;
            case "magic": bytes[0] = 7; File.WriteAllBytes(path, bytes); break;
            case "gzip": IdxWriter.Write(path, [40, 3], bytes[(4 + 8)..], gzip: true); break;
        }
        var e = Assert.Throws<InvalidDataException>(() => new IdxStream(path));
        Assert.Contains(path, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void FileTruncatedWhileStreaming_FailsTheBatchNamingTheFile()
    {
        using var dir = new TempDirectory();
        var path = WriteNumbered(dir, 400);
        using var s = new IdxStream(path, new IdxStreamOptions { Shuffle = false, ChunkRows = 10, WindowChunks = 1, Prefetch = 1 });
        using (var f = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite)) f.SetLength(4 + 8 + 3 * 50);
        s.StartEpoch(0, 40, CancellationToken.None);
        var e = Assert.Throws<InvalidDataException>(() =>
        {
            for (int b = 0; b < 10; b++) s.Batch(new Batch(0, b, 10, 40L * b, 40, null), ScalarType.Float32, torch.CPU).Dispose();
        });
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated while streaming", e.Message);
    }

    private static void WaitFor(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(5)) Assert.Fail($"timed out after 5 s waiting for {what}");
            Thread.Sleep(5);
        }
    }

    [Fact]
    public void Reader_StopsOnCancellationAndOnDispose_AndNeverHoldsMoreThanItsQueue()
    {
        using var dir = new TempDirectory();
        var path = WriteNumbered(dir, 2000);
        var s = new IdxStream(path, new IdxStreamOptions { Seed = 3, ChunkRows = 100, WindowChunks = 2, Prefetch = 3 });
        try
        {
            // Nobody consumes: the reader fills the queue to its capacity and waits there.
            using var cancel = new CancellationTokenSource();
            s.StartEpoch(0, 10, cancel.Token);
            WaitFor(() => s.QueueHighWater == 3, "a full queue");
            Thread.Sleep(50);
            Assert.Equal(3, s.QueueHighWater);
            Assert.True(s.ReaderRunning);
            cancel.Cancel();
            WaitFor(() => !s.ReaderRunning, "the reader to stop on cancellation");
            Assert.Throws<OperationCanceledException>(() => s.Batch(new Batch(0, 0, 200, 0, 10, null), ScalarType.Float32, torch.CPU));

            // A slow consumer of a whole epoch: the queue is full at times, never fuller.
            var ids = new List<long>();
            s.StartEpoch(1, 10, CancellationToken.None);
            for (int b = 0; b < 200; b++)
            {
                if (b % 50 == 0) Thread.Sleep(20);
                using var x = s.Batch(new Batch(1, b, 200, 10L * b, 10, null), ScalarType.Float32, torch.CPU);
                ids.Add(x.shape[0]);
            }
            Assert.Equal(2000, ids.Sum());
            Assert.Equal(3, s.QueueHighWater);

            // Disposed mid-epoch with a full queue: the reader ends.
            s.StartEpoch(2, 10, CancellationToken.None);
            WaitFor(() => s.ReaderRunning, "the reader to start");
        }
        finally { s.Dispose(); }
        Assert.False(s.ReaderRunning);
    }
}

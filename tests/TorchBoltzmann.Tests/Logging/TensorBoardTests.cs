using System.Text;
using TorchBoltzmann.Logging;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchBoltzmann.Visualization;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Logging;

public sealed class TensorBoardTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tb-events-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The CRC-32C check value of the standard test input "123456789" (RFC 3720, appendix B.4).</summary>
    [Fact]
    public void Crc32C_MatchesTheStandardCheckValue()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute(Encoding.ASCII.GetBytes("123456789")));
        Assert.Equal(0u, Crc32C.Compute([]));
    }

    /// <summary>Scalars, histograms and images written are read back with their tags, steps and values; wall times are
    /// seconds since the epoch, now.</summary>
    [Fact]
    public void Writer_RoundTripsScalarsHistogramsAndImages()
    {
        string file;
        double before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        byte[] png = ImageGrid.EncodeTiles(torch.rand(4, 9), 3, 3);
        using (var w = new TensorBoardEventWriter(_dir))
        {
            file = w.FilePath;
            w.AddScalar("a/loss", 0.25, 1);
            w.AddScalar("a/loss", -3.5, 2);
            w.AddHistogram("a/w", [1.0, 2.0, 2.0, 5.0, double.NaN], 2, bins: 4);
            w.AddImage("a/filters", png, 3);
        }
        double after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        Assert.StartsWith("events.out.tfevents.", Path.GetFileName(file));
        var values = TensorBoardEventReader.Read(file);
        Assert.Equal(["a/loss", "a/loss", "a/w", "a/filters"], values.Select(v => v.Tag));
        Assert.Equal([1L, 2L, 2L, 3L], values.Select(v => v.Step));
        Assert.Equal(0.25f, values[0].Scalar);
        Assert.Equal(-3.5f, values[1].Scalar);
        Assert.Equal(TensorBoardValueKind.Histogram, values[2].Kind);
        Assert.Equal(4, values[2].HistogramCount);   // NaN left out
        Assert.Equal(10, values[2].HistogramSum);
        Assert.Equal(TensorBoardValueKind.Image, values[3].Kind);
        Assert.Equal(png.Length, values[3].ImageBytes);
        Assert.All(values, v => Assert.InRange(v.WallTime, before - 1, after + 1));
        Assert.Throws<ArgumentException>(() => { using var w = new TensorBoardEventWriter(_dir); w.AddImage("x", [1, 2, 3], 0); });
    }

    /// <summary>A flipped byte is a CRC error naming the file and offset; a record cut short at the end (a writer stopped
    /// mid-record) ends the list instead.</summary>
    [Fact]
    public void Reader_RefusesDamage_AndToleratesACutTail()
    {
        string file;
        using (var w = new TensorBoardEventWriter(_dir))
        {
            file = w.FilePath;
            w.AddScalar("x", 1, 1);
            w.AddScalar("x", 2, 2);
        }
        byte[] good = File.ReadAllBytes(file);
        File.WriteAllBytes(file, good[..^5]);
        Assert.Equal([1f], TensorBoardEventReader.Read(file).Select(v => v.Scalar));

        byte[] bad = (byte[])good.Clone();
        bad[^8] ^= 0x40;   // inside the last record's data
        File.WriteAllBytes(file, bad);
        var ex = Assert.Throws<InvalidDataException>(() => TensorBoardEventReader.Read(file));
        Assert.Contains(file, ex.Message);
        Assert.Contains("data CRC mismatch", ex.Message);
    }

    /// <summary>
    /// The writer appends each record and flushes it, so a run killed at any instant leaves a prefix of its event file:
    /// cut at every byte, the file reads as exactly the records wholly inside the cut, the values before it unchanged.
    /// </summary>
    [Fact]
    public void Reader_FileCutAtEveryByte_ReadsExactlyTheWholeRecordsBeforeTheCut()
    {
        byte[] good = Fuzz.TensorBoardFuzzTests.Seed();
        string file = Path.Combine(_dir, "events.out.tfevents.cut");
        File.WriteAllBytes(file, good);
        var all = TensorBoardEventReader.Read(file);
        var ends = Fuzz.TensorBoardFuzzTests.Records(good).Select(r => r.at + r.length + 4).ToList();
        Assert.Equal(good.Length, ends[^1]);
        Assert.Equal(ends.Count - 1, all.Count);   // the first record is the file-version event, without values
        for (int cut = 0; cut <= good.Length; cut++)
        {
            File.WriteAllBytes(file, good[..cut]);
            int whole = ends.Count(e => e <= cut);
            var values = TensorBoardEventReader.Read(file);
            Assert.Equal(all.Take(Math.Max(0, whole - 1)), values);
        }
    }

    /// <summary>TorchSharp's own SummaryWriter's records read back through this reader (the framing and CRCs agree).</summary>
    [Fact]
    public void Reader_ReadsTorchSharpsSummaryWriter()
    {
        string dir = Path.Combine(_dir, "torchsharp");
        var writer = torch.utils.tensorboard.SummaryWriter(dir);
        writer.add_scalar("t/x", 1.5f, 7);
        var values = TensorBoardEventReader.ReadDirectory(dir);
        var v = Assert.Single(values);
        Assert.Equal(("t/x", 7L, 1.5f), (v.Tag, v.Step, v.Scalar));
    }

    /// <summary>
    /// A short RBM training logged through the logger: the scalars equal the metrics the trainer returned, at steps
    /// 1..E, each once; the update ratio, parameter histograms and images are there; nothing else is in the directory.
    /// </summary>
    [Fact]
    public void Logger_RbmTraining_ScalarsEqualTheReturnedMetrics()
    {
        using var gen = new Generator(3);
        using var data = torch.rand(new long[] { 120, 16 }, generator: gen).gt(0.5).to(ScalarType.Float32);
        using var rbm = boltzmann.RBM(16, 6, generator: gen);
        string run = Path.Combine(_dir, "rbm-run");
        IReadOnlyList<RbmEpochMetrics> metrics;
        using (var log = new TensorBoardLogger(run, new TensorBoardLoggerOptions { HistogramEvery = 2, ImageEvery = 2 }))
        using (var trainer = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 4, BatchSize = 20, Seed = 5, MetricsEvery = 1 }))
        {
            log.Watch(trainer.Stage, rbm);
            log.RbmImages = (_, r) => [("filters", ImageGrid.EncodeFilters(r.weight, 4, 4))];
            metrics = trainer.Fit(data, data.narrow(0, 0, 40), log);
        }
        var values = TensorBoardEventReader.ReadDirectory(run);
        string t = TensorBoardLogger.TagOf("RBM");
        Assert.Equal("rbm", t);
        var recon = values.Where(v => v.Tag == $"{t}/reconstruction_error").ToList();
        Assert.Equal([1L, 2L, 3L, 4L], recon.Select(v => v.Step));
        Assert.Equal(metrics.Select(m => (float)m.ReconstructionError!.Value), recon.Select(v => v.Scalar));
        var fe = values.Where(v => v.Tag == $"{t}/free_energy_gap").Select(v => v.Scalar);
        Assert.Equal(metrics.Select(m => (float)m.FreeEnergyGap!.Value), fe);
        var ratio = values.Where(v => v.Tag == $"{t}/update_to_weight_ratio/weight").ToList();
        Assert.Equal(4, ratio.Count);
        Assert.All(ratio, v => Assert.InRange(v.Scalar, 1e-6f, 1f));
        var hist = values.Where(v => v.Tag == $"{t}/weight").ToList();
        Assert.Equal([2L, 4L], hist.Select(v => v.Step));
        Assert.All(hist, h => Assert.Equal(96, h.HistogramCount));
        Assert.Equal([2L, 4L], values.Where(v => v.Tag == $"{t}/weight_change").Select(v => v.Step));
        Assert.Equal([2L, 4L], values.Where(v => v.Tag == $"{t}/filters").Select(v => v.Step));
        // Every (tag, step) once.
        Assert.Equal(values.Count, values.Select(v => (v.Tag, v.Step)).Distinct().Count());
        Assert.Single(Directory.GetFiles(run));
    }

    /// <summary>
    /// A continued run appends to the same directory without duplicate points: a first run logged epochs 1–3, the
    /// continuation (from a checkpoint of epoch 2) reports 3–5; each epoch's point is there once, epoch 3 from the first.
    /// </summary>
    [Fact]
    public void Logger_ContinuedRun_AppendsWithoutDuplicateSteps()
    {
        string run = Path.Combine(_dir, "continued");
        static TrainingProgress Epoch(int e, double recon) =>
            new("RBM", e, 5, 10, 10, new RbmEpochMetrics(e, 5, 0.1, 0.5, recon, null, null, null, null));
        using (var first = new TensorBoardLogger(run))
            foreach (int e in new[] { 1, 2, 3 }) first.Report(Epoch(e, e));
        using (var second = new TensorBoardLogger(run))
        {
            foreach (int e in new[] { 3, 4, 5 }) second.Report(Epoch(e, 10 * e));
            Assert.Equal(2 * 3, second.ValuesWritten);   // epochs 4 and 5: reconstruction error, momentum, seconds
        }
        var recon = TensorBoardEventReader.ReadDirectory(run).Where(v => v.Tag == "rbm/reconstruction_error").ToList();
        Assert.Equal([1L, 2L, 3L, 4L, 5L], recon.Select(v => v.Step));
        Assert.Equal([1f, 2f, 3f, 40f, 50f], recon.Select(v => v.Scalar));
        Assert.Equal(2, Directory.GetFiles(run).Length);
    }

    /// <summary>
    /// Any trainer on the shared loop logs through For&lt;TMetrics&gt;(): a general Boltzmann machine's run writes its
    /// log-likelihood per epoch exactly as returned, its seconds, and the watched machine's weight histogram.
    /// </summary>
    [Fact]
    public void Logger_LoopTrainer_WritesEveryNumericFieldOfItsEpochRecord()
    {
        using var g = new Generator(2);
        using var data = torch.tensor(new double[,] { { 1, 0, 1, 0 }, { 0, 1, 0, 1 }, { 1, 1, 0, 0 }, { 0, 0, 1, 1 } });
        using var bm = boltzmann.BM(4, 2, Connectivity.Full, dtype: ScalarType.Float64, generator: g);
        string run = Path.Combine(_dir, "bm-run");
        IReadOnlyList<BoltzmannEpochMetrics> history;
        using (var log = new TensorBoardLogger(run))
        using (var trainer = new BoltzmannTrainer(bm, new BoltzmannTrainingOptions { Epochs = 3, BatchSize = 2, MetricsEvery = 1, Seed = 3, FreeChains = 20 }))
        {
            log.Watch(trainer.Stage, bm);
            history = trainer.Fit(data, log.For<BoltzmannEpochMetrics>());
        }
        var values = TensorBoardEventReader.ReadDirectory(run);
        Assert.Equal(history.Select(m => (float)m.LogLikelihood!.Value), values.Where(v => v.Tag == "bm/log_likelihood").Select(v => v.Scalar));
        Assert.Equal([1L, 2L, 3L], values.Where(v => v.Tag == "bm/train_seconds").Select(v => v.Step));
        Assert.Equal(3, values.Count(v => v.Tag == "bm/weight" && v.Kind == TensorBoardValueKind.Histogram));
        Assert.DoesNotContain(values, v => v.Tag is "bm/epoch" or "bm/epochs");
        Assert.Equal("wake_reconstruction_error", TensorBoardLogger.SnakeCase("WakeReconstructionError"));
    }

    [Fact]
    public void TagOf_NamesStagesAsTensorBoardTags()
    {
        Assert.Equal("layer2", TensorBoardLogger.TagOf("layer 2/3"));
        Assert.Equal("fine-tune", TensorBoardLogger.TagOf("fine-tune"));
        Assert.Equal("my_stage", TensorBoardLogger.TagOf("My Stage"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TensorBoardLoggerOptions { ImageEvery = -1 }.Validate());
    }
}

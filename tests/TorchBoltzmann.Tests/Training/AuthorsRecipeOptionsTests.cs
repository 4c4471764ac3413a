using TorchBoltzmann.Data;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;
using static TorchBoltzmann.Tests.Training.DbnTestUtil;

namespace TorchBoltzmann.Tests.Training;

/// <summary>
/// The options that express Salakhutdinov's DBM code: the top RBM's growing CD-k (<see cref="RbmTrainingOptions.KIncreaseEvery"/>),
/// per-batch binarisation (<c>BinarizeEachBatch</c>), the DBM's momentum switch and learning-rate floor.
/// </summary>
public class AuthorsRecipeOptionsTests
{
    /// <summary>Bars-and-stripes 3×3 × 40 (560 rows), float32.</summary>
    private static Tensor Bars() => RbmTrainerCheckpointTests.Data();

    private static (List<Tensor> Weights, IReadOnlyList<RbmEpochMetrics> History) TrainRbm(RbmTrainingOptions options, Tensor data, List<int>? ks = null)
    {
        using var init = new Generator(5);
        using var rbm = boltzmann.RBM(9, 6, generator: init);
        using var trainer = new RbmTrainer(rbm, options);
        var progress = ks is null ? null : new CallbackProgress<TrainingProgress>(p => { if (p.EpochMetrics is null && p.Batch == 1) ks.Add(trainer.CurrentK); });
        var history = trainer.Fit(data, progress: progress);
        return (rbm.parameters().Select(p => p.detach().clone()).ToList(), history);
    }

    /// <summary>
    /// k_e = K + ⌊e / N⌋ with the rate η₀ γ^e K / k_e: with N = 2 the epochs' rates are η₀, η₀γ, η₀γ²/2, η₀γ³/2, η₀γ⁴/3;
    /// the negative phase takes k = 1, 1, 2, 2, 3 steps (read at each epoch's first batch); the first N epochs are the
    /// plain CD-1 run's bit for bit (k = 1 there), and its third epoch differs from a plain CD-1 run's third. With PCD or tempering the schedule is refused in one message naming the option.
    /// </summary>
    [Fact]
    public void GrowingK_SetsEachEpochsRate_AndMatchesCd1UntilItGrows()
    {
        using var data = Bars();
        var plain = new RbmTrainingOptions { Epochs = 2, BatchSize = 14, LearningRate = 0.1, LearningRateDecay = 0.9, Seed = 3, MetricsEvery = 0 };
        var growing = plain with { Epochs = 5, KIncreaseEvery = 2 };
        var (w2, _) = TrainRbm(plain, data);
        var ks = new List<int>();
        var (w5, history) = TrainRbm(growing, data, ks);
        var (w2g, _) = TrainRbm(growing with { Epochs = 2 }, data);
        var (w3, _) = TrainRbm(growing with { Epochs = 3 }, data);
        var (w3k2, _) = TrainRbm(plain with { Epochs = 3 }, data);   // k = 1 in epoch 3 too: it must differ from the k = 2 epoch
        double[] expected = [0.1, 0.09, 0.081 / 2, 0.0729 / 2, 0.06561 / 3];
        Assert.Equal([1, 1, 2, 2, 3], ks);
        Assert.Contains(w3.Zip(w3k2), p => !Same(p.First, p.Second));
        Assert.Equal(5, history.Count);
        for (int e = 0; e < 5; e++) Assert.Equal(expected[e], history[e].LearningRate!.Value, 12);
        foreach (var (a, b) in w2.Zip(w2g, (a, b) => (a, b))) Assert.True(Same(a, b), "the first two epochs (k = 1) differ from CD-1's");
        Assert.Equal(w2.Count, w2g.Count);
        var e1 = Assert.Throws<ArgumentException>(() => (growing with { Persistent = true }).Validate());
        Assert.Contains("KIncreaseEvery", e1.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => (plain with { KIncreaseEvery = -1 }).Validate());
    }

    /// <summary>
    /// Per-batch binarisation feeds the trainers binary draws of the grey levels, not the grey levels: on grey data
    /// (every pixel 0.3 or 0.7) an RBM's and a DBM's runs with the option end with other weights than the same runs without it.
    /// </summary>
    [Fact]
    public void BinarizeEachBatch_TrainsOnDraws_NotOnTheGreyLevels()
    {
        using var bars = Bars();
        using var grey = bars.mul(0.4).add_(0.3);   // 0 → 0.3, 1 → 0.7
        var options = new RbmTrainingOptions { Epochs = 3, BatchSize = 14, LearningRate = 0.1, Seed = 3, MetricsEvery = 0 };
        var (asGiven, _) = TrainRbm(options, grey);
        var (drawn, _) = TrainRbm(options with { BinarizeEachBatch = true }, grey);
        Assert.Contains(asGiven.Zip(drawn), p => !Same(p.First, p.Second));

        using var dbmData = DbmTrainerTests.Patterns(4, rows: 40);
        using var greyDbm = dbmData.to_type(ScalarType.Float32).mul(0.4).add_(0.3);
        var dbmOptions = new DbmTrainingOptions { Epochs = 2, BatchSize = 10, LearningRate = 0.05, Chains = 10, GibbsSteps = 1, Seed = 5, MetricsEvery = 0 };
        List<Tensor> Dbm(DbmTrainingOptions o)
        {
            using var g = new Generator(6);
            using var dbm = boltzmann.DBM([6, 4, 3], generator: g);
            using var trainer = new DbmTrainer(dbm, o);
            trainer.Fit(greyDbm);
            return dbm.parameters().Select(p => p.detach().clone()).ToList();
        }
        Assert.Contains(Dbm(dbmOptions).Zip(Dbm(dbmOptions with { BinarizeEachBatch = true })), p => !Same(p.First, p.Second));
    }

    /// <summary>
    /// Under per-batch binarisation the epoch metrics are those of one fixed draw of the metric rows, Bernoulli(x) from a
    /// generator seeded by the options' seed: recomputed here from that draw after training, the RBM's reconstruction
    /// error and free energy and the DBM's mean-field bound agree with the last epoch's record (the grey rows give others).
    /// </summary>
    [Fact]
    public void BinarizeEachBatch_MeasuresOneFixedDrawOfTheMetricRows()
    {
        using var bars = Bars();
        using var grey = bars.mul(0.4).add_(0.3);
        using var init = new Generator(5);
        using var rbm = boltzmann.RBM(9, 6, generator: init);
        var options = new RbmTrainingOptions { Epochs = 2, BatchSize = 14, LearningRate = 0.1, Seed = 3, MetricsSamples = 100, BinarizeEachBatch = true };
        using (var trainer = new RbmTrainer(rbm, options))
        {
            var last = trainer.Fit(grey)[^1];
            using var rows = grey.narrow(0, 0, 100);
            using var g = new Generator(3);
            using var drawn = Binarize.Stochastic(rows, g);
            Assert.Equal(TorchBoltzmann.Evaluation.RbmMetrics.reconstruction_error(rbm, drawn), last.ReconstructionError!.Value, 6);
            Assert.Equal(TorchBoltzmann.Evaluation.RbmMetrics.mean_free_energy(rbm, drawn), last.FreeEnergyTrain!.Value, 6);
            Assert.NotEqual(TorchBoltzmann.Evaluation.RbmMetrics.mean_free_energy(rbm, rows), last.FreeEnergyTrain!.Value, 3);
        }

        using var dbmData = DbmTrainerTests.Patterns(4, rows: 40);
        using var greyDbm = dbmData.to_type(ScalarType.Float32).mul(0.4).add_(0.3);
        using var gd = new Generator(6);
        using var dbm = boltzmann.DBM([6, 4, 3], generator: gd);
        var dbmOptions = new DbmTrainingOptions { Epochs = 2, BatchSize = 10, LearningRate = 0.05, Chains = 10, GibbsSteps = 1, Seed = 5, MetricsRows = 30, BinarizeEachBatch = true };
        using var dbmTrainer = new DbmTrainer(dbm, dbmOptions);
        var lastDbm = dbmTrainer.Fit(greyDbm)[^1];
        using var dbmRows = greyDbm.narrow(0, 0, 30);
        using var g2 = new Generator(5);
        using var dbmDrawn = Binarize.Stochastic(dbmRows, g2);
        Assert.Equal(DbmTrainer.Measure(dbm, dbmDrawn).bound, lastDbm.MeanFieldBound!.Value, 6);
    }

    /// <summary>
    /// The schedules survive an interruption: an RBM run with the growing k and per-batch binarisation, and a centered DBM
    /// run with the momentum switch, the rate floor and per-batch binarisation, each cancelled after epoch 2 of 5 and
    /// continued by a new trainer from its run checkpoint, end with the unbroken run's weights and epoch records exactly
    /// (the record runs of these recipes are stopped and continued at every session's end).
    /// </summary>
    [Fact]
    public void Schedules_ContinueFromARunCheckpoint_AsAnUnbrokenRun()
    {
        using var dir = new TempDirectory();
        using var bars = Bars();
        using var grey = bars.mul(0.4).add_(0.3);
        var rbmOptions = new RbmTrainingOptions { Epochs = 5, BatchSize = 14, LearningRate = 0.1, LearningRateDecay = 0.9, KIncreaseEvery = 2, BinarizeEachBatch = true, Seed = 3, MetricsSamples = 50 };
        (List<Tensor> W, IReadOnlyList<RbmEpochMetrics>? H) Rbm(string? path, int cancelAfter)
        {
            using var init = new Generator(5);
            using var rbm = boltzmann.RBM(9, 6, generator: init);
            using var cancel = new CancellationTokenSource();
            var progress = new CallbackProgress<TrainingProgress>(p => { if (p.EpochMetrics?.Epoch == cancelAfter) cancel.Cancel(); });
            using var trainer = new RbmTrainer(rbm, rbmOptions) { CheckpointPath = path };
            IReadOnlyList<RbmEpochMetrics>? history = null;
            try { history = trainer.Fit(grey, progress: progress, cancellationToken: cancel.Token); }
            catch (OperationCanceledException) { }
            return (rbm.parameters().Select(p => p.detach().clone()).ToList(), history);
        }
        var (whole, wholeHistory) = Rbm(null, 0);
        var path = dir.File("rbm.ckpt");
        Assert.Null(Rbm(path, 2).H);
        var (resumed, resumedHistory) = Rbm(path, 0);
        Assert.Equal(whole.Count, resumed.Count);
        foreach (var (a, b) in whole.Zip(resumed)) Assert.True(Same(a, b), "an RBM parameter differs after continuing");
        Assert.Equal(wholeHistory!.Select(m => (m.LearningRate, m.ReconstructionError)), resumedHistory!.Select(m => (m.LearningRate, m.ReconstructionError)));

        using var dbmData = DbmTrainerTests.Patterns(4, rows: 40);
        using var greyDbm = dbmData.to_type(ScalarType.Float32).mul(0.4).add_(0.3);
        var dbmOptions = new DbmTrainingOptions
        {
            Epochs = 5, BatchSize = 10, LearningRate = 0.05, LearningRateDecay = 0.5, MinLearningRate = 0.01, FinalMomentum = 0.9, MomentumSwitchEpoch = 2,
            BinarizeEachBatch = true, Centering = true, Chains = 10, GibbsSteps = 2, Seed = 5, MetricsRows = 20,
        };
        (List<Tensor> W, IReadOnlyList<DbmEpochMetrics>? H) Dbm(string? file, int cancelAfter)
        {
            using var g = new Generator(6);
            using var dbm = boltzmann.DBM([6, 4, 3], generator: g);
            using var cancel = new CancellationTokenSource();
            var progress = new CallbackProgress<LoopProgress<DbmEpochMetrics>>(p => { if (p.EpochMetrics?.Epoch == cancelAfter) cancel.Cancel(); });
            using var trainer = new DbmTrainer(dbm, dbmOptions) { CheckpointPath = file };
            IReadOnlyList<DbmEpochMetrics>? history = null;
            try { history = trainer.Fit(greyDbm, progress, cancel.Token); }
            catch (OperationCanceledException) { }
            return (dbm.parameters().Select(p => p.detach().clone()).ToList(), history);
        }
        var (dbmWhole, dbmWholeHistory) = Dbm(null, 0);
        var dbmPath = dir.File("dbm.ckpt");
        Assert.Null(Dbm(dbmPath, 2).H);
        var (dbmResumed, dbmResumedHistory) = Dbm(dbmPath, 0);
        Assert.Equal(dbmWhole.Count, dbmResumed.Count);
        foreach (var (a, b) in dbmWhole.Zip(dbmResumed)) Assert.True(Same(a, b), "a DBM parameter differs after continuing");
        Assert.Equal(dbmWholeHistory!.Select(m => (m.LearningRate, m.MeanFieldBound)), dbmResumedHistory!.Select(m => (m.LearningRate, m.MeanFieldBound)));
        Assert.Equal([0.05, 0.025, 0.0125, 0.01, 0.01], dbmWholeHistory!.Select(m => m.LearningRate));
    }

    /// <summary>
    /// The options' text in <c>tbm mnist</c>'s checkpoint tag leaves out the later options while they are off (so that
    /// checkpoints written before they existed continue) and states them when on.
    /// </summary>
    [Fact]
    public void PipelineTag_OmitsTheLaterOptionsWhileOff()
    {
        var off = TorchBoltzmann.Recipes.DbnClassifierPipeline.TagText(new RbmTrainingOptions());
        Assert.DoesNotContain("KIncreaseEvery", off);
        Assert.DoesNotContain("BinarizeEachBatch", off);
        Assert.Contains("K = 1, Persistent = False", off);
        var on = TorchBoltzmann.Recipes.DbnClassifierPipeline.TagText(new RbmTrainingOptions { KIncreaseEvery = 20, BinarizeEachBatch = true });
        Assert.Contains("KIncreaseEvery = 20", on);
        Assert.Contains("BinarizeEachBatch = True", on);
        Assert.Throws<ArgumentException>(() => new RbmTrainer(boltzmann.RBM(4, 3, visible: TorchBoltzmann.Units.UnitType.Gaussian), new RbmTrainingOptions { BinarizeEachBatch = true }));
    }

    /// <summary>
    /// The DBM's momentum is <c>Momentum</c> before <c>MomentumSwitchEpoch</c> and <c>FinalMomentum</c> from it on, in the
    /// optimizer's groups; the rate is max(η₀ γ^e, floor) in the epochs' metrics; both are refused out of range.
    /// </summary>
    [Fact]
    public void DbmMomentumSwitch_AndRateFloor_FollowTheirSchedules()
    {
        using var data = DbmTrainerTests.Patterns(4, rows: 20);
        var options = new DbmTrainingOptions
        {
            Epochs = 4, BatchSize = 10, LearningRate = 0.01, LearningRateDecay = 0.5, MinLearningRate = 0.003, Momentum = 0.5, FinalMomentum = 0.9,
            MomentumSwitchEpoch = 2, Chains = 10, GibbsSteps = 1, Seed = 5, MetricsEvery = 0,
        };
        using var g = new Generator(6);
        using var dbm = boltzmann.DBM([6, 4, 3], dtype: ScalarType.Float64, generator: g);
        using var trainer = new DbmTrainer(dbm, options);
        var seen = new List<double>();
        var progress = new CallbackProgress<LoopProgress<DbmEpochMetrics>>(p =>
        {
            if (p.EpochMetrics is null && p.Batch == 1) seen.Add(((optim.IMomentum)trainer.Optimizer.ParamGroups.First()).Momentum);
        });
        var history = trainer.Fit(data, progress);
        Assert.Equal([0.5, 0.5, 0.9, 0.9], seen);
        Assert.Equal([0.01, 0.005, 0.003, 0.003], history.Select(m => m.LearningRate));
        Assert.Throws<ArgumentOutOfRangeException>(() => (options with { FinalMomentum = 1.0 }).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => (options with { MinLearningRate = -1 }).Validate());
    }
}

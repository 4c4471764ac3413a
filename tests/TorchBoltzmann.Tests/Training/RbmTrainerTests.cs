using TorchBoltzmann.Data;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

public class RbmTrainerTests
{
    /// <summary>Bars-and-stripes 3×3 (14 patterns), each repeated: the exact log-likelihood is computable (2⁹ visible states).</summary>
    private static Tensor BarsAndStripesData(int repeats, ScalarType dtype = ScalarType.Float64)
    {
        using var bas = SyntheticData.BarsAndStripes(3);
        using var rep = bas.repeat(repeats, 1);
        return rep.to_type(dtype);
    }

    [Theory]
    [InlineData(false, 0.1)]
    [InlineData(true, 0.03)]   // PCD keeps momentum 0.5: with 0.9 (even at lr 0.01) the weights outrun the persistent chains and the likelihood falls
    public void Fit_OnBarsAndStripes_RaisesExactLogLikelihood(bool persistent, double lr)
    {
        using var data = BarsAndStripesData(40);
        using var g = new Generator(3);
        using var rbm = boltzmann.RBM(9, 16, dtype: ScalarType.Float64, generator: g);
        double before = ExactEnumeration.log_likelihood(rbm, data);
        using var trainer = new RbmTrainer(rbm, new RbmTrainingOptions
        {
            Epochs = persistent ? 120 : 60, BatchSize = 14, LearningRate = lr, Persistent = persistent, K = persistent ? 1 : 3,
            FinalMomentum = persistent ? 0.5 : 0.9, MetricsEvery = 0, Seed = 7,
        });
        trainer.Fit(data);
        double after = ExactEnumeration.log_likelihood(rbm, data);
        // Uniform over 2⁹ states gives −6.24 nats; the 14-pattern optimum is −2.64. Training must gain at least 2 nats.
        Assert.True(after > before + 2.0, $"log-likelihood before {before:F3}, after {after:F3}");
        Assert.Equal(persistent, trainer.PersistentChains is not null);
        Assert.DoesNotContain(rbm.state_dict().Keys, k => k.Contains("chain"));
    }

    [Fact]
    public void Fit_WithParallelTempering_RaisesExactLogLikelihood_AndReportsSwapRates()
    {
        using var data = BarsAndStripesData(40);
        using var g = new Generator(3);
        using var rbm = boltzmann.RBM(9, 16, dtype: ScalarType.Float64, generator: g);
        double before = ExactEnumeration.log_likelihood(rbm, data);
        using var trainer = new RbmTrainer(rbm, new RbmTrainingOptions
        {
            Epochs = 30, BatchSize = 14, LearningRate = 0.1, K = 1, FinalMomentum = 0.5, MetricsEvery = 0, Seed = 7,
            Tempering = TorchBoltzmann.Sampling.TemperingLadder.Linear(5, 0.2),
        });
        var history = trainer.Fit(data);
        double after = ExactEnumeration.log_likelihood(rbm, data);
        // Each epoch's record holds that epoch's acceptance per neighbour pair; every epoch proposes as many swaps (40
        // batches of one round each), so their mean over the epochs is the sampler's rate over the whole fit.
        Assert.All(history, h => Assert.Equal(4, h.SwapAcceptance!.Count));
        var overall = trainer.Tempering!.swap_acceptance;
        for (int m = 0; m < 4; m++) Assert.Equal(overall[m], history.Average(h => h.SwapAcceptance![m]), 9);
        Assert.All(history, h => Assert.Equal(h.SwapAcceptance!.Min(), h.LowestSwapAcceptance));
        Assert.All(history, h => Assert.Equal(0.1, h.LearningRate));
        // Uniform −6.24 nats, optimum −2.64: 30 epochs must gain at least 1 nat (measured: see the commit).
        Assert.True(after > before + 1.0, $"log-likelihood before {before:F3}, after {after:F3}");
        Assert.Null(trainer.PersistentChains);
        Assert.Equal(5 * 14, trainer.Tempering!.states.shape[0]);
        Assert.All(trainer.Tempering.swap_acceptance, r => Assert.True(r > 0 && r < 1, $"swap acceptance {r}"));
        var e = Assert.Throws<ArgumentException>(() => new RbmTrainer(rbm, new RbmTrainingOptions { Persistent = true, Tempering = TorchBoltzmann.Sampling.TemperingLadder.Linear() }));
        Assert.Contains("Tempering", e.Message);
    }

    [Fact]
    public void LongGibbsChains_MatchExactMarginals()
    {
        using var rbm = TestUtil.RandomRbm(6, 4, seed: 41, std: 0.8);
        using var exact = ExactEnumeration.visible_marginals(rbm);
        using var g = new Generator(43);
        // 200 chains × 100 samples after 200 burn-in steps, thinned by 5: 20 000 samples.
        using var samples = rbm.generate(20000, burn_in: 200, thin: 5, chains: 200, generator: g);
        using var empirical = samples.mean(new long[] { 0 });
        // Standard error of a marginal ≤ 0.5/√20000 ≈ 0.0035 (more with autocorrelation): tolerance 0.02.
        var e = TestUtil.ToArray(exact);
        var m = TestUtil.ToArray(empirical);
        for (int i = 0; i < e.Length; i++)
            Assert.True(Math.Abs(e[i] - m[i]) < 0.02, $"unit {i}: exact {e[i]:F4}, chains {m[i]:F4}");
    }

    [Fact]
    public void DirectAndAutogradModes_TrainToTheSameWeights_WithFoldedOrOptimizerMomentum()
    {
        using var data = BarsAndStripesData(4);
        // Three epochs across a momentum switch (0.5 → 0.9 after epoch 1), weight decay on.
        var options = new RbmTrainingOptions { Epochs = 3, BatchSize = 8, MomentumSwitchEpoch = 1, MetricsEvery = 0, Seed = 5 };
        Tensor Train(GradientMode mode, bool callerOptimizer, out bool folded)
        {
            using var g = new Generator(1);
            using var rbm = boltzmann.RBM(9, 5, dtype: ScalarType.Float64, generator: g);
            using var opt = callerOptimizer ? optim.SGD(rbm.parameters(), options.LearningRate, momentum: options.InitialMomentum) : null;
            using var t = new RbmTrainer(rbm, options with { Gradient = mode }, opt);
            t.Fit(data);
            folded = t.FoldsMomentum;
            Assert.Equal(options.FinalMomentum, t.Momentum);
            return rbm.weight.detach().clone();
        }
        using var direct = Train(GradientMode.Direct, false, out bool directFolded);
        using var directOpt = Train(GradientMode.Direct, true, out bool directOptFolded);
        using var auto = Train(GradientMode.Autograd, false, out bool autoFolded);
        Assert.True(directFolded);
        Assert.False(directOptFolded);
        Assert.False(autoFolded);
        TestUtil.AllClose(auto, direct, 1e-9, "W (autograd vs direct with folded momentum)");
        TestUtil.AllClose(directOpt, direct, 1e-9, "W (SGD momentum vs folded momentum)");
    }

    [Fact]
    public void Fit_WithSameSeed_IsDeterministic()
    {
        using var data = BarsAndStripesData(4, ScalarType.Float32);
        Tensor Train(ulong seed)
        {
            using var g = new Generator(1);
            using var rbm = boltzmann.RBM(9, 5, generator: g);
            using var t = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 2, BatchSize = 8, MetricsEvery = 0, Seed = seed });
            t.Fit(data);
            return rbm.weight.detach().clone();
        }
        using var a = Train(5);
        using var b = Train(5);
        using var c = Train(6);
        Assert.True(torch.equal(a, b).all().item<bool>());
        Assert.False(torch.equal(a, c).all().item<bool>());
    }

    [Fact]
    public void Fit_ReportsProgressAndMetrics_AndSwitchesMomentum()
    {
        using var data = BarsAndStripesData(10, ScalarType.Float32);
        using var held = BarsAndStripesData(2, ScalarType.Float32);
        using var g = new Generator(11);
        using var rbm = boltzmann.RBM(9, 8, generator: g);
        using var t = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 3, BatchSize = 20, MomentumSwitchEpoch = 2, MetricsSamples = 140 });
        var reports = new List<TrainingProgress>();
        var history = t.Fit(data, held, new SyncProgress<TrainingProgress>(reports.Add));
        Assert.Equal(3, history.Count);
        Assert.Equal(3 * 7 + 3, reports.Count);      // 140 rows / 20 = 7 batches per epoch, plus one epoch report each
        Assert.Equal(new double?[] { 0.5, 0.5, 0.9 }, history.Select(h => h.Momentum));
        Assert.All(history, h =>
        {
            Assert.NotNull(h.ReconstructionError);
            Assert.NotNull(h.PseudoLogLikelihood);
            Assert.True(h.PseudoLogLikelihood < 0);
            Assert.NotNull(h.FreeEnergyGap);
        });
    }

    /// <summary>
    /// LearningRateDecay γ: every batch of epoch e (zero-based) steps at η₀ γ^e, and a second fit starts again at η₀ (the
    /// schedule's base is the rate the trainer was built with, not the decayed one the first fit left).
    /// </summary>
    [Fact]
    public void Fit_WithLearningRateDecay_StepsAtTheDecayedRateEveryEpoch_AndRestartsOnTheNextFit()
    {
        using var data = BarsAndStripesData(10, ScalarType.Float32);
        using var g = new Generator(12);
        using var rbm = boltzmann.RBM(9, 6, generator: g);
        using var t = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 3, BatchSize = 20, LearningRate = 0.2, LearningRateDecay = 0.5, MetricsEvery = 0 });
        var rates = new List<(int Epoch, double Rate)>();
        var progress = new SyncProgress<TrainingProgress>(p => { if (p.EpochMetrics is null) rates.Add((p.Epoch, t.Optimizer.ParamGroups.First().LearningRate)); });
        t.Fit(data, progress: progress);
        Assert.Equal(21, rates.Count);   // 140 rows / 20 = 7 batches in each of 3 epochs
        foreach (var (epoch, rate) in rates) Assert.Equal(0.2 * Math.Pow(0.5, epoch - 1), rate, 12);
        rates.Clear();
        t.Fit(data, progress: progress);
        Assert.Equal(0.2, rates[0].Rate, 12);
        Assert.Equal(0.05, rates[^1].Rate, 12);
        Assert.Throws<ArgumentOutOfRangeException>(() => new RbmTrainer(rbm, new RbmTrainingOptions { LearningRateDecay = 1.5 }));
    }

    [Fact]
    public void Fit_WithNaNWeights_StopsNamingEpochAndBatch()
    {
        using var data = BarsAndStripesData(4, ScalarType.Float32);
        using var rbm = boltzmann.RBM(9, 4);
        using (torch.no_grad()) rbm.weight[0, 0] = torch.tensor(float.NaN);
        using var t = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 2, BatchSize = 14 });
        var e = Assert.Throws<TrainingDivergedException>(() => t.Fit(data));
        Assert.Equal(1, e.Epoch);
        Assert.Equal(1, e.Batch);
        Assert.Contains("epoch 1, batch 1", e.Message);
    }

    [Fact]
    public void Fit_WithHugeLearningRate_Diverges_WithClearError()
    {
        using var data = BarsAndStripesData(20, ScalarType.Float32);
        using var rbm = boltzmann.RBM(9, 4);
        using var t = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 50, BatchSize = 14, LearningRate = 1e38 });
        var e = Assert.Throws<TrainingDivergedException>(() => t.Fit(data));
        Assert.Contains($"epoch {e.Epoch}, batch {e.Batch}", e.Message);
    }

    [Fact]
    public void Fit_BadData_IsRejectedBeforeTraining()
    {
        using var rbm = boltzmann.RBM(9, 4);
        using var t = new RbmTrainer(rbm);
        using var wide = torch.zeros(10, 10);
        Assert.Contains("expected 9 units", Assert.Throws<ArgumentException>(() => t.Fit(wide)).Message);
        using var neg = torch.zeros(10, 9) - 1;
        Assert.Contains("training data: expected values in [0, 1]", Assert.Throws<ArgumentException>(() => t.Fit(neg)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new RbmTrainer(rbm, new RbmTrainingOptions { BatchSize = 0 }));
        using var ok = torch.zeros(10, 9);
        using var noRows = torch.zeros(0, 9);
        Assert.Contains("validation data: expected shape (M ≥ 1, 9)", Assert.Throws<ArgumentException>(() => t.Fit(ok, noRows)).Message);
        using var oneRow = torch.zeros(9);
        Assert.Contains("validation data", Assert.Throws<ArgumentException>(() => t.Fit(ok, oneRow)).Message);
        Assert.Contains("batch: expected 9 units", Assert.Throws<ArgumentException>(() => t.Step(wide)).Message);
        Assert.Contains("batch: expected shape (B ≥ 1, 9)", Assert.Throws<ArgumentException>(() => t.Step(oneRow)).Message);
    }

    [Fact]
    public void FoldedMomentum_StartsFromZero_AndANonFiniteStepResetsIt()
    {
        using var data = BarsAndStripesData(2);
        using var a = TestUtil.RandomRbm(9, 5, seed: 12, std: 0.1);
        using var b = TestUtil.RandomRbm(9, 5, seed: 12, std: 0.1);
        // b carries a leftover gradient (as cd_loss().backward() or an earlier trainer leaves one); a new trainer's momentum
        // buffer must start at zero anyway, as a new torch.optim.SGD's does.
        b.weight.grad = torch.full_like(b.weight, 5.0);
        var options = new RbmTrainingOptions { BatchSize = 28, InitialMomentum = 0.5, WeightDecay = 0 };
        using var ga = new Generator(4);
        using var gb = new Generator(4);
        using var ta = new RbmTrainer(a, options, generator: ga);
        using var tb = new RbmTrainer(b, options, generator: gb);
        Assert.True(ta.FoldsMomentum && tb.FoldsMomentum);
        for (int i = 0; i < 3; i++) { Assert.True(ta.Step(data)); Assert.True(tb.Step(data)); }
        TestUtil.AllClose(a.weight, b.weight, 0, "W after three steps from a clean and a dirty .grad");

        // A NaN weight makes the gradient non-finite: the step is refused. With the weight repaired, the next step must
        // succeed: the NaN that entered the momentum buffer u ← μu + g is not carried on (μ·NaN would refuse every step).
        double saved;
        using (torch.no_grad())
        {
            using var w00 = a.weight[0, 0];
            saved = w00.ToDouble();
            a.weight[0, 0] = torch.tensor(double.NaN, ScalarType.Float64);
        }
        using (var before = a.weight.detach().clone())
        {
            Assert.False(ta.Step(data));
            using var after = a.weight.detach();
            using var nanBefore = before.isnan();
            using var nanAfter = after.isnan();
            using var numBefore = before.nan_to_num();
            using var numAfter = after.nan_to_num();
            Assert.True(DbnTestUtil.Same(nanBefore, nanAfter) && DbnTestUtil.Same(numBefore, numAfter), "a refused step leaves W as it was");
        }
        using (torch.no_grad()) a.weight[0, 0] = torch.tensor(saved, ScalarType.Float64);
        Assert.True(ta.Step(data), "the step after the repair is taken");
        using var finite = a.weight.isfinite();
        Assert.True(finite.all().item<bool>());
    }

    [Fact]
    public void Fit_Cancelled_ThrowsOperationCanceled()
    {
        using var data = BarsAndStripesData(10, ScalarType.Float32);
        using var rbm = boltzmann.RBM(9, 4);
        using var t = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 5, BatchSize = 10 });
        using var cts = new CancellationTokenSource();
        int seen = 0;
        Assert.Throws<OperationCanceledException>(() =>
            t.Fit(data, progress: new SyncProgress<TrainingProgress>(_ => { if (++seen == 3) cts.Cancel(); }), cancellationToken: cts.Token));
        Assert.Equal(3, seen);
    }

    [Fact]
    public void Fit_WithAnyTorchOptimizer_Trains()
    {
        using var data = BarsAndStripesData(20, ScalarType.Float64);
        using var g = new Generator(2);
        using var rbm = boltzmann.RBM(9, 12, dtype: ScalarType.Float64, generator: g);
        double before = ExactEnumeration.log_likelihood(rbm, data);
        using var adam = optim.Adam(rbm.parameters(), lr: 0.01);
        using var t = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 30, BatchSize = 14, MetricsEvery = 0 }, adam);
        t.Fit(data);
        Assert.True(ExactEnumeration.log_likelihood(rbm, data) > before + 1.0);
    }

    [Fact]
    public void Fit_DoesNotLeakTensors_OverManyBatches()
    {
        using var rbm = boltzmann.RBM(9, 6);
        using var t = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 1, BatchSize = 7, MetricsEvery = 1, MetricsSamples = 20 });
        using var small = BarsAndStripesData(5, ScalarType.Float32);   // 10 batches
        using var large = BarsAndStripesData(20, ScalarType.Float32);  // 40 batches
        t.Fit(small);   // warm-up: allocates gradient and momentum buffers once
        long Live(Tensor d) => TestUtil.LiveTensorsAfter(() => t.Fit(d));
        long a = Live(small);
        long b = Live(large);
        Assert.True(a == b, $"live tensors after 10 batches: {a}, after 40: {b}");
        Assert.True(b <= 0, $"a training run left {b} tensors alive");
    }

    [SkippableFact(DisplayName = "RbmTrainerTests.Cuda_Fit_TrainsOnTheDevice_WithPcd (runs only where CUDA is available)")]
    public void Cuda_Fit_TrainsOnTheDevice_WithPcd()
    {
        Skip.IfNot(torch.cuda.is_available(), "CUDA is not available on this machine (torch.cuda.is_available() is false)");
        using var data = BarsAndStripesData(40, ScalarType.Float32);
        using var gpuData = data.cuda();
        using var g = new Generator(3, torch.CUDA);
        using var rbm = boltzmann.RBM(9, 16, device: torch.CUDA, generator: g);
        using var t = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 5, BatchSize = 14, Persistent = true, LearningRate = 0.03 }, generator: g);
        var history = t.Fit(gpuData);
        Assert.Equal(DeviceType.CUDA, t.PersistentChains!.device_type);
        Assert.Equal(DeviceType.CUDA, rbm.weight.grad!.device_type);
        Assert.All(history, h => Assert.True(double.IsFinite(h.ReconstructionError!.Value)));
    }

    /// <summary>An IProgress that runs the callback synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

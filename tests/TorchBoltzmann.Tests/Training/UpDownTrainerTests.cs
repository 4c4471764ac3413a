using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

public class UpDownTrainerTests
{
    private static DBN RandomDbn(int[] sizes, int classes, ulong seed, double std = 0.5)
    {
        using var g = new Generator(seed);
        var dbn = boltzmann.DBN(sizes, classes, dtype: ScalarType.Float64, generator: g);
        using (torch.no_grad())
            foreach (var p in dbn.parameters()) p.normal_(0, std, g);
        return dbn;
    }

    private static Tensor RandomBinary(int n, int width, ulong seed)
    {
        using var g = new Generator(seed);
        using var u = torch.rand(n, width, dtype: ScalarType.Float64, generator: g);
        return u.lt(0.5).to_type(ScalarType.Float64);
    }

    private static Dictionary<string, Tensor> Snapshot(DBN dbn)
        => dbn.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());

    /// <summary>[u &lt; p], u drawn here from <paramref name="g"/> as the library's Bernoulli units draw it.</summary>
    private static Tensor Draw(Tensor p, Generator g) => torch.rand(p.shape, dtype: p.dtype, generator: g).lt(p).to_type(p.dtype);

    /// <summary>
    /// One up-down step on a 5-4-3-3 DBN with 2 labels (float64, batch of 8, k = 2): the test replays the step's random
    /// draws from a generator of the same seed in the order the trainer documents, computes each phase's statistics from
    /// the raw tensors, and requires the change of every parameter to be η times them (the first SGD step with momentum
    /// moves by η·g exactly), within 1e-12. It also requires each phase to raise the log-probability its statistics are the
    /// gradient of: the generative weights' log p(s^l | s^{l+1}) of the wake states, the recognition weights'
    /// log q(d^{l+1} | d^l) of the sleep states.
    /// </summary>
    [Fact]
    public void Step_MovesEachWeightSet_AsItsPhaseStatisticsSay()
    {
        const double eta = 0.05;
        const int k = 2, b = 8;
        const ulong seed = 77;
        using var dbn = RandomDbn([5, 4, 3, 3], 2, seed: 21);
        using var v = RandomBinary(b, 5, seed: 22);
        using var labels = torch.tensor(new long[] { 0, 1, 1, 0, 1, 0, 0, 1 });
        dbn.untie();
        using (var g = new Generator(23))
        using (torch.no_grad())
            foreach (var p in dbn.recognition!.parameters()) p.normal_(0, 0.5, g);   // the two weight sets differ
        var before = Snapshot(dbn);

        using (var trainer = new UpDownTrainer(dbn, new UpDownOptions { LearningRate = eta, Momentum = 0.5 }, new Generator(seed)))
            Assert.True(trainer.Step(v, labels, k));

        using var scope = torch.NewDisposeScope();
        var after = dbn.state_dict();
        Tensor W(string key) => before[key];
        using var gen = new Generator(seed);
        var y = torch.nn.functional.one_hot(labels, 2).to_type(ScalarType.Float64);
        // Wake: s¹ ~ σ(R₀v + r₀), s² ~ σ(R₁s¹ + r₁).
        var s1 = Draw(torch.sigmoid(v.mm(W("recognition.0.weight").t()) + W("recognition.0.bias")), gen);
        var s2 = Draw(torch.sigmoid(s1.mm(W("recognition.1.weight").t()) + W("recognition.1.bias")), gen);
        // Top: k Gibbs steps from x⁰ = [s²; y]; labels drawn by inverse CDF from one uniform per row.
        var (wt, bt, ct) = (W("layers.2.weight"), W("layers.2.visible_bias"), W("layers.2.hidden_bias"));
        var x0 = torch.cat([s2, y], 1);
        var x = x0;
        Tensor labelProbs = y;
        for (int i = 0; i < k; i++)
        {
            var h = Draw(torch.sigmoid(x.mm(wt.t()) + ct), gen);
            var net = h.mm(wt) + bt;
            var features = Draw(torch.sigmoid(net.narrow(1, 0, 3)), gen);
            labelProbs = torch.softmax(net.narrow(1, 3, 2), 1);
            var u = torch.rand(b, 1, dtype: ScalarType.Float64, generator: gen);
            var idx = labelProbs.cumsum(1).lt(u).sum(1).clamp_max(1);
            x = torch.cat([features, torch.nn.functional.one_hot(idx, 2).to_type(ScalarType.Float64)], 1);
        }
        var xk = torch.cat([x.narrow(1, 0, 3), labelProbs], 1);
        // Sleep: d² = sampled top features, d¹ ~ σ(b₁ + W₁ᵀd²), d⁰ = σ(b₀ + W₀ᵀd¹).
        var d2 = xk.narrow(1, 0, 3);
        var d1 = Draw(torch.sigmoid(d2.mm(W("layers.1.weight")) + W("layers.1.visible_bias")), gen);
        var d0 = torch.sigmoid(d1.mm(W("layers.0.weight")) + W("layers.0.visible_bias"));

        void Moved(string key, Tensor statistic)
        {
            var delta = after[key] - before[key];
            var expected = statistic * eta;
            double gap = (delta - expected).abs().max().ToDouble();
            Assert.True(gap < 1e-12, $"{key}: |Δ − η·statistic| = {gap:E2}");
            Assert.True(expected.abs().max().ToDouble() > 1e-4, $"{key}: the statistic is not trivially zero");
        }

        // Wake statistics of the generative weights: s^{l+1}ᵀ(s^l − p^l)/B and mean(s^l − p^l).
        foreach (var (l, lower, upper) in new[] { (0, v, s1), (1, s1, s2) })
        {
            var e = lower - torch.sigmoid(upper.mm(W($"layers.{l}.weight")) + W($"layers.{l}.visible_bias"));
            Moved($"layers.{l}.weight", upper.t().mm(e) / b);
            Moved($"layers.{l}.visible_bias", e.mean([0]));
            Assert.True(DbnTestUtil.Same(after[$"layers.{l}.hidden_bias"], before[$"layers.{l}.hidden_bias"]), $"layers.{l}.hidden_bias is not trained");
        }
        // CD statistics of the top associative memory.
        var ph0 = torch.sigmoid(x0.mm(wt.t()) + ct);
        var phk = torch.sigmoid(xk.mm(wt.t()) + ct);
        Moved("layers.2.weight", (ph0.t().mm(x0) - phk.t().mm(xk)) / b);
        Moved("layers.2.visible_bias", (x0 - xk).mean([0]));
        Moved("layers.2.hidden_bias", (ph0 - phk).mean([0]));
        // Sleep statistics of the recognition weights: (d^{l+1} − q^{l+1})ᵀd^l/B and mean(d^{l+1} − q^{l+1}).
        foreach (var (l, lower, upper) in new[] { (0, d0, d1), (1, d1, d2) })
        {
            var e = upper - torch.sigmoid(lower.mm(W($"recognition.{l}.weight").t()) + W($"recognition.{l}.bias"));
            Moved($"recognition.{l}.weight", e.t().mm(lower) / b);
            Moved($"recognition.{l}.bias", e.mean([0]));
        }

        // Each phase raised the log-probability of its own states: log p(x | z) = Σ x log σ(a) + (1 − x) log σ(−a).
        static double LogBernoulli(Tensor x, Tensor net)
            => (x * nn.functional.logsigmoid(net) + (1 - x) * nn.functional.logsigmoid(-net)).sum().ToDouble();
        foreach (var (l, lower, upper) in new[] { (0, v, s1), (1, s1, s2) })
        {
            double was = LogBernoulli(lower, upper.mm(before[$"layers.{l}.weight"]) + before[$"layers.{l}.visible_bias"]);
            double now = LogBernoulli(lower, upper.mm(after[$"layers.{l}.weight"]) + after[$"layers.{l}.visible_bias"]);
            Assert.True(now > was, $"wake, layer {l}: log p_gen fell from {was} to {now}");
        }
        foreach (var (l, lower, upper) in new[] { (0, d0, d1), (1, d1, d2) })
        {
            double was = LogBernoulli(upper, lower.mm(before[$"recognition.{l}.weight"].t()) + before[$"recognition.{l}.bias"]);
            double now = LogBernoulli(upper, lower.mm(after[$"recognition.{l}.weight"].t()) + after[$"recognition.{l}.bias"]);
            Assert.True(now > was, $"sleep, layer {l}: log q_rec fell from {was} to {now}");
        }
        foreach (var t in before.Values) t.Dispose();
    }

    /// <summary>
    /// <see cref="UpDownOptions.TopLearningRate"/>: equal to the learning rate it is the one-rate run bit for bit (two
    /// parameter groups, the same steps); 0 leaves the top RBM's weight and biases exactly as they were over three steps
    /// while the lower layers' generative and recognition weights move; a negative or infinite value is refused.
    /// </summary>
    [Fact]
    public void TopLearningRate_StepsTheTopMemoryAlone()
    {
        using var v = RandomBinary(8, 5, seed: 22);
        using var labels = torch.tensor(new long[] { 0, 1, 1, 0, 1, 0, 0, 1 });
        Dictionary<string, Tensor> Run(UpDownOptions options)
        {
            using var dbn = RandomDbn([5, 4, 3, 3], 2, seed: 21);
            using (var trainer = new UpDownTrainer(dbn, options, new Generator(24)))
                for (int i = 0; i < 3; i++) Assert.True(trainer.Step(v, labels, 2));
            return Snapshot(dbn);
        }
        var one = Run(new UpDownOptions { LearningRate = 0.05, Momentum = 0.5 });
        var same = Run(new UpDownOptions { LearningRate = 0.05, TopLearningRate = 0.05, Momentum = 0.5 });
        var frozen = Run(new UpDownOptions { LearningRate = 0.05, TopLearningRate = 0, Momentum = 0.5 });
        Dictionary<string, Tensor> start;
        using (var dbn = RandomDbn([5, 4, 3, 3], 2, seed: 21)) { dbn.untie(); start = Snapshot(dbn); }
        Assert.Equal(one.Keys.OrderBy(k => k), same.Keys.OrderBy(k => k));
        foreach (var (key, t) in one) Assert.True(DbnTestUtil.Same(t, same[key]), $"{key} differs with TopLearningRate = LearningRate");
        foreach (var key in new[] { "layers.2.weight", "layers.2.visible_bias", "layers.2.hidden_bias" })
            Assert.True(DbnTestUtil.Same(start[key], frozen[key]), $"{key} moved with TopLearningRate = 0");
        foreach (var key in new[] { "layers.0.weight", "recognition.0.weight", "layers.1.weight", "recognition.1.weight" })
            Assert.False(DbnTestUtil.Same(start[key], frozen[key]), $"{key} did not move");
        Assert.Throws<ArgumentOutOfRangeException>(() => new UpDownOptions { TopLearningRate = -0.1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new UpDownOptions { TopLearningRate = double.PositiveInfinity }.Validate());
    }

    [Fact]
    public void Options_GibbsSchedule_IsThePapers_InThirdsOfTheRun()
    {
        var o = new UpDownOptions { Epochs = 300 };
        Assert.Equal([3, 6, 10], o.GibbsSchedule);
        Assert.Equal(3, o.GibbsStepsAt(0));
        Assert.Equal(3, o.GibbsStepsAt(99));
        Assert.Equal(6, o.GibbsStepsAt(100));
        Assert.Equal(6, o.GibbsStepsAt(199));
        Assert.Equal(10, o.GibbsStepsAt(200));
        Assert.Equal(10, o.GibbsStepsAt(299));
        var two = new UpDownOptions { Epochs = 2 };
        Assert.Equal([3, 6], new[] { two.GibbsStepsAt(0), two.GibbsStepsAt(1) });
        Assert.Throws<ArgumentOutOfRangeException>(() => new UpDownOptions { GibbsSchedule = [3, 0] }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new UpDownOptions { Momentum = 1 }.Validate());
    }

    /// <summary>Four binary prototypes of 16 pixels (each pair at Hamming distance 8), each example a prototype with 5 % of its pixels flipped.</summary>
    internal static (Tensor Data, Tensor Labels, Tensor Prototypes) Prototypes(int perClass, ulong seed)
    {
        using var scope = torch.NewDisposeScope();
        var proto = torch.tensor(new double[,]
        {
            { 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0 },
            { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1 },
            { 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0 },
            { 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1 },
        });
        using var g = new Generator(seed);
        var labels = torch.arange(4, dtype: ScalarType.Int64).repeat(perClass);
        var clean = proto.index_select(0, labels);
        var flip = torch.rand(clean.shape, dtype: ScalarType.Float64, generator: g).lt(0.05).to_type(ScalarType.Float64);
        var data = (clean - flip).abs();
        return (data.MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope(), proto.MoveToOuterDisposeScope());
    }

    /// <summary>The fraction of class-conditional samples (probabilities, thresholded at 0.5) nearest (Hamming) to their own class's prototype.</summary>
    internal static double JudgedAccuracy(DBN dbn, Tensor prototypes, int perClass, ulong seed)
    {
        using var scope = torch.NewDisposeScope();
        var labels = torch.arange(4, dtype: ScalarType.Int64).repeat_interleave(perClass);
        var samples = dbn.generate(4 * perClass, burn_in: 200, labels: labels, generator: new Generator(seed)).gt(0.5).to_type(ScalarType.Float64);
        var distances = torch.cdist(samples, prototypes, p: 1);
        return distances.argmin(1).eq(labels).to_type(ScalarType.Float64).mean().ToDouble();
    }

    private static double GenerativeAccuracy(DBN dbn, Tensor data, Tensor labels)
    {
        using var predicted = dbn.classify(data);
        using var eq = predicted.eq(labels);
        using var mean = eq.to_type(ScalarType.Float64).mean();
        return mean.ToDouble();
    }

    /// <summary>
    /// A short up-down run (9 epochs, k = 3, 6, 10 in thirds) on noisy copies of four prototypes, after a brief greedy
    /// pretraining, raises the judged accuracy of the DBN's class-conditional samples (nearest prototype, 100 per class,
    /// 200 Gibbs steps) by at least 0.03 and at least halves their judged error, and does not lower the generative
    /// classifier's accuracy on held-out examples by more than 0.02.
    /// </summary>
    [Fact]
    public void Fit_RaisesClassConditionalSamplesJudgedAccuracy_OnPrototypes()
    {
        var (data, labels, prototypes) = Prototypes(perClass: 100, seed: 31);
        var (test, testLabels, _) = Prototypes(perClass: 50, seed: 32);
        using var _d = data; using var _l = labels; using var _p = prototypes; using var _t = test; using var _tl = testLabels;
        using var dbn = boltzmann.DBN([16, 12, 12, 16], 4, dtype: ScalarType.Float64, generator: new Generator(33));
        new GreedyPretrainer(dbn, new DbnPretrainingOptions { Layer = new RbmTrainingOptions { Epochs = 5, BatchSize = 10, LearningRate = 0.1, Seed = 34, MetricsEvery = 0 } })
            .Fit(data, labels);
        double judgedBefore = JudgedAccuracy(dbn, prototypes, 100, seed: 35);
        double classifiedBefore = GenerativeAccuracy(dbn, test, testLabels);

        using var trainer = new UpDownTrainer(dbn, new UpDownOptions { Epochs = 9, BatchSize = 10, LearningRate = 0.05, Seed = 36 });
        var history = trainer.Fit(data, labels, test, testLabels);

        double judgedAfter = JudgedAccuracy(dbn, prototypes, 100, seed: 35);
        double classifiedAfter = GenerativeAccuracy(dbn, test, testLabels);
        Assert.Equal(9, history.Count);
        Assert.Equal([3, 6, 10], new[] { history[0].GibbsSteps, history[3].GibbsSteps, history[8].GibbsSteps });
        // Measured at these seeds: judged 0.925 → 0.973, generative classification 0.995 → 1.000.
        Assert.True(judgedAfter >= judgedBefore + 0.03 && 1 - judgedAfter <= 0.5 * (1 - judgedBefore), $"judged accuracy {judgedBefore:F3} → {judgedAfter:F3}");
        Assert.True(classifiedAfter >= classifiedBefore - 0.02, $"generative classification accuracy {classifiedBefore:F3} → {classifiedAfter:F3}");
        Assert.Equal(1 - classifiedAfter, history[^1].ValidationError!.Value, 12);
    }

    /// <summary>
    /// A run cancelled after its second epoch and continued from its checkpoint by a new trainer on a fresh copy of the
    /// pretrained DBN ends with every parameter bit-identical to an unbroken run, with the same metrics.
    /// </summary>
    [Fact]
    public void Fit_ResumedAfterInterruption_EndsBitIdenticalToAnUnbrokenRun()
    {
        using var dir = new TempDirectory();
        var (data, labels, _) = Prototypes(perClass: 20, seed: 41);
        var (held, heldLabels, _) = Prototypes(perClass: 5, seed: 42);
        var options = new UpDownOptions { Epochs = 4, BatchSize = 8, LearningRate = 0.05, Seed = 43 };

        using var unbroken = RandomDbn([16, 8, 8, 6], 4, seed: 44, std: 0.1);
        using (var t = new UpDownTrainer(unbroken, options) { CheckpointPath = dir.File("a.ckpt") })
        {
            var h = t.Fit(data, labels, held, heldLabels);
            Assert.Equal(4, h.Count);
        }

        using var broken = RandomDbn([16, 8, 8, 6], 4, seed: 44, std: 0.1);
        using var cts = new CancellationTokenSource();
        var stopAfterTwo = new CallbackProgress<LoopProgress<UpDownEpochMetrics>>(p => { if (p.EpochMetrics is { Epoch: 2 }) cts.Cancel(); });
        using (var t = new UpDownTrainer(broken, options) { CheckpointPath = dir.File("b.ckpt") })
            Assert.Throws<OperationCanceledException>(() => t.Fit(data, labels, held, heldLabels, stopAfterTwo, cts.Token));

        using var resumed = RandomDbn([16, 8, 8, 6], 4, seed: 44, std: 0.1);
        IReadOnlyList<UpDownEpochMetrics> history;
        using (var t = new UpDownTrainer(resumed, options) { CheckpointPath = dir.File("b.ckpt") })
        {
            history = t.Fit(data, labels, held, heldLabels);
            Assert.True(t.RestoredSeconds > 0);
        }
        Assert.Equal(4, history.Count);
        var a = unbroken.state_dict();
        foreach (var (key, tensor) in resumed.state_dict()) Assert.True(DbnTestUtil.Same(a[key], tensor), key);
        using (var t = new UpDownTrainer(unbroken, options) { CheckpointPath = dir.File("a.ckpt") })
        {
            var reference = t.Fit(data, labels, held, heldLabels);   // finished: returns the history
            Assert.Equal(reference.Select(m => (m.ValidationError, m.WakeReconstructionError, m.GibbsSteps)),
                         history.Select(m => (m.ValidationError, m.WakeReconstructionError, m.GibbsSteps)));
        }
        data.Dispose(); labels.Dispose(); held.Dispose(); heldLabels.Dispose();
    }

    /// <summary>The live-tensor count after a run does not grow with the number of batches (one dispose scope per batch; the chain's states replaced, not accumulated).</summary>
    [Fact]
    public void Fit_DoesNotLeakTensors_OverManyBatches()
    {
        var (small, smallLabels, _) = Prototypes(perClass: 5, seed: 71);    // 20 digits: 4 batches of 5
        var (large, largeLabels, _) = Prototypes(perClass: 20, seed: 72);   // 80 digits: 16 batches
        var (held, heldLabels, _) = Prototypes(perClass: 2, seed: 73);
        using var dbn = RandomDbn([16, 8, 8, 6], 4, seed: 74, std: 0.1);
        using var t = new UpDownTrainer(dbn, new UpDownOptions { Epochs = 1, BatchSize = 5 });
        t.Fit(small, smallLabels, held, heldLabels);   // warm-up: gradient and momentum buffers, the chain
        long a = TestUtil.LiveTensorsAfter(() => t.Fit(small, smallLabels, held, heldLabels));
        long b = TestUtil.LiveTensorsAfter(() => t.Fit(large, largeLabels, held, heldLabels));
        Assert.True(a == b, $"live tensors after 4 batches: {a}, after 16: {b}");
        Assert.True(b <= 0, $"a run left {b} tensors alive");
        foreach (var x in new[] { small, smallLabels, large, largeLabels, held, heldLabels }) x.Dispose();
    }

    [SkippableFact(DisplayName = "UpDownTrainerTests.Cuda_Fit_TrainsOnTheDevice (runs only where CUDA is available)")]
    public void Cuda_Fit_TrainsOnTheDevice()
    {
        Skip.IfNot(torch.cuda.is_available(), "CUDA is not available on this machine (torch.cuda.is_available() is false)");
        var (data, labels, _) = Prototypes(perClass: 10, seed: 81);
        using var dbn = RandomDbn([16, 8, 8, 6], 4, seed: 82, std: 0.1);
        dbn.to(torch.CUDA);
        using var g = new Generator(83, torch.CUDA);
        using var t = new UpDownTrainer(dbn, new UpDownOptions { Epochs = 2, BatchSize = 8 }, g);
        var history = t.Fit(data.cuda(), labels.cuda(), data.cuda(), labels.cuda());
        Assert.Equal(2, history.Count);
        Assert.All(dbn.parameters(), p => Assert.Equal(DeviceType.CUDA, p.device_type));
        Assert.All(dbn.parameters(), p => Assert.True(p.isfinite().all().ToBoolean()));
        data.Dispose(); labels.Dispose();
    }

    [Fact]
    public void Fit_Diverging_NamesEpochAndBatch()
    {
        var (data, labels, _) = Prototypes(perClass: 5, seed: 51);
        using var dbn = RandomDbn([16, 8, 8, 6], 4, seed: 52, std: 0.1);
        using (torch.no_grad()) dbn.layers[1].weight[0, 0] = double.NaN;
        using var trainer = new UpDownTrainer(dbn, new UpDownOptions { Epochs = 2, BatchSize = 4 });
        var e = Assert.Throws<TrainingDivergedException>(() => trainer.Fit(data, labels));
        Assert.Equal((1, 1), (e.Epoch, e.Batch));
        data.Dispose(); labels.Dispose();
    }

    [Fact]
    public void Fit_RefusesMissingOrUnexpectedLabels()
    {
        var (data, labels, _) = Prototypes(perClass: 5, seed: 61);
        using var dbn = RandomDbn([16, 8, 8, 6], 4, seed: 62, std: 0.1);
        using var trainer = new UpDownTrainer(dbn, new UpDownOptions { Epochs = 1 });
        Assert.Contains("labels", Assert.Throws<ArgumentException>(() => trainer.Fit(data, null)).Message);
        using var plain = RandomDbn([16, 8, 6], 0, seed: 63, std: 0.1);
        using var plainTrainer = new UpDownTrainer(plain, new UpDownOptions { Epochs = 1 });
        Assert.Contains("no label units", Assert.Throws<ArgumentException>(() => plainTrainer.Fit(data, labels)).Message);
        Assert.Single(plainTrainer.Fit(data, null));   // an unconditional DBN trains without labels
        data.Dispose(); labels.Dispose();
    }
}

using TorchBoltzmann.Data;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.IO;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

public sealed class GreedyPretrainerTests(DbnMnistFixture mnist) : IClassFixture<DbnMnistFixture>
{
    private static RbmTrainingOptions Quick(int epochs) => new() { Epochs = epochs, BatchSize = 50, MetricsEvery = 1, MetricsSamples = 500, Seed = 11 };

    [Fact]
    public void Options_ForEveryLayer_ReachesOverrides_AndWithLayer_ReplacesOneLayerOnly()
    {
        var o = new DbnPretrainingOptions { Layer = Quick(3), PerLayer = [null, Quick(10) with { K = 5 }] };
        var seeded = o.ForEveryLayer(l => l with { Seed = 99 });
        Assert.All(Enumerable.Range(0, 3), l => Assert.Equal(99UL, seeded.ForLayer(l).Seed));
        Assert.Equal((3, 1), (seeded.ForLayer(0).Epochs, seeded.ForLayer(0).K));
        Assert.Equal((10, 5), (seeded.ForLayer(1).Epochs, seeded.ForLayer(1).K));   // the override keeps its own settings
        Assert.Null(new DbnPretrainingOptions { Layer = Quick(3) }.ForEveryLayer(l => l).PerLayer);

        var top = o.WithLayer(2, Quick(7));
        Assert.Equal(3, top.PerLayer!.Count);
        Assert.Equal((3, 10, 7), (top.ForLayer(0).Epochs, top.ForLayer(1).Epochs, top.ForLayer(2).Epochs));
        Assert.Equal(5, top.ForLayer(1).K);
        Assert.Equal(2, o.WithLayer(0, Quick(1)).PerLayer!.Count);                      // existing overrides are kept
        Assert.Equal((1, 10), (o.WithLayer(0, Quick(1)).ForLayer(0).Epochs, o.WithLayer(0, Quick(1)).ForLayer(1).Epochs));
    }

    [Fact]
    public void Fit_OnMnist_LowersEachLayersReconstructionError()
    {
        using var data = mnist.BinaryTrain(3000);
        using var g = new Generator(5);
        using var dbn = boltzmann.DBN([784, 100, 50], generator: g);
        var stages = new List<string>();
        var history = new GreedyPretrainer(dbn, new DbnPretrainingOptions { Layer = Quick(3) })
            .Fit(data, progress: new CallbackProgress<TrainingProgress>(p => { if (p.EpochMetrics is not null) stages.Add(p.Stage); }));
        Assert.Equal(2, history.Count);
        for (int l = 0; l < 2; l++)
        {
            Assert.Equal(3, history[l].Count);
            double first = history[l][0].ReconstructionError!.Value, last = history[l][^1].ReconstructionError!.Value;
            Assert.True(last < 0.95 * first, $"layer {l + 1}: reconstruction error after epoch 1 {first:F3}, after epoch 3 {last:F3}");
        }
        Assert.Equal(["layer 1/2", "layer 1/2", "layer 1/2", "layer 2/2", "layer 2/2", "layer 2/2"], stages);
    }

    [Fact]
    public void Fit_LayerInputs_AreTheLowerRbmsForwardOfTheirInputs()
    {
        using var data = mnist.BinaryTrain(500);
        using var g = new Generator(6);
        using var dbn = boltzmann.DBN([784, 40, 30, 20], generator: g);
        var inputs = new Dictionary<int, Tensor>();
        var pretrainer = new GreedyPretrainer(dbn, new DbnPretrainingOptions { Layer = Quick(1) with { MetricsEvery = 0 }, PropagationBatchSize = 128 })
        {
            OnLayerInput = (l, x) => inputs[l] = x.clone(),
        };
        pretrainer.Fit(data);
        try
        {
            Assert.Equal(3, inputs.Count);
            Assert.True(DbnTestUtil.Same(inputs[0], data), "layer 1 trains on the data");
            for (int l = 1; l < 3; l++)
            {
                using var expected = dbn.layers[l - 1].forward(inputs[l - 1]);
                Assert.Equal(expected.shape, inputs[l].shape);
                TestUtil.AllClose(expected, inputs[l], 1e-6, $"input of layer {l + 1}");
                using var viaDbn = dbn.layer_input(data, l, batch_size: 128);
                Assert.True(DbnTestUtil.Same(viaDbn, inputs[l]), $"layer_input({l}) reproduces the pretrainer's input exactly");
            }
        }
        finally
        {
            foreach (var t in inputs.Values) t.Dispose();
        }
    }

    [Fact]
    public void Fit_WithInitialWeightStd_StartsEachRbmFromRbmMsInitialisation_ReproduciblyPerSeed()
    {
        using var data = mnist.BinaryTrain(200);
        // At the hook, the RBM about to train: its weights' std and mean, its largest |bias|.
        (double Std, double Mean, double MaxBias, Tensor W)[] Starts(DbnPretrainingOptions o)
        {
            using var g = new Generator(3);
            using var dbn = boltzmann.DBN([784, 60, 40, 30], generator: g);   // built with σ = 0.01
            var starts = new (double, double, double, Tensor)[3];
            new GreedyPretrainer(dbn, o)
            {
                OnLayerInput = (l, _) =>
                {
                    var r = dbn.layers[l];
                    using var b = torch.cat([r.visible_bias.abs(), r.hidden_bias.abs()]);
                    starts[l] = (r.weight.std().item<float>(), r.weight.mean().item<float>(), b.max().item<float>(), r.weight.detach().clone());
                },
            }.Fit(data);
            return starts;
        }
        var rbmM = new DbnPretrainingOptions { Layer = Quick(1) with { MetricsEvery = 0 }, InitialWeightStd = 0.1, InitVisibleBiasFromData = false };
        var a = Starts(rbmM);
        var again = Starts(rbmM);
        var otherSeed = Starts(rbmM with { Layer = rbmM.Layer with { Seed = 12 } });
        var guide = Starts(rbmM with { InitialWeightStd = null, InitVisibleBiasFromData = true });
        try
        {
            for (int l = 0; l < 3; l++)
            {
                // σ̂ of n ≥ 1,200 normal draws is within 10 % of σ (> 5 standard errors of 1/√(2n) ≈ 2 %).
                Assert.InRange(a[l].Std, 0.09, 0.11);
                Assert.InRange(a[l].Mean, -0.02, 0.02);
                Assert.Equal(0.0, a[l].MaxBias);   // b = c = 0, as rbm.m
                Assert.True(DbnTestUtil.Same(a[l].W, again[l].W), $"layer {l + 1}: the same seed draws the same weights");
                Assert.False(DbnTestUtil.Same(a[l].W, otherSeed[l].W), $"layer {l + 1}: another seed draws other weights");
            }
            using (var first = a[1].W.flatten().narrow(0, 0, 1200))
            using (var next = a[2].W.flatten())
                Assert.False(DbnTestUtil.Same(first, next), "each layer draws its own weights, not the same stream again");
            // Without it: the DBN's own weights (σ = 0.01) for the first layer, visible biases from the data.
            Assert.InRange(guide[0].Std, 0.009, 0.011);
            Assert.True(guide[0].MaxBias > 1, "visible biases set from the data");
        }
        finally
        {
            foreach (var s in new[] { a, again, otherSeed, guide }) foreach (var t in s) t.W.Dispose();
        }
        foreach (var bad in new[] { 0.0, -0.1, double.NaN, double.PositiveInfinity })
        {
            using var dbn = boltzmann.DBN([784, 6]);
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => new GreedyPretrainer(dbn, rbmM with { InitialWeightStd = bad }));
            Assert.Contains("InitialWeightStd must be positive and finite", e.Message);
        }
    }

    [Fact]
    public void Fit_PerLayerOverrides_AndSampledInputs_AreUsed()
    {
        using var data = mnist.BinaryTrain(300);
        using var dbn = boltzmann.DBN([784, 20, 10]);
        var opts = new DbnPretrainingOptions { Layer = Quick(1), PerLayer = [null, Quick(3) with { LearningRate = 0.05 }], SampleHiddenInputs = true };
        Tensor? second = null;
        var history = new GreedyPretrainer(dbn, opts) { OnLayerInput = (l, x) => { if (l == 1) second = x.clone(); } }.Fit(data);
        using (second)
        {
            Assert.Single(history[0]);
            Assert.Equal(3, history[1].Count);
            using var nonBinary = second!.ne(0).logical_and(second.ne(1));
            Assert.False(nonBinary.any().item<bool>(), "sampled inputs are binary");
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => new GreedyPretrainer(dbn, opts with { PerLayer = [null, null, null] }));
    }

    /// <summary>
    /// Pretraining killed before any one file operation of its per-layer checkpoint saves, for every operation of a
    /// two-layer run in turn: the checkpoint on disk is the last one whose weights were renamed into place (the
    /// previous layer's before that rename, the new one after it), a continued run trains exactly the layers it lacks
    /// and ends as the unbroken run (same weights, same metrics), and only the pair is left behind. (Two
    /// layers of one epoch: the first save has no checkpoint to replace, the second replaces one.)
    /// </summary>
    [Fact]
    public void Fit_CrashedAtEveryOperationOfItsLayerSaves_ContinuesFromTheLastWholeCheckpoint_AsAnUnbrokenRun()
    {
        using var data = SyntheticData.BarsAndStripes(4);   // 30 × 16
        var opts = new DbnPretrainingOptions
        {
            Layer = new RbmTrainingOptions { Epochs = 1, BatchSize = 10, MetricsEvery = 1, MetricsSamples = 30, Seed = 11 },
            SampleHiddenInputs = true,
        };
        DBN Fresh() { using var g = new Generator(5); return boltzmann.DBN([16, 8, 4], generator: g); }
        var dir = Directory.CreateTempSubdirectory("tbm-pretrain-crash-");
        var path = Path.Combine(dir.FullName, "dbn.pt");
        try
        {
            using var unbroken = Fresh();
            var expected = new GreedyPretrainer(unbroken, opts).Fit(data);
            var count = new CrashingFileOperations(0);
            using (var counted = Fresh()) Assert.True(count.Run(() => new GreedyPretrainer(counted, opts) { CheckpointPath = path }.Fit(data)));
            List<int> Commits(string file) => count.Log.Select((l, i) => (l, n: i + 1)).Where(x => x.l.StartsWith($"move .{file}.", StringComparison.Ordinal)).Select(x => x.n).ToList();
            var commits = Commits("dbn.pt");
            Assert.Equal(2, commits.Count);
            // Each layer's own run checkpoint (the RbmTrainer's, after its epoch) is committed before the layer joins dbn.pt.
            var layerCommits = new[] { Commits("dbn.layer1.pt"), Commits("dbn.layer2.pt") };
            for (int l = 0; l < 2; l++) Assert.True(layerCommits[l].Count > 0 && layerCommits[l].Max() < commits[l], $"layer {l + 1}'s checkpoint is written before the pretraining's");

            for (int n = 1; n <= count.Count; n++)
            {
                foreach (var f in dir.GetFiles()) f.Delete();
                var crash = new CrashingFileOperations(n);
                using (var crashed = Fresh())
                    Assert.False(crash.Run(() => new GreedyPretrainer(crashed, opts) { CheckpointPath = path }.Fit(data)), $"crash at {n}");
                int layersOnDisk = commits.Count(c => c < n);
                // A layer trains again unless the pretraining checkpoint or its own finished checkpoint holds it.
                int layersToTrain = Enumerable.Range(0, 2).Count(l => commits[l] >= n && layerCommits[l].All(c => c >= n));
                var what = $"crash at {n} ({crash.Log[^1]}), {layersOnDisk} layers saved";
                var stages = new HashSet<string>();
                using var continued = Fresh();
                var history = new GreedyPretrainer(continued, opts) { CheckpointPath = path }
                    .Fit(data, progress: new CallbackProgress<TrainingProgress>(p => stages.Add(p.Stage)));
                Assert.True(layersToTrain == stages.Count, $"{what}: trained {string.Join(", ", stages)}");
                DbnTestUtil.AssertSameParameters(unbroken, continued, what);
                Assert.Equal(expected.Select(l => l.Select(m => m.ReconstructionError).ToList()), history.Select(l => l.Select(m => m.ReconstructionError).ToList()));
                // Its saves removed the leftovers of the killed one: the run checkpoint alone, holding both layers.
                Assert.Equal(["dbn.pt"], dir.GetFiles().Select(f => f.Name).Order(StringComparer.Ordinal));
                Assert.Equal(2, RunCheckpoint.ReadRecord(path, "pretraining").Values["layers"]!.AsArray().Count);
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Fit_StoppedInALayer_ContinuesFromTheLayerCheckpoint_AsAnUnbrokenRun(bool classConditional)
    {
        using var data = mnist.BinaryTrain(300);
        using var labels = mnist.Train.Labels.narrow(0, 0, 300);
        using var heldOut = mnist.Train.Images.narrow(0, 300, 100);
        using var validation = Binarize.Threshold(heldOut);
        using var validationLabels = mnist.Train.Labels.narrow(0, 300, 100);
        // Sampled inputs: the continued run must replay the generator's draws for the layers it does not train. The
        // class-conditional case also joins labels at the top, overrides a layer's options, keeps the visible biases and
        // re-initialises each RBM before it trains (rbm.m's σ = 0.1), which the continued run must draw as the unbroken one did.
        var opts = classConditional
            ? new DbnPretrainingOptions { Layer = Quick(2), PerLayer = [null, Quick(1) with { LearningRate = 0.05 }, null], SampleHiddenInputs = true, InitVisibleBiasFromData = false, InitialWeightStd = 0.1 }
            : new DbnPretrainingOptions { Layer = Quick(2), SampleHiddenInputs = true };
        DBN Fresh() { using var g = new Generator(5); return boltzmann.DBN([784, 20, 12, 8], classConditional ? 10 : 0, generator: g); }
        IReadOnlyList<IReadOnlyList<RbmEpochMetrics>> Fit(DBN dbn, DbnPretrainingOptions o, string? path, IProgress<TrainingProgress>? progress = null, CancellationToken ct = default) =>
            new GreedyPretrainer(dbn, o) { CheckpointPath = path }.Fit(data, classConditional ? labels : null, validation, classConditional ? validationLabels : null, progress, ct);
        var dir = Directory.CreateTempSubdirectory("tbm-pretrain-");
        string path = Path.Combine(dir.FullName, "not-yet", "dbn.pt");   // the first checkpoint creates the directory
        try
        {
            using var unbroken = Fresh();
            var expected = Fit(unbroken, opts, null);

            // Stopped in layer 2: layer 1 is on disk.
            using (var stopped = Fresh())
            using (var cts = new CancellationTokenSource())
            {
                var progress = new CallbackProgress<TrainingProgress>(p => { if (p.Stage == "layer 2/3") cts.Cancel(); });
                Assert.ThrowsAny<OperationCanceledException>(() => Fit(stopped, opts, path, progress, cts.Token));
            }
            Assert.True(RunCheckpoint.IsRunCheckpoint(path));

            // Continued in a fresh DBN: layers 2 and 3 train, layer 1 comes from the file; all ends as the unbroken run.
            var stages = new HashSet<string>();
            using var continued = Fresh();
            var pretrainer = new GreedyPretrainer(continued, opts) { CheckpointPath = path };
            var history = pretrainer.Fit(data, classConditional ? labels : null, validation, classConditional ? validationLabels : null,
                new CallbackProgress<TrainingProgress>(p => stages.Add(p.Stage)));
            Assert.Equal(["layer 2/3", "layer 3/3"], stages.Order());
            DbnTestUtil.AssertSameParameters(unbroken, continued, "the same DBN");
            Assert.Equal(expected.Select(l => l.Select(m => m.ReconstructionError).ToList()), history.Select(l => l.Select(m => m.ReconstructionError).ToList()));
            Assert.Equal(expected.Select(l => l.Select(m => m.ValidationReconstructionError).ToList()), history.Select(l => l.Select(m => m.ValidationReconstructionError).ToList()));
            Assert.True(pretrainer.Seconds > history[0].Sum(m => m.TrainSeconds), "Seconds counts the restored layer's time too");

            // All layers on disk: nothing trains.
            stages.Clear();
            using (var again = Fresh())
            {
                Fit(again, opts, path, new CallbackProgress<TrainingProgress>(p => stages.Add(p.Stage)));
                Assert.Empty(stages);
                DbnTestUtil.AssertSameParameters(unbroken, again, "loaded, not retrained");
            }
            // Other options or data: refused, naming the difference, the DBN untouched.
            using (var other = Fresh())
            using (var initial = Fresh())
            {
                var e = Assert.Throws<CheckpointException>(() => Fit(other, opts with { SampleHiddenInputs = false }, path));
                Assert.Contains("\"SampleHiddenInputs\":true", e.Message);
                Assert.Contains("was written by another run: pretraining = ", e.Message);
                using var fewer = data.narrow(0, 0, 250);
                e = Assert.Throws<CheckpointException>(() => new GreedyPretrainer(other, opts) { CheckpointPath = path }
                    .Fit(fewer, classConditional ? labels.narrow(0, 0, 250) : null, validation, classConditional ? validationLabels : null));
                Assert.Contains("data = 300 training rows + 100 validation rows, SHA-256 ", e.Message);
                Assert.Contains("in the checkpoint, 250 training rows + 100 validation rows, SHA-256 ", e.Message);
                DbnTestUtil.AssertSameParameters(initial, other, "a refused checkpoint leaves the DBN as it was");
            }
            // Weights without a sidecar (left by an earlier version's interrupted save, or a sidecar deleted by hand): pretraining starts over.
            using (var initial = Fresh()) Checkpoint.Save(initial, path);
            File.Delete(Checkpoint.SidecarPath(path));
            stages.Clear();
            using (var restarted = Fresh())
            {
                Fit(restarted, opts, path, new CallbackProgress<TrainingProgress>(p => stages.Add(p.Stage)));
                Assert.Equal(3, stages.Count);
                DbnTestUtil.AssertSameParameters(unbroken, restarted, "pretrained again from the start");
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>
    /// Stopped inside a layer (after epoch 2 of 4 of layer 2): that layer's own run checkpoint is on disk beside the
    /// pretraining's, a continued run trains only epochs 3 and 4 of layer 2 (and layer 3), deletes the layer checkpoint once
    /// the layer is in the pretraining checkpoint, and ends as the unbroken run (weights, metrics), with CheckpointEvery 2.
    /// </summary>
    [Fact]
    public void Fit_StoppedInsideALayer_ContinuesFromThatLayersLastSavedEpoch_AsAnUnbrokenRun()
    {
        using var data = mnist.BinaryTrain(300);
        var opts = new DbnPretrainingOptions { Layer = Quick(4), SampleHiddenInputs = true };
        DBN Fresh() { using var g = new Generator(5); return boltzmann.DBN([784, 20, 12, 8], generator: g); }
        var dir = Directory.CreateTempSubdirectory("tbm-pretrain-inside-");
        string path = Path.Combine(dir.FullName, "dbn-pretrain.ckpt");
        string layer2 = GreedyPretrainer.LayerCheckpointPath(path, 1);
        Assert.Equal(Path.Combine(dir.FullName, "dbn-pretrain.layer2.ckpt"), layer2);
        try
        {
            using var unbroken = Fresh();
            var expected = new GreedyPretrainer(unbroken, opts).Fit(data);

            using (var stopped = Fresh())
            using (var cts = new CancellationTokenSource())
            {
                // Cancelled when epoch 3 of layer 2 starts: its checkpoint after epoch 2 (CheckpointEvery 2) is on disk.
                // Epoch 1 of layer 2 also sleeps 3 s, so that its restored time is seen in Seconds.
                bool slept = false;
                var progress = new CallbackProgress<TrainingProgress>(p =>
                {
                    if (p.Stage == "layer 2/3" && p.Epoch == 1 && !slept) { slept = true; Thread.Sleep(3000); }
                    if (p.Stage == "layer 2/3" && p.Epoch == 3) cts.Cancel();
                });
                Assert.ThrowsAny<OperationCanceledException>(() => new GreedyPretrainer(stopped, opts) { CheckpointPath = path, CheckpointEvery = 2 }
                    .Fit(data, progress: progress, cancellationToken: cts.Token));
            }
            Assert.True(File.Exists(layer2), "layer 2's checkpoint is on disk");
            Assert.False(File.Exists(GreedyPretrainer.LayerCheckpointPath(path, 0)), "layer 1's was deleted once layer 1 was in the pretraining checkpoint");
            Assert.Single(RunCheckpoint.ReadRecord(path, "pretraining").Values["layers"]!.AsArray());

            double layersSeconds = RunCheckpoint.ReadRecord(path, "pretraining").Values["seconds"]!.GetValue<double>();
            double layerTwoSeconds = RunCheckpoint.ReadRecord(layer2, "loop").Values["seconds"]!.GetValue<double>();
            Assert.True(layerTwoSeconds >= 3, $"layer 2's checkpoint records {layerTwoSeconds} s, with the 3 s sleep");
            var epochs = new HashSet<(string, int)>();
            using var continued = Fresh();
            var pretrainer = new GreedyPretrainer(continued, opts) { CheckpointPath = path, CheckpointEvery = 2 };
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var history = pretrainer.Fit(data, progress: new CallbackProgress<TrainingProgress>(p => { if (p.EpochMetrics is not null) epochs.Add((p.Stage, p.Epoch)); }));
            clock.Stop();
            Assert.Equal([("layer 2/3", 3), ("layer 2/3", 4), ("layer 3/3", 1), ("layer 3/3", 2), ("layer 3/3", 3), ("layer 3/3", 4)], epochs.Order());
            DbnTestUtil.AssertSameParameters(unbroken, continued, "the same DBN");
            Assert.Equal(expected.Select(l => l.Select(m => m.ReconstructionError).ToList()), history.Select(l => l.Select(m => m.ReconstructionError).ToList()));
            // Seconds = the restored layer's time + the restored epochs of layer 2 + this Fit's own time.
            Assert.InRange(pretrainer.Seconds, layersSeconds + layerTwoSeconds, layersSeconds + layerTwoSeconds + clock.Elapsed.TotalSeconds);
            Assert.Equal(["dbn-pretrain.ckpt"], dir.GetFiles().Select(f => f.Name).Order(StringComparer.Ordinal));
            using var bad = Fresh();
            Assert.Throws<ArgumentOutOfRangeException>(() => new GreedyPretrainer(bad, opts) { CheckpointPath = path, CheckpointEvery = 0 }.Fit(data));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>Captures the values of one section of a run checkpoint (what an earlier version's sidecar record held).</summary>
    private sealed class SectionValues(string name) : IStateful
    {
        public System.Text.Json.Nodes.JsonObject Values { get; private set; } = new();
        public string StateName => name;
        public void SaveState(StateSection section) { }
        public Action PrepareLoad(StateSection section) => () => Values = (System.Text.Json.Nodes.JsonObject)section.Values.DeepClone();
    }

    /// <summary>
    /// A pretraining checkpoint of the format before the run checkpoint (the DBN as a Checkpoint pair X.pt + X.json, the
    /// record {Tag, Layers, Seconds} in the sidecar's "training", as GreedyPretrainer wrote it with Checkpoint.Save) is
    /// continued from: the run trains only the layers left, ends as the unbroken run, and leaves the run checkpoint alone.
    /// The old pair is rebuilt here from a run checkpoint's own record and weights, so it carries this run's tag.
    /// </summary>
    [Fact]
    public void Fit_ContinuesFromACheckpointOfTheEarlierFormat_AsAnUnbrokenRun()
    {
        using var data = SyntheticData.BarsAndStripes(4);   // 30 × 16
        var opts = new DbnPretrainingOptions
        {
            Layer = new RbmTrainingOptions { Epochs = 1, BatchSize = 10, MetricsEvery = 1, MetricsSamples = 30, Seed = 11 },
            SampleHiddenInputs = true,
        };
        DBN Fresh() { using var g = new Generator(5); return boltzmann.DBN([16, 8, 6, 4], generator: g); }
        using var dir = new TorchBoltzmann.Tests.Data.TempDirectory();
        var path = dir.File("dbn.ckpt");
        using var unbroken = Fresh();
        var expected = new GreedyPretrainer(unbroken, opts).Fit(data);
        using (var stopped = Fresh())
        using (var cts = new CancellationTokenSource())
        {
            var progress = new CallbackProgress<TrainingProgress>(p => { if (p.Stage == "layer 2/3") cts.Cancel(); });
            Assert.ThrowsAny<OperationCanceledException>(() => new GreedyPretrainer(stopped, opts) { CheckpointPath = path }.Fit(data, progress: progress, cancellationToken: cts.Token));
        }

        var identity = RunCheckpoint.ReadRecord(path, "pretraining").Identity;
        var record = new SectionValues("pretraining");
        using (var layerOne = Fresh())
        {
            RunCheckpoint.Restore(path, "pretraining", identity, [record, new ModuleState("model", layerOne)]);
            var training = new System.Text.Json.Nodes.JsonObject
            {
                ["Tag"] = System.Text.Json.JsonSerializer.SerializeToNode(identity), ["Layers"] = record.Values["layers"]!.DeepClone(), ["Seconds"] = record.Values["seconds"]!.DeepClone(),
            };
            Checkpoint.Save(layerOne, Checkpoint.WeightsPath(path), training);
        }
        File.Delete(path);
        Assert.True(Checkpoint.Exists(path), "the pair of the earlier format beside the path");

        var stages = new HashSet<string>();
        using var continued = Fresh();
        var history = new GreedyPretrainer(continued, opts) { CheckpointPath = path }
            .Fit(data, progress: new CallbackProgress<TrainingProgress>(p => stages.Add(p.Stage)));
        Assert.Equal(["layer 2/3", "layer 3/3"], stages.Order());
        DbnTestUtil.AssertSameParameters(unbroken, continued, "continued from the earlier format");
        Assert.Equal(expected.Select(l => l.Select(m => m.ReconstructionError).ToList()), history.Select(l => l.Select(m => m.ReconstructionError).ToList()));
        Assert.Equal(["dbn.ckpt"], Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Fit_DoesNotLeakTensors_OverManyBatches()
    {
        using var dbn = boltzmann.DBN([9, 6, 4]);
        var opts = new DbnPretrainingOptions { Layer = new RbmTrainingOptions { Epochs = 1, BatchSize = 7, MetricsEvery = 1, MetricsSamples = 20 }, PropagationBatchSize = 16 };
        using var bas = SyntheticData.BarsAndStripes(3);
        using var small = bas.repeat(5, 1).to_type(ScalarType.Float32);   // 10 batches per layer
        using var large = bas.repeat(20, 1).to_type(ScalarType.Float32);  // 40 batches per layer
        var pretrainer = new GreedyPretrainer(dbn, opts);
        pretrainer.Fit(small);   // warm-up: gradient buffers
        long Live(Tensor d) => TestUtil.LiveTensorsAfter(() => pretrainer.Fit(d));
        long a = Live(small);
        long b = Live(large);
        Assert.True(a == b, $"live tensors after 10 batches per layer: {a}, after 40: {b}");
        Assert.True(b <= 0, $"a pretraining run left {b} tensors alive");
    }

    [Fact]
    public void ClassConditional_FreeEnergyClassifier_BeatsChanceByFar()
    {
        using var data = mnist.BinaryTrain(3000);
        using var labels = mnist.Train.Labels.narrow(0, 0, 3000);
        using var g = new Generator(8);
        using var dbn = boltzmann.DBN([784, 200, 300], n_classes: 10, generator: g);
        Assert.Equal(210, dbn.top.n_visible);
        new GreedyPretrainer(dbn, new DbnPretrainingOptions { Layer = Quick(4) with { MetricsEvery = 0 } }).Fit(data, labels);
        using var test = Binarize.Threshold(mnist.Test.Images);
        using var predicted = dbn.classify(test);
        var m = TorchBoltzmann.Evaluation.ClassificationMetrics.FromPredictions(predicted, mnist.Test.Labels);
        Assert.True(m.Accuracy >= 0.6, $"free-energy classification accuracy {m.Accuracy:P1} on 1000 test digits (chance 10 %)");
        using var logp = dbn.class_log_probs(test.narrow(0, 0, 5));
        using var total = logp.exp().sum(1);
        TestUtil.AllClose(torch.ones(5), total, 1e-5, "Σ_y p(y|x)");
    }

    [Fact]
    public void Fit_ClassConditionalWithoutLabels_Throws()
    {
        using var dbn = boltzmann.DBN([784, 20, 10], n_classes: 10);
        using var data = mnist.BinaryTrain(10);
        var ex = Assert.Throws<ArgumentException>(() => new GreedyPretrainer(dbn).Fit(data));
        Assert.Contains("labels", ex.Message);
    }

    [Fact]
    public void Fit_ClassConditional_BadLabels_AreRefusedBeforeTheFirstLayerTrains()
    {
        // Labels are joined only at the top layer; a wrong one must not cost the layers below it (nor their checkpoint).
        using var dbn = boltzmann.DBN([784, 20, 10], n_classes: 10);
        using var w0 = dbn.layers[0].weight.detach().clone();
        using var data = mnist.BinaryTrain(30);
        using var good = mnist.Train.Labels.narrow(0, 0, 30);
        using var shortLabels = mnist.Train.Labels.narrow(0, 0, 29);
        using var outOfRange = good.clone();
        using (var at3 = outOfRange[3]) at3.fill_(10);
        using var val = mnist.BinaryTrain(5);
        using var valShort = mnist.Train.Labels.narrow(0, 0, 4);
        var options = new DbnPretrainingOptions { Layer = new RbmTrainingOptions { Epochs = 1, BatchSize = 10, MetricsEvery = 0 } };
        var e1 = Assert.Throws<ArgumentException>(() => new GreedyPretrainer(dbn, options).Fit(data, shortLabels));
        Assert.Contains("labels: expected shape (30)", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => new GreedyPretrainer(dbn, options).Fit(data, outOfRange));
        Assert.Contains("labels: expected class indices in [0, 9], got values in [0, 10]", e2.Message);
        var e3 = Assert.Throws<ArgumentException>(() => new GreedyPretrainer(dbn, options).Fit(data, good, val, valShort));
        Assert.Contains("validationLabels: expected shape (5)", e3.Message);
        Assert.True(DbnTestUtil.Same(w0, dbn.layers[0].weight), "layer 1 did not train");
    }
}


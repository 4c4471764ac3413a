using TorchBoltzmann.Recipes;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

public sealed class FineTunerTests(DbnMnistFixture mnist) : IClassFixture<DbnMnistFixture>
{
    private static Linear Fc(Sequential s, string name) => (Linear)s.named_children().Single(c => c.name == name).module;

    [Fact]
    public void Build_CopiesTheRbmWeights_WithoutSharingThem()
    {
        using var g = new Generator(2);
        using var dbn = boltzmann.DBN([784, 30, 20], generator: g);
        using (torch.no_grad()) dbn.layers[1].hidden_bias.normal_(0, 1, g);
        using var clf = DbnClassifier.Build(dbn, 10, input_dropout: 0.2, hidden_dropout: 0.5, generator: g);
        Assert.Equal(["dropout_in", "fc1", "sigmoid1", "dropout1", "fc2", "sigmoid2", "dropout2", "out"], clf.named_children().Select(c => c.name));
        for (int l = 0; l < 2; l++)
        {
            var fc = Fc(clf, $"fc{l + 1}");
            Assert.True(DbnTestUtil.Same(fc.weight!, dbn.layers[l].weight), $"fc{l + 1}.weight = W");
            Assert.True(DbnTestUtil.Same(fc.bias!, dbn.layers[l].hidden_bias), $"fc{l + 1}.bias = c");
        }
        Assert.Equal(new long[] { 10, 20 }, Fc(clf, "out").weight!.shape);
        using var before = dbn.layers[0].weight.detach().clone();
        using (torch.no_grad()) Fc(clf, "fc1").weight!.add_(1.0);
        Assert.True(DbnTestUtil.Same(before, dbn.layers[0].weight), "changing the classifier left the DBN unchanged");

        // In eval mode (dropout off) the hidden part computes the DBN's up-pass exactly.
        using var x = mnist.BinaryTrain(4);
        using var enc = dbn.ToEncoder();
        using var viaEncoder = enc.forward(x);
        using var viaDbn = dbn.forward(x);
        TestUtil.AllClose(viaDbn, viaEncoder, 1e-6, "encoder output");
    }

    [Fact]
    public void Fit_On2000Digits_ReachesNinetyPercentOnTheTestDigits()
    {
        using var x = mnist.Train.Images.narrow(0, 0, 2000);
        using var y = mnist.Train.Labels.narrow(0, 0, 2000);
        using var g = new Generator(3);
        using var dbn = boltzmann.DBN([784, 256], generator: g);
        new GreedyPretrainer(dbn, new DbnPretrainingOptions { Layer = new RbmTrainingOptions { Epochs = 3, BatchSize = 20, MetricsEvery = 0, Seed = 4 } }).Fit(x);
        using var clf = DbnClassifier.Build(dbn, 10, generator: g);
        var epochs = new List<ClassifierEpochMetrics>();
        using var tuner = new FineTuner(clf, new ClassifierTrainingOptions { Epochs = 15, BatchSize = 20, ValidationCount = 0, Seed = 5 });
        var history = tuner.Fit(x, y, progress: new CallbackProgress<ClassifierProgress>(p => { if (p.EpochMetrics is { } m) epochs.Add(m); }));
        Assert.Equal(15, epochs.Count);
        Assert.True(epochs[^1].TrainLoss < epochs[0].TrainLoss, "training loss decreases");
        Assert.Null(history.BestValidationError);
        var test = tuner.Evaluate(mnist.Test.Images, mnist.Test.Labels);
        Assert.True(test.Accuracy >= 0.90, $"test accuracy {test.Accuracy:P1} on 1000 digits after fine-tuning on 2000");
        Assert.Equal(1000, test.Count);
        Assert.Equal(1000, test.ConfusionMatrix.Cast<int>().Sum());
        Assert.Equal(1000 - test.Errors, Enumerable.Range(0, 10).Sum(k => test.ConfusionMatrix[k, k]));
    }

    [Fact]
    public void Fit_WithEarlyStopping_RestoresTheBestValidationWeights()
    {
        using var x = mnist.Train.Images.narrow(0, 0, 1000);
        using var y = mnist.Train.Labels.narrow(0, 0, 1000);
        using var g = new Generator(9);
        // Random validation labels: the validation error wanders, so the last epoch is rarely the best one.
        using var vx = mnist.Train.Images.narrow(0, 1000, 300);
        using var vy = torch.randint(0, 10, new long[] { 300 }, generator: g);
        using var clf = DbnClassifier.Build([784, 32], 10, generator: g);
        using var tuner = new FineTuner(clf, new ClassifierTrainingOptions { Epochs = 30, BatchSize = 50, LearningRate = 0.5, Patience = 3 });
        var h = tuner.Fit(x, y, vx, vy);
        Assert.True(h.StoppedEarly == h.Epochs.Count < 30);
        Assert.Equal(h.Epochs.Single(e => e.Epoch == h.BestEpoch).ValidationError, h.BestValidationError);
        Assert.Equal(h.Epochs.Min(e => e.ValidationError), h.BestValidationError);
        var now = tuner.Evaluate(vx, vy);
        Assert.Equal(h.BestValidationError!.Value, now.ErrorRate, 12);
        Assert.True(h.RestoredBest == (h.BestEpoch != h.Epochs.Count));
        Assert.True(h.Epochs[1].LearningRate < h.Epochs[0].LearningRate, "learning rate decays");
    }

    [Fact]
    public void Fit_DefaultValidationSplit_HoldsOutTheLastExamples()
    {
        using var x = mnist.Train.Images.narrow(0, 200, 150);
        using var y = mnist.Train.Labels.narrow(0, 200, 150);
        using var clf = DbnClassifier.Build([784, 8], 10);
        using var tuner = new FineTuner(clf, new ClassifierTrainingOptions { Epochs = 1, ValidationCount = 50 });
        var batches = 0;
        var h = tuner.Fit(x, y, progress: new CallbackProgress<ClassifierProgress>(p => batches = p.Batches));
        Assert.Equal(1, batches);   // 100 training examples, batch 100
        Assert.NotNull(h.Epochs[0].ValidationError);
        Assert.Throws<ArgumentException>(() => new FineTuner(clf).Fit(x, y));   // 10 000 held out of 150
    }

    [Fact]
    public void Classifier_SavesAndLoads_ThroughCheckpoint()
    {
        using var dbn = boltzmann.DBN([784, 16, 12]);
        using var clf = DbnClassifier.Build(dbn, 10, 0.2, 0.5);
        var dir = Directory.CreateTempSubdirectory();
        try
        {
            var path = Path.Combine(dir.FullName, "clf.pt");
            Checkpoint.Save(clf, path);
            using var loaded = Checkpoint.Load<Sequential>(path);
            clf.eval();
            loaded.eval();
            using var x = mnist.Test.Images.narrow(0, 0, 8);
            using var a = clf.forward(x);
            using var b = loaded.forward(x);
            Assert.True(DbnTestUtil.Same(a, b), "loaded classifier reproduces the logits");
            using var rebuilt = DbnClassifier.Build([784, 16, 12], 10, 0.2, 0.5);
            var p2 = Path.Combine(dir.FullName, "raw.dat");
            clf.save(p2);
            rebuilt.load(p2);
            rebuilt.eval();
            using var c = rebuilt.forward(x);
            Assert.True(DbnTestUtil.Same(a, c), "module.save/load into an identically-built Sequential");
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Fit_HeadOnlyEpochs_FreezeTheBodyFirst_ThenTrainEverything()
    {
        using var x = mnist.Train.Images.narrow(0, 0, 400);
        using var y = mnist.Train.Labels.narrow(0, 0, 400);
        using var clf = DbnClassifier.Build([784, 16], 10);
        using var w0 = Fc(clf, "fc1").weight!.detach().clone();
        using var o0 = Fc(clf, "out").weight!.detach().clone();
        Tensor? afterHead = null, outAfterHead = null;
        using var tuner = new FineTuner(clf, new ClassifierTrainingOptions { Epochs = 3, HeadOnlyEpochs = 2, ValidationCount = 0, BatchSize = 50 });
        tuner.Fit(x, y, progress: new CallbackProgress<ClassifierProgress>(p =>
        {
            if (p.EpochMetrics is { Epoch: 2 })
            {
                afterHead = Fc(clf, "fc1").weight!.detach().clone();
                outAfterHead = Fc(clf, "out").weight!.detach().clone();
            }
        }));
        using var h = afterHead!;
        using var oh = outAfterHead!;
        Assert.True(DbnTestUtil.Same(w0, h), "the hidden layer is frozen during the head-only epochs");
        Assert.False(DbnTestUtil.Same(o0, oh), "the output layer trains during the head-only epochs");
        Assert.False(DbnTestUtil.Same(h, Fc(clf, "fc1").weight!), "the hidden layer trains afterwards");
        Assert.All(clf.parameters(), p => Assert.True(p.requires_grad, "requires_grad restored"));
        Assert.Throws<ArgumentException>(() => new FineTuner(nn.Linear(784, 10), new ClassifierTrainingOptions { HeadOnlyEpochs = 1, ValidationCount = 0 }).Fit(x, y));
    }

    /// <summary>A 784-32 preset with one CD epoch: the pipeline's plumbing in seconds.</summary>
    private static DbnClassifierPreset TinyPreset(ClassifierTrainingOptions fineTuning, int metricsEvery = 0) => DbnClassifierPreset.Quick with
    {
        LayerSizes = [784, 32], ClassConditional = false,
        Pretraining = new DbnPretrainingOptions { Layer = new RbmTrainingOptions { Epochs = 1, BatchSize = 50, MetricsEvery = metricsEvery, MetricsSamples = 100 } },
        FineTuning = fineTuning,
    };

    [Fact]
    public void DropoutPreset_PretrainsWithoutLabels_OnEveryTrainingDigit_AndTrainsOnThemAll()
    {
        // The preset as it is, shrunk in size and length only: its label setting and (absent) validation split are the
        // preset's own, as Hinton et al. (2012) pretrained (mnistclassify.m: no labels, all 60,000 digits).
        var d = DbnClassifierPreset.Dropout;
        Assert.False(d.ClassConditional);
        Assert.Equal(0, d.FineTuning.ValidationCount);
        // rbm.m's start (chosen on a validation split over two seeds): W ~ N(0, 0.1²), zero biases, and
        // mnistclassify.m's 50 CD-1 epochs per layer.
        Assert.Equal((0.1, false, 50), (d.Pretraining.InitialWeightStd, d.Pretraining.InitVisibleBiasFromData, d.Pretraining.Layer.Epochs));
        // The rate chosen on a validation split: η = 1 × 0.998^epoch on every parameter (inverted
        // convention), over the paper's constant η = 1 read in its non-inverted convention. As Hinton et al. (2012): no
        // weight decay, no max-norm constraint; momentum 0.5 → 0.99 over 500 epochs, dampened; 1,000 epochs of 100.
        Assert.Equal(DropoutConvention.Inverted, d.FineTuning.DropoutConvention);
        Assert.Equal((1.0, 0.998, 0.0, 0.0), (d.FineTuning.LearningRate, d.FineTuning.LearningRateDecay, d.FineTuning.WeightDecay, d.FineTuning.MaxNorm));
        Assert.Equal((0.5, 0.99, 500, true, 1000, 100), (d.FineTuning.InitialMomentum, d.FineTuning.Momentum, d.FineTuning.MomentumRampEpochs, d.FineTuning.DampenMomentum, d.FineTuning.Epochs, d.FineTuning.BatchSize));
        var preset = d with
        {
            LayerSizes = [784, 24, 16],
            Pretraining = d.Pretraining with { Layer = d.Pretraining.Layer with { Epochs = 1, MetricsEvery = 0 } },
            FineTuning = d.FineTuning with { Epochs = 2 },
        };
        using var x = mnist.Train.Images.narrow(0, 0, 1000);
        using var y = mnist.Train.Labels.narrow(0, 0, 1000);
        var pretrainBatches = new Dictionary<string, int>();
        var fineTuneBatches = new List<int>();
        using var r = DbnClassifierPipeline.Run(preset, x, y, mnist.Test.Images, mnist.Test.Labels, seed: 5,
            pretrainProgress: new CallbackProgress<TrainingProgress>(p => pretrainBatches[p.Stage] = p.Batches),
            fineTuneProgress: new CallbackProgress<ClassifierProgress>(p => { if (p.EpochMetrics is not null) fineTuneBatches.Add(p.Batches); }));
        Assert.Equal(0, r.Dbn.n_classes);
        Assert.False(r.Dbn.is_class_conditional);
        Assert.Null(r.FreeEnergyTestError);
        // Both layers pretrained on all 1,000 digits in batches of 100, and fine-tuning saw them all too.
        Assert.Equal(2, pretrainBatches.Count);
        Assert.All(pretrainBatches.Values, b => Assert.Equal(10, b));
        Assert.Equal([10, 10], fineTuneBatches);
        Assert.All(r.FineTuning.Epochs, e => Assert.Null(e.ValidationError));
    }

    [Fact]
    public void Pipeline_DropoutOutsideItsRange_OrNaN_IsRefusedBeforePretraining()
    {
        using var x = mnist.Train.Images.narrow(0, 0, 300);
        using var y = mnist.Train.Labels.narrow(0, 0, 300);
        foreach (var (input, hidden) in new[] { (1.0, 0.5), (0.2, double.NaN), (-0.1, 0.0) })
        {
            var preset = TinyPreset(new ClassifierTrainingOptions { Epochs = 1, BatchSize = 50, ValidationCount = 100 }) with { InputDropout = input, HiddenDropout = hidden };
            int pretrainReports = 0;
            Assert.Throws<ArgumentOutOfRangeException>(() => DbnClassifierPipeline.Run(preset, x, y, mnist.Test.Images, mnist.Test.Labels,
                pretrainProgress: new CallbackProgress<TrainingProgress>(_ => pretrainReports++)));
            Assert.Equal(0, pretrainReports);
        }
        // NaN would have meant "no dropout" to Build's range test; it is refused there too.
        Assert.Throws<ArgumentOutOfRangeException>(() => DbnClassifier.Build([784, 10], 10, input_dropout: double.NaN));
        Assert.Throws<ArgumentOutOfRangeException>(() => DbnClassifier.Build([784, 10], 10, hidden_dropout: double.NaN));
    }

    [Fact]
    public void Pipeline_Seed_ReachesPerLayerPretrainingOptions()
    {
        // A preset whose first layer has its own options (with a seed of their own): the run's seed replaces it, so the
        // pipeline's DBN is the one GreedyPretrainer trains with that seed on every layer.
        using var x = mnist.Train.Images.narrow(0, 0, 400);
        using var y = mnist.Train.Labels.narrow(0, 0, 400);
        var layer = new RbmTrainingOptions { Epochs = 1, BatchSize = 50, MetricsEvery = 0 };
        var preset = TinyPreset(new ClassifierTrainingOptions { Epochs = 1, BatchSize = 50, ValidationCount = 100 }) with
        {
            LayerSizes = [784, 16, 8],
            Pretraining = new DbnPretrainingOptions { Layer = layer, PerLayer = [layer with { Seed = 999, LearningRate = 0.05 }] },
        };
        using var r = DbnClassifierPipeline.Run(preset, x, y, mnist.Test.Images, mnist.Test.Labels, seed: 5);
        using var g = new Generator(5);
        using var dbn = boltzmann.DBN([784, 16, 8], generator: g);
        using var fit = x.narrow(0, 0, 300);
        using var val = x.narrow(0, 300, 100);
        new GreedyPretrainer(dbn, new DbnPretrainingOptions { Layer = layer with { Seed = 5 }, PerLayer = [layer with { Seed = 5, LearningRate = 0.05 }] }).Fit(fit, validation: val);
        for (int l = 0; l < 2; l++)
            Assert.True(DbnTestUtil.Same(dbn.layers[l].weight, r.Dbn.layers[l].weight), $"layer {l + 1} trained with the run's seed");
    }

    [Fact]
    public void Pipeline_Refit_TrainsAFreshClassifierOnAllDigits_ForTheChosenEpochs()
    {
        using var x = mnist.Train.Images.narrow(0, 0, 1200);
        using var y = mnist.Train.Labels.narrow(0, 0, 1200);
        var preset = TinyPreset(new ClassifierTrainingOptions { Epochs = 4, BatchSize = 50, ValidationCount = 200, Patience = 0 }) with { Refit = true };
        var stages = new List<(string stage, int batches)>();
        using var r = DbnClassifierPipeline.Run(preset, x, y, mnist.Test.Images, mnist.Test.Labels, seed: 3,
            fineTuneProgress: new CallbackProgress<ClassifierProgress>(p => { if (p.EpochMetrics is not null) stages.Add((p.Stage, p.Batches)); }));
        Assert.NotNull(r.Refit);
        Assert.NotNull(r.SelectedTest);
        Assert.Equal(r.FineTuning.BestEpoch, r.Refit!.Epochs.Count);
        Assert.All(r.Refit.Epochs, e => Assert.Null(e.ValidationError));
        // 1000 training digits in batches of 50 first, then all 1200.
        Assert.Equal(Enumerable.Repeat(20, 4), stages.Take(4).Select(s => s.batches));
        Assert.Equal(Enumerable.Repeat(24, r.FineTuning.BestEpoch), stages.Skip(4).Select(s => s.batches));
        Assert.True(r.Test.Accuracy > 0.6, $"refitted classifier accuracy {r.Test.Accuracy:P1} (chance: 10 %)");
        using var again = r.Classifier.forward(mnist.Test.Images.narrow(0, 5, 1));
        Assert.Equal(10, again.shape[1]);
    }

    [Fact]
    public void Pipeline_StoppedDuringFineTuning_ContinuesWithoutPretrainingAgain_AndEndsAsAnUnbrokenRun()
    {
        using var x = mnist.Train.Images.narrow(0, 0, 600);
        using var y = mnist.Train.Labels.narrow(0, 0, 600);
        var preset = TinyPreset(new ClassifierTrainingOptions { Epochs = 4, BatchSize = 50, ValidationCount = 100, Patience = 0 }, metricsEvery: 1)
            with { InputDropout = 0.2, HiddenDropout = 0.5 };
        var dir = Directory.CreateTempSubdirectory("tbm-pipeline-");
        string stem = Path.Combine(dir.FullName, "run");
        DbnClassifierResult Run(DbnClassifierPreset p, string? checkpointStem, IProgress<TrainingProgress>? pretrain = null,
                                IProgress<ClassifierProgress>? fineTune = null, CancellationToken ct = default) =>
            DbnClassifierPipeline.Run(p, x, y, mnist.Test.Images, mnist.Test.Labels, seed: 5, null, pretrain, fineTune, ct, checkpointStem, checkpointEvery: 1);
        void AssertSame(DbnClassifierResult a, DbnClassifierResult b, string what)
        {
            DbnTestUtil.AssertSameParameters(a.Dbn, b.Dbn, $"{what}: the same DBN");
            Assert.True(a.FineTuning.Epochs.Select(e => e.TrainLoss).SequenceEqual(b.FineTuning.Epochs.Select(e => e.TrainLoss)),
                $"{what}: losses {string.Join(" ", a.FineTuning.Epochs.Select(e => e.TrainLoss.ToString("R")))} vs {string.Join(" ", b.FineTuning.Epochs.Select(e => e.TrainLoss.ToString("R")))}");
            DbnTestUtil.AssertSameParameters(a.Classifier, b.Classifier, $"{what}: the same classifier");
            Assert.Equal(a.Pretraining.SelectMany(l => l.Select(m => m.ReconstructionError)), b.Pretraining.SelectMany(l => l.Select(m => m.ReconstructionError)));
            Assert.Equal(a.Test.Errors, b.Test.Errors);
        }
        try
        {
            using var unbroken = Run(preset, null);

            // Stopped after fine-tuning epoch 2: the pretrained DBN and the fine-tuning state are on disk.
            using var cts = new CancellationTokenSource();
            Assert.ThrowsAny<OperationCanceledException>(() => Run(preset, stem, fineTune: new CallbackProgress<ClassifierProgress>(p =>
            {
                if (p.EpochMetrics?.Epoch == 2) cts.Cancel();
            }), ct: cts.Token));
            // The pretrained DBN is a run checkpoint; the pair of the earlier format (X-pretrained.pt + .json) is listed
            // too, so that a caller deleting the run's checkpoints deletes one left by an earlier version.
            string pretrainedFile = DbnClassifierPipeline.PretrainedCheckpointPath(stem);
            string oldWeights = Checkpoint.WeightsPath(pretrainedFile), oldSidecar = Checkpoint.SidecarPath(pretrainedFile);
            foreach (var f in new[] { pretrainedFile, DbnClassifierPipeline.FineTuningCheckpointPath(stem) })
                Assert.True(File.Exists(f), $"{f} written");
            Assert.Equal([pretrainedFile, oldWeights, oldSidecar, stem + "-pretrained.layer1.ckpt", stem + "-pretrained.layer2.ckpt",
                          DbnClassifierPipeline.FineTuningCheckpointPath(stem), DbnClassifierPipeline.RefitCheckpointPath(stem)],
                DbnClassifierPipeline.CheckpointFiles(stem, pretrainsHere: true, layers: 2));
            Assert.Equal([DbnClassifierPipeline.FineTuningCheckpointPath(stem), DbnClassifierPipeline.RefitCheckpointPath(stem)],
                DbnClassifierPipeline.CheckpointFiles(stem, pretrainsHere: false, layers: 2));

            // Continued: no pretraining (no progress reported), and it ends exactly where the unbroken run ended.
            int pretrainReports = 0;
            using (var continued = Run(preset, stem, new CallbackProgress<TrainingProgress>(_ => pretrainReports++)))
                AssertSame(unbroken, continued, "continued");
            Assert.Equal(0, pretrainReports);

            // Only the pretrained DBN left: fine-tuning starts over from it, again as the unbroken run.
            File.Delete(DbnClassifierPipeline.FineTuningCheckpointPath(stem));
            using (var refined = Run(preset, stem, new CallbackProgress<TrainingProgress>(_ => pretrainReports++)))
                AssertSame(unbroken, refined, "from the pretrained DBN");
            Assert.Equal(0, pretrainReports);

            // A DBN pretrained another way is refused, naming what differs, and stays on disk.
            var other = preset with { Pretraining = preset.Pretraining with { Layer = preset.Pretraining.Layer with { Epochs = 2 } } };
            var e = Assert.Throws<CheckpointException>(() => Run(other, stem));
            Assert.Contains("was written by another run: pretraining = ", e.Message);
            Assert.Contains("\"Epochs\":1", e.Message);
            using var fewer = x.narrow(0, 0, 500);
            using var fewerY = y.narrow(0, 0, 500);
            e = Assert.Throws<CheckpointException>(() => DbnClassifierPipeline.Run(preset, fewer, fewerY, mnist.Test.Images, mnist.Test.Labels, seed: 5, checkpointStem: stem));
            Assert.Contains("data = 500 training rows + 100 validation rows, SHA-256 ", e.Message);
            Assert.Contains(" in the checkpoint, 400 training rows + 100 validation rows, SHA-256 ", e.Message);
            Assert.True(File.Exists(pretrainedFile));

            // A record that is not a pipeline's: refused as a checkpoint error naming the file and the section.
            var bytes = File.ReadAllBytes(pretrainedFile);
            var parts = TorchBoltzmann.Tests.Fuzz.RunCheckpointFuzzTests.Split(bytes);
            var header = System.Text.Json.Nodes.JsonNode.Parse(parts.Header)!.AsObject();
            var record = header["sections"]!.AsArray().Select(n => n!.AsObject()).First(n => n["name"]!.GetValue<string>() == "pretraining");
            record["values"]!["layers"] = "not a record";
            File.WriteAllBytes(pretrainedFile, TorchBoltzmann.Tests.Fuzz.RunCheckpointFuzzTests.Join(parts.Magic, parts.Version, header.ToJsonString(), parts.Rest));
            e = Assert.Throws<CheckpointException>(() => Run(preset, stem));
            Assert.Contains($"'{pretrainedFile}': section 'pretraining': the layers' metrics are unreadable", e.Message);
            File.WriteAllBytes(pretrainedFile, bytes);

            // Weights of the earlier format without their sidecar (a save interrupted between the two files): pretrained
            // again, not refused, and saved in the new format.
            File.Delete(pretrainedFile);
            File.Delete(DbnClassifierPipeline.FineTuningCheckpointPath(stem));
            using (var initial = boltzmann.DBN([784, 20, 10]))
            {
                Checkpoint.Save(initial, oldWeights);
                File.Delete(oldSidecar);
            }
            using (var again = Run(preset, stem, new CallbackProgress<TrainingProgress>(_ => pretrainReports++)))
                AssertSame(unbroken, again, "pretrained again");
            Assert.True(pretrainReports > 0, "pretraining ran");
            Assert.True(RunCheckpoint.IsRunCheckpoint(pretrainedFile), "and saved again");

            // Per-layer pretraining overrides are part of the fine-tuning checkpoint's identity: with the pretrained DBN
            // gone, a run whose RBM trains with CD-2 pretrains again and refuses the CD-1 run's fine-tuning state.
            File.Delete(DbnClassifierPipeline.FineTuningCheckpointPath(stem));
            using (var cts2 = new CancellationTokenSource())
                Assert.ThrowsAny<OperationCanceledException>(() => Run(preset, stem, fineTune: new CallbackProgress<ClassifierProgress>(p =>
                {
                    if (p.EpochMetrics?.Epoch == 2) cts2.Cancel();
                }), ct: cts2.Token));
            File.Delete(pretrainedFile);
            var cd2 = preset with { Pretraining = preset.Pretraining with { PerLayer = [preset.Pretraining.Layer with { K = 2 }] } };
            e = Assert.Throws<CheckpointException>(() => Run(cd2, stem));
            Assert.Contains("pretraining = here: ", e.Message);
            Assert.Contains("per layer: [", e.Message);
            Assert.Contains("K = 2", e.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Pipeline_WithoutValidation_TrainsOnEveryDigit_AndRestoresNothing()
    {
        using var x = mnist.Train.Images.narrow(0, 0, 600);
        using var y = mnist.Train.Labels.narrow(0, 0, 600);
        var preset = TinyPreset(new ClassifierTrainingOptions { Epochs = 3, BatchSize = 50, ValidationCount = 0, Patience = 0 }, metricsEvery: 1);
        var batches = new List<int>();
        using var r = DbnClassifierPipeline.Run(preset, x, y, mnist.Test.Images, mnist.Test.Labels, seed: 4,
            fineTuneProgress: new CallbackProgress<ClassifierProgress>(p => { if (p.EpochMetrics is not null) batches.Add(p.Batches); }));
        Assert.Equal([12, 12, 12], batches);                    // all 600 digits, batches of 50
        Assert.All(r.FineTuning.Epochs, e => Assert.Null(e.ValidationError));
        Assert.Null(r.FineTuning.BestValidationError);
        Assert.False(r.FineTuning.RestoredBest, "no validation: nothing to restore");
        var pre = r.Pretraining[0][0];
        Assert.True(pre.ReconstructionError is { } re && double.IsFinite(re), "pretraining metrics on the training digits");
        Assert.Null(pre.ValidationReconstructionError);        // no validation digits: none measured (not NaN)

        using var clf = DbnClassifier.Build([784, 8], 10);
        using var tuner = new FineTuner(clf, new ClassifierTrainingOptions { Epochs = 1 });
        using var none = x.narrow(0, 0, 0);
        using var noLabels = y.narrow(0, 0, 0);
        var e = Assert.Throws<ArgumentException>(() => tuner.Fit(x, y, none, noLabels));
        Assert.Contains("M ≥ 1", e.Message);
    }

    [Fact]
    public void Fit_WithIterateAveraging_ReportsTheRawIteratesValidationErrorBesideTheAveragedOne()
    {
        using var x = mnist.Train.Images.narrow(0, 0, 300);
        using var y = mnist.Train.Labels.narrow(0, 0, 300);
        using var vx = mnist.Test.Images.narrow(0, 0, 300);
        using var vy = mnist.Test.Labels.narrow(0, 0, 300);
        // No shuffling and no dropout: the raw iterates θ_e are the same with and without averaging, which only reads them.
        IReadOnlyList<ClassifierEpochMetrics> Run(double average)
        {
            using var g = new Generator(5);
            using var clf = DbnClassifier.Build([784, 16], 10, generator: g);
            using (torch.no_grad())
            {
                Fc(clf, "fc1").weight!.normal_(0, 0.1, g);
                Fc(clf, "fc1").bias!.zero_();
            }
            using var tuner = new FineTuner(clf, new ClassifierTrainingOptions
            {
                Epochs = 6, BatchSize = 50, ValidationCount = 0, Shuffle = false, LearningRate = 0.5, LearningRateDecay = 1,
                AverageDecay = average, Patience = 0,
            });
            return tuner.Fit(x, y, vx, vy).Epochs;
        }
        var plain = Run(0);
        var averaged = Run(0.9);
        Assert.All(plain, e => Assert.Null(e.RawValidationError));
        Assert.Equal(plain.Select(e => e.ValidationError), averaged.Select(e => e.RawValidationError));
        // The averaged weights are another model: their errors differ from the raw ones in at least one epoch.
        Assert.Contains(averaged, e => e.ValidationError != e.RawValidationError);
    }

    [Fact]
    public void Fit_WithIterateAveraging_EndsWithTheMovingAverageOfTheIterates()
    {
        using var x = mnist.Train.Images.narrow(0, 0, 100);
        using var y = mnist.Train.Labels.narrow(0, 0, 100);
        const double a = 0.75;
        // One full batch per epoch, no shuffling, constant rate: epoch e's weights θ_e are reproducible run to run.
        Tensor Weights(int epochs, double average)
        {
            using var g = new Generator(21);
            using var clf = DbnClassifier.Build([784, 12], 10, generator: g);
            // Both fc1 parameters from the seeded generator: nn.Linear's own initialisation draws from the global one.
            using (torch.no_grad())
            {
                Fc(clf, "fc1").weight!.normal_(0, 0.1, g);
                Fc(clf, "fc1").bias!.normal_(0, 0.1, g);
            }
            using var tuner = new FineTuner(clf, new ClassifierTrainingOptions
            {
                Epochs = epochs, BatchSize = 100, ValidationCount = 0, Shuffle = false, LearningRateDecay = 1, AverageDecay = average,
            });
            tuner.Fit(x, y);
            return Fc(clf, "fc1").weight!.detach().clone();
        }
        using var w0 = Weights(0, 0);
        using var w1 = Weights(1, 0);
        using var w2 = Weights(2, 0);
        using var averaged = Weights(2, a);
        // θ̄₀ = θ₀, θ̄₁ = aθ₀ + (1−a)θ₁, θ̄₂ = aθ̄₁ + (1−a)θ₂.
        using var expected = (a * a) * w0 + (a * (1 - a)) * w1 + (1 - a) * w2;
        TestUtil.AllClose(expected, averaged, 1e-6, "averaged fc1.weight");
        Assert.False(DbnTestUtil.Same(w2, averaged), "the averaged weights differ from the last iterate");
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClassifierTrainingOptions { AverageDecay = 1 }.Validate());
    }

    /// <summary>A 784-12-10 classifier whose every parameter comes from a seeded generator (so two builds are equal).</summary>
    private static Sequential SeededClassifier(int seed, double inputDropout = 0, double hiddenDropout = 0)
    {
        using var g = new Generator((ulong)seed);
        var clf = DbnClassifier.Build([784, 12], 10, input_dropout: inputDropout, hidden_dropout: hiddenDropout, generator: g);
        using (torch.no_grad())
            foreach (var p in clf.parameters()) p.normal_(0, 0.1, g);
        return clf;
    }

    [Fact]
    public void Fit_MomentumRamp_WithDampening_TakesTheStepsOfTheSchedule()
    {
        using var x = mnist.Train.Images.narrow(0, 0, 100);
        using var y = mnist.Train.Labels.narrow(0, 0, 100);
        const double lr = 0.5, m0 = 0.5, mEnd = 0.9;
        // Three epochs of one full batch each, the momentum ramped over 2 epochs: m = 0.5, 0.7, 0.9.
        double[] m = [m0, (m0 + mEnd) / 2, mEnd];
        List<Tensor> Trained(bool dampen)
        {
            using var clf = SeededClassifier(5);
            using var tuner = new FineTuner(clf, new ClassifierTrainingOptions
            {
                Epochs = 3, BatchSize = 100, ValidationCount = 0, Shuffle = false, LearningRate = lr, LearningRateDecay = 1,
                InitialMomentum = m0, Momentum = mEnd, MomentumRampEpochs = 2, DampenMomentum = dampen,
            });
            for (int e = 0; e < 3; e++) Assert.Equal(m[e], tuner.MomentumAt(e), 12);
            Assert.Equal(mEnd, tuner.MomentumAt(10));
            tuner.Fit(x, y);
            return clf.parameters().Select(p => p.detach().clone()).ToList();
        }
        // By hand: v₁ = g₁ (PyTorch's first step), v_t = m_t v_{t−1} + (1 − τ_t) g_t with τ_t = m_t when dampened, 0 when
        // not; θ_t = θ_{t−1} − η v_t.
        List<Tensor> ByHand(bool dampen)
        {
            using var clf = SeededClassifier(5);
            clf.train();
            var ps = clf.parameters().ToList();
            List<Tensor>? v = null;
            for (int t = 0; t < 3; t++)
            {
                foreach (var p in ps) p.grad?.zero_();
                using (var loss = nn.functional.cross_entropy(clf.forward(x), y)) loss.backward();
                using var _ = torch.no_grad();
                var g = ps.Select(p => p.grad!.clone()).ToList();
                var next = v is null ? g : v.Zip(g, (vi, gi) => vi * m[t] + gi * (dampen ? 1 - m[t] : 1)).ToList();
                if (v is not null) foreach (var o in v.Concat(g)) o.Dispose();
                v = next;
                for (int i = 0; i < ps.Count; i++) ps[i].add_(v[i], alpha: -lr);
            }
            foreach (var o in v!) o.Dispose();
            return ps.Select(p => p.detach().clone()).ToList();
        }
        foreach (bool dampen in new[] { true, false })
        {
            var got = Trained(dampen);
            var want = ByHand(dampen);
            for (int i = 0; i < got.Count; i++) TestUtil.AllClose(want[i], got[i], 1e-5, $"parameter {i} (dampened: {dampen})");
            foreach (var t in got.Concat(want)) t.Dispose();
        }
    }

    [Fact]
    public void Fit_NaNInputs_OrLabelsOutsideTheLogits_AreRejectedBeforeTraining()
    {
        using var x = mnist.Train.Images.narrow(0, 0, 50).clone();
        using var y = mnist.Train.Labels.narrow(0, 0, 50).clone();
        using var clf = SeededClassifier(8);
        using var before = Fc(clf, "fc1").weight!.detach().clone();
        using var tuner = new FineTuner(clf, new ClassifierTrainingOptions { Epochs = 1, BatchSize = 50, ValidationCount = 10 });
        x[37, 100] = torch.tensor(float.NaN);
        var e = Assert.Throws<ArgumentException>(() => tuner.Fit(x, y));
        Assert.Contains("training inputs: expected finite values, got NaN or infinity (at row 37)", e.Message);
        x[37, 100] = torch.tensor(0f);
        x[45, 7] = torch.tensor(float.PositiveInfinity);   // the last 10 rows are held out: validation row 5
        e = Assert.Throws<ArgumentException>(() => tuner.Fit(x, y));
        Assert.Contains("validation inputs: expected finite values, got NaN or infinity (at row 5)", e.Message);
        x[45, 7] = torch.tensor(0f);
        y[3] = torch.tensor(10L);
        e = Assert.Throws<ArgumentException>(() => tuner.Fit(x, y));
        Assert.Contains("training labels: expected class indices in [0, 9] (the model returns 10 logits), got values in [0, 10]", e.Message);
        Assert.True(DbnTestUtil.Same(before, Fc(clf, "fc1").weight!), "nothing trained");
        Assert.True(clf.training, "training flag restored after the check's forward pass");
    }

    [Fact]
    public void Fit_Twice_StartsTheLearningRateScheduleFromTheInitialRateAgain()
    {
        using var x = mnist.Train.Images.narrow(0, 0, 100);
        using var y = mnist.Train.Labels.narrow(0, 0, 100);
        using var clf = SeededClassifier(9);
        using var tuner = new FineTuner(clf, new ClassifierTrainingOptions
        {
            Epochs = 3, BatchSize = 100, ValidationCount = 0, LearningRate = 0.2, LearningRateDecay = 0.5,
        });
        foreach (var history in new[] { tuner.Fit(x, y), tuner.Fit(x, y) })
            Assert.Equal(new[] { 0.2, 0.1, 0.05 }, history.Epochs.Select(m => m.LearningRate));
    }

    [Fact]
    public void Fit_MaxNorm_KeepsEveryUnitsIncomingWeightsWithinTheBound()
    {
        using var x = mnist.Train.Images.narrow(0, 0, 200);
        using var y = mnist.Train.Labels.narrow(0, 0, 200);
        const double c = 0.8;
        using var clf = SeededClassifier(6);
        // fc1's rows start at norm ≈ 0.1·√784 = 2.8 > c, so the constraint has work to do.
        using (var norms = Fc(clf, "fc1").weight!.detach().norm(1)) Assert.True(norms.min().ToDouble() > c);
        using var tuner = new FineTuner(clf, new ClassifierTrainingOptions { Epochs = 1, BatchSize = 50, ValidationCount = 0, MaxNorm = c });
        tuner.Fit(x, y);
        foreach (var name in new[] { "fc1", "out" })
        {
            using var norms = Fc(clf, name).weight!.detach().norm(1);
            Assert.True(norms.max().ToDouble() <= c * (1 + 1e-5), $"{name}: largest row norm {norms.max().ToDouble()} > {c}");
        }
        using (var norms = Fc(clf, "fc1").weight!.detach().norm(1)) Assert.True(norms.min().ToDouble() > c * 0.99, "fc1's rows were scaled to the bound, not below");
        // The output layer's rows start near 0.1·√12 ≈ 0.35 < c: shorter rows are left alone, not scaled up to c.
        using (var norms = Fc(clf, "out").weight!.detach().norm(1)) Assert.True(norms.min().ToDouble() < 0.8 * c, $"out's shortest row {norms.min().ToDouble()} was not scaled up");
    }

    [Fact]
    public void MomentumSchedule_BadValues_AndANonSgdOptimizer_AreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClassifierTrainingOptions { InitialMomentum = 1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClassifierTrainingOptions { MomentumRampEpochs = -1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClassifierTrainingOptions { MaxNorm = -0.5 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClassifierTrainingOptions { MaxNorm = double.NaN }.Validate());
        using var clf = SeededClassifier(7);
        var e = Assert.Throws<ArgumentException>(() => new FineTuner(clf, new ClassifierTrainingOptions
        {
            Optimizer = FineTuningOptimizer.ConjugateGradient, MomentumRampEpochs = 10, InitialMomentum = 0.5,
        }));
        Assert.Contains("SGD", e.Message);
    }

    [Theory]
    [InlineData(DropoutConvention.Inverted)]
    [InlineData(DropoutConvention.NonInverted)]   // one SGD parameter group per keep probability: all must come back
    public void Fit_StoppedAndContinuedFromItsCheckpoint_EndsExactlyAsAnUnbrokenRun(DropoutConvention convention)
    {
        using var x = mnist.Train.Images.narrow(0, 0, 300);
        using var y = mnist.Train.Labels.narrow(0, 0, 300);
        // Everything a checkpoint must carry: shuffling, dropout (global generator), a momentum ramp with dampening (the
        // momentum buffers), validation with best weights, and iterate averaging.
        // The output layer alone in epoch 1 (frozen parameters without momentum buffers), checkpoints every 2 epochs.
        var options = new ClassifierTrainingOptions
        {
            Epochs = 5, BatchSize = 50, ValidationCount = 100, Patience = 0, LearningRate = 0.5, LearningRateDecay = 0.9,
            InitialMomentum = 0.5, Momentum = 0.9, MomentumRampEpochs = 3, DampenMomentum = true, AverageDecay = 0.9, HeadOnlyEpochs = 1,
            DropoutConvention = convention,
        };
        double restoredSeconds = double.NaN;
        (ClassifierHistory h, List<Tensor> w) Run(string? path, int cancelAfter = 0)
        {
            using var clf = SeededClassifier(8, inputDropout: 0.2, hiddenDropout: 0.5);
            using var cancel = new CancellationTokenSource();
            var progress = new CallbackProgress<ClassifierProgress>(p => { if (p.EpochMetrics?.Epoch == cancelAfter) cancel.Cancel(); });
            using var tuner = new FineTuner(clf, options) { CheckpointPath = path, CheckpointEvery = 2 };
            var h = tuner.Fit(x, y, progress: progress, cancellationToken: cancel.Token);
            restoredSeconds = tuner.RestoredSeconds;
            return (h, clf.parameters().Select(p => p.detach().clone()).ToList());
        }
        torch.manual_seed(99);
        var (whole, wWhole) = Run(null);
        Assert.Equal(0, restoredSeconds);

        using var dir = new TorchBoltzmann.Tests.Data.TempDirectory();
        var path = dir.File("run.ckpt");
        torch.manual_seed(99);
        // Stopped after epoch 3: the checkpoint holds epoch 2, so the continued run redoes epoch 3.
        Assert.Throws<OperationCanceledException>(() => Run(path, cancelAfter: 3));
        Assert.True(File.Exists(path), "a checkpoint after epoch 2");
        torch.manual_seed(12345);   // a different global generator state: the checkpoint must bring back its own
        var (resumed, wResumed) = Run(path);
        // The time of the two restored epochs is the time their process recorded for them, counted in the run's total.
        Assert.Equal(resumed.Epochs.Take(2).Sum(m => m.Seconds), restoredSeconds, 12);
        Assert.True(restoredSeconds > 0, "restored epochs took time");

        Assert.Equal(whole.Epochs.Count, resumed.Epochs.Count);
        for (int e = 0; e < whole.Epochs.Count; e++)
        {
            Assert.Equal(whole.Epochs[e].TrainLoss, resumed.Epochs[e].TrainLoss, 12);
            Assert.Equal(whole.Epochs[e].ValidationError, resumed.Epochs[e].ValidationError);
        }
        Assert.Equal((whole.BestEpoch, whole.RestoredBest), (resumed.BestEpoch, resumed.RestoredBest));
        for (int i = 0; i < wWhole.Count; i++) TestUtil.AllClose(wWhole[i], wResumed[i], 0, $"parameter {i} after the continued run");

        // The finished run's checkpoint: Fit loads its final weights and returns its history without training.
        var (again, wAgain) = Run(path);
        Assert.Equal(again.Epochs.Sum(m => m.Seconds), restoredSeconds, 12);
        Assert.Equal(resumed.Epochs.Select(m => m.TrainLoss), again.Epochs.Select(m => m.TrainLoss));
        for (int i = 0; i < wWhole.Count; i++) TestUtil.AllClose(wWhole[i], wAgain[i], 0, $"parameter {i} loaded from the finished checkpoint");
        foreach (var t in wWhole.Concat(wResumed).Concat(wAgain)) t.Dispose();
    }

    [Fact]
    public void Fit_Checkpoint_FromAnotherRun_OrTruncated_IsRefusedWithTheReason()
    {
        using var x = mnist.Train.Images.narrow(0, 0, 100);
        using var y = mnist.Train.Labels.narrow(0, 0, 100);
        using var dir = new TorchBoltzmann.Tests.Data.TempDirectory();
        var path = dir.File("run.ckpt");
        var options = new ClassifierTrainingOptions { Epochs = 1, BatchSize = 50, ValidationCount = 0 };
        using (var clf = SeededClassifier(9))
        using (var tuner = new FineTuner(clf, options) { CheckpointPath = path })
            tuner.Fit(x, y);

        using (var clf = SeededClassifier(9))
        using (var tuner = new FineTuner(clf, options with { LearningRate = 0.3 }) { CheckpointPath = path })
        {
            var e = Assert.Throws<CheckpointException>(() => tuner.Fit(x, y));
            Assert.Contains("LearningRate = 0.1 in the checkpoint, 0.3 now", e.Message);
        }
        using (var clf = SeededClassifier(9))
        using (var tuner = new FineTuner(clf, options) { CheckpointPath = path, CheckpointTag = new Dictionary<string, string> { ["input_dropout"] = "0.2" } })
        {
            var e = Assert.Throws<CheckpointException>(() => tuner.Fit(x, y));
            Assert.Contains("input_dropout = (absent) in the checkpoint, 0.2 now", e.Message);
        }
        using (var g = new Generator(1))
        using (var other = DbnClassifier.Build([784, 13], 10, generator: g))
        using (var tuner = new FineTuner(other, options) { CheckpointPath = path })
        {
            var e = Assert.Throws<CheckpointException>(() => tuner.Fit(x, y));
            Assert.Contains("(12, 784) Float32 in the checkpoint, (13, 784) Float32 in the model", e.Message);
        }
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        using (var clf = SeededClassifier(9))
        using (var tuner = new FineTuner(clf, options) { CheckpointPath = path })
        {
            var before = clf.parameters().Select(p => p.detach().clone()).ToList();
            var e = Assert.Throws<CheckpointException>(() => tuner.Fit(x, y));
            Assert.Contains("truncated", e.Message);
            var after = clf.parameters().ToList();
            for (int i = 0; i < before.Count; i++) TestUtil.AllClose(before[i], after[i], 0, $"parameter {i} untouched by the refused checkpoint");
            foreach (var t in before) t.Dispose();
        }
    }
}

using System.Diagnostics;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>What <see cref="DbnClassifierPipeline.Run"/> produced. Owns the two models.</summary>
public sealed class DbnClassifierResult : IDisposable
{
    /// <summary>The pretrained DBN (its weights are not changed by fine-tuning).</summary>
    public required DBN Dbn { get; init; }
    /// <summary>The fine-tuned classifier (a plain Sequential, logits out).</summary>
    public required Sequential Classifier { get; init; }
    /// <summary>Per layer, per epoch pretraining metrics (empty when a pretrained DBN was given).</summary>
    public required IReadOnlyList<IReadOnlyList<RbmEpochMetrics>> Pretraining { get; init; }
    /// <summary>Fine-tuning history.</summary>
    public required ClassifierHistory FineTuning { get; init; }
    /// <summary>Test-set metrics of the classifier (error, confusion matrix): the refitted model when the preset refits.</summary>
    public required ClassificationMetrics Test { get; init; }
    /// <summary>With <see cref="DbnClassifierPreset.Refit"/>: the history of training on all digits for the chosen epochs (else null).</summary>
    public ClassifierHistory? Refit { get; init; }
    /// <summary>With <see cref="DbnClassifierPreset.Refit"/>: the test metrics of the validation-selected model before the refit (else null).</summary>
    public ClassificationMetrics? SelectedTest { get; init; }
    /// <summary>Test error of the class-conditional DBN's own free-energy classifier, before fine-tuning (null if not class-conditional).</summary>
    public double? FreeEnergyTestError { get; init; }
    /// <summary>Wall time of pretraining, in seconds, including the time recorded for the layers restored from a checkpoint.</summary>
    public double PretrainSeconds { get; init; }
    /// <summary>
    /// Wall time of fine-tuning (and refitting, and testing), in seconds, including the time recorded for the epochs restored
    /// from checkpoints (as <see cref="PretrainSeconds"/> includes the layers a checkpoint held).
    /// </summary>
    public double FineTuneSeconds { get; init; }

    /// <summary>Disposes both models.</summary>
    public void Dispose()
    {
        Dbn.Dispose();
        Classifier.Dispose();
    }
}

/// <summary>
/// The main job end to end: greedy pretraining of a DBN on the training digits, a classifier built from it, fine-tuning
/// with a validation split (the last <c>ValidationCount</c> training digits), optionally a refit on all training digits
/// for the chosen number of epochs (<see cref="DbnClassifierPreset.Refit"/>), and evaluation on the test digits.
/// </summary>
public static class DbnClassifierPipeline
{
    /// <summary>The fine-tuning checkpoint of a run with checkpoint stem <paramref name="stem"/>: <c>{stem}-finetune.ckpt</c>.</summary>
    public static string FineTuningCheckpointPath(string stem) => stem + "-finetune.ckpt";

    /// <summary>The refit's checkpoint of a run with checkpoint stem <paramref name="stem"/>: <c>{stem}-refit.ckpt</c>.</summary>
    public static string RefitCheckpointPath(string stem) => stem + "-refit.ckpt";

    /// <summary>
    /// The DBN pretrained by a run with checkpoint stem <paramref name="stem"/>: <c>{stem}-pretrained.ckpt</c>, a
    /// <see cref="RunCheckpoint"/> written after every pretrained layer (<see cref="GreedyPretrainer.CheckpointPath"/>), so
    /// a run that stops does not pretrain the finished layers again. (Earlier versions wrote <c>{stem}-pretrained.pt</c>
    /// and its sidecar <c>{stem}-pretrained.json</c>; a run that finds them continues from them.)
    /// </summary>
    public static string PretrainedCheckpointPath(string stem) => stem + "-pretrained.ckpt";

    /// <summary>
    /// Every file a run with checkpoint stem <paramref name="stem"/> may leave to continue from (the caller deletes them
    /// once its results are safe): the pretrained DBN's checkpoint and the pair of the earlier format (only when the run
    /// pretrains, i.e. no <c>pretrained</c> DBN is given to <see cref="Run"/>), then the fine-tuning and refit checkpoints.
    /// </summary>
    public static IReadOnlyList<string> CheckpointFiles(string stem, bool pretrainsHere = true) => pretrainsHere
        ? [PretrainedCheckpointPath(stem), IO.Checkpoint.WeightsPath(PretrainedCheckpointPath(stem)), IO.Checkpoint.SidecarPath(PretrainedCheckpointPath(stem)),
           FineTuningCheckpointPath(stem), RefitCheckpointPath(stem)]
        : [FineTuningCheckpointPath(stem), RefitCheckpointPath(stem)];

    /// <summary>Σ t in float64 (order-insensitive; the fine-tuning tag keeps it so that existing checkpoints stay valid).</summary>
    private static string Sum(Tensor t)
    {
        using var wide = t.to(ScalarType.Float64);
        using var s = wide.sum();
        return s.ToDouble().ToString("R", System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// The run's identity for fine-tuning checkpoints: preset, architecture, dropout, pretraining (its options when
    /// pretrained here — it is seeded, so a rerun gives the same DBN — or a checksum of the given DBN's weights) and a
    /// checksum of the training data.
    /// </summary>
    private static Dictionary<string, string> CheckpointTag(DbnClassifierPreset preset, Tensor trainX, Tensor trainY, DBN? given)
    {
        var tag = new Dictionary<string, string>
        {
            ["preset"] = preset.Name,
            ["layers"] = string.Join("-", preset.LayerSizes),
            ["class_conditional"] = preset.ClassConditional.ToString(),
            ["input_dropout"] = preset.InputDropout.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            ["hidden_dropout"] = preset.HiddenDropout.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            ["data"] = $"{trainX.shape[0]} rows, Σx = {Sum(trainX)}, Σy = {Sum(trainY)}",
        };
        // Per-layer overrides are appended only when there are any, so that the tags of runs without them (and their
        // checkpoints) stay as they were.
        if (given is null)
            tag["pretraining"] = $"here: {preset.Pretraining.Layer}" + (preset.Pretraining.PerLayer is { } per
                ? $"; per layer: [{string.Join(", ", per.Select(o => o?.ToString() ?? "as above"))}]" : "");
        else
        {
            using var _ = torch.no_grad();
            tag["pretraining"] = "given DBN, Σ|θ| = " + string.Join(" + ", given.parameters().Select(p => { using var a = p.abs(); return Sum(a); }));
        }
        return tag;
    }

    /// <summary>Runs a preset.</summary>
    /// <param name="preset">The recipe.</param>
    /// <param name="trainX">Training inputs (N, 784) in [0, 1] on the target device.</param>
    /// <param name="trainY">Training labels (N), int64.</param>
    /// <param name="testX">Test inputs.</param>
    /// <param name="testY">Test labels.</param>
    /// <param name="seed">Seed of every generator in the run. The global generator, which dropout draws from, is seeded
    /// with it (<c>torch.manual_seed</c>) when fine-tuning starts.</param>
    /// <param name="pretrained">A pretrained DBN of the preset's architecture to fine-tune instead of pretraining (it is cloned, not consumed).</param>
    /// <param name="pretrainProgress">Pretraining progress (stage "layer l/L").</param>
    /// <param name="fineTuneProgress">Fine-tuning progress.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <param name="checkpointStem">
    /// When given, fine-tuning and the refit write checkpoints (<see cref="FineTuner.CheckpointPath"/>) to
    /// <see cref="FineTuningCheckpointPath"/> and <see cref="RefitCheckpointPath"/> of this stem, and a run that finds them
    /// continues from them; pretraining here (without <paramref name="pretrained"/>) saves the DBN after every layer to
    /// <see cref="PretrainedCheckpointPath"/>, from which a later run with the same pretraining, seed, device and data
    /// trains only the layers left (<see cref="CheckpointFiles"/> lists them all). The caller deletes them once the
    /// results are safe.
    /// </param>
    /// <param name="checkpointEvery">Epochs between checkpoints.</param>
    /// <param name="tensorBoard">When given, every stage's progress also goes to this logger, which watches the DBN's
    /// layers while they pretrain and the classifier while it is fine-tuned (and refit): histograms, update ratios and
    /// the images its <see cref="Logging.TensorBoardLogger.RbmImages"/> renders.</param>
    /// <exception cref="IO.CheckpointException">A checkpoint under <paramref name="checkpointStem"/> was written by another run (the differences are named) or is corrupt.</exception>
    public static DbnClassifierResult Run(DbnClassifierPreset preset, Tensor trainX, Tensor trainY, Tensor testX, Tensor testY,
        ulong seed = 42, DBN? pretrained = null, IProgress<TrainingProgress>? pretrainProgress = null,
        IProgress<ClassifierProgress>? fineTuneProgress = null, CancellationToken cancellationToken = default,
        string? checkpointStem = null, int checkpointEvery = 1, Logging.TensorBoardLogger? tensorBoard = null)
    {
        pretrainProgress = ProgressTee.Of<TrainingProgress>(pretrainProgress, tensorBoard);
        fineTuneProgress = ProgressTee.Of<ClassifierProgress>(fineTuneProgress, tensorBoard);
        ArgumentNullException.ThrowIfNull(preset);
        preset.FineTuning.Validate();
        DbnClassifier.CheckDropout(preset.InputDropout, preset.HiddenDropout);   // before pretraining, not after it
        if (preset.FineTuning.Optimizer == FineTuningOptimizer.ConjugateGradient && (preset.InputDropout > 0 || preset.HiddenDropout > 0))
            throw new ArgumentException($"preset '{preset.Name}': conjugate-gradient fine-tuning needs a deterministic loss, but dropout is on (inputs {preset.InputDropout}, hidden {preset.HiddenDropout}); use SGD or no dropout.", nameof(preset));
        var device = trainX.device;
        int nVal = preset.FineTuning.ValidationCount;
        long n = trainX.shape[0];
        if (n <= nVal) throw new ArgumentException($"training data: expected more than ValidationCount = {nVal} rows, got {n}.");
        using var fitX = trainX.narrow(0, 0, n - nVal);
        using var fitY = trainY.narrow(0, 0, n - nVal);
        using var valX = trainX.narrow(0, n - nVal, nVal);
        using var valY = trainY.narrow(0, n - nVal, nVal);

        using var gen = new Generator(seed, device);
        var dbn = boltzmann.DBN(preset.LayerSizes, preset.ClassConditional ? 10 : 0, device: device, generator: gen);
        tensorBoard?.Watch(dbn);
        try
        {
            IReadOnlyList<IReadOnlyList<RbmEpochMetrics>> pretraining = Array.Empty<IReadOnlyList<RbmEpochMetrics>>();
            double pretrainSeconds = 0;
            var clock = Stopwatch.StartNew();
            if (pretrained is not null)
            {
                if (!pretrained.layer_sizes.SequenceEqual(preset.LayerSizes) || pretrained.n_classes != dbn.n_classes)
                    throw new ArgumentException($"pretrained: expected a DBN {string.Join("-", preset.LayerSizes)} with {dbn.n_classes} label units, got {string.Join("-", pretrained.layer_sizes)} with {pretrained.n_classes}.");
                using var sd = torch.no_grad();
                dbn.load_state_dict(pretrained.state_dict());
            }
            else
            {
                // The run's seed reaches every layer, per-layer overrides included.
                var options = preset.Pretraining.ForEveryLayer(o => o with { Seed = seed });
                // Saved after every layer; a continued run trains only the layers left (none once pretraining ended).
                var pretrainer = new GreedyPretrainer(dbn, options) { CheckpointPath = checkpointStem is null ? null : PretrainedCheckpointPath(checkpointStem) };
                pretraining = pretrainer.Fit(fitX, preset.ClassConditional ? fitY : null, nVal > 0 ? valX : null,
                    preset.ClassConditional && nVal > 0 ? valY : null, pretrainProgress, cancellationToken);
                pretrainSeconds = pretrainer.Seconds;   // with the time of the layers a checkpoint held
            }

            double? feError = null;
            if (dbn.is_class_conditional)
            {
                using var predicted = dbn.classify(testX);
                feError = ClassificationMetrics.FromPredictions(predicted, testY).ErrorRate;
            }

            // What a fine-tuning checkpoint must share with this run, beyond its own options (see FineTuner.CheckpointTag).
            var tag = checkpointStem is null ? null : CheckpointTag(preset, trainX, trainY, pretrained is null ? null : dbn);
            clock.Restart();
            // Dropout draws its masks from the global generator (as nn.Dropout does): seed it here, or the masks would
            // depend on whatever drew from it earlier in the process. (A continued run restores its saved state.)
            torch.manual_seed(unchecked((long)seed));
            var classifier = DbnClassifier.Build(dbn, 10, preset.InputDropout, preset.HiddenDropout, gen);
            try
            {
                ClassifierHistory history;
                ClassificationMetrics test;
                double restoredSeconds;   // fine-tuning time of the epochs the checkpoints held (earlier processes)
                using (var tuner = new FineTuner(classifier, preset.FineTuning with { Seed = seed }, generator: gen)
                       { CheckpointPath = checkpointStem is null ? null : FineTuningCheckpointPath(checkpointStem), CheckpointEvery = checkpointEvery, CheckpointTag = tag })
                {
                    tensorBoard?.Watch(tuner.Stage, classifier);
                    history = nVal > 0 ? tuner.Fit(fitX, fitY, valX, valY, fineTuneProgress, cancellationToken)
                                       : tuner.Fit(fitX, fitY, progress: fineTuneProgress, cancellationToken: cancellationToken);
                    test = tuner.Evaluate(testX, testY);
                    restoredSeconds = tuner.RestoredSeconds;
                }
                ClassifierHistory? refit = null;
                ClassificationMetrics? selected = null;
                if (preset.Refit && history.BestEpoch > 0)
                {
                    // A fresh classifier from the same DBN, trained on every training digit for the chosen number of epochs.
                    var all = DbnClassifier.Build(dbn, 10, preset.InputDropout, preset.HiddenDropout, gen);
                    classifier.Dispose();
                    classifier = all;
                    var options = preset.FineTuning with
                    {
                        Seed = seed, Epochs = history.BestEpoch, ValidationCount = 0, Patience = 0, RestoreBest = false,
                    };
                    using var tuner = new FineTuner(classifier, options, generator: gen)
                    {
                        Stage = "refit on all digits", CheckpointEvery = checkpointEvery, CheckpointTag = tag,
                        CheckpointPath = checkpointStem is null ? null : RefitCheckpointPath(checkpointStem),
                    };
                    tensorBoard?.Watch(tuner.Stage, classifier);
                    refit = tuner.Fit(trainX, trainY, progress: fineTuneProgress, cancellationToken: cancellationToken);
                    restoredSeconds += tuner.RestoredSeconds;
                    selected = test;
                    test = tuner.Evaluate(testX, testY);
                }
                return new DbnClassifierResult
                {
                    Dbn = dbn, Classifier = classifier, Pretraining = pretraining, FineTuning = history, Test = test,
                    Refit = refit, SelectedTest = selected,
                    FreeEnergyTestError = feError, PretrainSeconds = pretrainSeconds, FineTuneSeconds = restoredSeconds + clock.Elapsed.TotalSeconds,
                };
            }
            catch
            {
                classifier.Dispose();
                throw;
            }
        }
        catch
        {
            dbn.Dispose();
            throw;
        }
    }
}

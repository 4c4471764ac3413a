using System.Diagnostics;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchSharp;
using TorchSharp.Modules;
using TorchBoltzmann.Training;
using static TorchSharp.torch;

namespace TorchBoltzmann.Recipes;

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
    /// once its results are safe): the pretrained DBN's checkpoint, the pair of the earlier format and the checkpoints of
    /// the <paramref name="layers"/> layers in training (<see cref="GreedyPretrainer.LayerCheckpointPath"/>; only when the
    /// run pretrains, i.e. no <c>pretrained</c> DBN is given to <see cref="Run"/>), then the fine-tuning and refit checkpoints.
    /// </summary>
    public static IReadOnlyList<string> CheckpointFiles(string stem, bool pretrainsHere, int layers) => pretrainsHere
        ? [PretrainedCheckpointPath(stem), IO.Checkpoint.WeightsPath(PretrainedCheckpointPath(stem)), IO.Checkpoint.SidecarPath(PretrainedCheckpointPath(stem)),
           .. GreedyPretrainer.LayerCheckpointPaths(PretrainedCheckpointPath(stem), layers),
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
            tag["pretraining"] = $"here: {TagText(preset.Pretraining.Layer)}" + (preset.Pretraining.PerLayer is { } per
                ? $"; per layer: [{string.Join(", ", per.Select(o => o is null ? "as above" : TagText(o)))}]" : "");
        else
        {
            using var _ = torch.no_grad();
            tag["pretraining"] = "given DBN, Σ|θ| = " + string.Join(" + ", given.parameters().Select(p => { using var a = p.abs(); return Sum(a); }));
        }
        return tag;
    }

    /// <summary>
    /// A layer's options as the checkpoint tag states them: the record's text without the members added after tags were
    /// first written (<c>KIncreaseEvery</c>, <c>BinarizeEachBatch</c>) while they are off, so that the checkpoints of runs
    /// written before those options existed still continue.
    /// </summary>
    internal static string TagText(RbmTrainingOptions options)
    {
        string text = options.ToString();
        if (options.KIncreaseEvery == 0) text = text.Replace(", KIncreaseEvery = 0", "");
        if (!options.BinarizeEachBatch) text = text.Replace(", BinarizeEachBatch = False", "");
        return text;
    }

    /// <summary>Runs a preset: <see cref="Check"/>, <see cref="Pretrain"/>, <see cref="FineTune"/>, then <see cref="Refit"/>
    /// when the preset refits.</summary>
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
    /// When given, fine-tuning and the refit write checkpoints (<see cref="ResumableTrainer.CheckpointPath"/>) to
    /// <see cref="FineTuningCheckpointPath"/> and <see cref="RefitCheckpointPath"/> of this stem, and a run that finds them
    /// continues from them; pretraining here (without <paramref name="pretrained"/>) saves the DBN after every layer to
    /// <see cref="PretrainedCheckpointPath"/> and the layer in training every <paramref name="checkpointEvery"/> epochs
    /// beside it, from which a later run with the same pretraining, seed, device and data trains only the epochs left (<see cref="CheckpointFiles"/> lists them all). The caller deletes them once the
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
        Check(preset, trainX);
        using var run = new Stage(preset, trainX, trainY, seed, checkpointStem, checkpointEvery, tensorBoard, cancellationToken);
        var (dbn, pretraining, pretrainSeconds) = Pretrain(run, pretrained, pretrainProgress);
        try
        {
            // The class-conditional DBN's own classifier, before fine-tuning: arg max_y of −F(x, y).
            double? feError = null;
            if (dbn.is_class_conditional)
            {
                using var predicted = dbn.classify(testX);
                feError = ClassificationMetrics.FromPredictions(predicted, testY).ErrorRate;
            }
            // What a fine-tuning checkpoint must share with this run, beyond its own options (see FineTuner.CheckpointTag).
            var tag = checkpointStem is null ? null : CheckpointTag(preset, trainX, trainY, pretrained is null ? null : dbn);
            var clock = Stopwatch.StartNew();
            var (classifier, history, test, restoredSeconds) = FineTune(run, dbn, testX, testY, tag, fineTuneProgress);
            try
            {
                ClassifierHistory? refit = null;
                ClassificationMetrics? selected = null;
                if (preset.Refit && history.BestEpoch > 0)
                {
                    selected = test;
                    var (all, refitHistory, refitTest, refitRestored) = Refit(run, dbn, history.BestEpoch, testX, testY, tag, fineTuneProgress);
                    classifier.Dispose();
                    (classifier, refit, test) = (all, refitHistory, refitTest);
                    restoredSeconds += refitRestored;
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

    /// <summary>
    /// Refuses a preset that cannot run on <paramref name="trainX"/> before anything trains: invalid fine-tuning options,
    /// dropout probabilities outside [0, 1), conjugate gradients with dropout (its line searches need a deterministic
    /// loss), or no training rows left beside the validation split.
    /// </summary>
    /// <exception cref="ArgumentException">The preset cannot run; the message names the setting, expected and got.</exception>
    public static void Check(DbnClassifierPreset preset, Tensor trainX)
    {
        ArgumentNullException.ThrowIfNull(preset);
        preset.FineTuning.Validate();
        DbnClassifier.CheckDropout(preset.InputDropout, preset.HiddenDropout);   // before pretraining, not after it
        if (preset.FineTuning.Optimizer == FineTuningOptimizer.ConjugateGradient && (preset.InputDropout > 0 || preset.HiddenDropout > 0))
            throw new ArgumentException($"preset '{preset.Name}': conjugate-gradient fine-tuning needs a deterministic loss, but dropout is on (inputs {preset.InputDropout}, hidden {preset.HiddenDropout}); use SGD or no dropout.", nameof(preset));
        int nVal = preset.FineTuning.ValidationCount;
        long n = trainX.shape[0];
        if (n <= nVal) throw new ArgumentException($"training data: expected more than ValidationCount = {nVal} rows, got {n}.");
    }

    /// <summary>
    /// What every stage of one run shares: the preset, the training data split into the fitted rows and the validation
    /// rows (the last <c>ValidationCount</c>), the seed and the run's generator (on the data's device), the checkpoint
    /// stem and interval, the TensorBoard logger and the cancellation token. Disposing it releases the views and the
    /// generator.
    /// </summary>
    private sealed class Stage : IDisposable
    {
        public Stage(DbnClassifierPreset preset, Tensor trainX, Tensor trainY, ulong seed, string? checkpointStem, int checkpointEvery,
                     Logging.TensorBoardLogger? tensorBoard, CancellationToken ct)
        {
            (Preset, TrainX, TrainY, Seed, CheckpointStem, CheckpointEvery, TensorBoard, Ct) = (preset, trainX, trainY, seed, checkpointStem, checkpointEvery, tensorBoard, ct);
            long n = trainX.shape[0];
            int nVal = preset.FineTuning.ValidationCount;
            FitX = trainX.narrow(0, 0, n - nVal);
            FitY = trainY.narrow(0, 0, n - nVal);
            ValX = trainX.narrow(0, n - nVal, nVal);
            ValY = trainY.narrow(0, n - nVal, nVal);
            Generator = new Generator(seed, trainX.device);
        }

        public DbnClassifierPreset Preset { get; }
        public Tensor TrainX { get; }
        public Tensor TrainY { get; }
        public Tensor FitX { get; }
        public Tensor FitY { get; }
        public Tensor ValX { get; }
        public Tensor ValY { get; }
        public ulong Seed { get; }
        public Generator Generator { get; }
        public string? CheckpointStem { get; }
        public int CheckpointEvery { get; }
        public Logging.TensorBoardLogger? TensorBoard { get; }
        public CancellationToken Ct { get; }
        public bool Validates => Preset.FineTuning.ValidationCount > 0;

        public void Dispose()
        {
            FitX.Dispose(); FitY.Dispose(); ValX.Dispose(); ValY.Dispose();
            Generator.Dispose();
        }
    }

    /// <summary>
    /// The DBN of the run: the preset's architecture drawn from the run's generator, then either the
    /// <paramref name="pretrained"/> weights copied in or greedy pretraining on the fitted rows (labels joined at the top
    /// when class-conditional; checkpointed after every layer under the stem, and inside a layer every CheckpointEvery epochs).
    /// </summary>
    private static (DBN Dbn, IReadOnlyList<IReadOnlyList<RbmEpochMetrics>> Metrics, double Seconds) Pretrain(
        Stage run, DBN? pretrained, IProgress<TrainingProgress>? progress)
    {
        var preset = run.Preset;
        var dbn = boltzmann.DBN(preset.LayerSizes, preset.ClassConditional ? 10 : 0, device: run.TrainX.device, generator: run.Generator);
        run.TensorBoard?.Watch(dbn);
        try
        {
            if (pretrained is not null)
            {
                if (!pretrained.layer_sizes.SequenceEqual(preset.LayerSizes) || pretrained.n_classes != dbn.n_classes)
                    throw new ArgumentException($"pretrained: expected a DBN {string.Join("-", preset.LayerSizes)} with {dbn.n_classes} label units, got {string.Join("-", pretrained.layer_sizes)} with {pretrained.n_classes}.");
                using var sd = torch.no_grad();
                dbn.load_state_dict(pretrained.state_dict());
                return (dbn, Array.Empty<IReadOnlyList<RbmEpochMetrics>>(), 0);
            }
            // The run's seed reaches every layer, per-layer overrides included.
            var options = preset.Pretraining.ForEveryLayer(o => o with { Seed = run.Seed });
            // Saved after every layer, and the layer in training every CheckpointEvery epochs; a continued run trains only
            // the epochs left (none once pretraining ended).
            var pretrainer = new GreedyPretrainer(dbn, options)
            {
                CheckpointPath = run.CheckpointStem is null ? null : PretrainedCheckpointPath(run.CheckpointStem), CheckpointEvery = Math.Max(run.CheckpointEvery, 1),
            };
            var metrics = pretrainer.Fit(run.FitX, preset.ClassConditional ? run.FitY : null, run.Validates ? run.ValX : null,
                preset.ClassConditional && run.Validates ? run.ValY : null, progress, run.Ct);
            return (dbn, metrics, pretrainer.Seconds);   // with the time of the layers a checkpoint held
        }
        catch
        {
            dbn.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A classifier built from the DBN (<c>DbnClassifier.Build</c>: the DBN's layers as Linear + Sigmoid, a new
    /// output layer), fine-tuned on the fitted rows with the validation rows choosing the best epoch, then evaluated on
    /// the test digits. Dropout draws its masks from the global generator (as <c>nn.Dropout</c> does): it is seeded here
    /// with the run's seed, or the masks would depend on whatever drew from it earlier in the process (a continued run
    /// restores its saved state).
    /// </summary>
    private static (Sequential Classifier, ClassifierHistory History, ClassificationMetrics Test, double RestoredSeconds) FineTune(
        Stage run, DBN dbn, Tensor testX, Tensor testY, Dictionary<string, string>? tag, IProgress<ClassifierProgress>? progress)
    {
        var preset = run.Preset;
        torch.manual_seed(unchecked((long)run.Seed));
        var classifier = DbnClassifier.Build(dbn, 10, preset.InputDropout, preset.HiddenDropout, run.Generator);
        try
        {
            using var tuner = new FineTuner(classifier, preset.FineTuning with { Seed = run.Seed }, generator: run.Generator)
            {
                CheckpointPath = run.CheckpointStem is null ? null : FineTuningCheckpointPath(run.CheckpointStem),
                CheckpointEvery = run.CheckpointEvery, CheckpointTag = tag,
            };
            run.TensorBoard?.Watch(tuner.Stage, classifier);
            var history = run.Validates ? tuner.Fit(run.FitX, run.FitY, run.ValX, run.ValY, progress, run.Ct)
                                        : tuner.Fit(run.FitX, run.FitY, progress: progress, cancellationToken: run.Ct);
            return (classifier, history, tuner.Evaluate(testX, testY), tuner.RestoredSeconds);
        }
        catch
        {
            classifier.Dispose();
            throw;
        }
    }

    /// <summary>The refit's stage name, as its progress reports it.</summary>
    public const string RefitStage = "refit on all digits";

    /// <summary>
    /// A fresh classifier from the same DBN trained on every training digit (fitted and validation rows) for the
    /// <paramref name="epochs"/> that validation chose, with the same schedule and no early stopping, then evaluated on
    /// the test digits (Hinton, Osindero &amp; Teh 2006 retrained on all 60,000 the same way).
    /// </summary>
    private static (Sequential Classifier, ClassifierHistory History, ClassificationMetrics Test, double RestoredSeconds) Refit(
        Stage run, DBN dbn, int epochs, Tensor testX, Tensor testY, Dictionary<string, string>? tag, IProgress<ClassifierProgress>? progress)
    {
        var preset = run.Preset;
        var classifier = DbnClassifier.Build(dbn, 10, preset.InputDropout, preset.HiddenDropout, run.Generator);
        try
        {
            var options = preset.FineTuning with { Seed = run.Seed, Epochs = epochs, ValidationCount = 0, Patience = 0, RestoreBest = false };
            using var tuner = new FineTuner(classifier, options, generator: run.Generator)
            {
                Stage = RefitStage, CheckpointEvery = run.CheckpointEvery, CheckpointTag = tag,
                CheckpointPath = run.CheckpointStem is null ? null : RefitCheckpointPath(run.CheckpointStem),
            };
            run.TensorBoard?.Watch(tuner.Stage, classifier);
            var history = tuner.Fit(run.TrainX, run.TrainY, progress: progress, cancellationToken: run.Ct);
            return (classifier, history, tuner.Evaluate(testX, testY), tuner.RestoredSeconds);
        }
        catch
        {
            classifier.Dispose();
            throw;
        }
    }
}

using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchBoltzmann.Data;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchBoltzmann.Visualization;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Recipes;

/// <summary>What one run of an MNIST DBN classifier recipe is asked to do (<see cref="MnistClassifierRun"/>).</summary>
/// <param name="Preset">The recipe, with any overrides already applied.</param>
/// <param name="Output">The DBN checkpoint's path (<c>.pt</c>); the other files take its stem
/// (<c>STEM-classifier.pt</c>, <c>STEM-metrics.json</c>, …), and so do the checkpoints a run continues from.</param>
/// <param name="DataDirectory">The directory holding the four MNIST IDX files (e.g. from <c>MnistFetcher.Resolve</c>).</param>
public sealed record MnistRunRequest(DbnClassifierPreset Preset, string Output, string DataDirectory)
{
    /// <summary>A pretrained DBN checkpoint to fine-tune instead of pretraining (same architecture and label units).</summary>
    public string? PretrainedPath { get; init; }
    /// <summary>The device the run trains on (null: CPU).</summary>
    public Device? Device { get; init; }
    /// <summary>Seed of every generator in the run.</summary>
    public ulong Seed { get; init; } = 42;
    /// <summary>Use only the first this many training digits (null: all 60,000).</summary>
    public int? Limit { get; init; }
    /// <summary>Epochs between the checkpoints of fine-tuning and of the layer in pretraining (the DBN is also saved after every pretrained layer); 0: no checkpoints.</summary>
    public int CheckpointEvery { get; init; } = 1;
}

/// <summary>The files <see cref="MnistClassifierRun.WriteReport"/> wrote and the measures it added.</summary>
public sealed record MnistRunReport
{
    /// <summary>The DBN checkpoint (its JSON sidecar holds the summary, the preset and the pretraining metrics).</summary>
    public required string DbnPath { get; init; }
    /// <summary>The path stem every other file shares.</summary>
    public required string Stem { get; init; }
    /// <summary>Every file written, the DBN's sidecar included.</summary>
    public required IReadOnlyList<string> Files { get; init; }
    /// <summary>
    /// A class-conditional DBN's samples judged by the fine-tuned classifier: of 100 samples drawn per digit (labels
    /// clamped, 1,000 Gibbs steps in the top RBM), the confusion between the digit drawn and the digit it is called
    /// (accuracy: chance 10 %); null for a DBN without labels.
    /// </summary>
    public ClassificationMetrics? SamplesJudged { get; init; }
}

/// <summary>
/// One run of an MNIST DBN classifier recipe, as the <c>tbm mnist</c> command runs it, so that the command line is a
/// parser and a presenter over this tested service: the output is checked writable before anything trains
/// (<see cref="Create"/>), the data loaded (<see cref="Load"/>), the pipeline run with checkpoints under the output's stem
/// so an interrupted run continues (<see cref="Train"/>), and the results written (<see cref="WriteReport"/>) before
/// the checkpoints are deleted (<see cref="DeleteCheckpoints"/>). Owns the data tensors; dispose it.
/// </summary>
public sealed class MnistClassifierRun : IDisposable
{
    /// <summary>A classifier error at or above this (10 classes: guessing gives 90 %) means the training failed.</summary>
    public const double ChanceLevelError = 0.85;

    private MnistDataset? _train, _test;
    private Tensor? _trainX, _trainY, _testX, _testY;

    private MnistClassifierRun(MnistRunRequest request)
    {
        Request = request;
        CheckpointStem = request.CheckpointEvery > 0 ? Path.ChangeExtension(request.Output, null) : null;
        // With a pretrained DBN the pipeline neither reads nor writes a pretrained-DBN checkpoint: any such file is left alone.
        CheckpointFiles = CheckpointStem is null ? [] : DbnClassifierPipeline.CheckpointFiles(CheckpointStem, pretrainsHere: request.PretrainedPath is null,
                                                                                                          layers: request.Preset.LayerSizes.Length - 1);
    }

    /// <summary>
    /// Checks the request and the output location (its directory is created and a probe file written and removed there,
    /// so that an unwritable location fails now, not after hours of training).
    /// </summary>
    /// <exception cref="ArgumentException">A setting out of range; the message names it, expected and got.</exception>
    /// <exception cref="OutputLocationException">The output location cannot be written (<see cref="OutputLocation.Prepare"/>).</exception>
    public static MnistClassifierRun Create(MnistRunRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Preset.Pretraining.Validate(request.Preset.LayerSizes.Length - 1);
        request.Preset.FineTuning.Validate();
        if (request.Limit is < 1) throw new ArgumentOutOfRangeException(nameof(request), $"Limit: expected ≥ 1, got {request.Limit}.");
        if (request.CheckpointEvery < 0) throw new ArgumentOutOfRangeException(nameof(request), $"CheckpointEvery: expected ≥ 0, got {request.CheckpointEvery}.");
        OutputLocation.Prepare("Output", request.Output);
        return new MnistClassifierRun(request);
    }

    /// <summary>The request this run carries out.</summary>
    public MnistRunRequest Request { get; }

    /// <summary>The stem of the run's checkpoints (the output without its extension), or null without checkpoints.</summary>
    public string? CheckpointStem { get; }

    /// <summary>Every checkpoint file this run may write and continue from (<see cref="DbnClassifierPipeline.CheckpointFiles"/>).</summary>
    public IReadOnlyList<string> CheckpointFiles { get; }

    /// <summary>
    /// The checkpoints of an earlier run of this request that exist now, i.e. what <see cref="Train"/> continues from (a
    /// pretrained DBN of the earlier format counts once its sidecar, written last, exists; the sidecar is not named twice).
    /// </summary>
    public IReadOnlyList<string> PresentCheckpoints() =>
        CheckpointFiles.Where(c => Path.GetExtension(c) != ".json" && File.Exists(Path.GetExtension(c) == ".pt" ? Checkpoint.SidecarPath(c) : c)).ToList();

    /// <summary>Training digits loaded (all, validation included); 0 before <see cref="Load"/>.</summary>
    public int TrainCount => _train?.Count ?? 0;
    /// <summary>Test digits loaded; 0 before <see cref="Load"/>.</summary>
    public int TestCount => _test?.Count ?? 0;
    /// <summary>Training digits fitted, i.e. those left beside the validation split.</summary>
    public int FitCount => TrainCount - Request.Preset.FineTuning.ValidationCount;

    /// <summary>
    /// Loads the training digits (the first <see cref="MnistRunRequest.Limit"/> when given) and the test digits onto the
    /// request's device.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">No training digits would be left beside the validation split, or the
    /// fine-tuning batch is larger than the fitted digits; <c>ParamName</c> is <c>ValidationCount</c> or <c>BatchSize</c>.</exception>
    public void Load()
    {
        var device = Request.Device ?? torch.CPU;
        _train = MnistDataset.Load(Request.DataDirectory, MnistSplit.Train, Request.Limit);
        _test = MnistDataset.Load(Request.DataDirectory, MnistSplit.Test);
        var f = Request.Preset.FineTuning;
        if (_train.Count <= f.ValidationCount)
            throw new ArgumentOutOfRangeException(nameof(f.ValidationCount), f.ValidationCount, $"ValidationCount must be less than the number of training digits, {_train.Count}");
        if (f.BatchSize > FitCount)
            throw new ArgumentOutOfRangeException(nameof(f.BatchSize), f.BatchSize, $"BatchSize must be at most the number of training digits left after the {f.ValidationCount} held out for validation, {FitCount}");
        _trainX = _train.Images.to(device);
        _trainY = _train.Labels.to(device);
        _testX = _test.Images.to(device);
        _testY = _test.Labels.to(device);
    }

    /// <summary>
    /// Pretrains (or loads <see cref="MnistRunRequest.PretrainedPath"/>), fine-tunes and tests, continuing from the
    /// checkpoints an earlier run left (<see cref="PresentCheckpoints"/>).
    /// </summary>
    /// <param name="pretrainProgress">Pretraining progress.</param>
    /// <param name="fineTuneProgress">Fine-tuning progress.</param>
    /// <param name="tensorBoard">Where every stage's progress also goes, or null.</param>
    /// <param name="cancellationToken">Cancellation; the checkpoints written so far stay.</param>
    /// <returns>The result and the provenance of the pretrained DBN (its sidecar's record), null when pretrained here.</returns>
    /// <exception cref="InvalidOperationException"><see cref="Load"/> was not called.</exception>
    /// <exception cref="ArgumentException">The pretrained DBN's label units differ from the preset's (the message names
    /// <c>PretrainedPath</c> and the <c>ClassConditional</c> value that would fit it).</exception>
    public (DbnClassifierResult Result, JsonObject? PretrainedFrom) Train(IProgress<TrainingProgress>? pretrainProgress = null,
        IProgress<ClassifierProgress>? fineTuneProgress = null, Logging.TensorBoardLogger? tensorBoard = null, CancellationToken cancellationToken = default)
    {
        if (_trainX is null || _trainY is null || _testX is null || _testY is null) throw new InvalidOperationException("Load() first: no data is loaded.");
        var preset = Request.Preset;
        // The given DBN's record (weights hash, how it was pretrained) goes into this run's files: pretraining happened
        // elsewhere, and its DBN sidecar and metrics would otherwise not say how. Read with the weights, from one sidecar.
        DBN? pretrained = null;
        JsonObject? from = null;
        if (Request.PretrainedPath is { } path) (pretrained, from) = Checkpoint.LoadWithProvenance<DBN>(path, Request.Device ?? torch.CPU);
        try
        {
            if (pretrained is not null && pretrained.is_class_conditional != preset.ClassConditional)
                throw new ArgumentException($"PretrainedPath {Request.PretrainedPath}: the DBN {(pretrained.is_class_conditional ? "has" : "has no")} label units in its top RBM, but preset {preset.Name} " +
                                            $"{(preset.ClassConditional ? "joins" : "pretrains without")} them; set ClassConditional to {(pretrained.is_class_conditional ? "true" : "false")} to fine-tune it");
            var result = DbnClassifierPipeline.Run(preset, _trainX, _trainY, _testX, _testY, Request.Seed, pretrained, pretrainProgress, fineTuneProgress,
                cancellationToken, CheckpointStem, Math.Max(Request.CheckpointEvery, 1), tensorBoard);
            return (result, from);
        }
        finally
        {
            pretrained?.Dispose();
        }
    }

    /// <summary>
    /// True when fine-tuning failed rather than being short: an error at chance level (<see cref="ChanceLevelError"/>), or
    /// a last training loss above twice a uniform guess's (2 ln 10 ≈ 4.6; training starts near ln 10 and only a
    /// diverging step size climbs above it: a rate of 10⁶ ends near 10⁸ while its error may stay at 80 %).
    /// </summary>
    public static bool Failed(double error, double lastTrainLoss) =>
        error >= ChanceLevelError || !(lastTrainLoss <= 2 * Math.Log(10));

    /// <summary>
    /// The error <see cref="Failed"/> judges (the best validation error when it is at least the test error, else the test
    /// error: a diverged run may still pick a lucky validation epoch) with its name, and the last training loss (of the
    /// refit when there was one).
    /// </summary>
    public static (string What, double Error, double LastTrainLoss) Judged(DbnClassifierResult r)
    {
        var h = r.FineTuning;
        var (what, error) = h.BestValidationError is { } v && v >= r.Test.ErrorRate ? ("best validation", v) : ("test", r.Test.ErrorRate);
        double lastLoss = (r.Refit ?? h).Epochs is { Count: > 0 } last ? last[^1].TrainLoss : double.NaN;
        return (what, error, lastLoss);
    }

    /// <summary>
    /// Writes the run's results under the output's stem, each file atomically: the DBN (<c>.pt</c> + JSON sidecar with the
    /// summary, the preset and the pretraining metrics), the classifier (<c>STEM-classifier.pt</c>), the bottom layer's
    /// filters, samples (a class-conditional DBN's: ten per digit of the 100 per digit judged by the classifier; else 100
    /// free samples), the test confusion matrix, the fine-tuning and pretraining curves (PNGs), <c>STEM-metrics.json</c>
    /// and <c>STEM-finetune.csv</c> (one row per fine-tuning epoch).
    /// </summary>
    /// <param name="r">The result of <see cref="Train"/>.</param>
    /// <param name="seconds">The run's wall time, for the summary.</param>
    /// <param name="pretrainedFrom">The pretrained DBN's provenance from <see cref="Train"/>.</param>
    public MnistRunReport WriteReport(DbnClassifierResult r, double seconds, JsonObject? pretrainedFrom)
    {
        ArgumentNullException.ThrowIfNull(r);
        var preset = Request.Preset;
        ulong seed = Request.Seed;
        const int judgedPerDigit = 100, shownPerDigit = 10;
        ClassificationMetrics? samplesJudged = null;
        Tensor? judgedSamples = null;
        if (r.Dbn.is_class_conditional)
        {
            using var judgeGen = new Generator(seed + 1, r.Dbn.device);
            samplesJudged = DbnMetrics.conditional_sample_metrics(r.Dbn, r.Classifier, out judgedSamples, per_class: judgedPerDigit, burn_in: 1000, generator: judgeGen);
        }
        using var judgedOwner = judgedSamples;   // disposed however this method ends
        var summary = new
        {
            preset = preset.Name, preset.Description, seed, limit = Request.Limit, seconds,
            pretrain_seconds = r.PretrainSeconds, finetune_seconds = r.FineTuneSeconds,
            best_validation_error = r.FineTuning.BestValidationError, best_epoch = r.FineTuning.BestEpoch,
            test_error = r.Test.ErrorRate, test_errors = r.Test.Errors, free_energy_test_error = r.FreeEnergyTestError,
            refit = r.Refit is not null, selected_model_test_error = r.SelectedTest?.ErrorRate,
            threads = torch.get_num_threads(),
            sample_class_accuracy = samplesJudged?.Accuracy,
            sample_class_accuracy_per_digit = samplesJudged?.Recall(),
        };
        var dbnPath = Checkpoint.Save(r.Dbn, Request.Output, new { summary, preset, pretraining = r.Pretraining, pretrained_from = pretrainedFrom });
        var stem = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(dbnPath))!, Path.GetFileNameWithoutExtension(dbnPath));
        var files = new List<string> { dbnPath, Checkpoint.SidecarPath(dbnPath), stem + "-classifier.pt", Checkpoint.SidecarPath(stem + "-classifier.pt") };
        Checkpoint.Save(r.Classifier, stem + "-classifier.pt", new { summary, fine_tuning = r.FineTuning, refit = r.Refit });

        ImageGrid.SaveFilters(stem + "-filters.png", r.Dbn.layers[0].weight, 28, 28);
        ConfusionMatrixImage.Save(stem + "-confusion.png", r.Test.ConfusionMatrix);
        using (var gen = judgedSamples is null ? new Generator(seed, r.Dbn.device) : null)
        using (torch.NewDisposeScope())
        {
            // Class-conditional DBN: row d holds the first ten of the samples judged above for digit d (class-major, 100
            // per digit); otherwise 100 free samples of the top RBM.
            var samples = judgedSamples is not null
                ? judgedSamples.view(r.Dbn.n_classes, judgedPerDigit, -1).narrow(1, 0, shownPerDigit).reshape(-1, judgedSamples.shape[1])
                : r.Dbn.generate(100, burn_in: 1000, generator: gen);
            ImageGrid.SaveTiles(stem + "-samples.png", samples, 28, 28, columns: 10);
        }
        files.AddRange([stem + "-filters.png", stem + "-confusion.png", stem + "-samples.png"]);
        var ft = r.FineTuning.Epochs;
        var x = ft.Select(e => (double)e.Epoch).ToArray();
        var curves = new List<Series>();
        bool averaged = ft.Any(e => e.RawValidationError is not null);   // iterate averaging: validation measured the averaged weights
        if (ft.Any(e => e.ValidationError is not null))   // no empty legend entry for a run without a validation split
            curves.Add(new Series(averaged ? "averaged weights' validation error (%)" : "validation error (%)", x, ft.Select(e => 100 * (e.ValidationError ?? double.NaN)).ToArray()));
        if (averaged)
            curves.Add(new Series("raw weights' validation error (%)", x, ft.Select(e => 100 * (e.RawValidationError ?? double.NaN)).ToArray()));
        curves.Add(new Series("train cross-entropy", x, ft.Select(e => e.TrainLoss).ToArray()));
        LineChart.Save(stem + "-finetune.png", new ChartSpec($"Fine-tuning ({preset.Name})", "epoch", "error / loss", curves.ToArray()));
        files.Add(stem + "-finetune.png");
        if (r.Pretraining.Count > 0)
        {
            LineChart.Save(stem + "-pretrain.png", new ChartSpec($"Pretraining ({preset.Name})", "epoch", "reconstruction error per example",
                r.Pretraining.Select((layer, l) => new Series($"layer {l + 1}",
                    layer.Where(m => m.ReconstructionError is not null).Select(m => (double)m.Epoch).ToArray(),
                    layer.Where(m => m.ReconstructionError is not null).Select(m => m.ReconstructionError!.Value).ToArray())).ToArray()));
            files.Add(stem + "-pretrain.png");
        }
        AtomicFile.WriteAllText(stem + "-metrics.json", JsonSerializer.Serialize(new { summary, fine_tuning = r.FineTuning, refit = r.Refit, pretraining = r.Pretraining, pretrained_from = pretrainedFrom },
            Checkpoint.JsonOptions));
        var csv = new StringBuilder("epoch,train_loss,validation_error,validation_loss,learning_rate,seconds,raw_validation_error\n");
        foreach (var e in ft)
            csv.AppendLine(string.Join(",", e.Epoch, F(e.TrainLoss), F(e.ValidationError), F(e.ValidationLoss), F(e.LearningRate), F(e.Seconds), F(e.RawValidationError)));
        AtomicFile.WriteAllText(stem + "-finetune.csv", csv.ToString());
        files.AddRange([stem + "-metrics.json", stem + "-finetune.csv"]);
        return new MnistRunReport { DbnPath = dbnPath, Stem = stem, Files = files, SamplesJudged = samplesJudged };
    }

    /// <summary>Deletes the run's checkpoints: call once <see cref="WriteReport"/> has written the results.</summary>
    public void DeleteCheckpoints()
    {
        foreach (var c in CheckpointFiles) File.Delete(c);
    }

    private static string F(double? v) => v is { } d ? d.ToString("G6", CultureInfo.InvariantCulture) : "";

    /// <summary>Disposes the loaded data.</summary>
    public void Dispose()
    {
        _trainX?.Dispose(); _trainY?.Dispose(); _testX?.Dispose(); _testY?.Dispose();
        _train?.Dispose(); _test?.Dispose();
    }
}

using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using TorchBoltzmann.Data;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Recipes;
using TorchBoltzmann.Training;
using TorchBoltzmann.Visualization;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Cli.Commands;

/// <summary>
/// <c>tbm mnist</c>, the main job: fetch MNIST if missing, pretrain a DBN, fine-tune a classifier, print validation and
/// test error, write the checkpoints, PNGs (filters, samples per class, confusion matrix, curves) and the run's metrics.
/// </summary>
internal static class MnistCommand
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = $"Recipe: {string.Join(", ", DbnClassifierPreset.All.Keys)}", DefaultValueFactory = _ => "quick" };
        var output = new Option<string?>("--output", "-o")
        {
            Description = $"Checkpoint path stem (default {CommonOptions.RunsDirectory}/dbn-PRESET.pt; {CommonOptions.RunsDirectory}/ is ignored by git; the classifier goes to …-classifier.pt). " +
                          "Its directory is created, and checked to be writable before training starts",
        };
        var pretrained = new Option<string?>("--pretrained") { Description = "Fine-tune this DBN checkpoint instead of pretraining (same architecture)" };
        var checkpointEvery = new Option<int>("--checkpoint-every")
        {
            Description = "Write a fine-tuning checkpoint (OUTPUT-STEM-finetune.ckpt, -refit.ckpt) every N epochs, the layer in pretraining every N epochs (OUTPUT-STEM-pretrained.layerL.ckpt) and the DBN after every pretrained layer (OUTPUT-STEM-pretrained.ckpt); a run that finds them continues from them (also after Ctrl+C or SIGTERM), and they are deleted when the run's results are written (0: no checkpoints)",
            DefaultValueFactory = _ => 1,
        };
        var overrides = new PresetOverrides();
        var data = new CommonOptions.DataOptions();
        var device = CommonOptions.Device();
        var seed = CommonOptions.Seed();
        var threads = CommonOptions.Threads();
        var limit = CommonOptions.Limit();
        var tensorBoard = TensorBoardRun.Option();
        var cmd = new Command("mnist", "Main job: pretrain a DBN on MNIST, fine-tune it as a classifier, report validation and test error. " +
                                       $"Exit codes: 0 done, 1 error, {ExitCodes.UselessModel} the classifier did not learn (≥ {100 * MnistClassifierRun.ChanceLevelError:F0} % error, or a last training loss above 2 ln 10; files written, see the warning), " +
                                       $"{ExitCodes.Interrupted} interrupted (Ctrl+C or SIGTERM: the checkpoints are kept and the same command continues)")
        {
            preset, output, pretrained, device, seed, threads, limit, checkpointEvery, tensorBoard,
        };
        data.AddTo(cmd);
        overrides.AddTo(cmd);
        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Run(
            r.GetValue(preset)!, p => overrides.Apply(r, p), r.GetValue(output), r.GetValue(pretrained),
            data.Read(r), r.GetValue(device)!, r.GetValue(seed), r.GetValue(threads), r.GetValue(limit), r.GetValue(checkpointEvery), r.GetValue(CommonOptions.Verbose),
            r.GetValue(tensorBoard), ct)));
        return cmd;
    }

    private static int Run(string presetName, Func<DbnClassifierPreset, DbnClassifierPreset> overrides, string? output, string? pretrainedPath,
                           CommonOptions.DataSource source, string deviceName, ulong seed, int threads, int? limit, int checkpointEvery, bool verbose,
                           string? tensorBoardRoot, CancellationToken ct)
    {
        // Set by the body, read by the interruption notice.
        MnistClassifierRun? active = null;
        var saved = new SavedEpochs(Math.Max(checkpointEvery, 1));
        return CommonOptions.Guard(() =>
        {
            CommonOptions.ApplyThreads(threads);
            var device = CommonOptions.ParseDevice(deviceName);
            var preset = overrides(DbnClassifierPreset.FromName(presetName));
            OptionFlags.Validate(() => preset.Pretraining.Validate(preset.LayerSizes.Length - 1), OptionFlags.MnistPretraining);
            OptionFlags.Validate(preset.FineTuning.Validate, OptionFlags.MnistFineTuning);
            if (limit is { } lim) OptionFlags.AtLeast("--limit", lim, 1);
            OptionFlags.AtLeast("--checkpoint-every", checkpointEvery, 0);
            output ??= Path.Combine(CommonOptions.RunsDirectory, $"dbn-{preset.Name}.pt");
            CommonOptions.PrepareOutput("--output", output);   // before the training, not after it
            ct.ThrowIfCancellationRequested();

            var dir = CommonOptions.ResolveMnist(source, verbose);
            using var run = MnistClassifierRun.Create(new MnistRunRequest(preset, output, dir)
            {
                PretrainedPath = pretrainedPath, Device = device, Seed = seed, Limit = limit, CheckpointEvery = checkpointEvery,
            });
            OptionFlags.Validate(run.Load, OptionFlags.MnistRun);
            Terminal.Line(
                $"Preset {preset.Name}: {preset.Description}. {run.FitCount} training + " +
                $"{preset.FineTuning.ValidationCount} validation digits, {run.TestCount} test digits, device {device}, seed {seed}, {torch.get_num_threads()} threads.");
            active = run;
            var continuing = run.PresentCheckpoints();
            foreach (var c in continuing)
                Terminal.Line($"Continuing from the checkpoint {c} (an earlier run of this command stopped; delete it to start over).");
            ct.ThrowIfCancellationRequested();
            // Every stage's epoch metrics, histograms and update ratios, and the bottom layer's filters, in TensorBoard (in the
            // run this command continues, when it continues).
            using var tensorBoard = TensorBoardRun.Open(tensorBoardRoot, preset.Name, seed, continuing.Count > 0);
            if (tensorBoard is not null) tensorBoard.RbmImages = TensorBoardRun.MnistImages(null);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            DbnClassifierResult? trained = null;
            System.Text.Json.Nodes.JsonObject? pretrainedFrom = null;
            OptionFlags.Validate(() => (trained, pretrainedFrom) = ConsoleProgress.Run(p => run.Train(p, new FineTuneLines(p, saved.Epoch), tensorBoard, ct)), OptionFlags.MnistRun);
            using var result = trained!;
            clock.Stop();

            var h = result.FineTuning;
            Terminal.Line(
                (h.BestValidationError is { } bv ? $"Best validation error {100 * bv:F2} % (epoch {h.BestEpoch} of {h.Epochs.Count}{(h.StoppedEarly ? ", stopped early" : "")}); "
                                                 : $"No validation ({h.Epochs.Count} epochs on all {run.FitCount} training digits); ") +
                (result.SelectedTest is { } sel ? $"that model's test error {100 * sel.ErrorRate:F2} % ({sel.Errors}/{sel.Count}); after the refit on all {run.TrainCount} training digits for {h.BestEpoch} epochs, " : "") +
                $"test error {100 * result.Test.ErrorRate:F2} % ({result.Test.Errors}/{result.Test.Count}); " +
                (result.FreeEnergyTestError is { } fe2 ? $"DBN free-energy classifier before fine-tuning {100 * fe2:F2} %; " : "") +
                $"pretraining {result.PretrainSeconds:F0} s, fine-tuning {result.FineTuneSeconds:F0} s, " +
                // A run continued from checkpoints: its times include the earlier processes', the clock only this one's.
                (continuing.Count > 0
                    ? $"this process {clock.Elapsed.TotalSeconds:F0} s (the rest before its checkpoints)."
                    : $"total {clock.Elapsed.TotalSeconds:F0} s."));
            PrintConfusion(result.Test.ConfusionMatrix);
            ct.ThrowIfCancellationRequested();   // the checkpoints hold the finished training: a rerun only writes the results
            Interrupt.StopsAt = "once the result files are written (class-conditional samples can take minutes; after a second Ctrl+C the checkpoints are still there, and the same command writes the results without training again)";
            var report = run.WriteReport(result, clock.Elapsed.TotalSeconds, pretrainedFrom);
            if (report.SamplesJudged is { } judged)
                Terminal.Line(($"Class-conditional samples (100 per digit, 1,000 Gibbs steps): the classifier calls {100 * judged.Accuracy:F1} % of them the digit they were drawn for (chance 10 %); per digit: " +
                    string.Join(" ", judged.Recall().Select(a => (100 * a).ToString("F0", CultureInfo.InvariantCulture)))));
            var stem = report.Stem;
            Terminal.Line(($"Wrote {report.DbnPath} (+ .json), {stem}-classifier.pt, {stem}-{{filters,samples,confusion,finetune{(result.Pretraining.Count > 0 ? ",pretrain" : "")}}}.png, {stem}-metrics.json, {stem}-finetune.csv"));
            run.DeleteCheckpoints();   // the results are written: nothing left to continue

            // A diverging learning rate can end without NaN, as a classifier that guesses: say so, and fail.
            var (what, error, lastLoss) = MnistClassifierRun.Judged(result);
            if (MnistClassifierRun.Failed(error, lastLoss))
            {
                double presetRate = DbnClassifierPreset.FromName(presetName).FineTuning.LearningRate;
                Terminal.Warning($"the classifier did not learn: its {what} error is {100 * error:F1} % (guessing among 10 digits: 90 %) and its last training loss {lastLoss:G4} " +
                                 $"(guessing: ln 10 = 2.30), so the training failed. The likely cause is the fine-tuning learning rate (--lr {preset.FineTuning.LearningRate}; " +
                                 $"preset {preset.Name}'s is {presetRate}), else --momentum or --batch-size. The files were written anyway. Exit code {ExitCodes.UselessModel}.");
                return ExitCodes.UselessModel;
            }
            return ExitCodes.Success;
        }, () => Interrupted(active, checkpointEvery, saved));
    }

    /// <summary>The notice after Ctrl+C or SIGTERM: what the checkpoints hold and the command that continues from them.</summary>
    private static string Interrupted(MnistClassifierRun? run, int checkpointEvery, SavedEpochs saved)
    {
        if (checkpointEvery == 0)
            return $"Nothing was saved (--checkpoint-every 0 writes no checkpoints). Run it again to start over: {CommonOptions.CommandLine}";
        var present = run?.PresentCheckpoints() ?? [];
        if (run?.CheckpointStem is not { } stem || present.Count == 0)
            return $"No checkpoint had been written yet (pretraining and fine-tuning save every {checkpointEvery} epoch{(checkpointEvery == 1 ? "" : "s")}), " +
                   $"so a rerun starts over: {CommonOptions.CommandLine}";
        string pretrainedPath = DbnClassifierPipeline.PretrainedCheckpointPath(stem);
        var layerFiles = GreedyPretrainer.LayerCheckpointPaths(pretrainedPath, run.Request.Preset.LayerSizes.Length - 1).Select((f, l) => (f, l)).ToDictionary(x => x.f, x => x.l + 1);
        var what = present.Select(c => c == pretrainedPath || c == Checkpoint.WeightsPath(pretrainedPath) ? $"{c} (the DBN after {PretrainedLayers(c)} pretraining)"
                                     : layerFiles.TryGetValue(c, out int layer) ? $"{c} (layer {layer}'s pretraining so far)"
                                     : c == DbnClassifierPipeline.FineTuningCheckpointPath(stem) ? $"{c} (fine-tuning{saved.Describe(refit: false)})"
                                     : $"{c} (the refit on all digits{saved.Describe(refit: true)})");
        return $"Saved {string.Join(", ", what)}. Continue with: {CommonOptions.CommandLine}";
    }

    /// <summary>"2 of 3 layers' ", from the pretraining checkpoint's record (or an earlier version's sidecar), or "its finished layers'" if it cannot be read.</summary>
    private static string PretrainedLayers(string path)
    {
        try
        {
            int done, total;
            if (Path.GetExtension(path) == ".pt")
            {
                var training = Checkpoint.ReadSidecar(path)["training"];
                done = training?["Layers"]?.AsArray().Count ?? throw new InvalidDataException("no layers");
                total = training["Tag"]?["layers"]?.GetValue<string>().Split('-').Length - 1 ?? 0;
            }
            else
            {
                var (identity, values) = RunCheckpoint.ReadRecord(path, "pretraining");
                done = values["layers"]?.AsArray().Count ?? throw new InvalidDataException("no layers");
                total = identity.TryGetValue("layers", out var sizes) ? sizes.Split('-').Length - 1 : 0;
            }
            return total > 0 ? $"{done} of {total} layers'" : $"{done} layers'";
        }
        catch (Exception e) when (e is IOException or InvalidDataException or InvalidOperationException or System.Text.Json.JsonException or CheckpointException)
        {
            return "its finished layers'";
        }
    }

    /// <summary>The last fine-tuning and refit epochs a checkpoint was written after, in this process.</summary>
    private sealed class SavedEpochs(int every)
    {
        private int _fineTune, _refit;

        public void Epoch(string stage, int epoch, int epochs)
        {
            if (epoch % every != 0 && epoch != epochs) return;
            if (stage == DbnClassifierPipeline.RefitStage) _refit = epoch;
            else _fineTune = epoch;
        }

        public string Describe(bool refit) => (refit ? _refit : _fineTune) is var e and > 0 ? $" after epoch {e}" : "";
    }

    private static void PrintConfusion(int[,] cm)
    {
        var table = new Table().Title("test confusion matrix (rows: true digit, columns: predicted)");
        table.AddColumn(" ");
        for (int j = 0; j < cm.GetLength(1); j++) table.AddColumn(j.ToString(CultureInfo.InvariantCulture));
        for (int i = 0; i < cm.GetLength(0); i++)
            table.AddRow(new[] { i.ToString(CultureInfo.InvariantCulture) }.Concat(Enumerable.Range(0, cm.GetLength(1)).Select(j => cm[i, j].ToString(CultureInfo.InvariantCulture))).ToArray());
        Terminal.Out.Write(table);
    }

    /// <summary>
    /// The presets' values of one setting for a help text, read from <see cref="DbnClassifierPreset.All"/> rather than
    /// restated: "quick 30, hinton2006 …", or one value when they all agree ("10000 in every preset").
    /// </summary>
    internal static string PresetValues(Func<DbnClassifierPreset, object?> value)
    {
        static string Format(object? v) => v switch
        {
            null => "none",
            bool b => b ? "true" : "false",
            double d => d.ToString("G6", CultureInfo.InvariantCulture),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => v.ToString() ?? "none",
        };
        var values = DbnClassifierPreset.All.Select(kv => (kv.Key, Value: Format(value(kv.Value)))).ToList();
        return values.Select(v => v.Value).Distinct().Count() == 1
            ? $"{values[0].Value} in every preset"
            : string.Join(", ", values.Select(v => $"{v.Key} {v.Value}"));
    }

    /// <summary>Command-line overrides of a preset's hyperparameters (any not given keeps the preset's value).</summary>
    private sealed class PresetOverrides
    {
        private static string Top(Func<RbmTrainingOptions, object?> value) => PresetValues(p => value(p.Pretraining.ForLayer(p.LayerSizes.Length - 2)));
        private readonly Option<int?> _pretrainEpochs = new("--pretrain-epochs") { Description = $"Override the preset's CD epochs per layer (every layer; ≥ 1; bottom layer: {PresetValues(p => p.Pretraining.ForLayer(0).Epochs)})" };
        private readonly Option<int?> _topEpochs = new("--top-epochs") { Description = $"Override the CD epochs of the top RBM alone (after --pretrain-epochs; ≥ 1; {Top(o => o.Epochs)})" };
        private readonly Option<int?> _topK = new("--top-k") { Description = $"Gibbs steps k of CD-k for the top RBM ({Top(o => o.K)}); more steps make a class-conditional DBN's samples more often of the clamped digit" };
        private readonly Option<double?> _initStd = new("--init-std") { Description = $"Re-initialise each RBM right before it trains with W ~ N(0, σ²), zero biases (σ: {PresetValues(p => p.Pretraining.InitialWeightStd)}; none: the DBN's own initialisation, σ = 0.01; dropout's 0.1 is rbm.m's of Hinton & Salakhutdinov 2006)" };
        private readonly Option<string?> _visibleBiasInit = new("--visible-bias-init") { Description = $"Each RBM's visible biases before it trains: data (b_i = log p_i/(1 − p_i) of its input, Hinton's guide §8) or zero (as rbm.m). Default: the preset's ({PresetValues(p => p.Pretraining.InitVisibleBiasFromData ? "data" : "zero")})" };
        private readonly Option<int?> _finetuneEpochs = new("--finetune-epochs") { Description = $"Override the preset's maximum fine-tuning epochs (≥ 1; {PresetValues(p => p.FineTuning.Epochs)})" };
        private readonly Option<int?> _validation = new("--validation") { Description = $"Validation digits held out from the end of the training set (default: the preset's, {PresetValues(p => p.FineTuning.ValidationCount)})" };
        private readonly Option<double?> _lr = new("--lr") { Description = $"Override the fine-tuning learning rate η₀ ({PresetValues(p => p.FineTuning.LearningRate)}; a classifier that ends at chance level exits with code 3 and names it as the likely cause)" };
        private readonly Option<double?> _momentum = new("--momentum") { Description = $"Override the fine-tuning momentum ({PresetValues(p => p.FineTuning.Momentum)})" };
        private readonly Option<double?> _initialMomentum = new("--initial-momentum") { Description = "Momentum at the first epoch, rising linearly to --momentum over --momentum-ramp epochs" };
        private readonly Option<int?> _momentumRamp = new("--momentum-ramp") { Description = "Epochs over which the momentum rises from --initial-momentum to --momentum (0: constant)" };
        private readonly Option<bool?> _dampen = new("--dampen-momentum") { Description = "Velocity as an average of gradients, v ← m v + (1 − m) g, so the step size is set by --lr alone (Hinton et al. 2012) (true/false)" };
        private readonly Option<double?> _maxNorm = new("--max-norm") { Description = "Max-norm constraint c on each unit's incoming weights, ‖w_j‖ ≤ c after every step (0: off)" };
        private readonly Option<string?> _dropoutConvention = new("--dropout-convention") { Description = $"What --lr, --weight-decay and --max-norm mean with dropout: inverted (as torch.optim: every parameter gets them as given) or non-inverted (as Hinton et al. 2012 and Srivastava et al. 2014: a weight behind dropout with keep probability q steps with η q²). Default: the preset's ({PresetValues(p => p.FineTuning.DropoutConvention == DropoutConvention.Inverted ? "inverted" : "non-inverted")})" };
        private readonly Option<double?> _lrDecay = new("--lr-decay") { Description = "Override the per-epoch learning-rate decay γ (η_e = η₀ γ^e)" };
        private readonly Option<double?> _weightDecay = new("--weight-decay") { Description = $"Override the fine-tuning L2 weight decay ({PresetValues(p => p.FineTuning.WeightDecay)})" };
        private readonly Option<int?> _batch = new("--batch-size") { Description = $"Override the fine-tuning mini-batch size (at most the training digits left after --validation; {PresetValues(p => p.FineTuning.BatchSize)})" };
        private readonly Option<int?> _patience = new("--patience") { Description = $"Override the early-stopping patience (0: never stop early; {PresetValues(p => p.FineTuning.Patience)})" };
        private readonly Option<int?> _headEpochs = new("--head-epochs") { Description = "Override the epochs that train only the output layer before the whole network" };
        private readonly Option<double?> _average = new("--average") { Description = "Iterate averaging: decay a of the moving average of the weights that validation measures and the model keeps (0: off; e.g. 0.999); the raw weights' validation error is printed beside it and written to -finetune.csv's raw_validation_error" };
        private readonly Option<bool?> _classConditional = new("--class-conditional") { Description = $"Join ten label units to the top RBM while pretraining (Hinton, Osindero & Teh 2006; true/false; default: the preset's: {PresetValues(p => p.ClassConditional)}). Must match a --pretrained DBN" };
        private readonly Option<bool?> _refit = new("--refit") { Description = $"After choosing the epochs on the validation split, retrain on all training digits for that many epochs (true/false; default: the preset's: {PresetValues(p => p.Refit)})" };
        private readonly Option<string?> _optimizer = new("--optimizer") { Description = "Fine-tuning optimizer: sgd, or cg (conjugate gradients with line searches per mini-batch, as Hinton & Salakhutdinov 2006; use with --batch-size 1000). Switching keeps the preset's other values: give --lr and --batch-size for the new optimizer too" };
        private readonly Option<int?> _lineSearches = new("--line-searches") { Description = "Line searches per mini-batch with --optimizer cg (default 3)" };
        private readonly Option<double?> _inputDropout = new("--input-dropout") { Description = $"Override the dropout probability on the inputs ({PresetValues(p => p.InputDropout)})" };
        private readonly Option<double?> _hiddenDropout = new("--hidden-dropout") { Description = $"Override the dropout probability after each hidden layer ({PresetValues(p => p.HiddenDropout)})" };

        private readonly Option<string?> _computeDtype = new("--compute-dtype") { Description = "Mixed precision: the dtype of the fine-tuning passes' matrix products (float32 or bfloat16); weights and updates stay float32, validation and test passes too. Faster on CPUs with bfloat16 instructions (AVX512-BF16, AMX; see the benchmarks); without them much slower (an RBM epoch measured 17 times float32's). Default: float32" };
        private readonly Option<string?> _pretrainComputeDtype = new("--pretrain-compute-dtype") { Description = "Mixed precision for pretraining: the dtype of every RBM's CD statistics products (float32 or bfloat16; RbmTrainingOptions.ComputeDtype); weights, updates and metrics stay float32. Slower than float32 on CPUs without bfloat16 instructions (17 times for an RBM epoch measured on AVX2). Default: float32" };
        private Option[] All => [_pretrainEpochs, _topEpochs, _topK, _initStd, _visibleBiasInit, _finetuneEpochs, _validation, _lr, _momentum, _initialMomentum, _momentumRamp, _dampen, _maxNorm, _dropoutConvention, _lrDecay, _weightDecay, _batch, _patience, _headEpochs, _average, _classConditional, _refit, _optimizer, _lineSearches, _inputDropout, _hiddenDropout, _computeDtype, _pretrainComputeDtype];

        public void AddTo(Command cmd)
        {
            _optimizer.AcceptOnlyFromAmong("sgd", "cg");
            _dropoutConvention.AcceptOnlyFromAmong("inverted", "non-inverted");
            _computeDtype.AcceptOnlyFromAmong("float32", "bfloat16");
            _pretrainComputeDtype.AcceptOnlyFromAmong("float32", "bfloat16");
            _visibleBiasInit.AcceptOnlyFromAmong("data", "zero");
            foreach (var o in All) cmd.Options.Add(o);
        }

        /// <summary>The overrides given on the command line with their values ("--lr 0.5, --refit"), in the order of the option list, or null when none.</summary>
        private string? Given(ParseResult r)
        {
            var given = All.Select(o => r.GetResult(o)).OfType<System.CommandLine.Parsing.OptionResult>().Where(o => !o.Implicit)
                .Select(o => string.Join(" ", new[] { o.Option.Name }.Concat(o.Tokens.Select(t => t.Value)))).ToList();
            return given.Count == 0 ? null : string.Join(", ", given);
        }

        public DbnClassifierPreset Apply(ParseResult r, DbnClassifierPreset p)
        {
            // Zero epochs would write an untrained model as if it were a result.
            foreach (var (option, name) in new[] { (_pretrainEpochs, "--pretrain-epochs"), (_topEpochs, "--top-epochs"), (_finetuneEpochs, "--finetune-epochs") })
                if (r.GetValue(option) is int e) OptionFlags.AtLeast(name, e, 1);
            var f = p.FineTuning;
            f = f with
            {
                Epochs = r.GetValue(_finetuneEpochs) ?? f.Epochs,
                ValidationCount = r.GetValue(_validation) ?? f.ValidationCount,
                LearningRate = r.GetValue(_lr) ?? f.LearningRate,
                Momentum = r.GetValue(_momentum) ?? f.Momentum,
                InitialMomentum = r.GetValue(_initialMomentum) ?? f.InitialMomentum,
                MomentumRampEpochs = r.GetValue(_momentumRamp) ?? f.MomentumRampEpochs,
                DampenMomentum = r.GetValue(_dampen) ?? f.DampenMomentum,
                MaxNorm = r.GetValue(_maxNorm) ?? f.MaxNorm,
                DropoutConvention = r.GetValue(_dropoutConvention) is { } dc ? (dc == "inverted" ? DropoutConvention.Inverted : DropoutConvention.NonInverted) : f.DropoutConvention,
                LearningRateDecay = r.GetValue(_lrDecay) ?? f.LearningRateDecay,
                WeightDecay = r.GetValue(_weightDecay) ?? f.WeightDecay,
                BatchSize = r.GetValue(_batch) ?? f.BatchSize,
                Patience = r.GetValue(_patience) ?? f.Patience,
                HeadOnlyEpochs = r.GetValue(_headEpochs) ?? f.HeadOnlyEpochs,
                AverageDecay = r.GetValue(_average) ?? f.AverageDecay,
                Optimizer = r.GetValue(_optimizer) is { } o ? ParseOptimizer(o) : f.Optimizer,
                LineSearches = r.GetValue(_lineSearches) ?? f.LineSearches,
                ComputeDtype = r.GetValue(_computeDtype) switch
                {
                    "bfloat16" => ScalarType.BFloat16,
                    "float32" => null,
                    _ => f.ComputeDtype,
                },
            };
            return p with
            {
                // The description is what the log and the metrics file show: it must not claim the preset's schedule
                // when the command line changed it.
                Description = Given(r) is { } given ? $"{p.Description}; command-line overrides: {given}" : p.Description,
                Pretraining = Pretraining(r, p),
                FineTuning = f,
                InputDropout = r.GetValue(_inputDropout) ?? p.InputDropout,
                HiddenDropout = r.GetValue(_hiddenDropout) ?? p.HiddenDropout,
                Refit = r.GetValue(_refit) ?? p.Refit,
                ClassConditional = r.GetValue(_classConditional) ?? p.ClassConditional,
            };
        }

        /// <summary>
        /// The preset's pretraining with --pretrain-epochs and --pretrain-compute-dtype (every layer, its per-layer overrides included), --init-std and
        /// --visible-bias-init, then --top-epochs and --top-k (the top RBM's own override) applied.
        /// </summary>
        private DbnPretrainingOptions Pretraining(ParseResult r, DbnClassifierPreset p)
        {
            var o = p.Pretraining;
            if (r.GetValue(_pretrainEpochs) is { } pe) o = o.ForEveryLayer(l => l with { Epochs = pe });
            if (r.GetValue(_pretrainComputeDtype) is { } dtype) o = o.ForEveryLayer(l => l with { ComputeDtype = dtype == "bfloat16" ? ScalarType.BFloat16 : null });
            if (r.GetValue(_initStd) is { } std) o = o with { InitialWeightStd = std };
            if (r.GetValue(_visibleBiasInit) is { } vb) o = o with { InitVisibleBiasFromData = vb == "data" };
            if (r.GetValue(_topEpochs) is null && r.GetValue(_topK) is null) return o;
            int top = p.LayerSizes.Length - 2;
            var t = o.ForLayer(top);
            return o.WithLayer(top, t with { Epochs = r.GetValue(_topEpochs) ?? t.Epochs, K = r.GetValue(_topK) ?? t.K });
        }
    }

    private static FineTuningOptimizer ParseOptimizer(string name) => name.ToLowerInvariant() switch
    {
        "sgd" => FineTuningOptimizer.Sgd,
        "cg" or "conjugate-gradient" => FineTuningOptimizer.ConjugateGradient,
        _ => throw new CliException($"--optimizer must be sgd or cg, got '{name}'"),
    };

}

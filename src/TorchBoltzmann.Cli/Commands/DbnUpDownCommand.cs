using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using TorchBoltzmann.Data;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchBoltzmann.Visualization;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Cli.Commands;

/// <summary>
/// <c>tbm dbn-updown</c>: fine-tunes a pretrained class-conditional DBN as a generative model with the up-down algorithm
/// (Hinton, Osindero &amp; Teh 2006) and reports its generative classifier's test error and how often its class-conditional
/// samples are judged to be their class, before and after.
/// </summary>
/// <remarks>
/// A verb of its own rather than a <c>tbm mnist</c> preset: up-down is a second stage on a DBN that already exists (the
/// paper's recipe pretrains, then runs up-down), its outputs (an untied DBN, no classifier) are not the classifier
/// pipeline's, and it takes a checkpoint of <c>tbm mnist</c> as its input, so the two stages run, checkpoint and resume
/// separately.
/// </remarks>
internal static class DbnUpDownCommand
{
    /// <summary>The DBN read when --dbn is not given: the quick preset's output of <c>tbm mnist</c>.</summary>
    internal static string DefaultDbn => Path.Combine(CommonOptions.RunsDirectory, "dbn-quick.pt");

    public static Command Create()
    {
        var dbnPath = new Option<string>("--dbn") { Description = "The pretrained class-conditional DBN (a checkpoint of tbm mnist)", DefaultValueFactory = _ => DefaultDbn };
        var judge = new Option<string?>("--judge")
        {
            Description = "Classifier checkpoint that judges the class-conditional samples (default: DBN-STEM-classifier.pt beside --dbn, as tbm mnist writes it; 'none': do not judge)",
        };
        var epochs = new Option<int>("--epochs") { Description = "Up-down epochs (the paper: 300); 0 measures the DBN as loaded (generative error, judged samples) and writes nothing, e.g. to judge an untied DBN again with another --judge; with the run checkpoint of the same --output present, it measures that run as it stands", DefaultValueFactory = _ => 300 };
        var batch = new Option<int>("--batch") { Description = "Mini-batch size (the paper: 10)", DefaultValueFactory = _ => 10 };
        var lr = new Option<double>("--lr") { Description = "Learning rate of every update (generative, top associative memory, recognition)", DefaultValueFactory = _ => 0.01 };
        var balanced = new Option<bool>("--balanced-batches") { Description = "Arrange each epoch's shuffled digits so that every 10 consecutive ones hold one of each digit (the paper's batches of ten)" };
        var topLr = new Option<double?>("--top-lr") { Description = "Learning rate of the top associative memory alone (default: --lr); the lower layers keep --lr" };
        var momentum = new Option<double>("--momentum") { Description = "SGD momentum, in [0, 1)", DefaultValueFactory = _ => 0.5 };
        var weightDecay = new Option<double>("--weight-decay") { Description = "L2 weight decay on the weight matrices", DefaultValueFactory = _ => 0.0 };
        var kSchedule = new Option<string>("--k-schedule")
        {
            Description = "Gibbs iterations of the top associative memory over equal spans of the run, comma-separated (the paper: 3,6,10)",
            DefaultValueFactory = _ => "3,6,10",
        };
        var validation = new Option<int>("--validation") { Description = "Digits held out from the end of the training set; the generative classifier's error on them is measured every epoch (0: none)", DefaultValueFactory = _ => 10000 };
        var judgePerClass = new Option<int>("--judge-per-class") { Description = "Class-conditional samples judged per digit, before and after", DefaultValueFactory = _ => 100 };
        var judgeBurnIn = new Option<int>("--judge-burn-in") { Description = "Gibbs steps in the top associative memory for each judged sample", DefaultValueFactory = _ => 1000 };
        var output = new Option<string?>("--output", "-o")
        {
            Description = $"Checkpoint path of the untied DBN (default: DBN-STEM-updown.pt beside --dbn); a .json sidecar, OUTPUT-STEM-samples.png and OUTPUT-STEM-metrics.json are written beside it. Its directory is created, and checked to be writable before training starts",
        };
        var checkpointEvery = CommonOptions.CheckpointEvery();
        var data = new CommonOptions.DataOptions();
        var device = CommonOptions.Device();
        var seed = CommonOptions.Seed();
        var threads = CommonOptions.Threads();
        var limit = CommonOptions.Limit();
        var tensorBoard = TensorBoardRun.Option();
        var cmd = new Command("dbn-updown", "Fine-tune a pretrained class-conditional DBN as a generative model with the up-down algorithm (Hinton, Osindero & Teh 2006): " +
                                            "the untied DBN, a sample grid per digit, the generative classifier's test error and the samples' judged accuracy before and after. " +
                                            $"Exit codes: 0 done, 1 error, {ExitCodes.Interrupted} interrupted (Ctrl+C or SIGTERM: the checkpoint is kept and the same command continues)")
        {
            dbnPath, judge, epochs, batch, lr, topLr, balanced, momentum, weightDecay, kSchedule, validation, judgePerClass, judgeBurnIn, output, checkpointEvery,
            device, seed, threads, limit, tensorBoard,
        };
        data.AddTo(cmd);
        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Run(new Arguments(
            r.GetValue(dbnPath)!, r.GetValue(judge), r.GetValue(epochs), r.GetValue(batch), r.GetValue(lr), r.GetValue(topLr), r.GetValue(balanced), r.GetValue(momentum), r.GetValue(weightDecay),
            r.GetValue(kSchedule)!, r.GetValue(validation), r.GetValue(judgePerClass), r.GetValue(judgeBurnIn), r.GetValue(output), r.GetValue(checkpointEvery),
            data.Read(r), r.GetValue(device)!, r.GetValue(seed), r.GetValue(threads), r.GetValue(limit), r.GetValue(CommonOptions.Verbose),
            r.GetValue(tensorBoard)), ct)));
        return cmd;
    }

    private sealed record Arguments(string Dbn, string? Judge, int Epochs, int Batch, double LearningRate, double? TopLearningRate, bool BalancedBatches, double Momentum, double WeightDecay,
                                    string KSchedule, int Validation, int JudgePerClass, int JudgeBurnIn, string? Output, int CheckpointEvery,
                                    CommonOptions.DataSource Source, string Device, ulong Seed, int Threads, int? Limit, bool Verbose,
                                    string? TensorBoard);

    /// <summary>The flags of the <see cref="UpDownOptions"/> properties this command sets.</summary>
    private static readonly IReadOnlyDictionary<string, string> Flags = new Dictionary<string, string>
    {
        ["Epochs"] = "--epochs", ["BatchSize"] = "--batch", ["LearningRate"] = "--lr", ["TopLearningRate"] = "--top-lr", ["Momentum"] = "--momentum",
        ["WeightDecay"] = "--weight-decay", ["GibbsSchedule"] = "--k-schedule",
    };

    /// <summary>
    /// Unties <paramref name="dbn"/> and gives it the weights of the up-down run checkpoint <paramref name="path"/>
    /// (<see cref="RunCheckpoint.LoadModel"/>: the run's other state is not loaded, and the run may go on writing the
    /// file), after checking that the run started from the DBN at <paramref name="dbnPath"/>; returns the label of its
    /// figures, "After epoch E of N (the run checkpoint PATH)".
    /// </summary>
    private static string LoadRunInFlight(DBN dbn, string dbnPath, string path)
    {
        string started = DbnIdentity(dbnPath);
        RunCheckpointModel run;
        try
        {
            run = RunCheckpoint.LoadModel(path, dbn.device, (kind, identity) =>
            {
                if (kind != "up-down")
                    throw new CliException($"--epochs 0 measures the run checkpoint beside --output, {path}, but that is the checkpoint of a {kind} run, not of an up-down run");
                if (identity.TryGetValue("tag.dbn", out var from) && from != started)
                    throw new CliException($"--epochs 0 measures the run checkpoint beside --output, {path}, but that run started from another DBN than --dbn {dbnPath} (weights SHA-256 {from}, not {started})");
            });
        }
        catch (CheckpointException e) { throw new CliException($"--epochs 0 measures the run checkpoint beside --output, which cannot be read: {e.Message}"); }
        using (run)
        {
            var trained = run.Model as DBN ?? throw new CliException($"--epochs 0: the run checkpoint {path} holds a {run.Model.GetType().Name}, not a DBN");
            if (!dbn.is_untied) dbn.untie();
            var (_, runArchitecture) = Checkpoint.Describe(trained);
            var (_, dbnArchitecture) = Checkpoint.Describe(dbn);
            if (runArchitecture.ToJsonString() != dbnArchitecture.ToJsonString())
                throw new CliException($"--epochs 0: the run checkpoint {path} holds the DBN {runArchitecture.ToJsonString()}, not the {dbnArchitecture.ToJsonString()} of --dbn {dbnPath} (untied)");
            var source = trained.state_dict();
            var target = dbn.state_dict();
            using (torch.no_grad())
                foreach (var (key, t) in target) t.copy_(source[key]);
            return $"After epoch {run.EpochsDone} of {run.Epochs?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"} (the run checkpoint {path})";
        }
    }

    /// <summary>What a run's checkpoint records of the DBN it started from: the SHA-256 of its weights (its path if the sidecar has none).</summary>
    private static string DbnIdentity(string dbnPath) => Checkpoint.ReadSidecar(dbnPath)["weights_sha256"]?.ToString() ?? Path.GetFullPath(dbnPath);

    /// <summary>The run checkpoint of a run writing <paramref name="output"/>: <c>OUTPUT-STEM-train.ckpt</c>.</summary>
    internal static string CheckpointPath(string output) => Path.ChangeExtension(output, null) + "-train.ckpt";

    /// <summary>Parses "3,6,10" into k values (each ≥ 1).</summary>
    internal static int[] ParseSchedule(string text)
    {
        var ks = OptionFlags.WholeNumbers(text);
        if (ks is null || ks.Any(k => k < 1))
            throw new CliException($"--k-schedule must list whole numbers ≥ 1 separated by commas (e.g. 3,6,10), got '{text}'");
        return ks;
    }

    private static int Run(Arguments a, CancellationToken ct)
    {
        string? checkpoint = null;   // set by the body, read by the interruption notice
        int savedEpoch = 0;
        return CommonOptions.Guard(() =>
        {
            CommonOptions.ApplyThreads(a.Threads);
            var device = CommonOptions.ParseDevice(a.Device);
            var options = new UpDownOptions
            {
                Epochs = Math.Max(a.Epochs, 1), BatchSize = a.Batch, LearningRate = a.LearningRate, TopLearningRate = a.TopLearningRate, BalancedBatches = a.BalancedBatches, Momentum = a.Momentum, WeightDecay = a.WeightDecay,
                GibbsSchedule = ParseSchedule(a.KSchedule), Seed = a.Seed,
            };
            OptionFlags.AtLeast("--epochs", a.Epochs, 0);
            OptionFlags.Validate(options.Validate, Flags);
            OptionFlags.AtLeast("--validation", a.Validation, 0);
            OptionFlags.AtLeast("--judge-per-class", a.JudgePerClass, 1);
            OptionFlags.AtLeast("--judge-burn-in", a.JudgeBurnIn, 1);
            OptionFlags.AtLeast("--checkpoint-every", a.CheckpointEvery, 0);
            if (a.Limit is { } lim) OptionFlags.AtLeast("--limit", lim, 1);
            if (!Checkpoint.Exists(a.Dbn))
                throw new CliException($"--dbn {a.Dbn}: no such checkpoint (make one with: tbm mnist -o {a.Dbn})");
            string dbnStem = Path.ChangeExtension(a.Dbn, null);
            string? judgePath = a.Judge switch
            {
                "none" => null,
                null => Checkpoint.Exists(dbnStem + "-classifier.pt") ? dbnStem + "-classifier.pt" : null,
                var j when Checkpoint.Exists(j) => j,
                var j => throw new CliException($"--judge {j}: no such checkpoint ('none' skips judging)"),
            };
            string output = a.Output ?? dbnStem + "-updown.pt";
            CommonOptions.PrepareOutput("--output", output);
            ct.ThrowIfCancellationRequested();

            using var dbn = Checkpoint.Load<DBN>(a.Dbn, device);
            if (!dbn.is_class_conditional)
                throw new CliException($"--dbn {a.Dbn}: the DBN has no label units (pretrain it with tbm mnist --class-conditional true)");
            if (dbn.n_layers < 2)
                throw new CliException($"--dbn {a.Dbn}: the DBN has a single RBM; up-down needs layers below its top associative memory");
            if (dbn.n_visible != 784)
                throw new CliException($"--dbn {a.Dbn}: the DBN takes {dbn.n_visible} inputs, not MNIST's 784");
            using var judgeModule = judgePath is null ? null : Checkpoint.Load(judgePath, device);
            var judgeModel = judgeModule is null ? null
                : judgeModule as nn.Module<Tensor, Tensor> ?? throw new CliException($"--judge {judgePath}: a {judgeModule.GetType().Name} is not a classifier of digits");
            if (judgePath is null) Terminal.Line("No classifier to judge the samples (--judge): their judged accuracy is not measured.");

            var dir = CommonOptions.ResolveMnist(a.Source, a.Verbose);
            using var testSet = MnistDataset.Load(dir, MnistSplit.Test);
            using var trainSet = a.Epochs > 0 ? MnistDataset.Load(dir, MnistSplit.Train, a.Limit) : null;   // --epochs 0 only measures
            int fit = 0;
            if (trainSet is not null)
            {
                if (a.Validation >= trainSet.Count)
                    throw new CliException($"--validation must be less than the number of training digits, {trainSet.Count}, got {a.Validation} (lower --validation{(a.Limit is null ? "" : " or raise --limit")})");
                fit = trainSet.Count - a.Validation;
                if (a.Batch > fit)
                    throw new CliException($"--batch must be at most the number of training digits left after the {a.Validation} held out, {fit}, got {a.Batch}");
            }
            using var trainX = trainSet?.Images.narrow(0, 0, fit).to(device);
            using var trainY = trainSet?.Labels.narrow(0, 0, fit).to(device);
            using var valX = trainSet is not null && a.Validation > 0 ? trainSet.Images.narrow(0, fit, a.Validation).to(device) : null;
            using var valY = trainSet is not null && a.Validation > 0 ? trainSet.Labels.narrow(0, fit, a.Validation).to(device) : null;
            using var testX = testSet.Images.to(device);
            using var testY = testSet.Labels.to(device);

            // --epochs 0 with this run's checkpoint beside the output measures the run in flight (or stopped) as it stands.
            string? inFlight = a.Epochs == 0 && File.Exists(CheckpointPath(output)) ? CheckpointPath(output) : null;
            string measured = inFlight is null ? "Before" : LoadRunInFlight(dbn, a.Dbn, inFlight);
            string digits = trainSet is null ? "no training digits read" : $"{fit} training + {a.Validation} validation digits";
            if (inFlight is not null)
                Terminal.Line($"Measuring the up-down run in {inFlight} (from {a.Dbn}; its options are the run's): {digits}, {testSet.Count} test digits, 0 epochs, device {device}, seed {a.Seed}, {torch.get_num_threads()} threads.");
            else
                Terminal.Line($"Up-down on {dbn} from {a.Dbn}: {digits}, {testSet.Count} test digits, {a.Epochs} epochs, " +
                              $"k {string.Join("→", options.GibbsSchedule)}, lr {options.LearningRate}{(options.TopLearningRate is { } tl ? $" (top memory {tl})" : "")}, momentum {options.Momentum}, batch {options.BatchSize}{(options.BalancedBatches ? " (one of each digit per 10)" : "")}, device {device}, seed {a.Seed}, {torch.get_num_threads()} threads.");
            double testBefore = GenerativeError(dbn, testX, testY);
            double? judgedBefore = null;
            if (judgeModel is not null)
            {
                judgedBefore = Judge(dbn, judgeModel, a, out var drawn);
                drawn.Dispose();
            }
            Terminal.Line($"{measured}: generative classifier test error {100 * testBefore:F2} %" +
                          (judgedBefore is { } jb ? $"; the classifier calls {100 * jb:F1} % of the class-conditional samples their digit" : "") + ".");
            ct.ThrowIfCancellationRequested();
            if (a.Epochs == 0)
            {
                Terminal.Line($"--epochs 0: {inFlight ?? a.Dbn} was measured, not trained; nothing was written.");
                return ExitCodes.Success;
            }

            checkpoint = a.CheckpointEvery > 0 ? CheckpointPath(output) : null;
            bool continuing = checkpoint is not null && File.Exists(checkpoint);
            if (continuing)
                Terminal.Line($"Continuing from the checkpoint {checkpoint} (an earlier run of this command stopped; delete it to start over).");
            var tag = new Dictionary<string, string>
            {
                ["dbn"] = DbnIdentity(a.Dbn),
                ["data"] = $"MNIST, limit {a.Limit?.ToString(CultureInfo.InvariantCulture) ?? "none"}, validation {a.Validation}",
            };
            using var trainer = new UpDownTrainer(dbn, options) { CheckpointPath = checkpoint, CheckpointEvery = Math.Max(a.CheckpointEvery, 1), CheckpointTag = tag };
            // Every epoch's record, and the DBN's weight histograms and update ratios, in TensorBoard (a continued run appends).
            using var tensorBoard = TensorBoardRun.Open(a.TensorBoard, "dbn-updown", a.Seed, continuing);
            tensorBoard?.Watch(trainer.Stage, dbn);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var history = ConsoleProgress.Run(p => trainer.Fit(trainX!, trainY!, valX, valY,
                ProgressTee.Of<LoopProgress<UpDownEpochMetrics>>(new EpochLines(p, Math.Max(a.CheckpointEvery, 1), e => savedEpoch = e), tensorBoard?.For<UpDownEpochMetrics>()), ct));
            clock.Stop();
            double seconds = trainer.RestoredSeconds + clock.Elapsed.TotalSeconds;
            Interrupt.StopsAt = "once the result files are written (judging the samples can take a minute)";

            double testAfter = GenerativeError(dbn, testX, testY);
            Tensor? samples = null;
            double? judgedAfter = judgeModel is null ? null : Judge(dbn, judgeModel, a, out samples);
            using var samplesOwner = samples;
            Terminal.Line($"After {history.Count} epochs ({seconds:F0} s): generative classifier test error {100 * testAfter:F2} %" +
                          (judgedAfter is { } ja ? $"; the classifier calls {100 * ja:F1} % of the class-conditional samples their digit" : "") + ".");

            var summary = new
            {
                dbn = a.Dbn, judge = judgePath, seed = a.Seed, limit = a.Limit, validation = a.Validation, seconds, threads = torch.get_num_threads(),
                test_error_before = testBefore, test_error_after = testAfter,
                sample_class_accuracy_before = judgedBefore, sample_class_accuracy_after = judgedAfter,
                judged_per_class = a.JudgePerClass, judge_burn_in = a.JudgeBurnIn,
            };
            var weights = Checkpoint.Save(dbn, output, new { command = "dbn-updown", summary, options, history });
            var stem = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(weights))!, Path.GetFileNameWithoutExtension(weights));
            using (torch.no_grad())
            using (var scope = torch.NewDisposeScope())
            {
                // Row d: ten samples drawn for digit d (the first ten judged ones when judged, else drawn here).
                int shown = Math.Min(10, a.JudgePerClass);
                var grid = samples is not null
                    ? samples.view(dbn.n_classes, a.JudgePerClass, -1).narrow(1, 0, shown).reshape(-1, dbn.n_visible)
                    : dbn.generate(10 * dbn.n_classes, a.JudgeBurnIn, torch.arange(dbn.n_classes, dtype: ScalarType.Int64, device: device).repeat_interleave(10),
                                   generator: new Generator(a.Seed + 1, device));
                ImageGrid.SaveTiles(stem + "-samples.png", grid, 28, 28, columns: samples is not null ? shown : 10);
            }
            AtomicFile.WriteAllText(stem + "-metrics.json", JsonSerializer.Serialize(new { summary, history }, CommonOptions.MetricsJson));
            if (checkpoint is not null) File.Delete(checkpoint);   // the results are written: nothing left to continue
            Terminal.Line($"Wrote {weights} (+ .json), {stem}-samples.png, {stem}-metrics.json");
            return ExitCodes.Success;
        }, () => a.CheckpointEvery == 0
            ? $"dbn-updown keeps no checkpoint with --checkpoint-every 0: nothing was written. Run it again to start over: {CommonOptions.CommandLine}"
            : checkpoint is not null && File.Exists(checkpoint)
                ? $"Saved {checkpoint} ({(savedEpoch > 0 ? $"the run after epoch {savedEpoch} of {a.Epochs}" : "written by an earlier run of this command")}). Continue with: {CommonOptions.CommandLine}"
                : $"No checkpoint had been written yet (one is written every {a.CheckpointEvery} epoch{(a.CheckpointEvery == 1 ? "" : "s")}), so a rerun starts over: {CommonOptions.CommandLine}");
    }

    /// <summary>The error of ŷ = argmin_y F([μ^{L−1}(v) ; e_y]) (the DBN's generative classifier) on (x, y).</summary>
    private static double GenerativeError(DBN dbn, Tensor x, Tensor y)
    {
        using var scope = torch.NewDisposeScope();
        return dbn.classify(x).ne(y).to_type(ScalarType.Float64).mean().ToDouble();
    }

    /// <summary>The fraction of class-conditional samples (per_class per digit) that <paramref name="judge"/> calls the digit they were drawn for.</summary>
    private static double Judge(DBN dbn, nn.Module<Tensor, Tensor> judge, Arguments a, out Tensor samples)
    {
        using var gen = new Generator(a.Seed + 1, dbn.device);
        var metrics = DbnMetrics.conditional_sample_metrics(dbn, judge, out samples, per_class: a.JudgePerClass, burn_in: a.JudgeBurnIn, generator: gen);
        return metrics.Accuracy;
    }

    /// <summary>Shows the progress bar and one line per epoch; notes the last epoch after which the checkpoint was written.</summary>
    private sealed class EpochLines(IProgress<TrainingProgress> bar, int every, Action<int> saved) : IProgress<LoopProgress<UpDownEpochMetrics>>
    {
        public void Report(LoopProgress<UpDownEpochMetrics> p)
        {
            bar.Report(new TrainingProgress(p.Stage, p.Epoch, p.Epochs, p.Batch, p.Batches, null));
            if (p.EpochMetrics is not { } m) return;
            if (m.Epoch % every == 0 || m.Epoch == m.Epochs) saved(m.Epoch);
            Terminal.Line($"{p.Stage} epoch {m.Epoch}/{m.Epochs}  k {m.GibbsSteps}  {m.TrainSeconds:F1} s  wake recon {m.WakeReconstructionError:F2}" +
                          (m.ValidationError is { } v ? $"  validation error {100 * v:F2} %" : ""));
        }
    }
}

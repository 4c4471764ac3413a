using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using TorchBoltzmann.Data;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchBoltzmann.Units;
using TorchBoltzmann.Visualization;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Cli.Commands;

/// <summary>
/// <c>tbm dbm</c>: trains a deep Boltzmann machine on MNIST (binarised at 0.5, or stochastically) by stochastic approximation with a
/// mean-field positive phase, then estimates log Z by AIS and the variational lower bound on the test log-likelihood.
/// </summary>
internal static class DbmCommand
{
    /// <summary>The command's flags for <see cref="DbmTrainingOptions"/>' properties.</summary>
    private static readonly IReadOnlyDictionary<string, string> Flags = new Dictionary<string, string>
    {
        ["Epochs"] = "--epochs", ["BatchSize"] = "--batch", ["LearningRate"] = "--lr", ["LearningRateDecay"] = "--lr-decay",
        ["Momentum"] = "--momentum", ["WeightDecay"] = "--weight-decay", ["Chains"] = "--chains", ["GibbsSteps"] = "--gibbs-steps",
        ["MeanFieldIterations"] = "--mf-iters", ["CenteringRate"] = "--centering-rate", ["FinalMomentum"] = "--final-momentum",
        ["MinLearningRate"] = "--min-lr",
    };

    public static Command Create()
    {
        var layers = new Option<string>("--layers") { Description = "Layer sizes, visible first, at least two hidden layers (the paper's MNIST DBM: 784,500,1000)", DefaultValueFactory = _ => "784,500,1000" };
        var epochs = new Option<int>("--epochs") { Description = "Training epochs (≥ 1)", DefaultValueFactory = _ => 1 };
        var lr = new Option<double>("--lr") { Description = "Learning rate of SGD", DefaultValueFactory = _ => 0.005 };
        var lrDecay = new Option<double>("--lr-decay") { Description = "Factor γ ∈ (0, 1] applied to the learning rate every epoch", DefaultValueFactory = _ => 1.0 };
        var momentum = new Option<double>("--momentum") { Description = "SGD momentum", DefaultValueFactory = _ => 0.5 };
        var weightDecay = new Option<double>("--weight-decay") { Description = "L2 weight decay on the weights", DefaultValueFactory = _ => 2e-4 };
        var batch = new Option<int>("--batch") { Description = "Mini-batch size", DefaultValueFactory = _ => 100 };
        var chains = new Option<int>("--chains") { Description = "Persistent Gibbs chains of the negative phase", DefaultValueFactory = _ => 100 };
        var gibbs = new Option<int>("--gibbs-steps") { Description = "Block Gibbs steps of the chains per update", DefaultValueFactory = _ => 5 };
        var mfIters = new Option<int>("--mf-iters") { Description = "Mean-field sweeps per batch at most (positive phase)", DefaultValueFactory = _ => 10 };
        var pretrainLr = new Option<double>("--pretrain-lr") { Description = "Learning rate of the pretraining RBMs (SGD, momentum 0.5 then 0.9 after 5 epochs)", DefaultValueFactory = _ => 0.1 };
        var pretrainWeightDecay = new Option<double>("--pretrain-weight-decay") { Description = "L2 weight decay of the pretraining RBMs", DefaultValueFactory = _ => 2e-4 };
        var pretrainKEvery = new Option<int>("--pretrain-k-every")
        {
            Description = "0: the top pretraining RBM learns by CD-1. N: its k grows by one every N epochs and its learning rate is divided by k " +
                          "(Salakhutdinov's code: N = 20, so k reaches 10 in 200 epochs)",
            DefaultValueFactory = _ => 0,
        };
        var finalMomentum = new Option<double?>("--final-momentum") { Description = "Momentum of the DBM's SGD after its first 5 epochs (default: --momentum throughout; Salakhutdinov's code: 0.9)" };
        var minLr = new Option<double>("--min-lr") { Description = "Floor of the DBM's decaying learning rate (0: none; Salakhutdinov's code: 0.0001)", DefaultValueFactory = _ => 0.0 };
        var pretrainEpochs = new Option<string>("--pretrain-epochs")
        {
            Description = "Epochs of greedy pretraining before the DBM trains (Salakhutdinov & Hinton 2009, §3.1: modified RBMs with doubled inputs, CD-1, " +
                          "learning rate 0.1, the DBM's batch size and seed): one number for every RBM, or one per RBM bottom first (e.g. 100,200); " +
                          "0, the default: none, the DBM starts from random weights. With checkpoints the pretraining is saved after every layer " +
                          "(OUTPUT-STEM-pretrain.ckpt) and inside a layer every --checkpoint-every epochs (OUTPUT-STEM-pretrain.layerN.ckpt), and an interrupted run continues from the last saved epoch",
            DefaultValueFactory = _ => "0",
        };
        var computeDtype = new Option<string>("--compute-dtype")
        {
            Description = "Mixed precision: the dtype of the coupling products of the DBM's mean-field sweeps and Gibbs steps and of the pretraining RBMs' CD passes (float32 or bfloat16); " +
                          "weights, means, chains, gradients and updates stay float32, and the metrics, fine-tuning, samples and likelihood use float32 products. " +
                          "Only for CPUs with bfloat16 instructions (AVX512-BF16, AMX): without them much slower than float32 (see the benchmarks)",
            DefaultValueFactory = _ => "float32",
        };
        computeDtype.AcceptOnlyFromAmong("float32", "bfloat16");
        var preset = new Option<string>("--preset")
        {
            Description = $"Recipe whose values replace the defaults of the options not given: none (the defaults shown) or paper ({Paper.Description})",
            DefaultValueFactory = _ => "none",
        };
        preset.AcceptOnlyFromAmong("none", "paper");
        var binarize = new Option<string>("--binarize")
        {
            Description = "How the digits become binary: threshold (pixel > 0.5) or stochastic (each pixel drawn once from Bernoulli(grey level), training digits then test digits " +
                          "from one generator seeded by --binarize-seed, as Salakhutdinov & Murray 2008 and the likelihoods the paper reports; the same draw as `tbm evaluate --seed`) " +
                          "or each-batch (as stochastic, but the pretraining and the DBM draw their digits anew from the grey levels at every batch, as Salakhutdinov's code does; " +
                          "the test digits, the fine-tuning and the likelihood use the stochastic draw)",
            DefaultValueFactory = _ => "threshold",
        };
        binarize.AcceptOnlyFromAmong("threshold", "stochastic", "each-batch");
        var binarizeSeed = new Option<ulong>("--binarize-seed") { Description = "Seed of the stochastic binarisation (the default is tbm evaluate's default --seed)", DefaultValueFactory = _ => 1UL };
        var centering = new Option<bool>("--centering")
        {
            Description = "Take the gradient steps in centered coordinates (Montavon & Müller 2012; Melchior et al. 2016): offsets at the data's mean and running means of the mean-field means; the machine and its sampling are unchanged",
        };
        var centeringRate = new Option<double>("--centering-rate") { Description = "Sliding factor ν ∈ (0, 1] of the hidden layers' offsets with --centering", DefaultValueFactory = _ => 0.01 };
        var finetuneEpochs = new Option<int>("--finetune-epochs")
        {
            Description = "After training, fine-tune the DBM-initialised classifier (Salakhutdinov & Hinton 2009, §5: input [v ; μ₂(v)], first layer [W₁ | W₂ᵀ]) for at most N epochs " +
                          "and report its test error; writes OUTPUT-STEM-classifier.pt (0, the default: no classifier)",
            DefaultValueFactory = _ => 0,
        };
        var finetuneLr = new Option<double>("--finetune-lr") { Description = "Fine-tuning learning rate (SGD with momentum 0.9, ×0.95 per epoch)", DefaultValueFactory = _ => 0.1 };
        var finetuneBatch = new Option<int>("--finetune-batch") { Description = "Fine-tuning mini-batch size (the paper: 5000 with --finetune-optimizer cg)", DefaultValueFactory = _ => 100 };
        var finetuneOptimizer = new Option<string>("--finetune-optimizer")
        {
            Description = "Fine-tuning optimizer: sgd (momentum 0.9, --finetune-lr ×0.95 per epoch) or cg (conjugate gradients, 3 line searches per mini-batch, as Salakhutdinov & Hinton 2009; --finetune-lr unused)",
            DefaultValueFactory = _ => "sgd",
        };
        finetuneOptimizer.AcceptOnlyFromAmong("sgd", "cg");
        var finetuneValidation = new Option<int>("--finetune-validation")
        {
            Description = "Training digits held out from the end of the training set while fine-tuning, to stop early (patience 5) and keep the epoch of lowest validation error (0: none)",
            DefaultValueFactory = _ => 10000,
        };
        var aisRuns = new Option<int>("--ais-runs") { Description = "AIS runs for log Z after training (0: no likelihood estimate)", DefaultValueFactory = _ => 100 };
        var aisSteps = new Option<int>("--ais-steps") { Description = "AIS steps (the paper's schedule scaled to this many; the paper used 20,000)", DefaultValueFactory = _ => 1000 };
        var testRows = new Option<int>("--test-rows") { Description = "Test digits the lower bound is computed on (at most 10,000)", DefaultValueFactory = _ => 10000 };
        var output = new Option<string>("--output", "-o")
        {
            Description = $"Checkpoint path (.pt; a .json sidecar, -metrics.json, -metrics.csv, -samples.png and -filters.png beside it; {CommonOptions.RunsDirectory}/ is ignored by git)",
            DefaultValueFactory = _ => Path.Combine(CommonOptions.RunsDirectory, "dbm-mnist.pt"),
        };
        var checkpointEvery = CommonOptions.CheckpointEvery(more: "; the pretraining after every layer, OUTPUT-STEM-pretrain.ckpt, and inside a layer, OUTPUT-STEM-pretrain.layerN.ckpt; the fine-tuning, OUTPUT-STEM-finetune.ckpt");
        var data = new CommonOptions.DataOptions();
        var device = CommonOptions.Device();
        var seed = CommonOptions.Seed();
        var threads = CommonOptions.Threads();
        var limit = CommonOptions.Limit();
        var tensorBoard = TensorBoardRun.Option();
        var stream = new Option<string?>("--stream")
        {
            Description = "Train from an uncompressed IDX file of 28×28 images streamed from disk (a directory holding train-images-idx3-ubyte, or the file), " +
                          "binarised at 0.5, read by a background reader in shuffled chunks: memory bounded whatever the file's size (e.g. the 600,000 digits of tbm make-mnist-x10). " +
                          "Test digits still come from MNIST's test set; with --pretrain-epochs the pretraining also streams and is not checkpointed (the DBM's training is)",
        };
        var cmd = new Command("dbm", "Train a deep Boltzmann machine on MNIST (binarised at 0.5 or stochastically; Salakhutdinov & Hinton 2009): mean-field positive phase, persistent chains; " +
                                     "then log Z by AIS and the mean-field lower bound on the test log-likelihood. Exit codes: 0 done, 1 error, 130 interrupted (the checkpoint is kept and the same command continues)")
        {
            preset, binarize, binarizeSeed, layers, computeDtype, epochs, lr, lrDecay, minLr, momentum, finalMomentum, weightDecay, batch, chains, gibbs, mfIters, centering, centeringRate,
            pretrainEpochs, pretrainLr, pretrainWeightDecay, pretrainKEvery,
            finetuneEpochs, finetuneLr, finetuneBatch, finetuneOptimizer, finetuneValidation, aisRuns, aisSteps, testRows, output, checkpointEvery,
            device, seed, threads, limit, tensorBoard, stream,
        };
        data.AddTo(cmd);
        cmd.SetAction((ParseResult r, CancellationToken ct) =>
        {
            // With --preset paper, an option left out takes the recipe's value; one given on the command line keeps its own.
            bool paper = r.GetValue(preset) == "paper", streaming = r.GetValue(stream) is not null;
            T Get<T>(Option<T> option, T recipe) => paper && r.GetResult(option) is not { Implicit: false } ? recipe : r.GetValue(option)!;
            bool cg = Get(finetuneOptimizer, Paper.FineTuneOptimizer) == "cg";
            string binarisation = Get(binarize, streaming ? "threshold" : Paper.Binarize)!;
            return Task.FromResult(Run(new Arguments(
                r.GetValue(layers)!, new DbmTrainingOptions
                {
                    Epochs = Get(epochs, Paper.Epochs), LearningRate = Get(lr, Paper.LearningRate), LearningRateDecay = Get(lrDecay, Paper.LearningRateDecay),
                    MinLearningRate = Get(minLr, Paper.MinLearningRate), Momentum = r.GetValue(momentum), FinalMomentum = Get(finalMomentum, Paper.FinalMomentum),
                    BinarizeEachBatch = binarisation == "each-batch",
                    WeightDecay = r.GetValue(weightDecay), BatchSize = r.GetValue(batch), Chains = r.GetValue(chains), GibbsSteps = r.GetValue(gibbs),
                    MeanFieldIterations = r.GetValue(mfIters), Centering = r.GetValue(centering), CenteringRate = r.GetValue(centeringRate), Seed = r.GetValue(seed),
                    ComputeDtype = r.GetValue(computeDtype) == "bfloat16" ? ScalarType.BFloat16 : null,
                },
                Get(pretrainEpochs, Paper.PretrainEpochs)!, new Pretraining(Get(pretrainLr, Paper.PretrainLearningRate), Get(pretrainWeightDecay, Paper.PretrainWeightDecay), Get(pretrainKEvery, Paper.PretrainKEvery)),
                // The recipe fine-tunes by CG on batches of 5,000; not when streaming (no labels are read) unless asked for,
                // and SGD chosen on the command line keeps the default batch.
                new FineTuning(Get(finetuneEpochs, streaming ? 0 : Paper.FineTuneEpochs), r.GetValue(finetuneLr),
                               Get(finetuneBatch, cg ? Paper.FineTuneBatch : r.GetValue(finetuneBatch)), cg, r.GetValue(finetuneValidation)),
                r.GetValue(aisRuns), Get(aisSteps, Paper.AisSteps), r.GetValue(testRows), r.GetValue(output)!, r.GetValue(checkpointEvery), data.Read(r),
                r.GetValue(device)!, r.GetValue(threads), r.GetValue(limit), r.GetValue(CommonOptions.Verbose), r.GetValue(tensorBoard), r.GetValue(stream),
                paper ? "paper" : null, binarisation != "threshold", r.GetValue(binarizeSeed)), ct));
        });
        return cmd;
    }

    /// <summary>The classifier stage: at most <paramref name="Epochs"/> epochs (0: none).</summary>
    private sealed record FineTuning(int Epochs, double LearningRate, int BatchSize, bool ConjugateGradient, int Validation)
    {
        /// <summary>The fine-tuner's options; its checks' messages name these flags through <see cref="Flags"/>.</summary>
        public ClassifierTrainingOptions Options(ulong seed) => new()
        {
            Epochs = Epochs, LearningRate = LearningRate, BatchSize = BatchSize, ValidationCount = Validation, Patience = Validation > 0 ? 5 : 0, Seed = seed,
            Optimizer = ConjugateGradient ? FineTuningOptimizer.ConjugateGradient : FineTuningOptimizer.Sgd,
        };

        public static readonly IReadOnlyDictionary<string, string> Flags = new Dictionary<string, string>
        {
            ["Epochs"] = "--finetune-epochs", ["LearningRate"] = "--finetune-lr", ["BatchSize"] = "--finetune-batch", ["ValidationCount"] = "--finetune-validation",
        };
    }

    /// <summary>
    /// <c>--preset paper</c>: the MNIST recipe of Salakhutdinov &amp; Hinton (2009) for 784-500-1000 where it differs from
    /// the command's defaults, with the values of the authors' released MATLAB code where the paper gives none. Pretraining
    /// 100 epochs for the bottom RBM and 200 for the top one (<c>rbm</c>, <c>rbm_l2</c>: learning rate 0.05, weight decay
    /// 0.001, momentum 0.5 then 0.9, the top RBM's k growing by one every 20 epochs with its rate divided by k), the
    /// digits binarised anew at every batch; 500 epochs of joint training, as the paper used (the demo's default is 300,
    /// with a comment that the paper's results took 500), at the code's rate 0.001, ×0.991 per epoch (its ÷1.000015 per
    /// batch of 600 batches) down to its floor 0.0001, momentum 0.5 then 0.9 after 5 epochs; conjugate-gradient fine-tuning
    /// for 100 epochs on mini-batches of 5,000 with 3 line searches each (<c>backprop</c>); AIS with 20,000 β steps. The
    /// chains (100 × 5 Gibbs steps), mean-field sweeps (10) and batch (100) are the command's defaults and the paper's. Not
    /// reproduced: the code's sparsity penalty, its label units joined to the top layer, its initial weights (0.001·N(0, 1),
    /// zero visible biases) and its fine-tuning and classification on grey digits (here on the stochastic draw).
    /// </summary>
    internal static class Paper
    {
        public const string PretrainEpochs = "100,200";
        public const int Epochs = 500, FineTuneEpochs = 100, FineTuneBatch = 5000, AisSteps = 20000, PretrainKEvery = 20;
        public const double LearningRate = 0.001, LearningRateDecay = 0.991, MinLearningRate = 1e-4, PretrainLearningRate = 0.05, PretrainWeightDecay = 1e-3;
        public static readonly double? FinalMomentum = 0.9;
        public const string FineTuneOptimizer = "cg", Binarize = "each-batch";

        public const string Description = "Salakhutdinov & Hinton 2009 on 784-500-1000, with the values of the authors' code: --binarize each-batch --pretrain-epochs 100,200 " +
                                          "--pretrain-lr 0.05 --pretrain-weight-decay 0.001 --pretrain-k-every 20 --epochs 500 --lr 0.001 --lr-decay 0.991 --min-lr 0.0001 --final-momentum 0.9 " +
                                          "--finetune-epochs 100 --finetune-optimizer cg --finetune-batch 5000 --ais-steps 20000";
    }

    /// <summary>The fine-tuning checkpoint of a dbm run writing <paramref name="output"/>: <c>OUTPUT-STEM-finetune.ckpt</c>.</summary>
    internal static string FineTuneCheckpointPath(string output) => Path.ChangeExtension(output, null) + "-finetune.ckpt";

    /// <summary>The pretraining RBMs' learning rate and weight decay, and the top one's growing-k period (0: CD-1).</summary>
    private sealed record Pretraining(double LearningRate, double WeightDecay, int KEvery);

    private sealed record Arguments(string Layers, DbmTrainingOptions Options, string PretrainEpochs, Pretraining Pretrain, FineTuning FineTune, int AisRuns, int AisSteps, int TestRows, string Output, int CheckpointEvery,
                                    CommonOptions.DataSource Source, string Device, int Threads, int? Limit, bool Verbose, string? TensorBoard, string? Stream, string? Preset,
                                    bool Stochastic, ulong BinarizeSeed)
    {
        /// <summary>The epochs between checkpoints the trainers take: <see cref="CheckpointEvery"/> (0 means no checkpoint path at all, so any period ≥ 1 serves).</summary>
        public int Every => Math.Max(CheckpointEvery, 1);
    }

    /// <summary>The run checkpoint of a dbm run writing <paramref name="output"/>: <c>OUTPUT-STEM-train.ckpt</c>.</summary>
    internal static string CheckpointPath(string output) => Path.ChangeExtension(output, null) + "-train.ckpt";

    /// <summary>The pretraining checkpoint of a dbm run writing <paramref name="output"/>: <c>OUTPUT-STEM-pretrain.ckpt</c>.</summary>
    internal static string PretrainCheckpointPath(string output) => Path.ChangeExtension(output, null) + "-pretrain.ckpt";

    /// <summary>The pretraining's checkpoint and those of its <paramref name="layers"/> RBMs in training (<see cref="GreedyPretrainer.LayerCheckpointPath"/>).</summary>
    private static IEnumerable<string> PretrainFiles(string pretrainCheckpoint, int layers) =>
        [pretrainCheckpoint, .. GreedyPretrainer.LayerCheckpointPaths(pretrainCheckpoint, layers)];

    /// <summary>
    /// The pretraining options of <c>--pretrain-epochs</c> <paramref name="epochs"/> (one count per RBM, bottom first):
    /// <see cref="RbmTrainingOptions"/>' defaults (CD-1, momentum 0.5 then 0.9) with <paramref name="learningRate"/>,
    /// <paramref name="weightDecay"/>, the DBM's batch size, seed, per-batch binarisation and compute dtype, each RBM's own number of
    /// epochs, and the top RBM's growing-k period <paramref name="topKEvery"/>.
    /// </summary>
    internal static DbnPretrainingOptions PretrainingOptions(IReadOnlyList<int> epochs, DbmTrainingOptions dbm, double learningRate = 0.1, double weightDecay = 2e-4, int topKEvery = 0)
    {
        var layer = new RbmTrainingOptions
        {
            Epochs = epochs[0], BatchSize = dbm.BatchSize, Seed = dbm.Seed, LearningRate = learningRate, WeightDecay = weightDecay, BinarizeEachBatch = dbm.BinarizeEachBatch,
            ComputeDtype = dbm.ComputeDtype,
        };
        if (SameForAll(epochs) && topKEvery == 0) return new() { Layer = layer };
        return new() { Layer = layer, PerLayer = epochs.Select((e, l) => layer with { Epochs = e, KIncreaseEvery = l == epochs.Count - 1 ? topKEvery : 0 }).ToList() };
    }

    /// <summary>
    /// Parses <c>--pretrain-epochs</c>: one count for all <paramref name="rbms"/> RBMs, or one per RBM bottom first; all 0
    /// (no pretraining) or all ≥ 1. Throws naming the option.
    /// </summary>
    internal static int[] ParsePretrainEpochs(string text, int rbms)
    {
        var epochs = OptionFlags.WholeNumbers(text, NumberStyles.AllowLeadingSign)
                     ?? throw new CliException($"--pretrain-epochs must be a number of epochs or one per RBM separated by commas (e.g. 100,200), got '{text}'");
        foreach (int e in epochs) OptionFlags.AtLeast("--pretrain-epochs", e, 0);
        if (epochs.Length == 1) return Enumerable.Repeat(epochs[0], rbms).ToArray();
        if (epochs.Length != rbms)
            throw new CliException($"--pretrain-epochs must give one number, or one per RBM ({rbms} for --layers of {rbms + 1} sizes), got {epochs.Length}: '{text}'");
        if (epochs.Contains(0) && epochs.Any(e => e > 0))
            throw new CliException($"--pretrain-epochs must be 0 for every RBM (no pretraining) or at least 1 for each, got '{text}'");
        return epochs;
    }

    /// <summary>The pretraining epochs as the checkpoint tag states them: one number when all RBMs share it, else the list ("100,200").</summary>
    private static string EpochsText(IReadOnlyList<int> epochs)
        => SameForAll(epochs) ? epochs[0].ToString(CultureInfo.InvariantCulture) : string.Join(",", epochs);

    /// <summary>The pretraining epochs in the metrics and sidecar JSON: a number when all RBMs share it (as before per-RBM counts existed), else an array.</summary>
    private static object EpochsJson(int[] epochs) => SameForAll(epochs) ? epochs[0] : epochs;

    /// <summary>Whether every RBM pretrains for the same number of epochs.</summary>
    private static bool SameForAll(IReadOnlyList<int> epochs) => epochs.Distinct().Count() == 1;

    /// <summary>Parses "784,500,1000" into layer sizes, or throws naming --layers.</summary>
    internal static int[] ParseLayers(string text)
    {
        var sizes = OptionFlags.WholeNumbers(text);
        if (sizes is null || sizes.Any(n => n < 1))
            throw new CliException($"--layers must be comma-separated positive sizes, visible first, got '{text}'");
        if (sizes.Length < 3) throw new CliException($"--layers must give the visible layer and at least two hidden layers (e.g. 784,500,1000), got '{text}'");
        if (sizes[0] != 784) throw new CliException($"--layers must start with 784 (MNIST's pixels), got {sizes[0]}");
        return sizes;
    }

    private static int Run(Arguments a, CancellationToken ct)
    {
        string? checkpoint = null, pretrainCheckpoint = null;
        int savedEpoch = 0, fineTuneEpoch = 0, rbms = 0;
        var options = a.Options;
        return CommonOptions.Guard(() =>
        {
            CommonOptions.ApplyThreads(a.Threads);
            var device = CommonOptions.ParseDevice(a.Device);
            var (sizes, pretrainEpochs) = Validate(a);
            rbms = sizes.Length - 1;
            bool pretrains = pretrainEpochs[0] > 0;
            CommonOptions.PrepareOutput("--output", a.Output);
            ct.ThrowIfCancellationRequested();

            var dir = CommonOptions.ResolveMnist(a.Source, a.Verbose);
            // The training digits: MNIST's in memory (float32 on the device), or a stream read while training.
            using var streamed = a.Stream is null ? null : TrainRbmCommand.OpenStream(a.Stream, options.Seed, a.Limit);
            // Stochastic binarisation draws the training digits, then the test digits, from one generator: the rows that
            // `tbm evaluate --seed BINARIZE-SEED` draws (for the same --limit).
            using var binarizer = a.Stochastic ? new Generator(a.BinarizeSeed, torch.CPU) : null;
            var (train, trainLabels) = streamed is not null ? (null, null) : LoadDigits(dir, MnistSplit.Train, a.Limit, device, binarizer);
            var (test, testLabels) = LoadDigits(dir, MnistSplit.Test, Math.Min(10000, a.TestRows), device, binarizer);
            // --binarize each-batch: the pretraining and the DBM see the grey levels and draw their binary digits anew per batch.
            using var grey = streamed is null && options.BinarizeEachBatch ? LoadGrey(dir, a.Limit, device) : null;
            using var trainOwned = train;
            using var trainLabelsOwned = trainLabels;
            using var testOwned = test;
            using var testLabelsOwned = testLabels;
            long trainCount = streamed?.Count ?? train!.shape[0];
            if (options.BatchSize > trainCount)
                throw new CliException($"--batch must be at most the number of training digits, {trainCount}, got {options.BatchSize}");
            if (a.FineTune.Epochs > 0 && a.FineTune.Validation >= trainCount)
                throw new CliException($"--finetune-validation must leave training digits: at most {trainCount - 1} of the {trainCount}, got {a.FineTune.Validation}" +
                                       (a.Preset is null ? "" : $" (--preset {a.Preset} fine-tunes: give --finetune-validation, or --finetune-epochs 0)"));
            if (a.Preset is not null) Terminal.Line($"Preset {a.Preset}: {Paper.Description} (options given on the command line take precedence).");
            Terminal.Line($"Training DBM {string.Join("-", sizes)} on {trainCount} digits{(streamed is null ? $" {Binarisation(a)}" : $" streamed from {streamed.Path}")}, {options.Epochs} epoch(s), lr {options.LearningRate} (×{options.LearningRateDecay}/epoch), " +
                          $"{(options.MinLearningRate > 0 ? $"floor {options.MinLearningRate}, " : "")}momentum {options.Momentum}{(options.FinalMomentum is { } fm ? $" then {fm} after {options.MomentumSwitchEpoch} epochs" : "")}{(options.Centering ? $", centered (ν {options.CenteringRate})" : "")}, {options.Chains} chains × {options.GibbsSteps} Gibbs steps, ≤ {options.MeanFieldIterations} mean-field sweeps, batch {options.BatchSize}{(options.ComputeDtype is { } cd ? $", {cd} products" : "")}, device {device}, seed {options.Seed}");

            using var gen = new Generator(options.Seed, device);
            using var dbm = boltzmann.DBM(sizes, device: device, generator: gen);
            // b_A from the training digits' pixel means; a stream's means come from one pass over its file (the base rate of
            // the one-row tensor of means is that of the data, since it depends on the data through their mean only).
            using var baseRate = streamed is null ? AnnealedImportanceSampling.base_rate_bias(UnitType.Bernoulli, train!) : StreamBaseRate(streamed, device);
            using (torch.no_grad()) dbm.bias(0).copy_(baseRate);   // visible biases from the data's smoothed pixel means
            checkpoint = a.CheckpointEvery > 0 ? CheckpointPath(a.Output) : null;
            bool continuing = checkpoint is not null && File.Exists(checkpoint);
            if (continuing) Terminal.Line($"Continuing from the checkpoint {checkpoint} (an earlier run of this command stopped; delete it to start over).");
            IReadOnlyList<IReadOnlyList<RbmEpochMetrics>>? pretraining = null;
            if (pretrains && !continuing)   // a continuing run's weights come from its checkpoint, pretrained or not
            {
                pretrainCheckpoint = a.CheckpointEvery > 0 && streamed is null ? PretrainCheckpointPath(a.Output) : null;   // a streamed pretraining is not checkpointed
                var pretrainFiles = pretrainCheckpoint is null ? [] : PretrainFiles(pretrainCheckpoint, rbms).Where(File.Exists).ToList();
                if (pretrainFiles.Count > 0)
                    Terminal.Line($"Continuing the pretraining from {string.Join(" and ", pretrainFiles)} (an earlier run of this command stopped; delete {(pretrainFiles.Count == 1 ? "it" : "them")} to start over).");
                Terminal.Line($"Pretraining {sizes.Length - 1} modified RBMs greedily ({string.Join(", ", Enumerable.Range(0, sizes.Length - 1).Select(l => { var (up, down) = DbmPretrainer.InputScales(l, sizes.Length - 1); return $"{sizes[l]}-{sizes[l + 1]} ×{up:0} up ×{down:0} down"; }))}), " +
                              $"{(SameForAll(pretrainEpochs) ? $"{pretrainEpochs[0]} epoch(s) each" : $"{string.Join(", ", pretrainEpochs)} epochs")}, " +
                              $"{(a.Pretrain.KEvery > 0 ? $"CD-k with k + 1 every {a.Pretrain.KEvery} epochs at the top (lr ÷ k)" : "CD-1")}, lr {a.Pretrain.LearningRate}, weight decay {a.Pretrain.WeightDecay}, batch {options.BatchSize}");
                var pretrainer = new DbmPretrainer(dbm, PretrainingOptions(pretrainEpochs, options, a.Pretrain.LearningRate, a.Pretrain.WeightDecay, a.Pretrain.KEvery)) { CheckpointPath = pretrainCheckpoint, CheckpointEvery = a.Every };
                if (streamed is not null)
                    Terminal.Line("The streamed pretraining keeps no checkpoint: an interrupted run pretrains again; the DBM's training after it is checkpointed.");
                pretraining = ConsoleProgress.Run(p => streamed is not null ? pretrainer.FitSource(streamed, progress: p, cancellationToken: ct)
                                                                            : pretrainer.Fit(grey ?? train!, progress: p, cancellationToken: ct));
            }
            var tag = new Dictionary<string, string>
            {
                ["data"] = streamed is not null ? $"stream {Path.GetFullPath(streamed.Path)} ({streamed.Count} rows), binarised at 0.5"
                                                : $"MNIST {Binarisation(a)}, limit {a.Limit?.ToString(CultureInfo.InvariantCulture) ?? "none"}",
            };
            // Only when pretraining: a checkpoint of a run without it reads as before.
            if (pretrains) tag["pretrain_epochs"] = EpochsText(pretrainEpochs);
            using var trainer = new DbmTrainer(dbm, options, generator: gen) { CheckpointPath = checkpoint, CheckpointEvery = a.Every, CheckpointTag = tag };
            using var tensorBoard = TensorBoardRun.Open(a.TensorBoard, "dbm", options.Seed, continuing);
            tensorBoard?.Watch(trainer.Stage, dbm);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var history = ConsoleProgress.Run(p =>
            {
                var lines = ProgressTee.Of<LoopProgress<DbmEpochMetrics>>(new EpochLines(p, a.Every, e => savedEpoch = e), tensorBoard?.For<DbmEpochMetrics>());
                return streamed is not null ? trainer.FitSource(streamed, lines, ct) : trainer.Fit(grey ?? train!, lines, ct);
            });
            clock.Stop();
            double trainSeconds = trainer.RestoredSeconds + clock.Elapsed.TotalSeconds;
            // The trained machine first, so that a long likelihood estimate that is stopped does not lose it; the sidecar
            // is written again with the estimates below.
            Checkpoint.Save(dbm, a.Output, new { command = "dbm", options, pretrain_epochs = EpochsJson(pretrainEpochs), preset = a.Preset, train_seconds = trainSeconds, history, pretraining });

            // The DBM-initialised classifier, fine-tuned on [v ; μ₂(v)] (resumable from OUTPUT-STEM-finetune.ckpt).
            FineTuneResult? fineTune = a.FineTune.Epochs > 0 ? FineTuneClassifier(dbm, a, options.Seed, train!, trainLabels!, test, testLabels, e => fineTuneEpoch = e, ct) : null;
            Interrupt.StopsAt = "once AIS and the result files are done";

            // Likelihood: log Ẑ by AIS from the base-rate model, and the mean-field bound on the test digits.
            var evalClock = System.Diagnostics.Stopwatch.StartNew();
            var (logZ, testBound, trainBound) = a.AisRuns >= 2 ? Likelihood(dbm, baseRate, a, options.Seed, test, train, streamed, trainCount, ct) : (null, null, null);
            evalClock.Stop();

            var summary = new
            {
                layers = sizes, seed = options.Seed, limit = a.Limit, stream = streamed is null ? null : Path.GetFullPath(streamed.Path), train_rows = trainCount, binarize = options.BinarizeEachBatch ? "each-batch" : a.Stochastic ? "stochastic" : "threshold", binarize_seed = a.Stochastic ? a.BinarizeSeed : (ulong?)null, preset = a.Preset, pretrain_epochs = EpochsJson(pretrainEpochs), train_seconds = trainSeconds, eval_seconds = evalClock.Elapsed.TotalSeconds, threads = torch.get_num_threads(), compute_dtype = options.ComputeDtype is { } cdt ? cdt.ToString().ToLowerInvariant() : "float32",
                log_z = logZ?.LogZ, log_z_lower = logZ?.LogZLower, log_z_upper = logZ?.LogZUpper, ais_runs = a.AisRuns, ais_steps = a.AisSteps,
                ais_effective_sample_size = logZ?.EffectiveSampleSize, test_lower_bound = testBound, train_lower_bound = trainBound, test_rows = test.shape[0],
                classifier_test_error = fineTune?.Test.ErrorRate, classifier_test_errors = fineTune?.Test.Errors, classifier_best_validation_error = fineTune?.History.BestValidationError,
                classifier_epochs = fineTune?.History.Epochs.Count, classifier_seconds = fineTune?.Seconds,
            };
            var weights = Checkpoint.Save(dbm, a.Output, new { command = "dbm", summary, options, history, pretraining });
            if (fineTune is not null)
            {
                Checkpoint.Save(fineTune.Classifier, ClassifierPath(a.Output), new { command = "dbm", summary, fine_tuning = fineTune.History });
                fineTune.Classifier.Dispose();
            }
            var stem = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(weights))!, Path.GetFileNameWithoutExtension(weights));
            SavePictures(dbm, stem, options.Seed);
            AtomicFile.WriteAllText(stem + "-metrics.json", JsonSerializer.Serialize(new { summary, history, fine_tuning = fineTune?.History }, CommonOptions.MetricsJson));
            AtomicFile.WriteAllText(stem + "-metrics.csv", Csv(history));
            if (checkpoint is not null) File.Delete(checkpoint);
            if (a.CheckpointEvery > 0) foreach (var f in PretrainFiles(PretrainCheckpointPath(a.Output), rbms)) File.Delete(f);
            if (a.CheckpointEvery > 0) File.Delete(FineTuneCheckpointPath(a.Output));
            Terminal.Line($"Done: training {trainSeconds:F0} s, {(fineTune is null ? "" : $"classifier {fineTune.Seconds:F0} s, ")}likelihood {evalClock.Elapsed.TotalSeconds:F0} s. " +
                          $"Wrote {weights} (+ .json), {(fineTune is null ? "" : $"{ClassifierPath(a.Output)} (+ .json), ")}{stem}-{{samples,filters}}.png, {stem}-metrics.{{json,csv}}");
            return ExitCodes.Success;
        }, () => a.CheckpointEvery == 0
            ? $"dbm keeps no checkpoint with --checkpoint-every 0: nothing was written. Run it again to start over: {CommonOptions.CommandLine}"
            : File.Exists(FineTuneCheckpointPath(a.Output))
                ? $"Saved {FineTuneCheckpointPath(a.Output)} (the classifier's fine-tuning{(fineTuneEpoch > 0 ? $" after epoch {fineTuneEpoch}" : "")}; the trained DBM is {a.Output}). Continue with: {CommonOptions.CommandLine}"
            : checkpoint is not null && File.Exists(checkpoint)
                ? $"Saved {checkpoint} ({(savedEpoch > 0 ? $"the run after epoch {savedEpoch} of {options.Epochs}" : "written by an earlier run of this command")}). Continue with: {CommonOptions.CommandLine}"
                : pretrainCheckpoint is not null && PretrainFiles(pretrainCheckpoint, rbms).Where(File.Exists).ToList() is { Count: > 0 } saved
                ? $"Saved {string.Join(" and ", saved)} (the pretraining so far). Continue with: {CommonOptions.CommandLine}"
                : $"No checkpoint had been written yet (one is written every {a.CheckpointEvery} epoch{(a.CheckpointEvery == 1 ? "" : "s")}), so a rerun starts over: {CommonOptions.CommandLine}");
    }

    /// <summary>Checks every option before anything is read or written; returns the layer sizes and each RBM's pretraining epochs.</summary>
    private static (int[] sizes, int[] pretrainEpochs) Validate(Arguments a)
    {
        var sizes = ParseLayers(a.Layers);
        OptionFlags.AtLeast("--epochs", a.Options.Epochs, 1);
        if (a.Preset is not null && sizes.Length != 3)
            throw new CliException($"--preset {a.Preset} is the recipe of a DBM with two hidden layers (784,500,1000), got --layers '{a.Layers}'");
        var pretrainEpochs = ParsePretrainEpochs(a.PretrainEpochs, sizes.Length - 1);
        OptionFlags.AtLeast("--ais-runs", a.AisRuns, 0);
        if (a.AisRuns == 1) throw new CliException("--ais-runs must be 0 (no estimate) or at least 2 (the interval needs two weights), got 1");
        OptionFlags.AtLeast("--ais-steps", a.AisSteps, 3);
        OptionFlags.AtLeast("--test-rows", a.TestRows, 1);
        OptionFlags.AtLeast("--checkpoint-every", a.CheckpointEvery, 0);
        if (a.Limit is { } lim) OptionFlags.AtLeast("--limit", lim, 1);
        OptionFlags.Validate(a.Options.Validate, Flags);
        if (a.Stream is not null && a.Stochastic) throw new CliException($"--stream binarises the streamed images at 0.5; it does not combine with --binarize {(a.Options.BinarizeEachBatch ? "each-batch" : "stochastic")}");
        OptionFlags.AtLeast("--pretrain-k-every", a.Pretrain.KEvery, 0);
        if (!(a.Pretrain.LearningRate > 0) || !double.IsFinite(a.Pretrain.LearningRate)) throw new CliException($"--pretrain-lr must be positive and finite, got {a.Pretrain.LearningRate.ToString(CultureInfo.InvariantCulture)}");
        if (!(a.Pretrain.WeightDecay >= 0) || !double.IsFinite(a.Pretrain.WeightDecay)) throw new CliException($"--pretrain-weight-decay must be ≥ 0 and finite, got {a.Pretrain.WeightDecay.ToString(CultureInfo.InvariantCulture)}");
        OptionFlags.AtLeast("--finetune-epochs", a.FineTune.Epochs, 0);
        if (a.FineTune.Epochs > 0)
        {
            OptionFlags.Validate(a.FineTune.Options(a.Options.Seed).Validate, FineTuning.Flags);
            if (a.Stream is not null) throw new CliException("--finetune-epochs needs the training labels, which --stream does not read; fine-tune without --stream");
        }
        return (sizes, pretrainEpochs);
    }

    /// <summary>
    /// log Ẑ by AIS from the base-rate model b_A (<c>--ais-runs</c> × <c>--ais-steps</c>), then the mean-field lower bound
    /// log p(v) ≥ B(v) − log Ẑ averaged over the test digits and as many training digits (from the stream when streaming),
    /// printed as <c>tbm evaluate</c> prints a DBM's (<see cref="EvaluateCommand.ReportDbmLikelihood"/>).
    /// </summary>
    private static (PartitionFunctionEstimate? logZ, double? testBound, double? trainBound) Likelihood(DBM dbm, Tensor baseRate, Arguments a, ulong seed, Tensor test,
                                                                                                      Tensor? train, BatchSource? streamed, long trainCount, CancellationToken ct)
    {
        using var aisGen = new Generator(seed + 1, dbm.device);
        long boundRows = Math.Min(test.shape[0], trainCount);
        using var trainRows = streamed is not null ? streamed.Rows(0, boundRows, dbm.dtype, dbm.device) : train!.narrow(0, 0, boundRows);
        var (logZ, bounds) = EvaluateCommand.ReportDbmLikelihood(dbm, baseRate, new AisOptions { Runs = a.AisRuns, Schedule = BetaSchedule.Scaled(a.AisSteps) }, aisGen,
            [("test ", test), ("train", trainRows)], System.Diagnostics.Stopwatch.StartNew(), ct);
        return (logZ, bounds[0], bounds[1]);
    }

    /// <summary>STEM-filters.png (the first layer's weights) and STEM-samples.png (64 chains' visible means after 1,000 Gibbs steps).</summary>
    private static void SavePictures(DBM dbm, string stem, ulong seed)
    {
        ImageGrid.SaveFilters(stem + "-filters.png", dbm.weight(1), 28, 28);
        using var _ = torch.no_grad();
        using var generator = new Generator(seed + 2, dbm.device);
        using var samples = dbm.generate(64, steps: 1000, generator: generator, return_means: true);
        ImageGrid.SaveTiles(stem + "-samples.png", samples, 28, 28, columns: 8);
    }

    /// <summary>How the run's digits were binarised, as its header, checkpoint tag and summary say it.</summary>
    private static string Binarisation(Arguments a) => a.Options.BinarizeEachBatch ? $"binarised anew at every batch (the test and fine-tuning digits stochastically once, seed {a.BinarizeSeed})"
        : a.Stochastic ? $"binarised stochastically (seed {a.BinarizeSeed})" : "binarised at 0.5";

    /// <summary>MNIST's training images (the first <paramref name="limit"/>) as grey levels in [0, 1], float32 on <paramref name="device"/>.</summary>
    private static Tensor LoadGrey(string dir, int? limit, Device device)
    {
        using var set = MnistDataset.Load(dir, MnistSplit.Train, limit);
        return set.Images.to(device, copy: true);
    }

    /// <summary>
    /// MNIST's images of <paramref name="split"/> (the first <paramref name="limit"/>) binarised at 0.5, or drawn from
    /// Bernoulli(grey level) with <paramref name="binarizer"/> when given, float32 on <paramref name="device"/>, and their labels (int64, CPU).
    /// </summary>
    private static (Tensor images, Tensor labels) LoadDigits(string dir, MnistSplit split, int? limit, Device device, Generator? binarizer)
    {
        using var set = MnistDataset.Load(dir, split, limit);
        using var binary = binarizer is null ? Binarize.Threshold(set.Images) : Binarize.Stochastic(set.Images, binarizer);
        return (binary.to(device, copy: true), set.Labels.to(ScalarType.Int64, torch.CPU, copy: true));
    }

    /// <summary>The classifier checkpoint of a dbm run writing <paramref name="output"/>: <c>OUTPUT-STEM-classifier.pt</c>.</summary>
    internal static string ClassifierPath(string output) => Path.ChangeExtension(output, null) + "-classifier.pt";

    /// <summary>The fine-tuned classifier, its record, its test metrics and the fine-tuning's wall time.</summary>
    private sealed record FineTuneResult(torch.nn.Module<Tensor, Tensor> Classifier, ClassifierHistory History, ClassificationMetrics Test, double Seconds);

    /// <summary>
    /// Builds the DBM-initialised classifier (<see cref="DbmClassifier"/>) over x = [v ; μ₂(v)], fine-tunes it with the
    /// <see cref="FineTuner"/> (the last <c>--finetune-validation</c> training digits held out), and measures it on the test digits.
    /// </summary>
    private static FineTuneResult FineTuneClassifier(DBM dbm, Arguments a, ulong seed, Tensor train, Tensor trainLabels, Tensor test, Tensor testLabels,
                                                     Action<int> savedEpoch, CancellationToken ct)
    {
        Terminal.Line($"Fine-tuning the DBM-initialised classifier (input [v ; μ₂(v)], {string.Join("-", new[] { dbm.n_visible + dbm.layer_sizes[2] }.Concat(dbm.layer_sizes.Skip(1)).Append(10))}) " +
                      $"for at most {a.FineTune.Epochs} epochs, {(a.FineTune.ConjugateGradient ? "conjugate gradients (3 line searches per batch)" : $"SGD lr {a.FineTune.LearningRate}")}, batch {a.FineTune.BatchSize}, validation: {(a.FineTune.Validation > 0 ? $"the last {a.FineTune.Validation} training digits" : "none")}");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var x = DbmClassifier.Features(dbm, train);
        using var testX = DbmClassifier.Features(dbm, test);
        using var y = trainLabels.to(dbm.device);
        using var testY = testLabels.to(dbm.device);
        using var init = new Generator(seed + 3, dbm.device);
        var classifier = DbmClassifier.Build(dbm, n_classes: 10, generator: init);
        try
        {
            using var tuner = new FineTuner(classifier, a.FineTune.Options(seed))
            {
                CheckpointPath = a.CheckpointEvery > 0 ? FineTuneCheckpointPath(a.Output) : null, CheckpointEvery = a.Every,
            };
            var history = ConsoleProgress.Run(p => tuner.Fit(x, y, progress: new FineTuneLines(p, (_, e, n) => { if (e % a.Every == 0 || e == n) savedEpoch(e); }), cancellationToken: ct));
            var metrics = tuner.Evaluate(testX, testY);
            double seconds = tuner.RestoredSeconds + clock.Elapsed.TotalSeconds;
            Terminal.Line($"DBM classifier: test error {100 * metrics.ErrorRate:F2} % ({metrics.Errors}/{metrics.Count})" +
                          (history.BestValidationError is { } v ? $", best validation error {100 * v:F2} % (epoch {history.BestEpoch})" : "") + $", {seconds:F0} s");
            return new FineTuneResult(classifier, history, metrics, seconds);
        }
        catch
        {
            classifier.Dispose();
            throw;
        }
    }

    /// <summary>The base-rate visible biases b_A of a stream's rows, from their mean (one pass over the file).</summary>
    private static Tensor StreamBaseRate(BatchSource stream, Device device)
    {
        using var mean = stream.Mean(ScalarType.Float64, device);
        using var row = mean.unsqueeze(0);
        return AnnealedImportanceSampling.base_rate_bias(UnitType.Bernoulli, row);
    }

    /// <summary>One line per epoch: epoch, seconds, learning rate, mean-field sweeps, reconstruction error, mean-field bound (without log Z).</summary>
    internal static string Csv(IReadOnlyList<DbmEpochMetrics> history)
    {
        static string F(double? x) => x is { } v ? v.ToString("R", CultureInfo.InvariantCulture) : "";
        var csv = new StringBuilder("epoch,train_seconds,learning_rate,mean_field_sweeps,reconstruction_error,mean_field_bound\n");
        foreach (var m in history)
            csv.AppendLine(string.Join(",", m.Epoch, F(m.TrainSeconds), F(m.LearningRate), F(m.MeanFieldSweeps), F(m.ReconstructionError), F(m.MeanFieldBound)));
        return csv.ToString();
    }

    /// <summary>Shows the progress bar and one line per epoch; notes the last epoch after which the checkpoint was written.</summary>
    private sealed class EpochLines(IProgress<TrainingProgress> bar, int every, Action<int> saved) : IProgress<LoopProgress<DbmEpochMetrics>>
    {
        public void Report(LoopProgress<DbmEpochMetrics> p)
        {
            bar.Report(new TrainingProgress(p.Stage, p.Epoch, p.Epochs, p.Batch, p.Batches, null));
            if (p.EpochMetrics is not { } m) return;
            if (m.Epoch % every == 0 || m.Epoch == m.Epochs) saved(m.Epoch);
            Terminal.Line($"{p.Stage} epoch {m.Epoch}/{m.Epochs}  {m.TrainSeconds:F1} s  lr {m.LearningRate:G3}  mean-field sweeps {m.MeanFieldSweeps:F1}" +
                          (m.ReconstructionError is { } r ? $"  recon {r:F4}" : "") + (m.MeanFieldBound is { } b ? $"  bound (without log Z) {b:F2}" : ""));
        }
    }
}

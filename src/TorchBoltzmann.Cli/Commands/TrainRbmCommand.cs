using System.CommandLine;
using System.Text.Json;
using Spectre.Console;
using TorchBoltzmann.Data;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.IO;
using TorchBoltzmann.Training;
using TorchBoltzmann.Units;
using TorchBoltzmann.Visualization;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Cli.Commands;

/// <summary><c>tbm train-rbm</c>: trains an RBM on MNIST (Bernoulli units on binarised digits, or Gaussian units on standardised grey levels with <c>--visible gaussian</c>) and writes the checkpoint and pictures.</summary>
internal static class TrainRbmCommand
{
    public static Command Create()
    {
        var hidden = new Option<int>("--hidden") { Description = "Hidden units", DefaultValueFactory = _ => 500 };
        var epochs = new Option<int>("--epochs") { Description = "Training epochs (≥ 1)", DefaultValueFactory = _ => 10 };
        var lr = new Option<double>("--lr") { Description = "Learning rate (SGD; at 1 and above CD learns nothing on MNIST: a warning says so)", DefaultValueFactory = _ => 0.1 };
        var k = new Option<int>("--k") { Description = "Gibbs steps per negative sample (CD-k / PCD-k)", DefaultValueFactory = _ => 1 };
        var pcd = new Option<bool>("--pcd") { Description = "Persistent contrastive divergence" };
        var tempering = new Option<int>("--tempering")
        {
            Description = "Parallel tempering as the negative phase, with this many inverse temperatures spaced linearly from 1 down to --tempering-min-beta (--batch replicas each; " +
                          "the samples picture is drawn by tempering too); 0: off. Not with --pcd",
            DefaultValueFactory = _ => 0,
        };
        var temperingMinBeta = new Option<double>("--tempering-min-beta")
        {
            Description = "The hottest level's inverse temperature β_min in (0, 1) for --tempering. Swaps between neighbours are accepted only where their " +
                          "distributions overlap: on MNIST a 784-500 RBM accepts almost none below β ≈ 0.5 (the rates per pair are printed at the end)",
            DefaultValueFactory = _ => 0.1,
        };
        var computeDtype = new Option<string>("--compute-dtype")
        {
            Description = "Mixed precision: the dtype of the training passes' matrix products (float32 or bfloat16); weights, gradients and updates stay float32, and the metrics, samples and pictures use float32 products. Only for CPUs with bfloat16 instructions (AVX512-BF16, AMX): without them a CD-1 epoch measured 17 times slower than float32 (see the benchmarks)",
            DefaultValueFactory = _ => "float32",
        };
        computeDtype.AcceptOnlyFromAmong("float32", "bfloat16");
        var batch = new Option<int>("--batch") { Description = "Mini-batch size (at most the number of training digits)", DefaultValueFactory = _ => 100 };
        var visible = new Option<string>("--visible")
        {
            Description = "Visible units: bernoulli (MNIST binarised at 0.5), gaussian (grey levels standardised per pixel over the training digits, unit variance) " +
                          "or gaussian-learned (the same data, a variance learned per pixel: Cho, Ilin & Raiko 2011, trained through autograd). " +
                          "Gaussian units need a learning rate 10 to 100 times smaller than binary ones (e.g. --lr 0.005): a larger rate, or data that is not standardised, makes CD diverge",
            DefaultValueFactory = _ => "bernoulli",
        };
        var lrDecay = new Option<double>("--lr-decay") { Description = "Factor γ in (0, 1] applied to the learning rate every epoch (epoch e runs at lr·γ^e); 1: constant", DefaultValueFactory = _ => 1.0 };
        var momentum = new Option<double>("--momentum") { Description = "Momentum from the sixth epoch on (the first five use the smaller of 0.5 and this); 0: plain SGD", DefaultValueFactory = _ => 0.9 };
        var binarize = new Option<string>("--binarize")
        {
            Description = "Bernoulli units: threshold (pixel > 0.5) or stochastic (each pixel drawn once from Bernoulli(grey level), as Salakhutdinov & Murray 2008, " +
                          "with the generator seeded by --binarize-seed: the same draw as `tbm evaluate --seed` of that seed makes)",
            DefaultValueFactory = _ => "threshold",
        };
        var binarizeSeed = new Option<ulong>("--binarize-seed") { Description = "Seed of the stochastic binarisation (the default is tbm evaluate's default --seed)", DefaultValueFactory = _ => 1UL };
        var validation = new Option<int>("--validation")
        {
            Description = "Hold out the last N training digits as a validation split: not trained on, used for the held-out metrics instead of the test digits " +
                          "(`tbm evaluate --validation N` then reports their log-likelihood); 0: none",
            DefaultValueFactory = _ => 0,
        };
        var weightDecay = new Option<double>("--weight-decay") { Description = "L2 weight decay on the weights", DefaultValueFactory = _ => 2e-4 };
        var output = new Option<string>("--output", "-o")
        {
            Description = $"Checkpoint path (.pt; a .json sidecar and PNGs are written beside it; {CommonOptions.RunsDirectory}/ is ignored by git). Its directory is created, and checked to be writable before training starts",
            DefaultValueFactory = _ => Path.Combine(CommonOptions.RunsDirectory, "rbm-mnist.pt"),
        };
        var checkpointEvery = CommonOptions.CheckpointEvery();
        var data = new CommonOptions.DataOptions();
        var device = CommonOptions.Device();
        var seed = CommonOptions.Seed();
        var threads = CommonOptions.Threads();
        var limit = CommonOptions.Limit();
        var tensorBoard = TensorBoardRun.Option();
        var stream = new Option<string?>("--stream")
        {
            Description = "Train from an uncompressed IDX file of 28×28 images streamed from disk (a directory holding train-images-idx3-ubyte, or the file), " +
                          "binarised at 0.5 batch by batch, in a shuffled order fixed by --seed (chunks of 1,000 rows, windows of 10 chunks, 4 batches prefetched): " +
                          "memory independent of the file's size. Held-out digits still come from MNIST's test set. Bernoulli units only",
        };

        var cmd = new Command("train-rbm", "Train an RBM on MNIST (binarised at 0.5): checkpoint, filters, samples, reconstructions, learning curve. " +
                                           "Exit codes: 0 done, 1 error, 3 the RBM reconstructs no better than the per-pixel mean (files written, see the warning), 130 interrupted (Ctrl+C or SIGTERM: the checkpoint is kept and the same command continues)")
        {
            hidden, epochs, lr, lrDecay, momentum, k, pcd, tempering, temperingMinBeta, computeDtype, batch, visible, binarize, binarizeSeed, validation, weightDecay, output, device, seed, threads, limit, checkpointEvery, tensorBoard, stream,
        };
        data.AddTo(cmd);
        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Run(
            r.GetValue(hidden), r.GetValue(visible)!, new RbmTrainingOptions
            {
                Epochs = r.GetValue(epochs), LearningRate = r.GetValue(lr), LearningRateDecay = r.GetValue(lrDecay), K = r.GetValue(k),
                FinalMomentum = r.GetValue(momentum), InitialMomentum = Math.Min(0.5, r.GetValue(momentum)), Persistent = r.GetValue(pcd),
                BatchSize = r.GetValue(batch), WeightDecay = r.GetValue(weightDecay), Seed = r.GetValue(seed),
                ComputeDtype = r.GetValue(computeDtype) == "bfloat16" ? ScalarType.BFloat16 : null,
            },
            r.GetValue(output)!, data.Read(r), r.GetValue(device)!, r.GetValue(threads), r.GetValue(limit), r.GetValue(checkpointEvery), r.GetValue(CommonOptions.Verbose),
            r.GetValue(tensorBoard), ct, r.GetValue(tempering), r.GetValue(temperingMinBeta), new DataSplit(r.GetValue(binarize)!, r.GetValue(binarizeSeed), r.GetValue(validation)), r.GetValue(stream))));
        return cmd;
    }

    /// <summary>
    /// Updates after which an RBM trained with a working learning rate reconstructs clearly better than the pixel means
    /// (the defaults on 5,000 MNIST digits: 100 updates, 31.8 against 65.4 squared errors per digit; at --lr 1 and above it
    /// stays at 65 or worse).
    /// </summary>
    internal const long UpdatesToLearn = 100;

    /// <summary>
    /// True when the training failed rather than being short: held-out reconstructions clearly worse than the pixel means
    /// (× 1.5: a learning rate that blows the weights up, such as 100, gives 125 against 65 within ten updates), or no
    /// better after <see cref="UpdatesToLearn"/> updates.
    /// </summary>
    internal static bool Failed(double heldRecon, double baseline, long updates) =>
        !double.IsFinite(heldRecon) || heldRecon >= 1.5 * baseline || (heldRecon >= baseline && updates >= UpdatesToLearn);

    /// <summary>The run checkpoint of a train-rbm run writing <paramref name="output"/>: <c>OUTPUT-STEM-train.ckpt</c>.</summary>
    internal static string CheckpointPath(string output) => Path.ChangeExtension(output, null) + "-train.ckpt";

    /// <summary>Largest --lr that <c>--visible gaussian</c> accepts without a warning.</summary>
    internal const double GaussianRateWarning = 0.01;

    /// <summary>
    /// The stream of <c>--stream</c>: <paramref name="path"/> is an IDX file or a directory holding train-images-idx3-ubyte;
    /// its rows must be 28×28 images. Shuffled by <paramref name="seed"/>, binarised at 0.5, the first <paramref name="limit"/> rows.
    /// </summary>
    internal static IdxStream OpenStream(string path, ulong seed, int? limit)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, "train-images-idx3-ubyte") : path;
        if (!File.Exists(file))
            throw new CliException($"--stream expects an uncompressed IDX file or a directory holding train-images-idx3-ubyte, got '{path}' ({(Directory.Exists(path) ? $"no {file}" : "no such file or directory")})");
        IdxStream stream;
        try { stream = new IdxStream(file, new IdxStreamOptions { Scaling = ByteScaling.Threshold, Seed = seed, Limit = limit }); }
        catch (InvalidDataException e) { throw new CliException($"--stream: {e.Message}"); }
        if (stream.Features != 784)
        {
            stream.Dispose();
            throw new CliException($"--stream expects rows of 784 pixels (28×28 images) in '{file}', got shape [{string.Join("×", stream.Shape)}] ({stream.Features} values per row)");
        }
        return stream;
    }

    /// <summary>Floor on a pixel's standard deviation when standardising: pixels that barely vary are scaled by at most 1/0.1.</summary>
    internal const double StdFloor = 0.1;

    /// <summary>
    /// The training and held-out rows on the device, as the units need them, and for Gaussian units the per-pixel
    /// statistics that standardised them (to map reconstructions back to grey levels).
    /// </summary>
    private sealed record TrainingData(Tensor Train, Tensor Held, Tensor? PixelMean, Tensor? PixelStd, long TrainCount, string Kind) : IDisposable
    {
        public void Dispose()
        {
            Train.Dispose(); Held.Dispose(); PixelMean?.Dispose(); PixelStd?.Dispose();
        }
    }

    /// <summary>
    /// Loads MNIST (or takes the stream's first rows) and makes the rows of <see cref="TrainingData"/>: Bernoulli units get
    /// digits binarised at 0.5 or stochastically; Gaussian units get grey levels standardised per pixel,
    /// x' = (x − μ) / max(σ, <see cref="StdFloor"/>), μ and σ over the training digits. The held-out rows are the last
    /// <c>--validation</c> training digits, else the test digits.
    /// </summary>
    private static TrainingData LoadData(string dir, IdxStream? stream, int? limit, DataSplit split, bool gaussian, bool stochastic, Device device)
    {
        using var scope = torch.NewDisposeScope();
        using var allSet = stream is null ? MnistDataset.Load(dir, MnistSplit.Train, limit) : null;
        using var testSet = MnistDataset.Load(dir, MnistSplit.Test, Math.Min(10000, limit ?? 10000));
        long trainCount = stream?.Count ?? OptionFlags.TrainingRows(allSet!.Count, split.Validation);
        // Stochastic binarisation draws every training digit at once (validation rows included), from its own generator,
        // so the rows are the ones `tbm evaluate --seed BINARIZE-SEED` draws. From a stream, its first 10,000 rows
        // (binarised at 0.5) stand for the training set where one is needed: the visible biases' initialisation and the
        // pixel-mean baseline.
        using var binarizer = new Generator(split.BinarizeSeed, torch.CPU);
        var all = stream is not null ? stream.Rows(0, Math.Min(stream.Count, 10_000), ScalarType.Float32, torch.CPU)
                : gaussian || !stochastic ? allSet!.Images.alias() : Binarize.Stochastic(allSet!.Images, binarizer);
        var trainImages = stream is not null ? all : all.narrow(0, 0, trainCount);
        var heldImages = split.Validation > 0 ? all.narrow(0, trainCount, split.Validation) : stochastic ? Binarize.Stochastic(testSet.Images, binarizer) : testSet.Images.alias();
        string kind = gaussian ? "grey levels standardised per pixel" : stochastic ? $"binarised stochastically, seed {split.BinarizeSeed}" : "binarised at 0.5";
        if (!gaussian)
        {
            var train = stochastic || stream is not null ? trainImages : Binarize.Threshold(trainImages);
            var held = stochastic ? heldImages : Binarize.Threshold(heldImages);
            return new TrainingData(train.to(device).MoveToOuterDisposeScope(), held.to(device).MoveToOuterDisposeScope(), null, null, trainCount, kind);
        }
        var mean = trainImages.mean([0L]);
        var std = trainImages.std([0L]).clamp_min_(StdFloor);
        return new TrainingData(((trainImages - mean) / std).to(device).MoveToOuterDisposeScope(), ((heldImages - mean) / std).to(device).MoveToOuterDisposeScope(),
                                mean.to(device).MoveToOuterDisposeScope(), std.to(device).MoveToOuterDisposeScope(), trainCount, kind);
    }

    /// <summary>How the digits become training and held-out rows: the binarisation of Bernoulli units and the validation split.</summary>
    private sealed record DataSplit(string Binarize, ulong BinarizeSeed, int Validation);

    private static int Run(int hidden, string visibleKind, RbmTrainingOptions options, string output, CommonOptions.DataSource source, string deviceName,
                           int threads, int? limit, int checkpointEvery, bool verbose, string? tensorBoardRoot, CancellationToken ct,
                           int temperingLevels, double temperingMinBeta, DataSplit split, string? streamPath = null)
    {
        string? checkpoint = null;   // set by the body, read by the interruption notice
        int savedEpoch = 0;
        return CommonOptions.Guard(() =>
        {
            CommonOptions.ApplyThreads(threads);
            var device = CommonOptions.ParseDevice(deviceName);
            OptionFlags.AtLeast("--hidden", hidden, 1);
            OptionFlags.AtLeast("--epochs", options.Epochs, 1);
            if (limit is { } lim) OptionFlags.AtLeast("--limit", lim, 1);
            OptionFlags.AtLeast("--checkpoint-every", checkpointEvery, 0);
            if (temperingLevels is < 0 or 1) throw new CliException($"--tempering must be 0 (off) or at least 2 levels, got {temperingLevels}");
            if (!(temperingMinBeta > 0 && temperingMinBeta < 1))
                throw new CliException($"--tempering-min-beta must be in (0, 1), got {temperingMinBeta.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
            if (temperingLevels >= 2) options = options with { Tempering = Sampling.TemperingLadder.Linear(temperingLevels, temperingMinBeta) };
            OptionFlags.Validate(options.Validate, OptionFlags.TrainRbm);
            bool gaussian = visibleKind switch
            {
                "bernoulli" => false,
                "gaussian" or "gaussian-learned" => true,
                _ => throw new CliException($"--visible must be bernoulli, gaussian or gaussian-learned, got '{visibleKind}'"),
            };
            bool stochastic = split.Binarize switch
            {
                "threshold" => false,
                "stochastic" => true,
                _ => throw new CliException($"--binarize must be threshold or stochastic, got '{split.Binarize}'"),
            };
            if (stochastic && gaussian) throw new CliException($"--binarize stochastic: binarisation is for --visible bernoulli, got --visible {visibleKind}");
            OptionFlags.AtLeast("--validation", split.Validation, 0);
            if (gaussian && options.LearningRate > GaussianRateWarning)
                Terminal.Warning($"--lr {options.LearningRate} with --visible gaussian: Gaussian visible units usually need a rate 10 to 100 times smaller than binary ones (e.g. --lr 0.005); a larger one tends to diverge.");
            else if (options.LearningRate >= 1)
                Terminal.Warning($"--lr {options.LearningRate}: at 1 and above, CD training of an RBM on MNIST learns nothing (its reconstructions stay no better than the pixel means); the default is 0.1.");
            if (streamPath is not null && gaussian) throw new CliException($"--stream trains Bernoulli units on binarised images; it does not combine with --visible {visibleKind}");
            if (streamPath is not null && stochastic) throw new CliException("--stream binarises the streamed images at 0.5; it does not combine with --binarize stochastic");
            if (streamPath is not null && split.Validation > 0) throw new CliException($"--stream holds no training digits out; it does not combine with --validation {split.Validation}");
            CommonOptions.PrepareOutput("--output", output);   // before the training, not after it
            ct.ThrowIfCancellationRequested();

            using var stream = streamPath is null ? null : OpenStream(streamPath, options.Seed, limit);
            using var data = LoadData(CommonOptions.ResolveMnist(source, verbose), stream, limit, split, gaussian, stochastic, device);
            long trainCount = data.TrainCount;
            if (options.BatchSize > trainCount)
                throw new CliException($"--batch must be at most the number of training digits, {trainCount}, got {options.BatchSize} (lower --batch{(limit is null ? "" : " or raise --limit")}{(split.Validation > 0 ? " or --validation" : "")})");
            Tensor train = data.Train, held = data.Held;
            string dataKind = data.Kind;
            Terminal.Line($"Training {(gaussian ? "Gaussian–Bernoulli " : "")}RBM 784×{hidden} on {trainCount} digits{(stream is null ? "" : $" streamed from {stream.Path}")} ({dataKind}; held out: {(split.Validation > 0 ? $"the last {split.Validation} training digits" : $"{held.shape[0]} test digits")}), {options.Epochs} epochs, " +
                          $"{(options.Tempering is { } ladder ? $"PT({ladder.levels} levels)" : options.Persistent ? "PCD" : "CD")}-{options.K}, lr {options.LearningRate}{(options.LearningRateDecay != 1 ? $" × {options.LearningRateDecay}^epoch" : "")}, batch {options.BatchSize}{(options.ComputeDtype is { } cd ? $", {cd} products" : "")}, device {device}, seed {options.Seed}");
            ct.ThrowIfCancellationRequested();

            using var gen = new Generator(options.Seed, device);
            using var rbm = boltzmann.RBM(784, hidden, visible: visibleKind == "gaussian-learned" ? new LearnedGaussianUnits() : gaussian ? UnitType.Gaussian : null, device: device, generator: gen);
            if (!gaussian) rbm.init_visible_bias_from_data(train);   // Gaussian: b = 0, the mean of standardised data
            checkpoint = checkpointEvery > 0 ? CheckpointPath(output) : null;
            bool continuing = checkpoint is not null && File.Exists(checkpoint);
            if (continuing)
                Terminal.Line($"Continuing from the checkpoint {checkpoint} (an earlier run of this command stopped; delete it to start over).");
            // What else the checkpoint must share with this run: the data (the trainer checks the options, the model, the
            // numbers of rows and the device).
            var tag = new Dictionary<string, string> { ["data"] = stream is not null ? $"stream {Path.GetFullPath(stream.Path)} ({stream.Count} rows), binarised at 0.5" : $"MNIST {dataKind}, limit {limit?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}, validation {split.Validation}" };
            using var trainer = new RbmTrainer(rbm, options, generator: gen) { CheckpointPath = checkpoint, CheckpointEvery = Math.Max(checkpointEvery, 1), CheckpointTag = tag };
            // A continued run appends to its TensorBoard run; the logger skips the steps already there.
            using var tensorBoard = TensorBoardRun.Open(tensorBoardRoot, "train-rbm", options.Seed, continuing);
            if (tensorBoard is not null)
            {
                tensorBoard.Watch(trainer.Stage, rbm);
                tensorBoard.RbmImages = TensorBoardRun.MnistImages(held);
            }
            var clock = System.Diagnostics.Stopwatch.StartNew();
            IReadOnlyList<RbmEpochMetrics> history;
            try
            {
                history = ConsoleProgress.Run(p => stream is not null ? trainer.FitSource(stream, held, ProgressTee.Of<TrainingProgress>(new SavedEpochs(p, Math.Max(checkpointEvery, 1), e => savedEpoch = e), tensorBoard), ct) : trainer.Fit(train, held, ProgressTee.Of<TrainingProgress>(new SavedEpochs(p, Math.Max(checkpointEvery, 1), e => savedEpoch = e), tensorBoard), ct));
            }
            catch (TrainingDivergedException e) when (gaussian)
            {
                throw new CliException($"{e.Message} The likely cause with Gaussian visible units is the learning rate (--lr {options.LearningRate}): try 10 times smaller, e.g. --lr {options.LearningRate / 10:G3}.");
            }
            clock.Stop();
            double seconds = trainer.RestoredSeconds + clock.Elapsed.TotalSeconds;
            if (trainer.Tempering is { } pt && pt.swaps_attempted.Any(n => n > 0))
                Terminal.Line($"Tempering swap acceptance per neighbour pair (β {string.Join(" → ", pt.ladder.betas.Select(b => b.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)))}): " +
                              string.Join(", ", pt.swap_acceptance.Select(r => r.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture))));
            Interrupt.StopsAt = "once the result files are written (a few seconds)";

            // Useless training (e.g. a learning rate far too high) ends without an error: compare with the baseline of
            // reconstructing every digit as the training set's pixel means.
            double heldRecon, baseline;
            using (torch.no_grad())
            using (var scope = torch.NewDisposeScope())
            {
                heldRecon = RbmMetrics.reconstruction_error(rbm, held);
                var means = train.mean([0L]);
                baseline = (held - means).square().sum(1).mean().ToDouble();
            }

            var weights = Checkpoint.Save(rbm, output, new { command = "train-rbm", hidden, visible = visibleKind, binarize = split.Binarize, binarize_seed = split.BinarizeSeed, validation = split.Validation, options, seconds, history });
            var stem = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(weights))!, Path.GetFileNameWithoutExtension(weights));
            ImageGrid.SaveFilters(stem + "-filters.png", rbm.weight, 28, 28);
            using (torch.no_grad())
            {
                // Gaussian: pictures in grey levels again, x = x'σ + μ clipped to [0, 1].
                Tensor Grey(Tensor x) => gaussian ? x.mul(data.PixelStd!).add_(data.PixelMean!).clamp_(0, 1) : x.alias();
                using var sampler = options.Tempering is null ? null : new Sampling.ParallelTempering(rbm, options.Tempering, gen);
                using var generated = sampler?.generate(64, burn_in: 1000, return_means: true) ?? rbm.generate(64, burn_in: 1000, generator: gen, return_means: true);
                using var samples = Grey(generated);
                ImageGrid.SaveTiles(stem + "-samples.png", samples, 28, 28, columns: 8);
                long m = Math.Min(32, held.shape[0]);   // fewer with a small --limit
                using var heldRows = held.narrow(0, 0, m);
                using var reconRows = rbm.reconstruct(heldRows);
                using var originals = Grey(heldRows);
                using var recon = Grey(reconRows);
                using var stacked = torch.stack(new[] { originals, recon }, 1);
                using var pairs = stacked.reshape(2 * m, 784);
                ImageGrid.SaveTiles(stem + "-reconstructions.png", pairs, 28, 28, columns: 16);
            }
            var epochsX = history.Select(h => (double)h.Epoch).ToArray();
            LineChart.Save(stem + "-curve.png", new ChartSpec("RBM training on MNIST", "epoch", "reconstruction error per digit",
                new[]
                {
                    new Series("train", epochsX, history.Select(h => h.ReconstructionError ?? double.NaN).ToArray()),
                    new Series("held-out", epochsX, history.Select(h => h.ValidationReconstructionError ?? double.NaN).ToArray()),
                }));
            AtomicFile.WriteAllText(stem + "-metrics.json", JsonSerializer.Serialize(history, CommonOptions.MetricsJson));
            if (checkpoint is not null) File.Delete(checkpoint);   // the results are written: nothing left to continue
            Terminal.Line($"Done in {seconds:F0} s. Wrote {weights}, its .json sidecar, and {stem}-{{filters,samples,reconstructions,curve}}.png, {stem}-metrics.json");
            Terminal.Line($"Held-out reconstruction error {heldRecon:F2} per digit (reconstructing every digit as the training pixel means: {baseline:F2}).");
            long updates = (long)options.Epochs * ((trainCount + options.BatchSize - 1) / options.BatchSize);
            if (Failed(heldRecon, baseline, updates))
            {
                Terminal.Warning($"the RBM reconstructs held-out digits no better than the training pixel means ({heldRecon:F2} vs {baseline:F2} squared errors per digit, after {updates} update{(updates == 1 ? "" : "s")}): " +
                                 $"the training failed. The likely cause is the learning rate (--lr {options.LearningRate}; the default is 0.1); " +
                                 $"the files were written anyway. Exit code {ExitCodes.UselessModel}.");
                return ExitCodes.UselessModel;
            }
            if (heldRecon >= baseline)
                Terminal.Warning($"after only {updates} update{(updates == 1 ? "" : "s")} the RBM reconstructs held-out digits no better than the training pixel means ({heldRecon:F2} vs {baseline:F2}): train longer (--epochs, --limit).");
            return ExitCodes.Success;
        }, () => checkpointEvery == 0
            ? $"train-rbm keeps no checkpoint to continue from with --checkpoint-every 0: nothing was written (the model and its pictures are written only when training ends, to {output}). Run it again to start over: {CommonOptions.CommandLine}"
            : checkpoint is not null && File.Exists(checkpoint)
                ? $"Saved {checkpoint} ({(savedEpoch > 0 ? $"the run after epoch {savedEpoch} of {options.Epochs}" : "written by an earlier run of this command")}). Continue with: {CommonOptions.CommandLine}"
                : $"No checkpoint had been written yet (one is written every {checkpointEvery} epoch{(checkpointEvery == 1 ? "" : "s")}), so a rerun starts over: {CommonOptions.CommandLine}");
    }

    /// <summary>Passes progress on, noting the last epoch after which the trainer wrote its checkpoint (every <paramref name="every"/> epochs).</summary>
    private sealed class SavedEpochs(IProgress<TrainingProgress> inner, int every, Action<int> saved) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            if (value.EpochMetrics is { } m && (m.Epoch % every == 0 || m.Epoch == m.Epochs)) saved(m.Epoch);
            inner.Report(value);
        }
    }
}

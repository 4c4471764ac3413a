using System.CommandLine;
using System.Text.Json;
using Spectre.Console;
using TorchBoltzmann.Data;
using TorchBoltzmann.IO;
using TorchBoltzmann.Training;
using TorchBoltzmann.Visualization;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Cli.Commands;

/// <summary><c>tbm train-rbm</c>: trains a Bernoulli RBM on binarised MNIST and writes the checkpoint and pictures.</summary>
internal static class TrainRbmCommand
{
    public static Command Create()
    {
        var hidden = new Option<int>("--hidden") { Description = "Hidden units", DefaultValueFactory = _ => 500 };
        var epochs = new Option<int>("--epochs") { Description = "Training epochs", DefaultValueFactory = _ => 10 };
        var lr = new Option<double>("--lr") { Description = "Learning rate (SGD)", DefaultValueFactory = _ => 0.1 };
        var k = new Option<int>("--k") { Description = "Gibbs steps per negative sample (CD-k / PCD-k)", DefaultValueFactory = _ => 1 };
        var pcd = new Option<bool>("--pcd") { Description = "Persistent contrastive divergence" };
        var batch = new Option<int>("--batch") { Description = "Mini-batch size", DefaultValueFactory = _ => 100 };
        var weightDecay = new Option<double>("--weight-decay") { Description = "L2 weight decay on the weights", DefaultValueFactory = _ => 2e-4 };
        var output = new Option<string>("--output", "-o") { Description = "Checkpoint path (.pt; a .json sidecar and PNGs are written beside it)", DefaultValueFactory = _ => "models/rbm-mnist.pt" };
        var data = CommonOptions.Data();
        var device = CommonOptions.Device();
        var seed = CommonOptions.Seed();
        var threads = CommonOptions.Threads();
        var limit = CommonOptions.Limit();

        var cmd = new Command("train-rbm", "Train an RBM on MNIST (binarised at 0.5): checkpoint, filters, samples, reconstructions, learning curve.")
        {
            hidden, epochs, lr, k, pcd, batch, weightDecay, output, data, device, seed, threads, limit,
        };
        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Run(
            r.GetValue(hidden), new RbmTrainingOptions
            {
                Epochs = r.GetValue(epochs), LearningRate = r.GetValue(lr), K = r.GetValue(k), Persistent = r.GetValue(pcd),
                BatchSize = r.GetValue(batch), WeightDecay = r.GetValue(weightDecay), Seed = r.GetValue(seed),
            },
            r.GetValue(output)!, r.GetValue(data), r.GetValue(device)!, r.GetValue(threads), r.GetValue(limit), r.GetValue(CommonOptions.Verbose), ct)));
        return cmd;
    }

    private static int Run(int hidden, RbmTrainingOptions options, string output, string? dataDir, string deviceName,
                           int threads, int? limit, bool verbose, CancellationToken ct)
        => CommonOptions.Guard(() =>
        {
            CommonOptions.ApplyThreads(threads);
            var device = CommonOptions.ParseDevice(deviceName);
            if (hidden < 1) throw new ArgumentException($"--hidden: expected a positive number of units, got {hidden}.");
            options.Validate();

            var dir = CommonOptions.ResolveMnist(dataDir, verbose);
            using var trainSet = MnistDataset.Load(dir, MnistSplit.Train, limit);
            using var testSet = MnistDataset.Load(dir, MnistSplit.Test, Math.Min(10000, limit ?? 10000));
            using var trainBinary = Binarize.Threshold(trainSet.Images);
            using var heldBinary = Binarize.Threshold(testSet.Images);
            using var train = trainBinary.to(device);
            using var held = heldBinary.to(device);
            AnsiConsole.MarkupLine(Markup.Escape($"Training RBM 784×{hidden} on {train.shape[0]} digits, {options.Epochs} epochs, " +
                                                  $"{(options.Persistent ? "PCD" : "CD")}-{options.K}, lr {options.LearningRate}, batch {options.BatchSize}, device {device}, seed {options.Seed}"));

            using var gen = new Generator(options.Seed, device);
            using var rbm = boltzmann.RBM(784, hidden, device: device, generator: gen);
            rbm.init_visible_bias_from_data(train);
            using var trainer = new RbmTrainer(rbm, options, generator: gen);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var history = ConsoleProgress.Run(p => trainer.Fit(train, held, p, ct));
            clock.Stop();

            var weights = Checkpoint.Save(rbm, output, new { command = "train-rbm", hidden, options, seconds = clock.Elapsed.TotalSeconds, history });
            var stem = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(weights))!, Path.GetFileNameWithoutExtension(weights));
            ImageGrid.SaveFilters(stem + "-filters.png", rbm.weight, 28, 28);
            using (torch.no_grad())
            {
                using var samples = rbm.generate(64, burn_in: 1000, generator: gen, return_means: true);
                ImageGrid.SaveTiles(stem + "-samples.png", samples, 28, 28, columns: 8);
                long m = Math.Min(32, held.shape[0]);   // fewer with a small --limit
                using var originals = held.narrow(0, 0, m);
                using var recon = rbm.reconstruct(originals);
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
            AnsiConsole.MarkupLine(Markup.Escape($"Done in {clock.Elapsed.TotalSeconds:F0} s. Wrote {weights}, its .json sidecar, and {stem}-{{filters,samples,reconstructions,curve}}.png, {stem}-metrics.json"));
            return 0;
        });
}

using System.CommandLine;
using System.Globalization;
using TorchBoltzmann.Logging;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Visualization;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Cli.Commands;

/// <summary>The training verbs' <c>--tensorboard DIR</c>: one run directory per run under DIR, and what is logged there.</summary>
internal static class TensorBoardRun
{
    public static Option<string?> Option() => new("--tensorboard")
    {
        Description = "Write TensorBoard events (every epoch's metrics, the update-to-weight ratio, weight histograms, filter and reconstruction images) " +
                      "into a run directory under DIR named NAME-seedS-yyyyMMdd-HHmmss; a run continued from its checkpoints appends to its newest such directory. " +
                      "Watch with: tensorboard --logdir DIR",
    };

    /// <summary>
    /// Opens the run directory <c>ROOT/NAME-seedS-TIME</c> (or, when <paramref name="continuing"/>, the newest existing
    /// <c>ROOT/NAME-seedS-*</c>, so that the continued run appends to it); null when <paramref name="root"/> is null.
    /// </summary>
    public static TensorBoardLogger? Open(string? root, string name, ulong seed, bool continuing, TensorBoardLoggerOptions? options = null)
    {
        if (root is null) return null;
        if (File.Exists(root)) throw new CliException($"--tensorboard {root}: is a file; expected a directory (created when missing)");
        string prefix = $"{name}-seed{seed}-";
        string? run = continuing && Directory.Exists(root)
            ? Directory.GetDirectories(root, prefix + "*").Order(StringComparer.Ordinal).LastOrDefault()
            : null;
        run ??= Path.Combine(root, prefix + DateTime.Now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture));
        try
        {
            var logger = new TensorBoardLogger(run, options);
            Terminal.Line($"TensorBoard: {(continuing && Directory.GetFiles(run).Length > 1 ? "continuing" : "writing")} {logger.RunDirectory} (tensorboard --logdir {Path.GetFullPath(root)})");
            return logger;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            throw new CliException($"--tensorboard {root}: cannot write the run directory {run}: {ex.Message}");
        }
    }

    /// <summary>
    /// Images of an RBM whose visible layer starts with 28×28 pixels (the bottom layer on MNIST): its first 100 filters,
    /// 16 held-out digits beside their mean-field reconstructions, and 16 samples (p(v|h) after 200 Gibbs steps from
    /// random states). Other RBMs get none.
    /// </summary>
    public static Func<string, RBM, IEnumerable<(string Name, byte[] Png)>> MnistImages(Tensor? heldOut) => (stage, rbm) =>
    {
        if (rbm.n_visible < 784) return [];
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var images = new List<(string, byte[])> { ("filters", ImageGrid.EncodeFilters(rbm.weight.narrow(1, 0, 784), 28, 28)) };
        if (heldOut is not null && rbm.n_visible == heldOut.shape[1])
        {
            long m = Math.Min(16, heldOut.shape[0]);
            var originals = heldOut.narrow(0, 0, m);
            var pairs = torch.stack(new[] { originals, rbm.reconstruct(originals) }, 1).reshape(2 * m, rbm.n_visible);
            images.Add(("reconstructions", ImageGrid.EncodeTiles(pairs, 28, 28, columns: 16)));
        }
        // Samples from chains of the RBM alone, with their own generator: the training's random stream is not touched.
        using var gen = new Generator(0, rbm.device);
        var samples = rbm.generate(16, burn_in: 200, generator: gen, return_means: true);
        images.Add(("samples", ImageGrid.EncodeTiles(samples.narrow(1, 0, 784), 28, 28, columns: 16)));
        return images;
    };
}

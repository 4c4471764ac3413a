using System.CommandLine;
using Spectre.Console;
using TorchBoltzmann.Data;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Cli.Commands;

/// <summary>Options shared by the training commands, and their interpretation.</summary>
internal static class CommonOptions
{
    public static Option<string?> Data() => new("--data") { Description = "Directory with the MNIST IDX files (default: $MNIST_DIR, then data/mnist; fetched when missing)" };
    public static Option<string> Device() => new("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
    public static Option<ulong> Seed() => new("--seed") { Description = "Random seed (initialisation, shuffling, sampling)", DefaultValueFactory = _ => 42UL };
    public static Option<int> Threads() => new("--threads") { Description = "CPU threads for libtorch (0: libtorch's default)", DefaultValueFactory = _ => 0 };
    /// <summary>The root command's <c>--verbose</c>, seen by every verb: detail lines (such as each MNIST route's steps and failures).</summary>
    public static Option<bool> Verbose { get; } = new("--verbose", "-v") { Description = "Print detail lines (MNIST: directories checked, downloads, failed routes)", Recursive = true };
    public static Option<int?> Limit() => new("--limit") { Description = "Use only the first N training digits (quick experiments)" };

    /// <summary>
    /// JSON for the metrics files: indented, NaN and ±∞ (a diverged epoch's metrics) written as "NaN", "Infinity",
    /// "-Infinity" instead of failing the write after the training is done.
    /// </summary>
    public static System.Text.Json.JsonSerializerOptions MetricsJson { get; } = new()
    {
        WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Parses a device name, failing with a clear message when CUDA is asked for but unavailable.</summary>
    public static Device ParseDevice(string name)
    {
        var d = torch.device(name);
        if (d.type == DeviceType.CUDA && !torch.cuda.is_available())
            throw new ArgumentException($"--device {name}: CUDA is not available here (torch.cuda.is_available() is false); build with -p:TorchBackend=cuda on a machine with an NVIDIA GPU, or use --device cpu.");
        return d;
    }

    /// <summary>
    /// Finds or fetches MNIST, printing the fetcher's progress lines as they come (a synchronous IProgress:
    /// <c>Progress&lt;T&gt;</c> would post them to the thread pool, out of order with the rest of the output): one line
    /// per route tried, and with <paramref name="verbose"/> the detail lines too.
    /// </summary>
    public static string ResolveMnist(string? dataDir, bool verbose) =>
        MnistFetcher.Resolve(dataDir, new LineProgress(), verbose ? new LineProgress() : null);

    private sealed class LineProgress : IProgress<string>
    {
        public void Report(string value) => AnsiConsole.MarkupLine(Markup.Escape(value));
    }

    public static void ApplyThreads(int threads)
    {
        if (threads < 0) throw new ArgumentException($"--threads: expected 0 or a positive number, got {threads}.");
        if (threads > 0) torch.set_num_threads(threads);
    }

    /// <summary>
    /// Runs a command body, turning the errors a user can act on (bad arguments, missing or corrupt files, divergence,
    /// cancellation) into one red line and an exit code instead of a stack trace.
    /// </summary>
    public static int Guard(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (OperationCanceledException)
        {
            AnsiConsole.MarkupLine("[yellow]Cancelled.[/]");
            return 130;
        }
        catch (Exception e) when (e is ArgumentException or IOException or TrainingDivergedException or InvalidDataException)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 1;
        }
    }
}

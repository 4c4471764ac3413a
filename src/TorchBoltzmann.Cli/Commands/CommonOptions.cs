using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using Spectre.Console;
using TorchBoltzmann.Data;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Cli.Commands;

/// <summary>Options shared by the training commands, and their interpretation.</summary>
internal static partial class CommonOptions
{
    public static Option<string?> Data() => new("--data") { Description = "Directory holding the MNIST IDX files (default: $MNIST_DIR, else ./data/mnist when it holds MNIST, else the per-user directory, ~/.local/share/torchboltzmann/mnist on Linux). It must exist; files missing from it are downloaded into it (SHA-256 checked), and a file under an MNIST name with other content is refused, never replaced" };
    public static Option<string?> FetchInto() => new("--fetch-into") { Description = "Like --data, but the directory is created when it does not exist, and MNIST downloaded into it" };
    public static Option<bool> NoVerify() => new("--no-verify") { Description = "Use the IDX files in --data (or $MNIST_DIR) as they are: no SHA-256 check against MNIST's and no download (e.g. Fashion-MNIST, which has the same file names and format, or a subset of your own)" };
    public static Option<string> Device() => new("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
    public static Option<ulong> Seed() => new("--seed") { Description = "Random seed (initialisation, shuffling, sampling)", DefaultValueFactory = _ => 42UL };
    public static Option<int> Threads() => new("--threads") { Description = "CPU threads for libtorch (0: libtorch's default)", DefaultValueFactory = _ => 0 };
    /// <summary>The root command's <c>--verbose</c>, seen by every verb: detail lines (such as each MNIST route's steps and failures).</summary>
    public static Option<bool> Verbose { get; } = new("--verbose", "-v") { Description = "Print detail lines (MNIST: directories checked, downloads, failed routes)", Recursive = true };
    public static Option<int?> Limit() => new("--limit") { Description = "Use only the first N training digits (quick experiments)" };

    /// <summary>
    /// <c>--checkpoint-every N</c> of the verbs whose run checkpoint is <c>OUTPUT-STEM-train.ckpt</c>;
    /// <paramref name="more"/> names the stages' other checkpoints, if any.
    /// </summary>
    public static Option<int> CheckpointEvery(int defaultEvery = 1, string more = "") => new("--checkpoint-every")
    {
        Description = $"Write a checkpoint of the run (OUTPUT-STEM-train.ckpt{more}) every N epochs; a run that finds it continues from it (also after Ctrl+C or SIGTERM), " +
                      "and it is deleted when the results are written (0: no checkpoint)",
        DefaultValueFactory = _ => defaultEvery,
    };

    /// <summary>The directory that the default outputs of both verbs go to: ignored by git, so that a run never changes committed files.</summary>
    public const string RunsDirectory = "runs";

    /// <summary>The arguments the process was started with (for the "continue with" line after an interruption).</summary>
    public static IReadOnlyList<string> Arguments { get; set; } = [];

    /// <summary>The command line that repeats this run, quoted for a POSIX shell: "tbm mnist --limit 3000".</summary>
    public static string CommandLine => string.Join(" ", new[] { "tbm" }.Concat(Arguments.Select(ShellQuote)));

    private static string ShellQuote(string arg) =>
        arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=@%+,".Contains(c)) ? arg : "'" + arg.Replace("'", "'\\''") + "'";

    /// <summary>Where MNIST comes from: the options <c>--data</c>, <c>--fetch-into</c>, <c>--no-verify</c>.</summary>
    public sealed record DataSource(string? Data, string? FetchInto, bool NoVerify);

    /// <summary>The three options that say where MNIST comes from, added to a command together.</summary>
    public sealed class DataOptions
    {
        private readonly Option<string?> _data = Data();
        private readonly Option<string?> _fetchInto = FetchInto();
        private readonly Option<bool> _noVerify = NoVerify();

        /// <summary>Adds the options to <paramref name="command"/>.</summary>
        public void AddTo(Command command)
        {
            command.Options.Add(_data);
            command.Options.Add(_fetchInto);
            command.Options.Add(_noVerify);
        }

        /// <summary>The values given.</summary>
        public DataSource Read(ParseResult r) => new(r.GetValue(_data), r.GetValue(_fetchInto), r.GetValue(_noVerify));
    }

    /// <summary>
    /// JSON for the metrics files: indented, NaN and ±∞ (a diverged epoch's metrics) written as "NaN", "Infinity",
    /// "-Infinity" instead of failing the write after the training is done.
    /// </summary>
    public static System.Text.Json.JsonSerializerOptions MetricsJson => IO.Checkpoint.JsonOptions;

    /// <summary>
    /// Parses <c>--device</c>: cpu, cuda or cuda:N, checked before TorchSharp sees it (it would throw from its native
    /// loader on a CPU build, or name an enum) so that a wrong value is one line naming the option.
    /// </summary>
    public static Device ParseDevice(string name)
    {
        var m = DeviceName().Match(name.Trim());
        bool cpu = m.Success && m.Groups[1].Value.Equals("cpu", StringComparison.OrdinalIgnoreCase);
        if (!m.Success || (cpu && m.Groups[2].Success))
            throw new CliException($"--device must be cpu, cuda or cuda:N (N = 0, 1, …), got '{name}'");
        if (cpu)
            return torch.CPU;
        if (!torch.cuda.is_available())
            throw new CliException($"--device {name}: CUDA is not available here (this build or machine has no CUDA: torch.cuda.is_available() is false); use --device cpu, or build with -p:TorchBackend=cuda on a machine with an NVIDIA GPU");
        int count = torch.cuda.device_count();
        int index = m.Groups[2].Success ? int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture) : 0;
        if (index >= count)
            throw new CliException($"--device {name}: this machine has {count} CUDA device{(count == 1 ? "" : "s")} (cuda:0{(count > 1 ? $" … cuda:{count - 1}" : "")}), got index {index}");
        return torch.device(DeviceType.CUDA, index);
    }

    [GeneratedRegex(@"^(cpu|cuda)(?::([0-9]{1,4}))?$", RegexOptions.IgnoreCase)]
    private static partial Regex DeviceName();

    /// <summary>
    /// Checks, before any training, that <paramref name="path"/> can be written: its directory is created if needed, and
    /// a probe file is written there and deleted. Fails with one line naming <paramref name="flag"/>.
    /// </summary>
    /// <returns><paramref name="path"/>.</returns>
    public static string PrepareOutput(string flag, string path)
    {
        try
        {
            return IO.OutputLocation.Prepare(flag, path);
        }
        catch (IO.OutputLocationException e)
        {
            throw new CliException(e.Message);
        }
    }

    /// <summary>
    /// Finds MNIST as the options say, printing the fetcher's progress lines as they come (a synchronous IProgress:
    /// <c>Progress&lt;T&gt;</c> would post them to the thread pool, out of order with the rest of the output): one line
    /// per route tried, and with <paramref name="verbose"/> the detail lines too. A directory named by <c>--data</c> or
    /// <c>$MNIST_DIR</c> must exist (<c>--fetch-into</c> creates it); <c>--no-verify</c> takes the files as they are.
    /// </summary>
    public static string ResolveMnist(DataSource source, bool verbose)
    {
        if (source.Data is not null && source.FetchInto is not null)
            throw new CliException($"--data and --fetch-into both given ({source.Data}, {source.FetchInto}): give one");
        string? env = Environment.GetEnvironmentVariable(MnistFetcher.EnvironmentVariable);
        env = string.IsNullOrWhiteSpace(env) ? null : env;
        if (source.NoVerify)
        {
            if (source.FetchInto is not null) throw new CliException("--no-verify takes the files in --data as they are; it cannot download (--fetch-into)");
            var (dir, named) = source.Data is not null ? (source.Data, $"--data {source.Data}")
                             : env is not null ? (env, $"${MnistFetcher.EnvironmentVariable}={env}")
                             : throw new CliException($"--no-verify needs the directory of the IDX files: --data DIR (or ${MnistFetcher.EnvironmentVariable})");
            if (!Directory.Exists(dir)) throw new CliException($"{named}: no such directory");
            string full = Path.GetFullPath(dir);
            Terminal.Line($"MNIST: using the IDX files in {full} as they are (--no-verify: their SHA-256 is not checked)");
            return full;
        }
        if (source.FetchInto is not null)
            return MnistFetcher.Resolve(source.FetchInto, createDirectory: true, new LineProgress(), verbose ? new LineProgress() : null);
        if (source.Data is not null && !Directory.Exists(source.Data))
            throw new CliException($"--data {source.Data}: no such directory; pass the directory that holds the MNIST IDX files, or --fetch-into {source.Data} to download MNIST there");
        if (source.Data is null && env is not null && !Directory.Exists(env))
            throw new CliException($"${MnistFetcher.EnvironmentVariable}={env}: no such directory; set it to the directory that holds the MNIST IDX files, or unset it, or pass --fetch-into {env} to download MNIST there");
        return MnistFetcher.Resolve(source.Data, createDirectory: false, new LineProgress(), verbose ? new LineProgress() : null);
    }

    private sealed class LineProgress : IProgress<string>
    {
        public void Report(string value) => Terminal.Line(value);
    }

    public static void ApplyThreads(int threads)
    {
        if (threads < 0) throw new CliException($"--threads must be ≥ 0 (0: libtorch's default), got {threads}");
        if (threads > 0) torch.set_num_threads(threads);
    }

    /// <summary>
    /// Runs a command body, turning the errors a user can act on (bad arguments, missing or corrupt files, divergence)
    /// into one line on stderr and <see cref="ExitCodes.Error"/>, and an interruption (<see cref="Interrupt"/>) into
    /// <paramref name="interrupted"/>'s notice (what was saved, how to continue) and <see cref="ExitCodes.Interrupted"/>.
    /// </summary>
    public static int Guard(Func<int> body, Func<string>? interrupted = null)
    {
        try
        {
            return body();
        }
        catch (OperationCanceledException) when (Interrupt.Requested)
        {
            string notice;
            try
            {
                notice = interrupted?.Invoke() ?? $"Nothing was saved. Run it again with: {CommandLine}";
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                notice = $"(could not list what was saved: {e.Message}) Run it again with: {CommandLine}";
            }
            Terminal.Notice($"Interrupted by {Interrupt.Signal}. {notice}");
            return ExitCodes.Interrupted;
        }
        catch (CliException e)
        {
            Terminal.Error(e.Message);
            return e.ExitCode;
        }
        catch (ArgumentException e)
        {
            Terminal.Error(OptionFlags.Describe(e, new Dictionary<string, string>()));
            return ExitCodes.Error;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or TrainingDivergedException or InvalidDataException)
        {
            Terminal.Error(e.Message);
            return ExitCodes.Error;
        }
    }
}

namespace TorchBoltzmann.Cli.Commands;

/// <summary>The exit codes of <c>tbm</c>.</summary>
internal static class ExitCodes
{
    /// <summary>The command did its work.</summary>
    public const int Success = 0;

    /// <summary>
    /// An error the user can act on, printed as one line on stderr: an invalid option, missing or foreign data, an output
    /// location that cannot be written, a corrupt or foreign checkpoint, training that diverged (NaN); also a command line
    /// that does not parse.
    /// </summary>
    public const int Error = 1;

    /// <summary>
    /// Training finished and its files were written, but the model is no better than guessing (a classifier at chance
    /// level, an RBM that reconstructs no better than the per-pixel mean): a warning on stderr names the likely cause.
    /// </summary>
    public const int UselessModel = 3;

    /// <summary>Stopped by Ctrl+C (SIGINT) or SIGTERM; what was saved and how to continue are printed on stderr.</summary>
    public const int Interrupted = 130;
}

/// <summary>An error for the command line: its message is printed as it is (one line, naming the option), then the process exits with <see cref="ExitCode"/>.</summary>
internal sealed class CliException(string message, int exitCode = ExitCodes.Error) : Exception(message)
{
    /// <summary>The process exit code.</summary>
    public int ExitCode { get; } = exitCode;
}

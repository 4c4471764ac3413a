using Spectre.Console;

namespace TorchBoltzmann.Cli.Commands;

/// <summary>
/// The CLI's two consoles: logs and results on stdout, errors, warnings and interruption notices on stderr.
/// </summary>
/// <remarks>
/// A stream that is not a terminal (redirected to a file or a pipe) gets plain text: no escape codes, no live progress
/// bar (Spectre.Console's plain progress lines instead) and no hard wrapping (the width is set far beyond any line).
/// <c>NO_COLOR</c> (any non-empty value, https://no-color.org) and <c>TERM=dumb</c> give plain text on a terminal too.
/// </remarks>
internal static class Terminal
{
    /// <summary>The width of a console that is not a terminal: long enough that no log line is wrapped.</summary>
    internal const int UnwrappedWidth = 1 << 16;

    private static readonly Lazy<IAnsiConsole> LazyOut = new(() => Create(Console.Out, Console.IsOutputRedirected));
    private static readonly Lazy<IAnsiConsole> LazyErr = new(() => Create(Console.Error, Console.IsErrorRedirected));

    /// <summary>Standard output: logs, progress, results.</summary>
    public static IAnsiConsole Out => LazyOut.Value;

    /// <summary>Standard error: errors, warnings, interruption notices.</summary>
    public static IAnsiConsole Err => LazyErr.Value;

    /// <summary>True when the environment asks for text without escape codes (<c>NO_COLOR</c> set, or <c>TERM=dumb</c>).</summary>
    public static bool PlainRequested =>
        !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NO_COLOR")) ||
        string.Equals(Environment.GetEnvironmentVariable("TERM"), "dumb", StringComparison.Ordinal);

    private static IAnsiConsole Create(TextWriter writer, bool redirected)
    {
        bool plain = redirected || PlainRequested;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = plain ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = plain ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Interactive = plain ? InteractionSupport.No : InteractionSupport.Detect,
            Out = new AnsiConsoleOutput(writer),
        });
        if (redirected) console.Profile.Width = UnwrappedWidth;
        return console;
    }

    /// <summary>A log line on stdout (plain text, not markup).</summary>
    public static void Line(string text) => Out.MarkupLine(Markup.Escape(text));

    /// <summary>An error line on stderr: "error: …".</summary>
    public static void Error(string text) => Err.MarkupLine($"[red]error:[/] {Markup.Escape(text)}");

    /// <summary>A warning line on stderr: "warning: …".</summary>
    public static void Warning(string text) => Err.MarkupLine($"[yellow]warning:[/] {Markup.Escape(text)}");

    /// <summary>A notice on stderr (interruption, what was saved, how to continue).</summary>
    public static void Notice(string text) => Err.MarkupLine($"[yellow]{Markup.Escape(text)}[/]");

    /// <summary>
    /// Makes the terminal's cursor visible again (a live progress display hides it) before the process exits without
    /// unwinding, e.g. on a second Ctrl+C. Does nothing when stdout is not a terminal.
    /// </summary>
    public static void RestoreCursor()
    {
        if (Console.IsOutputRedirected || PlainRequested) return;
        try
        {
            Console.Out.Write("\u001b[?25h");
            Console.Out.Flush();
        }
        catch (IOException)
        {
            // The terminal is gone: nothing to restore.
        }
    }
}

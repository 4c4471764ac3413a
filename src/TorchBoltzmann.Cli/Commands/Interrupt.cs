using System.Runtime.InteropServices;

namespace TorchBoltzmann.Cli.Commands;

/// <summary>
/// Ctrl+C (SIGINT) and SIGTERM: the first one cancels <see cref="Token"/>, which the trainers check before every batch,
/// so that the command stops at the next batch, keeps its checkpoints, says what was saved and how to continue, and
/// exits with <see cref="ExitCodes.Interrupted"/>; a second one exits at once with the same code (cursor restored).
/// </summary>
/// <remarks>Installed before the command line is parsed, so that it covers everything a command does.</remarks>
internal static class Interrupt
{
    private static readonly CancellationTokenSource Source = new();
    private static readonly List<PosixSignalRegistration> Registrations = [];
    private static int _count;

    /// <summary>Cancelled by the first SIGINT or SIGTERM.</summary>
    public static CancellationToken Token => Source.Token;

    /// <summary>The signal that cancelled <see cref="Token"/> ("SIGINT" or "SIGTERM"), or null.</summary>
    public static string? Signal { get; private set; }

    /// <summary>
    /// What the first signal does now, for its notice: "at the next batch" while training; a command sets another text
    /// while it finishes work that it will not abandon (writing its results).
    /// </summary>
    public static string StopsAt { get; set; } = "at the next batch, keeping what can be continued";

    /// <summary>True once a signal has asked the command to stop.</summary>
    public static bool Requested => Source.IsCancellationRequested;

    /// <summary>Registers the handlers (once per process).</summary>
    public static void Install()
    {
        if (Registrations.Count > 0) return;
        foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
        {
            try
            {
                Registrations.Add(PosixSignalRegistration.Create(signal, context =>
                {
                    context.Cancel = true;   // no default termination: the command stops by itself
                    OnSignal(context.Signal == PosixSignal.SIGTERM ? "SIGTERM" : "SIGINT");
                }));
            }
            catch (PlatformNotSupportedException)
            {
                // Handled by Console.CancelKeyPress below where SIGINT cannot be registered.
            }
        }

        if (Registrations.Count == 0)
        {
            Console.CancelKeyPress += (_, e) =>
            {
                e.Cancel = true;
                OnSignal("SIGINT");
            };
        }
    }

    private static void OnSignal(string name)
    {
        if (Interlocked.Increment(ref _count) == 1)
        {
            Signal = name;
            Terminal.Notice($"{name} received: stopping {StopsAt} (Ctrl+C again quits at once).");
            Source.Cancel();
            return;
        }

        Terminal.RestoreCursor();
        Console.Error.WriteLine($"{name} received again: quitting at once (checkpoints written so far are kept; files being written are left as they were).");
        Console.Out.Flush();
        Console.Error.Flush();
        QuitNow(ExitCodes.Interrupted);
    }

    /// <summary>
    /// Ends the process at once. On Unix with _exit(2): Environment.Exit would run libtorch's static destructors while the
    /// main thread is still inside libtorch, which crashes (SIGSEGV, exit 139) instead of exiting with the code.
    /// Checkpoints are written atomically (temporary file, then rename), so one being written is simply not replaced.
    /// </summary>
    private static void QuitNow(int code)
    {
        if (!OperatingSystem.IsWindows())
        {
            try
            {
                ExitImmediately(code);
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                // No libc under that name: fall through.
            }
        }
        Environment.Exit(code);
    }

    [DllImport("libc", EntryPoint = "_exit")]
    private static extern void ExitImmediately(int status);
}

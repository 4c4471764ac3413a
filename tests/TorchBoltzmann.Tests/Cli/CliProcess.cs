using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace TorchBoltzmann.Tests.Cli;

/// <summary>
/// The built CLI (<c>tbm.dll</c>, copied into the test output by the project reference) run as a child process with
/// redirected streams, a chosen working directory and environment: its output can be waited for line by line, and it
/// can be sent SIGINT or SIGTERM.
/// </summary>
internal sealed class CliProcess : IDisposable
{
    public const int SIGINT = 2, SIGTERM = 15;

    private readonly Process _process;
    private readonly List<string> _stdout = [], _stderr = [];
    private readonly object _gate = new();

    private CliProcess(Process process) => _process = process;

    /// <summary>The CLI in the test output directory.</summary>
    public static string TbmDll => Path.Combine(AppContext.BaseDirectory, "tbm.dll");

    /// <summary>
    /// Starts <c>dotnet tbm.dll args</c> in <paramref name="workDir"/>. The environment is the test's, without
    /// <c>MNIST_DIR</c> and <c>NO_COLOR</c>, with <c>TERM=xterm-256color</c> (a terminal type that supports colour: the
    /// output must still be plain because it is redirected), and with <paramref name="env"/> applied (null removes).
    /// </summary>
    public static CliProcess Start(string workDir, IReadOnlyDictionary<string, string?>? env, params string[] args)
    {
        Assert.True(File.Exists(TbmDll), $"{TbmDll} is missing: the test project references the CLI project, whose build copies it here.");
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")
        {
            WorkingDirectory = workDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        info.ArgumentList.Add(TbmDll);
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment.Remove("MNIST_DIR");
        info.Environment.Remove("NO_COLOR");
        info.Environment["TERM"] = "xterm-256color";
        foreach (var (k, v) in env ?? new Dictionary<string, string?>())
        {
            if (v is null) info.Environment.Remove(k);
            else info.Environment[k] = v;
        }

        var process = new Process { StartInfo = info };
        var cli = new CliProcess(process);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (cli._gate) cli._stdout.Add(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (cli._gate) cli._stderr.Add(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return cli;
    }

    /// <summary>Runs the CLI to the end: exit code, stdout and stderr.</summary>
    public static (int Code, string Out, string Err) Run(string workDir, IReadOnlyDictionary<string, string?>? env, params string[] args)
    {
        using var cli = Start(workDir, env, args);
        int code = cli.WaitForExit(TimeSpan.FromMinutes(4));
        return (code, cli.Stdout, cli.Stderr);
    }

    public string Stdout { get { lock (_gate) return string.Join("\n", _stdout); } }
    public string Stderr { get { lock (_gate) return string.Join("\n", _stderr); } }

    public IReadOnlyList<string> StdoutLines { get { lock (_gate) return _stdout.ToList(); } }

    /// <summary>Waits until a stdout line satisfies <paramref name="match"/>; fails the test (with the output so far) when the process ends or the time runs out first.</summary>
    public string WaitForLine(Func<string, bool> match, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            lock (_gate)
            {
                var line = _stdout.FirstOrDefault(match);
                if (line is not null) return line;
            }
            if (_process.HasExited)
            {
                _process.WaitForExit();   // drains the streams
                lock (_gate)
                {
                    var line = _stdout.FirstOrDefault(match);
                    if (line is not null) return line;
                }
                Assert.Fail($"the CLI exited ({_process.ExitCode}) before the line expected.\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
            }
            Thread.Sleep(20);
        }
        Assert.Fail($"no such line within {timeout}.\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
        return "";
    }

    /// <summary>Sends a POSIX signal to the process.</summary>
    public void Signal(int signal) => Assert.Equal(0, Kill(_process.Id, signal));

    /// <summary>Waits for the exit and returns the code; kills the process and fails the test after <paramref name="timeout"/>.</summary>
    public int WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            string state = Diagnose(_process.Id);
            _process.Kill(entireProcessTree: true);
            Assert.Fail($"the CLI did not exit within {timeout}.\n{state}\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
        }
        _process.WaitForExit();   // drains the redirected streams
        return _process.ExitCode;
    }

    /// <summary>Where a process that does not end is (Linux /proc): its state, and each thread's name, state and wait channel.</summary>
    private static string Diagnose(int pid)
    {
        try
        {
            var lines = new List<string> { "process: " + File.ReadAllText($"/proc/{pid}/stat").Trim() };
            foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
            {
                string Read(string f) { try { return File.ReadAllText(Path.Combine(task, f)).Trim(); } catch (IOException) { return "?"; } }
                lines.Add($"thread {Path.GetFileName(task)} {Read("comm")}: {Read("stat").Split(' ').ElementAtOrDefault(2)} wchan {Read("wchan")}");
            }
            return string.Join("\n", lines);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"(no /proc state: {e.Message})";
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}

using Spectre.Console;
using TorchBoltzmann.Training;

namespace TorchBoltzmann.Cli.Commands;

/// <summary>Shows training progress: a Spectre.Console progress bar per stage, and one line per epoch with its metrics.</summary>
internal sealed class ConsoleProgress(ProgressContext context) : IProgress<TrainingProgress>
{
    private readonly Dictionary<string, ProgressTask> _tasks = new();

    public void Report(TrainingProgress p)
    {
        if (!_tasks.TryGetValue(p.Stage, out var task))
        {
            task = context.AddTask(Markup.Escape(p.Stage), maxValue: (double)p.Epochs * p.Batches);
            _tasks[p.Stage] = task;
        }
        task.Value = (double)(p.Epoch - 1) * p.Batches + p.Batch;
        task.Description = Markup.Escape($"{p.Stage} epoch {p.Epoch}/{p.Epochs}");
        if (p.EpochMetrics is { } m) Terminal.Line(Describe(p.Stage, m));
    }

    public static string Describe(string stage, RbmEpochMetrics m)
    {
        var parts = new List<string> { $"{stage} epoch {m.Epoch}/{m.Epochs}", $"{m.TrainSeconds:F1} s" };
        if (m.ReconstructionError is { } r) parts.Add($"recon {r:F3}");
        if (m.PseudoLogLikelihood is { } pl) parts.Add($"PLL {pl:F2}");
        if (m.FreeEnergyGap is { } gap) parts.Add($"F gap {gap:F3}");
        if (m.LowestSwapAcceptance is { } swap) parts.Add($"lowest swap rate {swap:F3}");
        return string.Join("  ", parts);
    }

    /// <summary>
    /// Runs <paramref name="work"/> with a live progress display (plain lines when output is not a terminal). However
    /// <paramref name="work"/> ends (an interruption included), the display is closed and the cursor shown again.
    /// </summary>
    public static T Run<T>(Func<IProgress<TrainingProgress>, T> work)
    {
        T result = default!;
        Terminal.Out.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx => result = work(new ConsoleProgress(ctx)));
        return result;
    }
}

/// <summary>
/// Forwards fine-tuning progress to the shared progress display, printing one line per epoch with the time the
/// stage's remaining epochs should take: the mean epoch time of the last (up to) 20 epochs times the epochs left
/// (an upper bound when early stopping ends the stage sooner).
/// </summary>
internal sealed class FineTuneLines(IProgress<TrainingProgress> display, Action<string, int, int> saved) : IProgress<ClassifierProgress>
{
    private readonly Queue<double> _recent = new();
    private string? _stage;

    public void Report(ClassifierProgress p)
    {
        display.Report(new TrainingProgress(p.Stage, p.Epoch, p.Epochs, p.Batch, p.Batches, null));
        if (p.EpochMetrics is not { } m) return;
        saved(p.Stage, m.Epoch, m.Epochs);   // stage, epoch, epochs: which checkpoint a stop keeps
        if (_stage != p.Stage) { _recent.Clear(); _stage = p.Stage; }
        _recent.Enqueue(m.Seconds);
        if (_recent.Count > 20) _recent.Dequeue();
        int left = m.Epochs - m.Epoch;
        string eta = left > 0 ? $"  {left} epochs left, ~{Duration(_recent.Average() * left)}" : "";
        Terminal.Line(($"{p.Stage} epoch {m.Epoch}/{m.Epochs}  {m.Seconds:F1} s  loss {m.TrainLoss:F4}  " +
            (m.ValidationError is { } v ? $"validation error {100 * v:F2} %{(m.IsBest ? " *" : "")}" : "no validation") +
            (m.RawValidationError is { } raw ? $" (averaged; raw {100 * raw:F2} %)" : "") + $"  lr {m.LearningRate:G3}{eta}"));
    }

    private static string Duration(double seconds)
    {
        if (seconds < 90) return $"{seconds:F0} s";
        long minutes = (long)Math.Round(seconds / 60);
        return minutes < 90 ? $"{minutes} min" : $"{minutes / 60} h {minutes % 60} min";
    }
}

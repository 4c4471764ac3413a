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

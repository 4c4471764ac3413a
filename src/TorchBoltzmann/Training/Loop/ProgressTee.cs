namespace TorchBoltzmann.Training;

/// <summary>
/// Sends each progress report to two receivers in order (a console display and a <see cref="Logging.TensorBoardLogger"/>,
/// say), synchronously on the trainer's thread, as trainers report.
/// </summary>
public static class ProgressTee
{
    /// <summary>Both receivers, or the one that is not null (null when neither is given).</summary>
    /// <typeparam name="T">The progress record.</typeparam>
    /// <param name="first">Receives each report first.</param>
    /// <param name="second">Receives it second.</param>
    public static IProgress<T>? Of<T>(IProgress<T>? first, IProgress<T>? second) =>
        first is null ? second : second is null ? first : new Both<T>(first, second);

    private sealed class Both<T>(IProgress<T> first, IProgress<T> second) : IProgress<T>
    {
        public void Report(T value)
        {
            first.Report(value);
            second.Report(value);
        }
    }
}

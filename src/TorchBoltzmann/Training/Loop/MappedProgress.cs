namespace TorchBoltzmann.Training;

/// <summary>Passes each report on as another type (a trainer's own progress record), synchronously.</summary>
internal sealed class MappedProgress<TIn, TOut>(IProgress<TOut> target, Func<TIn, TOut> map) : IProgress<TIn>
{
    /// <summary>A mapping progress, or null when there is no <paramref name="target"/>.</summary>
    public static IProgress<TIn>? Of(IProgress<TOut>? target, Func<TIn, TOut> map) => target is null ? null : new MappedProgress<TIn, TOut>(target, map);

    public void Report(TIn value) => target.Report(map(value));
}

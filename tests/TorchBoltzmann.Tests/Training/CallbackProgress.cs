namespace TorchBoltzmann.Tests.Training;

/// <summary>An IProgress that runs the callback synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class CallbackProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}

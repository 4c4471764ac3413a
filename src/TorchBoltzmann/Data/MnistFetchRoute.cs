namespace TorchBoltzmann.Data;

/// <summary>
/// One way of obtaining MNIST files. <see cref="Fetch"/> installs (hash-verified, atomically) as many of the
/// requested files as it can into the target directory, and throws with a reason when it cannot provide them all.
/// </summary>
/// <param name="Name">Human-readable description, e.g. "HTTP https://…/mnist/".</param>
/// <param name="Fetch">(target directory, file names still missing, expected SHA-256 per name, progress log).</param>
internal sealed record MnistFetchRoute(
    string Name,
    Action<string, IReadOnlyList<string>, IReadOnlyDictionary<string, string>, IProgress<string>?> Fetch);

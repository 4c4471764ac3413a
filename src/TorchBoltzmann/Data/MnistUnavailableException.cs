namespace TorchBoltzmann.Data;

/// <summary>
/// MNIST is not present and no download route worked. The message lists every directory checked, every route tried
/// with the reason it failed, and how to supply the files by hand (<c>--data DIR</c> or <c>MNIST_DIR</c>).
/// </summary>
public sealed class MnistUnavailableException : IOException
{
    /// <summary>Creates the exception with a default message.</summary>
    public MnistUnavailableException()
        : base("MNIST is not available.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">What was tried and why it failed.</param>
    public MnistUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    /// <param name="message">What was tried and why it failed.</param>
    /// <param name="innerException">The cause.</param>
    public MnistUnavailableException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}

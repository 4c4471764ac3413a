namespace TorchBoltzmann.IO;

/// <summary>A checkpoint could not be read: missing, truncated, corrupt, mismatched with its sidecar, or of a newer format.</summary>
public sealed class CheckpointException : IOException
{
    /// <summary>Creates the exception.</summary>
    public CheckpointException(string message, Exception? inner = null) : base(message, inner) { }
}

using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// The model of a run checkpoint with the run's progress (<see cref="RunCheckpoint.LoadModel"/>): a run still training,
/// or one that stopped, as it stood when the file was written.
/// </summary>
public sealed class RunCheckpointModel : IDisposable
{
    internal RunCheckpointModel(nn.Module model, string kind, int epochsDone, int? epochs, bool finished, IReadOnlyDictionary<string, string> identity)
    {
        Model = model;
        Kind = kind;
        EpochsDone = epochsDone;
        Epochs = epochs;
        Finished = finished;
        Identity = identity;
    }

    /// <summary>The module (an <see cref="Modules.RBM"/>, <see cref="Modules.DBM"/>, <see cref="Modules.DBN"/>, …) with the run's weights.</summary>
    public nn.Module Model { get; }

    /// <summary>The kind of run that wrote the file ("rbm", "dbm", "up-down", "boltzmann-machine").</summary>
    public string Kind { get; }

    /// <summary>Epochs the run had completed when it wrote the file.</summary>
    public int EpochsDone { get; }

    /// <summary>The epochs the run was set to train, when the file records them.</summary>
    public int? Epochs { get; }

    /// <summary>Whether the run had ended (all epochs done or stopped early) when it wrote the file.</summary>
    public bool Finished { get; }

    /// <summary>What the run records of itself: options, data sizes, device, tags (strings by name).</summary>
    public IReadOnlyDictionary<string, string> Identity { get; }

    /// <summary>"after epoch E of N" (or "after epoch E" when the run records no epoch count, "finished after E epochs" once it ended) for messages.</summary>
    public string Progress => Finished ? $"finished after {EpochsDone} epoch{(EpochsDone == 1 ? "" : "s")}" : Epochs is { } n ? $"after epoch {EpochsDone} of {n}" : $"after epoch {EpochsDone}";

    /// <summary>Frees the module.</summary>
    public void Dispose() => Model.Dispose();
}

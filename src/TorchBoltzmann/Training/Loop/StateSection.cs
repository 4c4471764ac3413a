using System.Text.Json.Nodes;
using TorchBoltzmann.IO;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// One named part of a run's state in a <see cref="RunCheckpoint"/>: small values as JSON, tensors and byte blobs by name.
/// A component (<see cref="IStateful"/>) fills one when a checkpoint is written and reads one back when a run continues.
/// </summary>
/// <remarks>
/// Writing: <see cref="Put"/> borrows a tensor until the file is written (<see cref="PutCopy"/> hands over a copy the
/// section disposes). Reading: the tensors are CPU temporaries the section owns; <see cref="Tensor(string, TorchSharp.torch.Tensor, string)"/>
/// checks a tensor's shape and dtype against the target it is meant for, so a component can refuse a section before it
/// changes anything.
/// </remarks>
public sealed class StateSection : IDisposable
{
    private readonly List<(string Name, Tensor Tensor)> _tensors = new();
    private readonly List<(string Name, byte[] Bytes)> _blobs = new();
    private readonly List<Tensor> _owned = new();

    /// <summary>Creates an empty section.</summary>
    /// <param name="name">The component's <see cref="IStateful.StateName"/>.</param>
    /// <param name="file">Where the section was read from (for messages); null while writing.</param>
    public StateSection(string name, string? file = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        File = file;
    }

    /// <summary>The section's name (the component's <see cref="IStateful.StateName"/>).</summary>
    public string Name { get; }

    /// <summary>The file the section was read from (null while writing).</summary>
    public string? File { get; }

    /// <summary>Small values: counters, flags, records of metrics.</summary>
    public JsonObject Values { get; init; } = new();

    /// <summary>The tensors, in the order they were put.</summary>
    public IReadOnlyList<(string Name, Tensor Tensor)> Tensors => _tensors;

    /// <summary>The byte blobs, in the order they were put.</summary>
    public IReadOnlyList<(string Name, byte[] Bytes)> Blobs => _blobs;

    /// <summary>Adds a tensor, borrowed until the checkpoint is written (its bytes are copied then).</summary>
    /// <exception cref="ArgumentException">A tensor of that name is already in the section.</exception>
    public void Put(string name, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (Has(name)) throw new ArgumentException($"section '{Name}': tensor '{name}' is already in it.", nameof(name));
        _tensors.Add((name, tensor));
    }

    /// <summary>Adds a tensor the section owns (and disposes).</summary>
    public void PutCopy(string name, Tensor tensor)
    {
        Put(name, tensor);
        _owned.Add(tensor);
    }

    /// <summary>Adds a byte blob (e.g. an optimizer's state in TorchSharp's format).</summary>
    public void PutBytes(string name, byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        if (_blobs.Any(b => b.Name == name)) throw new ArgumentException($"section '{Name}': blob '{name}' is already in it.", nameof(name));
        _blobs.Add((name, bytes));
    }

    /// <summary>Whether the section holds a tensor of this name.</summary>
    public bool Has(string name) => _tensors.Any(t => t.Name == name);

    /// <summary>The tensor <paramref name="name"/> as read (a CPU temporary the section owns).</summary>
    /// <exception cref="CheckpointException">No such tensor.</exception>
    public Tensor Tensor(string name)
        => _tensors.FirstOrDefault(t => t.Name == name).Tensor ?? throw Refuse($"tensor '{name}' is missing");

    /// <summary>The tensor <paramref name="name"/>, checked to have <paramref name="like"/>'s shape and dtype.</summary>
    /// <param name="name">The tensor's name in the section.</param>
    /// <param name="like">The tensor it is to be copied into.</param>
    /// <param name="where">Where <paramref name="like"/> is, for the message ("in the model").</param>
    /// <exception cref="CheckpointException">No such tensor, or another shape or dtype.</exception>
    public Tensor Tensor(string name, Tensor like, string where = "here")
    {
        var t = Tensor(name);
        if (!t.shape.SequenceEqual(like.shape) || t.dtype != like.dtype)
            throw Refuse($"tensor '{name}' is {Describe(t)} in the checkpoint, {Describe(like)} {where}");
        return t;
    }

    /// <summary>
    /// The tensors <c>layer.0</c> … <c>layer.{n−1}</c>, one per expected shape, each checked to have its shape and
    /// <paramref name="dtype"/>; with <paramref name="exclusive"/>, a tensor of any other name is refused too.
    /// </summary>
    /// <param name="shapes">The expected shape of each layer's tensor.</param>
    /// <param name="dtype">The expected dtype.</param>
    /// <param name="what">What a tensor is, for the message ("the chains' layer", "the offset of layer"); its index follows.</param>
    /// <param name="exclusive">Refuse tensors beyond the layers'.</param>
    /// <exception cref="CheckpointException">A layer missing, of another shape or dtype, or (exclusive) an unexpected tensor.</exception>
    public Tensor[] Layers(IReadOnlyList<long[]> shapes, ScalarType dtype, string what, bool exclusive = false)
    {
        var loaded = new Tensor[shapes.Count];
        for (int l = 0; l < loaded.Length; l++)
        {
            var t = Tensor($"layer.{l}");
            if (!t.shape.SequenceEqual(shapes[l]) || t.dtype != dtype)
                throw Refuse($"{what} {l} is {Describe(t)}, expected ({string.Join(", ", shapes[l])}) {dtype}");
            loaded[l] = t;
        }
        if (exclusive)
        {
            var unexpected = _tensors.Select(t => t.Name).Except(Enumerable.Range(0, loaded.Length).Select(l => $"layer.{l}")).ToList();
            if (unexpected.Count > 0) throw Refuse($"unexpected tensors {string.Join(", ", unexpected)}");
        }
        return loaded;
    }

    /// <summary>The blob <paramref name="name"/>.</summary>
    /// <exception cref="CheckpointException">No such blob.</exception>
    public byte[] Bytes(string name)
        => _blobs.FirstOrDefault(b => b.Name == name).Bytes ?? throw Refuse($"blob '{name}' is missing");

    /// <summary>The value <paramref name="key"/> as a <typeparamref name="T"/>.</summary>
    /// <exception cref="CheckpointException">Missing, null, or not a <typeparamref name="T"/>.</exception>
    public T Value<T>(string key)
    {
        try
        {
            if (Values[key] is { } node && node.GetValue<T>() is { } v) return v;
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException or ArgumentException) { }
        throw Refuse($"value '{key}' is missing or not a {typeof(T).Name}");
    }

    /// <summary>A <see cref="CheckpointException"/> naming the file, the section and <paramref name="problem"/>.</summary>
    public CheckpointException Refuse(string problem)
        => new($"'{File}': section '{Name}': {problem}. Delete the file to start over.");

    internal void Adopt(string name, Tensor tensor) => PutCopy(name, tensor);

    internal void AdoptBytes(string name, byte[] bytes) => _blobs.Add((name, bytes));

    internal static string Describe(Tensor t) => $"({string.Join(", ", t.shape)}) {t.dtype}";

    /// <summary>Disposes the tensors the section owns.</summary>
    public void Dispose()
    {
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
        _tensors.Clear();
    }
}

/// <summary>
/// A component of a training run whose state a <see cref="RunCheckpoint"/> saves and restores, the way a TorchSharp
/// optimizer owns its state and its <c>save_state_dict</c>/<c>load_state_dict</c>: the model's weights, the optimizer,
/// a generator, persistent chains, early stopping's record, an iterate average.
/// </summary>
/// <remarks>
/// Restoring is in two phases so that a refused checkpoint changes nothing: every component first checks its section
/// (<see cref="PrepareLoad"/>, which must not change any state), and only when all have accepted are the returned
/// actions run.
/// </remarks>
public interface IStateful
{
    /// <summary>The component's section name, unique within a run.</summary>
    string StateName { get; }

    /// <summary>Writes the component's state into <paramref name="section"/>.</summary>
    void SaveState(StateSection section);

    /// <summary>
    /// Checks <paramref name="section"/> and returns the action that loads it. Throws a <see cref="CheckpointException"/>
    /// (<see cref="StateSection.Refuse"/>) for a section that does not fit, without changing anything.
    /// </summary>
    Action PrepareLoad(StateSection section);
}

using System.Text.Json;
using System.Text.Json.Nodes;
using TorchBoltzmann.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// The resume format of every trainer on the <see cref="TrainingLoop{TMetrics}"/>: one file holding the identity of the
/// run and one <see cref="StateSection"/> per <see cref="IStateful"/> component (the loop's own record, the model, the
/// optimizer, generators, chains, callbacks), written atomically (<see cref="AtomicFile"/>).
/// </summary>
/// <remarks>
/// <para>Layout: the string "TBMRUN" and an int32 format version (BinaryWriter encoding), a JSON header (string)
/// <c>{"kind", "identity": {…}, "sections": [{"name", "values": {…}, "tensors": [{"name", "shape", "dtype"}],
/// "blobs": [{"name", "length"}]}]}</c>, then, section by section in header order, each tensor as an int32 byte count and
/// its raw bytes (CPU, contiguous), each blob likewise. Nothing follows the last blob.</para>
/// <para>Reading checks the header (dtypes from a fixed list, shapes non-negative, byte counts equal to what shape and
/// dtype imply, every count within the file) before it allocates, reads every tensor into a CPU temporary, compares the
/// identity with the run's (the differences are named), then lets every component check its section; only when all
/// accept are the sections loaded. A refused, truncated or corrupt file changes nothing.</para>
/// <para>Files of the earlier formats: <see cref="FineTuner"/> still reads the <c>TBMFT</c> fine-tuning checkpoints it
/// wrote before (<see cref="FineTuningCheckpoint"/>), and writes this format from then on.</para>
/// </remarks>
public static class RunCheckpoint
{
    /// <summary>The magic string at the start of a run checkpoint.</summary>
    public const string Magic = "TBMRUN";

    /// <summary>The format version written; others are refused.</summary>
    public const int Version = 1;

    private static readonly JsonSerializerOptions Json = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>The dtypes a run checkpoint may hold (anything else in a header is refused before allocation).</summary>
    private static readonly ScalarType[] DTypes =
        [ScalarType.Float32, ScalarType.Float64, ScalarType.BFloat16, ScalarType.Float16, ScalarType.Int64, ScalarType.Int32, ScalarType.Byte, ScalarType.Bool];

    /// <summary>Whether <paramref name="path"/> begins with this format's magic (false for a missing or other file).</summary>
    public static bool IsRunCheckpoint(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);   // a writer may replace it meanwhile
            using var r = new BinaryReader(stream, System.Text.Encoding.UTF8);
            return r.ReadString() == Magic;
        }
        catch (Exception e) when (e is not OutOfMemoryException) { return false; }
    }

    /// <summary>Writes the components' states atomically to <paramref name="path"/>.</summary>
    /// <param name="path">The file.</param>
    /// <param name="kind">What kind of run wrote it ("rbm", "fine-tuning", …); a run of another kind refuses it.</param>
    /// <param name="identity">What a continuing run must share with this one (compared entry by entry).</param>
    /// <param name="components">The run's components, each with a distinct <see cref="IStateful.StateName"/>.</param>
    /// <exception cref="IOException">The file could not be written; the previous one is whole.</exception>
    public static void Save(string path, string kind, IReadOnlyDictionary<string, string> identity, IEnumerable<IStateful> components)
    {
        var sections = new List<StateSection>();
        try
        {
            foreach (var c in components)
            {
                var s = new StateSection(c.StateName);
                sections.Add(s);
                c.SaveState(s);
            }
            var header = new JsonObject
            {
                ["kind"] = kind,
                ["identity"] = JsonSerializer.SerializeToNode(identity),
                ["sections"] = new JsonArray(sections.Select(s => (JsonNode)new JsonObject
                {
                    ["name"] = s.Name,
                    ["values"] = s.Values.DeepClone(),
                    ["tensors"] = new JsonArray(s.Tensors.Select(t => (JsonNode)new JsonObject
                    {
                        ["name"] = t.Name, ["shape"] = new JsonArray(t.Tensor.shape.Select(d => (JsonNode)d).ToArray()), ["dtype"] = t.Tensor.dtype.ToString(),
                    }).ToArray()),
                    ["blobs"] = new JsonArray(s.Blobs.Select(b => (JsonNode)new JsonObject { ["name"] = b.Name, ["length"] = b.Bytes.Length }).ToArray()),
                }).ToArray()),
            };
            string text = header.ToJsonString(Json);
            AtomicFile.Write(path, stream =>
            {
                using var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
                w.Write(Magic);
                w.Write(Version);
                w.Write(text);
                foreach (var s in sections)
                {
                    foreach (var (_, t) in s.Tensors)
                    {
                        using var scope = torch.NewDisposeScope();
                        var bytes = t.detach().cpu().contiguous().bytes;
                        w.Write(bytes.Length);
                        w.Write(bytes);
                    }
                    foreach (var (_, b) in s.Blobs)
                    {
                        w.Write(b.Length);
                        w.Write(b);
                    }
                }
            });
        }
        finally
        {
            foreach (var s in sections) s.Dispose();
        }
    }

    /// <summary>
    /// Restores the components from <paramref name="path"/> after checking that it is a <paramref name="kind"/> run with
    /// this <paramref name="identity"/> and that it holds exactly one section per component, each accepted by its component.
    /// </summary>
    /// <exception cref="CheckpointException">Not a run checkpoint, truncated or corrupt, of another kind or run (the
    /// differences are named), or a section a component refuses. Nothing has changed then.</exception>
    public static void Restore(string path, string kind, IReadOnlyDictionary<string, string> identity, IReadOnlyList<IStateful> components)
    {
        var (fileKind, fileIdentity, sections) = Read(path);
        try
        {
            if (fileKind != kind)
                throw new CheckpointException($"'{path}' is the checkpoint of a {fileKind} run, not of a {kind} run. Delete it to start over.");
            var differ = FineTuningCheckpoint.Differences(fileIdentity, identity, absentMatchesNull: true);
            if (differ.Count > 0)
                throw new CheckpointException($"'{path}' was written by another run: {string.Join("; ", differ)}. Delete it to start over, or run as before.");
            var names = components.Select(c => c.StateName).ToList();
            var missing = names.Except(sections.Select(s => s.Name)).ToList();
            var extra = sections.Select(s => s.Name).Except(names).ToList();
            if (missing.Count > 0 || extra.Count > 0)
                throw new CheckpointException($"'{path}': expected the sections {string.Join(", ", names)}; " +
                    $"{(missing.Count > 0 ? $"missing {string.Join(", ", missing)}" : "")}{(missing.Count > 0 && extra.Count > 0 ? ", " : "")}" +
                    $"{(extra.Count > 0 ? $"unexpected {string.Join(", ", extra)}" : "")}. Delete it to start over.");
            var loads = new List<Action>();
            foreach (var c in components)
            {
                try { loads.Add(c.PrepareLoad(sections.First(s => s.Name == c.StateName))); }
                catch (Exception e) when (e is not (CheckpointException or OutOfMemoryException))
                {
                    throw new CheckpointException($"'{path}': section '{c.StateName}' cannot be loaded ({e.GetType().Name}: {e.Message}). Delete it to start over.", e);
                }
            }
            foreach (var load in loads) load();
        }
        finally
        {
            foreach (var s in sections) s.Dispose();
        }
    }

    /// <summary>
    /// Loads some components of a run checkpoint and leaves its other sections unloaded: e.g. the "model" and "loop"
    /// sections of a run still training, to measure it without stopping it. The file is read once, whole, and checked as
    /// <see cref="Restore"/> checks it; the identity is not compared with anything but handed to
    /// <paramref name="checkIdentity"/> first, which may throw to refuse the file before anything is loaded. The file is
    /// opened so that the run writing it can go on replacing it. Messages do not advise deleting the file: it may be
    /// another process's live checkpoint.
    /// </summary>
    /// <param name="path">The run checkpoint.</param>
    /// <param name="kind">The kind of run that must have written it ("up-down", "rbm", …).</param>
    /// <param name="components">The components to load; each one's <see cref="IStateful.StateName"/> names its section.</param>
    /// <param name="checkIdentity">Called with the file's identity before any component is loaded; null accepts any.</param>
    /// <exception cref="CheckpointException">Not a run checkpoint, truncated or corrupt, of another kind, without one of
    /// the sections, or a section its component refuses. Nothing has changed then.</exception>
    public static void LoadSections(string path, string kind, IReadOnlyList<IStateful> components, Action<IReadOnlyDictionary<string, string>>? checkIdentity = null)
    {
        ArgumentNullException.ThrowIfNull(components);
        LoadSectionsOf(path, kind, (identity, _, _) =>
        {
            checkIdentity?.Invoke(identity);
            return components;
        });
    }

    /// <summary>
    /// The model of a run checkpoint as it stands, e.g. to measure a run still training: the module is rebuilt from the
    /// identity's <c>model</c> entry (<see cref="Checkpoint.Describe"/>'s type and architecture, which the RBM, DBM,
    /// Boltzmann-machine and up-down trainers record) and given the "model" section's weights; the loop's record gives
    /// the epochs done and planned (planned: from the identity's <c>options.Epochs</c> for files written before the loop
    /// recorded it). The file is read once, whole, and checked as <see cref="LoadSections"/> checks it; nothing else of
    /// the run is loaded, and the run may go on replacing the file.
    /// </summary>
    /// <param name="path">The run checkpoint.</param>
    /// <param name="device">Where the module goes (default: the CPU).</param>
    /// <param name="checkIdentity">Called with the file's kind and identity before anything is built; may throw to refuse it.</param>
    /// <returns>The module with the run's weights, the run's kind and progress; the caller disposes it.</returns>
    /// <exception cref="CheckpointException">Not a run checkpoint, truncated or corrupt, a run that records no model (a
    /// pretraining or fine-tuning run), or weights that do not fit the model it records. Nothing is returned then.</exception>
    public static RunCheckpointModel LoadModel(string path, Device? device = null, Action<string, IReadOnlyDictionary<string, string>>? checkIdentity = null)
    {
        nn.Module? module = null;
        var loop = new LoopProgressRecord();
        string runKind = "";
        IReadOnlyDictionary<string, string>? runIdentity = null;
        try
        {
            LoadSectionsOf(path, null, (identity, kind, sections) =>
            {
                checkIdentity?.Invoke(kind, identity);
                (runKind, runIdentity) = (kind, identity);
                if (!identity.TryGetValue("model", out var model))
                    throw new CheckpointException($"'{path}': a {kind} run checkpoint records no model to rebuild (the RBM, DBM, Boltzmann-machine and up-down runs' checkpoints do).");
                int space = model.IndexOf(' ');
                JsonObject? architecture;
                try { architecture = space > 0 ? JsonNode.Parse(model[(space + 1)..]) as JsonObject : null; }
                catch (JsonException e) { throw new CheckpointException($"'{path}': the identity's model entry is not valid JSON ({e.Message}).", e); }
                if (architecture is null) throw new CheckpointException($"'{path}': the identity's model entry is not 'TYPE {{architecture}}': '{model}'.");
                // The recorded sizes are checked against the saved tensors before a model of those sizes is allocated.
                var found = sections.FirstOrDefault(s => s.Name == "model")?.Tensors.ToDictionary(t => t.Name, t => t.Tensor.shape)
                            ?? throw new CheckpointException($"'{path}': no section 'model' (it holds {string.Join(", ", sections.Select(s => s.Name))}).");
                module = Checkpoint.CreateFitting(model[..space], architecture, found, $"'{path}'");
                return [new ModuleState("model", module), loop];
            });
            if (device is not null && device.type != DeviceType.CPU) module!.to(device);
            var epochs = loop.Epochs ?? (runIdentity!.TryGetValue("options.Epochs", out var e) && int.TryParse(e, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int n) && n >= 0 ? n : null);
            var result = new RunCheckpointModel(module!, runKind, loop.EpochsDone, epochs, loop.Finished, runIdentity!);
            module = null;
            return result;
        }
        finally { module?.Dispose(); }
    }

    /// <summary>
    /// Reads <paramref name="path"/> once, hands its identity, kind and sections to <paramref name="components"/> (which may
    /// throw to refuse it, and names the components to load) and loads those components' sections; other sections stay unloaded.
    /// <paramref name="kind"/> null accepts any kind. Messages do not advise deleting the file.
    /// </summary>
    private static void LoadSectionsOf(string path, string? kind, Func<IReadOnlyDictionary<string, string>, string, IReadOnlyList<StateSection>, IReadOnlyList<IStateful>> components)
    {
        static CheckpointException Plain(CheckpointException e) => new(e.Message.Replace(" Delete it to start over.", "").Replace(" Delete the file to start over.", ""), e);
        List<StateSection> sections;
        Dictionary<string, string> fileIdentity;
        string fileKind;
        try { (fileKind, fileIdentity, sections) = Read(path); }
        catch (CheckpointException e) { throw Plain(e); }
        try
        {
            if (kind is not null && fileKind != kind)
                throw new CheckpointException($"'{path}' is the checkpoint of a {fileKind} run, not of a {kind} run.");
            var loads = new List<Action>();
            foreach (var component in components(fileIdentity, fileKind, sections))
            {
                var section = sections.FirstOrDefault(s => s.Name == component.StateName)
                              ?? throw new CheckpointException($"'{path}': no section '{component.StateName}' (it holds {string.Join(", ", sections.Select(s => s.Name))}).");
                try { loads.Add(component.PrepareLoad(section)); }
                catch (CheckpointException e) { throw Plain(e); }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    throw new CheckpointException($"'{path}': section '{component.StateName}' cannot be loaded ({e.GetType().Name}: {e.Message}).", e);
                }
            }
            foreach (var load in loads) load();
        }
        finally
        {
            foreach (var s in sections) s.Dispose();
        }
    }

    /// <summary>The progress a run checkpoint's loop record holds (epochs done and planned, finished), read without its history.</summary>
    private sealed class LoopProgressRecord : IStateful
    {
        public int EpochsDone { get; private set; }

        public bool Finished { get; private set; }

        public int? Epochs { get; private set; }

        public string StateName => "loop";

        public void SaveState(StateSection section) => throw new NotSupportedException("This record only reads a run checkpoint.");

        public Action PrepareLoad(StateSection section)
        {
            int done = section.Value<int>("epochs_done");
            bool finished = section.Value<bool>("finished");
            int? epochs = section.Values["epochs"] is null ? null : section.Value<int>("epochs");   // absent in files written before it was recorded
            if (done < 0) throw section.Refuse($"{done} epochs done");
            if (epochs < 0) throw section.Refuse($"{epochs} epochs planned");
            return () => (EpochsDone, Finished, Epochs) = (done, finished, epochs);
        }
    }

    /// <summary>The identity and one section's values of a run checkpoint, read from its header alone (no tensors).</summary>
    /// <exception cref="CheckpointException">Not a run checkpoint, a corrupt header, or no such section.</exception>
    public static (IReadOnlyDictionary<string, string> Identity, JsonObject Values) ReadRecord(string path, string section)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);   // a writer may replace it meanwhile
            using var r = new BinaryReader(stream, System.Text.Encoding.UTF8);
            if (r.ReadString() != Magic || r.ReadInt32() != Version)
                throw new CheckpointException($"'{path}': not a run checkpoint of format {Magic} {Version}.");
            var header = JsonNode.Parse(r.ReadString()) as JsonObject ?? throw Corrupt(path, "the header is not a JSON object");
            var identity = (header["identity"] as JsonObject ?? throw Corrupt(path, "no identity"))
                .ToDictionary(kv => kv.Key, kv => kv.Value?.GetValue<string>() ?? "");
            var values = (header["sections"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(s => s["name"]?.GetValue<string>() == section)?["values"] as JsonObject
                         ?? throw Corrupt(path, $"no section '{section}'");
            return (identity, (JsonObject)values.DeepClone());
        }
        catch (Exception e) when (e is not (CheckpointException or OutOfMemoryException))
        {
            throw new CheckpointException($"'{path}': truncated or corrupt run checkpoint ({e.GetType().Name}: {e.Message}).", e);
        }
    }

    /// <summary>Reads a whole run checkpoint into memory: its kind, identity and sections (CPU tensors the caller disposes).</summary>
    /// <exception cref="CheckpointException">Not a run checkpoint, or truncated or corrupt.</exception>
    internal static (string Kind, Dictionary<string, string> Identity, List<StateSection> Sections) Read(string path)
    {
        var sections = new List<StateSection>();
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);   // a writer may replace it meanwhile
            using var r = new BinaryReader(stream, System.Text.Encoding.UTF8);
            string magic = r.ReadString();
            int version = r.ReadInt32();
            if (magic != Magic || version != Version)
                throw new CheckpointException($"'{path}': not a run checkpoint of format {Magic} {Version} (found '{magic}' {version}). Delete it to start over.");
            var header = JsonNode.Parse(r.ReadString()) as JsonObject ?? throw new CheckpointException($"'{path}': the header is not a JSON object. Delete it to start over.");
            string kind = header["kind"]?.GetValue<string>() ?? throw Corrupt(path, "no kind");
            var identity = (header["identity"] as JsonObject ?? throw Corrupt(path, "no identity"))
                .ToDictionary(kv => kv.Key, kv => kv.Value?.GetValue<string>() ?? throw Corrupt(path, $"identity '{kv.Key}' is null"));
            var list = header["sections"] as JsonArray ?? throw Corrupt(path, "no sections");
            var names = new HashSet<string>();
            foreach (var node in list)
            {
                var o = node as JsonObject ?? throw Corrupt(path, "a section is not an object");
                string name = o["name"]?.GetValue<string>() ?? throw Corrupt(path, "a section without a name");
                if (name.Length == 0 || !names.Add(name)) throw Corrupt(path, $"section name '{name}' is empty or repeated");
                var values = o["values"] as JsonObject ?? throw Corrupt(path, $"section '{name}' has no values");
                var section = new StateSection(name, path) { Values = (JsonObject)values.DeepClone() };
                sections.Add(section);
                foreach (var t in o["tensors"] as JsonArray ?? throw Corrupt(path, $"section '{name}' has no tensor list"))
                {
                    var to = t as JsonObject ?? throw Corrupt(path, $"section '{name}': a tensor entry is not an object");
                    string tname = to["name"]?.GetValue<string>() ?? throw Corrupt(path, $"section '{name}': a tensor without a name");
                    if (!Enum.TryParse<ScalarType>(to["dtype"]?.GetValue<string>(), out var dtype) || !DTypes.Contains(dtype) || !Enum.IsDefined(dtype))
                        throw Corrupt(path, $"tensor '{name}/{tname}' has an unexpected dtype");
                    var shape = (to["shape"] as JsonArray ?? throw Corrupt(path, $"tensor '{name}/{tname}' has no shape")).Select(d => d?.GetValue<long>() ?? -1).ToArray();
                    if (shape.Length > 8 || shape.Any(d => d < 0)) throw Corrupt(path, $"tensor '{name}/{tname}' has a bad shape");
                    long elements = 1;
                    foreach (var d in shape) elements = d == 0 ? 0 : elements > (stream.Length + 1) / d ? stream.Length + 1 : elements * d;
                    long expected = elements * ElementSize(dtype);
                    int n = r.ReadInt32();
                    // Before reading: a corrupt length must not size an allocation.
                    if (n != expected) throw Corrupt(path, $"tensor '{name}/{tname}' should hold {expected} bytes; the file gives {n}");
                    CheckRemaining(path, stream, n, $"tensor '{name}/{tname}'");
                    var tensor = torch.empty(shape, dtype).DetachFromDisposeScope();
                    section.Adopt(tname, tensor);
                    r.ReadBytes(n).CopyTo(tensor.bytes);
                }
                foreach (var b in o["blobs"] as JsonArray ?? throw Corrupt(path, $"section '{name}' has no blob list"))
                {
                    var bo = b as JsonObject ?? throw Corrupt(path, $"section '{name}': a blob entry is not an object");
                    string bname = bo["name"]?.GetValue<string>() ?? throw Corrupt(path, $"section '{name}': a blob without a name");
                    long length = bo["length"]?.GetValue<long>() ?? -1;
                    int n = r.ReadInt32();
                    if (n != length || n < 0) throw Corrupt(path, $"blob '{name}/{bname}' should hold {length} bytes; the file gives {n}");
                    CheckRemaining(path, stream, n, $"blob '{name}/{bname}'");
                    section.AdoptBytes(bname, r.ReadBytes(n));
                }
            }
            if (stream.Position != stream.Length)
                throw Corrupt(path, $"{stream.Length - stream.Position} byte(s) after the last section");
            return (kind, identity, sections);
        }
        catch (Exception e)
        {
            foreach (var s in sections) s.Dispose();
            if (e is CheckpointException or OutOfMemoryException) throw;
            throw new CheckpointException($"'{path}': truncated or corrupt run checkpoint ({e.GetType().Name}: {e.Message}). Delete it to start over.", e);
        }
    }

    /// <summary>Refuses a file that ends before the <paramref name="n"/> bytes of <paramref name="what"/>.</summary>
    private static void CheckRemaining(string path, Stream stream, long n, string what)
    {
        long remaining = stream.Length - stream.Position;
        if (n > remaining)
            throw new CheckpointException($"'{path}': truncated run checkpoint: {what} needs {n} bytes, {remaining} remain. Delete it to start over.");
    }

    private static CheckpointException Corrupt(string path, string problem)
        => new($"'{path}': corrupt run checkpoint ({problem}). Delete it to start over.");

    private static long ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.BFloat16 or ScalarType.Float16 => 2,
        _ => 1,
    };
}

using System.Reflection;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.IO;

/// <summary>
/// Checkpoints: the module's state_dict in TorchSharp's format (<c>X.pt</c>) plus a JSON sidecar (<c>X.json</c>) with
/// the format version, model type, architecture, unit types, dtype, training configuration, library version and the
/// SHA-256 of the weights, so a model loads without the caller knowing its sizes and a mismatched or damaged pair is
/// detected. <see cref="Save"/> replaces the pair so that the previous checkpoint or the new one loads at every instant,
/// even if the saving process is killed (the sequence and its reasoning are in <see cref="Save"/>'s remarks).
/// </summary>
public static class Checkpoint
{
    /// <summary>Current sidecar format version; files with a larger version are refused.</summary>
    public const int FormatVersion = 1;

    /// <summary>The <c>format</c> field every sidecar carries.</summary>
    public const string FormatName = "torchboltzmann-checkpoint";

    /// <summary>The suffix of a new sidecar written beside <c>X.json</c> (<c>.X.json.&lt;id&gt;.pending</c>) until it is renamed over it.</summary>
    internal const string PendingSuffix = ".pending";

    private static readonly Dictionary<string, Func<JsonObject, nn.Module>> Factories = new()
    {
        ["RBM"] = arch => new RBM(
            arch.Required<int>("n_visible"), arch.Required<int>("n_hidden"),
            UnitType.FromName(arch.Required<string>("visible_units")), UnitType.FromName(arch.Required<string>("hidden_units")),
            dtype: Enum.Parse<ScalarType>(arch.Required<string>("dtype")))
        {
            // Written only when not 1 (RBM.up_scale, RBM.down_scale): sidecars of ordinary RBMs are as before.
            up_scale = arch.Optional<double?>("up_scale") ?? 1.0,
            down_scale = arch.Optional<double?>("down_scale") ?? 1.0,
        },
        // The mask is a buffer in the weights file and replaces the full mask built here when the state_dict loads.
        ["BoltzmannMachine"] = arch => new BoltzmannMachine(
            arch.Required<int>("n_visible"), arch.Required<int>("n_hidden"), mask: null,
            units: UnitType.FromName(arch.Required<string>("units")),
            dtype: Enum.Parse<ScalarType>(arch.Required<string>("dtype"))),
    };

    /// <summary>Per model type, the state_dict shapes an architecture implies, computed without allocating the model.</summary>
    private static readonly Dictionary<string, Func<JsonObject, IReadOnlyDictionary<string, long[]>>> ShapeRules = new()
    {
        ["RBM"] = arch =>
        {
            var shapes = RbmShapes(arch.Required<int>("n_visible"), arch.Required<int>("n_hidden"));
            // Gaussian visible units with learned variances add their log-variances z (n_visible).
            if (arch.Required<string>("visible_units") == LearnedGaussianUnits.TypeName) shapes["visible_log_variance"] = [arch.Required<int>("n_visible")];
            return shapes;
        },
        ["BoltzmannMachine"] = arch =>
        {
            long n = (long)arch.Required<int>("n_visible") + arch.Required<int>("n_hidden");
            return new Dictionary<string, long[]> { ["weight"] = [n, n], ["bias"] = [n], ["mask"] = [n, n] };
        },
    };

    /// <summary>The state_dict shapes of an RBM: <c>weight</c> (n_hidden, n_visible), <c>visible_bias</c> (n_visible), <c>hidden_bias</c> (n_hidden).</summary>
    internal static Dictionary<string, long[]> RbmShapes(long nVisible, long nHidden, string prefix = "") => new()
    {
        [prefix + "weight"] = [nHidden, nVisible],
        [prefix + "visible_bias"] = [nVisible],
        [prefix + "hidden_bias"] = [nHidden],
    };

    private static readonly Dictionary<Type, (string type, Func<nn.Module, JsonObject> describe)> Describers = new()
    {
        [typeof(RBM)] = ("RBM", m =>
        {
            var r = (RBM)m;
            var arch = new JsonObject
            {
                ["n_visible"] = r.n_visible, ["n_hidden"] = r.n_hidden,
                ["visible_units"] = r.visible_units.Name, ["hidden_units"] = r.hidden_units.Name,
                ["dtype"] = r.dtype.ToString(),
            };
            if (r.up_scale != 1.0) arch["up_scale"] = r.up_scale;
            if (r.down_scale != 1.0) arch["down_scale"] = r.down_scale;
            return arch;
        }),
        [typeof(BoltzmannMachine)] = ("BoltzmannMachine", m =>
        {
            var bm = (BoltzmannMachine)m;
            return new JsonObject
            {
                ["n_visible"] = bm.n_visible, ["n_hidden"] = bm.n_hidden,
                ["units"] = bm.units.Name, ["dtype"] = bm.dtype.ToString(),
            };
        }),
    };

    /// <summary>Registers a model type so that <see cref="Save"/> can describe it and <see cref="Load"/> can build it.</summary>
    public static void Register<T>(string modelType, Func<T, JsonObject> describe, Func<JsonObject, T> create) where T : nn.Module
        => Register(modelType, describe, create, shapes: null);

    /// <summary>
    /// Registers a model type so that <see cref="Save"/> can describe it and <see cref="Load"/> can build it, with the
    /// state_dict shapes an architecture implies: <see cref="Load"/> compares them with the shapes in the weights file
    /// before it builds the model, so a sidecar whose sizes were edited is refused instead of allocating them.
    /// </summary>
    /// <param name="modelType">The name recorded in sidecars (<c>model_type</c>).</param>
    /// <param name="describe">The architecture of a model, as JSON.</param>
    /// <param name="create">A model of that architecture (its weights are then loaded from the file).</param>
    /// <param name="shapes">Every state_dict key of a model of that architecture with its shape; null to skip the check.</param>
    public static void Register<T>(string modelType, Func<T, JsonObject> describe, Func<JsonObject, T> create,
                                   Func<JsonObject, IReadOnlyDictionary<string, long[]>>? shapes) where T : nn.Module
    {
        ArgumentException.ThrowIfNullOrEmpty(modelType);
        ArgumentNullException.ThrowIfNull(describe);
        ArgumentNullException.ThrowIfNull(create);
        lock (Factories)
        {
            Describers[typeof(T)] = (modelType, m => describe((T)m));
            Factories[modelType] = a => create(a);
            if (shapes is null) ShapeRules.Remove(modelType);
            else ShapeRules[modelType] = shapes;
        }
    }

    /// <summary>The sidecar path for a checkpoint path (<c>X.pt</c> → <c>X.json</c>).</summary>
    public static string SidecarPath(string path) => Path.ChangeExtension(path, ".json");

    /// <summary>The weights path: <paramref name="path"/> with extension <c>.pt</c>.</summary>
    public static string WeightsPath(string path) => Path.ChangeExtension(path, ".pt");

    /// <summary>Saves <paramref name="module"/> (weights + sidecar) so that the previous checkpoint at <paramref name="path"/> or the new one loads at every instant.</summary>
    /// <param name="module">A registered model type (RBM, DBN, …).</param>
    /// <param name="path">Target path; <c>.pt</c> and <c>.json</c> are written beside each other.</param>
    /// <param name="training">Optional training configuration and results to record (any JSON-serialisable object).</param>
    /// <returns>The weights path.</returns>
    /// <remarks>
    /// <para>Two files cannot be renamed at once, so the pair is switched by one rename of the weights, and a load that
    /// finds weights its sidecar does not describe looks for the new sidecar the save wrote beside them. With
    /// <c>W</c> = <c>X.pt</c>, <c>S</c> = <c>X.json</c> and a fresh id <c>g</c>, the file-system operations are:</para>
    /// <list type="number">
    /// <item>Finish an interrupted save: if <c>S</c> does not describe <c>W</c> (size and SHA-256) and a pending
    /// <c>.X.json.*.pending</c> does, rename that one over <c>S</c>. Loads already read that pair; the rename changes
    /// what <c>S</c> says, not which checkpoint loads.</item>
    /// <item>Delete the leftovers of killed saves: <c>.X.pt.*.tmp</c>, <c>.X.json.*.tmp</c>, <c>.X.json.*.pending</c>
    /// (32 hex digits in place of <c>*</c>, nothing else). After step 1 <c>S</c> describes <c>W</c>, so loads ignore
    /// them; deleting them one by one, a crash leaves fewer.</item>
    /// <item>Create <c>.X.pt.g.tmp</c>, write the new weights, flush it to disk. A crash here leaves the old pair,
    /// which loads, and a temporary for the next save to delete.</item>
    /// <item>Create <c>.X.json.g.pending</c>, write the new sidecar, flush it. As step 3: the old pair loads (a pending
    /// sidecar is only consulted when <c>S</c> does not describe <c>W</c>).</item>
    /// <item>Rename <c>.X.pt.g.tmp</c> over <c>W</c>: the commit. From here <c>W</c> holds the new weights; <c>S</c> (the
    /// old sidecar) no longer describes them and the pending sidecar does, so a load takes the pending one and gets the
    /// new checkpoint. (Were the new weights identical to the old, <c>S</c> would still describe them: the old record
    /// with the same tensors loads.)</item>
    /// <item>Rename <c>.X.json.g.pending</c> over <c>S</c>: the new pair, nothing left over.</item>
    /// </list>
    /// <para>Each rename is atomic (rename(2) on POSIX, MoveFileEx on NTFS), and nothing else changes <c>W</c> or
    /// <c>S</c>: before step 5 the old checkpoint loads, after it the new one. The first save to a path has no old
    /// checkpoint: before step 5 nothing loads, after it the new one does. A save that fails (rather than dies) before
    /// step 5 deletes its two new files; after step 5 it keeps the pending sidecar, the only description of the new
    /// weights. Loading never writes: the next save completes an interrupted one (step 1). The data are flushed to
    /// disk before the renames; whether the renames themselves survive a power cut is up to the file system (the
    /// directory is not synced). One writer per path at a time.</para>
    /// </remarks>
    /// <exception cref="ArgumentException">The module's type is not registered.</exception>
    /// <exception cref="IOException">A file could not be written; the previous checkpoint, or the new one, loads.</exception>
    public static string Save(nn.Module module, string path, object? training = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var weights = WeightsPath(path);
        byte[] bytes;
        using (var ms = new MemoryStream())
        {
            module.save(ms);
            bytes = ms.ToArray();
        }
        // The whole sidecar is built before either file is touched: a description or training record that cannot be
        // written leaves the previous pair as it was.
        var sidecar = CreateSidecar(module, Path.GetFileName(weights), bytes, training);
        var text = System.Text.Encoding.UTF8.GetBytes(sidecar.ToJsonString(JsonOptions));

        SavePair(Path.GetFullPath(weights), Path.GetFullPath(SidecarPath(path)), bytes, text);
        return weights;
    }

    /// <summary>
    /// Writes a weights file and the sidecar that describes it as a pair, by the sequence of <see cref="Save"/>: a
    /// process killed at any point leaves the old pair or the new one, as <see cref="ResolvePairSidecar"/> reads them,
    /// and the next save to the same paths finishes or removes what it left. <see cref="Save"/> and the PyTorch export
    /// use it; so can a format of your own with a sidecar of this library's format.
    /// </summary>
    /// <param name="w">The weights file's path.</param>
    /// <param name="s">The sidecar's path.</param>
    /// <param name="bytes">The new weights.</param>
    /// <param name="text">The new sidecar (UTF-8 JSON in this library's sidecar format, recording the weights' size and SHA-256).</param>
    /// <exception cref="IOException">A file could not be written; the previous pair, or the new one, reads.</exception>
    public static void SavePair(string w, string s, byte[] bytes, byte[] text)
    {
        ArgumentException.ThrowIfNullOrEmpty(w);
        ArgumentException.ThrowIfNullOrEmpty(s);
        ArgumentNullException.ThrowIfNull(bytes);
        ArgumentNullException.ThrowIfNull(text);
        w = Path.GetFullPath(w);
        s = Path.GetFullPath(s);
        var ops = FileOperations.Current;
        Directory.CreateDirectory(Path.GetDirectoryName(w)!);
        FinishInterruptedSaves(w, s, ops);                                                       // 1, 2
        var id = AtomicFile.NewId();
        string newWeights = AtomicFile.TemporaryName(w, id, AtomicFile.TemporarySuffix);
        string newSidecar = AtomicFile.TemporaryName(s, id, PendingSuffix);
        try
        {
            AtomicFile.WriteNew(newWeights, f => f.Write(bytes), ops);                         // 3
            AtomicFile.WriteNew(newSidecar, f => f.Write(text), ops);                          // 4
            ops.Move(newWeights, w);                                                             // 5
            ops.Move(newSidecar, s);                                                             // 6
        }
        catch
        {
            // Before the commit both new files are garbage; after it the pending sidecar describes the weights in place.
            if (File.Exists(newWeights))
            {
                AtomicFile.DeleteQuietly(newWeights, ops);
                AtomicFile.DeleteQuietly(newSidecar, ops);
            }
            throw;
        }
    }

    /// <summary>
    /// The model type and architecture JSON a sidecar records for <paramref name="module"/> (RBM:
    /// <c>{"n_visible", "n_hidden", "visible_units", "hidden_units", "dtype"}</c>, and <c>"up_scale"</c>/<c>"down_scale"</c>
    /// when they are not 1; BoltzmannMachine:
    /// <c>{"n_visible", "n_hidden", "units", "dtype"}</c>, its mask a buffer in the weights; DBN and Sequential: see
    /// <see cref="DbnCheckpoints"/>): what <see cref="Create"/> needs to rebuild an untrained module of the same shape.
    /// </summary>
    /// <exception cref="ArgumentException">The module's type is not registered, or it cannot be described.</exception>
    public static (string ModelType, JsonObject Architecture) Describe(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        (string type, Func<nn.Module, JsonObject> describe) d;
        lock (Factories)
            if (!Describers.TryGetValue(module.GetType(), out d))
                throw new ArgumentException($"Checkpoint.Save: no checkpoint description registered for {module.GetType().Name}.");
        return (d.type, d.describe(module));
    }

    /// <summary>
    /// Builds an untrained module of a registered <paramref name="modelType"/> from its architecture JSON (the inverse of
    /// <see cref="Describe"/>); its parameters are to be overwritten by loaded weights.
    /// </summary>
    /// <param name="modelType">"RBM", "DBN", "Sequential" or a type added with <c>Register</c>.</param>
    /// <param name="architecture">The sidecar's architecture object.</param>
    /// <param name="where">Where the JSON was read (a sidecar's path), for messages.</param>
    /// <exception cref="CheckpointException">Unknown model type, or an architecture the factory refuses.</exception>
    public static nn.Module Create(string modelType, JsonObject architecture, string where)
    {
        ArgumentNullException.ThrowIfNull(modelType);
        ArgumentNullException.ThrowIfNull(architecture);
        Func<JsonObject, nn.Module>? factory;
        lock (Factories) Factories.TryGetValue(modelType, out factory);
        if (factory is null)
            throw new CheckpointException($"{where}: unknown model_type '{modelType}' (known: {string.Join(", ", Factories.Keys)}).");
        try { return factory(architecture); }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException or NullReferenceException or CheckpointException
                                      or OverflowException or System.Runtime.InteropServices.ExternalException)   // Enum.Parse of "200"; libtorch refusing a size or dtype
        { throw new CheckpointException($"{where}: invalid architecture {architecture.ToJsonString()}: {e.Message}", e); }
    }

    /// <summary>
    /// The sidecar JSON for <paramref name="module"/> whose serialised weights are <paramref name="weights"/>, stored as
    /// <paramref name="weightsFile"/> beside it: format and version, library version, model type, architecture, weights
    /// file name, size and SHA-256, creation time and the training record.
    /// </summary>
    /// <param name="module">A registered model type.</param>
    /// <param name="weightsFile">The weights file's name (no directory), recorded as <c>weights_file</c>.</param>
    /// <param name="weights">The weights file's bytes (size and SHA-256 are recorded).</param>
    /// <param name="training">Optional training record (any JSON-serialisable object, or a JsonNode).</param>
    /// <exception cref="ArgumentException">The module's type is not registered, or it cannot be described.</exception>
    public static JsonObject CreateSidecar(nn.Module module, string weightsFile, byte[] weights, object? training = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var (type, architecture) = Describe(module);
        return new JsonObject
        {
            ["format"] = FormatName,
            ["format_version"] = FormatVersion,
            ["library_version"] = LibraryVersion,
            ["model_type"] = type,
            ["architecture"] = architecture,
            ["weights_file"] = weightsFile,
            ["weights_bytes"] = weights.LongLength,
            ["weights_sha256"] = Convert.ToHexString(SHA256.HashData(weights)).ToLowerInvariant(),
            ["created_utc"] = DateTime.UtcNow.ToString("O"),
            ["training"] = training is null ? null : JsonSerializer.SerializeToNode(training, training.GetType(), JsonOptions),
        };
    }

    /// <summary>
    /// Checks <paramref name="weights"/> (the bytes of <paramref name="weightsPath"/>) against the size and SHA-256 its
    /// sidecar records, where it records them.
    /// </summary>
    /// <exception cref="CheckpointException">Size or hash differ (truncated, corrupt, or from another save).</exception>
    public static void VerifyWeights(JsonObject sidecar, string sidecarPath, string weightsPath, byte[] weights)
    {
        ArgumentNullException.ThrowIfNull(sidecar);
        ArgumentNullException.ThrowIfNull(weights);
        long expectedBytes = sidecar.Optional<long?>("weights_bytes", $"'{sidecarPath}'") ?? -1;
        if (expectedBytes >= 0 && weights.LongLength != expectedBytes)
            throw new CheckpointException($"'{weightsPath}' is truncated or was replaced: expected {expectedBytes} bytes (from the sidecar), got {weights.LongLength}.");
        var sha = Convert.ToHexString(SHA256.HashData(weights)).ToLowerInvariant();
        var expectedSha = sidecar.Optional<string>("weights_sha256", $"'{sidecarPath}'");
        if (expectedSha is not null && sha != expectedSha)
            throw new CheckpointException($"'{weightsPath}' does not match its sidecar: expected SHA-256 {expectedSha}, got {sha} (corrupt file, or weights and sidecar from different saves).");
    }

    /// <summary>
    /// Steps 1 and 2 of <see cref="Save"/>, for a writer of <paramref name="path"/> that has nothing new to save (a
    /// continued run that found its checkpoint complete): completes a save killed between its two renames, then deletes
    /// the leftovers of killed saves. Crash-safe as those steps are.
    /// </summary>
    internal static void FinishInterruptedSaves(string path) =>
        FinishInterruptedSaves(Path.GetFullPath(WeightsPath(path)), Path.GetFullPath(SidecarPath(path)), FileOperations.Current);

    private static void FinishInterruptedSaves(string w, string s, FileOperations ops)
    {
        CompleteInterruptedSave(w, s, ops);
        AtomicFile.RemoveLeftovers(w, ops, AtomicFile.TemporarySuffix);
        AtomicFile.RemoveLeftovers(s, ops, AtomicFile.TemporarySuffix, PendingSuffix);
    }

    /// <summary>
    /// Step 1 of <see cref="Save"/>: when <c>X.json</c> does not describe <c>X.pt</c> and a pending sidecar does (a save
    /// killed between its two renames), renames that one over <c>X.json</c>.
    /// </summary>
    private static void CompleteInterruptedSave(string w, string s, FileOperations ops)
    {
        var pending = PendingSidecars(s);
        if (pending.Count == 0 || !File.Exists(w)) return;
        if (PendingSidecarFor(s, pending, File.ReadAllBytes(w)) is { } found)
            ops.Move(found.file, s);
    }

    /// <summary>The pending sidecars beside the sidecar <paramref name="s"/> (<c>.X.json.&lt;32 hex&gt;.pending</c>).</summary>
    private static List<string> PendingSidecars(string s) => AtomicFile.Leftovers(Path.GetFullPath(s), PendingSuffix);

    /// <summary>
    /// Null when <c>X.json</c> describes <paramref name="weights"/>; otherwise the first of <paramref name="pending"/>
    /// that does (a readable sidecar recording their size and SHA-256), or null if none does.
    /// </summary>
    private static (JsonObject json, string file)? PendingSidecarFor(string sidecarPath, List<string> pending, byte[] weights)
    {
        var sha = Sha256(weights);
        if (File.Exists(sidecarPath))
        {
            try
            {
                if (Describes(ReadSidecarFile(sidecarPath), weights.LongLength, sha, requireHash: false)) return null;
            }
            catch (CheckpointException) { }   // unreadable: a pending sidecar may still describe the weights
        }
        foreach (var file in pending)
        {
            try
            {
                var json = ReadSidecarFile(file);
                if (Describes(json, weights.LongLength, sha, requireHash: true)) return (json, file);
            }
            catch (Exception e) when (e is CheckpointException or IOException or UnauthorizedAccessException) { }   // not this one
        }
        return null;
    }

    /// <summary>Whether <paramref name="sidecar"/> records <paramref name="length"/> and <paramref name="sha"/> (a field it lacks matches, unless <paramref name="requireHash"/>).</summary>
    private static bool Describes(JsonObject sidecar, long length, string sha, bool requireHash)
    {
        try
        {
            long? bytes = sidecar.Optional<long?>("weights_bytes");
            string? hash = sidecar.Optional<string>("weights_sha256");
            if (requireHash && hash is null) return false;
            return (bytes is null || bytes == length) && (hash is null || hash == sha);
        }
        catch (CheckpointException) { return false; }
    }

    private static string Sha256(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();

    /// <summary>
    /// Whether a checkpoint is at <paramref name="path"/>: its sidecar exists, or a save was interrupted after its new
    /// weights were in place and the sidecar describing them is pending beside it (what <see cref="Load"/> would read).
    /// </summary>
    /// <param name="path">Checkpoint path (<c>.pt</c> or <c>.json</c> or no extension).</param>
    public static bool Exists(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (File.Exists(SidecarPath(path))) return true;
        var pending = PendingSidecars(SidecarPath(path));
        var weights = WeightsPath(path);
        return pending.Count > 0 && File.Exists(weights) && PendingSidecarFor(SidecarPath(path), pending, File.ReadAllBytes(weights)) is not null;
    }

    /// <summary>
    /// The sidecar that describes the weights on disk: <c>X.json</c>, or, when a save was killed between its two renames
    /// (<c>X.json</c> does not describe <c>X.pt</c>), the pending sidecar that does. Reads the weights only when a
    /// pending sidecar exists.
    /// </summary>
    private static (JsonObject json, string file) ResolveSidecar(string path, Func<byte[]?> weights) =>
        ResolvePairSidecar(SidecarPath(path), weights);

    /// <summary>
    /// The sidecar that describes the weights on disk of a pair written by <see cref="SavePair"/>: the file at
    /// <paramref name="sidecarPath"/>, or, where a save was killed between its two renames (that file no longer
    /// describes the weights in place), the new sidecar left pending beside it.
    /// </summary>
    /// <param name="sidecarPath">The sidecar's path.</param>
    /// <param name="weights">Reads the weights file (null when it is missing); called only when a pending sidecar exists.</param>
    /// <returns>The sidecar's JSON and the file it was read from.</returns>
    /// <exception cref="CheckpointException">Missing, corrupt or newer-format sidecar.</exception>
    public static (JsonObject json, string file) ResolvePairSidecar(string sidecarPath, Func<byte[]?> weights)
    {
        ArgumentException.ThrowIfNullOrEmpty(sidecarPath);
        ArgumentNullException.ThrowIfNull(weights);
        var pending = PendingSidecars(sidecarPath);
        if (pending.Count > 0 && weights() is { } bytes && PendingSidecarFor(sidecarPath, pending, bytes) is { } found)
            return found;
        return (ReadSidecarFile(sidecarPath), sidecarPath);
    }

    /// <summary>Reads a checkpoint's sidecar, validating format and version.</summary>
    /// <remarks>
    /// The sidecar of the weights on disk: <c>X.json</c>, or where a save was killed after its new weights were in place
    /// and before its new sidecar was, that new sidecar (see <see cref="Save"/>).
    /// </remarks>
    /// <exception cref="CheckpointException">Missing, corrupt or newer-format sidecar.</exception>
    public static JsonObject ReadSidecar(string path)
    {
        var weights = WeightsPath(path);
        return ResolveSidecar(path, () => File.Exists(weights) ? File.ReadAllBytes(weights) : null).json;
    }

    /// <summary>Reads the sidecar JSON at exactly <paramref name="sidecarPath"/>, validating format and version.</summary>
    /// <exception cref="CheckpointException">Missing, corrupt or newer-format sidecar.</exception>
    public static JsonObject ReadSidecarFile(string sidecarPath)
    {
        if (!File.Exists(sidecarPath))
            throw new CheckpointException($"Checkpoint sidecar not found: expected '{sidecarPath}' beside the weights.");
        JsonObject? json;
        // Duplicate keys are refused while parsing: JsonNode would accept them and throw ArgumentException on first access.
        // Every string is decoded once here: an unpaired surrogate ("\ud800") would throw InvalidOperationException from a
        // later read, or from the message of another error.
        try
        {
            json = JsonNode.Parse(File.ReadAllText(sidecarPath), documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }) as JsonObject;
            _ = json?.ToJsonString();
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        { throw new CheckpointException($"Checkpoint sidecar '{sidecarPath}' is not valid JSON: {e.Message}", e); }
        if (json is null || (json["format"] as JsonValue)?.TryGetValue<string>(out var format) != true || format != FormatName)
            throw new CheckpointException($"'{sidecarPath}': expected a JSON object with \"format\": \"{FormatName}\", got {(json is null ? "something else" : $"format {json["format"]?.ToJsonString() ?? "missing"}")}.");
        int version = json.Optional<int?>("format_version", $"'{sidecarPath}'") ?? 0;
        if (version > FormatVersion)
            throw new CheckpointException($"'{sidecarPath}' has format version {version}, newer than this library reads (≤ {FormatVersion}, TorchBoltzmann {LibraryVersion}); upgrade TorchBoltzmann (written by {json["library_version"]}).");
        if (version < 1)
            throw new CheckpointException($"'{sidecarPath}': expected format_version ≥ 1, got {version}.");
        return json;
    }

    /// <summary>
    /// Where a model came from, for the record of a run that starts from it (e.g. fine-tuning a DBN pretrained by an
    /// earlier run): the path as given, model type, SHA-256 of the weights, library version, creation time and the
    /// training record of its sidecar, which itself may name the checkpoint it started from.
    /// </summary>
    /// <param name="path">Checkpoint path (<c>.pt</c> or <c>.json</c> or no extension).</param>
    /// <exception cref="CheckpointException">Missing, corrupt or newer-format sidecar.</exception>
    public static JsonObject Provenance(string path) => ProvenanceOf(path, ReadSidecar(path));

    private static JsonObject ProvenanceOf(string path, JsonObject sidecar) => new()
    {
        ["file"] = WeightsPath(path),
        ["model_type"] = sidecar["model_type"]?.DeepClone(),
        ["weights_sha256"] = sidecar["weights_sha256"]?.DeepClone(),
        ["library_version"] = sidecar["library_version"]?.DeepClone(),
        ["created_utc"] = sidecar["created_utc"]?.DeepClone(),
        ["training"] = sidecar["training"]?.DeepClone(),
    };

    /// <summary>Loads a checkpoint of any registered model type, building the module from the sidecar's architecture.</summary>
    /// <param name="path">Checkpoint path (<c>.pt</c> or <c>.json</c> or no extension).</param>
    /// <param name="device">Device to move the model to (default CPU).</param>
    /// <exception cref="CheckpointException">Missing, truncated, corrupt, mismatched or newer-format files.</exception>
    public static nn.Module Load(string path, Device? device = null) => LoadChecked(path, device, out _);

    private static nn.Module LoadChecked(string path, Device? device, out JsonObject json)
    {
        var weights = WeightsPath(path);
        byte[]? bytes = null;
        byte[]? Weights() => bytes ??= File.Exists(weights) ? File.ReadAllBytes(weights) : null;
        (json, var sidecarPath) = ResolveSidecar(path, Weights);
        var type = json.Required<string>("model_type", $"'{sidecarPath}'");
        Func<JsonObject, nn.Module>? factory;
        Func<JsonObject, IReadOnlyDictionary<string, long[]>>? shapes;
        lock (Factories)
        {
            Factories.TryGetValue(type, out factory);
            ShapeRules.TryGetValue(type, out shapes);
        }
        if (factory is null)
            throw new CheckpointException($"'{sidecarPath}': unknown model_type '{type}' (known: {string.Join(", ", Factories.Keys)}).");
        var arch = json["architecture"] as JsonObject ?? throw new CheckpointException($"'{sidecarPath}': missing architecture.");

        if (Weights() is not { } data) throw new CheckpointException($"Checkpoint weights not found: expected '{weights}'.");
        VerifyWeights(json, sidecarPath, weights, data);

        CheckpointException Invalid(Exception e) => new($"'{sidecarPath}': invalid architecture {arch.ToJsonString()}: {e.Message}", e);
        // The sizes the sidecar gives are checked against the shapes in the weights file before a model of those sizes
        // is allocated: an edited sidecar must not ask for terabytes.
        IReadOnlyDictionary<string, long[]>? expectedShapes;
        try { expectedShapes = shapes?.Invoke(arch); }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException or NullReferenceException or CheckpointException
                                      or OverflowException or System.Runtime.InteropServices.ExternalException)
        { throw Invalid(e); }
        if (expectedShapes is not null) CheckShapes(weights, sidecarPath, type, arch, expectedShapes, data);

        nn.Module module;
        try { module = factory(arch); }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException or NullReferenceException or CheckpointException
                                      or OverflowException or System.Runtime.InteropServices.ExternalException)
        { throw Invalid(e); }
        try
        {
            StateDictFormat.Check(data, module.state_dict());   // TorchSharp allocates by the sizes it reads: checked first
            using var ms = new MemoryStream(data);
            module.load(ms, strict: true);
        }
        catch (Exception e) when (e is not CheckpointException)
        {
            module.Dispose();
            throw new CheckpointException($"'{weights}': could not load the weights into a {type} {arch.ToJsonString()}: {e.Message}", e);
        }
        if (device is not null) module.to(device);
        return module;
    }

    /// <summary>
    /// Refuses, in one line naming both files, the architecture and the first differences, weights whose tensors are
    /// not the ones <paramref name="expected"/> lists (names and shapes), or that are not a state_dict at all.
    /// </summary>
    private static void CheckShapes(string weights, string sidecarPath, string type, JsonObject arch,
                                    IReadOnlyDictionary<string, long[]> expected, byte[] data)
    {
        var entries = StateDictHeader.TryRead(data, out var problem)
            ?? throw new CheckpointException($"'{weights}': not a TorchSharp state_dict ({problem}).");
        var found = new Dictionary<string, long[]>();
        foreach (var e in entries) found.TryAdd(e.Name, e.Shape);
        if (ShapeDifferences(expected, found) is { } differences)
            throw new CheckpointException($"'{weights}' does not hold the {type} {arch.ToJsonString()} that '{sidecarPath}' describes: {differences}.");
    }

    /// <summary>
    /// Where tensors named and shaped as <paramref name="found"/> are not the state_dict that <paramref name="expected"/>
    /// lists: the first four differences and the count of the others, in one line; null when they agree.
    /// </summary>
    private static string? ShapeDifferences(IReadOnlyDictionary<string, long[]> expected, IReadOnlyDictionary<string, long[]> found)
    {
        var differences = new List<string>();
        foreach (var (name, shape) in expected)
        {
            if (!found.TryGetValue(name, out var f)) differences.Add($"{name}: expected {StateDictHeader.Describe(shape)}, found none");
            else if (!f.SequenceEqual(shape)) differences.Add($"{name}: expected {StateDictHeader.Describe(shape)}, found {StateDictHeader.Describe(f)}");
        }
        foreach (var (name, shape) in found)
            if (!expected.ContainsKey(name)) differences.Add($"{name}: expected none, found {StateDictHeader.Describe(shape)}");
        if (differences.Count == 0) return null;
        const int shown = 4;
        var more = differences.Count > shown ? $"; {differences.Count - shown} more" : "";
        return string.Join("; ", differences.Take(shown)) + more;
    }

    /// <summary>
    /// Builds a model of <paramref name="modelType"/> and <paramref name="architecture"/> (<see cref="Create"/>) only after
    /// checking, where the type registers its shapes, that <paramref name="found"/> (the tensors that will be loaded into
    /// it, by name and shape) are its state_dict: recorded sizes must not allocate a model the weights do not fit.
    /// </summary>
    /// <exception cref="CheckpointException">Unknown type, invalid architecture, or tensors that do not fit it (named, in one line).</exception>
    internal static nn.Module CreateFitting(string modelType, JsonObject architecture, IReadOnlyDictionary<string, long[]> found, string where)
    {
        Func<JsonObject, IReadOnlyDictionary<string, long[]>>? shapes;
        lock (Factories) ShapeRules.TryGetValue(modelType, out shapes);
        if (shapes is not null)
        {
            IReadOnlyDictionary<string, long[]> expected;
            try { expected = shapes(architecture); }
            catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException or NullReferenceException or CheckpointException
                                          or OverflowException or System.Runtime.InteropServices.ExternalException)
            { throw new CheckpointException($"{where}: invalid architecture {architecture.ToJsonString()}: {e.Message}", e); }
            if (ShapeDifferences(expected, found) is { } differences)
                throw new CheckpointException($"{where}: the weights are not those of the {modelType} {architecture.ToJsonString()} it records: {differences}.");
        }
        return Create(modelType, architecture, where);
    }

    /// <summary>Loads a checkpoint that must hold a <typeparamref name="T"/>.</summary>
    /// <exception cref="CheckpointException">The file holds another model type, or any error of <see cref="Load"/>.</exception>
    public static T Load<T>(string path, Device? device = null) where T : nn.Module => LoadChecked<T>(path, device, out _);

    /// <summary>
    /// Loads a checkpoint that must hold a <typeparamref name="T"/> together with its <see cref="Provenance"/>, both from
    /// one reading of the sidecar: the recorded SHA-256 is the one the loaded weights were checked against (two separate
    /// calls could read two different sidecars if the checkpoint is replaced in between).
    /// </summary>
    /// <exception cref="CheckpointException">As <see cref="Load{T}(string, Device?)"/>.</exception>
    public static (T Model, JsonObject Provenance) LoadWithProvenance<T>(string path, Device? device = null) where T : nn.Module
    {
        var model = LoadChecked<T>(path, device, out var sidecar);
        return (model, ProvenanceOf(path, sidecar));
    }

    private static T LoadChecked<T>(string path, Device? device, out JsonObject sidecar) where T : nn.Module
    {
        var m = LoadChecked(path, device, out sidecar);
        if (m is T t) return t;
        var got = m.GetType().Name;
        m.Dispose();
        throw new CheckpointException($"'{path}': expected a {typeof(T).Name} checkpoint, got a {got}.");
    }

    /// <summary>This library's version, recorded in sidecars.</summary>
    public static string LibraryVersion { get; } =
        typeof(Checkpoint).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    /// <summary>
    /// The JSON of sidecars and metrics files: indented; NaN and ±∞ (a diverged epoch's metrics) written as "NaN",
    /// "Infinity", "-Infinity" instead of failing the write after the training is done.
    /// </summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}

/// <summary>
/// Typed fields of a checkpoint's JSON (sidecar fields, and the architecture objects model factories read): a field
/// that is missing or of another JSON type (e.g. "format_version": "1", "n_hidden": "six") is a
/// <see cref="CheckpointException"/> naming where it was read, the field, what was expected and what came.
/// </summary>
internal static class JsonFields
{
    /// <summary>The field <paramref name="key"/> of <paramref name="o"/> as a <typeparamref name="T"/>; default when absent.</summary>
    /// <param name="o">The JSON object.</param>
    /// <param name="key">The field's name.</param>
    /// <param name="where">Where the object was read, for messages (a sidecar's path, "architecture").</param>
    public static T? Optional<T>(this JsonObject o, string key, string where = "architecture")
    {
        var node = o[key];
        if (node is null) return default;
        try { return node.Deserialize<T>(); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or NotSupportedException)
        {
            throw new CheckpointException($"{where}: expected \"{key}\" to be {Expected(typeof(T))}, got {node.ToJsonString()}.", e);
        }
    }

    /// <summary>The field <paramref name="key"/> as a <typeparamref name="T"/>, which must be present and not null.</summary>
    /// <inheritdoc cref="Optional{T}"/>
    public static T Required<T>(this JsonObject o, string key, string where = "architecture")
    {
        if (o[key] is null) throw new CheckpointException($"{where}: missing \"{key}\" ({Expected(typeof(T))}).");
        return o.Optional<T>(key, where)!;
    }

    private static string Expected(Type t)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        if (t == typeof(string)) return "a string";
        if (t == typeof(bool)) return "true or false";
        if (t == typeof(int) || t == typeof(long)) return "an integer";
        if (t == typeof(double) || t == typeof(float)) return "a number";
        if (t.IsArray) return $"an array of {Expected(t.GetElementType()!).Split(' ', 2)[1]}s";
        return $"a {t.Name}";
    }
}

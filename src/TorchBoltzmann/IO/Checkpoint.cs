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
/// detected. Both files are written atomically (temporary file + rename), weights first.
/// </summary>
public static class Checkpoint
{
    /// <summary>Current sidecar format version; files with a larger version are refused.</summary>
    public const int FormatVersion = 1;

    /// <summary>The <c>format</c> field every sidecar carries.</summary>
    public const string FormatName = "torchboltzmann-checkpoint";

    private static readonly Dictionary<string, Func<JsonObject, nn.Module>> Factories = new()
    {
        ["RBM"] = arch => new RBM(
            arch.Required<int>("n_visible"), arch.Required<int>("n_hidden"),
            UnitType.FromName(arch.Required<string>("visible_units")), UnitType.FromName(arch.Required<string>("hidden_units")),
            dtype: Enum.Parse<ScalarType>(arch.Required<string>("dtype"))),
    };

    private static readonly Dictionary<Type, (string type, Func<nn.Module, JsonObject> describe)> Describers = new()
    {
        [typeof(RBM)] = ("RBM", m =>
        {
            var r = (RBM)m;
            return new JsonObject
            {
                ["n_visible"] = r.n_visible, ["n_hidden"] = r.n_hidden,
                ["visible_units"] = r.visible_units.Name, ["hidden_units"] = r.hidden_units.Name,
                ["dtype"] = r.dtype.ToString(),
            };
        }),
    };

    /// <summary>Registers a model type so that <see cref="Save"/> can describe it and <see cref="Load"/> can build it.</summary>
    public static void Register<T>(string modelType, Func<T, JsonObject> describe, Func<JsonObject, T> create) where T : nn.Module
    {
        lock (Factories)
        {
            Describers[typeof(T)] = (modelType, m => describe((T)m));
            Factories[modelType] = a => create(a);
        }
    }

    /// <summary>The sidecar path for a checkpoint path (<c>X.pt</c> → <c>X.json</c>).</summary>
    public static string SidecarPath(string path) => Path.ChangeExtension(path, ".json");

    /// <summary>The weights path: <paramref name="path"/> with extension <c>.pt</c>.</summary>
    public static string WeightsPath(string path) => Path.ChangeExtension(path, ".pt");

    /// <summary>Saves <paramref name="module"/> (weights + sidecar) atomically.</summary>
    /// <param name="module">A registered model type (RBM, DBN, …).</param>
    /// <param name="path">Target path; <c>.pt</c> and <c>.json</c> are written beside each other.</param>
    /// <param name="training">Optional training configuration and results to record (any JSON-serialisable object).</param>
    /// <returns>The weights path.</returns>
    public static string Save(nn.Module module, string path, object? training = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        var weights = WeightsPath(path);
        byte[] bytes;
        using (var ms = new MemoryStream())
        {
            module.save(ms);
            bytes = ms.ToArray();
        }
        // The whole sidecar is built before either file is touched: a description or training record that cannot be
        // written leaves the previous pair as it was (new weights beside the old sidecar would load as neither).
        string text = CreateSidecar(module, Path.GetFileName(weights), bytes, training).ToJsonString(JsonOptions);
        AtomicFile.WriteAllBytes(weights, bytes);
        AtomicFile.WriteAllText(SidecarPath(path), text);
        return weights;
    }

    /// <summary>
    /// The model type and architecture JSON a sidecar records for <paramref name="module"/> (RBM:
    /// <c>{"n_visible", "n_hidden", "visible_units", "hidden_units", "dtype"}</c>; DBN and Sequential: see
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
    /// <param name="modelType">"RBM", "DBN", "Sequential" or a type added with <see cref="Register{T}"/>.</param>
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

    /// <summary>Reads a checkpoint's sidecar (<see cref="SidecarPath"/>), validating format and version.</summary>
    /// <exception cref="CheckpointException">Missing, corrupt or newer-format sidecar.</exception>
    public static JsonObject ReadSidecar(string path) => ReadSidecarFile(SidecarPath(path));

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
        json = ReadSidecar(path);
        var where = $"'{SidecarPath(path)}'";
        var type = json.Required<string>("model_type", where);
        lock (Factories)
            if (!Factories.ContainsKey(type))
                throw new CheckpointException($"{where}: unknown model_type '{type}' (known: {string.Join(", ", Factories.Keys)}).");
        var arch = json["architecture"] as JsonObject ?? throw new CheckpointException($"{where}: missing architecture.");

        var weights = WeightsPath(path);
        if (!File.Exists(weights)) throw new CheckpointException($"Checkpoint weights not found: expected '{weights}'.");
        var bytes = File.ReadAllBytes(weights);
        VerifyWeights(json, SidecarPath(path), weights, bytes);

        nn.Module module = Create(type, arch, where);
        try
        {
            StateDictFormat.Check(bytes, module.state_dict());   // TorchSharp allocates by the sizes it reads: checked first
            using var ms = new MemoryStream(bytes);
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

    /// <summary>Sidecar JSON: indented; NaN and ±∞ in training records written as "NaN", "Infinity", "-Infinity".</summary>
    internal static readonly JsonSerializerOptions JsonOptions = new()
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

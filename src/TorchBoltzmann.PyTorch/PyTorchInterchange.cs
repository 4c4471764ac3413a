using System.Collections;
using System.Collections.Specialized;
using System.Text.Json.Nodes;
using TorchBoltzmann.IO;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace TorchBoltzmann.PyTorch;

/// <summary>
/// Moves weights both ways between TorchBoltzmann and PyTorch: <see cref="Export"/> writes a module's state_dict as a
/// file that Python's <c>torch.load</c> reads (the zip + pickle format of <c>torch.save</c>, written with
/// TorchSharp.PyBridge), and <see cref="Import"/> reads one written by <c>torch.save(state_dict, path)</c> into a new
/// module of the library.
/// </summary>
/// <remarks>
/// <para><b>Keys.</b> The state_dict keys are the module's own (<c>module.state_dict()</c>), so a Python user can rebuild
/// the model: an RBM has <c>weight</c> (W, shape (n_hidden, n_visible), the <c>nn.Linear</c> layout),
/// <c>visible_bias</c> (b, (n_visible)) and <c>hidden_bias</c> (c, (n_hidden)), and its free energy is
/// F(v) = −bᵀv − Σⱼ softplus(cⱼ + Wⱼ v); a DBN has <c>layers.0.weight</c>, <c>layers.0.visible_bias</c>,
/// <c>layers.0.hidden_bias</c>, <c>layers.1.…</c>, bottom first; a classifier built by <c>DbnClassifier</c> has
/// <c>fc1.weight</c>, <c>fc1.bias</c>, …, <c>out.weight</c>, <c>out.bias</c>, which <c>load_state_dict</c> of a Python
/// <c>nn.Sequential(OrderedDict(fc1=nn.Linear(…), sigmoid1=nn.Sigmoid(), …, out=nn.Linear(…)))</c> takes as they are.
/// Tensors keep their dtype and are written from the CPU, detached (<c>requires_grad</c> false), in the module's key
/// order.</para>
/// <para><b>Metadata.</b> A PyTorch state_dict holds tensors only, so what the library needs to rebuild the module (model
/// type, architecture, unit types, dtype) travels in a JSON sidecar beside the file, named <c>FILE.json</c>
/// (<c>model.pth</c> → <c>model.pth.json</c>; <see cref="SidecarPath"/>). It is the checkpoint sidecar of
/// <see cref="Checkpoint"/> (same fields and format version) with <c>weights_file</c> naming the exported file and
/// <c>"weights_format": "pytorch-state-dict"</c>. A sidecar beside the file, rather than a string entry inside the
/// state_dict, keeps the dict loadable by <c>model.load_state_dict(torch.load(path))</c> with strict key checking, and the
/// name <c>FILE.json</c> never collides with the sidecar <c>X.json</c> of a checkpoint <c>X.pt</c> in the same
/// directory. A sidecar written by Python needs only <c>format</c>, <c>format_version</c>, <c>model_type</c> and
/// <c>architecture</c>; <c>weights_bytes</c> and <c>weights_sha256</c>, where present, are checked against the file.</para>
/// <para><b>Checks on import.</b> Every key the rebuilt module expects must be present with exactly its shape and dtype,
/// and no other key may be present; otherwise a <see cref="CheckpointException"/> whose one-line message names the file,
/// the key, what was expected and what came. Values are copied bit for bit (no dtype conversion).</para>
/// <para>Limitations (those of TorchSharp.PyBridge): files of the legacy, non-zip <c>torch.save</c> format
/// (<c>_use_new_zipfile_serialization=False</c>) and whole pickled modules (<c>torch.save(model)</c>) are refused; save
/// <c>model.state_dict()</c>. Tensors should be contiguous and own their storage (<c>.contiguous().clone()</c> for
/// views such as <c>W.t()</c>), as the parameters of a module's state_dict do.</para>
/// </remarks>
public static class PyTorchInterchange
{
    /// <summary>The sidecar's <c>weights_format</c> for files written by <see cref="Export"/>.</summary>
    public const string WeightsFormat = "pytorch-state-dict";

    /// <summary>The metadata sidecar of an exported file: <paramref name="path"/> + <c>.json</c>.</summary>
    public static string SidecarPath(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return path + ".json";
    }

    /// <summary>
    /// Writes <paramref name="module"/>'s state_dict to <paramref name="path"/> in PyTorch's format (read it in Python with
    /// <c>torch.load(path)</c>) and the metadata sidecar <see cref="SidecarPath"/> beside it, as a pair
    /// (<see cref="Checkpoint.SavePair"/>): killed at any point, the old export or the new one imports.
    /// </summary>
    /// <param name="module">An RBM, DBN or classifier Sequential (any type registered with <see cref="Checkpoint"/>).</param>
    /// <param name="path">Target file, e.g. <c>model.pth</c>.</param>
    /// <param name="training">Optional training record for the sidecar (any JSON-serialisable object or JsonNode).</param>
    /// <returns>The sidecar's JSON as written.</returns>
    /// <exception cref="ArgumentException">The module's type is not registered with <see cref="Checkpoint"/>.</exception>
    public static JsonObject Export(nn.Module module, string path, object? training = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] bytes;
        using (var scope = torch.NewDisposeScope())
        {
            // An ordered dictionary: the pickle lists the tensors in the module's key order, as PyTorch's state_dict does
            // (a Hashtable's order would change from one process to the next).
            var state = new OrderedDictionary(StringComparer.Ordinal);
            foreach (var (key, tensor) in module.state_dict())
                state[key] = tensor.detach().cpu().contiguous();
            using var ms = new MemoryStream();
            PyTorchPickler.PickleStateDict(ms, state, leaveOpen: true);
            bytes = ms.ToArray();
        }
        var sidecar = Checkpoint.CreateSidecar(module, Path.GetFileName(path), bytes, training);
        sidecar["weights_format"] = WeightsFormat;
        string text = sidecar.ToJsonString(SidecarJson);
        Checkpoint.SavePair(path, SidecarPath(path), bytes, System.Text.Encoding.UTF8.GetBytes(text));
        return sidecar;
    }

    /// <summary>
    /// Reads a state_dict written by <c>torch.save</c> (or <see cref="Export"/>) into a new module built from the
    /// sidecar's model type and architecture.
    /// </summary>
    /// <param name="path">The state_dict file; its sidecar is <see cref="SidecarPath"/>.</param>
    /// <param name="device">Device to move the model to (default CPU).</param>
    /// <exception cref="CheckpointException">Missing or invalid sidecar or file, a size or hash that differs from the
    /// sidecar's, a file that is not a state_dict, or a key, shape or dtype that does not fit the architecture.</exception>
    public static nn.Module Import(string path, Device? device = null) => ImportWithMetadata(path, device).Model;

    /// <summary>As <see cref="Import(string, Device?)"/>, for a file that must hold a <typeparamref name="T"/>.</summary>
    /// <exception cref="CheckpointException">The sidecar names another model type, or any error of <see cref="Import(string, Device?)"/>.</exception>
    public static T Import<T>(string path, Device? device = null) where T : nn.Module => ImportWithMetadata<T>(path, device).Model;

    /// <summary>As <see cref="Import{T}(string, Device?)"/>, also returning the sidecar that described the module.</summary>
    /// <exception cref="CheckpointException">As <see cref="Import{T}(string, Device?)"/>.</exception>
    public static (T Model, JsonObject Metadata) ImportWithMetadata<T>(string path, Device? device = null) where T : nn.Module
    {
        var (model, metadata) = ImportWithMetadata(path, device);
        if (model is T t) return (t, metadata);
        var got = model.GetType().Name;
        model.Dispose();
        throw new CheckpointException($"'{path}': expected a {typeof(T).Name}, got a {got} (model_type in '{SidecarPath(path)}').");
    }

    /// <summary>As <see cref="Import(string, Device?)"/>, also returning the sidecar that described the module.</summary>
    /// <exception cref="CheckpointException">As <see cref="Import(string, Device?)"/>.</exception>
    public static (nn.Module Model, JsonObject Metadata) ImportWithMetadata(string path, Device? device = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var sidecarPath = SidecarPath(path);
        if (!File.Exists(path)) throw new CheckpointException($"'{path}': file not found.");
        byte[]? bytes = null;
        // The sidecar of the weights on disk: X.pth.json, or, where an export was killed between its two renames, the
        // new sidecar left pending beside it (Checkpoint.SavePair's sequence).
        JsonObject metadata;
        try { (metadata, sidecarPath) = Checkpoint.ResolvePairSidecar(sidecarPath, () => bytes ??= File.ReadAllBytes(path)); }
        catch (CheckpointException) when (!File.Exists(sidecarPath))
        {
            throw new CheckpointException($"'{path}': its metadata sidecar '{sidecarPath}' is missing (a state_dict holds no architecture; "
                                          + "write one with the model type and architecture, as scripts/pytorch_rbm.py does).");
        }
        var where = $"'{sidecarPath}'";
        var format = metadata["weights_format"];
        if (format is not null && format.ToJsonString() != $"\"{WeightsFormat}\"")
            throw new CheckpointException($"{where}: expected \"weights_format\": \"{WeightsFormat}\" (or none), got {format.ToJsonString()}.");
        var type = metadata["model_type"] is JsonValue tv && tv.TryGetValue<string>(out var s) ? s
            : throw new CheckpointException($"{where}: expected \"model_type\" to be a string, got {metadata["model_type"]?.ToJsonString() ?? "none"}.");
        var architecture = metadata["architecture"] as JsonObject
            ?? throw new CheckpointException($"{where}: expected \"architecture\" to be an object, got {metadata["architecture"]?.ToJsonString() ?? "none"}.");

        bytes ??= File.ReadAllBytes(path);
        Checkpoint.VerifyWeights(metadata, sidecarPath, path, bytes);
        var module = Checkpoint.Create(type, architecture, where);
        try
        {
            using var scope = torch.NewDisposeScope();   // disposes the tensors read from the file
            var state = ReadStateDict(path, bytes);
            var expected = module.state_dict();
            foreach (var (key, target) in expected)
            {
                if (!state.ContainsKey(key))
                    throw Mismatch(path, key, target, $"no such key (the file has {KeyList(state.Keys)})");
                if (state[key] is not Tensor source)
                    throw Mismatch(path, key, target, $"a {PythonType(state[key])}, not a tensor");
                if (!source.shape.SequenceEqual(target.shape) || source.dtype != target.dtype)
                    throw Mismatch(path, key, target, Describe(source));
            }
            foreach (var key in state.Keys.Cast<object>().Select(k => k?.ToString() ?? "None").Order(StringComparer.Ordinal))
                if (!expected.ContainsKey(key))
                    throw new CheckpointException($"'{path}': key '{key}': expected no such key (the {type} of the sidecar has keys {string.Join(", ", expected.Keys)}), got {(state[key] is Tensor t ? Describe(t) : $"a {PythonType(state[key])}")}.");
            using (torch.no_grad())
                foreach (var (key, target) in expected)
                    target.copy_((Tensor)state[key]!);
        }
        catch
        {
            module.Dispose();
            throw;
        }
        if (device is not null) module.to(device);
        return (module, metadata);
    }

    /// <summary>Unpickles the state_dict, turning the reader's errors into one-line messages that name the file.</summary>
    private static Hashtable ReadStateDict(string path, byte[] bytes)
    {
        if (bytes.Length < 4 || bytes[0] != 0x50 || bytes[1] != 0x4b || bytes[2] != 0x03 || bytes[3] != 0x04)
            throw new CheckpointException($"'{path}': expected a PyTorch state_dict file (a zip archive, as torch.save writes since PyTorch 1.6), got {bytes.Length} bytes starting {Convert.ToHexString(bytes.AsSpan(0, Math.Min(4, bytes.Length)))} (legacy torch.save format or not a PyTorch file).");
        try
        {
            if (PickleCheck.Problem(bytes) is { } problem)
                throw new CheckpointException($"'{path}': expected a PyTorch state_dict (a dict of tensors saved with torch.save), could not read it: {problem}.");
            using var ms = new MemoryStream(bytes, writable: false);
            return PyTorchUnpickler.UnpickleStateDict(ms);
        }
        catch (Exception e) when (e is not (OutOfMemoryException or CheckpointException))
        {
            string why = e is NotImplementedException && e.Message.Contains("entire model", StringComparison.Ordinal)
                ? "it holds a whole pickled module; save model.state_dict() instead"
                : $"{e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}";
            throw new CheckpointException($"'{path}': expected a PyTorch state_dict (a dict of tensors saved with torch.save), could not read it: {why}.", e);
        }
    }

    private static CheckpointException Mismatch(string path, string key, Tensor target, string got) =>
        new($"'{path}': key '{key}': expected {Describe(target)}, got {got}.");

    private static string Describe(Tensor t) => $"a {t.dtype} tensor of shape ({string.Join(", ", t.shape)})";

    /// <summary>The keys of a file's state_dict, sorted (a Hashtable has no order).</summary>
    private static string KeyList(ICollection keys)
    {
        var list = keys.Cast<object>().Select(k => k?.ToString() ?? "None").Order(StringComparer.Ordinal).ToList();
        return list.Count == 0 ? "no keys" : $"keys {string.Join(", ", list)}";
    }

    private static string PythonType(object? value) => value switch
    {
        null => "None",
        string => "str",
        int or long => "int",
        double => "float",
        bool => "bool",
        _ => value.GetType().Name,
    };

    /// <summary>As the checkpoint sidecars: indented, NaN and ±∞ in training records as "NaN", "Infinity", "-Infinity".</summary>
    private static readonly System.Text.Json.JsonSerializerOptions SidecarJson = new()
    {
        WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}

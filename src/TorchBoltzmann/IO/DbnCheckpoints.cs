using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Units;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.IO;

/// <summary>
/// Registers the DBN checkpoint type ("DBN": layer_sizes, n_classes, dtype) and plain classifiers ("Sequential" of
/// named Linear / Sigmoid / ReLU / Tanh / Dropout children, as <see cref="DbnClassifier"/> and
/// <see cref="DBN.ToEncoder"/> build them) with <see cref="Checkpoint"/> when the assembly loads.
/// </summary>
public static class DbnCheckpoints
{
#pragma warning disable CA2255 // a library module initializer is intended: registration must precede any Checkpoint.Load
    [ModuleInitializer]
    internal static void RegisterAll()
#pragma warning restore CA2255
    {
        Checkpoint.Register<DBN>("DBN", Describe, Create, Shapes);
        Checkpoint.Register<Sequential>("Sequential", DescribeSequential, CreateSequential, SequentialShapes);
    }

    /// <summary>
    /// The DBN's architecture: <c>{"layer_sizes": [...], "n_classes": C, "visible_units": [...], "hidden_units": [...],
    /// "dtype": "Float32"}</c>, with one unit-type name (<see cref="UnitType.Name"/>) per RBM, bottom first, and
    /// <c>"untied": true</c> added for an untied DBN (<see cref="DBN.untie"/>) only, so a tied DBN's sidecar is what it was.
    /// </summary>
    public static JsonObject Describe(DBN dbn)
    {
        var arch = DescribeTied(dbn);
        if (dbn.is_untied) arch["untied"] = true;
        return arch;
    }

    private static JsonObject DescribeTied(DBN dbn) => new()
    {
        ["layer_sizes"] = new JsonArray(dbn.layer_sizes.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
        ["n_classes"] = dbn.n_classes,
        ["visible_units"] = new JsonArray(dbn.layers.Select(r => (JsonNode?)JsonValue.Create(r.visible_units.Name)).ToArray()),
        ["hidden_units"] = new JsonArray(dbn.layers.Select(r => (JsonNode?)JsonValue.Create(r.hidden_units.Name)).ToArray()),
        ["dtype"] = dbn.dtype.ToString(),
    };

    /// <summary>
    /// Builds an untrained DBN from <see cref="Describe"/>'s JSON (untied when it says <c>"untied": true</c>): the bottom
    /// RBM's visible unit type comes from <c>visible_units[0]</c> through the unit-type registry
    /// (<see cref="UnitType.FromName"/>); the other RBMs' types must be the ones a DBN builds (Bernoulli, the top one
    /// label-joined when <c>n_classes</c> &gt; 0). Files without the unit-type fields load as Bernoulli DBNs.
    /// </summary>
    /// <exception cref="CheckpointException">A unit-type list of the wrong length, an unknown unit-type name, a layer
    /// whose stored type differs from the one the DBN builds (the message names the layer, expected and stored), or
    /// "untied" on a DBN of one RBM.</exception>
    public static DBN Create(JsonObject arch)
    {
        var sizes = arch.Required<int[]>("layer_sizes");
        int classes = arch.Optional<int?>("n_classes") ?? 0;
        var dtype = Enum.Parse<ScalarType>(arch.Required<string>("dtype"));
        var visibleNames = arch.Optional<string[]>("visible_units");
        var hiddenNames = arch.Optional<string[]>("hidden_units");
        int layers = sizes.Length - 1;
        foreach (var (key, names) in new[] { ("visible_units", visibleNames), ("hidden_units", hiddenNames) })
            if (names is not null && names.Length != layers)
                throw new CheckpointException($"architecture: expected \"{key}\" to name {layers} unit types (one per RBM), got {names.Length}.");
        UnitType? bottom = null;
        if (visibleNames is not null && !(classes > 0 && layers == 1))
        {
            try { bottom = UnitType.FromName(visibleNames[0]); }
            catch (ArgumentException ex) { throw new CheckpointException($"architecture: visible_units[0]: {ex.Message}"); }
            if (bottom.Name == UnitType.Bernoulli.Name) bottom = null;
        }
        bool untied = arch.Optional<bool?>("untied") ?? false;
        if (untied && sizes.Length < 3) throw new CheckpointException("architecture: \"untied\" needs at least two layers of weights (three layer sizes).");
        var dbn = new DBN(sizes, classes, null, dtype, null, bottom);
        try
        {
            if (untied) dbn.untie();
            for (int l = 0; l < layers; l++)
            {
                var rbm = dbn.layers[l];
                if (visibleNames is not null && visibleNames[l] != rbm.visible_units.Name)
                    throw new CheckpointException($"architecture: visible_units[{l}]: a DBN's RBM {l} has {rbm.visible_units.Name} visible units, the file says {visibleNames[l]}.");
                if (hiddenNames is not null && hiddenNames[l] != rbm.hidden_units.Name)
                    throw new CheckpointException($"architecture: hidden_units[{l}]: a DBN's RBM {l} has {rbm.hidden_units.Name} hidden units, the file says {hiddenNames[l]}.");
            }
        }
        catch
        {
            dbn.Dispose();
            throw;
        }
        return dbn;
    }

    /// <summary>
    /// The state_dict shapes of the DBN <see cref="Describe"/>'s JSON gives, without building it: per layer l,
    /// <c>layers.l.weight</c> (n_{l+1}, n_l), <c>layers.l.visible_bias</c>, <c>layers.l.hidden_bias</c>; the top layer's
    /// visible side has n_classes label units more; an untied DBN adds <c>recognition.l.weight</c> (n_{l+1}, n_l) and
    /// <c>recognition.l.bias</c> (n_{l+1}) for l &lt; L − 1.
    /// </summary>
    public static IReadOnlyDictionary<string, long[]> Shapes(JsonObject arch)
    {
        var sizes = arch.Required<int[]>("layer_sizes");
        int classes = arch.Optional<int?>("n_classes") ?? 0;
        bool untied = arch.Optional<bool?>("untied") ?? false;
        var shapes = new Dictionary<string, long[]>();
        for (int l = 0; l + 1 < sizes.Length; l++)
        {
            long visible = sizes[l] + (l + 2 == sizes.Length ? (long)classes : 0);
            foreach (var (k, v) in Checkpoint.RbmShapes(visible, sizes[l + 1], $"layers.{l}.")) shapes[k] = v;
            if (untied && l + 2 < sizes.Length)
            {
                shapes[$"recognition.{l}.weight"] = [sizes[l + 1], sizes[l]];
                shapes[$"recognition.{l}.bias"] = [sizes[l + 1]];
            }
        }
        return shapes;
    }

    /// <summary>
    /// A Sequential's architecture: <c>{"layers": [{"name": "fc1", "type": "Linear", "in_features": 784,
    /// "out_features": 500, "bias": true}, {"name": "sigmoid1", "type": "Sigmoid"}, {"name": "dropout1", "type": "Dropout", "p": 0.5}, …], "dtype": …}</c>.
    /// </summary>
    /// <exception cref="ArgumentException">A child of a type other than Linear, Sigmoid, ReLU, Tanh, Dropout.</exception>
    public static JsonObject DescribeSequential(Sequential seq)
    {
        var layers = new JsonArray();
        ScalarType dtype = get_default_dtype();
        foreach (var (name, m) in seq.named_children())
        {
            var o = new JsonObject { ["name"] = name, ["type"] = m.GetType().Name };
            switch (m)
            {
                case Linear lin:
                    o["in_features"] = lin.in_features;
                    o["out_features"] = lin.out_features;
                    o["bias"] = lin.bias is not null;
                    dtype = lin.weight!.dtype;
                    break;
                case Dropout d:
                    o["p"] = d.p;
                    break;
                case Modules.FastDropout fd:   // the same distribution as nn.Dropout: described, and rebuilt, as "Dropout"
                    o["type"] = "Dropout";
                    o["p"] = fd.p;
                    break;
                case Sigmoid or ReLU or Tanh:
                    break;
                default:
                    throw new ArgumentException($"Checkpoint.Save: a Sequential child '{name}' of type {m.GetType().Name} cannot be described (supported: Linear, Sigmoid, ReLU, Tanh, Dropout).");
            }
            layers.Add(o);
        }
        return new JsonObject { ["layers"] = layers, ["dtype"] = dtype.ToString() };
    }

    /// <summary>Builds a Sequential from <see cref="DescribeSequential"/>'s JSON (weights uninitialised until loaded).</summary>
    /// <exception cref="CheckpointException">A field is missing or of the wrong type, a dtype is not floating-point, a
    /// layer name repeats, a Linear's size is not positive, or a layer type is unsupported.</exception>
    public static Sequential CreateSequential(JsonObject arch)
    {
        var dtype = Enum.Parse<ScalarType>(arch.Required<string>("dtype"));
        if (!Functional.DTypes.IsFloat(dtype))
            throw new CheckpointException($"architecture: expected a floating-point \"dtype\", got {dtype}.");
        var modules = new List<(string, nn.Module<Tensor, Tensor>)>();
        try
        {
            foreach (var layer in ReadLayers(arch))
            {
                nn.Module<Tensor, Tensor> m = layer.Type switch
                {
                    "Linear" => nn.Linear(layer.InFeatures, layer.OutFeatures, hasBias: layer.Bias, dtype: dtype),
                    "Dropout" => new Modules.FastDropout(layer.P),
                    "Sigmoid" => nn.Sigmoid(),
                    "ReLU" => nn.ReLU(),
                    _ => nn.Tanh(),
                };
                modules.Add((layer.Name, m));
            }
        }
        catch
        {
            foreach (var (_, m) in modules) m.Dispose();   // a failed build disposes the layers it made
            throw;
        }
        return nn.Sequential(modules);
    }

    /// <summary>
    /// The state_dict shapes of the Sequential <see cref="DescribeSequential"/>'s JSON gives, without building it:
    /// <c>NAME.weight</c> (out_features, in_features) and <c>NAME.bias</c> (out_features) per Linear layer.
    /// </summary>
    public static IReadOnlyDictionary<string, long[]> SequentialShapes(JsonObject arch)
    {
        var shapes = new Dictionary<string, long[]>();
        foreach (var layer in ReadLayers(arch).Where(l => l.Type == "Linear"))
        {
            shapes[layer.Name + ".weight"] = [layer.OutFeatures, layer.InFeatures];
            if (layer.Bias) shapes[layer.Name + ".bias"] = [layer.OutFeatures];
        }
        return shapes;
    }

    private sealed record LayerSpec(string Name, string Type, long InFeatures = 0, long OutFeatures = 0, bool Bias = false, double P = 0);

    /// <summary>The layers of a Sequential's architecture, every field checked (<see cref="CheckpointException"/> naming it).</summary>
    private static List<LayerSpec> ReadLayers(JsonObject arch)
    {
        var layers = new List<LayerSpec>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in arch.Required<JsonArray>("layers"))
        {
            var o = node as JsonObject ?? throw new CheckpointException($"architecture: expected each of \"layers\" to be an object, got {node?.ToJsonString() ?? "null"}.");
            string name = o.Required<string>("name", "architecture layer");
            // Two children of one name would build another network than the one described (one replaces the other).
            if (!names.Add(name)) throw new CheckpointException($"architecture: layer name '{name}' appears twice.");
            string where = $"architecture layer '{name}'", type = o.Required<string>("type", where);
            layers.Add(type switch
            {
                "Linear" => new LayerSpec(name, type, Positive(o, "in_features", where), Positive(o, "out_features", where), o.Required<bool>("bias", where)),
                "Dropout" => new LayerSpec(name, type, P: o.Required<double>("p", where)),
                "Sigmoid" or "ReLU" or "Tanh" => new LayerSpec(name, type),
                _ => throw new CheckpointException($"architecture: unsupported layer type '{type}' (supported: Linear, Sigmoid, ReLU, Tanh, Dropout)."),
            });
        }
        return layers;
    }

    private static long Positive(JsonObject o, string key, string where)
    {
        long v = o.Required<long>(key, where);
        return v > 0 ? v : throw new CheckpointException($"{where}: expected \"{key}\" to be positive, got {v}.");
    }
}

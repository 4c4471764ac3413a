using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Units;
using static TorchSharp.torch;

namespace TorchBoltzmann.IO;

/// <summary>
/// Registers the DBM checkpoint type ("DBM": layer_sizes, visible_units, dtype) with <see cref="Checkpoint"/> when the
/// assembly loads, so <see cref="Checkpoint.Save"/> and <see cref="Checkpoint.Load"/> handle a <see cref="DBM"/> like an
/// RBM or a DBN.
/// </summary>
public static class DbmCheckpoints
{
#pragma warning disable CA2255 // a library module initializer is intended: registration must precede any Checkpoint.Load
    [ModuleInitializer]
    internal static void RegisterAll()
#pragma warning restore CA2255
    {
        Checkpoint.Register<DBM>("DBM", Describe, Create, Shapes);
    }

    /// <summary>The DBM's architecture: <c>{"layer_sizes": [...], "visible_units": "Bernoulli", "dtype": "Float32"}</c>.</summary>
    public static JsonObject Describe(DBM dbm)
    {
        ArgumentNullException.ThrowIfNull(dbm);
        return new JsonObject
        {
            ["layer_sizes"] = new JsonArray(dbm.layer_sizes.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
            ["visible_units"] = dbm.visible_units.Name,
            ["dtype"] = dbm.dtype.ToString(),
        };
    }

    /// <summary>Builds an untrained DBM from <see cref="Describe"/>'s JSON (the visible unit type through <see cref="UnitType.FromName"/>).</summary>
    /// <exception cref="CheckpointException">An unknown unit-type name or layer sizes a DBM cannot have.</exception>
    public static DBM Create(JsonObject arch)
    {
        ArgumentNullException.ThrowIfNull(arch);
        var sizes = arch.Required<int[]>("layer_sizes");
        var dtype = Enum.Parse<ScalarType>(arch.Required<string>("dtype"));
        try
        {
            var units = UnitType.FromName(arch.Optional<string>("visible_units") ?? UnitType.Bernoulli.Name);
            return new DBM(sizes, units, null, dtype);
        }
        catch (ArgumentException ex) { throw new CheckpointException($"architecture: {ex.Message}"); }
    }

    /// <summary>
    /// The state_dict shapes of a DBM: <c>weights.l</c> (n_{l+1}, n_l) for l = 0 … L − 1 and <c>biases.l</c> (n_l) for
    /// l = 0 … L.
    /// </summary>
    public static IReadOnlyDictionary<string, long[]> Shapes(JsonObject arch)
    {
        ArgumentNullException.ThrowIfNull(arch);
        var sizes = arch.Required<int[]>("layer_sizes");
        var shapes = new Dictionary<string, long[]>();
        for (int l = 0; l < sizes.Length; l++)
        {
            shapes[$"biases.{l}"] = [sizes[l]];
            if (l + 1 < sizes.Length) shapes[$"weights.{l}"] = [sizes[l + 1], sizes[l]];
        }
        return shapes;
    }
}

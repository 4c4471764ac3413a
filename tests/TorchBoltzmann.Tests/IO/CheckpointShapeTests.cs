using System.Text.Json.Nodes;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.IO;

/// <summary>The sizes a sidecar gives, checked against the shapes in the weights file before a model is built.</summary>
public sealed partial class CheckpointTests
{
    private static nn.Module Small(string model) => model switch
    {
        "RBM" => TestUtil.RandomRbm(12, 5, seed: 3),
        "DBN" => new DBN([12, 8, 6], n_classes: 3),
        _ => DbnClassifier.Build([12, 8, 6], 3, input_dropout: 0.2, hidden_dropout: 0.5),
    };

    /// <summary>
    /// A sidecar edited to sizes that would need about a billion billion bytes (an RBM of 10⁹ × 10⁹, a DBN whose top
    /// layer has 10⁹ units, a classifier layer of 10⁹ outputs) is refused with a one-line CheckpointException naming
    /// the weights file, the sidecar, the tensor, the shape expected and the shape found, instead of the allocation
    /// failing in libtorch (an ExternalException, "can't allocate …").
    /// </summary>
    [Theory]
    [InlineData("RBM", "n_visible=1000000000;n_hidden=1000000000", "weight: expected (1000000000, 1000000000), found (5, 12)")]
    [InlineData("DBN", "layer_sizes=[12,8,1000000000]", "layers.1.weight: expected (1000000000, 11), found (6, 11)")]
    [InlineData("DBN", "n_classes=1000000000", "layers.1.weight: expected (6, 1000000008), found (6, 11)")]
    [InlineData("Sequential", "layers/1/out_features=1000000000", "fc1.weight: expected (1000000000, 12), found (8, 12)")]
    public void Load_SidecarEditedToHugeSizes_IsRefusedBeforeTheModelIsBuilt(string model, string edit, string expected)
    {
        var path = Path.Combine(_dir, model + ".pt");
        using (var m = Small(model)) Checkpoint.Save(m, path);
        var sidecar = JsonNode.Parse(File.ReadAllText(Checkpoint.SidecarPath(path)))!.AsObject();
        foreach (var assignment in edit.Split(';'))
        {
            var (field, value) = (assignment[..assignment.IndexOf('=')], assignment[(assignment.IndexOf('=') + 1)..]);
            JsonNode parent = sidecar["architecture"]!;
            var parts = field.Split('/');
            foreach (var part in parts[..^1]) parent = int.TryParse(part, out int k) ? parent[k]! : parent[part]!;
            parent[parts[^1]] = JsonNode.Parse(value);
        }
        File.WriteAllText(Checkpoint.SidecarPath(path), sidecar.ToJsonString());

        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        Assert.DoesNotContain('\n', e.Message);
        Assert.StartsWith($"'{path}' does not hold the {model} ", e.Message);
        Assert.Contains($"that '{Checkpoint.SidecarPath(path)}' describes: ", e.Message);
        Assert.Contains(expected, e.Message);
        Assert.Null(e.InnerException);
    }

    /// <summary>
    /// For every registered model type, the shapes computed from the architecture alone are exactly the names and
    /// shapes of a built model's state_dict, and the header reader finds those names, shapes and dtypes in the bytes
    /// TorchSharp's Module.save writes (so the check can neither refuse a good checkpoint nor miss a key).
    /// </summary>
    [Theory]
    [InlineData("RBM")]
    [InlineData("labelled RBM")]
    [InlineData("DBN")]
    [InlineData("class-conditional DBN")]
    [InlineData("classifier")]
    [InlineData("encoder without biases")]
    public void Shapes_FromTheArchitecture_AreTheStateDictsOfTheBuiltModel(string model)
    {
        using var g = new Generator(1);
        nn.Module m = model switch
        {
            "RBM" => boltzmann.RBM(7, 3, dtype: ScalarType.Float64, generator: g),
            "labelled RBM" => boltzmann.RBM(9, 4, visible: new TorchBoltzmann.Units.LabelledBernoulliUnits(3), generator: g),
            "DBN" => new DBN([10, 6, 4, 2], generator: g),
            "class-conditional DBN" => new DBN([10, 6, 4], n_classes: 5, dtype: ScalarType.Float64, generator: g),
            "classifier" => DbnClassifier.Build([10, 6, 4], 3, input_dropout: 0.2, hidden_dropout: 0.5, generator: g),
            _ => nn.Sequential(("fc1", nn.Linear(10, 6, hasBias: false)), ("tanh1", nn.Tanh()), ("fc2", nn.Linear(6, 2)), ("relu2", nn.ReLU())),
        };
        using (m)
        {
            var arch = m switch
            {
                RBM r => new JsonObject { ["n_visible"] = r.n_visible, ["n_hidden"] = r.n_hidden },
                DBN d => DbnCheckpoints.Describe(d),
                _ => DbnCheckpoints.DescribeSequential((Sequential)m),
            };
            IReadOnlyDictionary<string, long[]> shapes = m switch
            {
                RBM r => Checkpoint.RbmShapes(r.n_visible, r.n_hidden),
                DBN => DbnCheckpoints.Shapes(arch),
                _ => DbnCheckpoints.SequentialShapes(arch),
            };
            var state = m.state_dict();
            Assert.Equal(state.Keys.Order(StringComparer.Ordinal), shapes.Keys.Order(StringComparer.Ordinal));
            foreach (var (k, t) in state) Assert.Equal(t.shape, shapes[k]);

            using var ms = new MemoryStream();
            m.save(ms);
            var entries = StateDictHeader.TryRead(ms.ToArray(), out var problem);
            Assert.True(entries is not null, problem);
            Assert.Equal(state.Select(kv => (kv.Key, kv.Value.dtype, string.Join("x", kv.Value.shape))),
                entries!.Select(e => (e.Name, e.DType, string.Join("x", e.Shape))));
        }
    }

    /// <summary>Bytes that are not a whole state_dict (cut anywhere, a byte too many, a wild entry count) are recognised as such.</summary>
    [Fact]
    public void StateDictHeader_CutShortOrPadded_IsNotAStateDict()
    {
        using var m = TestUtil.RandomRbm(6, 4, seed: 1);
        using var ms = new MemoryStream();
        m.save(ms);
        var bytes = ms.ToArray();
        Assert.NotNull(StateDictHeader.TryRead(bytes, out _));
        for (int cut = 0; cut < bytes.Length; cut += 7)
            Assert.Null(StateDictHeader.TryRead(bytes[..cut], out _));
        Assert.Null(StateDictHeader.TryRead([.. bytes, 0], out var padded));
        Assert.Contains("1 bytes after the last entry", padded);
        Assert.Null(StateDictHeader.TryRead([0xff, 0xff, 0xff, 0x7f, .. bytes[1..]], out var count));
        Assert.Contains("entries", count);
    }

    /// <summary>
    /// Format compatibility: every sidecar committed under models/ (written by earlier versions of this library, for
    /// weights kept out of the repository) describes a state_dict of exactly the recorded size when a model of its
    /// architecture is saved now, and with weights of that architecture beside it (its SHA-256 updated, nothing else
    /// changed) loads with this version's loader and size check.
    /// </summary>
    [Fact]
    public void Load_SidecarsCommittedUnderModels_StillLoad()
    {
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "TorchBoltzmann.sln"))) root = root.Parent;
        Assert.NotNull(root);
        var sidecars = Directory.GetFiles(Path.Combine(root.FullName, "models"), "*.json")
            .Where(f => File.ReadAllText(f).Contains($"\"format\": \"{Checkpoint.FormatName}\"", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(sidecars);
        var seen = new HashSet<string>();
        foreach (var file in sidecars)
        {
            var text = File.ReadAllText(file);
            var json = JsonNode.Parse(text)!.AsObject();
            var arch = json["architecture"]!.AsObject();
            if (!seen.Add(json["model_type"] + arch.ToJsonString())) continue;   // one per architecture: the check is the same
            using nn.Module m = json["model_type"]!.GetValue<string>() == "DBN" ? DbnCheckpoints.Create(arch) : (nn.Module)DbnCheckpoints.CreateSequential(arch);
            using var ms = new MemoryStream();
            m.save(ms);
            var bytes = ms.ToArray();
            Assert.Equal(json["weights_bytes"]!.GetValue<long>(), bytes.LongLength);

            var path = Path.Combine(_dir, Path.GetFileNameWithoutExtension(file) + ".pt");
            File.WriteAllBytes(path, bytes);
            var sha = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes)).ToLowerInvariant();
            File.WriteAllText(Checkpoint.SidecarPath(path), text.Replace(json["weights_sha256"]!.GetValue<string>(), sha, StringComparison.Ordinal));
            using var loaded = Checkpoint.Load(path);
            DbnTestUtil.AssertSameParameters(m, loaded, Path.GetFileName(file));
        }
    }
}

using System.Text.Json.Nodes;
using TorchBoltzmann.Data;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.IO;

public sealed partial class CheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tb-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Saved(out RBM rbm, ScalarType dtype = ScalarType.Float32)
    {
        rbm = TestUtil.RandomRbm(12, 5, seed: 3, dtype: dtype);
        var path = Path.Combine(_dir, "rbm.pt");
        Checkpoint.Save(rbm, path, new { epochs = 3, lr = 0.1 });
        return path;
    }

    [Fact]
    public void SaveLoad_RoundTrip_ReproducesOutputs_WithoutKnowingSizes()
    {
        var path = Saved(out var rbm, ScalarType.Float64);
        using (rbm)
        using (var loaded = Checkpoint.Load<RBM>(path))
        {
            Assert.Equal(12, loaded.n_visible);
            Assert.Equal(5, loaded.n_hidden);
            Assert.Equal(ScalarType.Float64, loaded.dtype);
            using var v = torch.rand(7, 12, dtype: ScalarType.Float64);
            TestUtil.AllClose(rbm.forward(v), loaded.forward(v), 0, "p(h|v)");
            TestUtil.AllClose(rbm.free_energy(v), loaded.free_energy(v), 0, "F(v)");
        }
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
        var json = Checkpoint.ReadSidecar(path);
        Assert.Equal("RBM", json["model_type"]!.GetValue<string>());
        Assert.Equal(Checkpoint.FormatVersion, json["format_version"]!.GetValue<int>());
        Assert.Equal(3, json["training"]!["epochs"]!.GetValue<int>());
        Assert.Equal("Bernoulli", json["architecture"]!["visible_units"]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(json["library_version"]!.GetValue<string>()));
    }

    [Fact]
    public void Provenance_NamesTheWeightsByHash_AndChainsThroughTheRunsStartedFromThem()
    {
        var first = Saved(out var rbm);
        rbm.Dispose();
        var from = Checkpoint.Provenance(first);
        Assert.Equal(first, from["file"]!.GetValue<string>());
        Assert.Equal("RBM", from["model_type"]!.GetValue<string>());
        var sha = MnistFetcher.ComputeSha256(first);   // the library's file hash, checked against a known vector in MnistFetcherTests
        Assert.Equal(sha, from["weights_sha256"]!.GetValue<string>());
        Assert.Equal(3, from["training"]!["epochs"]!.GetValue<int>());

        // A run started from the first checkpoint records it; the record of that run's checkpoint carries it on.
        using var next = TestUtil.RandomRbm(12, 5, seed: 4);
        var second = Path.Combine(_dir, "next.pt");
        Checkpoint.Save(next, second, new { epochs = 1, pretrained_from = from });
        var chain = Checkpoint.Provenance(second);
        Assert.NotEqual(sha, chain["weights_sha256"]!.GetValue<string>());
        Assert.Equal(sha, chain["training"]!["pretrained_from"]!["weights_sha256"]!.GetValue<string>());
        Assert.Equal(3, chain["training"]!["pretrained_from"]!["training"]!["epochs"]!.GetValue<int>());

        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Provenance(Path.Combine(_dir, "absent.pt")));
        Assert.Contains("absent.json", e.Message);
    }

    [Fact]
    public void LoadWithProvenance_ReturnsTheModelAndTheRecordOfTheSameSidecar()
    {
        var path = Saved(out var rbm, ScalarType.Float64);
        using (rbm)
        {
            var (loaded, from) = Checkpoint.LoadWithProvenance<RBM>(path);
            using (loaded)
            {
                using var v = torch.rand(4, 12, dtype: ScalarType.Float64);
                TestUtil.AllClose(rbm.free_energy(v), loaded.free_energy(v), 0, "F(v)");
            }
            Assert.Equal(Checkpoint.Provenance(path).ToJsonString(), from.ToJsonString());
            Assert.Equal(MnistFetcher.ComputeSha256(path), from["weights_sha256"]!.GetValue<string>());
        }
        // The same checks as Load<T>: another model type, and weights that do not match the sidecar, are refused.
        Assert.Contains("expected a DBN checkpoint, got a RBM",
            Assert.Throws<CheckpointException>(() => Checkpoint.LoadWithProvenance<DBN>(path)).Message);
        var bytes = File.ReadAllBytes(path);
        bytes[^1] ^= 0xFF;
        File.WriteAllBytes(path, bytes);
        Assert.Contains("does not match its sidecar", Assert.Throws<CheckpointException>(() => Checkpoint.LoadWithProvenance<RBM>(path)).Message);
    }

    [Fact]
    public void Load_TruncatedWeights_SaysTruncated()
    {
        var path = Saved(out var rbm);
        rbm.Dispose();
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        Assert.Contains("truncated", e.Message);
        Assert.Contains($"expected {bytes.Length} bytes", e.Message);
    }

    [Fact]
    public void Load_CorruptWeights_SaysChecksumMismatch()
    {
        var path = Saved(out var rbm);
        rbm.Dispose();
        var bytes = File.ReadAllBytes(path);
        bytes[^5] ^= 0xFF;
        File.WriteAllBytes(path, bytes);
        Assert.Contains("does not match its sidecar", Assert.Throws<CheckpointException>(() => Checkpoint.Load(path)).Message);
    }

    [Fact]
    public void Load_CorruptSidecar_SaysNotJson()
    {
        var path = Saved(out var rbm);
        rbm.Dispose();
        File.WriteAllText(Checkpoint.SidecarPath(path), "{ not json");
        Assert.Contains("not valid JSON", Assert.Throws<CheckpointException>(() => Checkpoint.Load(path)).Message);
    }

    [Fact]
    public void Load_NewerFormat_AsksToUpgrade()
    {
        var path = Saved(out var rbm);
        rbm.Dispose();
        var json = JsonNode.Parse(File.ReadAllText(Checkpoint.SidecarPath(path)))!.AsObject();
        json["format_version"] = Checkpoint.FormatVersion + 1;
        File.WriteAllText(Checkpoint.SidecarPath(path), json.ToJsonString());
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        Assert.Contains($"format version {Checkpoint.FormatVersion + 1}", e.Message);
        Assert.Contains("upgrade", e.Message);
    }

    [Fact]
    public void Load_MismatchedArchitecture_NamesTheArchitecture()
    {
        var path = Saved(out var rbm);
        rbm.Dispose();
        var json = JsonNode.Parse(File.ReadAllText(Checkpoint.SidecarPath(path)))!.AsObject();
        json["architecture"]!["n_hidden"] = 6;
        File.WriteAllText(Checkpoint.SidecarPath(path), json.ToJsonString());
        // Refused before an RBM of the sidecar's sizes is built: the shapes in the weights file are compared first.
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        Assert.Contains($"'{path}' does not hold the RBM", e.Message);
        Assert.Contains("\"n_hidden\":6", e.Message);
        Assert.Contains($"that '{Checkpoint.SidecarPath(path)}' describes: weight: expected (6, 12), found (5, 12); hidden_bias: expected (6), found (5).", e.Message);
    }

    [Fact]
    public void Load_MissingFiles_AndWrongType_AreClear()
    {
        Assert.Contains("sidecar not found", Assert.Throws<CheckpointException>(() => Checkpoint.Load(Path.Combine(_dir, "nope.pt"))).Message);
        var path = Saved(out var rbm);
        rbm.Dispose();
        File.Delete(path);
        Assert.Contains("weights not found", Assert.Throws<CheckpointException>(() => Checkpoint.Load(path)).Message);
    }

    [Fact]
    public void Save_OverExisting_ReplacesBothFilesConsistently()
    {
        var path = Saved(out var first);
        first.Dispose();
        using var second = TestUtil.RandomRbm(12, 5, seed: 99, dtype: ScalarType.Float32);
        Checkpoint.Save(second, path);
        using var loaded = Checkpoint.Load<RBM>(path);
        TestUtil.AllClose(second.weight, loaded.weight, 0, "W");
        Assert.Equal(2, Directory.GetFiles(_dir).Length);
    }

    [Fact]
    public void SaveLoad_LabelledVisibleUnits_RoundTrip()
    {
        // The top RBM of a class-conditional DBN (visible units "Bernoulli+Softmax(3)") saved on its own loads back.
        using var gen = new Generator(7);
        using var rbm = boltzmann.RBM(6, 4, visible: new TorchBoltzmann.Units.LabelledBernoulliUnits(3), dtype: ScalarType.Float64, generator: gen);
        var path = Path.Combine(_dir, "top.pt");
        Checkpoint.Save(rbm, path);
        using var loaded = Checkpoint.Load<RBM>(path);
        var units = Assert.IsType<TorchBoltzmann.Units.LabelledBernoulliUnits>(loaded.visible_units);
        Assert.Equal(3, units.n_classes);
        using var x = torch.rand(5, 3, dtype: ScalarType.Float64, generator: gen).round_();
        using var y = torch.tensor(new long[] { 0, 2, 1, 1, 0 });
        using var e = DBN.one_hot(y, 3, ScalarType.Float64);
        using var v = torch.cat(new[] { x, e }, 1);
        TestUtil.AllClose(rbm.free_energy(v), loaded.free_energy(v), 0, "F([x; y])");
        // Names that are not a unit type stay refused.
        foreach (var bad in new[] { "Bernoulli+Softmax(1)", "Bernoulli+Softmax(x)", "Bernoulli+Softmax(3", "Poisson" })
            Assert.Throws<ArgumentException>(() => TorchBoltzmann.Units.UnitType.FromName(bad));
    }

    /// <summary>
    /// A DBN's unit types travel through its checkpoint: a bottom layer with a softmax group in its input loads back with
    /// that type (same free energies), and a sidecar whose unit types disagree with what a DBN builds, or name no
    /// registered type, is refused naming the field.
    /// </summary>
    [Fact]
    public void SaveLoad_DbnUnitTypes_RoundTrip_AndMismatchesAreRefused()
    {
        using var gen = new Generator(11);
        var units = new TorchBoltzmann.Units.LabelledBernoulliUnits(3);
        using var dbn = boltzmann.DBN([8, 5, 4], n_classes: 2, dtype: ScalarType.Float64, generator: gen, visible_units: units);
        var path = Path.Combine(_dir, "dbn.pt");
        Checkpoint.Save(dbn, path);
        using (var loaded = Checkpoint.Load<DBN>(path))
        {
            for (int l = 0; l < dbn.n_layers; l++)
            {
                Assert.Equal(dbn.layers[l].visible_units.Name, loaded.layers[l].visible_units.Name);
                Assert.Equal(dbn.layers[l].hidden_units.Name, loaded.layers[l].hidden_units.Name);
            }
            Assert.Equal(3, Assert.IsType<TorchBoltzmann.Units.LabelledBernoulliUnits>(loaded.layers[0].visible_units).n_classes);
            using var x = torch.rand(6, 5, dtype: ScalarType.Float64, generator: gen).round_();
            using var e = DBN.one_hot(torch.tensor(new long[] { 0, 1, 2, 2, 1, 0 }), 3, ScalarType.Float64);
            using var v = torch.cat(new[] { x, e }, 1);
            TestUtil.AllClose(dbn.layers[0].free_energy(v), loaded.layers[0].free_energy(v), 0, "F(v) of the bottom RBM");
            TestUtil.AllClose(dbn.forward(v), loaded.forward(v), 0, "DBN up-pass");
        }

        // The stored names as written, then edited: another type on an upper layer, an unknown name, a short list.
        var json = Checkpoint.ReadSidecar(path);
        var arch = json["architecture"]!.AsObject();
        Assert.Equal(["Bernoulli+Softmax(3)", "Bernoulli+Softmax(2)"], arch["visible_units"]!.AsArray().Select(n => n!.GetValue<string>()));
        void Refused(string key, JsonArray names, string named)
        {
            var edited = JsonNode.Parse(json.ToJsonString())!.AsObject();
            edited["architecture"]![key] = names;
            File.WriteAllText(Checkpoint.SidecarPath(path), edited.ToJsonString());
            var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Load<DBN>(path));
            Assert.Contains(named, ex.Message);
        }
        Refused("visible_units", new JsonArray("Bernoulli+Softmax(3)", "Bernoulli"), "visible_units[1]");
        Refused("visible_units", new JsonArray("Poisson", "Bernoulli+Softmax(2)"), "Unknown unit type 'Poisson'");
        Refused("hidden_units", new JsonArray("Bernoulli"), "\"hidden_units\" to name 2 unit types");
    }

    private sealed class Unserialisable
    {
        public double Loss => throw new InvalidOperationException("cannot be read");
    }

    [Fact]
    public void Save_FailingTrainingRecord_LeavesThePreviousPairLoadable()
    {
        var path = Saved(out var first);
        using (first)
        {
            using var second = TestUtil.RandomRbm(12, 5, seed: 99, dtype: ScalarType.Float32);
            Assert.Throws<InvalidOperationException>(() => Checkpoint.Save(second, path, new Unserialisable()));
            using var loaded = Checkpoint.Load<RBM>(path);   // the first save's weights and sidecar, still a pair
            TestUtil.AllClose(first.weight, loaded.weight, 0, "W");
        }
        // NaN and infinities in a training record (a diverged run's metrics) are written, not refused.
        using var third = TestUtil.RandomRbm(12, 5, seed: 5, dtype: ScalarType.Float32);
        Checkpoint.Save(third, path, new { loss = double.NaN, best = double.PositiveInfinity });
        Assert.Equal("NaN", Checkpoint.ReadSidecar(path)["training"]!["loss"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("format_version", "\"1\"", "format_version")]
    [InlineData("weights_bytes", "\"many\"", "weights_bytes")]
    [InlineData("model_type", "7", "model_type")]
    [InlineData("format", "1", "format")]
    public void Load_SidecarFieldOfTheWrongType_IsACheckpointError_NamingTheField(string key, string json, string named)
    {
        var path = Saved(out var rbm);
        rbm.Dispose();
        var o = JsonNode.Parse(File.ReadAllText(Checkpoint.SidecarPath(path)))!.AsObject();
        o[key] = JsonNode.Parse(json);
        File.WriteAllText(Checkpoint.SidecarPath(path), o.ToJsonString());
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        Assert.Contains(named, e.Message);
        Assert.Contains(Checkpoint.SidecarPath(path), e.Message);
    }
    /// <summary>
    /// An architecture field that is missing or of another JSON type, in each registered model type's sidecar, is a
    /// CheckpointException naming the sidecar, the field, what was expected and what came (not an
    /// InvalidOperationException from JsonNode, nor a silent 0).
    /// </summary>
    [Theory]
    [InlineData("RBM", "n_hidden", "\"five\"", "expected \"n_hidden\" to be an integer, got \"five\"")]
    [InlineData("RBM", "visible_units", null, "missing \"visible_units\" (a string)")]
    [InlineData("DBN", "layer_sizes", "[12, \"8\"]", "expected \"layer_sizes\" to be an array of integers, got [12,\"8\"]")]
    [InlineData("DBN", "n_classes", "2.5", "expected \"n_classes\" to be an integer, got 2.5")]
    [InlineData("DBN", "dtype", null, "missing \"dtype\" (a string)")]
    [InlineData("Sequential", "layers/0/out_features", "true", "architecture layer 'fc1': expected \"out_features\" to be an integer, got true")]
    [InlineData("Sequential", "layers/0/bias", null, "architecture layer 'fc1': missing \"bias\" (true or false)")]
    [InlineData("Sequential", "layers/1", "3", "expected each of \"layers\" to be an object, got 3")]
    public void Load_ArchitectureFieldMissingOrOfTheWrongType_NamesTheField(string model, string field, string? json, string expected)
    {
        var path = Path.Combine(_dir, model + ".pt");
        nn.Module m = model switch
        {
            "RBM" => TestUtil.RandomRbm(12, 5, seed: 3),
            "DBN" => new DBN(new[] { 12, 8, 6 }, n_classes: 3),
            _ => nn.Sequential(("fc1", nn.Linear(12, 8)), ("sigmoid1", nn.Sigmoid()), ("fc2", nn.Linear(8, 3))),
        };
        using (m) Checkpoint.Save(m, path);
        var sidecar = JsonNode.Parse(File.ReadAllText(Checkpoint.SidecarPath(path)))!.AsObject();
        JsonNode parent = sidecar["architecture"]!;
        var parts = field.Split('/');
        foreach (var part in parts[..^1]) parent = int.TryParse(part, out int k) ? parent[k]! : parent[part]!;
        var value = json is null ? null : JsonNode.Parse(json);
        if (int.TryParse(parts[^1], out int index)) parent.AsArray()[index] = value;
        else if (value is null) parent.AsObject().Remove(parts[^1]);
        else parent[parts[^1]] = value;
        File.WriteAllText(Checkpoint.SidecarPath(path), sidecar.ToJsonString());

        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains(Checkpoint.SidecarPath(path), e.Message);
    }
}

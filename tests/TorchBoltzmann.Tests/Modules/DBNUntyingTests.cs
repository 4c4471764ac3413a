using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Tests.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Modules;

/// <summary>
/// The DBN's untied form (<see cref="DBN.untie"/>): recognition weights beside the generative ones, which pass uses
/// which, and the checkpoint keys. (A class of its own beside DBNTests, since other branches extend that file.)
/// </summary>
public class DBNUntyingTests
{
    private static DBN RandomDbn(int[] sizes, int classes, ulong seed)
    {
        using var g = new Generator(seed);
        var dbn = boltzmann.DBN(sizes, classes, dtype: ScalarType.Float64, generator: g);
        using (torch.no_grad())
            foreach (var p in dbn.parameters()) p.normal_(0, 0.5, g);
        return dbn;
    }

    private static Tensor RandomBinary(int n, int width, ulong seed)
    {
        using var g = new Generator(seed);
        using var u = torch.rand(n, width, dtype: ScalarType.Float64, generator: g);
        return u.lt(0.5).to_type(ScalarType.Float64);
    }

    /// <summary>Sets every recognition parameter to new random values, so the two weight sets differ.</summary>
    private static void PerturbRecognition(DBN dbn, ulong seed)
    {
        using var g = new Generator(seed);
        using var _ = torch.no_grad();
        foreach (var p in dbn.recognition!.parameters()) p.normal_(0, 0.5, g);
    }

    [Fact]
    public void Untie_CopiesWeightsExactly_AndChangesNoOutput()
    {
        using var dbn = RandomDbn([6, 5, 4, 3], 2, seed: 3);
        using var v = RandomBinary(7, 6, seed: 4);
        Assert.False(dbn.is_untied);
        Assert.DoesNotContain(dbn.state_dict().Keys, k => k.StartsWith("recognition.", StringComparison.Ordinal));
        using var featuresBefore = dbn.features(v);
        using var forwardBefore = dbn.forward(v);
        using var energiesBefore = dbn.free_energy_per_class(v);
        using var samplesBefore = dbn.generate(5, burn_in: 3, generator: new Generator(9));

        dbn.untie();

        Assert.True(dbn.is_untied);
        Assert.Equal(2, dbn.recognition!.Count);
        for (int l = 0; l < 2; l++)
        {
            Assert.True(DbnTestUtil.Same(dbn.recognition[l].weight, dbn.layers[l].weight), $"recognition.{l}.weight = layers.{l}.weight");
            Assert.True(DbnTestUtil.Same(dbn.recognition[l].bias, dbn.layers[l].hidden_bias), $"recognition.{l}.bias = layers.{l}.hidden_bias");
        }
        Assert.Equal(
            ["recognition.0.bias", "recognition.0.weight", "recognition.1.bias", "recognition.1.weight"],
            dbn.state_dict().Keys.Where(k => k.StartsWith("recognition.", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        using var featuresAfter = dbn.features(v);
        using var forwardAfter = dbn.forward(v);
        using var energiesAfter = dbn.free_energy_per_class(v);
        using var samplesAfter = dbn.generate(5, burn_in: 3, generator: new Generator(9));
        Assert.True(DbnTestUtil.Same(featuresBefore, featuresAfter));
        Assert.True(DbnTestUtil.Same(forwardBefore, forwardAfter));
        Assert.True(DbnTestUtil.Same(energiesBefore, energiesAfter));
        Assert.True(DbnTestUtil.Same(samplesBefore, samplesAfter));

        // Copies, not views: changing one set leaves the other alone.
        using var generative = dbn.layers[0].weight.detach().clone();
        using (torch.no_grad()) dbn.recognition[0].weight.fill_(7.0);
        Assert.True(DbnTestUtil.Same(dbn.layers[0].weight, generative));
        Assert.Equal("DBN(layer_sizes=[6, 5, 4, 3], n_classes=2, untied=True)", dbn.ToString());
    }

    [Fact]
    public void Untie_Twice_OrWithOneRbm_Throws()
    {
        using var dbn = RandomDbn([6, 5, 4], 2, seed: 3);
        dbn.untie();
        Assert.Throws<InvalidOperationException>(() => dbn.untie());
        using var single = RandomDbn([6, 4], 2, seed: 3);
        Assert.Throws<InvalidOperationException>(() => single.untie());
    }

    /// <summary>Greedy pretraining refuses an untied DBN (it would train the tied layers and leave the recognition weights
    /// the up-pass reads stale), naming the argument and what to do.</summary>
    [Fact]
    public void GreedyPretrainer_RefusesAnUntiedDbn()
    {
        using var dbn = RandomDbn([6, 5, 4], 2, seed: 4);
        _ = new TorchBoltzmann.Training.GreedyPretrainer(dbn);   // tied: accepted
        dbn.untie();
        var e = Assert.Throws<ArgumentException>(() => new TorchBoltzmann.Training.GreedyPretrainer(dbn));
        Assert.Equal("dbn", e.ParamName);
        Assert.Contains("pretrain before untie()", e.Message);
    }

    [Fact]
    public void Untied_UpPassUsesRecognition_DownPassUsesGenerative()
    {
        using var dbn = RandomDbn([6, 5, 4, 3], 2, seed: 5);
        dbn.untie();
        PerturbRecognition(dbn, seed: 6);
        using var v = RandomBinary(7, 6, seed: 7);
        using var scope = torch.NewDisposeScope();

        // Up: μ¹ = σ(R₀v + r₀), μ² = σ(R₁μ¹ + r₁), computed here from the raw tensors.
        var r = dbn.recognition!;
        var mu1 = torch.sigmoid(v.mm(r[0].weight.t()) + r[0].bias);
        var mu2 = torch.sigmoid(mu1.mm(r[1].weight.t()) + r[1].bias);
        Assert.True(torch.allclose(dbn.features(v), mu2, rtol: 0, atol: 1e-14));
        Assert.True(torch.allclose(dbn.layer_input(v, 1), mu1, rtol: 0, atol: 1e-14));
        using (var encoder = dbn.ToEncoder()) Assert.True(torch.allclose(encoder.forward(v), mu2, rtol: 0, atol: 1e-14));

        // classify: argmin_y F([μ²; e_y]) of the top RBM with the recognition features.
        var t = dbn.top;
        var energies = torch.stack(Enumerable.Range(0, 2).Select(y =>
        {
            var e = torch.zeros(7, 2, dtype: ScalarType.Float64);
            e[TensorIndex.Colon, y] = 1.0;
            var x = torch.cat([mu2, e], 1);
            return -(x.mm(t.visible_bias.unsqueeze(1)).squeeze(1)) - nn.functional.softplus(x.mm(t.weight.t()) + t.hidden_bias, 1, 50).sum(1);
        }).ToArray(), 1);
        Assert.True(torch.allclose(dbn.free_energy_per_class(v), energies, rtol: 0, atol: 1e-12));
        Assert.True(DbnTestUtil.Same(dbn.classify(v), energies.argmin(1)));

        // Down: μ¹ = σ(b₁ + W₁ᵀh²), μ⁰ = σ(b₀ + W₀ᵀμ¹) with the RBMs' (generative) weights.
        var h2 = RandomBinary(3, 4, seed: 8);
        var down1 = torch.sigmoid(h2.mm(dbn.layers[1].weight) + dbn.layers[1].visible_bias);
        var down0 = torch.sigmoid(down1.mm(dbn.layers[0].weight) + dbn.layers[0].visible_bias);
        Assert.True(torch.allclose(dbn.down_pass(h2), down0, rtol: 0, atol: 1e-14));
    }

    [Fact]
    public void DbnClassifier_OfAnUntiedDbn_StartsFromTheRecognitionWeights()
    {
        using var dbn = RandomDbn([6, 5, 4, 3], 2, seed: 14);
        dbn.untie();
        PerturbRecognition(dbn, seed: 15);
        using var classifier = DbnClassifier.Build(dbn, n_classes: 2, generator: new Generator(16));
        var state = classifier.state_dict();
        Assert.True(DbnTestUtil.Same(state["fc1.weight"], dbn.recognition![0].weight));
        Assert.True(DbnTestUtil.Same(state["fc1.bias"], dbn.recognition[0].bias));
        Assert.True(DbnTestUtil.Same(state["fc2.weight"], dbn.recognition[1].weight));
        Assert.True(DbnTestUtil.Same(state["fc2.bias"], dbn.recognition[1].bias));
    }

    [Fact]
    public void Checkpoint_TiedToUntiedSavedLoaded_RoundTrip()
    {
        using var dir = new TempDirectory();
        using var dbn = RandomDbn([6, 5, 4, 3], 2, seed: 11);

        // A tied DBN's checkpoint is what it was: no "untied" in the sidecar, no recognition keys; it loads tied.
        Checkpoint.Save(dbn, dir.File("tied.pt"));
        Assert.Null(Checkpoint.ReadSidecar(dir.File("tied.pt"))["architecture"]!["untied"]);
        using (var tied = Checkpoint.Load<DBN>(dir.File("tied.pt")))
        {
            Assert.False(tied.is_untied);
            DbnTestUtil.AssertSameParameters(dbn, tied, "tied round trip");
        }

        dbn.untie();
        PerturbRecognition(dbn, seed: 12);
        Checkpoint.Save(dbn, dir.File("untied.pt"));
        Assert.True(Checkpoint.ReadSidecar(dir.File("untied.pt"))["architecture"]!["untied"]!.GetValue<bool>());
        using var loaded = Checkpoint.Load<DBN>(dir.File("untied.pt"));
        Assert.True(loaded.is_untied);
        var expected = dbn.state_dict();
        var got = loaded.state_dict();
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), got.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, t) in expected) Assert.True(DbnTestUtil.Same(t, got[key]), key);
        using var v = RandomBinary(5, 6, seed: 13);
        Assert.True(DbnTestUtil.Same(dbn.features(v), loaded.features(v)));
    }
}

using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.Training;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Modules;

public class DBNTests
{
    private static DBN RandomDbn(int[] sizes, int classes = 0, ulong seed = 1)
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

    [Fact]
    public void Constructor_RegistersEveryRbm_InTheStateDict()
    {
        using var dbn = boltzmann.DBN([784, 500, 500, 2000]);
        Assert.Equal(3, dbn.n_layers);
        Assert.Equal(
            ["layers.0.weight", "layers.0.visible_bias", "layers.0.hidden_bias", "layers.1.weight", "layers.1.visible_bias",
             "layers.1.hidden_bias", "layers.2.weight", "layers.2.visible_bias", "layers.2.hidden_bias"],
            dbn.state_dict().Keys.OrderBy(k => k[7]).ThenBy(k => k.Contains("weight") ? 0 : k.Contains("visible") ? 1 : 2));
        Assert.Equal(new long[] { 2000, 500 }, dbn.layers[2].weight.shape);
        Assert.Equal("DBN(layer_sizes=[784, 500, 500, 2000], n_classes=0)", dbn.ToString());
        Assert.Throws<ArgumentException>(() => boltzmann.DBN([784]));
        Assert.Throws<ArgumentOutOfRangeException>(() => boltzmann.DBN([784, 0]));
        Assert.Throws<ArgumentOutOfRangeException>(() => boltzmann.DBN([784, 10], n_classes: 1));
    }

    [Fact]
    public void Forward_IsTheChainedRbmUpPass_AndEqualsTheEncoder()
    {
        using var dbn = RandomDbn([12, 8, 6, 4]);
        using var x = RandomBinary(5, 12, 2);
        using var h1 = dbn.layers[0].forward(x);
        using var h2 = dbn.layers[1].forward(h1);
        using var h3 = dbn.layers[2].forward(h2);
        using var y = dbn.forward(x);
        Assert.True(DbnTestUtil.Same(h3, y));
        using var enc = dbn.ToEncoder();
        using var e = enc.forward(x);
        TestUtil.AllClose(y, e, 1e-12, "encoder");
        using var mid = dbn.up_pass(x, 1);
        Assert.True(DbnTestUtil.Same(h1, mid));
        // n = 0 is a copy of the input, not a view of it: writing into it leaves x alone.
        using (var copy = dbn.up_pass(x, 0))
        using (var x0 = x.clone())
        {
            Assert.True(DbnTestUtil.Same(x, copy));
            copy.fill_(0.25);
            Assert.True(DbnTestUtil.Same(x0, x), "up_pass(x, 0) shares no storage with x");
        }
        using var one = dbn.forward(x[0]);
        Assert.Equal(new long[] { 4 }, one.shape);
    }

    [Fact]
    public void Forward_BadInput_NamesExpectedAndGot()
    {
        using var dbn = boltzmann.DBN([784, 20, 10]);
        using var narrow = torch.zeros(3, 783);
        var ex = Assert.Throws<ArgumentException>(() => dbn.forward(narrow));
        Assert.Contains("784", ex.Message);
        Assert.Contains("783", ex.Message);
        using var big = torch.full(2, 784, 2.0f);
        ex = Assert.Throws<ArgumentException>(() => dbn.forward(big));
        Assert.Contains("[0, 1]", ex.Message);
        Assert.Contains("2", ex.Message);
        using var ints = torch.zeros(2, 784, ScalarType.Int64);
        ex = Assert.Throws<ArgumentException>(() => dbn.forward(ints));
        Assert.Contains("floating-point", ex.Message);
    }

    [Fact]
    public void FreeEnergyPerClass_IsTheTopRbmsFreeEnergyOfEachLabelledInput()
    {
        using var dbn = RandomDbn([10, 7, 5], classes: 4);
        Assert.True(dbn.is_class_conditional);
        Assert.Equal(11, dbn.top.n_visible);
        Assert.IsType<LabelledBernoulliUnits>(dbn.top.visible_units);
        using var x = RandomBinary(6, 10, 3);
        using var fe = dbn.free_energy_per_class(x, batch_size: 4);
        Assert.Equal(new long[] { 6, 4 }, fe.shape);
        using var f = dbn.features(x);
        for (int k = 0; k < 4; k++)
        {
            using var lab = torch.full(6, k, ScalarType.Int64);
            using var oh = DBN.one_hot(lab, 4, ScalarType.Float64);
            using var joined = torch.cat(new[] { f, oh }, 1);
            using var expected = dbn.top.free_energy(joined);
            using var col = fe[.., k];
            TestUtil.AllClose(expected, col, 1e-12, $"F(·, y={k})");
        }
        using var cls = dbn.classify(x);
        using var am = fe.argmin(1);
        Assert.True(DbnTestUtil.Same(cls, am));
        // forward of a class-conditional DBN: labels at the uniform mean 1/C.
        using var u = torch.full(6, 4, 0.25, ScalarType.Float64);
        using var joinedU = torch.cat(new[] { f, u }, 1);
        using var ph = dbn.top.prob_h(joinedU);
        using var fw = dbn.forward(x);
        Assert.True(DbnTestUtil.Same(ph, fw));
        using var plain = RandomDbn([10, 7]);
        Assert.Throws<InvalidOperationException>(() => plain.free_energy_per_class(x));
    }

    [Fact]
    public void Generate_ReturnsImages_AndClassConditionalSamplingClampsTheLabels()
    {
        using var dbn = RandomDbn([10, 7, 5], classes: 4);
        using var g = new Generator(4);
        using var labels = torch.tensor(new long[] { 0, 1, 2, 3, 3, 2 });
        using var topState = dbn.sample_top(6, burn_in: 20, labels: labels, generator: g);
        Assert.Equal(new long[] { 6, 11 }, topState.shape);
        using var lab = topState.narrow(1, 7, 4);
        using var expected = DBN.one_hot(labels, 4, ScalarType.Float64);
        Assert.True(DbnTestUtil.Same(expected, lab), "label units stay clamped");
        using var images = dbn.generate(6, burn_in: 20, labels: labels, generator: g);
        Assert.Equal(new long[] { 6, 10 }, images.shape);
        Assert.True(images.min().ToDouble() >= 0 && images.max().ToDouble() <= 1);
        // generate_class(n, y) is generate(n, labels: [y]) broadcast to n, draw for draw.
        using (var g1 = new Generator(9))
        using (var g2 = new Generator(9))
        using (var twos = torch.tensor(new long[] { 2 }))
        {
            using var byClass = dbn.generate_class(3, 2, burn_in: 5, generator: g1);
            using var byTensor = dbn.generate(3, burn_in: 5, labels: twos, generator: g2);
            Assert.Equal(new long[] { 3, 10 }, byClass.shape);
            TestUtil.AllClose(byTensor, byClass, 0, "generate_class vs generate with labels");
        }
        // Free labels: exactly one label unit on per sample.
        using var free = dbn.sample_top(50, burn_in: 5, generator: g);
        using var sums = free.narrow(1, 7, 4).sum(1);
        TestUtil.AllClose(torch.ones(50, dtype: ScalarType.Float64), sums, 0, "one active label");
        using var plain = RandomDbn([10, 7, 5]);
        using var p = plain.generate(4, burn_in: 3, generator: g);
        Assert.Equal(new long[] { 4, 10 }, p.shape);
        Assert.Throws<ArgumentException>(() => plain.generate(4, burn_in: 3, labels: labels));
        foreach (double t in new[] { 0.0, -1.0, double.NaN, double.PositiveInfinity })
            Assert.Contains("expected a finite T > 0", Assert.Throws<ArgumentOutOfRangeException>(() => dbn.generate(2, burn_in: 2, temperature: t)).Message);
    }

    [Fact]
    public void LabelledUnits_SampleTheLabelGroupFromItsSoftmax()
    {
        var units = new LabelledBernoulliUnits(3);
        using var net = torch.tensor(new double[] { 0.0, 0.4, 1.0, 2.0 }).reshape(1, 4).expand(20000, 4);
        using var mean = units.mean(net);
        using var expected = torch.tensor(new double[] { 0.5, 0.4, 1.0, 2.0 });
        using var g = new Generator(5);
        using var s = units.sample_from_mean(mean, g);
        using var freq = s.mean(new long[] { 0 });
        var f = TestUtil.ToArray(freq);
        double z = Math.Exp(0.4) + Math.Exp(1) + Math.Exp(2);
        double[] p = [0.5, Math.Exp(0.4) / z, Math.Exp(1) / z, Math.Exp(2) / z];
        for (int i = 0; i < 4; i++) Assert.True(Math.Abs(f[i] - p[i]) < 0.015, $"unit {i}: frequency {f[i]:F4}, expected {p[i]:F4}");
        using var sums = s.narrow(1, 1, 3).sum(1);
        Assert.Equal(20000.0, sums.sum().ToDouble());
        using var lp = units.log_partition(net.narrow(0, 0, 1), torch.zeros(4));
        Assert.Equal(Math.Log(1 + 1) + Math.Log(z), lp.sum().ToDouble(), 10);
    }

    [Fact]
    public void Classifier_FromClassConditionalDbn_UsesTheTopRbmsFeatureColumns()
    {
        using var g = new Generator(4);
        using var dbn = boltzmann.DBN(new[] { 20, 8, 6 }, n_classes: 3, generator: g);
        using (torch.no_grad()) foreach (var p in dbn.parameters()) p.normal_(0, 1, g);
        using var withTop = DbnClassifier.Build(dbn, n_classes: 3, generator: g);
        var fcs = withTop.named_children().Where(c => c.name.StartsWith("fc")).Select(c => (TorchSharp.Modules.Linear)c.module).ToList();
        Assert.Equal(2, fcs.Count);
        TestUtil.AllClose(dbn.layers[0].weight, fcs[0].weight!, 0, "fc1");
        TestUtil.AllClose(dbn.layers[1].weight.narrow(1, 0, 8), fcs[1].weight!, 0, "fc2 = top feature columns");
        TestUtil.AllClose(dbn.layers[1].hidden_bias, fcs[1].bias!, 0, "fc2 bias");
        // The classifier's hidden layer is the top RBM's up-pass with the label units off.
        using var x = torch.rand(5, 20, generator: g);
        using var f = dbn.features(x);
        using var labelsOff = torch.cat(new[] { f, torch.zeros(5, 3) }, 1);
        using var expected = dbn.layers[1].prob_h(labelsOff);
        using var body = nn.Sequential(withTop.named_children().Where(c => c.name != "out").Select(c => (c.name, (nn.Module<Tensor, Tensor>)c.module)));
        TestUtil.AllClose(expected, body.forward(x), 1e-6, "top up-pass");
        using var withoutTop = DbnClassifier.Build(dbn, n_classes: 3, include_labelled_top: false);
        Assert.Single(withoutTop.named_children(), c => c.name.StartsWith("fc"));
    }

    [Fact]
    public void Checkpoint_SaveLoad_ReproducesOutputs()
    {
        using var dbn = RandomDbn([10, 7, 5], classes: 4);
        using var plain = RandomDbn([10, 8, 3], seed: 7);
        using var x = RandomBinary(4, 10, 8);
        var dir = Directory.CreateTempSubdirectory();
        try
        {
            foreach (var model in new[] { dbn, plain })
            {
                var path = Path.Combine(dir.FullName, $"dbn{model.n_classes}.pt");
                Checkpoint.Save(model, path, training: new { epochs = 1 });
                Assert.Equal("DBN", Checkpoint.ReadSidecar(path)["model_type"]!.GetValue<string>());
                using var loaded = Checkpoint.Load<DBN>(path);
                Assert.Equal(model.layer_sizes, loaded.layer_sizes);
                Assert.Equal(model.n_classes, loaded.n_classes);
                using var a = model.forward(x);
                using var b = loaded.forward(x);
                Assert.True(DbnTestUtil.Same(a, b), "forward reproduced");
                if (model.is_class_conditional)
                {
                    using var fa = model.free_energy_per_class(x);
                    using var fb = loaded.free_energy_per_class(x);
                    Assert.True(DbnTestUtil.Same(fa, fb), "free energies reproduced");
                }
            }
        }
        finally { dir.Delete(true); }
    }
}

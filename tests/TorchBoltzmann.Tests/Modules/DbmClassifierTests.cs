using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.Training;
using TorchBoltzmann.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Modules;

public class DbmClassifierTests
{
    [Fact]
    public void FirstLayers_ReproduceTheMeanFieldFixedPoint()
    {
        // On x = [v ; μ_2] the classifier's first hidden layer computes σ(b_1 + W_1 v + W_2ᵀ μ_2), the mean-field update of
        // h_1, so at a converged fixed point it returns μ_1 and its second layer σ(b_2 + W_2 μ_1) returns μ_2 (to 1e-9).
        using var dbm = DbmTestUtil.Random([6, 4, 3], 20);
        using var v = DbmTrainerTests.Patterns(21, rows: 16);
        using var x = DbmClassifier.Features(dbm, v, max_iterations: 1000, tolerance: 1e-13, batch_size: 5);
        Assert.Equal(new long[] { 16, 9 }, x.shape);
        using var mf = dbm.mean_field(v, max_iterations: 1000, tolerance: 1e-13);
        using var model = DbmClassifier.Build(dbm, n_classes: 3);
        var children = model.named_children().ToDictionary(c => c.name, c => (nn.Module<Tensor, Tensor>)c.module);
        using var h1 = torch.sigmoid(children["fc1"].call(x));
        using var h2 = torch.sigmoid(children["fc2"].call(h1));
        TestUtil.AllClose(mf.means[0], h1, 1e-9, "fc1 → μ_1");
        TestUtil.AllClose(mf.means[1], h2, 1e-9, "fc2 → μ_2");
        using var logits = model.call(x);
        Assert.Equal(new long[] { 16, 3 }, logits.shape);
    }

    [Fact]
    public void FineTuner_TrainsTheDbmInitialisedClassifier()
    {
        // Three noisy 6-bit patterns labelled by the prototype they came from (flips make some rows ambiguous): after 30
        // epochs of the FineTuner from the DBM's weights the training error is below 20 % (chance: 67 %).
        using var g = new Generator(22);
        using var protos = torch.tensor(new double[] { 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 0 }, 3, 6);
        using var y = torch.randint(0, 3, [90], generator: g);
        using var clean = protos.index_select(0, y);
        using var flip = torch.rand(90, 6, dtype: ScalarType.Float64, generator: g).lt_(0.05).to_type(ScalarType.Float64);
        using var v = clean.add(flip).remainder_(2);
        using var dbm = DbmTestUtil.Random([6, 4, 3], 23, std: 0.3);
        using var x = DbmClassifier.Features(dbm, v);
        using var model = DbmClassifier.Build(dbm, n_classes: 3, generator: g);
        using var tuner = new FineTuner(model, new ClassifierTrainingOptions { Epochs = 30, BatchSize = 10, LearningRate = 0.5, Momentum = 0.5, LearningRateDecay = 1.0, ValidationCount = 0, Patience = 0, Seed = 24 });
        tuner.Fit(x, y);
        var metrics = tuner.Evaluate(x, y, n_classes: 3);
        Assert.True(metrics.ErrorRate < 0.2, $"training error {metrics.ErrorRate:P1}");
    }

    [Fact]
    public void Body_EmbedsInAUsersModel_AndTrainsWithoutTouchingTheDbm()
    {
        // The how-to's recipe: the classifier's children without `out`, then the user's head. At a converged fixed point
        // the body returns μ_2 (to 1e-9); one SGD step of the user's model moves fc1's copied weights, not the DBM's.
        using var dbm = DbmTestUtil.Random([6, 4, 3], 25);
        using var v = DbmTrainerTests.Patterns(26, rows: 12);
        using var x = DbmClassifier.Features(dbm, v, max_iterations: 1000, tolerance: 1e-13);
        using var mf = dbm.mean_field(v, max_iterations: 1000, tolerance: 1e-13);
        using var net = DbmClassifier.Build(dbm, n_classes: 10);
        using var body = nn.Sequential(net.named_children().Where(c => c.name != "out").Select(c => (c.name, (nn.Module<Tensor, Tensor>)c.module)).ToArray());
        using (torch.no_grad())
        using (var features = body.call(x))
            TestUtil.AllClose(mf.means[1], features, 1e-9, "body → μ_2");
        using var model = nn.Sequential(("body", body), ("head", nn.Linear(3, 2, dtype: ScalarType.Float64)));
        using var before = dbm.weight(1).clone();
        var fc1 = (Linear)body.named_children().First(c => c.name == "fc1").module;
        using var fc1Before = fc1.weight!.clone();
        using var opt = torch.optim.SGD(model.parameters(), 0.5);
        using var target = torch.zeros(12, dtype: ScalarType.Int64);
        using var loss = nn.functional.cross_entropy(model.call(x), target);
        loss.backward();
        opt.step();
        Assert.False(fc1.weight!.allclose(fc1Before), "fc1 did not train");
        Assert.True(dbm.weight(1).allclose(before, rtol: 0, atol: 0), "the DBM's weights changed");
    }
}

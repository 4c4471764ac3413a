using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

public sealed class LinearStackPretrainerTests(DbnMnistFixture mnist) : IClassFixture<DbnMnistFixture>
{
    [Fact]
    public void Pretrain_WritesTheTrainedRbmWeightsIntoTheUsersModel_WhichKeepsTraining()
    {
        var fc1 = nn.Linear(784, 48);
        var fc2 = nn.Linear(48, 24);
        var head = nn.Linear(24, 10);
        using var model = nn.Sequential(("fc1", fc1), ("act1", nn.Sigmoid()), ("fc2", fc2), ("act2", nn.Sigmoid()),
                                        ("drop", nn.Dropout(0.1)), ("head", head));
        using var optimizer = optim.Adam(model.parameters(), 0.01);   // built BEFORE pretraining: must stay valid
        using var x = mnist.Train.Images.narrow(0, 0, 1000);
        using var y = mnist.Train.Labels.narrow(0, 0, 1000);
        var opts = new DbnPretrainingOptions { Layer = new RbmTrainingOptions { Epochs = 2, BatchSize = 50, MetricsEvery = 0, Seed = 3 } };
        using (var g = new Generator(21)) LinearStackPretrainer.Pretrain([fc1, fc2], x, opts, generator: g);

        // The same DBN pretrained directly with the same seeds: the Linears hold exactly its weights.
        using (var g = new Generator(21))
        using (var dbn = boltzmann.DBN([784, 48, 24], generator: g))
        {
            new GreedyPretrainer(dbn, opts).Fit(x);
            Assert.True(DbnTestUtil.Same(dbn.layers[0].weight, fc1.weight!), "fc1.weight = W₁");
            Assert.True(DbnTestUtil.Same(dbn.layers[0].hidden_bias, fc1.bias!), "fc1.bias = c₁");
            Assert.True(DbnTestUtil.Same(dbn.layers[1].weight, fc2.weight!), "fc2.weight = W₂");
            Assert.True(DbnTestUtil.Same(dbn.layers[1].hidden_bias, fc2.bias!), "fc2.bias = c₂");
        }

        var losses = new List<double>();
        model.train();
        for (int step = 0; step < 15; step++)
        {
            using var scope = torch.NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(model.forward(x), y);
            loss.backward();
            optimizer.step();
            losses.Add(loss.ToDouble());
        }
        Assert.True(losses[^1] < 0.8 * losses[0], $"loss {losses[0]:F3} → {losses[^1]:F3}");
    }

    [Fact]
    public void Pretrain_LayersThatDoNotChain_Throw()
    {
        using var a = nn.Linear(784, 20);
        using var b = nn.Linear(21, 5);
        using var x = mnist.Train.Images.narrow(0, 0, 10);
        var ex = Assert.Throws<ArgumentException>(() => LinearStackPretrainer.Pretrain([a, b], x));
        Assert.Contains("expected in_features = 20", ex.Message);
        Assert.Contains("got 21", ex.Message);
    }

    [Fact]
    public void Pretrain_ALayerWithoutBias_IsRefusedBeforeTraining_AndCopyIntoRefusesIt()
    {
        // σ(W x) without the RBM's hidden bias c is not p(h | x): refused, not silently computed without c.
        using var a = nn.Linear(784, 20);
        using var b = nn.Linear(20, 5, hasBias: false);
        using var w0 = a.weight!.detach().clone();
        using var x = mnist.Train.Images.narrow(0, 0, 10);
        var ex = Assert.Throws<ArgumentException>(() => LinearStackPretrainer.Pretrain([a, b], x));
        Assert.Contains("layers[1]", ex.Message);
        Assert.Contains("bias", ex.Message);
        Assert.True(DbnTestUtil.Same(w0, a.weight!), "the first layer is untouched: nothing trained");
        using var rbm = boltzmann.RBM(20, 5);
        using var wb = b.weight!.detach().clone();
        Assert.Contains("bias", Assert.Throws<ArgumentException>(() => rbm.CopyInto(b)).Message);
        Assert.True(DbnTestUtil.Same(wb, b.weight!), "CopyInto changed nothing");
    }
}

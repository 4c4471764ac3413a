using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

/// <summary>
/// <see cref="DropoutConvention.NonInverted"/>: training the inverted-dropout network W = q W′ with the papers' η, λ and c
/// must follow, step for step, the papers' network W′ (dropout not inverted) trained with the same η, λ and c.
/// </summary>
public sealed class DropoutConventionTests
{
    private const double PIn = 0.2, PHidden = 0.5;
    private const int NIn = 12, NHidden = 9, NClasses = 3;

    /// <summary>The papers' dropout: y = x ⊙ r in training (r_i = [u_i &lt; q], drawn as <see cref="FastDropout"/> draws, so the masks are the same), y = q x at test time.</summary>
    private sealed class PaperDropout(double p) : nn.Module<Tensor, Tensor>("PaperDropout")
    {
        public override Tensor forward(Tensor x)
        {
            double q = 1 - p;
            if (!training) return x.mul(q);
            using var mask = torch.rand(x.shape, dtype: x.dtype, device: x.device).lt_(q).to(x.dtype);
            return x.mul(mask);
        }
    }

    private static Linear Layer(Sequential s, string name) => (Linear)s.named_children().Single(c => c.name == name).module;

    /// <summary>The papers' net (W′) and the inverted one built from it (W = q W′, same biases).</summary>
    private static (Sequential Paper, Sequential Inverted) Nets()
    {
        using var g = new Generator(11);
        var paper = nn.Sequential(("dropout_in", new PaperDropout(PIn)), ("fc1", nn.Linear(NIn, NHidden, dtype: ScalarType.Float64)),
            ("sigmoid1", nn.Sigmoid()), ("dropout1", new PaperDropout(PHidden)), ("out", nn.Linear(NHidden, NClasses, dtype: ScalarType.Float64)));
        var inverted = nn.Sequential(("dropout_in", new FastDropout(PIn)), ("fc1", nn.Linear(NIn, NHidden, dtype: ScalarType.Float64)),
            ("sigmoid1", nn.Sigmoid()), ("dropout1", new FastDropout(PHidden)), ("out", nn.Linear(NHidden, NClasses, dtype: ScalarType.Float64)));
        using (torch.no_grad())
        {
            foreach (var (name, q) in new[] { ("fc1", 1 - PIn), ("out", 1 - PHidden) })
            {
                var (a, b) = (Layer(paper, name), Layer(inverted, name));
                a.weight!.normal_(0, 1, g);
                a.bias!.normal_(0, 0.5, g);
                b.weight!.copy_(a.weight!).mul_(q);
                b.bias!.copy_(a.bias!);
            }
        }
        return (paper, inverted);
    }

    private static (Tensor X, Tensor Y) Data()
    {
        using var g = new Generator(12);
        var x = torch.rand(new long[] { 60, NIn }, generator: g, dtype: ScalarType.Float64);
        var y = torch.randint(0, NClasses, new long[] { 60 }, generator: g);
        return (x, y);
    }

    private static ClassifierTrainingOptions Options(DropoutConvention convention) => new()
    {
        Epochs = 3, BatchSize = 10, ValidationCount = 0, LearningRate = 0.7, LearningRateDecay = 0.9, WeightDecay = 0.01,
        InitialMomentum = 0.5, Momentum = 0.9, MomentumRampEpochs = 2, DampenMomentum = true, MaxNorm = 3.0,
        DropoutConvention = convention, Seed = 13,
    };

    private static void Fit(Sequential model, ClassifierTrainingOptions options, Tensor x, Tensor y)
    {
        torch.manual_seed(14);   // the dropout masks: the same draws for both nets
        using var tuner = new FineTuner(model, options);
        tuner.Fit(x, y);
    }

    /// <summary>Trains the papers' net with the hyperparameters as given, ours (from W = q W′) with them in <paramref name="ours"/>, then checks.</summary>
    private static void TrainBoth(DropoutConvention ours, Action<Sequential, Sequential, Tensor> check)
    {
        var (x, y) = Data();
        using var xs = x;
        using var ys = y;
        var (paper, inverted) = Nets();
        using var p = paper;
        using var i = inverted;
        // The max-norm bound binds on the papers' first layer (rows of 12 N(0, 1) weights, norm ≈ 3.5 > 3).
        using (var norms = Layer(paper, "fc1").weight!.detach().norm(1)) Assert.True(norms.max().ToDouble() > 3.0, "the max-norm has rows to clip");
        Fit(paper, Options(DropoutConvention.Inverted), x, y);   // the papers' parametrisation, hyperparameters as given
        Fit(inverted, Options(ours), x, y);
        check(paper, inverted, x);
    }

    [Fact]
    public void NonInverted_TrainsTheInvertedNet_StepForStep_AsThePapersNetWithTheSameHyperparameters()
        => TrainBoth(DropoutConvention.NonInverted, (paper, inverted, x) =>
        {
            foreach (var (name, q) in new[] { ("fc1", 1 - PIn), ("out", 1 - PHidden) })
            {
                using var want = Layer(paper, name).weight!.detach().mul(q);
                TestUtil.AllClose(want, Layer(inverted, name).weight!, 1e-9, $"{name}.weight = q W′");
                TestUtil.AllClose(Layer(paper, name).bias!, Layer(inverted, name).bias!, 1e-9, $"{name}.bias");
            }
            // And both nets compute the same test-time function.
            paper.eval();
            inverted.eval();
            using var a = paper.forward(x);
            using var b = inverted.forward(x);
            TestUtil.AllClose(a, b, 1e-9, "test-time logits");
        });

    [Fact]
    public void Inverted_WithThePapersHyperparameters_TrainsAnotherNet()
        // The control: the convention matters. The same η, λ, c taken over unchanged move the inverted net elsewhere.
        => TrainBoth(DropoutConvention.Inverted, (paper, inverted, _) =>
        {
            using var want = Layer(paper, "out").weight!.detach().mul(1 - PHidden);
            using var diff = Layer(inverted, "out").weight!.detach().sub(want).abs().max();
            Assert.True(diff.ToDouble() > 1e-3, $"out.weight differs from q W′ by at most {diff.ToDouble()}");
        });

    [Fact]
    public void NonInverted_FindsEachLinearsKeepProbability_AndRejectsWhatItCannotInterpret()
    {
        var (_, inverted) = Nets();
        using var i = inverted;
        var keep = FineTuner.DropoutKeepProbabilities(inverted);
        Assert.Equal([1 - PIn, 1 - PHidden], keep.Select(k => k.Keep));
        Assert.Same(Layer(inverted, "fc1").weight, keep[0].Weight);

        // A DbnClassifier: 0.8 on fc1, 0.5 on the later weights, nothing on the biases.
        using var dbn = boltzmann.DBN([20, 8, 6], generator: new Generator(3));
        using var clf = DbnClassifier.Build(dbn, 4, input_dropout: 0.2, hidden_dropout: 0.5);
        Assert.Equal([0.8, 0.5, 0.5], FineTuner.DropoutKeepProbabilities(clf).Select(k => k.Keep));
        using var tuner = new FineTuner(clf, new ClassifierTrainingOptions { LearningRate = 2, WeightDecay = 0.1, DropoutConvention = DropoutConvention.NonInverted });
        var groups = tuner.Optimizer.ParamGroups.OfType<SGD.ParamGroup>().Select(g => (g.LearningRate, Count: g.Parameters.Count())).ToList();
        Assert.Equal([(2.0, 3), (2 * 0.64, 1), (2 * 0.25, 2)], groups.Select(g => (Math.Round(g.LearningRate, 12), g.Count)));
        // Without dropout the convention changes nothing: one group.
        using var plain = DbnClassifier.Build(dbn, 4);
        using (var t = new FineTuner(plain, new ClassifierTrainingOptions { DropoutConvention = DropoutConvention.NonInverted }))
            Assert.Single(t.Optimizer.ParamGroups);

        var e = Assert.Throws<ArgumentException>(() => FineTuner.DropoutKeepProbabilities(
            nn.Sequential(("d", new FastDropout(0.5)), ("s", nn.Sigmoid()), ("fc", nn.Linear(3, 2)))));
        Assert.Contains("'d' is followed by Sigmoid 's'", e.Message);
        using var model = new Wrapper();
        e = Assert.Throws<ArgumentException>(() => new FineTuner(model, new ClassifierTrainingOptions { DropoutConvention = DropoutConvention.NonInverted }));
        Assert.Contains("needs a Sequential", e.Message);
        using var adam = optim.Adam(clf.parameters());
        e = Assert.Throws<ArgumentException>(() => new FineTuner(clf, new ClassifierTrainingOptions { DropoutConvention = DropoutConvention.NonInverted }, adam));
        Assert.Contains("Adam was passed", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClassifierTrainingOptions { DropoutConvention = (DropoutConvention)7 }.Validate());
    }

    private sealed class Wrapper : nn.Module<Tensor, Tensor>
    {
        private readonly Linear fc = nn.Linear(3, 2);
        public Wrapper() : base("Wrapper") => RegisterComponents();
        public override Tensor forward(Tensor x) => fc.forward(x);
    }
}

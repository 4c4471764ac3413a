using TorchBoltzmann.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

public sealed class MixedPrecisionTests
{
    private static Sequential Net(ulong seed, double dropout = 0.1)
    {
        torch.manual_seed((long)seed);
        return nn.Sequential(("fc1", nn.Linear(20, 32)), ("s1", nn.Sigmoid()), ("drop", nn.Dropout(dropout)), ("out", nn.Linear(32, 3)));
    }

    /// <summary><see cref="Net"/>'s layers, drawn in the same order from the same seed, with fc1 and s1 inside an "encoder" Sequential.</summary>
    private static Sequential NestedNet(ulong seed, double dropout = 0.1)
    {
        torch.manual_seed((long)seed);
        var fc1 = nn.Linear(20, 32);
        var s1 = nn.Sigmoid();
        var drop = nn.Dropout(dropout);
        var output = nn.Linear(32, 3);
        return nn.Sequential(("encoder", nn.Sequential(("fc1", fc1), ("s1", s1))), ("drop", drop), ("out", output));
    }

    /// <summary>Three well-separated Gaussian classes in 20 dimensions.</summary>
    private static (Tensor x, Tensor y) Blobs(int n, ulong seed)
    {
        using var g = new Generator(seed);
        var y = torch.randint(0, 3, n, generator: g);
        using var centres = torch.randn(3, 20, generator: g).mul_(2);
        using var noise = torch.randn(n, 20, generator: g);
        var x = centres.index_select(0, y).add_(noise);
        return (x, y);
    }

    [Fact]
    public void Forward_InBFloat16_IsTheModelsForward_ToThatPrecision()
    {
        const ScalarType dtype = ScalarType.BFloat16;
        const double tolerance = 1.0 / 64;
        using var model = Net(1);
        model.eval();
        using var g = new Generator(2);
        using var x = torch.randn(64, 20, generator: g);
        using var _ = torch.no_grad();
        using var exact = model.forward(x);
        using var mixed = MixedPrecision.Forward(model, dtype)(x);
        Assert.Equal(ScalarType.Float32, mixed.dtype);
        using var err = (mixed - exact).abs().max();
        using var scale = exact.abs().max();
        // Rounding x, W and b to bfloat16's 8 significant bits; the sums accumulate in float32.
        Assert.InRange(err.ToDouble(), 1e-7, tolerance * 2 * scale.ToDouble());   // > 0: the products really ran in the lower precision
    }

    [Theory]
    [InlineData(FineTuningOptimizer.Sgd)]
    [InlineData(FineTuningOptimizer.ConjugateGradient)]   // its line searches evaluate the loss through the bfloat16 forward too
    public void FineTuning_WithBFloat16Products_Learns_LeavingNoTensorAlive(FineTuningOptimizer optimizer)
    {
        var (x, y) = Blobs(600, 3);
        using (x) using (y)
        {
            Tensor Fitted(ScalarType? compute, out double accuracy)
            {
                using var model = Net(4, dropout: optimizer == FineTuningOptimizer.Sgd ? 0.1 : 0);   // CG needs a deterministic loss
                var options = new ClassifierTrainingOptions
                {
                    Optimizer = optimizer, Epochs = 8, BatchSize = optimizer == FineTuningOptimizer.Sgd ? 50 : 200,
                    LearningRate = 0.5, ValidationCount = 0, ComputeDtype = compute,
                };
                // Every tensor the bfloat16 passes make (casts included) dies in the batch's dispose scope.
                long live = TestUtil.LiveTensorsAfter(() => { using var tuner = new FineTuner(model, options); tuner.Fit(x, y); });
                Assert.Equal(0, live);
                model.eval();
                using var _ = torch.no_grad();
                using var predicted = model.forward(x).argmax(1);
                accuracy = predicted.eq(y).to_type(ScalarType.Float64).mean().ToDouble();
                return model.get_parameter("fc1.weight")!.detach().clone();
            }
            using var w32 = Fitted(null, out double a32);
            using var w16 = Fitted(ScalarType.BFloat16, out double a16);
            Assert.True(a32 >= 0.95, $"{optimizer}: float32 accuracy {a32:P1}");
            Assert.True(a16 >= 0.95, $"{optimizer}: bfloat16-product accuracy {a16:P1}");
            Assert.False(w16.allclose(w32, rtol: 0, atol: 1e-6), "the bfloat16 run's weights equal the float32 run's: its products did not run in bfloat16");
        }
    }

    [Fact]
    public void FineTuning_WithBFloat16Products_TrainsANestedSequential_ExactlyAsItsFlatEquivalent()
    {
        // A pretrained encoder inside a larger model (encoder → dropout → head): the same layers, the same weights, the
        // same seed; the nested model's bfloat16 run must end with the flat one's weights bit for bit.
        var (x, y) = Blobs(300, 7);
        using (x) using (y)
        {
            Tensor Fitted(bool nestIt)
            {
                using var model = nestIt ? NestedNet(8) : Net(8);
                torch.manual_seed(9);   // the dropout masks
                var options = new ClassifierTrainingOptions
                {
                    Epochs = 3, BatchSize = 50, LearningRate = 0.5, ValidationCount = 0, ComputeDtype = ScalarType.BFloat16,
                };
                using (var tuner = new FineTuner(model, options)) tuner.Fit(x, y);
                return model.get_parameter(nestIt ? "encoder.fc1.weight" : "fc1.weight")!.detach().clone();
            }
            using var flatWeights = Fitted(false);
            using var nestedWeights = Fitted(true);
            Assert.True(DbnTestUtil.Same(nestedWeights, flatWeights), "the nested model trained differently from its flat equivalent");
            using var initial = Net(8);
            Assert.False(DbnTestUtil.Same(flatWeights, initial.get_parameter("fc1.weight")!), "the weights did not train");
        }
    }

    [Fact]
    public void ComputeDtype_IsRefused_ForModulesItCannotCast_NamingThem()
    {
        var options = new ClassifierTrainingOptions { ComputeDtype = ScalarType.BFloat16 };
        using var withNorm = nn.Sequential(("fc", nn.Linear(4, 4)), ("norm", nn.BatchNorm1d(4)), ("out", nn.Linear(4, 2)));
        var e = Assert.Throws<NotSupportedException>(() => new FineTuner(withNorm, options));
        Assert.Contains("'norm' (BatchNorm1d)", e.Message);
        using var bare = nn.Linear(4, 2);
        e = Assert.Throws<NotSupportedException>(() => new FineTuner(bare, options));
        Assert.Contains("needs a Sequential", e.Message);
        // Inside a nested Sequential the module is named by its path.
        using var nested = nn.Sequential(("block", nn.Sequential(("fc", nn.Linear(4, 4)), ("norm", nn.BatchNorm1d(4)))), ("out", nn.Linear(4, 2)));
        e = Assert.Throws<NotSupportedException>(() => new FineTuner(nested, options));
        Assert.Contains("'block.norm' (BatchNorm1d)", e.Message);
        // The model's own dtype needs no casting: any model is accepted; another full-precision dtype is not.
        using var tuner = new FineTuner(bare, options with { ComputeDtype = ScalarType.Float32 });
        var a = Assert.Throws<ArgumentException>(() => new FineTuner(bare, options with { ComputeDtype = ScalarType.Float64 }));
        Assert.Contains("expected BFloat16 or the model's own dtype (Float32)", a.Message);
    }

    [Fact]
    public void ComputeDtype_IsBFloat16OrFullPrecision_Float16Refused_WithItsReason()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new ClassifierTrainingOptions { ComputeDtype = ScalarType.Int32 }.Validate());
        Assert.Equal("ComputeDtype", e.ParamName);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => new ClassifierTrainingOptions { ComputeDtype = ScalarType.Float16 }.Validate());
        Assert.Contains("underflow", e.Message);
    }

    [Fact]
    public void CheckpointIdentity_AnOptionAddedSince_MatchesItsNullDefault_ButNotAValue()
    {
        var old = new Dictionary<string, string> { ["LearningRate"] = "0.1" };   // written before ComputeDtype existed
        Assert.Empty(FineTuningCheckpoint.Differences(old, new Dictionary<string, string> { ["LearningRate"] = "0.1", ["ComputeDtype"] = "null" }, absentMatchesNull: true));
        var differ = FineTuningCheckpoint.Differences(old, new Dictionary<string, string> { ["LearningRate"] = "0.1", ["ComputeDtype"] = "BFloat16" }, absentMatchesNull: true);
        Assert.Equal("ComputeDtype = (absent) in the checkpoint, BFloat16 now", Assert.Single(differ));
    }

    [Fact]
    public void CheckpointIdentity_TheNullDefaultRule_IsForOptionsOnly()
    {
        var old = new Dictionary<string, string> { ["LearningRate"] = "0.1" };
        var now = new Dictionary<string, string> { ["LearningRate"] = "0.1", ["ComputeDtype"] = "null" };
        Assert.Empty(FineTuningCheckpoint.Differences(old, now, absentMatchesNull: true));
        Assert.Single(FineTuningCheckpoint.Differences(old, now));                           // a caller's tag: every key counts
    }
}

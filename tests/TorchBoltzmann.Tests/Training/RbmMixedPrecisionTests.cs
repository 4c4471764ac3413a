using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

/// <summary>
/// RBM training with bfloat16 products (<see cref="RbmTrainingOptions.ComputeDtype"/>, <see cref="Modules.RBM.compute_dtype"/>):
/// the products are the model's to bfloat16's precision, the statistics are rounded once, and training learns as in float32.
/// </summary>
public sealed class RbmMixedPrecisionTests
{
    /// <summary>bfloat16 keeps 8 significant bits: a rounded value is within 2⁻⁹ of the value, relatively.</summary>
    private const double Unit = 1.0 / 512;

    /// <summary>Four prototypes of <paramref name="pixels"/> pixels, each row one of them with 5 % of its pixels flipped (float32).</summary>
    private static Tensor Patterns(int n, ulong seed, int pixels)
    {
        using var g = new Generator(seed);
        using var prototypes = torch.rand(4, pixels, generator: g).round_();
        using var which = torch.randint(0, 4, n, generator: g);
        using var rows = prototypes.index_select(0, which);
        using var flips = torch.rand(n, pixels, generator: g).lt_(0.05);
        return rows.logical_xor(flips).to(ScalarType.Float32);
    }

    [Fact]
    public void Nets_InBFloat16_AreTheModelsNets_ToThatPrecision()
    {
        using var rbm = TestUtil.RandomRbm(50, 30, seed: 3, dtype: ScalarType.Float32);
        using var g = new Generator(5);
        using var v = torch.rand(40, 50, generator: g).round_();
        using var h = torch.rand(40, 30, generator: g).round_();
        using var _ = torch.no_grad();
        using var exactH = rbm.hidden_net(v);
        using var exactV = rbm.visible_net(h);
        rbm.compute_dtype = ScalarType.BFloat16;
        using var mixedH = rbm.hidden_net(v);
        using var mixedV = rbm.visible_net(h);
        rbm.compute_dtype = null;
        Assert.Equal(ScalarType.Float32, mixedH.dtype);
        // Binary inputs are exact in bfloat16; each weight is rounded (≤ 2⁻⁹ relatively), the product is rounded once
        // more: |error| ≤ 2⁻⁹·(|v||W|ᵀ) + 2⁻⁹·|v Wᵀ| ≤ 2⁻⁸·(|v||W|ᵀ) per element, the bias added in float32.
        using var absW = rbm.weight.abs();
        using var boundH = v.matmul(absW.t()).mul_(2 * Unit).add_(1e-6);
        using var boundV = h.matmul(absW).mul_(2 * Unit).add_(1e-6);
        using var errH = (mixedH - exactH).abs();
        using var errV = (mixedV - exactV).abs();
        using var withinH = errH.le(boundH).all();
        using var withinV = errV.le(boundV).all();
        Assert.True(withinH.item<bool>(), "hidden net outside bfloat16's bound");
        Assert.True(withinV.item<bool>(), "visible net outside bfloat16's bound");
        Assert.True(errH.max().ToDouble() > 0, "the hidden net's product did not run in bfloat16");
    }

    [Fact]
    public void CdGradients_InBFloat16_AreTheFloat32Gradients_ToThatPrecision()
    {
        using var rbm = TestUtil.RandomRbm(50, 30, seed: 7, dtype: ScalarType.Float32);
        using var g = new Generator(11);
        using var v0 = torch.rand(32, 50, generator: g).round_();
        using var vk = rbm.gibbs(v0, k: 1, generator: g, sample_last_visible: false);
        RbmTrainer.WriteCdGradients(rbm, v0, vk, weightDecay: 0.01);
        using var exactW = rbm.weight.grad!.clone();
        using var exactB = rbm.visible_bias.grad!.clone();
        using var exactC = rbm.hidden_bias.grad!.clone();
        RbmTrainer.WriteCdGradients(rbm, v0, vk, weightDecay: 0.01, computeDtype: ScalarType.BFloat16);
        using var _ = torch.no_grad();
        // ∂L/∂W = (phkᵀvk − ph0ᵀv0)/B + λW: each factor rounded to bfloat16 (≤ 2⁻⁹ each, so ≤ 2⁻⁸ per term) and the
        // difference rounded once (≤ 2⁻⁹ of |difference| ≤ the sum of magnitudes): ≤ 2⁻⁷·(|phk|ᵀ|vk| + |ph0|ᵀ|v0|)/B.
        using var ph0 = rbm.prob_h(v0);
        using var phk = rbm.prob_h(vk);
        using var bound = ph0.t().matmul(v0).add_(phk.t().matmul(vk.abs())).mul_(4 * Unit / 32).add_(1e-6);
        using var err = (rbm.weight.grad! - exactW).abs();
        using var within = err.le(bound).all();
        Assert.True(within.item<bool>(), $"max error {err.max().ToDouble():G3} outside bfloat16's bound");
        Assert.True(err.max().ToDouble() > 0, "the statistics' product did not run in bfloat16");
        // The bias gradients are means in float32, as without mixed precision.
        TestUtil.AllClose(exactB, rbm.visible_bias.grad!, 1e-6, "b");
        TestUtil.AllClose(exactC, rbm.hidden_bias.grad!, 1e-6, "c");
    }

    [Theory]
    [InlineData(GradientMode.Direct, false)]
    [InlineData(GradientMode.Direct, true)]
    [InlineData(GradientMode.Autograd, false)]
    public void Training_WithBFloat16Products_LearnsAsFloat32Does_AndLeavesTheModelsProducts(GradientMode mode, bool persistent)
    {
        using var data = Patterns(400, 13, pixels: 16);
        double Train(ScalarType? computeDtype, out double before)
        {
            using var g = new Generator(17);
            using var rbm = boltzmann.RBM(16, 8, generator: g);
            before = ExactEnumeration.log_likelihood(rbm, data);
            using var trainer = new RbmTrainer(rbm, new RbmTrainingOptions
            {
                Epochs = 20, BatchSize = 20, LearningRate = 0.05, FinalMomentum = 0.5, Gradient = mode, Persistent = persistent, MetricsEvery = 0, ComputeDtype = computeDtype,
            }, generator: g);
            trainer.Fit(data);
            Assert.Null(rbm.compute_dtype);   // set for the training passes only
            return ExactEnumeration.log_likelihood(rbm, data);
        }
        double exact = Train(null, out double start);
        double mixed = Train(ScalarType.BFloat16, out _);
        // Both learn the prototypes (the exact average log-likelihood rises by more than 3 nats from the untrained model's
        // ≈ −11.1 = 16·log ½), and bfloat16's rounding, far below the mini-batch noise, leaves the learnt model within
        // 0.3 nats of float32's (seeds fixed; the four prototypes with 5 % flips are worth about −6.4 nats per row).
        Assert.True(exact > start + 3, $"float32: {exact:F3} nats against {start:F3} untrained");
        Assert.InRange(mixed, exact - 0.3, exact + 0.3);
    }

    [Fact]
    public void ComputeDtype_Float16_IsRefused_NamingTheOption()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new RbmTrainingOptions { ComputeDtype = ScalarType.Float16 }.Validate());
        Assert.Equal(nameof(RbmTrainingOptions.ComputeDtype), e.ParamName);
        using var rbm = boltzmann.RBM(4, 3);
        Assert.Throws<ArgumentOutOfRangeException>(() => rbm.compute_dtype = ScalarType.Float16);
    }
}

using TorchBoltzmann.Data;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

/// <summary>The sparsity target (Hinton's guide §11) and the centering trick (Melchior, Fischer &amp; Wiskott 2016) of <see cref="RbmTrainer"/>.</summary>
public class SparsityAndCenteringTests
{
    private static Tensor BarsAndStripes(int repeats)
    {
        using var bas = SyntheticData.BarsAndStripes(3);
        using var rep = bas.repeat(repeats, 1);
        return rep.to_type(ScalarType.Float64);
    }

    /// <summary>Mean p(h_j = 1 | v) over the data, per hidden unit.</summary>
    private static double[] MeanActivation(RBM rbm, Tensor data)
    {
        using var _ = torch.no_grad();
        using var ph = rbm.prob_h(data);
        using var m = ph.mean(new long[] { 0 });
        return TestUtil.ToArray(m);
    }

    [Fact]
    public void SparsityTarget_PullsEveryHiddenUnitsMeanActivationToTheTarget_PlainTrainingDoesNot()
    {
        using var data = BarsAndStripes(20);
        var options = new RbmTrainingOptions { Epochs = 20, BatchSize = 14, LearningRate = 0.1, MetricsEvery = 0, Seed = 7 };
        double[] Train(RbmTrainingOptions o)
        {
            using var g = new Generator(3);
            using var rbm = boltzmann.RBM(9, 16, dtype: ScalarType.Float64, generator: g);
            using var trainer = new RbmTrainer(rbm, o);
            trainer.Fit(data);
            return MeanActivation(rbm, data);
        }
        const double p = 0.05;
        var plain = Train(options);
        var sparse = Train(options with { SparsityTarget = p, SparsityCost = 2.0, SparsityDecay = 0.9 });
        // Without the penalty the units are on far more often than p (bars and stripes turn half the pixels on).
        Assert.True(plain.Average() > 0.2, $"plain training's mean activation {plain.Average():F3}");
        // With it every unit's mean activation on the data ends within 0.03 of p = 0.05, and their average within 0.015.
        Assert.All(sparse, a => Assert.True(Math.Abs(a - p) < 0.03, $"a unit's mean activation {a:F4}; all: {string.Join(", ", sparse.Select(x => x.ToString("F3")))}"));
        Assert.True(Math.Abs(sparse.Average() - p) < 0.015, $"average activation {sparse.Average():F4}");
    }

    /// <summary>F_c(v) = −log Σ_h e^{−E_c(v, h)} by enumerating h, differentiable in the centered parameters.</summary>
    private static Tensor CenteredFreeEnergy(Tensor v, Tensor w, Tensor bc, Tensor cc, Tensor mu, Tensor lambda)
    {
        using var scope = torch.NewDisposeScope();
        int nh = (int)w.shape[0];
        var hs = ExactEnumeration.all_binary_states(nh, ScalarType.Float64);
        long b = v.shape[0], k = hs.shape[0];
        var vv = v.repeat_interleave(k, dim: 0);
        var hh = hs.repeat(b, 1);
        var e = Centering.centered_energy(vv, hh, w, bc, cc, mu, lambda).reshape(b, k);
        return e.neg().logsumexp(1).neg().MoveToOuterDisposeScope();
    }

    [Fact]
    public void CenteredGradient_IsThePlainGradientTransformedAsThePaperStates_AndItsStepIsTheCenteredStep()
    {
        using var rbm = TestUtil.RandomRbm(5, 4, seed: 8, std: 0.9);
        using var g = new Generator(12);
        using var v0 = torch.rand(8, 5, ScalarType.Float64, generator: g).lt(0.5).to_type(ScalarType.Float64);
        using var vk = torch.rand(8, 5, ScalarType.Float64, generator: g).lt(0.4).to_type(ScalarType.Float64);
        using var mu = torch.rand(5, ScalarType.Float64, generator: g);
        using var lambda = torch.rand(4, ScalarType.Float64, generator: g);

        // Plain CD gradients G = ∂L/∂(W, b, c), L = mean F(v⁰) − mean F(vᵏ).
        RbmTrainer.WriteCdGradients(rbm, v0, vk);
        using var gw = rbm.weight.grad!.clone();
        using var gb = rbm.visible_bias.grad!.clone();
        using var gc = rbm.hidden_bias.grad!.clone();

        // Autograd of the same loss in the centered parametrisation (W, b_c, c_c), with h summed out by enumeration.
        var (bc0, cc0) = Centering.centered_biases(rbm, mu, lambda);
        using var w = rbm.weight.detach().clone().requires_grad_();
        using var bc = bc0.requires_grad_();
        using var cc = cc0.requires_grad_();
        using (var loss = CenteredFreeEnergy(v0, w, bc, cc, mu, lambda).mean() - CenteredFreeEnergy(vk, w, bc, cc, mu, lambda).mean())
            loss.backward();

        // Melchior et al.: ∇W_c = ∇W − μ∇cᵀ − ∇bλᵀ (visible × hidden); in this layout G_W − λG_bᵀ − G_cμᵀ. Bias gradients unchanged.
        using var expectedW = gw - torch.outer(lambda, gb) - torch.outer(gc, mu);
        TestUtil.AllClose(expectedW, w.grad!, 1e-10, "∂L/∂W in centered coordinates");
        TestUtil.AllClose(gb, bc.grad!, 1e-10, "∂L/∂b_c");
        TestUtil.AllClose(gc, cc.grad!, 1e-10, "∂L/∂c_c");
        // The relation is not trivial: the centered weight gradient differs from the plain one here.
        using (var d = (expectedW - gw).abs().max()) Assert.True(d.ToDouble() > 1e-3);

        // center_gradients writes the centered step in plain parameters: θ − ηG' equals the centered step
        // θ_c − η∂L/∂θ_c mapped back through b = b_c − Wᵀλ, c = c_c − Wμ.
        using var gw2 = gw.clone();
        using var gb2 = gb.clone();
        using var gc2 = gc.clone();
        Centering.center_gradients(gw2, gb2, gc2, mu, lambda);
        const double eta = 0.3;
        using (torch.no_grad())
        {
            using var wNew = w - eta * w.grad!;
            using var bNew = (bc - eta * bc.grad!) - wNew.t().mv(lambda);
            using var cNew = (cc - eta * cc.grad!) - wNew.mv(mu);
            using var wPlain = rbm.weight - eta * gw2;
            using var bPlain = rbm.visible_bias - eta * gb2;
            using var cPlain = rbm.hidden_bias - eta * gc2;
            TestUtil.AllClose(wNew, wPlain, 1e-12, "W after the step");
            TestUtil.AllClose(bNew, bPlain, 1e-12, "b after the step");
            TestUtil.AllClose(cNew, cPlain, 1e-12, "c after the step");
        }
        Assert.Throws<ArgumentException>(() => Centering.center_gradients(gw2, gc2, gb2, mu, lambda));
    }

    [Fact]
    public void CenteredEnergy_DiffersFromThePlainEnergyByAConstant_SoTheDistributionIsTheSame()
    {
        using var rbm = TestUtil.RandomRbm(5, 4, seed: 21, std: 1.0);
        using var g = new Generator(4);
        using var mu = torch.rand(5, ScalarType.Float64, generator: g);
        using var lambda = torch.rand(4, ScalarType.Float64, generator: g);
        var (bc, cc) = Centering.centered_biases(rbm, mu, lambda);
        using (bc) using (cc)
        {
            var (v, h) = TestUtil.AllJointStates(5, 4);
            using (v) using (h)
            using (torch.no_grad())
            {
                using var plain = rbm.energy(v, h);
                using var centered = Centering.centered_energy(v, h, rbm.weight, bc, cc, mu, lambda);
                using var diff = centered - plain;
                using var spread = diff.max() - diff.min();
                Assert.True(spread.ToDouble() < 1e-10, $"E_c − E varies by {spread.ToDouble():G3} over the 512 states");
                // Other biases with the same offsets give another distribution (the check can fail).
                using var other = Centering.centered_energy(v, h, rbm.weight, rbm.visible_bias, rbm.hidden_bias, mu, lambda);
                using var d2 = other - plain;
                using var s2 = d2.max() - d2.min();
                Assert.True(s2.ToDouble() > 0.1);
            }
        }
    }

    [Fact]
    public void Fit_WithCentering_RaisesExactLogLikelihood()
    {
        using var data = BarsAndStripes(20);
        using var g = new Generator(3);
        using var rbm = boltzmann.RBM(9, 16, dtype: ScalarType.Float64, generator: g);
        double before = ExactEnumeration.log_likelihood(rbm, data);
        using var trainer = new RbmTrainer(rbm, new RbmTrainingOptions
        {
            Epochs = 20, BatchSize = 14, LearningRate = 0.1, K = 1, MetricsEvery = 0, Seed = 7, Centering = true,
        });
        Assert.False(trainer.FoldsMomentum);   // the transform needs the bare gradient: momentum runs in the optimizer
        trainer.Fit(data);
        double after = ExactEnumeration.log_likelihood(rbm, data);
        // Uniform −6.24 nats, optimum −2.64: at least 1.5 nats gained in 20 epochs.
        Assert.True(after > before + 1.5, $"log-likelihood before {before:F3}, after {after:F3}");
        Assert.Throws<ArgumentOutOfRangeException>(() => new RbmTrainer(rbm, new RbmTrainingOptions { SparsityTarget = 1.5 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RbmTrainer(rbm, new RbmTrainingOptions { CenteringRate = 0 }));
    }
}

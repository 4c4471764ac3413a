using TorchBoltzmann.Evaluation;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Training;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Units;

public class LearnedGaussianUnitsTests
{
    /// <summary>1 visible unit with σ² = e^{0.7} ≈ 2.01, 2 hidden units, float64.</summary>
    private static RBM Tiny()
    {
        var rbm = boltzmann.RBM(1, 2, visible: new LearnedGaussianUnits(), dtype: ScalarType.Float64);
        using (torch.no_grad())
        {
            rbm.weight.copy_(torch.tensor(new[] { 1.2, -0.8 }, 2, 1, ScalarType.Float64));
            rbm.visible_bias.fill_(0.3);
            rbm.hidden_bias.copy_(torch.tensor(new[] { -0.5, 0.4 }, ScalarType.Float64));
            rbm.visible_log_variance!.fill_(0.7);
        }
        return rbm;
    }

    /// <summary>A grid on [−30, 30] with step 10⁻³ (the densities are negligible outside) for the trapezoid rule.</summary>
    private static Tensor Grid() => torch.linspace(-30, 30, 60001, dtype: ScalarType.Float64).unsqueeze(1);

    private static double Trapezoid(Tensor f)
    {
        using var inner = f.sum();
        double ends = f[0].ToDouble() + f[-1].ToDouble();
        return (inner.ToDouble() - ends / 2) * 1e-3;
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(0.5)]
    public void LogPartition_MatchesNumericalIntegrationOfTheFreeEnergy(double beta)
    {
        // Z_β = ∫ e^{−F_β(v)} dv numerically, against ExactEnumeration's sum over h of the closed-form visible integral.
        using var rbm = Tiny();
        using var v = Grid();
        using var _ = torch.no_grad();
        using var f = rbm.free_energy(v, beta);
        using var density = f.neg().exp();
        double numeric = Math.Log(Trapezoid(density));
        Assert.Equal(numeric, ExactEnumeration.log_partition(rbm, beta), 8);
    }

    [Fact]
    public void FreeEnergyAndConditionals_MatchTheJointEnergy()
    {
        using var rbm = Tiny();
        using var _ = torch.no_grad();
        using var v = torch.tensor(new[] { -2.0, 0.1, 1.7, 4.0 }, 4, 1, ScalarType.Float64);
        using var hs = ExactEnumeration.all_binary_states(2, ScalarType.Float64);      // 4 hidden states
        using var vv = v.repeat_interleave(4, dim: 0);
        using var hh = hs.repeat(4, 1);
        using var e = rbm.energy(vv, hh).reshape(4, 4);                                // E(v, h), (v, h)
        // −F(v) = log Σ_h e^{−E(v,h)}
        using var lse = e.neg().logsumexp(1);
        using var f = rbm.free_energy(v);
        TestUtil.AllClose(lse.neg(), f, 1e-12, "F(v) against the sum over h");
        // p(h_j = 1 | v) = σ(c_j + W_j v/σ²) against the normalised joint
        using var post = e.neg().softmax(1);                                            // p(h | v), (4, 4)
        using var marg = post.matmul(hs);
        using var ph = rbm.prob_h(v);
        TestUtil.AllClose(marg, ph, 1e-12, "p(h | v)");
        // p(v | h): numerically, the density e^{−E(v,h)} over v has mean b + Wᵀh and variance σ²
        using var grid = Grid();
        using var h = torch.tensor(new[] { 1.0, 0.0 }, 1, 2, ScalarType.Float64);
        using var hGrid = h.expand(grid.shape[0], -1);
        using var dens = rbm.energy(grid, hGrid).neg().exp();
        double z = Trapezoid(dens);
        double mean = Trapezoid(dens * grid.squeeze(1)) / z;
        double second = Trapezoid(dens * grid.squeeze(1).square()) / z;
        using var pv = rbm.prob_v(h);
        Assert.Equal(mean, pv.item<double>(), 8);
        Assert.Equal(Math.Exp(0.7), second - mean * mean, 7);
        // and the sampler draws from it: 40 000 draws, standard errors 0.007 (mean) and 0.015 (variance)
        using var g = new Generator(3);
        using var hMany = h.expand(40000, -1).contiguous();
        var (p, s) = rbm.sample_v(hMany, generator: g);
        using (p) using (s)
        {
            Assert.True(Math.Abs(s.mean().ToDouble() - mean) < 0.04, $"sample mean {s.mean().ToDouble():F4}, expected {mean:F4}");
            Assert.True(Math.Abs(s.var().ToDouble() - Math.Exp(0.7)) < 0.08, $"sample variance {s.var().ToDouble():F4}, expected {Math.Exp(0.7):F4}");
        }
    }

    [Fact]
    public void FreeEnergyGradient_IsChoEtAlsFormula_AsAutogradComputesIt()
    {
        using var g = new Generator(4);
        using var rbm = boltzmann.RBM(3, 4, visible: new LearnedGaussianUnits(), dtype: ScalarType.Float64, generator: g);
        using (torch.no_grad())
        {
            rbm.weight.normal_(0, 0.7, g);
            rbm.visible_bias.normal_(0, 0.5, g);
            rbm.hidden_bias.normal_(0, 0.5, g);
            rbm.visible_log_variance!.normal_(0, 0.5, g);
        }
        using var v = torch.randn(5, 3, ScalarType.Float64, generator: g);
        using (var f = rbm.free_energy(v).sum()) f.backward();
        using var _ = torch.no_grad();
        using var s2 = rbm.visible_log_variance!.exp();
        using var p = rbm.prob_h(v);                                   // (5, 4)
        using var d = v - rbm.visible_bias;
        using var scaled = v / s2;
        // Σ over the batch of: ∂F/∂b = −(v − b)/σ², ∂F/∂W = −p (v/σ²)ᵀ, ∂F/∂z = −(v − b)²/(2σ²) + v (Wᵀp)/σ²
        using var gb = (d / s2).neg().sum(new long[] { 0 });
        using var gw = p.t().matmul(scaled).neg();
        using var gz = ((d.square() / s2).mul(-0.5) + scaled * p.matmul(rbm.weight)).sum(new long[] { 0 });
        TestUtil.AllClose(gb, rbm.visible_bias.grad!, 1e-12, "∂F/∂b");
        TestUtil.AllClose(gw, rbm.weight.grad!, 1e-12, "∂F/∂W");
        TestUtil.AllClose(gz, rbm.visible_log_variance.grad!, 1e-12, "∂F/∂z");
    }

    [Fact]
    public void Training_LearnsTheDataVariance_ThroughAutograd_AndCheckpointsKeepIt()
    {
        // Data with standard deviation 0.4 per unit: a learned variance must fall well below its start σ² = 1.
        using var g = new Generator(6);
        using var data = torch.randn(400, 2, ScalarType.Float64, generator: g).mul_(0.4);
        using var rbm = boltzmann.RBM(2, 4, visible: new LearnedGaussianUnits(), dtype: ScalarType.Float64, generator: g);
        using var trainer = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 15, BatchSize = 20, LearningRate = 0.01, MetricsEvery = 0 });
        Assert.False(trainer.FoldsMomentum);   // the autograd path: the bias term is quadratic
        trainer.Fit(data);
        using var s2 = rbm.visible_log_variance!.exp();
        Assert.All(TestUtil.ToArray(s2), x => Assert.True(x < 0.5, $"learned σ² {x:F3}"));

        using var dir = new TempDirectory();
        var path = dir.File("g.pt");
        Checkpoint.Save(rbm, path);
        using var loaded = (RBM)Checkpoint.Load(path);
        Assert.IsType<LearnedGaussianUnits>(loaded.visible_units);
        TestUtil.AllClose(rbm.visible_log_variance!, loaded.visible_log_variance!, 0, "log-variance after a checkpoint round trip");
        using var v = torch.randn(3, 2, ScalarType.Float64, generator: g);
        using var f1 = rbm.free_energy(v);
        using var f2 = loaded.free_energy(v);
        TestUtil.AllClose(f1, f2, 1e-12, "free energy after loading");
    }
}

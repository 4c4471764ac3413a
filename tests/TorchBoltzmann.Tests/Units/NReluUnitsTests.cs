using TorchBoltzmann.Modules;
using TorchBoltzmann.Sampling;
using TorchBoltzmann.Training;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Units;

public class NReluUnitsTests
{
    private static readonly double[] Nets = [-3.0, -1.0, 0.0, 0.5, 2.0, 5.0];

    [Theory]
    [InlineData(1.0)]
    [InlineData(2.0)]
    public void ConditionalMean_MatchesTheAverageOfSamples(double temperature)
    {
        var units = new NReluUnits();
        using var net = torch.tensor(Nets, ScalarType.Float64);
        using var mean = units.mean(net, temperature);
        using var rows = mean.unsqueeze(0).expand(40000, -1).contiguous();
        using var g = new Generator(5);
        using var samples = units.sample_from_mean(rows, temperature, g);
        using var avg = samples.mean(new long[] { 0 });
        // 40 000 draws per unit; the standard deviation of a draw is at most T (variance T²σ ≤ T²): standard error
        // ≤ 0.005·T, tolerance 0.025·T.
        TestUtil.AllClose(mean, avg, 0.025 * temperature, $"E[h | η] at T = {temperature} against samples");
        using (var lo = samples.min()) Assert.True(lo.ToDouble() >= 0);
        // Far above 0 the rectification does not bite: the variance is T²σ(η/T) (Nair & Hinton's noise model).
        using var last = samples.select(1, 5);
        double var5 = last.var().ToDouble(), expected = temperature * temperature / (1 + Math.Exp(-5.0 / temperature));
        Assert.True(Math.Abs(var5 - expected) < 0.05 * expected + 0.02, $"variance {var5:F4}, expected {expected:F4}");
        // The mean is not max(0, η): at η = 0 the noise lifts it to φ(0)·√σ(0) ≈ 0.282 (T = 1).
        if (temperature == 1.0) Assert.Equal(Math.Sqrt(0.5) / Math.Sqrt(2 * Math.PI), TestUtil.ToArray(mean)[2], 12);
    }

    [Fact]
    public void NetFromMean_InvertsTheMean()
    {
        var units = new NReluUnits();
        using var net = torch.linspace(-2.5, 8, 50, dtype: ScalarType.Float64);
        using var mean = units.mean(net);
        using var back = NReluUnits.net_from_mean(mean);
        TestUtil.AllClose(net, back, 1e-6, "x recovered from E[h | x]");
    }

    [Fact]
    public void LogPartition_IsTheSteppedSigmoidUnits_WhoseMeanIsNearSoftplus()
    {
        // The stated free-energy approximation: the SSU's Σ softplus(β(η − i + 0.5)); its derivative is the SSU mean
        // Σ σ(β(η − i + 0.5)), which Nair & Hinton approximate by log(1 + e^η) (within 0.03 here, η ∈ [−3, 10]).
        var units = new NReluUnits();
        using var net = torch.linspace(-3, 10, 27, dtype: ScalarType.Float64).requires_grad_();
        using var bias = torch.zeros(27, ScalarType.Float64);
        using (var lp = units.log_partition(net, bias).sum()) lp.backward();
        using var softplus = nn.functional.softplus(net.detach());
        TestUtil.AllClose(softplus, net.grad!, 0.03, "SSU mean against softplus");
        using var offsets = torch.arange(1, NReluUnits.Copies + 1, dtype: ScalarType.Float64).sub(0.5);
        using var byHand = nn.functional.softplus(net.detach().unsqueeze(-1).sub(offsets).mul(0.5)).sum(-1);
        using var at = units.log_partition(net.detach(), bias, 0.5);
        TestUtil.AllClose(byHand, at, 1e-12, "log-partition at β = 0.5");
    }

    [Fact]
    public void RbmWithNReluHiddenUnits_TrainsWithDirectGradients_AndItsChainsStayNonNegative()
    {
        using var g = new Generator(2);
        using var rbm = boltzmann.RBM(9, 6, hidden: new NReluUnits(), dtype: ScalarType.Float64, generator: g);
        using var data = TorchBoltzmann.Data.SyntheticData.BarsAndStripes(3).to_type(ScalarType.Float64);
        using var trainer = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 5, BatchSize = 7, LearningRate = 0.05, MetricsEvery = 0 });
        Assert.True(trainer.FoldsMomentum);   // direct gradients: the bias term is linear
        trainer.Fit(data);
        using (var finite = rbm.weight.isfinite().all()) Assert.True(finite.ToBoolean());
        using var chains = new GibbsChains(rbm, g);
        chains.start(data);
        chains.run(3);
        using var h = chains.hidden_mean();
        using (var lo = h.min()) Assert.True(lo.ToDouble() >= 0);
        Assert.Throws<ArgumentException>(() => new NReluUnits().check_values(torch.tensor(new[] { -1.0 }), "hidden"));
    }
}

using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Modules;

public class RBMTests
{
    [Fact]
    public void Constructor_RegistersParameters_WithStableStateDictKeys()
    {
        using var rbm = boltzmann.RBM(6, 4);
        var keys = rbm.state_dict().Keys.OrderBy(k => k).ToArray();
        Assert.Equal(new[] { "hidden_bias", "visible_bias", "weight" }, keys);
        Assert.Equal(new long[] { 4, 6 }, rbm.weight.shape);
        Assert.Equal(3, rbm.parameters().Count());
        Assert.Equal("RBM(n_visible=6, n_hidden=4, visible=Bernoulli, hidden=Bernoulli)", rbm.ToString());
    }

    [Fact]
    public void ResetParameters_GivesSmallGaussianWeights_AndZeroBiases()
    {
        using var g = new Generator(1);
        using var rbm = boltzmann.RBM(400, 300, generator: g);
        var w = TestUtil.ToArray(rbm.weight);
        double mean = w.Average(), std = Math.Sqrt(w.Select(x => (x - mean) * (x - mean)).Average());
        Assert.InRange(std, 0.0098, 0.0102);   // 120k draws: the std's relative error is ~0.2 %
        Assert.InRange(mean, -0.0002, 0.0002);
        Assert.All(TestUtil.ToArray(rbm.visible_bias), b => Assert.Equal(0.0, b));
        Assert.All(TestUtil.ToArray(rbm.hidden_bias), b => Assert.Equal(0.0, b));
    }

    [Theory]
    [InlineData(6, 4)]
    [InlineData(10, 8)]
    public void FreeEnergy_EqualsMinusLogSumOverHidden_OfExpMinusEnergy(int nv, int nh)
    {
        using var rbm = TestUtil.RandomRbm(nv, nh, seed: 7);
        using var vs = ExactEnumeration.all_binary_states(nv, ScalarType.Float64);
        using var hs = ExactEnumeration.all_binary_states(nh, ScalarType.Float64);
        using var f = rbm.free_energy(vs);
        var fv = TestUtil.ToArray(f);
        for (int i = 0; i < vs.shape[0]; i += 37)
        {
            using var v = vs[i].unsqueeze(0).expand(hs.shape[0], nv);
            using var e = rbm.energy(v, hs);
            using var ne = e.neg();
            using var lse = ne.logsumexp(0);
            Assert.Equal(-lse.ToDouble(), fv[i], 10);
        }
    }

    [Theory]
    [InlineData(6, 4)]
    [InlineData(10, 8)]
    public void Conditionals_MatchEnumeration(int nv, int nh)
    {
        using var rbm = TestUtil.RandomRbm(nv, nh, seed: 11);
        using var hs = ExactEnumeration.all_binary_states(nh, ScalarType.Float64);
        using var vs = ExactEnumeration.all_binary_states(nv, ScalarType.Float64);
        using var g = new Generator(3);
        using var probeV = torch.rand(5, nv, dtype: ScalarType.Float64, generator: g).round_();
        using var probeH = torch.rand(5, nh, dtype: ScalarType.Float64, generator: g).round_();
        using var ph = rbm.prob_h(probeV);
        using var pv = rbm.prob_v(probeH);
        for (int r = 0; r < 5; r++)
        {
            // p(h | v) ∝ e^{−E(v,h)}: E[h_j | v] = Σ_h p(h|v) h_j
            using var v = probeV[r].unsqueeze(0).expand(hs.shape[0], nv);
            using var e = rbm.energy(v, hs);
            using var w = nn.functional.softmax(e.neg(), 0);
            using var expectedH = w.matmul(hs);
            TestUtil.AllClose(expectedH, ph[r], 1e-10, "p(h|v)");

            using var h = probeH[r].unsqueeze(0).expand(vs.shape[0], nh);
            using var e2 = rbm.energy(vs, h);
            using var w2 = nn.functional.softmax(e2.neg(), 0);
            using var expectedV = w2.matmul(vs);
            TestUtil.AllClose(expectedV, pv[r], 1e-10, "p(v|h)");
        }
    }

    [Theory]
    [InlineData(6, 4)]
    [InlineData(4, 6)]
    [InlineData(10, 8)]
    public void LogPartition_ByEnumeratingOneLayer_EqualsBruteForceOverBoth(int nv, int nh)
    {
        using var rbm = TestUtil.RandomRbm(nv, nh, seed: 5);
        Assert.Equal(TestUtil.BruteLogZ(rbm), ExactEnumeration.log_partition(rbm), 9);
    }

    [Fact]
    public void ExactMarginals_SumProbabilitiesToOne_AndMatchBruteForce()
    {
        using var rbm = TestUtil.RandomRbm(6, 4, seed: 9);
        using var p = ExactEnumeration.visible_distribution(rbm);
        Assert.Equal(1.0, p.sum().ToDouble(), 12);
        var (v, h) = TestUtil.AllJointStates(6, 4);
        using (v) using (h)
        {
            using var e = rbm.energy(v, h);
            using var w = nn.functional.softmax(e.neg(), 0);
            TestUtil.AllClose(w.matmul(v), ExactEnumeration.visible_marginals(rbm), 1e-10, "p(v_i=1)");
            TestUtil.AllClose(w.matmul(h), ExactEnumeration.hidden_marginals(rbm), 1e-10, "p(h_j=1)");
        }
    }

    [Fact]
    public void CdLossGradient_ByAutograd_EqualsAnalyticStatistics()
    {
        using var rbm = TestUtil.RandomRbm(10, 8, seed: 13);
        using var g = new Generator(17);
        using var v0 = torch.rand(32, 10, dtype: ScalarType.Float64, generator: g).round_();
        using var vk = rbm.gibbs(v0, k: 3, generator: g);
        var loss = rbm.cd_loss(v0, vk);
        loss.backward();

        // ∂L/∂W = −(⟨p(h|v) vᵀ⟩_data − ⟨p(h|v) vᵀ⟩_model)
        using var _ = torch.no_grad();
        using var ph0 = rbm.prob_h(v0);
        using var phk = rbm.prob_h(vk);
        using var dataStat = ph0.t().matmul(v0) / 32;
        using var modelStat = phk.t().matmul(vk) / 32;
        using var expectedW = modelStat - dataStat;
        TestUtil.AllClose(expectedW, rbm.weight.grad!, 1e-12, "dL/dW");
        TestUtil.AllClose(vk.mean(new long[] { 0 }) - v0.mean(new long[] { 0 }), rbm.visible_bias.grad!, 1e-12, "dL/db");
        TestUtil.AllClose(phk.mean(new long[] { 0 }) - ph0.mean(new long[] { 0 }), rbm.hidden_bias.grad!, 1e-12, "dL/dc");
        Assert.False(vk.requires_grad);
    }

    [Fact]
    public void DirectGradients_EqualAutogradGradients_IncludingWeightDecay()
    {
        using var rbm = TestUtil.RandomRbm(10, 8, seed: 19);
        using var g = new Generator(23);
        using var v0 = torch.rand(16, 10, dtype: ScalarType.Float64, generator: g).round_();
        using var vk = rbm.gibbs(v0, k: 2, generator: g, sample_last_visible: false);
        rbm.cd_loss(v0, vk).backward();
        using var autoW = rbm.weight.grad!.clone();
        using (torch.no_grad()) autoW.add_(rbm.weight, alpha: 0.01);
        using var autoB = rbm.visible_bias.grad!.clone();
        using var autoC = rbm.hidden_bias.grad!.clone();
        RbmTrainer.WriteCdGradients(rbm, v0, vk, weightDecay: 0.01);
        TestUtil.AllClose(autoW, rbm.weight.grad!, 1e-12, "W");
        TestUtil.AllClose(autoB, rbm.visible_bias.grad!, 1e-12, "b");
        TestUtil.AllClose(autoC, rbm.hidden_bias.grad!, 1e-12, "c");
    }

    [Fact]
    public void Temperature_Infinite_GivesHalf_AndZero_GivesThreshold()
    {
        using var rbm = TestUtil.RandomRbm(6, 4, seed: 29);
        using var v = ExactEnumeration.all_binary_states(6, ScalarType.Float64);
        using var hot = rbm.prob_h(v, temperature: 1e12);
        Assert.All(TestUtil.ToArray(hot), p => Assert.Equal(0.5, p, 9));
        using var net = rbm.hidden_net(v);
        using var cold = rbm.prob_h(v, temperature: 1e-12);
        var nets = TestUtil.ToArray(net);
        var colds = TestUtil.ToArray(cold);
        for (int i = 0; i < nets.Length; i++)
            Assert.Equal(nets[i] > 0 ? 1.0 : 0.0, colds[i]);
    }

    [Fact]
    public void Sampling_WithSameSeed_IsDeterministic_AndDiffersAcrossSeeds()
    {
        using var rbm = TestUtil.RandomRbm(10, 8, seed: 31, dtype: ScalarType.Float32);
        Tensor Run(ulong seed) { using var g = new Generator(seed); return rbm.generate(20, burn_in: 10, generator: g); }
        using var a = Run(5);
        using var b = Run(5);
        using var c = Run(6);
        Assert.True(torch.equal(a, b).all().item<bool>());
        Assert.False(torch.equal(a, c).all().item<bool>());
        Assert.Equal(new long[] { 20, 10 }, a.shape);
        Assert.All(TestUtil.ToArray(a), x => Assert.True(x == 0 || x == 1));
    }

    [Fact]
    public void Generate_WithChainsAndThinning_ReturnsRequestedCount_FromGivenStart()
    {
        using var rbm = TestUtil.RandomRbm(10, 8, seed: 37, dtype: ScalarType.Float32);
        using var g = new Generator(1);
        using var start = torch.zeros(2, 10);
        using var s = rbm.generate(7, burn_in: 5, thin: 3, chains: 2, start: start, generator: g, return_means: true);
        Assert.Equal(new long[] { 7, 10 }, s.shape);
        Assert.All(TestUtil.ToArray(s), x => Assert.InRange(x, 0.0, 1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => rbm.generate(3, chains: 4));
    }

    [Fact]
    public void Dtype_Float64_PropagatesToEveryOutput()
    {
        using var rbm = boltzmann.RBM(6, 4, dtype: ScalarType.Float64);
        using var v = torch.ones(3, 6, dtype: ScalarType.Float64);
        using var g = new Generator(1);
        Assert.Equal(ScalarType.Float64, rbm.forward(v).dtype);
        Assert.Equal(ScalarType.Float64, rbm.free_energy(v).dtype);
        Assert.Equal(ScalarType.Float64, rbm.gibbs(v, 2, generator: g).dtype);
        Assert.Equal(ScalarType.Float64, rbm.generate(2, burn_in: 2, generator: g).dtype);
        Assert.Equal(ScalarType.Float64, rbm.reconstruct(v).dtype);
    }

    [Fact]
    public void To_Float64_ReplacesParameters_AndKeepsThemRegistered()
    {
        using var rbm = boltzmann.RBM(6, 4);
        var before = TestUtil.ToArray(rbm.weight);
        rbm.to(ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, rbm.weight.dtype);
        Assert.Equal(ScalarType.Float64, rbm.dtype);
        Assert.All(rbm.parameters(), p => Assert.Equal(ScalarType.Float64, p.dtype));
        Assert.Equal(before, TestUtil.ToArray(rbm.weight).Select(x => (double)(float)x));
        using var v = torch.ones(2, 6, dtype: ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, rbm.forward(v).dtype);
    }

    [SkippableFact(DisplayName = "RBMTests.Cuda_ModuleAndSamplesLiveOnTheDevice (runs only where CUDA is available)")]
    public void Cuda_ModuleAndSamplesLiveOnTheDevice()
    {
        Skip.IfNot(torch.cuda.is_available(), "CUDA is not available on this machine (torch.cuda.is_available() is false)");
        using var rbm = boltzmann.RBM(20, 10, device: torch.CUDA);
        using var g = new Generator(1, torch.CUDA);
        using var v = torch.ones(4, 20, device: torch.CUDA);
        Assert.Equal(DeviceType.CUDA, rbm.forward(v).device_type);
        Assert.Equal(DeviceType.CUDA, rbm.gibbs(v, 2, generator: g).device_type);
        Assert.Equal(DeviceType.CUDA, rbm.generate(3, burn_in: 2, generator: g).device_type);
        using var cpu = boltzmann.RBM(20, 10);
        cpu.to(torch.CUDA);
        Assert.Equal(DeviceType.CUDA, cpu.weight.device_type);
    }

    [Fact]
    public void Forward_ComposesInSequential_WithLinearHead()
    {
        using var rbm = boltzmann.RBM(6, 4);
        using var seq = nn.Sequential(("rbm", rbm), ("head", nn.Linear(4, 2)));
        using var x = torch.rand(5, 6);
        using var y = seq.forward(x);
        Assert.Equal(new long[] { 5, 2 }, y.shape);
        Assert.Contains("rbm.weight", seq.state_dict().Keys);
        Assert.Equal(5, seq.parameters().Count());
    }

    [Theory]
    [InlineData(new long[] { 3, 7 }, "got 7 (shape (3, 7))")]
    [InlineData(new long[] { 2, 3, 6 }, "got rank 3")]
    public void Forward_WrongShape_NamesExpectedAndGot(long[] shape, string fragment)
    {
        using var rbm = boltzmann.RBM(6, 4);
        using var x = torch.zeros(shape);
        var e = Assert.Throws<ArgumentException>(() => rbm.forward(x));
        Assert.Contains(fragment, e.Message);
        Assert.Contains("(B, 6)", e.Message);
    }

    [Fact]
    public void Forward_NaN_OrOutOfRange_IsRejected_ForBernoulliUnits()
    {
        using var rbm = boltzmann.RBM(6, 4);
        using var nan = torch.zeros(2, 6);
        nan[1, 2] = torch.tensor(float.NaN);
        Assert.Contains("got NaN", Assert.Throws<ArgumentException>(() => rbm.forward(nan)).Message);
        using var big = torch.zeros(2, 6);
        big[0, 0] = torch.tensor(3f);
        var e = Assert.Throws<ArgumentException>(() => rbm.forward(big));
        Assert.Contains("expected values in [0, 1]", e.Message);
        Assert.Contains("[0, 3]", e.Message);
    }

    [Fact]
    public void InitVisibleBiasFromData_SetsTheLogitOfEachUnitsMean_AndNeedsABatch()
    {
        using var rbm = boltzmann.RBM(4, 3, dtype: ScalarType.Float64);
        using var data = torch.tensor(new double[,] { { 1, 0, 1, 1 }, { 1, 0, 0, 1 }, { 1, 0, 0, 0 }, { 0, 0, 1, 1 } });
        const double eps = 1e-3;
        rbm.init_visible_bias_from_data(data, eps);
        // p = (0.75, 0 → eps, 0.5, 0.75): b_i = log(p_i / (1 − p_i)).
        double[] p = [0.75, eps, 0.5, 0.75];
        using var expected = torch.tensor(p.Select(x => Math.Log(x / (1 - x))).ToArray());
        TestUtil.AllClose(expected, rbm.visible_bias, 1e-12, "b");
        using var set = rbm.visible_bias.detach().clone();
        using var one = torch.zeros(4, dtype: ScalarType.Float64);
        Assert.Contains("(N ≥ 1, 4), got (4)", Assert.Throws<ArgumentException>(() => rbm.init_visible_bias_from_data(one)).Message);
        using var none = torch.zeros(0, 4, dtype: ScalarType.Float64);
        Assert.Contains("got (0, 4)", Assert.Throws<ArgumentException>(() => rbm.init_visible_bias_from_data(none)).Message);
        TestUtil.AllClose(set, rbm.visible_bias, 0, "b unchanged by the refused calls");
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void Temperature_MustBeFiniteAndPositive(double t)
    {
        using var rbm = boltzmann.RBM(6, 4);
        using var v = torch.zeros(2, 6);
        using var h = torch.zeros(2, 4);
        Assert.Throws<ArgumentOutOfRangeException>(() => rbm.prob_h(v, t));
        Assert.Throws<ArgumentOutOfRangeException>(() => rbm.prob_v(h, t));
        Assert.Throws<ArgumentOutOfRangeException>(() => rbm.gibbs(v, 1, t));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => rbm.generate(2, burn_in: 1, temperature: t));
        Assert.Contains("expected a finite T > 0", e.Message);
    }
}

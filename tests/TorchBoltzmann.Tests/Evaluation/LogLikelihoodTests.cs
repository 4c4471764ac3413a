using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Evaluation;

public class LogLikelihoodTests
{
    [Fact]
    public void PartitionFunction_IsExact_WhenOneLayerIsSmall_AndByAisOtherwise()
    {
        // 30 visible × 12 hidden: the hidden layer (2¹² states) is summed exactly; the figure is ExactEnumeration's.
        using var small = TestUtil.RandomRbm(30, 12, 2);
        var z = LogLikelihood.partition_function(small);
        Assert.Equal(PartitionFunctionMethod.Exact, z.Method);
        Assert.Equal(ExactEnumeration.log_partition(small), z.LogZ, 12);
        Assert.Equal(z.LogZ, z.LogZLower);
        Assert.Equal(z.LogZ, z.LogZUpper);
        // With the threshold lowered to 10 units neither layer qualifies, so AIS runs (from the data's base rate), and
        // its interval holds the exact value (fixed seed).
        using var data = AnnealedImportanceSamplingTests.ModelSamples(small, 200, 3);
        using var g = new Generator(4);
        var ais = LogLikelihood.partition_function(small, data,
            new LikelihoodOptions { ExactMaxUnits = 10, Ais = new AisOptions { Runs = 50, Schedule = BetaSchedule.Scaled(500) } }, g);
        Assert.Equal(PartitionFunctionMethod.Ais, ais.Method);
        Assert.InRange(z.LogZ, ais.LogZLower, ais.LogZUpper);
        Assert.False(LogLikelihood.IsEnumerable(small, 10));
        Assert.True(LogLikelihood.IsEnumerable(small, 12));
    }

    [Fact]
    public void Rbm_WithExactLogZ_IsExactEnumerationsLogLikelihood_AndItsOwnConservativeSide()
    {
        using var rbm = TestUtil.RandomRbm(10, 8, 5, dtype: ScalarType.Float32);
        using var data = AnnealedImportanceSamplingTests.ModelSamples(rbm, 2500, 6);   // more than one batch of 1,000
        var z = LogLikelihood.partition_function(rbm);
        var ll = LogLikelihood.rbm(rbm, data, z);
        double exact = ExactEnumeration.log_likelihood(rbm, data);
        Assert.Equal(exact, ll.MeanLogLikelihood, 5);
        Assert.Equal(ll.MeanLogLikelihood, ll.Lower);
        Assert.Equal(ll.MeanLogLikelihood, ll.Upper);
        Assert.Equal(ll.MeanLogLikelihood, ll.Conservative);
        Assert.Equal(2500, ll.Count);
        Assert.Equal(LikelihoodKind.LogLikelihood, ll.Kind);
        // With an AIS log Z the interval is the log Z interval reflected: [mean(−F) − log(Ẑ + 3σ̂), mean(−F) − log(Ẑ − 3σ̂)].
        var fake = PartitionFunctionEstimate.FromLogWeights([0.0, 0.1, -0.1, 0.05], z.LogZ, 10);
        var interval = LogLikelihood.rbm(rbm, data, fake);
        Assert.Equal(exact + z.LogZ - fake.LogZ, interval.MeanLogLikelihood, 5);
        Assert.Equal(interval.MeanLogLikelihood + fake.LogZ - fake.LogZUpper, interval.Lower, 9);
        Assert.Equal(interval.MeanLogLikelihood + fake.LogZ - fake.LogZLower, interval.Upper, 9);
        Assert.Null(interval.Conservative);
    }

    /// <summary>log p(x | h) of each x under RBM l's visible conditional, Bernoulli: x·log σ(a) + (1 − x)·log σ(−a), a = b + Wᵀh; (X, H).</summary>
    private static Tensor LogPDown(RBM rbm, Tensor x, Tensor h)
    {
        using var a = rbm.visible_net(h);
        using var la = nn.functional.logsigmoid(a);
        using var na = a.neg();
        using var lna = nn.functional.logsigmoid(na);
        using var one = x.neg().add_(1);
        using var t1 = x.matmul(la.t());
        using var t2 = one.matmul(lna.t());
        return t1 + t2;
    }

    /// <summary>
    /// log p_top(h) over all states h of the top RBM's feature layer, by enumeration (labels summed out). log Z_top: brute
    /// force over all (v, h) without labels; with labels ExactEnumeration's, which sums the valid one-hot states only
    /// (checked against its own oracle in ExactEnumerationTests).
    /// </summary>
    private static Tensor LogPTop(DBN dbn, Tensor states)
    {
        double logZ = dbn.is_class_conditional ? ExactEnumeration.log_partition(dbn.top) : TestUtil.BruteLogZ(dbn.top);
        using var _ = torch.no_grad();
        if (!dbn.is_class_conditional)
        {
            using var f = dbn.top.free_energy(states);
            return f.neg().sub_(logZ);
        }
        var per = new List<Tensor>();
        for (int k = 0; k < dbn.n_classes; k++)
        {
            using var labels = torch.full(states.shape[0], k, ScalarType.Int64);
            using var y = DBN.one_hot(labels, dbn.n_classes, ScalarType.Float64);
            using var joined = torch.cat(new[] { states, y }, 1);
            using var f = dbn.top.free_energy(joined);
            per.Add(f.neg());
        }
        using var stacked = torch.stack(per, 1);
        foreach (var p in per) p.Dispose();
        using var lse = stacked.logsumexp(1);
        return lse.sub(logZ);
    }

    /// <summary>Exact log p(v) of each row by summing over every hidden layer of the directed part (oracle).</summary>
    private static Tensor ExactLogP(DBN dbn, Tensor v)
    {
        using var _ = torch.no_grad();
        int last = dbn.n_layers - 1;
        var top = ExactEnumeration.all_binary_states(dbn.layer_sizes[last], ScalarType.Float64);
        var logM = LogPTop(dbn, top);   // log m over the states of h^{L−1}
        var upper = top;
        for (int l = last - 1; l >= 0; l--)
        {
            var x = l == 0 ? v : ExactEnumeration.all_binary_states(dbn.layer_sizes[l], ScalarType.Float64);
            using var lp = LogPDown(dbn.layers[l], x, upper);   // (X, H)
            using var sum = lp + logM.unsqueeze(0);
            var next = sum.logsumexp(1);
            logM.Dispose();
            logM = next;
            if (!ReferenceEquals(upper, top)) upper.Dispose();
            upper = x;
        }
        top.Dispose();
        return logM;
    }

    private static DBN RandomDbn(int[] sizes, ulong seed, int n_classes = 0)
    {
        using var g = new Generator(seed);
        var dbn = boltzmann.DBN(sizes, n_classes: n_classes, dtype: ScalarType.Float64, generator: g);
        using (torch.no_grad())
            foreach (var p in dbn.parameters()) p.normal_(0, 1.0, g);
        return dbn;
    }

    [Theory]
    [InlineData(new[] { 6, 5, 4 }, 0)]
    [InlineData(new[] { 5, 4, 4, 3 }, 0)]
    [InlineData(new[] { 6, 5, 4 }, 3)]
    public void DbnLowerBound_IsBelowTheExactLogLikelihood_OnTinyEnumerableDbns(int[] sizes, int n_classes)
    {
        // W, b, c ~ N(0, 1); exact log p(v) by summing out every hidden layer (labels too). 64 rows × 400 samples of
        // h ~ q; the bound's Monte-Carlo standard error is reported with it. Rule: bound + 3 SE ≤ exact mean log p(v).
        using var dbn = RandomDbn(sizes, 9, n_classes);
        using var g = new Generator(10);
        using var bits = torch.rand(64, sizes[0], ScalarType.Float64, generator: g);
        using var v = bits.lt(0.5).to_type(ScalarType.Float64);
        var z = LogLikelihood.dbn_top_partition_function(dbn, v);
        Assert.Equal(PartitionFunctionMethod.Exact, z.Method);
        var bound = LogLikelihood.dbn_lower_bound(dbn, v, z, samples: 400, generator: g);
        using var exact = ExactLogP(dbn, v);
        using var m = exact.mean();
        double exactMean = m.ToDouble();
        Assert.Equal(LikelihoodKind.VariationalLowerBound, bound.Kind);
        Assert.True(bound.StandardError > 0 && bound.StandardError < 0.05, $"SE {bound.StandardError}");
        Assert.True(bound.MeanLogLikelihood + 3 * bound.StandardError <= exactMean,
            $"bound {bound.MeanLogLikelihood:F4} ± {bound.StandardError:F4} not below exact {exactMean:F4}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void DbnLowerBound_MatchesTheBoundSummedOverEveryHiddenState(bool untied)
    {
        // Two layers [6, 5, 4]: B(v) = Σ_{h¹} q(h¹|v) [log p(v|h¹) + log p_top(h¹) − log q(h¹|v)] enumerated over the 2⁵
        // states of h¹ (oracle); the sampled estimate (64 rows × 400 samples) lies within 4 standard errors of it.
        // Untied: the recognition weights R, r drawn anew from N(0, 3²), so q(h¹ | v) = σ(R v + r) differs from the
        // generative layer's σ(W v + c); the estimate must follow R (it lies more than 8 standard errors from the bound
        // that q = σ(W v + c) gives) and stay below the exact log-likelihood, which R does not change.
        using var dbn = RandomDbn([6, 5, 4], 11);
        using var g = new Generator(12);
        using var bits = torch.rand(64, 6, ScalarType.Float64, generator: g);
        using var v = bits.lt(0.5).to_type(ScalarType.Float64);
        double exactBefore = MeanOf(ExactLogP(dbn, v));
        double tiedBound = EnumeratedBound(dbn, v, dbn.layers[0].prob_h(v));
        if (untied)
        {
            dbn.untie();
            using var _ = torch.no_grad();
            foreach (var p in dbn.recognition![0].parameters()) p.normal_(0, 3.0, g);
        }
        var z = LogLikelihood.dbn_top_partition_function(dbn, v);
        var est = LogLikelihood.dbn_lower_bound(dbn, v, z, samples: 400, generator: g);
        double enumerated = untied ? EnumeratedBound(dbn, v, dbn.recognition![0].forward(v)) : tiedBound;
        Assert.True(Math.Abs(est.MeanLogLikelihood - enumerated) <= 4 * est.StandardError,
            $"sampled {est.MeanLogLikelihood:F4} ± {est.StandardError:F4}, enumerated {enumerated:F4}");
        double exact = MeanOf(ExactLogP(dbn, v));
        Assert.Equal(exactBefore, exact, 12);
        Assert.True(enumerated < exact, $"bound {enumerated:F4} not below exact {exact:F4}");
        if (untied)
            Assert.True(Math.Abs(est.MeanLogLikelihood - tiedBound) > 8 * est.StandardError,
                $"sampled {est.MeanLogLikelihood:F4} ± {est.StandardError:F4} is the tied bound {tiedBound:F4}: the recognition weights were not used");
    }

    /// <summary>The mean of a tensor's entries, as a number; disposes it.</summary>
    private static double MeanOf(Tensor t)
    {
        using var owned = t;
        using var m = owned.mean();
        return m.ToDouble();
    }

    /// <summary>B̄ = mean over rows of Σ_{h¹} q(h¹|v) [log p(v|h¹) + log p_top(h¹) − log q(h¹|v)] for a [6, 5, 4] DBN, q = Π_j Bernoulli(μ_j); disposes μ.</summary>
    private static double EnumeratedBound(DBN dbn, Tensor v, Tensor mu)
    {
        using var _ = torch.no_grad();
        using var m = mu;                                                         // (N, 5)
        using var h = ExactEnumeration.all_binary_states(5, ScalarType.Float64);
        using var logq = h.matmul(m.log().t()).t() + h.neg().add(1).matmul((1 - m).log().t()).t();   // (N, 32)
        using var q = logq.exp();
        using var lpv = LogPDown(dbn.layers[0], v, h);                            // (N, 32)
        using var lpt = LogPTop(dbn, h);                                          // (32)
        using var inner = lpv + lpt.unsqueeze(0) - logq;
        using var b = (q * inner).sum(1).mean();
        return b.ToDouble();
    }

    [Fact]
    public void DbnLowerBound_OfASingleRbm_IsItsLogLikelihood()
    {
        // L = 1: no directed layers, B(v) = −F(v) − log Z exactly, whatever the samples.
        using var dbn = RandomDbn([7, 5], 13);
        using var g = new Generator(14);
        using var bits = torch.rand(20, 7, ScalarType.Float64, generator: g);
        using var v = bits.lt(0.5).to_type(ScalarType.Float64);
        var z = LogLikelihood.dbn_top_partition_function(dbn, v);
        var bound = LogLikelihood.dbn_lower_bound(dbn, v, z, samples: 3, generator: g);
        Assert.Equal(ExactEnumeration.log_likelihood(dbn.top, v), bound.MeanLogLikelihood, 9);
        Assert.Equal(0, bound.StandardError, 9);
    }
}

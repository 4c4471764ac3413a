using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Tests.Modules;
using TorchBoltzmann.Tests.Training;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Evaluation;

public class DbmLikelihoodTests
{
    public static TheoryData<int[]> Shapes => new() { new[] { 6, 4, 3 }, new[] { 5, 3, 3, 2 } };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Ais_IntervalContainsTheExactLogZ_InAtLeast9Of10IndependentEstimates(int[] sizes)
    {
        // Weights and biases N(0, 0.8²); 1,000 runs of 300 steps of the scaled paper schedule, base biases from 60 data rows
        // (visible) and zero (hidden), split into 10 disjoint groups of 100 runs: 10 independent estimates, each with its
        // interval [log(Ẑ − 3σ̂), log(Ẑ + 3σ̂)]. The exact log Z from enumeration must lie in at least 9 of them.
        using var dbm = DbmTestUtil.Random(sizes, 12);
        double exact = ExactEnumeration.log_partition(dbm);
        using var data = torch.rand(60, sizes[0], dtype: ScalarType.Float64, generator: new Generator(13)).round_();
        using var baseBias = AnnealedImportanceSampling.base_rate_bias(UnitType.Bernoulli, data);
        using var g = new Generator(100);
        var all = DbmLikelihood.log_partition(dbm, baseBias, new AisOptions { Runs = 1000, Schedule = BetaSchedule.Scaled(300) }, g);
        Assert.Equal(300, all.Steps);
        int inside = 0;
        var report = new List<string>();
        for (int group = 0; group < 10; group++)
        {
            var est = PartitionFunctionEstimate.FromLogWeights(all.LogWeights.Skip(group * 100).Take(100).ToList(), all.LogZBase, all.Steps);
            if (est.LogZLower <= exact && exact <= est.LogZUpper) inside++;
            report.Add($"[{est.LogZLower:F4}, {est.LogZUpper:F4}]");
        }
        Assert.True(inside >= 9, $"exact log Z {exact:F4} inside {inside}/10 intervals: {string.Join(" ", report)}");
        Assert.True(Math.Abs(all.LogZ - exact) < 0.05, $"log Ẑ of all 1,000 runs {all.LogZ:F4}, exact {exact:F4}");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void LowerBound_IsBelowTheExactLogLikelihood_AndCloseForATrainedMachine(int[] sizes)
    {
        // With the exact log Z, the mean variational bound is at most the exact mean log-likelihood (its gap is the mean
        // KL(q‖p(h|v)) ≥ 0), on a random machine and on the patterns' data.
        using var dbm = DbmTestUtil.Random(sizes, 14);
        using var data = DbmTrainerTests.Patterns(15).narrow(1, 0, sizes[0]).contiguous();
        double logZ = ExactEnumeration.log_partition(dbm);
        double ll = ExactEnumeration.log_likelihood(dbm, data, logZ);
        double bound = DbmLikelihood.lower_bound(dbm, data, logZ, batch_size: 7);
        Assert.True(bound <= ll, $"bound {bound:F6} above the exact log-likelihood {ll:F6}");
        Assert.True(ll - bound < 2.0, $"gap {ll - bound:F4} nats: mean-field far from the posterior on a 13-unit machine");
    }

    [Fact]
    public void Ais_RefusesVisibleUnitsItCannotAnneal()
    {
        using var dbm = boltzmann.DBM([4, 3, 2], visible_units: UnitType.Gaussian);
        var e = Assert.Throws<ArgumentException>(() => DbmLikelihood.log_partition(dbm, options: new AisOptions { Runs = 2, Schedule = BetaSchedule.Linear(3) }));
        Assert.Contains("Gaussian", e.Message);
    }
}

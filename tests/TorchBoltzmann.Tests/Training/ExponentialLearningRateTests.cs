using TorchBoltzmann.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

/// <summary>The rate schedule every trainer shares: η_e = max(η₀ γ^e f(e), floor) per parameter group.</summary>
public class ExponentialLearningRateTests
{
    [Fact]
    public void OnEpochStart_SetsEachGroupsRate_FromItsOwnBase_WithTheFactorAndTheFloor()
    {
        using var a = new Parameter(torch.zeros(3));
        using var b = new Parameter(torch.zeros(2));
        using var sgd = optim.SGD([new SGD.ParamGroup([a], 0.4, 0.0), new SGD.ParamGroup([b], 0.05, 0.0)], 0.4);
        double[] baseRates = [0.4, 0.05];
        static int KAt(int e) => 1 + e / 2;   // a growing k: 1, 1, 2, 2, 3, ...
        var schedule = new ExponentialLearningRate(sgd, 0.9, baseRates, floor: 0.01, epochFactor: e => 1.0 / KAt(e));
        for (int e = 0; e < 8; e++)
        {
            schedule.OnEpochStart(null!, e);   // the schedule reads only the epoch
            var groups = sgd.ParamGroups.ToList();
            for (int g = 0; g < 2; g++)
            {
                double expected = Math.Max(baseRates[g] * Math.Pow(0.9, e) / KAt(e), 0.01);
                Assert.Equal(expected, groups[g].LearningRate, 12);
            }
            Assert.Equal(groups[0].LearningRate, schedule.Rate, 12);
        }
        // By epoch 7 the second group sits on the floor, the first not: the floor binds per group.
        Assert.Equal(0.01, sgd.ParamGroups.ElementAt(1).LearningRate, 12);
        Assert.True(sgd.ParamGroups.ElementAt(0).LearningRate > 0.01);
    }

    [Fact]
    public void OnEpochStart_WithoutFactor_IsThePlainExponentialDecay()
    {
        using var a = new Parameter(torch.zeros(3));
        using var sgd = optim.SGD([a], 0.2);
        var schedule = new ExponentialLearningRate(sgd, 0.5);
        schedule.OnEpochStart(null!, 3);
        Assert.Equal(0.2 * 0.125, sgd.ParamGroups.First().LearningRate, 12);
        Assert.Equal(0.025, schedule.Rate, 12);
    }
}

using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

/// <summary>bfloat16 coupling products in the DBM's mean-field sweeps and Gibbs steps (<see cref="DBM.compute_dtype"/>,
/// <see cref="DbmTrainingOptions.ComputeDtype"/>).</summary>
public class DbmMixedPrecisionTests
{
    private static (DBM dbm, Tensor[] states) Machine()
    {
        using var g = new Generator(5);
        var dbm = boltzmann.DBM([20, 16, 12], generator: g);
        using (torch.no_grad())
            foreach (var p in dbm.parameters())
                using (var r = torch.randn(p.shape, generator: g)) p.copy_(r);   // weights of order 1, so that bfloat16's rounding shows
        var states = new[]
        {
            torch.rand(7, 20, generator: g).round_(),
            torch.rand(7, 16, generator: g),
            torch.rand(7, 12, generator: g),
        };
        return (dbm, states);
    }

    [Fact]
    public void NetInput_InBfloat16_IsTheProductOfTheRoundedFactors_CastBack()
    {
        var (dbm, states) = Machine();
        using var _ = dbm;
        try
        {
            using var plain = dbm.net_input(states, 1);
            dbm.compute_dtype = ScalarType.Float32;   // the machine's own dtype: no cast, the same operations
            using var same = dbm.net_input(states, 1);
            Assert.True(plain.allclose(same, rtol: 0, atol: 0));

            dbm.compute_dtype = ScalarType.BFloat16;
            using var mixed = dbm.net_input(states, 1);
            using var visible = dbm.net_input(states, 0);
            Assert.Equal(ScalarType.Float32, mixed.dtype);
            // η_1 = (v_c W_1,cᵀ) + b_1 + (h_2,c W_2,c), ·_c the cast to bfloat16, each product cast back to float32.
            using var below = nn.functional.linear(states[0].to(ScalarType.BFloat16), dbm.weight(1).to(ScalarType.BFloat16)).to(ScalarType.Float32);
            using var above = states[2].to(ScalarType.BFloat16).matmul(dbm.weight(2).to(ScalarType.BFloat16)).to(ScalarType.Float32);
            using var expected = below.add(dbm.bias(1)).add_(above);
            Assert.True(mixed.allclose(expected, rtol: 0, atol: 1e-5), $"largest difference {mixed.sub(expected).abs().max().ToSingle()}");
            using var expectedVisible = states[1].to(ScalarType.BFloat16).matmul(dbm.weight(1).to(ScalarType.BFloat16)).to(ScalarType.Float32).add(dbm.bias(0));
            Assert.True(visible.allclose(expectedVisible, rtol: 0, atol: 1e-5));
            Assert.False(mixed.allclose(plain, rtol: 0, atol: 0), "bfloat16 products equal float32's: the setting was not used");
        }
        finally { foreach (var s in states) s.Dispose(); }
    }

    [Fact]
    public void ComputeDtype_Float16_IsRefusedNamingTheSetting()
    {
        using var dbm = boltzmann.DBM([6, 4, 3]);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => dbm.compute_dtype = ScalarType.Float16);
        Assert.Contains("compute_dtype", e.Message);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => new DbmTrainer(dbm, new DbmTrainingOptions { ComputeDtype = ScalarType.Float16 }));
        Assert.Contains("ComputeDtype", e.Message);
    }

    [Fact]
    public void ShortRun_WithBfloat16Products_RaisesTheExactLogLikelihood_AndLeavesTheMachineInItsDtype()
    {
        // The float32 twin of DbmTrainerTests' short run (its 6-4-3 machine, 20 epochs on three noisy 6-bit patterns,
        // −4.16 → about −3.3 nats), trained once with float32 products and once with bfloat16 ones: both must rise by at
        // least 0.6 nats, and the bfloat16 run must be another run (its weights differ), with the machine's products
        // back to its own after every step.
        using var data64 = DbmTrainerTests.Patterns(1);
        using var data = data64.to(ScalarType.Float32);
        double Run(ScalarType? computeDtype, out Tensor weight)
        {
            using var g = new Generator(2);
            using var dbm = boltzmann.DBM([6, 4, 3], generator: g);
            var options = new DbmTrainingOptions
            {
                Epochs = 20, BatchSize = 10, LearningRate = 0.1, Momentum = 0.5, Chains = 30, GibbsSteps = 3, WeightDecay = 0, Seed = 3, MetricsEvery = 0,
                ComputeDtype = computeDtype,
            };
            double before = ExactEnumeration.log_likelihood(dbm, data);
            using (var trainer = new DbmTrainer(dbm, options)) trainer.Fit(data);
            Assert.Null(dbm.compute_dtype);
            Assert.All(dbm.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
            double after = ExactEnumeration.log_likelihood(dbm, data);
            Assert.True(after - before >= 0.6, $"{computeDtype?.ToString() ?? "float32"}: log-likelihood {before:F4} → {after:F4}");
            weight = dbm.weight(1).detach().clone();
            return after;
        }
        Run(null, out var w32);
        Run(ScalarType.BFloat16, out var w16);
        using (w32) using (w16) Assert.False(w32.allclose(w16, rtol: 0, atol: 0), "the bfloat16 run equals the float32 one: the option was not used");
    }

    [SkippableFact(DisplayName = "DbmMixedPrecisionTests.Cuda_TrainingMeanFieldAndAis_RunOnTheDevice (runs only where CUDA is available)")]
    public void Cuda_TrainingMeanFieldAndAis_RunOnTheDevice()
    {
        Skip.IfNot(torch.cuda.is_available(), "CUDA is not available on this machine (torch.cuda.is_available() is false)");
        TrainMeanFieldAndAisOn(torch.CUDA);
    }

    [Fact]
    public void Cpu_TrainingMeanFieldAndAis_WithCenteringAndBfloat16()
    {
        TrainMeanFieldAndAisOn(torch.CPU);
    }

    /// <summary>
    /// The 6-4-3 short run on <paramref name="device"/>, centered and with bfloat16 products: parameters, chains, offsets
    /// and mean-field means stay on the device, the exact log-likelihood rises by at least 0.6 nats, and AIS there
    /// (200 runs × 1,000 steps) brackets the exact log Z to within 0.05 nats.
    /// </summary>
    private static void TrainMeanFieldAndAisOn(Device device)
    {
        using var data64 = DbmTrainerTests.Patterns(1);
        using var data = data64.to(ScalarType.Float32, device);
        using var g = new Generator(2, device);
        using var dbm = boltzmann.DBM([6, 4, 3], device: device, generator: g);
        double before = ExactEnumeration.log_likelihood(dbm, data);
        var options = new DbmTrainingOptions
        {
            Epochs = 20, BatchSize = 10, LearningRate = 0.1, Momentum = 0.5, Chains = 30, GibbsSteps = 3, WeightDecay = 0, Seed = 3, MetricsEvery = 0,
            Centering = true, ComputeDtype = ScalarType.BFloat16,
        };
        using (var trainer = new DbmTrainer(dbm, options, generator: g))
        {
            trainer.Fit(data);
            Assert.All(trainer.Chains!, t => Assert.Equal(device.type, t.device_type));
            Assert.All(trainer.Offsets!, t => Assert.Equal(device.type, t.device_type));
        }
        Assert.All(dbm.parameters(), p => Assert.Equal(device.type, p.device_type));
        double after = ExactEnumeration.log_likelihood(dbm, data);
        Assert.True(after - before >= 0.6, $"log-likelihood {before:F4} → {after:F4}");
        using var mf = dbm.mean_field(data);
        Assert.All(mf.means, m => Assert.Equal(device.type, m.device_type));
        double exact = ExactEnumeration.log_partition(dbm);
        var ais = DbmLikelihood.log_partition(dbm, options: new AisOptions { Runs = 200, Schedule = BetaSchedule.Scaled(1000) }, generator: g);
        Assert.True(ais.LogZLower - 0.05 <= exact && exact <= ais.LogZUpper + 0.05, $"exact log Z {exact:F4} outside [{ais.LogZLower:F4}, {ais.LogZUpper:F4}]");
    }
}

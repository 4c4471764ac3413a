using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.Modules;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

public class DbmTrainerTests
{
    /// <summary>60 rows of 6 bits: three prototypes, each bit flipped with probability 0.1 (seeded).</summary>
    internal static Tensor Patterns(ulong seed, int rows = 60)
    {
        using var g = new Generator(seed);
        using var protos = torch.tensor(new double[] { 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 0 }, 3, 6);
        using var pick = torch.randint(0, 3, [rows], generator: g);
        using var clean = protos.index_select(0, pick);
        using var flip = torch.rand(rows, 6, dtype: ScalarType.Float64, generator: g).lt_(0.1).to_type(ScalarType.Float64);
        return clean.add(flip).remainder_(2);
    }

    [Fact]
    public void ShortRun_RaisesTheExactLogLikelihoodOfASmallDataset()
    {
        // A 6-4-3 DBM from N(0, 0.01²) weights (log-likelihood ≈ −6 log 2 = −4.16) trained for 20 epochs of 6 batches on
        // three noisy 6-bit patterns, whose own distribution has log-likelihood about −(log 3 + 6 H(0.1)) = −3.05: the
        // exact mean log-likelihood must rise by at least 0.6 nats (measured −4.163 → −3.29).
        using var data = Patterns(1);
        using var g = new Generator(2);
        using var dbm = boltzmann.DBM([6, 4, 3], dtype: ScalarType.Float64, generator: g);
        double before = ExactEnumeration.log_likelihood(dbm, data);
        var options = new DbmTrainingOptions
        {
            Epochs = 20, BatchSize = 10, LearningRate = 0.1, Momentum = 0.5, Chains = 30, GibbsSteps = 3, WeightDecay = 0, Seed = 3, MetricsEvery = 20,
        };
        using var trainer = new DbmTrainer(dbm, options);
        var history = trainer.Fit(data);
        double after = ExactEnumeration.log_likelihood(dbm, data);
        Assert.Equal(20, history.Count);
        Assert.Equal(after, history[^1].LogLikelihood!.Value, 9);
        Assert.True(after - before >= 0.6, $"log-likelihood {before:F4} → {after:F4} (rise {after - before:F4} nats)");
        Assert.True(history[^1].MeanFieldBound - ExactEnumeration.log_partition(dbm) <= after + 1e-9, "the bound on the data is above the log-likelihood");
        Assert.All(history, m => Assert.InRange(m.MeanFieldSweeps, 1, 10));
        Assert.Null(history[0].LogLikelihood);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ResumedRun_IsBitIdenticalToAnUnbrokenOne(bool centering)
    {
        // 4 epochs in one run against 2 epochs, a new trainer and machine, and 2 more from the run checkpoint: weights,
        // persistent chains, centering offsets and the epochs' metrics agree exactly (CPU, float32).
        using var data = Patterns(4, rows: 40);
        using var train = data.to_type(ScalarType.Float32);
        var options = new DbmTrainingOptions { Epochs = 4, BatchSize = 10, LearningRate = 0.05, Momentum = 0.5, Chains = 20, GibbsSteps = 2, LearningRateDecay = 0.9, Seed = 5, Centering = centering };
        var dir = Directory.CreateTempSubdirectory("dbm-resume").FullName;
        try
        {
            using var g1 = new Generator(6);
            using var unbroken = boltzmann.DBM([6, 4, 3], generator: g1);
            using var t1 = new DbmTrainer(unbroken, options);
            var h1 = t1.Fit(train);

            var path = Path.Combine(dir, "run.ckpt");
            using var g2 = new Generator(6);
            using var first = boltzmann.DBM([6, 4, 3], generator: g2);
            using (var cancel = new CancellationTokenSource())
            using (var t2 = new DbmTrainer(first, options) { CheckpointPath = path })
            {
                // Cancelled once epoch 2's record is reported (its checkpoint is written before the report).
                var stop = new CallbackProgress<LoopProgress<DbmEpochMetrics>>(p => { if (p.EpochMetrics?.Epoch == 2) cancel.Cancel(); });
                Assert.Throws<OperationCanceledException>(() => t2.Fit(train, stop, cancel.Token));
            }
            using var g3 = new Generator(99);
            using var resumed = boltzmann.DBM([6, 4, 3], generator: g3);   // other initial weights: the checkpoint's replace them
            using var t3 = new DbmTrainer(resumed, options) { CheckpointPath = path };
            var h3 = t3.Fit(train);
            Assert.Equal(Enumerable.Range(1, 4), h3.Select(m => m.Epoch));

            foreach (var (a, b) in unbroken.parameters().Zip(resumed.parameters()))
                Assert.True(Same(a, b), "a parameter differs after resuming");
            foreach (var (a, b) in t1.Chains!.Zip(t3.Chains!))
                Assert.True(Same(a, b), "a chain layer differs after resuming");
            Assert.Equal(centering, t3.Offsets is not null);
            if (centering)
                foreach (var (a, b) in t1.Offsets!.Zip(t3.Offsets!))
                    Assert.True(Same(a, b), "an offset differs after resuming");
            Assert.Equal(h1.Select(m => m.MeanFieldBound), h3.Select(m => m.MeanFieldBound));
            Assert.Equal(h1.Select(m => m.LearningRate), h3.Select(m => m.LearningRate));
        }
        finally { Directory.Delete(dir, true); }
    }

    private static bool Same(Tensor a, Tensor b)
    {
        using var eq = a.eq(b);
        using var all = eq.all();
        return all.item<bool>();
    }

    [Fact]
    public void WriteGradients_AreTheDifferenceOfLayerProductsPlusWeightDecay()
    {
        // ∂L/∂W_l = ⟨x_l x_{l−1}ᵀ⟩⁻ − ⟨μ_l μ_{l−1}ᵀ⟩⁺ + λW_l and ∂L/∂b_l = ⟨x_l⟩⁻ − ⟨μ_l⟩⁺, written over stale .grad values.
        using var dbm = DbmTestUtil.Random([5, 3, 3, 2], 10);
        using var g = new Generator(11);
        var pos = dbm.layer_sizes.Select(n => torch.rand(4, n, dtype: ScalarType.Float64, generator: g)).ToArray();
        var neg = dbm.layer_sizes.Select(n => torch.rand(7, n, dtype: ScalarType.Float64, generator: g).round_()).ToArray();
        foreach (var p in dbm.parameters()) p.grad = torch.ones_like(p);
        DbmTrainer.WriteGradients(dbm, pos, neg, weight_decay: 0.3);
        for (int l = 1; l < pos.Length; l++)
        {
            using var expected = neg[l].t().mm(neg[l - 1]).div(7).sub(pos[l].t().mm(pos[l - 1]).div(4)).add(dbm.weight(l).mul(0.3));
            using var gw = dbm.weight(l).grad!;
            TestUtil.AllClose(expected, gw, 1e-12, $"∂L/∂W_{l}");
        }
        for (int l = 0; l < pos.Length; l++)
        {
            using var expected = neg[l].mean([0L]).sub(pos[l].mean([0L]));
            using var gb = dbm.bias(l).grad!;
            TestUtil.AllClose(expected, gb, 1e-12, $"∂L/∂b_{l}");
        }
        // Bad states: one line naming the phase and layer.
        using (var narrow = torch.rand(4, 2, dtype: ScalarType.Float64))
        {
            var e = Assert.Throws<ArgumentException>(() => DbmTrainer.WriteGradients(dbm, [pos[0], narrow, pos[2], pos[3]], neg));
            Assert.StartsWith("positive[1]: expected 3 units", e.Message);
        }
        using (var fewer = torch.rand(6, 3, dtype: ScalarType.Float64))
        {
            var e = Assert.Throws<ArgumentException>(() => DbmTrainer.WriteGradients(dbm, pos, [neg[0], neg[1], fewer, neg[3]]));
            Assert.StartsWith("negative[2]: expected (7, 3) like negative[0]'s rows, got (6, 3)", e.Message);
        }
        foreach (var t in pos.Concat(neg)) t.Dispose();
    }

    /// <summary>
    /// The direct gradients equal autograd's through the energy, L = mean E(x⁺) − mean E(x⁻) + (λ/2)ΣW² (float64, 10⁻¹²), for
    /// Gaussian visible units too, whose bias gradient (mean(b − v)⁺ − …) is not the Bernoulli one.
    /// </summary>
    [Theory]
    [InlineData("bernoulli")]
    [InlineData("gaussian")]
    public void WriteGradients_EqualAutogradThroughTheEnergy(string visible)
    {
        using var g = new Generator(12);
        using var dbm = boltzmann.DBM([6, 4, 3, 2], visible_units: visible == "gaussian" ? TorchBoltzmann.Units.UnitType.Gaussian : null, dtype: ScalarType.Float64, generator: g);
        var pos = dbm.layer_sizes.Select((n, l) => l == 0 && visible == "gaussian" ? torch.randn(5, n, dtype: ScalarType.Float64, generator: g) : torch.rand(5, n, dtype: ScalarType.Float64, generator: g)).ToArray();
        var neg = dbm.layer_sizes.Select((n, l) => l == 0 && visible == "gaussian" ? torch.randn(8, n, dtype: ScalarType.Float64, generator: g) : torch.rand(8, n, dtype: ScalarType.Float64, generator: g).round_()).ToArray();
        var parameters = dbm.parameters().Cast<Tensor>().ToList();
        Tensor[] expected;
        using (torch.enable_grad())
        {
            var loss = dbm.energy(pos).mean().sub(dbm.energy(neg).mean());
            foreach (var w in dbm.weights) loss = loss.add(w.pow(2).sum().mul(0.15));   // (λ/2)‖W‖², λ = 0.3
            expected = torch.autograd.grad([loss], parameters).ToArray();
        }
        DbmTrainer.WriteGradients(dbm, pos, neg, weight_decay: 0.3);
        for (int i = 0; i < parameters.Count; i++)
        {
            using var got = parameters[i].grad!;
            TestUtil.AllClose(expected[i], got, 1e-12, $"gradient of parameter {i}");
        }
        foreach (var t in pos.Concat(neg).Concat(expected)) t.Dispose();
    }

    [Fact]
    public void Options_OutOfRange_AreRefusedNamingTheOption()
    {
        using var dbm = boltzmann.DBM([6, 4, 3]);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new DbmTrainer(dbm, new DbmTrainingOptions { MeanFieldDamping = 1.0 }));
        Assert.Contains("MeanFieldDamping", e.Message);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => new DbmTrainer(dbm, new DbmTrainingOptions { GibbsSteps = 0 }));
        Assert.Contains("GibbsSteps", e.Message);
    }
}

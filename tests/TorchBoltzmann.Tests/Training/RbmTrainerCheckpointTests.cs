using TorchBoltzmann.Data;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

/// <summary>Mid-run checkpoints of <see cref="RbmTrainer"/> (<see cref="RbmTrainer.CheckpointPath"/>, the run-checkpoint format).</summary>
public class RbmTrainerCheckpointTests
{
    /// <summary>Bars-and-stripes 3×3 (14 patterns) × 40, float32: 560 rows, so batches of 15 leave a short last batch of 5.</summary>
    internal static Tensor Data()
    {
        using var bas = SyntheticData.BarsAndStripes(3);
        using var rep = bas.repeat(40, 1);
        return rep.to_type(ScalarType.Float32);
    }

    private static RbmTrainingOptions Options(bool persistent) => new()
    {
        Epochs = 5, BatchSize = 15, LearningRate = 0.05, Persistent = persistent, K = 2, MomentumSwitchEpoch = 2,
        MetricsSamples = 100, Seed = 11,
    };

    private sealed record Outcome(List<Tensor> Parameters, Tensor? Chains, Tensor Generator, IReadOnlyList<RbmEpochMetrics> History) : IDisposable
    {
        public void Dispose()
        {
            foreach (var p in Parameters) p.Dispose();
            Chains?.Dispose();
            Generator.Dispose();
        }
    }

    /// <summary>Trains a fresh RBM (same initial weights every time), cancelled after epoch <paramref name="cancelAfter"/> when it is positive.</summary>
    private static Outcome Run(RbmTrainingOptions options, Tensor data, Tensor held, string? path, int cancelAfter = 0, optim.Optimizer? optimizer = null)
    {
        using var init = new Generator(5);
        using var rbm = boltzmann.RBM(9, 12, generator: init);
        using var generator = new Generator(options.Seed);
        using var cancel = new CancellationTokenSource();
        var progress = new CallbackProgress<TrainingProgress>(p => { if (p.EpochMetrics?.Epoch == cancelAfter) cancel.Cancel(); });
        using var trainer = new RbmTrainer(rbm, options, generator: generator) { CheckpointPath = path, CheckpointEvery = 2 };
        var history = trainer.Fit(data, held, progress, cancel.Token);
        return new Outcome(rbm.parameters().Select(p => p.detach().clone()).ToList(), trainer.PersistentChains?.clone() ?? trainer.Tempering?.states.clone(), generator.get_state(), history);
    }

    /// <summary>Same shape, dtype and bytes: equal bit for bit (stricter than torch.equal, which takes −0 for +0).</summary>
    private static bool Same(Tensor a, Tensor b)
    {
        using var scope = torch.NewDisposeScope();
        return a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype
            && a.detach().cpu().contiguous().bytes.SequenceEqual(b.detach().cpu().contiguous().bytes);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Fit_StoppedAndContinuedFromItsCheckpoint_EndsBitIdenticalToAnUnbrokenRun(bool persistent)
    {
        using var data = Data();
        using var held = data.narrow(0, 0, 56);
        var options = Options(persistent);
        using var whole = Run(options, data, held, path: null);

        using var dir = new TempDirectory();
        var path = dir.File("rbm.ckpt");
        // Stopped after epoch 3: the checkpoint holds epoch 2 (the momentum switch, the PCD chains mid-run), so the
        // continued run redoes epoch 3.
        Assert.Throws<OperationCanceledException>(() => Run(options, data, held, path, cancelAfter: 3));
        Assert.True(RunCheckpoint.IsRunCheckpoint(path), "a run checkpoint after epoch 2");
        using var resumed = Run(options, data, held, path);

        for (int i = 0; i < whole.Parameters.Count; i++)
            Assert.True(Same(whole.Parameters[i], resumed.Parameters[i]), $"parameter {i} differs after the continued run");
        Assert.Equal(persistent, whole.Chains is not null);
        if (persistent) Assert.True(Same(whole.Chains!, resumed.Chains!), "the persistent chains differ after the continued run");
        Assert.True(Same(whole.Generator, resumed.Generator), "the generator's state differs after the continued run");
        Assert.Equal(whole.History.Count, resumed.History.Count);
        for (int e = 0; e < whole.History.Count; e++)
        {
            Assert.Equal(whole.History[e].ReconstructionError, resumed.History[e].ReconstructionError);
            Assert.Equal(whole.History[e].PseudoLogLikelihood, resumed.History[e].PseudoLogLikelihood);
            Assert.Equal(whole.History[e].Momentum, resumed.History[e].Momentum);
        }

        // The finished run's checkpoint: Fit loads its final weights and returns its history without training.
        using var again = Run(options, data, held, path);
        for (int i = 0; i < whole.Parameters.Count; i++)
            Assert.True(Same(whole.Parameters[i], again.Parameters[i]), $"parameter {i} loaded from the finished checkpoint differs");
        Assert.Equal(resumed.History.Select(h => h.ReconstructionError), again.History.Select(h => h.ReconstructionError));
    }

    [Fact]
    public void Fit_WithParallelTempering_StoppedAndContinued_EndsBitIdenticalToAnUnbrokenRun()
    {
        using var data = Data();
        using var held = data.narrow(0, 0, 56);
        var options = Options(false) with { Tempering = TorchBoltzmann.Sampling.TemperingLadder.Linear(4, 0.4) };
        using var whole = Run(options, data, held, path: null);
        Assert.NotNull(whole.Chains);
        Assert.Equal(4 * 15, whole.Chains!.shape[0]);   // B = 15 replicas on each of 4 levels

        using var dir = new TempDirectory();
        var path = dir.File("rbm.ckpt");
        Assert.Throws<OperationCanceledException>(() => Run(options, data, held, path, cancelAfter: 3));
        using var resumed = Run(options, data, held, path);
        for (int i = 0; i < whole.Parameters.Count; i++)
            Assert.True(Same(whole.Parameters[i], resumed.Parameters[i]), $"parameter {i} differs after the continued run");
        Assert.True(Same(whole.Chains!, resumed.Chains!), "the tempering replicas differ after the continued run");
        Assert.True(Same(whole.Generator, resumed.Generator), "the generator's state differs after the continued run");

        // Another ladder is another run: its checkpoint is refused, naming the option.
        var other = options with { Tempering = TorchBoltzmann.Sampling.TemperingLadder.Linear(4, 0.3) };
        var e = Assert.ThrowsAny<Exception>(() => Run(other, data, held, path));
        Assert.Contains("Tempering", e.Message);
    }

    [Fact]
    public void Fit_WithCenteringAndSparsity_StoppedAndContinued_EndsBitIdenticalToAnUnbrokenRun()
    {
        // The running hidden offset λ and the sparsity estimate q are part of the run's state.
        using var data = Data();
        using var held = data.narrow(0, 0, 56);
        var options = Options(true) with { Centering = true, SparsityTarget = 0.1 };
        using var whole = Run(options, data, held, path: null);
        using var dir = new TempDirectory();
        var path = dir.File("rbm.ckpt");
        Assert.Throws<OperationCanceledException>(() => Run(options, data, held, path, cancelAfter: 3));
        using var resumed = Run(options, data, held, path);
        for (int i = 0; i < whole.Parameters.Count; i++)
            Assert.True(Same(whole.Parameters[i], resumed.Parameters[i]), $"parameter {i} differs after the continued run");
        // Without the offsets' state the continued run would differ: a fresh λ = 0.5 and q = the first batch's mean.
        using var plain = Run(Options(true), data, held, path: null);
        Assert.False(Same(whole.Parameters[0], plain.Parameters[0]), "centering and sparsity changed nothing");
    }

    [Fact]
    public void Fit_WithoutACheckpoint_EqualsTheRunWithCheckpoints()
    {
        // Writing checkpoints draws nothing and changes nothing: the same weights with and without them.
        using var data = Data();
        using var held = data.narrow(0, 0, 56);
        using var dir = new TempDirectory();
        using var plain = Run(Options(true), data, held, path: null);
        using var saved = Run(Options(true), data, held, dir.File("rbm.ckpt"));
        for (int i = 0; i < plain.Parameters.Count; i++) Assert.True(Same(plain.Parameters[i], saved.Parameters[i]), $"parameter {i}");
    }

    [Fact]
    public void Fit_CheckpointOfAnotherRun_IsRefusedNamingTheDifference_AndChangesNothing()
    {
        using var data = Data();
        using var held = data.narrow(0, 0, 56);
        using var dir = new TempDirectory();
        var path = dir.File("rbm.ckpt");
        Assert.Throws<OperationCanceledException>(() => Run(Options(true), data, held, path, cancelAfter: 2));

        using var init = new Generator(5);
        using var rbm = boltzmann.RBM(9, 12, generator: init);
        using var before = rbm.weight.detach().clone();
        using var trainer = new RbmTrainer(rbm, Options(true) with { LearningRate = 0.02 }) { CheckpointPath = path };
        var e = Assert.Throws<CheckpointException>(() => trainer.Fit(data, held));
        Assert.Contains("options.LearningRate = 0.05 in the checkpoint, 0.02 now", e.Message);
        Assert.True(Same(before, rbm.weight), "a refused checkpoint changed the weights");

        // A truncated checkpoint is refused the same way.
        using var truncated = new TempDirectory();
        var cut = truncated.File("cut.ckpt");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(cut, bytes.AsSpan(0, bytes.Length - 7).ToArray());
        using var trainer2 = new RbmTrainer(rbm, Options(true)) { CheckpointPath = cut };
        var t = Assert.Throws<CheckpointException>(() => trainer2.Fit(data, held));
        Assert.Contains("Delete", t.Message);
        Assert.True(Same(before, rbm.weight), "a truncated checkpoint changed the weights");
    }
}

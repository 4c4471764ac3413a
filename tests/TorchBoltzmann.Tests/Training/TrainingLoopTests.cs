using TorchBoltzmann.IO;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

/// <summary>The shared loop (<see cref="TrainingLoop{TMetrics}"/>) with a toy step: the order of its calls, stops, divergence and checkpoints.</summary>
public class TrainingLoopTests
{
    private sealed record Metrics(int Epoch, double Sum);

    /// <summary>A step that adds up the rows it is given (a float64 vector 0..N−1) and logs what it is called for.</summary>
    private sealed class SumStep(Tensor data, List<string> log, int divergeAtEpoch = -1, int divergeAtBatch = -1) : ITrainingStep<Metrics>
    {
        private double _sum;
        public void BeginEpoch(int epoch) { log.Add($"begin {epoch}"); _sum = 0; }

        public double TrainBatch(Batch batch)
        {
            if (batch.Epoch == divergeAtEpoch && batch.Index == divergeAtBatch) throw batch.Diverged("the toy loss");
            var rows = batch.Rows(data);
            _sum += rows.sum().ToDouble();
            log.Add($"batch {batch.Epoch}.{batch.Index} ({batch.Size})");
            return double.NaN;
        }

        public Metrics EndEpoch(EpochEnd end) { log.Add($"end {end.Epoch}"); return new Metrics(end.Epoch + 1, _sum); }
    }

    /// <summary>Logs the loop's calls; asks it to stop after epoch <paramref name="stopAfter"/>; counts batches as its state.</summary>
    private sealed class Recorder(List<string> log, int stopAfter = -1) : ITrainingCallback, IStateful
    {
        public int Batches { get; private set; }
        public void OnFitStart(TrainingLoop loop) => log.Add("fit start");
        public void OnEpochStart(TrainingLoop loop, int epoch) => log.Add($"epoch start {epoch}");
        public void OnBatchEnd(TrainingLoop loop, Batch batch) => Batches++;
        public void OnEpochEnd(TrainingLoop loop, int epoch, object metrics)
        {
            log.Add($"epoch end {epoch} ({((Metrics)metrics).Sum})");
            if (epoch == stopAfter) loop.StopRequested = true;
        }
        public void OnFitEnd(TrainingLoop loop) => log.Add("fit end");

        public string StateName => "recorder";
        public void SaveState(StateSection section) => section.Values["batches"] = Batches;
        public Action PrepareLoad(StateSection section)
        {
            int n = section.Value<int>("batches");
            return () => Batches = n;
        }
    }

    private static TrainingLoop<Metrics> Loop(Generator g, int epochs = 3, CheckpointPolicy? checkpoint = null, bool shuffle = true)
        => new() { Epochs = epochs, BatchSize = 4, Generator = g, Shuffle = shuffle, Checkpoint = checkpoint };

    [Fact]
    public void Run_CallsStepAndComponentsInOrder_AndEveryRowOncePerEpoch()
    {
        using var data = torch.arange(10, dtype: ScalarType.Float64);
        using var g = new Generator(1);
        var log = new List<string>();
        var loop = Loop(g, epochs: 2);
        var recorder = new Recorder(log);
        loop.Callbacks.Add(recorder);
        var history = loop.Run(new SumStep(data, log), 10, torch.CPU);

        Assert.Equal(
            ["fit start",
             "epoch start 0", "begin 0", "batch 0.0 (4)", "batch 0.1 (4)", "batch 0.2 (2)", "end 0", "epoch end 0 (45)",
             "epoch start 1", "begin 1", "batch 1.0 (4)", "batch 1.1 (4)", "batch 1.2 (2)", "end 1", "epoch end 1 (45)",
             "fit end"], log);
        Assert.Equal(6, recorder.Batches);
        Assert.Equal([1, 2], history.Select(m => m.Epoch));
        Assert.False(loop.StoppedEarly);
    }

    [Fact]
    public void Run_ComponentAsksToStop_EndsAfterThatEpoch()
    {
        using var data = torch.arange(10, dtype: ScalarType.Float64);
        using var g = new Generator(1);
        var log = new List<string>();
        var loop = Loop(g, epochs: 5);
        loop.Callbacks.Add(new Recorder(log, stopAfter: 1));
        var history = loop.Run(new SumStep(data, log), 10, torch.CPU);
        Assert.Equal(2, history.Count);
        Assert.True(loop.StoppedEarly);
        Assert.Equal("fit end", log[^1]);
    }

    [Fact]
    public void Run_StepThatDiverges_StopsNamingTheOneBasedEpochAndBatch()
    {
        using var data = torch.arange(10, dtype: ScalarType.Float64);
        using var g = new Generator(1);
        var e = Assert.Throws<TrainingDivergedException>(() => Loop(g).Run(new SumStep(data, [], divergeAtEpoch: 1, divergeAtBatch: 2), 10, torch.CPU));
        Assert.Equal((2, 3), (e.Epoch, e.Batch));
        Assert.Contains("epoch 2, batch 3: the toy loss became NaN or infinite", e.Message);
    }

    [Fact]
    public void Run_StoppedAndContinuedFromItsCheckpoint_DrawsTheSameOrdersAndRestoresComponentState()
    {
        using var data = torch.arange(10, dtype: ScalarType.Float64);
        using var dir = new TempDirectory();
        var identity = new Dictionary<string, string> { ["toy"] = "1" };
        List<string> Orders(string? path, int cancelAfter, out Recorder recorder)
        {
            using var g = new Generator(5);
            var log = new List<string>();
            var loop = Loop(g, epochs: 4, checkpoint: path is null ? null : new CheckpointPolicy(path, "toy", identity));
            loop.State.Add(new GeneratorState("generator", g));
            recorder = new Recorder(log);
            loop.Callbacks.Add(recorder);
            using var cancel = new CancellationTokenSource();
            var progress = new CallbackProgress<LoopProgress<Metrics>>(p => { if (p.EpochMetrics?.Epoch == cancelAfter) cancel.Cancel(); });
            // The order of the rows: the step logs the batches' first rows through a tensor of positions.
            var step = new OrderStep(data, log);
            try { loop.Run(step, 10, torch.CPU, progress, cancel.Token); }
            catch (OperationCanceledException) { }
            return log.Where(l => char.IsDigit(l[0])).ToList();   // the step's lines, not the recorder's
        }
        var whole = Orders(null, 0, out var wholeRecorder);
        var path = dir.File("toy.ckpt");
        Orders(path, 2, out _);
        var rest = Orders(path, 0, out var resumedRecorder);
        // The continued run draws epochs 3 and 4's permutations as the unbroken run did.
        Assert.Equal(whole.Skip(whole.Count / 2), rest);
        Assert.Equal(wholeRecorder.Batches, resumedRecorder.Batches);

        // Another run's identity is refused with the difference named.
        using var g2 = new Generator(5);
        var other = Loop(g2, epochs: 4, checkpoint: new CheckpointPolicy(path, "toy", new Dictionary<string, string> { ["toy"] = "2" }));
        other.State.Add(new GeneratorState("generator", g2));
        other.Callbacks.Add(new Recorder([]));
        var e = Assert.Throws<CheckpointException>(() => other.Run(new OrderStep(data, []), 10, torch.CPU));
        Assert.Contains("toy = 1 in the checkpoint, 2 now", e.Message);
    }

    /// <summary>Logs each batch's rows in the order the epoch's permutation gives them.</summary>
    private sealed class OrderStep(Tensor data, List<string> log) : ITrainingStep<Metrics>
    {
        public double TrainBatch(Batch batch)
        {
            var rows = batch.Rows(data);
            log.Add($"{batch.Epoch}: {string.Join(",", rows.data<double>().ToArray())}");
            return double.NaN;
        }

        public Metrics EndEpoch(EpochEnd end) => new(end.Epoch + 1, 0);
    }

    [Fact]
    public void Run_DoesNotLeakTensors_AsEpochsGrow()
    {
        using var data = torch.arange(64, dtype: ScalarType.Float64);
        long Live(int epochs)
        {
            using var g = new Generator(1);
            return TestUtil.LiveTensorsAfter(() => Loop(g, epochs).Run(new SumStep(data, []), 64, torch.CPU));
        }
        Live(1);
        Assert.Equal(Live(2), Live(8));
    }

    /// <summary>
    /// <see cref="BalancedOrder.ByClass"/>: from a random permutation of 3 classes × 5 examples plus 2 more of class 1,
    /// the arranged order is a permutation of the same examples; its first 15 come in runs of 3 holding one of each class,
    /// each class's examples keep the permutation's order, and the surplus of class 1 comes last. Nothing random is drawn
    /// (the same permutation gives the same order).
    /// </summary>
    [Fact]
    public void BalancedOrder_GivesRunsOfOneExampleOfEachClass_InTheDrawnOrder()
    {
        using var labels = torch.tensor(new long[] { 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 1, 1 });
        using var g = new Generator(7);
        using var p = torch.randperm(17, generator: g);
        var arrange = BalancedOrder.ByClass(labels, 3);
        using var order = arrange(p);
        using var again = arrange(p);
        long[] o = order.data<long>().ToArray(), drawn = p.data<long>().ToArray(), y = labels.data<long>().ToArray();
        Assert.Equal(drawn.OrderBy(x => x), o.OrderBy(x => x));
        Assert.Equal(o, again.data<long>().ToArray());
        for (int b = 0; b < 5; b++) Assert.Equal(new long[] { 0, 1, 2 }, o.Skip(3 * b).Take(3).Select(i => y[i]));
        Assert.Equal(new long[] { 1, 1 }, o.Skip(15).Select(i => y[i]));
        for (long c = 0; c < 3; c++)
            Assert.Equal(drawn.Where(i => y[i] == c), o.Where(i => y[i] == c));
    }
}

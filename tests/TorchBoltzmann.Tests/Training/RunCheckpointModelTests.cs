using TorchBoltzmann.Data;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;
using static TorchBoltzmann.Tests.Training.DbnTestUtil;

namespace TorchBoltzmann.Tests.Training;

/// <summary><see cref="RunCheckpoint.LoadModel"/>: the model of a training run's checkpoint, rebuilt from what the run records.</summary>
public class RunCheckpointModelTests
{
    /// <summary>
    /// A DBM run (6-4-3, 4 epochs) cancelled after epoch 2: LoadModel rebuilds a DBM of that shape holding the trainer's
    /// weights bit for bit, "after epoch 2 of 4"; once the run has continued to its end, the same file gives the final
    /// weights and says it finished. The run's own resume is unaffected (it continues from the file LoadModel read).
    /// </summary>
    [Fact]
    public void DbmRun_GivesTheTrainersWeights_AndItsProgress_InFlightAndFinished()
    {
        using var dir = new TempDirectory();
        var path = dir.File("dbm-train.ckpt");
        using var data = DbmTrainerTests.Patterns(4, rows: 40);
        using var train = data.to_type(ScalarType.Float32);
        var options = new DbmTrainingOptions { Epochs = 4, BatchSize = 10, LearningRate = 0.05, Momentum = 0.5, Chains = 20, GibbsSteps = 2, Seed = 5 };
        using var g = new Generator(6);
        using var dbm = boltzmann.DBM([6, 4, 3], generator: g);
        using (var cancel = new CancellationTokenSource())
        using (var trainer = new DbmTrainer(dbm, options) { CheckpointPath = path })
        {
            var stop = new CallbackProgress<LoopProgress<DbmEpochMetrics>>(p => { if (p.EpochMetrics?.Epoch == 2) cancel.Cancel(); });
            Assert.Throws<OperationCanceledException>(() => trainer.Fit(train, stop, cancel.Token));
        }
        using (var run = RunCheckpoint.LoadModel(path))
        {
            var loaded = Assert.IsType<DBM>(run.Model);
            Assert.Equal(dbm.layer_sizes, loaded.layer_sizes);
            AssertSameParameters(dbm, loaded, "the trainer's DBM and the loaded one");
            Assert.Equal(("dbm", 2, 4, false), (run.Kind, run.EpochsDone, run.Epochs, run.Finished));
            Assert.Equal("after epoch 2 of 4", run.Progress);
            Assert.Equal("20", run.Identity["options.Chains"]);
        }
        using (var trainer = new DbmTrainer(dbm, options) { CheckpointPath = path })
            Assert.Equal(4, trainer.Fit(train).Count);
        using var done = RunCheckpoint.LoadModel(path);
        AssertSameParameters(dbm, done.Model, "the finished run's DBM and the loaded one");
        Assert.Equal((4, true, "finished after 4 epochs"), (done.EpochsDone, done.Finished, done.Progress));
    }

    /// <summary>An RBM run's checkpoint gives an RBM of the run's shape and units with its weights.</summary>
    [Fact]
    public void RbmRun_GivesAnRbmWithTheRunsWeights()
    {
        using var dir = new TempDirectory();
        var path = dir.File("rbm-train.ckpt");
        using var bas = SyntheticData.BarsAndStripes(3);
        using var data = bas.repeat(10, 1).to_type(ScalarType.Float32);
        using var g = new Generator(5);
        using var rbm = boltzmann.RBM(9, 7, generator: g);
        using (var trainer = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 3, BatchSize = 14, LearningRate = 0.05, Seed = 11 }) { CheckpointPath = path })
            trainer.Fit(data);
        using var run = RunCheckpoint.LoadModel(path);
        var loaded = Assert.IsType<RBM>(run.Model);
        Assert.Equal((9L, 7L), (loaded.n_visible, loaded.n_hidden));
        Assert.Equal(rbm.hidden_units.Name, loaded.hidden_units.Name);
        AssertSameParameters(rbm, loaded, "the trainer's RBM and the loaded one");
        Assert.Equal(("rbm", 3, 3, true), (run.Kind, run.EpochsDone, run.Epochs, run.Finished));
    }

    /// <summary>
    /// Refusals, each a CheckpointException naming the file and without advice to delete it (it may be a live run's): a
    /// run that records no model (a pretraining run's), a model entry that is not "TYPE {architecture}", an unknown type,
    /// weights that do not fit the recorded model (checked before the model is allocated), a truncated file; an identity
    /// check that throws stops the load first.
    /// </summary>
    [Fact]
    public void RunsWithoutAUsableModel_AreRefused_WithOneMessageNamingTheFile()
    {
        using var dir = new TempDirectory();
        using var linear = nn.Linear(3, 2);
        using var rbm = boltzmann.RBM(4, 3);
        var (type, architecture) = Checkpoint.Describe(rbm);
        string Save(string name, string kind, Dictionary<string, string> identity, nn.Module module)
        {
            var p = dir.File(name);
            RunCheckpoint.Save(p, kind, identity, [new ModuleState("model", module), new NoLoop()]);
            return p;
        }
        var cases = new (string Path, string Expected)[]
        {
            (Save("pretraining.ckpt", "pretraining", new() { ["layers"] = "2" }, linear), "a pretraining run checkpoint records no model to rebuild"),
            (Save("garbled.ckpt", "rbm", new() { ["model"] = "RBM" }, rbm), "the identity's model entry is not 'TYPE {architecture}'"),
            (Save("json.ckpt", "rbm", new() { ["model"] = "RBM {not json" }, rbm), "the identity's model entry is not valid JSON"),
            (Save("unknown.ckpt", "rbm", new() { ["model"] = "Widget {}" }, rbm), "unknown model_type 'Widget'"),
            (Save("misfit.ckpt", "rbm", new() { ["model"] = $"{type} {architecture.ToJsonString()}" }, linear), "the weights are not those of the RBM"),
            // Sizes that would allocate 8 GB: refused from the saved tensors' shapes before any model is built.
            (Save("huge.ckpt", "rbm", new() { ["model"] = $"{type} {Huge(architecture).ToJsonString()}" }, rbm), "hidden_bias: expected (500000000), found (3)"),
        };
        foreach (var (p, expected) in cases)
        {
            var e = Assert.Throws<CheckpointException>(() => RunCheckpoint.LoadModel(p));
            Assert.Contains(p, e.Message);
            Assert.Contains(expected, e.Message);
            Assert.DoesNotContain("Delete", e.Message);
        }
        var good = Save("good.ckpt", "rbm", new() { ["model"] = $"{type} {architecture.ToJsonString()}" }, rbm);
        var bytes = File.ReadAllBytes(good);
        var cut = dir.File("cut.ckpt");
        File.WriteAllBytes(cut, bytes.AsSpan(0, bytes.Length - 5).ToArray());
        var t = Assert.Throws<CheckpointException>(() => RunCheckpoint.LoadModel(cut));
        Assert.Contains("truncated", t.Message);
        Assert.DoesNotContain("Delete", t.Message);
        string? kindSeen = null;
        Assert.Throws<InvalidOperationException>(() => RunCheckpoint.LoadModel(good, checkIdentity: (kind, _) => { kindSeen = kind; throw new InvalidOperationException("refused"); }));
        Assert.Equal("rbm", kindSeen);
        using var ok = RunCheckpoint.LoadModel(good);
        AssertSameParameters(rbm, ok.Model, "the saved RBM and the loaded one");
        Assert.Equal((0, false, "after epoch 0"), (ok.EpochsDone, ok.Finished, ok.Progress));
    }

    /// <summary>The architecture with n_hidden = 500,000,000.</summary>
    private static System.Text.Json.Nodes.JsonObject Huge(System.Text.Json.Nodes.JsonObject architecture)
    {
        var copy = (System.Text.Json.Nodes.JsonObject)architecture.DeepClone();
        copy["n_hidden"] = 500_000_000;
        return copy;
    }

    /// <summary>A loop record of a run that has done no epoch (what a loop writes has these two values and more).</summary>
    private sealed class NoLoop : IStateful
    {
        public string StateName => "loop";

        public void SaveState(StateSection section)
        {
            section.Values["epochs_done"] = 0;
            section.Values["finished"] = false;
        }

        public Action PrepareLoad(StateSection section) => throw new NotSupportedException();
    }
}

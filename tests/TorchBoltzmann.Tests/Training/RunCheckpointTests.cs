using System.Text;
using System.Text.Json.Nodes;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Tests.Fuzz;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

/// <summary>The run-checkpoint format (<see cref="RunCheckpoint"/>) and the fine-tuner's reader of the format before it.</summary>
public class RunCheckpointTests
{
    private static readonly Dictionary<string, string> Tag = new() { ["data"] = "fuzz" };

    private static List<Tensor> Weights(nn.Module m) => m.parameters().Select(p => p.detach().clone()).ToList();

    private static bool Same(Tensor a, Tensor b)
    {
        using var scope = torch.NewDisposeScope();
        return a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.cpu().contiguous().bytes.SequenceEqual(b.cpu().contiguous().bytes);
    }

    /// <summary>
    /// The committed fixture is a two-epoch fine-tuning run's TBMFT 2 checkpoint after epoch 1, written by the library
    /// before the run checkpoint (manual_seed 4, then the model, then Fit). Continuing from it must end bit for bit as
    /// the same run unbroken does now, and leave a run checkpoint behind.
    /// </summary>
    [Fact]
    public void FineTuner_ContinuesFromACheckpointOfTheEarlierFormat_AsAnUnbrokenRun()
    {
        var (x, y) = FineTuningCheckpointFuzzTests.Data();
        using (x) using (y)
        {
            var options = FineTuningCheckpointFuzzTests.Options(2);
            torch.manual_seed(4);
            using var whole = FineTuningCheckpointFuzzTests.Model();
            ClassifierHistory unbroken;
            using (var tuner = new FineTuner(whole, options) { CheckpointTag = Tag }) unbroken = tuner.Fit(x, y);

            using var dir = new TempDirectory();
            var path = dir.File("old.ckpt");
            File.Copy(FineTuningCheckpointFuzzTests.Fixture("finetune-v2-midrun.ckpt"), path);
            Assert.False(RunCheckpoint.IsRunCheckpoint(path));
            torch.manual_seed(12345);   // the checkpoint must bring back its own global generator state
            using var resumedModel = FineTuningCheckpointFuzzTests.Model();
            ClassifierHistory resumed;
            using (var tuner = new FineTuner(resumedModel, options) { CheckpointPath = path, CheckpointTag = Tag }) resumed = tuner.Fit(x, y);

            var a = Weights(whole);
            var b = Weights(resumedModel);
            for (int i = 0; i < a.Count; i++) Assert.True(Same(a[i], b[i]), $"parameter {i} differs from the unbroken run");
            Assert.Equal(unbroken.Epochs.Select(e => e.TrainLoss), resumed.Epochs.Select(e => e.TrainLoss));
            Assert.Equal((unbroken.BestEpoch, unbroken.RestoredBest), (resumed.BestEpoch, resumed.RestoredBest));
            Assert.True(RunCheckpoint.IsRunCheckpoint(path), "the finished run's checkpoint is written in the run-checkpoint format");
            foreach (var t in a.Concat(b)) t.Dispose();
        }
    }

    /// <summary>
    /// Behaviour unchanged across the move to the loop: the committed finished fixture holds the final weights and
    /// history of a one-epoch run (manual_seed 3) by the fine-tuner before it ran on the loop (shuffling, SGD momentum,
    /// iterate averaging, validation with best weights). The same run now ends with the same weights and loss, bit for bit.
    /// </summary>
    [Fact]
    public void FineTuner_OnTheLoop_EndsAsTheFineTunerBeforeIt_BitForBit()
    {
        var (x, y) = FineTuningCheckpointFuzzTests.Data();
        using (x) using (y)
        {
            var options = FineTuningCheckpointFuzzTests.Options(1);
            torch.manual_seed(3);
            using var now = FineTuningCheckpointFuzzTests.Model();
            ClassifierHistory trained;
            using (var tuner = new FineTuner(now, options) { CheckpointTag = Tag }) trained = tuner.Fit(x, y);

            using var dir = new TempDirectory();
            var path = dir.File("old.ckpt");
            File.Copy(FineTuningCheckpointFuzzTests.Fixture("finetune-v2-finished.ckpt"), path);
            using var before = FineTuningCheckpointFuzzTests.Model();
            ClassifierHistory loaded;
            using (var tuner = new FineTuner(before, options) { CheckpointPath = path, CheckpointTag = Tag }) loaded = tuner.Fit(x, y);

            var a = Weights(now);
            var b = Weights(before);
            for (int i = 0; i < a.Count; i++) Assert.True(Same(a[i], b[i]), $"parameter {i} differs from the earlier fine-tuner's");
            Assert.Equal(loaded.Epochs.Select(e => e.TrainLoss), trained.Epochs.Select(e => e.TrainLoss));
            Assert.Equal(loaded.Epochs.Select(e => e.ValidationError), trained.Epochs.Select(e => e.ValidationError));
            foreach (var t in a.Concat(b)) t.Dispose();
        }
    }

    /// <summary>The header of a run checkpoint, edited by <paramref name="edit"/> and written back.</summary>
    private static void EditHeader(string path, Action<JsonObject> edit)
    {
        var parts = RunCheckpointFuzzTests.Split(File.ReadAllBytes(path));
        var header = JsonNode.Parse(parts.Header)!.AsObject();
        edit(header);
        File.WriteAllBytes(path, RunCheckpointFuzzTests.Join(parts.Magic, parts.Version, header.ToJsonString(), parts.Rest));
    }

    private static JsonObject Section(JsonObject header, string name)
        => header["sections"]!.AsArray().Select(s => s!.AsObject()).First(s => s["name"]!.GetValue<string>() == name);

    /// <summary>A run record that cannot be (what the loop continues from) is refused, naming it, before anything changes.</summary>
    [Theory]
    [InlineData("epochs_done", "-3", "-3 epochs done")]
    [InlineData("history", "[null]", "expected the records of 1 epochs, found 0")]
    [InlineData("history", "null", "expected the records of 1 epochs, found 0")]
    [InlineData("finished", "\"yes\"", "value 'finished' is missing or not a Boolean")]
    public void Fit_RunRecordThatCannotBe_IsACheckpointException(string field, string json, string expected)
    {
        var (x, y) = FineTuningCheckpointFuzzTests.Data();
        using (x) using (y)
        {
            using var dir = new TempDirectory();
            var path = dir.File("run.ckpt");
            using (var m = FineTuningCheckpointFuzzTests.Model())
            using (var tuner = new FineTuner(m, FineTuningCheckpointFuzzTests.Options(1)) { CheckpointPath = path })
                tuner.Fit(x, y);
            EditHeader(path, h =>
            {
                var values = Section(h, "loop")["values"]!.AsObject();
                values["finished"] = false;
                values[field] = JsonNode.Parse(json);
            });
            using var model = FineTuningCheckpointFuzzTests.Model();
            var before = Weights(model);
            using var tuner2 = new FineTuner(model, FineTuningCheckpointFuzzTests.Options(2)) { CheckpointPath = path };
            var e = Assert.Throws<CheckpointException>(() => tuner2.Fit(x, y));
            Assert.Contains(expected, e.Message);
            Assert.Contains(path, e.Message);
            var after = Weights(model);
            for (int i = 0; i < before.Count; i++) Assert.True(Same(before[i], after[i]), $"parameter {i} changed");
            foreach (var t in before.Concat(after)) t.Dispose();
        }
    }

    [Fact]
    public void Fit_CheckpointOfAnotherKindOfRun_IsRefusedNamingBoth()
    {
        using var dir = new TempDirectory();
        var path = dir.File("run.ckpt");
        using var g = new Generator(3);
        using var data = torch.rand(20, 6, generator: g).lt(0.5).to_type(ScalarType.Float32);
        using (var rbm = boltzmann.RBM(6, 4))
        using (var trainer = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 1, BatchSize = 5 }) { CheckpointPath = path })
            trainer.Fit(data);
        var (x, y) = FineTuningCheckpointFuzzTests.Data();
        using (x) using (y)
        using (var m = FineTuningCheckpointFuzzTests.Model())
        using (var tuner = new FineTuner(m, FineTuningCheckpointFuzzTests.Options(1)) { CheckpointPath = path })
        {
            var e = Assert.Throws<CheckpointException>(() => tuner.Fit(x, y));
            Assert.Contains("is the checkpoint of a rbm run, not of a fine-tuning run", e.Message);
        }
    }

    [Fact]
    public void Restore_SectionMissingOrUnexpected_IsRefusedNamingIt()
    {
        using var dir = new TempDirectory();
        var path = dir.File("run.ckpt");
        using var a = nn.Linear(3, 2);
        using var b = nn.Linear(3, 2);
        var identity = new Dictionary<string, string> { ["run"] = "1" };
        RunCheckpoint.Save(path, "test", identity, [new ModuleState("a", a)]);
        var e = Assert.Throws<CheckpointException>(() => RunCheckpoint.Restore(path, "test", identity, [new ModuleState("a", a), new ModuleState("b", b)]));
        Assert.Contains("missing b", e.Message);
        e = Assert.Throws<CheckpointException>(() => RunCheckpoint.Restore(path, "test", identity, [new ModuleState("b", b)]));
        Assert.Contains("missing b, unexpected a", e.Message);
        e = Assert.Throws<CheckpointException>(() => RunCheckpoint.Restore(path, "test", new Dictionary<string, string> { ["run"] = "2" }, [new ModuleState("a", a)]));
        Assert.Contains("run = 1 in the checkpoint, 2 now", e.Message);

        // Saved and restored: b gets a's weights, bit for bit.
        RunCheckpoint.Restore(path, "test", identity, [new ModuleState("a", b)]);
        Assert.True(Same(a.weight!, b.weight!) && Same(a.bias!, b.bias!), "restored weights differ from the saved ones");
    }

    /// <summary>
    /// LoadSections loads the components asked for, whatever else the file holds and whatever its identity (handed to the
    /// check first: a check that throws leaves every component as it was); another kind, a missing section or a section a
    /// component refuses is a CheckpointException naming it, without advice to delete the file, and changes nothing.
    /// </summary>
    [Fact]
    public void LoadSections_LoadsTheComponentsAskedFor_AfterTheIdentityCheck_AndRefusesAnotherKindOrAMissingSection()
    {
        using var dir = new TempDirectory();
        var path = dir.File("run.ckpt");
        using var model = nn.Linear(3, 2);
        using var other = nn.Linear(4, 1);
        RunCheckpoint.Save(path, "test", new Dictionary<string, string> { ["run"] = "1" }, [new ModuleState("model", model), new ModuleState("other", other)]);

        using var into = nn.Linear(3, 2);
        var initial = Weights(into);
        bool Unchanged() => Weights(into).Zip(initial).All(p => Same(p.First, p.Second));
        Assert.Throws<InvalidOperationException>(() => RunCheckpoint.LoadSections(path, "test", [new ModuleState("model", into)],
            identity => throw new InvalidOperationException($"refused run {identity["run"]}")));
        Assert.True(Unchanged(), "a refused identity left the module changed");
        var e = Assert.Throws<CheckpointException>(() => RunCheckpoint.LoadSections(path, "up-down", [new ModuleState("model", into)]));
        Assert.Contains("is the checkpoint of a test run, not of a up-down run", e.Message);
        e = Assert.Throws<CheckpointException>(() => RunCheckpoint.LoadSections(path, "test", [new ModuleState("model", into), new ModuleState("chains", other)]));
        Assert.Contains("no section 'chains' (it holds model, other)", e.Message);
        using var wrongShape = nn.Linear(5, 2);
        e = Assert.Throws<CheckpointException>(() => RunCheckpoint.LoadSections(path, "test", [new ModuleState("model", wrongShape)]));
        Assert.Contains("section 'model'", e.Message);
        Assert.DoesNotContain("Delete", e.Message);
        Assert.True(Unchanged(), "a refused load changed the module");

        string? seen = null;
        RunCheckpoint.LoadSections(path, "test", [new ModuleState("model", into)], identity => seen = identity["run"]);
        Assert.Equal("1", seen);
        Assert.True(Same(model.weight!, into.weight!) && Same(model.bias!, into.bias!), "the model section was not loaded bit for bit");
    }
}

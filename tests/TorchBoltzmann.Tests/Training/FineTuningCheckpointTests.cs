using System.Text;
using TorchBoltzmann.IO;
using TorchBoltzmann.Tests.IO;
using TorchBoltzmann.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

public sealed class FineTuningCheckpointTests
{
    private static void Step(Linear m, optim.Optimizer o, ulong seed)
    {
        using var scope = torch.NewDisposeScope();
        o.zero_grad();
        using var g = new Generator(seed);
        m.forward(torch.rand(5, 4, generator: g)).pow(2).sum().backward();
        o.step();
    }

    private static byte[] OptimizerState(optim.Optimizer o)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true)) ((OptimizerHelper)o).save_state_dict(w);
        return ms.ToArray();
    }

    [Fact]
    public void Load_OptimizerSectionCutShort_OrACorruptGeneratorState_ChangesNothing()
    {
        using var dir = new TorchBoltzmann.Tests.Data.TempDirectory();
        var path = dir.File("run.ckpt");
        var options = new ClassifierTrainingOptions { Epochs = 2, ValidationCount = 0 };
        var id = new FineTuningCheckpoint.Identity(options, null, 5, torch.CPU);
        var state = new FineTuningCheckpoint.State(1, false, [], 0, null, 0, false, false);

        // The run that wrote the checkpoint: lr 0.1, momentum buffers from one step.
        torch.manual_seed(1);
        using var writerGen = new Generator(11);
        using (var m1 = nn.Linear(4, 3))
        using (var o1 = optim.SGD(m1.parameters(), 0.1, momentum: 0.9))
        {
            Step(m1, o1, 1);
            FineTuningCheckpoint.Save(path, m1, o1, id, state, writerGen, []);
        }
        var whole = File.ReadAllBytes(path);

        // The run asked to continue: another model, lr 0.5, its own momentum buffers and generators.
        torch.manual_seed(2);
        using var m2 = nn.Linear(4, 3);
        using var o2 = optim.SGD(m2.parameters(), 0.5, momentum: 0.9);
        Step(m2, o2, 2);
        using var gen = new Generator(22);
        using var w0 = m2.weight!.detach().clone();
        using var b0 = m2.bias!.detach().clone();
        var opt0 = OptimizerState(o2);
        using var global0 = torch.get_rng_state();
        using var own0 = gen.get_state();

        void AssertUnchanged(string what)
        {
            TestUtil.AllClose(w0, m2.weight!, 0, $"weight after {what}");
            TestUtil.AllClose(b0, m2.bias!, 0, $"bias after {what}");
            Assert.True(opt0.AsSpan().SequenceEqual(OptimizerState(o2)), $"optimizer state changed by {what}");
            using var global = torch.get_rng_state();
            using var own = gen.get_state();
            Assert.True(global0.bytes.SequenceEqual(global.bytes), $"global generator changed by {what}");
            Assert.True(own0.bytes.SequenceEqual(own.bytes), $"run's generator changed by {what}");
        }

        // (1) The file cut inside its last section, the optimizer's state: the tensors before it read whole.
        File.WriteAllBytes(path, whole[..^8]);
        Assert.Throws<CheckpointException>(() => FineTuningCheckpoint.Load(path, m2, o2, id, gen, _ => []));
        AssertUnchanged("a cut optimizer section");

        // (2) A generator state that is not base64 (same length, so the header still parses).
        var corrupt = (byte[])whole.Clone();
        var key = Encoding.ASCII.GetBytes("\"GlobalRng\":\"");
        int at = corrupt.AsSpan().IndexOf(key);
        Assert.True(at > 0, "the header names GlobalRng");
        corrupt[at + key.Length] = (byte)'!';
        File.WriteAllBytes(path, corrupt);
        Assert.Throws<CheckpointException>(() => FineTuningCheckpoint.Load(path, m2, o2, id, gen, _ => []));
        AssertUnchanged("a corrupt generator state");

        // The whole file still loads: the writer's weights, lr and generator state arrive.
        File.WriteAllBytes(path, whole);
        FineTuningCheckpoint.Load(path, m2, o2, id, gen, _ => []);
        Assert.Equal(0.1, o2.ParamGroups.First().LearningRate, 12);
        Assert.False(opt0.AsSpan().SequenceEqual(OptimizerState(o2)), "the checkpoint's optimizer state was loaded");
    }

    /// <summary>
    /// A fine-tuning checkpoint save killed before any one of its file operations (every write of the header, tensors
    /// and optimizer state, the flush, the rename), for every operation in turn, leaves the previous checkpoint, which
    /// loads whole: its epoch count, exactly its weights and exactly its optimizer state (never a torn mix); the save
    /// that completes replaces it; and the next save leaves the checkpoint alone in its directory.
    /// </summary>
    [Fact]
    public void Save_CrashedAtEveryOperation_LeavesTheOldCheckpointWhole_AndTheNextSaveRemovesTheLeftovers()
    {
        using var dir = new TorchBoltzmann.Tests.Data.TempDirectory();
        var path = dir.File("run.ckpt");
        var options = new ClassifierTrainingOptions { Epochs = 3, ValidationCount = 0 };
        var id = new FineTuningCheckpoint.Identity(options, null, 5, torch.CPU);
        // Three states of a run: after 1, 2 and 3 optimizer steps, each checkpointed as that many epochs done.
        var runs = new List<(Linear m, optim.Optimizer o)>();
        try
        {
            for (int k = 0; k < 3; k++)
            {
                torch.manual_seed(1);
                var m = nn.Linear(4, 3);
                var o = optim.SGD(m.parameters(), 0.1, momentum: 0.9);
                for (int s = 0; s <= k; s++) Step(m, o, (ulong)(s + 1));
                runs.Add((m, o));
            }
            void Save(int k)
            {
                using var gen = new Generator(11);
                FineTuningCheckpoint.Save(path, runs[k].m, runs[k].o, id, new FineTuningCheckpoint.State(k + 1, false, [], 0, null, 0, false, false), gen, []);
            }
            int Loaded(string what)
            {
                torch.manual_seed(2);
                using var m = nn.Linear(4, 3);
                using var o = optim.SGD(m.parameters(), 0.1, momentum: 0.9);
                using var gen = new Generator(22);
                int k = FineTuningCheckpoint.Load(path, m, o, id, gen, _ => []).EpochsDone - 1;
                Assert.InRange(k, 0, 2);
                TestUtil.AllClose(runs[k].m.weight!, m.weight!, 0, $"{what}: weight of state {k}");
                TestUtil.AllClose(runs[k].m.bias!, m.bias!, 0, $"{what}: bias of state {k}");
                Assert.True(OptimizerState(runs[k].o).AsSpan().SequenceEqual(OptimizerState(o)), $"{what}: the optimizer state of state {k}");
                return k;
            }

            bool leftovers = false;
            int n = 1;
            for (; n < 500; n++)
            {
                foreach (var f in Directory.GetFiles(dir.Path)) File.Delete(f);
                Save(0);
                var crash = new CrashingFileOperations(n);
                bool done = crash.Run(() => Save(1));
                var what = $"crash at {n} ({crash.Log.LastOrDefault()})";
                Assert.Equal(done ? 1 : 0, Loaded(what));
                leftovers |= Directory.GetFiles(dir.Path).Length > 1;
                Save(2);
                Assert.Equal(2, Loaded($"the save after the {what}"));
                Assert.Equal([path], Directory.GetFiles(dir.Path));
                if (done) break;
            }
            Assert.InRange(n, 10, 499);   // the header, every tensor and the optimizer's state are written in pieces
            Assert.True(leftovers, "some crash left a temporary for the next save to remove");
        }
        finally
        {
            foreach (var (m, o) in runs)
            {
                o.Dispose();
                m.Dispose();
            }
        }
    }
}

using System.Text;
using TorchBoltzmann.IO;
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
}

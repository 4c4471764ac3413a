using Xunit.Abstractions;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TorchBoltzmann.IO;
using TorchBoltzmann.Tests.Training;
using TorchBoltzmann.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Fuzz;

/// <summary>
/// Mutation fuzzing of the fine-tuning checkpoint of the format before the run checkpoint (TBMFT 2), which FineTuner
/// still reads for files written before; read where users meet it: <see cref="FineTuner.Fit"/> with a
/// <see cref="FineTuner.CheckpointPath"/> that holds the mutated file. Every case must continue the run, or be refused
/// with <see cref="CheckpointException"/> leaving the model and both generators as they were (or, when the run
/// continued from weights that make the loss NaN, end in the documented <see cref="TrainingDivergedException"/>), within
/// the harness's time and memory bounds.
/// </summary>
public sealed class FineTuningCheckpointFuzzTests(ITestOutputHelper output)
{
    private const int CiCases = 1500;
    private const string File = "run.ckpt";

    private static readonly Dictionary<string, string> Tag = new() { ["data"] = "fuzz" };

    /// <summary>The header's record of where the run is (what the loop continues from), where JSON mutations focus.</summary>
    private static bool RunState(string path) =>
        new[] { "EpochsDone", "Finished", "Epochs", "BestEpoch", "BestError", "SinceBest", "StoppedEarly", "Restored", "Tensors" }
            .Any(k => path == "$." + k || path.StartsWith("$." + k + "[", StringComparison.Ordinal) || path.StartsWith("$." + k + ".", StringComparison.Ordinal));

    internal static ClassifierTrainingOptions Options(int epochs) => new()
    {
        Epochs = epochs, BatchSize = 4, ValidationCount = 4, AverageDecay = 0.5, Momentum = 0.9, LearningRate = 0.1, Seed = 7,
    };

    internal static Sequential Model() => nn.Sequential(("fc1", nn.Linear(6, 5)), ("sigmoid1", nn.Sigmoid()), ("fc2", nn.Linear(5, 3)));

    internal static (Tensor x, Tensor y) Data()
    {
        using var g = new Generator(11);
        return (torch.rand(16, 6, generator: g), torch.randint(0, 3, 16, generator: g));
    }

    /// <summary>
    /// Two checkpoints FineTuner wrote in this format before it moved to the run checkpoint (committed fixtures, written
    /// by the library at that commit with these options, model and data): a finished one-epoch run (manual_seed 3), and a
    /// two-epoch run's file after its first epoch (manual_seed 4, not finished). Both hold the model, best weights,
    /// iterate averages and SGD momentum buffers.
    /// </summary>
    internal static (byte[] finished, byte[] midRun) Seeds() =>
        (System.IO.File.ReadAllBytes(Fixture("finetune-v2-finished.ckpt")), System.IO.File.ReadAllBytes(Fixture("finetune-v2-midrun.ckpt")));

    /// <summary>The path of a committed fixture (copied beside the test assembly).</summary>
    internal static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fuzz", "Fixtures", name);

    /// <summary>The parts of a checkpoint: magic, version, JSON header, then the tensors and optimizer section.</summary>
    internal sealed record Parts(string Magic, int Version, string Header, byte[] Rest, List<int> TensorLengthOffsets, List<int> OptimizerNumberOffsets);

    internal static Parts Split(byte[] file)
    {
        using var r = new BinaryReader(new MemoryStream(file), Encoding.UTF8);
        string magic = r.ReadString();
        int version = r.ReadInt32();
        string header = r.ReadString();
        int restAt = (int)r.BaseStream.Position;
        var lengths = new List<int>();
        int tensors = JsonDocument.Parse(header).RootElement.GetProperty("Tensors").GetArrayLength();
        for (int i = 0; i < tensors; i++)
        {
            lengths.Add((int)r.BaseStream.Position - restAt);
            int n = r.ReadInt32();
            r.BaseStream.Position += n;
        }
        // SGD's section (TorchSharp 0.107): name, LEB128 group and state counts, per group 5 doubles and 2 bools, per
        // parameter a bool and, when true, a tensor (LEB128 dtype, rank, dimensions; raw bytes).
        var numbers = new List<int>();
        r.ReadString();
        numbers.Add((int)r.BaseStream.Position - restAt);
        long groups = Mutations.ReadLeb128(r);
        numbers.Add((int)r.BaseStream.Position - restAt);
        long states = Mutations.ReadLeb128(r);
        r.BaseStream.Position += groups * (5 * 8 + 2);
        for (long s = 0; s < states; s++)
        {
            if (!r.ReadBoolean()) continue;
            numbers.Add((int)r.BaseStream.Position - restAt);
            Mutations.ReadLeb128(r);
            numbers.Add((int)r.BaseStream.Position - restAt);
            long rank = Mutations.ReadLeb128(r), numel = 1;
            for (long d = 0; d < rank; d++)
            {
                numbers.Add((int)r.BaseStream.Position - restAt);
                numel *= Mutations.ReadLeb128(r);
            }
            r.BaseStream.Position += numel * 4;
        }
        return new Parts(magic, version, header, file[restAt..], lengths, numbers);
    }

    internal static byte[] Join(string magic, int version, string header, byte[] rest)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(magic);
            w.Write(version);
            w.Write(header);
            w.Write(rest);
        }
        return ms.ToArray();
    }

    [Fact]
    public void Fit_MutatedRunCheckpoints_ContinueOrRefuseWithCheckpointException_ChangingNothing()
    {
        var (finished, midRun) = Seeds();
        var seeds = new[] { ("finished", finished, Split(finished)), ("mid-run", midRun, Split(midRun)) };
        var pool = new List<byte[]> { finished, midRun };
        var (x, y) = Data();
        using (x) using (y)
        {
            using var runner = new FuzzRunner("finetuning");
            var warmUp = seeds.Select(s => FitCase(s.Item2, $"valid {s.Item1} seed", x, y)).ToList();
            var failures = runner.Run(FuzzConfig.Cases(CiCases), warmUp, (i, rng) =>
            {
                var (kind, file, parts) = rng.Pick(seeds);
                var log = new List<string> { $"{kind} seed" };
                int mode = rng.Next(100);
                if (mode < 35)
                {
                    string header = parts.Header;
                    int ops = 1 + rng.Next(2);
                    for (int k = 0; k < ops; k++)
                    {
                        try { header = JsonMutations.Mutate(header, rng, log, RunState); }
                        catch (JsonException) { break; }
                    }
                    file = Join(parts.Magic, parts.Version, header, parts.Rest);
                }
                else if (mode < 70)
                {
                    file = Mutations.Mutate(file, rng, pool, log);
                }
                else if (mode < 80)
                {
                    int at = rng.Pick(parts.TensorLengthOffsets);
                    int v = rng.Pick(Mutations.InterestingInt32);
                    var rest = (byte[])parts.Rest.Clone();
                    BinaryPrimitives.WriteInt32LittleEndian(rest.AsSpan(at), v);
                    log.Add($"tensor length at section offset {at} := {v}");
                    file = Join(parts.Magic, parts.Version, parts.Header, rest);
                }
                else if (mode < 92)
                {
                    int at = rng.Pick(parts.OptimizerNumberOffsets);
                    bool insert = rng.Chance(0.3);
                    var value = rng.Chance(0.7) ? rng.Pick(Mutations.HugeLeb128) : [rng.Pick(Mutations.InterestingBytes)];
                    log.Add($"optimizer section: {(insert ? "insert" : "overwrite")} {Convert.ToHexString(value)} at section offset {at}");
                    var rest = insert ? Mutations.Insert(parts.Rest, at, value) : Mutations.Overwrite(parts.Rest, at, value);
                    file = Join(parts.Magic, parts.Version, parts.Header, rest);
                }
                else
                {
                    var other = rng.Pick(seeds);
                    int cut = rng.Next(file.Length + 1), from = rng.Next(other.Item2.Length + 1);
                    log.Add($"splice: first {cut} bytes, then the {other.Item1} seed from {from}");
                    file = [.. file.AsSpan(0, cut), .. other.Item2.AsSpan(from)];
                }
                return FitCase(file, string.Join("; ", log), x, y);
            });
            output.WriteLine(runner.Summary);
            Assert.True(failures.Count == 0, string.Join("\n", failures));
        }
    }

    private static FuzzCase FitCase(byte[] file, string description, Tensor x, Tensor y) => new()
    {
        Description = description,
        Files = new Dictionary<string, byte[]?> { [File] = file },
        JustifiedBytes = 8L * file.Length,
        Judge = (e, dir) => e.GetType() == typeof(TrainingDivergedException) ? null
            : e.GetType() != typeof(CheckpointException) ? "undocumented exception type"
            : !e.Message.Contains(Path.Combine(dir, File), StringComparison.Ordinal) ? "the message does not name the file" : null,
        Read = dir =>
        {
            using var model = Model();
            using var generator = new Generator(7);
            var before = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.bytes.ToArray());
            using var globalBefore = torch.get_rng_state();
            using var ownBefore = generator.get_state();
            using var tuner = new FineTuner(model, Options(2), generator: generator) { CheckpointPath = Path.Combine(dir, File), CheckpointTag = Tag };
            try { tuner.Fit(x, y); }
            catch (CheckpointException)
            {
                foreach (var (name, t) in model.state_dict())
                    if (!t.bytes.SequenceEqual(before[name])) throw new FuzzPropertyException($"the refused checkpoint changed the model's '{name}'");
                using var globalAfter = torch.get_rng_state();
                using var ownAfter = generator.get_state();
                if (!globalBefore.bytes.SequenceEqual(globalAfter.bytes)) throw new FuzzPropertyException("the refused checkpoint changed the global generator");
                if (!ownBefore.bytes.SequenceEqual(ownAfter.bytes)) throw new FuzzPropertyException("the refused checkpoint changed the run's generator");
                throw;
            }
        },
    };
}

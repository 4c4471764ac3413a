using Xunit.Abstractions;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchBoltzmann.Data;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Tests.Training;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Fuzz;

/// <summary>
/// Mutation fuzzing of the run checkpoint (<see cref="RunCheckpoint"/>, TBMRUN), read where users meet it:
/// <see cref="FineTuner.Fit"/>, <see cref="RbmTrainer.Fit"/> and <see cref="BoltzmannTrainer.Fit"/> with a <c>CheckpointPath</c> that holds the mutated
/// file. Every case must continue the run, or be refused with <see cref="CheckpointException"/> leaving the model and the
/// generators as they were (or, when the run continued from weights that make the loss NaN, end in the documented
/// <see cref="TrainingDivergedException"/>), within the harness's time and memory bounds.
/// </summary>
public sealed class RunCheckpointFuzzTests(ITestOutputHelper output)
{
    private const int CiCases = 1200;
    private const string File = "run.ckpt";
    private static readonly Dictionary<string, string> Tag = new() { ["data"] = "fuzz" };

    /// <summary>The parts of a run checkpoint: magic, version, JSON header, and the data after it, with the offsets
    /// (within the data) of every tensor's and blob's int32 byte count.</summary>
    internal sealed record Parts(string Magic, int Version, string Header, byte[] Rest, List<int> LengthOffsets);

    internal static Parts Split(byte[] file)
    {
        using var r = new BinaryReader(new MemoryStream(file), Encoding.UTF8);
        string magic = r.ReadString();
        int version = r.ReadInt32();
        string header = r.ReadString();
        int restAt = (int)r.BaseStream.Position;
        var lengths = new List<int>();
        foreach (var section in JsonNode.Parse(header)!["sections"]!.AsArray())
        {
            int items = section!["tensors"]!.AsArray().Count + section["blobs"]!.AsArray().Count;
            for (int i = 0; i < items; i++)
            {
                lengths.Add((int)r.BaseStream.Position - restAt);
                int n = r.ReadInt32();
                r.BaseStream.Position += n;
            }
        }
        return new Parts(magic, version, header, file[restAt..], lengths);
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

    /// <summary>
    /// Three checkpoints written by the library: a finished one-epoch fine-tuning run, a two-epoch fine-tuning run's
    /// file after its first epoch (both with best weights, iterate averages, SGD momentum buffers and both generators),
    /// a PCD run of an RBM after its first of two epochs (folded momentum buffers, persistent chains), and a general
    /// Boltzmann machine's contrastive Hebbian run after its first of two epochs (its free-phase chains).
    /// </summary>
    internal static (byte[] finished, byte[] midRun, byte[] rbm, byte[] bm) Seeds()
    {
        using var dir = new Data.TempDirectory();
        var (x, y) = FineTuningCheckpointFuzzTests.Data();
        using (x) using (y)
        {
            torch.manual_seed(3);
            using (var m = FineTuningCheckpointFuzzTests.Model())
            using (var tuner = new FineTuner(m, FineTuningCheckpointFuzzTests.Options(1)) { CheckpointPath = dir.File("a.ckpt"), CheckpointTag = Tag })
                tuner.Fit(x, y);
            byte[]? mid = null;
            torch.manual_seed(4);
            using (var m = FineTuningCheckpointFuzzTests.Model())
            using (var tuner = new FineTuner(m, FineTuningCheckpointFuzzTests.Options(2)) { CheckpointPath = dir.File("b.ckpt"), CheckpointTag = Tag })
                tuner.Fit(x, y, progress: new CallbackProgress<ClassifierProgress>(p =>
                {
                    if (p.Epoch == 1 && p.EpochMetrics is not null) mid = System.IO.File.ReadAllBytes(dir.File("b.ckpt"));
                }));
            byte[]? rbm = null;
            using (var data = RbmData())
            using (var model = RbmModel())
            using (var trainer = new RbmTrainer(model, RbmOptions) { CheckpointPath = dir.File("c.ckpt") })
                trainer.Fit(data, progress: new CallbackProgress<TrainingProgress>(p =>
                {
                    if (p.Epoch == 1 && p.EpochMetrics is not null) rbm = System.IO.File.ReadAllBytes(dir.File("c.ckpt"));
                }));
            byte[]? bm = null;
            using (var data = BmData())
            using (var model = BmModel())
            using (var trainer = new BoltzmannTrainer(model, BmOptions) { CheckpointPath = dir.File("d.ckpt") })
                trainer.Fit(data, progress: new CallbackProgress<LoopProgress<BoltzmannEpochMetrics>>(p =>
                {
                    if (p.Epoch == 1 && p.EpochMetrics is not null) bm = System.IO.File.ReadAllBytes(dir.File("d.ckpt"));
                }));
            return (System.IO.File.ReadAllBytes(dir.File("a.ckpt")), mid!, rbm!, bm!);
        }
    }

    private static readonly RbmTrainingOptions RbmOptions = new() { Epochs = 2, BatchSize = 5, Persistent = true, MetricsSamples = 8, Seed = 3 };

    private static readonly BoltzmannTrainingOptions BmOptions = new()
    {
        Epochs = 2, BatchSize = 4, FreeChains = 6, ClampedBurnIn = 2, ClampedSamples = 1, MetricsEvery = 2, Seed = 3,
    };

    private static BoltzmannMachine BmModel()
    {
        using var g = new Generator(11);
        return boltzmann.BM(4, 2, generator: g);
    }

    private static Tensor BmData()
    {
        using var g = new Generator(17);
        using var u = torch.rand(8, 4, generator: g);
        return u.lt(0.5).to_type(ScalarType.Float32);
    }

    private static RBM RbmModel()
    {
        using var g = new Generator(9);
        return boltzmann.RBM(6, 4, generator: g);
    }

    private static Tensor RbmData()
    {
        using var g = new Generator(13);
        using var u = torch.rand(12, 6, generator: g);
        return u.lt(0.5).to_type(ScalarType.Float32);
    }

    /// <summary>Focus of the header mutations: the sections' records and tensor lists, and the identity.</summary>
    private static bool Focus(string path) => path.StartsWith("$.sections", StringComparison.Ordinal) || path.StartsWith("$.identity", StringComparison.Ordinal);

    [Fact]
    public void Fit_MutatedRunCheckpoints_ContinueOrRefuseWithCheckpointException_ChangingNothing()
    {
        var (finished, midRun, rbm, bm) = Seeds();
        var seeds = new[] { ("finished", finished, Split(finished)), ("mid-run", midRun, Split(midRun)), ("rbm", rbm, Split(rbm)), ("bm", bm, Split(bm)) };
        var pool = new List<byte[]> { finished, midRun, rbm, bm };
        var (x, y) = FineTuningCheckpointFuzzTests.Data();
        using var rbmData = RbmData();
        using var bmData = BmData();
        using (x) using (y)
        {
            using var runner = new FuzzRunner("runcheckpoint");
            var warmUp = seeds.Select(s => Case(s.Item1, s.Item2, $"valid {s.Item1} seed", x, y, rbmData, bmData)).ToList();
            var failures = runner.Run(FuzzConfig.Cases(CiCases), warmUp, (i, rng) =>
            {
                var (kind, file, parts) = rng.Pick(seeds);
                var log = new List<string> { $"{kind} seed" };
                int mode = rng.Next(100);
                if (mode < 40)
                {
                    string header = parts.Header;
                    int ops = 1 + rng.Next(2);
                    for (int k = 0; k < ops; k++)
                    {
                        try { header = JsonMutations.Mutate(header, rng, log, Focus); }
                        catch (JsonException) { break; }
                    }
                    file = Join(parts.Magic, parts.Version, header, parts.Rest);
                }
                else if (mode < 75)
                {
                    file = Mutations.Mutate(file, rng, pool, log);
                }
                else if (mode < 90)
                {
                    int at = rng.Pick(parts.LengthOffsets);
                    int v = rng.Pick(Mutations.InterestingInt32);
                    var rest = (byte[])parts.Rest.Clone();
                    BinaryPrimitives.WriteInt32LittleEndian(rest.AsSpan(at), v);
                    log.Add($"byte count at data offset {at} := {v}");
                    file = Join(parts.Magic, parts.Version, parts.Header, rest);
                }
                else
                {
                    var other = rng.Pick(seeds);
                    int cut = rng.Next(file.Length + 1), from = rng.Next(other.Item2.Length + 1);
                    log.Add($"splice: first {cut} bytes, then the {other.Item1} seed from {from}");
                    file = [.. file.AsSpan(0, cut), .. other.Item2.AsSpan(from)];
                }
                return Case(kind, file, string.Join("; ", log), x, y, rbmData, bmData);
            });
            output.WriteLine(runner.Summary);
            Assert.True(failures.Count == 0, string.Join("\n", failures));
        }
    }

    private static FuzzCase Case(string kind, byte[] file, string description, Tensor x, Tensor y, Tensor rbmData, Tensor bmData) => new()
    {
        Description = description,
        Files = new Dictionary<string, byte[]?> { [File] = file },
        JustifiedBytes = 8L * file.Length,
        Judge = (e, dir) => e.GetType() == typeof(TrainingDivergedException) ? null
            : e.GetType() != typeof(CheckpointException) ? "undocumented exception type"
            : !e.Message.Contains(Path.Combine(dir, File), StringComparison.Ordinal) ? "the message does not name the file" : null,
        Read = dir => Unchanged(kind == "rbm" ? RbmModel() : kind == "bm" ? BmModel() : FineTuningCheckpointFuzzTests.Model(), generator => kind == "rbm"
            ? new Action<nn.Module>(m =>
            {
                using var trainer = new RbmTrainer((RBM)m, RbmOptions, generator: generator) { CheckpointPath = Path.Combine(dir, File) };
                trainer.Fit(rbmData);
            })
            : kind == "bm" ? m =>
            {
                using var trainer = new BoltzmannTrainer((BoltzmannMachine)m, BmOptions, generator: generator) { CheckpointPath = Path.Combine(dir, File) };
                trainer.Fit(bmData);
            }
            : m =>
            {
                using var tuner = new FineTuner((nn.Module<Tensor, Tensor>)m, FineTuningCheckpointFuzzTests.Options(2), generator: generator) { CheckpointPath = Path.Combine(dir, File), CheckpointTag = Tag };
                tuner.Fit(x, y);
            }),
    };

    /// <summary>Runs <paramref name="fit"/> on <paramref name="model"/>; when it refuses the checkpoint, checks that the
    /// model, the run's generator and the global generator are as they were.</summary>
    private static void Unchanged(nn.Module model, Func<Generator, Action<nn.Module>> fit)
    {
        using var _ = model;
        using var generator = new Generator(7);
        var before = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.bytes.ToArray());
        using var globalBefore = torch.get_rng_state();
        using var ownBefore = generator.get_state();
        try { fit(generator)(model); }
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
    }
}

using System.Buffers.Binary;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using TorchBoltzmann.Data;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Fuzz;

/// <summary>
/// The failures the readers' fuzz tests found, each as a plain test of the input that showed it (seed 20260131 unless
/// said otherwise), so that it stays fixed whatever the fuzzers' mutations become.
/// </summary>
public sealed class FuzzRegressionTests
{
    /// <summary>
    /// mnist case 538 / idx case 66: a gzip IDX file of 40 bytes whose header declares 16,777,219 elements (one bit of
    /// the dimension flipped) got a 16 MiB buffer before the stream showed it holds 3 bytes. The reader must refuse it as
    /// truncated, allocating about what arrives.
    /// </summary>
    [Fact]
    public void IdxReader_GzipHeaderDeclaringMoreThanTheStreamHolds_IsRefusedWithoutAllocatingTheDeclaredSize()
    {
        using var dir = new Data.TempDirectory();
        byte[] raw = [0, 0, 0x08, 1, 0, 0, 0, 3, 4, 8, 2];   // labels [3]: 4, 8, 2
        BinaryPrimitives.WriteInt32BigEndian(raw.AsSpan(4), 0x0100_0003);
        var path = dir.File("labels.gz");
        using (var file = File.Create(path))
        using (var gz = new GZipStream(file, CompressionLevel.Optimal)) gz.Write(raw);

        Assert.Throws<InvalidDataException>(() => IdxReader.Read(path));   // JIT warm-up, outside the measurement
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(path));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Contains("truncated payload: expected 16777219 bytes", e.Message);
        Assert.True(allocated < 1 << 20, $"allocated {allocated:N0} bytes to refuse a {new FileInfo(path).Length}-byte file");
    }

    /// <summary>
    /// checkpoint case 53: a sidecar with a key written twice ("training": [1] before the real one) parsed, and the first
    /// access to the object threw ArgumentException ("An item with the same key has already been added") out of
    /// Checkpoint.Load. A duplicate key, at the top or nested, must be a CheckpointException saying the JSON is invalid.
    /// </summary>
    [Theory]
    [InlineData("\"training\":", "\"training\":[1],\"training\":")]
    [InlineData("\"n_classes\":", "\"n_classes\":2,\"n_classes\":")]
    public void Checkpoint_SidecarWithADuplicateKey_IsRefusedAsInvalidJson(string key, string duplicated)
    {
        using var dir = new Data.TempDirectory();
        var path = dir.File("dbn.pt");
        using (var dbn = new DBN([12, 8, 6], n_classes: 3, dtype: ScalarType.Float32)) Checkpoint.Save(dbn, path, new { epochs = 1 });
        var sidecar = Checkpoint.SidecarPath(path);
        var text = File.ReadAllText(sidecar).ReplaceLineEndings("").Replace(" ", "");
        Assert.Contains(key, text);
        File.WriteAllText(sidecar, text.Replace(key, duplicated));

        foreach (var read in new Action[] { () => Checkpoint.Load<DBN>(path).Dispose(), () => Checkpoint.Provenance(path), () => Checkpoint.ReadSidecar(path) })
        {
            var e = Assert.Throws<CheckpointException>(read);
            Assert.Contains("is not valid JSON", e.Message);
            Assert.Contains(sidecar, e.Message);
        }
    }

    /// <summary>
    /// checkpoint cases 39 and 56: weights whose tensor rank reads as 2^27 (LEB128 80 80 80 40), beside a sidecar whose
    /// hash matches them (or has none: both fields are optional), made TorchSharp allocate a 1 GiB array for the shape
    /// before comparing it, and read on for seconds. The state_dict must be refused before TorchSharp reads it.
    /// </summary>
    [Fact]
    public void Checkpoint_WeightsDeclaringAHugeTensorRank_AreRefusedBeforeAllocating()
    {
        using var dir = new Data.TempDirectory();
        var path = dir.File("dbn.pt");
        using (var dbn = new DBN([12, 8, 6], n_classes: 3, dtype: ScalarType.Float32)) Checkpoint.Save(dbn, path);
        var weights = File.ReadAllBytes(path);
        var key = System.Text.Encoding.UTF8.GetBytes("layers.0.hidden_bias");
        int rankAt = weights.AsSpan().IndexOf(key) + key.Length + 1;   // after the name, the dtype (one byte), the rank
        Assert.Equal(1, weights[rankAt]);
        new byte[] { 0x80, 0x80, 0x80, 0x40 }.CopyTo(weights, rankAt);
        File.WriteAllBytes(path, weights);
        var sidecar = JsonNode.Parse(File.ReadAllText(Checkpoint.SidecarPath(path)))!.AsObject();
        sidecar["weights_bytes"] = weights.Length;
        sidecar["weights_sha256"] = Convert.ToHexString(SHA256.HashData(weights)).ToLowerInvariant();
        File.WriteAllText(Checkpoint.SidecarPath(path), sidecar.ToJsonString());

        Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));   // JIT warm-up, outside the measurement
        long before = GC.GetAllocatedBytesForCurrentThread();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Contains(path, e.Message);   // refused by the header check (StateDictHeader) before the model is built
        Assert.True(allocated < 4 << 20, $"allocated {allocated:N0} bytes to refuse a {weights.Length}-byte file");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"took {clock.Elapsed}");
    }

    /// <summary>The identity (options, data) of the fine-tuning checkpoints of a Linear(4, 3) these tests write.</summary>
    private static FineTuningCheckpoint.Identity LinearIdentity()
        => new(new ClassifierTrainingOptions { Epochs = 2, ValidationCount = 0 }, null, 5, torch.CPU);

    /// <summary>Writes a fine-tuning checkpoint from the parts <see cref="FineTuningCheckpointParts"/> reads.</summary>
    private static void WriteFineTuningCheckpoint(string path, string magic, int version, JsonNode header, byte[] rest)
    {
        using var w = new BinaryWriter(File.Create(path), Encoding.UTF8);
        w.Write(magic);
        w.Write(version);
        w.Write(header.ToJsonString());
        w.Write(rest);
    }

    /// <summary>A fine-tuning checkpoint of a Linear(4, 3) after one SGD step with momentum, and its parts.</summary>
    private static (string magic, int version, JsonObject header, byte[] rest) FineTuningCheckpointParts(string path)
    {
        var id = LinearIdentity();
        using (var m = nn.Linear(4, 3))
        using (var o = optim.SGD(m.parameters(), 0.1, momentum: 0.9))
        using (var g = new Generator(11))
        {
            using (var scope = torch.NewDisposeScope())
            {
                m.forward(torch.ones(5, 4)).pow(2).sum().backward();
                o.step();   // the momentum buffers exist from here on
            }
            FineTuningCheckpoint.Save(path, m, o, id, new FineTuningCheckpoint.State(1, false, [], 0, null, 0, false, false), g, []);
        }
        using var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        string magic = r.ReadString();
        int version = r.ReadInt32();
        var header = JsonNode.Parse(r.ReadString())!.AsObject();
        return (magic, version, header, r.ReadBytes((int)(r.BaseStream.Length - r.BaseStream.Position)));
    }

    /// <summary>
    /// finetuning case 187 ($.GlobalRng := ""): libtorch's set_state refuses a generator state of the wrong length, or one
    /// whose Mersenne Twister fields are invalid, with a C++ exception that TorchSharp does not catch; the test host ended
    /// with "terminate called after throwing an instance of 'c10::Error'". Such a state must be a CheckpointException,
    /// raised before anything changes.
    /// </summary>
    [Theory]
    [InlineData("GlobalRng", "empty", "0 bytes, expected 5056")]
    [InlineData("Generator", "short", "3 bytes, expected 5056")]
    [InlineData("GlobalRng", "left=0", "not a valid Mersenne Twister state (seeded 1, left 0,")]
    [InlineData("Generator", "left=625", "left 625,")]
    [InlineData("GlobalRng", "seeded=0", "(seeded 0,")]
    [InlineData("Generator", "next=625", "next 625)")]
    public void FineTuningCheckpoint_GeneratorStateLibtorchWouldRefuse_IsACheckpointException_NotACrash(string field, string change, string expected)
    {
        using var dir = new Data.TempDirectory();
        var path = dir.File("run.ckpt");
        var (magic, version, header, rest) = FineTuningCheckpointParts(path);
        var state = Convert.FromBase64String(header[field]!.GetValue<string>());
        state = change switch
        {
            "empty" => [],
            "short" => [1, 2, 3],
            "left=0" => Set(state, 8, 0),
            "left=625" => Set(state, 8, 625),
            "seeded=0" => Set(state, 12, 0),
            _ => Set(state, 16, 625),
        };
        header[field] = Convert.ToBase64String(state);
        WriteFineTuningCheckpoint(path, magic, version, header, rest);

        var id = LinearIdentity();
        using var model = nn.Linear(4, 3);
        using var optimizer = optim.SGD(model.parameters(), 0.1, momentum: 0.9);
        using var generator = new Generator(22);
        using var weight0 = model.weight!.detach().clone();
        using var global0 = torch.get_rng_state();
        using var own0 = generator.get_state();

        var e = Assert.Throws<CheckpointException>(() => FineTuningCheckpoint.Load(path, model, optimizer, id, generator, _ => []));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
        TestUtil.AllClose(weight0, model.weight!, 0, "weight");
        using var global = torch.get_rng_state();
        using var own = generator.get_state();
        Assert.True(global0.bytes.SequenceEqual(global.bytes), "the global generator changed");
        Assert.True(own0.bytes.SequenceEqual(own.bytes), "the run's generator changed");

        static byte[] Set(byte[] s, int at, int value)
        {
            var copy = (byte[])s.Clone();
            BinaryPrimitives.WriteInt32LittleEndian(copy.AsSpan(at), value);
            return copy;
        }
    }

    /// <summary>
    /// The layout FineTuningCheckpoint's generator-state check reads (libtorch's CPUGeneratorImplState: seed at byte 0,
    /// left at 8, seeded at 12, next at 16, 5056 bytes) holds for the libtorch in use: a seeded generator's state, before
    /// and after draws, shows its seed, seeded = 1 and left + next = 625 (mt19937's invariant once it has drawn; a fresh
    /// one has left = 1, next = 0).
    /// </summary>
    [Fact]
    public void CpuGeneratorStateLayout_IsTheOneTheCheckpointCheckReads()
    {
        using var g = new Generator(1234);
        for (int draws = 0; draws < 3; draws++)
        {
            using (var state = g.get_state())
            {
                var bytes = state.bytes.ToArray();
                Assert.Equal(5056, bytes.Length);
                Assert.Equal(1234UL, BinaryPrimitives.ReadUInt64LittleEndian(bytes));
                Assert.Equal(1, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(12)));
                int left = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8));
                long next = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(16));
                Assert.InRange(left, 1, 624);
                Assert.True(left + next == 625 || (draws == 0 && left == 1 && next == 0), $"left {left}, next {next}");
            }
            using var _ = torch.rand(100 * (draws + 1), generator: g);
        }
    }

    /// <summary>
    /// finetuning case 265 (LEB128 FF FF FF FF FF FF FF FF FF 01 inserted into the optimizer's section): TorchSharp reads a
    /// momentum buffer's dtype, rank and dimensions from the file and builds a tensor of them before comparing anything
    /// (the host process ended after "ComplexHalf support is experimental"); a rank of 2^27 costs a 1 GiB array. The
    /// section must be checked against the optimizer and refused as a CheckpointException, changing nothing.
    /// </summary>
    [Theory]
    [InlineData("insert FFFFFFFFFFFFFFFFFF01 before the rank", "the state tensor of parameter 0")]
    [InlineData("dtype := ComplexHalf", "expected dtype Float32 (6), got 8")]
    [InlineData("rank := 2^27", "expected rank 2 (3×4), got 134217728")]
    [InlineData("optimizer name := Adam", "expected the state of a SGD optimizer, got 'Adam'")]
    [InlineData("one byte more", "1 more byte(s)")]
    public void FineTuningCheckpoint_OptimizerSectionTorchSharpWouldMisread_IsACheckpointException(string change, string expected)
    {
        using var dir = new Data.TempDirectory();
        var path = dir.File("run.ckpt");
        var (magic, version, header, rest) = FineTuningCheckpointParts(path);
        // rest: the tensors (int32 length, bytes) of weight (3×4) and bias (3), then SGD's section: name, group and state
        // counts, 42 bytes of options, then per parameter a bool and the momentum buffer (dtype, rank, dimensions, data).
        int section = 4 + 48 + 4 + 12;
        Assert.Equal("SGD", Encoding.UTF8.GetString(rest, section + 1, 3));
        int dtypeAt = section + 4 + 2 + 42 + 1;
        Assert.Equal(6, rest[dtypeAt]);   // Float32
        Assert.Equal(2, rest[dtypeAt + 1]);
        rest = change switch
        {
            "insert FFFFFFFFFFFFFFFFFF01 before the rank" => [.. rest[..(dtypeAt + 1)], 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, .. rest[(dtypeAt + 1)..]],
            "dtype := ComplexHalf" => [.. rest[..dtypeAt], 8, .. rest[(dtypeAt + 1)..]],
            "rank := 2^27" => [.. rest[..(dtypeAt + 1)], 0x80, 0x80, 0x80, 0x40, .. rest[(dtypeAt + 2)..]],
            "optimizer name := Adam" => [.. rest[..section], 4, (byte)'A', (byte)'d', (byte)'a', (byte)'m', .. rest[(section + 4)..]],
            _ => [.. rest, 0],
        };
        WriteFineTuningCheckpoint(path, magic, version, header, rest);

        var id = LinearIdentity();
        using var model = nn.Linear(4, 3);
        using var optimizer = optim.SGD(model.parameters(), 0.5, momentum: 0.9);
        using var generator = new Generator(22);
        using var weight0 = model.weight!.detach().clone();

        var e = Assert.Throws<CheckpointException>(() => FineTuningCheckpoint.Load(path, model, optimizer, id, generator, _ => []));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
        TestUtil.AllClose(weight0, model.weight!, 0, "weight");
        Assert.Equal(0.5, optimizer.ParamGroups.First().LearningRate);
    }

    /// <summary>
    /// checkpoint cases 1069, 1924, 2163 (a string value made "\ud800"): JSON text may escape an unpaired surrogate; it
    /// parses, and then writing or reading the string throws InvalidOperationException, out of Checkpoint.Load (from
    /// ReadSidecar's format check, from JsonFields' message, from the architecture's message). It must be refused as
    /// invalid JSON.
    /// </summary>
    [Theory]
    [InlineData("format")]
    [InlineData("format_version")]
    [InlineData("architecture")]
    [InlineData("training")]
    public void Checkpoint_SidecarStringWithAnUnpairedSurrogate_IsRefusedAsInvalidJson(string key)
    {
        using var dir = new Data.TempDirectory();
        var path = dir.File("rbm.pt");
        using (var rbm = TestUtil.RandomRbm(6, 3, seed: 1, dtype: ScalarType.Float32)) Checkpoint.Save(rbm, path, new { epochs = 1 });
        var sidecar = Checkpoint.SidecarPath(path);
        var o = JsonNode.Parse(File.ReadAllText(sidecar))!.AsObject();
        o[key] = "__SURROGATE__";
        File.WriteAllText(sidecar, o.ToJsonString().Replace("\"__SURROGATE__\"", "\"\\ud800\""));

        foreach (var read in new Action[] { () => Checkpoint.Load(path).Dispose(), () => Checkpoint.Provenance(path) })
        {
            var e = Assert.Throws<CheckpointException>(read);
            Assert.Contains("is not valid JSON", e.Message);
        }
    }

    /// <summary>
    /// checkpoint case 1629 ($.architecture.layers[1].in_features := 0; after JSON mutations were focused on the
    /// architecture) and the fields next to it: libtorch refused the size with an ExternalException ("from is out of
    /// bounds for float"), Enum.Parse refused the dtype "200" with an OverflowException (ScalarType is an sbyte), and an
    /// integer dtype made nn.Linear throw ExternalException, all out of Checkpoint.Load; two layers of one name loaded as
    /// a network other than the one described. Each must be a CheckpointException naming the sidecar.
    /// </summary>
    [Theory]
    [InlineData("classifier", "layers/1/in_features", "0", "expected \"in_features\" to be positive, got 0")]
    [InlineData("classifier", "layers/1/in_features", "-1", "expected \"in_features\" to be positive, got -1")]
    [InlineData("classifier", "layers/1/out_features", "-8", "expected \"out_features\" to be positive, got -8")]
    [InlineData("classifier", "layers/2/name", "\"fc1\"", "layer name 'fc1' appears twice")]
    [InlineData("classifier", "dtype", "\"Int64\"", "expected a floating-point \"dtype\", got Int64")]
    [InlineData("classifier", "dtype", "\"200\"", "invalid architecture")]
    [InlineData("rbm", "dtype", "\"200\"", "invalid architecture")]
    [InlineData("dbn", "dtype", "\"-200\"", "invalid architecture")]
    public void Checkpoint_ArchitectureLibtorchOrEnumParseRefuses_IsACheckpointException(string model, string field, string json, string expected)
    {
        using var dir = new Data.TempDirectory();
        var path = dir.File(model + ".pt");
        using (nn.Module m = model switch
        {
            "rbm" => TestUtil.RandomRbm(12, 5, seed: 3, dtype: ScalarType.Float32),
            "dbn" => new DBN([12, 8, 6], n_classes: 3, dtype: ScalarType.Float32),
            _ => DbnClassifier.Build([12, 8, 6], n_classes: 3, input_dropout: 0.2, hidden_dropout: 0.5),
        }) Checkpoint.Save(m, path);
        var sidecar = JsonNode.Parse(File.ReadAllText(Checkpoint.SidecarPath(path)))!.AsObject();
        JsonNode parent = sidecar["architecture"]!;
        var parts = field.Split('/');
        foreach (var part in parts[..^1]) parent = int.TryParse(part, out int k) ? parent[k]! : parent[part]!;
        parent[parts[^1]] = JsonNode.Parse(json);
        File.WriteAllText(Checkpoint.SidecarPath(path), sidecar.ToJsonString());

        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path).Dispose());
        Assert.Contains(expected, e.Message);
        Assert.Contains(Checkpoint.SidecarPath(path), e.Message);
    }

    /// <summary>
    /// finetuning case 711 ($.Epochs := null, after header mutations were focused on the run's record): FineTuner.Fit
    /// threw ArgumentNullException from List.AddRange. The record of where the run is must be checked when the file is
    /// read: a negative number of epochs done made Fit train from that epoch on (int.MinValue: billions of epochs). Kept
    /// for the reader of that format (TBMFT 2), which FineTuner still uses for files written before the run checkpoint.
    /// </summary>
    [Theory]
    [InlineData("Epochs", "null", "the epochs' metrics are missing or incomplete")]
    [InlineData("Epochs", "[null]", "the epochs' metrics are missing or incomplete")]
    [InlineData("EpochsDone", "-3", "-3 epochs done")]
    [InlineData("EpochsDone", "-2147483648", "-2147483648 epochs done")]
    [InlineData("BestEpoch", "2", "best epoch 2")]
    [InlineData("SinceBest", "-1", "-1 epochs since")]
    [InlineData("Tensors", "[null]", "the tensor list is missing or incomplete")]
    [InlineData("GlobalRng", "null", "a field is missing")]
    public void FineTuner_CheckpointWhoseRunRecordCannotBe_IsACheckpointException(string field, string json, string expected)
    {
        using var dir = new Data.TempDirectory();
        var path = dir.File("run.ckpt");
        var options = new ClassifierTrainingOptions { Epochs = 1, BatchSize = 4, ValidationCount = 4, Seed = 7 };
        using var g = new Generator(5);
        using var x = torch.rand(12, 6, generator: g);
        using var y = torch.randint(0, 3, 12, generator: g);
        // A checkpoint in the format FineTuner wrote before the run checkpoint (TBMFT 2), which it still reads: written
        // by that format's writer for this model, the SGD FineTuner builds for it, and its 8 training rows.
        using (var m = nn.Sequential(("fc1", nn.Linear(6, 3))))
        using (var tuner = new FineTuner(m, options))
        using (var gen = new Generator(7))
        {
            var metrics = new ClassifierEpochMetrics(1, 1, 1.0, 0.5, 1.0, 0.1, 0.01, true, null);
            FineTuningCheckpoint.Save(path, m, tuner.Optimizer, new FineTuningCheckpoint.Identity(options, null, 8, torch.CPU),
                new FineTuningCheckpoint.State(1, true, [metrics], 1, 0.5, 0, false, false), gen, []);
        }
        string magic, header;
        int version;
        byte[] rest;
        using (var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8))
        {
            (magic, version, header) = (r.ReadString(), r.ReadInt32(), r.ReadString());
            rest = r.ReadBytes((int)(r.BaseStream.Length - r.BaseStream.Position));
        }
        var o = JsonNode.Parse(header)!.AsObject();
        o["Finished"] = false;
        o[field] = JsonNode.Parse(json);
        WriteFineTuningCheckpoint(path, magic, version, o, rest);

        using var model = nn.Sequential(("fc1", nn.Linear(6, 3)));
        using var tuner2 = new FineTuner(model, options with { Epochs = 2 }) { CheckpointPath = path };
        var e = Assert.Throws<CheckpointException>(() => tuner2.Fit(x, y));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
    }

    /// <summary>
    /// gibbschains, seed 20260131 (the case index is unknown: the process died): a chain-state file whose generator state
    /// libtorch's <c>set_state</c> refuses ended the process ("Invalid mt19937 state", a C++ exception nothing catches). Here the state's
    /// <c>left</c> field (byte 8) is set to 0; the load must refuse it with an InvalidDataException naming the file and
    /// leave the chains' states and generator as they were.
    /// </summary>
    [Fact]
    public void GibbsChains_FileWithAGeneratorStateLibtorchWouldRefuse_IsAnInvalidDataException_NotACrash()
    {
        using var dir = new TorchBoltzmann.Tests.Data.TempDirectory();
        string path = dir.File("chains.bin");
        using var rbm = TestUtil.RandomRbm(6, 3, 8, dtype: ScalarType.Float32);
        using (var g = new Generator(1))
        using (var chains = new TorchBoltzmann.Sampling.GibbsChains(rbm, g))
        {
            chains.start_random(2);
            chains.step();
            chains.save(path);
        }
        byte[] file = File.ReadAllBytes(path);
        int at = GeneratorStateOffset(file);
        BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(at + 8), 0);
        File.WriteAllBytes(path, file);

        using var g2 = new Generator(2);
        using var fresh = new TorchBoltzmann.Sampling.GibbsChains(rbm, g2);
        fresh.start_random(3);
        using var statesBefore = fresh.states.clone();
        using var generatorBefore = g2.get_state();
        var e = Assert.Throws<InvalidDataException>(() => fresh.load(path));
        Assert.Contains($"'{path}'", e.Message);
        Assert.Contains("not a valid Mersenne Twister state", e.Message);
        Assert.True(statesBefore.eq(fresh.states).all().item<bool>(), "the refused file changed the chains' states");
        using var generatorAfter = g2.get_state();
        Assert.True(generatorBefore.eq(generatorAfter).all().item<bool>(), "the refused file changed the generator");
    }

    /// <summary>
    /// gibbschains cases 2508 and 3948 of a 20,000-case campaign (TB_FUZZ_SCALE=10): a chain-state file whose first
    /// string length is the LEB128 of −1 made BinaryReader throw an IOException; it is an InvalidDataException naming the file.
    /// </summary>
    [Fact]
    public void GibbsChains_FileWithANegativeStringLength_IsAnInvalidDataException()
    {
        using var dir = new TorchBoltzmann.Tests.Data.TempDirectory();
        string path = dir.File("chains.bin");
        File.WriteAllBytes(path, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x41, 0x42]);
        using var rbm = TestUtil.RandomRbm(6, 3, 8, dtype: ScalarType.Float32);
        using var chains = new TorchBoltzmann.Sampling.GibbsChains(rbm);
        var e = Assert.Throws<InvalidDataException>(() => chains.load(path));
        Assert.Contains($"'{path}'", e.Message);
    }

    /// <summary>Where the bytes of the tensor <c>generator_state</c> start in a chain-state file (its layout:
    /// magic, count, then per tensor name, dtype, rank, shape and raw bytes).</summary>
    private static int GeneratorStateOffset(byte[] file)
    {
        using var r = new BinaryReader(new MemoryStream(file), Encoding.UTF8);
        r.ReadString();
        int n = r.ReadInt32();
        for (int i = 0; i < n; i++)
        {
            string name = r.ReadString();
            var dtype = (ScalarType)r.ReadInt32();
            int rank = r.ReadInt32();
            long numel = 1;
            for (int j = 0; j < rank; j++) numel *= r.ReadInt64();
            if (name == "generator_state") return (int)r.BaseStream.Position;
            long size = dtype switch { ScalarType.Byte => 1, ScalarType.Float32 => 4, _ => 8 };
            r.BaseStream.Position += numel * size;
        }
        throw new InvalidOperationException("no generator_state in the chain-state file");
    }
}

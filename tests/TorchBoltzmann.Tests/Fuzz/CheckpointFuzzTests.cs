using Xunit.Abstractions;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Fuzz;

/// <summary>
/// Mutation fuzzing of <see cref="Checkpoint"/>'s readers (the TorchSharp state_dict <c>.pt</c> and its JSON sidecar) on
/// an RBM, a DBN, a classifier, a DBM and a general Boltzmann machine checkpoint written by the library: every case
/// must load, or be refused with <see cref="CheckpointException"/>, within the harness's time and memory bounds.
/// </summary>
public sealed class CheckpointFuzzTests(ITestOutputHelper output) : IDisposable
{
    private const int CiCases = 3000;
    private const string Pt = "model.pt", Json = "model.json";

    /// <summary>
    /// A sidecar whose architecture claims a model far larger than its weights file makes <see cref="Checkpoint.Load"/>
    /// allocate that model before the weights refuse it (layer_sizes [784, 500, 1000000000]: terabytes) unless the sizes
    /// are checked against the weights file first, as Load does; this family checks it. TB_FUZZ_OVERSIZED=0 leaves it out.
    /// </summary>
    private const string OversizedFamily = "sidecar claims a model larger than its weights";

    private static bool IncludeOversized => Environment.GetEnvironmentVariable("TB_FUZZ_OVERSIZED") != "0";

    private readonly string _dir = Directory.CreateTempSubdirectory("tb-ckpt-fuzz-").FullName;
    private readonly List<Seed> _seeds = [];

    private sealed record Seed(string Kind, nn.Module Model, byte[] Weights, byte[] Sidecar, List<int> HeaderOffsets);

    public void Dispose()
    {
        foreach (var s in _seeds) s.Model.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private void AddSeed(string kind, nn.Module model, object training)
    {
        var path = Path.Combine(_dir, kind + ".pt");
        Checkpoint.Save(model, path, training);
        var weights = File.ReadAllBytes(path);
        _seeds.Add(new Seed(kind, model, weights, File.ReadAllBytes(Checkpoint.SidecarPath(path)), StateDictHeaderOffsets(weights)));
    }

    /// <summary>
    /// Offsets of the LEB128 numbers in a TorchSharp state_dict (entry count; per tensor: dtype, rank, dimensions), so that
    /// structure-aware mutations hit them more often than uniform ones would.
    /// </summary>
    internal static List<int> StateDictHeaderOffsets(byte[] bytes)
    {
        var offsets = new List<int>();
        using var r = new BinaryReader(new MemoryStream(bytes));
        offsets.Add(0);
        long count = Mutations.ReadLeb128(r);
        for (long i = 0; i < count; i++)
        {
            r.ReadString();
            offsets.Add((int)r.BaseStream.Position);
            var dtype = (ScalarType)Mutations.ReadLeb128(r);
            offsets.Add((int)r.BaseStream.Position);
            long rank = Mutations.ReadLeb128(r), numel = 1;
            for (long d = 0; d < rank; d++)
            {
                offsets.Add((int)r.BaseStream.Position);
                numel *= Mutations.ReadLeb128(r);
            }
            r.BaseStream.Position += numel * (dtype == ScalarType.Float64 ? 8 : 4);
        }
        return offsets;
    }

    /// <summary>The sidecar with weights_bytes and weights_sha256 made to match <paramref name="weights"/> (when it parses).</summary>
    private static byte[] FixedUp(byte[] sidecar, byte[] weights, List<string> log, bool dropHash = false)
    {
        try
        {
            if (JsonNode.Parse(sidecar) is not JsonObject o) return sidecar;
            if (dropHash)
            {
                o.Remove("weights_sha256");
                o.Remove("weights_bytes");
                log.Add("sidecar: hash and length removed");
            }
            else
            {
                o["weights_bytes"] = weights.LongLength;
                o["weights_sha256"] = Convert.ToHexString(SHA256.HashData(weights)).ToLowerInvariant();
                log.Add("sidecar: hash and length fixed up to the mutated weights");
            }
            return Encoding.UTF8.GetBytes(o.ToJsonString());
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or ArgumentException)
        {
            return sidecar;
        }
    }

    /// <summary>
    /// The parameter bytes a sidecar's architecture claims, estimated from above from the size fields it holds (read
    /// token by token, so that text no parser accepts still counts): rank × largest × second largest × 8.
    /// </summary>
    internal static double ClaimedBytes(byte[] sidecar)
    {
        string[] sizeKeys = ["n_visible", "n_hidden", "layer_sizes", "n_classes", "in_features", "out_features"];
        var sizes = new List<double>();
        var reader = new Utf8JsonReader(sidecar, new JsonReaderOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip, MaxDepth = 1 << 20 });
        string? property = null;
        var names = new Stack<string?>();
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        property = reader.GetString();
                        break;
                    case JsonTokenType.StartArray:
                    case JsonTokenType.StartObject:
                        names.Push(property);
                        break;
                    case JsonTokenType.EndArray:
                    case JsonTokenType.EndObject:
                        property = names.Count > 0 ? names.Pop() : null;
                        break;
                    case JsonTokenType.Number:
                        string? key = property ?? (names.Count > 0 ? names.Peek() : null);
                        if (key is not null && sizeKeys.Contains(key) && reader.TryGetDouble(out double v) && v > 1) sizes.Add(v);
                        if (names.Count > 0 && names.Peek() is { } arrayKey && sizeKeys.Contains(arrayKey) && reader.TryGetDouble(out double w) && w > 1) sizes.Add(w);
                        break;
                    case JsonTokenType.String:
                        if (reader.GetString() is { } s && s.StartsWith("Bernoulli+Softmax(", StringComparison.Ordinal)
                            && double.TryParse(s["Bernoulli+Softmax(".Length..].TrimEnd(')'), System.Globalization.CultureInfo.InvariantCulture, out double k))
                            sizes.Add(k);
                        break;
                }
            }
        }
        catch (JsonException) { }
        catch (InvalidOperationException) { }
        if (sizes.Count == 0) return 0;
        sizes.Sort();
        double largest = sizes[^1], second = sizes.Count > 1 ? sizes[^2] : 1;
        return sizes.Count * largest * second * 8;
    }

    [Fact]
    public void Load_MutatedCheckpoints_LoadOrRefuseWithCheckpointException()
    {
        AddSeed("rbm", TestUtil.RandomRbm(12, 5, seed: 3, dtype: ScalarType.Float32), new { epochs = 3, lr = 0.1, loss = double.NaN, note = "seed" });
        AddSeed("dbn", new DBN([12, 8, 6], n_classes: 3, dtype: ScalarType.Float32), new { layers = new[] { new { epochs = 1 } }, seconds = 1.5 });
        AddSeed("classifier", DbnClassifier.Build([12, 8, 6], n_classes: 3, input_dropout: 0.2, hidden_dropout: 0.5), new { epochs = 2, pretrained_from = new { file = "x.pt" } });
        AddSeed("dbm", boltzmann.DBM([12, 8, 6], dtype: ScalarType.Float32), new { epochs = 1 });
        AddSeed("bm", boltzmann.BM(6, 3, spins: true, dtype: ScalarType.Float32), new { epochs = 1 });
        var weightsPool = _seeds.Select(s => s.Weights).ToList();
        var sidecarPool = _seeds.Select(s => s.Sidecar).ToList();

        using var runner = new FuzzRunner("checkpoint");
        var warmUp = _seeds.Select(s => LoadCase(s, s.Weights, s.Sidecar, "valid seed", readerChoice: 0)).ToList();
        var failures = runner.Run(FuzzConfig.Cases(CiCases), warmUp, (i, rng) =>
        {
            var seed = rng.Pick(_seeds);
            var log = new List<string> { $"{seed.Kind} seed" };
            byte[]? weights = seed.Weights, sidecar = seed.Sidecar;
            int mode = rng.Next(100);
            if (mode < 30)
            {
                // JSON-aware mutations of the sidecar, sometimes with a byte-level one on top.
                var text = Encoding.UTF8.GetString(sidecar);
                int ops = 1 + rng.Next(2);
                for (int k = 0; k < ops; k++)
                {
                    try { text = JsonMutations.Mutate(text, rng, log, focus: p => p.StartsWith("$.architecture.", StringComparison.Ordinal)); }
                    catch (JsonException) { break; }   // an earlier step left text that does not parse
                }
                sidecar = Encoding.UTF8.GetBytes(text);
                if (rng.Chance(0.2)) sidecar = Mutations.Mutate(sidecar, rng, sidecarPool, log, maxSteps: 2);
            }
            else if (mode < 45)
            {
                log.Add("sidecar bytes:");
                sidecar = Mutations.Mutate(sidecar, rng, sidecarPool, log);
            }
            else if (mode < 85)
            {
                // The weights mutated; the sidecar made to agree (so the state_dict parser is reached), stripped of its
                // hash (which the format allows), or left (the hash refuses them).
                if (mode < 60)
                {
                    log.Add("weights bytes:");
                    weights = Mutations.Mutate(weights, rng, weightsPool, log);
                }
                else
                {
                    int at = rng.Pick(seed.HeaderOffsets);
                    bool insert = rng.Chance(0.3);
                    var value = rng.Chance(0.7) ? rng.Pick(Mutations.HugeLeb128) : [rng.Pick(Mutations.InterestingBytes)];
                    log.Add($"weights: {(insert ? "insert" : "overwrite")} {Convert.ToHexString(value)} at state_dict header offset {at}");
                    weights = insert ? Mutations.Insert(weights, at, value) : Mutations.Overwrite(weights, at, value);
                }
                int fix = rng.Next(10);
                if (fix < 7) sidecar = FixedUp(sidecar, weights, log);
                else if (fix < 9) sidecar = FixedUp(sidecar, weights, log, dropHash: true);
            }
            else if (mode < 93)
            {
                // Another model's weights beside this sidecar (hash fixed up), or spliced weights.
                var other = rng.Pick(_seeds);
                weights = rng.Chance(0.5) ? other.Weights : Mutations.Mutate(seed.Weights, rng, [other.Weights], log, maxSteps: 1);
                log.Add($"weights of the {other.Kind} seed{(ReferenceEquals(weights, other.Weights) ? "" : " (spliced)")}");
                sidecar = FixedUp(sidecar, weights, log);
            }
            else if (mode < 97)
            {
                switch (rng.Next(4))
                {
                    case 0: weights = null; log.Add("weights absent"); break;
                    case 1: sidecar = null; log.Add("sidecar absent"); break;
                    case 2: weights = []; sidecar = FixedUp(sidecar, weights, log); log.Add("weights empty"); break;
                    default: sidecar = []; log.Add("sidecar empty"); break;
                }
            }
            else
            {
                var text = JsonMutations.Mutate(Encoding.UTF8.GetString(sidecar), rng, log);
                log.Add("and weights bytes:");
                weights = Mutations.Mutate(weights, rng, weightsPool, log);
                sidecar = FixedUp(Encoding.UTF8.GetBytes(text), weights, log);
            }
            var c = LoadCase(seed, weights, sidecar, string.Join("; ", log), rng.Next(6));
            double claimed = sidecar is null ? 0 : ClaimedBytes(sidecar);
            return claimed > 16 << 20 && !IncludeOversized
                ? new FuzzCase { Description = c.Description, Files = c.Files, Read = c.Read, Judge = c.Judge, JustifiedBytes = c.JustifiedBytes, ExcludedFamily = OversizedFamily }
                : c;
        });
        output.WriteLine(runner.Summary);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>A case calling one of the checkpoint readers; a load of the seed's own weights must give the seed's tensors.</summary>
    private static FuzzCase LoadCase(Seed seed, byte[]? weights, byte[]? sidecar, string description, int readerChoice)
    {
        string[] readers = ["Load", "Load<T>", "LoadWithProvenance<T>", "Provenance", "ReadSidecar", "Load(.json path)"];
        double claimed = sidecar is null ? 0 : Math.Min(ClaimedBytes(sidecar), 1L << 40);
        return new FuzzCase
        {
            Description = $"{description}; reader {readers[readerChoice]}",
            Files = new Dictionary<string, byte[]?> { [Pt] = weights, [Json] = sidecar },
            JustifiedBytes = 4L * ((weights?.Length ?? 0) + (sidecar?.Length ?? 0)) + (long)claimed,
            Judge = (e, dir) => e.GetType() != typeof(CheckpointException) ? "undocumented exception type"
                : !e.Message.Contains("model", StringComparison.Ordinal) ? "the message does not name the checkpoint" : null,
            Read = dir =>
            {
                string path = Path.Combine(dir, Pt);
                nn.Module? loaded = null;
                try
                {
                    switch (readerChoice)
                    {
                        case 0: loaded = Checkpoint.Load(path); break;
                        case 1: loaded = LoadTyped(seed, path); break;
                        case 2:
                            var (m, from) = seed.Model switch
                            {
                                RBM => ((nn.Module, JsonObject))Checkpoint.LoadWithProvenance<RBM>(path),
                                DBN => Checkpoint.LoadWithProvenance<DBN>(path),
                                DBM => Checkpoint.LoadWithProvenance<DBM>(path),
                                BoltzmannMachine => Checkpoint.LoadWithProvenance<BoltzmannMachine>(path),
                                _ => Checkpoint.LoadWithProvenance<Sequential>(path),
                            };
                            loaded = m;
                            _ = from.ToJsonString();
                            break;
                        case 3: _ = Checkpoint.Provenance(path).ToJsonString(); break;
                        case 4: _ = Checkpoint.ReadSidecar(path).ToJsonString(); break;
                        default: loaded = Checkpoint.Load(Path.Combine(dir, Json)); break;
                    }
                    if (loaded is not null && weights is not null && ReferenceEquals(weights, seed.Weights))
                    {
                        var expected = seed.Model.state_dict();
                        var got = loaded.state_dict();
                        if (!expected.Keys.Order().SequenceEqual(got.Keys.Order())
                            || expected.Any(kv => !kv.Value.bytes.SequenceEqual(got[kv.Key].bytes)))
                            throw new FuzzPropertyException("loaded the seed's weights as different tensors");
                    }
                }
                finally { loaded?.Dispose(); }
            },
        };
    }

    private static nn.Module LoadTyped(Seed seed, string path) => seed.Model switch
    {
        RBM => Checkpoint.Load<RBM>(path),
        DBN => Checkpoint.Load<DBN>(path),
        DBM => Checkpoint.Load<DBM>(path),
        BoltzmannMachine => Checkpoint.Load<BoltzmannMachine>(path),
        _ => Checkpoint.Load<Sequential>(path),
    };
}

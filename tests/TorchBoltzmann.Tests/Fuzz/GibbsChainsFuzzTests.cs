using Xunit.Abstractions;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Sampling;
using TorchBoltzmann.Tests.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Fuzz;

/// <summary>
/// Mutation fuzzing of <see cref="GibbsChains.load"/> (the chain-state files <see cref="GibbsChains.save"/> writes) for
/// an RBM's chains (per-chain temperatures, clamped units, their own generator) and a general Boltzmann machine's. Every
/// case must load, or be refused with the documented <see cref="InvalidDataException"/> naming the file and leaving the
/// running chains (states, temperatures, clamps, generator) exactly as they were, within the harness's time and memory
/// bounds.
/// </summary>
public sealed class GibbsChainsFuzzTests(ITestOutputHelper output) : IDisposable
{
    private const int CiCases = 2000;
    private const string File = "chains.bin";

    private readonly RBM _rbm = TestUtil.RandomRbm(8, 5, 3, dtype: ScalarType.Float32);
    private readonly BoltzmannMachine _bm = BmTestUtil.Random(5, 3, 4);

    public void Dispose()
    {
        _rbm.Dispose();
        _bm.Dispose();
    }

    private GibbsChains Chains(bool machine, Generator g) => machine ? new GibbsChains(_bm, g) : new GibbsChains(_rbm, g);

    /// <summary>Chains of each model saved after a few steps: the RBM's with temperatures and a clamp.</summary>
    private byte[] Seed(bool machine)
    {
        var dir = Directory.CreateTempSubdirectory("tb-chains-seed-").FullName;
        try
        {
            using var g = new Generator(machine ? 21UL : 22UL);
            using var chains = Chains(machine, g);
            if (!machine)
            {
                using var values = torch.tensor(new float[] { 1, 0 });
                chains.clamp(6, values);
            }
            chains.start_random(4);
            if (!machine)
            {
                using var temps = torch.tensor(new float[] { 1, 1.5f, 2, 3 });
                chains.temperatures = temps;
            }
            for (int s = 0; s < 3; s++) chains.step();
            string path = Path.Combine(dir, File);
            chains.save(path);
            return System.IO.File.ReadAllBytes(path);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Load_MutatedChainFiles_LoadOrRefuseWithInvalidDataException_ChangingNothing()
    {
        var seeds = new[] { (machine: false, bytes: Seed(false)), (machine: true, bytes: Seed(true)) };
        var pool = seeds.Select(s => s.bytes).ToList();
        using var runner = new FuzzRunner("gibbschains");
        var failures = runner.Run(FuzzConfig.Cases(CiCases), seeds.Select(s => Case(s.machine, s.bytes, "valid seed")), (i, rng) =>
        {
            var (machine, bytes) = rng.Pick(seeds);
            var log = new List<string> { machine ? "Boltzmann machine seed" : "RBM seed" };
            return Case(machine, Mutations.Mutate(bytes, rng, pool, log), string.Join("; ", log));
        });
        output.WriteLine(runner.Summary);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private FuzzCase Case(bool machine, byte[] file, string description) => new()
    {
        Description = description,
        Files = new Dictionary<string, byte[]?> { [File] = file },
        JustifiedBytes = 8L * file.Length,
        Judge = (e, dir) => e.GetType() != typeof(InvalidDataException) ? "undocumented exception type"
            : !e.Message.Contains(Path.Combine(dir, File), StringComparison.Ordinal) ? "the message does not name the file"
            : null,
        Read = dir =>
        {
            using var g = new Generator(5);
            using var chains = Chains(machine, g);
            chains.start_random(3);
            var before = Snapshot(chains);
            try { chains.load(Path.Combine(dir, File)); }
            catch (InvalidDataException)
            {
                var after = Snapshot(chains);
                foreach (var (name, bytes) in before)
                    if (!after.TryGetValue(name, out var now) || !now.SequenceEqual(bytes))
                        throw new FuzzPropertyException($"the refused file changed the chains' '{name}'");
                if (after.Count != before.Count) throw new FuzzPropertyException("the refused file added to the chains' state");
                throw;
            }
        },
    };

    private static Dictionary<string, byte[]> Snapshot(GibbsChains chains)
    {
        var d = chains.state_dict();
        try { return d.ToDictionary(kv => kv.Key, kv => kv.Value.bytes.ToArray()); }
        finally { foreach (var t in d.Values) t.Dispose(); }
    }
}

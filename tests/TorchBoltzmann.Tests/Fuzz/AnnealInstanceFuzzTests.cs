using Xunit.Abstractions;
using System.Globalization;
using System.Text;
using TorchBoltzmann.Cli.Commands;

namespace TorchBoltzmann.Tests.Fuzz;

/// <summary>
/// Mutation fuzzing of the instance files of <c>tbm anneal</c>: <see cref="BoltzmannCommands.ReadInstance"/> and the
/// dense spin machine built from what it read (<see cref="BoltzmannCommands.Machine"/>). Every case must build the
/// machine, or be refused with the documented <see cref="CliException"/> naming the file, within the harness's time
/// and memory bounds; the memory an accepted instance may take is that of its dense machine (n² couplings).
/// </summary>
public sealed class AnnealInstanceFuzzTests(ITestOutputHelper output)
{
    private const int CiCases = 2000;
    private const string File = "instance.txt";

    private static readonly string[] Seeds =
    [
        "# a ±J spin glass on 6 spins\n0 1 1\n1 2 -1\n2 3 1\n3 4 -1\n4 5 1\n5 0 -1\n0 3 0.5\n2 0.25   # a field\n",
        "# max-cut ring of 5 nodes, weights\n0 1 1.5\n1 2 2\n2 3 1\n3 4 1\n4 0 3\n",
        "0 1 -2.5e-1\n1 2 1E0\n\n   \n7 0.125\n",
    ];

    [Fact]
    public void ReadInstance_MutatedFiles_BuildTheMachineOrRefuseWithCliException()
    {
        var seeds = Seeds.Select(Encoding.UTF8.GetBytes).ToList();
        using var runner = new FuzzRunner("anneal-instance");
        var failures = runner.Run(FuzzConfig.Cases(CiCases), seeds.Select(s => Case(s, "valid seed")), (i, rng) =>
        {
            int k = rng.Next(seeds.Count);
            var log = new List<string> { $"seed {k}" };
            byte[] file;
            if (rng.Chance(0.4))
            {
                // A number token replaced by an interesting one (huge indices, non-finite values, beyond int and long).
                var tokens = Seeds[k].Split(' ');
                int at = rng.Next(tokens.Length);
                string number = rng.Pick(JsonMutations.Numbers);
                log.Add($"token {at} ('{tokens[at].Trim()}') := {number}");
                tokens[at] = tokens[at].EndsWith('\n') ? number + "\n" : number;
                file = Encoding.UTF8.GetBytes(string.Join(' ', tokens));
                if (rng.Chance(0.3)) file = Mutations.Mutate(file, rng, seeds, log);
            }
            else file = Mutations.Mutate(seeds[k], rng, seeds, log);
            return Case(file, string.Join("; ", log));
        });
        output.WriteLine(runner.Summary);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>Indices that would make the dense machine larger than the limit (up to int.MaxValue, where n² overflows
    /// an int) are refused while reading, naming the file, the line and the limit.</summary>
    [Theory]
    [InlineData("0 1 1\n8192 0 1\n", 2, 8192)]
    [InlineData("40000 1 1\n", 1, 40000)]
    [InlineData("0 1 1\n2147483647 0.5\n", 2, 2147483647)]
    public void ReadInstance_IndexBeyondTheDenseLimit_IsRefusedBeforeAllocating(string text, int line, int index)
    {
        using var dir = new Data.TempDirectory();
        string path = dir.File(File);
        System.IO.File.WriteAllText(path, text);
        var e = Assert.Throws<CliException>(() => BoltzmannCommands.ReadInstance(path));
        Assert.Equal($"instance '{path}' line {line}: expected unit indices below {BoltzmannCommands.MaxInstanceSpins} (the machine is dense: n² couplings), got {index}", e.Message);
    }

    /// <summary>Repeated lines whose values are finite but whose sum is not are refused, naming the file and the units.</summary>
    [Fact]
    public void Machine_CouplingsSummingToInfinity_AreRefused()
    {
        using var dir = new Data.TempDirectory();
        string path = dir.File(File);
        System.IO.File.WriteAllText(path, "0 1 1e308\n1 0 1e308\n");
        var (n, couplings, fields) = BoltzmannCommands.ReadInstance(path);
        var e = Assert.Throws<CliException>(() => BoltzmannCommands.Machine(path, n, couplings, fields, maxCut: false));
        Assert.StartsWith($"instance '{path}': expected finite couplings, got the lines for units 1 and 0 summing to ", e.Message);
    }

    private static FuzzCase Case(byte[] file, string description) => new()
    {
        Description = description,
        Files = new Dictionary<string, byte[]?> { [File] = file },
        JustifiedBytes = 8L * file.Length + DenseBytes(file),
        Judge = (e, dir) => e.GetType() != typeof(CliException) ? "undocumented exception type"
            : !e.Message.Contains(Path.Combine(dir, File), StringComparison.Ordinal) ? "the message does not name the file"
            : null,
        Read = dir =>
        {
            string path = Path.Combine(dir, File);
            var (n, couplings, fields) = BoltzmannCommands.ReadInstance(path);
            if (n > BoltzmannCommands.MaxInstanceSpins) throw new FuzzPropertyException($"accepted {n} spins, above the limit");
            using var bm = BoltzmannCommands.Machine(path, n, couplings, fields, maxCut: false);
            if (bm.n_units != n) throw new FuzzPropertyException($"built {bm.n_units} units for {n} spins");
        },
    };

    /// <summary>The memory an accepted instance justifies: its dense machine, a few n² copies of float64 (the largest
    /// whole-number token within the limit decides n; an instance the reader refuses allocates nothing of it).</summary>
    private static long DenseBytes(byte[] file)
    {
        long n = 0;
        foreach (var token in Encoding.UTF8.GetString(file).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
            if (int.TryParse(token, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) && i >= 0 && i < BoltzmannCommands.MaxInstanceSpins)
                n = Math.Max(n, i + 1L);
        return 4 * 8 * n * n;
    }
}

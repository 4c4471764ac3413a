using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Sampling;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Cli.Commands;

/// <summary>
/// <c>tbm bm</c>: contrastive Hebbian learning of the 4-2-4 encoder, printing the exact log-likelihood; <c>tbm anneal</c>:
/// simulated annealing of a spin-glass or max-cut instance read from a file.
/// </summary>
internal static class BoltzmannCommands
{
    /// <summary>The <c>bm</c> command's flags for <see cref="BoltzmannTrainingOptions"/>' properties.</summary>
    private static readonly IReadOnlyDictionary<string, string> BmFlags = new Dictionary<string, string>
    {
        ["Epochs"] = "--epochs", ["LearningRate"] = "--lr", ["FreeChains"] = "--free-chains", ["ClampedBurnIn"] = "--burn-in",
        ["ClampedChains"] = "--clamped-chains", ["Clamped"] = "--clamped", ["Free"] = "--free",
    };

    /// <summary>The run checkpoint of a bm run writing <paramref name="output"/>: <c>OUTPUT-STEM-train.ckpt</c>.</summary>
    internal static string CheckpointPath(string output) => Path.ChangeExtension(output, null) + "-train.ckpt";

    public static Command Train()
    {
        var epochs = new Option<int>("--epochs") { Description = "Training epochs (each one update on the four vectors)", DefaultValueFactory = _ => 400 };
        var lr = new Option<double>("--lr") { Description = "Learning rate (SGD with momentum 0.5)", DefaultValueFactory = _ => 0.3 };
        var burnIn = new Option<int>("--burn-in") { Description = "Clamped-phase sweeps before statistics", DefaultValueFactory = _ => 5 };
        var freeChains = new Option<int>("--free-chains") { Description = "Persistent chains of the free phase", DefaultValueFactory = _ => 200 };
        var every = new Option<int>("--print-every") { Description = "Print the exact log-likelihood every N epochs (and after the last)", DefaultValueFactory = _ => 20 };
        var seed = new Option<ulong>("--seed") { Description = "Random seed (initial weights, sampling); with the defaults seed 5 finds all four codes, others may end with two patterns sharing one", DefaultValueFactory = _ => 5UL };
        var output = new Option<string>("--output", "-o")
        {
            Description = $"Checkpoint path (.pt; a .json sidecar and -metrics.json beside it; {CommonOptions.RunsDirectory}/ is ignored by git)",
            DefaultValueFactory = _ => Path.Combine(CommonOptions.RunsDirectory, "bm-encoder.pt"),
        };
        var clamped = new Option<string>("--clamped") { Description = "Clamped phase: sampling (Gibbs sampling of the hidden units) or mean-field (their mean-field fixed point)", DefaultValueFactory = _ => "sampling" };
        var free = new Option<string>("--free") { Description = "Free phase: sampling (persistent Gibbs chains) or mean-field (persistent mean-field fixed points); mean-field in both phases is Peterson & Anderson's (1987) deterministic learning", DefaultValueFactory = _ => "sampling" };
        var clampedChains = new Option<string>("--clamped-chains") { Description = "Clamped-phase chains: restarted (from random states every update) or persistent (one per training example, continued across updates)", DefaultValueFactory = _ => "restarted" };
        var checkpointEvery = CommonOptions.CheckpointEvery(50);
        var threads = CommonOptions.Threads();
        var tensorBoard = TensorBoardRun.Option();
        var cmd = new Command("bm", "Train a general Boltzmann machine on the 4-2-4 encoder problem (Ackley, Hinton & Sejnowski 1985) by contrastive " +
                                    "Hebbian learning, printing the exact log-likelihood, then complete each pattern's second group from its first. " +
                                    "Exit codes: 0 done, 1 error, 3 completion recalled fewer than the four patterns (files written), 130 interrupted (Ctrl+C or SIGTERM: the checkpoint is kept and the same command continues)")
        {
            epochs, lr, burnIn, freeChains, clamped, free, clampedChains, every, seed, output, checkpointEvery, threads, tensorBoard,
        };
        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(CommonOptions.Guard(() => RunTrain(new BoltzmannTrainingOptions
        {
            Epochs = r.GetValue(epochs), BatchSize = 4, LearningRate = r.GetValue(lr), Momentum = 0.5, WeightDecay = 1e-3,
            ClampedBurnIn = r.GetValue(burnIn), ClampedSamples = 5, FreeChains = r.GetValue(freeChains), FreeSweeps = 1, FreeSamples = 2,
            Clamped = Choice("--clamped", r.GetValue(clamped)!, ("sampling", ClampedPhase.Sampling), ("mean-field", ClampedPhase.MeanField)),
            Free = Choice("--free", r.GetValue(free)!, ("sampling", FreePhase.Sampling), ("mean-field", FreePhase.MeanField)),
            ClampedChains = Choice("--clamped-chains", r.GetValue(clampedChains)!, ("restarted", ClampedChains.Restarted), ("persistent", ClampedChains.Persistent)),
            Seed = r.GetValue(seed),
        }, r.GetValue(every), r.GetValue(output)!, r.GetValue(checkpointEvery), r.GetValue(threads), r.GetValue(tensorBoard), ct))));
        return cmd;
    }

    /// <summary>The value named by a flag's word, or a one-line error naming the flag, the words it takes and what came.</summary>
    private static T Choice<T>(string flag, string word, params (string Word, T Value)[] choices)
    {
        foreach (var (w, v) in choices) if (w == word) return v;
        throw new CliException($"{flag}: expected {string.Join(" or ", choices.Select(c => c.Word))}, got '{word}'", ExitCodes.Error);
    }

    private static int RunTrain(BoltzmannTrainingOptions options, int every, string output, int checkpointEvery, int threads, string? tensorBoardRoot, CancellationToken ct)
    {
        string? checkpoint = null;   // set by the body, read by the interruption notice
        int savedEpoch = 0;
        return CommonOptions.Guard(() =>
        {
            CommonOptions.ApplyThreads(threads);
            OptionFlags.AtLeast("--epochs", options.Epochs, 1);
            OptionFlags.AtLeast("--print-every", every, 1);
            OptionFlags.AtLeast("--checkpoint-every", checkpointEvery, 0);
            OptionFlags.Validate(options.Validate, BmFlags);
            CommonOptions.PrepareOutput("--output", output);
            // Two groups of four visible units, two hidden units; every pair connected except between the groups.
            using var eye = torch.eye(4, dtype: ScalarType.Float64);
            using var data = torch.cat(new[] { eye, eye }, 1);
            using var mask = BoltzmannMachine.full_mask(10, ScalarType.Float64);
            using (torch.no_grad())
            {
                mask.narrow(0, 0, 4).narrow(1, 4, 4).zero_();
                mask.narrow(0, 4, 4).narrow(1, 0, 4).zero_();
            }
            using var gen = new Generator(options.Seed);
            using var bm = boltzmann.BM(8, 2, Connectivity.Given, mask: mask, dtype: ScalarType.Float64, generator: gen);
            Terminal.Line($"4-2-4 encoder: {bm}, {options.Epochs} epochs, lr {options.LearningRate}, seed {options.Seed}. " +
                          $"Exact log-likelihood per pattern (optimum log ¼ = {Math.Log(0.25):F3}); at the start {ExactEnumeration.log_likelihood(bm, data):F3}");
            checkpoint = checkpointEvery > 0 ? CheckpointPath(output) : null;
            bool continuing = checkpoint is not null && File.Exists(checkpoint);
            if (continuing)
                Terminal.Line($"Continuing from the checkpoint {checkpoint} (an earlier run of this command stopped; delete it to start over).");
            using var trainer = new BoltzmannTrainer(bm, options, generator: gen) { CheckpointPath = checkpoint, CheckpointEvery = Math.Max(checkpointEvery, 1) };
            // A continued run appends to its TensorBoard run; the logger skips the steps already there.
            using var tensorBoard = TensorBoardRun.Open(tensorBoardRoot, "bm", options.Seed, continuing);
            tensorBoard?.Watch(trainer.Stage, bm);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var history = trainer.Fit(data, ProgressTee.Of<LoopProgress<BoltzmannEpochMetrics>>(new Printer(p =>
            {
                if (p.EpochMetrics is not { } m) return;
                if (checkpoint is not null && (m.Epoch % Math.Max(checkpointEvery, 1) == 0 || m.Epoch == m.Epochs)) savedEpoch = m.Epoch;
                if (m.Epoch % every == 0 || m.Epoch == m.Epochs) Terminal.Line($"epoch {m.Epoch,4}: log-likelihood {m.LogLikelihood:F4}");
            }), tensorBoard?.For<BoltzmannEpochMetrics>()), ct);
            clock.Stop();
            double seconds = trainer.RestoredSeconds + clock.Elapsed.TotalSeconds;
            Interrupt.StopsAt = "once the result files are written (a few seconds)";

            // Completion: clamp group 1 to e_k and read the mean of group 2 over 500 chains after 100 sweeps.
            int correct = 0;
            using var chains = new GibbsChains(bm, gen);
            for (int k = 0; k < 4; k++)
            {
                using var scope = torch.NewDisposeScope();
                chains.clamp(0, eye[k]);
                chains.start_random(500);
                chains.run(100);
                var means = chains.states.narrow(1, 4, 4).mean([0L]);
                long best = means.argmax().ToInt64();
                if (best == k) correct++;
                Terminal.Line($"group 1 = e{k}: group 2 means {string.Join(" ", Format(means))} → e{best}{(best == k ? "" : " (wrong)")}");
            }
            var weights = Checkpoint.Save(bm, output, new { command = "bm", options, seconds, history, completion = correct });
            var stem = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(weights))!, Path.GetFileNameWithoutExtension(weights));
            AtomicFile.WriteAllText(stem + "-metrics.json", JsonSerializer.Serialize(history, CommonOptions.MetricsJson));
            if (checkpoint is not null) File.Delete(checkpoint);   // the results are written: nothing left to continue
            Terminal.Line($"Done in {seconds:F1} s: completion {correct}/4. Wrote {weights}, its .json sidecar and {stem}-metrics.json");
            if (correct < 4)
            {
                Terminal.Warning($"completion recalled {correct} of the four patterns: the learning ended in a local optimum where patterns share a hidden code (try another --seed or more --epochs). Exit code {ExitCodes.UselessModel}.");
                return ExitCodes.UselessModel;
            }
            return ExitCodes.Success;
        }, () => checkpointEvery == 0
            ? $"bm keeps no checkpoint to continue from with --checkpoint-every 0: nothing was written. Run it again to start over: {CommonOptions.CommandLine}"
            : checkpoint is not null && File.Exists(checkpoint)
                ? $"Saved {checkpoint} ({(savedEpoch > 0 ? $"the run after epoch {savedEpoch} of {options.Epochs}" : "written by an earlier run of this command")}). Continue with: {CommonOptions.CommandLine}"
                : $"No checkpoint had been written yet (one is written every {checkpointEvery} epoch{(checkpointEvery == 1 ? "" : "s")}), so a rerun starts over: {CommonOptions.CommandLine}");
    }

    private static IEnumerable<string> Format(Tensor means) => ToArray(means).Select(x => x.ToString("F2", CultureInfo.InvariantCulture));

    private static double[] ToArray(Tensor t)
    {
        using var c = t.detach().cpu().to_type(ScalarType.Float64).contiguous();
        return c.data<double>().ToArray();
    }

    public static Command Anneal()
    {
        var file = new Argument<string>("instance") { Description = "Text file: one coupling 'i j J_ij' or field 'i h_i' per line (0-based unit indices; '#' starts a comment); E(s) = −Σ_{i<j} J_ij s_i s_j − Σ h_i s_i over spins ±1" };
        var maxCut = new Option<bool>("--max-cut") { Description = "Read 'i j w_ij' as edge weights of a max-cut instance (J = −w) and report the cut" };
        var schedule = new Option<string>("--schedule") { Description = "geometric or linear", DefaultValueFactory = _ => "geometric" };
        var tStart = new Option<double>("--t-start") { Description = "First temperature", DefaultValueFactory = _ => 5.0 };
        var tEnd = new Option<double>("--t-end") { Description = "Last temperature", DefaultValueFactory = _ => 0.05 };
        var stages = new Option<int>("--stages") { Description = "Temperatures in the schedule", DefaultValueFactory = _ => 100 };
        var sweeps = new Option<int>("--sweeps") { Description = "Gibbs sweeps per temperature", DefaultValueFactory = _ => 2 };
        var chains = new Option<int>("--chains") { Description = "Independent chains", DefaultValueFactory = _ => 32 };
        var exact = new Option<bool>("--exact") { Description = "Also find the ground state by enumeration (at most 24 spins) and compare" };
        var seed = CommonOptions.Seed();
        var threads = CommonOptions.Threads();
        var cmd = new Command("anneal", "Simulated annealing of a spin-glass or max-cut instance: prints the lowest energy found and its state. Exit codes: 0 done, 1 error")
        {
            file, maxCut, schedule, tStart, tEnd, stages, sweeps, chains, exact, seed, threads,
        };
        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(RunAnneal(
            r.GetValue(file)!, r.GetValue(maxCut), r.GetValue(schedule)!, r.GetValue(tStart), r.GetValue(tEnd), r.GetValue(stages),
            r.GetValue(sweeps), r.GetValue(chains), r.GetValue(exact), r.GetValue(seed), r.GetValue(threads))));
        return cmd;
    }

    /// <summary>
    /// The most spins an instance may have: the machine is dense (n² couplings in float64), so 8,192 spins take
    /// 0.5 GiB per copy of the couplings. An index above it in a file is refused before anything is allocated.
    /// </summary>
    internal const int MaxInstanceSpins = 8192;

    /// <summary>Reads an instance file: couplings (i, j, value) and fields (i, value); the number of spins is the largest index + 1.</summary>
    /// <exception cref="CliException">The file is missing, a line is not a coupling or a field, an index exceeds
    /// <see cref="MaxInstanceSpins"/> − 1, or it has fewer than two spins (the message names the file and line).</exception>
    internal static (int n, List<(int i, int j, double v)> couplings, List<(int i, double v)> fields) ReadInstance(string path)
    {
        if (!File.Exists(path)) throw new CliException($"instance: file '{path}' not found", ExitCodes.Error);
        var couplings = new List<(int, int, double)>();
        var fields = new List<(int, double)>();
        int n = 0, lineNo = 0;
        foreach (var raw in File.ReadLines(path))
        {
            lineNo++;
            var line = raw.Split('#')[0].Trim();
            if (line.Length == 0) continue;
            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            bool ok = parts.Length is 2 or 3 && int.TryParse(parts[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) && i >= 0;
            int iv = ok ? int.Parse(parts[0], CultureInfo.InvariantCulture) : -1, jv = -1;
            if (ok && parts.Length == 3) ok = int.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out jv) && jv >= 0 && jv != iv;
            ok = ok && double.TryParse(parts[^1], NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value);
            if (!ok)
                throw new CliException($"instance '{path}' line {lineNo}: expected 'i j J_ij' (two distinct indices ≥ 0 and a finite number) or 'i h_i', got '{raw.Trim()}'", ExitCodes.Error);
            if (Math.Max(iv, jv) >= MaxInstanceSpins)
                throw new CliException($"instance '{path}' line {lineNo}: expected unit indices below {MaxInstanceSpins} (the machine is dense: n² couplings), got {Math.Max(iv, jv)}", ExitCodes.Error);
            double v = double.Parse(parts[^1], CultureInfo.InvariantCulture);
            if (parts.Length == 3) { couplings.Add((iv, jv, v)); n = Math.Max(n, Math.Max(iv, jv) + 1); }
            else { fields.Add((iv, v)); n = Math.Max(n, iv + 1); }
        }
        if (n < 2) throw new CliException($"instance '{path}': expected at least two spins, got {n}", ExitCodes.Error);
        return (n, couplings, fields);
    }

    /// <summary>The spin machine of an instance read by <see cref="ReadInstance"/>: J_ij summed over repeated lines (J = −w
    /// for a max-cut instance), fields likewise.</summary>
    /// <exception cref="CliException">Repeated lines sum to an infinite coupling or field (the message names the file).</exception>
    internal static BoltzmannMachine Machine(string path, int n, List<(int i, int j, double v)> couplings, List<(int i, double v)> fields, bool maxCut)
    {
        var w = new double[n * n];
        var h = new double[n];
        foreach (var (i, j, v) in couplings)
        {
            double j2 = maxCut ? -v : v;
            w[i * n + j] += j2;
            w[j * n + i] += j2;
            if (!double.IsFinite(w[i * n + j]))
                throw new CliException($"instance '{path}': expected finite couplings, got the lines for units {i} and {j} summing to {w[i * n + j]}", ExitCodes.Error);
        }
        foreach (var (i, v) in fields)
            if (!double.IsFinite(h[i] += v))
                throw new CliException($"instance '{path}': expected finite fields, got the lines for unit {i} summing to {h[i]}", ExitCodes.Error);
        using var wt = torch.tensor(w, n, n);
        using var ht = torch.tensor(h);
        var bm = boltzmann.BM(n, 0, spins: true, dtype: ScalarType.Float64);
        try { bm.set_parameters(wt, ht); }
        catch { bm.Dispose(); throw; }
        return bm;
    }

    private static int RunAnneal(string path, bool maxCut, string scheduleName, double tStart, double tEnd, int stages, int sweeps, int chainCount,
                                 bool exact, ulong seed, int threads)
        => CommonOptions.Guard(() =>
        {
            CommonOptions.ApplyThreads(threads);
            OptionFlags.AtLeast("--stages", stages, 1);
            OptionFlags.AtLeast("--sweeps", sweeps, 1);
            OptionFlags.AtLeast("--chains", chainCount, 1);
            var schedule = scheduleName switch
            {
                "geometric" => AnnealingSchedule.Geometric(tStart, tEnd, stages),
                "linear" => AnnealingSchedule.Linear(tStart, tEnd, stages),
                _ => throw new CliException($"--schedule: expected geometric or linear, got '{scheduleName}'", ExitCodes.Error),
            };
            var (n, couplings, fields) = ReadInstance(path);
            using var bm = Machine(path, n, couplings, fields, maxCut);
            using var gen = new Generator(seed);
            Terminal.Line($"{n} spins, {couplings.Count} couplings, {fields.Count} fields; {schedule}, {sweeps} sweeps each, {chainCount} chains, seed {seed}");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var result = SimulatedAnnealing.run(bm, schedule, chainCount, sweeps, generator: gen);
            clock.Stop();
            var s = ToArray(result.state);
            Terminal.Line($"lowest energy {result.energy.ToString("G10", CultureInfo.InvariantCulture)} after {result.sweeps} sweeps ({clock.Elapsed.TotalSeconds:F2} s)");
            Terminal.Line($"state: {string.Join("", s.Select(x => x > 0 ? '+' : '-'))}");
            if (maxCut)
            {
                double cut = couplings.Where(c => s[c.i] != s[c.j]).Sum(c => c.v);
                Terminal.Line($"cut: {cut.ToString("G10", CultureInfo.InvariantCulture)} (nodes + / −: {string.Join(" ", Enumerable.Range(0, n).Where(i => s[i] > 0))} / {string.Join(" ", Enumerable.Range(0, n).Where(i => s[i] < 0))})");
            }
            if (exact)
            {
                if (n > ExactEnumeration.MaxEnumeratedUnits)
                    throw new CliException($"--exact: enumerates at most {ExactEnumeration.MaxEnumeratedUnits} spins, got {n}", ExitCodes.Error);
                var (ground, e0) = ExactEnumeration.ground_state(bm);
                ground.Dispose();
                Terminal.Line($"ground-state energy by enumeration {e0.ToString("G10", CultureInfo.InvariantCulture)}: annealing {(result.energy <= e0 + 1e-9 * Math.Max(1, Math.Abs(e0)) ? "found it" : $"is {result.energy - e0:G4} above it")}");
            }
            return ExitCodes.Success;
        });

    private sealed class Printer(Action<LoopProgress<BoltzmannEpochMetrics>> report) : IProgress<LoopProgress<BoltzmannEpochMetrics>>
    {
        public void Report(LoopProgress<BoltzmannEpochMetrics> value) => report(value);
    }
}

using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using TorchBoltzmann.Data;
using TorchBoltzmann.Evaluation;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Cli.Commands;

/// <summary>
/// <c>tbm evaluate MODEL.pt</c>: the average train and test log-likelihood in nats of an RBM checkpoint (or the
/// variational lower bound of a DBN or DBM) on MNIST binarised stochastically (as Salakhutdinov &amp; Murray 2008), with the
/// interval from log Z (see <see cref="LogLikelihood"/>, <see cref="DbmLikelihood"/>): exact log Z where a layer can be
/// enumerated, AIS otherwise, with a progress bar.
/// </summary>
internal static class EvaluateCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("checkpoint")
        {
            Description = "RBM, DBN or DBM checkpoint (.pt with its .json sidecar), trained on 784-pixel MNIST; or the checkpoint of an RBM, DBM or up-down " +
                          "training run (e.g. dbm-train.ckpt), to measure the run as it stood at its last checkpoint, even while it trains",
        };
        var limit = new Option<int?>("--limit") { Description = "Use only the first N training digits and the first min(N, 10000) test digits (default: all 60,000 and 10,000)" };
        var runs = new Option<int>("--runs") { Description = "AIS runs M, annealed in parallel (≥ 2)", DefaultValueFactory = _ => 100 };
        var betas = new Option<int>("--betas") { Description = "AIS steps K, spaced as in Salakhutdinov & Murray 2008 (500 in [0, 0.5], 4,000 in [0.5, 0.9], 10,000 in [0.9, 1] for the default 14,500; ≥ 3)", DefaultValueFactory = _ => 14500 };
        var samples = new Option<int>("--samples") { Description = "DBN: draws of the hidden layers from the up-pass q(h | v) per digit for the variational bound (≥ 1)", DefaultValueFactory = _ => 10 };
        var raise = new Option<bool>("--raise") { Description = "Also estimate the test log-likelihood conservatively by reverse annealing (RAISE, Burda et al. 2015: one chain of K steps per test digit, so it costs about 10,000/M times as much as AIS; RBMs only)" };
        var validation = new Option<int>("--validation")
        {
            Description = "Report the last N training digits apart, as a validation split (the rows `tbm train-rbm --validation N` held out); " +
                          "the training figure and AIS's base rates then use the others. 0: none",
            DefaultValueFactory = _ => 0,
        };
        var seed = new Option<ulong>("--seed") { Description = "Random seed (binarisation of the digits, AIS, RAISE, DBN samples)", DefaultValueFactory = _ => 1UL };
        var data = new CommonOptions.DataOptions();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var cmd = new Command("evaluate", "Average train and test log-likelihood in nats of an RBM (or the variational lower bound of a DBN or a DBM) on stochastically binarised MNIST, " +
                                          "with the interval log(Ẑ ± 3σ̂) of AIS (log Z is exact where one layer has at most 20 units). Exit codes: 0 done, 1 error, 130 interrupted")
        {
            model, limit, runs, betas, samples, raise, validation, seed, device, threads,
        };
        data.AddTo(cmd);
        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Run(new Settings(
            r.GetValue(model)!, r.GetValue(limit), r.GetValue(runs), r.GetValue(betas), r.GetValue(samples), r.GetValue(raise), r.GetValue(validation), r.GetValue(seed),
            data.Read(r), r.GetValue(device)!, r.GetValue(threads), r.GetValue(CommonOptions.Verbose)), ct)));
        return cmd;
    }

    private sealed record Settings(string Model, int? Limit, int Runs, int Betas, int Samples, bool Raise, int Validation, ulong Seed,
                                   CommonOptions.DataSource Data, string Device, int Threads, bool Verbose);

    private static int Run(Settings s, CancellationToken ct) => CommonOptions.Guard(() =>
    {
        CommonOptions.ApplyThreads(s.Threads);
        var device = CommonOptions.ParseDevice(s.Device);
        if (s.Limit is { } lim) OptionFlags.AtLeast("--limit", lim, 1);
        OptionFlags.AtLeast("--runs", s.Runs, 2);
        OptionFlags.AtLeast("--betas", s.Betas, 3);
        OptionFlags.AtLeast("--samples", s.Samples, 1);
        OptionFlags.AtLeast("--validation", s.Validation, 0);
        bool inFlight = RunCheckpoint.IsRunCheckpoint(s.Model);
        if (!inFlight && !Checkpoint.Exists(s.Model)) throw new CliException($"checkpoint {s.Model}: no such checkpoint (expected {Checkpoint.WeightsPath(s.Model)} and its sidecar {Checkpoint.SidecarPath(s.Model)}, or a training run's checkpoint)");
        string? progress = null;
        using var module = inFlight ? LoadRun(s.Model, device, out progress) : Checkpoint.Load(s.Model, device);
        var (rbm, dbn, dbm) = module switch
        {
            RBM r => (r, (DBN?)null, (DBM?)null),
            DBN d => (null, d, null),
            DBM m => (null, null, m),
            _ => throw new CliException($"checkpoint {s.Model}: expected an RBM, a DBN or a DBM, got a {module.GetType().Name}{(module is BoltzmannMachine ? "" : " (a classifier has no likelihood)")}"),
        };
        int nVisible = rbm?.n_visible ?? dbn?.n_visible ?? dbm!.n_visible;
        if (nVisible != 784) throw new CliException($"checkpoint {s.Model}: expected a model of 784 visible units (28×28 MNIST), got {nVisible}");
        if (s.Raise && rbm is null) throw new CliException($"--raise: RAISE is implemented for RBMs; for a {(dbn is not null ? "DBN" : "DBM")} evaluate reports the variational lower bound");
        ct.ThrowIfCancellationRequested();

        var dir = CommonOptions.ResolveMnist(s.Data, s.Verbose);
        using var gen = new Generator(s.Seed, device);
        using var all = LoadBinarised(dir, MnistSplit.Train, s.Limit, device, gen);
        using var test = LoadBinarised(dir, MnistSplit.Test, Math.Min(10000, s.Limit ?? 10000), device, gen);
        long trainCount = OptionFlags.TrainingRows(all.shape[0], s.Validation);
        using var train = all.narrow(0, 0, trainCount);
        using var held = s.Validation > 0 ? all.narrow(0, trainCount, s.Validation) : null;
        var options = new LikelihoodOptions { Ais = new AisOptions { Runs = s.Runs, Schedule = BetaSchedule.Scaled(s.Betas) } };
        var what = rbm?.ToString() ?? dbn?.ToString() ?? dbm!.ToString();
        string from = progress is null ? s.Model : $"the {progress}";
        Terminal.Line($"Evaluating {what} from {from} on {train.shape[0]} training{(held is null ? "" : $", {held.shape[0]} validation")} and {test.shape[0]} test digits (binarised stochastically, seed {s.Seed}), device {device}");

        var clock = System.Diagnostics.Stopwatch.StartNew();
        if (dbm is not null) return EvaluateDbm(dbm, options.Ais, train, held, test, gen, clock, ct);
        var target = rbm ?? dbn!.top;
        bool exact = LogLikelihood.IsEnumerable(target, options.ExactMaxUnits);
        var z = WithProgress(exact, p => rbm is not null
            ? LogLikelihood.partition_function(rbm, train, options, gen, p, ct)
            : LogLikelihood.dbn_top_partition_function(dbn!, train, options, gen, p, ct));
        Terminal.Line(DescribeLogZ(z, rbm is null) + $" ({clock.Elapsed.TotalSeconds:F0} s)");
        ct.ThrowIfCancellationRequested();

        LikelihoodEstimate Estimate(Tensor x) => rbm is not null
            ? LogLikelihood.rbm(rbm, x, z)
            : LogLikelihood.dbn_lower_bound(dbn!, x, z, s.Samples, gen);
        var trainLl = Estimate(train);
        ct.ThrowIfCancellationRequested();
        var heldLl = held is null ? null : Estimate(held);
        var testLl = Estimate(test);
        Terminal.Line(DescribeLikelihood("train", trainLl));
        if (heldLl is not null) Terminal.Line(DescribeLikelihood("valid", heldLl));
        Terminal.Line(DescribeLikelihood("test ", testLl));
        if (s.Raise)
        {
            if (z.Method == PartitionFunctionMethod.Exact)
                Terminal.Line("test, conservative: log Z is exact, so the figure above is exact; RAISE is not needed.");
            else
            {
                using var bias = LogLikelihood.base_bias(rbm!, train, options);
                var r = WithProgress(false, p => ReverseAnnealing.log_likelihood(rbm!, test, bias, options.Ais, gen, p, ct));
                Terminal.Line($"test, conservative (RAISE, {r.Steps} steps, one chain per digit): average log p(v) = {Nats(r.MeanLogLikelihood)} nats, a stochastic lower bound " +
                              $"(spread of the digits' estimates: standard error {r.StandardError.ToString("F2", CultureInfo.InvariantCulture)})");
            }
        }
        Terminal.Line($"Done in {clock.Elapsed.TotalSeconds:F0} s.");
        return ExitCodes.Success;
    });

    /// <summary>
    /// The model of a training run's checkpoint (<see cref="RunCheckpoint.LoadModel"/>), as it stood when the run last
    /// wrote it: the run may still be training. <paramref name="progress"/> says which run and epoch, for the report.
    /// </summary>
    private static nn.Module LoadRun(string path, Device device, out string progress)
    {
        var run = RunCheckpoint.LoadModel(path, device);   // its CheckpointException names the file, in one line
        progress = $"{run.Kind} run checkpoint {path} ({run.Progress})";
        return run.Model;
    }

    /// <summary>
    /// A DBM: log Ẑ by AIS from the base-rate model of the training digits (<see cref="DbmLikelihood.log_partition"/>), then
    /// per split the mean-field bound log p(v) ≥ B(v) − log Z averaged over the digits (<see cref="DbmLikelihood.lower_bound"/>),
    /// with the interval [B̄ − log(Ẑ + 3σ̂), B̄ − log(Ẑ − 3σ̂)] that log Z's interval gives it.
    /// </summary>
    private static int EvaluateDbm(DBM dbm, AisOptions ais, Tensor train, Tensor? held, Tensor test, Generator gen, System.Diagnostics.Stopwatch clock, CancellationToken ct)
    {
        using var baseRate = AnnealedImportanceSampling.base_rate_bias(Units.UnitType.Bernoulli, train);
        ReportDbmLikelihood(dbm, baseRate, ais, gen, held is null ? [("train", train), ("test ", test)] : [("train", train), ("valid", held), ("test ", test)], clock, ct);
        Terminal.Line($"Done in {clock.Elapsed.TotalSeconds:F0} s.");
        return ExitCodes.Success;
    }

    /// <summary>
    /// The likelihood of a DBM, as <c>tbm evaluate</c> and <c>tbm dbm</c> print it: log Ẑ by AIS from the base-rate model
    /// <paramref name="baseRate"/> with a progress bar (<see cref="DbmLikelihood.log_partition"/>), then per split the
    /// mean-field bound log p(v) ≥ B̄ − log Z averaged over its digits (<see cref="DbmLikelihood.lower_bound"/>), with the
    /// interval [B̄ − log(Ẑ + 3σ̂), B̄ − log(Ẑ − 3σ̂)] that log Z's interval gives it. Returns log Ẑ and the splits' bounds in order.
    /// </summary>
    internal static (PartitionFunctionEstimate LogZ, double[] Bounds) ReportDbmLikelihood(DBM dbm, Tensor baseRate, AisOptions ais, Generator gen,
        IReadOnlyList<(string Split, Tensor Digits)> splits, System.Diagnostics.Stopwatch clock, CancellationToken ct)
    {
        var z = WithProgress(false, p => DbmLikelihood.log_partition(dbm, baseRate, ais, gen, p, ct));
        Terminal.Line(DescribeLogZ(z, top: false) + $" ({clock.Elapsed.TotalSeconds:F0} s)");
        var bounds = new double[splits.Count];
        for (int i = 0; i < splits.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            var (split, x) = splits[i];
            double b = DbmLikelihood.lower_bound(dbm, x, 0);   // B̄, the bound without log Z
            bounds[i] = b - z.LogZ;
            Terminal.Line($"{split}: variational (mean-field) lower bound on average log p(v) = {Nats(b - z.LogZ)} nats " +
                          $"(interval [{Nats(b - z.LogZUpper)}, {Nats(b - z.LogZLower)}] from log Z; {x.shape[0]} digits)");
        }
        return (z, bounds);
    }

    /// <summary>A split of MNIST, scaled to [0, 1] and binarised stochastically (y ~ Bernoulli(pixel)) from <paramref name="gen"/>.</summary>
    private static Tensor LoadBinarised(string dir, MnistSplit split, int? limit, Device device, Generator gen)
    {
        using var set = MnistDataset.Load(dir, split, limit);
        using var images = set.Images.to(device);
        return Binarize.Stochastic(images, gen);
    }

    /// <summary>Runs <paramref name="work"/> with a progress bar for its annealing (none when log Z is exact).</summary>
    private static T WithProgress<T>(bool exact, Func<IProgress<AnnealingProgress>?, T> work)
    {
        if (exact) return work(null);
        T result = default!;
        Terminal.Out.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx => result = work(new AnnealingBar(ctx)));
        return result;
    }

    private sealed class AnnealingBar(ProgressContext context) : IProgress<AnnealingProgress>
    {
        private readonly Dictionary<string, ProgressTask> _tasks = new();

        public void Report(AnnealingProgress p)
        {
            if (!_tasks.TryGetValue(p.Stage, out var task))
            {
                task = context.AddTask(Markup.Escape($"{p.Stage} steps"), maxValue: p.Steps);
                _tasks[p.Stage] = task;
            }
            task.Value = p.Step;
        }
    }

    /// <summary>A figure with two decimals and a true minus sign; ±∞ (an interval end when Ẑ − 3σ̂ ≤ 0) as ∞.</summary>
    internal static string Nats(double x) => double.IsPositiveInfinity(x) ? "∞" : double.IsNegativeInfinity(x) ? "−∞"
        : x.ToString("F2", CultureInfo.InvariantCulture).Replace("-", "−");

    internal static string DescribeLogZ(PartitionFunctionEstimate z, bool top)
    {
        string of = top ? "log Z of the top RBM" : "log Z";
        return z.Method == PartitionFunctionMethod.Exact
            ? $"{of} = {Nats(z.LogZ)} (exact: one layer enumerated)"
            : $"{of} = {Nats(z.LogZ)} by AIS ({z.Runs} runs, {z.Steps} steps; log(Ẑ ± 3σ̂) = [{Nats(z.LogZLower)}, {Nats(z.LogZUpper)}]; " +
              $"effective sample size {z.EffectiveSampleSize.ToString("F1", CultureInfo.InvariantCulture)} of {z.Runs})";
    }

    internal static string DescribeLikelihood(string split, LikelihoodEstimate e)
    {
        string what = e.Kind == LikelihoodKind.LogLikelihood ? "average log p(v)" : "variational lower bound on average log p(v)";
        string interval = e.PartitionFunction.Method == PartitionFunctionMethod.Exact ? "exact log Z" : $"interval [{Nats(e.Lower)}, {Nats(e.Upper)}] from log Z";
        string mc = e.Kind == LikelihoodKind.VariationalLowerBound && double.IsFinite(e.StandardError)
            ? $", sampling standard error {e.StandardError.ToString("F2", CultureInfo.InvariantCulture)}" : "";
        return $"{split}: {what} = {Nats(e.MeanLogLikelihood)} nats ({interval}{mc}; {e.Count} digits)";
    }
}

// --compare: this library against the matrix-product floors, PyTorch and scikit-learn on the same digits, rep-major (every
// column once per repeat, so machine noise spreads over all columns), written as Markdown and CSV to bench/results/.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace TorchBoltzmann.Bench;

/// <summary>One timed run of one column.</summary>
sealed record Measurement(string Column, double Seconds, long Samples, string Blas, int Threads, double? PeakRssMb = null,
                          long? LiveTensors = null, string? Note = null, double? Work = null, string? WorkUnit = null);

/// <summary>A column of the table: who runs it, what it does, and the column its ratio is taken against.</summary>
/// <param name="Floor">A matrix-product floor (the lowest floor of the run is the denominator of "ours / floor").</param>
/// <param name="VsFloor">Whether "ours / floor" applies (CD-1 and PCD-1 epochs: the floor's five products are theirs).</param>
/// <param name="Peer">The PyTorch column of the same work, for "ours / PyTorch".</param>
sealed record ColumnInfo(string Name, string Who, string Work, bool Floor = false, bool VsFloor = false, string? Peer = null);

/// <summary>A step of a repeat: one or more columns measured together (a DBN pretraining run gives one per layer).</summary>
sealed record CompareStep(string Label, Func<IReadOnlyList<Measurement>> Run);

sealed class CompareBench(int reps, int threads, string? peers, string outDir, long? limit, string mnistDir, string[] args)
{
    /// <summary>The Python peers in their table order (bench/peers/peers.py's columns).</summary>
    public static readonly ColumnInfo[] PeerColumns =
    [
        new("numpy-floor", "numpy", "five GEMMs of a CD-1 epoch (784×500, batch 100)", Floor: true),
        new("torch-floor", "PyTorch", "five GEMMs of a CD-1 epoch (784×500, batch 100)", Floor: true),
        new("torch-cd1", "PyTorch hand-fused", "RBM 784×500 CD-1 epoch"),
        new("torch-autograd-cd1", "PyTorch autograd", "RBM 784×500 CD-1 epoch (free-energy surrogate, optim.SGD)"),
        new("torch-cd10", "PyTorch hand-fused", "RBM 784×500 CD-10 epoch"),
        new("torch-pcd1", "PyTorch hand-fused", "RBM 784×500 PCD-1 epoch"),
        new("sklearn-pcd", "scikit-learn", "BernoulliRBM 784×500 PCD-1 epoch (fit, n_iter=1)"),
        new("torch-finetune", "PyTorch", "fine-tuning epoch 784-500-500-2000-10, dropout, SGD"),
    ];

    private readonly Dictionary<string, List<Measurement>> _runs = [];
    private readonly Dictionary<string, string> _skipped = [];
    private readonly List<ColumnInfo> _columns = [];
    private long _liveAtEnd;

    /// <summary>The repository root: the nearest directory above the working directory or the program that holds bench/peers.</summary>
    public static string RepoRoot()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "bench", "peers", "peers.py"))) return d.FullName;
        return Directory.GetCurrentDirectory();
    }

    /// <summary>Which peers run: all, none, or a comma-separated list of peers.py's columns (refused when unknown).</summary>
    public static IReadOnlyList<ColumnInfo> SelectPeers(string? peers)
    {
        if (peers is null or "all") return PeerColumns;
        if (peers == "none") return [];
        var names = peers.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var unknown = names.Where(n => PeerColumns.All(c => c.Name != n)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"--peers: expected all, none or a comma-separated list of {string.Join(", ", PeerColumns.Select(c => c.Name))}; got {string.Join(", ", unknown)}");
        return PeerColumns.Where(c => names.Contains(c.Name)).ToList();
    }

    /// <summary>Runs <paramref name="ours"/> and the chosen peers interleaved, <c>reps</c> times, then writes the report.</summary>
    /// <param name="ours">Our columns and the steps that measure them, in table order; peers are slotted in after the
    /// column whose work they repeat.</param>
    /// <param name="peakRssMb">Our process's peak resident size, read after the last repeat.</param>
    /// <param name="liveTensors">The tensors alive on our thread (TorchSharp's DisposeScopeManager count), read before and
    /// after each of our steps: the difference is what the step left alive.</param>
    public int Run(IReadOnlyList<(ColumnInfo[] columns, CompareStep step)> ours, Func<double> peakRssMb, Func<long> liveTensors)
    {
        var root = RepoRoot();
        var script = Path.Combine(root, "bench", "peers", "peers.py");
        var chosen = SelectPeers(peers);
        var python = Environment.GetEnvironmentVariable("TBM_PYTHON") ?? (File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
        // Peers slot in after our column of the same work (the floors after ours); those left go at the end.
        var order = new List<(ColumnInfo[] columns, CompareStep step)>();
        var placed = new HashSet<string>();
        foreach (var (cols, step) in ours)
        {
            order.Add((cols, step));
            foreach (var c in cols)
            {
                var follow = chosen.Where(p => !placed.Contains(p.Name) && (c.Floor ? p.Floor : p.Name == c.Peer || PeerAfter(c, p))).ToList();
                foreach (var p in follow) { order.Add(([p], new CompareStep(p.Name, () => RunPeer(python, script, p.Name)))); placed.Add(p.Name); }
            }
        }
        foreach (var p in chosen.Where(p => !placed.Contains(p.Name)))
            order.Add(([p], new CompareStep(p.Name, () => RunPeer(python, script, p.Name))));
        _columns.AddRange(order.SelectMany(o => o.columns));

        var started = DateTime.UtcNow;
        Console.WriteLine($"--compare: {reps} repeats × {order.Count} steps, {threads} threads, {(limit is null ? "all training digits" : $"first {limit} digits")}, peers: {(chosen.Count == 0 ? "none" : string.Join(" ", chosen.Select(c => c.Name)))}");
        for (int rep = 1; rep <= reps; rep++)
        {
            foreach (var (cols, step) in order)
            {
                if (cols.All(c => _skipped.ContainsKey(c.Name))) continue;
                long before = liveTensors();
                var results = step.Run();
                long after = liveTensors();
                foreach (var r in results)
                {
                    var m = r.LiveTensors is null ? r : r with { LiveTensors = after - before };
                    (_runs.TryGetValue(m.Column, out var list) ? list : _runs[m.Column] = []).Add(m);
                    string rate = m.Work is { } w ? $"{w / m.Seconds,14:N0} {m.WorkUnit}" : $"{m.Samples / m.Seconds,14:N0} samples/s";
                    Console.WriteLine($"  rep {rep}/{reps}  {m.Column,-22} {m.Seconds,9:F3} s  {rate}");
                }
            }
        }
        double ourPeak = peakRssMb();
        _liveAtEnd = liveTensors();
        var (md, csv) = Report(started, ourPeak, python);
        Directory.CreateDirectory(outDir);
        var stem = Path.Combine(outDir, $"compare-{started:yyyyMMdd-HHmm}");
        File.WriteAllText(stem + ".md", md);
        File.WriteAllText(stem + ".csv", csv);
        File.WriteAllText(Path.Combine(outDir, "latest.md"), md);
        Console.WriteLine();
        Console.WriteLine(md);
        Console.WriteLine($"written: {stem}.md, {stem}.csv, {Path.Combine(outDir, "latest.md")}");
        return 0;
    }

    // The autograd and scikit-learn peers follow the hand-fused PyTorch column they are compared beside.
    private static bool PeerAfter(ColumnInfo ours, ColumnInfo peer) =>
        (ours.Peer == "torch-cd1" && peer.Name == "torch-autograd-cd1") || (ours.Peer == "torch-pcd1" && peer.Name == "sklearn-pcd");

    /// <summary>One peer column in a child process (bench/peers/peers.py times itself; the interpreter's start is not
    /// timed). Exit status 3 (a missing package) or any failure skips the column for the rest of the run, with one line.</summary>
    private IReadOnlyList<Measurement> RunPeer(string python, string script, string column)
    {
        var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { script, column, "--mnist", mnistDir, "--threads", threads.ToString(CultureInfo.InvariantCulture) }) psi.ArgumentList.Add(a);
        if (limit is not null) { psi.ArgumentList.Add("--limit"); psi.ArgumentList.Add(limit.Value.ToString(CultureInfo.InvariantCulture)); }
        // Debian's numpy and torch call libblas.so.3; OpenBLAS-OpenMP's directory first makes that OpenBLAS with OpenMP
        // threads whatever the system alternative says, and the thread variables give it the same count as ours.
        const string openblas = "/usr/lib/x86_64-linux-gnu/openblas-openmp";
        if (Directory.Exists(openblas))
        {
            var old = Environment.GetEnvironmentVariable("LD_LIBRARY_PATH");
            psi.Environment["LD_LIBRARY_PATH"] = string.IsNullOrEmpty(old) ? openblas : $"{openblas}:{old}";
        }
        foreach (var v in new[] { "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS" }) psi.Environment[v] = threads.ToString(CultureInfo.InvariantCulture);
        Process child;
        try { child = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e)
        {
            Skip(column, $"{python} not found ({e.Message}): apt-get install python3; column skipped");
            return [];
        }
        using (child)
        {
            var stderr = child.StandardError.ReadToEndAsync();
            string stdout = child.StandardOutput.ReadToEnd();
            child.WaitForExit();
            string err = stderr.Result.Trim();
            if (child.ExitCode == 3) { Skip(column, err.Split('\n')[^1]); return []; }
            var line = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault(l => l.StartsWith('{'));
            if (child.ExitCode != 0 || line is null)
            {
                Skip(column, $"{column} failed (exit {child.ExitCode}): {(err.Length > 0 ? err.Split('\n')[^1] : stdout.Trim())}; column skipped");
                return [];
            }
            using var json = JsonDocument.Parse(line);
            var r = json.RootElement;
            return [new Measurement(column, r.GetProperty("seconds").GetDouble(), r.GetProperty("samples").GetInt64(), r.GetProperty("blas").GetString()!,
                                    r.GetProperty("threads").GetInt32(), r.GetProperty("peak_rss_mb").GetDouble(), Note: r.GetProperty("note").GetString())];
        }
    }

    private void Skip(string column, string why)
    {
        if (_skipped.TryAdd(column, why)) Console.WriteLine($"  {column}: {why}");
    }

    private static double Median(IReadOnlyList<double> xs)
    {
        var s = xs.OrderBy(x => x).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    private static string F(double? x, string format = "F3") => x is { } v ? v.ToString(format, CultureInfo.InvariantCulture) : "";

    private static string Git(string root, string arguments)
    {
        try
        {
            var psi = new ProcessStartInfo("git") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = root };
            foreach (var a in arguments.Split(' ')) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            string o = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 ? o : "unknown";
        }
        catch (System.ComponentModel.Win32Exception) { return "unknown"; }
    }

    private static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? "unknown CPU" : line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { return "unknown CPU"; }
    }

    /// <summary>
    /// The Markdown table and the CSV. Per column: median and min seconds over the repeats, samples/s at the median, and for
    /// our columns ours / floor (median over the lowest floor median of the run) and ours / PyTorch (median over the
    /// median of the PyTorch column of the same work); then the targets as lines.
    /// </summary>
    private (string md, string csv) Report(DateTime started, double ourPeakMb, string python)
    {
        var root = RepoRoot();
        string commit = Git(root, "rev-parse --short HEAD");
        string dirty = Git(root, "status --porcelain --untracked-files=no");
        var med = _runs.ToDictionary(kv => kv.Key, kv => Median(kv.Value.Select(m => m.Seconds).ToList()));
        var floors = _columns.Where(c => c.Floor && med.ContainsKey(c.Name)).ToList();
        var lowest = floors.Count == 0 ? null : floors.MinBy(c => med[c.Name]);
        double? RatioFloor(ColumnInfo c) => c.VsFloor && lowest is not null && med.ContainsKey(c.Name) ? med[c.Name] / med[lowest.Name] : null;
        double? RatioPeer(ColumnInfo c) => c.Peer is { } p && med.ContainsKey(p) && med.ContainsKey(c.Name) ? med[c.Name] / med[p] : null;

        var md = new StringBuilder();
        md.AppendLine("# Side by side: TorchBoltzmann, the matrix-product floors, PyTorch and scikit-learn");
        md.AppendLine();
        md.AppendLine($"- command: `dotnet run -c Release --project bench/TorchBoltzmann.Bench -- {string.Join(' ', args)}`");
        md.AppendLine($"- commit {commit}{(dirty is "" or "unknown" ? "" : " (with uncommitted changes)")}, {started:yyyy-MM-dd HH:mm} UTC");
        md.AppendLine($"- machine: {CpuModel()}, {Environment.ProcessorCount} logical cores; threads per column: {threads}; repeats: {reps} (rep-major: every column once per repeat)");
        md.AppendLine($"- data: MNIST training digits{(limit is null ? "" : $" (first {limit})")}, binarised at x > 0.5 for the RBM columns; batch 100; float32");
        md.AppendLine($"- peers: {python} running bench/peers/peers.py, each column in its own process, timing itself (start-up, imports, reading MNIST and 5 warm-up batches not timed)");
        md.AppendLine($"- our process: peak RSS {ourPeakMb:F0} MB (VmHWM, all our columns together); tensors alive on our thread after the last repeat: {_liveAtEnd} (counted from the end of the warm-up)");
        md.AppendLine();
        md.AppendLine("| column | implementation | work | BLAS | threads | median s | min s | samples/s | ours / floor | ours / PyTorch | peak RSS MB | live tensors left |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        var csv = new StringBuilder("column,implementation,work,blas,threads,repeats,median_s,min_s,samples,samples_per_s,ratio_floor,ratio_pytorch,peak_rss_mb,live_tensors_left,work_per_s,work_unit,note\n");
        static string Q(string s) => "\"" + s.Replace("\"", "\"\"") + "\"";
        foreach (var c in _columns)
        {
            if (!_runs.TryGetValue(c.Name, out var ms))
            {
                md.AppendLine($"| {c.Name} | {c.Who} | {c.Work} | | | skipped: {_skipped.GetValueOrDefault(c.Name, "not run")} | | | | | | |");
                continue;
            }
            var last = ms[^1];
            double median = med[c.Name], min = ms.Min(m => m.Seconds);
            double rate = last.Samples / median;
            string work = last.Work is { } w ? $"{w / median:N0} {last.WorkUnit}" : "";
            string rateText = work.Length > 0 ? work : rate.ToString("N0", CultureInfo.InvariantCulture);
            double? peak = ms.Max(m => m.PeakRssMb);
            md.AppendLine($"| {c.Name} | {c.Who} | {c.Work} | {last.Blas} | {last.Threads} | {median:F3} | {min:F3} | {rateText} | {F(RatioFloor(c), "F2")} | {F(RatioPeer(c), "F2")} | {F(peak, "F0")} | {(last.LiveTensors?.ToString(CultureInfo.InvariantCulture) ?? "")} |");
            csv.AppendLine(string.Join(',', Q(c.Name), Q(c.Who), Q(c.Work), Q(last.Blas), last.Threads, ms.Count, F(median, "F4"), F(min, "F4"), last.Samples,
                F(rate, "F1"), F(RatioFloor(c), "F3"), F(RatioPeer(c), "F3"), F(peak, "F0"), last.LiveTensors?.ToString(CultureInfo.InvariantCulture) ?? "",
                last.Work is { } w2 ? F(w2 / median, "F1") : "", Q(last.WorkUnit ?? ""), Q(last.Note ?? "")));
        }
        md.AppendLine();
        md.AppendLine($"Seconds are one epoch (or one run of the stated work); samples/s = samples / median; ratios are of medians. Lowest floor of the run: {(lowest is null ? "none measured" : $"{lowest.Name} ({med[lowest.Name]:F3} s)")}. Peak RSS: the peer's own process (VmHWM); ours is in the header. Live tensors: how many more tensors were alive on our thread (TorchSharp's DisposeScopeManager count) after the column's step than before it, in the last repeat (a DBN step's three columns share one figure); tensors freed later by the garbage collector on its own thread are not subtracted, so a positive figure is an upper bound on what the step keeps.");
        md.AppendLine();
        md.AppendLine("Targets (issue 33):");
        void Target(string what, double? ratio, double bound)
            => md.AppendLine($"- {what} {(ratio is { } r ? $"{r:F2} (target ≤ {bound:F2}: {(r <= bound ? "met" : "missed")})" : $"not measured (target ≤ {bound:F2})")}");
        var cd1 = _columns.FirstOrDefault(c => c.Name == "ours-cd1");
        var ft = _columns.FirstOrDefault(c => c.Name == "ours-finetune");
        Target("RBM CD-1 epoch / lowest floor", cd1 is null ? null : RatioFloor(cd1), 1.15);
        Target("RBM CD-1 epoch / PyTorch hand-fused", cd1 is null ? null : RatioPeer(cd1), 0.85);
        Target("DBN fine-tuning epoch / PyTorch", ft is null ? null : RatioPeer(ft), 0.85);
        if (_skipped.Count > 0)
        {
            md.AppendLine();
            md.AppendLine("Skipped:");
            foreach (var (name, why) in _skipped) md.AppendLine($"- {name}: {why}");
        }
        md.AppendLine();
        md.AppendLine("Notes on the columns (what each matches):");
        foreach (var note in _runs.Values.Select(l => (l[^1].Column, l[^1].Note)).Where(x => x.Note is not null).Distinct())
            md.AppendLine($"- {note.Column}: {note.Note}");
        return (md.ToString(), csv.ToString());
    }
}

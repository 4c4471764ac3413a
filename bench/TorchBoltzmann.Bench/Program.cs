// CD-1 epoch benchmark (784×500, batch 100, all MNIST training digits): the trainer's epoch time against the time of
// the five matrix products an epoch needs, measured in the same run. Not a test: the ratio is what to compare.
//   dotnet run -c Release --project bench/TorchBoltzmann.Bench -- [--threads 2] [--epochs 2] [--device cpu|cuda] [--autograd]
// With --profile-cd1: where a CD-1 epoch (784×500, batch 100) goes: each operation of RbmTrainer's batch timed alone,
// a few alternatives (batched uniforms, torch.bernoulli, one K = 200 product for the statistics), the five products in
// sequence, all operations in sequence, RbmTrainer.Step and RbmTrainer.Fit, each as seconds per epoch from the same run.
// With --profile: where a dropout fine-tuning epoch of that classifier goes: its eleven matrix products alone, the
// forward pass, forward + backward, and forward + backward + a torch.optim.SGD step on contiguous batches (not FineTuner:
// no shuffling, schedules or checkpoints), each extrapolated to 600 batches from the same run.
// With --dropout: instead, a fine-tuning epoch of a 784-500-500-2000-10 classifier with dropout 0.2 / 0.5 (all 60,000
// digits, batch 100, SGD) with FastDropout against the same with nn.Dropout, alternated in one run, and their ratio.
// With --heap: the peak resident size (VmHWM) of conjugate-gradient fine-tuning (784-500-500-2000-10 from random weights,
// the first 10,000 digits, batches of 1,000, 3 line searches, --epochs epochs) with the training loops' heap releases
// (NativeAllocator.ReleaseIfGrown) turned off and on, each in a fresh process started by this one, and their ratio.
// With --bf16: the --dropout epoch (FastDropout) in float32 against the same with ClassifierTrainingOptions.ComputeDtype =
// BFloat16 (each Linear's product in bfloat16, weights and updates in float32), alternated in one run, and their ratio.
// With --memory: whether a long run's memory stays flat: 784×500 CD-1 training and then the dropout fine-tuning of the
// 784-500-500-2000-10 classifier, each for --epochs epochs (50 is the figure the docs quote) on --digits digits (default
// 10,000), printing after chosen epochs the anonymous resident size (RssAnon), the tensors alive and the heap releases.
// With --bm: Gibbs sweeps of a general Boltzmann machine, 1,000 chains × 100 units (50 visible, 50 hidden), in chain-sweeps
// per second: systematic and random single-unit scans on a full mask, and systematic against blocked (two colour
// classes) on a bipartite mask; --epochs sets the timed sweeps in hundreds (no MNIST needed).
// With --data: 784×500 CD-1 epochs (batch 100, binarised digits) from four sources, each in a fresh child process: (a) the
// float32 tensor in memory, (b) a uint8 tensor in memory converted per batch, (c) an IdxStream over MNIST's training
// file, (d) an IdxStream over 10× MNIST (--x10 DIR, written by `tbm make-mnist-x10`; skipped without it); each prints the
// time per sample, the peak resident size (VmHWM) and the anonymous resident size when training ends, before and after
// malloc_trim (the difference is free heap glibc kept, not tensors). --limit N trains on the first N rows of each source.
// With --compare: this library side by side with the matrix-product floors, PyTorch and scikit-learn on the same digits
// (Compare.cs; the peers are bench/peers/peers.py, each column a child process), every column once per repeat (rep-major):
// the libtorch five-GEMM floor; RBM 784×500 CD-1, CD-10 and PCD-1 epochs; a DBN 784-500-500-2000 pretraining epoch per
// layer; the dropout fine-tuning epoch of --dropout; a DBM 784-500-1000 epoch (float32, and bfloat16 products); an AIS estimate (100 runs × 1,000 β steps);
// Gibbs sweeps of --bm's machine. --reps R (3), --threads T, --limit N (first N digits), --peers all|none|a,b,…,
// --out DIR (bench/results): writes compare-YYYYMMDD-HHMM.md and .csv and latest.md there.
//   dotnet run -c Release --project bench/TorchBoltzmann.Bench -- --compare --threads 2 --reps 3
using System.Diagnostics;
using TorchBoltzmann;
using TorchBoltzmann.Data;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

int threads = 2, epochs = 2;
string deviceName = "cpu";
bool autograd = false, dropout = false, profile = false, profileCd = false, heap = false, bf16 = false, memory = false, bmSweeps = false, dataSources = false, compare = false;
string? dataMode = null, x10 = null, peers = null, outDir = null;
int reps = 3;
long? limit = null;
int digits = 10_000;
string? heapRelease = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--threads": threads = int.Parse(args[++i]); break;
        case "--epochs": epochs = int.Parse(args[++i]); break;
        case "--device": deviceName = args[++i]; break;
        case "--autograd": autograd = true; break;
        case "--dropout": dropout = true; break;
        case "--profile": profile = true; break;
        case "--profile-cd1": profileCd = true; break;
        case "--heap": heap = true; break;
        case "--bf16": bf16 = true; break;
        case "--memory": memory = true; break;
        case "--bm": bmSweeps = true; break;
        case "--data": dataSources = true; break;
        case "--data-mode": dataMode = args[++i]; break;   // internal: the child processes of --data
        case "--x10": x10 = args[++i]; break;
        case "--limit": limit = long.Parse(args[++i]); break;
        case "--digits": digits = int.Parse(args[++i]); break;
        case "--heap-release": heapRelease = args[++i]; break;   // internal: the child processes of --heap
        case "--compare": compare = true; break;
        case "--reps": reps = int.Parse(args[++i]); break;
        case "--peers": peers = args[++i]; break;
        case "--out": outDir = args[++i]; break;
        case "--no-tune": break;
        default: Console.Error.WriteLine($"unknown argument {args[i]}"); return 2;
    }
}
if (new[] { dropout, profile, profileCd, heap, bf16, memory, bmSweeps, dataSources, compare }.Count(b => b) > 1) { Console.Error.WriteLine("--dropout, --profile, --profile-cd1, --heap, --bf16, --memory, --bm, --data and --compare are separate benchmarks: give one"); return 2; }
if (compare && reps < 1) { Console.Error.WriteLine($"--reps: expected a positive number of repeats, got {reps}"); return 2; }
if (compare && limit is { } l0 && l0 < 100) { Console.Error.WriteLine($"--limit: expected at least 100 digits (one batch), got {l0}"); return 2; }
if (compare)
{
    try { TorchBoltzmann.Bench.CompareBench.SelectPeers(peers); }
    catch (ArgumentException e) { Console.Error.WriteLine(e.Message); return 2; }
}
if (dataSources && dataMode is null) return DataComparison();
if (heap && heapRelease is null) return HeapComparison();
if (!args.Contains("--no-tune")) NativeAllocator.Tune();
torch.set_num_threads(threads);
var device = torch.device(deviceName);
if (bmSweeps) return BmSweepBenchmark();
if (dataMode is not null) return DataRun(dataMode);
Console.WriteLine($"TorchBoltzmann CD-1 benchmark: device {device}, {torch.get_num_threads()} threads, glibc tuned: {NativeAllocator.IsTuned}");

var dir = MnistFetcher.Resolve(log: new Progress<string>(Console.WriteLine));
using var mnist = MnistDataset.Load(dir, MnistSplit.Train, compare && limit is not null ? (int)limit.Value : null);
using var data = Binarize.Threshold(mnist.Images).to(device);
const int nv = 784, nh = 500, batch = 100;
long n = data.shape[0];
int batches = (int)(n / batch);

void Sync() { if (device.type == DeviceType.CUDA) torch.cuda.synchronize(); }

if (dropout || bf16) return DropoutBenchmark();
if (profile) return FineTuningProfile();
if (profileCd) return CdProfile();
if (heap) return HeapRun(heapRelease == "on");
if (memory) return MemoryRun();
if (compare) return CompareRun();

// 1. The five matrix products of a CD-1 step, on the same shapes, per batch (the first `count` batches; all by default).
double GemmEpoch(int? count = null)
{
    using var w = torch.randn(nh, nv, device: device) * 0.01f;
    using var h = torch.rand(batch, nh, device: device);
    var clock = Stopwatch.StartNew();
    for (int b = 0; b < (count ?? batches); b++)
    {
        using var scope = torch.NewDisposeScope();
        var v0 = data.narrow(0, (long)b * batch, batch);
        var a1 = v0.matmul(w.t());     // positive hidden net
        var a2 = h.matmul(w);          // visible net
        var a3 = a2.matmul(w.t());     // negative hidden net
        var g1 = a1.t().matmul(v0);    // positive statistics
        var g2 = a3.t().matmul(a2);    // negative statistics
    }
    Sync();
    return clock.Elapsed.TotalSeconds;
}

// One epoch of RbmTrainer (CD-k, or PCD-k when persistent) on `on` (the whole data set by default).
double TrainerEpoch(GradientMode mode, int k = 1, bool persistent = false, Tensor? on = null, ScalarType? computeDtype = null)
{
    using var g = new Generator(1, device);
    using var rbm = boltzmann.RBM(nv, nh, device: device, generator: g);
    using var trainer = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 1, BatchSize = batch, MetricsEvery = 0, Gradient = mode, Shuffle = true, K = k, Persistent = persistent, ComputeDtype = computeDtype });
    var clock = Stopwatch.StartNew();
    trainer.Fit(on ?? data);
    Sync();
    return clock.Elapsed.TotalSeconds;
}

GemmEpoch(); TrainerEpoch(GradientMode.Direct); // warm-up
var gemm = new List<double>(); var direct = new List<double>(); var auto = new List<double>();
for (int e = 0; e < epochs; e++)
{
    gemm.Add(GemmEpoch());
    direct.Add(TrainerEpoch(GradientMode.Direct));
    if (autograd) auto.Add(TrainerEpoch(GradientMode.Autograd));
}
double gm = gemm.Min(), dm = direct.Min();
Console.WriteLine($"five GEMMs per epoch:       {gm:F3} s (min of {epochs})");
Console.WriteLine($"trainer CD-1 epoch (direct): {dm:F3} s  ratio {dm / gm:F2}  (target ≤ 1.30)");
if (autograd) Console.WriteLine($"trainer CD-1 epoch (autograd): {auto.Min():F3} s  ratio {auto.Min() / gm:F2}");
return 0;

// A fine-tuning epoch with each dropout module: the classifier DbnClassifier builds (FastDropout), and the same with
// its dropout children replaced by nn.Dropout.
int DropoutBenchmark()
{
    using var labels = mnist.Labels.to(device);
    using var pixels = mnist.Images.to(device);
    double Epoch(bool fast, bool half = false) => FineTuneEpoch(pixels, labels, fast, half);
    Epoch(true); // warm-up
    if (bf16)
    {
        Epoch(true, half: true);
        var f32 = new List<double>(); var b16 = new List<double>();
        for (int e = 0; e < epochs; e++) { f32.Add(Epoch(true)); b16.Add(Epoch(true, half: true)); }
        Console.WriteLine($"fine-tuning epoch, float32:            {f32.Min():F3} s (min of {epochs})");
        Console.WriteLine($"fine-tuning epoch, bfloat16 products:  {b16.Min():F3} s  ratio {b16.Min() / f32.Min():F2}");
        return 0;
    }
    var fast = new List<double>(); var plain = new List<double>();
    for (int e = 0; e < epochs; e++) { plain.Add(Epoch(false)); fast.Add(Epoch(true)); }
    Console.WriteLine($"fine-tuning epoch, nn.Dropout:  {plain.Min():F3} s (min of {epochs})");
    Console.WriteLine($"fine-tuning epoch, FastDropout: {fast.Min():F3} s  ratio {fast.Min() / plain.Min():F2}");
    return 0;
}

// One fine-tuning epoch of DbnClassifier.Build([784, 500, 500, 2000], 10, 0.2, 0.5) (FineTuner's SGD defaults, every
// digit trained on): fast: FastDropout (else nn.Dropout); half: the products in bfloat16 (ComputeDtype).
double FineTuneEpoch(Tensor pixels, Tensor labels, bool fast = true, bool half = false)
{
    using var g = new Generator(1, device);
    using var clf = TorchBoltzmann.Modules.DbnClassifier.Build([784, 500, 500, 2000], 10, 0.2, 0.5, device, ScalarType.Float32, g);
    var children = clf.named_children().Select(c => (c.name, c.module is TorchBoltzmann.Modules.FastDropout d && !fast
        ? (nn.Module<Tensor, Tensor>)nn.Dropout(d.p) : (nn.Module<Tensor, Tensor>)c.module)).ToList();
    using var model = nn.Sequential(children);
    using var tuner = new FineTuner(model, new ClassifierTrainingOptions
    {
        Epochs = 1, ValidationCount = 0, LearningRateDecay = 1, ComputeDtype = half ? ScalarType.BFloat16 : null,
    });
    var clock = Stopwatch.StartNew();
    tuner.Fit(pixels, labels);
    Sync();
    return clock.Elapsed.TotalSeconds;
}

// Where a dropout fine-tuning epoch goes (784-500-500-2000-10, batch 100): the GEMMs alone, forward, forward + backward,
// and forward + backward + an SGD step, each timed over the same batches in one run.
int FineTuningProfile()
{
    using var labels = mnist.Labels.to(device);
    using var pixels = mnist.Images.to(device);
    int[] sizes = [784, 500, 500, 2000, 10];
    const int probe = 200;
    using var g = new Generator(1, device);
    using var model = TorchBoltzmann.Modules.DbnClassifier.Build(sizes[..4], 10, 0.2, 0.5, device, ScalarType.Float32, g);
    model.train();
    var ws = sizes.Zip(sizes.Skip(1)).Select(p => torch.randn(p.Second, p.First, device: device).mul_(0.01f)).ToArray();
    double Time(Action<int> step)
    {
        using (torch.NewDisposeScope()) step(0);   // warm-up
        Sync();
        var clock = Stopwatch.StartNew();
        for (int b = 0; b < probe; b++) { using var scope = torch.NewDisposeScope(); step(b); }
        Sync();
        return clock.Elapsed.TotalSeconds * batches / probe;
    }
    double gemm = Time(b =>
    {
        var x = pixels.narrow(0, (long)b * batch, batch);
        var acts = new List<Tensor> { x };
        foreach (var w in ws) acts.Add(acts[^1].matmul(w.t()));           // forward: a_l = a_{l-1} W_lᵀ
        var d = acts[^1];
        for (int l = ws.Length - 1; l >= 0; l--)
        {
            d.t().matmul(acts[l]);                                          // ∂W_l = δ_lᵀ a_{l-1}
            if (l > 0) d = d.matmul(ws[l]);                                 // δ_{l-1} = δ_l W_l (not for the input)
        }
    });
    double forward = Time(b =>
    {
        using var _ = torch.no_grad();
        model.forward(pixels.narrow(0, (long)b * batch, batch));
    });
    double backward = Time(b =>
    {
        model.zero_grad();
        nn.functional.cross_entropy(model.forward(pixels.narrow(0, (long)b * batch, batch)), labels.narrow(0, (long)b * batch, batch)).backward();
    });
    using var opt = torch.optim.SGD(model.parameters(), 0.1, momentum: 0.9, dampening: 0.9);
    double step = Time(b =>
    {
        opt.zero_grad();
        nn.functional.cross_entropy(model.forward(pixels.narrow(0, (long)b * batch, batch)), labels.narrow(0, (long)b * batch, batch)).backward();
        opt.step();
    });
    foreach (var w in ws) w.Dispose();
    Console.WriteLine($"per epoch of {batches} batches (from {probe}): GEMMs {gemm:F2} s, forward {forward:F2} s, forward+backward {backward:F2} s, + SGD step {step:F2} s");
    return 0;
}

// The parent of --heap: one child process with releases off, one with them on; each prints "heap: <peak MB> <s> <releases>".
int HeapComparison()
{
    var results = new Dictionary<string, (double mb, double s, int releases)>();
    foreach (var release in new[] { "off", "on" })
    {
        // This program again: its apphost, or `dotnet Bench.dll` when started that way.
        var host = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(host) { RedirectStandardOutput = true };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet") psi.ArgumentList.Add(System.Reflection.Assembly.GetEntryAssembly()!.Location);
        foreach (var a in new[] { "--heap", "--heap-release", release, "--threads", threads.ToString(), "--epochs", epochs.ToString(), "--device", deviceName }) psi.ArgumentList.Add(a);
        if (args.Contains("--no-tune")) psi.ArgumentList.Add("--no-tune");
        using var child = Process.Start(psi)!;
        string output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("heap: "));
        if (child.ExitCode != 0 || line is null) { Console.Error.WriteLine($"the releases-{release} run failed:\n{output}"); return 1; }
        var f = line[6..].Split(' ');
        results[release] = (double.Parse(f[0]), double.Parse(f[1]), int.Parse(f[2]));
    }
    var (off, on) = (results["off"], results["on"]);
    Console.WriteLine($"CG fine-tuning, {epochs} epochs of 10 steps on 10,000 digits, device {deviceName}, NativeAllocator.Tune in the runs: {!args.Contains("--no-tune")}");
    Console.WriteLine($"  releases off: peak RSS {off.mb:F0} MB, {off.s:F1} s");
    Console.WriteLine($"  releases on:  peak RSS {on.mb:F0} MB, {on.s:F1} s, {on.releases} releases");
    Console.WriteLine($"  peak ratio on/off {on.mb / off.mb:F2}, time ratio {on.s / off.s:F2}");
    return 0;
}

int HeapRun(bool release)
{
    if (!release) NativeAllocator.ReleaseGrowthBytes = null;
    using var x = mnist.Images.narrow(0, 0, 10_000).to(device);
    using var y = mnist.Labels.narrow(0, 0, 10_000).to(device);
    using var g = new Generator(1, device);
    using var model = TorchBoltzmann.Modules.DbnClassifier.Build([784, 500, 500, 2000], 10, 0, 0, device, ScalarType.Float32, g);
    using var tuner = new FineTuner(model, new ClassifierTrainingOptions
    {
        Optimizer = FineTuningOptimizer.ConjugateGradient, LineSearches = 3, BatchSize = 1000, LearningRate = 1,
        LearningRateDecay = 1, Epochs = epochs, ValidationCount = 0, Patience = 0,
    });
    var clock = Stopwatch.StartNew();
    tuner.Fit(x, y);
    Sync();
    double mb = NativeAllocator.PeakResidentBytes() / 1048576.0;
    Console.WriteLine($"heap: {mb:F0} {clock.Elapsed.TotalSeconds:F1} {NativeAllocator.Releases}");
    return 0;
}

// Memory over a long run: RssAnon (MB), tensors alive on this thread and heap releases after chosen epochs of RBM
// training and of dropout fine-tuning; "growth" is RssAnon at the last epoch minus at epoch 10 (the first epochs fill
// libtorch's and glibc's caches).
int MemoryRun()
{
    int[] shown = [1, 2, 5, 10, 20, 30, 40, 50, 75, 100];
    using var x = mnist.Images.narrow(0, 0, Math.Min(digits, mnist.Count)).to(device);
    using var y = mnist.Labels.narrow(0, 0, Math.Min(digits, mnist.Count)).to(device);
    using var xb = Binarize.Threshold(x);
    Console.WriteLine($"memory over {epochs} epochs, {x.shape[0]} digits, {torch.get_num_threads()} threads, {DateTime.UtcNow:yyyy-MM-dd}");
    Console.WriteLine("| run | epoch | RssAnon (MB) | tensors alive | heap releases |");
    Console.WriteLine("|---|---|---|---|---|");
    double Report(string run, int epoch, int total)
    {
        double mb = NativeAllocator.AnonymousResidentBytes() / 1048576.0;
        if (shown.Contains(epoch) || epoch == total)
            Console.WriteLine($"| {run} | {epoch} | {mb:F0} | {DisposeScopeManager.Statistics.ThreadTotalLiveCount} | {NativeAllocator.Releases} |");
        return mb;
    }
    var rbmMb = new Dictionary<int, double>();
    DisposeScopeManager.Statistics.Reset();
    using (var g = new Generator(1, device))
    using (var rbm = boltzmann.RBM(nv, nh, device: device, generator: g))
    using (var trainer = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = epochs, BatchSize = batch, MetricsEvery = 0 }, generator: g))
    {
        trainer.Fit(xb, progress: new Sync<TrainingProgress>(p =>
        {
            if (p.EpochMetrics is not null) rbmMb[p.Epoch] = Report("RBM 784×500 CD-1", p.Epoch, p.Epochs);
        }));
    }
    var ftMb = new Dictionary<int, double>();
    DisposeScopeManager.Statistics.Reset();
    using (var g = new Generator(1, device))
    using (var model = TorchBoltzmann.Modules.DbnClassifier.Build([784, 500, 500, 2000], 10, 0.2, 0.5, device, ScalarType.Float32, g))
    using (var tuner = new FineTuner(model, new ClassifierTrainingOptions { Epochs = epochs, ValidationCount = 0, Patience = 0 }))
    {
        tuner.Fit(x, y, progress: new Sync<ClassifierProgress>(p =>
        {
            if (p.EpochMetrics is not null) ftMb[p.Epoch] = Report("fine-tuning 784-500-500-2000-10, dropout", p.Epoch, p.Epochs);
        }));
    }
    foreach (var (name, mbs) in new[] { ("RBM", rbmMb), ("fine-tuning", ftMb) })
        if (mbs.ContainsKey(10) && mbs.ContainsKey(epochs))
            Console.WriteLine($"{name}: RssAnon growth from epoch 10 to {epochs}: {mbs[epochs] - mbs[10]:+0;-0;0} MB");
    return 0;
}

// --bm: chain-sweeps per second of GibbsChains over a BoltzmannMachine (1,000 chains × 100 units, float32).
int BmSweepBenchmark()
{
    const int chainCount = 1000, visible = 50, hidden = 50;
    int sweeps = 100 * Math.Max(1, epochs);
    Console.WriteLine($"BoltzmannMachine Gibbs sweeps: device {device}, {torch.get_num_threads()} threads, {chainCount} chains × {visible + hidden} units, {sweeps} timed sweeps after 10");
    Console.WriteLine("| mask | scan | updates per sweep | s per sweep | chain-sweeps/s |");
    Console.WriteLine("|---|---|---|---|---|");
    foreach (var (connectivity, scan) in new[]
             {
                 (TorchBoltzmann.Modules.Connectivity.Full, TorchBoltzmann.Sampling.GibbsScan.Systematic),
                 (TorchBoltzmann.Modules.Connectivity.Full, TorchBoltzmann.Sampling.GibbsScan.Random),
                 (TorchBoltzmann.Modules.Connectivity.Bipartite, TorchBoltzmann.Sampling.GibbsScan.Systematic),
                 (TorchBoltzmann.Modules.Connectivity.Bipartite, TorchBoltzmann.Sampling.GibbsScan.Blocked),
             })
    {
        double perSweep = BmSweepSeconds(connectivity, scan, chainCount, visible, hidden, sweeps);
        int updates = visible + hidden;
        if (scan == TorchBoltzmann.Sampling.GibbsScan.Blocked)
            using (var bm = boltzmann.BM(visible, hidden, connectivity, device: device)) updates = bm.colour_classes().Length;
        Console.WriteLine($"| {connectivity} | {scan} | {updates} | {perSweep * 1e3:F2} ms | {chainCount / perSweep:N0} |");
    }
    return 0;
}

// Seconds per Gibbs sweep of `chainCount` chains over a BoltzmannMachine (weights reset to std 0.1), timed over `sweeps`
// sweeps after 10 untimed ones.
double BmSweepSeconds(TorchBoltzmann.Modules.Connectivity connectivity, TorchBoltzmann.Sampling.GibbsScan scan, int chainCount, int visible, int hidden, int sweeps)
{
    using var g = new Generator(1, device);
    using var bm = boltzmann.BM(visible, hidden, connectivity, device: device, generator: g);
    bm.reset_parameters(0.1, g);
    using var chains = new TorchBoltzmann.Sampling.GibbsChains(bm, g, scan: scan);
    chains.start_random(chainCount);
    for (int s = 0; s < 10; s++) chains.step();
    Sync();
    var clock = Stopwatch.StartNew();
    for (int s = 0; s < sweeps; s++) chains.step();
    Sync();
    return clock.Elapsed.TotalSeconds / sweeps;
}

// --compare: our columns, measured in this process by the functions the other modes use, and the peers in child
// processes (Compare.cs). A warm-up on the first 1,000 digits (libtorch's threads and kernels, the allocator) precedes
// the repeats and is not timed.
int CompareRun()
{
    using var labels = mnist.Labels.to(device);
    using var pixels = mnist.Images.to(device);
    long warm = Math.Min(n, 1000);
    using var warmData = data.narrow(0, 0, warm);
    using var warmPixels = pixels.narrow(0, 0, warm);
    using var warmLabels = labels.narrow(0, 0, warm);
    string blas = $"libtorch (TorchSharp {typeof(torch).Assembly.GetName().Version?.ToString(3)}; MKL linked into libtorch_cpu)";
    int th = torch.get_num_threads();
    const int aisRuns = 100, aisSteps = 1000, bmChains = 1000, bmUnits = 100, bmSweeps = 100;
    var ns = n.ToString("N0", System.Globalization.CultureInfo.InvariantCulture);
    TorchBoltzmann.Bench.Measurement Ours(string column, double seconds, long samples, string note, double? work = null, string? unit = null)
        => new(column, seconds, samples, blas, th, LiveTensors: DisposeScopeManager.Statistics.ThreadTotalLiveCount, Note: note, Work: work, WorkUnit: unit);
    long whole = batches * (long)batch;

    double DbmEpoch(Tensor on, ScalarType? computeDtype = null)
    {
        using var g = new Generator(1, device);
        using var dbm = boltzmann.DBM([784, 500, 1000], device: device, generator: g);
        using var trainer = new DbmTrainer(dbm, new DbmTrainingOptions { Epochs = 1, MetricsEvery = 0, ComputeDtype = computeDtype }, generator: g);
        var clock = Stopwatch.StartNew();
        trainer.Fit(on);
        Sync();
        return clock.Elapsed.TotalSeconds;
    }
    double AisSeconds(int runs, int steps)
    {
        using var g = new Generator(1, device);
        using var rbm = boltzmann.RBM(nv, nh, device: device, generator: g);
        var clock = Stopwatch.StartNew();
        TorchBoltzmann.Evaluation.AnnealedImportanceSampling.log_partition(rbm, null,
            new TorchBoltzmann.Evaluation.AisOptions { Runs = runs, Schedule = TorchBoltzmann.Evaluation.BetaSchedule.Scaled(steps) }, g);
        Sync();
        return clock.Elapsed.TotalSeconds;
    }

    // Warm-up, untimed.
    GemmEpoch(Math.Min(batches, 10));
    TrainerEpoch(GradientMode.Direct, on: warmData);
    TrainerEpoch(GradientMode.Direct, on: warmData, computeDtype: ScalarType.BFloat16);
    FineTuneEpoch(warmPixels, warmLabels);
    DbmEpoch(warmData);
    DbmEpoch(warmData, ScalarType.BFloat16);
    AisSeconds(10, 100);
    DisposeScopeManager.Statistics.Reset();

    static TorchBoltzmann.Bench.ColumnInfo C(string name, string work, bool floor = false, bool vsFloor = false, string? peer = null)
        => new(name, floor ? "libtorch" : "TorchBoltzmann", work, floor, vsFloor, peer);
    var ours = new List<(TorchBoltzmann.Bench.ColumnInfo[], TorchBoltzmann.Bench.CompareStep)>
    {
        ([C("libtorch-floor", "five GEMMs of a CD-1 epoch (784×500, batch 100)", floor: true)],
            new("floor", () => [Ours("libtorch-floor", GemmEpoch(), whole, "GemmEpoch: five GEMMs per batch, no sampling or update")])),
        ([C("ours-cd1", "RBM 784×500 CD-1 epoch", vsFloor: true, peer: "torch-cd1")],
            new("cd1", () => [Ours("ours-cd1", TrainerEpoch(GradientMode.Direct), n, "RbmTrainer defaults (η 0.1, momentum 0.5 in a first epoch, weight decay 2e-4 on W, shuffled), direct gradients")])),
        ([C("ours-cd1-bf16", "RBM 784×500 CD-1 epoch, bfloat16 products", peer: "torch-cd1")],
            new("cd1-bf16", () => [Ours("ours-cd1-bf16", TrainerEpoch(GradientMode.Direct, computeDtype: ScalarType.BFloat16), n, "RbmTrainer defaults with ComputeDtype = BFloat16 (its own column: never in place of float32)")])),
        ([C("ours-cd10", "RBM 784×500 CD-10 epoch", peer: "torch-cd10")],
            new("cd10", () => [Ours("ours-cd10", TrainerEpoch(GradientMode.Direct, k: 10), n, "RbmTrainer, K = 10")])),
        ([C("ours-pcd1", "RBM 784×500 PCD-1 epoch", vsFloor: true, peer: "torch-pcd1")],
            new("pcd1", () => [Ours("ours-pcd1", TrainerEpoch(GradientMode.Direct, persistent: true), n, "RbmTrainer, Persistent = true")])),
        ([C("ours-dbn-layer1", "DBN pretraining epoch, layer 784×500"), C("ours-dbn-layer2", "DBN pretraining epoch, layer 500×500"), C("ours-dbn-layer3", "DBN pretraining epoch, layer 500×2000")],
            new("dbn", () =>
            {
                using var g = new Generator(1, device);
                using var dbn = boltzmann.DBN([784, 500, 500, 2000], device: device, generator: g);
                var history = new GreedyPretrainer(dbn, new DbnPretrainingOptions { Layer = new RbmTrainingOptions { Epochs = 1, MetricsEvery = 0 } }).Fit(data);
                return [.. history.Select((h, l) => Ours($"ours-dbn-layer{l + 1}", h[0].TrainSeconds, n, $"GreedyPretrainer, RbmTrainer defaults; layer {l + 1}'s epoch (TrainSeconds), its input propagated once beforehand, not timed"))];
            })),
        ([C("ours-finetune", "fine-tuning epoch 784-500-500-2000-10, dropout, SGD", peer: "torch-finetune")],
            new("finetune", () => [Ours("ours-finetune", FineTuneEpoch(pixels, labels), n, "DbnClassifier.Build([784, 500, 500, 2000], 10, 0.2, 0.5), FineTuner SGD η 0.1 momentum 0.9, every digit trained on (as --dropout)")])),
        ([C("ours-dbm", "DBM 784-500-1000 epoch")],
            new("dbm", () => [Ours("ours-dbm", DbmEpoch(data), n, "DbmTrainer defaults (mean field 10 iterations, 100 persistent chains × 5 Gibbs steps)")])),
        ([C("ours-dbm-bf16", "DBM 784-500-1000 epoch, bfloat16 products")],
            new("dbm-bf16", () => [Ours("ours-dbm-bf16", DbmEpoch(data, ScalarType.BFloat16), n, "DbmTrainer defaults with ComputeDtype = BFloat16 (its own column: never in place of float32)")])),
        ([C("ours-ais", $"AIS log Z of an RBM 784×500, {aisRuns} runs × {aisSteps} β steps")],
            new("ais", () =>
            {
                double s = AisSeconds(aisRuns, aisSteps);
                return [Ours("ours-ais", s, aisRuns, "AnnealedImportanceSampling.log_partition, BetaSchedule.Scaled(1000), base-rate model with zero biases", aisRuns * (double)aisSteps, "run-steps/s")];
            })),
        ([C("ours-bm-sweeps", $"BoltzmannMachine Gibbs sweeps, {bmChains} chains × {bmUnits} units, full mask, systematic scan")],
            new("bm", () =>
            {
                double perSweep = BmSweepSeconds(TorchBoltzmann.Modules.Connectivity.Full, TorchBoltzmann.Sampling.GibbsScan.Systematic, bmChains, bmUnits / 2, bmUnits / 2, bmSweeps);
                return [Ours("ours-bm-sweeps", perSweep * bmSweeps, bmChains * (long)bmSweeps, $"GibbsChains over boltzmann.BM(50, 50, Full), {bmSweeps} sweeps after 10", bmChains * (double)bmUnits * bmSweeps, "chain-unit updates/s")];
            })),
    };
    var bench = new TorchBoltzmann.Bench.CompareBench(reps, th, peers, outDir ?? Path.Combine(TorchBoltzmann.Bench.CompareBench.RepoRoot(), "bench", "results"),
                                                      limit, dir, args);
    return bench.Run(ours, () => NativeAllocator.PeakResidentBytes() / 1048576.0, () => DisposeScopeManager.Statistics.ThreadTotalLiveCount);
}

/// <summary>An IProgress that reports on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
// The parent of --data: one child process per source; each prints
// "data: <rows> <seconds> <µs per sample> <peak MB> <anonymous MB at the end> <anonymous MB after malloc_trim>".
int DataComparison()
{
    var modes = new List<string> { "float32", "uint8", "stream" };
    if (x10 is not null) modes.Add("stream-x10");
    Console.WriteLine($"RBM 784×500 CD-1, batch 100, {epochs} epochs per source{(limit is null ? "" : $", first {limit} rows")}, device {deviceName}, {threads} threads, {DateTime.UtcNow:yyyy-MM-dd}");
    Console.WriteLine("| source | rows | seconds | µs per sample | peak RSS (MB) | anonymous RSS at the end (MB) | after malloc_trim (MB) |");
    Console.WriteLine("|---|---|---|---|---|---|---|");
    foreach (var mode in modes)
    {
        var host = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(host) { RedirectStandardOutput = true };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet") psi.ArgumentList.Add(System.Reflection.Assembly.GetEntryAssembly()!.Location);
        foreach (var a in new[] { "--data-mode", mode, "--threads", threads.ToString(), "--epochs", epochs.ToString(), "--device", deviceName }) psi.ArgumentList.Add(a);
        if (limit is not null) { psi.ArgumentList.Add("--limit"); psi.ArgumentList.Add(limit.Value.ToString()); }
        if (x10 is not null) { psi.ArgumentList.Add("--x10"); psi.ArgumentList.Add(x10); }
        if (args.Contains("--no-tune")) psi.ArgumentList.Add("--no-tune");
        using var child = Process.Start(psi)!;
        string output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("data: "));
        if (child.ExitCode != 0 || line is null) { Console.Error.WriteLine($"the {mode} run failed:\n{output}"); return 1; }
        var f = line[6..].Split(' ');
        Console.WriteLine($"| {mode} | {f[0]} | {f[1]} | {f[2]} | {f[3]} | {f[4]} | {f[5]} |");
    }
    return 0;
}
// Where a CD-1 epoch's time goes: every operation of RbmTrainer's direct-gradient batch (784×500, batch 100, float32),
// each timed alone over `probe` batches in a loop of its own and extrapolated to the epoch's batches, in the order the
// trainer runs them. Their sum is what the epoch would take if the operations ran as fast between one another as alone;
// the same operations in one loop, and RbmTrainer itself, take longer (the products slow down between other work), so
// the profile shows which operations beyond the five products cost most and how much the interleaving adds.
int CdProfile()
{
    const int probe = 300;
    using var g = new Generator(1, device);
    using var w = torch.randn(nh, nv, device: device).mul_(0.01f);
    using var b = torch.zeros(nv, device: device);
    using var c = torch.zeros(nh, device: device);
    using var gw = torch.zeros(nh, nv, device: device);
    using var gb = torch.zeros(nv, device: device);
    using var gc = torch.zeros(nh, device: device);
    using var ones = torch.ones(batch, device: device);
    using var perm = torch.randperm(n, device: device);
    using var v0 = data.narrow(0, 0, batch).clone();
    using var ph = torch.rand(batch, nh, device: device);
    using var hs = torch.rand(batch, nh, device: device).lt_(0.5).to(ScalarType.Float32);
    using var pv = torch.rand(batch, nv, device: device);
    var rows = new List<(string name, double s)>();
    void Time(string name, Action<int> op)
    {
        using (torch.NewDisposeScope()) op(0);   // warm-up
        Sync();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < probe; i++) { using var scope = torch.NewDisposeScope(); op(i); }
        Sync();
        rows.Add((name, clock.Elapsed.TotalSeconds * batches / probe));
    }
    Time("gather the batch's rows (index_select)", i => data.index_select(0, perm.narrow(0, (long)(i % batches) * batch, batch)));
    Time("GEMM p(h|v0) = σ(c + v0 Wᵀ): addmm", _ => torch.addmm(c, v0, w.t(), 1f, 1f));
    Time("σ in place (100×500), twice per batch: p(h|v⁰), p(h|v¹)", _ => ph.sigmoid_());
    Time("rand (100×500)", _ => torch.rand(batch, nh, generator: g, device: device));
    Time("rand (100×500) + lt_ (Bernoulli draw)", _ => torch.rand(batch, nh, generator: g, device: device).lt_(ph));
    using var ubuf = torch.empty(batch, nh, device: device);
    using var ibuf = torch.empty(batch, nh, dtype: ScalarType.Int32, device: device);
    Time("alternative: uniform_ into a kept buffer (100×500)", _ => ubuf.uniform_(0, 1, generator: g));
    Time("alternative: torch.bernoulli(p) (100×500)", _ => torch.bernoulli(ph, g));
    Time("alternative: random_ into an int32 buffer (100×500)", _ => ibuf.random_(0, 1 << 24, generator: g));
    Time("alternative: batched uniforms, rand 100×5000 once per 10 batches", i => { if (i % 10 == 0) torch.rand(batch, nh * 10, generator: g, device: device); });
    Time("alternative: bool → float32 (100×500)", _ => hs.lt(0.5).to(ScalarType.Float32));
    Time("GEMM p(v|h) = σ(b + h W): addmm", _ => torch.addmm(b, hs, w, 1f, 1f));
    Time("σ in place (100×784)", _ => pv.sigmoid_());
    Time("GEMM p(h|v1): addmm", _ => torch.addmm(c, pv, w.t(), 1f, 1f));
    Time("GEMM statistics: 2 × addmm_ into the buffer", _ => { gw.addmm_(ph.t(), v0, beta: 0.5f, alpha: -0.01f); gw.addmm_(ph.t(), pv, beta: 1f, alpha: 0.01f); });
    Time("weight decay gw += λW", _ => gw.add_(w, alpha: 2e-4));
    Time("bias gradients: 4 × addmv_", _ => { gb.addmv_(pv.t(), ones, beta: 0.5f, alpha: 0.01f); gb.addmv_(v0.t(), ones, alpha: -0.01f); gc.addmv_(ph.t(), ones, beta: 0.5f, alpha: 0.01f); gc.addmv_(ph.t(), ones, alpha: -0.01f); });
    Time("finite check: sum(gc).item", _ => gc.sum().ToDouble());
    Time("SGD step: θ −= η u (3 tensors)", _ => { w.add_(gw, alpha: -1e-9); b.add_(gb, alpha: -1e-9); c.add_(gc, alpha: -1e-9); });
    Time("GEMM statistics: cat + 1 addmm_ (K = 200)", _ => { using var hcat = torch.cat([ph, ph]); using var vcat = torch.cat([v0.neg(), pv]); gw.addmm_(hcat.t(), vcat, beta: 0.5f, alpha: 0.01f); });
    // The trainer's operations: not the alternatives, not the lone rand (part of the draw), not the K = 200 variant.
    double total = rows.Where(r => !r.name.StartsWith("alternative") && r.name != "rand (100×500)" && !r.name.Contains("K = 200"))
                       .Sum(r => r.name.Contains("twice per batch") ? 2 * r.s : r.s);
    Time("the five GEMMs alone in sequence (addmm, addmm_)", i =>
    {
        using var p0 = torch.addmm(c, v0, w.t(), 1f, 1f);
        using var p1 = torch.addmm(b, hs, w, 1f, 1f);
        using var q1 = torch.addmm(c, pv, w.t(), 1f, 1f);
        gw.addmm_(ph.t(), v0, beta: 0.5f, alpha: -0.01f); gw.addmm_(ph.t(), pv, beta: 1f, alpha: 0.01f);
    });
    Time("all of the above in sequence (one batch each)", i =>
    {
        using var x = data.index_select(0, perm.narrow(0, (long)(i % batches) * batch, batch));
        using var p0 = torch.addmm(c, x, w.t(), 1f, 1f).sigmoid_();
        using var h0 = torch.rand(batch, nh, generator: g, device: device).lt_(p0);
        using var p1 = torch.addmm(b, h0, w, 1f, 1f).sigmoid_();
        using var q1 = torch.addmm(c, p1, w.t(), 1f, 1f).sigmoid_();
        gw.addmm_(p0.t(), x, beta: 0.5f, alpha: -0.01f); gw.addmm_(q1.t(), p1, beta: 1f, alpha: 0.01f);
        gw.add_(w, alpha: 2e-4);
        gb.addmv_(p1.t(), ones, beta: 0.5f, alpha: 0.01f); gb.addmv_(x.t(), ones, alpha: -0.01f); gc.addmv_(q1.t(), ones, beta: 0.5f, alpha: 0.01f); gc.addmv_(p0.t(), ones, alpha: -0.01f);
        gc.sum().ToDouble();
        w.add_(gw, alpha: -1e-9); b.add_(gb, alpha: -1e-9); c.add_(gc, alpha: -1e-9);
    });
    {
        using var rbm = boltzmann.RBM(nv, nh, device: device, generator: g);
        using var trainer = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = 1, BatchSize = batch, MetricsEvery = 0, Shuffle = true });
        Time("RbmTrainer.Step on the batch rows (no loop around it)", i => { using var x = data.index_select(0, perm.narrow(0, (long)(i % batches) * batch, batch)); trainer.Step(x); });
        var clock = Stopwatch.StartNew();
        trainer.Fit(data);
        Sync();
        rows.Add(("RbmTrainer.Fit, one epoch on all digits (its defaults)", clock.Elapsed.TotalSeconds));
    }
    Console.WriteLine($"CD-1 batch operations, 784×500, batch 100, {torch.get_num_threads()} threads, device {device}; seconds per epoch of {batches} batches (each timed over {probe})");
    foreach (var (name, s) in rows) Console.WriteLine($"  {s,7:F3} s  {name}");
    Console.WriteLine($"  {total,7:F3} s  sum of the trainer's operations timed alone (not the alternatives, the lone rand or the K = 200 variant)");
    return 0;
}


// One source of --data in this process: CD-1 epochs of a 784×500 RBM, then the peak resident size.
int DataRun(string mode)
{
    var mnistDir = MnistFetcher.Resolve(log: null);
    string file = mode == "stream-x10" ? Path.Combine(x10 ?? throw new ArgumentException("--x10 DIR is needed for stream-x10"), "train-images-idx3-ubyte")
                                       : Path.Combine(mnistDir, "train-images-idx3-ubyte");
    TorchBoltzmann.Data.BatchSource source;
    Tensor? owned = null;
    switch (mode)
    {
        case "float32":
        {
            using var mnist = MnistDataset.Load(mnistDir, MnistSplit.Train, limit is null ? null : (int)limit.Value);
            owned = Binarize.Threshold(mnist.Images).to(device);
            source = new TensorSource(owned);
            break;
        }
        case "uint8":
            source = TensorSource.FromIdx(file, ByteScaling.Threshold, device);
            if (limit is not null)
            {
                owned = ((TensorSource)source).Data.narrow(0, 0, limit.Value).clone();
                source.Dispose();
                source = new TensorSource(owned, ByteScaling.Threshold);
            }
            break;
        case "stream":
        case "stream-x10":
            source = new IdxStream(file, new IdxStreamOptions { Scaling = ByteScaling.Threshold, Seed = 1, Limit = limit });
            break;
        default: throw new ArgumentException($"--data-mode must be float32, uint8, stream or stream-x10, got {mode}");
    }
    using var g = new Generator(1, device);
    using var rbm = boltzmann.RBM(nv, nh, device: device, generator: g);
    using var trainer = new RbmTrainer(rbm, new RbmTrainingOptions { Epochs = epochs, BatchSize = batch, MetricsEvery = 0 }, generator: g);
    var clock = Stopwatch.StartNew();
    if (mode == "float32") trainer.Fit(owned!);   // today's path: the tensor checked once, batches gathered from it
    else trainer.FitSource(source);
    Sync();
    double seconds = clock.Elapsed.TotalSeconds;
    long rows = source.Count;
    // What the process holds when training ends, and what of it is free heap that glibc kept (malloc_trim hands it back).
    double anonEnd = NativeAllocator.AnonymousResidentBytes() / 1048576.0;
    NativeAllocator.ReleaseFreeMemory();
    double anonTrimmed = NativeAllocator.AnonymousResidentBytes() / 1048576.0;
    source.Dispose();
    owned?.Dispose();
    double mb = NativeAllocator.PeakResidentBytes() / 1048576.0;
    Console.WriteLine($"data: {rows} {seconds:F2} {1e6 * seconds / (rows * (double)epochs):F1} {mb:F0} {anonEnd:F0} {anonTrimmed:F0}");
    return 0;
}

sealed class Sync<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}

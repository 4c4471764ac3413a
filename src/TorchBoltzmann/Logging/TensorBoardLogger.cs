using System.Text.RegularExpressions;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Logging;

/// <summary>When a <see cref="TensorBoardLogger"/> writes histograms and images.</summary>
public sealed record TensorBoardLoggerOptions
{
    /// <summary>Histograms of the watched modules' parameters and of their change over the epoch every this many epochs (0: never).</summary>
    public int HistogramEvery { get; init; } = 1;

    /// <summary>Images from <see cref="TensorBoardLogger.RbmImages"/> every this many epochs (0: never); the last epoch of a stage always gets them.</summary>
    public int ImageEvery { get; init; } = 5;

    /// <summary>Buckets per histogram.</summary>
    public int Bins { get; init; } = 64;

    /// <summary>Throws when a value is out of range (the message names the option).</summary>
    public void Validate()
    {
        if (HistogramEvery < 0) throw new ArgumentOutOfRangeException(nameof(HistogramEvery), HistogramEvery, "HistogramEvery: expected 0 (never) or a positive number of epochs.");
        if (ImageEvery < 0) throw new ArgumentOutOfRangeException(nameof(ImageEvery), ImageEvery, "ImageEvery: expected 0 (never) or a positive number of epochs.");
        if (Bins < 1) throw new ArgumentOutOfRangeException(nameof(Bins), Bins, "Bins: expected at least 1.");
    }
}

/// <summary>
/// Turns the trainers' progress into TensorBoard events in one run directory: pass it (or a tee with a console display)
/// as the <c>progress</c> of <see cref="RbmTrainer.Fit"/>, <see cref="GreedyPretrainer"/> or <see cref="FineTuner"/>,
/// and open the directory's parent with <c>tensorboard --logdir</c>.
/// </summary>
/// <remarks>
/// <para><b>Tags.</b> Per stage (the progress's <c>Stage</c>: "RBM" → <c>rbm</c>, "layer 2/3" → <c>layer2</c>,
/// "fine-tune" → <c>fine-tune</c>), with the epoch as the global step: every epoch metric the trainer returned
/// (<c>STAGE/reconstruction_error</c>, <c>…/validation_reconstruction_error</c>, <c>…/pseudo_log_likelihood</c>,
/// <c>…/free_energy_train</c>, <c>…/free_energy_validation</c>, <c>…/free_energy_gap</c>, <c>…/momentum</c>,
/// <c>…/train_seconds</c>; fine-tuning: <c>…/train_loss</c>, <c>…/validation_error</c>, <c>…/validation_loss</c>,
/// <c>…/learning_rate</c>, <c>…/seconds</c>, <c>…/raw_validation_error</c> with iterate averaging: every numeric field of
/// the epoch record, named in snake case); for a watched module (<see cref="Watch(string, RBM)"/>,
/// <see cref="Watch(DBN)"/>, <see cref="Watch(string, nn.Module)"/>), <c>STAGE/update_to_weight_ratio/NAME</c> =
/// ‖Δθ‖ / ‖θ‖ of the epoch's last update (Hinton's practical guide, §5: about 10⁻³ is healthy; much larger and the
/// learning rate is too high), histograms <c>STAGE/NAME</c> of each parameter and <c>STAGE/NAME_change</c> of its change
/// over the epoch; and the images <see cref="RbmImages"/> renders (<c>STAGE/filters</c>, …).</para>
/// <para><b>Continued runs.</b> Opening a run directory that already holds events reads them back first
/// (<see cref="TensorBoardEventReader"/>): a value whose tag already has a point at this or a later step is not written
/// again, so a run continued from a checkpoint appends where it stopped, without duplicate points, even when the
/// interrupted run had logged epochs past its last checkpoint.</para>
/// <para><b>Cost.</b> Scalars are a few bytes per epoch. The update ratio keeps one copy of each watched parameter, taken
/// before the epoch's last mini-batch; histograms copy the parameters to the CPU every
/// <see cref="TensorBoardLoggerOptions.HistogramEvery"/> epochs. Nothing happens on the other mini-batches.</para>
/// </remarks>
public sealed partial class TensorBoardLogger : IProgress<TrainingProgress>, IProgress<ClassifierProgress>, IDisposable
{
    private readonly TensorBoardEventWriter _writer;
    private readonly Dictionary<string, long> _lastStep = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Watched> _watched = new(StringComparer.Ordinal);

    private sealed class Watched(nn.Module module, RBM? rbm)
    {
        public nn.Module Module { get; } = module;
        public RBM? Rbm { get; } = rbm;
        public Dictionary<string, Tensor> BeforeLastUpdate { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, Tensor> EpochStart { get; } = new(StringComparer.Ordinal);
    }

    /// <summary>Opens (or continues) the run in <paramref name="runDirectory"/>.</summary>
    /// <param name="runDirectory">The run's directory (created when missing); events already there are continued.</param>
    /// <param name="options">When histograms and images are written.</param>
    /// <exception cref="InvalidDataException">An event file already in the directory is damaged (the message names it).</exception>
    public TensorBoardLogger(string runDirectory, TensorBoardLoggerOptions? options = null)
    {
        Options = options ?? new TensorBoardLoggerOptions();
        Options.Validate();
        RunDirectory = Path.GetFullPath(runDirectory);
        foreach (var v in TensorBoardEventReader.ReadDirectory(RunDirectory))
            _lastStep[v.Tag] = Math.Max(v.Step, _lastStep.GetValueOrDefault(v.Tag, long.MinValue));
        _writer = new TensorBoardEventWriter(RunDirectory);
    }

    /// <summary>The run's directory.</summary>
    public string RunDirectory { get; }

    /// <summary>When histograms and images are written.</summary>
    public TensorBoardLoggerOptions Options { get; }

    /// <summary>
    /// Renders images of a watched RBM (e.g. filters with <c>ImageGrid.EncodeFilters</c>, reconstructions, samples) as
    /// (name, PNG) pairs, called every <see cref="TensorBoardLoggerOptions.ImageEvery"/> epochs with the stage and the
    /// RBM; null (default) writes no images. The core library draws no PNGs itself: TorchBoltzmann.Visualization does.
    /// </summary>
    public Func<string, RBM, IEnumerable<(string Name, byte[] Png)>>? RbmImages { get; set; }

    /// <summary>Values written so far by this logger (values skipped as already present are not counted).</summary>
    public int ValuesWritten { get; private set; }

    /// <summary>Watches the RBM trained under progress stage <paramref name="stage"/> (e.g. <c>RbmTrainer.Stage</c>).</summary>
    /// <param name="stage">The stage name as the trainer reports it.</param>
    /// <param name="rbm">The RBM.</param>
    public void Watch(string stage, RBM rbm) => Add(stage, new Watched(rbm ?? throw new ArgumentNullException(nameof(rbm)), rbm));

    /// <summary>Watches every layer of a DBN under the stages greedy pretraining reports ("layer l/L").</summary>
    /// <param name="dbn">The DBN being pretrained.</param>
    public void Watch(DBN dbn)
    {
        ArgumentNullException.ThrowIfNull(dbn);
        for (int l = 0; l < dbn.n_layers; l++) Watch($"layer {l + 1}/{dbn.n_layers}", dbn.layers[l]);
    }

    /// <summary>Watches any module (a classifier being fine-tuned) under progress stage <paramref name="stage"/>.</summary>
    /// <param name="stage">The stage name as the trainer reports it (FineTuner: "fine-tune").</param>
    /// <param name="module">The module whose parameters are tracked.</param>
    public void Watch(string stage, nn.Module module) => Add(stage, new Watched(module ?? throw new ArgumentNullException(nameof(module)), module as RBM));

    private void Add(string stage, Watched w)
    {
        ArgumentNullException.ThrowIfNull(stage);
        if (_watched.Remove(stage, out var old))
        {
            foreach (var t in old.BeforeLastUpdate.Values) t.Dispose();
            foreach (var t in old.EpochStart.Values) t.Dispose();
        }
        using (no_grad()) Snapshot(w, w.EpochStart);   // the parameters before the first epoch, for the change histograms
        _watched[stage] = w;
    }

    /// <summary>The tag prefix of a stage: "layer 2/3" → <c>layer2</c>, "RBM" → <c>rbm</c>, "fine-tune" → <c>fine-tune</c>, other characters outside [a-z0-9_./-] → "_".</summary>
    /// <param name="stage">The progress's stage.</param>
    public static string TagOf(string stage)
    {
        var m = LayerStage().Match(stage);
        if (m.Success) return "layer" + m.Groups[1].Value;
        return NonTagCharacters().Replace(stage.Trim().ToLowerInvariant(), "_");
    }

    /// <inheritdoc />
    public void Report(TrainingProgress value)
    {
        ArgumentNullException.ThrowIfNull(value);
        OnProgress(value.Stage, value.Epoch, value.Epochs, value.Batch, value.Batches, value.EpochMetrics);
    }

    /// <inheritdoc />
    public void Report(ClassifierProgress value)
    {
        ArgumentNullException.ThrowIfNull(value);
        OnProgress(value.Stage, value.Epoch, value.Epochs, value.Batch, value.Batches, value.EpochMetrics);
    }

    /// <summary>
    /// A receiver for the progress of any trainer on the shared <see cref="TrainingLoop{TMetrics}"/> (the general
    /// Boltzmann machine's, up-down's, and those that come), logged as <see cref="Report(TrainingProgress)"/> logs the
    /// RBM trainer's: the scalars of its epoch record, and the update ratios, histograms and images of the module
    /// watched under the stage.
    /// </summary>
    /// <typeparam name="TMetrics">The trainer's epoch record.</typeparam>
    public IProgress<LoopProgress<TMetrics>> For<TMetrics>() where TMetrics : class => new LoopReceiver<TMetrics>(this);

    private sealed class LoopReceiver<TMetrics>(TensorBoardLogger log) : IProgress<LoopProgress<TMetrics>> where TMetrics : class
    {
        public void Report(LoopProgress<TMetrics> value)
        {
            ArgumentNullException.ThrowIfNull(value);
            log.OnProgress(value.Stage, value.Epoch, value.Epochs, value.Batch, value.Batches, value.EpochMetrics);
        }
    }

    /// <summary>
    /// One progress report of any trainer: the copy before the epoch's last update on its mini-batches; at the epoch's
    /// end, every public numeric property of its record (double, float, int, long, nullable or not; not <c>Epoch</c> and
    /// <c>Epochs</c>) as the scalar <c>STAGE/snake_case_name</c> at the epoch's step, then the watched module's values.
    /// </summary>
    private void OnProgress<TMetrics>(string stage, int epoch, int epochs, int batch, int batches, TMetrics? metrics) where TMetrics : class
    {
        OnBatch(stage, batch, batches);
        if (metrics is null) return;
        string t = TagOf(stage);
        foreach (var (name, get) in EpochFields<TMetrics>.All) Scalar($"{t}/{name}", get(metrics), epoch);
        OnEpoch(stage, t, epoch, epoch == epochs);
    }

    /// <summary>The numeric properties of an epoch record, with their tag names, read once per record type.</summary>
    private static class EpochFields<TMetrics>
    {
        public static readonly (string Name, Func<object, double?> Get)[] All = typeof(TMetrics).GetProperties()
            .Where(p => p.GetMethod is { IsPublic: true } && p.GetIndexParameters().Length == 0 && p.Name is not ("Epoch" or "Epochs"))
            .Select(p => (Name: SnakeCase(p.Name), Type: Nullable.GetUnderlyingType(p.PropertyType) ?? p.PropertyType, Property: p))
            .Where(f => f.Type == typeof(double) || f.Type == typeof(float) || f.Type == typeof(int) || f.Type == typeof(long))
            .Select(f => (f.Name, (Func<object, double?>)(o => f.Property.GetValue(o) is { } v ? Convert.ToDouble(v, System.Globalization.CultureInfo.InvariantCulture) : null)))
            .ToArray();
    }

    /// <summary>"WakeReconstructionError" → "wake_reconstruction_error".</summary>
    internal static string SnakeCase(string name) =>
        string.Concat(name.Select((c, i) => char.IsUpper(c) ? (i > 0 && !char.IsUpper(name[i - 1]) ? "_" : "") + char.ToLowerInvariant(c) : c.ToString()));

    /// <summary>Writes a scalar unless its tag already has a point at <paramref name="step"/> or later; null values are skipped.</summary>
    /// <param name="tag">The tag.</param>
    /// <param name="value">The value, or null for none.</param>
    /// <param name="step">The global step.</param>
    public void Scalar(string tag, double? value, long step)
    {
        if (value is not { } v || !Fresh(tag, step)) return;
        _writer.AddScalar(tag, v, step);
        Wrote(tag, step);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var w in _watched.Values)
        {
            foreach (var t in w.BeforeLastUpdate.Values) t.Dispose();
            foreach (var t in w.EpochStart.Values) t.Dispose();
        }
        _watched.Clear();
        _writer.Dispose();
    }

    // After the epoch's second-to-last mini-batch, i.e. before its last update: a copy of the parameters. (With one
    // mini-batch per epoch the copy taken at the previous epoch's end serves: see OnEpoch.)
    private void OnBatch(string stage, int batch, int batches)
    {
        if (!_watched.TryGetValue(stage, out var w)) return;
        using var _ = no_grad();
        if (batch == batches - 1) Snapshot(w, w.BeforeLastUpdate);
    }

    private void OnEpoch(string stage, string t, long step, bool last)
    {
        if (!_watched.TryGetValue(stage, out var w)) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var (name, p) in w.Module.named_parameters())
        {
            // ‖Δθ‖/‖θ‖ of the last update: θ after the epoch against the copy taken before its last mini-batch (the
            // epoch's start when it had one mini-batch).
            if ((w.BeforeLastUpdate.TryGetValue(name, out var before) || w.EpochStart.TryGetValue(name, out before)) && before.shape.SequenceEqual(p.shape))
            {
                double norm = p.detach().to(ScalarType.Float64).norm().item<double>();
                double delta = (p.detach() - before).to(ScalarType.Float64).norm().item<double>();
                if (norm > 0) Scalar($"{t}/update_to_weight_ratio/{Clean(name)}", delta / norm, step);
            }
            if (Options.HistogramEvery > 0 && (step % Options.HistogramEvery == 0 || last))
            {
                Histogram($"{t}/{Clean(name)}", p.detach(), step);
                if (w.EpochStart.TryGetValue(name, out var start) && start.shape.SequenceEqual(p.shape))
                    Histogram($"{t}/{Clean(name)}_change", p.detach() - start, step);
            }
        }
        Snapshot(w, w.EpochStart);
        if (w.Rbm is { } rbm && RbmImages is { } render && Options.ImageEvery > 0 && (step % Options.ImageEvery == 0 || last))
        {
            foreach (var (name, png) in render(stage, rbm))
            {
                string tag = $"{t}/{Clean(name)}";
                if (!Fresh(tag, step)) continue;
                _writer.AddImage(tag, png, step);
                Wrote(tag, step);
            }
        }
    }

    private void Histogram(string tag, Tensor values, long step)
    {
        if (!Fresh(tag, step)) return;
        using var cpu = values.to(ScalarType.Float64, CPU).contiguous();
        _writer.AddHistogram(tag, cpu.data<double>().ToArray(), step, Options.Bins);
        Wrote(tag, step);
    }

    private static void Snapshot(Watched w, Dictionary<string, Tensor> into)
    {
        foreach (var (name, p) in w.Module.named_parameters())
        {
            if (into.TryGetValue(name, out var copy) && copy.shape.SequenceEqual(p.shape)) copy.copy_(p.detach());
            else
            {
                copy?.Dispose();
                into[name] = p.detach().clone().DetachFromDisposeScope();
            }
        }
    }

    private bool Fresh(string tag, long step) => !_lastStep.TryGetValue(tag, out long last) || step > last;

    private void Wrote(string tag, long step)
    {
        _lastStep[tag] = step;
        ValuesWritten++;
    }

    private static string Clean(string name) => NonTagCharacters().Replace(name, "_");

    [GeneratedRegex(@"^\s*layer\s+(\d+)\s*/\s*\d+\s*$", RegexOptions.IgnoreCase)]
    private static partial Regex LayerStage();

    [GeneratedRegex(@"[^a-z0-9_./-]+", RegexOptions.IgnoreCase)]
    private static partial Regex NonTagCharacters();
}

using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// Exponential learning-rate schedule η_e = max(η₀ γ^e f(e), floor), set at the start of every epoch e (zero-based) on
/// every parameter group, each from its own η₀; f is an optional factor per epoch (1 when none is given), e.g. the
/// growing CD-k schedule's K / k_e.
/// </summary>
public sealed class ExponentialLearningRate : ITrainingCallback
{
    private readonly optim.Optimizer _optimizer;
    private readonly double[] _baseRates;
    private readonly double _decay;
    private readonly double _floor;
    private readonly Func<int, double>? _epochFactor;

    /// <summary>Creates the schedule.</summary>
    /// <param name="optimizer">The optimizer whose groups' rates are set.</param>
    /// <param name="decay">γ, the factor per epoch.</param>
    /// <param name="baseRates">Each group's η₀ (default: the groups' rates now).</param>
    /// <param name="floor">No group's rate goes below this: η_e = max(η₀ γ^e f(e), floor) (0: no floor).</param>
    /// <param name="epochFactor">f(e), a further factor of epoch e's rate (default: 1).</param>
    public ExponentialLearningRate(optim.Optimizer optimizer, double decay, IReadOnlyList<double>? baseRates = null, double floor = 0, Func<int, double>? epochFactor = null)
    {
        _optimizer = optimizer ?? throw new ArgumentNullException(nameof(optimizer));
        _decay = decay;
        _floor = floor;
        _epochFactor = epochFactor;
        _baseRates = (baseRates ?? optimizer.ParamGroups.Select(g => g.LearningRate).ToList()).ToArray();
    }

    /// <summary>The first group's rate in the current epoch (NaN when the optimizer has no groups).</summary>
    public double Rate { get; private set; } = double.NaN;

    /// <inheritdoc />
    public void OnEpochStart(TrainingLoop loop, int epoch)
    {
        double factor = Math.Pow(_decay, epoch) * (_epochFactor?.Invoke(epoch) ?? 1.0);
        double RateOf(int group) => Math.Max(_baseRates[group] * factor, _floor);   // η_e = max(η₀ γ^e f(e), floor)
        int gi = 0;
        foreach (var g in _optimizer.ParamGroups) { g.LearningRate = RateOf(gi); gi++; }
        // TorchSharp's native L-BFGS takes its rate from the optimizer itself, not from its (managed) group.
        if (_optimizer is not OptimizerHelper && _optimizer is optim.ILearningRateController self && _baseRates.Length == 1)
            self.LearningRate = RateOf(0);
        Rate = _baseRates.Length > 0 ? RateOf(0) : double.NaN;
    }
}

/// <summary>
/// Max-norm constraint after every step: each row w_j of every trainable 2-D weight (unit j's incoming weights) is
/// scaled by min(1, c_W / ‖w_j‖₂), so that ‖w_j‖₂ ≤ c_W (Srivastava et al. 2014).
/// </summary>
/// <param name="module">The model whose weights are constrained.</param>
/// <param name="limit">c_W for a weight W: the max-norm c, or a weight-specific bound (the fine-tuner's q c behind dropout).</param>
public sealed class MaxNorm(nn.Module module, Func<Parameter, double> limit) : ITrainingCallback
{
    /// <inheritdoc />
    public void OnBatchEnd(TrainingLoop loop, Batch batch)
    {
        using var _ = torch.no_grad();
        foreach (var p in module.parameters())
        {
            if (p.dim() != 2 || !p.requires_grad) continue;
            using var norms = p.norm(1, keepdim: true);
            using var scale = norms.reciprocal_().mul_(limit(p)).clamp_max_(1.0);
            p.mul_(scale);
        }
    }
}

/// <summary>
/// Early stopping on a validation error, with the best weights: the trainer reports each epoch's error
/// (<see cref="Observe"/>); after <see cref="Patience"/> epochs without a new best the loop is asked to stop, and at the
/// end the model gets the best epoch's weights back unless the best epoch was the last.
/// </summary>
/// <remarks>State (saved in run checkpoints): best epoch, best error, epochs since, whether the best weights were
/// restored, and the best weights themselves (copies of the model's state_dict entries, kept in place).</remarks>
public sealed class EarlyStopping : ITrainingCallback, IStateful, IDisposable
{
    private readonly nn.Module _model;
    private readonly bool _keepBest;
    private Dictionary<string, Tensor>? _best;

    /// <summary>Creates the component.</summary>
    /// <param name="model">The model whose weights are kept and restored.</param>
    /// <param name="patience">Epochs without a new best before stopping (0: never stop).</param>
    /// <param name="keepBest">Keep the best weights and restore them at the end.</param>
    public EarlyStopping(nn.Module model, int patience, bool keepBest)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        Patience = patience;
        _keepBest = keepBest;
    }

    /// <summary>Epochs without a new best before stopping (0: never).</summary>
    public int Patience { get; }
    /// <summary>One-based epoch of the lowest error (0 before the first).</summary>
    public int BestEpoch { get; private set; }
    /// <summary>The lowest error (null before the first).</summary>
    public double? BestError { get; private set; }
    /// <summary>Epochs since the best.</summary>
    public int SinceBest { get; private set; }
    /// <summary>Whether the best weights were put back at the end.</summary>
    public bool Restored { get; private set; }

    /// <summary>Records epoch <paramref name="epoch"/>'s (zero-based) error; returns whether it is a new best (whose weights are then kept).</summary>
    public bool Observe(int epoch, double error)
    {
        if (BestError is not null && !(error < BestError)) { SinceBest++; return false; }
        (BestError, BestEpoch, SinceBest) = (error, epoch + 1, 0);
        if (_keepBest) KeepBest();
        return true;
    }

    /// <summary>Sets the record from a checkpoint of an earlier format.</summary>
    internal void SetRecord(int bestEpoch, double? bestError, int sinceBest, bool restored)
        => (BestEpoch, BestError, SinceBest, Restored) = (bestEpoch, bestError, sinceBest, restored);

    /// <summary>The best-weight buffers by state_dict key, allocated (as copies of the model's weights) if there are none yet.</summary>
    internal Dictionary<string, Tensor> BestBuffers()
    {
        if (_best is null) KeepBest();
        return _best!;
    }

    private void KeepBest()
    {
        using var _ = torch.no_grad();
        if (_best is null)
        {
            _best = new Dictionary<string, Tensor>();
            foreach (var (name, t) in _model.state_dict()) _best[name] = t.detach().clone().DetachFromDisposeScope();
        }
        else foreach (var (name, t) in _model.state_dict()) _best[name].copy_(t);
    }

    /// <inheritdoc />
    public void OnEpochEnd(TrainingLoop loop, int epoch, object metrics)
    {
        if (Patience > 0 && SinceBest >= Patience) loop.StopRequested = true;
    }

    /// <inheritdoc />
    public void OnFitEnd(TrainingLoop loop)
    {
        if (_best is null || BestEpoch == loop.EpochsDone) return;
        using var _ = torch.no_grad();
        foreach (var (name, t) in _model.state_dict()) t.copy_(_best[name]);
        Restored = true;
    }

    /// <inheritdoc />
    public string StateName => "early_stopping";

    /// <inheritdoc />
    public void SaveState(StateSection section)
    {
        section.Values["best_epoch"] = BestEpoch;
        section.Values["best_error"] = BestError;
        section.Values["since_best"] = SinceBest;
        section.Values["restored"] = Restored;
        if (_best is not null) foreach (var (name, t) in _best) section.Put(name, t);
    }

    /// <inheritdoc />
    public Action PrepareLoad(StateSection section)
    {
        int bestEpoch = section.Value<int>("best_epoch"), sinceBest = section.Value<int>("since_best");
        bool restored = section.Value<bool>("restored");
        double? bestError = section.Values["best_error"] is null ? null : section.Value<double>("best_error");
        if (bestEpoch < 0 || sinceBest < 0) throw section.Refuse($"best epoch {bestEpoch} and {sinceBest} epochs since");
        var state = _model.state_dict();
        var pairs = section.Tensors.Count == 0 ? null
            : state.Select(kv => (kv.Key, source: section.Tensor(kv.Key, kv.Value))).ToList();
        if (section.Tensors.Count > 0 && section.Tensors.Count != state.Count)
            throw section.Refuse($"{section.Tensors.Count} best-weight tensors for a model with {state.Count}");
        return () =>
        {
            SetRecord(bestEpoch, bestError, sinceBest, restored);
            if (pairs is null) return;
            var best = BestBuffers();
            using var _ = torch.no_grad();
            foreach (var (key, source) in pairs) best[key].copy_(source);
        };
    }

    /// <summary>Frees the best-weight copies.</summary>
    public void Dispose()
    {
        if (_best is not null) foreach (var t in _best.Values) t.Dispose();
        _best = null;
    }
}

/// <summary>
/// Exponential moving average of a model's parameters, θ̄ ← a θ̄ + (1 − a) θ (Polyak averaging with exponential
/// weights), updated in place after every step; <see cref="Swap"/> puts θ̄ into the model until disposed, and at the end
/// the model keeps θ̄ (unless early stopping put its best weights back).
/// </summary>
public sealed class IterateAverage : ITrainingCallback, IStateful, IDisposable
{
    private readonly List<(Parameter p, Tensor avg, Tensor spare)> _items;
    private readonly double _decay;
    private readonly EarlyStopping? _yieldsTo;

    /// <summary>Starts θ̄ at the model's parameters.</summary>
    /// <param name="model">The model.</param>
    /// <param name="decay">a, the weight of the old average.</param>
    /// <param name="yieldsTo">Early stopping whose restored best weights the model keeps instead of θ̄.</param>
    public IterateAverage(nn.Module model, double decay, EarlyStopping? yieldsTo = null)
    {
        _decay = decay;
        _yieldsTo = yieldsTo;
        using var _ = torch.no_grad();
        _items = model.parameters().Where(p => p.is_floating_point())
            .Select(p => (p, p.detach().clone().DetachFromDisposeScope(), torch.empty_like(p).DetachFromDisposeScope())).ToList();
    }

    /// <summary>θ̄ ← a θ̄ + (1 − a) θ for every parameter.</summary>
    public void OnBatchEnd(TrainingLoop loop, Batch batch)
    {
        using var _ = torch.no_grad();
        foreach (var (p, avg, _) in _items) avg.mul_(_decay).add_(p, alpha: 1 - _decay);
    }

    /// <summary>Leaves θ̄ in the model, unless early stopping restored its best weights.</summary>
    public void OnFitEnd(TrainingLoop loop)
    {
        if (_yieldsTo?.Restored == true) return;
        using var _ = torch.no_grad();
        foreach (var (p, avg, _) in _items) p.copy_(avg);
    }

    /// <summary>Puts θ̄ into the model (keeping θ aside) until the returned handle is disposed.</summary>
    public IDisposable Swap()
    {
        using (torch.no_grad())
            foreach (var (p, avg, spare) in _items) { spare.copy_(p); p.copy_(avg); }
        return new Restore(this);
    }

    private sealed class Restore(IterateAverage owner) : IDisposable
    {
        public void Dispose()
        {
            using var _ = torch.no_grad();
            foreach (var (p, _, spare) in owner._items) p.copy_(spare);
        }
    }

    /// <summary>θ̄, one tensor per parameter.</summary>
    public IReadOnlyList<Tensor> Averages => _items.Select(i => i.avg).ToList();

    /// <inheritdoc />
    public string StateName => "average";

    /// <inheritdoc />
    public void SaveState(StateSection section)
    {
        for (int i = 0; i < _items.Count; i++) section.Put(i.ToString(System.Globalization.CultureInfo.InvariantCulture), _items[i].avg);
    }

    /// <inheritdoc />
    public Action PrepareLoad(StateSection section)
    {
        if (section.Tensors.Count != _items.Count) throw section.Refuse($"{section.Tensors.Count} averages for {_items.Count} parameters");
        var sources = _items.Select((item, i) => section.Tensor(i.ToString(System.Globalization.CultureInfo.InvariantCulture), item.avg)).ToList();
        return () =>
        {
            using var _ = torch.no_grad();
            for (int i = 0; i < _items.Count; i++) _items[i].avg.copy_(sources[i]);
        };
    }

    /// <summary>Frees θ̄ and the spare copies.</summary>
    public void Dispose()
    {
        foreach (var (_, avg, spare) in _items) { avg.Dispose(); spare.Dispose(); }
    }
}

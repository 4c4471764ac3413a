using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// Trains a <see cref="DBM"/> by stochastic approximation (persistent contrastive divergence) with a mean-field
/// positive phase (Salakhutdinov &amp; Hinton 2009), with any <c>torch.optim</c> optimizer.
/// </summary>
/// <remarks>
/// <para>The log-likelihood gradient of a DBM is ∂ log p(v)/∂θ = −E_{p(h|v)}[∂E/∂θ] + E_{p(v,h)}[∂E/∂θ]. Per mini-batch
/// of B examples: the <b>positive phase</b> replaces p(h | v) by its mean-field approximation q (<see cref="DBM.mean_field"/>,
/// at most <see cref="DbmTrainingOptions.MeanFieldIterations"/> sweeps); the <b>negative phase</b> advances
/// <see cref="DbmTrainingOptions.Chains"/> persistent chains by <see cref="DbmTrainingOptions.GibbsSteps"/> block Gibbs
/// steps (<see cref="DBM.gibbs_step"/>) and takes their states x⁻. Since E is linear in each layer, E_q[∂E/∂θ] =
/// ∂E/∂θ at the means μ, so the gradient estimate is that of the surrogate
/// <code>L = (1/B) Σ_b E(v_b, μ_b) − (1/C) Σ_c E(x⁻_c),   e.g. ∂L/∂W_l = −(⟨μ_l μ_{l−1}ᵀ⟩_data − ⟨h_l h_{l−1}ᵀ⟩_model)</code>
/// with μ and x⁻ held fixed; <see cref="WriteGradients"/> writes ∂L/∂θ into <c>.grad</c> (the weights' directly, the
/// biases' through autograd on the self-energies), λW_l added for weight decay, with <see cref="DbmTrainingOptions.Centering"/> the gradient becomes the centered step
/// (<see cref="Centering.center_dbm_gradients"/>), and the optimizer steps (default: SGD with the options' learning rate and momentum; the rate is
/// multiplied by <see cref="DbmTrainingOptions.LearningRateDecay"/> every epoch through
/// <see cref="ExponentialLearningRate"/>).</para>
/// <para><see cref="Fit"/> runs on the shared <see cref="TrainingLoop{TMetrics}"/> (epochs, shuffled batches, dispose
/// scopes, progress, cancellation, divergence stop).</para>
/// <para>Run checkpoint (<see cref="ResumableTrainer.CheckpointPath"/>): when set, <see cref="Fit"/> writes a run checkpoint here (kind <c>dbm</c>) every <see cref="ResumableTrainer.CheckpointEvery"/>
/// epochs and at the end, and a <see cref="Fit"/> that finds the file continues from it: weights, optimizer state, the
/// generator, the persistent chains and the centering offsets, so a stopped run on the CPU continues bit for bit as one
/// that never stopped. The file must come from a
/// run with the same machine, options (<see cref="DbmTrainingOptions.Epochs"/> aside), optimizer type, number of
/// training rows and device.</para>
/// </remarks>
public sealed class DbmTrainer : ResumableTrainer, IDisposable
{
    private readonly DBM _dbm;
    private readonly optim.Optimizer _optimizer;
    private readonly bool _ownsOptimizer;
    private readonly Generator _generator;
    private readonly bool _ownsGenerator;
    private Tensor[]? _chains;
    private Tensor[]? _offsets;   // centering: μ_0 (the data's mean) … μ_L (running means of the mean-field means)
    private double _sweeps;
    private int _batches;

    /// <summary>Creates a trainer.</summary>
    /// <param name="dbm">The machine (already on its device).</param>
    /// <param name="options">Hyperparameters (validated here).</param>
    /// <param name="optimizer">Any optimizer over <c>dbm.parameters()</c>; default SGD(learning rate, momentum). Not disposed when given.</param>
    /// <param name="generator">Random generator on the machine's device; default <c>new Generator(options.Seed, device)</c>.</param>
    public DbmTrainer(DBM dbm, DbmTrainingOptions? options = null, optim.Optimizer? optimizer = null, Generator? generator = null)
        : base("DBM")
    {
        _dbm = dbm ?? throw new ArgumentNullException(nameof(dbm));
        Options = options ?? new DbmTrainingOptions();
        Options.Validate();
        _ownsOptimizer = optimizer is null;
        _optimizer = optimizer ?? optim.SGD(dbm.parameters(), Options.LearningRate, momentum: Options.Momentum);
        _ownsGenerator = generator is null;
        if (Options.BinarizeEachBatch) Checks.BernoulliVisible(dbm.visible_units, "BinarizeEachBatch", nameof(options));
        _generator = generator ?? new Generator(Options.Seed, dbm.device);
    }

    /// <summary>The hyperparameters.</summary>
    public DbmTrainingOptions Options { get; }

    /// <summary>The optimizer taking the steps.</summary>
    public optim.Optimizer Optimizer => _optimizer;

    /// <summary>The persistent chains' states, v first (null before the first batch). Valid until the next update.</summary>
    public IReadOnlyList<Tensor>? Chains => _chains;

    /// <summary>
    /// Trains for <see cref="DbmTrainingOptions.Epochs"/> epochs on <paramref name="train"/> (N × n_visible) on the shared
    /// <see cref="TrainingLoop{TMetrics}"/>.
    /// </summary>
    /// <param name="train">Training data; moved to the machine's device and dtype once.</param>
    /// <param name="progress">Receives a report after every batch, and with the metrics after every epoch.</param>
    /// <param name="cancellationToken">Checked before every batch.</param>
    /// <returns>The metrics of every epoch.</returns>
    /// <exception cref="ArgumentException">Bad data shape or values.</exception>
    /// <exception cref="TrainingDivergedException">The means, the gradient or the weights became NaN or infinite (naming epoch and batch).</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    /// <exception cref="IO.CheckpointException">The file at <see cref="ResumableTrainer.CheckpointPath"/> cannot be continued from.</exception>
    public IReadOnlyList<DbmEpochMetrics> Fit(Tensor train, IProgress<LoopProgress<DbmEpochMetrics>>? progress = null,
                                              CancellationToken cancellationToken = default)
    {
        _dbm.check_visible(train, "training data");
        Checks.Rows(train, _dbm.n_visible, "training data");
        using var data = train.to(_dbm.dtype, _dbm.device);
        using var source = new Data.TensorSource(data);
        var previous = _dbm.validate_values;
        _dbm.validate_values = false;   // checked once above
        try { return FitSource(source, progress, cancellationToken); }
        finally { _dbm.validate_values = previous; }
    }

    /// <summary>
    /// Trains on the batches of <paramref name="train"/>: a <see cref="Data.TensorSource"/> (float, or compact uint8
    /// converted per batch; the same run as from the float tensor for the same values) or a <see cref="Data.IdxStream"/>
    /// read while training (batches in the stream's own order). Each batch's values are checked as it arrives (when the
    /// machine validates values).
    /// </summary>
    /// <param name="train">The training data; the caller keeps and disposes it.</param>
    /// <param name="progress">Receives a report after every batch, and with the metrics after every epoch.</param>
    /// <param name="cancellationToken">Checked before every batch; also stops a stream's reader.</param>
    /// <returns>The metrics of every epoch.</returns>
    public IReadOnlyList<DbmEpochMetrics> FitSource(Data.BatchSource train, IProgress<LoopProgress<DbmEpochMetrics>>? progress = null,
                                              CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        train.CheckFeatures(_dbm.n_visible, "training data");
        CheckCheckpointEvery();
        var data = train;
        if (Options.Centering)
        {
            using var _ = torch.no_grad();
            _offsets ??= OffsetsFrom(null);
            _offsets[0].Dispose();
            _offsets[0] = data.Mean(_dbm.dtype, _dbm.device).DetachFromDisposeScope();   // μ_0: the training data's mean
        }
        var loop = new TrainingLoop<DbmEpochMetrics>
        {
            Stage = Stage, Epochs = Options.Epochs, BatchSize = Options.BatchSize, Generator = _generator, Shuffle = Options.Shuffle && !data.InOwnOrder,
            Checkpoint = CheckpointPath is null ? null : new CheckpointPolicy(CheckpointPath, "dbm", Identity(data.Count), CheckpointEvery),
        };
        var schedule = new ExponentialLearningRate(_optimizer, Options.LearningRateDecay, floor: Options.MinLearningRate);
        loop.Callbacks.Add(schedule);
        if (Options.FinalMomentum is not null) loop.Callbacks.Add(new MomentumSchedule(this));
        if (CheckpointPath is not null)
            loop.State.AddRange([new ModuleState("model", _dbm), new OptimizerCheckpointState("optimizer", _optimizer),
                                 new GeneratorState("generator", _generator), new ChainsState(this)]);
        if (CheckpointPath is not null && Options.Centering) loop.State.Add(new OffsetsState(this));
        try
        {
            var history = loop.Run(new EpochStep(this, data, schedule, Options.BatchSize, cancellationToken), data.Count, _dbm.device, progress, cancellationToken).ToList();
            RestoredSeconds = loop.RestoredSeconds;
            return history;
        }
        finally { data.StopEpoch(); }
    }

    /// <summary>What a run continuing from a checkpoint must share with the run that wrote it.</summary>
    private Dictionary<string, string> Identity(long rows)
    {
        var id = typeof(DbmTrainingOptions).GetProperties()
            .Where(p => p.Name != nameof(DbmTrainingOptions.Epochs))
            .ToDictionary(p => "options." + p.Name, p => Convert.ToString(p.GetValue(Options), System.Globalization.CultureInfo.InvariantCulture) ?? "null");
        // Off, centering's settings read "null" as an absent entry does: checkpoints written before it existed continue.
        if (!Options.Centering) id["options.Centering"] = id["options.CenteringRate"] = "null";
        // Likewise the momentum schedule and the per-batch binarisation when off.
        if (Options.FinalMomentum is null) id["options.FinalMomentum"] = id["options.MomentumSwitchEpoch"] = "null";
        if (!Options.BinarizeEachBatch) id["options.BinarizeEachBatch"] = "null";
        if (Options.MinLearningRate == 0) id["options.MinLearningRate"] = "null";
        if (Options.ComputeDtype is null) id["options.ComputeDtype"] = "null";
        var (type, architecture) = IO.Checkpoint.Describe(_dbm);
        id["model"] = $"{type} {architecture.ToJsonString()}";
        id["optimizer"] = _optimizer.GetType().Name;
        id["training_rows"] = rows.ToString(System.Globalization.CultureInfo.InvariantCulture);
        id["device"] = _dbm.device.ToString();
        AddCheckpointTag(id);
        return id;
    }

    /// <summary>μ = <see cref="DbmTrainingOptions.Momentum"/> before <see cref="DbmTrainingOptions.MomentumSwitchEpoch"/>,
    /// <see cref="DbmTrainingOptions.FinalMomentum"/> from it on, set in the optimizer's groups at every epoch's start.</summary>
    private sealed class MomentumSchedule(DbmTrainer trainer) : ITrainingCallback
    {
        public void OnEpochStart(TrainingLoop loop, int epoch)
        {
            var o = trainer.Options;
            RbmTrainer.SetMomentum(trainer._optimizer, epoch < o.MomentumSwitchEpoch ? o.Momentum : o.FinalMomentum!.Value);
        }
    }

    /// <summary>The trainer's part of the loop: one update per batch; the weights' check and the metrics per epoch.</summary>
    private sealed class EpochStep(DbmTrainer trainer, Data.BatchSource data, ExponentialLearningRate schedule, int batchSize, CancellationToken token) : ITrainingStep<DbmEpochMetrics>
    {
        public void BeginEpoch(int epoch) { trainer._sweeps = 0; trainer._batches = 0; data.StartEpoch(epoch, batchSize, token); }

        public double TrainBatch(Batch batch)
        {
            var x = data.Batch(batch, trainer._dbm.dtype, trainer._dbm.device);
            if (trainer.Options.BinarizeEachBatch) x = Data.Binarize.Stochastic(x, trainer._generator);   // v ~ Bernoulli(x), anew every batch
            if (!trainer.Step(x)) throw batch.Diverged("the mean-field means, the chains or the gradient");
            return double.NaN;
        }

        public DbmEpochMetrics EndEpoch(EpochEnd end)
        {
            data.StopEpoch();
            if (!Checks.AllFinite(trainer._dbm)) throw end.Diverged("the weights");
            var o = trainer.Options;
            double sweeps = trainer._batches > 0 ? trainer._sweeps / trainer._batches : double.NaN;
            if (!end.Measures(o.MetricsEvery, o.Epochs))
                return new DbmEpochMetrics(end.Epoch + 1, o.Epochs, end.Seconds, schedule.Rate, sweeps, null, null, null);
            using var given = data.Rows(0, Math.Min(o.MetricsRows, data.Count), trainer._dbm.dtype, trainer._dbm.device);
            // With per-batch binarisation the metrics see one fixed draw of the metric rows (seeded by the options' seed,
            // apart from the run's generator), so that every epoch's figures are on the same binary digits.
            using var binarizer = o.BinarizeEachBatch ? new Generator(o.Seed, trainer._dbm.device) : null;
            using var rows = binarizer is null ? given.alias() : Data.Binarize.Stochastic(given, binarizer);
            var (recon, bound, ll) = Measure(trainer._dbm, rows);
            return new DbmEpochMetrics(end.Epoch + 1, o.Epochs, end.Seconds, schedule.Rate, sweeps, recon, bound, ll);
        }
    }

    /// <summary>
    /// Reconstruction error, mean variational bound (full mean-field: <see cref="DBM.DefaultMeanFieldIterations"/> sweeps)
    /// and, for small machines, the exact mean log-likelihood of <paramref name="rows"/>.
    /// </summary>
    internal static (double recon, double bound, double? ll) Measure(DBM dbm, Tensor rows)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using var mf = dbm.mean_field(rows);
        var states = new List<Tensor> { rows };
        states.AddRange(mf.means);
        var pv = dbm.conditional_mean(states, 0);
        double recon = pv.sub(rows).pow_(2).mean().ToDouble();
        double bound = dbm.variational_bound(rows, mf.means).mean().ToDouble();
        int nEven = Enumerable.Range(1, dbm.n_hidden_layers).Where(l => l % 2 == 0).Sum(l => dbm.layer_sizes[l]);
        double? ll = dbm.n_visible <= 16 && nEven <= 16 && dbm.visible_units.discrete_values is not null
            ? ExactEnumeration.log_likelihood(dbm, rows) : null;
        return (recon, bound, ll);
    }

    /// <summary>The persistent chains as a checkpoint component (their states; the generator is saved once, as the trainer's).</summary>
    private sealed class ChainsState(DbmTrainer trainer) : IStateful
    {
        public string StateName => "chains";

        public void SaveState(StateSection section)
        {
            section.Values["started"] = trainer._chains is not null;
            if (trainer._chains is not { } chains) return;
            for (int l = 0; l < chains.Length; l++) section.Put($"layer.{l}", chains[l]);
        }

        public Action PrepareLoad(StateSection section)
        {
            var dbm = trainer._dbm;
            if (!section.Value<bool>("started")) return () => trainer.DisposeChains();
            var loaded = section.Layers(dbm.layer_sizes.Select(n => new long[] { trainer.Options.Chains, n }).ToList(), dbm.dtype, "the chains' layer", exclusive: true);
            return () =>
            {
                trainer.DisposeChains();
                trainer._chains = loaded.Select(t => t.to(dbm.dtype, dbm.device).clone().DetachFromDisposeScope()).ToArray();
            };
        }
    }

    /// <summary>The centering offsets as a checkpoint component.</summary>
    private sealed class OffsetsState(DbmTrainer trainer) : IStateful
    {
        public string StateName => "offsets";

        public void SaveState(StateSection section)
        {
            if (trainer._offsets is not { } offsets) return;
            for (int j = 0; j < offsets.Length; j++) section.Put($"layer.{j}", offsets[j]);
        }

        public Action PrepareLoad(StateSection section)
        {
            var dbm = trainer._dbm;
            if (!section.Has("layer.0")) return () => { };
            var loaded = section.Layers(dbm.layer_sizes.Select(n => new long[] { n }).ToList(), dbm.dtype, "the offset of layer");
            return () =>
            {
                trainer.DisposeOffsets();
                trainer._offsets = loaded.Select(t => t.to(dbm.device, copy: true).DetachFromDisposeScope()).ToArray();
            };
        }
    }

    /// <summary>Fresh offsets: μ_0 the mean of <paramref name="v"/> (zeros without it, set by the caller), 0.5 for every hidden layer.</summary>
    private Tensor[] OffsetsFrom(Tensor? v)
    {
        var offsets = new Tensor[_dbm.layer_sizes.Count];
        offsets[0] = (v is null ? torch.zeros(_dbm.n_visible, dtype: _dbm.dtype, device: _dbm.device) : v.mean([0L])).DetachFromDisposeScope();
        for (int j = 1; j < offsets.Length; j++)
            offsets[j] = torch.full(_dbm.layer_sizes[j], 0.5, dtype: _dbm.dtype, device: _dbm.device).DetachFromDisposeScope();
        return offsets;
    }

    /// <summary>The centering offsets μ_0 … μ_L (null without centering or before the first fit or batch). Valid until the next update.</summary>
    public IReadOnlyList<Tensor>? Offsets => _offsets;

    /// <summary>
    /// One update on a batch v (B × n_visible, on the machine's device): mean-field positive phase, Gibbs steps of the
    /// persistent chains, gradient into <c>.grad</c>, optimizer step. Returns false (and takes no step) when the means,
    /// the chains' conditional means or the gradient are not finite.
    /// </summary>
    /// <exception cref="ArgumentException">v is not a (B, n_visible) batch of valid values.</exception>
    public bool Step(Tensor v)
    {
        _dbm.check_visible(v, "batch");
        Checks.Rows(v, _dbm.n_visible, "batch", "B", param: nameof(v));
        var machineDtype = _dbm.compute_dtype;
        _dbm.compute_dtype = Options.ComputeDtype ?? machineDtype;   // the sweeps' and the chains' products (mixed precision)
        try
        {
            return StepIn(v);
        }
        finally
        {
            _dbm.compute_dtype = machineDtype;
        }
    }

    /// <summary>The body of <see cref="Step"/>, with the machine's coupling products in <see cref="DbmTrainingOptions.ComputeDtype"/>
    /// (the gradient statistics do not go through them).</summary>
    private bool StepIn(Tensor v)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var o = Options;
        using var mf = _dbm.mean_field(v, 1.0, o.MeanFieldIterations, o.MeanFieldTolerance, o.MeanFieldDamping);
        _sweeps += mf.iterations;
        _batches++;
        _chains ??= _dbm.random_states(o.Chains, _generator).Select(t => t.DetachFromDisposeScope()).ToArray();
        Tensor? visibleMean = null;
        for (int s = 0; s < o.GibbsSteps; s++)
        {
            visibleMean?.Dispose();
            visibleMean = _dbm.gibbs_step(_chains, 1.0, _generator);
        }
        foreach (var t in _chains) t.DetachFromDisposeScope();
        if (!Checks.Finite(visibleMean) || mf.means.Any(m => !Checks.Finite(m))) return false;
        var positive = new List<Tensor> { v };
        positive.AddRange(mf.means);
        WriteGradients(_dbm, positive, _chains, o.WeightDecay);
        if (o.Centering)
        {
            _offsets ??= OffsetsFrom(v);   // Step without Fit: μ_0 from the first batch
            var gw = Enumerable.Range(1, _dbm.n_hidden_layers).Select(l => _dbm.weight(l).grad!).ToList();
            var gb = Enumerable.Range(0, _dbm.n_hidden_layers + 1).Select(j => _dbm.bias(j).grad!).ToList();
            Centering.center_dbm_gradients(gw, gb, _offsets);
            for (int l = 1; l < _offsets.Length; l++)   // μ_l ← (1 − ν)μ_l + ν·mean over the batch of the mean-field μ_l(v)
                _offsets[l].mul_(1 - o.CenteringRate).add_(mf.means[l - 1].mean([0L]), alpha: o.CenteringRate);
        }
        foreach (var p in _dbm.parameters())
            using (var g = p.grad!)
                if (!Checks.Finite(g)) return false;
        _optimizer.step();
        return true;
    }

    /// <summary>
    /// Writes the negative log-likelihood gradient estimated from positive-phase states or means (data and mean-field μ)
    /// and negative-phase states (the chains) into every parameter's <c>.grad</c>, overwriting it: the gradient of
    /// <code>L = mean_b E(x⁺_b) − mean_c E(x⁻_c) + (λ/2) Σ_l ‖W_l‖²</code>
    /// with the states held fixed. E couples the layers by −h_lᵀW_l h_{l−1}, so the weights' gradient is computed directly,
    /// one product per phase and layer:
    /// <code>∂L/∂W_l = (1/C) Σ_c x⁻_l x⁻_{l−1}ᵀ − (1/B) Σ_b x⁺_l x⁺_{l−1}ᵀ + λW_l</code>
    /// (autograd through <see cref="DBM.energy"/> would also compute the energies' products W_l x_{l−1}, twice the
    /// work); the biases' gradient goes through autograd on the layers' self-energies alone (elementwise; for Bernoulli
    /// units ∂L/∂b_l = mean_c x⁻_l − mean_b x⁺_l), so every unit type gets its own.
    /// </summary>
    /// <param name="dbm">The machine.</param>
    /// <param name="positive">L + 1 tensors, v first, (B, n_l): data and mean-field means.</param>
    /// <param name="negative">L + 1 tensors, v first, (C, n_l): the chains' states.</param>
    /// <param name="weight_decay">λ ≥ 0.</param>
    public static void WriteGradients(DBM dbm, IReadOnlyList<Tensor> positive, IReadOnlyList<Tensor> negative, double weight_decay = 0)
    {
        ArgumentNullException.ThrowIfNull(dbm);
        if (!(weight_decay >= 0) || double.IsInfinity(weight_decay)) throw new ArgumentOutOfRangeException(nameof(weight_decay), weight_decay, "weight_decay: expected a finite λ ≥ 0.");
        ArgumentNullException.ThrowIfNull(positive);
        ArgumentNullException.ThrowIfNull(negative);
        int L = dbm.n_hidden_layers;
        if (positive.Count != L + 1 || negative.Count != L + 1)
            throw new ArgumentException($"positive, negative: expected {L + 1} tensors each (v and {L} hidden layers), got {positive.Count} and {negative.Count}.");
        foreach (var (phase, states) in new[] { ("positive", positive), ("negative", negative) })
            for (int l = 0; l <= L; l++)
            {
                Checks.Width(states[l], dbm.layer_sizes[l], $"{phase}[{l}]");
                if (states[l].dim() != 2 || states[l].shape[0] != states[0].shape[0])
                    throw new ArgumentException($"{phase}[{l}]: expected ({states[0].shape[0]}, {dbm.layer_sizes[l]}) like {phase}[0]'s rows, got ({string.Join(", ", states[l].shape)}).");
            }
        using var scope = torch.NewDisposeScope();
        foreach (var b in dbm.biases)   // the weights' gradients are overwritten below
        {
            using var g = b.grad;
            g?.zero_();
        }
        var pos = positive.Select(t => t.detach()).ToList();
        var neg = negative.Select(t => t.detach()).ToList();
        using (torch.enable_grad())
        {
            // Σ_l [mean_b s_l(x⁺_l; b_l) − mean_c s_l(x⁻_l; b_l)], s_l the self-energy (−b_lᵀx_l for Bernoulli units).
            Tensor? loss = null;
            for (int l = 0; l <= L; l++)
            {
                var units = dbm.units(l);
                var term = units.self_energy(pos[l], dbm.bias(l)).sum(-1).mean().sub(units.self_energy(neg[l], dbm.bias(l)).sum(-1).mean());
                loss = loss is null ? term : loss.add(term);
            }
            loss!.backward();
        }
        using (torch.no_grad())
        {
            double b = pos[0].shape[0], c = neg[0].shape[0];
            for (int l = 1; l <= L; l++)
            {
                var w = dbm.weight(l);
                // (1/C) x⁻_lᵀ x⁻_{l−1} − (1/B) x⁺_lᵀ x⁺_{l−1} (+ λW_l), in W_l's (n_l, n_{l−1}) layout
                var grad = neg[l].t().mm(neg[l - 1]).div_(c).add_(pos[l].t().mm(pos[l - 1]), alpha: -1.0 / b);
                if (weight_decay > 0) grad.add_(w, alpha: weight_decay);
                if (w.grad is { } existing) using (existing) existing.copy_(grad);
                else w.grad = grad.DetachFromDisposeScope();
            }
        }
    }

    private void DisposeOffsets()
    {
        if (_offsets is null) return;
        foreach (var t in _offsets) t.Dispose();
        _offsets = null;
    }

    private void DisposeChains()
    {
        if (_chains is null) return;
        foreach (var t in _chains) t.Dispose();
        _chains = null;
    }

    /// <summary>Releases the chains and the optimizer/generator the trainer created.</summary>
    public void Dispose()
    {
        DisposeChains();
        DisposeOffsets();
        if (_ownsOptimizer) (_optimizer as IDisposable)?.Dispose();
        if (_ownsGenerator) _generator.Dispose();
    }
}

using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchBoltzmann.Data;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// Greedy layer-wise pretraining of a <see cref="DBN"/> (Hinton, Osindero &amp; Teh 2006; Bengio et al. 2007): RBM 0
/// is trained on the data x⁰; then x^{l+1} = p(h | x^l) under the trained RBM l (or a sample,
/// <see cref="DbnPretrainingOptions.SampleHiddenInputs"/>) is computed ONCE, in batches, under no_grad, on the model's
/// device, and RBM l+1 is trained on it with its own <see cref="RbmTrainer"/>. In a class-conditional DBN the top RBM
/// trains on [x^{L−1} ; one_hot(y)], its label group sampled as a softmax in the negative phase.
/// </summary>
/// <remarks>
/// <para>Memory: only the current layer's input (N × width) and the next one while it is computed are alive; every
/// RbmTrainer is disposed after its layer. Progress is reported with <see cref="TrainingProgress.Stage"/> = "layer l/L".</para>
/// <para>With <see cref="CheckpointPath"/>, the DBN is saved (<see cref="RunCheckpoint"/>, atomically) after every layer
/// with the metrics so far, and a later <c>Fit</c> with the same options, architecture, device and data loads it and
/// trains only the layers left: the inputs of the next layer are recomputed from the saved ones (replaying the same
/// generator draws when hidden inputs are sampled), so the result is the unbroken run's. The layer in training has its
/// own run checkpoint (<see cref="LayerCheckpointPath"/>, the <see cref="RbmTrainer"/>'s, every <see cref="CheckpointEvery"/>
/// epochs), so a run stopped inside a long layer loses at most that many epochs, not the layer; it is deleted once the
/// layer is in the pretraining checkpoint.</para>
/// </remarks>
public sealed class GreedyPretrainer
{
    private readonly DBN _dbn;

    /// <summary>Creates a pretrainer for <paramref name="dbn"/> (already on its device).</summary>
    /// <exception cref="ArgumentException">The DBN is untied (<see cref="DBN.untie"/>): greedy pretraining trains the
    /// tied layers, while an untied DBN's up-pass reads its recognition weights, which it would leave stale.</exception>
    public GreedyPretrainer(DBN dbn, DbnPretrainingOptions? options = null)
    {
        _dbn = dbn ?? throw new ArgumentNullException(nameof(dbn));
        if (dbn.is_untied)
            throw new ArgumentException("dbn: expected a tied DBN (greedy pretraining trains the tied layers), got an untied one: its up-pass reads recognition weights that pretraining would leave stale; pretrain before untie().", nameof(dbn));
        Options = options ?? new DbnPretrainingOptions();
        Options.Validate(dbn.n_layers);
    }

    /// <summary>The hyperparameters.</summary>
    public DbnPretrainingOptions Options { get; }

    /// <summary>
    /// When set, the DBN and the metrics so far are saved here after every layer (a <see cref="RunCheckpoint"/>, written
    /// atomically: if the process dies while saving, the previous layer's checkpoint or the new one is in place), and
    /// <c>Fit</c> continues from such a file: it replaces ALL the DBN's weights with the file's (the layers not yet trained
    /// hold the initial weights they were saved with) and trains only the epochs left (the layer in training from its own
    /// checkpoint, <see cref="CheckpointEvery"/>). A file from other options,
    /// architecture, dtype, device or data is refused with the differences named, leaving the DBN untouched. A checkpoint of
    /// the earlier format (a <see cref="Checkpoint"/> pair <c>X.pt</c> + <c>X.json</c> with the record in the sidecar, at
    /// this path with its extension changed) is read too, and removed once the first new checkpoint is written; weights
    /// without a sidecar are ignored. The caller deletes this file when it is no longer needed; <c>Fit</c> deletes the layer
    /// checkpoints itself (each once its layer is in this file, and at the start any that cannot belong to this run).
    /// </summary>
    public string? CheckpointPath { get; init; }

    /// <summary>
    /// Epochs between the checkpoints of the layer in training when <see cref="CheckpointPath"/> is set (default 1, ≥ 1):
    /// its <see cref="RbmTrainer"/> writes a run checkpoint to <see cref="LayerCheckpointPath"/> (weights, optimizer,
    /// generator, chains, metrics) and a continued <c>Fit</c> resumes the layer from it, ending as the unbroken run.
    /// </summary>
    public int CheckpointEvery { get; init; } = 1;

    /// <summary>
    /// Where the layer with index <paramref name="layer"/> (0 = bottom) keeps its run checkpoint while it trains, beside
    /// <paramref name="checkpointPath"/>: <c>dir/name.layer{layer + 1}.ext</c> (e.g. <c>dbm-pretrain.layer1.ckpt</c>), the
    /// directory spelled as given.
    /// </summary>
    /// <param name="checkpointPath">The pretraining's checkpoint (<see cref="CheckpointPath"/>).</param>
    /// <param name="layer">The layer, 0 = bottom.</param>
    /// <returns>The layer's checkpoint path.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="checkpointPath"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="layer"/> is negative.</exception>
    public static string LayerCheckpointPath(string checkpointPath, int layer)
    {
        ArgumentNullException.ThrowIfNull(checkpointPath);
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        return $"{Path.ChangeExtension(checkpointPath, null)}.layer{layer + 1}{Path.GetExtension(checkpointPath)}";
    }

    /// <summary>The checkpoint paths of all <paramref name="layers"/> layers (<see cref="LayerCheckpointPath"/>), bottom first.</summary>
    /// <param name="checkpointPath">The pretraining's checkpoint (<see cref="CheckpointPath"/>).</param>
    /// <param name="layers">The number of layers.</param>
    public static IReadOnlyList<string> LayerCheckpointPaths(string checkpointPath, int layers) =>
        Enumerable.Range(0, layers).Select(l => LayerCheckpointPath(checkpointPath, l)).ToList();

    /// <summary>
    /// Wall time of the last <c>Fit</c> in seconds, including the time recorded for the layers restored from
    /// <see cref="CheckpointPath"/> and for the epochs of the layer in training restored from its own checkpoint.
    /// </summary>
    public double Seconds { get; private set; }

    /// <summary>Test hook: called with (layer, input) for each layer's training input before its RBM trains, after its initialisation (not for layers restored from a checkpoint). The tensor is borrowed.</summary>
    internal Action<int, Tensor>? OnLayerInput { get; set; }

    /// <summary>
    /// Pretrains every RBM bottom-up, each on the one before's hidden probabilities (or samples).
    /// </summary>
    /// <param name="train">Training data (N × n_visible, values in [0, 1]).</param>
    /// <param name="labels">Int64 labels (N), required for a class-conditional DBN.</param>
    /// <param name="validation">Optional held-out data, propagated alongside for the per-epoch validation metrics.</param>
    /// <param name="validationLabels">Labels of <paramref name="validation"/> (class-conditional DBNs).</param>
    /// <param name="progress">Progress of every layer, Stage "layer l/L".</param>
    /// <param name="cancellationToken">Checked before every batch.</param>
    /// <returns>Per layer, the metrics of every epoch.</returns>
    /// <exception cref="ArgumentException">Bad data shape or values, or missing labels.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="CheckpointEvery"/> is below 1.</exception>
    /// <exception cref="CheckpointException">The file at <see cref="CheckpointPath"/>, or the checkpoint of the layer to
    /// continue (<see cref="LayerCheckpointPath"/>), is corrupt or was written by another run; checked before any training.</exception>
    /// <exception cref="IOException">The checkpoint could not be written.</exception>
    public IReadOnlyList<IReadOnlyList<RbmEpochMetrics>> Fit(Tensor train, Tensor? labels = null, Tensor? validation = null,
        Tensor? validationLabels = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        _dbn.check_input(train, "training data");
        Checks.Rows(train, _dbn.n_visible, "training data");
        if (validation is not null) _dbn.check_input(validation, "validation data");
        if (_dbn.is_class_conditional && labels is null)
            throw new ArgumentException("labels: a class-conditional DBN needs training labels.", nameof(labels));
        if (_dbn.is_class_conditional && validation is not null && validationLabels is null)
            throw new ArgumentException("validationLabels: a class-conditional DBN needs labels for its validation data.", nameof(validationLabels));
        if (_dbn.is_class_conditional)
        {
            // Checked here, not when the top layer joins them: a bad label must not cost the lower layers' training
            // (nor, with a checkpoint, the saved layers, whose tag hashes the labels).
            _dbn.CheckLabels(labels!, train.shape[0], "labels");
            if (validation is not null) _dbn.CheckLabels(validationLabels!, validation.shape[0], "validationLabels");
        }

        int L = _dbn.n_layers;
        if (CheckpointEvery < 1) throw new ArgumentOutOfRangeException(nameof(CheckpointEvery), CheckpointEvery, "CheckpointEvery must be ≥ 1.");
        var history = new List<IReadOnlyList<RbmEpochMetrics>>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        double restoredSeconds = 0;
        Seconds = 0;
        var tag = CheckpointPath is null ? null : Tag(train, labels, validation, validationLabels);
        if (CheckpointPath is not null && File.Exists(CheckpointPath) && RunCheckpoint.IsRunCheckpoint(CheckpointPath))
        {
            var record = new LayerRecord(this);
            RunCheckpoint.Restore(CheckpointPath, "pretraining", tag!, [record, new ModuleState("model", _dbn)]);
            history.AddRange(record.Layers);
            restoredSeconds = record.Seconds;
        }
        else if (CheckpointPath is not null && Checkpoint.Exists(CheckpointPath))
        {
            // The format before the run checkpoint: the DBN as a Checkpoint pair with the record in its sidecar.
            var record = RestoreEarlierFormat(CheckpointPath, tag!);
            history.AddRange(record.Layers);
            restoredSeconds = record.Seconds;
            // A save of this run killed after its weights were in place, or leftovers of killed saves: tidied here, as
            // the next save would, in case every layer is done and none follows.
            Checkpoint.FinishInterruptedSaves(CheckpointPath);
        }
        int done = history.Count;
        if (CheckpointPath is not null)
        {
            // Below `done`: a layer in the pretraining checkpoint whose own file was not yet deleted (the run stopped in
            // between). Above it: a file no run of this checkpoint can have left (the layer before would be in it).
            var layerFiles = LayerCheckpointPaths(CheckpointPath, L);
            for (int l = 0; l < L; l++)
                if (l != done && File.Exists(layerFiles[l])) File.Delete(layerFiles[l]);
            // The layer to continue: its file must come from this run, checked now rather than after the layers below retrain.
            string next = LayerCheckpointPath(CheckpointPath, done);
            if (done < L && File.Exists(next))
            {
                var identity = RunCheckpoint.ReadRecord(next, "loop").Identity;
                var differ = LayerTag(tag!, done).Where(kv => !identity.TryGetValue("tag." + kv.Key, out var v) || v != kv.Value).Select(kv => kv.Key).ToList();
                if (differ.Count > 0)
                    throw new CheckpointException($"'{next}' holds layer {done + 1}'s training from another run ({string.Join(", ", differ)} differ). Delete it to start that layer over, or run as before.");
            }
        }
        Seconds = restoredSeconds + clock.Elapsed.TotalSeconds;
        if (done == L) return history;
        using var generator = new Generator(Options.Layer.Seed + 7919, _dbn.device);
        Tensor x = OwnedCopy(train);
        Tensor? vx = validation is null ? null : OwnedCopy(validation);
        try
        {
            for (int l = 0; l < L; l++)
            {
                var rbm = _dbn.layers[l];
                if (l == L - 1 && _dbn.is_class_conditional)
                {
                    Replace(ref x, _dbn.JoinLabels(x, labels!));
                    if (vx is not null) Replace(ref vx, _dbn.JoinLabels(vx, validationLabels!));
                }
                if (l >= done)
                {
                    var options = Options.ForLayer(l);
                    if (Options.InitialWeightStd is { } std)
                    {
                        // Per layer, not one stream: a continued run re-draws layer l exactly as the unbroken run did.
                        using var init = new Generator(unchecked(options.Seed * 1_000_003UL + 104_729UL + (ulong)l), _dbn.device);
                        rbm.reset_parameters(std, init);
                    }
                    if (Options.InitVisibleBiasFromData) rbm.init_visible_bias_from_data(x);
                    OnLayerInput?.Invoke(l, x);
                    string? layerPath = CheckpointPath is null ? null : LayerCheckpointPath(CheckpointPath, l);
                    using (var trainer = new RbmTrainer(rbm, options)
                    {
                        Stage = $"layer {l + 1}/{L}", CheckpointPath = layerPath, CheckpointEvery = CheckpointEvery,
                        CheckpointTag = tag is null ? null : LayerTag(tag, l),
                    })
                    {
                        history.Add(trainer.Fit(x, vx, progress, cancellationToken));
                        restoredSeconds += trainer.RestoredSeconds;   // the epochs of this layer an earlier run trained
                    }
                    if (CheckpointPath is not null)
                    {
                        Save(CheckpointPath, tag!, history, restoredSeconds + clock.Elapsed.TotalSeconds);
                        File.Delete(layerPath!);
                    }
                }
                if (l < L - 1)
                {
                    Replace(ref x, DBN.PropagateUp(rbm, x, Options.SampleHiddenInputs, generator, Options.PropagationBatchSize));
                    if (vx is not null) Replace(ref vx, DBN.PropagateUp(rbm, vx, false, null, Options.PropagationBatchSize));
                }
            }
        }
        finally
        {
            x.Dispose();
            vx?.Dispose();
        }
        Seconds = restoredSeconds + clock.Elapsed.TotalSeconds;
        return history;
    }

    /// <summary>
    /// Pretrains every RBM bottom-up from a <see cref="BatchSource"/> (a compact uint8 tensor, or an <see cref="IdxStream"/>
    /// read while training): RBM 0 trains on the source's batches; RBM l &gt; 0 on the same batches propagated through the
    /// trained layers below as they are needed, x^{l} = p(h | x^{l−1}) batch by batch (or a sample,
    /// <see cref="DbnPretrainingOptions.SampleHiddenInputs"/>), rather than on an N × width tensor computed once, so the
    /// memory stays that of the source. The price: the lower layers' up-pass runs again every epoch, and sampled inputs are
    /// fresh samples every epoch (drawn in batch order from the pretrainer's generator) instead of one fixed sample.
    /// With <see cref="DbnPretrainingOptions.InitVisibleBiasFromData"/> the biases start from the mean of each layer's
    /// input (<see cref="BatchSource.Mean"/>, one pass over the source).
    /// </summary>
    /// <param name="train">The training data; the caller keeps and disposes it.</param>
    /// <param name="validation">Optional held-out data (a tensor), propagated alongside for the per-epoch validation metrics.</param>
    /// <param name="progress">Progress of every layer, Stage "layer l/L".</param>
    /// <param name="cancellationToken">Checked before every batch; also stops a stream's reader.</param>
    /// <returns>Per layer, the metrics of every epoch.</returns>
    /// <exception cref="ArgumentException">The source's rows do not fit the DBN, or the DBN is class-conditional (it needs labels: use <see cref="Fit"/>).</exception>
    /// <exception cref="NotSupportedException"><see cref="CheckpointPath"/> is set: pretraining from a source is not checkpointed.</exception>
    public IReadOnlyList<IReadOnlyList<RbmEpochMetrics>> FitSource(BatchSource train, Tensor? validation = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        train.CheckFeatures(_dbn.n_visible, "training data");
        if (validation is not null) _dbn.check_input(validation, "validation data");
        if (_dbn.is_class_conditional)
            throw new ArgumentException("train: a class-conditional DBN needs training labels, which a BatchSource does not carry; pretrain it with Fit.", nameof(train));
        if (CheckpointPath is not null)
            throw new NotSupportedException("CheckpointPath: pretraining from a BatchSource is not checkpointed; leave CheckpointPath null, or pretrain from a tensor with Fit.");
        int L = _dbn.n_layers;
        if (CheckpointEvery < 1) throw new ArgumentOutOfRangeException(nameof(CheckpointEvery), CheckpointEvery, "CheckpointEvery must be ≥ 1.");
        var history = new List<IReadOnlyList<RbmEpochMetrics>>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var generator = new Generator(Options.Layer.Seed + 7919, _dbn.device);
        Tensor? vx = validation is null ? null : OwnedCopy(validation);
        try
        {
            for (int l = 0; l < L; l++)
            {
                var rbm = _dbn.layers[l];
                var options = Options.ForLayer(l);
                using var input = l == 0 ? null : new PropagatedSource(train, _dbn.layers.Take(l).ToArray(), Options.SampleHiddenInputs, generator);
                BatchSource x = input ?? train;
                if (Options.InitialWeightStd is { } std)
                {
                    using var init = new Generator(unchecked(options.Seed * 1_000_003UL + 104_729UL + (ulong)l), _dbn.device);
                    rbm.reset_parameters(std, init);
                }
                if (Options.InitVisibleBiasFromData)
                {
                    using var mean = x.Mean(_dbn.dtype, _dbn.device);
                    using var row = mean.unsqueeze(0);
                    rbm.init_visible_bias_from_data(row);   // b_i = logit of the mean of input i: one row holding the means gives it
                }
                using (var trainer = new RbmTrainer(rbm, options) { Stage = $"layer {l + 1}/{L}" })
                    history.Add(trainer.FitSource(x, vx, progress, cancellationToken));
                if (l < L - 1 && vx is not null) Replace(ref vx, DBN.PropagateUp(rbm, vx, false, null, Options.PropagationBatchSize));
            }
        }
        finally { vx?.Dispose(); }
        Seconds = clock.Elapsed.TotalSeconds;
        return history;
    }

    /// <summary>A source's batches propagated up through trained layers: x ← p(h | x) layer by layer (or a sample of it), under no_grad.</summary>
    private sealed class PropagatedSource(BatchSource inner, RBM[] below, bool sample, Generator generator) : BatchSource
    {
        public override long Count => inner.Count;
        public override int Features => (int)below[^1].n_hidden;
        public override bool InOwnOrder => inner.InOwnOrder;
        public override long ResidentBytes => inner.ResidentBytes;
        public override void StartEpoch(int epoch, int batchSize, CancellationToken cancellationToken) => inner.StartEpoch(epoch, batchSize, cancellationToken);
        public override void StopEpoch() => inner.StopEpoch();
        public override Tensor Batch(Batch batch, ScalarType dtype, Device device) => Up(inner.Batch(batch, dtype, device), sample);
        public override Tensor Rows(long start, long count, ScalarType dtype, Device device) => Up(inner.Rows(start, count, dtype, device), false);

        private Tensor Up(Tensor x, bool draw)
        {
            using var _ = torch.no_grad();
            using var scope = torch.NewDisposeScope();
            foreach (var rbm in below)
            {
                x = rbm.prob_h(x);
                if (draw) x = rbm.hidden_units.sample_from_mean(x, generator);
            }
            return x.MoveToOuterDisposeScope();
        }
    }

    private static readonly JsonSerializerOptions RecordJson = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>The training record of a pretraining checkpoint: its identity, the metrics of the layers done and their wall time.</summary>
    private sealed record Record(Dictionary<string, string> Tag, List<List<RbmEpochMetrics>> Layers, double Seconds);

    /// <summary>
    /// What decides the pretrained DBN: layer sizes, label units, options (the seed included), device, and the data by
    /// SHA-256 of shapes, dtypes and contents in order.
    /// </summary>
    private Dictionary<string, string> Tag(Tensor train, Tensor? labels, Tensor? validation, Tensor? validationLabels)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var t in new[] { train, labels, validation, validationLabels })
        {
            if (t is null) { sha.AppendData("none;"u8); continue; }
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes($"{string.Join("x", t.shape)} {t.dtype};"));
            // In blocks of rows: a block's bytes are one span (≤ 2 GiB) and one CPU copy at a time.
            long rows = t.dim() == 0 ? 1 : t.shape[0], rowBytes = Math.Max(1, t.numel() / Math.Max(rows, 1)) * t.element_size();
            long block = Math.Max(1, (64L << 20) / rowBytes);
            for (long start = 0; start < rows; start += block)
            {
                using var scope = torch.NewDisposeScope();
                var part = t.dim() == 0 ? t : t.narrow(0, start, Math.Min(block, rows - start));
                sha.AppendData(part.detach().cpu().contiguous().bytes);
            }
        }
        return new Dictionary<string, string>
        {
            ["layers"] = string.Join("-", _dbn.layer_sizes),
            ["label_units"] = _dbn.n_classes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["pretraining"] = JsonSerializer.Serialize(Options),
            ["device"] = _dbn.device.ToString(),
            ["dtype"] = _dbn.dtype.ToString(),
            ["data"] = $"{train.shape[0]} training rows + {validation?.shape[0] ?? 0} validation rows, SHA-256 {Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant()}",
        };
    }

    /// <summary>What the checkpoint of layer <paramref name="l"/>'s RBM trainer must share with this run: the pretraining's tag and the layer.</summary>
    private Dictionary<string, string> LayerTag(Dictionary<string, string> tag, int l) => new(tag) { ["layer"] = $"{l + 1}/{_dbn.n_layers}" };

    /// <summary>
    /// Writes the run checkpoint (<see cref="RunCheckpoint"/>, kind "pretraining"): the tag as its identity, the record of
    /// the layers done, and the DBN's weights. A checkpoint pair of the earlier format at the same path is removed once
    /// the new file is in place.
    /// </summary>
    private void Save(string path, Dictionary<string, string> tag, List<IReadOnlyList<RbmEpochMetrics>> history, double seconds)
    {
        var record = new LayerRecord(this) { Layers = history.Select(h => h.ToList()).ToList(), Seconds = seconds };
        RunCheckpoint.Save(path, "pretraining", tag, [record, new ModuleState("model", _dbn)]);
        foreach (var old in new[] { Checkpoint.SidecarPath(path), Checkpoint.WeightsPath(path) })
            if (!string.Equals(Path.GetFullPath(old), Path.GetFullPath(path), StringComparison.Ordinal) && File.Exists(old)) File.Delete(old);
    }

    /// <summary>The pretraining run's record in its checkpoint: the metrics of the layers done and their wall time.</summary>
    private sealed class LayerRecord(GreedyPretrainer owner) : IStateful
    {
        public List<List<RbmEpochMetrics>> Layers { get; set; } = new();
        public double Seconds { get; set; }

        public string StateName => "pretraining";

        public void SaveState(StateSection section)
        {
            // NaN metrics (a diverged layer's) must not stop the save: numbers as named literals.
            section.Values["layers"] = JsonSerializer.SerializeToNode(Layers, RecordJson);
            section.Values["seconds"] = Seconds;
        }

        public Action PrepareLoad(StateSection section)
        {
            List<List<RbmEpochMetrics>>? layers;
            try { layers = section.Values["layers"].Deserialize<List<List<RbmEpochMetrics>>>(RecordJson); }
            catch (JsonException e) { throw section.Refuse($"the layers' metrics are unreadable ({e.Message})"); }
            double seconds = section.Value<double>("seconds");
            int n = owner._dbn.n_layers;
            if (layers is null || layers.Count > n || layers.Any(l => l is null || l.Any(m => m is null)))
                throw section.Refuse($"expected the metrics of at most {n} layers, found {(layers is null ? "none" : $"{layers.Count} entries")}");
            return () => (Layers, Seconds) = (layers, seconds);
        }
    }

    /// <summary>
    /// Loads the layers a checkpoint of the earlier format (a <see cref="Checkpoint"/> pair with the record in its sidecar)
    /// holds into the DBN after checking it comes from this run; returns its record.
    /// </summary>
    private Record RestoreEarlierFormat(string path, Dictionary<string, string> tag)
    {
        string files = $"'{Checkpoint.WeightsPath(path)}' and its sidecar '{Checkpoint.SidecarPath(path)}'";
        Record? record;
        try { record = Checkpoint.ReadSidecar(path)["training"].Deserialize<Record>(RecordJson); }
        catch (JsonException e) { throw new CheckpointException($"{files}: expected a pretraining record (tag, per-layer metrics, seconds) in the sidecar, got unreadable JSON ({e.Message}). Delete them to start over.", e); }
        if (record?.Tag is null)
            throw new CheckpointException($"{files}: expected a pretraining record (tag, per-layer metrics, seconds) in the sidecar, found none. Delete them to start over.");
        var differ = FineTuningCheckpoint.Differences(record.Tag, tag);
        if (differ.Count > 0)
            throw new CheckpointException($"{files} hold a DBN pretrained for another run: {string.Join("; ", differ)}. Delete them to start over, or run as before.");
        if (record.Layers is null || record.Layers.Count > _dbn.n_layers || record.Layers.Any(l => l is null))
            throw new CheckpointException($"{files}: expected the metrics of at most {_dbn.n_layers} layers in the record, found {(record.Layers is { } ls ? $"{ls.Count} entries{(ls.Any(l => l is null) ? " (some empty)" : "")}" : "none")}. Delete them to start over.");
        DBN loaded;
        try { loaded = Checkpoint.Load<DBN>(path, _dbn.device); }
        catch (CheckpointException e) { throw new CheckpointException($"{files}: {e.Message} Delete them to start over.", e); }
        using (loaded)
        using (torch.no_grad()) _dbn.load_state_dict(loaded.state_dict());
        return record;
    }

    private Tensor OwnedCopy(Tensor t)
    {
        using var moved = t.to(_dbn.dtype, _dbn.device);
        return moved.clone();
    }

    private static void Replace(ref Tensor t, Tensor next)
    {
        t.Dispose();
        t = next;
    }
}

using TorchBoltzmann.Data;
using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// Greedy layer-wise pretraining of a <see cref="DBM"/> with modified RBMs (Salakhutdinov &amp; Hinton 2009, §3.1;
/// Salakhutdinov &amp; Hinton 2012 for more than two hidden layers), then the DBM built from them.
/// </summary>
/// <remarks>
/// <para><b>Why modified RBMs.</b> In the DBM, hidden layer h_l (0 &lt; l &lt; L) receives input from the layer below
/// AND the layer above, while an RBM of a DBN stack sees only one of them. So each RBM doubles the input that stands in
/// for the missing direction. RBM l couples h_{l−1} (its visible layer) and h_l (its hidden layer) through W_l, with the
/// factors <see cref="RBM.up_scale"/> s↑ and <see cref="RBM.down_scale"/> s↓ (<see cref="InputScales"/>):
/// <code>p(h_l = 1 | h_{l−1}) = σ(c + s↑·W_l h_{l−1}),   p(h_{l−1} = 1 | h_l) = σ(b + s↓·W_lᵀ h_l)</code>
/// <list type="bullet">
/// <item>bottom RBM (v–h_1), L ≥ 2: s↑ = 2, s↓ = 1 — the visible layer copied twice with tied weights, so a data
/// vector gives h_1 the input 2W_1v;</item>
/// <item>top RBM (h_{L−1}–h_L): s↑ = 1, s↓ = 2 — the hidden layer copied twice, so h_{L−1} receives 2W_Lᵀh_L;</item>
/// <item>middle RBMs (L ≥ 3, Salakhutdinov &amp; Hinton 2012): s↑ = s↓ = 1, ordinary RBMs, whose weights are halved
/// when they are composed: in the DBM each of their layers receives input from both sides, so each direction carries
/// half of what the RBM learned to need.</item>
/// </list>
/// Each RBM is trained by <see cref="RbmTrainer"/> (CD/PCD on the free energy F(v) = −bᵀv − Σ_j softplus(c_j + s↑W_j v),
/// the negative chains alternating the two conditionals above), on the previous RBM's up-pass probabilities
/// p(h_l | h_{l−1}) = σ(c + s↑·W_l h_{l−1}) (the doubled input of the bottom RBM included), through
/// <see cref="GreedyPretrainer"/>, which also provides the per-layer checkpoints.</para>
/// <para><b>Composition</b> (<see cref="Compose"/>): W_l^DBM = W_l for the bottom and the top RBM — the 2009 paper
/// uses W_1 and W_2 as learned, the doubling being a property of how each RBM was trained, not of its weights — and
/// W_l^DBM = W_l / 2 for the middle RBMs. Biases: b_0 = the bottom RBM's visible bias, b_L = the top RBM's hidden bias,
/// and for 0 &lt; l &lt; L the average b_l = (c_{l} + b'_{l}) / 2 of RBM l's hidden bias c_l and RBM l+1's visible bias
/// b'_l: averaging the two RBMs' net inputs of h_l, (c_l + 2W_l h_{l−1} + b'_l + 2W_{l+1}ᵀh_{l+1}) / 2 (bottom and top
/// RBMs of a two-layer DBM), gives exactly the DBM's net input W_l h_{l−1} + W_{l+1}ᵀh_{l+1} + b_l.</para>
/// </remarks>
public sealed class DbmPretrainer
{
    private readonly DBM _dbm;

    /// <summary>Creates a pretrainer for <paramref name="dbm"/> (already on its device).</summary>
    /// <param name="dbm">The machine whose weights and biases <see cref="Fit"/> replaces.</param>
    /// <param name="options">The RBMs' training options (<see cref="DbnPretrainingOptions.SampleHiddenInputs"/> false
    /// by default: the next RBM trains on probabilities, as in the paper).</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public DbmPretrainer(DBM dbm, DbnPretrainingOptions? options = null)
    {
        _dbm = dbm ?? throw new ArgumentNullException(nameof(dbm));
        Options = options ?? new DbnPretrainingOptions();
        Options.Validate(dbm.n_hidden_layers);
    }

    /// <summary>The hyperparameters.</summary>
    public DbnPretrainingOptions Options { get; }

    /// <summary>
    /// When set, the RBM stack is saved here after every layer (<see cref="GreedyPretrainer.CheckpointPath"/>), the RBM in
    /// training every <see cref="CheckpointEvery"/> epochs, and a later <see cref="Fit"/> with the same options, machine and
    /// data trains only the epochs left. The caller deletes the file when it is no longer needed.
    /// </summary>
    public string? CheckpointPath { get; init; }

    /// <summary>
    /// Epochs between the checkpoints of the RBM in training when <see cref="CheckpointPath"/> is set (default 1, ≥ 1;
    /// <see cref="GreedyPretrainer.CheckpointEvery"/>, written to <see cref="GreedyPretrainer.LayerCheckpointPath"/>), so
    /// that a run stopped inside a layer continues from its last saved epoch.
    /// </summary>
    public int CheckpointEvery { get; init; } = 1;

    /// <summary>
    /// The factors (s↑, s↓) of RBM <paramref name="layer"/> (0 = bottom) in the pretraining of a DBM with
    /// <paramref name="n_hidden_layers"/> hidden layers: (2, 1) bottom, (1, 2) top, (1, 1) in between.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Fewer than two hidden layers, or a layer outside [0, L).</exception>
    public static (double up, double down) InputScales(int layer, int n_hidden_layers)
    {
        if (n_hidden_layers < 2) throw new ArgumentOutOfRangeException(nameof(n_hidden_layers), n_hidden_layers, "n_hidden_layers: a DBM has at least 2 hidden layers.");
        if (layer < 0 || layer >= n_hidden_layers) throw new ArgumentOutOfRangeException(nameof(layer), layer, $"layer: expected 0 … {n_hidden_layers - 1}.");
        return layer == 0 ? (2.0, 1.0) : layer == n_hidden_layers - 1 ? (1.0, 2.0) : (1.0, 1.0);
    }

    /// <summary>
    /// The RBM stack of a DBM's pretraining, untrained: a tied <see cref="DBN"/> with the machine's layer sizes, visible
    /// unit type, device and dtype, each RBM's <see cref="RBM.up_scale"/> and <see cref="RBM.down_scale"/> set by
    /// <see cref="InputScales"/>, its weights drawn from <paramref name="generator"/>.
    /// </summary>
    public static DBN Stack(DBM dbm, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(dbm);
        var dbn = boltzmann.DBN(dbm.layer_sizes, device: dbm.device, dtype: dbm.dtype, generator: generator, visible_units: dbm.visible_units);
        for (int l = 0; l < dbm.n_hidden_layers; l++)
        {
            var (up, down) = InputScales(l, dbm.n_hidden_layers);
            dbn.layers[l].up_scale = up;
            dbn.layers[l].down_scale = down;
        }
        return dbn;
    }

    /// <summary>
    /// Copies a pretrained stack into <paramref name="dbm"/>: W_l = RBM l's weight, halved for the middle RBMs
    /// (0 &lt; l &lt; L − 1 counting RBMs from 0); b_0 = the bottom RBM's visible bias; b_l = the average of RBM l−1's hidden
    /// bias and RBM l's visible bias for 0 &lt; l &lt; L; b_L = the top RBM's hidden bias (see the class remarks).
    /// </summary>
    /// <exception cref="ArgumentException">The RBMs do not match the machine's layer sizes.</exception>
    public static void Compose(DBM dbm, IReadOnlyList<RBM> rbms)
    {
        ArgumentNullException.ThrowIfNull(dbm);
        ArgumentNullException.ThrowIfNull(rbms);
        int L = dbm.n_hidden_layers;
        if (rbms.Count != L || Enumerable.Range(0, L).Any(l => rbms[l].n_visible != dbm.layer_sizes[l] || rbms[l].n_hidden != dbm.layer_sizes[l + 1]))
            throw new ArgumentException($"rbms: expected {L} RBMs of sizes {string.Join(", ", Enumerable.Range(0, L).Select(l => $"{dbm.layer_sizes[l]}-{dbm.layer_sizes[l + 1]}"))}, got [{string.Join(", ", rbms.Select(r => $"{r.n_visible}-{r.n_hidden}"))}].", nameof(rbms));
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        for (int l = 1; l <= L; l++)
        {
            var w = rbms[l - 1].weight.to(dbm.dtype, dbm.device);
            dbm.weight(l).copy_(l > 1 && l < L ? w.mul(0.5) : w);                              // middle RBMs: W / 2
        }
        dbm.bias(0).copy_(rbms[0].visible_bias.to(dbm.dtype, dbm.device));
        for (int l = 1; l < L; l++)
            dbm.bias(l).copy_(rbms[l - 1].hidden_bias.add(rbms[l].visible_bias).mul(0.5).to(dbm.dtype, dbm.device));   // (c_l + b'_l) / 2
        dbm.bias(L).copy_(rbms[L - 1].hidden_bias.to(dbm.dtype, dbm.device));
    }

    /// <summary>
    /// Trains the modified RBMs bottom-up on <paramref name="train"/> and replaces the machine's weights and biases by
    /// their composition (<see cref="Compose"/>).
    /// </summary>
    /// <param name="train">Training data (N × n_visible, values valid for the visible units).</param>
    /// <param name="validation">Optional held-out data for the per-epoch validation metrics.</param>
    /// <param name="progress">Progress of every layer, Stage "layer l/L".</param>
    /// <param name="cancellationToken">Checked before every batch; the machine is left untouched when cancelled.</param>
    /// <returns>Per RBM, the metrics of every epoch.</returns>
    /// <exception cref="ArgumentException">Bad data shape or values.</exception>
    public IReadOnlyList<IReadOnlyList<RbmEpochMetrics>> Fit(Tensor train, Tensor? validation = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        _dbm.check_visible(train, "training data");
        return Pretrain(p => p.Fit(train, validation: validation, progress: progress, cancellationToken: cancellationToken));
    }

    /// <summary>
    /// Trains the modified RBMs bottom-up from <paramref name="train"/> (a compact uint8 tensor or a file read while
    /// training, <see cref="GreedyPretrainer.FitSource"/>: each layer's input computed batch by batch through the trained
    /// layers below, so the memory stays that of the source) and replaces the machine's weights and biases by their
    /// composition (<see cref="Compose"/>).
    /// </summary>
    /// <param name="train">The training data; the caller keeps and disposes it.</param>
    /// <param name="validation">Optional held-out data for the per-epoch validation metrics.</param>
    /// <param name="progress">Progress of every layer, Stage "layer l/L".</param>
    /// <param name="cancellationToken">Checked before every batch; the machine is left untouched when cancelled.</param>
    /// <returns>Per RBM, the metrics of every epoch.</returns>
    /// <exception cref="ArgumentException">The source's rows do not fit the machine.</exception>
    /// <exception cref="NotSupportedException"><see cref="CheckpointPath"/> is set: pretraining from a source is not checkpointed.</exception>
    public IReadOnlyList<IReadOnlyList<RbmEpochMetrics>> FitSource(BatchSource train, Tensor? validation = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        train.CheckFeatures(_dbm.layer_sizes[0], "training data");
        return Pretrain(p => p.FitSource(train, validation: validation, progress: progress, cancellationToken: cancellationToken));
    }

    /// <summary>The stack of modified RBMs (<see cref="Stack"/>) trained by <paramref name="fit"/>, then composed into the machine.</summary>
    private IReadOnlyList<IReadOnlyList<RbmEpochMetrics>> Pretrain(Func<GreedyPretrainer, IReadOnlyList<IReadOnlyList<RbmEpochMetrics>>> fit)
    {
        using var init = new Generator(Options.Layer.Seed, _dbm.device);
        using var dbn = Stack(_dbm, init);
        var history = fit(new GreedyPretrainer(dbn, Options) { CheckpointPath = CheckpointPath, CheckpointEvery = CheckpointEvery });
        Compose(_dbm, dbn.layers.ToList());
        return history;
    }
}

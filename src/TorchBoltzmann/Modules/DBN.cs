using TorchBoltzmann.Units;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace TorchBoltzmann.Modules;

/// <summary>
/// A deep belief network (Hinton, Osindero &amp; Teh 2006): a stack of <see cref="RBM"/>s h⁰ = v, h¹, …, hᴸ where RBM l
/// models (h^l, h^{l+1}). The lower L − 1 layers form a directed sigmoid belief net pointing down,
/// p(h^l = 1 | h^{l+1}) = σ(b^l + W_lᵀ h^{l+1}), and the top RBM an undirected associative memory.
/// </summary>
/// <remarks>
/// <para>The RBMs are registered submodules (<c>layers.0.weight</c>, <c>layers.0.visible_bias</c>,
/// <c>layers.0.hidden_bias</c>, <c>layers.1.…</c>), so <c>state_dict</c>, <c>to(device)</c> and save/load cover the
/// whole stack.</para>
/// <para><c>forward(v)</c> is the deterministic up-pass of probabilities
/// μ⁰ = v, μ^{l+1} = σ(c_l + W_l μ^l), returning μᴸ; it never samples.</para>
/// <para>Class-conditional DBN (<see cref="n_classes"/> &gt; 0): the top RBM's visible layer is
/// [μ^{L−1} ; y], the penultimate features joined by a one-hot softmax label group y of n_classes units
/// (<see cref="LabelledBernoulliUnits"/>), so it models p(h^{L−1}, y). It classifies by free energy,
/// ŷ = argmin_y F([μ^{L−1} ; e_y]) (equivalently p(y | μ^{L−1}) = softmax_y(−F([μ^{L−1} ; e_y])), exact since Z cancels),
/// and draws digits of a chosen class by clamping y during Gibbs sampling in the top RBM.</para>
/// <para>Untied DBN (<see cref="untie"/>): the up-down algorithm (<see cref="Training.UpDownTrainer"/>) trains the
/// recognition (up) and generative (down) connections of the lower layers apart. The generative ones stay where a tied DBN
/// keeps them, in the RBMs (<c>layers.l.weight</c> W_l and <c>layers.l.visible_bias</c> b_l, used by
/// <see cref="down_pass"/>, <see cref="generate"/> and <see cref="generate_class"/>), and the recognition ones are added as
/// <c>recognition.l.weight</c> R_l and <c>recognition.l.bias</c> r_l (l = 0 … L − 2), used by every up-pass
/// (<see cref="forward"/>, <see cref="features"/>, <see cref="classify"/>, <see cref="ToEncoder"/>). Keeping the generative
/// weights under the old keys means a tied checkpoint's keys are a subset of an untied one's, and the sidecar says
/// <c>"untied": true</c> only for untied DBNs, so checkpoints of tied DBNs load unchanged. The lower RBMs' hidden biases
/// (<c>layers.l.hidden_bias</c>, l &lt; L − 1) take part in neither pass once untied (the generative model of h^{l+1} has
/// its bias in RBM l + 1): they keep their pretrained values, and r_l starts as their copy.</para>
/// <para>Shapes: inputs (B, n_visible) or (n_visible), n_visible = layer_sizes[0].</para>
/// <para>References: Hinton, Osindero &amp; Teh (2006) A fast learning algorithm for deep belief nets; Hinton &amp;
/// Salakhutdinov (2006) Reducing the dimensionality of data with neural networks; Bengio et al. (2007) Greedy
/// layer-wise training of deep networks.</para>
/// </remarks>
public sealed class DBN : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "layers")] private readonly ModuleList<RBM> _layers;
    // Registered (as "recognition") by untie only, so a tied DBN's state_dict has no such keys.
    private ModuleList<RecognitionLayer>? _recognition;
    private readonly int[] _sizes;

    /// <summary>Creates a DBN; see <see cref="boltzmann.DBN"/>.</summary>
    /// <exception cref="ArgumentException">Fewer than two layer sizes.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive, or n_classes is 1 or negative.</exception>
    public DBN(IReadOnlyList<int> layer_sizes, int n_classes = 0, Device? device = null, ScalarType? dtype = null,
               Generator? generator = null) : this(layer_sizes, n_classes, device, dtype, generator, null)
    {
    }

    /// <summary>Creates a DBN whose bottom RBM has the visible unit type <paramref name="visible_units"/>; see <see cref="boltzmann.DBN"/>.</summary>
    /// <exception cref="ArgumentException">Fewer than two layer sizes, or a visible unit type given for a single
    /// class-conditional RBM (whose visible layer is the label-joined one).</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive, or n_classes is 1 or negative.</exception>
    public DBN(IReadOnlyList<int> layer_sizes, int n_classes, Device? device, ScalarType? dtype, Generator? generator,
               UnitType? visible_units) : base(nameof(DBN))
    {
        ArgumentNullException.ThrowIfNull(layer_sizes);
        if (layer_sizes.Count < 2)
            throw new ArgumentException($"layer_sizes: expected at least 2 sizes (visible, hidden…), got {layer_sizes.Count}.", nameof(layer_sizes));
        for (int i = 0; i < layer_sizes.Count; i++)
            if (layer_sizes[i] <= 0)
                throw new ArgumentOutOfRangeException(nameof(layer_sizes), layer_sizes[i], $"layer_sizes[{i}] must be positive.");
        if (n_classes < 0 || n_classes == 1)
            throw new ArgumentOutOfRangeException(nameof(n_classes), n_classes, "n_classes must be 0 (no labels) or at least 2.");
        if (visible_units is not null && n_classes > 0 && layer_sizes.Count == 2)
            throw new ArgumentException($"visible_units: a DBN of one class-conditional RBM has the label-joined visible layer; got {visible_units.Name}.", nameof(visible_units));
        _sizes = layer_sizes.ToArray();
        this.n_classes = n_classes;
        var rbms = new RBM[_sizes.Length - 1];
        for (int l = 0; l < rbms.Length; l++)
        {
            bool top = l == rbms.Length - 1;
            rbms[l] = top && n_classes > 0
                ? new RBM(_sizes[l] + n_classes, _sizes[l + 1], new LabelledBernoulliUnits(n_classes), null, device, dtype, generator)
                : new RBM(_sizes[l], _sizes[l + 1], l == 0 ? visible_units : null, null, device, dtype, generator);
        }
        _layers = new ModuleList<RBM>(rbms);
        RegisterComponents();
    }

    /// <summary>Layer widths [n_visible, n_hidden₁, …, n_hiddenᴸ] (the label units are not included).</summary>
    public IReadOnlyList<int> layer_sizes => _sizes;
    /// <summary>Number of label units joined to the top RBM's visible layer; 0 for an unconditional DBN.</summary>
    public int n_classes { get; }
    /// <summary>True when the top RBM has a softmax label group.</summary>
    public bool is_class_conditional => n_classes > 0;
    /// <summary>Number of RBMs L.</summary>
    public int n_layers => _sizes.Length - 1;
    /// <summary>The RBMs, bottom first.</summary>
    public ModuleList<RBM> layers => _layers;
    /// <summary>The top RBM (visible = [features ; labels] in a class-conditional DBN).</summary>
    public RBM top => _layers[_layers.Count - 1];
    /// <summary>Input width, layer_sizes[0].</summary>
    public int n_visible => _sizes[0];
    /// <summary>Width of the top hidden layer.</summary>
    public int n_hidden => _sizes[^1];
    /// <summary>Width of the top RBM's feature input, layer_sizes[L − 1] (without labels).</summary>
    public int n_features => _sizes[^2];
    /// <summary>Number of RBMs below the label-joined top (L − 1 when class-conditional, else L): the feature layers.</summary>
    public int n_feature_layers => is_class_conditional ? n_layers - 1 : n_layers;
    /// <summary>The device of the parameters.</summary>
    public Device device => _layers[0].device;
    /// <summary>The element type of the parameters.</summary>
    public ScalarType dtype => _layers[0].dtype;

    /// <summary>When true (default), public methods check input values (range, NaN), not only their shape.</summary>
    public bool validate_values { get; set; } = true;

    // ---------------------------------------------------------------- untying

    /// <summary>Whether the lower layers have recognition weights of their own (<see cref="untie"/>).</summary>
    public bool is_untied => _recognition is not null;

    /// <summary>The recognition layers R_l, r_l of the lower L − 1 layers, bottom first; null while the DBN is tied.</summary>
    public ModuleList<RecognitionLayer>? recognition => _recognition;

    /// <summary>
    /// Unties the recognition and generative weights of the L − 1 layers below the top RBM: adds recognition layers
    /// (<c>recognition.l.weight</c> = W_l, <c>recognition.l.bias</c> = c_l, exact copies) and from then on every up-pass
    /// uses q(h^{l+1} = 1 | h^l) = σ(R_l h^l + r_l) while the down-pass keeps p(h^l = 1 | h^{l+1}) = σ(b_l + W_lᵀ h^{l+1}).
    /// Nothing changes at untying: both passes compute what they computed before. Draws no random numbers.
    /// </summary>
    /// <exception cref="InvalidOperationException">The DBN is untied already, or has a single RBM (nothing below the top).</exception>
    public void untie()
    {
        if (is_untied) throw new InvalidOperationException("untie: the DBN is untied already.");
        if (n_layers < 2) throw new InvalidOperationException("untie: a DBN of one RBM has no layers below its top associative memory.");
        var rec = new RecognitionLayer[n_layers - 1];
        for (int l = 0; l < rec.Length; l++) rec[l] = new RecognitionLayer(_layers[l].weight, _layers[l].hidden_bias);
        _recognition = new ModuleList<RecognitionLayer>(rec);
        register_module("recognition", _recognition);
    }

    /// <summary>q(h^{l+1} = 1 | x) of the up-pass through layer <paramref name="l"/>: σ(R_l x + r_l) when untied and
    /// below the top, σ(W_l x + c_l) otherwise.</summary>
    private Tensor UpProb(int l, Tensor x) => _recognition is not null && l < _recognition.Count ? _recognition[l].forward(x) : _layers[l].prob_h(x);

    /// <summary>
    /// Deterministic up-pass μ^{l+1} = σ(c_l + W_l μ^l) from μ⁰ = v (σ(r_l + R_l μ^l) below the top once untied), returning the top hidden probabilities μᴸ,
    /// shape (B, n_hidden). In a class-conditional DBN the label units of the top RBM are set to the uniform mean-field
    /// value 1/n_classes: μᴸ = σ(c + W [μ^{L−1} ; 1/C]).
    /// </summary>
    /// <exception cref="ArgumentException">Wrong shape, dtype or values (the message names expected and got).</exception>
    public override Tensor forward(Tensor v)
    {
        check_input(v, "DBN input");
        using var scope = torch.NewDisposeScope();
        var f = up_pass_unchecked(v, n_feature_layers);
        if (!is_class_conditional) return f.MoveToOuterDisposeScope();
        var shape = f.shape.ToArray();
        shape[^1] = n_classes;
        var u = torch.full(shape, 1.0 / n_classes, dtype: f.dtype, device: f.device);
        return top.prob_h(torch.cat(new[] { f, u }, -1)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The up-pass through the first <paramref name="n"/> RBMs: μ⁰ = v, μ^{l+1} = σ(c_l + W_l μ^l), returning μⁿ
    /// (n = 0 returns a copy of v). n ≤ <see cref="n_feature_layers"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">n is outside [0, n_feature_layers].</exception>
    public Tensor up_pass(Tensor v, int n)
    {
        if (n < 0 || n > n_feature_layers)
            throw new ArgumentOutOfRangeException(nameof(n), n, $"n must be in [0, {n_feature_layers}].");
        check_input(v, "DBN input");
        return up_pass_unchecked(v, n);
    }

    /// <summary>The penultimate features μ^{L−1} of a class-conditional DBN (the top RBM's non-label input), or μᴸ otherwise.</summary>
    public Tensor features(Tensor v) => up_pass(v, n_feature_layers);

    private Tensor up_pass_unchecked(Tensor v, int n)
    {
        // n = 0 returns a copy: .to() alone hands back v's own storage when dtype and device already match.
        var x = v.to(dtype, device, copy: n == 0);
        for (int l = 0; l < n; l++)
        {
            var next = UpProb(l, x);
            x.Dispose();
            x = next;
        }
        return x;
    }

    /// <summary>
    /// The training input of RBM <paramref name="layer"/> as greedy pretraining computes it: x⁰ = v and
    /// x^{l+1} = p(h | x^l) under RBM l (q(h | x^l) = σ(R_l x^l + r_l) once untied; or a sample of it when <paramref name="sample"/>), computed in batches of
    /// <paramref name="batch_size"/> under no_grad on the model's device; for the top RBM of a class-conditional DBN the
    /// one-hot labels are appended: [x^{L−1} ; e_y].
    /// </summary>
    /// <param name="v">Data, (N, n_visible).</param>
    /// <param name="layer">Zero-based RBM index.</param>
    /// <param name="labels">Class labels (int64, N), required for the top RBM of a class-conditional DBN.</param>
    /// <param name="sample">Propagate binary samples instead of probabilities.</param>
    /// <param name="generator">Random generator for <paramref name="sample"/>.</param>
    /// <param name="batch_size">Rows per batch.</param>
    /// <returns>(N, layers[layer].n_visible) on the model's device.</returns>
    public Tensor layer_input(Tensor v, int layer, Tensor? labels = null, bool sample = false, Generator? generator = null, int batch_size = 1000)
    {
        if (layer < 0 || layer >= n_layers) throw new ArgumentOutOfRangeException(nameof(layer), layer, $"layer must be in [0, {n_layers - 1}].");
        check_input(v, "DBN input");
        if (v.dim() != 2) throw new ArgumentException($"DBN input: expected shape (N, {n_visible}), got ({string.Join(", ", v.shape)}).");
        Tensor x;
        using (var moved = v.to(dtype, device)) x = moved.clone();
        for (int l = 0; l < layer; l++)
        {
            var next = _recognition is not null && l < _recognition.Count
                ? PropagateUp(_recognition[l].forward, _layers[l].hidden_units, _layers[l].n_hidden, x, sample, generator, batch_size)
                : PropagateUp(_layers[l], x, sample, generator, batch_size);
            x.Dispose();
            x = next;
        }
        if (layer == n_layers - 1 && is_class_conditional)
        {
            if (labels is null) throw new ArgumentException("labels: the top RBM of a class-conditional DBN needs labels.", nameof(labels));
            using (x) return JoinLabels(x, labels);
        }
        return x;
    }

    /// <summary>
    /// p(h | x) of <paramref name="rbm"/> for every row of <paramref name="x"/> (or a binary sample of it), computed in
    /// batches under no_grad into one preallocated (N, n_hidden) tensor: the next layer's input in greedy pretraining.
    /// </summary>
    internal static Tensor PropagateUp(RBM rbm, Tensor x, bool sample, Generator? generator, int batchSize)
        => PropagateUp(v => rbm.prob_h(v), rbm.hidden_units, rbm.n_hidden, x, sample, generator, batchSize);

    /// <summary><paramref name="prob"/>(x) row batch by row batch (or a sample of it from <paramref name="units"/>) into one (N, width) tensor.</summary>
    private static Tensor PropagateUp(Func<Tensor, Tensor> prob, UnitType units, long width, Tensor x, bool sample, Generator? generator, int batchSize)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive.");
        using var _ = torch.no_grad();
        long n = x.shape[0];
        var result = torch.empty(n, width, dtype: x.dtype, device: x.device);
        for (long s = 0; s < n; s += batchSize)
        {
            using var scope = torch.NewDisposeScope();
            long b = Math.Min(batchSize, n - s);
            var p = prob(x.narrow(0, s, b));
            if (sample) p = units.sample_from_mean(p, generator);
            result.narrow(0, s, b).copy_(p);
        }
        return result;
    }

    /// <summary>[x ; one_hot(labels)], (N, width + n_classes).</summary>
    internal Tensor JoinLabels(Tensor x, Tensor labels)
    {
        CheckLabels(labels, x.shape[0], nameof(labels));   // shape and range, so the encoding below need not check again
        using var l = labels.to(ScalarType.Int64, device);
        using var oh = Encode(l, n_classes, dtype);
        return torch.cat(new[] { x, oh }, 1);
    }

    /// <summary>
    /// Labels for <paramref name="rows"/> examples: shape (rows), class indices y ∈ [0, n_classes) — the one label
    /// check of the class-conditional DBN (joining, pretraining), naming <paramref name="what"/>.
    /// </summary>
    internal void CheckLabels(Tensor labels, long rows, string what)
    {
        if (labels.dim() != 1 || labels.shape[0] != rows)
            throw new ArgumentException($"{what}: expected shape ({rows}), one label per example, got ({string.Join(", ", labels.shape)}).", what);
        Checks.ClassRange(labels, n_classes, what);
    }

    /// <summary>One-hot rows e_y, (N, n_classes), for int64 labels y ∈ [0, n_classes).</summary>
    /// <exception cref="ArgumentException">A label is outside [0, n_classes).</exception>
    public static Tensor one_hot(Tensor labels, int n_classes, ScalarType dtype, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(labels);
        using var l = labels.to(ScalarType.Int64, device ?? labels.device);
        Checks.ClassRange(l, n_classes, nameof(labels));
        return Encode(l, n_classes, dtype);
    }

    /// <summary>e_y as <paramref name="dtype"/> for int64 labels already known to lie in [0, n_classes).</summary>
    private static Tensor Encode(Tensor labels64, int n_classes, ScalarType dtype)
    {
        using var oh = nn.functional.one_hot(labels64, n_classes);
        return oh.to_type(dtype);
    }

    // ---------------------------------------------------------------- generation

    /// <summary>
    /// Draws n samples: <paramref name="burn_in"/> steps of block Gibbs sampling in the top RBM at temperature T from
    /// random states (<see cref="sample_top"/>), then a deterministic down-pass of probabilities through the lower
    /// layers (<see cref="down_pass"/>), μ^{l} = σ(b_l + W_lᵀ μ^{l+1}) from μ^{L−1} = p(h^{L−1} | hᴸ) of the last Gibbs
    /// step, down to μ⁰. In a class-conditional DBN the label group is clamped to <paramref name="labels"/> during
    /// sampling (or sampled freely from its softmax when null).
    /// </summary>
    /// <param name="n">Number of samples.</param>
    /// <param name="burn_in">Gibbs steps in the top RBM (≥ 1 used).</param>
    /// <param name="labels">Classes to clamp, int64 (n) or (1) broadcast to n; only for class-conditional DBNs.</param>
    /// <param name="temperature">Temperature of the top-level Gibbs chain.</param>
    /// <param name="generator">Random generator.</param>
    /// <returns>Visible probabilities, (n, n_visible).</returns>
    /// <exception cref="ArgumentException">Labels given to an unconditional DBN, or of the wrong shape or range.</exception>
    public Tensor generate(int n, int burn_in = 1000, Tensor? labels = null, double temperature = 1.0, Generator? generator = null)
    {
        using var topState = sample_top(n, burn_in, labels, temperature, generator);
        using var f = topState.narrow(1, 0, n_features);
        return down_pass(f);
    }

    /// <summary>
    /// Block Gibbs sampling in the top RBM: from random visible states (binary features with p = 0.5, a uniformly
    /// drawn label), <paramref name="burn_in"/> steps v → h ~ p(h | v) → v ~ p(v | h), the label group clamped to
    /// e_y when <paramref name="labels"/> is given (softmax-sampled otherwise). Returns the top RBM's visible state
    /// after the last step as [p(features | h) ; label], (n, top.n_visible): feature probabilities and the one-hot label.
    /// </summary>
    /// <inheritdoc cref="generate(int, int, Tensor?, double, Generator?)"/>
    public Tensor sample_top(int n, int burn_in = 1000, Tensor? labels = null, double temperature = 1.0, Generator? generator = null)
    {
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(n), n, "n must be at least 1.");
        if (burn_in < 0) throw new ArgumentOutOfRangeException(nameof(burn_in), burn_in, "burn_in must be non-negative.");
        Checks.Temperature(temperature);
        if (labels is not null && !is_class_conditional)
            throw new ArgumentException("labels: this DBN has no label units (n_classes = 0).", nameof(labels));
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var t = top;
        int c = n_classes, nf = t.n_visible - c;
        using var chains = new Sampling.GibbsChains(t, generator, temperature);
        if (labels is not null)
        {
            if (labels.dim() != 1 || (labels.shape[0] != n && labels.shape[0] != 1))
                throw new ArgumentException($"labels: expected shape ({n}) or (1), got ({string.Join(", ", labels.shape)}).", nameof(labels));
            chains.clamp(nf, one_hot(labels, c, dtype, device));
        }
        chains.start_random(n);   // features with p = 0.5, a uniformly drawn label (the top RBM's unit type)
        int steps = Math.Max(1, burn_in);
        for (int s = 0; s < steps; s++) chains.step();
        var result = chains.visible_mean!.clone();
        if (c > 0) result.narrow(1, nf, c).copy_(chains.visible.narrow(1, nf, c));
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Draws n samples of class <paramref name="label"/> (class-conditional DBNs): <c>generate(n, burn_in, labels: [label])</c>,
    /// see <see cref="generate(int, int, Tensor?, double, Generator?)"/>. A name of its own, because an overload
    /// <c>generate(int n, int label)</c> would collide with <c>generate(n, burn_in)</c>, whose second positional
    /// <c>int</c> is the burn-in as in <see cref="RBM.generate"/>.
    /// </summary>
    public Tensor generate_class(int n, int label, int burn_in = 1000, double temperature = 1.0, Generator? generator = null)
    {
        using var l = torch.tensor(new long[] { label });
        return generate(n, burn_in, l, temperature, generator);
    }

    /// <summary>
    /// Deterministic down-pass from the top RBM's feature input μ^{L−1} (B, n_features) to the visible layer:
    /// μ^{l} = σ(b_l + W_lᵀ μ^{l+1}), l = L − 2, …, 0. Returns (B, n_visible).
    /// </summary>
    public Tensor down_pass(Tensor top_features)
    {
        Checks.Width(top_features, n_features, "down_pass input");
        using var _ = torch.no_grad();
        var x = top_features.to(dtype, device);
        for (int l = n_layers - 2; l >= 0; l--)
        {
            var next = _layers[l].prob_v(x);
            x.Dispose();
            x = next;
        }
        return x;
    }

    // ---------------------------------------------------------------- classification by free energy

    /// <summary>
    /// F_y(v) = F([μ^{L−1}(v) ; e_y]) of the top RBM for every class y: exactly n_classes free-energy evaluations per
    /// input, batched, without autograd. For Bernoulli hidden units
    /// F([x ; e_y]) = −b_xᵀx − b_y − Σ_j softplus(c_j + W_{j,x} x + W_{j,y}).
    /// </summary>
    /// <param name="v">Inputs, (B, n_visible).</param>
    /// <param name="batch_size">Inputs per batch (each expands to n_classes rows).</param>
    /// <returns>Free energies, (B, n_classes).</returns>
    /// <exception cref="InvalidOperationException">The DBN is not class-conditional.</exception>
    public Tensor free_energy_per_class(Tensor v, int batch_size = 1000)
    {
        if (!is_class_conditional) throw new InvalidOperationException("free_energy_per_class needs a class-conditional DBN (n_classes > 0).");
        if (batch_size < 1) throw new ArgumentOutOfRangeException(nameof(batch_size), batch_size, "batch_size must be positive.");
        check_input(v, "DBN input");
        if (v.dim() != 2) throw new ArgumentException($"DBN input: expected shape (B, {n_visible}), got ({string.Join(", ", v.shape)}).");
        using var _ = torch.no_grad();
        long n = v.shape[0];
        int c = n_classes, nf = n_features;
        var result = torch.empty(n, c, dtype: dtype, device: device);
        using var eye = torch.eye(c, dtype: dtype, device: device);
        for (long s = 0; s < n; s += batch_size)
        {
            using var scope = torch.NewDisposeScope();
            long b = Math.Min(batch_size, n - s);
            var f = up_pass_unchecked(v.narrow(0, s, b), n_feature_layers);
            var joined = torch.cat(new[] { f.unsqueeze(1).expand(b, c, nf), eye.unsqueeze(0).expand(b, c, c) }, -1).reshape(b * c, nf + c);
            result.narrow(0, s, b).copy_(top.free_energy_unchecked(joined).reshape(b, c));
        }
        return result;
    }

    /// <summary>log p(y | v) = log_softmax_y(−F_y(v)), (B, n_classes): exact, since the partition function cancels.</summary>
    public Tensor class_log_probs(Tensor v, int batch_size = 1000)
    {
        using var f = free_energy_per_class(v, batch_size);
        using var nf = f.neg();
        return nf.log_softmax(-1);
    }

    /// <summary>ŷ = argmin_y F([μ^{L−1}(v) ; e_y]), int64 (B).</summary>
    public Tensor classify(Tensor v, int batch_size = 1000)
    {
        using var f = free_energy_per_class(v, batch_size);
        return f.argmin(-1);
    }

    // ---------------------------------------------------------------- embedding

    /// <summary>
    /// The feature layers as a plain <c>Sequential</c> encoder: for l = 1 … n_feature_layers a <c>Linear</c> named
    /// <c>fc{l}</c> with weight = W_l (n_hidden × n_visible, the same layout) and bias = c_l (R_l and r_l below the top of
    /// an untied DBN: the recognition weights), COPIED (later changes to
    /// either model do not affect the other), followed by <c>Sigmoid</c> named <c>sigmoid{l}</c>. Its output equals
    /// <see cref="features"/> (and <see cref="forward"/> for an unconditional DBN).
    /// </summary>
    /// <exception cref="InvalidOperationException">A class-conditional DBN with a single RBM has no feature layers.</exception>
    public Sequential ToEncoder()
    {
        if (n_feature_layers == 0)
            throw new InvalidOperationException("ToEncoder: this class-conditional DBN has no layers below its labelled top RBM.");
        var modules = new List<(string, nn.Module<Tensor, Tensor>)>();
        for (int l = 0; l < n_feature_layers; l++)
        {
            modules.Add(($"fc{l + 1}", _recognition is not null && l < _recognition.Count ? RecognitionLinear(_recognition[l]) : _layers[l].ToLinear()));
            modules.Add(($"sigmoid{l + 1}", nn.Sigmoid()));
        }
        return nn.Sequential(modules);
    }

    private static Linear RecognitionLinear(RecognitionLayer r)
    {
        var linear = nn.Linear(r.n_in, r.n_out, hasBias: true, device: r.weight.device, dtype: r.weight.dtype);
        using var _ = torch.no_grad();
        linear.weight!.copy_(r.weight);
        linear.bias!.copy_(r.bias);
        return linear;
    }

    // ---------------------------------------------------------------- validation

    /// <summary>
    /// Checks an input: rank 1 or 2, last dimension n_visible, floating point and (when <see cref="validate_values"/>)
    /// values in [0, 1] without NaN; throws <see cref="ArgumentException"/> naming what was expected and what came.
    /// </summary>
    public void check_input(Tensor v, string what = "DBN input")
    {
        Checks.Width(v, n_visible, what);
        if (validate_values) _layers[0].visible_units.check_values(v, what);
    }

    /// <summary>The architecture, PyTorch <c>extra_repr</c> style.</summary>
    public override string ToString()
        => $"DBN(layer_sizes=[{string.Join(", ", _sizes)}], n_classes={n_classes}{(is_untied ? ", untied=True" : "")})";
}

using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Modules;

/// <summary>
/// Builds an ordinary TorchSharp classifier (a <c>Sequential</c>) from a pretrained <see cref="DBN"/>:
/// <code>[dropout_in] → fc1 → sigmoid1 → [dropout1] → … → fcK → sigmoidK → [dropoutK] → out</code>
/// with fc_l = <c>Linear</c>(W_l, c_l) COPIED from RBM l (weight (n_hidden, n_visible) is already the <c>nn.Linear</c>
/// layout; bias = hidden bias), so the network computes the DBN's up-pass, and out = <c>Linear</c>(n_top, n_classes)
/// initialised N(0, 0.01²) with zero bias, producing logits z; p(y | x) = softmax(z)_y.
/// </summary>
/// <remarks>
/// <para>For a class-conditional DBN (Hinton, Osindero &amp; Teh 2006) the labelled top RBM contributes its feature
/// columns by default: fc_L = Linear(W_L[:, :n_features], c_L), the top RBM's up-pass with the label units off, so the
/// classifier is n_in–…–n_L–n_classes as in Hinton &amp; Salakhutdinov (2006); with <c>include_labelled_top: false</c> only
/// the layers below it are used (K = L − 1).</para>
/// <para>Dropout (Srivastava et al. 2014): <see cref="FastDropout"/> (<c>nn.Dropout</c>'s distribution with cheaper masks)
/// on the inputs (p = 0.2 recommended) and after every hidden layer (p = 0.5); it is inverted (kept units scaled by
/// 1/(1 − p) during training), so nothing changes at test time — call <c>eval()</c>. A dropout of 0 omits the module.
/// Learning rates from papers whose dropout is not inverted (Hinton et al. 2012, Srivastava et al. 2014) mean η q² on
/// the weights behind dropout here: fine-tune with <see cref="Training.DropoutConvention.NonInverted"/> to use them as given.</para>
/// <para>The state_dict keys are <c>fc1.weight</c>, <c>fc1.bias</c>, …, <c>out.weight</c>, <c>out.bias</c>: a model
/// saved with <c>module.save</c> loads into one built by <see cref="Build(IReadOnlyList{int}, int, double, double, Device?, ScalarType?, Generator?)"/>
/// from the same sizes, or use <see cref="IO.Checkpoint"/> (Sequential is registered).</para>
/// </remarks>
public static class DbnClassifier
{
    /// <summary>Builds the classifier from a DBN, copying its weights (later training does not change the DBN); the layers
    /// below the top of an untied DBN (<see cref="DBN.untie"/>) get its recognition weights, those of its up-pass.</summary>
    /// <param name="dbn">The pretrained DBN.</param>
    /// <param name="n_classes">Output classes.</param>
    /// <param name="input_dropout">Dropout probability on the inputs (0 = none).</param>
    /// <param name="hidden_dropout">Dropout probability after each hidden layer (0 = none).</param>
    /// <param name="generator">Generator for the output layer's initial weights.</param>
    /// <param name="include_labelled_top">For a class-conditional DBN: also use the top RBM's feature columns as the last hidden layer.</param>
    /// <exception cref="InvalidOperationException">No layer would be used (a one-RBM class-conditional DBN without its top).</exception>
    public static Sequential Build(DBN dbn, int n_classes = 10, double input_dropout = 0, double hidden_dropout = 0, Generator? generator = null,
                                   bool include_labelled_top = true)
    {
        ArgumentNullException.ThrowIfNull(dbn);
        int used = dbn.is_class_conditional && include_labelled_top ? dbn.n_layers : dbn.n_feature_layers;
        if (used == 0)
            throw new InvalidOperationException("DbnClassifier: this class-conditional DBN has no layers below its labelled top RBM.");
        var sizes = dbn.layer_sizes.Take(used + 1).ToArray();
        var model = Build(sizes, n_classes, input_dropout, hidden_dropout, dbn.device, dbn.dtype, generator);
        var linears = model.named_children().Where(c => c.name.StartsWith("fc", StringComparison.Ordinal)).Select(c => (Linear)c.module).ToList();
        for (int l = 0; l < linears.Count; l++)
        {
            var rbm = dbn.layers[l];
            if (dbn.recognition is { } rec && l < rec.Count)
            {
                // An untied DBN's up-pass: its recognition weights R_l, r_l, not the generative W_l.
                using var noGrad = torch.no_grad();
                linears[l].weight!.copy_(rec[l].weight);
                linears[l].bias!.copy_(rec[l].bias);
                continue;
            }
            if (l < dbn.n_feature_layers) { rbm.CopyInto(linears[l]); continue; }
            // The labelled top RBM: its weight is (n_hidden, n_features + n_classes); keep the feature columns.
            using var _ = torch.no_grad();
            using var w = rbm.weight.narrow(1, 0, dbn.n_features);
            linears[l].weight!.copy_(w);
            linears[l].bias!.copy_(rbm.hidden_bias);
        }
        return model;
    }

    /// <summary>Dropout probabilities must lie in [0, 1) (NaN included in the refusal: it would silently mean no dropout).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A probability is NaN or outside [0, 1).</exception>
    public static void CheckDropout(double input_dropout, double hidden_dropout)
    {
        if (!(input_dropout >= 0 && input_dropout < 1)) throw new ArgumentOutOfRangeException(nameof(input_dropout), input_dropout, "input_dropout must be in [0, 1).");
        if (!(hidden_dropout >= 0 && hidden_dropout < 1)) throw new ArgumentOutOfRangeException(nameof(hidden_dropout), hidden_dropout, "hidden_dropout must be in [0, 1).");
    }

    /// <summary>
    /// Builds the same architecture from layer sizes [n_in, n_1, …, n_K] with freshly initialised hidden layers
    /// (nn.Linear's default initialisation): the target for loading a saved classifier, or a baseline without pretraining.
    /// </summary>
    public static Sequential Build(IReadOnlyList<int> layer_sizes, int n_classes = 10, double input_dropout = 0, double hidden_dropout = 0,
                                   Device? device = null, ScalarType? dtype = null, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(layer_sizes);
        if (layer_sizes.Count < 1 || layer_sizes.Any(s => s <= 0))
            throw new ArgumentException($"layer_sizes: expected positive sizes, got [{string.Join(", ", layer_sizes)}].", nameof(layer_sizes));
        if (n_classes < 2) throw new ArgumentOutOfRangeException(nameof(n_classes), n_classes, "n_classes must be at least 2.");
        CheckDropout(input_dropout, hidden_dropout);
        var dt = dtype ?? get_default_dtype();
        var modules = new List<(string, nn.Module<Tensor, Tensor>)>();
        if (input_dropout > 0) modules.Add(("dropout_in", new FastDropout(input_dropout)));
        for (int l = 1; l < layer_sizes.Count; l++)
        {
            modules.Add(($"fc{l}", nn.Linear(layer_sizes[l - 1], layer_sizes[l], hasBias: true, device: device, dtype: dt)));
            modules.Add(($"sigmoid{l}", nn.Sigmoid()));
            if (hidden_dropout > 0) modules.Add(($"dropout{l}", new FastDropout(hidden_dropout)));
        }
        var output = nn.Linear(layer_sizes[^1], n_classes, hasBias: true, device: device, dtype: dt);
        using (torch.no_grad())
        {
            output.weight!.normal_(0, 0.01, generator);
            output.bias!.zero_();
        }
        modules.Add(("out", output));
        return nn.Sequential(modules);
    }
}

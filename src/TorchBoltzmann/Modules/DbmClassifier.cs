using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Modules;

/// <summary>
/// The classifier a <see cref="DBM"/> initialises (Salakhutdinov &amp; Hinton 2009, §5): an ordinary <c>Sequential</c> whose
/// input is the visible vector joined to the mean-field marginals of the second hidden layer, x = [v ; μ_2(v)]
/// (<see cref="Features"/>), so that its first layer computes what the DBM's mean-field update of h_1 computes:
/// <code>fc1(x) = σ(b_1 + W_1 v + W_2ᵀ μ_2) → fc2 = σ(b_2 + W_2 ·) → … → fcL = σ(b_L + W_L ·) → out (logits)</code>
/// fc1's weight is [W_1 | W_2ᵀ] (n_1, n_v + n_2), fc_l's is W_l for l ≥ 2 (copied, so training the classifier leaves the
/// DBM unchanged), and out = <c>Linear</c>(n_L, n_classes) starts from N(0, 0.01²) with zero bias. For two hidden layers
/// this is the paper's network; for deeper machines the layers above the first get only their bottom-up input (the
/// top-down input from μ_{l+1} is left out).
/// </summary>
/// <remarks>
/// The features are computed once per example, before training (the paper keeps them fixed during fine-tuning); train
/// the network with <see cref="Training.FineTuner"/> on <c>Features(dbm, x)</c> like any classifier. The state_dict keys
/// are <c>fc1.weight</c>, …, <c>out.bias</c> (the <see cref="DbnClassifier"/> layout), so <see cref="IO.Checkpoint"/>
/// saves it as a "Sequential".
/// </remarks>
public static class DbmClassifier
{
    /// <summary>Builds the network from a DBM (weights copied; layout in the class summary).</summary>
    /// <param name="dbm">The trained DBM.</param>
    /// <param name="n_classes">Output classes (≥ 2).</param>
    /// <param name="input_dropout">Dropout on the input [v ; μ_2] (0 = none).</param>
    /// <param name="hidden_dropout">Dropout after each hidden layer (0 = none).</param>
    /// <param name="generator">Generator for the output layer's initial weights.</param>
    public static Sequential Build(DBM dbm, int n_classes = 10, double input_dropout = 0, double hidden_dropout = 0, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(dbm);
        var s = dbm.layer_sizes;
        var sizes = new[] { s[0] + s[2] }.Concat(s.Skip(1)).ToArray();   // [n_v + n_2, n_1, …, n_L]
        var model = DbnClassifier.Build(sizes, n_classes, input_dropout, hidden_dropout, dbm.device, dbm.dtype, generator);
        var linears = model.named_children().Where(c => c.name.StartsWith("fc", StringComparison.Ordinal)).Select(c => (Linear)c.module).ToList();
        using var _ = torch.no_grad();
        using (var w2t = dbm.weight(2).t())
        using (var w = torch.cat(new Tensor[] { dbm.weight(1), w2t }, 1))
            linears[0].weight!.copy_(w);                                   // [W_1 | W_2ᵀ]
        linears[0].bias!.copy_(dbm.bias(1));
        for (int l = 2; l <= dbm.n_hidden_layers; l++)
        {
            linears[l - 1].weight!.copy_(dbm.weight(l));
            linears[l - 1].bias!.copy_(dbm.bias(l));
        }
        return model;
    }

    /// <summary>
    /// The classifier's input x = [v ; μ_2(v)]: v joined to the second hidden layer's mean-field marginals
    /// (<see cref="DBM.mean_field"/>), in batches of <paramref name="batch_size"/> rows. Without autograd.
    /// </summary>
    /// <param name="dbm">The DBM.</param>
    /// <param name="v">Visible rows, (N, n_visible).</param>
    /// <param name="max_iterations">Cap on mean-field sweeps.</param>
    /// <param name="tolerance">Mean-field tolerance.</param>
    /// <param name="batch_size">Rows per batch.</param>
    /// <returns>(N, n_visible + n_2), the model's dtype and device.</returns>
    public static Tensor Features(DBM dbm, Tensor v, int max_iterations = DBM.DefaultMeanFieldIterations, double tolerance = DBM.DefaultMeanFieldTolerance,
                                  int batch_size = 1000)
    {
        ArgumentNullException.ThrowIfNull(dbm);
        dbm.check_visible(v, "features input");
        Checks.Rows(v, dbm.n_visible, "features input");
        if (batch_size < 1) throw new ArgumentOutOfRangeException(nameof(batch_size), batch_size, "batch_size: expected at least 1.");
        using var _ = torch.no_grad();
        var parts = new List<Tensor>();
        try
        {
            for (long start = 0; start < v.shape[0]; start += batch_size)
            {
                using var scope = torch.NewDisposeScope();
                var rows = v.narrow(0, start, Math.Min(batch_size, v.shape[0] - start)).to(dbm.dtype, dbm.device);
                using var mf = dbm.mean_field(rows, 1.0, max_iterations, tolerance);
                parts.Add(torch.cat(new[] { rows, mf.means[1] }, 1).MoveToOuterDisposeScope());
            }
            return torch.cat(parts, 0);
        }
        finally { foreach (var p in parts) p.Dispose(); }
    }
}

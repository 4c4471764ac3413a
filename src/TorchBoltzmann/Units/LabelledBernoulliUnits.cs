using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Units;

/// <summary>
/// A visible layer [x ; y] of n_features binary units x followed by one softmax group y of n_classes one-hot label units
/// (Hinton, Osindero &amp; Teh 2006): the top RBM of a class-conditional <see cref="Modules.DBN"/>.
/// </summary>
/// <remarks>
/// <para>Self-energy E_self([x; y]; a) = −aᵀ[x; y] (linear in the bias, as for Bernoulli units), so the RBM's free energy
/// F([x; y]) = −bᵀ[x; y] − Σ_j softplus(c_j + W_j [x; y]) and the direct CD gradients are unchanged.</para>
/// <para>Conditionals given net inputs η = [η_x ; η_y]: p(x_i = 1 | η) = σ(η_i / T) independently, and
/// p(y = e_k | η) = softmax(η_y / T)_k for the label group, which is sampled as exactly one active unit.</para>
/// <para>Only states with exactly one active label unit are valid, so <see cref="discrete_values"/> is null and exact
/// enumeration refuses this layer.</para>
/// </remarks>
public sealed class LabelledBernoulliUnits : UnitType
{
    /// <summary>Creates the unit type for a label group of <paramref name="n_classes"/> units at the end of the layer.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="n_classes"/> is less than 2.</exception>
    public LabelledBernoulliUnits(int n_classes)
    {
        if (n_classes < 2) throw new ArgumentOutOfRangeException(nameof(n_classes), n_classes, "n_classes must be at least 2.");
        this.n_classes = n_classes;
    }

    /// <summary>Size of the softmax label group (the last n_classes units of the layer).</summary>
    public int n_classes { get; }

    /// <inheritdoc />
    public override string Name => $"Bernoulli+Softmax({n_classes})";

    /// <summary>E_self(v; a) = −a·v, elementwise.</summary>
    public override Tensor self_energy(Tensor x, Tensor bias) => x.mul(bias).neg_();

    /// <summary>
    /// Per-unit log-partition at β: softplus(βη_i) for the binary units; for the label group its log Σ_k e^{βη_k} is
    /// placed in the group's first column and zeros in the others, so the row sum is the layer's log-partition.
    /// </summary>
    public override Tensor log_partition(Tensor net, Tensor bias, double beta = 1.0)
    {
        CheckBeta(beta);
        using var scope = torch.NewDisposeScope();
        var (f, l) = Split(beta == 1.0 ? net : net * beta);
        var lse = l.logsumexp(-1, keepdim: true);
        var rest = torch.zeros_like(l).narrow(-1, 0, n_classes - 1);
        return torch.cat(new[] { nn.functional.softplus(f), lse, rest }, -1).MoveToOuterDisposeScope();
    }

    /// <summary>[σ(η_x / T) ; softmax(η_y / T)].</summary>
    public override Tensor mean(Tensor net, double temperature = 1.0)
    {
        using var scope = torch.NewDisposeScope();
        var (f, l) = Split(temperature == 1.0 ? net : net / temperature);
        return torch.cat(new[] { torch.sigmoid(f), torch.softmax(l, -1) }, -1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Binary units x_i = [u_i &lt; p_i]; the label group gets exactly one active unit k, drawn with probability p_k by
    /// inverse-CDF sampling (k = #{j : Σ_{i≤j} p_i &lt; u}).
    /// </summary>
    public override Tensor sample_from_mean(Tensor mean, Generator? generator = null)
    {
        using var scope = torch.NewDisposeScope();
        var (f, l) = Split(mean);
        var u = torch.rand(f.shape, dtype: mean.dtype, device: mean.device, generator: generator);
        var xf = u.lt(f).to_type(mean.dtype);
        var shape = l.shape.ToArray();
        shape[^1] = 1;
        var ul = torch.rand(shape, dtype: mean.dtype, device: mean.device, generator: generator);
        var k = l.cumsum(-1).lt(ul).sum(-1, keepdim: true).clamp_max(n_classes - 1);
        var y = torch.zeros_like(l).scatter_(-1, k, torch.ones(shape, dtype: mean.dtype, device: mean.device));
        return torch.cat(new[] { xf, y }, -1).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override bool has_linear_bias => true;

    /// <summary>Null: a label group has n_classes valid states, not 2^n_classes.</summary>
    public override IReadOnlyList<double>? discrete_values => null;

    /// <summary>2^(n − n_classes) · n_classes: every binary feature vector with each of the one-hot labels.</summary>
    public override double? state_count(int n) => Math.Pow(2, n - n_classes) * n_classes;

    /// <summary>
    /// The valid states of a layer of n units in a fixed order: state r has label r mod n_classes and features given by the
    /// bits of r / n_classes (least significant first).
    /// </summary>
    public override Tensor? enumerate_states(int n, long first, long count, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        if (n <= n_classes) throw new ArgumentOutOfRangeException(nameof(n), n, $"expected more than {n_classes} units (features followed by {n_classes} label units).");
        using var scope = torch.NewDisposeScope();
        var idx = torch.arange(first, first + count, dtype: ScalarType.Int64, device: device);
        var label = idx.remainder(n_classes);
        var code = idx.div(n_classes, rounding_mode: RoundingMode.floor).unsqueeze(1);
        var bits = torch.arange(n - n_classes, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        var features = code.bitwise_right_shift(bits).bitwise_and(1).to_type(dtype);
        var onehot = nn.functional.one_hot(label, n_classes).to_type(dtype);
        return torch.cat(new[] { features, onehot }, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Random start states: each binary feature with probability 0.5 and a uniformly drawn label (mean 1/K per label unit).</summary>
    public override Tensor initial_states(int n_chains, int n, ScalarType dtype, Device? device = null, Generator? generator = null)
    {
        using var init = torch.full(n_chains, n, 0.5, dtype: dtype, device: device);
        using (var labels = init.narrow(1, n - n_classes, n_classes)) labels.fill_(1.0 / n_classes);
        return sample_from_mean(init, generator);
    }

    /// <summary>Parses <c>Bernoulli+Softmax(K)</c>, K ≥ 2; null for any other name.</summary>
    internal static UnitType? Parse(string name)
    {
        const string prefix = "Bernoulli+Softmax(";
        return name.StartsWith(prefix, StringComparison.Ordinal) && name.EndsWith(')')
            && int.TryParse(name.AsSpan(prefix.Length, name.Length - prefix.Length - 1), System.Globalization.NumberStyles.None,
                            System.Globalization.CultureInfo.InvariantCulture, out int k) && k >= 2
            ? new LabelledBernoulliUnits(k)
            : null;
    }

    /// <summary>Requires every value in [0, 1] and no NaN, and at least n_classes + 1 units.</summary>
    public override void check_values(Tensor x, string what)
    {
        if (x.shape[^1] <= n_classes)
            throw new ArgumentException($"{what}: expected more than {n_classes} units (features followed by {n_classes} label units), got {x.shape[^1]}.");
        UnitType.Bernoulli.check_values(x, what);
    }

    private (Tensor features, Tensor labels) Split(Tensor t)
    {
        long n = t.shape[^1] - n_classes;
        return (t.narrow(-1, 0, n), t.narrow(-1, n, n_classes));
    }
}

using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Units;

/// <summary>
/// A layer of one-of-K groups (softmax units), alone or after binary units: with binary units the layer is
/// [x ; y₁ ; … ; y_G], n − ΣK_g binary units x followed by G groups of K_g units each, every group one-hot; without them
/// it is [y₁ ; … ; y_G] and has exactly ΣK_g units.
/// </summary>
/// <remarks>
/// <para>Self-energy E_self(v; a) = −a·v (linear in the bias), so F(v) = −bᵀv − Σ_j log-partition_j(c_j + W_j v) and the
/// trainer's direct CD gradients apply unchanged.</para>
/// <para>Given net inputs η = [η_x ; η_1 ; … ; η_G] at temperature T: p(x_i = 1 | η) = σ(η_i / T) independently and
/// p(y_g = e_k | η) = softmax(η_g / T)_k per group; the log-partition at β is softplus(βη_i) per binary unit and
/// log Σ_k e^{βη_{g,k}} per group (placed in the group's first column, zeros in the others).</para>
/// <para>Names: <c>Bernoulli+Softmax(K₁,K₂,…)</c> with binary units (at least one) and two or more groups — one group is
/// <see cref="LabelledBernoulliUnits"/>, <c>Bernoulli+Softmax(K)</c>, the label group of the class-conditional DBN, which
/// this type with one group equals — and <c>Softmax(K₁,…)</c> for groups alone. Every K_g ≥ 2.</para>
/// <para>Valid states have exactly one active unit per group, so <see cref="discrete_values"/> is null and
/// <see cref="state_count"/> is 2^(n − ΣK) ΠK_g. <see cref="check_values"/> accepts values in [0, 1] (probabilities
/// are accepted as mean-field inputs, as for Bernoulli units) and checks the layer's width.</para>
/// </remarks>
public sealed class SoftmaxGroupUnits : UnitType
{
    private readonly int[] _sizes;

    /// <summary>Creates the unit type for groups of the given sizes, after binary units or alone.</summary>
    /// <param name="group_sizes">K_g of each group, in layer order (at least one group, every K_g ≥ 2).</param>
    /// <param name="binary_units">True: binary units precede the groups (at least one); false: the layer is the groups alone.</param>
    /// <exception cref="ArgumentException">No group, or a group of fewer than 2 units.</exception>
    public SoftmaxGroupUnits(IReadOnlyList<int> group_sizes, bool binary_units = true)
    {
        ArgumentNullException.ThrowIfNull(group_sizes);
        if (group_sizes.Count == 0) throw new ArgumentException("group_sizes: expected at least one group, got none.", nameof(group_sizes));
        foreach (int k in group_sizes)
            if (k < 2) throw new ArgumentException($"group_sizes: expected every group to have at least 2 units, got one of {k}.", nameof(group_sizes));
        _sizes = group_sizes.ToArray();
        this.binary_units = binary_units;
        softmax_units = _sizes.Sum();
    }

    /// <summary>K_g of each group, in layer order.</summary>
    public IReadOnlyList<int> group_sizes => _sizes;

    /// <summary>True when binary units precede the groups.</summary>
    public bool binary_units { get; }

    /// <summary>ΣK_g: the number of units in groups (the last ones of the layer).</summary>
    public int softmax_units { get; }

    /// <inheritdoc />
    public override string Name
        => $"{(binary_units ? "Bernoulli+" : "")}Softmax({string.Join(",", _sizes.Select(k => k.ToString(CultureInfo.InvariantCulture)))})";

    /// <summary>E_self(v; a) = −a·v, elementwise.</summary>
    public override Tensor self_energy(Tensor x, Tensor bias) => x.mul(bias).neg_();

    /// <summary>softplus(βη_i) per binary unit; log Σ_k e^{βη_{g,k}} per group in its first column, zeros in the others.</summary>
    public override Tensor log_partition(Tensor net, Tensor bias, double beta = 1.0)
    {
        CheckBeta(beta);
        using var scope = torch.NewDisposeScope();
        var (features, groups) = Split(beta == 1.0 ? net : net * beta);
        var parts = new List<Tensor> { nn.functional.softplus(features) };
        foreach (var g in groups)
        {
            parts.Add(g.logsumexp(-1, keepdim: true));
            parts.Add(torch.zeros_like(g).narrow(-1, 0, g.shape[^1] - 1));
        }
        return torch.cat(parts, -1).MoveToOuterDisposeScope();
    }

    /// <summary>[σ(η_x / T) ; softmax(η_1 / T) ; … ; softmax(η_G / T)].</summary>
    public override Tensor mean(Tensor net, double temperature = 1.0)
    {
        using var scope = torch.NewDisposeScope();
        var (features, groups) = Split(temperature == 1.0 ? net : net / temperature);
        var parts = new List<Tensor> { torch.sigmoid(features) };
        parts.AddRange(groups.Select(g => torch.softmax(g, -1)));
        return torch.cat(parts, -1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Binary units x_i = [u_i &lt; p_i]; each group gets exactly one active unit k, drawn with probability p_k by
    /// inverse-CDF sampling (k = #{j : Σ_{i≤j} p_i &lt; u}, one u per group).
    /// </summary>
    public override Tensor sample_from_mean(Tensor mean, Generator? generator = null)
    {
        using var scope = torch.NewDisposeScope();
        var (features, groups) = Split(mean);
        var u = torch.rand(features.shape, dtype: mean.dtype, device: mean.device, generator: generator);
        var parts = new List<Tensor> { u.lt(features).to_type(mean.dtype) };
        foreach (var g in groups)
        {
            var shape = g.shape.ToArray();
            shape[^1] = 1;
            var ug = torch.rand(shape, dtype: mean.dtype, device: mean.device, generator: generator);
            var k = g.cumsum(-1).lt(ug).sum(-1, keepdim: true).clamp_max(g.shape[^1] - 1);
            parts.Add(torch.zeros_like(g).scatter_(-1, k, torch.ones(shape, dtype: mean.dtype, device: mean.device)));
        }
        return torch.cat(parts, -1).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override bool has_linear_bias => true;

    /// <summary>Null: a group of K units has K valid states, not 2^K.</summary>
    public override IReadOnlyList<double>? discrete_values => null;

    /// <summary>2^(n − ΣK) · ΠK_g: every binary vector with every combination of one-hot groups.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="n"/> does not fit the groups.</exception>
    public override double? state_count(int n)
    {
        CheckWidth(n, nameof(n));
        return Math.Pow(2, n - softmax_units) * _sizes.Aggregate(1.0, (p, k) => p * k);
    }

    /// <summary>
    /// The valid states in a fixed order: state r's group digits are mixed-radix digits of r (group 1 varying fastest),
    /// and the binary units hold the bits of what is left, r / ΠK_g (least significant first).
    /// </summary>
    public override Tensor? enumerate_states(int n, long first, long count, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        CheckWidth(n, nameof(n));
        using var scope = torch.NewDisposeScope();
        var rest = torch.arange(first, first + count, dtype: ScalarType.Int64, device: device);
        var onehots = new List<Tensor>();
        foreach (int k in _sizes)
        {
            onehots.Add(nn.functional.one_hot(rest.remainder(k), k).to_type(dtype));
            rest = rest.div(k, rounding_mode: RoundingMode.floor);
        }
        var bits = torch.arange(n - softmax_units, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        var features = rest.unsqueeze(1).bitwise_right_shift(bits).bitwise_and(1).to_type(dtype);
        return torch.cat(onehots.Prepend(features).ToList(), 1).MoveToOuterDisposeScope();
    }

    /// <summary>Random start states: each binary unit with probability 0.5 and each group's active unit uniform.</summary>
    public override Tensor initial_states(int n_chains, int n, ScalarType dtype, Device? device = null, Generator? generator = null)
    {
        CheckWidth(n, nameof(n));
        using var init = torch.full(n_chains, n, 0.5, dtype: dtype, device: device);
        long at = n - softmax_units;
        foreach (int k in _sizes)
        {
            using (var g = init.narrow(1, at, k)) g.fill_(1.0 / k);
            at += k;
        }
        return sample_from_mean(init, generator);
    }

    /// <summary>Requires the layer's width to fit the groups, every value in [0, 1] and no NaN.</summary>
    public override void check_values(Tensor x, string what)
    {
        long n = x.shape[^1];
        if (binary_units ? n <= softmax_units : n != softmax_units)
            throw new ArgumentException($"{what}: expected {WidthRule()} for {Name} units, got {n}.");
        UnitType.Bernoulli.check_values(x, what);
    }

    /// <summary>Parses <c>Bernoulli+Softmax(K₁,K₂,…)</c> with two or more groups; null for any other name.</summary>
    internal static UnitType? ParseWithBinary(string name)
        => Sizes(name, "Bernoulli+Softmax(") is { Length: >= 2 } sizes ? new SoftmaxGroupUnits(sizes, binary_units: true) : null;

    /// <summary>Parses <c>Softmax(K₁,…)</c> with one or more groups; null for any other name.</summary>
    internal static UnitType? ParseAlone(string name)
        => Sizes(name, "Softmax(") is { Length: >= 1 } sizes ? new SoftmaxGroupUnits(sizes, binary_units: false) : null;

    private static int[]? Sizes(string name, string prefix)
    {
        if (!name.StartsWith(prefix, StringComparison.Ordinal) || !name.EndsWith(')')) return null;
        var list = name[prefix.Length..^1].Split(',');
        var sizes = new int[list.Length];
        for (int i = 0; i < list.Length; i++)
            if (!int.TryParse(list[i], NumberStyles.None, CultureInfo.InvariantCulture, out sizes[i]) || sizes[i] < 2) return null;
        return sizes;
    }

    private string WidthRule() => binary_units ? $"more than {softmax_units} units (binary units followed by groups of {string.Join(", ", _sizes)})"
                                               : $"exactly {softmax_units} units (groups of {string.Join(", ", _sizes)})";

    private void CheckWidth(int n, string param)
    {
        if (binary_units ? n <= softmax_units : n != softmax_units)
            throw new ArgumentOutOfRangeException(param, n, $"expected {WidthRule()}.");
    }

    private (Tensor features, List<Tensor> groups) Split(Tensor t)
    {
        long at = t.shape[^1] - softmax_units;
        var groups = new List<Tensor>(_sizes.Length);
        foreach (int k in _sizes)
        {
            groups.Add(t.narrow(-1, at, k));
            at += k;
        }
        return (t.narrow(-1, 0, t.shape[^1] - softmax_units), groups);
    }
}

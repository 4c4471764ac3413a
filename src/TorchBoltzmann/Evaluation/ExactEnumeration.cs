using TorchBoltzmann.Functional;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Evaluation;

/// <summary>
/// Exact inference for RBMs small enough to enumerate one layer (the test oracle): log Z, log-likelihood, the full
/// visible distribution and exact marginals. Computed in float64 on the model's device: <see cref="log_partition"/> in
/// chunks of 2¹⁶ states; the distribution and marginals hold all 2^n_visible states at once (8·2ⁿ·(n + 1) bytes and more:
/// about 0.2 GB at n = 20).
/// </summary>
public static class ExactEnumeration
{
    /// <summary>Largest layer this class will enumerate (2^24 states).</summary>
    public const int MaxEnumeratedUnits = 24;

    /// <summary>All 2ⁿ binary vectors of length n, row r holding the bits of r (least significant bit first), shape (2ⁿ, n).</summary>
    public static Tensor all_binary_states(int n, ScalarType dtype = ScalarType.Float32, Device? device = null)
        => BinaryStates(0, 1L << n, n, dtype, device);

    private static Tensor BinaryStates(long first, long count, int n, ScalarType dtype, Device? device)
    {
        if (n < 0 || n > MaxEnumeratedUnits) throw new ArgumentOutOfRangeException(nameof(n), n, $"expected 0..{MaxEnumeratedUnits} units to enumerate.");
        using var idx = torch.arange(first, first + count, dtype: ScalarType.Int64, device: device).unsqueeze(1);
        using var bits = torch.arange(n, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        using var shifted = idx.bitwise_right_shift(bits);
        using var one = shifted.bitwise_and(1);
        return one.to_type(dtype);
    }

    /// <summary>
    /// log Z = log Σ_v Σ_h e^{−E(v,h)}. Enumerates the smaller binary {0,1} layer (the only binary one when the other is
    /// not, e.g. a labelled visible layer): over h,
    /// log Z = logsumexp_h [ −Σ_j E_self(h_j; c_j) + Σ_i log-partition_i(b_i + (Wᵀh)_i) ]; over v, log Z = logsumexp_v [−F(v)].
    /// </summary>
    /// <exception cref="ArgumentException">Neither layer is binary with at most <see cref="MaxEnumeratedUnits"/> units.</exception>
    public static double log_partition(RBM rbm)
    {
        ArgumentNullException.ThrowIfNull(rbm);
        using var _ = torch.no_grad();
        bool hiddenOk = IsBinary(rbm.hidden_units.discrete_values) && rbm.n_hidden <= MaxEnumeratedUnits;
        bool visibleOk = IsBinary(rbm.visible_units.discrete_values) && rbm.n_visible <= MaxEnumeratedUnits;
        bool overHidden = hiddenOk && (!visibleOk || rbm.n_hidden <= rbm.n_visible);
        if (!overHidden && !visibleOk)
        {
            // Name the layer a caller would expect to be enumerated: the smaller one.
            if (rbm.n_hidden <= rbm.n_visible) RequireEnumerable(rbm.n_hidden, rbm.hidden_units.discrete_values, "hidden");
            RequireEnumerable(rbm.n_visible, rbm.visible_units.discrete_values, "visible");
        }
        using var p = Float64Params.Of(rbm);
        int n = overHidden ? rbm.n_hidden : rbm.n_visible;
        double logZ = double.NegativeInfinity;
        long total = 1L << n;
        const long chunk = 1L << 16;
        for (long first = 0; first < total; first += chunk)
        {
            using var scope = torch.NewDisposeScope();
            var states = BinaryStates(first, Math.Min(chunk, total - first), n, ScalarType.Float64, rbm.device);
            var negF = overHidden ? p.NegFreeEnergyOfHidden(rbm, states) : p.FreeEnergyOfVisible(rbm, states).neg();
            logZ = LogSpace.log_add_exp(logZ, LogSpace.logsumexp(negF));
        }
        return logZ;
    }

    /// <summary>Mean log-likelihood of the rows of <paramref name="data"/>: (1/N) Σ_n [−F(v_n)] − log Z.</summary>
    public static double log_likelihood(RBM rbm, Tensor data) => log_likelihood(rbm, data, log_partition(rbm));

    /// <summary>Mean log-likelihood given a known log Z.</summary>
    public static double log_likelihood(RBM rbm, Tensor data, double logZ)
    {
        rbm.check_visible(data, "data");
        using var _ = torch.no_grad();
        using var p = Float64Params.Of(rbm);
        using var v = data.to(ScalarType.Float64, rbm.device);
        using var f = p.FreeEnergyOfVisible(rbm, v);
        using var m = f.mean();
        return -m.ToDouble() - logZ;
    }

    /// <summary>
    /// The exact distribution p(v) = e^{−F(v)} / Z over all 2^n_visible binary visible states (rows ordered as
    /// <see cref="all_binary_states"/>), as a float64 tensor of shape (2^n_visible).
    /// </summary>
    public static Tensor visible_distribution(RBM rbm)
    {
        RequireEnumerable(rbm.n_visible, rbm.visible_units.discrete_values, "visible");
        using var _ = torch.no_grad();
        using var p = Float64Params.Of(rbm);
        using var states = all_binary_states(rbm.n_visible, ScalarType.Float64, rbm.device);
        using var f = p.FreeEnergyOfVisible(rbm, states);
        using var negF = f.neg();
        using var lz = negF.logsumexp(0);
        using var logp = negF - lz;
        return logp.exp();
    }

    /// <summary>Exact visible marginals p(v_i = 1) = Σ_v p(v) v_i, shape (n_visible), float64.</summary>
    public static Tensor visible_marginals(RBM rbm)
    {
        using var _ = torch.no_grad();
        using var pv = visible_distribution(rbm);
        using var states = all_binary_states(rbm.n_visible, ScalarType.Float64, rbm.device);
        return pv.matmul(states);
    }

    /// <summary>Exact hidden marginals p(h_j = 1) = Σ_v p(v) p(h_j = 1 | v), shape (n_hidden), float64.</summary>
    public static Tensor hidden_marginals(RBM rbm)
    {
        using var _ = torch.no_grad();
        using var p = Float64Params.Of(rbm);
        using var pv = visible_distribution(rbm);
        using var states = all_binary_states(rbm.n_visible, ScalarType.Float64, rbm.device);
        using var net = nn.functional.linear(states, p.W, p.c);
        using var ph = rbm.hidden_units.mean(net);
        return pv.matmul(ph);
    }

    private static bool IsBinary(IReadOnlyList<double>? values) => values is { Count: 2 } && values[0] == 0 && values[1] == 1;

    private static void RequireEnumerable(int n, IReadOnlyList<double>? values, string layer)
    {
        if (!IsBinary(values))
            throw new ArgumentException($"Exact enumeration needs binary {{0,1}} {layer} units.");
        if (n > MaxEnumeratedUnits)
            throw new ArgumentException($"Exact enumeration over the {layer} layer: expected at most {MaxEnumeratedUnits} units, got {n}; use AIS for large models.");
    }

    /// <summary>The model's parameters copied to float64 (exact sums lose digits in float32).</summary>
    private sealed class Float64Params : IDisposable
    {
        public required Tensor W, b, c;
        public static Float64Params Of(RBM rbm)
        {
            using var w = rbm.weight.detach();
            using var b = rbm.visible_bias.detach();
            using var c = rbm.hidden_bias.detach();
            return new() { W = w.to(ScalarType.Float64), b = b.to(ScalarType.Float64), c = c.to(ScalarType.Float64) };
        }

        /// <summary>F(v) = Σ_i E_self(v_i; b_i) − Σ_j log-partition_j(c_j + W_j v).</summary>
        public Tensor FreeEnergyOfVisible(RBM rbm, Tensor v)
        {
            using var negF = NegFreeEnergy(v, rbm.visible_units, b, W, rbm.hidden_units, c);
            return negF.neg();
        }

        /// <summary>−F(h) = −Σ_j E_self(h_j; c_j) + Σ_i log-partition_i(b_i + (Wᵀh)_i).</summary>
        public Tensor NegFreeEnergyOfHidden(RBM rbm, Tensor h)
        {
            using var wt = W.t();
            return NegFreeEnergy(h, rbm.hidden_units, c, wt, rbm.visible_units, b);
        }

        /// <summary>
        /// −F(x) of one layer with the other integrated out: −Σ E_self(x; a) + Σ log-partition(a' + M x), where M maps
        /// x to the other layer's net input (W for visible x, Wᵀ for hidden x) and a' is the other layer's bias.
        /// </summary>
        private static Tensor NegFreeEnergy(Tensor x, UnitType units, Tensor bias, Tensor toOther, UnitType otherUnits, Tensor otherBias)
        {
            using var net = nn.functional.linear(x, toOther, otherBias);
            using var lp = otherUnits.log_partition(net, otherBias);
            using var lps = lp.sum(-1);
            using var se = units.self_energy(x, bias);
            using var ses = se.sum(-1);
            return lps - ses;
        }

        public void Dispose() { W.Dispose(); b.Dispose(); c.Dispose(); }
    }
}

using TorchBoltzmann.Functional;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Evaluation;

/// <summary>
/// Exact inference for machines small enough to list the states of one layer (the test oracle): log Z_β, the
/// log-likelihood, the full visible distribution and exact marginals, at any inverse temperature β. Works on any
/// <see cref="IEnergyModel"/> by listing its visible states (<see cref="UnitType.enumerate_states"/>); for an
/// <see cref="RBM"/> it lists whichever layer has fewer states and computes in float64 on the model's device (sums of
/// millions of terms lose digits in float32); other models are summed in float64 from their own dtype's free energies.
/// <see cref="log_partition"/> works in chunks of 2¹⁶ states; the distribution and marginals hold all visible states at
/// once (8·S·(n + 1) bytes and more for S states: about 0.2 GB at n = 20 binary units).
/// </summary>
public static class ExactEnumeration
{
    /// <summary>Largest layer this class will enumerate, in binary units: at most 2^24 states.</summary>
    public const int MaxEnumeratedUnits = 24;

    private const double MaxStates = 1 << MaxEnumeratedUnits;

    /// <summary>All 2ⁿ binary vectors of length n, row r holding the bits of r (least significant bit first), shape (2ⁿ, n).</summary>
    public static Tensor all_binary_states(int n, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        if (n < 0 || n > MaxEnumeratedUnits) throw new ArgumentOutOfRangeException(nameof(n), n, $"expected 0..{MaxEnumeratedUnits} units to enumerate.");
        return UnitType.Bernoulli.enumerate_states(n, 0, 1L << n, dtype, device)!;
    }

    /// <summary>
    /// log Z_β = log Σ_v e^{−F_β(v)} (= log Σ_v Σ_h e^{−βE(v,h)}). For an <see cref="RBM"/> the layer with fewer states is
    /// listed: over h, log Z_β = logsumexp_h [ −β Σ_j E_self(h_j; c_j) + Σ_i log-partition_i(b_i + (Wᵀh)_i; β) ]; over v,
    /// logsumexp_v [−F_β(v)]. Other models list their visible states.
    /// </summary>
    /// <param name="model">The machine.</param>
    /// <param name="beta">Inverse temperature β ≥ 0 (default 1: the model's own log Z).</param>
    /// <exception cref="ArgumentException">No layer that can be listed has at most 2^<see cref="MaxEnumeratedUnits"/> states.</exception>
    public static double log_partition(IEnergyModel model, double beta = 1.0)
    {
        ArgumentNullException.ThrowIfNull(model);
        Checks.Beta(beta);
        using var _ = torch.no_grad();
        if (model is RBM rbm) return RbmLogPartition(rbm, beta);
        if (model is BoltzmannMachine bm) return MachineLogPartition(bm, beta);
        long total = StateCount(model.n_visible, model.visible_units, "visible");
        return SumOverStates(total, model.n_visible, model.visible_units, model.device, states =>
        {
            using var typed = states.to_type(model.dtype);
            using var f = model.free_energy(typed, beta);
            using var f64 = f.to_type(ScalarType.Float64);
            return f64.neg();
        });
    }

    private static double RbmLogPartition(RBM rbm, double beta)
    {
        double? hiddenStates = Countable(rbm.n_hidden, rbm.hidden_units);
        double? visibleStates = Countable(rbm.n_visible, rbm.visible_units);
        bool overHidden = hiddenStates is not null && (visibleStates is null || hiddenStates <= visibleStates);
        if (!overHidden && visibleStates is null)
        {
            // Name the layer a caller would expect to be enumerated: the smaller one.
            if (rbm.n_hidden <= rbm.n_visible) StateCount(rbm.n_hidden, rbm.hidden_units, "hidden");
            StateCount(rbm.n_visible, rbm.visible_units, "visible");
        }
        using var p = Float64Params.Of(rbm);
        var (n, units) = overHidden ? (rbm.n_hidden, rbm.hidden_units) : (rbm.n_visible, rbm.visible_units);
        return SumOverStates((long)(overHidden ? hiddenStates!.Value : visibleStates!.Value), n, units, rbm.device,
            states => overHidden ? p.NegFreeEnergyOfHidden(rbm, states, beta) : p.NegFreeEnergyOfVisible(rbm, states, beta));
    }

    /// <summary>log Σ over all <paramref name="total"/> states of <paramref name="negF"/>(states), in chunks of 2¹⁶.</summary>
    private static double SumOverStates(long total, int n, UnitType units, Device device, Func<Tensor, Tensor> negF)
    {
        double logZ = double.NegativeInfinity;
        const long chunk = 1L << 16;
        for (long first = 0; first < total; first += chunk)
        {
            using var scope = torch.NewDisposeScope();
            var states = units.enumerate_states(n, first, Math.Min(chunk, total - first), ScalarType.Float64, device)!;
            logZ = LogSpace.log_add_exp(logZ, LogSpace.logsumexp(negF(states)));
        }
        return logZ;
    }

    /// <summary>Mean log-likelihood of the rows of <paramref name="data"/>: (1/N) Σ_n [−F(v_n)] − log Z.</summary>
    public static double log_likelihood(IEnergyModel model, Tensor data) => log_likelihood(model, data, log_partition(model));

    /// <summary>Mean log-likelihood given a known log Z.</summary>
    public static double log_likelihood(IEnergyModel model, Tensor data, double logZ)
    {
        ArgumentNullException.ThrowIfNull(model);
        model.check_visible(data, "data");
        using var _ = torch.no_grad();
        using var negF = NegFreeEnergyOfData(model, data, 1.0);
        using var m = negF.mean();
        return m.ToDouble() - logZ;
    }

    /// <summary>
    /// The exact distribution p_β(v) = e^{−F_β(v)} / Z_β over all visible states (rows ordered as the visible unit type's
    /// <see cref="UnitType.enumerate_states"/>; for binary units as <see cref="all_binary_states"/>), float64.
    /// </summary>
    /// <param name="model">The machine.</param>
    /// <param name="beta">Inverse temperature β ≥ 0.</param>
    /// <exception cref="ArgumentException">The visible layer cannot be listed, or has more than 2^<see cref="MaxEnumeratedUnits"/> states.</exception>
    public static Tensor visible_distribution(IEnergyModel model, double beta = 1.0)
    {
        ArgumentNullException.ThrowIfNull(model);
        Checks.Beta(beta);
        using var _ = torch.no_grad();
        using var states = VisibleStates(model);
        using var negF = NegFreeEnergyOfData(model, states, beta);
        using var lz = negF.logsumexp(0);
        using var logp = negF - lz;
        return logp.exp();
    }

    /// <summary>Exact visible means E_β[v_i] = Σ_v p_β(v) v_i (for binary units the marginals p(v_i = 1)), shape (n_visible), float64.</summary>
    public static Tensor visible_marginals(IEnergyModel model, double beta = 1.0)
    {
        using var _ = torch.no_grad();
        using var pv = visible_distribution(model, beta);
        using var states = VisibleStates(model);
        return pv.matmul(states);
    }

    /// <summary>Exact hidden means E_β[h_j] = Σ_v p_β(v) E[h_j | v] at T = 1/β (binary units: p(h_j = 1)), shape (n_hidden), float64.</summary>
    public static Tensor hidden_marginals(RBM rbm, double beta = 1.0)
    {
        ArgumentNullException.ThrowIfNull(rbm);
        using var _ = torch.no_grad();
        using var p = Float64Params.Of(rbm);
        using var pv = visible_distribution(rbm, beta);
        using var states = VisibleStates(rbm);
        using var net = nn.functional.linear(states, p.W, p.c);
        using var ph = rbm.hidden_units.mean(net, beta == 0 ? double.PositiveInfinity : 1 / beta);
        return pv.matmul(ph);
    }

    // ---------------------------------------------------------------- general Boltzmann machines

    /// <summary>
    /// log Z_β = log Σ_x e^{−βE(x)} over all 2ⁿ joint states of a <see cref="BoltzmannMachine"/>, E(x) = −½xᵀWx − bᵀx,
    /// in float64 and chunks of 2¹⁶ states.
    /// </summary>
    private static double MachineLogPartition(BoltzmannMachine bm, double beta)
    {
        long total = StateCount(bm.n_units, bm.units, "joint (visible and hidden)");
        using var p = MachineParams.Of(bm);
        return SumOverStates(total, bm.n_units, bm.units, bm.device, x =>
        {
            using var e = p.Energy(x);
            return e.mul(-beta);
        });
    }

    /// <summary>
    /// The exact joint distribution p_β(x) = e^{−βE(x)} / Z_β over all 2ⁿ states of a <see cref="BoltzmannMachine"/>
    /// (visible and hidden units), rows ordered as <see cref="UnitType.enumerate_states"/> of its unit type (unit 0
    /// varying fastest), float64. Its states are <see cref="joint_states"/>.
    /// </summary>
    /// <exception cref="ArgumentException">More than 2^<see cref="MaxEnumeratedUnits"/> joint states.</exception>
    public static Tensor joint_distribution(BoltzmannMachine bm, double beta = 1.0)
    {
        ArgumentNullException.ThrowIfNull(bm);
        Checks.Beta(beta);
        using var _ = torch.no_grad();
        using var states = joint_states(bm);
        using var p = MachineParams.Of(bm);
        using var e = p.Energy(states);
        using var logits = e.mul(-beta);
        return logits.softmax(0);
    }

    /// <summary>Every joint state of <paramref name="bm"/>, (2ⁿ, n), float64, in the order of <see cref="joint_distribution"/>.</summary>
    /// <exception cref="ArgumentException">More than 2^<see cref="MaxEnumeratedUnits"/> joint states.</exception>
    public static Tensor joint_states(BoltzmannMachine bm)
    {
        ArgumentNullException.ThrowIfNull(bm);
        long total = StateCount(bm.n_units, bm.units, "joint (visible and hidden)");
        return bm.units.enumerate_states(bm.n_units, 0, total, ScalarType.Float64, bm.device)!;
    }

    /// <summary>Exact means E_β[x_i] = Σ_x p_β(x) x_i of every unit (visible and hidden), shape (n), float64.</summary>
    public static Tensor unit_means(BoltzmannMachine bm, double beta = 1.0)
    {
        using var _ = torch.no_grad();
        using var p = joint_distribution(bm, beta);
        using var states = joint_states(bm);
        return p.matmul(states);
    }

    /// <summary>
    /// Exact second moments E_β[x_i x_j] = Σ_x p_β(x) x_i x_j of every pair of units, shape (n, n), float64: the statistics
    /// the contrastive Hebbian rule compares (diagonal: E[x_i²], = E[x_i] for {0, 1} units and 1 for spins).
    /// </summary>
    public static Tensor pairwise_correlations(BoltzmannMachine bm, double beta = 1.0)
    {
        using var _ = torch.no_grad();
        using var p = joint_distribution(bm, beta);
        using var states = joint_states(bm);
        using var weighted = states.mul(p.unsqueeze(1));
        return weighted.t().matmul(states);
    }

    /// <summary>
    /// A lowest-energy state of <paramref name="bm"/> and its energy, by listing all 2ⁿ states (ties: the first in
    /// enumeration order). The oracle for annealing tests.
    /// </summary>
    public static (Tensor state, double energy) ground_state(BoltzmannMachine bm)
    {
        ArgumentNullException.ThrowIfNull(bm);
        using var _ = torch.no_grad();
        using var states = joint_states(bm);
        using var p = MachineParams.Of(bm);
        using var e = p.Energy(states);
        using var i = e.argmin();
        long k = i.ToInt64();
        using var row = states[k];
        using var ek = e[k];
        return (row.clone(), ek.ToDouble());
    }

    /// <summary>A <see cref="BoltzmannMachine"/>'s symmetric W and b copied to float64.</summary>
    private sealed class MachineParams : IDisposable
    {
        public required Tensor W, b;
        public static MachineParams Of(BoltzmannMachine bm)
        {
            using var w = bm.weight_matrix();
            using var b = bm.bias.detach();
            return new() { W = w.to(ScalarType.Float64), b = b.to(ScalarType.Float64) };
        }

        /// <summary>E(x) = −½ Σ_ij x_i W_ij x_j − Σ_i b_i x_i, per row.</summary>
        public Tensor Energy(Tensor x)
        {
            using var xw = x.matmul(W);
            using var quad = xw.mul(x).sum(-1);
            using var lin = x.matmul(b);
            using var half = quad.mul(-0.5);
            return half.sub(lin);
        }

        public void Dispose() { W.Dispose(); b.Dispose(); }
    }

    /// <summary>−F_β of each row, float64 (an RBM's computed from float64 parameters).</summary>
    private static Tensor NegFreeEnergyOfData(IEnergyModel model, Tensor v, double beta)
    {
        if (model is RBM rbm)
        {
            using var p = Float64Params.Of(rbm);
            using var v64 = v.to(ScalarType.Float64, rbm.device);
            return p.NegFreeEnergyOfVisible(rbm, v64, beta);
        }
        using var typed = v.to(model.dtype, model.device);
        using var f = model.free_energy(typed, beta);
        using var f64 = f.to_type(ScalarType.Float64);
        return f64.neg();
    }

    private static Tensor VisibleStates(IEnergyModel model)
    {
        long total = StateCount(model.n_visible, model.visible_units, "visible");
        return model.visible_units.enumerate_states(model.n_visible, 0, total, ScalarType.Float64, model.device)!;
    }

    /// <summary>The number of states of a layer when it can be listed within the limit, else null.</summary>
    private static double? Countable(int n, UnitType units) => units.state_count(n) is { } s && s <= MaxStates ? s : null;

    private static long StateCount(int n, UnitType units, string layer)
    {
        double? count = units.state_count(n);
        if (count is null)
            throw new ArgumentException($"Exact enumeration needs a {layer} layer whose states can be listed; {units.Name} units cannot.");
        if (count > MaxStates)
            throw new ArgumentException($"Exact enumeration over the {layer} layer: expected at most 2^{MaxEnumeratedUnits} states ({MaxEnumeratedUnits} binary units), got {count:G4} ({n} {units.Name} units); use AIS for large models.");
        return (long)count.Value;
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
            // The joint's coupling is s↑·W (RBM.up_scale, 1 unless set), in both directions of the enumeration.
            using var w64 = w.to(ScalarType.Float64);
            return new() { W = w64.mul(rbm.up_scale), b = b.to(ScalarType.Float64), c = c.to(ScalarType.Float64) };
        }

        /// <summary>−F_β(v) = −β Σ_i E_self(v_i; b_i) + Σ_j log-partition_j(c_j + W_j v; β).</summary>
        public Tensor NegFreeEnergyOfVisible(RBM rbm, Tensor v, double beta)
            => NegFreeEnergy(v, rbm.visible_units, b, W, rbm.hidden_units, c, beta);

        /// <summary>−F_β(h) = −β Σ_j E_self(h_j; c_j) + Σ_i log-partition_i(b_i + (Wᵀh)_i; β).</summary>
        public Tensor NegFreeEnergyOfHidden(RBM rbm, Tensor h, double beta)
        {
            using var wt = W.t();
            return NegFreeEnergy(h, rbm.hidden_units, c, wt, rbm.visible_units, b, beta);
        }

        /// <summary>
        /// −F_β(x) of one layer with the other integrated out: −β Σ E_self(x; a) + Σ log-partition(a' + M x; β), where M
        /// maps x to the other layer's net input (W for visible x, Wᵀ for hidden x) and a' is the other layer's bias.
        /// </summary>
        private static Tensor NegFreeEnergy(Tensor x, UnitType units, Tensor bias, Tensor toOther, UnitType otherUnits, Tensor otherBias, double beta)
        {
            using var net = nn.functional.linear(x, toOther, otherBias);
            using var lp = otherUnits.log_partition(net, otherBias, beta);
            using var lps = lp.sum(-1);
            using var se = units.self_energy(x, bias);
            using var ses = se.sum(-1);
            using var bses = ses.mul(beta);
            return lps - bses;
        }

        public void Dispose() { W.Dispose(); b.Dispose(); c.Dispose(); }
    }
}

using TorchBoltzmann.Modules;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Evaluation;

/// <summary>
/// Likelihood of a <see cref="DBM"/>: log Z by annealed importance sampling over the odd layers with the even layers
/// summed out, and the variational lower bound on log p(v) from mean-field inference (Salakhutdinov &amp; Hinton 2009).
/// For machines small enough to enumerate, <see cref="ExactEnumeration"/> gives both exactly.
/// </summary>
/// <remarks>
/// <para><b>The annealing path.</b> The base model A has no weights and biases a_l: a_0 = the visible base-rate biases
/// (<see cref="AnnealedImportanceSampling.base_rate_bias"/>, or zeros), a_l = 0 for every hidden layer. The intermediate
/// distributions are p_β(v, h) ∝ exp(−βE(v, h) − (1 − β)E_A(v, h)), E_A = −Σ_l a_lᵀh_l. Given the odd layers
/// x = (h_1, h_3, …), the even layers (v, h_2, …) are independent and sum out, so each run anneals only x with
/// <code>log f_β(x) = Σ_{odd l} (βb_l + (1−β)a_l)ᵀh_l + Σ_{even l} Σ_j log-partition_l(βη_lj(x) + (1−β)a_lj),
/// η_l(x) = b_l + W_l h_{l−1} + W_{l+1}ᵀ h_{l+1}</code>
/// (log-partition = softplus for Bernoulli units). At β = 0 the layers are independent:
/// log Z_0 = Σ_l Σ_j log-partition(a_lj) = Σ_j softplus(a_0j) + (Σ_{l≥1} n_l) log 2, and x₁ is drawn exactly (uniform
/// hidden states). The transition at β_k is one block Gibbs step of p_{β_k}(v, h) (even layers given x, then x given the
/// even layers, each unit's mean at the net input βη + (1 − β)a), which leaves the marginal p_{β_k}(x) invariant. As
/// for the RBM (<see cref="AnnealedImportanceSampling"/>):
/// <code>log w = Σ_{k=1}^{K} [log f_{β_k}(x_k) − log f_{β_{k−1}}(x_k)],   Ẑ = Z_0 · (1/M) Σ_m w_m</code>
/// E[Ẑ] = Z, and log Ẑ with its interval log(Ẑ ± 3σ̂) comes from <see cref="PartitionFunctionEstimate.FromLogWeights"/>.
/// The scheme holds for any depth; summing out the even layers (v among them) halves the dimension of what is
/// sampled and removes the visible layer's variance from the weights, as Salakhutdinov &amp; Hinton (2009, §4) do by
/// annealing over h_1 for a two-hidden-layer DBM.</para>
/// <para><b>The lower bound.</b> <see cref="lower_bound"/> returns (1/N) Σ_n B(v_n) − log Z with B from
/// <see cref="DBM.variational_bound(Tensor, IReadOnlyList{Tensor})"/>; with an AIS log Ẑ it is an estimate of a lower bound (log Ẑ errs low
/// in expectation, so the estimate errs high: report it with log Ẑ's interval).</para>
/// </remarks>
public static class DbmLikelihood
{
    /// <summary>Estimates log Z of <paramref name="dbm"/> by AIS (path in the class remarks).</summary>
    /// <param name="dbm">The DBM.</param>
    /// <param name="base_visible_bias">Visible biases a_0 of the base model, (n_visible) (e.g. <see cref="AnnealedImportanceSampling.base_rate_bias"/>); null: zeros.</param>
    /// <param name="options">Runs and β schedule (null: 100 runs, the paper's 14,500 steps).</param>
    /// <param name="generator">Random generator on the model's device (null: the global one).</param>
    /// <param name="progress">Receives <see cref="AnnealingProgress"/> about a hundred times.</param>
    /// <param name="cancellation">Checked every 50 steps.</param>
    /// <returns>log Ẑ, its interval, the raw log-weights and log Z_0.</returns>
    /// <exception cref="ArgumentException">Invalid options, base biases that do not fit, or visible units whose self-energy is not linear in the bias or whose states are not a finite list.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public static PartitionFunctionEstimate log_partition(DBM dbm, Tensor? base_visible_bias = null, AisOptions? options = null,
        Generator? generator = null, IProgress<AnnealingProgress>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(dbm);
        options ??= new AisOptions();
        options.Validate();
        var vu = dbm.visible_units;
        if (!vu.has_linear_bias || vu.state_count(dbm.n_visible) is null)
            throw new ArgumentException($"dbm: AIS needs visible units with a finite set of states and a self-energy linear in the bias; {dbm} has {vu.Name} visible units.", nameof(dbm));
        int layers = dbm.layer_sizes.Count;
        using var _ = torch.no_grad();
        using var outer = torch.NewDisposeScope();
        var a0 = base_visible_bias is null ? torch.zeros(dbm.n_visible, dtype: dbm.dtype, device: dbm.device) : CheckBase(dbm, base_visible_bias);
        var baseBias = Enumerable.Range(0, layers).Select(l => l == 0 ? a0 : torch.zeros(dbm.layer_sizes[l], dtype: dbm.dtype, device: dbm.device)).ToArray();
        // log Z_0 = Σ_l Σ_j log-partition(a_lj): independent units.
        double logZ0 = 0;
        for (int l = 0; l < layers; l++)
            using (var a64 = baseBias[l].to_type(ScalarType.Float64))
            using (var lp = dbm.units(l).log_partition(a64, a64, 1.0))
            using (var s = lp.sum())
                logZ0 += s.ToDouble();
        int runs = options.Runs;
        var betas = options.Schedule.betas;
        int steps = options.Schedule.steps;
        var odd = Enumerable.Range(1, layers - 1).Where(l => l % 2 == 1).ToArray();
        var even = Enumerable.Range(0, layers).Where(l => l % 2 == 0).ToArray();
        var states = new Tensor[layers];
        for (int l = 0; l < layers; l++)
            states[l] = l % 2 == 1 ? dbm.units(l).initial_states(runs, dbm.layer_sizes[l], dbm.dtype, dbm.device, generator)   // x₁ ~ p_0: uniform
                                   : torch.zeros(runs, dbm.layer_sizes[l], dtype: dbm.dtype, device: dbm.device);
        var logW = torch.zeros(runs, dtype: ScalarType.Float64, device: dbm.device);
        long every = Math.Max(1, steps / 100);
        for (int k = 1; k <= steps; k++)
        {
            if (k % 50 == 0) cancellation.ThrowIfCancellationRequested();
            using (var scope = torch.NewDisposeScope())
            {
                // The even layers' net inputs given x_k serve both log f at β_k and β_{k−1} and the next Gibbs step.
                var etaEven = even.ToDictionary(l => l, l => dbm.net_input(states, l));
                logW.add_(LogF(dbm, states, etaEven, odd, baseBias, betas[k]).sub_(LogF(dbm, states, etaEven, odd, baseBias, betas[k - 1])));
                if (k < steps)
                {
                    double beta = betas[k];
                    foreach (int l in even) Sample(dbm, states, l, etaEven[l], baseBias[l], beta, generator);
                    foreach (int l in odd)
                    {
                        var eta = dbm.net_input(states, l);
                        Sample(dbm, states, l, eta, baseBias[l], beta, generator);
                    }
                }
                foreach (var s in states) s.MoveToOuterDisposeScope();
            }
            if (progress is not null && (k % every == 0 || k == steps)) progress.Report(new AnnealingProgress("AIS", k, steps));
        }
        using var cpu = logW.cpu();
        return PartitionFunctionEstimate.FromLogWeights(cpu.data<double>().ToArray(), logZ0, steps);
    }

    /// <summary>log f_β(x) (class remarks), float64 (runs).</summary>
    private static Tensor LogF(DBM dbm, Tensor[] states, Dictionary<int, Tensor> etaEven, int[] odd, Tensor[] baseBias, double beta)
    {
        var total = torch.zeros(states[0].shape[0], dtype: ScalarType.Float64, device: dbm.device);
        foreach (int l in odd)
        {
            var field = dbm.bias(l).mul(beta).add(baseBias[l], alpha: 1 - beta).to_type(ScalarType.Float64);   // βb_l + (1−β)a_l
            total = total.add(states[l].to_type(ScalarType.Float64).matmul(field));
        }
        foreach (var (l, eta) in etaEven)
        {
            var net = eta.to_type(ScalarType.Float64).mul(beta).add(baseBias[l].to_type(ScalarType.Float64), alpha: 1 - beta);   // βη_l + (1−β)a_l
            total = total.add(dbm.units(l).log_partition(net, net, 1.0).sum(-1));
        }
        return total;
    }

    /// <summary>Replaces states[l] by a draw from layer l's conditional of p_β: mean at βη + (1 − β)a.</summary>
    private static void Sample(DBM dbm, Tensor[] states, int l, Tensor eta, Tensor a, double beta, Generator? generator)
    {
        var net = eta.mul(beta).add_(a, alpha: 1 - beta);
        var mean = dbm.units(l).mean_(net, 1.0);
        var old = states[l];
        states[l] = dbm.units(l).sample_from_mean(mean, generator);
        old.Dispose();
    }

    private static Tensor CheckBase(DBM dbm, Tensor b)
    {
        if (b.dim() != 1 || b.shape[0] != dbm.n_visible)
            throw new ArgumentException($"base_visible_bias: expected shape ({dbm.n_visible}), got ({string.Join(", ", b.shape)}).", nameof(b));
        using (var finite = b.isfinite().all())
            if (!finite.ToBoolean()) throw new ArgumentException("base_visible_bias: expected finite values.", nameof(b));
        return b.to(dbm.dtype, dbm.device);
    }

    /// <summary>
    /// The variational lower bound on the mean log-likelihood of <paramref name="data"/>: (1/N) Σ_n B(v_n) − log Z, with
    /// B(v) from mean-field inference (<see cref="DBM.mean_field"/>, then <see cref="DBM.variational_bound(Tensor, IReadOnlyList{Tensor})"/>),
    /// in batches of <paramref name="batch_size"/> rows.
    /// </summary>
    /// <param name="dbm">The DBM.</param>
    /// <param name="data">Rows, (N, n_visible).</param>
    /// <param name="log_z">log Z (exact, or an AIS estimate's <see cref="PartitionFunctionEstimate.LogZ"/>).</param>
    /// <param name="max_iterations">Cap on mean-field sweeps.</param>
    /// <param name="tolerance">Mean-field tolerance.</param>
    /// <param name="batch_size">Rows per mean-field batch.</param>
    /// <returns>The mean bound, nats per example.</returns>
    /// <exception cref="ArgumentException">Bad data.</exception>
    public static double lower_bound(DBM dbm, Tensor data, double log_z, int max_iterations = DBM.DefaultMeanFieldIterations,
                                     double tolerance = DBM.DefaultMeanFieldTolerance, int batch_size = 1000)
    {
        ArgumentNullException.ThrowIfNull(dbm);
        dbm.check_visible(data, "data");
        Checks.Rows(data, dbm.n_visible, "data");
        if (batch_size < 1) throw new ArgumentOutOfRangeException(nameof(batch_size), batch_size, "batch_size: expected at least 1.");
        using var _ = torch.no_grad();
        double sum = 0;
        long n = data.shape[0];
        for (long start = 0; start < n; start += batch_size)
        {
            using var scope = torch.NewDisposeScope();
            var rows = data.narrow(0, start, Math.Min(batch_size, n - start)).to(dbm.dtype, dbm.device);
            sum += dbm.mean_field_bound(rows, max_iterations, tolerance).sum().ToDouble();
        }
        return sum / n - log_z;
    }
}

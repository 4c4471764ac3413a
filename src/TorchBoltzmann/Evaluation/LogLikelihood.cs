using TorchBoltzmann.Modules;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Evaluation;

/// <summary>
/// Average log-likelihood in nats, (1/N) Σ_n log p(v_n), of RBMs and (as a variational lower bound) of DBNs, with the
/// interval that the partition function's uncertainty gives it. log Z is exact wherever one layer of the RBM can be
/// enumerated (at most 2^<see cref="LikelihoodOptions.ExactMaxUnits"/> states) and estimated by AIS otherwise.
/// </summary>
/// <remarks>
/// <para>RBM: log p(v) = −F(v) − log Z, so with log Z in [log(Ẑ − 3σ̂), log(Ẑ + 3σ̂)] the average lies in
/// [mean(−F) − log(Ẑ + 3σ̂), mean(−F) − log(Ẑ − 3σ̂)]. The AIS point estimate errs high (log Ẑ is a stochastic lower
/// bound on log Z); <see cref="ReverseAnnealing"/> gives the conservative side.</para>
/// <para>DBN: see <see cref="dbn_lower_bound"/>.</para>
/// </remarks>
public static class LogLikelihood
{
    /// <summary>
    /// log Z of <paramref name="model"/>: exact (<see cref="ExactEnumeration.log_partition"/>) when its hidden or visible
    /// layer has at most 2^<see cref="LikelihoodOptions.ExactMaxUnits"/> states, else AIS
    /// (<see cref="AnnealedImportanceSampling.log_partition"/>) from the base-rate model of <paramref name="data"/> (a
    /// uniform base without data).
    /// </summary>
    /// <param name="model">The RBM.</param>
    /// <param name="data">Training data for the base-rate model, (N, n_visible), or null.</param>
    /// <param name="options">Exactness threshold and AIS settings (null: defaults).</param>
    /// <param name="generator">Random generator on the model's device for AIS (null: the global one).</param>
    /// <param name="progress">AIS progress.</param>
    /// <param name="cancellation">Cancels AIS.</param>
    /// <exception cref="ArgumentException">Invalid options, or data that do not fit the model.</exception>
    public static PartitionFunctionEstimate partition_function(RBM model, Tensor? data = null, LikelihoodOptions? options = null,
        Generator? generator = null, IProgress<AnnealingProgress>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new LikelihoodOptions();
        options.Validate();
        if (IsEnumerable(model, options.ExactMaxUnits)) return PartitionFunctionEstimate.Exact(ExactEnumeration.log_partition(model));
        using var bias = base_bias(model, data, options);
        return AnnealedImportanceSampling.log_partition(model, bias, options.Ais, generator, progress, cancellation);
    }

    /// <summary>
    /// True when one layer of <paramref name="model"/> has at most 2^<paramref name="max_units"/> states (e.g. ≤ 20 binary
    /// units), so that <see cref="partition_function"/> sums it exactly.
    /// </summary>
    public static bool IsEnumerable(RBM model, int max_units = 20)
    {
        ArgumentNullException.ThrowIfNull(model);
        double limit = Math.Pow(2, Math.Min(max_units, ExactEnumeration.MaxEnumeratedUnits));
        return model.hidden_units.state_count(model.n_hidden) is { } h && h <= limit
            || model.visible_units.state_count(model.n_visible) is { } v && v <= limit;
    }

    /// <summary>
    /// The base-rate model's visible biases for <paramref name="model"/> from <paramref name="data"/>
    /// (<see cref="AnnealedImportanceSampling.base_rate_bias"/>), or null (uniform base) when there are no data or the
    /// visible unit type has no base-rate rule. The caller owns the tensor.
    /// </summary>
    public static Tensor? base_bias(RBM model, Tensor? data, LikelihoodOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (data is null) return null;
        if (model.visible_units is not (BernoulliUnits or LabelledBernoulliUnits)) return null;
        model.check_visible(data, "data");
        using var moved = data.to(ScalarType.Float64, model.device);
        return AnnealedImportanceSampling.base_rate_bias(model.visible_units, moved.reshape(-1, model.n_visible),
                                                        (options ?? new LikelihoodOptions()).Ais.BaseRateSmoothing);
    }

    /// <summary>
    /// Average log-likelihood of the rows of <paramref name="data"/> under <paramref name="model"/> given its log Z:
    /// mean(−F(v)) − log Z, with the interval from <paramref name="logZ"/>'s (exact: a point). −F is computed in float64
    /// in batches of 1,000 rows.
    /// </summary>
    /// <exception cref="ArgumentException">The data do not fit the visible layer.</exception>
    public static LikelihoodEstimate rbm(RBM model, Tensor data, PartitionFunctionEstimate logZ)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(logZ);
        model.check_visible(data, "data");
        using var _ = torch.no_grad();
        using var rows = data.reshape(-1, model.n_visible);
        long n = rows.shape[0];
        double sum = 0;
        for (long s = 0; s < n; s += 1000)
        {
            using var scope = torch.NewDisposeScope();
            var v = rows.narrow(0, s, Math.Min(1000, n - s)).to(model.dtype, model.device);
            var eta = model.hidden_net(v);
            sum += NegFreeEnergy64(model, v, eta).sum().ToDouble();
        }
        double meanNegF = sum / n;
        return new LikelihoodEstimate
        {
            MeanLogLikelihood = meanNegF - logZ.LogZ,
            Lower = meanNegF - logZ.LogZUpper,
            Upper = meanNegF - logZ.LogZLower,
            PartitionFunction = logZ,
            Count = n,
            Kind = LikelihoodKind.LogLikelihood,
            Conservative = logZ.Method == PartitionFunctionMethod.Exact ? meanNegF - logZ.LogZ : null,
        };
    }

    /// <summary>
    /// log Z of a DBN's top RBM as <see cref="partition_function"/> computes it, with the base-rate model taken from the
    /// top RBM's input for <paramref name="data"/>: the up-pass means μ^{L−1} (and, in a class-conditional DBN, the
    /// uniform label mean 1/K).
    /// </summary>
    /// <exception cref="ArgumentException">Invalid options, or data that do not fit the DBN.</exception>
    public static PartitionFunctionEstimate dbn_top_partition_function(DBN dbn, Tensor? data = null, LikelihoodOptions? options = null,
        Generator? generator = null, IProgress<AnnealingProgress>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(dbn);
        options ??= new LikelihoodOptions();
        options.Validate();
        if (IsEnumerable(dbn.top, options.ExactMaxUnits) || data is null)
            return partition_function(dbn.top, null, options, generator, progress, cancellation);
        Tensor topInput;
        using (torch.no_grad())
        using (var f = dbn.up_pass(data, dbn.n_feature_layers))
        {
            if (dbn.is_class_conditional)
            {
                var shape = f.shape.ToArray();
                shape[^1] = dbn.n_classes;
                using var u = torch.full(shape, 1.0 / dbn.n_classes, dtype: f.dtype, device: f.device);
                topInput = torch.cat(new[] { f, u }, -1);
            }
            else topInput = f.clone();
        }
        using (topInput)
        {
            using var means = topInput.to_type(ScalarType.Float64);
            using var bias = AnnealedImportanceSampling.base_rate_bias(dbn.top.visible_units, means.reshape(-1, dbn.top.n_visible), options.Ais.BaseRateSmoothing);
            return AnnealedImportanceSampling.log_partition(dbn.top, bias, options.Ais, generator, progress, cancellation);
        }
    }

    /// <summary>
    /// The variational lower bound on the average log p(v) of a DBN of any depth (Hinton, Osindero &amp; Teh 2006;
    /// Salakhutdinov &amp; Murray 2008, eq. 12), with the approximate posterior q of the up-pass, estimated by sampling.
    /// </summary>
    /// <remarks>
    /// <para>With h⁰ = v, directed layers l = 0 … L−2 (RBM l generates h^l from h^{l+1}) and the top RBM over h^{L−1}:
    /// <code>
    /// q(h¹ … h^{L−1} | v) = Π_{l=0}^{L−2} q(h^{l+1} | h^l),   q(h^{l+1}_j = 1 | h^l) = σ(c_l + W_l h^l)_j  (the up-pass;
    ///                                                         σ(r_l + R_l h^l)_j with an untied DBN's recognition weights)
    /// log p(v) ≥ B(v) = E_q[ Σ_{l=0}^{L−2} log p(h^l | h^{l+1}) + log p_top(h^{L−1}) ] + Σ_{l=0}^{L−2} E_q[ H(q(h^{l+1} | h^l)) ]
    /// log p(h^l | h^{l+1}) = Σ_i log-lik of h^l_i under mean_v(b_l + W_lᵀ h^{l+1}) = η·h^l − Σ_i log-partition_i(η),  η = b_l + W_lᵀ h^{l+1}
    /// H(q(h^{l+1} | h^l)) = Σ_j log-partition_j(η') − η'·μ',  η' = c_l + W_l h^l (untied: r_l + R_l h^l),  μ' = mean_h(η')
    /// log p_top(x) = −F_top(x) − log Z_top
    /// </code>
    /// B(v) = log p(v) − KL(q(h | v) ‖ p(h | v)) ≤ log p(v) for any q; an untied DBN's recognition weights are the q its
    /// up-down sleep phase trained, so the bound uses them. The expectations are estimated from
    /// <paramref name="samples"/> draws of h ~ q per row (the entropies given each drawn parent are exact), an unbiased
    /// estimate of B. <see cref="LikelihoodEstimate.StandardError"/> is its Monte-Carlo standard error for these rows,
    /// √(Σ_n s_n² / S) / N with s_n² the variance of row n's S samples (NaN for S = 1), not the spread of B over a data
    /// set.</para>
    /// <para>For L = 1 (one RBM) B(v) = log p(v) exactly. With log Z_top from AIS the bound inherits AIS's bias (log Ẑ
    /// errs low, so the bound errs high) and the interval from log Z_top's.</para>
    /// <para>Class-conditional DBN: the top RBM models (h^{L−1}, y); the label is summed out, so the figure is a bound on
    /// the marginal log p(v) of the digits, with log p_top(x) = logsumexp_y(−F_top([x ; e_y])) − log Z_top and Z_top over
    /// features and labels. The labels of the data are not used.</para>
    /// </remarks>
    /// <param name="dbn">The DBN.</param>
    /// <param name="data">Rows v, (N, n_visible).</param>
    /// <param name="top_log_partition">log Z of the top RBM (<see cref="dbn_top_partition_function"/>).</param>
    /// <param name="samples">Draws of h ~ q(h | v) per row (≥ 1).</param>
    /// <param name="generator">Random generator on the DBN's device (null: the global one).</param>
    /// <param name="batch_size">Rows per batch (each expands to <paramref name="samples"/> rows).</param>
    /// <exception cref="ArgumentException">The data do not fit the DBN.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="samples"/> or <paramref name="batch_size"/> is less than 1.</exception>
    public static LikelihoodEstimate dbn_lower_bound(DBN dbn, Tensor data, PartitionFunctionEstimate top_log_partition, int samples = 10,
        Generator? generator = null, int batch_size = 1000)
    {
        ArgumentNullException.ThrowIfNull(dbn);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(top_log_partition);
        if (samples < 1) throw new ArgumentOutOfRangeException(nameof(samples), samples, "samples: expected at least 1.");
        if (batch_size < 1) throw new ArgumentOutOfRangeException(nameof(batch_size), batch_size, "batch_size: expected at least 1.");
        dbn.check_input(data, "data");
        using var _ = torch.no_grad();
        using var rows = data.reshape(-1, dbn.n_visible);
        long n = rows.shape[0];
        double sum = 0, withinVariance = 0;
        for (long s = 0; s < n; s += batch_size)
        {
            using var scope = torch.NewDisposeScope();
            long b = Math.Min(batch_size, n - s);
            var v = rows.narrow(0, s, b).to(dbn.dtype, dbn.device).repeat_interleave(samples, 0);
            var total = torch.zeros(b * samples, dtype: ScalarType.Float64, device: dbn.device);
            var x = v;
            for (int l = 0; l < dbn.n_layers - 1; l++)
            {
                var rbm = dbn.layers[l];
                var up = dbn.recognition is { } rec && l < rec.Count ? nn.functional.linear(x, rec[l].weight, rec[l].bias) : rbm.hidden_net(x);   // η' = r_l + R_l h^l untied
                var mu = rbm.hidden_units.mean(up);
                var up64 = up.to_type(ScalarType.Float64);
                var entropy = rbm.hidden_units.log_partition(up64, up64).sum(-1) - up64.mul(mu.to_type(ScalarType.Float64)).sum(-1);
                var h = rbm.hidden_units.sample_from_mean(mu, generator);
                var down64 = rbm.visible_net(h).to_type(ScalarType.Float64);
                var x64 = x.to_type(ScalarType.Float64);
                var logp = rbm.visible_units.self_energy(x64, down64).sum(-1).neg() - rbm.visible_units.log_partition(down64, down64).sum(-1);
                total.add_(logp).add_(entropy);
                x = h;
            }
            total.add_(TopNegFreeEnergy(dbn, x)).sub_(top_log_partition.LogZ);
            var bySample = total.reshape(b, samples);
            sum += bySample.mean([1L]).sum().ToDouble();
            if (samples > 1) withinVariance += bySample.var(1).sum().ToDouble();
        }
        double mean = sum / n;
        return new LikelihoodEstimate
        {
            MeanLogLikelihood = mean,
            Lower = mean + top_log_partition.LogZ - top_log_partition.LogZUpper,
            Upper = mean + top_log_partition.LogZ - top_log_partition.LogZLower,
            PartitionFunction = top_log_partition,
            Count = n,
            Kind = LikelihoodKind.VariationalLowerBound,
            StandardError = samples > 1 ? Math.Sqrt(withinVariance / samples) / n : double.NaN,
        };
    }

    /// <summary>−F_top(x) in float64; in a class-conditional DBN logsumexp_y −F_top([x ; e_y]) (the label summed out).</summary>
    private static Tensor TopNegFreeEnergy(DBN dbn, Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var top = dbn.top;
        if (!dbn.is_class_conditional) return NegFreeEnergy64(top, x, top.hidden_net(x)).MoveToOuterDisposeScope();
        long b = x.shape[0];
        int c = dbn.n_classes, nf = dbn.n_features;
        var eye = torch.eye(c, dtype: x.dtype, device: x.device);
        var joined = torch.cat(new[] { x.unsqueeze(1).expand(b, c, nf), eye.unsqueeze(0).expand(b, c, c) }, -1).reshape(b * c, nf + c);
        return NegFreeEnergy64(top, joined, top.hidden_net(joined)).reshape(b, c).logsumexp(1).MoveToOuterDisposeScope();
    }

    /// <summary>−F(v) = −Σ_i E_self(v_i; b_i) + Σ_j log-partition_j(η), float64, from the hidden net input η = c + Wv.</summary>
    private static Tensor NegFreeEnergy64(RBM model, Tensor v, Tensor eta)
    {
        using var scope = torch.NewDisposeScope();
        var v64 = v.to_type(ScalarType.Float64);
        var eta64 = eta.to_type(ScalarType.Float64);
        var c64 = model.hidden_bias.detach().to_type(ScalarType.Float64);
        var b64 = model.visible_bias.detach().to_type(ScalarType.Float64);
        var lp = model.hidden_units.log_partition(eta64, c64).sum(-1);
        return (lp - model.visible_units.self_energy(v64, b64).sum(-1)).MoveToOuterDisposeScope();
    }
}

/// <summary>What a <see cref="LikelihoodEstimate"/> measures.</summary>
public enum LikelihoodKind
{
    /// <summary>The average log p(v) itself (an RBM).</summary>
    LogLikelihood,

    /// <summary>A variational lower bound on the average log p(v) (a DBN of more than one RBM).</summary>
    VariationalLowerBound,
}

/// <summary>
/// An average log-likelihood in nats over <see cref="Count"/> rows, with the interval that the partition function's
/// uncertainty gives it (<see cref="LogLikelihood"/>).
/// </summary>
public sealed record LikelihoodEstimate
{
    /// <summary>(1/N) Σ log p(v_n) (or the DBN's bound), from the point estimate of log Z.</summary>
    public required double MeanLogLikelihood { get; init; }

    /// <summary>The figure with log Z at the upper end of its interval, log(Ẑ + 3σ̂).</summary>
    public required double Lower { get; init; }

    /// <summary>The figure with log Z at the lower end of its interval, log(Ẑ − 3σ̂) (+∞ when that end is −∞).</summary>
    public required double Upper { get; init; }

    /// <summary>The log Z used (of the RBM, or of the DBN's top RBM).</summary>
    public required PartitionFunctionEstimate PartitionFunction { get; init; }

    /// <summary>Rows averaged.</summary>
    public required long Count { get; init; }

    /// <summary>Whether the figure is log p(v) or a lower bound on it.</summary>
    public required LikelihoodKind Kind { get; init; }

    /// <summary>Monte-Carlo standard error of the figure for these rows from sampling h ~ q (DBN bound; NaN with one
    /// sample per row); 0 for an RBM.</summary>
    public double StandardError { get; init; }

    /// <summary>
    /// The conservative figure, where computed: RAISE's mean (<see cref="ReverseAnnealing"/>, a stochastic lower bound),
    /// or the exact value when log Z is exact; null otherwise.
    /// </summary>
    public double? Conservative { get; init; }
}

/// <summary>Settings of <see cref="LogLikelihood"/>.</summary>
public sealed record LikelihoodOptions
{
    /// <summary>
    /// log Z is summed exactly when the RBM's hidden or visible layer has at most 2^ExactMaxUnits states (default 20:
    /// 2²⁰ ≈ 10⁶ states, about a second on a CPU); AIS otherwise. At most <see cref="ExactEnumeration.MaxEnumeratedUnits"/>.
    /// </summary>
    public int ExactMaxUnits { get; init; } = 20;

    /// <summary>AIS (and RAISE) settings.</summary>
    public AisOptions Ais { get; init; } = new();

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (ExactMaxUnits < 0 || ExactMaxUnits > ExactEnumeration.MaxEnumeratedUnits)
            throw new ArgumentException($"ExactMaxUnits: expected 0 … {ExactEnumeration.MaxEnumeratedUnits}, got {ExactMaxUnits}.", nameof(ExactMaxUnits));
        ArgumentNullException.ThrowIfNull(Ais, nameof(Ais));
        Ais.Validate();
    }
}

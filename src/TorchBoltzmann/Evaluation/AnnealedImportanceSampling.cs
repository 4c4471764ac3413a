using TorchBoltzmann.Modules;
using TorchBoltzmann.Sampling;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Evaluation;

/// <summary>
/// Annealed importance sampling (Neal 2001) of an RBM's partition function, as Salakhutdinov &amp; Murray (2008) use it:
/// M runs anneal from a base-rate model A, whose partition function Z_A is known, to the RBM B through the distributions
/// p_k ∝ f_k = p_A*^{1−β_k} p_B*^{β_k} of a <see cref="BetaSchedule"/>, all runs as one batch of
/// <see cref="GibbsChains"/> on the model's device.
/// </summary>
/// <remarks>
/// <para>One run, with the hidden units summed out of every f_k (formulas in <c>AnnealingPath</c>):
/// <code>
/// x_1 ~ p_A;   x_{k+1} ~ T_k(· | x_k)  (a Gibbs step leaving p_k invariant), k = 1 … K−1
/// log w = Σ_{k=1}^{K} [log f_k(x_k) − log f_{k−1}(x_k)],   Ẑ_B = Z_A · (1/M) Σ_m w_m
/// </code>
/// E[w] = Z_B / Z_A, so Ẑ_B is unbiased; log Ẑ_B and its interval log(Ẑ ± 3σ̂) are computed from the raw log-weights as
/// <see cref="PartitionFunctionEstimate"/> describes (a stochastic lower bound on log Z: the log-likelihood it gives errs
/// high). Each step costs two matrix products per run (the hidden net input of the current states serves both the weight
/// and the next Gibbs step).</para>
/// <para>The base-rate model has no weights and visible biases b_A from the data's smoothed means
/// (<see cref="base_rate_bias"/>): p_A is then close to the data's marginals, and the annealing starts near the target.
/// Without data the base is the uniform distribution (b_A = 0), which needs more steps for the same variance.</para>
/// <para>Unit types: any whose self-energy is linear in the bias (<see cref="UnitType.has_linear_bias"/>): Bernoulli and
/// Bernoulli with a softmax label group or general one-of-K groups. Gaussian visible units
/// (<see cref="GaussianUnits"/>) are refused: e^{b_Aᵀv} is not a distribution over the reals, so the path would need a
/// Gaussian base model and a field that is not scaled like η/T (not implemented); for a small hidden layer
/// <see cref="ExactEnumeration.log_partition"/> gives their log Z exactly.</para>
/// </remarks>
public static class AnnealedImportanceSampling
{
    /// <summary>
    /// Visible biases of the base-rate model from the data's means m_i, smoothed as in Salakhutdinov's code
    /// (<c>base_rate.m</c>: 5 pseudo-counts per mini-batch of 100, λ = 0.05). Binary units:
    /// <code>p_i = min((m_i + λ) / (1 + λ), 1 − λ/(1 + λ)),   b_A,i = log p_i − log(1 − p_i)</code>
    /// (the cap keeps a unit that is on in every row finite); a softmax label group of K units:
    /// p_k = (m_k + λ) / (1 + Kλ), b_A,k = log p_k.
    /// </summary>
    /// <param name="units">The visible unit type: <see cref="UnitType.Bernoulli"/> or <see cref="LabelledBernoulliUnits"/>.</param>
    /// <param name="data">Data rows, (N, n_visible).</param>
    /// <param name="smoothing">λ &gt; 0.</param>
    /// <returns>b_A, shape (n_visible), float64 on the data's device.</returns>
    /// <exception cref="ArgumentException">Another unit type, empty data, or λ not positive.</exception>
    public static Tensor base_rate_bias(UnitType units, Tensor data, double smoothing = 0.05)
    {
        ArgumentNullException.ThrowIfNull(units);
        ArgumentNullException.ThrowIfNull(data);
        if (!(smoothing > 0) || !double.IsFinite(smoothing)) throw new ArgumentException($"smoothing: expected a finite λ > 0, got {smoothing}.", nameof(smoothing));
        if (data.dim() != 2 || data.shape[0] == 0) throw new ArgumentException($"data: expected shape (N ≥ 1, n_visible), got ({string.Join(", ", data.shape)}).", nameof(data));
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var m = data.to_type(ScalarType.Float64).mean([0L]);
        double lam = smoothing;
        Tensor Logit(Tensor means)
        {
            var p = means.add(lam).div_(1 + lam).clamp_max_(1 - lam / (1 + lam));
            return p.log() - (1 - p).log();
        }
        switch (units)
        {
            case BernoulliUnits:
                return Logit(m).MoveToOuterDisposeScope();
            case LabelledBernoulliUnits l:
            {
                long nf = m.shape[0] - l.n_classes;
                var features = Logit(m.narrow(0, 0, nf));
                var labels = m.narrow(0, nf, l.n_classes).add(lam).div_(1 + l.n_classes * lam).log_();
                return torch.cat(new[] { features, labels }, 0).MoveToOuterDisposeScope();
            }
            default:
                throw new ArgumentException($"base_rate_bias: defined for Bernoulli and Bernoulli+Softmax(K) units, got {units.Name}; pass the base model's visible biases yourself.", nameof(units));
        }
    }

    /// <summary>
    /// Estimates log Z of <paramref name="model"/> by AIS (formulas in the class remarks).
    /// </summary>
    /// <param name="model">The RBM B.</param>
    /// <param name="base_visible_bias">Visible biases b_A of the base-rate model, (n_visible) (e.g. <see cref="base_rate_bias"/>);
    /// null: zeros, the uniform distribution.</param>
    /// <param name="options">Runs and schedule (null: 100 runs, the paper's 14,500 steps).</param>
    /// <param name="generator">Random generator on the model's device (null: the global one). A seeded generator makes the
    /// estimate reproducible on the same device and library version.</param>
    /// <param name="progress">Receives <see cref="AnnealingProgress"/> about a hundred times per run.</param>
    /// <param name="cancellation">Checked every 50 steps.</param>
    /// <returns>log Ẑ, its interval, the raw log-weights and log Z_A.</returns>
    /// <exception cref="ArgumentException">Invalid options, base biases that do not fit, or a unit type that cannot be annealed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> was cancelled.</exception>
    public static PartitionFunctionEstimate log_partition(RBM model, Tensor? base_visible_bias = null, AisOptions? options = null,
        Generator? generator = null, IProgress<AnnealingProgress>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new AisOptions();
        options.Validate();
        using var _ = torch.no_grad();
        using var path = AnnealingPath.Create(model, base_visible_bias);
        var betas = options.Schedule.betas;
        int steps = options.Schedule.steps;
        using var chains = new GibbsChains(model, generator);
        using (var x1 = path.SampleBase(options.Runs, generator)) chains.start(x1);
        using var logW = torch.zeros(options.Runs, dtype: ScalarType.Float64, device: model.device);
        long every = Math.Max(1, steps / 100);
        for (int k = 1; k <= steps; k++)
        {
            if (k % 50 == 0) cancellation.ThrowIfCancellationRequested();
            using (var scope = torch.NewDisposeScope())
            {
                // log w += log f_k(x_k) − log f_{k−1}(x_k); then x_{k+1} ~ T_k(· | x_k), reusing η = c + W x_k.
                var x = chains.visible;
                var eta = model.hidden_net(x);
                logW.add_(path.LogRatio(x, eta, betas[k], betas[k - 1]));
                if (k < steps) path.Step(chains, eta, betas[k]);
            }
            if (progress is not null && (k % every == 0 || k == steps)) progress.Report(new AnnealingProgress("AIS", k, steps));
        }
        using var cpu = logW.cpu();
        return PartitionFunctionEstimate.FromLogWeights(cpu.data<double>().ToArray(), path.LogZBase, steps);
    }
}

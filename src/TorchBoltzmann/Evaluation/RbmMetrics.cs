using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Evaluation;

/// <summary>Cheap training monitors for RBMs (Hinton 2010, §5–6): reconstruction error, pseudo-log-likelihood, free energy (the last two for any <see cref="IEnergyModel"/>).</summary>
public static class RbmMetrics
{
    /// <summary>
    /// Mean squared reconstruction error per example: (1/N) Σ_n Σ_i (v_ni − p(v_i | p(h | v_n)))², with the
    /// deterministic mean-field reconstruction of <see cref="RBM.reconstruct"/>.
    /// </summary>
    public static double reconstruction_error(RBM rbm, Tensor v, int batch_size = 1000)
        => BatchedMean(rbm, v, batch_size, x =>
        {
            using var r = rbm.reconstruct(x);
            using var d = x - r;
            using var sq = d.square();
            return sq.sum(-1);
        });

    /// <summary>Mean free energy (1/N) Σ_n F(v_n), of an RBM or any other <see cref="IEnergyModel"/>.</summary>
    public static double mean_free_energy(IEnergyModel rbm, Tensor v, int batch_size = 1000)
        => BatchedMean(rbm, v, batch_size, x => rbm.free_energy(x));

    /// <summary>
    /// Stochastic pseudo-log-likelihood per example, as in scikit-learn's BernoulliRBM.score_samples: for each v one unit
    /// i is chosen uniformly and flipped (ṽ), and log PL(v) ≈ n_visible · log σ(F(ṽ) − F(v)), since
    /// p(v_i | v_−i) = σ(F(ṽ) − F(v)). Meaningful for binary visible data; works on any <see cref="IEnergyModel"/>.
    /// </summary>
    public static double pseudo_log_likelihood(IEnergyModel rbm, Tensor v, Generator? generator = null, int batch_size = 1000)
        => BatchedMean(rbm, v, batch_size, x =>
        {
            using var scope = torch.NewDisposeScope();
            var idx = torch.randint(0, rbm.n_visible, new long[] { x.shape[0], 1 }, device: x.device, generator: generator);
            var flipped = x.clone();
            var picked = flipped.gather(1, idx);
            flipped.scatter_(1, idx, 1 - picked);
            var fv = rbm.free_energy(x);
            var ff = rbm.free_energy(flipped);
            var pl = nn.functional.logsigmoid(ff - fv) * rbm.n_visible;
            return pl.MoveToOuterDisposeScope();
        });

    private static double BatchedMean(IEnergyModel rbm, Tensor v, int batchSize, Func<Tensor, Tensor> perExample)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive.");
        rbm.check_visible(v, "metric input");
        using var _ = torch.no_grad();
        var x2 = v.dim() == 1 ? v.unsqueeze(0) : v.alias();
        try
        {
            long n = x2.shape[0];
            if (n == 0) throw new ArgumentException("metric input: expected at least one example, got 0.");
            double total = 0;
            for (long s = 0; s < n; s += batchSize)
            {
                using var scope = torch.NewDisposeScope();
                var batch = x2.narrow(0, s, Math.Min(batchSize, n - s)).to(rbm.dtype, rbm.device);
                var values = perExample(batch);
                total += values.sum().ToDouble();
            }
            return total / n;
        }
        finally { x2.Dispose(); }
    }
}

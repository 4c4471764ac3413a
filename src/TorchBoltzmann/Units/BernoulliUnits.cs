using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Units;

/// <summary>
/// Binary units x ∈ {0, 1}:
/// E_self(x; a) = −a·x;  log-partition at β: log(1 + e^{βη}) = softplus(βη);  p(x = 1 | η) = σ(η / T), T = 1/β.
/// </summary>
public sealed class BernoulliUnits : UnitType
{
    /// <inheritdoc />
    public override string Name => "Bernoulli";

    /// <summary>E_self(x; a) = −a·x, elementwise.</summary>
    public override Tensor self_energy(Tensor x, Tensor bias) => x.mul(bias).neg_();

    /// <summary>log Σ_{x∈{0,1}} e^{βx·η} = softplus(βη) = log(1 + e^{βη}), computed stably.</summary>
    public override Tensor log_partition(Tensor net, Tensor bias, double beta = 1.0)
    {
        CheckBeta(beta);
        if (beta == 1.0) return nn.functional.softplus(net);
        using var scaled = net.mul(beta);
        return nn.functional.softplus(scaled);
    }

    /// <summary>p(x = 1 | η) = σ(η / T) = 1 / (1 + e^{−η/T}).</summary>
    public override Tensor mean(Tensor net, double temperature = 1.0)
        => temperature == 1.0 ? torch.sigmoid(net) : torch.sigmoid(net / temperature);

    /// <summary>In place: η ← σ(η / T).</summary>
    public override Tensor mean_(Tensor net, double temperature = 1.0)
        => temperature == 1.0 ? net.sigmoid_() : net.div_(temperature).sigmoid_();

    /// <summary>x = [u &lt; p], u ~ U(0, 1): 1 with probability p. (Unlike <c>torch.bernoulli</c>, a NaN p yields 0
    /// rather than an exception, so the trainer can report divergence with epoch and batch.)</summary>
    public override Tensor sample_from_mean(Tensor mean, Generator? generator = null)
        => torch.rand(mean.shape, dtype: mean.dtype, device: mean.device, generator: generator).lt_(mean);

    /// <inheritdoc />
    public override bool has_linear_bias => true;

    /// <inheritdoc />
    public override IReadOnlyList<double>? discrete_values { get; } = new double[] { 0.0, 1.0 };

    /// <summary>Requires every value in [0, 1] (probabilities are accepted as mean-field inputs) and no NaN.</summary>
    public override void check_values(Tensor x, string what)
    {
        if (x.numel() == 0) return;
        using var _ = torch.no_grad();
        // Full reductions min() and max() propagate NaN, so a NaN anywhere shows up in them. (Measured on the 60 000 × 784
        // MNIST tensor, 2 threads: 8 ms for both, against 123 ms for one aminmax over the flattened tensor, whose
        // dimension-wise kernel runs serially.)
        double lo, hi;
        using (var min = x.min()) lo = min.ToDouble();
        using (var max = x.max()) hi = max.ToDouble();
        if (double.IsNaN(lo) || double.IsNaN(hi))
            throw new ArgumentException($"{what}: expected values in [0, 1] for Bernoulli units, got NaN.");
        if (lo < 0 || hi > 1)
            throw new ArgumentException($"{what}: expected values in [0, 1] for Bernoulli units, got values in [{lo:G4}, {hi:G4}].");
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Units;

/// <summary>
/// Spin units s ∈ {−1, +1} (Ising spins, the Hopfield network's states):
/// E_self(s; a) = −a·s;  log-partition at β: log(e^{βη} + e^{−βη});  E[s | η] = tanh(η / T);
/// p(s = +1 | η) = σ(2η / T), T = 1/β.
/// </summary>
/// <remarks>
/// A {0, 1} machine with weights W and biases b and a spin machine describe the same distribution under s = 2x − 1
/// when the spin machine has weights W/4 and biases b/2 + W1/4 (see <see cref="Modules.BoltzmannMachine.to_spins"/>).
/// </remarks>
public sealed class SpinUnits : UnitType
{
    /// <inheritdoc />
    public override string Name => "Spin";

    /// <summary>E_self(s; a) = −a·s, elementwise.</summary>
    public override Tensor self_energy(Tensor x, Tensor bias) => x.mul(bias).neg_();

    /// <summary>log Σ_{s=±1} e^{βsη} = log(e^{βη} + e^{−βη}) = logaddexp(βη, −βη), computed without softplus's threshold.</summary>
    public override Tensor log_partition(Tensor net, Tensor bias, double beta = 1.0)
    {
        CheckBeta(beta);
        using var up = net.mul(beta);
        using var down = up.neg();
        return torch.logaddexp(up, down);
    }

    /// <summary>E[s | η] = tanh(η / T) = p(+1) − p(−1), with p(+1) = σ(2η / T).</summary>
    public override Tensor mean(Tensor net, double temperature = 1.0)
        => temperature == 1.0 ? torch.tanh(net) : torch.tanh(net / temperature);

    /// <summary>In place: η ← tanh(η / T).</summary>
    public override Tensor mean_(Tensor net, double temperature = 1.0)
        => temperature == 1.0 ? net.tanh_() : net.div_(temperature).tanh_();

    /// <summary>s = 2[u &lt; (1 + m)/2] − 1, u ~ U(0, 1): +1 with probability (1 + m)/2 = σ(2η / T).</summary>
    public override Tensor sample_from_mean(Tensor mean, Generator? generator = null)
    {
        using var p = mean.add(1).div_(2);
        return torch.rand(mean.shape, dtype: mean.dtype, device: mean.device, generator: generator).lt_(p).mul_(2).sub_(1);
    }

    /// <inheritdoc />
    public override bool has_linear_bias => true;

    /// <inheritdoc />
    public override IReadOnlyList<double>? discrete_values { get; } = new double[] { -1.0, 1.0 };

    /// <summary>Requires every value in [−1, 1] (means are accepted as mean-field inputs) and no NaN.</summary>
    public override void check_values(Tensor x, string what)
    {
        if (x.numel() == 0) return;
        using var _ = torch.no_grad();
        double lo, hi;
        using (var min = x.min()) lo = min.ToDouble();
        using (var max = x.max()) hi = max.ToDouble();
        if (double.IsNaN(lo) || double.IsNaN(hi))
            throw new ArgumentException($"{what}: expected values in [−1, 1] for Spin units, got NaN.");
        if (lo < -1 || hi > 1)
            throw new ArgumentException($"{what}: expected values in [−1, 1] for Spin units, got values in [{lo:G4}, {hi:G4}].");
    }
}

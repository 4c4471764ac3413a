using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Functional;

/// <summary>Log-space helpers.</summary>
public static class LogSpace
{
    /// <summary>log Σ_i e^{x_i} over all elements, computed stably as m + log Σ e^{x_i − m}, m = max x. Returns a .NET number.</summary>
    public static double logsumexp(Tensor x)
    {
        using var flat = x.reshape(-1);
        using var l = flat.logsumexp(0);
        return l.ToDouble();
    }

    /// <summary>log( (1/n) Σ_i e^{x_i} ) = logsumexp(x) − log n, over all elements.</summary>
    public static double log_mean_exp(Tensor x) => logsumexp(x) - Math.Log(x.numel());

    /// <summary>Combines two log-sums: log(e^a + e^b), stable for ±∞.</summary>
    public static double log_add_exp(double a, double b)
    {
        if (double.IsNegativeInfinity(a)) return b;
        if (double.IsNegativeInfinity(b)) return a;
        var m = Math.Max(a, b);
        return m + Math.Log(Math.Exp(a - m) + Math.Exp(b - m));
    }
}

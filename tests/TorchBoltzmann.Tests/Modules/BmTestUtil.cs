using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Modules;

/// <summary>Small random general Boltzmann machines for the tests.</summary>
internal static class BmTestUtil
{
    /// <summary>A machine with w_ij, b_i ~ N(0, std²) on its connected pairs (float64 by default).</summary>
    public static BoltzmannMachine Random(int nv, int nh, ulong seed, double std = 0.8, Connectivity connectivity = Connectivity.Full,
                                         bool spins = false, int[]? hiddenLayers = null, ScalarType dtype = ScalarType.Float64)
    {
        using var g = new Generator(seed);
        var bm = boltzmann.BM(nv, nh, connectivity, hidden_layers: hiddenLayers, spins: spins, dtype: dtype, generator: g);
        using (torch.no_grad())
        {
            bm.reset_parameters(std, g);
            bm.bias.normal_(0, std, g);
        }
        return bm;
    }

    /// <summary>E(x) = −½ Σ_ij x_i W_ij x_j − Σ_i b_i x_i with plain loops over .NET arrays (an oracle independent of the tensor code).</summary>
    public static double LoopEnergy(double[,] w, double[] b, double[] x)
    {
        double e = 0;
        for (int i = 0; i < x.Length; i++)
        {
            e -= b[i] * x[i];
            for (int j = 0; j < x.Length; j++) e -= 0.5 * x[i] * w[i, j] * x[j];
        }
        return e;
    }

    public static double[,] Matrix(Tensor t)
    {
        var a = TestUtil.ToArray(t);
        int n = (int)t.shape[0];
        var m = new double[n, n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) m[i, j] = a[i * n + j];
        return m;
    }
}

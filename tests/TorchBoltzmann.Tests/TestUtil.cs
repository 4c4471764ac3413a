using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests;

/// <summary>Shared helpers: small random RBMs and brute-force enumeration over (v, h).</summary>
internal static class TestUtil
{
    /// <summary>An RBM with weights large enough that the distribution is far from uniform.</summary>
    public static RBM RandomRbm(int nv, int nh, ulong seed, double std = 0.7, ScalarType dtype = ScalarType.Float64)
    {
        using var g = new Generator(seed);
        var rbm = boltzmann.RBM(nv, nh, dtype: dtype, generator: g);
        using (torch.no_grad())
        {
            rbm.weight.normal_(0, std, g);
            rbm.visible_bias.normal_(0, std, g);
            rbm.hidden_bias.normal_(0, std, g);
        }
        return rbm;
    }

    /// <summary>All joint states: (V, H) row-aligned tensors covering {0,1}^nv × {0,1}^nh.</summary>
    public static (Tensor v, Tensor h) AllJointStates(int nv, int nh, ScalarType dtype = ScalarType.Float64)
    {
        using var vs = ExactEnumeration.all_binary_states(nv, dtype);
        using var hs = ExactEnumeration.all_binary_states(nh, dtype);
        long nV = vs.shape[0], nH = hs.shape[0];
        using var vi = torch.arange(nV).repeat_interleave(nH);
        using var hi = torch.arange(nH).repeat(nV);
        return (vs.index_select(0, vi), hs.index_select(0, hi));
    }

    /// <summary>log Z by brute force over all (v, h): logsumexp(−E(v, h)).</summary>
    public static double BruteLogZ(RBM rbm)
    {
        var (v, h) = AllJointStates(rbm.n_visible, rbm.n_hidden, rbm.dtype);
        using (v) using (h)
        using (torch.no_grad())
        {
            using var e = rbm.energy(v, h);
            using var ne = e.neg();
            using var l = ne.logsumexp(0);
            return l.ToDouble();
        }
    }

    public static double[] ToArray(Tensor t)
    {
        using var c = t.detach().cpu().to_type(ScalarType.Float64).reshape(-1);
        return c.data<double>().ToArray();
    }

    public static void AllClose(Tensor expected, Tensor actual, double tol, string what)
    {
        var e = ToArray(expected);
        var a = ToArray(actual);
        Assert.Equal(e.Length, a.Length);
        for (int i = 0; i < e.Length; i++)
            Assert.True(Math.Abs(e[i] - a[i]) <= tol * (1 + Math.Abs(e[i])), $"{what}[{i}]: expected {e[i]:G10}, got {a[i]:G10} (tol {tol})");
    }

    /// <summary>Tensors left alive on this thread by <paramref name="run"/> (DisposeScopeManager statistics).</summary>
    public static long LiveTensorsAfter(Action run)
    {
        DisposeScopeManager.Statistics.Reset();
        run();
        return DisposeScopeManager.Statistics.ThreadTotalLiveCount;
    }
}

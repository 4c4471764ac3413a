using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

/// <summary>Helpers of the DBN tests.</summary>
internal static class DbnTestUtil
{
    /// <summary>Exact equality: same shape and dtype, every element equal.</summary>
    public static bool Same(Tensor a, Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape) || a.dtype != b.dtype) return false;
        using var _ = torch.no_grad();
        using var eq = a.eq(b);
        using var all = eq.all();
        return all.item<bool>();
    }

    /// <summary>Asserts that two modules hold the same number of parameters and each pair is <see cref="Same"/>.</summary>
    public static void AssertSameParameters(nn.Module a, nn.Module b, string what)
    {
        var pa = a.parameters().ToList();
        var pb = b.parameters().ToList();
        Xunit.Assert.Equal(pa.Count, pb.Count);
        for (int i = 0; i < pa.Count; i++) Xunit.Assert.True(Same(pa[i], pb[i]), $"{what} (parameter {i})");
    }
}

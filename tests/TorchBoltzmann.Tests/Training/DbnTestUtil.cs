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
}

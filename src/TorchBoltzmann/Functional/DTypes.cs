using static TorchSharp.torch;

namespace TorchBoltzmann.Functional;

internal static class DTypes
{
    /// <summary>True for float16, bfloat16, float32 and float64.</summary>
    public static bool IsFloat(ScalarType t) => t is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;
}

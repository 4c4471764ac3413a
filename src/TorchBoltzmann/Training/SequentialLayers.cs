using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>The leaf modules of a <c>Sequential</c>, nested ones flattened, in forward order.</summary>
internal static class SequentialLayers
{
    /// <summary>
    /// Each non-<c>Sequential</c> module of <paramref name="sequential"/> in the order its forward runs them, with its
    /// dotted path as <c>state_dict</c> names it ("encoder.fc1"); a nested <c>Sequential</c> is walked, not returned.
    /// </summary>
    internal static IEnumerable<(string Name, nn.Module Module)> Flatten(TorchSharp.Modules.Sequential sequential, string prefix = "")
    {
        foreach (var (name, child) in sequential.named_children())
        {
            if (child is TorchSharp.Modules.Sequential inner)
                foreach (var item in Flatten(inner, prefix + name + ".")) yield return item;
            else yield return (prefix + name, child);
        }
    }
}

using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// The forward pass of a <c>Sequential</c> classifier with its <c>Linear</c> products in another dtype (see
/// <see cref="ClassifierTrainingOptions.ComputeDtype"/>): y = (x_c W_cᵀ + b_c) cast back to x's dtype, where ·_c is the
/// cast to the compute dtype; modules without parameters (sigmoids, dropout) run as they are, in the model's dtype.
/// Nested <c>Sequential</c>s (a pretrained encoder inside a larger model) are walked in forward order.
/// The parameters are the model's own, so gradients flow to them through the casts.
/// </summary>
internal static class MixedPrecision
{
    /// <exception cref="NotSupportedException">The model is not a <c>Sequential</c>, or a module other than <c>Linear</c> has parameters.</exception>
    internal static Func<Tensor, Tensor> Forward(nn.Module<Tensor, Tensor> model, ScalarType dtype)
    {
        if (model is not Sequential sequential)
            throw new NotSupportedException($"ComputeDtype = {dtype} needs a Sequential model (as DbnClassifier.Build makes); got a {model.GetType().Name}.");
        var steps = new List<Func<Tensor, Tensor>>();
        foreach (var (name, child) in SequentialLayers.Flatten(sequential))
        {
            if (child is Linear linear)
            {
                steps.Add(x =>
                {
                    using var scope = torch.NewDisposeScope();
                    var y = nn.functional.linear(x.to(dtype), linear.weight!.to(dtype), linear.bias?.to(dtype));   // x_c W_cᵀ + b_c
                    return y.to(x.dtype).MoveToOuterDisposeScope();
                });
            }
            else if (child.parameters().Any())
                throw new NotSupportedException($"ComputeDtype = {dtype} casts the products of Linear layers only; module '{name}' ({child.GetType().Name}) has parameters of its own.");
            else if (child is nn.Module<Tensor, Tensor> plain)
                steps.Add(plain.forward);
            else
                throw new NotSupportedException($"ComputeDtype = {dtype}: module '{name}' ({child.GetType().Name}) does not map a tensor to a tensor.");
        }
        return x =>
        {
            var h = x;
            foreach (var step in steps) h = step(h);
            return h;
        };
    }
}

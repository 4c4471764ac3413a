using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Modules;

/// <summary>
/// Converts RBMs into plain TorchSharp layers, so a pretrained RBM or DBN becomes the encoder of any model.
/// </summary>
public static class RbmEmbedding
{
    /// <summary>
    /// A <c>Linear(n_visible, n_hidden)</c> whose weight is a COPY of W (n_hidden × n_visible — the <c>nn.Linear</c>
    /// layout, no transpose) and whose bias is a copy of the hidden bias c, so that σ(linear(v)) = p(h = 1 | v) for
    /// Bernoulli hidden units. Same device and dtype as the RBM.
    /// </summary>
    public static Linear ToLinear(this RBM rbm)
    {
        ArgumentNullException.ThrowIfNull(rbm);
        var linear = nn.Linear(rbm.n_visible, rbm.n_hidden, hasBias: true, device: rbm.device, dtype: rbm.dtype);
        using var _ = torch.no_grad();
        linear.weight!.copy_(rbm.weight);
        linear.bias!.copy_(rbm.hidden_bias);
        return linear;
    }

    /// <summary><c>Sequential(fc1 = Linear, sigmoid1 = Sigmoid)</c> computing p(h = 1 | v) = σ(W v + c), with copied weights.</summary>
    public static Sequential ToEncoder(this RBM rbm)
        => nn.Sequential(("fc1", (nn.Module<Tensor, Tensor>)rbm.ToLinear()), ("sigmoid1", nn.Sigmoid()));

    /// <summary>
    /// Copies an RBM's W and c into an existing <c>Linear</c> (weight ← W, bias ← c) in place under no_grad, keeping
    /// the Linear's parameter objects (so optimizers already built over them stay valid).
    /// </summary>
    /// <exception cref="ArgumentException">The Linear's shape is not (n_hidden, n_visible), or it has no bias to take c
    /// (σ(W v) without c is not p(h | v)).</exception>
    public static void CopyInto(this RBM rbm, Linear linear)
    {
        ArgumentNullException.ThrowIfNull(rbm);
        ArgumentNullException.ThrowIfNull(linear);
        var w = linear.weight ?? throw new ArgumentException("linear: has no weight.", nameof(linear));
        if (w.shape[0] != rbm.n_hidden || w.shape[1] != rbm.n_visible)
            throw new ArgumentException($"linear: expected weight shape ({rbm.n_hidden}, {rbm.n_visible}), got ({string.Join(", ", w.shape)}).", nameof(linear));
        var b = linear.bias ?? throw new ArgumentException($"linear: expected a bias to take the RBM's hidden bias c (p(h | v) = σ(W v + c)), got a Linear({rbm.n_visible}, {rbm.n_hidden}) without one; build it with hasBias: true.", nameof(linear));
        using var _ = torch.no_grad();
        w.copy_(rbm.weight);
        b.copy_(rbm.hidden_bias);
    }
}

using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// The centering trick for RBMs (Montavon &amp; Müller 2012; Melchior, Fischer &amp; Wiskott 2016): the same model written
/// with offsets μ (visible) and λ (hidden) subtracted from the units,
/// <code>E_c(v, h) = −(h − λ)ᵀW(v − μ) − b_cᵀ(v − μ) − c_cᵀ(h − λ),</code>
/// trained by gradient steps in these centered coordinates. <see cref="RbmTrainer"/> uses it with
/// <see cref="RbmTrainingOptions.Centering"/>; this class holds the algebra, so that it can be checked on its own.
/// </summary>
/// <remarks>
/// <para><b>Same distribution.</b> Expanding E_c,
/// E_c = −hᵀWv − (b_c − Wᵀλ)ᵀv − (c_c − Wμ)ᵀh + (b_cᵀμ + c_cᵀλ − λᵀWμ), so E_c is the library's energy
/// E(v, h) = −hᵀWv − bᵀv − cᵀh with the same W and
/// <code>b = b_c − Wᵀλ,   c = c_c − Wμ</code>
/// up to a constant that cancels in p = e^{−E}/Z (<see cref="centered_biases"/> goes the other way). The trainer keeps
/// the model in the plain parameters (W, b, c); the offsets only change which direction a gradient step takes. Changing
/// the offsets therefore changes nothing in the model (in centered coordinates it is the reparametrisation
/// b_c ← b_c + Wᵀ(λ' − λ), c_c ← c_c + W(μ' − μ) of Melchior et al.'s Algorithm 1).</para>
/// <para><b>Centered gradient.</b> With G = ∂L/∂θ for the CD/PCD loss L = mean F(v⁰) − mean F(vᵏ) (the negative of the
/// log-likelihood gradient estimate), in the library's layout W: (n_hidden × n_visible):
/// <code>G_W = ⟨p(h|v)vᵀ⟩ₖ − ⟨p(h|v)vᵀ⟩₀,   G_b = ⟨v⟩ₖ − ⟨v⟩₀,   G_c = ⟨p(h|v)⟩ₖ − ⟨p(h|v)⟩₀.</code>
/// In centered coordinates ∂L/∂W = ⟨(p(h|v) − λ)(v − μ)ᵀ⟩ₖ − ⟨(p(h|v) − λ)(v − μ)ᵀ⟩₀, which expands to
/// <code>G_W^c = G_W − λ G_bᵀ − G_c μᵀ</code>
/// (Melchior et al. 2016: ∇W_c = ∇W − μ∇cᵀ − ∇bλᵀ in their visible × hidden layout), while ∂L/∂b_c = G_b and
/// ∂L/∂c_c = G_c. A step θ_c ← θ_c − η G^c, written in the plain parameters through b = b_c − Wᵀλ and c = c_c − Wμ, is
/// the step θ ← θ − η G' with
/// <code>G'_W = G_W^c,   G'_b = G_b − (G_W^c)ᵀλ,   G'_c = G_c − G_W^c μ</code>
/// which is what <see cref="center_gradients"/> writes. A weight decay term λ_d W included in G_W is decay in centered
/// coordinates. With an optimizer that keeps momentum, the momentum acts on G' (the same as momentum in centered
/// coordinates while the offsets stay fixed; the trainer moves λ slowly).</para>
/// </remarks>
public static class Centering
{
    /// <summary>
    /// Rewrites plain CD gradients (G_W, G_b, G_c as defined in the remarks) into the centered step expressed in the plain
    /// parameters, in place: G_W ← G_W − λG_bᵀ − G_cμᵀ, then G_b ← G_b − G_Wᵀλ and G_c ← G_c − G_W μ with the new G_W.
    /// </summary>
    /// <param name="grad_weight">G_W, (n_hidden, n_visible); overwritten.</param>
    /// <param name="grad_visible_bias">G_b, (n_visible); overwritten.</param>
    /// <param name="grad_hidden_bias">G_c, (n_hidden); overwritten.</param>
    /// <param name="visible_offset">μ, (n_visible).</param>
    /// <param name="hidden_offset">λ, (n_hidden).</param>
    /// <exception cref="ArgumentException">Shapes that do not fit together.</exception>
    public static void center_gradients(Tensor grad_weight, Tensor grad_visible_bias, Tensor grad_hidden_bias, Tensor visible_offset, Tensor hidden_offset)
    {
        ArgumentNullException.ThrowIfNull(grad_weight);
        long nh = grad_weight.shape[0], nv = grad_weight.shape[1];
        if (grad_visible_bias.shape.SequenceEqual(new[] { nv }) is false || grad_hidden_bias.shape.SequenceEqual(new[] { nh }) is false
            || visible_offset.shape.SequenceEqual(new[] { nv }) is false || hidden_offset.shape.SequenceEqual(new[] { nh }) is false)
            throw new ArgumentException($"center_gradients: expected G_b and μ of shape ({nv}) and G_c and λ of shape ({nh}) for G_W of shape ({nh}, {nv}), got ({string.Join(", ", grad_visible_bias.shape)}), ({string.Join(", ", visible_offset.shape)}), ({string.Join(", ", grad_hidden_bias.shape)}), ({string.Join(", ", hidden_offset.shape)}).");
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        grad_weight.sub_(torch.outer(hidden_offset, grad_visible_bias)).sub_(torch.outer(grad_hidden_bias, visible_offset));
        grad_visible_bias.sub_(grad_weight.t().mv(hidden_offset));
        grad_hidden_bias.sub_(grad_weight.mv(visible_offset));
    }

    /// <summary>The centered biases of <paramref name="rbm"/>'s model for offsets μ and λ: b_c = b + Wᵀλ, c_c = c + Wμ (new tensors).</summary>
    /// <param name="rbm">The model in plain parameters.</param>
    /// <param name="visible_offset">μ, (n_visible).</param>
    /// <param name="hidden_offset">λ, (n_hidden).</param>
    public static (Tensor visible_bias, Tensor hidden_bias) centered_biases(RBM rbm, Tensor visible_offset, Tensor hidden_offset)
    {
        ArgumentNullException.ThrowIfNull(rbm);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var w = rbm.weight.detach();
        var b = rbm.visible_bias.detach().add(w.t().mv(hidden_offset));
        var c = rbm.hidden_bias.detach().add(w.mv(visible_offset));
        return (b.MoveToOuterDisposeScope(), c.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The centered energy E_c(v, h) = −(h − λ)ᵀW(v − μ) − b_cᵀ(v − μ) − c_cᵀ(h − λ) per row (differentiable), for checks and
    /// for autograd of the centered parametrisation.
    /// </summary>
    /// <param name="v">Visible states, (B, n_visible).</param>
    /// <param name="h">Hidden states, (B, n_hidden).</param>
    /// <param name="weight">W, (n_hidden, n_visible).</param>
    /// <param name="visible_bias">b_c, (n_visible).</param>
    /// <param name="hidden_bias">c_c, (n_hidden).</param>
    /// <param name="visible_offset">μ, (n_visible).</param>
    /// <param name="hidden_offset">λ, (n_hidden).</param>
    /// <returns>Energies, (B).</returns>
    public static Tensor centered_energy(Tensor v, Tensor h, Tensor weight, Tensor visible_bias, Tensor hidden_bias, Tensor visible_offset, Tensor hidden_offset)
    {
        using var scope = torch.NewDisposeScope();
        var vc = v - visible_offset;
        var hc = h - hidden_offset;
        var e = (nn.functional.linear(vc, weight) * hc).sum(-1).neg() - vc.mv(visible_bias) - hc.mv(hidden_bias);
        return e.MoveToOuterDisposeScope();
    }
}

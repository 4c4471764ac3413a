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

    /// <summary>
    /// The centering trick for a deep Boltzmann machine (Montavon &amp; Müller 2012; Melchior, Fischer &amp; Wiskott 2016):
    /// with an offset μ_j per layer j = 0 (visible) … L, the centered energy
    /// <code>E_c = −Σ_{l=1..L} (x_l − μ_l)ᵀ W_l (x_{l−1} − μ_{l−1}) − Σ_{j=0..L} b_c,jᵀ (x_j − μ_j)</code>
    /// is the library's DBM energy with the same W_l and b_j = b_c,j − W_{j+1}ᵀμ_{j+1} − W_j μ_{j−1} (the terms that exist),
    /// up to a constant. From the plain gradients (G_W,l = ∂L/∂W_l in the layout (n_l × n_{l−1}), G_b,j = ∂L/∂b_j, which are
    /// also ∂L/∂b_c,j) this writes, in place, the centered step expressed in the plain parameters:
    /// <code>G^c_W,l = G_W,l − μ_l G_b,l−1ᵀ − G_b,l μ_{l−1}ᵀ   (every l, from the unmodified G_b)
    /// G'_b,j  = G_b,j − (G^c_W,j+1)ᵀ μ_{j+1} − G^c_W,j μ_{j−1}   (the terms that exist)</code>
    /// Each coupling is the RBM case of <see cref="center_gradients"/> (λ = μ_l, μ = μ_{l−1}); a middle layer's bias takes
    /// the corrections of both its couplings, since b_j depends on W_j and W_{j+1}.
    /// </summary>
    /// <param name="grad_weights">G_W,l for l = 1 … L, (n_l, n_{l−1}); overwritten.</param>
    /// <param name="grad_biases">G_b,j for j = 0 … L, (n_j); overwritten.</param>
    /// <param name="offsets">μ_j for j = 0 … L, (n_j).</param>
    /// <exception cref="ArgumentException">Counts or shapes that do not fit together.</exception>
    public static void center_dbm_gradients(IReadOnlyList<Tensor> grad_weights, IReadOnlyList<Tensor> grad_biases, IReadOnlyList<Tensor> offsets)
    {
        ArgumentNullException.ThrowIfNull(grad_weights);
        ArgumentNullException.ThrowIfNull(grad_biases);
        ArgumentNullException.ThrowIfNull(offsets);
        int L = grad_weights.Count;
        if (L < 1 || grad_biases.Count != L + 1 || offsets.Count != L + 1)
            throw new ArgumentException($"center_dbm_gradients: expected L ≥ 1 weight gradients and L + 1 bias gradients and offsets, got {grad_weights.Count}, {grad_biases.Count} and {offsets.Count}.");
        for (int l = 1; l <= L; l++)
        {
            long n = grad_weights[l - 1].shape[0], m = grad_weights[l - 1].shape[1];
            if (grad_weights[l - 1].dim() != 2 || !grad_biases[l].shape.SequenceEqual([n]) || !grad_biases[l - 1].shape.SequenceEqual([m])
                || !offsets[l].shape.SequenceEqual([n]) || !offsets[l - 1].shape.SequenceEqual([m]))
                throw new ArgumentException($"center_dbm_gradients: coupling {l} has G_W of shape ({string.Join(", ", grad_weights[l - 1].shape)}), which needs G_b and μ of layers {l - 1} and {l} of shapes ({m}) and ({n}).");
        }
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        for (int l = 1; l <= L; l++)
            grad_weights[l - 1].sub_(torch.outer(offsets[l], grad_biases[l - 1])).sub_(torch.outer(grad_biases[l], offsets[l - 1]));
        for (int j = 0; j <= L; j++)
        {
            if (j < L) grad_biases[j].sub_(grad_weights[j].t().mv(offsets[j + 1]));   // W_{j+1} couples j to j + 1
            if (j > 0) grad_biases[j].sub_(grad_weights[j - 1].mv(offsets[j - 1]));   // W_j couples j − 1 to j
        }
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

using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace TorchBoltzmann.Modules;

/// <summary>
/// The recognition (up) connections of one lower layer of an untied <see cref="DBN"/>: q(h^{l+1} = 1 | h^l) =
/// σ(R_l h^l + r_l), with R_l = <see cref="weight"/> (n_out × n_in, the <c>nn.Linear</c> layout of the RBM's W) and
/// r_l = <see cref="bias"/>.
/// </summary>
/// <remarks>
/// <para>Created by <see cref="DBN.untie"/> as exact copies of the RBM's W_l and hidden bias c_l; from then on the up-down
/// algorithm's sleep phase trains them apart from the generative weights (Hinton, Osindero &amp; Teh 2006, appendix B).
/// Its state_dict keys are <c>weight</c> and <c>bias</c>, so under the DBN they read <c>recognition.l.weight</c> and
/// <c>recognition.l.bias</c>.</para>
/// <para>Shapes: inputs (B, n_in) or (n_in); <c>forward</c> returns (B, n_out) or (n_out).</para>
/// </remarks>
public sealed class RecognitionLayer : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] private readonly Parameter _weight;
    [ComponentName(Name = "bias")] private readonly Parameter _bias;

    /// <summary>Creates a layer holding copies of <paramref name="weight"/> (n_out × n_in) and <paramref name="bias"/> (n_out).</summary>
    /// <exception cref="ArgumentException">The shapes do not fit each other.</exception>
    public RecognitionLayer(Tensor weight, Tensor bias) : base(nameof(RecognitionLayer))
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(bias);
        if (weight.dim() != 2 || bias.dim() != 1 || bias.shape[0] != weight.shape[0])
            throw new ArgumentException($"RecognitionLayer: expected weight (n_out, n_in) and bias (n_out), got ({string.Join(", ", weight.shape)}) and ({string.Join(", ", bias.shape)}).");
        using (torch.no_grad())
        {
            // Copies without a random initialisation first: creating the layer draws nothing from any generator.
            _weight = new Parameter(weight.detach().clone().DetachFromDisposeScope());
            _bias = new Parameter(bias.detach().clone().DetachFromDisposeScope());
        }
        RegisterComponents();
    }

    /// <summary>R_l, shape (n_out, n_in).</summary>
    public Parameter weight => _weight;
    /// <summary>r_l, shape (n_out).</summary>
    public Parameter bias => _bias;
    /// <summary>Input width n_in.</summary>
    public long n_in => _weight.shape[1];
    /// <summary>Output width n_out.</summary>
    public long n_out => _weight.shape[0];

    /// <summary>q(h = 1 | x) = σ(R x + r).</summary>
    public override Tensor forward(Tensor x)
    {
        using var net = nn.functional.linear(x, _weight, _bias);
        return net.sigmoid();
    }

    /// <summary>The sizes, PyTorch <c>extra_repr</c> style.</summary>
    public override string ToString() => $"RecognitionLayer(n_in={n_in}, n_out={n_out})";
}

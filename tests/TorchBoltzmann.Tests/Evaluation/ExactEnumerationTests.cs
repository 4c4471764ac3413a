using TorchBoltzmann.Evaluation;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Evaluation;

public class ExactEnumerationTests
{
    [Fact]
    public void LogPartition_OfALabelledRbm_EnumeratesTheHiddenLayer_AndEqualsTheSumOverOneHotLabels()
    {
        // Visible: 3 binary units + a 3-class label group (6 units, not enumerable as {0,1}⁶); hidden: 8 binary units, the
        // larger layer but the only one exact enumeration can run over.
        using var g = new Generator(11);
        using var rbm = boltzmann.RBM(6, 8, visible: new LabelledBernoulliUnits(3), dtype: ScalarType.Float64, generator: g);
        using (torch.no_grad())
            foreach (var p in rbm.parameters()) p.normal_(0, 0.7, g);
        // Independent oracle over the valid visible states, x ∈ {0,1}³ and y ∈ {e₀, e₁, e₂}: log Z = logsumexp −F([x; y]).
        using var xs = ExactEnumeration.all_binary_states(3, ScalarType.Float64);
        var rows = new List<Tensor>();
        for (int k = 0; k < 3; k++)
        {
            using var labels = torch.full(xs.shape[0], k, ScalarType.Int64);
            using var y = DBN.one_hot(labels, 3, ScalarType.Float64);
            rows.Add(torch.cat(new[] { xs, y }, 1));
        }
        using var v = torch.cat(rows, 0);
        foreach (var r in rows) r.Dispose();
        double expected;
        using (torch.no_grad())
        {
            using var f = rbm.free_energy(v);
            using var negF = f.neg();
            using var lse = negF.logsumexp(0);
            expected = lse.ToDouble();
        }
        Assert.Equal(expected, ExactEnumeration.log_partition(rbm), 10);
    }

    [Fact]
    public void LogPartition_WithoutAnEnumerableLayer_NamesTheLayerAndItsSize()
    {
        // Labelled visible layer and 26 hidden units (over the 2²⁴ limit): nothing to enumerate.
        using var rbm = boltzmann.RBM(30, 26, visible: new LabelledBernoulliUnits(3));
        var e = Assert.Throws<ArgumentException>(() => ExactEnumeration.log_partition(rbm));
        Assert.Contains("hidden layer: expected at most 2^24 states", e.Message);
        Assert.Contains("(26 Bernoulli units)", e.Message);
        // A binary visible layer small enough is enumerated when the hidden one is too large: with W, b, c = 0 every one
        // of the 2⁴⁰ joint states has energy 0, so log Z = 40 log 2.
        using var tall = boltzmann.RBM(10, 30, dtype: ScalarType.Float64);
        using (torch.no_grad()) tall.weight.zero_();
        Assert.Equal(40 * Math.Log(2), ExactEnumeration.log_partition(tall), 9);
    }
}

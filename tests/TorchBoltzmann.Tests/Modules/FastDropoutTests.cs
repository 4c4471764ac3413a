using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Modules;

public sealed class FastDropoutTests
{
    [Fact]
    public void Training_KeepsEachUnitWithProbabilityQ_ScaledByOneOverQ_AndEvalIsTheIdentity()
    {
        const double p = 0.2, q = 1 - p;
        torch.manual_seed(3);
        using var x = torch.rand(1000, 1000) + 0.5;   // no zeros in x: a zero in y is a dropped unit
        using var drop = new FastDropout(p);
        using var y = drop.forward(x);
        using var kept = y.ne(0);
        // Kept fraction: binomial, sd √(pq/n) = 4·10⁻⁴; 6 sd.
        double fraction = kept.to(ScalarType.Float64).mean().ToDouble();
        Assert.InRange(fraction, q - 0.0024, q + 0.0024);
        // Kept units are exactly x/q, dropped ones exactly 0.
        using var expected = torch.where(kept, x / q, torch.zeros_like(x));
        TestUtil.AllClose(expected, y, 1e-6, "y = x ⊙ m / q");
        // E[y] = x: the mean of y/x is 1 within 6 sd (sd of m/q is √(p/q)/√n = 5·10⁻⁴).
        Assert.InRange((y / x).mean().ToDouble(), 1 - 0.003, 1 + 0.003);

        drop.eval();
        using var same = drop.forward(x);
        Assert.True(same.eq(x).all().item<bool>(), "eval mode: y = x");
    }

    [Fact]
    public void Gradient_IsTheMaskOverQ_AndTheMasksFollowTheGlobalSeed()
    {
        using var drop = new FastDropout(0.5);
        using var x = torch.rand(50, 40).add_(0.1).requires_grad_();
        torch.manual_seed(11);
        using var y = drop.forward(x);
        y.sum().backward();
        using var mask = y.detach().ne(0).to(ScalarType.Float32) * 2.0;
        TestUtil.AllClose(mask, x.grad!, 0, "∂Σy/∂x = m / q");

        torch.manual_seed(11);
        using var again = drop.forward(x.detach());
        Assert.True(again.eq(y.detach()).all().item<bool>(), "same seed, same mask");
        using var other = drop.forward(x.detach());
        Assert.False(other.eq(y.detach()).all().item<bool>(), "the next draw differs");
    }

    [Fact]
    public void BadProbability_IsRejected_AndAClassifierWithItRoundTripsThroughCheckpoint()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new FastDropout(1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FastDropout(-0.1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FastDropout(double.NaN));
        using var ints = torch.ones(3, ScalarType.Int64);
        Assert.Throws<ArgumentException>(() => new FastDropout(0.5).forward(ints));

        using var g = new Generator(4);
        using var clf = DbnClassifier.Build([784, 16], 10, input_dropout: 0.2, hidden_dropout: 0.5, generator: g);
        using var dir = new TorchBoltzmann.Tests.Data.TempDirectory();
        var path = dir.File("clf.pt");
        Checkpoint.Save(clf, path);
        using var loaded = (TorchSharp.Modules.Sequential)Checkpoint.Load(path);
        var drops = loaded.named_children().Where(c => c.module is FastDropout).Select(c => (c.name, ((FastDropout)c.module).p)).ToList();
        Assert.Equal([("dropout_in", 0.2), ("dropout1", 0.5)], drops);
    }
}

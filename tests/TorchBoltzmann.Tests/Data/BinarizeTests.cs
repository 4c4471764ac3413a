using TorchBoltzmann.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Data;

public sealed class BinarizeTests
{
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void Threshold_GivesExactZerosAndOnes(ScalarType dtype)
    {
        using var x = torch.tensor(new double[] { 0.0, 0.2, 0.5, 0.51, 0.99, 1.0 }, dtype: dtype);
        using var y = Binarize.Threshold(x);
        Assert.Equal(dtype, y.dtype);
        Assert.Equal(new double[] { 0, 0, 0, 1, 1, 1 }, y.to_type(ScalarType.Float64).data<double>().ToArray());

        using var z = Binarize.Threshold(x, 0.1);
        Assert.Equal(new double[] { 0, 1, 1, 1, 1, 1 }, z.to_type(ScalarType.Float64).data<double>().ToArray());
    }

    [Fact]
    public void Stochastic_MeanMatchesInputMean_AndIsReproducible()
    {
        // 10^6 Bernoulli draws: the standard error of the mean is at most 0.5/1000 = 5e-4; tolerance 5e-3 is 10 sigma.
        const double tolerance = 5e-3;
        using var g0 = new Generator(7);
        using var x = torch.rand(new long[] { 1000, 1000 }, generator: g0);

        using var g1 = new Generator(42);
        using var y1 = Binarize.Stochastic(x, g1);
        Assert.Equal(ScalarType.Float32, y1.dtype);
        using (var nonBinary = y1.ne(0).logical_and_(y1.ne(1)))
        {
            Assert.False(nonBinary.any().item<bool>());
        }

        double inputMean = x.mean().item<float>();
        double outputMean = y1.mean().item<float>();
        Assert.InRange(outputMean, inputMean - tolerance, inputMean + tolerance);

        // Constant p = 0.3: the mean must be near 0.3.
        using var p = torch.full(new long[] { 1000, 1000 }, 0.3f);
        using var g3 = new Generator(3);
        using var yp = Binarize.Stochastic(p, g3);
        Assert.InRange(yp.mean().item<float>(), 0.3 - tolerance, 0.3 + tolerance);

        using var g2 = new Generator(42);
        using var y2 = Binarize.Stochastic(x, g2);
        Assert.True(y1.eq(y2).all().item<bool>());

        using var g4 = new Generator(43);
        using var y4 = Binarize.Stochastic(x, g4);
        Assert.False(y1.eq(y4).all().item<bool>());
    }

    [Fact]
    public void Stochastic_ZeroAndOneAreDeterministic()
    {
        using var x = torch.tensor(new float[] { 0, 1, 0, 1 });
        using var g = new Generator(1);
        using var y = Binarize.Stochastic(x, g);
        Assert.Equal(new float[] { 0, 1, 0, 1 }, y.data<float>().ToArray());
    }

    [Theory]
    [InlineData(-0.25, "min -0.25")]
    [InlineData(1.5, "max 1.5")]
    public void OutOfRange_Throws(double bad, string expectedFragment)
    {
        using var x = torch.tensor(new double[] { 0.5, bad, 0.75 });
        var ex = Assert.Throws<ArgumentException>(() => Binarize.Stochastic(x));
        Assert.Contains("[0, 1]", ex.Message);
        Assert.Contains(expectedFragment, ex.Message);
        Assert.Throws<ArgumentException>(() => Binarize.Threshold(x));
    }

    [Fact]
    public void NaN_And_IntegerInput_Throw()
    {
        using var nan = torch.tensor(new float[] { 0.5f, float.NaN });
        var ex = Assert.Throws<ArgumentException>(() => Binarize.Stochastic(nan));
        Assert.Contains("NaN", ex.Message);

        using var ints = torch.tensor(new long[] { 0, 1 });
        Assert.Throws<ArgumentException>(() => Binarize.Threshold(ints));
    }
}

using TorchBoltzmann.Data;

namespace TorchBoltzmann.Tests.Data;

public sealed class SyntheticDataTests
{
    private static bool IsBarsOrStripes(float[] p, int side)
    {
        bool stripes = true, bars = true;
        for (int r = 0; r < side; r++)
        {
            for (int c = 0; c < side; c++)
            {
                stripes &= p[r * side + c] == p[r * side];  // each row uniform
                bars &= p[r * side + c] == p[c];            // each column uniform
            }
        }

        return (stripes || bars) && p.All(v => v is 0f or 1f);
    }

    [Theory]
    [InlineData(1, 2)]
    [InlineData(3, 14)]
    [InlineData(4, 30)]
    public void BarsAndStripes_AllDistinctValidPatterns(int side, int expectedCount)
    {
        using var t = SyntheticData.BarsAndStripes(side);
        Assert.Equal(new long[] { expectedCount, side * side }, t.shape);
        Assert.Equal(TorchSharp.torch.ScalarType.Float32, t.dtype);

        float[] all = t.data<float>().ToArray();
        var rows = Enumerable.Range(0, expectedCount).Select(i => all.AsSpan(i * side * side, side * side).ToArray()).ToList();
        Assert.All(rows, r => Assert.True(IsBarsOrStripes(r, side), string.Join(",", r)));
        Assert.Equal(expectedCount, rows.Select(r => string.Join(",", r)).Distinct().Count());
        Assert.Single(rows, r => r.All(v => v == 0f));
        Assert.Single(rows, r => r.All(v => v == 1f));
    }

    [Fact]
    public void BarsAndStripes_RejectsBadSide()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SyntheticData.BarsAndStripes(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => SyntheticData.BarsAndStripes(SyntheticData.MaxBarsAndStripesSide + 1));
    }
}

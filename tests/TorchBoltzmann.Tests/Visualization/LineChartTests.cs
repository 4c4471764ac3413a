using SkiaSharp;
using TorchBoltzmann.Visualization;
using static TorchBoltzmann.Tests.Visualization.PngTestHelpers;

namespace TorchBoltzmann.Tests.Visualization;

public class LineChartTests
{
    private static readonly SKColor Magenta = new(255, 0, 255);

    // The legend swatch alone is a few dozen pixels; a line across the plot is hundreds.
    private const int LinePixels = 300;

    private static double[] Range(int n) => Enumerable.Range(0, n).Select(i => (double)i).ToArray();

    private static ChartSpec Spec(params Series[] series) =>
        new("Reconstruction error", "epoch", "MSE", series, 640, 400);

    [Fact]
    public void Encode_DecodesToRequestedSize()
    {
        var y = Range(20).Select(i => Math.Exp(-i / 5)).ToArray();
        using var bitmap = Decode(LineChart.Encode(Spec(new Series("train", Range(20), y))));
        Assert.Equal(640, bitmap.Width);
        Assert.Equal(400, bitmap.Height);

        using var defaultSize = Decode(LineChart.Encode(new ChartSpec("t", "x", "y", [new Series("a", [0, 1], [1, 0])])));
        Assert.Equal(800, defaultSize.Width);
        Assert.Equal(500, defaultSize.Height);
    }

    [Fact]
    public void Encode_SeriesColourAppears_OnlyWhenTheLineIsDrawn()
    {
        var x = Range(50);
        var drawn = new Series("drawn", x, x.Select(v => Math.Sin(v / 8)).ToArray()) { Color = Magenta };
        using var withLine = Decode(LineChart.Encode(Spec(drawn)));
        Assert.True(CountNear(withLine, Magenta, 8) > LinePixels, "the magenta line should cover many pixels");

        // Same series with every point NaN: only the legend swatch is magenta.
        var nothing = new Series("drawn", x, x.Select(_ => double.NaN).ToArray()) { Color = Magenta };
        var other = new Series("other", x, x.Select(v => v * 2).ToArray());
        using var withoutLine = Decode(LineChart.Encode(Spec(nothing, other)));
        var count = CountNear(withoutLine, Magenta, 8);
        Assert.InRange(count, 1, LinePixels);
    }

    [Fact]
    public void Encode_DefaultPalette_GivesDistinctColours()
    {
        var x = Range(30);
        var a = new Series("a", x, x.Select(v => v).ToArray());
        var b = new Series("b", x, x.Select(v => 30 - v).ToArray());
        using var bitmap = Decode(LineChart.Encode(Spec(a, b)));
        Assert.NotEqual(LineChart.Palette[0], LineChart.Palette[1]);
        Assert.True(CountNear(bitmap, LineChart.Palette[0], 6) > LinePixels);
        Assert.True(CountNear(bitmap, LineChart.Palette[1], 6) > LinePixels);
    }

    [Fact]
    public void Encode_NaNPoints_AreSkipped()
    {
        var x = Range(40);
        var y = x.Select(v => v % 7 == 3 ? double.NaN : Math.Sqrt(v)).ToArray();
        y[0] = double.PositiveInfinity;
        var xs = x.ToArray();
        xs[10] = double.NaN;
        using var bitmap = Decode(LineChart.Encode(Spec(new Series("gappy", xs, y) { Color = Magenta })));
        Assert.Equal(640, bitmap.Width);
        Assert.True(CountNear(bitmap, Magenta, 8) > LinePixels);
    }

    [Fact]
    public void Encode_ConstantSeries_SinglePoint_AndEmpty_DoNotThrow()
    {
        using var constant = Decode(LineChart.Encode(Spec(new Series("flat", Range(10), Enumerable.Repeat(0.25, 10).ToArray()) { Color = Magenta })));
        Assert.True(CountNear(constant, Magenta, 8) > LinePixels, "a constant series is a horizontal line across the plot");

        using var zero = Decode(LineChart.Encode(Spec(new Series("zero", Range(10), new double[10]))));
        using var single = Decode(LineChart.Encode(Spec(new Series("one", [3.0], [7.0]))));
        using var emptySeries = Decode(LineChart.Encode(Spec(new Series("none", [], []))));
        using var noSeries = Decode(LineChart.Encode(Spec()));
        using var huge = Decode(LineChart.Encode(Spec(new Series("huge", [0, 1], [-1e300, 1e300]))));
        Assert.Equal(400, single.Height);
        Assert.Equal(400, noSeries.Height);
    }

    [Fact]
    public void Encode_WithoutAnyFont_StillDrawsLines()
    {
        ChartFonts.NoFont = true;
        try
        {
            var x = Range(30);
            using var bitmap = Decode(LineChart.Encode(Spec(new Series("a", x, x) { Color = Magenta })));
            Assert.True(CountNear(bitmap, Magenta, 8) > LinePixels);
        }
        finally
        {
            ChartFonts.NoFont = false;
        }
    }

    [SkippableFact(DisplayName = "LineChartTests.Encode_WithAFont_DrawsTheTitle (runs only where a usable font is installed)")]
    public void Encode_WithAFont_DrawsTheTitle()
    {
        Skip.If(ChartFonts.Typeface is null, "no usable font on this machine");
        static int DarkPixelsInTitleBand(byte[] png)
        {
            using var bitmap = Decode(png);
            var n = 0;
            for (var y = 0; y < 30; y++)
                for (var x = 0; x < bitmap.Width; x++)
                    if (Luminance(bitmap.GetPixel(x, y)) < 128) n++;
            return n;
        }
        var spec = new ChartSpec("Learning curve", "", "", [new Series("a", [0, 1], [0, 1])], 400, 300);
        var withTitle = DarkPixelsInTitleBand(LineChart.Encode(spec));
        Assert.True(withTitle > 20, $"title should draw dark pixels; got {withTitle} (typeface {ChartFonts.Typeface?.FamilyName})");
        ChartFonts.NoFont = true;
        try
        {
            Assert.Equal(0, DarkPixelsInTitleBand(LineChart.Encode(spec)));
        }
        finally
        {
            ChartFonts.NoFont = false;
        }
    }

    [Fact]
    public void Encode_InvalidSpec_Throws()
    {
        var e = Assert.Throws<ArgumentException>(() => LineChart.Encode(Spec(new Series("bad", [0, 1, 2], [1, 2]))));
        Assert.Contains("3 X", e.Message);
        Assert.Contains("2 Y", e.Message);
        Assert.Throws<ArgumentException>(() => LineChart.Encode(new ChartSpec("t", "x", "y", [], 50, 400)));
        Assert.Throws<ArgumentNullException>(() => LineChart.Encode(null!));
    }

    [Fact]
    public void Save_WritesPngAtomically()
    {
        var dir = NewTempDirectory();
        try
        {
            var path = Path.Combine(dir, "curves", "loss.png");
            LineChart.Save(path, Spec(new Series("a", [0, 1, 2], [3, 1, 2])));
            Assert.Equal(new[] { path }, Directory.GetFiles(Path.GetDirectoryName(path)!));
            Assert.True(File.ReadAllBytes(path).AsSpan().StartsWith(Signature));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData(0, 0.93, 6, 0, 1, 0.2)]
    [InlineData(0.013, 0.087, 6, 0.01, 0.09, 0.01)]
    [InlineData(0.0132, 0.0137, 6, 0.0132, 0.0137, 0.0001)]
    [InlineData(0, 59, 4, 0, 60, 20)]
    [InlineData(-3, 97, 6, -20, 100, 20)]
    [InlineData(0, 199, 10, 0, 200, 20)]
    public void NiceScale_CoversDataWithRoundTicks(double min, double max, int maxTicks, double lo, double hi, double step)
    {
        var scale = NiceScale.Create(min, max, maxTicks);
        Assert.Equal(lo, scale.Min, 9);
        Assert.Equal(hi, scale.Max, 9);
        Assert.Equal(step, scale.Step, 9);
        var ticks = scale.Ticks().ToArray();
        Assert.Equal(lo, ticks[0], 9);
        Assert.Equal(hi, ticks[^1], 9);
        Assert.All(ticks, t => Assert.Equal(Math.Round(t / step), t / step, 9));
    }

    [Theory]
    [InlineData(5.0)]
    [InlineData(0.0)]
    [InlineData(-0.001)]
    public void NiceScale_ConstantData_GetsARangeAroundIt(double value)
    {
        var scale = NiceScale.Create(value, value, 6);
        Assert.True(scale.Min < value && value < scale.Max);
        Assert.True(scale.Step > 0 && double.IsFinite(scale.Step));
        Assert.InRange(scale.TickCount, 2, 20);
    }

    [Fact]
    public void NiceScale_FormatsWithTheStepsDecimals()
    {
        var scale = NiceScale.Create(0, 0.93, 6);
        Assert.Equal("0.4", scale.Format(scale.Ticks().ElementAt(2)));
        Assert.Equal("0", NiceScale.Create(0, 199, 10).Format(0));
        Assert.Equal("120", NiceScale.Create(0, 199, 10).Format(120));
    }
}

using SkiaSharp;
using TorchBoltzmann.Visualization;
using static TorchBoltzmann.Tests.Visualization.PngTestHelpers;

namespace TorchBoltzmann.Tests.Visualization;

public class ConfusionMatrixImageTests
{
    private static readonly int[,] DiagonalHeavy =
    {
        { 50, 2, 1 },
        { 3, 40, 2 },
        { 0, 1, 60 },
    };

    /// <summary>A pixel inside cell (row, col), near its top-left corner (away from the centred count).</summary>
    private static SKColor CellPixel(SKBitmap bitmap, int row, int col, int cellSize = 48) =>
        bitmap.GetPixel(ConfusionMatrixImage.LeftMargin + col * cellSize + 5, ConfusionMatrixImage.TopMargin + row * cellSize + 5);

    [Theory]
    [InlineData(3, 48)]
    [InlineData(10, 32)]
    [InlineData(1, 16)]
    public void Encode_DecodesToExpectedSize(int k, int cellSize)
    {
        var counts = new int[k, k];
        for (var i = 0; i < k; i++) counts[i, i] = i + 1;
        using var bitmap = Decode(ConfusionMatrixImage.Encode(counts, cellSize: cellSize));
        Assert.Equal(100 + k * cellSize + 10, bitmap.Width);
        Assert.Equal(56 + k * cellSize + 10, bitmap.Height);
    }

    [Fact]
    public void Encode_DiagonalHeavy_DiagonalCellsAreDarkerBlue()
    {
        using var bitmap = Decode(ConfusionMatrixImage.Encode(DiagonalHeavy, ["zero", "one", "two"]));
        for (var r = 0; r < 3; r++)
        {
            var diagonal = CellPixel(bitmap, r, r);
            Assert.True(Luminance(diagonal) < 100, $"diagonal cell {r} should be dark; got {diagonal}");
            Assert.True(diagonal.Blue > diagonal.Red, $"diagonal cell {r} should be blue; got {diagonal}");
            for (var c = 0; c < 3; c++)
            {
                if (c == r) continue;
                var off = CellPixel(bitmap, r, c);
                Assert.True(Luminance(off) > 200, $"off-diagonal cell ({r}, {c}) should be light; got {off}");
                Assert.True(Luminance(off) > Luminance(diagonal) + 100);
            }
        }
        // A zero count is the lightest colour of the map.
        Assert.Equal(new SKColor(0xf7, 0xfb, 0xff), CellPixel(bitmap, 2, 0));
    }

    [Fact]
    public void Encode_ColoursByRowShare_NotByRawCount()
    {
        // Row 1 has few samples but all on the diagonal: as dark as row 0's diagonal.
        int[,] counts = { { 900, 100 }, { 0, 5 } };
        using var bitmap = Decode(ConfusionMatrixImage.Encode(counts));
        Assert.True(Luminance(CellPixel(bitmap, 1, 1)) < Luminance(CellPixel(bitmap, 0, 0)) + 1);
        Assert.True(Luminance(CellPixel(bitmap, 1, 0)) > 240);
    }

    [Fact]
    public void Encode_WithoutFont_StillDrawsCells()
    {
        ChartFonts.NoFont = true;
        try
        {
            using var bitmap = Decode(ConfusionMatrixImage.Encode(DiagonalHeavy));
            Assert.True(Luminance(CellPixel(bitmap, 0, 0)) < 100);
        }
        finally
        {
            ChartFonts.NoFont = false;
        }
    }

    [Fact]
    public void Encode_InvalidInput_Throws()
    {
        var e = Assert.Throws<ArgumentException>(() => ConfusionMatrixImage.Encode(new int[2, 3]));
        Assert.Contains("2×3", e.Message);
        Assert.Throws<ArgumentException>(() => ConfusionMatrixImage.Encode(new int[0, 0]));
        Assert.Throws<ArgumentException>(() => ConfusionMatrixImage.Encode(new[,] { { 1, -1 }, { 0, 2 } }));
        var e2 = Assert.Throws<ArgumentException>(() => ConfusionMatrixImage.Encode(DiagonalHeavy, ["a", "b"]));
        Assert.Contains("3 labels", e2.Message);
    }

    [Fact]
    public void Save_WritesPngAtomically()
    {
        var dir = NewTempDirectory();
        try
        {
            var path = Path.Combine(dir, "confusion.png");
            ConfusionMatrixImage.Save(path, DiagonalHeavy);
            Assert.Equal(new[] { path }, Directory.GetFiles(dir));
            Assert.True(File.ReadAllBytes(path).AsSpan().StartsWith(Signature));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}

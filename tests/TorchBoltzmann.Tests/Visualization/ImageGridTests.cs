using SkiaSharp;
using TorchBoltzmann.Visualization;
using TorchSharp;
using static TorchBoltzmann.Tests.Visualization.PngTestHelpers;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Visualization;

public class ImageGridTests
{
    private static byte Grey(SKBitmap bitmap, int x, int y)
    {
        var c = bitmap.GetPixel(x, y);
        Assert.Equal(c.Red, c.Green);
        Assert.Equal(c.Red, c.Blue);
        return c.Red;
    }

    [Theory]
    [InlineData(7, 3, 4, 5, 3, 2, 3 * 15 + 2 * 2, 3 * 12 + 2 * 2)] // 3 columns, 3 rows
    [InlineData(10, null, 4, 5, 2, 1, 4 * 10 + 3, 3 * 8 + 2)]     // default columns = ceil(sqrt(10)) = 4, 3 rows
    [InlineData(1, null, 28, 28, 1, 5, 28, 28)]                     // one tile: no padding at all
    [InlineData(4, 4, 3, 3, 2, 0, 4 * 6, 6)]                        // one row, no padding
    public void EncodeTiles_ImageSizeMatchesGrid(int n, int? columns, int h, int w, int scale, int padding, int width, int height)
    {
        using var images = torch.rand(n, h * w);
        var png = ImageGrid.EncodeTiles(images, h, w, TileScaling.Unit, columns, scale, padding);
        using var bitmap = Decode(png);
        Assert.Equal(width, bitmap.Width);
        Assert.Equal(height, bitmap.Height);
    }

    [Fact]
    public void EncodeTiles_Unit_OneIsWhite_ZeroIsBlack_OutOfRangeClamped()
    {
        // Three 2×2 tiles in one row, scale 2, padding 1: tile n starts at x = n·(2·2 + 1).
        var data = new float[]
        {
            1, 1, 1, 1,          // tile 0: white
            0, 0, 0, 0,          // tile 1: black
            2, -1, 0.5f, 1,      // tile 2: clamped, mid grey
        };
        using var images = torch.tensor(data).reshape(3, 2, 2);
        using var bitmap = Decode(ImageGrid.EncodeTiles(images, 2, 2, TileScaling.Unit, columns: 3, scale: 2, padding: 1));
        Assert.Equal(3 * 4 + 2, bitmap.Width);
        Assert.Equal(4, bitmap.Height);
        for (var y = 0; y < 4; y++)
        {
            for (var x = 0; x < 4; x++)
            {
                Assert.Equal(255, Grey(bitmap, x, y));
                Assert.Equal(0, Grey(bitmap, 5 + x, y));
            }
            Assert.Equal(ImageGrid.UnitPaddingGrey, Grey(bitmap, 4, y));
            Assert.Equal(ImageGrid.UnitPaddingGrey, Grey(bitmap, 9, y));
        }
        // Tile 2, pixel (row 0, col 0) = 2 → 255; (0, 1) = −1 → 0; (1, 0) = 0.5 → 128; (1, 1) = 1 → 255. Each is 2×2.
        Assert.Equal(255, Grey(bitmap, 10, 0));
        Assert.Equal(255, Grey(bitmap, 11, 1));
        Assert.Equal(0, Grey(bitmap, 12, 0));
        Assert.Equal(0, Grey(bitmap, 13, 1));
        Assert.Equal(128, Grey(bitmap, 10, 2));
        Assert.Equal(255, Grey(bitmap, 13, 3));
    }

    [Fact]
    public void EncodeTiles_PerTile_MapsEachTileMinToBlackAndMaxToWhite()
    {
        var data = new float[]
        {
            -3, -1, 0, 5,        // tile 0: min −3, max 5
            10, 20, 30, 40,      // tile 1: min 10, max 40
            7, 7, 7, 7,          // tile 2: constant → mid grey
        };
        using var images = torch.tensor(data).reshape(3, 4);
        using var bitmap = Decode(ImageGrid.EncodeTiles(images, 2, 2, TileScaling.PerTile, columns: 3, scale: 1, padding: 1));
        // Tile n at x = 3n; pixel (r, c) at (3n + c, r).
        Assert.Equal(0, Grey(bitmap, 0, 0));
        Assert.Equal(64, Grey(bitmap, 1, 0));      // (−1 + 3) / 8 · 255 = 63.75
        Assert.Equal(255, Grey(bitmap, 1, 1));
        Assert.Equal(0, Grey(bitmap, 3, 0));
        Assert.Equal(85, Grey(bitmap, 4, 0));      // 10/30 · 255
        Assert.Equal(255, Grey(bitmap, 4, 1));
        Assert.Equal(128, Grey(bitmap, 6, 0));
        Assert.Equal(128, Grey(bitmap, 7, 1));
        Assert.Equal(ImageGrid.ScaledPaddingGrey, Grey(bitmap, 2, 0)); // padding column between tiles 0 and 1
    }

    [Fact]
    public void EncodeTiles_Global_SharesOneMinMax()
    {
        using var images = torch.tensor(new float[] { 0, 10, 10, 10, 20, 20, 20, 40 }).reshape(2, 4);
        using var bitmap = Decode(ImageGrid.EncodeTiles(images, 2, 2, TileScaling.Global, columns: 2, scale: 1, padding: 1));
        Assert.Equal(0, Grey(bitmap, 0, 0));       // global min 0
        Assert.Equal(64, Grey(bitmap, 1, 0));      // 10/40
        Assert.Equal(128, Grey(bitmap, 3, 0));     // 20/40 (not black, as PerTile would give)
        Assert.Equal(255, Grey(bitmap, 4, 1));     // global max 40
    }

    [Fact]
    public void EncodeTiles_FlatAndThreeDimensionalInputsAgree_AnyDtype()
    {
        using var flat = torch.rand(5, 12, dtype: ScalarType.Float64);
        using var cube = flat.reshape(5, 3, 4);
        using var withGrad = flat.to_type(ScalarType.Float32).requires_grad_();
        var a = ImageGrid.EncodeTiles(flat, 3, 4);
        var b = ImageGrid.EncodeTiles(cube, 3, 4);
        var c = ImageGrid.EncodeTiles(withGrad, 3, 4);
        Assert.Equal(a, b);
        Assert.Equal(a, c);
    }

    [Fact]
    public void EncodeTiles_WrongWidth_NamesExpectedAndGot()
    {
        using var images = torch.zeros(2, 780);
        var e = Assert.Throws<ArgumentException>(() => ImageGrid.EncodeTiles(images, 28, 28));
        Assert.Contains("784", e.Message);
        Assert.Contains("[2, 780]", e.Message);
        Assert.Equal("images", e.ParamName);
    }

    [Fact]
    public void EncodeTiles_WrongTileShapeOrRank_Throws()
    {
        using var cube = torch.zeros(2, 28, 27);
        var e = Assert.Throws<ArgumentException>(() => ImageGrid.EncodeTiles(cube, 28, 28));
        Assert.Contains("[N, 28, 28]", e.Message);
        Assert.Contains("[2, 28, 27]", e.Message);

        using var vector = torch.zeros(784);
        var e1 = Assert.Throws<ArgumentException>(() => ImageGrid.EncodeTiles(vector, 28, 28));
        Assert.Contains("[784]", e1.Message);
    }

    [Fact]
    public void EncodeTiles_NoImages_Throws()
    {
        using var empty = torch.zeros(0, 16);
        var e = Assert.Throws<ArgumentException>(() => ImageGrid.EncodeTiles(empty, 4, 4));
        Assert.Contains("at least one image", e.Message);
        Assert.Contains("[0, 16]", e.Message);
    }

    [Fact]
    public void EncodeTiles_NaN_Throws()
    {
        using var images = torch.rand(3, 16);
        images[1, 5] = torch.tensor(float.NaN);
        var e = Assert.Throws<ArgumentException>(() => ImageGrid.EncodeTiles(images, 4, 4, TileScaling.PerTile));
        Assert.Contains("NaN", e.Message);
        Assert.Contains("image 1", e.Message);
    }

    [Fact]
    public void EncodeTiles_BadArguments_Throw()
    {
        using var images = torch.rand(3, 16);
        Assert.ThrowsAny<ArgumentException>(() => ImageGrid.EncodeTiles(images, 4, 4, scale: 0));
        Assert.ThrowsAny<ArgumentException>(() => ImageGrid.EncodeTiles(images, 4, 4, padding: -1));
        Assert.ThrowsAny<ArgumentException>(() => ImageGrid.EncodeTiles(images, 4, 4, columns: 0));
    }

    [Fact]
    public void SaveTiles_WritesPngAtomically_CreatesDirectory_Overwrites()
    {
        var dir = Path.Combine(NewTempDirectory(), "nested");
        try
        {
            var path = Path.Combine(dir, "samples.png");
            using var images = torch.rand(6, 9);
            ImageGrid.SaveTiles(path, images, 3, 3);
            ImageGrid.SaveTiles(path, images, 3, 3, TileScaling.Global, columns: 2); // overwrite
            Assert.Equal(new[] { path }, Directory.GetFiles(dir));
            var bytes = File.ReadAllBytes(path);
            Assert.True(bytes.AsSpan().StartsWith(Signature));
            using var bitmap = Decode(bytes);
            Assert.Equal(2 * 6 + 1, bitmap.Width);
            Assert.Equal(3 * 6 + 2, bitmap.Height);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(Path.GetDirectoryName(dir)!, recursive: true);
        }
    }

    [Fact]
    public void SaveTiles_InvalidInput_LeavesNothingBehind()
    {
        var dir = NewTempDirectory();
        try
        {
            using var images = torch.zeros(2, 15);
            Assert.Throws<ArgumentException>(() => ImageGrid.SaveTiles(Path.Combine(dir, "x.png"), images, 4, 4));
            Assert.True(!Directory.Exists(dir) || Directory.GetFiles(dir).Length == 0);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void SaveFilters_DrawsAtMostMaxTiles_PerTileScaled()
    {
        var dir = NewTempDirectory();
        try
        {
            var path = Path.Combine(dir, "filters.png");
            using var weight = torch.randn(150, 16) * 0.01;
            ImageGrid.SaveFilters(path, weight, 4, 4, maxTiles: 100);
            Assert.Single(Directory.GetFiles(dir));
            using var bitmap = Decode(File.ReadAllBytes(path));
            Assert.Equal(10 * 8 + 9, bitmap.Width);   // 100 tiles → 10 columns of 4·2 pixels, 9 padding lines
            Assert.Equal(10 * 8 + 9, bitmap.Height);
            // PerTile: every tile spans the full grey range even though the weights are tiny.
            var greys = new HashSet<byte>();
            for (var y = 0; y < 8; y++)
                for (var x = 0; x < 8; x++)
                    greys.Add(Grey(bitmap, x, y));
            Assert.Contains((byte)0, greys);
            Assert.Contains((byte)255, greys);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void EncodeFilters_WrongVisibleCount_NamesExpectedAndGot()
    {
        using var weight = torch.randn(10, 780);
        var e = Assert.Throws<ArgumentException>(() => ImageGrid.EncodeFilters(weight, 28, 28));
        Assert.Contains("784", e.Message);
        Assert.Contains("[10, 780]", e.Message);
    }
}

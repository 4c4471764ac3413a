using TorchBoltzmann.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Data;

public sealed class MnistDatasetTests
{
    private const int N = 5;
    private static readonly byte[] LabelBytes = [0, 1, 2, 9, 4];

    private static byte Pixel(int image, int index) => (byte)((image * 53 + index * 7) % 256);

    private static byte[] ImageBytes(int n) =>
        Enumerable.Range(0, n).SelectMany(i => Enumerable.Range(0, 784).Select(j => Pixel(i, j))).ToArray();

    private static void WriteSet(string dir, string prefix, int images, byte[] labels, string suffix = "", int side = 28)
    {
        byte[] pixels = Enumerable.Range(0, images).SelectMany(i => Enumerable.Range(0, side * side).Select(j => Pixel(i, j))).ToArray();
        IdxWriter.Write(Path.Combine(dir, $"{prefix}-images-idx3-ubyte{suffix}"), [images, side, side], pixels);
        IdxWriter.Write(Path.Combine(dir, $"{prefix}-labels-idx1-ubyte{suffix}"), [labels.Length], labels);
    }

    [Fact]
    public void Load_ShapesDtypesValuesAndLabels()
    {
        using var dir = new TempDirectory();
        WriteSet(dir.Path, "train", N, LabelBytes);

        using var ds = MnistDataset.Load(dir.Path, MnistSplit.Train);
        Assert.Equal(N, ds.Count);
        Assert.Equal(MnistSplit.Train, ds.Split);
        Assert.Equal(new long[] { N, 784 }, ds.Images.shape);
        Assert.Equal(ScalarType.Float32, ds.Images.dtype);
        Assert.Equal(new long[] { N }, ds.Labels.shape);
        Assert.Equal(ScalarType.Int64, ds.Labels.dtype);

        float[] values = ds.Images.data<float>().ToArray();
        Assert.All(values, v => Assert.InRange(v, 0f, 1f));
        byte[] expected = ImageBytes(N);
        for (int k = 0; k < values.Length; k++)
        {
            Assert.Equal(expected[k] / 255f, values[k], 1e-6f);
        }

        Assert.Equal(LabelBytes.Select(b => (long)b), ds.Labels.data<long>().ToArray());
    }

    [Fact]
    public void Load_Limit_KeepsFirstExamples()
    {
        using var dir = new TempDirectory();
        WriteSet(dir.Path, "train", N, LabelBytes);
        using var ds = MnistDataset.Load(dir.Path, MnistSplit.Train, limit: 3);
        Assert.Equal(3, ds.Count);
        Assert.Equal(new long[] { 3, 784 }, ds.Images.shape);
        Assert.Equal(new long[] { 0, 1, 2 }, ds.Labels.data<long>().ToArray());
        Assert.Equal(Pixel(2, 783) / 255f, ds.Images[2, 783].item<float>(), 1e-6f);

        using var all = MnistDataset.Load(dir.Path, MnistSplit.Train, limit: 100);
        Assert.Equal(N, all.Count);
    }

    [Fact]
    public void Load_TestSplit_FromGzipVariants()
    {
        using var dir = new TempDirectory();
        WriteSet(dir.Path, "t10k", N, LabelBytes, suffix: ".gz");
        using var ds = MnistDataset.Load(dir.Path, MnistSplit.Test);
        Assert.Equal(N, ds.Count);
        Assert.Equal(9L, ds.Labels[3].item<long>());
        Assert.Throws<FileNotFoundException>(() => MnistDataset.Load(dir.Path, MnistSplit.Train));
    }

    [Fact]
    public void Load_CountMismatch_Throws()
    {
        using var dir = new TempDirectory();
        WriteSet(dir.Path, "train", N, [0, 1, 2, 3]);
        var ex = Assert.Throws<InvalidDataException>(() => MnistDataset.Load(dir.Path, MnistSplit.Train));
        Assert.Contains("5 images", ex.Message);
        Assert.Contains("4 labels", ex.Message);
    }

    [Fact]
    public void Load_LabelOutOfRange_Throws()
    {
        using var dir = new TempDirectory();
        WriteSet(dir.Path, "train", N, [0, 1, 10, 3, 4]);
        var ex = Assert.Throws<InvalidDataException>(() => MnistDataset.Load(dir.Path, MnistSplit.Train));
        Assert.Contains("expected digits 0..9", ex.Message);
        Assert.Contains("got 10 at index 2", ex.Message);
    }

    [Fact]
    public void Load_WrongImageSize_Throws()
    {
        using var dir = new TempDirectory();
        WriteSet(dir.Path, "train", N, LabelBytes, side: 27);
        var ex = Assert.Throws<InvalidDataException>(() => MnistDataset.Load(dir.Path, MnistSplit.Train));
        Assert.Contains("expected shape [N, 28, 28]", ex.Message);
        Assert.Contains("got [5, 27, 27]", ex.Message);
    }

    [Fact]
    public void Slice_And_To_AreIndependentCopies()
    {
        using var dir = new TempDirectory();
        WriteSet(dir.Path, "train", N, LabelBytes);
        using var ds = MnistDataset.Load(dir.Path, MnistSplit.Train);

        using var slice = ds.Slice(1, 3);
        Assert.Equal(3, slice.Count);
        Assert.Equal(new long[] { 1, 2, 9 }, slice.Labels.data<long>().ToArray());
        using (var expected = ds.Images.narrow(0, 1, 3))
        {
            Assert.True(expected.eq(slice.Images).all().item<bool>());
        }

        slice.Images.fill_(0);
        Assert.NotEqual(0f, ds.Images[1].sum().item<float>());

        using var copy = ds.To(CPU);
        copy.Labels.fill_(7);
        Assert.Equal(1L, ds.Labels[1].item<long>());

        Assert.Throws<ArgumentOutOfRangeException>(() => ds.Slice(4, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => ds.Slice(-1, 1));
        using var empty = ds.Slice(5, 0);
        Assert.Equal(0, empty.Count);
    }

    [Fact]
    public void Dispose_ThenAccess_Throws()
    {
        using var dir = new TempDirectory();
        WriteSet(dir.Path, "train", N, LabelBytes);
        var ds = MnistDataset.Load(dir.Path, MnistSplit.Train);
        ds.Dispose();
        ds.Dispose();
        Assert.Throws<ObjectDisposedException>(() => ds.Images);
    }
}

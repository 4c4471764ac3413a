using TorchBoltzmann.Cli.Commands;
using TorchBoltzmann.Data;
using TorchBoltzmann.Tests.Data;

namespace TorchBoltzmann.Tests.Cli;

/// <summary><c>train-rbm --stream</c>'s checks and <c>make-mnist-x10</c>'s shifts, in process.</summary>
public sealed class StreamCliTests
{
    [Fact]
    public void StreamOption_RefusesBadPathsAndShapes_InOneLineNamingTheOption()
    {
        using var dir = new TempDirectory();
        string Refusal(string path)
        {
            var e = Assert.Throws<CliException>(() => TrainRbmCommand.OpenStream(path, 1, null));
            Assert.DoesNotContain('\n', e.Message);
            Assert.Contains("--stream", e.Message);
            return e.Message;
        }
        Assert.Contains("no such file or directory", Refusal(dir.File("missing")));
        Assert.Contains("no " + dir.File("train-images-idx3-ubyte"), Refusal(dir.Path));
        IdxWriter.Write(dir.File("labels.idx"), [50], new byte[50], gzip: false);
        Assert.Contains("784 pixels", Refusal(dir.File("labels.idx")));
        IdxWriter.Write(dir.File("train-images-idx3-ubyte"), [3, 28, 28], new byte[3 * 784], gzip: false);
        File.WriteAllBytes(dir.File("short.idx"), File.ReadAllBytes(dir.File("train-images-idx3-ubyte"))[..^1]);
        Assert.Contains("truncated", Refusal(dir.File("short.idx")));
        using var ok = TrainRbmCommand.OpenStream(dir.Path, 1, 2);
        Assert.Equal((2L, 784), (ok.Count, ok.Features));
    }

    [Fact]
    public void MnistX10_ShiftsMoveEveryPixelAndFillWithZeros()
    {
        // Two 28×28 images of distinct non-zero bytes: every shift moves pixel (r, c) to (r + dy, c + dx) and leaves
        // exactly the rows and columns shifted in at 0.
        var src = Enumerable.Range(0, 2 * 784).Select(i => (byte)(1 + i % 250)).ToArray();
        var dst = new byte[src.Length];
        Assert.Equal(10, MnistX10Command.Shifts.Distinct().Count());
        foreach (var (dx, dy) in MnistX10Command.Shifts)
        {
            MnistX10Command.Shift(src, dst, (dx, dy));
            for (int n = 0; n < 2; n++)
                for (int r = 0; r < 28; r++)
                    for (int c = 0; c < 28; c++)
                    {
                        int sr = r - dy, sc = c - dx;
                        byte expected = sr is >= 0 and < 28 && sc is >= 0 and < 28 ? src[n * 784 + sr * 28 + sc] : (byte)0;
                        Assert.Equal(expected, dst[n * 784 + r * 28 + c]);
                    }
        }
    }
}

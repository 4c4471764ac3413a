using System.Buffers.Binary;
using System.CommandLine;
using TorchBoltzmann.Data;

namespace TorchBoltzmann.Cli.Commands;

/// <summary>
/// <c>tbm make-mnist-x10</c>: writes ten times MNIST's training set to uncompressed IDX files, a data set larger than the
/// float32 tensor a machine may hold, for <c>tbm train-rbm --stream</c> and the benchmarks of streamed training.
/// </summary>
/// <remarks>
/// Copy s of every image is the image shifted by (dx, dy)ₛ pixels, the pixels shifted in set to 0:
/// s = 0 the original, then (±1, 0), (0, ±1), (±2, 0), (0, ±2) and (1, 1) — copy-major (rows 60,000·s … 60,000·s + 59,999
/// are copy s), so a stream's window of chunks mixes different images. Labels are repeated alongside. The files are
/// written one copy at a time (memory: two copies of the training images, 2 × 47 MB), under a temporary name, then moved.
/// </remarks>
internal static class MnistX10Command
{
    /// <summary>The shifts (dx, dy) of the ten copies, the original first.</summary>
    internal static readonly (int Dx, int Dy)[] Shifts = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (2, 0), (-2, 0), (0, 2), (0, -2), (1, 1)];

    public static Command Create()
    {
        var output = new Option<string>("--output", "-o") { Description = "Directory for train-images-idx3-ubyte and train-labels-idx1-ubyte (created)", Required = true };
        var data = new CommonOptions.DataOptions();
        var cmd = new Command("make-mnist-x10", "Write 10× MNIST's training set (the original and 9 copies shifted by ±1 or ±2 pixels) as uncompressed IDX files, " +
                                                "600,000 images (470 MB), for train-rbm --stream") { output };
        data.AddTo(cmd);
        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(CommonOptions.Guard(() =>
        {
            var dir = CommonOptions.ResolveMnist(data.Read(r), r.GetValue(CommonOptions.Verbose));
            var images = IdxReader.Read(MnistPath(dir, "train-images-idx3-ubyte"));
            var labels = IdxReader.Read(MnistPath(dir, "train-labels-idx1-ubyte"));
            string outDir = r.GetValue(output)!;
            Directory.CreateDirectory(outDir);
            Write(Path.Combine(outDir, "train-images-idx3-ubyte"), images, ct, Shift);
            Write(Path.Combine(outDir, "train-labels-idx1-ubyte"), labels, ct, (src, dst, _) => src.CopyTo(dst, 0));
            Terminal.Line($"Wrote {Shifts.Length} × {images.Shape[0]} images and labels to {outDir}");
            return 0;
        })));
        return cmd;
    }

    private static string MnistPath(string dir, string name)
        => File.Exists(Path.Combine(dir, name)) ? Path.Combine(dir, name) : Path.Combine(dir, name + ".gz");

    /// <summary>Writes Shifts.Length copies of <paramref name="array"/> made by <paramref name="copy"/>, the first dimension multiplied.</summary>
    private static void Write(string path, IdxArray array, CancellationToken ct, Action<byte[], byte[], (int Dx, int Dy)> copy)
    {
        string temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            var header = new byte[4 + 4 * array.Shape.Length];
            header[2] = 0x08;
            header[3] = (byte)array.Shape.Length;
            for (int i = 0; i < array.Shape.Length; i++)
                BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + 4 * i), i == 0 ? checked(array.Shape[0] * Shifts.Length) : array.Shape[i]);
            file.Write(header);
            var buffer = new byte[array.Data.Length];
            foreach (var shift in Shifts)
            {
                ct.ThrowIfCancellationRequested();
                copy(array.Data, buffer, shift);
                file.Write(buffer);
            }
            file.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>dst[n, r, c] = src[n, r − dy, c − dx] where that pixel exists, else 0 (28×28 images).</summary>
    internal static void Shift(byte[] src, byte[] dst, (int Dx, int Dy) shift)
    {
        const int side = 28, pixels = side * side;
        Array.Clear(dst);
        for (int n = 0; n < src.Length / pixels; n++)
            for (int r = Math.Max(0, shift.Dy); r < Math.Min(side, side + shift.Dy); r++)
            {
                int c0 = Math.Max(0, shift.Dx), c1 = Math.Min(side, side + shift.Dx);
                Array.Copy(src, n * pixels + (r - shift.Dy) * side + c0 - shift.Dx, dst, n * pixels + r * side + c0, c1 - c0);
            }
    }
}

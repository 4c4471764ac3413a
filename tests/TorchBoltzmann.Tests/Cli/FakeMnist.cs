using TorchBoltzmann.Data;

namespace TorchBoltzmann.Tests.Cli;

/// <summary>
/// A small data set in MNIST's four IDX files (same names and format, other content, so its SHA-256 is not MNIST's):
/// ten fixed random 28×28 binary prototypes, one per digit, each example its class's prototype with 3 % of the pixels
/// flipped. Easy to learn: an RBM and a classifier make progress within an epoch.
/// </summary>
public sealed class FakeMnist : IDisposable
{
    /// <summary>1,000 training and 200 test examples.</summary>
    public FakeMnist()
    {
        const int train = 1000, test = 200;
        Path = Directory.CreateTempSubdirectory("tb-fake-mnist-").FullName;
        var prototypes = Enumerable.Range(0, 10).Select(k =>
        {
            var r = new Random(1000 + k);
            return Enumerable.Range(0, 784).Select(_ => r.NextDouble() < 0.2).ToArray();
        }).ToArray();
        foreach (var (split, n, seed) in new[] { ("train", train, 1), ("t10k", test, 2) })
        {
            var r = new Random(seed);
            var images = new byte[n * 784];
            var labels = new byte[n];
            for (int i = 0; i < n; i++)
            {
                int k = i % 10;
                labels[i] = (byte)k;
                for (int p = 0; p < 784; p++)
                    images[i * 784 + p] = prototypes[k][p] ^ (r.NextDouble() < 0.03) ? (byte)255 : (byte)0;
            }
            IdxWriter.Write(System.IO.Path.Combine(Path, $"{split}-images-idx3-ubyte"), [n, 28, 28], images);
            IdxWriter.Write(System.IO.Path.Combine(Path, $"{split}-labels-idx1-ubyte"), [n], labels);
        }
    }

    /// <summary>The directory of the four files.</summary>
    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

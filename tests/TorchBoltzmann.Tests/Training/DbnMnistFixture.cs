using TorchBoltzmann.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

/// <summary>MNIST resolved once per test class (MNIST_DIR, data/mnist, or fetched): 6 000 training and 1 000 test digits.</summary>
public sealed class DbnMnistFixture : IDisposable
{
    public DbnMnistFixture()
    {
        var dir = MnistFetcher.Resolve();
        Train = MnistDataset.Load(dir, MnistSplit.Train, limit: 6000);
        Test = MnistDataset.Load(dir, MnistSplit.Test, limit: 1000);
    }

    public MnistDataset Train { get; }
    public MnistDataset Test { get; }

    /// <summary>The first n training images thresholded at 0.5.</summary>
    public Tensor BinaryTrain(int n)
    {
        using var view = Train.Images.narrow(0, 0, n);
        return Binarize.Threshold(view);
    }

    public void Dispose()
    {
        Train.Dispose();
        Test.Dispose();
    }
}

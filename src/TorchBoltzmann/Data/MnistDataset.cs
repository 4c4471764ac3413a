using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Data;

/// <summary>
/// MNIST images and labels as tensors.
/// </summary>
/// <remarks>
/// <para><see cref="Images"/> is float32 of shape [N, 784]: row n is image n flattened row-major
/// (pixel (r, c) at column 28·r + c), with intensity x = pixel / 255 ∈ [0, 1].</para>
/// <para><see cref="Labels"/> is int64 of shape [N] with digits 0..9.</para>
/// <para>The dataset owns both tensors; <see cref="Dispose"/> frees them.</para>
/// </remarks>
public sealed class MnistDataset : IDisposable
{
    private readonly Tensor _images;
    private readonly Tensor _labels;
    private bool _disposed;

    internal MnistDataset(Tensor images, Tensor labels, MnistSplit split)
    {
        _images = images;
        _labels = labels;
        Split = split;
        Count = checked((int)images.shape[0]);
    }

    /// <summary>Images, float32 [N, 784], values pixel/255 in [0, 1].</summary>
    public Tensor Images
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _images;
        }
    }

    /// <summary>Labels, int64 [N], digits 0..9.</summary>
    public Tensor Labels
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _labels;
        }
    }

    /// <summary>The number of examples N.</summary>
    public int Count { get; }

    /// <summary>The split the examples come from.</summary>
    public MnistSplit Split { get; }

    /// <summary>
    /// Loads a split from <paramref name="directory"/>: <c>train-images-idx3-ubyte</c> and <c>train-labels-idx1-ubyte</c>
    /// for <see cref="MnistSplit.Train"/>, <c>t10k-…</c> for <see cref="MnistSplit.Test"/>; when a raw file is absent its
    /// <c>.gz</c> variant is read instead.
    /// </summary>
    /// <param name="directory">Directory holding the IDX files (see <see cref="MnistFetcher.Resolve(string?, IProgress{string}?)"/>).</param>
    /// <param name="split">Train or test.</param>
    /// <param name="limit">When set, keep only the first <c>min(limit, N)</c> examples.</param>
    /// <returns>A dataset on the CPU.</returns>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    /// <exception cref="FileNotFoundException">Neither the raw nor the .gz file exists.</exception>
    /// <exception cref="InvalidDataException">
    /// A file is malformed, images are not 28×28, image and label counts differ, or a label is outside 0..9.
    /// </exception>
    public static MnistDataset Load(string directory, MnistSplit split, int? limit = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (limit is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(limit), limit, "The limit must be non-negative.");
        }

        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"MNIST directory '{directory}' does not exist.");
        }

        var (imagesName, labelsName) = MnistFiles.For(split);
        string imagesPath = Locate(directory, imagesName);
        string labelsPath = Locate(directory, labelsName);
        IdxArray images = IdxReader.Read(imagesPath);
        IdxArray labels = IdxReader.Read(labelsPath);

        if (images.Shape.Length != 3 || images.Shape[1] != MnistFiles.Side || images.Shape[2] != MnistFiles.Side)
        {
            throw new InvalidDataException(
                $"MNIST images '{imagesPath}': expected shape [N, {MnistFiles.Side}, {MnistFiles.Side}], got [{string.Join(", ", images.Shape)}].");
        }

        if (labels.Shape.Length != 1)
        {
            throw new InvalidDataException(
                $"MNIST labels '{labelsPath}': expected shape [N], got [{string.Join(", ", labels.Shape)}].");
        }

        if (images.Shape[0] != labels.Shape[0])
        {
            throw new InvalidDataException(
                $"MNIST count mismatch: expected as many labels as images, got {images.Shape[0]} images in '{imagesPath}' and {labels.Shape[0]} labels in '{labelsPath}'.");
        }

        int bad = labels.Data.AsSpan().IndexOfAnyInRange((byte)10, byte.MaxValue);
        if (bad >= 0)
        {
            throw new InvalidDataException(
                $"MNIST labels '{labelsPath}': expected digits 0..9, got {labels.Data[bad]} at index {bad}.");
        }

        int n = Math.Min(images.Shape[0], limit ?? int.MaxValue);
        return FromBytes(images.Data, labels.Data, n, split);
    }

    /// <summary>Returns examples [start, start + count) as a new dataset with cloned tensors.</summary>
    /// <param name="start">First example.</param>
    /// <param name="count">Number of examples.</param>
    /// <returns>An independent dataset; dispose it separately.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie within [0, Count).</exception>
    public MnistDataset Slice(int start, int count)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (start < 0 || start > Count)
        {
            throw new ArgumentOutOfRangeException(nameof(start), start, $"Expected 0 ≤ start ≤ {Count}.");
        }

        if (count < 0 || count > Count - start)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"Expected 0 ≤ count ≤ {Count - start} (Count = {Count}, start = {start}).");
        }

        using var imageView = _images.narrow(0, start, count);
        using var labelView = _labels.narrow(0, start, count);
        return new MnistDataset(imageView.clone(), labelView.clone(), Split);
    }

    /// <summary>Returns a copy of the dataset on <paramref name="device"/>.</summary>
    /// <param name="device">Target device.</param>
    /// <returns>An independent dataset; dispose it separately.</returns>
    public MnistDataset To(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new MnistDataset(CopyTo(_images, device), CopyTo(_labels, device), Split);
    }

    /// <summary>Frees the tensors.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _images.Dispose();
        _labels.Dispose();
    }

    /// <summary>Builds the tensors from the first <paramref name="n"/> examples of raw IDX payloads.</summary>
    internal static MnistDataset FromBytes(byte[] imageBytes, byte[] labelBytes, int n, MnistSplit split)
    {
        byte[] pixels = imageBytes.Length == (long)n * MnistFiles.Pixels ? imageBytes : imageBytes[..(n * MnistFiles.Pixels)];
        byte[] digits = labelBytes.Length == n ? labelBytes : labelBytes[..n];

        using var rawImages = torch.tensor(pixels, new long[] { n, MnistFiles.Pixels }, dtype: ScalarType.Byte);
        using var rawLabels = torch.tensor(digits, new long[] { n }, dtype: ScalarType.Byte);
        var images = rawImages.to_type(ScalarType.Float32).div_(255);
        var labels = rawLabels.to_type(ScalarType.Int64);
        return new MnistDataset(images, labels, split);
    }

    private static string Locate(string directory, string name)
    {
        string raw = Path.Combine(directory, name);
        if (File.Exists(raw))
        {
            return raw;
        }

        string gz = raw + ".gz";
        if (File.Exists(gz))
        {
            return gz;
        }

        throw new FileNotFoundException(
            $"MNIST file not found: expected '{raw}' or '{gz}'. Use MnistFetcher.Resolve to download MNIST, or pass a directory holding the IDX files.",
            raw);
    }

    /// <summary>A copy on <paramref name="device"/> that never shares storage with <paramref name="source"/>.</summary>
    private static Tensor CopyTo(Tensor source, Device device) => source.to(device, copy: true);
}

using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Data;

/// <summary>How the bytes of a compact (uint8) data set become the floating-point values a model trains on.</summary>
public enum ByteScaling
{
    /// <summary>x = byte, unchanged (binary {0, 1} data stored as bytes, or data already in the model's range).</summary>
    AsStored,
    /// <summary>x = byte / 255 ∈ [0, 1] (image intensities, as <see cref="MnistDataset.Images"/>).</summary>
    Intensity,
    /// <summary>x = 1 where byte &gt; 127, else 0: the same as <see cref="Binarize.Threshold"/> at 0.5 of byte / 255, since byte / 255 &gt; 0.5 ⇔ byte ≥ 128.</summary>
    Threshold,
}

/// <summary>
/// Training data as the trainers read it: <see cref="Count"/> examples of <see cref="Features"/> values each, handed out
/// one mini-batch at a time in the model's floating-point dtype. Lets <see cref="RbmTrainer.FitSource"/>,
/// <see cref="DbmTrainer.FitSource"/>, <see cref="GreedyPretrainer.FitSource"/> and <see cref="DbmPretrainer.FitSource"/> train from a float tensor (<see cref="TensorSource"/>), a compact uint8 tensor converted per
/// batch (<see cref="TensorSource.Compact"/>, a quarter of the memory), or a file read while training
/// (<see cref="IdxStream"/>, memory bounded whatever the file's size).
/// </summary>
/// <remarks>
/// <para>A source with <see cref="InOwnOrder"/> false (in memory) is gathered at the rows of the training loop's
/// permutation, drawn from the trainer's generator exactly as for a tensor, so a run from a float tensor, from a
/// <see cref="TensorSource"/> over it, or from a uint8 copy of {0, 1} data is the same run bit for bit. A source with
/// <see cref="InOwnOrder"/> true (a stream) hands out its batches in an order it draws itself (see
/// <see cref="IdxStream"/> for the rule); the loop then draws no permutation.</para>
/// <para>Per epoch the trainer calls <see cref="StartEpoch"/>, then <see cref="Batch"/> for each of the loop's batches in
/// order, and <see cref="StopEpoch"/> when the epoch or the run ends (also on an error or cancellation).</para>
/// </remarks>
public abstract class BatchSource : IDisposable
{
    /// <summary>Examples N.</summary>
    public abstract long Count { get; }

    /// <summary>Values per example (the model's visible units).</summary>
    public abstract int Features { get; }

    /// <summary>True when the source hands out batches in its own order (a stream); false when it gathers any rows asked for.</summary>
    public virtual bool InOwnOrder => false;

    /// <summary>Bytes of data the source holds in memory (its tensor; for a stream its window and prefetch queue at their fullest).</summary>
    public abstract long ResidentBytes { get; }

    /// <summary>Called before the first <see cref="Batch"/> of an epoch; a stream starts reading here.</summary>
    /// <param name="epoch">Zero-based epoch (a stream's order depends on it and on its seed only, so a continued run reads the same order).</param>
    /// <param name="batchSize">The loop's batch size: every batch holds this many rows but the last.</param>
    /// <param name="cancellationToken">Stops a stream's reader when cancelled.</param>
    public virtual void StartEpoch(int epoch, int batchSize, CancellationToken cancellationToken) { }

    /// <summary>Called when an epoch ends or is abandoned; a stream stops its reader here.</summary>
    public virtual void StopEpoch() { }

    /// <summary>The float rows of one mini-batch of the training loop, (batch.Size × <see cref="Features"/>) in <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    /// <param name="batch">The loop's batch: its rows of the epoch's permutation, or (for a stream) the next batch in the stream's order.</param>
    /// <param name="dtype">The model's dtype.</param>
    /// <param name="device">The model's device.</param>
    public abstract Tensor Batch(Batch batch, ScalarType dtype, Device device);

    /// <summary>The float rows [<paramref name="start"/>, <paramref name="start"/> + <paramref name="count"/>) in stored order (the trainers' metrics use the first rows).</summary>
    /// <param name="start">First row.</param>
    /// <param name="count">Rows.</param>
    /// <param name="dtype">The model's dtype.</param>
    /// <param name="device">The model's device.</param>
    public abstract Tensor Rows(long start, long count, ScalarType dtype, Device device);

    /// <summary>
    /// The mean example, mean over n of xₙ (<see cref="Features"/>), accumulated in float64 over blocks of rows and returned in
    /// <paramref name="dtype"/> (centered training needs it; a stream reads the file once for it).
    /// </summary>
    public virtual Tensor Mean(ScalarType dtype, Device device)
    {
        using var scope = torch.NewDisposeScope();
        const long block = 8192;
        var sum = torch.zeros(Features, dtype: ScalarType.Float64, device: device);
        for (long start = 0; start < Count; start += block)
        {
            using var inner = torch.NewDisposeScope();
            var rows = Rows(start, Math.Min(block, Count - start), dtype, device);
            sum.add_(rows.to_type(ScalarType.Float64).sum(new long[] { 0 }));
        }
        return sum.div_(Count).to(dtype, device).MoveToOuterDisposeScope();
    }

    /// <summary>Checks that the source fits a model of <paramref name="features"/> visible units; names <paramref name="what"/> in the error.</summary>
    internal void CheckFeatures(long features, string what)
    {
        if (Count < 1) throw new ArgumentException($"{what}: expected at least one example, got 0.");
        if (Features != features) throw new ArgumentException($"{what}: expected {features} values per example (the model's visible units), got {Features}.");
    }

    /// <summary>
    /// Bytes (uint8) → floating point by <paramref name="scaling"/>; a floating-point tensor passes through
    /// (<see cref="ByteScaling.AsStored"/> only), moved to <paramref name="dtype"/> and <paramref name="device"/>.
    /// </summary>
    internal static Tensor Convert(Tensor rows, ByteScaling scaling, ScalarType dtype, Device device)
    {
        if (rows.dtype != ScalarType.Byte)
            return rows.dtype == dtype && rows.device == device ? rows : rows.to(dtype, device);
        using var moved = rows.device == device ? rows.alias() : rows.to(device);
        switch (scaling)
        {
            case ByteScaling.AsStored: return moved.to_type(dtype);
            case ByteScaling.Intensity: return moved.to_type(dtype).div_(255);   // as MnistDataset: float(byte) / 255
            case ByteScaling.Threshold:
                using (var mask = moved.gt(127)) return mask.to_type(dtype);
            default: throw new ArgumentOutOfRangeException(nameof(scaling), scaling, "unknown byte scaling");
        }
    }

    /// <summary>Releases what the source holds (a stream's reader and file).</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases what the source holds.</summary>
    /// <param name="disposing">True from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing) { }
}

/// <summary>
/// A data set held in memory as one tensor (N × features): floating point, used as it is, or compact uint8, converted to
/// the model's dtype one batch at a time by its <see cref="ByteScaling"/> (N·F bytes instead of 4·N·F for float32).
/// </summary>
public sealed class TensorSource : BatchSource
{
    private readonly Tensor _data;
    private readonly bool _owns;

    /// <summary>Wraps <paramref name="data"/> (N × features, floating point or uint8) without copying; the caller keeps and disposes it.</summary>
    /// <param name="data">The examples, one per row.</param>
    /// <param name="scaling">How uint8 data become values (floating-point data need <see cref="ByteScaling.AsStored"/>).</param>
    /// <exception cref="ArgumentException"><paramref name="data"/> is not a 2-d floating-point or uint8 tensor, or a scaling is given for floating-point data.</exception>
    public TensorSource(Tensor data, ByteScaling scaling = ByteScaling.AsStored) : this(data, scaling, owns: false) { }

    private TensorSource(Tensor data, ByteScaling scaling, bool owns)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.dim() != 2)
            throw new ArgumentException($"data: expected a 2-d tensor (N × features), got shape [{string.Join(", ", data.shape)}].", nameof(data));
        if (data.dtype != ScalarType.Byte && !torch.is_floating_point(data))
            throw new ArgumentException($"data: expected a floating-point or uint8 (Byte) tensor, got {data.dtype}.", nameof(data));
        if (data.dtype != ScalarType.Byte && scaling != ByteScaling.AsStored)
            throw new ArgumentException($"scaling: {scaling} applies to uint8 data; the data are {data.dtype}.", nameof(scaling));
        _data = data;
        _owns = owns;
        Scaling = scaling;
    }

    /// <summary>
    /// A compact copy of binary data: <paramref name="data"/> (N × features, every value 0 or 1) as uint8 on
    /// <paramref name="device"/> (default: the data's), which the source owns. Training from it is the same run, bit for
    /// bit, as training from <paramref name="data"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A value other than 0 and 1.</exception>
    public static TensorSource Compact(Tensor data, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        using (var zero = data.eq(0))
        using (var one = data.eq(1))
        using (var either = zero.logical_or_(one))
        using (var all = either.all())
            if (!all.item<bool>()) throw new ArgumentException("data: expected binary data (every value 0 or 1) for a compact copy; use ByteScaling with uint8 data for other values.", nameof(data));
        var bytes = data.to(ScalarType.Byte, device ?? data.device);
        return new TensorSource(bytes, ByteScaling.AsStored, owns: true);
    }

    /// <summary>Reads an unsigned-byte IDX file (raw or gzip, e.g. MNIST's images N × 28 × 28) into a uint8 tensor (N × the product of the other dimensions) on <paramref name="device"/>, which the source owns.</summary>
    /// <param name="path">The IDX file.</param>
    /// <param name="scaling">How its bytes become values.</param>
    /// <param name="device">Where the bytes are held (default CPU).</param>
    /// <exception cref="InvalidDataException">Not a valid unsigned-byte IDX file (the message names it).</exception>
    public static TensorSource FromIdx(string path, ByteScaling scaling, Device? device = null)
    {
        var idx = IdxReader.Read(path);
        long features = idx.Shape.Skip(1).Aggregate(1L, (a, d) => a * d);
        using var bytes = torch.tensor(idx.Data, new long[] { idx.Shape[0], features }, dtype: ScalarType.Byte);
        return new TensorSource(bytes.to(device ?? torch.CPU, copy: true), scaling, owns: true);
    }

    /// <summary>The tensor the source gathers from.</summary>
    public Tensor Data => _data;

    /// <summary>How uint8 data become values.</summary>
    public ByteScaling Scaling { get; }

    /// <inheritdoc/>
    public override long Count => _data.shape[0];

    /// <inheritdoc/>
    public override int Features => (int)_data.shape[1];

    /// <inheritdoc/>
    public override long ResidentBytes => _data.numel() * _data.element_size();

    /// <summary>Rows <c>data[order[Start : Start + Size]]</c> (a view of <c>data[Start : Start + Size]</c> without shuffling), converted.</summary>
    public override Tensor Batch(Batch batch, ScalarType dtype, Device device)
    {
        if (batch.Order is { } order && order.device != _data.device)
        {
            using var index = order.narrow(0, batch.Start, batch.Size);
            using var local = index.to(_data.device);
            using var gathered = _data.index_select(0, local);
            return Convert(gathered, Scaling, dtype, device);
        }
        var rows = batch.Rows(_data);
        var converted = Convert(rows, Scaling, dtype, device);
        if (!ReferenceEquals(converted, rows)) rows.Dispose();
        return converted;
    }

    /// <inheritdoc/>
    public override Tensor Rows(long start, long count, ScalarType dtype, Device device)
    {
        var rows = _data.narrow(0, start, count);
        var converted = Convert(rows, Scaling, dtype, device);
        if (!ReferenceEquals(converted, rows)) rows.Dispose();
        return converted;
    }

    /// <summary>The mean example: <c>data.mean(0)</c> for floating-point data in <paramref name="dtype"/> (as the trainers computed it from a tensor), else accumulated in float64.</summary>
    public override Tensor Mean(ScalarType dtype, Device device)
    {
        if (_data.dtype == dtype && _data.device == device) return _data.mean(new long[] { 0 });
        return base.Mean(dtype, device);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing && _owns) _data.Dispose();
    }
}

using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using Microsoft.Win32.SafeHandles;
using TorchBoltzmann.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Data;

/// <summary>Settings of an <see cref="IdxStream"/>.</summary>
public sealed record IdxStreamOptions
{
    /// <summary>How the file's bytes become values (default <see cref="ByteScaling.AsStored"/>).</summary>
    public ByteScaling Scaling { get; init; } = ByteScaling.AsStored;

    /// <summary>Rows per chunk C: the unit the file is read in and whose order is shuffled (default 1,000).</summary>
    public int ChunkRows { get; init; } = 1000;

    /// <summary>Chunks per shuffling window W: the rows of W chunks are read together and shuffled among themselves (default 10).</summary>
    public int WindowChunks { get; init; } = 10;

    /// <summary>Batches the reader may hold ready, Q (default 4): the bounded prefetch queue.</summary>
    public int Prefetch { get; init; } = 4;

    /// <summary>Whether to shuffle (default true); without, the rows come in file order.</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Seed of the shuffling; with the epoch it alone decides an epoch's order.</summary>
    public ulong Seed { get; init; }

    /// <summary>Use only the file's first rows (null: all).</summary>
    public long? Limit { get; init; }

    /// <summary>Checks every setting; throws naming the first bad one.</summary>
    public void Validate()
    {
        if (ChunkRows < 1) throw new ArgumentOutOfRangeException(nameof(ChunkRows), ChunkRows, "ChunkRows must be ≥ 1.");
        if (WindowChunks < 1) throw new ArgumentOutOfRangeException(nameof(WindowChunks), WindowChunks, "WindowChunks must be ≥ 1.");
        if (Prefetch < 1) throw new ArgumentOutOfRangeException(nameof(Prefetch), Prefetch, "Prefetch must be ≥ 1.");
        if (Limit is < 1) throw new ArgumentOutOfRangeException(nameof(Limit), Limit, "Limit must be ≥ 1 (or null for all rows).");
        if (!Enum.IsDefined(Scaling)) throw new ArgumentOutOfRangeException(nameof(Scaling), Scaling, "unknown byte scaling.");
    }
}

/// <summary>
/// Training data streamed from an uncompressed unsigned-byte IDX file (N × d1 × … rows of F = d1·… bytes) by a background
/// reader that keeps a bounded queue of ready batches: the memory a run needs does not grow with the file.
/// </summary>
/// <remarks>
/// <para>Shuffling rule, per epoch e: the N rows are cut into K = ⌈N / C⌉ chunks of C = <see cref="IdxStreamOptions.ChunkRows"/>
/// consecutive rows (the last may be shorter). A generator seeded with (<see cref="IdxStreamOptions.Seed"/>, e) (SplitMix64)
/// draws a permutation of the K chunks (Fisher–Yates); the permuted chunks are taken W = <see cref="IdxStreamOptions.WindowChunks"/>
/// at a time, each window's rows are read and permuted by the same generator, and the windows' rows, concatenated, are cut
/// into batches of B rows (the last batch holds N mod B when B does not divide N, as the training loop expects). Every
/// row is read exactly once per epoch; a row moves at most W·C positions from where its chunk lands, so W·C trades
/// shuffling for memory. The order depends on the seed and the epoch only: a run continued from a checkpoint reads the
/// same order.</para>
/// <para>Memory: the window buffer (W·C·F bytes), the queue (at most Q batches of B·F bytes) and the batch being filled;
/// the trainer converts one batch at a time to floating point (B·F·4 bytes for float32). The file is read with
/// positional reads, one per chunk; the operating system's page cache does the rest.</para>
/// <para>A file truncated or corrupt is refused when the stream opens (and a read that comes short later is an error),
/// with a one-line message naming the file.</para>
/// </remarks>
public sealed class IdxStream : BatchSource
{
    private readonly SafeFileHandle _file;
    private readonly long _offset;       // header bytes
    private readonly long _count;
    private readonly int _features;
    private Thread? _reader;
    private CancellationTokenSource? _stop;
    private BlockingCollection<byte[]>? _queue;
    private Exception? _fault;
    private long _position;
    private int _highWater;
    private int _batchSize;
    private bool _disposed;

    /// <summary>Opens <paramref name="path"/> (an uncompressed unsigned-byte IDX file) and checks its header and length.</summary>
    /// <param name="path">The IDX file.</param>
    /// <param name="options">Shuffling, chunk, window and prefetch settings.</param>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Not an uncompressed unsigned-byte IDX file, or truncated, or with trailing bytes (the message names the file).</exception>
    public IdxStream(string path, IdxStreamOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Options = options ?? new IdxStreamOptions();
        Options.Validate();
        Path = path;
        int[] shape;
        long payload, length;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 4096))
        {
            if (IdxFormat.StartsWithGzipMagic(stream))
                throw IdxReader.Fail(path, "expected an uncompressed IDX file to stream, got a gzip-compressed one; decompress it first (gunzip -k)");
            (shape, payload) = IdxReader.ReadHeader(stream, path, gzip: false, limitToArray: false);
            _offset = stream.Position;
            length = stream.Length;
        }
        long found = length - _offset;
        if (found < payload)
            throw IdxReader.Fail(path, $"truncated payload: expected {payload} bytes for shape [{IdxFormat.FormatShape(shape)}], got {found}");
        if (found > payload)
            throw IdxReader.Fail(path, $"expected end of data after {payload} payload bytes for shape [{IdxFormat.FormatShape(shape)}], got {found - payload} trailing byte(s)");
        long features = payload / shape[0];
        if (features > int.MaxValue / Math.Max(1, Options.ChunkRows))
            throw IdxReader.Fail(path, $"expected rows of at most {int.MaxValue / Math.Max(1, Options.ChunkRows)} bytes for chunks of {Options.ChunkRows} rows, got {features}");
        Shape = shape;
        _features = (int)features;
        _count = Math.Min(shape[0], Options.Limit ?? long.MaxValue);
        _file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>The file's shape (rows first).</summary>
    public int[] Shape { get; }

    /// <summary>The settings.</summary>
    public IdxStreamOptions Options { get; }

    /// <inheritdoc/>
    public override long Count => _count;

    /// <inheritdoc/>
    public override int Features => _features;

    /// <inheritdoc/>
    public override bool InOwnOrder => true;

    /// <summary>W·C·F + (Q + 1)·B·F bytes: the window, the queue at its fullest and the batch being filled (B as of the last epoch started; 0 before).</summary>
    public override long ResidentBytes => (long)Options.WindowChunks * Options.ChunkRows * _features + (Options.Prefetch + 1L) * _batchSize * _features;

    /// <summary>The most batches the queue has held at once since the stream opened (never more than <see cref="IdxStreamOptions.Prefetch"/>).</summary>
    public int QueueHighWater => Volatile.Read(ref _highWater);

    /// <summary>Whether the background reader is running.</summary>
    public bool ReaderRunning => _reader is { IsAlive: true };

    /// <summary>Starts the reader for epoch <paramref name="epoch"/> (stopping one still running).</summary>
    public override void StartEpoch(int epoch, int batchSize, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        StopEpoch();
        _batchSize = batchSize;
        _position = 0;
        _fault = null;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _queue = new BlockingCollection<byte[]>(new ConcurrentQueue<byte[]>(), Options.Prefetch);
        var (queue, token) = (_queue, _stop.Token);
        _reader = new Thread(() => Read(epoch, batchSize, queue, token)) { IsBackground = true, Name = $"IdxStream reader ({System.IO.Path.GetFileName(Path)})" };
        _reader.Start();
    }

    /// <summary>Stops the reader and drops the batches it had ready; waits for its thread to end.</summary>
    public override void StopEpoch()
    {
        if (_reader is null) return;
        _stop!.Cancel();
        if (!_reader.Join(TimeSpan.FromSeconds(30)))
            throw new InvalidOperationException($"the reader of '{Path}' did not stop within 30 s.");
        _reader = null;
        _queue!.Dispose();
        _queue = null;
        _stop.Dispose();
        _stop = null;
    }

    /// <summary>The next batch in the stream's order; <paramref name="batch"/> must be the one the stream expects (its start and size).</summary>
    /// <exception cref="InvalidOperationException">No epoch started, or a batch out of turn.</exception>
    /// <exception cref="InvalidDataException">The reader failed (the file was truncated or changed while streaming).</exception>
    /// <exception cref="OperationCanceledException">The epoch's token was cancelled.</exception>
    public override Tensor Batch(Batch batch, ScalarType dtype, Device device)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_queue is null) throw new InvalidOperationException("IdxStream.Batch: StartEpoch first.");
        if (batch.Start != _position)
            throw new InvalidOperationException($"IdxStream.Batch: expected the batch starting at row {_position} of the epoch, got one starting at {batch.Start}.");
        if (!_queue.TryTake(out var bytes, Timeout.Infinite, _stop!.Token)) bytes = null;
        if (bytes is null)
        {
            if (_fault is not null) ExceptionDispatchInfo.Capture(_fault).Throw();
            _stop!.Token.ThrowIfCancellationRequested();
            throw new InvalidOperationException($"IdxStream.Batch: the epoch has no batch at row {batch.Start} ({_count} rows).");
        }
        long rows = bytes.Length / _features;
        if (rows != batch.Size)
            throw new InvalidOperationException($"IdxStream.Batch: expected a batch of {batch.Size} rows, the stream has {rows} here (batch size {_batchSize}).");
        _position += rows;
        using var raw = torch.tensor(bytes, new long[] { rows, _features }, dtype: ScalarType.Byte);
        return Convert(raw, Options.Scaling, dtype, device);
    }

    /// <inheritdoc/>
    public override Tensor Rows(long start, long count, ScalarType dtype, Device device)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (start < 0 || count < 0 || start + count > _count)
            throw new ArgumentOutOfRangeException(nameof(count), $"rows [{start}, {start + count}) outside the stream's {_count} rows.");
        var bytes = new byte[checked(count * _features)];
        ReadRows(start, bytes);
        using var raw = torch.tensor(bytes, new long[] { count, _features }, dtype: ScalarType.Byte);
        return Convert(raw, Options.Scaling, dtype, device);
    }

    /// <summary>Reads rows from <paramref name="start"/> into <paramref name="buffer"/> (a whole number of rows).</summary>
    private void ReadRows(long start, Span<byte> buffer)
    {
        long offset = _offset + start * _features;
        int total = 0;
        while (total < buffer.Length)
        {
            int n = RandomAccess.Read(_file, buffer[total..], offset + total);
            if (n == 0)
                throw IdxReader.Fail(Path, $"truncated while streaming: expected {buffer.Length} bytes at offset {offset}, got {total}");
            total += n;
        }
    }

    /// <summary>The epoch's order of chunk indices (a permutation of 0 … K − 1 when shuffling).</summary>
    internal int[] ChunkOrder(SplitMix64 rng)
    {
        int chunks = (int)((_count + Options.ChunkRows - 1) / Options.ChunkRows);
        var order = Enumerable.Range(0, chunks).ToArray();
        if (Options.Shuffle) rng.Shuffle(order);
        return order;
    }

    /// <summary>The reader: the epoch's chunks window by window, shuffled within the window, cut into batches of <paramref name="batchSize"/> rows.</summary>
    private void Read(int epoch, int batchSize, BlockingCollection<byte[]> queue, CancellationToken token)
    {
        try
        {
            int c = Options.ChunkRows, f = _features;
            var rng = new SplitMix64(SplitMix64.Mix(Options.Seed, (ulong)epoch));
            var chunks = ChunkOrder(rng);
            var window = new byte[(long)Options.WindowChunks * c * f];
            var rowOrder = new int[Options.WindowChunks * c];
            byte[] pending = new byte[(long)Math.Min(batchSize, _count) * f];
            long filled = 0, delivered = 0;
            for (int w = 0; w < chunks.Length; w += Options.WindowChunks)
            {
                int rows = 0;
                for (int k = w; k < Math.Min(chunks.Length, w + Options.WindowChunks); k++)
                {
                    token.ThrowIfCancellationRequested();
                    long first = (long)chunks[k] * c;
                    int n = (int)Math.Min(c, _count - first);
                    ReadRows(first, window.AsSpan(rows * f, n * f));
                    rows += n;
                }
                for (int i = 0; i < rows; i++) rowOrder[i] = i;
                if (Options.Shuffle) rng.Shuffle(rowOrder.AsSpan(0, rows));
                for (int i = 0; i < rows; i++)
                {
                    Buffer.BlockCopy(window, rowOrder[i] * f, pending, (int)(filled * f), f);
                    if (++filled == pending.Length / f)
                    {
                        Deliver(pending);
                        delivered += filled;
                        filled = 0;
                        pending = new byte[(long)Math.Min(batchSize, _count - delivered) * f];
                    }
                }
            }
            queue.CompleteAdding();
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested) { }
        catch (Exception e)
        {
            _fault = e;
            try { queue.CompleteAdding(); } catch (ObjectDisposedException) { }
        }

        void Deliver(byte[] batch)
        {
            queue.Add(batch, token);
            int held = queue.Count;
            int seen;
            while (held > (seen = Volatile.Read(ref _highWater)) && Interlocked.CompareExchange(ref _highWater, held, seen) != seen) { }
        }
    }

    /// <summary>Stops the reader and closes the file.</summary>
    protected override void Dispose(bool disposing)
    {
        if (_disposed) return;
        _disposed = true;
        if (disposing)
        {
            StopEpoch();
            _file.Dispose();
        }
    }
}

/// <summary>SplitMix64 (Steele, Lea and Flood 2014): a small generator whose sequence is fixed by its seed on every platform and .NET version.</summary>
internal sealed class SplitMix64(ulong seed)
{
    private ulong _state = seed;

    /// <summary>z ← state += 0x9E3779B97F4A7C15; z ← (z ⊕ z≫30)·0xBF58476D1CE4E5B9; z ← (z ⊕ z≫27)·0x94D049BB133111EB; z ⊕ z≫31.</summary>
    public ulong Next()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A uniform integer in [0, n), by rejection (no modulo bias).</summary>
    public int Below(int n)
    {
        ulong limit = ulong.MaxValue - ulong.MaxValue % (ulong)n;
        ulong x;
        do x = Next(); while (x >= limit);
        return (int)(x % (ulong)n);
    }

    /// <summary>Fisher–Yates: for i = n − 1 … 1, swap a[i] with a[j], j uniform in [0, i].</summary>
    public void Shuffle(Span<int> a)
    {
        for (int i = a.Length - 1; i > 0; i--)
        {
            int j = Below(i + 1);
            (a[i], a[j]) = (a[j], a[i]);
        }
    }

    /// <summary>One seed from two: the first output of a SplitMix64 seeded with seed ⊕ (b · golden ratio constant).</summary>
    public static ulong Mix(ulong seed, ulong b) => new SplitMix64(seed ^ (b * 0xD1B54A32D192ED03UL)).Next();
}

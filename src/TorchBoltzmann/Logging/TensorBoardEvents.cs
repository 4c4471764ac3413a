using System.Buffers.Binary;
using System.Text;

namespace TorchBoltzmann.Logging;

/// <summary>What a summary value in an event holds.</summary>
public enum TensorBoardValueKind
{
    /// <summary>A scalar (<c>simple_value</c>).</summary>
    Scalar,
    /// <summary>A histogram (<c>histo</c>).</summary>
    Histogram,
    /// <summary>An encoded image (<c>image</c>).</summary>
    Image,
}

/// <summary>One summary value read back from an event file.</summary>
/// <param name="Tag">The tag (e.g. <c>rbm/reconstruction_error</c>).</param>
/// <param name="Step">The event's global step.</param>
/// <param name="WallTime">Seconds since 1970-01-01 UTC when it was written.</param>
/// <param name="Kind">Scalar, histogram or image.</param>
/// <param name="Scalar">The scalar's value (scalars only).</param>
/// <param name="HistogramCount">Number of values summarised (histograms only).</param>
/// <param name="HistogramSum">Sum of the values summarised (histograms only).</param>
/// <param name="ImageBytes">Length of the encoded image (images only).</param>
public sealed record TensorBoardValue(string Tag, long Step, double WallTime, TensorBoardValueKind Kind,
    float Scalar = float.NaN, double HistogramCount = 0, double HistogramSum = 0, int ImageBytes = 0);

/// <summary>
/// Writes TensorBoard event files (<c>events.out.tfevents.*</c>) that TensorBoard and <c>tensorboard.backend</c>'s readers
/// load: scalars, histograms and PNG images, one event per value, flushed as written so that a run can be watched while
/// it goes and nothing written is lost when the process stops.
/// </summary>
/// <remarks>
/// <para><b>Format.</b> A file is a sequence of records, each
/// <c>uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)</c> (little-endian), where
/// <c>data</c> is a serialised <c>tensorflow.Event</c> protocol buffer: <c>wall_time</c> (field 1, double, seconds since the
/// epoch), <c>step</c> (2, int64), and either <c>file_version</c> (3, "brain.Event:2", the first record) or <c>summary</c>
/// (5) with one <c>Summary.Value</c>: <c>tag</c> (1), and <c>simple_value</c> (2, float), <c>image</c> (4: height,
/// width, colorspace, encoded PNG) or <c>histo</c> (5: min, max, num, sum, sum_squares, bucket_limit, bucket). The
/// protocol buffers are encoded here directly (a few fields, no generated code).</para>
/// <para>TorchSharp has a <c>SummaryWriter</c> too (the tests read its files with <see cref="TensorBoardEventReader"/>, so
/// the two agree on the record format). This writer exists beside it because the logger needs the reader anyway (a
/// continued run must not repeat steps), because it writes the PNG that TorchBoltzmann.Visualization's grids already
/// encode rather than encoding a tensor a second way, and because it flushes every record, so a killed run keeps all it
/// logged.</para>
/// </remarks>
public sealed class TensorBoardEventWriter : IDisposable
{
    private static int _counter;
    private readonly FileStream _stream;

    /// <summary>Creates a new event file in <paramref name="logDirectory"/> (created when missing).</summary>
    /// <param name="logDirectory">The run's directory: TensorBoard shows each directory under its <c>--logdir</c> as one run.</param>
    public TensorBoardEventWriter(string logDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(logDirectory);
        Directory.CreateDirectory(logDirectory);
        long seconds = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string name = $"events.out.tfevents.{seconds}.{Sanitise(Environment.MachineName)}.{Environment.ProcessId}.{Interlocked.Increment(ref _counter)}";
        FilePath = Path.Combine(Path.GetFullPath(logDirectory), name);
        _stream = new FileStream(FilePath, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        var e = new ProtoWriter();
        e.Double(1, Now());
        e.Varint(2, 0);
        e.String(3, "brain.Event:2");
        WriteRecord(e.ToArray());
    }

    /// <summary>The event file's full path.</summary>
    public string FilePath { get; }

    /// <summary>Writes a scalar.</summary>
    /// <param name="tag">The tag; '/' groups tags into sections in TensorBoard.</param>
    /// <param name="value">The value (stored as a 32-bit float, as TensorBoard's <c>simple_value</c> is).</param>
    /// <param name="step">The global step (the x axis).</param>
    public void AddScalar(string tag, double value, long step)
    {
        var v = new ProtoWriter();
        v.String(1, tag);
        v.Float(2, (float)value);
        WriteSummary(v.ToArray(), step);
    }

    /// <summary>
    /// Writes a histogram of <paramref name="values"/> with <paramref name="bins"/> equal-width buckets between their
    /// minimum and maximum (TensorBoard draws bucket i as the interval (limit_{i−1}, limit_i]).
    /// </summary>
    /// <param name="tag">The tag.</param>
    /// <param name="values">The values (any shape; NaN and infinities are left out of the buckets and counted nowhere).</param>
    /// <param name="step">The global step.</param>
    /// <param name="bins">Number of buckets (at least 1).</param>
    public void AddHistogram(string tag, ReadOnlySpan<double> values, long step, int bins = 64)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bins, 1);
        double min = double.PositiveInfinity, max = double.NegativeInfinity, sum = 0, sumSq = 0, num = 0;
        foreach (double x in values)
        {
            if (!double.IsFinite(x)) continue;
            min = Math.Min(min, x); max = Math.Max(max, x);
            sum += x; sumSq += x * x; num++;
        }
        if (num == 0) { min = max = 0; }
        double width = (max - min) / bins;
        var limits = new double[bins];
        var counts = new double[bins];
        for (int i = 0; i < bins; i++) limits[i] = i == bins - 1 || width == 0 ? max : min + (i + 1) * width;
        if (width == 0) { limits = [max]; counts = [num]; }
        else
        {
            foreach (double x in values)
            {
                if (!double.IsFinite(x)) continue;
                int i = (int)Math.Min(bins - 1, Math.Floor((x - min) / width));
                counts[i]++;
            }
        }

        var h = new ProtoWriter();
        h.Double(1, min); h.Double(2, max); h.Double(3, num); h.Double(4, sum); h.Double(5, sumSq);
        h.PackedDoubles(6, limits); h.PackedDoubles(7, counts);
        var v = new ProtoWriter();
        v.String(1, tag);
        v.Message(5, h.ToArray());
        WriteSummary(v.ToArray(), step);
    }

    /// <summary>Writes a PNG image (e.g. a grid of filters from <c>ImageGrid</c>).</summary>
    /// <param name="tag">The tag.</param>
    /// <param name="png">The encoded PNG file.</param>
    /// <param name="step">The global step.</param>
    /// <exception cref="ArgumentException">The bytes are not a PNG file.</exception>
    public void AddImage(string tag, byte[] png, long step)
    {
        ArgumentNullException.ThrowIfNull(png);
        // PNG: 8-byte signature, then the IHDR chunk: length, "IHDR", width, height (big-endian), bit depth, colour type.
        if (png.Length < 26 || png[1] != (byte)'P' || png[2] != (byte)'N' || png[3] != (byte)'G' || Encoding.ASCII.GetString(png, 12, 4) != "IHDR")
            throw new ArgumentException($"AddImage '{tag}': expected a PNG file, got {png.Length} bytes that are not one.", nameof(png));
        int width = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)), height = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20));
        int colourspace = png[25] switch { 0 => 1, 4 => 2, 2 or 3 => 3, _ => 4 };   // grey, grey+alpha, RGB, RGBA
        var img = new ProtoWriter();
        img.Varint(1, height); img.Varint(2, width); img.Varint(3, colourspace); img.Bytes(4, png);
        var v = new ProtoWriter();
        v.String(1, tag);
        v.Message(4, img.ToArray());
        WriteSummary(v.ToArray(), step);
    }

    /// <inheritdoc />
    public void Dispose() => _stream.Dispose();

    private void WriteSummary(byte[] value, long step)
    {
        var summary = new ProtoWriter();
        summary.Message(1, value);
        var e = new ProtoWriter();
        e.Double(1, Now());
        e.Varint(2, step);
        e.Message(5, summary.ToArray());
        WriteRecord(e.ToArray());
    }

    private void WriteRecord(byte[] data)
    {
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], Crc32C.Masked(header[..8]));
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, Crc32C.Masked(data));
        _stream.Write(header);
        _stream.Write(data);
        _stream.Write(footer);
        _stream.Flush();
    }

    private static double Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

    private static string Sanitise(string s) => new(s.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());

    /// <summary>The few protocol-buffer encodings an event needs (varint, 64-bit, 32-bit and length-delimited fields).</summary>
    private sealed class ProtoWriter
    {
        private readonly MemoryStream _buffer = new();

        public void Varint(int field, long value) { Key(field, 0); Raw((ulong)value); }
        public void Double(int field, double value) { Key(field, 1); Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteDoubleLittleEndian(b, value); _buffer.Write(b); }
        public void Float(int field, float value) { Key(field, 5); Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteSingleLittleEndian(b, value); _buffer.Write(b); }
        public void String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));
        public void Message(int field, byte[] value) => Bytes(field, value);
        public void Bytes(int field, byte[] value) { Key(field, 2); Raw((ulong)value.Length); _buffer.Write(value); }

        public void PackedDoubles(int field, double[] values)
        {
            var b = new byte[values.Length * 8];
            for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteDoubleLittleEndian(b.AsSpan(i * 8), values[i]);
            Bytes(field, b);
        }

        public byte[] ToArray() => _buffer.ToArray();

        private void Key(int field, int wireType) => Raw((ulong)((field << 3) | wireType));

        private void Raw(ulong v)
        {
            while (v >= 0x80) { _buffer.WriteByte((byte)(v | 0x80)); v >>= 7; }
            _buffer.WriteByte((byte)v);
        }
    }
}

/// <summary>
/// Reads TensorBoard event files back (the records <see cref="TensorBoardEventWriter"/> writes, and those of other
/// writers as far as scalars, histograms and images go), checking both CRCs of every record.
/// </summary>
public static class TensorBoardEventReader
{
    /// <summary>The summary values of one event file, in file order.</summary>
    /// <param name="path">An <c>events.out.tfevents.*</c> file.</param>
    /// <exception cref="InvalidDataException">A record is cut short, a CRC does not match, or an event is not a valid
    /// protocol buffer (the message names the file and the record's offset);
    /// a record cut short at the very end (a writer stopped mid-record) ends the list instead.</exception>
    public static IReadOnlyList<TensorBoardValue> Read(string path)
    {
        var values = new List<TensorBoardValue>();
        byte[] bytes = File.ReadAllBytes(path);
        int at = 0;
        while (at < bytes.Length)
        {
            if (bytes.Length - at < 12) break;   // a header cut short by a stopped writer
            var header = bytes.AsSpan(at, 12);
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(header);
            if (BinaryPrimitives.ReadUInt32LittleEndian(header[8..]) != Crc32C.Masked(header[..8]))
                throw new InvalidDataException($"{path}: record at byte {at}: length CRC mismatch.");
            if (length > int.MaxValue || (ulong)(bytes.Length - at - 12) < length + 4) break;   // data cut short
            var data = bytes.AsSpan(at + 12, (int)length);
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + (int)length)) != Crc32C.Masked(data))
                throw new InvalidDataException($"{path}: record at byte {at}: data CRC mismatch.");
            try { ReadEvent(data, values); }
            catch (InvalidDataException e) { throw new InvalidDataException($"{path}: record at byte {at}: {e.Message}", e); }
            at += 12 + (int)length + 4;
        }
        return values;
    }

    /// <summary>The summary values of every event file under <paramref name="directory"/> (not its subdirectories), by file name.</summary>
    /// <param name="directory">A run's directory.</param>
    public static IReadOnlyList<TensorBoardValue> ReadDirectory(string directory) =>
        Directory.Exists(directory)
            ? Directory.GetFiles(directory, "events.out.tfevents.*").Order(StringComparer.Ordinal).SelectMany(Read).ToList()
            : [];

    private static void ReadEvent(ReadOnlySpan<byte> e, List<TensorBoardValue> into)
    {
        double wall = 0; long step = 0;
        var summaries = new List<byte[]>();
        var r = new ProtoReader(e);
        while (r.Next(out int field, out int wire))
        {
            if (field == 1 && wire == 1) wall = r.Double();
            else if (field == 2 && wire == 0) step = (long)r.Varint();
            else if (field == 5 && wire == 2) summaries.Add(r.LengthDelimited().ToArray());
            else r.Skip(wire);
        }
        foreach (var s in summaries)
        {
            var sr = new ProtoReader(s);
            while (sr.Next(out int field, out int wire))
            {
                if (field == 1 && wire == 2) into.Add(ReadValue(sr.LengthDelimited(), step, wall));
                else sr.Skip(wire);
            }
        }
    }

    private static TensorBoardValue ReadValue(ReadOnlySpan<byte> v, long step, double wall)
    {
        string tag = "";
        var value = new TensorBoardValue("", step, wall, TensorBoardValueKind.Scalar);
        var r = new ProtoReader(v);
        while (r.Next(out int field, out int wire))
        {
            if (field == 1 && wire == 2) tag = Encoding.UTF8.GetString(r.LengthDelimited());
            else if (field == 2 && wire == 5) value = value with { Kind = TensorBoardValueKind.Scalar, Scalar = r.Float() };
            else if (field == 4 && wire == 2)
            {
                var ir = new ProtoReader(r.LengthDelimited());
                int n = 0;
                while (ir.Next(out int f, out int w)) { if (f == 4 && w == 2) n = ir.LengthDelimited().Length; else ir.Skip(w); }
                value = value with { Kind = TensorBoardValueKind.Image, ImageBytes = n };
            }
            else if (field == 5 && wire == 2)
            {
                var hr = new ProtoReader(r.LengthDelimited());
                double num = 0, sum = 0;
                while (hr.Next(out int f, out int w))
                {
                    if (f == 3 && w == 1) num = hr.Double();
                    else if (f == 4 && w == 1) sum = hr.Double();
                    else hr.Skip(w);
                }
                value = value with { Kind = TensorBoardValueKind.Histogram, HistogramCount = num, HistogramSum = sum };
            }
            else r.Skip(wire);
        }
        return value with { Tag = tag };
    }

    private ref struct ProtoReader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _at;

        public bool Next(out int field, out int wire)
        {
            field = wire = 0;
            if (_at >= _data.Length) return false;
            ulong key = Varint();
            field = (int)(key >> 3); wire = (int)(key & 7);
            return true;
        }

        public ulong Varint()
        {
            ulong v = 0;
            for (int shift = 0; ; shift += 7)
            {
                if (_at >= _data.Length || shift > 63) throw new InvalidDataException("event: malformed varint.");
                byte b = _data[_at++];
                v |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return v;
            }
        }

        public double Double() { var v = BinaryPrimitives.ReadDoubleLittleEndian(Take(8)); return v; }
        public float Float() { var v = BinaryPrimitives.ReadSingleLittleEndian(Take(4)); return v; }
        public ReadOnlySpan<byte> LengthDelimited() { ulong n = Varint(); return n > int.MaxValue ? throw new InvalidDataException("event: field too long.") : Take((int)n); }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: Take(8); break;
                case 2: LengthDelimited(); break;
                case 5: Take(4); break;
                default: throw new InvalidDataException($"event: unsupported wire type {wire}.");
            }
        }

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n < 0 || n > _data.Length - _at) throw new InvalidDataException("event: field runs past the end of its message.");
            var s = _data.Slice(_at, n);
            _at += n;
            return s;
        }
    }
}

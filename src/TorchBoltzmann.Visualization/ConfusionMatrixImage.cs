using System.Globalization;
using SkiaSharp;

namespace TorchBoltzmann.Visualization;

/// <summary>
/// Renders a confusion matrix as a PNG heat map: row = true class, column = predicted class, each cell showing its count.
/// </summary>
/// <remarks>
/// A cell's colour is its share of its row (the fraction of that true class predicted as the column's class), on a
/// white-to-dark-blue scale ("Blues"): 0 is near white (#F7FBFF), 1 is dark blue (#08306B); a row with no samples is
/// all white. Counts are written in black on light cells and in white on dark ones. The image is
/// <c>100 + K·cellSize + 10</c> pixels wide and <c>56 + K·cellSize + 10</c> high for K classes (row labels and the
/// "True" caption on the left, column labels and the "Predicted" caption on top). Text needs a font; without one,
/// only the cells are drawn.
/// </remarks>
public static class ConfusionMatrixImage
{
    /// <summary>Width in pixels of the label margin left of the cells.</summary>
    public const int LeftMargin = 100;

    /// <summary>Height in pixels of the label margin above the cells.</summary>
    public const int TopMargin = 56;

    /// <summary>Padding in pixels right of and below the cells.</summary>
    public const int OuterPadding = 10;

    // matplotlib "Blues" (9 stops), light to dark.
    private static readonly SKColor[] Blues =
    [
        new(0xf7, 0xfb, 0xff), new(0xde, 0xeb, 0xf7), new(0xc6, 0xdb, 0xef), new(0x9e, 0xca, 0xe1), new(0x6b, 0xae, 0xd6),
        new(0x42, 0x92, 0xc6), new(0x21, 0x71, 0xb5), new(0x08, 0x51, 0x9c), new(0x08, 0x30, 0x6b),
    ];

    /// <summary>Renders the confusion matrix and returns the PNG bytes.</summary>
    /// <param name="counts">K×K counts, <c>counts[trueClass, predictedClass]</c>, all non-negative.</param>
    /// <param name="labels">K class names; default "0" … "K−1".</param>
    /// <param name="cellSize">Side of one cell in pixels (16 to 512).</param>
    /// <returns>The PNG file contents.</returns>
    /// <exception cref="ArgumentException">The matrix is empty or not square, a count is negative, or the label count is not K.</exception>
    public static byte[] Encode(int[,] counts, IReadOnlyList<string>? labels = null, int cellSize = 48)
    {
        var k = Validate(counts, labels, cellSize);
        var names = labels ?? Enumerable.Range(0, k).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
        var width = LeftMargin + k * cellSize + OuterPadding;
        var height = TopMargin + k * cellSize + OuterPadding;

        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(bitmap))
        {
            Draw(canvas, counts, names, k, cellSize);
        }
        return PngFile.Encode(bitmap);
    }

    /// <summary>Renders the confusion matrix and writes the PNG to <paramref name="path"/> atomically, creating the directory.</summary>
    /// <param name="path">Destination file; overwritten if it exists.</param>
    /// <param name="counts">K×K counts, <c>counts[trueClass, predictedClass]</c>.</param>
    /// <param name="labels">K class names; default "0" … "K−1".</param>
    /// <param name="cellSize">Side of one cell in pixels (16 to 512).</param>
    /// <exception cref="ArgumentException">See <see cref="Encode"/>.</exception>
    public static void Save(string path, int[,] counts, IReadOnlyList<string>? labels = null, int cellSize = 48)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        PngFile.WriteAtomic(path, Encode(counts, labels, cellSize));
    }

    /// <summary>The heat-map colour for a row share <paramref name="t"/> in [0, 1] (clamped; NaN is 0).</summary>
    internal static SKColor ColorFor(double t)
    {
        if (double.IsNaN(t))
        {
            t = 0;
        }
        var position = Math.Clamp(t, 0, 1) * (Blues.Length - 1);
        var i = Math.Min((int)position, Blues.Length - 2);
        var f = position - i;
        SKColor a = Blues[i], b = Blues[i + 1];
        static byte Lerp(byte x, byte y, double f) => (byte)Math.Round(x + (y - x) * f);
        return new SKColor(Lerp(a.Red, b.Red, f), Lerp(a.Green, b.Green, f), Lerp(a.Blue, b.Blue, f));
    }

    private static int Validate(int[,] counts, IReadOnlyList<string>? labels, int cellSize)
    {
        ArgumentNullException.ThrowIfNull(counts);
        ArgumentOutOfRangeException.ThrowIfLessThan(cellSize, 16);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cellSize, 512);
        int rows = counts.GetLength(0), cols = counts.GetLength(1);
        if (rows == 0 || rows != cols)
        {
            throw new ArgumentException($"Expected a non-empty square K×K matrix; got {rows}×{cols}.", nameof(counts));
        }
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < cols; c++)
            {
                if (counts[r, c] < 0)
                {
                    throw new ArgumentException($"Expected non-negative counts; got {counts[r, c]} at [{r}, {c}].", nameof(counts));
                }
            }
        }
        if (labels is not null && labels.Count != rows)
        {
            throw new ArgumentException($"Expected {rows} labels (one per class); got {labels.Count}.", nameof(labels));
        }
        return rows;
    }

    private static void Draw(SKCanvas canvas, int[,] counts, IReadOnlyList<string> names, int k, int cellSize)
    {
        canvas.Clear(SKColors.White);
        using var cellPaint = new SKPaint { Style = SKPaintStyle.Fill, IsAntialias = false };
        using var gridPaint = new SKPaint { Style = SKPaintStyle.Stroke, StrokeWidth = 1, Color = new SKColor(0xd0, 0xd0, 0xd0) };
        using var darkText = new SKPaint { Color = new SKColor(0x11, 0x11, 0x11), IsAntialias = true };
        using var lightText = new SKPaint { Color = SKColors.White, IsAntialias = true };
        using var countFont = ChartFonts.Create(Math.Min(14f, cellSize * 0.32f));
        using var labelFont = ChartFonts.Create(12);
        using var captionFont = ChartFonts.Create(13);

        for (var r = 0; r < k; r++)
        {
            long rowTotal = 0;
            for (var c = 0; c < k; c++)
            {
                rowTotal += counts[r, c];
            }
            for (var c = 0; c < k; c++)
            {
                var share = rowTotal > 0 ? (double)counts[r, c] / rowTotal : 0;
                var cell = SKRect.Create(LeftMargin + c * cellSize, TopMargin + r * cellSize, cellSize, cellSize);
                cellPaint.Color = ColorFor(share);
                canvas.DrawRect(cell, cellPaint);
                canvas.DrawRect(new SKRect(cell.Left + 0.5f, cell.Top + 0.5f, cell.Right - 0.5f, cell.Bottom - 0.5f), gridPaint);
                if (countFont is not null)
                {
                    var text = counts[r, c].ToString(CultureInfo.InvariantCulture);
                    DrawFitted(canvas, text, cell.MidX, cell.MidY, cellSize - 6, SKTextAlign.Center, countFont,
                        share > 0.5 ? lightText : darkText);
                }
            }
        }

        if (labelFont is not null)
        {
            for (var i = 0; i < k; i++)
            {
                var name = names[i] ?? string.Empty;
                var midY = TopMargin + (i + 0.5f) * cellSize;
                DrawFitted(canvas, name, LeftMargin - 6, midY, LeftMargin - 34, SKTextAlign.Right, labelFont, darkText);
                var midX = LeftMargin + (i + 0.5f) * cellSize;
                DrawFitted(canvas, name, midX, TopMargin - 12, cellSize - 4, SKTextAlign.Center, labelFont, darkText);
            }
        }
        if (captionFont is not null)
        {
            var gridMid = k * cellSize / 2f;
            canvas.DrawText("Predicted", LeftMargin + gridMid, 18, SKTextAlign.Center, captionFont, darkText);
            canvas.Save();
            canvas.RotateDegrees(-90, 16, TopMargin + gridMid);
            canvas.DrawText("True", 16, TopMargin + gridMid, SKTextAlign.Center, captionFont, darkText);
            canvas.Restore();
        }
    }

    /// <summary>
    /// Draws <paramref name="text"/> vertically centred on <paramref name="midY"/> within <paramref name="maxWidth"/>:
    /// shrunk down to 70 % of the font size, then shortened with an ellipsis.
    /// </summary>
    private static void DrawFitted(SKCanvas canvas, string text, float x, float midY, float maxWidth, SKTextAlign align, SKFont font, SKPaint paint)
    {
        if (text.Length == 0 || maxWidth <= 0)
        {
            return;
        }
        var size = font.Size;
        var measured = font.MeasureText(text);
        if (measured > maxWidth && measured > 0)
        {
            size = Math.Max(font.Size * 0.7f, font.Size * maxWidth / measured);
        }
        using var fitted = new SKFont(font.Typeface, size) { Subpixel = true, Edging = SKFontEdging.Antialias };
        if (fitted.MeasureText(text) > maxWidth)
        {
            var keep = text.Length - 1;
            while (keep > 0 && fitted.MeasureText(text[..keep] + "…") > maxWidth)
            {
                keep--;
            }
            text = keep > 0 ? text[..keep] + "…" : text[..1];
        }
        // Baseline so that digits/capitals are centred: cap height is about 0.7 em.
        canvas.DrawText(text, x, midY + size * 0.35f, align, fitted, paint);
    }
}

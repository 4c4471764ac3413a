using SkiaSharp;

namespace TorchBoltzmann.Visualization;

/// <summary>
/// Renders line charts (learning curves: reconstruction error, pseudo-likelihood, free-energy gap, …) as PNG.
/// </summary>
/// <remarks>
/// Axes get round ("nice") tick values with labels and light grid lines; series are drawn in distinct colours
/// (<see cref="Palette"/> unless <see cref="Series.Color"/> is set) with a legend in the top-right corner of the plot.
/// NaN or infinite points are skipped (the line breaks there; isolated points are drawn as dots), and a single point or a
/// constant series gets a small range around its value. Text needs a font: if none can be found (SkiaSharp without
/// fontconfig and no known font file), text is skipped and the lines still render.
/// </remarks>
public static class LineChart
{
    /// <summary>Default series colours, used in order (the "tab10" palette).</summary>
    public static IReadOnlyList<SKColor> Palette { get; } =
    [
        new SKColor(0x1f, 0x77, 0xb4),
        new SKColor(0xff, 0x7f, 0x0e),
        new SKColor(0x2c, 0xa0, 0x2c),
        new SKColor(0xd6, 0x27, 0x28),
        new SKColor(0x94, 0x67, 0xbd),
        new SKColor(0x8c, 0x56, 0x4b),
        new SKColor(0xe3, 0x77, 0xc2),
        new SKColor(0x7f, 0x7f, 0x7f),
        new SKColor(0xbc, 0xbd, 0x22),
        new SKColor(0x17, 0xbe, 0xcf),
    ];

    private const int MinimumSize = 100;
    private const float LineWidth = 2f;

    /// <summary>Renders the chart and returns the PNG bytes (<see cref="ChartSpec.Width"/> × <see cref="ChartSpec.Height"/>).</summary>
    /// <param name="spec">What to draw.</param>
    /// <returns>The PNG file contents.</returns>
    /// <exception cref="ArgumentException">The size is below 100 pixels, or a series' X and Y differ in length.</exception>
    public static byte[] Encode(ChartSpec spec)
    {
        Validate(spec);
        using var bitmap = new SKBitmap(new SKImageInfo(spec.Width, spec.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(bitmap))
        {
            Draw(canvas, spec);
        }
        return PngFile.Encode(bitmap);
    }

    /// <summary>Renders the chart and writes the PNG to <paramref name="path"/> atomically, creating the directory.</summary>
    /// <param name="path">Destination file; overwritten if it exists.</param>
    /// <param name="spec">What to draw.</param>
    /// <exception cref="ArgumentException">See <see cref="Encode"/>.</exception>
    public static void Save(string path, ChartSpec spec)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        PngFile.WriteAtomic(path, Encode(spec));
    }

    private static void Validate(ChartSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Width < MinimumSize || spec.Height < MinimumSize)
        {
            throw new ArgumentException(
                $"Expected a chart of at least {MinimumSize}×{MinimumSize} pixels; got {spec.Width}×{spec.Height}.", nameof(spec));
        }
        if (spec.Series is null)
        {
            throw new ArgumentException("Expected a list of series; got null.", nameof(spec));
        }
        for (var i = 0; i < spec.Series.Count; i++)
        {
            var s = spec.Series[i] ?? throw new ArgumentException($"Series {i} is null.", nameof(spec));
            if (s.X is null || s.Y is null)
            {
                throw new ArgumentException($"Series {i} ('{s.Name}') has null X or Y.", nameof(spec));
            }
            if (s.X.Count != s.Y.Count)
            {
                throw new ArgumentException(
                    $"Series {i} ('{s.Name}'): expected X and Y of equal length; got {s.X.Count} X and {s.Y.Count} Y values.",
                    nameof(spec));
            }
        }
    }

    private static void Draw(SKCanvas canvas, ChartSpec spec)
    {
        canvas.Clear(SKColors.White);
        using var titleFont = ChartFonts.Create(16);
        using var labelFont = ChartFonts.Create(13);
        using var tickFont = ChartFonts.Create(11);

        var title = spec.Title ?? string.Empty;
        var xLabel = spec.XLabel ?? string.Empty;
        var yLabel = spec.YLabel ?? string.Empty;

        float top = title.Length > 0 ? 36 : 14;
        float bottom = spec.Height - (xLabel.Length > 0 ? 48 : 30);
        float left = yLabel.Length > 0 ? 74 : 56;
        float right = spec.Width - 18;
        var plot = new SKRect(left, top, right, bottom);

        // Data range over finite points.
        double xMin = double.PositiveInfinity, xMax = double.NegativeInfinity;
        double yMin = double.PositiveInfinity, yMax = double.NegativeInfinity;
        foreach (var s in spec.Series)
        {
            for (var i = 0; i < s.X.Count; i++)
            {
                double x = s.X[i], y = s.Y[i];
                if (double.IsFinite(x) && double.IsFinite(y))
                {
                    xMin = Math.Min(xMin, x);
                    xMax = Math.Max(xMax, x);
                    yMin = Math.Min(yMin, y);
                    yMax = Math.Max(yMax, y);
                }
            }
        }
        var xScale = NiceScale.Create(xMin, xMax, Math.Max(3, (int)(plot.Width / 80)));
        var yScale = NiceScale.Create(yMin, yMax, Math.Max(3, (int)(plot.Height / 45)));

        float Px(double x) => (float)(plot.Left + (x - xScale.Min) / (xScale.Max - xScale.Min) * plot.Width);
        float Py(double y) => (float)(plot.Bottom - (y - yScale.Min) / (yScale.Max - yScale.Min) * plot.Height);

        using var gridPaint = new SKPaint { Color = new SKColor(0xe4, 0xe4, 0xe4), StrokeWidth = 1, IsAntialias = false, Style = SKPaintStyle.Stroke };
        using var axisPaint = new SKPaint { Color = SKColors.Black, StrokeWidth = 1, IsAntialias = false, Style = SKPaintStyle.Stroke };
        using var textPaint = new SKPaint { Color = new SKColor(0x22, 0x22, 0x22), IsAntialias = true };

        // Grid, ticks and tick labels.
        foreach (var t in xScale.Ticks())
        {
            var x = Snap(Px(t));
            canvas.DrawLine(x, plot.Top, x, plot.Bottom, gridPaint);
            canvas.DrawLine(x, plot.Bottom, x, plot.Bottom + 5, axisPaint);
            if (tickFont is not null)
            {
                canvas.DrawText(xScale.Format(t), x, plot.Bottom + 18, SKTextAlign.Center, tickFont, textPaint);
            }
        }
        foreach (var t in yScale.Ticks())
        {
            var y = Snap(Py(t));
            canvas.DrawLine(plot.Left, y, plot.Right, y, gridPaint);
            canvas.DrawLine(plot.Left - 5, y, plot.Left, y, axisPaint);
            if (tickFont is not null)
            {
                canvas.DrawText(yScale.Format(t), plot.Left - 8, y + 4, SKTextAlign.Right, tickFont, textPaint);
            }
        }
        canvas.DrawRect(new SKRect(Snap(plot.Left), Snap(plot.Top), Snap(plot.Right), Snap(plot.Bottom)), axisPaint);

        // Title and axis labels.
        if (titleFont is not null && title.Length > 0)
        {
            canvas.DrawText(title, plot.MidX, 24, SKTextAlign.Center, titleFont, textPaint);
        }
        if (labelFont is not null && xLabel.Length > 0)
        {
            canvas.DrawText(xLabel, plot.MidX, spec.Height - 12, SKTextAlign.Center, labelFont, textPaint);
        }
        if (labelFont is not null && yLabel.Length > 0)
        {
            canvas.Save();
            canvas.RotateDegrees(-90, 18, plot.MidY);
            canvas.DrawText(yLabel, 18, plot.MidY, SKTextAlign.Center, labelFont, textPaint);
            canvas.Restore();
        }

        // Series, clipped to the plot area.
        canvas.Save();
        canvas.ClipRect(plot);
        for (var k = 0; k < spec.Series.Count; k++)
        {
            DrawSeries(canvas, spec.Series[k], ColorOf(spec.Series[k], k), Px, Py);
        }
        canvas.Restore();

        if (spec.Series.Count > 0)
        {
            DrawLegend(canvas, spec.Series, plot, labelFont, textPaint);
        }
    }

    private static SKColor ColorOf(Series series, int index) => series.Color ?? Palette[index % Palette.Count];

    private static float Snap(float v) => MathF.Floor(v) + 0.5f;

    private static void DrawSeries(SKCanvas canvas, Series series, SKColor color, Func<double, float> px, Func<double, float> py)
    {
        using var linePaint = new SKPaint
        {
            Color = color, StrokeWidth = LineWidth, IsAntialias = true, Style = SKPaintStyle.Stroke,
            StrokeJoin = SKStrokeJoin.Round, StrokeCap = SKStrokeCap.Round,
        };
        using var dotPaint = new SKPaint { Color = color, IsAntialias = true, Style = SKPaintStyle.Fill };
        using var path = new SKPath();
        var runLength = 0;
        SKPoint runStart = default;
        for (var i = 0; i <= series.X.Count; i++)
        {
            var finite = i < series.X.Count && double.IsFinite(series.X[i]) && double.IsFinite(series.Y[i]);
            if (!finite)
            {
                if (runLength == 1)
                {
                    canvas.DrawCircle(runStart, LineWidth + 1.5f, dotPaint);
                }
                runLength = 0;
                continue;
            }
            var p = new SKPoint(px(series.X[i]), py(series.Y[i]));
            if (runLength == 0)
            {
                path.MoveTo(p);
                runStart = p;
            }
            else
            {
                path.LineTo(p);
            }
            runLength++;
        }
        canvas.DrawPath(path, linePaint);
    }

    private static void DrawLegend(SKCanvas canvas, IReadOnlyList<Series> series, SKRect plot, SKFont? font, SKPaint textPaint)
    {
        const float swatch = 22, gap = 6, pad = 8, rowHeight = 18;
        var textWidth = 0f;
        if (font is not null)
        {
            foreach (var s in series)
            {
                textWidth = Math.Max(textWidth, font.MeasureText(s.Name ?? string.Empty));
            }
        }
        var width = pad + swatch + (textWidth > 0 ? gap + textWidth : 0) + pad;
        var height = pad + rowHeight * series.Count + pad - 4;
        var box = SKRect.Create(plot.Right - 10 - width, plot.Top + 10, width, height);

        using var fill = new SKPaint { Color = new SKColor(255, 255, 255, 225), Style = SKPaintStyle.Fill };
        using var border = new SKPaint { Color = new SKColor(0xb0, 0xb0, 0xb0), Style = SKPaintStyle.Stroke, StrokeWidth = 1 };
        canvas.DrawRect(box, fill);
        canvas.DrawRect(box, border);
        for (var k = 0; k < series.Count; k++)
        {
            var y = box.Top + pad + rowHeight * k + 7;
            using var swatchPaint = new SKPaint
            {
                Color = ColorOf(series[k], k), StrokeWidth = LineWidth + 1, IsAntialias = true, Style = SKPaintStyle.Stroke,
            };
            canvas.DrawLine(box.Left + pad, y, box.Left + pad + swatch, y, swatchPaint);
            if (font is not null)
            {
                canvas.DrawText(series[k].Name ?? string.Empty, box.Left + pad + swatch + gap, y + 4, SKTextAlign.Left, font, textPaint);
            }
        }
    }
}

using SkiaSharp;

namespace TorchBoltzmann.Visualization;

/// <summary>
/// Finds a typeface that can draw text. SkiaSharp's Linux "NoDependencies" build has no fontconfig, so
/// <see cref="SKTypeface.Default"/> can be an empty face; then well-known font files are tried, and if none is
/// found the renderers skip text (lines and cells still render).
/// </summary>
internal static class ChartFonts
{
    private static readonly Lazy<SKTypeface?> Resolved = new(Resolve, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>When set (tests), replaces the resolved typeface; <see cref="NoFont"/> forces text to be skipped.</summary>
    internal static SKTypeface? Override { get; set; }

    /// <summary>When true (tests), behaves as if no font were available.</summary>
    internal static bool NoFont { get; set; }

    /// <summary>The typeface to draw text with, or null when no usable font exists.</summary>
    internal static SKTypeface? Typeface => NoFont ? null : Override ?? Resolved.Value;

    /// <summary>Creates a font of the given size, or null when no usable typeface exists.</summary>
    internal static SKFont? Create(float size)
    {
        var typeface = Typeface;
        if (typeface is null)
        {
            return null;
        }
        return new SKFont(typeface, size) { Subpixel = true, Edging = SKFontEdging.Antialias };
    }

    private static readonly string[] CandidateFiles =
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
        "/usr/share/fonts/noto/NotoSans-Regular.ttf",
        "/Library/Fonts/Arial.ttf",
        "/System/Library/Fonts/Supplemental/Arial.ttf",
        "/System/Library/Fonts/Helvetica.ttc",
        @"C:\Windows\Fonts\arial.ttf",
        @"C:\Windows\Fonts\segoeui.ttf",
    ];

    private static SKTypeface? Resolve()
    {
        try
        {
            // Prefer a sans-serif face; SkiaSharp's default can be a serif one (DejaVu Serif on Debian).
            foreach (var family in new[] { "DejaVu Sans", "Liberation Sans", "Arial", "Helvetica", "Noto Sans", "Segoe UI" })
            {
                var matched = SKFontManager.Default.MatchFamily(family);
                if (Usable(matched))
                {
                    return matched;
                }
                // Not disposed: a font manager may hand back its shared default face.
            }
            if (Usable(SKTypeface.Default))
            {
                return SKTypeface.Default;
            }
            foreach (var file in CandidateFiles.Concat(ScanFontDirectories()))
            {
                if (!File.Exists(file))
                {
                    continue;
                }
                var face = SKTypeface.FromFile(file);
                if (Usable(face))
                {
                    return face;
                }
                face?.Dispose();
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DllNotFoundException or EntryPointNotFoundException)
        {
            // No font machinery: text is skipped.
        }
        return null;
    }

    private static IEnumerable<string> ScanFontDirectories()
    {
        foreach (var root in new[] { "/usr/share/fonts", "/usr/local/share/fonts" })
        {
            if (!Directory.Exists(root))
            {
                continue;
            }
            IEnumerable<string> files;
            try
            {
                files = Directory.EnumerateFiles(root, "*.ttf", SearchOption.AllDirectories).Take(200).ToList();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }
            foreach (var file in files)
            {
                yield return file;
            }
        }
    }

    private static bool Usable(SKTypeface? typeface)
    {
        if (typeface is null || typeface.GlyphCount <= 0)
        {
            return false;
        }
        using var font = new SKFont(typeface, 12);
        return font.ContainsGlyphs("0123456789Aa");
    }
}

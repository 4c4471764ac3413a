using System.Globalization;

namespace TorchBoltzmann.Visualization;

/// <summary>An axis range widened to round tick values (1, 2 or 5 × 10^k steps; after Heckbert's "nice numbers").</summary>
internal sealed class NiceScale
{
    private NiceScale(double min, double max, double step, int tickCount)
    {
        Min = min;
        Max = max;
        Step = step;
        TickCount = tickCount;
    }

    /// <summary>Lower end of the axis (the first tick).</summary>
    internal double Min { get; }

    /// <summary>Upper end of the axis (the last tick).</summary>
    internal double Max { get; }

    /// <summary>Distance between ticks.</summary>
    internal double Step { get; }

    /// <summary>Number of ticks, including both ends.</summary>
    internal int TickCount { get; }

    /// <summary>The tick values, from <see cref="Min"/> to <see cref="Max"/>.</summary>
    internal IEnumerable<double> Ticks()
    {
        for (var i = 0; i < TickCount; i++)
        {
            var v = Min + i * Step;
            // Snap float noise (0.30000000000000004) and negative zero.
            v = Math.Round(v / Step) * Step;
            yield return v == 0 ? 0 : v;
        }
    }

    /// <summary>
    /// A nice scale covering [<paramref name="dataMin"/>, <paramref name="dataMax"/>] with about
    /// <paramref name="maxTicks"/> ticks. Non-finite bounds give [0, 1]; an empty range is widened around its value.
    /// </summary>
    internal static NiceScale Create(double dataMin, double dataMax, int maxTicks)
    {
        maxTicks = Math.Clamp(maxTicks, 2, 20);
        if (!double.IsFinite(dataMin) || !double.IsFinite(dataMax) || dataMin > dataMax)
        {
            dataMin = 0;
            dataMax = 1;
        }
        var magnitude = Math.Max(Math.Abs(dataMin), Math.Abs(dataMax));
        if (dataMax - dataMin <= magnitude * 1e-12)
        {
            // Constant (or single-point) data: centre it in a small range, no division by zero.
            var half = magnitude > 0 ? magnitude * 0.1 : 1.0;
            dataMin -= half;
            dataMax += half;
        }
        var span = dataMax - dataMin;
        if (!double.IsFinite(span))
        {
            // Values near ±double.MaxValue: fall back to a plain, non-rounded axis.
            return new NiceScale(dataMin, dataMax, (dataMax / 2 - dataMin / 2) * 2 / (maxTicks - 1), maxTicks);
        }
        var step = NiceNumber(span / (maxTicks - 1), round: true);
        // The small slack keeps float noise (0.0137 / 0.0001 = 137.00000000000003) from adding a tick.
        var lo = Math.Floor(dataMin / step + 1e-9) * step;
        var hi = Math.Ceiling(dataMax / step - 1e-9) * step;
        var count = (int)Math.Round((hi - lo) / step) + 1;
        return new NiceScale(lo, hi, step, Math.Max(2, count));
    }

    /// <summary>Formats a tick value with as many decimals as the step needs.</summary>
    internal string Format(double value)
    {
        var magnitude = Math.Max(Math.Abs(Min), Math.Abs(Max));
        if (Step < 1e-4 || magnitude >= 1e7)
        {
            return value.ToString("G4", CultureInfo.InvariantCulture);
        }
        var decimals = Math.Clamp(-(int)Math.Floor(Math.Log10(Step) + 1e-9), 0, 6);
        return value.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }

    private static double NiceNumber(double x, bool round)
    {
        var exponent = Math.Floor(Math.Log10(x));
        var power = Math.Pow(10, exponent);
        var fraction = x / power;
        double nice;
        if (round)
        {
            nice = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10;
        }
        else
        {
            nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
        }
        return nice * power;
    }
}

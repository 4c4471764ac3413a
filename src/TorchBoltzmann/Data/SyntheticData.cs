using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Data;

/// <summary>Small synthetic binary data sets for learning tests.</summary>
public static class SyntheticData
{
    /// <summary>The largest supported side of <see cref="BarsAndStripes"/>.</summary>
    public const int MaxBarsAndStripesSide = 12;

    /// <summary>
    /// All distinct bars-and-stripes patterns of a <paramref name="side"/>×<paramref name="side"/> grid.
    /// </summary>
    /// <remarks>
    /// <para>A stripes pattern turns on a subset S of the rows: pixel (r, c) = 1 ⇔ r ∈ S. A bars pattern turns on a
    /// subset of the columns: pixel (r, c) = 1 ⇔ c ∈ S. Each family has 2^side patterns and the two share exactly the
    /// all-zero and the all-one patterns, so there are M = 2^(side+1) − 2 distinct patterns (14 for side 3),
    /// each appearing once.</para>
    /// <para>Row order: the 2^side stripes patterns by subset mask 0 … 2^side − 1 (bit r = row r), then the bars
    /// patterns for masks 1 … 2^side − 2 (bit c = column c). Pixel (r, c) is column r·side + c.</para>
    /// </remarks>
    /// <param name="side">Grid side, 1 to <see cref="MaxBarsAndStripesSide"/>.</param>
    /// <returns>float32 [M, side·side] of 0s and 1s.</returns>
    public static Tensor BarsAndStripes(int side)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(side, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(side, MaxBarsAndStripesSide);

        int subsets = 1 << side;
        int rows = 2 * subsets - 2;
        int d = side * side;
        var data = new float[rows * d];
        int row = 0;
        for (int mask = 0; mask < subsets; mask++, row++)
        {
            for (int r = 0; r < side; r++)
            {
                if ((mask >> r & 1) != 0)
                {
                    data.AsSpan(row * d + r * side, side).Fill(1f);
                }
            }
        }

        for (int mask = 1; mask < subsets - 1; mask++, row++)
        {
            for (int r = 0; r < side; r++)
            {
                for (int c = 0; c < side; c++)
                {
                    data[row * d + r * side + c] = (mask >> c & 1) != 0 ? 1f : 0f;
                }
            }
        }

        return torch.tensor(data, new long[] { rows, d }, dtype: ScalarType.Float32);
    }
}

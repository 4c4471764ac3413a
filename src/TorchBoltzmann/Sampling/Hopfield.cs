using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Sampling;

/// <summary>
/// The zero-temperature limit of a <see cref="BoltzmannMachine"/>: a Hopfield network (Hopfield 1982). As T → 0 the
/// Gibbs update p(x_i | rest) = mean(η_i / T) becomes deterministic, x_i ← [η_i &gt; 0] ({0, 1}) or sign(η_i) (spins),
/// and each such asynchronous update changes the energy by ΔE = −Δx_i η_i ≤ 0 (W_ii = 0), so it never rises and the
/// states settle in a local minimum. Hebbian storage puts chosen patterns at (or near) such minima.
/// </summary>
public static class Hopfield
{
    /// <summary>
    /// A spin machine storing <paramref name="patterns"/> ξ^μ ∈ {−1, +1}^N by the Hebbian rule
    /// <code>W = (1/N) Σ_μ ξ^μ ξ^μᵀ with zero diagonal,   b = 0</code>
    /// fully connected, no hidden units. Recall is reliable while the number of patterns stays below about 0.14·N
    /// (Amit, Gutfreund &amp; Sompolinsky 1985).
    /// </summary>
    /// <param name="patterns">Patterns, (P ≥ 1, N ≥ 2), values ±1.</param>
    /// <param name="device">Device of the machine (default: the patterns').</param>
    /// <param name="dtype">Floating-point type (default: the patterns' when floating, else the default dtype).</param>
    /// <exception cref="ArgumentException">Not a (P, N) tensor of ±1 values.</exception>
    public static BoltzmannMachine store(Tensor patterns, Device? device = null, ScalarType? dtype = null)
    {
        ArgumentNullException.ThrowIfNull(patterns);
        if (patterns.dim() != 2 || patterns.shape[0] < 1 || patterns.shape[1] < 2)
            throw new ArgumentException($"patterns: expected shape (P ≥ 1, N ≥ 2), got ({string.Join(", ", patterns.shape)}).", nameof(patterns));
        using var _ = torch.no_grad();
        var dt = dtype ?? (Functional.DTypes.IsFloat(patterns.dtype) ? patterns.dtype : get_default_dtype());
        var dev = device ?? patterns.device;
        int n = (int)patterns.shape[1];
        Tensor w;
        using (var scope = torch.NewDisposeScope())
        {
            var xi = patterns.to(dt, dev);
            using (var ok = xi.abs().eq(1).all())
                if (!ok.item<bool>()) throw new ArgumentException("patterns: expected values in {−1, +1}, got others.", nameof(patterns));
            w = xi.t().matmul(xi).div_(n).MoveToOuterDisposeScope();   // (1/N) Σ_μ ξξᵀ; set_parameters drops the diagonal
        }
        using (w)
        {
            var bm = new BoltzmannMachine(n, 0, units: Units.UnitType.Spin, device: dev, dtype: dt);
            bm.set_parameters(w);
            return bm;
        }
    }

    /// <summary>
    /// One deterministic asynchronous update of <paramref name="unit"/> in every row of <paramref name="states"/>, in
    /// place: x_i ← [η_i &gt; 0] ({0, 1}) or sign(η_i) (spins), unchanged where η_i = 0. Returns how many rows changed.
    /// </summary>
    /// <param name="bm">The machine.</param>
    /// <param name="states">States, (B, n), updated in place.</param>
    /// <param name="unit">The unit to update.</param>
    public static long update_(BoltzmannMachine bm, Tensor states, int unit)
    {
        ArgumentNullException.ThrowIfNull(bm);
        ArgumentNullException.ThrowIfNull(states);
        if (unit < 0 || unit >= bm.n_units) throw new ArgumentOutOfRangeException(nameof(unit), unit, $"unit: expected 0..{bm.n_units - 1}.");
        using var w = bm.weight_matrix();
        return Update(bm, states, unit, w);
    }

    private static long Update(BoltzmannMachine bm, Tensor states, int unit, Tensor w)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var eta = states.matmul(w.select(1, unit)).add_(bm.bias[unit]);   // η_i = b_i + Σ_j W_ij x_j, (B)
        var old = states.select(1, unit);
        var on = eta.gt(0).to_type(states.dtype);
        var high = bm.spins ? on.mul(2).sub_(1) : on;                       // the state η > 0 favours
        var next = torch.where(eta.eq(0), old, high);
        var changed = next.ne(old).sum().ToInt64();
        old.copy_(next);
        return changed;
    }

    /// <summary>
    /// Recall: systematic deterministic sweeps (units 0 … n − 1) from <paramref name="start"/> until a sweep changes no
    /// unit of any row or <paramref name="max_sweeps"/> sweeps. Returns the final states (a new tensor) and the sweeps made.
    /// </summary>
    /// <param name="bm">The machine.</param>
    /// <param name="start">Start states, (B, n) or (n); not modified.</param>
    /// <param name="max_sweeps">Upper bound on sweeps (≥ 1).</param>
    /// <exception cref="ArgumentException">The start states do not fit the machine.</exception>
    public static (Tensor states, int sweeps) recall(BoltzmannMachine bm, Tensor start, int max_sweeps = 100)
    {
        ArgumentNullException.ThrowIfNull(bm);
        bm.check_states(start, "recall start");
        if (max_sweeps < 1) throw new ArgumentOutOfRangeException(nameof(max_sweeps), max_sweeps, "max_sweeps: expected at least 1.");
        using var _ = torch.no_grad();
        using var w = bm.weight_matrix();
        var x = start.to(bm.dtype, bm.device).reshape(-1, bm.n_units).clone();
        int sweeps = 0;
        while (sweeps < max_sweeps)
        {
            long changed = 0;
            for (int i = 0; i < bm.n_units; i++) changed += Update(bm, x, i, w);
            sweeps++;
            if (changed == 0) break;
        }
        if (start.dim() == 1) { var squeezed = x.squeeze(0); x.Dispose(); x = squeezed; }
        return (x, sweeps);
    }
}

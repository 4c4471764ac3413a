using TorchBoltzmann.Units;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace TorchBoltzmann.Modules;

/// <summary>
/// A general Boltzmann machine (Ackley, Hinton &amp; Sejnowski 1985) as a TorchSharp module: n = n_visible + n_hidden
/// units x (visible first), any two of which may be connected, with the energy
/// <code>E(x) = −½ xᵀWx − bᵀx,   p_T(x) = e^{−E(x)/T} / Z_T</code>
/// W symmetric with a zero diagonal, b = <see cref="bias"/>. Units take values in {0, 1} (Bernoulli) or {−1, +1}
/// (<see cref="SpinUnits"/>). A connectivity mask (<see cref="mask"/>) makes restricted (bipartite) and deep (layered)
/// machines special cases of the same module.
/// </summary>
/// <remarks>
/// <para><b>Symmetry by construction: one triangle is stored.</b> The parameter <see cref="weight"/> has shape (n, n),
/// but only its strict upper triangle on connected pairs is used: every computation reads
/// <code>W = U + Uᵀ,   U = triu(weight, 1) ⊙ mask</code>
/// (<see cref="weight_matrix"/>), so W is symmetric, has a zero diagonal and is zero on unconnected pairs after any
/// change to <see cref="weight"/>: an optimizer step, weight decay on the unused entries, a loaded file. Autograd gives
/// zero gradient to the unused entries, and the trainer writes zero there.</para>
/// <para><b>Conditionals.</b> The net input of unit i is η_i = b_i + Σ_j W_ij x_j (= (xW + b)_i, <see cref="net"/>); since
/// W_ii = 0 it does not depend on x_i, and p(x_i | rest) at temperature T is the unit type's: p(x_i = 1) = σ(η_i / T)
/// for {0, 1}, p(s_i = +1) = σ(2η_i / T) for spins. Gibbs sampling runs through <see cref="Sampling.GibbsChains"/>.</para>
/// <para><b>forward(v)</b> returns the hidden units' clamped-phase mean-field means (<see cref="mean_field"/>): with the
/// visible units fixed to v, m_h = mean((b_h + W_hv v + W_hh m_h) / T) iterated block by block (colour classes of the
/// hidden graph, so each block update is exact coordinate ascent on the mean-field free energy) until no mean moves by
/// more than the tolerance. For a bipartite mask it is p(h = 1 | v) after one pass, as for the RBM.</para>
/// <para><b>Free energy.</b> F_β(v) = −log Σ_h e^{−βE(v,h)} has no closed form once hidden units are connected to each
/// other; <see cref="free_energy"/> sums over all 2^{n_hidden} hidden states (up to <see cref="MaxEnumeratedHidden"/>),
/// which is what the exact likelihood of <see cref="Evaluation.ExactEnumeration"/> needs.</para>
/// <para>Shapes: states (B, n) or (n); visible tensors (B, n_visible) or (n_visible). Every method returns fresh tensors
/// and never disposes its inputs.</para>
/// </remarks>
public sealed class BoltzmannMachine : nn.Module<Tensor, Tensor>, IEnergyModel
{
    [ComponentName(Name = "weight")] private Parameter _weight;
    [ComponentName(Name = "bias")] private Parameter _bias;
    [ComponentName(Name = "mask")] private Tensor _mask;

    /// <summary>Largest hidden layer <see cref="free_energy"/> sums out by enumeration: 2^20 states.</summary>
    public const int MaxEnumeratedHidden = 20;

    /// <summary>Creates a machine; see <see cref="boltzmann.BM"/>.</summary>
    /// <param name="n_visible">Number of visible units (≥ 1).</param>
    /// <param name="n_hidden">Number of hidden units (≥ 0).</param>
    /// <param name="mask">Connectivity, (n, n): 1 where a pair is connected; symmetric, 0/1, zero diagonal. Copied.</param>
    /// <param name="units">Unit type: <see cref="UnitType.Bernoulli"/> (default) or <see cref="UnitType.Spin"/>.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Floating-point type of the parameters.</param>
    /// <param name="generator">Generator for the initial weights.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of range.</exception>
    /// <exception cref="ArgumentException">The mask, unit type or dtype does not fit.</exception>
    public BoltzmannMachine(int n_visible, int n_hidden, Tensor? mask = null, UnitType? units = null,
                            Device? device = null, ScalarType? dtype = null, Generator? generator = null) : base(nameof(BoltzmannMachine))
    {
        if (n_visible < 1) throw new ArgumentOutOfRangeException(nameof(n_visible), n_visible, "n_visible: expected at least 1.");
        if (n_hidden < 0) throw new ArgumentOutOfRangeException(nameof(n_hidden), n_hidden, "n_hidden: expected at least 0.");
        var dt = dtype ?? get_default_dtype();
        if (!Functional.DTypes.IsFloat(dt)) throw new ArgumentException($"dtype: expected a floating-point type, got {dt}.", nameof(dtype));
        this.units = units ?? UnitType.Bernoulli;
        if (this.units is not (BernoulliUnits or SpinUnits))
            throw new ArgumentException($"units: expected Bernoulli or Spin, got {this.units.Name}.", nameof(units));
        this.n_visible = n_visible;
        this.n_hidden = n_hidden;
        int n = n_units;
        if (mask is null) _mask = full_mask(n, dt, device);
        else
        {
            CheckMask(mask, n);
            _mask = mask.to(dt, device ?? CPU).clone();
        }
        _weight = new Parameter(torch.empty(n, n, dtype: dt, device: device));
        _bias = new Parameter(torch.empty(n, dtype: dt, device: device));
        reset_parameters(generator: generator);
        RegisterComponents();
    }

    /// <summary>Number of visible units (the first n_visible of the state).</summary>
    public int n_visible { get; }
    /// <summary>Number of hidden units (the last n_hidden of the state).</summary>
    public int n_hidden { get; }
    /// <summary>All units, n = n_visible + n_hidden.</summary>
    public int n_units => n_visible + n_hidden;
    /// <summary>The unit type of every unit: Bernoulli {0, 1} or Spin {−1, +1}.</summary>
    public UnitType units { get; }
    /// <summary>True when the units are spins {−1, +1}.</summary>
    public bool spins => units is SpinUnits;
    /// <inheritdoc />
    public UnitType visible_units => units;

    /// <summary>The stored weights, (n, n): only the strict upper triangle on connected pairs is used (see <see cref="weight_matrix"/>).</summary>
    public Parameter weight => _weight;
    /// <summary>b, shape (n).</summary>
    public Parameter bias => _bias;
    /// <summary>The connectivity mask, (n, n), 1 on connected pairs (a buffer: in the state_dict, moved with the module).</summary>
    public Tensor mask => _mask;

    /// <inheritdoc />
    public Device device => _weight.device;
    /// <inheritdoc />
    public ScalarType dtype => _weight.dtype;

    /// <summary>When true (default), public methods check inputs' values (range, NaN), not only their shape.</summary>
    public bool validate_values { get; set; } = true;

    // ---------------------------------------------------------------- masks

    /// <summary>Every pair of distinct units connected: 1 − I, shape (n, n).</summary>
    public static Tensor full_mask(int n, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        using var ones = torch.ones(n, n, dtype: dtype, device: device);
        using var eye = torch.eye(n, dtype: dtype, device: device);
        return ones - eye;
    }

    /// <summary>
    /// Consecutive layers connected (sizes[0] units, then sizes[1], …, in state order): 1 on pairs (i, j) whose layers
    /// differ by one. Two layers: the bipartite (RBM) graph; one layer: no connections.
    /// </summary>
    /// <exception cref="ArgumentException">A size is not positive.</exception>
    public static Tensor layered_mask(int[] sizes, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(sizes);
        if (sizes.Length == 0 || sizes.Any(s => s < 1))
            throw new ArgumentException($"sizes: expected positive layer sizes, got [{string.Join(", ", sizes)}].", nameof(sizes));
        int n = sizes.Sum();
        var layer = new int[n];
        for (int l = 0, i = 0; l < sizes.Length; l++) for (int k = 0; k < sizes[l]; k++) layer[i++] = l;
        var m = new float[n * n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) m[i * n + j] = Math.Abs(layer[i] - layer[j]) == 1 ? 1f : 0f;
        using var t = torch.tensor(m, n, n);
        return t.to(dtype, device ?? CPU);
    }

    private static void CheckMask(Tensor mask, int n)
    {
        if (mask.dim() != 2 || mask.shape[0] != n || mask.shape[1] != n)
            throw new ArgumentException($"mask: expected shape ({n}, {n}), got ({string.Join(", ", mask.shape)}).", nameof(mask));
        using var _ = torch.no_grad();
        using var m = mask.to(ScalarType.Float64, CPU);
        using var binary = m.eq(0).logical_or_(m.eq(1)).all();
        if (!binary.item<bool>()) throw new ArgumentException("mask: expected values in {0, 1}, got others.", nameof(mask));
        using var mt = m.t();
        using var symmetric = m.eq(mt).all();
        if (!symmetric.item<bool>()) throw new ArgumentException("mask: expected a symmetric matrix, got an asymmetric one.", nameof(mask));
        using var diag = m.diagonal();
        using var diagSum = diag.abs().sum();
        if (diagSum.ToDouble() != 0) throw new ArgumentException($"mask: expected a zero diagonal (no self-connections), got {diagSum.ToDouble():G4} ones on it.", nameof(mask));
    }

    // ---------------------------------------------------------------- parameters

    /// <summary>
    /// Re-initialises the parameters: w_ij ~ N(0, std²) on connected pairs (stored in the upper triangle, zeros
    /// elsewhere), b = 0.
    /// </summary>
    /// <param name="std">Standard deviation of the weights.</param>
    /// <param name="generator">Random generator, or null for the global one.</param>
    public void reset_parameters(double std = 0.01, Generator? generator = null)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        _weight.normal_(0.0, std, generator);
        _weight.mul_(UpperMask());
        _bias.zero_();
    }

    /// <summary>triu(mask, 1): the stored entries that are used.</summary>
    private Tensor UpperMask() => _mask.triu(1);

    /// <summary>
    /// The symmetric weight matrix W = U + Uᵀ with U = triu(weight, 1) ⊙ mask: symmetric, zero diagonal, zero on
    /// unconnected pairs. Differentiable in <see cref="weight"/>.
    /// </summary>
    public Tensor weight_matrix()
    {
        using var scope = torch.NewDisposeScope();
        var u = _weight.triu(1).mul(_mask);
        return u.add(u.t()).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Sets the weights from a matrix (its strict upper triangle on connected pairs is kept; the rest is ignored, so a
    /// symmetric W round-trips through <see cref="weight_matrix"/>) and, when given, the biases.
    /// </summary>
    /// <exception cref="ArgumentException">A shape does not fit.</exception>
    public void set_parameters(Tensor w, Tensor? b = null)
    {
        ArgumentNullException.ThrowIfNull(w);
        if (w.dim() != 2 || w.shape[0] != n_units || w.shape[1] != n_units)
            throw new ArgumentException($"w: expected shape ({n_units}, {n_units}), got ({string.Join(", ", w.shape)}).", nameof(w));
        if (b is not null && (b.dim() != 1 || b.shape[0] != n_units))
            throw new ArgumentException($"b: expected shape ({n_units}), got ({string.Join(", ", b.shape)}).", nameof(b));
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        _weight.copy_(w.to(dtype, device).triu(1).mul(_mask));
        if (b is not null) _bias.copy_(b.to(dtype, device));
    }

    /// <summary>The connected pairs as adjacency lists (from triu(mask, 1), so an edited lower triangle cannot disagree).</summary>
    public int[][] neighbours()
    {
        using var _ = torch.no_grad();
        using var upper = _mask.triu(1);
        using var sym = upper + upper.t();
        using var cpu = sym.to(ScalarType.Float32, CPU).contiguous();
        var m = cpu.data<float>().ToArray();
        int n = n_units;
        var adj = new int[n][];
        for (int i = 0; i < n; i++)
        {
            var list = new List<int>();
            for (int j = 0; j < n; j++) if (m[i * n + j] != 0) list.Add(j);
            adj[i] = list.ToArray();
        }
        return adj;
    }

    /// <summary>
    /// Groups of mutually unconnected units (a graph colouring), which Gibbs sampling and mean-field can update as
    /// blocks: two colours when the graph is bipartite (found by breadth-first search; a layered machine's even and
    /// odd layers), otherwise a greedy colouring in order of decreasing degree (Welsh–Powell). Each group lists its
    /// units in increasing order; the groups cover every unit once.
    /// </summary>
    public int[][] colour_classes()
    {
        var adj = neighbours();
        int n = adj.Length;
        var colour = new int[n];
        Array.Fill(colour, -1);
        bool bipartite = true;
        for (int s = 0; s < n && bipartite; s++)
        {
            if (colour[s] >= 0) continue;
            colour[s] = 0;
            var queue = new Queue<int>();
            queue.Enqueue(s);
            while (queue.Count > 0 && bipartite)
            {
                int i = queue.Dequeue();
                foreach (int j in adj[i])
                {
                    if (colour[j] < 0) { colour[j] = 1 - colour[i]; queue.Enqueue(j); }
                    else if (colour[j] == colour[i]) { bipartite = false; break; }
                }
            }
        }
        if (!bipartite)
        {
            Array.Fill(colour, -1);
            foreach (int i in Enumerable.Range(0, n).OrderByDescending(i => adj[i].Length).ThenBy(i => i))
            {
                var used = new HashSet<int>(adj[i].Where(j => colour[j] >= 0).Select(j => colour[j]));
                int c = 0;
                while (used.Contains(c)) c++;
                colour[i] = c;
            }
        }
        return Enumerable.Range(0, n).GroupBy(i => colour[i]).OrderBy(g => g.Key).Select(g => g.ToArray()).Where(g => g.Length > 0).ToArray();
    }

    // ---------------------------------------------------------------- energies and conditionals

    /// <summary>Net inputs η = xW + b, η_i = b_i + Σ_j W_ij x_j, shape of <paramref name="x"/>. Differentiable.</summary>
    /// <param name="x">States, (B, n) or (n).</param>
    public Tensor net(Tensor x)
    {
        CheckStates(x, "net input");
        using var w = weight_matrix();
        using var xw = x.matmul(w);
        return xw.add(_bias);
    }

    /// <summary>
    /// E(x) = −½ xᵀWx − bᵀx = −xᵀUx − bᵀx (U the stored upper triangle), per row. Differentiable.
    /// </summary>
    /// <param name="x">States, (B, n) or (n).</param>
    /// <returns>Energies, (B) or a scalar.</returns>
    public Tensor energy(Tensor x)
    {
        CheckStates(x, "energy input");
        using var scope = torch.NewDisposeScope();
        var w = weight_matrix();
        var quad = x.matmul(w).mul(x).sum(-1).mul(0.5);
        var lin = x.mul(_bias).sum(-1);
        return quad.add(lin).neg().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Each unit's conditional mean given all the others at temperature T: mean(η_i / T), i.e. p(x_i = 1 | rest) = σ(η_i/T)
    /// for {0, 1}, E[s_i | rest] = tanh(η_i / T) for spins.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">T is not finite and positive.</exception>
    public Tensor conditional_mean(Tensor x, double temperature = 1.0)
    {
        Checks.Temperature(temperature);
        return units.mean_(net(x), temperature);
    }

    /// <summary>
    /// The hidden units' clamped-phase mean-field means at temperature T, (B, n_hidden) or (n_hidden): with the visible
    /// units fixed to <paramref name="v"/>, the fixed point of m_h = mean((b_h + W_hv v + W_hh m_h) / T), computed by
    /// <see cref="mean_field_fixed_point"/> from m_h = mean((b_h + W_hv v) / T) (one colour class of the hidden graph at a
    /// time, damping λ, until no mean's residual exceeds <paramref name="tolerance"/> or after
    /// <paramref name="max_iterations"/> passes). With <paramref name="annealing"/>, the start is taken at its first
    /// temperature and one pass is made at each of its temperatures first. Without autograd.
    /// </summary>
    /// <exception cref="ArgumentException">v does not fit the visible layer.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A numeric argument is out of range.</exception>
    public Tensor mean_field(Tensor v, double temperature = 1.0, int max_iterations = 100, double tolerance = 1e-6, double damping = 0,
                             IReadOnlyList<double>? annealing = null)
    {
        check_visible(v, "mean_field input");
        Checks.Temperature(temperature);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        bool single = v.dim() == 1;
        var vb = (single ? v.unsqueeze(0) : v).to(dtype, device);
        var w = weight_matrix();
        var whv = w.narrow(0, n_visible, n_hidden).narrow(1, 0, n_visible);      // (nh, nv)
        var bh = _bias.narrow(0, n_visible, n_hidden);
        double first = annealing is { Count: > 0 } ? annealing[0] : temperature;
        Checks.Temperature(first);
        var start = torch.cat(new[] { vb, units.mean(nn.functional.linear(vb, whv, bh), first) }, 1);   // [v, mean((b_h + W_hv v) / T)]
        var m = mean_field_fixed_point(start, temperature, max_iterations, tolerance, damping, clamp_visible: true, annealing).narrow(1, n_visible, n_hidden);
        return (single ? m.squeeze(0) : m).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Deterministic mean-field means of all units (Peterson &amp; Anderson 1987), (B, n): the fixed point of
    /// <code>m = mean((W m + b) / T)     (σ for {0, 1} units, tanh for spins)</code>
    /// reached from <paramref name="start"/> (B, n) by damped block updates over the colour classes of the graph
    /// (<see cref="colour_classes"/>; the units of a class are not connected, so updating a class at once is exact
    /// coordinate ascent on the mean-field free energy when λ = 0):
    /// <code>m_B ← (1 − λ) mean((m W_{:,B} + b_B) / T) + λ m_B</code>
    /// A pass updates every class; the iteration stops after the first pass in which no unit's residual
    /// |mean((W m + b)_i / T) − m_i| (taken before damping) exceeds <paramref name="tolerance"/>, or after
    /// <paramref name="max_iterations"/> passes. With <paramref name="clamp_visible"/> the first n_visible columns keep
    /// their start values (the clamped phase). With <paramref name="annealing"/>, one pass at each of its temperatures
    /// comes first (mean-field annealing), then the passes at T. Without autograd; the start is not changed.
    /// </summary>
    /// <param name="start">Start means, (B, n), values within the units' range.</param>
    /// <param name="temperature">T (finite, positive).</param>
    /// <param name="max_iterations">Cap on the passes at T (≥ 1).</param>
    /// <param name="tolerance">Largest residual accepted as converged (≥ 0).</param>
    /// <param name="damping">λ in [0, 1): the share of the old mean kept by an update.</param>
    /// <param name="clamp_visible">Hold the visible units at their start values.</param>
    /// <param name="annealing">Temperatures of one pass each before the passes at T (e.g. an <see cref="Sampling.AnnealingSchedule"/>'s).</param>
    /// <returns>The means, (B, n).</returns>
    /// <exception cref="ArgumentException">The start does not fit.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A numeric argument is out of range.</exception>
    public Tensor mean_field_fixed_point(Tensor start, double temperature = 1.0, int max_iterations = 100, double tolerance = 1e-6,
                                         double damping = 0, bool clamp_visible = false, IEnumerable<double>? annealing = null)
    {
        ArgumentNullException.ThrowIfNull(start);
        Checks.Width(start, n_units, "mean-field start");
        Checks.Rows(start, n_units, "mean-field start", "B", param: nameof(start));
        Checks.Temperature(temperature);
        if (max_iterations < 1) throw new ArgumentOutOfRangeException(nameof(max_iterations), max_iterations, $"max_iterations: expected at least 1, got {max_iterations}.");
        if (!(tolerance >= 0) || double.IsInfinity(tolerance)) throw new ArgumentOutOfRangeException(nameof(tolerance), tolerance, $"tolerance: expected a finite number ≥ 0, got {tolerance}.");
        if (!(damping >= 0 && damping < 1)) throw new ArgumentOutOfRangeException(nameof(damping), damping, $"damping: expected a number in [0, 1), got {damping}.");
        var stages = annealing?.ToArray() ?? [];
        foreach (double t in stages) Checks.Temperature(t);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var m = start.to(dtype, device).clone();
        var w = weight_matrix();
        var blocks = colour_classes().Select(c => c.Where(i => !clamp_visible || i >= n_visible).Select(i => (long)i).ToArray())
                                     .Where(c => c.Length > 0)
                                     .Select(c => torch.tensor(c, device: device)).ToList();
        var columns = blocks.Select(idx => w.index_select(1, idx)).ToList();            // W_{:,B}
        var biases = blocks.Select(idx => _bias.index_select(0, idx)).ToList();          // b_B
        double Pass(double t)
        {
            using var inner = torch.NewDisposeScope();
            var residual = torch.zeros(1, dtype: dtype, device: device);
            for (int k = 0; k < blocks.Count; k++)
            {
                var idx = blocks[k];
                var target = units.mean_(m.mm(columns[k]).add_(biases[k]), t);          // mean((W m + b)_B / T), (B, |B|)
                var old = m.index_select(1, idx);
                residual = torch.maximum(residual, target.sub(old).abs_().max());
                if (damping > 0) target.mul_(1 - damping).add_(old, alpha: damping);
                m.index_copy_(1, idx, target);
            }
            return residual.ToDouble();                                                  // one synchronisation per pass
        }
        foreach (double t in stages) Pass(t);
        for (int it = 0; it < max_iterations; it++)
            if (Pass(temperature) <= tolerance) break;
        return m.MoveToOuterDisposeScope();
    }

    /// <summary>The hidden units' clamped-phase mean-field means (<see cref="mean_field"/> at T = 1).</summary>
    /// <param name="v">Visible input, (B, n_visible) or (n_visible).</param>
    /// <returns>(B, n_hidden) or (n_hidden).</returns>
    public override Tensor forward(Tensor v) => mean_field(v);

    /// <summary>
    /// Free energy F_β(v) = −log Σ_h e^{−βE(v,h)}, summing over all 2^{n_hidden} hidden states (n_hidden ≤
    /// <see cref="MaxEnumeratedHidden"/>) in chunks of 4,096: with E(v, h) = E_v(v) + E_h(h) − vᵀW_vh h,
    /// E_v = −½vᵀW_vv v − b_vᵀv and E_h = −½hᵀW_hh h − b_hᵀh,
    /// <code>F_β(v) = βE_v(v) − log Σ_h e^{−β(E_h(h) − vᵀW_vh h)}</code>
    /// With no hidden units F_β(v) = βE(v). Differentiable.
    /// </summary>
    /// <exception cref="NotSupportedException">More than <see cref="MaxEnumeratedHidden"/> hidden units.</exception>
    public Tensor free_energy(Tensor v, double beta = 1.0)
    {
        check_visible(v, "free_energy input");
        Checks.Beta(beta);
        if (n_hidden > MaxEnumeratedHidden)
            throw new NotSupportedException($"free_energy: sums over the hidden states, expected at most {MaxEnumeratedHidden} hidden units, got {n_hidden}; a general BM has no closed-form free energy.");
        using var scope = torch.NewDisposeScope();
        bool single = v.dim() == 1;
        var vb = single ? v.unsqueeze(0) : v;
        var w = weight_matrix();
        var wvv = w.narrow(0, 0, n_visible).narrow(1, 0, n_visible);
        var bv = _bias.narrow(0, 0, n_visible);
        var ev = vb.matmul(wvv).mul(vb).sum(-1).mul(-0.5).sub(vb.mul(bv).sum(-1));  // E_v(v), (B)
        Tensor f;
        if (n_hidden == 0) f = ev.mul(beta);
        else
        {
            var wvh = w.narrow(0, 0, n_visible).narrow(1, n_visible, n_hidden);      // (nv, nh)
            var whh = w.narrow(0, n_visible, n_hidden).narrow(1, n_visible, n_hidden);
            var bh = _bias.narrow(0, n_visible, n_hidden);
            var vw = vb.matmul(wvh);                                                  // (B, nh)
            long total = 1L << n_hidden;
            const long chunk = 4096;
            Tensor? lse = null;
            for (long first = 0; first < total; first += chunk)
            {
                var h = units.enumerate_states(n_hidden, first, Math.Min(chunk, total - first), dtype, device)!;   // (H, nh)
                var eh = h.matmul(whh).mul(h).sum(-1).mul(-0.5).sub(h.mul(bh).sum(-1));                  // E_h(h), (H)
                var exponent = vw.matmul(h.t()).sub(eh.unsqueeze(0)).mul(beta);                          // −β(E_h − vᵀW_vh h), (B, H)
                var part = exponent.logsumexp(1);
                lse = lse is null ? part : torch.logaddexp(lse, part);
            }
            f = ev.mul(beta).sub(lse!);
        }
        return (single ? f.squeeze(0) : f).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Exact pseudo-log-likelihood of each row, Σ_i log p(v_i | v_{−i}) with the hidden units summed out:
    /// <code>p(v_i | v_{−i}) = e^{−F(v)} / (e^{−F(v)} + e^{−F(v⁽ⁱ⁾)}) = σ(F(v⁽ⁱ⁾) − F(v))</code>
    /// where v⁽ⁱ⁾ is v with unit i flipped (1 − v_i for bits, −v_i for spins), F = <see cref="free_energy"/> at β = 1. Needs
    /// n_visible + 1 free energies per row, so it works for any number of visible units (at most
    /// <see cref="MaxEnumeratedHidden"/> hidden units). Without autograd.
    /// </summary>
    /// <param name="v">Visible states, (B, n_visible), values the units can take.</param>
    /// <returns>Per row, shape (B).</returns>
    /// <exception cref="NotSupportedException">More than <see cref="MaxEnumeratedHidden"/> hidden units.</exception>
    public Tensor pseudo_log_likelihood(Tensor v)
    {
        check_visible(v, "pseudo_log_likelihood input");
        Checks.Rows(v, n_visible, "pseudo_log_likelihood input", "B");
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var vb = v.to(dtype, device);
        var f = free_energy(vb);
        var total = torch.zeros_like(f);
        for (int i = 0; i < n_visible; i++)
        {
            var flipped = vb.clone();
            var col = flipped.select(1, i);
            col.copy_(spins ? col.neg() : col.neg().add_(1));
            total.add_(nn.functional.logsigmoid(free_energy(flipped).sub(f)));
        }
        return total.MoveToOuterDisposeScope();
    }

    // ---------------------------------------------------------------- encodings    // ---------------------------------------------------------------- encodings

    /// <summary>
    /// The machine with the other encoding and the same distribution under s = 2x − 1 (x = (s + 1)/2): from {0, 1} to
    /// spins W_s = W/4, b_s = b/2 + W1/4; from spins to {0, 1} W_x = 4W, b_x = 2b − 2W1. Energies differ by a
    /// constant, so p(x) = p(s) state by state. Same mask, device and dtype.
    /// </summary>
    public BoltzmannMachine to_spins() => Converted(toSpins: true);

    /// <summary>The {0, 1} machine with the same distribution as this spin machine (the inverse of <see cref="to_spins"/>).</summary>
    public BoltzmannMachine to_binary() => Converted(toSpins: false);

    private BoltzmannMachine Converted(bool toSpins)
    {
        if (spins == toSpins) throw new InvalidOperationException($"The machine's units are {units.Name} already.");
        var other = new BoltzmannMachine(n_visible, n_hidden, _mask, toSpins ? UnitType.Spin : UnitType.Bernoulli, device, dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var w = weight_matrix();
        var rowSums = w.sum(1);
        if (toSpins) other.set_parameters(w.div(4), _bias.div(2).add(rowSums.div(4)));
        else other.set_parameters(w.mul(4), _bias.mul(2).sub(rowSums.mul(2)));
        return other;
    }

    // ---------------------------------------------------------------- validation

    /// <summary>Checks a visible tensor: rank 1 or 2, n_visible wide, values valid for the unit type (when <see cref="validate_values"/>).</summary>
    public void check_visible(Tensor v, string what = "visible input")
    {
        Checks.Width(v, n_visible, what);
        if (validate_values) units.check_values(v, what);
    }

    /// <summary>Checks a state tensor over all units: rank 1 or 2, n wide, values valid for the unit type (when <see cref="validate_values"/>).</summary>
    public void check_states(Tensor x, string what = "states") => CheckStates(x, what);

    private void CheckStates(Tensor x, string what)
    {
        Checks.Width(x, n_units, what);
        if (validate_values) units.check_values(x, what);
    }

    /// <summary>The hyperparameters, PyTorch <c>extra_repr</c> style.</summary>
    public override string ToString()
    {
        using var _ = torch.no_grad();
        using var upper = _mask.triu(1);
        using var edges = upper.sum();
        return $"BoltzmannMachine(n_visible={n_visible}, n_hidden={n_hidden}, units={units.Name}, connections={edges.ToInt64()})";
    }
}

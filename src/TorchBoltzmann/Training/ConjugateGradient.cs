using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// Nonlinear conjugate gradients (Polak–Ribière) with a strong-Wolfe line search, as a <c>torch.optim</c> optimizer:
/// each <see cref="step"/> minimises the closure's loss from the current parameters with
/// <see cref="LineSearches"/> line searches, starting from steepest descent. This is how Hinton &amp; Salakhutdinov (2006)
/// fine-tuned their MNIST DBN classifier (three line searches per batch of 1,000 digits in <c>backpropclassify.m</c>,
/// with Rasmussen's <c>minimize.m</c>); no state is carried from one step (batch) to the next.
/// </summary>
/// <remarks>
/// <para>Directions: s₀ = −g₀; after a line search that lands at a point with gradient g₁,
/// β = (g₁·g₁ − g₁·g₀) / (g₀·g₀) (Polak–Ribière) and s₁ = β s₀ − g₁, restarted as s₁ = −g₁ when s₁ is not a descent
/// direction (g₁·s₁ ≥ 0).</para>
/// <para>Line search along s from x with φ(z) = f(x + z s), φ′(z) = ∇f(x + z s)·s (Nocedal &amp; Wright 2006,
/// algorithms 3.5–3.6): accept z when φ(z) ≤ φ(0) + ρ z φ′(0) (sufficient decrease) and |φ′(z)| ≤ −σ φ′(0)
/// (strong curvature); otherwise extrapolate (at most <see cref="Extrapolation"/> times the current step) or zoom into
/// the bracket, the next trial being the minimiser of the cubic through the two end points' values and slopes,
/// z* = b − (b − a)(φ′_b + d₂ − d₁) / (φ′_b − φ′_a + 2d₂) with d₁ = φ′_a + φ′_b − 3(φ_a − φ_b)/(a − b) and
/// d₂ = sign(b − a)·√(d₁² − φ′_a φ′_b), kept at least 10 % of the bracket away from its ends (bisection when the cubic
/// has no real minimiser). A non-finite loss counts as "too far".</para>
/// <para>Approximate Wolfe conditions (Hager &amp; Zhang 2005): a trial point whose loss is within the float resolution of
/// φ(0), φ(z) ≤ φ(0) + ε·max(|φ(0)|, 1), is also accepted when its slope meets the curvature condition. Near a minimum
/// the loss stops resolving the decreases that sufficient decrease asks for: a float32 cross-entropy carries absolute
/// rounding of ~10⁻⁷ per example however small it is (log(1 + x) of a float32 sum; hence the floor of 1 on the scale),
/// and without this rule the line searches of a classifier that fits its training batch use up their evaluations on
/// rounding noise (fine-tuning epochs became 4× slower).</para>
/// <para>First trial step z₀ = r / (1 − φ′(0)) where r = the group's learning rate (the "expected reduction" of
/// <c>minimize.m</c>, default 1; r is in units of the closure's loss, and <see cref="FineTuner"/>'s is the mean over
/// the batch where <c>backpropclassify.m</c> minimised the sum, so only the first trial differs); later searches start
/// from z_prev · min(100, φ′_prev(0) / φ′_new(0)). A failed line search returns to its starting point (a saved copy)
/// and restarts along −g; two failures in a row end the step. A non-finite loss or slope at a trial point counts as
/// "too far"; a non-finite loss or gradient at the start ends the step without moving.</para>
/// <para>The closure must zero the gradients, compute the loss, call <c>backward()</c> and return the loss; it is called
/// once per function evaluation (typically 5–10 per step), so any randomness in it (dropout) makes the line search
/// meaningless. Parameters with <c>requires_grad = false</c> are left alone.</para>
/// <para>Memory: four buffers the size of the trainable parameters (g₀, g₁, s and the search's start), allocated per
/// step; each evaluation runs in its own dispose scope. A line search that runs out of evaluations at a point of
/// sufficient decrease spends one more to get that point's gradient.</para>
/// </remarks>
public sealed class ConjugateGradient : OptimizerHelper
{
    private const double Interpolation = 0.1;   // keep trial steps this fraction of a bracket away from its ends
    private const double MaxSlopeRatio = 100;   // bound on the growth of the first trial step between searches

    /// <summary>Creates the optimizer.</summary>
    /// <param name="parameters">Parameters to optimise.</param>
    /// <param name="lineSearches">Line searches per <see cref="step"/> (Hinton &amp; Salakhutdinov: 3).</param>
    /// <param name="expectedReduction">The group's learning rate r: the first trial step is r / (1 + g·g).</param>
    /// <param name="maxEvaluations">Function evaluations allowed per line search.</param>
    /// <param name="sufficientDecrease">ρ of the sufficient-decrease (Armijo) condition.</param>
    /// <param name="curvature">σ of the strong curvature condition, ρ &lt; σ &lt; 1 (0.5: a loose search, as <c>minimize.m</c>).</param>
    /// <param name="extrapolation">Largest growth factor of the step while extrapolating.</param>
    /// <param name="valueTolerance">ε of the approximate Wolfe conditions, relative to max(|φ(0)|, 1); default 10 × the
    /// machine epsilon of the first parameter's dtype (float32: 1.2·10⁻⁶; float64: 2.2·10⁻¹⁵).</param>
    /// <exception cref="ArgumentOutOfRangeException">A value outside its range (named).</exception>
    public ConjugateGradient(IEnumerable<Parameter> parameters, int lineSearches = 3, double expectedReduction = 1.0,
                             int maxEvaluations = 20, double sufficientDecrease = 0.01, double curvature = 0.5, double extrapolation = 3.0,
                             double? valueTolerance = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (lineSearches < 1) throw new ArgumentOutOfRangeException(nameof(lineSearches), lineSearches, "expected at least 1 line search per step.");
        if (!(expectedReduction > 0) || !double.IsFinite(expectedReduction)) throw new ArgumentOutOfRangeException(nameof(expectedReduction), expectedReduction, "expected a positive finite number.");
        if (maxEvaluations < 2) throw new ArgumentOutOfRangeException(nameof(maxEvaluations), maxEvaluations, "expected at least 2 evaluations per line search.");
        if (!(sufficientDecrease > 0 && sufficientDecrease < curvature && curvature < 1))
            throw new ArgumentOutOfRangeException(nameof(curvature), $"expected 0 < sufficientDecrease < curvature < 1, got {sufficientDecrease} and {curvature}.");
        if (!(extrapolation > 1) || !double.IsFinite(extrapolation)) throw new ArgumentOutOfRangeException(nameof(extrapolation), extrapolation, "expected a finite factor > 1.");
        LineSearches = lineSearches;
        MaxEvaluations = maxEvaluations;
        SufficientDecrease = sufficientDecrease;
        Curvature = curvature;
        Extrapolation = extrapolation;
        var options = new OptimizerOptions { LearningRate = expectedReduction, InitialLearningRate = expectedReduction };
        _defaults = options;
        var list = parameters.ToList();
        if (list.Count == 0) throw new ArgumentException("parameters: expected at least one parameter.", nameof(parameters));
        if (valueTolerance is { } tol && (!(tol >= 0) || !double.IsFinite(tol)))
            throw new ArgumentOutOfRangeException(nameof(valueTolerance), tol, "expected a finite number ≥ 0.");
        ValueTolerance = valueTolerance ?? 10 * list[0].dtype switch
        {
            ScalarType.Float64 => Math.Pow(2, -52),
            ScalarType.Float32 => Math.Pow(2, -23),
            ScalarType.BFloat16 => Math.Pow(2, -7),
            _ => Math.Pow(2, -10),
        };
        _parameter_groups = new List<ParamGroup> { new ParamGroup { Parameters = list, Options = options } };
        foreach (var p in list) _state[p.Handle] = new EmptyState(p);
    }

    /// <summary>Line searches per step.</summary>
    public int LineSearches { get; }
    /// <summary>Function evaluations allowed per line search.</summary>
    public int MaxEvaluations { get; }
    /// <summary>ρ of the sufficient-decrease condition.</summary>
    public double SufficientDecrease { get; }
    /// <summary>σ of the strong curvature condition.</summary>
    public double Curvature { get; }
    /// <summary>Largest growth factor of the step while extrapolating.</summary>
    public double Extrapolation { get; }
    /// <summary>ε of the approximate Wolfe conditions, relative to max(|φ(0)|, 1).</summary>
    public double ValueTolerance { get; }
    /// <summary>Function evaluations (closure calls) made by the last <see cref="step"/>.</summary>
    public int LastEvaluations { get; private set; }

    /// <summary>
    /// Runs <see cref="LineSearches"/> line searches on the closure's loss and leaves the parameters at the best point
    /// accepted. Returns the loss at the starting point (as PyTorch's L-BFGS does), a new scalar tensor.
    /// </summary>
    /// <param name="closure">Zeroes the gradients, computes the loss, calls <c>backward()</c> and returns the loss. Required.</param>
    /// <exception cref="ArgumentNullException">No closure.</exception>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        if (closure is null)
            throw new ArgumentNullException(nameof(closure), "ConjugateGradient.step needs a closure that zeroes the gradients, computes the loss, calls backward() and returns the loss.");
        LastEvaluations = 0;
        var ps = parameters().Where(p => p.requires_grad).ToArray();
        double r = _parameter_groups[0].Options.LearningRate ?? 1.0;
        var buffers = new List<Tensor>();
        try
        {
            Tensor[] g0 = Buffers(ps, buffers), g1 = Buffers(ps, buffers), s = Buffers(ps, buffers), x0 = Buffers(ps, buffers);
            double f0 = Evaluate(closure, ps, g0);
            double fStart = f0;
            if (!double.IsFinite(f0) || ps.Length == 0) return torch.tensor(fStart);
            Steepest(s, g0);
            double d0 = -Dot(g0, g0);                       // φ′(0) along s = −g
            if (!(d0 < 0)) return torch.tensor(fStart);     // stationary, or a non-finite gradient
            double z1 = r / (1 - d0);
            bool lastFailed = false;
            for (int search = 0; search < LineSearches; search++)
            {
                var (ok, z, f1) = LineSearch(closure, ps, s, g1, x0, f0, d0, z1);
                if (ok)
                {
                    double g1g1 = Dot(g1, g1), g1g0 = Dot(g1, g0), g0g0 = Dot(g0, g0);
                    double beta = (g1g1 - g1g0) / g0g0;     // Polak–Ribière
                    using (torch.no_grad()) for (int i = 0; i < ps.Length; i++) s[i].mul_(beta).sub_(g1[i]);
                    double d1 = Dot(g1, s);
                    if (!(d1 < 0))
                    {
                        Steepest(s, g1);
                        d1 = -g1g1;
                    }
                    if (!(d1 < 0)) break;                    // stationary point
                    z1 = z * Math.Min(MaxSlopeRatio, d0 / d1);
                    (g0, g1) = (g1, g0);
                    f0 = f1;
                    d0 = d1;
                    lastFailed = false;
                }
                else
                {
                    // Back at the search's start; a second failure in a row (or one along −g already) ends the step.
                    double steepest = -Dot(g0, g0);
                    if (lastFailed || d0 == steepest) break;
                    Steepest(s, g0);
                    d0 = steepest;
                    z1 = r / (1 - d0);
                    lastFailed = true;
                }
                if (!(z1 > 0) || !double.IsFinite(z1)) break;
            }
            return torch.tensor(fStart);
        }
        finally
        {
            foreach (var t in buffers) t.Dispose();
        }
    }

    /// <summary>
    /// Strong-Wolfe line search along s from the current point (φ(0) = f0, φ′(0) = d0 &lt; 0), first trial z1. On success
    /// the parameters are at x + z s and <paramref name="g"/> holds the gradient there; on failure they are back at x.
    /// </summary>
    private (bool ok, double z, double f) LineSearch(Func<Tensor> closure, Parameter[] ps, Tensor[] s, Tensor[] g, Tensor[] x0, double f0, double d0, double z1)
    {
        using (torch.no_grad()) for (int i = 0; i < ps.Length; i++) x0[i].copy_(ps[i]);
        double lastProbe = double.NaN;
        (double f, double d) Probe(double z)
        {
            lastProbe = z;
            // x0 + z s, computed afresh from the saved start (no drift from accumulated moves).
            using (torch.no_grad()) for (int i = 0; i < ps.Length; i++) ps[i].copy_(x0[i]).add_(s[i], alpha: z);
            double f = Evaluate(closure, ps, g);
            double d = double.IsFinite(f) ? Dot(g, s) : double.NaN;
            return double.IsFinite(d) ? (f, d) : (double.NaN, double.NaN);   // a non-finite slope counts as "too far"
        }
        bool Armijo(double z, double f) => double.IsFinite(f) && f <= f0 + SufficientDecrease * z * d0;
        bool Flat(double d) => Math.Abs(d) <= -Curvature * d0;
        double fTolerance = f0 + ValueTolerance * Math.Max(Math.Abs(f0), 1);
        bool ApproximatelyWolfe(double f, double d) => f <= fTolerance && Flat(d);

        double zPrev = 0, fPrev = f0, dPrev = d0, zTry = z1;
        double lo = 0, fLo = f0, dLo = d0, hi = double.NaN, fHi = double.NaN, dHi = double.NaN;
        int evals = 0;
        bool bracketed = false;
        while (evals < MaxEvaluations && !bracketed)
        {
            var (f, d) = Probe(zTry);
            evals++;
            if (ApproximatelyWolfe(f, d)) return (true, zTry, f);
            if (!Armijo(zTry, f) || (evals > 1 && f >= fPrev))
            {
                (lo, fLo, dLo, hi, fHi, dHi) = (zPrev, fPrev, dPrev, zTry, f, d);
                bracketed = true;
                break;
            }
            if (Flat(d)) return (true, zTry, f);
            if (d >= 0)
            {
                (lo, fLo, dLo, hi, fHi, dHi) = (zTry, f, d, zPrev, fPrev, dPrev);
                bracketed = true;
                break;
            }
            // Still descending steeply: extrapolate with the cubic, to at least z + 0.1(z − z_prev) and at most Extrapolation × z.
            double next = Cubic(zPrev, fPrev, dPrev, zTry, f, d);
            double max = zTry * Extrapolation, min = zTry + Interpolation * (zTry - zPrev);
            next = !double.IsFinite(next) || next <= zTry || next > max ? max : Math.Max(next, min);
            (zPrev, fPrev, dPrev, zTry) = (zTry, f, d, next);
            lo = zPrev; fLo = fPrev; dLo = dPrev;
        }
        while (bracketed && evals < MaxEvaluations)
        {
            double left = Math.Min(lo, hi), width = Math.Abs(hi - lo);
            double z = Cubic(lo, fLo, dLo, hi, fHi, dHi);
            if (!double.IsFinite(z) || z < left + Interpolation * width || z > left + (1 - Interpolation) * width) z = 0.5 * (lo + hi);
            var (f, d) = Probe(z);
            evals++;
            if (ApproximatelyWolfe(f, d)) return (true, z, f);
            if (!Armijo(z, f) || f >= fLo)
            {
                (hi, fHi, dHi) = (z, f, d);
            }
            else
            {
                if (Flat(d)) return (true, z, f);
                if (d * (hi - lo) >= 0) (hi, fHi, dHi) = (lo, fLo, dLo);
                (lo, fLo, dLo) = (z, f, d);
            }
        }
        if (lo > 0 && fLo < f0)
        {
            // Out of evaluations with a point of sufficient decrease: take it (one more evaluation for its gradient,
            // unless the last trial was that point).
            if (lastProbe != lo)
            {
                var (f, _) = Probe(lo);
                if (double.IsFinite(f)) return (true, lo, f);
            }
            else return (true, lo, fLo);
        }
        using (torch.no_grad()) for (int i = 0; i < ps.Length; i++) ps[i].copy_(x0[i]);
        return (false, 0, f0);
    }

    /// <summary>Minimiser of the cubic through (a, fa, da) and (b, fb, db); NaN when it has none.</summary>
    private static double Cubic(double a, double fa, double da, double b, double fb, double db)
    {
        double d1 = da + db - 3 * (fa - fb) / (a - b);
        double disc = d1 * d1 - da * db;
        if (!(disc >= 0)) return double.NaN;
        double d2 = Math.Sign(b - a) * Math.Sqrt(disc);
        return b - (b - a) * (db + d2 - d1) / (db - da + 2 * d2);
    }

    private double Evaluate(Func<Tensor> closure, Parameter[] ps, Tensor[] grad)
    {
        LastEvaluations++;
        double f;
        using (var scope = torch.NewDisposeScope())
        using (torch.enable_grad())
            f = closure().ToDouble();
        using (torch.no_grad())
            for (int i = 0; i < ps.Length; i++)
            {
                using var gr = ps[i].grad;
                if (gr is null) grad[i].zero_();
                else grad[i].copy_(gr);
            }
        return f;
    }

    private static Tensor[] Buffers(Parameter[] ps, List<Tensor> owner)
    {
        using var _ = torch.no_grad();
        var made = new Tensor[ps.Length];
        for (int i = 0; i < ps.Length; i++)
        {
            made[i] = torch.zeros_like(ps[i]).DetachFromDisposeScope();
            owner.Add(made[i]);
        }
        return made;
    }

    /// <summary>s ← −g (steepest descent).</summary>
    private static void Steepest(Tensor[] s, Tensor[] g)
    {
        using var _ = torch.no_grad();
        for (int i = 0; i < s.Length; i++) s[i].copy_(g[i]).neg_();
    }

    /// <summary>Σᵢ aᵢ·bᵢ over the parameter tensors, accumulated in double.</summary>
    private static double Dot(Tensor[] a, Tensor[] b)
    {
        double sum = 0;
        using var _ = torch.no_grad();
        for (int i = 0; i < a.Length; i++)
        {
            using var scope = torch.NewDisposeScope();
            sum += a[i].reshape(-1).dot(b[i].reshape(-1)).ToDouble();
        }
        return sum;
    }

    /// <summary>The optimizer keeps no state between steps.</summary>
    private sealed class EmptyState(Parameter parameter) : OptimizerState(parameter)
    {
        public override void SaveStateDict(System.IO.BinaryWriter writer) { }
        public override void LoadStateDict(System.IO.BinaryReader reader) { }
        public override void LoadStateDict(OptimizerState source) { }
        public override void Initialize(OptimizerOptions options) { }
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Units;

/// <summary>
/// A family of units (a layer type) of a Boltzmann machine: the strategy an <see cref="Modules.RBM"/> delegates to for
/// everything that depends on what values a unit takes. The RBM itself only computes the bilinear coupling hᵀWv.
/// </summary>
/// <remarks>
/// For a layer x with biases a and net input η = a + (coupling from the other layer), a unit type defines
/// <list type="bullet">
/// <item>its self-energy term E_self(x; a) (Bernoulli: −aᵀx),</item>
/// <item>its log-partition per unit at inverse temperature β, log Σ_x e^{−β[E_self(x;a) − x·(η − a)]} (an integral for
/// continuous units; Bernoulli: softplus(βη)), which integrates the layer out of p_β ∝ e^{−βE} and so defines the free
/// energy at β,</item>
/// <item>its conditional mean E[x | η] and a sampler at temperature T = 1/β,</item>
/// <item>the states a layer of n such units can take, when they are few enough to list (exact enumeration).</item>
/// </list>
/// <para>The three are tied together: (1/β) ∂ log-partition(η; β) / ∂η = E[x | η] at T = 1/β, the samplers' averages
/// converge to that mean, and summing e^{−βE} over <see cref="enumerate_states"/> gives the log-partition. The
/// conformance tests check these identities for every type in <see cref="Registered"/>, so a new type is tested by
/// registering it (<see cref="Register"/>).</para>
/// <para>Members mirror PyTorch naming (snake_case) because they are tensor-facing.</para>
/// </remarks>
public abstract class UnitType
{
    /// <summary>Short name used in <c>ToString()</c> and in checkpoint sidecars (e.g. "Bernoulli").</summary>
    public abstract string Name { get; }

    /// <summary>
    /// Self-energy of each unit, E_self(x; a), elementwise (shape of <paramref name="x"/>); the layer's energy is its sum.
    /// </summary>
    /// <param name="x">Unit values, shape (*, n).</param>
    /// <param name="bias">Biases a, shape (n).</param>
    public abstract Tensor self_energy(Tensor x, Tensor bias);

    /// <summary>
    /// Log-partition per unit at inverse temperature β: log Σ_x e^{−β[E_self(x;a) − x·(η − a)]}, elementwise (shape of
    /// <paramref name="net"/>; a type whose units are coupled, such as a softmax group, may place a group's value in one
    /// column and zeros in the others). Summed over the layer it is what integrating the layer out of e^{−βE}
    /// contributes to −F_β.
    /// </summary>
    /// <param name="net">Total net input η = a + coupling, shape (*, n).</param>
    /// <param name="bias">Biases a, shape (n).</param>
    /// <param name="beta">Inverse temperature β ≥ 0 (β = 1: the model itself; β = 0: the uniform distribution).</param>
    public abstract Tensor log_partition(Tensor net, Tensor bias, double beta = 1.0);

    /// <summary>Conditional mean E[x | η] at temperature T, elementwise.</summary>
    /// <param name="net">Net input η, shape (*, n).</param>
    /// <param name="temperature">Temperature T &gt; 0 (p ∝ e^{−E/T}).</param>
    public abstract Tensor mean(Tensor net, double temperature = 1.0);

    /// <summary>
    /// In-place variant of <see cref="mean"/>: overwrites <paramref name="net"/> with E[x | η] and returns it. Saves an
    /// allocation in the training loop; the default implementation copies.
    /// </summary>
    public virtual Tensor mean_(Tensor net, double temperature = 1.0)
    {
        using var m = mean(net, temperature);
        return net.copy_(m);
    }

    /// <summary>
    /// Draws x ~ p(x | η) given the conditional mean already computed by <see cref="mean"/>: at temperature T for types
    /// whose conditional distribution is fixed by its mean (binary units, softmax groups), at T = 1 for continuous ones
    /// (see <see cref="sample_from_mean(Tensor, double, Generator?)"/>).
    /// </summary>
    /// <param name="mean">Conditional mean, as returned by <see cref="mean"/>.</param>
    /// <param name="generator">Random generator (on the tensor's device), or null for the global one.</param>
    public abstract Tensor sample_from_mean(Tensor mean, Generator? generator = null);

    /// <summary>
    /// Draws x ~ p(x | η) at temperature T given the conditional mean at T. The default ignores T and calls
    /// <see cref="sample_from_mean(Tensor, Generator?)"/>, which is right for every type whose conditional distribution
    /// is fixed by its mean (binary units, softmax groups); a continuous type whose spread depends on T (Gaussian units:
    /// variance T) overrides it.
    /// </summary>
    /// <param name="mean">Conditional mean at T, as returned by <see cref="mean"/>.</param>
    /// <param name="temperature">Temperature T &gt; 0.</param>
    /// <param name="generator">Random generator (on the tensor's device), or null for the global one.</param>
    public virtual Tensor sample_from_mean(Tensor mean, double temperature, Generator? generator = null)
        => sample_from_mean(mean, generator);

    /// <summary>
    /// As <see cref="sample_from_mean(Tensor, double, Generator?)"/> with one temperature per row (for tempering):
    /// <paramref name="temperature"/> broadcasts against <paramref name="mean"/>, e.g. shape (B, 1).
    /// </summary>
    /// <param name="mean">Conditional means at the rows' temperatures.</param>
    /// <param name="temperature">Temperatures, broadcastable to the shape of <paramref name="mean"/>.</param>
    /// <param name="generator">Random generator (on the tensor's device), or null for the global one.</param>
    public virtual Tensor sample_from_mean(Tensor mean, Tensor temperature, Generator? generator = null)
        => sample_from_mean(mean, generator);

    /// <summary>
    /// In place, with one temperature per row (broadcast against <paramref name="net"/>, e.g. shape (B, 1)): overwrites
    /// <paramref name="net"/> with E[x | η] and returns it. The default divides η by T and takes the mean at T = 1, which
    /// is right for every type whose self-energy is linear in x (p ∝ e^{x·η/T}); Gaussian units override it.
    /// </summary>
    /// <param name="net">Net input η, overwritten.</param>
    /// <param name="temperature">Temperatures, broadcastable to the shape of <paramref name="net"/>.</param>
    public virtual Tensor mean_(Tensor net, Tensor temperature) => mean_(net.div_(temperature), 1.0);

    /// <summary>
    /// The values a single unit can take when the type is discrete and its units are independent (Bernoulli: {0, 1});
    /// null otherwise (continuous units, or units coupled in groups).
    /// </summary>
    public abstract IReadOnlyList<double>? discrete_values { get; }

    /// <summary>
    /// How many states a layer of <paramref name="n"/> units of this type can take, or null when they are not a finite
    /// list (continuous units). Bernoulli: 2ⁿ.
    /// </summary>
    /// <param name="n">Number of units in the layer.</param>
    public virtual double? state_count(int n) => discrete_values is { } values ? Math.Pow(values.Count, n) : null;

    /// <summary>
    /// Every state of a layer of <paramref name="n"/> units, rows <paramref name="first"/> … first + count − 1 of a fixed
    /// order (for chunked enumeration), shape (count, n); null when the states are not a finite list. The default lists
    /// the product of <see cref="discrete_values"/>, unit 0 varying fastest (for {0, 1}: row r holds the bits of r,
    /// least significant first).
    /// </summary>
    /// <param name="n">Number of units in the layer.</param>
    /// <param name="first">Index of the first state to return.</param>
    /// <param name="count">Number of states to return.</param>
    /// <param name="dtype">Floating-point type of the result.</param>
    /// <param name="device">Device of the result.</param>
    public virtual Tensor? enumerate_states(int n, long first, long count, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        if (discrete_values is not { } values) return null;
        using var scope = torch.NewDisposeScope();
        long k = values.Count;
        var idx = torch.arange(first, first + count, dtype: ScalarType.Int64, device: device).unsqueeze(1);
        var powers = torch.tensor(Enumerable.Range(0, n).Select(i => (long)Math.Pow(k, i)).ToArray(), device: device).unsqueeze(0);
        var digit = idx.div(powers, rounding_mode: RoundingMode.floor).remainder(k);
        var table = torch.tensor(values.ToArray(), dtype: dtype, device: device);
        return table.index(digit.flatten()).reshape(count, n).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Random start states for <paramref name="n_chains"/> Gibbs chains over a layer of <paramref name="n"/> units, shape
    /// (n_chains, n): the default draws each unit from <see cref="sample_from_mean(Tensor, Generator?)"/> with mean 0.5 (binary units: uniform
    /// over all states). A type whose states are constrained overrides it (a softmax group: a uniformly drawn label).
    /// </summary>
    /// <param name="n_chains">Number of chains.</param>
    /// <param name="n">Number of units in the layer.</param>
    /// <param name="dtype">Floating-point type.</param>
    /// <param name="device">Device.</param>
    /// <param name="generator">Random generator, or null for the global one.</param>
    public virtual Tensor initial_states(int n_chains, int n, ScalarType dtype, Device? device = null, Generator? generator = null)
    {
        using var half = torch.full(n_chains, n, 0.5, dtype: dtype, device: device);
        return sample_from_mean(half, generator);
    }

    /// <summary>
    /// Checks that <paramref name="x"/> holds values this unit type can take (and no NaN); throws
    /// <see cref="ArgumentException"/> naming <paramref name="what"/>, the expected range and what came.
    /// </summary>
    /// <param name="x">Values to check.</param>
    /// <param name="what">What the tensor is, for the message (e.g. "visible input").</param>
    public abstract void check_values(Tensor x, string what);

    /// <summary>
    /// True when E_self is linear in the bias (E_self = −a·x) and the log-partition's derivative is the mean, so that
    /// ∂F/∂a is the conditional mean and the trainer can write CD gradients without autograd.
    /// </summary>
    public virtual bool has_linear_bias => false;

    /// <summary>
    /// What the layer's values contribute to the coupling hᵀW(·): x itself (a new handle on it) for every type but
    /// <see cref="LearnedGaussianUnits"/>, whose coupling sees x/σ². The RBM calls it only when <see cref="scales_coupling"/>.
    /// </summary>
    /// <param name="x">Unit values, shape (*, n).</param>
    public virtual Tensor coupling_input(Tensor x) => x.alias();

    /// <summary>True when <see cref="coupling_input"/> is not the identity (the RBM then scales the visible layer before the coupling).</summary>
    public virtual bool scales_coupling => false;

    private static readonly object RegistryLock = new();
    private static readonly List<(string Form, Func<string, UnitType?> Parse, UnitType Example)> Registry =
    [
        ("Bernoulli", name => name == "Bernoulli" ? Bernoulli : null, new BernoulliUnits()),
        ("Bernoulli+Softmax(K) with K ≥ 2", LabelledBernoulliUnits.Parse, new LabelledBernoulliUnits(3)),
        ("Spin", name => name == "Spin" ? Spin : null, new SpinUnits()),
        (GaussianUnits.TypeName, name => name == GaussianUnits.TypeName ? Gaussian : null, new GaussianUnits()),
        ("Bernoulli+Softmax(K₁,K₂,…) with every K ≥ 2", SoftmaxGroupUnits.ParseWithBinary, new SoftmaxGroupUnits([2, 2])),
        ("Softmax(K₁,…) with every K ≥ 2", SoftmaxGroupUnits.ParseAlone, new SoftmaxGroupUnits([2, 3], binary_units: false)),
        (LearnedGaussianUnits.TypeName, name => name == LearnedGaussianUnits.TypeName ? new LearnedGaussianUnits() : null, new LearnedGaussianUnits()),
    ];

    /// <summary>
    /// Makes a unit type known to <see cref="FromName"/> (and so to checkpoints) and to the conformance tests, without
    /// editing this class: <paramref name="parse"/> returns the type a stored <see cref="Name"/> denotes, or null when the
    /// name is not of this type. Call it once, e.g. from the new type's static constructor or at application start-up.
    /// </summary>
    /// <param name="form">The name's form for messages, e.g. "Gaussian(σ²)".</param>
    /// <param name="parse">Name → unit type, or null when the name is not of this type.</param>
    /// <param name="example">One instance, used by the conformance tests (with a layer of a few units).</param>
    /// <exception cref="ArgumentException">A type with the same <see cref="Name"/> as <paramref name="example"/> is registered already.</exception>
    public static void Register(string form, Func<string, UnitType?> parse, UnitType example)
    {
        ArgumentNullException.ThrowIfNull(form);
        ArgumentNullException.ThrowIfNull(parse);
        ArgumentNullException.ThrowIfNull(example);
        lock (RegistryLock)
        {
            if (Registry.Any(r => r.Parse(example.Name) is not null))
                throw new ArgumentException($"Unit type '{example.Name}' is registered already.", nameof(example));
            Registry.Add((form, parse, example));
        }
    }

    /// <summary>One example of every registered unit type, in registration order (built-in ones first).</summary>
    public static IReadOnlyList<UnitType> Registered
    {
        get { lock (RegistryLock) return Registry.Select(r => r.Example).ToList(); }
    }

    /// <summary>
    /// Creates a unit type from its <see cref="Name"/>, as stored in checkpoints, through the registry: <c>Bernoulli</c>,
    /// <c>Bernoulli+Softmax(K)</c> (<see cref="LabelledBernoulliUnits"/> with K label units), <c>Spin</c>
    /// (<see cref="SpinUnits"/>), <c>Gaussian</c> (<see cref="GaussianUnits"/>), <c>Bernoulli+Softmax(K₁,K₂,…)</c> and
    /// <c>Softmax(K₁,…)</c> (<see cref="SoftmaxGroupUnits"/>), and any type added with
    /// <see cref="Register"/>.
    /// </summary>
    /// <exception cref="ArgumentException">No registered type has this name.</exception>
    public static UnitType FromName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        lock (RegistryLock)
        {
            foreach (var (_, parse, _) in Registry)
                if (parse(name) is { } type) return type;
            throw new ArgumentException($"Unknown unit type '{name}'. Known: {string.Join(", ", Registry.Select(r => r.Form))}.", nameof(name));
        }
    }

    /// <summary>Binary {0,1} units.</summary>
    public static UnitType Bernoulli { get; } = new BernoulliUnits();

    /// <summary>Spin units {−1, +1} (<see cref="SpinUnits"/>).</summary>
    public static UnitType Spin { get; } = new SpinUnits();

    /// <summary>Real-valued units with unit variance (<see cref="GaussianUnits"/>), for standardised data.</summary>
    public static UnitType Gaussian { get; } = new GaussianUnits();

    /// <inheritdoc />
    public override string ToString() => Name;

    /// <summary>Throws unless β is finite and ≥ 0 (for the <see cref="log_partition"/> of derived types).</summary>
    /// <exception cref="ArgumentOutOfRangeException">β is negative, infinite or NaN.</exception>
    protected static void CheckBeta(double beta) => Checks.Beta(beta);
}

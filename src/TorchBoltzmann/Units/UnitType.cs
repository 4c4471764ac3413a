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
/// <item>its log-partition per unit, log ∫ e^{−E_self(x;a) + x·(η − a)} dx (Bernoulli: softplus(η)), which integrates the
/// layer out of the joint distribution and so defines the free energy,</item>
/// <item>its conditional mean E[x | η] and a sampler at temperature T.</item>
/// </list>
/// Members mirror PyTorch naming (snake_case) because they are tensor-facing.
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
    /// Log-partition per unit: log Σ_x e^{x·η − E_self(x;a) − x·a}, elementwise (shape of <paramref name="net"/>).
    /// Summed over the layer it is what integrating the layer out contributes to −F.
    /// </summary>
    /// <param name="net">Total net input η = a + coupling, shape (*, n).</param>
    /// <param name="bias">Biases a, shape (n).</param>
    public abstract Tensor log_partition(Tensor net, Tensor bias);

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

    /// <summary>Draws x ~ p(x | η) at temperature T given the conditional mean already computed by <see cref="mean"/>.</summary>
    /// <param name="mean">Conditional mean, as returned by <see cref="mean"/>.</param>
    /// <param name="generator">Random generator (on the tensor's device), or null for the global one.</param>
    public abstract Tensor sample_from_mean(Tensor mean, Generator? generator = null);

    /// <summary>
    /// The values a single unit can take when the type is discrete (Bernoulli: {0, 1}), used by exact enumeration; null for
    /// continuous units.
    /// </summary>
    public abstract IReadOnlyList<double>? discrete_values { get; }

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
    /// Creates a unit type from its <see cref="Name"/>, as stored in checkpoints: <c>Bernoulli</c>, or
    /// <c>Bernoulli+Softmax(K)</c> (<see cref="LabelledBernoulliUnits"/> with K label units).
    /// </summary>
    /// <exception cref="ArgumentException">The name is unknown.</exception>
    public static UnitType FromName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name == "Bernoulli") return Bernoulli;
        const string labelled = "Bernoulli+Softmax(";
        if (name.StartsWith(labelled, StringComparison.Ordinal) && name.EndsWith(')')
            && int.TryParse(name.AsSpan(labelled.Length, name.Length - labelled.Length - 1), System.Globalization.NumberStyles.None,
                            System.Globalization.CultureInfo.InvariantCulture, out int k) && k >= 2)
            return new LabelledBernoulliUnits(k);
        throw new ArgumentException($"Unknown unit type '{name}'. Known: Bernoulli, Bernoulli+Softmax(K) with K ≥ 2.", nameof(name));
    }

    /// <summary>Binary {0,1} units.</summary>
    public static UnitType Bernoulli { get; } = new BernoulliUnits();

    /// <inheritdoc />
    public override string ToString() => Name;
}

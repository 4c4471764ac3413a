namespace TorchBoltzmann.Modules;

/// <summary>Which pairs of units of a <see cref="BoltzmannMachine"/> may be connected (its connectivity mask).</summary>
public enum Connectivity
{
    /// <summary>Every pair of distinct units (visible–visible, visible–hidden, hidden–hidden): the machine of Ackley, Hinton &amp; Sejnowski (1985).</summary>
    Full,
    /// <summary>Visible–hidden pairs only: the restricted Boltzmann machine's graph.</summary>
    Bipartite,
    /// <summary>
    /// Consecutive layers only (visible – hidden layer 1 – hidden layer 2 – …), the deep Boltzmann machine's graph; the
    /// hidden layer sizes are given separately and sum to n_hidden.
    /// </summary>
    Layered,
    /// <summary>A mask the caller gives.</summary>
    Given,
}

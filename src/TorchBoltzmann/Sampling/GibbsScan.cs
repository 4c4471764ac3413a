namespace TorchBoltzmann.Sampling;

/// <summary>The order of the single-unit or block updates within one Gibbs sweep over a <see cref="Modules.BoltzmannMachine"/>.</summary>
public enum GibbsScan
{
    /// <summary>Every free unit once, in index order (systematic scan).</summary>
    Systematic,
    /// <summary>As many updates as free units, each of a unit drawn uniformly at random, independently for each chain (random scan).</summary>
    Random,
    /// <summary>
    /// The colour classes of the connectivity graph in turn, each as one block of conditionally independent units:
    /// exact block Gibbs sampling, two blocks for bipartite and layered masks.
    /// </summary>
    Blocked,
}

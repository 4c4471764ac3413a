using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Sampling;

/// <summary>What a simulated-annealing run found: the lowest-energy state any chain visited, and each chain's best.</summary>
public sealed class AnnealingResult : IDisposable
{
    internal AnnealingResult(Tensor state, double energy, Tensor chainStates, Tensor chainEnergies, int sweeps)
    {
        this.state = state; this.energy = energy; chain_states = chainStates; chain_energies = chainEnergies; this.sweeps = sweeps;
    }

    /// <summary>The lowest-energy state visited by any chain, shape (n).</summary>
    public Tensor state { get; }
    /// <summary>Its energy E(state).</summary>
    public double energy { get; }
    /// <summary>Each chain's lowest-energy state, (n_chains, n).</summary>
    public Tensor chain_states { get; }
    /// <summary>Each chain's lowest energy, (n_chains).</summary>
    public Tensor chain_energies { get; }
    /// <summary>Sweeps each chain made.</summary>
    public int sweeps { get; }

    /// <inheritdoc />
    public void Dispose() { state.Dispose(); chain_states.Dispose(); chain_energies.Dispose(); }
}

/// <summary>
/// Simulated annealing (Kirkpatrick, Gelatt &amp; Vecchi 1983) of a <see cref="BoltzmannMachine"/>: Gibbs sweeps at
/// each temperature of a schedule, many chains at once, keeping the lowest-energy state each chain visits. At T → 0 the
/// Boltzmann distribution concentrates on the ground states, so a slow enough schedule finds one; a max-cut or
/// spin-glass instance is a spin machine with E(s) = −½sᵀWs − bᵀs.
/// </summary>
public static class SimulatedAnnealing
{
    /// <summary>
    /// Runs <paramref name="n_chains"/> chains through the schedule, <paramref name="sweeps_per_temperature"/> sweeps per
    /// stage, and returns the lowest energy seen after any sweep (and at the start) with its state.
    /// </summary>
    /// <param name="bm">The machine (its energy is what is minimised).</param>
    /// <param name="schedule">The temperatures.</param>
    /// <param name="n_chains">Independent chains, started at random states (or at <paramref name="start"/>).</param>
    /// <param name="sweeps_per_temperature">Sweeps at each temperature (≥ 1).</param>
    /// <param name="scan">Update order of a sweep.</param>
    /// <param name="generator">Random generator on the machine's device.</param>
    /// <param name="start">Optional start states, (n_chains, n).</param>
    /// <exception cref="ArgumentOutOfRangeException">A count is less than 1.</exception>
    public static AnnealingResult run(BoltzmannMachine bm, AnnealingSchedule schedule, int n_chains = 16, int sweeps_per_temperature = 1,
                                      GibbsScan scan = GibbsScan.Systematic, Generator? generator = null, Tensor? start = null)
    {
        ArgumentNullException.ThrowIfNull(bm);
        ArgumentNullException.ThrowIfNull(schedule);
        if (n_chains < 1) throw new ArgumentOutOfRangeException(nameof(n_chains), n_chains, "n_chains: expected at least 1.");
        if (sweeps_per_temperature < 1)
            throw new ArgumentOutOfRangeException(nameof(sweeps_per_temperature), sweeps_per_temperature, "sweeps_per_temperature: expected at least 1.");
        using var _ = torch.no_grad();
        using var chains = new GibbsChains(bm, generator, schedule.Temperatures[0], scan);
        if (start is null) chains.start_random(n_chains);
        else
        {
            if (start.dim() != 2 || start.shape[0] != n_chains)
                throw new ArgumentException($"start: expected shape ({n_chains}, {bm.n_units}), got ({string.Join(", ", start.shape)}).", nameof(start));
            chains.start(start);
        }
        var previous = bm.validate_values;
        bm.validate_values = false;   // the chains hold valid states
        try
        {
            var bestE = bm.energy(chains.states).DetachFromDisposeScope();
            var bestX = chains.states.clone().DetachFromDisposeScope();
            int sweeps = 0;
            foreach (double t in schedule.Temperatures)
            {
                chains.temperature = t;
                for (int s = 0; s < sweeps_per_temperature; s++, sweeps++)
                {
                    chains.step();
                    using var scope = torch.NewDisposeScope();
                    var e = bm.energy(chains.states);
                    var better = e.lt(bestE);
                    bestE.copy_(torch.where(better, e, bestE));
                    bestX.copy_(torch.where(better.unsqueeze(1), chains.states, bestX));
                }
            }
            using var i = bestE.argmin();
            long k = i.ToInt64();
            using var row = bestX[k];
            using var ek = bestE[k];
            return new AnnealingResult(row.clone(), ek.ToDouble(), bestX, bestE, sweeps);
        }
        finally { bm.validate_values = previous; }
    }
}

using TorchBoltzmann.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>A module's <c>state_dict</c> as a checkpoint component: every entry, restored in place (<c>copy_</c>), so
/// the parameter objects (and optimizers over them) stay valid.</summary>
/// <param name="name">The section name (e.g. "model").</param>
/// <param name="module">The module.</param>
public sealed class ModuleState(string name, nn.Module module) : IStateful
{
    /// <inheritdoc />
    public string StateName => name;

    /// <inheritdoc />
    public void SaveState(StateSection section)
    {
        foreach (var (key, t) in module.state_dict()) section.Put(key, t);
    }

    /// <inheritdoc />
    public Action PrepareLoad(StateSection section)
    {
        var state = module.state_dict();
        var pairs = state.Select(kv => (target: kv.Value, source: section.Tensor(kv.Key, kv.Value, "in the model"))).ToList();
        var extra = section.Tensors.Select(t => t.Name).Where(n => !state.ContainsKey(n)).ToList();
        if (extra.Count > 0) throw section.Refuse($"tensors {string.Join(", ", extra)} are not in the model");
        return () =>
        {
            using var _ = torch.no_grad();
            foreach (var (target, source) in pairs) target.copy_(source);
        };
    }
}

/// <summary>
/// The <c>.grad</c> buffers of a module's parameters as a checkpoint component: where a trainer keeps state in them (the
/// <see cref="RbmTrainer"/>'s folded momentum, u ← μu + ∂L/∂θ). A parameter without a saved buffer gets a zero one.
/// </summary>
/// <param name="name">The section name.</param>
/// <param name="module">The module.</param>
public sealed class GradientBuffers(string name, nn.Module module) : IStateful
{
    /// <inheritdoc />
    public string StateName => name;

    /// <inheritdoc />
    public void SaveState(StateSection section)
    {
        foreach (var (key, p) in module.named_parameters())
            if (p.grad is { } g) section.PutCopy(key, g);
    }

    /// <inheritdoc />
    public Action PrepareLoad(StateSection section)
    {
        var parameters = module.named_parameters().ToList();
        var extra = section.Tensors.Select(t => t.Name).Except(parameters.Select(p => p.name)).ToList();
        if (extra.Count > 0) throw section.Refuse($"gradient buffers {string.Join(", ", extra)} belong to no parameter");
        var pairs = parameters.Select(p => (p.parameter, source: section.Has(p.name) ? section.Tensor(p.name, p.parameter) : null)).ToList();
        return () =>
        {
            using var _ = torch.no_grad();
            using var scope = torch.NewDisposeScope();   // the .grad wrappers (handles, not the buffers)
            foreach (var (p, source) in pairs)
            {
                if (source is null) { p.grad?.zero_(); continue; }
                if (p.grad is null) p.grad = torch.zeros_like(p);
                p.grad!.copy_(source);
            }
        };
    }
}

/// <summary>An optimizer's state (momentum buffers, step counts) in TorchSharp's own format, as a checkpoint component.</summary>
public sealed class OptimizerCheckpointState : IStateful
{
    private readonly TorchSharp.Modules.OptimizerHelper _optimizer;

    /// <summary>Wraps <paramref name="optimizer"/>.</summary>
    /// <param name="name">The section name (e.g. "optimizer").</param>
    /// <param name="optimizer">The optimizer.</param>
    /// <exception cref="NotSupportedException">TorchSharp cannot save this optimizer's state (the native L-BFGS).</exception>
    public OptimizerCheckpointState(string name, optim.Optimizer optimizer)
    {
        StateName = name;
        _optimizer = FineTuningCheckpoint.Supported(optimizer);
    }

    /// <inheritdoc />
    public string StateName { get; }

    /// <inheritdoc />
    public void SaveState(StateSection section)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true)) _optimizer.save_state_dict(w);
        section.PutBytes("state", ms.ToArray());
    }

    /// <inheritdoc />
    public Action PrepareLoad(StateSection section)
    {
        var bytes = section.Bytes("state");
        // TorchSharp allocates by the sizes it reads: the section is checked first (OptimizerSection).
        try { OptimizerSection.Check(bytes, _optimizer); }
        catch (InvalidDataException e) { throw section.Refuse($"the optimizer's state: {e.Message}"); }
        return () =>
        {
            using var before = new MemoryStream();
            using (var w = new BinaryWriter(before, System.Text.Encoding.UTF8, leaveOpen: true)) _optimizer.save_state_dict(w);
            try
            {
                using var r = new BinaryReader(new MemoryStream(bytes), System.Text.Encoding.UTF8);
                _optimizer.load_state_dict(r);
            }
            catch
            {
                // load_state_dict writes in place as it reads: put the state back.
                before.Position = 0;
                using var back = new BinaryReader(before);
                _optimizer.load_state_dict(back);
                throw;
            }
        };
    }
}

/// <summary>
/// A random generator's state as a checkpoint component: a run's own <see cref="Generator"/>, or the global CPU
/// generator (<see cref="Global"/>, which dropout draws from). The state is checked to be one libtorch accepts before it
/// is set (a state libtorch refuses ends the process: see <see cref="FineTuningCheckpoint"/>).
/// </summary>
public sealed class GeneratorState : IStateful
{
    private readonly Func<Tensor> _get;
    private readonly Action<Tensor> _set;
    private readonly DeviceType _device;

    /// <summary>Wraps a generator.</summary>
    public GeneratorState(string name, Generator generator)
        : this(name, generator.get_state, generator.set_state, generator.device.type) { }

    private GeneratorState(string name, Func<Tensor> get, Action<Tensor> set, DeviceType device)
    {
        StateName = name;
        (_get, _set, _device) = (get, set, device);
    }

    /// <summary>The global CPU generator (<c>torch.get_rng_state</c> / <c>set_rng_state</c>).</summary>
    public static GeneratorState Global(string name = "global_generator")
        => new(name, () => torch.get_rng_state(), s => torch.set_rng_state(s), DeviceType.CPU);

    /// <inheritdoc />
    public string StateName { get; }

    /// <inheritdoc />
    public void SaveState(StateSection section) => section.PutCopy("state", _get());

    /// <inheritdoc />
    public Action PrepareLoad(StateSection section)
    {
        var saved = section.Tensor("state");
        byte[] bytes = saved.dtype == ScalarType.Byte && saved.dim() == 1 ? saved.bytes.ToArray() : throw section.Refuse("the generator state is not a byte vector");
        int length;
        using (var now = _get()) length = (int)now.numel();
        FineTuningCheckpoint.CheckGeneratorState(section.File ?? "", bytes, length, _device, $"the generator state of section '{section.Name}'");
        return () => _set(saved);
    }
}

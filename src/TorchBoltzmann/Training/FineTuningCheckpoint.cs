using System.Text.Json;
using TorchBoltzmann.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// Everything a <see cref="FineTuner"/> run needs to continue after the last completed epoch as if it had never stopped:
/// the model's weights, the optimizer's state (SGD's momentum buffers), the epochs' metrics, early stopping's record and
/// best weights, the iterate average, and the states of the shuffling generator and of the global generator (dropout).
/// </summary>
/// <remarks>
/// One file, written atomically (<see cref="AtomicFile"/>): a crash while saving leaves the previous checkpoint whole.
/// Layout: magic "TBMFT", format version, a JSON header (epochs done, hyperparameters, parameter names and shapes,
/// metrics, generator states), then the model's state_dict (TorchSharp's format), the optimizer's state, and the named
/// extra tensors (best weights, averages) as raw bytes.
/// </remarks>
internal static class FineTuningCheckpoint
{
    private const string Magic = "TBMFT";
    private const int Version = 1;

    /// <summary>The part of a checkpoint the training loop reads back.</summary>
    internal sealed record State(
        int EpochsDone, bool Finished, List<ClassifierEpochMetrics> Epochs, int BestEpoch, double? BestError, int SinceBest,
        bool StoppedEarly, bool Restored);

    private sealed record Header(
        long TrainCount, int EpochsDone, bool Finished, Dictionary<string, string> Options, Dictionary<string, long[]> Parameters,
        List<ClassifierEpochMetrics> Epochs, int BestEpoch, double? BestError, int SinceBest, bool StoppedEarly, bool Restored,
        string GlobalRng, string Generator, List<string> Extra);

    /// <summary>
    /// The hyperparameters a continued run must share with the one that wrote the checkpoint: all but
    /// <see cref="ClassifierTrainingOptions.Epochs"/> and <see cref="ClassifierTrainingOptions.Patience"/> (a run may be extended).
    /// </summary>
    internal static Dictionary<string, string> Fingerprint(ClassifierTrainingOptions o)
        => typeof(ClassifierTrainingOptions).GetProperties()
            .Where(p => p.Name is not (nameof(ClassifierTrainingOptions.Epochs) or nameof(ClassifierTrainingOptions.Patience)))
            .ToDictionary(p => p.Name, p => Convert.ToString(p.GetValue(o), System.Globalization.CultureInfo.InvariantCulture) ?? "null");

    private static Dictionary<string, long[]> Shapes(nn.Module model)
        => model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);

    /// <summary>Writes the checkpoint atomically.</summary>
    internal static void Save(string path, nn.Module model, optim.Optimizer optimizer, ClassifierTrainingOptions options,
                              long trainCount, State state, Generator generator, IReadOnlyList<(string name, Tensor tensor)> extra)
    {
        if (optimizer is not TorchSharp.Modules.OptimizerHelper managed)
            throw new NotSupportedException($"fine-tuning checkpoints need an optimizer whose state TorchSharp can save (SGD, Adam, ConjugateGradient, …); {optimizer.GetType().Name} cannot.");
        var header = new Header(trainCount, state.EpochsDone, state.Finished, Fingerprint(options), Shapes(model), state.Epochs, state.BestEpoch,
            state.BestError, state.SinceBest, state.StoppedEarly, state.Restored,
            Convert.ToBase64String(RngBytes(torch.get_rng_state())), Convert.ToBase64String(RngBytes(generator.get_state())),
            extra.Select(e => e.name).ToList());
        AtomicFile.Write(path, stream =>
        {
            using var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
            w.Write(Magic);
            w.Write(Version);
            w.Write(JsonSerializer.Serialize(header));
            model.save(w);
            managed.save_state_dict(w);
            foreach (var (_, t) in extra)
            {
                using var cpu = t.detach().cpu().contiguous();
                var bytes = cpu.bytes.ToArray();
                w.Write(bytes.Length);
                w.Write(bytes);
            }
        });
    }

    /// <summary>
    /// Reads a checkpoint into the model, optimizer, generators and <paramref name="extra"/> tensors (which must have the
    /// names, shapes and dtypes the checkpoint was written with), after checking that it belongs to this run.
    /// </summary>
    /// <exception cref="CheckpointException">Not a fine-tuning checkpoint, truncated, or written by a run with other hyperparameters or another model.</exception>
    internal static State Load(string path, nn.Module model, optim.Optimizer optimizer, ClassifierTrainingOptions options,
                               long trainCount, Generator generator, Func<IReadOnlyList<string>, IReadOnlyList<Tensor>> extra)
    {
        if (optimizer is not TorchSharp.Modules.OptimizerHelper managed)
            throw new NotSupportedException($"fine-tuning checkpoints need an optimizer whose state TorchSharp can load; {optimizer.GetType().Name} cannot.");
        try
        {
            using var stream = File.OpenRead(path);
            using var r = new BinaryReader(stream, System.Text.Encoding.UTF8);
            string magic = r.ReadString();
            int version = r.ReadInt32();
            if (magic != Magic || version != Version)
                throw new CheckpointException($"'{path}': not a fine-tuning checkpoint of format {Magic} {Version} (found '{magic}' {version}).");
            var h = JsonSerializer.Deserialize<Header>(r.ReadString()) ?? throw new CheckpointException($"'{path}': empty header.");
            if (h.TrainCount != trainCount)
                throw new CheckpointException($"'{path}' was written by a run on {h.TrainCount} training examples; this one has {trainCount}. Delete it to start over.");
            var want = Fingerprint(options);
            var differ = want.Keys.Where(k => !h.Options.TryGetValue(k, out var v) || v != want[k])
                .Select(k => $"{k} = {(h.Options.TryGetValue(k, out var v) ? v : "(absent)")} in the checkpoint, {want[k]} now").ToList();
            if (differ.Count > 0)
                throw new CheckpointException($"'{path}' was written by a run with other hyperparameters: {string.Join("; ", differ)}. Delete it to start over, or run with the same options.");
            var shapes = Shapes(model);
            var mismatch = shapes.Keys.Union(h.Parameters.Keys)
                .Where(k => !shapes.TryGetValue(k, out var s) || !h.Parameters.TryGetValue(k, out var c) || !s.SequenceEqual(c))
                .Select(k => $"{k}: ({Join(h.Parameters.GetValueOrDefault(k))}) in the checkpoint, ({Join(shapes.GetValueOrDefault(k))}) in the model").ToList();
            if (mismatch.Count > 0)
                throw new CheckpointException($"'{path}' holds another model: {string.Join("; ", mismatch)}.");
            model.load(r);
            managed.load_state_dict(r);
            var tensors = extra(h.Extra);
            foreach (var t in tensors)
            {
                int n = r.ReadInt32();
                var bytes = r.ReadBytes(n);
                if (bytes.Length != n || n != t.NumberOfElements * t.ElementSize)
                    throw new CheckpointException($"'{path}': an extra tensor holds {n} bytes, expected {t.NumberOfElements * t.ElementSize}.");
                using var cpu = torch.empty(t.shape, t.dtype);
                bytes.CopyTo(cpu.bytes);
                using (torch.no_grad()) t.copy_(cpu);
            }
            using (var global = RngTensor(h.GlobalRng)) torch.set_rng_state(global);
            using (var own = RngTensor(h.Generator)) generator.set_state(own);
            return new State(h.EpochsDone, h.Finished, h.Epochs, h.BestEpoch, h.BestError, h.SinceBest, h.StoppedEarly, h.Restored);
        }
        catch (Exception e) when (e is EndOfStreamException or JsonException or FormatException)
        {
            throw new CheckpointException($"'{path}': truncated or corrupt fine-tuning checkpoint ({e.Message}). Delete it to start over.", e);
        }
    }

    private static string Join(long[]? shape) => shape is null ? "absent" : string.Join(", ", shape);

    private static byte[] RngBytes(Tensor state)
    {
        using (state) return state.bytes.ToArray();
    }

    private static Tensor RngTensor(string base64)
    {
        var bytes = Convert.FromBase64String(base64);
        var t = torch.empty(bytes.Length, ScalarType.Byte);
        bytes.CopyTo(t.bytes);
        return t;
    }
}

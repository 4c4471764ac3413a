using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Serialization;
using TorchBoltzmann.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Training;

/// <summary>
/// Everything a <see cref="FineTuner"/> run needs to continue after the last completed epoch as if it had never stopped:
/// the model's weights, the optimizer's state (SGD's momentum buffers), the epochs' metrics, early stopping's record and
/// best weights, the iterate average, and the states of the shuffling generator and of the global CPU generator (dropout).
/// </summary>
/// <remarks>
/// One file, written atomically (<see cref="AtomicFile"/>): a crash while saving leaves the previous checkpoint whole.
/// Layout: magic "TBMFT", format version, a JSON header (what the run was: hyperparameters, caller's tag, device, number
/// of training examples, tensor names, shapes and dtypes; where it is: epochs done, metrics, early stopping, generator
/// states), the tensors as raw bytes (the model's state_dict entries "model:…", best weights "best:…", averages
/// "average:i"), then the optimizer's state (TorchSharp's format). Loading checks the header against the run, the
/// optimizer's state against the optimizer (<see cref="OptimizerSection"/>) and the generator states against what
/// libtorch accepts, and reads every tensor into a temporary, before anything in the model changes.
/// </remarks>
internal static class FineTuningCheckpoint
{
    private const string Magic = "TBMFT";
    private const int Version = 2;
    private static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>The part of a checkpoint the training loop reads back.</summary>
    internal sealed record State(
        int EpochsDone, bool Finished, List<ClassifierEpochMetrics> Epochs, int BestEpoch, double? BestError, int SinceBest,
        bool StoppedEarly, bool Restored);

    /// <summary>What must match for a run to continue from a checkpoint.</summary>
    internal sealed record Identity(ClassifierTrainingOptions Options, IReadOnlyDictionary<string, string>? Tag, long TrainCount, Device Device);

    private sealed record TensorInfo(string Name, long[] Shape, string DType);

    private sealed record Header(
        Dictionary<string, string> Options, Dictionary<string, string> Tag, long TrainCount, string Device,
        int EpochsDone, bool Finished, List<ClassifierEpochMetrics> Epochs, int BestEpoch, double? BestError, int SinceBest,
        bool StoppedEarly, bool Restored, string GlobalRng, string Generator, List<TensorInfo> Tensors);

    /// <summary>
    /// The hyperparameters a continued run must share with the one that wrote the checkpoint: all but
    /// <see cref="ClassifierTrainingOptions.Epochs"/> and <see cref="ClassifierTrainingOptions.Patience"/>.
    /// </summary>
    internal static Dictionary<string, string> Fingerprint(ClassifierTrainingOptions o)
        => typeof(ClassifierTrainingOptions).GetProperties()
            .Where(p => p.Name is not (nameof(ClassifierTrainingOptions.Epochs) or nameof(ClassifierTrainingOptions.Patience)))
            .ToDictionary(p => p.Name, p => Convert.ToString(p.GetValue(o), System.Globalization.CultureInfo.InvariantCulture) ?? "null");

    /// <summary>Throws <see cref="NotSupportedException"/> when TorchSharp cannot save this optimizer's state.</summary>
    internal static TorchSharp.Modules.OptimizerHelper Supported(optim.Optimizer optimizer)
        => optimizer as TorchSharp.Modules.OptimizerHelper
           ?? throw new NotSupportedException($"fine-tuning checkpoints need an optimizer whose state TorchSharp can save (SGD, Adam, ConjugateGradient, …); {optimizer.GetType().Name} cannot.");

    /// <summary>
    /// Writes the checkpoint atomically; <paramref name="extra"/> are the named tensors beside the model's (best weights,
    /// averages), restored by name.
    /// </summary>
    internal static void Save(string path, nn.Module model, optim.Optimizer optimizer, Identity id, State state, Generator generator,
                              IReadOnlyList<(string name, Tensor tensor)> extra)
    {
        var managed = Supported(optimizer);
        var tensors = model.state_dict().Select(kv => ("model:" + kv.Key, kv.Value)).Concat(extra).ToList();
        var header = new Header(Fingerprint(id.Options), new Dictionary<string, string>(id.Tag ?? new Dictionary<string, string>()),
            id.TrainCount, id.Device.ToString(), state.EpochsDone, state.Finished, state.Epochs, state.BestEpoch, state.BestError,
            state.SinceBest, state.StoppedEarly, state.Restored,
            Convert.ToBase64String(RngBytes(torch.get_rng_state())), Convert.ToBase64String(RngBytes(generator.get_state())),
            tensors.Select(t => new TensorInfo(t.Item1, t.Item2.shape, t.Item2.dtype.ToString())).ToList());
        AtomicFile.Write(path, stream =>
        {
            using var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
            w.Write(Magic);
            w.Write(Version);
            w.Write(JsonSerializer.Serialize(header, Json));
            foreach (var (_, t) in tensors)
            {
                using var scope = torch.NewDisposeScope();
                var bytes = t.detach().cpu().contiguous().bytes;
                w.Write(bytes.Length);
                w.Write(bytes);
            }
            managed.save_state_dict(w);
        });
    }

    /// <summary>
    /// Reads a checkpoint into the model, optimizer, generators and the extra tensors <paramref name="extra"/> names
    /// (which must have the shapes and dtypes the checkpoint holds), after checking that it belongs to this run. The
    /// tensors and generator states are read into temporaries first and the optimizer's state is put back if its section
    /// fails to read, so a checkpoint refused for its header, a truncated tensor or optimizer section, or a corrupt
    /// generator state leaves the model, the optimizer and the generators as they were.
    /// </summary>
    /// <exception cref="CheckpointException">Not a fine-tuning checkpoint, truncated or corrupt, or written by another run (the differences are named).</exception>
    internal static State Load(string path, nn.Module model, optim.Optimizer optimizer, Identity id, Generator generator,
                               Func<IReadOnlyList<string>, IReadOnlyList<Tensor>> extra)
    {
        var managed = Supported(optimizer);
        var temporaries = new List<Tensor>();
        Tensor? globalRng = null, generatorRng = null;
        try
        {
            using var stream = File.OpenRead(path);
            using var r = new BinaryReader(stream, System.Text.Encoding.UTF8);
            string magic = r.ReadString();
            int version = r.ReadInt32();
            if (magic != Magic || version != Version)
                throw new CheckpointException($"'{path}': not a fine-tuning checkpoint of format {Magic} {Version} (found '{magic}' {version}).");
            var h = JsonSerializer.Deserialize<Header>(r.ReadString(), Json) ?? throw new CheckpointException($"'{path}': empty header.");
            CheckRunState(path, h);
            CheckIdentity(path, h, id);

            var state = model.state_dict();
            var modelNames = h.Tensors.Where(t => t.Name.StartsWith("model:", StringComparison.Ordinal)).Select(t => t.Name["model:".Length..]).ToList();
            var mismatch = state.Keys.Union(modelNames)
                .Select(k => (k, mine: state.TryGetValue(k, out var s) ? Describe(s.shape, s.dtype.ToString()) : "absent",
                                 theirs: h.Tensors.FirstOrDefault(t => t.Name == "model:" + k) is { } t ? Describe(t.Shape, t.DType) : "absent"))
                .Where(x => x.mine != x.theirs)
                .Select(x => $"{x.k}: {x.theirs} in the checkpoint, {x.mine} in the model").ToList();
            if (mismatch.Count > 0)
                throw new CheckpointException($"'{path}' holds another model: {string.Join("; ", mismatch)}.");
            var extraNames = h.Tensors.Select(t => t.Name).Where(n => !n.StartsWith("model:", StringComparison.Ordinal)).ToList();
            var targets = modelNames.Select(n => state[n]).Concat(extra(extraNames)).ToList();

            // Every tensor into a temporary first: nothing in the model changes unless all of them read whole.
            for (int i = 0; i < h.Tensors.Count; i++)
            {
                var info = h.Tensors[i];
                var target = targets[i];
                if (!target.shape.SequenceEqual(info.Shape) || target.dtype.ToString() != info.DType)
                    throw new CheckpointException($"'{path}': tensor '{info.Name}' is {Describe(info.Shape, info.DType)} in the checkpoint, {Describe(target.shape, target.dtype.ToString())} here.");
                long expected = target.NumberOfElements * target.ElementSize;
                int n = r.ReadInt32();
                if (n != expected)   // before reading: a corrupt length must not size an allocation
                    throw new CheckpointException($"'{path}': tensor '{info.Name}' should hold {expected} bytes; the file gives {n}. Delete it to start over.");
                var bytes = r.ReadBytes(n);
                if (bytes.Length != n)
                    throw new CheckpointException($"'{path}': tensor '{info.Name}' should hold {expected} bytes; the file gives only {bytes.Length} (truncated). Delete it to start over.");
                temporaries.Add(FromBytes(bytes, target.shape, target.dtype));
            }
            // The generator states are decoded before anything changes, and the optimizer's state (which
            // load_state_dict writes in place as it reads) is kept to be put back if its section is cut short.
            globalRng = RngTensor(path, h.GlobalRng, torch.get_rng_state(), DeviceType.CPU, "the global generator's state");
            generatorRng = RngTensor(path, h.Generator, generator.get_state(), generator.device.type, "the run's generator state");
            // TorchSharp allocates by the sizes it reads: the optimizer's section is checked first.
            var section = r.ReadBytes(checked((int)(stream.Length - stream.Position)));
            OptimizerSection.Check(section, managed);
            var optimizerBefore = new MemoryStream();
            using (var w = new BinaryWriter(optimizerBefore, System.Text.Encoding.UTF8, leaveOpen: true)) managed.save_state_dict(w);
            try
            {
                using var sectionReader = new BinaryReader(new MemoryStream(section), System.Text.Encoding.UTF8);
                managed.load_state_dict(sectionReader);
            }
            catch
            {
                optimizerBefore.Position = 0;
                using var back = new BinaryReader(optimizerBefore);
                managed.load_state_dict(back);
                throw;
            }
            using (torch.no_grad())
                for (int i = 0; i < targets.Count; i++) targets[i].copy_(temporaries[i]);
            torch.set_rng_state(globalRng);
            generator.set_state(generatorRng);
            return new State(h.EpochsDone, h.Finished, h.Epochs, h.BestEpoch, h.BestError, h.SinceBest, h.StoppedEarly, h.Restored);
        }
        catch (Exception e) when (e is not (CheckpointException or NotSupportedException or OutOfMemoryException))
        {
            throw new CheckpointException($"'{path}': truncated or corrupt fine-tuning checkpoint ({e.GetType().Name}: {e.Message}). Delete it to start over.", e);
        }
        finally
        {
            foreach (var t in temporaries) t.Dispose();
            globalRng?.Dispose();
            generatorRng?.Dispose();
        }
    }

    /// <summary>
    /// "key = value in the checkpoint, value now" for every key whose values differ (or that only one side has). With
    /// <paramref name="absentMatchesNull"/> (the options' fingerprints), a key the checkpoint lacks matches a value of
    /// "null" now: an option added since whose default is null, left at it.
    /// </summary>
    internal static List<string> Differences(IReadOnlyDictionary<string, string> theirs, IReadOnlyDictionary<string, string> mine, bool absentMatchesNull = false)
    {
        var differ = new List<string>();
        foreach (var k in mine.Keys.Union(theirs.Keys))
        {
            string t = theirs.TryGetValue(k, out var a) ? a : "(absent)", m = mine.TryGetValue(k, out var b) ? b : "(absent)";
            if (t != m && !(absentMatchesNull && t == "(absent)" && m == "null")) differ.Add($"{k} = {t} in the checkpoint, {m} now");
        }
        return differ;
    }

    /// <summary>
    /// Refuses a header whose record of the run cannot be what <see cref="Save"/> wrote: a field missing (null), a
    /// negative count (a negative epochs-done would have the run train for billions of epochs), a best epoch after the
    /// last one done.
    /// </summary>
    private static void CheckRunState(string path, Header h)
    {
        string? problem =
            h.Options is null || h.Tag is null || h.Device is null || h.GlobalRng is null || h.Generator is null ? "a field is missing"
            : h.Tensors is null || h.Tensors.Any(t => t?.Name is null || t.Shape is null || t.DType is null) ? "the tensor list is missing or incomplete"
            : h.Epochs is null || h.Epochs.Any(e => e is null) ? "the epochs' metrics are missing or incomplete"
            : h.EpochsDone < 0 ? $"{h.EpochsDone} epochs done"
            : h.BestEpoch < 0 || h.BestEpoch > h.EpochsDone || h.SinceBest < 0 ? $"best epoch {h.BestEpoch} and {h.SinceBest} epochs since, after {h.EpochsDone}"
            : null;
        if (problem is not null)
            throw new CheckpointException($"'{path}': not a record of a run that {Magic} {Version} writes ({problem}). Delete it to start over.");
    }

    private static void CheckIdentity(string path, Header h, Identity id)
    {
        var differ = Differences(h.Options, Fingerprint(id.Options), absentMatchesNull: true);
        differ.AddRange(Differences(h.Tag, id.Tag ?? new Dictionary<string, string>()));
        if (h.TrainCount != id.TrainCount) differ.Add($"training examples = {h.TrainCount} in the checkpoint, {id.TrainCount} now");
        if (h.Device != id.Device.ToString()) differ.Add($"device = {h.Device} in the checkpoint, {id.Device} now");
        if (differ.Count > 0)
            throw new CheckpointException($"'{path}' was written by another run: {string.Join("; ", differ)}. Delete it to start over, or run as before.");
    }

    private static string Describe(long[] shape, string dtype) => $"({string.Join(", ", shape)}) {dtype}";

    private static byte[] RngBytes(Tensor state)
    {
        using (state) return state.bytes.ToArray();
    }

    /// <summary>
    /// A generator state from the header, as a tensor for <c>set_state</c>, after checking that <c>set_state</c> will take
    /// it (<see cref="CheckGeneratorState"/>). <paramref name="current"/> is the generator's state now (disposed here).
    /// </summary>
    private static Tensor RngTensor(string path, string base64, Tensor current, DeviceType device, string what)
    {
        var bytes = Convert.FromBase64String(base64);
        CheckGeneratorState(path, bytes, RngBytes(current).Length, device, what);
        return FromBytes(bytes, [bytes.Length], ScalarType.Byte);
    }

    /// <summary>
    /// Refuses a generator state that libtorch's <c>set_state</c> would refuse: it does so with a C++ exception that
    /// TorchSharp does not catch, which ends the process. Checked: the length of the generator's own state now and, for
    /// the CPU generator, the fields mt19937's <c>is_valid</c> reads; for a CUDA generator, the offset's alignment.
    /// </summary>
    /// <remarks>
    /// The CPU state is libtorch's <c>CPUGeneratorImplState</c> (ATen/CPUGeneratorImpl.cpp, 5056 bytes): the_initial_seed
    /// (uint64), left (int, byte 8), seeded (int, byte 12), next (uint64, byte 16), state (624 × uint64), normal_x,
    /// normal_y, normal_rho (double), normal_is_valid (int), next_float_normal_sample (float), its validity (bool);
    /// accepted when seeded ≠ 0, 0 &lt; left ≤ 624 and (uint32)next ≤ 624 (a test checks this layout against the
    /// libtorch in use). The CUDA state is the seed (uint64) and the Philox offset (int64, byte 8), which must be a
    /// multiple of 4.
    /// </remarks>
    internal static void CheckGeneratorState(string path, byte[] state, int expectedLength, DeviceType device, string what)
    {
        const int MersenneStateN = 624;
        string? problem = null;
        if (state.Length != expectedLength)
            problem = $"{state.Length} bytes, expected {expectedLength}";
        else if (device == DeviceType.CPU && state.Length >= 24)
        {
            int left = BinaryPrimitives.ReadInt32LittleEndian(state.AsSpan(8)), seeded = BinaryPrimitives.ReadInt32LittleEndian(state.AsSpan(12));
            uint next = (uint)BinaryPrimitives.ReadUInt64LittleEndian(state.AsSpan(16));
            if (seeded == 0 || left is <= 0 or > MersenneStateN || next > MersenneStateN)
                problem = $"not a valid Mersenne Twister state (seeded {seeded}, left {left}, next {next})";
        }
        else if (device == DeviceType.CPU)
            problem = $"{state.Length} bytes, too short for a Mersenne Twister state";
        else if (device == DeviceType.CUDA && state.Length == 16 && BinaryPrimitives.ReadInt64LittleEndian(state.AsSpan(8)) % 4 != 0)
            problem = "a Philox offset that is not a multiple of 4";
        if (problem is not null)
            throw new CheckpointException($"'{path}': {what} is {problem}. Delete it to start over.");
    }

    /// <summary>A new CPU tensor of this shape and dtype holding <paramref name="bytes"/> (its raw contents).</summary>
    private static Tensor FromBytes(byte[] bytes, long[] shape, ScalarType dtype)
    {
        var t = torch.empty(shape, dtype).DetachFromDisposeScope();
        bytes.CopyTo(t.bytes);
        return t;
    }
}

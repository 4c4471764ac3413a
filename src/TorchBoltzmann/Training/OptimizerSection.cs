using TorchBoltzmann.IO;
using TorchSharp.Modules;

namespace TorchBoltzmann.Training;

/// <summary>
/// Checks an optimizer's state in TorchSharp's format (what <c>save_state_dict</c> writes) against the optimizer that is
/// to read it, before TorchSharp does: TorchSharp trusts the numbers it reads and allocates a state tensor of whatever
/// dtype and shape they give (an overwritten byte made it build a ComplexHalf tensor and ended the process).
/// </summary>
/// <remarks>
/// Layout (TorchSharp 0.107, <c>OptimizerHelper.save_state_dict</c>): the optimizer's type name (a BinaryWriter string),
/// LEB128 number of parameter groups, LEB128 number of parameter states, each group's options, each state. Known here:
/// <see cref="SGD"/> (options: initial and current learning rate, momentum, dampening, weight decay as doubles, nesterov
/// and maximize as bools; state: a bool, then when true the momentum buffer, a tensor of its parameter's dtype and shape)
/// and <see cref="ConjugateGradient"/> (options: the two learning rates; no state). Other optimizers' sections are read
/// by TorchSharp unchecked.
/// </remarks>
internal static class OptimizerSection
{
    /// <summary>Checks <paramref name="bytes"/> (the whole section, to the end of the file) for <paramref name="optimizer"/>.</summary>
    /// <exception cref="InvalidDataException">The first difference, with its byte offset.</exception>
    internal static void Check(ReadOnlySpan<byte> bytes, OptimizerHelper optimizer)
    {
        (int optionBytes, bool stateTensor) = optimizer switch
        {
            SGD => (5 * sizeof(double) + 2 * sizeof(bool), true),
            ConjugateGradient => (2 * sizeof(double), false),
            _ => (-1, false),
        };
        if (optionBytes < 0) return;

        int at = 0;
        string name = StateDictFormat.ReadString(bytes, ref at, "the optimizer's name");
        if (name != optimizer.GetType().Name)
            throw new InvalidDataException($"expected the state of a {optimizer.GetType().Name} optimizer, got '{name}'");
        int groups = optimizer.ParamGroups.Count();
        var parameters = optimizer.parameters().ToList();   // in group order, as state_dict() lists the states
        long groupCount = StateDictFormat.ReadLeb128(bytes, ref at, "the number of parameter groups");
        long stateCount = StateDictFormat.ReadLeb128(bytes, ref at, "the number of parameter states");
        if (groupCount != groups || stateCount != parameters.Count)
            throw new InvalidDataException($"expected {groups} parameter group(s) and {parameters.Count} state(s), got {groupCount} and {stateCount}");
        if (bytes.Length - at < (long)groupCount * optionBytes)
            throw new InvalidDataException($"the parameter groups' options end beyond the file (truncated)");
        at += (int)groupCount * optionBytes;
        if (stateTensor)
        {
            for (int i = 0; i < parameters.Count; i++)
            {
                if (at >= bytes.Length) throw new InvalidDataException($"the file ends before the state of parameter {i} (truncated)");
                if (bytes[at++] != 0) StateDictFormat.CheckTensor(bytes, ref at, parameters[i], $"the state tensor of parameter {i}");
            }
        }
        if (at != bytes.Length)
            throw new InvalidDataException($"expected the end of the optimizer's state at byte {at}, got {bytes.Length - at} more byte(s)");
    }
}

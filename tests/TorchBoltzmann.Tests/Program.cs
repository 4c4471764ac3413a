using TorchBoltzmann.Tests.IO;

namespace TorchBoltzmann.Tests;

/// <summary>
/// The test assembly's entry point, in place of the test SDK's empty one: the test runner never calls it; tests start
/// <c>dotnet exec TorchBoltzmann.Tests.dll COMMAND …</c> to run a helper in a process they can kill.
/// </summary>
public static class Program
{
    /// <summary>Runs the helper <paramref name="args"/>[0] names; 2 for an unknown one.</summary>
    public static int Main(string[] args)
    {
        if (args.Length == 3 && args[0] == CheckpointSaveChild.Command) return CheckpointSaveChild.Run(args[1..]);
        Console.Error.WriteLine($"usage: TorchBoltzmann.Tests {CheckpointSaveChild.Command} DIR N");
        return 2;
    }
}

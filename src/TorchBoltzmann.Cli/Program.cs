using System.CommandLine;
using TorchBoltzmann;
using TorchBoltzmann.Cli.Commands;

// tbm: a thin command-line shell over the TorchBoltzmann library.
NativeAllocator.Tune();   // reuse tensor buffers instead of returning them to the OS every batch (see NativeAllocator)

var root = new RootCommand("TorchBoltzmann: restricted Boltzmann machines and deep belief networks on TorchSharp.")
{
    MnistCommand.Create(),
    TrainRbmCommand.Create(),
    PyTorchCommands.Export(), PyTorchCommands.Import(),
    CommonOptions.Verbose,
};
return await root.Parse(args).InvokeAsync();

using System.CommandLine;
using TorchBoltzmann;
using TorchBoltzmann.Cli.Commands;

// tbm: a thin command-line shell over the TorchBoltzmann library.
// Ctrl+C and SIGTERM first: they must reach the command however early they come (see Interrupt).
Interrupt.Install();
CommonOptions.Arguments = args;
Spectre.Console.AnsiConsole.Console = Terminal.Out;   // any output not sent through Terminal follows the same rules
NativeAllocator.Tune();   // reuse tensor buffers instead of returning them to the OS every batch (see NativeAllocator)

var root = new RootCommand("TorchBoltzmann: restricted Boltzmann machines and deep belief networks on TorchSharp. " +
                           $"Default outputs go to {CommonOptions.RunsDirectory}/ (ignored by git). Exit codes: 0 done, 1 error, " +
                           $"{ExitCodes.UselessModel} trained but no better than guessing (see the warning), {ExitCodes.Interrupted} interrupted by Ctrl+C or SIGTERM.")
{
    MnistCommand.Create(),
    TrainRbmCommand.Create(),
    EvaluateCommand.Create(),
    DbnUpDownCommand.Create(),
    PyTorchCommands.Export(), PyTorchCommands.Import(),
    BoltzmannCommands.Train(), BoltzmannCommands.Anneal(),
    DbmCommand.Create(),
    MnistX10Command.Create(),
    CommonOptions.Verbose,
};
var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    // One line per error on stderr, in the command line's words (not "as expected type 'System.Int32'").
    foreach (var error in parsed.Errors)
    {
        var option = error.SymbolResult switch
        {
            System.CommandLine.Parsing.OptionResult o => o.Option.Name,
            System.CommandLine.Parsing.ArgumentResult { Parent: System.CommandLine.Parsing.OptionResult o } => o.Option.Name,
            _ => null,
        };
        Terminal.Error(OptionFlags.ParseError(error.Message, option));
    }
    var command = parsed.CommandResult.Command;
    Terminal.Notice($"('tbm{(command is RootCommand ? "" : " " + command.Name)} --help' lists the {(command is RootCommand ? "commands" : "options")}.)");
    return ExitCodes.Error;
}
// The commands get Interrupt's token: System.CommandLine's own Ctrl+C handling (which would end the process after a
// timeout, without the command's cleanup) is off.
return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, Interrupt.Token);

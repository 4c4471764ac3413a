using System.CommandLine;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Spectre.Console;
using TorchBoltzmann.IO;
using TorchBoltzmann.PyTorch;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Cli.Commands;

/// <summary>
/// <c>tbm export</c> and <c>tbm import</c>: a checkpoint (TorchSharp <c>.pt</c> + <c>.json</c> sidecar) to a PyTorch
/// state_dict that <c>torch.load</c> reads (<c>.pth</c> + <c>.pth.json</c>), and back (see <see cref="PyTorchInterchange"/>).
/// </summary>
internal static class PyTorchCommands
{
    /// <summary><c>tbm export MODEL.pt [--to MODEL.pth]</c>.</summary>
    public static Command Export()
    {
        var model = new Argument<string>("checkpoint") { Description = "Checkpoint to export: an RBM, DBN or classifier (.pt with its .json sidecar)" };
        var to = new Option<string?>("--to") { Description = "PyTorch state_dict to write (default: the checkpoint with extension .pth); its metadata goes to FILE.json beside it" };
        var cmd = new Command("export", "Write a checkpoint as a PyTorch state_dict (torch.load reads it) with its metadata sidecar FILE.json.")
        {
            model, to,
        };
        cmd.SetAction(r => RunExport(r.GetValue(model)!, r.GetValue(to)));
        return cmd;
    }

    /// <summary><c>tbm import MODEL.pth [--to MODEL.pt]</c>.</summary>
    public static Command Import()
    {
        var file = new Argument<string>("state-dict") { Description = "PyTorch state_dict (written by torch.save or tbm export), with its metadata sidecar FILE.json" };
        var to = new Option<string?>("--to") { Description = "Checkpoint to write (default: the file with extension .pt; a .json sidecar is written beside it)" };
        var cmd = new Command("import", "Read a PyTorch state_dict and its metadata sidecar FILE.json into a checkpoint (.pt + .json).")
        {
            file, to,
        };
        cmd.SetAction(r => RunImport(r.GetValue(file)!, r.GetValue(to)));
        return cmd;
    }

    private static int RunExport(string checkpoint, string? to) => CommonOptions.Guard(() =>
    {
        var weights = Checkpoint.WeightsPath(checkpoint);
        var target = to ?? Path.ChangeExtension(weights, ".pth");
        RefuseOverwriting(target, weights, Checkpoint.SidecarPath(checkpoint), "--to", "the checkpoint");
        RefuseOverwriting(PyTorchInterchange.SidecarPath(target), weights, Checkpoint.SidecarPath(checkpoint), "--to", "the checkpoint");
        var (module, provenance) = Checkpoint.LoadWithProvenance<nn.Module>(checkpoint);
        using (module)
        {
            var sidecar = PyTorchInterchange.Export(module, target, new { command = "export", exported_from = provenance });
            AnsiConsole.MarkupLine(Markup.Escape(
                $"Wrote {target} ({sidecar["model_type"]}: {string.Join(", ", module.state_dict().Keys)}) and its metadata {PyTorchInterchange.SidecarPath(target)}."));
        }
        return 0;
    });

    private static int RunImport(string file, string? to) => CommonOptions.Guard(() =>
    {
        var weights = Checkpoint.WeightsPath(to ?? file);
        RefuseOverwriting(weights, file, PyTorchInterchange.SidecarPath(file), "--to", "the imported file");
        RefuseOverwriting(Checkpoint.SidecarPath(weights), file, PyTorchInterchange.SidecarPath(file), "--to", "the imported file");
        var (module, metadata) = PyTorchInterchange.ImportWithMetadata(file);
        using (module)
        {
            var from = new JsonObject
            {
                ["file"] = file,
                ["model_type"] = metadata["model_type"]?.DeepClone(),
                ["weights_sha256"] = Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file))).ToLowerInvariant(),
                ["library_version"] = metadata["library_version"]?.DeepClone(),
                ["created_utc"] = metadata["created_utc"]?.DeepClone(),
                ["training"] = metadata["training"]?.DeepClone(),
            };
            Checkpoint.Save(module, weights, new { command = "import", imported_from = from });
            AnsiConsole.MarkupLine(Markup.Escape($"Wrote {weights} ({metadata["model_type"]}) and its sidecar {Checkpoint.SidecarPath(weights)}."));
        }
        return 0;
    });

    /// <summary>An output that would replace one of the input files is refused before anything is read or written.</summary>
    private static void RefuseOverwriting(string output, string input, string inputSidecar, string option, string what)
    {
        var o = Path.GetFullPath(output);
        if (o == Path.GetFullPath(input) || o == Path.GetFullPath(inputSidecar))
            throw new ArgumentException($"{option}: '{output}' would overwrite {what} ('{input}' or its sidecar '{inputSidecar}'); choose another path.");
    }
}

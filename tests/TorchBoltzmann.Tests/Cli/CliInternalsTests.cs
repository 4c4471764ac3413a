using System.CommandLine;
using TorchBoltzmann.Recipes;
using TorchBoltzmann.Cli.Commands;
using TorchBoltzmann.Tests.Data;
using TorchBoltzmann.Training;

namespace TorchBoltzmann.Tests.Cli;

/// <summary>The CLI's pieces in process: the property → flag map, the failure criteria, output checks, device names, quoting.</summary>
public sealed class CliInternalsTests
{
    private static string Message(Action validate, IReadOnlyDictionary<string, string> flags)
    {
        var e = Assert.Throws<CliException>(() => OptionFlags.Validate(validate, flags));
        Assert.Equal(ExitCodes.Error, e.ExitCode);
        return e.Message;
    }

    [Fact]
    public void ValidationErrors_NameTheFlag_InTheCommandLinesWords()
    {
        Assert.Equal("--epochs must be ≥ 0, got -3", Message(new RbmTrainingOptions { Epochs = -3 }.Validate, OptionFlags.TrainRbm));
        Assert.Equal("--lr must be > 0 and finite, got 0", Message(new ClassifierTrainingOptions { LearningRate = 0 }.Validate, OptionFlags.MnistFineTuning));
        Assert.Equal("--lr must be > 0 and finite, got Infinity", Message(new RbmTrainingOptions { LearningRate = double.PositiveInfinity }.Validate, OptionFlags.TrainRbm));
        Assert.Equal("--momentum must be in [0, 1), got 1.5", Message(new ClassifierTrainingOptions { Momentum = 1.5 }.Validate, OptionFlags.MnistFineTuning));
        Assert.Equal("--finetune-epochs must be ≥ 0, got -1", Message(new ClassifierTrainingOptions { Epochs = -1 }.Validate, OptionFlags.MnistFineTuning));
        Assert.Equal("--init-std must be > 0 and finite, got 0",
            Message(() => new DbnPretrainingOptions { InitialWeightStd = 0 }.Validate(2), OptionFlags.MnistPretraining));
        // A message without ParamName: the property names in it become flags.
        Assert.Equal("--momentum-ramp and --dampen-momentum need the SGD optimizer; --optimizer is ConjugateGradient",
            Message(new ClassifierTrainingOptions { Optimizer = FineTuningOptimizer.ConjugateGradient, DampenMomentum = true }.Validate, OptionFlags.MnistFineTuning));
    }

    /// <summary>Every property named in a map exists on its options record, and every flag it names is an option of its command: a rename breaks this test, not the messages.</summary>
    [Fact]
    public void FlagMaps_MatchTheRecordsAndTheCommands()
    {
        var mnist = MnistCommand.Create().Options.Select(o => o.Name).ToHashSet();
        var trainRbm = TrainRbmCommand.Create().Options.Select(o => o.Name).ToHashSet();
        foreach (var (map, record, options) in new (IReadOnlyDictionary<string, string>, Type[], HashSet<string>)[]
                 {
                     (OptionFlags.TrainRbm, [typeof(RbmTrainingOptions)], trainRbm),
                     (OptionFlags.MnistPretraining, [typeof(DbnPretrainingOptions), typeof(RbmTrainingOptions)], mnist),
                     (OptionFlags.MnistFineTuning, [typeof(ClassifierTrainingOptions)], mnist),
                 })
        {
            foreach (var (property, flags) in map)
            {
                Assert.True(record.Any(t => t.GetProperty(property) is not null), $"{property} is not a property of {string.Join(" or ", record.Select(t => t.Name))}");
                foreach (var flag in flags.Split('/'))
                    Assert.True(options.Contains(flag), $"{flag} (for {property}) is not an option of its command");
            }
        }
    }

    [Fact]
    public void TrainRbmFailure_IsClearlyWorseThanTheMeans_OrNoBetterAfterEnoughUpdates()
    {
        Assert.True(TrainRbmCommand.Failed(130.7, 65.5, 40));          // --lr 1000 on MNIST
        Assert.True(TrainRbmCommand.Failed(65.5, 65.4, 100));          // --lr 1: learned nothing in 100 updates
        Assert.True(TrainRbmCommand.Failed(double.NaN, 65, 1));
        Assert.False(TrainRbmCommand.Failed(72.6, 65.1, 5));           // the defaults after 5 updates: short, not failed
        Assert.False(TrainRbmCommand.Failed(31.8, 65.4, 100));         // the defaults after 100 updates
    }

    [Fact]
    public void MnistFailure_IsChanceLevelError_OrALossAboveTwiceAGuesss()
    {
        Assert.True(MnistClassifierRun.Failed(0.887, 2.0));      // 88.7 % validation error (--lr 1e6 on MNIST)
        Assert.True(MnistClassifierRun.Failed(0.80, 3.9e8));     // stuck on two classes with an exploding loss
        Assert.True(MnistClassifierRun.Failed(0.10, double.NaN));
        Assert.False(MnistClassifierRun.Failed(0.80, 2.29));     // one slow epoch: no progress yet, but no failure
        Assert.False(MnistClassifierRun.Failed(0.02, 0.05));
    }

    [Fact]
    public void PrepareOutput_CreatesTheDirectory_LeavesNoProbe_AndRefusesWhatCannotBeWritten()
    {
        using var dir = new TempDirectory();
        string output = Path.Combine(dir.Path, "a", "b", "model.pt");
        Assert.Equal(output, CommonOptions.PrepareOutput("--output", output));
        Assert.True(Directory.Exists(Path.GetDirectoryName(output)));
        Assert.Empty(Directory.GetFileSystemEntries(Path.GetDirectoryName(output)!));

        File.WriteAllText(dir.File("file"), "");
        var e = Assert.Throws<CliException>(() => CommonOptions.PrepareOutput("-o", Path.Combine(dir.File("file"), "model.pt")));
        Assert.StartsWith($"-o {Path.Combine(dir.File("file"), "model.pt")}: cannot write in the directory {dir.File("file")} (", e.Message);
        e = Assert.Throws<CliException>(() => CommonOptions.PrepareOutput("--output", dir.Path));
        Assert.Equal($"--output {dir.Path}: expected a file path such as {Path.Combine(dir.Path, "model.pt")}, got a directory", e.Message);
    }

    [Fact]
    public void ParseDevice_AcceptsCpuAndCudaN_AndRefusesTheRestByName()
    {
        Assert.Equal(TorchSharp.DeviceType.CPU, CommonOptions.ParseDevice("CPU").type);
        foreach (var bad in new[] { "tpu", "cpu:0", "cuda:", "cuda:x", "gpu" })
            Assert.Equal($"--device must be cpu, cuda or cuda:N (N = 0, 1, …), got '{bad}'", Assert.Throws<CliException>(() => CommonOptions.ParseDevice(bad)).Message);
        if (!TorchSharp.torch.cuda.is_available())
            Assert.StartsWith("--device cuda:7: CUDA is not available here", Assert.Throws<CliException>(() => CommonOptions.ParseDevice("cuda:7")).Message);
    }

    [Fact]
    public void ParseErrors_SpeakOfNumbers_NotDotNetTypes()
    {
        Assert.Equal("--epochs: expected a whole number, got 'abc'", OptionFlags.ParseError("Cannot parse argument 'abc' for option '--epochs' as expected type 'System.Int32'."));
        Assert.Equal("--seed: expected a whole number ≥ 0, got '-1'", OptionFlags.ParseError("Cannot parse argument '-1' for option '--seed' as expected type 'System.UInt64'."));
        Assert.Equal("--lr: expected a number, got 'x'", OptionFlags.ParseError("Cannot parse argument 'x' for option '--lr' as expected type 'System.Nullable`1[System.Double]'."));
        Assert.Equal("Argument 'adam' not recognized. Must be one of: 'sgd' 'cg'", OptionFlags.ParseError("Argument 'adam' not recognized. Must be one of:\n\t'sgd'\n\t'cg'"));
        Assert.Equal("--optimizer: expected one of sgd, cg, got 'adam'", OptionFlags.ParseError("Argument 'adam' not recognized. Must be one of:\n\t'sgd'\n\t'cg'", "--optimizer"));
    }

    /// <summary>A run gets NAME-seedS-TIME under --tensorboard; a continued run reopens the newest such directory, and
    /// another seed or name gets its own; a file in the way is an error naming --tensorboard.</summary>
    [Fact]
    public void TensorBoardRun_NamesRunsByNameSeedAndTime_AndAContinuedRunReopensItsNewest()
    {
        using var root = new TempDirectory();
        Directory.CreateDirectory(Path.Combine(root.Path, "quick-seed42-20200101-000000"));
        string first;
        using (var log = TensorBoardRun.Open(root.Path, "quick", 42, continuing: false)!) first = log.RunDirectory;
        Assert.Matches(@"quick-seed42-\d{8}-\d{6}$", first);
        Assert.NotEqual(Path.Combine(root.Path, "quick-seed42-20200101-000000"), first);
        using (var again = TensorBoardRun.Open(root.Path, "quick", 42, continuing: true)!) Assert.Equal(first, again.RunDirectory);
        using (var other = TensorBoardRun.Open(root.Path, "quick", 7, continuing: true)!) Assert.Contains("quick-seed7-", other.RunDirectory);
        Assert.Null(TensorBoardRun.Open(null, "quick", 42, continuing: false));
        File.WriteAllText(Path.Combine(root.Path, "file"), "");
        var ex = Assert.Throws<CliException>(() => TensorBoardRun.Open(Path.Combine(root.Path, "file"), "quick", 42, false));
        Assert.StartsWith("--tensorboard ", ex.Message);
    }

    /// <summary>The mnist help states each preset's value as the preset holds it (read, not restated): changing a preset changes the help.</summary>
    [Fact]
    public void MnistHelp_ReadsThePresetsValues()
    {
        Assert.Equal(string.Join(", ", DbnClassifierPreset.All.Select(kv => $"{kv.Key} {kv.Value.FineTuning.Epochs}")),
                     MnistCommand.PresetValues(p => p.FineTuning.Epochs));
        Assert.Equal("7 in every preset", MnistCommand.PresetValues(_ => 7));
        Assert.Equal("none in every preset", MnistCommand.PresetValues(_ => null));
        var topK = MnistCommand.Create().Options.Single(o => o.Name == "--top-k").Description!;
        int quickTop = DbnClassifierPreset.Quick.Pretraining.ForLayer(DbnClassifierPreset.Quick.LayerSizes.Length - 2).K;
        Assert.Contains($"quick {quickTop}", topK);
    }

    [Fact]
    public void CommandLine_IsQuotedForAPosixShell()
    {
        var saved = CommonOptions.Arguments;
        try
        {
            CommonOptions.Arguments = ["mnist", "--output", "my runs/x.pt", "--lr", "1e-3", "it's", ""];
            Assert.Equal("tbm mnist --output 'my runs/x.pt' --lr 1e-3 'it'\\''s' ''", CommonOptions.CommandLine);
        }
        finally
        {
            CommonOptions.Arguments = saved;
        }
    }
}

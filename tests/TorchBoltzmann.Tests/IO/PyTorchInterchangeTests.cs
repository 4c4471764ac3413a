using System.Collections;
using System.Collections.Specialized;
using System.Diagnostics;
using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchBoltzmann.IO;
using TorchBoltzmann.Modules;
using TorchBoltzmann.PyTorch;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.PyBridge;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.IO;

public sealed class PyTorchInterchangeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tb-pytorch-").FullName;
    private readonly ITestOutputHelper _output;

    public PyTorchInterchangeTests(ITestOutputHelper output) => _output = output;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    /// <summary>Every parameter drawn from N(0, 0.5²), so that biases are not all zero and a swapped tensor shows.</summary>
    private static void Randomize(nn.Module module, ulong seed)
    {
        using var g = new Generator(seed);
        using var _ = torch.no_grad();
        foreach (var p in module.parameters()) p.normal_(0, 0.5, g);
    }

    /// <summary>Same keys in the same order, and every tensor equal in dtype, shape and every byte.</summary>
    private static void AssertSameBits(nn.Module expected, nn.Module actual)
    {
        var e = expected.state_dict();
        var a = actual.state_dict();
        Assert.Equal(e.Keys, a.Keys);
        foreach (var (key, te) in e)
        {
            var ta = a[key];
            Assert.Equal(te.dtype, ta.dtype);
            Assert.Equal(te.shape, ta.shape);
            using var ce = te.detach().cpu().contiguous();
            using var ca = ta.detach().cpu().contiguous();
            Assert.True(ce.bytes.ToArray().AsSpan().SequenceEqual(ca.bytes.ToArray()), $"{key}: the imported bytes differ from the exported ones");
        }
    }

    /// <summary>The exported sidecar equals what the library records for the module, plus the interchange fields.</summary>
    private static void AssertMetadata(nn.Module original, JsonObject metadata, string file)
    {
        var (type, arch) = Checkpoint.Describe(original);
        Assert.Equal(Checkpoint.FormatName, metadata["format"]!.GetValue<string>());
        Assert.Equal(Checkpoint.FormatVersion, metadata["format_version"]!.GetValue<int>());
        Assert.Equal(type, metadata["model_type"]!.GetValue<string>());
        Assert.True(JsonNode.DeepEquals(arch, metadata["architecture"]), $"architecture: expected {arch.ToJsonString()}, got {metadata["architecture"]?.ToJsonString()}");
        Assert.Equal(PyTorchInterchange.WeightsFormat, metadata["weights_format"]!.GetValue<string>());
        Assert.Equal(Path.GetFileName(file), metadata["weights_file"]!.GetValue<string>());
        Assert.Equal(new FileInfo(file).Length, metadata["weights_bytes"]!.GetValue<long>());
        Assert.Equal(TorchBoltzmann.Data.MnistFetcher.ComputeSha256(file), metadata["weights_sha256"]!.GetValue<string>());
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void Rbm_ExportImport_IsBitForBit_AndCarriesTheMetadata(ScalarType dtype)
    {
        using var rbm = TestUtil.RandomRbm(12, 5, seed: 7, dtype: dtype);
        var file = PathOf("rbm.pth");
        var written = PyTorchInterchange.Export(rbm, file, new { epochs = 3, lr = 0.1 });
        Assert.True(File.Exists(PyTorchInterchange.SidecarPath(file)));
        Assert.Equal(file + ".json", PyTorchInterchange.SidecarPath(file));

        var (loaded, metadata) = PyTorchInterchange.ImportWithMetadata<RBM>(file);
        using (loaded)
        {
            AssertSameBits(rbm, loaded);
            Assert.Equal((12, 5, dtype), (loaded.n_visible, loaded.n_hidden, loaded.dtype));
            Assert.Equal("Bernoulli", loaded.visible_units.Name);
            AssertMetadata(rbm, metadata, file);
            Assert.True(JsonNode.DeepEquals(written, metadata));
            Assert.Equal(3, metadata["training"]!["epochs"]!.GetValue<int>());
            using var u = torch.rand(9, 12, dtype: dtype);
            using var v = u.lt(0.5).to(dtype);
            TestUtil.AllClose(rbm.free_energy(v), loaded.free_energy(v), 0, "F(v)");
        }
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void Dbn_ClassConditional_ExportImport_IsBitForBit_AndKeepsUnitTypes()
    {
        using var dbn = boltzmann.DBN(new[] { 12, 8, 6 }, n_classes: 3, dtype: ScalarType.Float32);
        Randomize(dbn, 11);
        var file = PathOf("dbn.pth");
        PyTorchInterchange.Export(dbn, file);

        var (loaded, metadata) = PyTorchInterchange.ImportWithMetadata<DBN>(file);
        using (loaded)
        {
            AssertSameBits(dbn, loaded);
            Assert.Equal(new[] { "layers.0.weight", "layers.0.visible_bias", "layers.0.hidden_bias",
                                 "layers.1.weight", "layers.1.visible_bias", "layers.1.hidden_bias" }, loaded.state_dict().Keys);
            Assert.Equal(dbn.layer_sizes, loaded.layer_sizes);
            Assert.Equal(3, loaded.n_classes);
            Assert.Equal("Bernoulli+Softmax(3)", loaded.top.visible_units.Name);
            Assert.Equal((6L, 11L), (loaded.top.weight.shape[0], loaded.top.weight.shape[1]));
            AssertMetadata(dbn, metadata, file);
            using var x = torch.rand(4, 12);
            TestUtil.AllClose(dbn.forward(x), loaded.forward(x), 0, "DBN up-pass");
        }
    }

    [Fact]
    public void Classifier_ExportImport_IsBitForBit_WithItsLayersAndDropout()
    {
        using var dbn = boltzmann.DBN(new[] { 12, 8, 6 }, dtype: ScalarType.Float32);
        Randomize(dbn, 13);
        using var classifier = DbnClassifier.Build(dbn, n_classes: 4, input_dropout: 0.2, hidden_dropout: 0.5);
        Randomize(classifier, 17);   // as if fine-tuned: the weights no longer equal the DBN's
        var file = PathOf("classifier.pth");
        PyTorchInterchange.Export(classifier, file, new { fine_tuned_epochs = 2 });

        var (loaded, metadata) = PyTorchInterchange.ImportWithMetadata<Sequential>(file);
        using (loaded)
        {
            AssertSameBits(classifier, loaded);
            Assert.Equal(new[] { "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "out.weight", "out.bias" }, loaded.state_dict().Keys);
            Assert.Equal(classifier.named_children().Select(c => c.name), loaded.named_children().Select(c => c.name));
            AssertMetadata(classifier, metadata, file);
            var layers = metadata["architecture"]!["layers"]!.AsArray();
            Assert.Equal(0.2, layers.First(l => l!["name"]!.GetValue<string>() == "dropout_in")!["p"]!.GetValue<double>());
            Assert.Equal(2, metadata["training"]!["fine_tuned_epochs"]!.GetValue<int>());
            classifier.eval();
            loaded.eval();
            using var x = torch.rand(5, 12);
            using var expected = classifier.forward(x);
            using var actual = loaded.forward(x);
            TestUtil.AllClose(expected, actual, 0, "logits");
        }
    }

    [Fact]
    public void ExportedFile_IsATorchSaveZip_OfTheModulesKeys_AndItsSidecarLeavesACheckpointBesideItAlone()
    {
        using var rbm = TestUtil.RandomRbm(6, 4, seed: 5, dtype: ScalarType.Float32);
        Checkpoint.Save(rbm, PathOf("rbm.pt"));
        var checkpointSidecar = File.ReadAllText(PathOf("rbm.json"));
        PyTorchInterchange.Export(rbm, PathOf("rbm.pth"));

        // The checkpoint rbm.pt / rbm.json is untouched and still loads; the export's sidecar is rbm.pth.json.
        Assert.Equal(checkpointSidecar, File.ReadAllText(PathOf("rbm.json")));
        using (var fromCheckpoint = Checkpoint.Load<RBM>(PathOf("rbm.pt"))) AssertSameBits(rbm, fromCheckpoint);
        Assert.True(File.Exists(PathOf("rbm.pth.json")));

        // torch.save's layout: a zip with a version record, data.pkl and one record per tensor.
        using (var zip = ZipFile.OpenRead(PathOf("rbm.pth")))
        {
            var names = zip.Entries.Select(e => e.FullName).ToHashSet();
            Assert.Contains("model/version", names);
            Assert.Contains("model/data.pkl", names);
            Assert.Equal(3, names.Count(n => n.StartsWith("model/data/", StringComparison.Ordinal)));
        }
        using var scope = torch.NewDisposeScope();
        var state = PyTorchUnpickler.UnpickleStateDict(PathOf("rbm.pth"));
        Assert.Equal(new[] { "hidden_bias", "visible_bias", "weight" }, state.Keys.Cast<string>().Order());
        var w = Assert.IsAssignableFrom<Tensor>(state["weight"]);
        Assert.Equal(new long[] { 4, 6 }, w.shape);   // (n_hidden, n_visible): the nn.Linear layout
        Assert.False(w.requires_grad);
    }

    /// <summary>
    /// Export and import (also a refused one) leave no tensor alive beyond what building and disposing the same module
    /// leaves (RBM.reset_parameters' zero_() results: two per RBM with TorchSharp 0.107, counted as the baseline here).
    /// </summary>
    [Fact]
    public void ExportImport_AndARefusedImport_LeaveNoTensorAlive()
    {
        using var rbm = TestUtil.RandomRbm(6, 4, seed: 9, dtype: ScalarType.Float32);
        var file = PathOf("rbm.pth");
        var (type, arch) = Checkpoint.Describe(rbm);
        long building = TestUtil.LiveTensorsAfter(() => { using var m = Checkpoint.Create(type, arch, "test"); });

        Assert.Equal(0, TestUtil.LiveTensorsAfter(() => PyTorchInterchange.Export(rbm, file)));
        Assert.Equal(building, TestUtil.LiveTensorsAfter(() => { using var loaded = PyTorchInterchange.Import(file); }));

        // A refused file: the tensors read from it and the module built for it are released.
        var sidecar = JsonNode.Parse(File.ReadAllText(PyTorchInterchange.SidecarPath(file)))!.AsObject();
        sidecar["architecture"]!["n_hidden"] = 3;
        sidecar.Remove("weights_sha256");
        File.WriteAllText(PyTorchInterchange.SidecarPath(file), sidecar.ToJsonString());
        Assert.Equal(building, TestUtil.LiveTensorsAfter(() => Assert.Throws<CheckpointException>(() => PyTorchInterchange.Import(file))));
    }

    // ---------------------------------------------------------------- refusals

    /// <summary>Writes a state_dict with TorchSharp.PyBridge (as torch.save would) and a sidecar as Python writes it (no hash).</summary>
    private string Crafted(string name, JsonObject architecture, string modelType, params (string key, Tensor value)[] tensors)
    {
        var file = PathOf(name);
        var state = new OrderedDictionary();
        foreach (var (key, value) in tensors) state[key] = value;
        using (var fs = File.Create(file)) PyTorchPickler.PickleStateDict(fs, state);
        var sidecar = new JsonObject
        {
            ["format"] = Checkpoint.FormatName, ["format_version"] = 1, ["model_type"] = modelType, ["architecture"] = architecture,
        };
        File.WriteAllText(PyTorchInterchange.SidecarPath(file), sidecar.ToJsonString());
        return file;
    }

    private static JsonObject RbmArchitecture(int nv, int nh, string dtype = "Float32") => new()
    {
        ["n_visible"] = nv, ["n_hidden"] = nh, ["visible_units"] = "Bernoulli", ["hidden_units"] = "Bernoulli", ["dtype"] = dtype,
    };

    private CheckpointException Refused(string file)
    {
        var e = Assert.Throws<CheckpointException>(() => PyTorchInterchange.Import(file));
        _output.WriteLine(e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains($"'{file}'", e.Message);
        return e;
    }

    [Fact]
    public void AFileWrittenWithoutHash_WithTheRightKeys_IsImported()
    {
        using var scope = torch.NewDisposeScope();
        var w = torch.randn(5, 12);
        var b = torch.randn(12);
        var c = torch.randn(5);
        var file = Crafted("ok.pth", RbmArchitecture(12, 5), "RBM", ("weight", w), ("visible_bias", b), ("hidden_bias", c));
        using var rbm = PyTorchInterchange.Import<RBM>(file);
        Assert.True(rbm.weight.bytes.ToArray().AsSpan().SequenceEqual(w.bytes.ToArray()));
        Assert.True(rbm.visible_bias.bytes.ToArray().AsSpan().SequenceEqual(b.bytes.ToArray()));
        Assert.True(rbm.hidden_bias.bytes.ToArray().AsSpan().SequenceEqual(c.bytes.ToArray()));
    }

    [Fact]
    public void WrongShape_IsRefused_NamingFileKeyExpectedAndGot()
    {
        using var scope = torch.NewDisposeScope();
        var file = Crafted("transposed.pth", RbmArchitecture(12, 5), "RBM",
            ("weight", torch.zeros(12, 5)), ("visible_bias", torch.zeros(12)), ("hidden_bias", torch.zeros(5)));
        var e = Refused(file);
        Assert.Contains("key 'weight'", e.Message);
        Assert.Contains("expected a Float32 tensor of shape (5, 12)", e.Message);
        Assert.Contains("got a Float32 tensor of shape (12, 5)", e.Message);
    }

    [Fact]
    public void WrongDtype_IsRefused_NamingFileKeyExpectedAndGot()
    {
        using var scope = torch.NewDisposeScope();
        var file = Crafted("double.pth", RbmArchitecture(12, 5), "RBM",
            ("weight", torch.zeros(5, 12)), ("visible_bias", torch.zeros(12, dtype: ScalarType.Float64)), ("hidden_bias", torch.zeros(5)));
        var e = Refused(file);
        Assert.Contains("key 'visible_bias': expected a Float32 tensor of shape (12), got a Float64 tensor of shape (12)", e.Message);
    }

    [Fact]
    public void MissingKey_IsRefused_NamingFileKeyExpectedAndGot()
    {
        using var scope = torch.NewDisposeScope();
        var file = Crafted("missing.pth", RbmArchitecture(12, 5), "RBM", ("weight", torch.zeros(5, 12)), ("visible_bias", torch.zeros(12)));
        var e = Refused(file);
        Assert.Contains("key 'hidden_bias': expected a Float32 tensor of shape (5), got no such key (the file has keys visible_bias, weight)", e.Message);
    }

    [Fact]
    public void RenamedOrExtraKey_IsRefused_NamingFileKeyExpectedAndGot()
    {
        using var scope = torch.NewDisposeScope();
        // nn.Linear's names instead of the RBM's: "bias" is not a key of an RBM.
        var renamed = Crafted("linear.pth", RbmArchitecture(12, 5), "RBM", ("weight", torch.zeros(5, 12)), ("bias", torch.zeros(5)));
        var e = Refused(renamed);
        Assert.Contains("key 'visible_bias': expected a Float32 tensor of shape (12), got no such key (the file has keys bias, weight)", e.Message);

        var extra = Crafted("extra.pth", RbmArchitecture(12, 5), "RBM",
            ("weight", torch.zeros(5, 12)), ("visible_bias", torch.zeros(12)), ("hidden_bias", torch.zeros(5)), ("momentum", torch.zeros(5, 12)));
        e = Refused(extra);
        Assert.Contains("key 'momentum': expected no such key (the RBM of the sidecar has keys weight, visible_bias, hidden_bias), got a Float32 tensor of shape (5, 12)", e.Message);
    }

    [Fact]
    public void DbnKeysOfTheWrongLayer_AreRefused_NamingTheLayerKey()
    {
        using var scope = torch.NewDisposeScope();
        var arch = new JsonObject { ["layer_sizes"] = new JsonArray(12, 8, 6), ["n_classes"] = 0, ["dtype"] = "Float32" };
        var file = Crafted("dbn.pth", arch, "DBN",
            ("layers.0.weight", torch.zeros(8, 12)), ("layers.0.visible_bias", torch.zeros(12)), ("layers.0.hidden_bias", torch.zeros(8)),
            ("layers.1.weight", torch.zeros(6, 12)), ("layers.1.visible_bias", torch.zeros(8)), ("layers.1.hidden_bias", torch.zeros(6)));
        var e = Refused(file);
        Assert.Contains("key 'layers.1.weight': expected a Float32 tensor of shape (6, 8), got a Float32 tensor of shape (6, 12)", e.Message);
    }

    [Fact]
    public void MissingSidecar_NotAZip_ReplacedFile_OrAnotherModelType_AreRefusedWithOneLine()
    {
        using var rbm = TestUtil.RandomRbm(6, 4, seed: 1, dtype: ScalarType.Float32);
        var file = PathOf("rbm.pth");
        PyTorchInterchange.Export(rbm, file);

        // Another model type than asked for.
        var wrongType = Assert.Throws<CheckpointException>(() => PyTorchInterchange.Import<DBN>(file));
        Assert.Contains("expected a DBN, got a RBM", wrongType.Message);

        // The weights changed after the export (one byte): the sidecar's hash tells.
        var bytes = File.ReadAllBytes(file);
        bytes[bytes.Length / 2] ^= 0x01;
        File.WriteAllBytes(file, bytes);
        Assert.Contains("does not match its sidecar", Refused(file).Message);
        var sidecar = File.ReadAllText(PyTorchInterchange.SidecarPath(file));

        // Not a zip (e.g. the legacy torch.save format, or a TorchSharp .pt): refused before unpickling.
        File.WriteAllBytes(file, new byte[] { 0x80, 0x02, 0x8a, 0x0a, 1, 2, 3 });
        File.WriteAllText(PyTorchInterchange.SidecarPath(file), sidecar.Replace("\"weights_sha256\"", "\"was_sha256\"").Replace("\"weights_bytes\"", "\"was_bytes\""));
        Assert.Contains("expected a PyTorch state_dict file (a zip archive", Refused(file).Message);

        // A zip that is no state_dict.
        File.Delete(file);
        using (var zip = ZipFile.Open(file, ZipArchiveMode.Create)) zip.CreateEntry("readme.txt");
        Assert.Contains("could not read it", Refused(file).Message);

        // No sidecar.
        using var other = TestUtil.RandomRbm(6, 4, seed: 2, dtype: ScalarType.Float32);
        var otherFile = PathOf("other.pth");
        PyTorchInterchange.Export(other, otherFile);
        File.Delete(PyTorchInterchange.SidecarPath(otherFile));
        var e = Refused(otherFile);
        Assert.Contains("other.pth.json' is missing", e.Message);
    }

    // ---------------------------------------------------------------- real PyTorch

    private static readonly Lazy<string?> PythonTorch = new(() =>
    {
        const string python = "/usr/bin/python3";
        if (!File.Exists(python)) return null;
        try
        {
            var (code, _, _) = Run(python, "-c", "import torch");
            return code == 0 ? python : null;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or TimeoutException) { return null; }
    });

    private static (int code, string stdout, string stderr) Run(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{exe} {string.Join(' ', args)} did not finish in 3 minutes.");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private static string Script => Path.Combine(AppContext.BaseDirectory, "scripts", "pytorch_rbm.py");

    private void Python(params string[] args)
    {
        var (code, stdout, stderr) = Run(PythonTorch.Value!, new[] { Script }.Concat(args).ToArray());
        Assert.True(code == 0, $"python3 {Path.GetFileName(Script)} {string.Join(' ', args)} exited with {code}:\n{stdout}\n{stderr}");
    }

    private static double[][] Rows(JsonNode node) => node.AsArray().Select(r => r!.AsArray().Select(x => x!.GetValue<double>()).ToArray()).ToArray();

    private static Tensor Matrix(double[][] rows, ScalarType dtype)
    {
        using var t = torch.tensor(rows.SelectMany(r => r).ToArray(), new long[] { rows.Length, rows[0].Length }, ScalarType.Float64);
        return t.to(dtype);
    }

    [SkippableFact(DisplayName = "PyTorchInterchangeTests.RealPyTorch_ReadsExportedModels_AndWritesImportableOnes (runs only where python3 with torch is installed)")]
    public void RealPyTorch_ReadsExportedModels_AndWritesImportableOnes()
    {
        Skip.If(PythonTorch.Value is null, "/usr/bin/python3 cannot import torch (Debian: apt-get install python3-torch)");
        Assert.True(File.Exists(Script), $"{Script} was not copied beside the tests");

        foreach (var (dtype, tol) in new[] { (ScalarType.Float64, 1e-12), (ScalarType.Float32, 1e-5) })
        {
            // C# → Python: an exported RBM's free energies by torch.load + plain tensors equal the library's free_energy.
            using var rbm = TestUtil.RandomRbm(20, 7, seed: 23, dtype: dtype);
            var model = PathOf($"rbm-{dtype}.pth");
            PyTorchInterchange.Export(rbm, model);
            using var g = new Generator(29);
            using var u = torch.rand(32, 20, dtype: ScalarType.Float64, generator: g);
            using var v = u.lt(0.5).to(dtype);
            using var f = rbm.free_energy(v);
            var inputs = PathOf($"inputs-{dtype}.json");
            File.WriteAllText(inputs, new JsonObject
            {
                ["v"] = JsonSerializer.SerializeToNode(Rows2(v)),
                ["csharp_free_energy"] = JsonSerializer.SerializeToNode(TestUtil.ToArray(f)),
            }.ToJsonString());
            var outFile = PathOf($"py-{dtype}.json");
            Python("free-energy", model, inputs, outFile);
            var py = JsonNode.Parse(File.ReadAllText(outFile))!;
            var pyF = py["free_energy"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
            var csF = TestUtil.ToArray(f);
            Compare($"C#→PyTorch {dtype} RBM 20×7, 32 inputs (torch {py["torch_version"]})", csF, pyF, tol);

            // Python → C#: a state_dict written by torch.save (with its sidecar) imports and gives torch's free energies.
            var fromPython = PathOf($"py-rbm-{dtype}.pth");
            var expectedFile = PathOf($"py-expected-{dtype}.json");
            Python("random-rbm", fromPython, "15", "6", "31", dtype.ToString(), expectedFile);
            var expected = JsonNode.Parse(File.ReadAllText(expectedFile))!;
            var (imported, metadata) = PyTorchInterchange.ImportWithMetadata<RBM>(fromPython);
            using (imported)
            {
                Assert.Equal((15, 6, dtype), (imported.n_visible, imported.n_hidden, imported.dtype));
                Assert.Equal(31, metadata["training"]!["seed"]!.GetValue<int>());
                using var pv = Matrix(Rows(expected["v"]!), dtype);
                using var pf = imported.free_energy(pv);
                Compare($"PyTorch→C# {dtype} RBM 15×6, 16 inputs", expected["free_energy"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray(),
                        TestUtil.ToArray(pf), tol);

                // And back: the imported RBM exported again is read by Python with the same free energies.
                var again = PathOf($"py-rbm-again-{dtype}.pth");
                PyTorchInterchange.Export(imported, again);
                var againInputs = PathOf($"again-inputs-{dtype}.json");
                File.WriteAllText(againInputs, new JsonObject { ["v"] = expected["v"]!.DeepClone() }.ToJsonString());
                var againOut = PathOf($"again-{dtype}.json");
                Python("free-energy", again, againInputs, againOut);
                var againF = JsonNode.Parse(File.ReadAllText(againOut))!["free_energy"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
                Assert.Equal(expected["free_energy"]!.AsArray().Select(x => x!.GetValue<double>()), againF);   // the same bits, the same torch: equal
            }
        }

        // A fine-tuned classifier: Python rebuilds nn.Sequential from the sidecar, load_state_dict (strict) takes the keys as
        // they are, and its logits equal the library's.
        using var dbn = boltzmann.DBN(new[] { 20, 10, 8 }, dtype: ScalarType.Float64);
        Randomize(dbn, 37);
        using var classifier = DbnClassifier.Build(dbn, n_classes: 3, input_dropout: 0.2, hidden_dropout: 0.5);
        Randomize(classifier, 41);
        classifier.eval();
        var classifierFile = PathOf("classifier.pth");
        PyTorchInterchange.Export(classifier, classifierFile);
        using var x = torch.rand(8, 20, dtype: ScalarType.Float64);
        using var logits = classifier.forward(x);
        var xFile = PathOf("x.json");
        File.WriteAllText(xFile, new JsonObject { ["x"] = JsonSerializer.SerializeToNode(Rows2(x)) }.ToJsonString());
        var logitsFile = PathOf("logits.json");
        Python("logits", classifierFile, xFile, logitsFile);
        var pyLogits = Rows(JsonNode.Parse(File.ReadAllText(logitsFile))!["logits"]!).SelectMany(r => r).ToArray();
        Compare("C#→PyTorch Float64 classifier 20-10-8-3, 8 inputs (logits)", TestUtil.ToArray(logits), pyLogits, 1e-12);

        // …and Python's torch.save(model.state_dict()) of that nn.Sequential (an OrderedDict with _metadata) imports bit for bit.
        var resaved = PathOf("classifier-from-python.pth");
        Python("resave-classifier", classifierFile, resaved);
        using var back = PyTorchInterchange.Import<Sequential>(resaved);
        AssertSameBits(classifier, back);
    }

    private static double[][] Rows2(Tensor m)
    {
        var flat = TestUtil.ToArray(m);
        int cols = (int)m.shape[1];
        return Enumerable.Range(0, (int)m.shape[0]).Select(r => flat.AsSpan(r * cols, cols).ToArray()).ToArray();
    }

    private void Compare(string what, double[] expected, double[] actual, double tol)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxAbs = 0, maxRel = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs(expected[i] - actual[i]);
            maxAbs = Math.Max(maxAbs, d);
            maxRel = Math.Max(maxRel, d / (1 + Math.Abs(expected[i])));
            Assert.True(d <= tol * (1 + Math.Abs(expected[i])), $"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R} (tol {tol})");
        }
        _output.WriteLine($"{what}: {expected.Length} values compared, max |Δ| = {maxAbs:G3}, max |Δ|/(1+|F|) = {maxRel:G3}, e.g. {expected[0]:R} vs {actual[0]:R}");
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests;

public class NativeLoadTests
{
    [Fact]
    public void Torch_Initialises_AndComputes()
    {
        // Fails with TypeInitializationException when libLibTorchSharp.so cannot be loaded (see README troubleshooting).
        using var a = torch.arange(1, 5, dtype: ScalarType.Float32);
        using var s = a.sum();
        Assert.Equal(10f, s.item<float>());
    }

    [SkippableFact(DisplayName = "NativeLoadTests.OutputCopy_OfLibTorchSharp_MarksGlibcxx3432Weak_WhenSystemLacksIt (runs only on Linux whose libstdc++ lacks GLIBCXX_3.4.32, with readelf)")]
    public void OutputCopy_OfLibTorchSharp_MarksGlibcxx3432Weak_WhenSystemLacksIt()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the native fix concerns Linux only");
        var sys = new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6" }
            .FirstOrDefault(File.Exists);
        Skip.If(sys is null, "no system libstdc++ found");
        bool systemHasIt = System.Text.Encoding.ASCII.GetString(File.ReadAllBytes(sys!)).Contains("GLIBCXX_3.4.32\0");
        Skip.If(systemHasIt, $"{sys} provides GLIBCXX_3.4.32: the build leaves libLibTorchSharp.so alone");
        var lib = Directory.GetFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).FirstOrDefault();
        Assert.NotNull(lib);
        Skip.IfNot(File.Exists("/usr/bin/readelf"), "readelf (binutils) not installed");
        var psi = new System.Diagnostics.ProcessStartInfo("/usr/bin/readelf", $"-V \"{lib}\"") { RedirectStandardOutput = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        var line = text.Split('\n').FirstOrDefault(l => l.Contains("Name: GLIBCXX_3.4.32"));
        Assert.NotNull(line);
        Assert.Contains("Flags: WEAK", line);
    }
}

// Smoke check for the folder the notebooks reference: libtorch, the patched libLibTorchSharp and SkiaSharp load
// from here, and the two TorchBoltzmann assemblies are beside them. scripts/run-notebooks runs it before Jupyter so
// that a native-load failure is reported once, plainly, instead of as a failing first cell in every notebook.
using TorchBoltzmann;
using TorchBoltzmann.Visualization;
using static TorchSharp.torch;

var rbm = boltzmann.RBM(4, 3);
using var x = ones(2, 4);
using var f = rbm.free_energy(x);
var png = ImageGrid.EncodeTiles(x, 2, 2);
Console.WriteLine($"NotebookHost ok: {rbm}, F = {f[0].item<float>():F4}, PNG {png.Length} bytes, folder {AppContext.BaseDirectory}");

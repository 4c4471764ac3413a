using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("TorchBoltzmann.Tests")]

namespace TorchBoltzmann.Visualization;
/// <summary>Placeholder.</summary>
public static class Placeholder {}

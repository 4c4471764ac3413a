namespace TorchBoltzmann;
/// <summary>Placeholder.</summary>
public static class Placeholder {}

namespace TorchBoltzmann.Training;

/// <summary>The range rules shared by the options records; each throws <see cref="ArgumentOutOfRangeException"/> naming the option.</summary>
internal static class OptionRules
{
    private static void Require(bool ok, string name, object value, string rule)
    {
        if (!ok) throw new ArgumentOutOfRangeException(name, value, $"{name} must be {rule}.");
    }

    public static void NonNegative(int value, string name) => Require(value >= 0, name, value, "non-negative");
    public static void AtLeastOne(int value, string name) => Require(value >= 1, name, value, "at least 1");
    public static void PositiveFinite(double value, string name) => Require(value > 0 && double.IsFinite(value), name, value, "positive and finite");
    public static void NonNegativeFinite(double value, string name) => Require(value >= 0 && double.IsFinite(value), name, value, "non-negative and finite");
    public static void FractionBelowOne(double value, string name) => Require(value is >= 0 and < 1, name, value, "in [0, 1)");
    public static void Decay(double value, string name) => Require(value is > 0 and <= 1, name, value, "in (0, 1]");

    /// <summary>The rules every mini-batch gradient method shares: epochs ≥ 0, batch size ≥ 1, learning rate &gt; 0.</summary>
    public static void Sgd(int epochs, int batchSize, double learningRate)
    {
        NonNegative(epochs, "Epochs");
        AtLeastOne(batchSize, "BatchSize");
        PositiveFinite(learningRate, "LearningRate");
    }
}

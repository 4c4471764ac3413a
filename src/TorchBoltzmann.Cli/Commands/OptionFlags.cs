using System.Globalization;
using System.Text.RegularExpressions;

namespace TorchBoltzmann.Cli.Commands;

/// <summary>
/// The one place that maps the option records' property names to the command-line flags that set them, and turns the
/// records' validation errors (<see cref="ArgumentOutOfRangeException"/> / <see cref="ArgumentException"/> whose
/// <c>ParamName</c> is the property) into command-line messages: "--epochs must be ≥ 1, got -3".
/// </summary>
internal static partial class OptionFlags
{
    /// <summary><c>train-rbm</c>: the properties of <see cref="Training.RbmTrainingOptions"/> it sets.</summary>
    public static IReadOnlyDictionary<string, string> TrainRbm { get; } = new Dictionary<string, string>
    {
        ["Epochs"] = "--epochs", ["LearningRate"] = "--lr", ["K"] = "--k", ["BatchSize"] = "--batch", ["WeightDecay"] = "--weight-decay", ["ComputeDtype"] = "--compute-dtype",
        ["Tempering"] = "--tempering", ["LearningRateDecay"] = "--lr-decay", ["FinalMomentum"] = "--momentum", ["InitialMomentum"] = "--momentum",
    };

    /// <summary><c>mnist</c>: the properties of <see cref="Training.DbnPretrainingOptions"/> (and its per-layer RBM options) it sets.</summary>
    public static IReadOnlyDictionary<string, string> MnistPretraining { get; } = new Dictionary<string, string>
    {
        ["Epochs"] = "--pretrain-epochs/--top-epochs", ["K"] = "--top-k", ["InitialWeightStd"] = "--init-std",
    };

    /// <summary><c>mnist</c>: the properties of <see cref="Training.ClassifierTrainingOptions"/> it sets.</summary>
    public static IReadOnlyDictionary<string, string> MnistFineTuning { get; } = new Dictionary<string, string>
    {
        ["Epochs"] = "--finetune-epochs", ["ValidationCount"] = "--validation", ["LearningRate"] = "--lr", ["Momentum"] = "--momentum",
        ["InitialMomentum"] = "--initial-momentum", ["MomentumRampEpochs"] = "--momentum-ramp", ["DampenMomentum"] = "--dampen-momentum",
        ["MaxNorm"] = "--max-norm", ["DropoutConvention"] = "--dropout-convention", ["LearningRateDecay"] = "--lr-decay",
        ["WeightDecay"] = "--weight-decay", ["BatchSize"] = "--batch-size", ["Patience"] = "--patience", ["HeadOnlyEpochs"] = "--head-epochs",
        ["AverageDecay"] = "--average", ["Optimizer"] = "--optimizer", ["LineSearches"] = "--line-searches", ["ComputeDtype"] = "--compute-dtype",
    };

    /// <summary><c>mnist</c>: <see cref="MnistFineTuning"/> and the settings of the run itself (<see cref="Recipes.MnistRunRequest"/>).</summary>
    public static IReadOnlyDictionary<string, string> MnistRun { get; } = new Dictionary<string, string>(MnistFineTuning)
    {
        ["Limit"] = "--limit", ["CheckpointEvery"] = "--checkpoint-every", ["PretrainedPath"] = "--pretrained", ["ClassConditional"] = "--class-conditional",
    };

    /// <summary>The records' rule wording, as a command line states it.</summary>
    private static readonly (string Rule, string Cli)[] Rules =
    [
        ("non-negative and finite", "≥ 0 and finite"), ("positive and finite", "> 0 and finite"),
        ("non-negative", "≥ 0"), ("at least 1", "≥ 1"),
    ];

    /// <summary>Runs an option record's <c>Validate</c>, rethrowing its error as a <see cref="CliException"/> that names the flag.</summary>
    public static void Validate(Action validate, IReadOnlyDictionary<string, string> flags)
    {
        try
        {
            validate();
        }
        catch (ArgumentException e)
        {
            throw new CliException(Describe(e, flags), ExitCodes.Error);
        }
    }

    /// <summary>The command-line message for a record's validation error.</summary>
    public static string Describe(ArgumentException e, IReadOnlyDictionary<string, string> flags)
    {
        string raw = e.Message;
        if (e.ParamName is { } param && raw.IndexOf($" (Parameter '{param}')", StringComparison.Ordinal) is var at and >= 0)
            raw = raw[..at];
        raw = raw.TrimEnd('.');
        object? actual = (e as ArgumentOutOfRangeException)?.ActualValue;
        string got = actual is null ? "" : $", got {Format(actual)}";
        if (e.ParamName is { } p && flags.TryGetValue(p, out var flag))
        {
            if (raw.StartsWith(p + " must be ", StringComparison.Ordinal))
            {
                string rule = raw[(p.Length + " must be ".Length)..];
                foreach (var (r, c) in Rules)
                {
                    if (rule == r) { rule = c; break; }
                }
                return $"{flag} must be {rule}{got}";
            }
            return $"{flag}: {Rename(raw, flags)}{got}";
        }
        return Rename(raw, flags) + got;
    }

    /// <summary>Replaces the property names of <paramref name="flags"/> that appear as words in <paramref name="text"/> by their flags.</summary>
    private static string Rename(string text, IReadOnlyDictionary<string, string> flags) =>
        Word().Replace(text, m => flags.TryGetValue(m.Value, out var f) ? f : m.Value);

    private static string Format(object value) => value switch
    {
        double d => d.ToString("G", CultureInfo.InvariantCulture),
        float f => f.ToString("G", CultureInfo.InvariantCulture),
        IFormattable x => x.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    /// <summary>
    /// The rows left for training when the last <paramref name="validation"/> of <paramref name="loaded"/> training digits
    /// are held out (<c>--validation N</c>, as <c>train-rbm</c> and <c>evaluate</c> both split them); fails unless at least one is left.
    /// </summary>
    public static long TrainingRows(long loaded, int validation)
    {
        long left = loaded - validation;
        if (left < 1) throw new CliException($"--validation must leave training digits: expected at most {loaded - 1} of the {loaded} loaded, got {validation}");
        return left;
    }

    /// <summary>
    /// The whole numbers of a comma-separated option value ("784,500,1000", "3,6,10"), or null when an entry is not one
    /// (the caller's message names its option and what the entries mean).
    /// </summary>
    /// <param name="text">The option's value.</param>
    /// <param name="styles">What an entry may hold: <see cref="NumberStyles.None"/> digits only; <see cref="NumberStyles.AllowLeadingSign"/> a sign too.</param>
    public static int[]? WholeNumbers(string text, NumberStyles styles = NumberStyles.None)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var values = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], styles, CultureInfo.InvariantCulture, out values[i])) return null;
        return values;
    }

    /// <summary>Fails unless <paramref name="value"/> ≥ <paramref name="min"/>: "--epochs must be ≥ 1, got 0".</summary>
    public static void AtLeast(string flag, long value, long min)
    {
        if (value < min) throw new CliException($"{flag} must be ≥ {min}, got {value}");
    }

    /// <summary>
    /// A System.CommandLine parse error in the command line's words: "Cannot parse argument 'abc' for option '--epochs'
    /// as expected type 'System.Int32'." becomes "--epochs: expected a whole number, got 'abc'", and "Argument 'adam' not
    /// recognized. Must be one of: 'sgd' 'cg'" for <paramref name="option"/> --optimizer becomes "--optimizer: expected
    /// one of sgd, cg, got 'adam'"; others are kept (on one line).
    /// </summary>
    /// <param name="message">The parser's message.</param>
    /// <param name="option">The option the error is about, when the parser knows it.</param>
    public static string ParseError(string message, string? option = null)
    {
        message = string.Join(" ", message.Replace("\r", "").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0));
        if (option is not null && NotRecognized().Match(message) is { Success: true } n)
        {
            var values = n.Groups[2].Value.Split('\'', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(v => v.Length > 0);
            return $"{option}: expected one of {string.Join(", ", values)}, got '{n.Groups[1].Value}'";
        }
        var m = CannotParse().Match(message);
        if (!m.Success) return message;
        string type = m.Groups[3].Value;
        if (type.StartsWith("System.Nullable`1[", StringComparison.Ordinal)) type = type["System.Nullable`1[".Length..^1];
        string kind = type switch
        {
            "System.Int32" or "System.Int64" => "a whole number",
            "System.UInt64" or "System.UInt32" => "a whole number ≥ 0",
            "System.Double" or "System.Single" => "a number",
            "System.Boolean" => "true or false",
            var t => $"a value of type {t}",
        };
        return $"{m.Groups[2].Value}: expected {kind}, got '{m.Groups[1].Value}'";
    }

    [GeneratedRegex(@"^Argument '(.*)' not recognized\. Must be one of: (.*)$")]
    private static partial Regex NotRecognized();

    [GeneratedRegex(@"^Cannot parse argument '(.*)' for option '(.*)' as expected type '([^']*)'\.?$")]
    private static partial Regex CannotParse();

    [GeneratedRegex(@"\b[A-Z][A-Za-z]*\b")]
    private static partial Regex Word();
}

using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Evaluation;

/// <summary>
/// Error rate and confusion matrix of a classifier: error = (1/N) Σ_n [ŷ_n ≠ y_n]; ConfusionMatrix[t, p] counts the
/// examples of true class t predicted as p (rows: truth, columns: prediction).
/// </summary>
public sealed class ClassificationMetrics
{
    private ClassificationMetrics(int[,] confusion, double loss)
    {
        ConfusionMatrix = confusion;
        int n = 0, correct = 0;
        for (int t = 0; t < confusion.GetLength(0); t++)
            for (int p = 0; p < confusion.GetLength(1); p++)
            {
                n += confusion[t, p];
                if (t == p) correct += confusion[t, p];
            }
        Count = n;
        Errors = n - correct;
        MeanLoss = loss;
    }

    /// <summary>Number of examples N.</summary>
    public int Count { get; }
    /// <summary>Number of misclassified examples.</summary>
    public int Errors { get; }
    /// <summary>Errors / N (NaN when N = 0).</summary>
    public double ErrorRate => Count == 0 ? double.NaN : (double)Errors / Count;
    /// <summary>1 − ErrorRate.</summary>
    public double Accuracy => 1 - ErrorRate;
    /// <summary>Mean cross-entropy −log softmax(z)_y when computed from logits (NaN otherwise).</summary>
    public double MeanLoss { get; }
    /// <summary>Counts [true class, predicted class], n_classes × n_classes.</summary>
    public int[,] ConfusionMatrix { get; }
    /// <summary>Number of classes.</summary>
    public int NumClasses => ConfusionMatrix.GetLength(0);

    /// <summary>
    /// Per-class recall (the accuracy on each true class): recall_t = m[t, t] / Σ_k m[t, k], NaN for a class without
    /// examples.
    /// </summary>
    public double[] Recall()
    {
        var recall = new double[NumClasses];
        for (int t = 0; t < NumClasses; t++)
        {
            int n = 0;
            for (int k = 0; k < NumClasses; k++) n += ConfusionMatrix[t, k];
            recall[t] = n == 0 ? double.NaN : (double)ConfusionMatrix[t, t] / n;
        }
        return recall;
    }

    /// <summary>Metrics from predicted and true labels (int64, N each, values in [0, n_classes)).</summary>
    /// <exception cref="ArgumentException">Shapes differ or a label is out of range.</exception>
    public static ClassificationMetrics FromPredictions(Tensor predicted, Tensor labels, int n_classes = 10)
    {
        ArgumentNullException.ThrowIfNull(predicted);
        ArgumentNullException.ThrowIfNull(labels);
        if (n_classes < 1) throw new ArgumentOutOfRangeException(nameof(n_classes), n_classes, "n_classes must be positive.");
        if (predicted.dim() != 1 || labels.dim() != 1 || predicted.shape[0] != labels.shape[0])
            throw new ArgumentException($"expected predictions and labels of the same shape (N), got ({string.Join(", ", predicted.shape)}) and ({string.Join(", ", labels.shape)}).");
        Checks.ClassRange(labels, n_classes, "labels");
        Checks.ClassRange(predicted, n_classes, "predictions");
        return new ClassificationMetrics(Confusion(predicted, labels, n_classes), double.NaN);
    }

    /// <summary>
    /// Evaluates <paramref name="model"/> (logits (B, n_classes)) on (x, labels) in batches under no_grad and in eval mode
    /// (dropout off; the previous training flag is restored): ŷ = argmax_k z_k.
    /// </summary>
    public static ClassificationMetrics Evaluate(nn.Module<Tensor, Tensor> model, Tensor x, Tensor labels, int n_classes = 10, int batch_size = 1000)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(labels);
        if (batch_size < 1) throw new ArgumentOutOfRangeException(nameof(batch_size), batch_size, "batch_size must be positive.");
        if (n_classes < 1) throw new ArgumentOutOfRangeException(nameof(n_classes), n_classes, "n_classes must be positive.");
        if (labels.dim() != 1 || x.dim() < 1 || x.shape[0] != labels.shape[0])
            throw new ArgumentException($"expected inputs (N, …) and labels (N), got ({string.Join(", ", x.shape)}) and ({string.Join(", ", labels.shape)}).");
        Checks.ClassRange(labels, n_classes, "labels");   // before cross_entropy, whose own error names no range
        var p = model.parameters().FirstOrDefault();
        var device = p?.device ?? x.device;
        var dtype = p?.dtype ?? x.dtype;
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var _ = torch.no_grad();
            long n = x.shape[0];
            var counts = new int[n_classes, n_classes];
            double loss = 0;
            for (long s = 0; s < n; s += batch_size)
            {
                using var scope = torch.NewDisposeScope();
                long b = Math.Min(batch_size, n - s);
                var xb = x.narrow(0, s, b).to(dtype, device);
                var yb = labels.narrow(0, s, b).to(ScalarType.Int64, device);
                var z = model.forward(xb);
                if (z.dim() != 2 || z.shape[1] != n_classes)
                    throw new ArgumentException($"model output: expected logits of shape ({b}, {n_classes}), got ({string.Join(", ", z.shape)}).");
                loss += nn.functional.cross_entropy(z, yb, reduction: nn.Reduction.Sum).ToDouble();
                Add(counts, Confusion(z.argmax(1), yb, n_classes));   // labels checked above; argmax over n_classes logits is in range
            }
            return new ClassificationMetrics(counts, n == 0 ? double.NaN : loss / n);
        }
        finally
        {
            model.train(wasTraining);
        }
    }

    private static void Add(int[,] into, int[,] from)
    {
        for (int i = 0; i < into.GetLength(0); i++)
            for (int j = 0; j < into.GetLength(1); j++)
                into[i, j] += from[i, j];
    }

    /// <summary>
    /// Counts m[t, q] = #{i : yᵢ = t, ŷᵢ = q} as one bincount over t·c + q. Callers have checked both in [0, c): an index
    /// outside it would be counted in a wrong cell (or past the end), not reported.
    /// </summary>
    private static int[,] Confusion(Tensor predicted, Tensor labels, int c)
    {
        using var scope = torch.NewDisposeScope();
        var y = labels.to(ScalarType.Int64).cpu();
        var p = predicted.to(ScalarType.Int64).cpu();
        var flat = torch.bincount(y * c + p, minlength: c * c);
        var data = flat.data<long>().ToArray();
        var m = new int[c, c];
        for (int t = 0; t < c; t++)
            for (int q = 0; q < c; q++)
                m[t, q] = (int)data[t * c + q];
        return m;
    }
}

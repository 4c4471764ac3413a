using TorchBoltzmann.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchBoltzmann.Evaluation;

/// <summary>Measures of a DBN as a generator.</summary>
public static class DbnMetrics
{
    /// <summary>
    /// How well a class-conditional DBN draws digits of a chosen class, judged by a classifier. For every class y,
    /// <paramref name="per_class"/> samples x_{y,s} are drawn with the label group clamped to e_y
    /// (<see cref="DBN.generate(int, int, Tensor?, double, Generator?)"/>: <paramref name="burn_in"/> Gibbs steps in the top
    /// RBM from random states, then the down-pass), and <paramref name="classifier"/> (logits over the same classes)
    /// labels them. The result treats the clamped class as the truth:
    /// <code>Accuracy = (1 / (C n)) Σ_y Σ_s [argmax_k z_k(x_{y,s}) = y],   ConfusionMatrix[y, k] = #{s : argmax z(x_{y,s}) = k}</code>
    /// and MeanLoss is the classifier's mean cross-entropy −log softmax(z(x_{y,s}))_y. A DBN whose samples ignore the
    /// label scores about 1/C (chance); one whose samples are all recognisable digits of the clamped class scores the
    /// classifier's own accuracy on such digits.
    /// </summary>
    /// <param name="dbn">A class-conditional DBN (<see cref="DBN.is_class_conditional"/>).</param>
    /// <param name="classifier">A model from (B, n_visible) inputs to (B, n_classes) logits, e.g. the DBN's fine-tuned
    /// <see cref="DbnClassifier"/>; evaluated in eval mode, its training flag restored.</param>
    /// <param name="per_class">Samples per class (n ≥ 1); C·n chains run side by side.</param>
    /// <param name="burn_in">Gibbs steps in the top RBM.</param>
    /// <param name="generator">Random generator for the chains.</param>
    /// <exception cref="ArgumentException">The DBN has no label units.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="per_class"/> &lt; 1 or <paramref name="burn_in"/> &lt; 0.</exception>
    public static ClassificationMetrics conditional_sample_metrics(DBN dbn, nn.Module<Tensor, Tensor> classifier, int per_class = 100,
                                                                   int burn_in = 1000, Generator? generator = null)
    {
        var metrics = conditional_sample_metrics(dbn, classifier, out var samples, per_class, burn_in, generator);
        samples.Dispose();
        return metrics;
    }

    /// <summary>
    /// <see cref="conditional_sample_metrics(DBN, nn.Module{Tensor, Tensor}, int, int, Generator?)"/>, handing back the
    /// samples it judged, so that a caller who also wants to look at them draws them once.
    /// </summary>
    /// <param name="dbn">A class-conditional DBN (<see cref="DBN.is_class_conditional"/>).</param>
    /// <param name="classifier">A model from (B, n_visible) inputs to (B, n_classes) logits; evaluated in eval mode.</param>
    /// <param name="samples">The judged samples, (n_classes · per_class, n_visible), class-major: rows y·n … y·n + n − 1 were
    /// drawn for class y. The caller owns (disposes) it; inside an active dispose scope it joins that scope.</param>
    /// <param name="per_class">Samples per class (n ≥ 1).</param>
    /// <param name="burn_in">Gibbs steps in the top RBM.</param>
    /// <param name="generator">Random generator for the chains.</param>
    /// <exception cref="ArgumentException">The DBN has no label units.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="per_class"/> &lt; 1 or <paramref name="burn_in"/> &lt; 0.</exception>
    public static ClassificationMetrics conditional_sample_metrics(DBN dbn, nn.Module<Tensor, Tensor> classifier, out Tensor samples,
                                                                   int per_class = 100, int burn_in = 1000, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(dbn);
        ArgumentNullException.ThrowIfNull(classifier);
        if (!dbn.is_class_conditional)
            throw new ArgumentException("dbn: expected a class-conditional DBN (label units in its top RBM), got one with n_classes = 0.", nameof(dbn));
        if (per_class < 1) throw new ArgumentOutOfRangeException(nameof(per_class), per_class, "per_class must be at least 1.");
        using var scope = torch.NewDisposeScope();
        var labels = torch.arange(dbn.n_classes, dtype: ScalarType.Int64, device: dbn.device).repeat_interleave(per_class);
        var drawn = dbn.generate(dbn.n_classes * per_class, burn_in, labels, generator: generator);
        var metrics = ClassificationMetrics.Evaluate(classifier, drawn, labels, dbn.n_classes);
        samples = drawn.MoveToOuterDisposeScope();
        return metrics;
    }
}

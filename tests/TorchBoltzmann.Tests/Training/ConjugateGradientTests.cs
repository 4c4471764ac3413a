using TorchBoltzmann.Recipes;
using TorchBoltzmann.Modules;
using TorchBoltzmann.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchBoltzmann.Tests.Training;

public sealed class ConjugateGradientTests
{
    /// <summary>f(x) = ½ xᵀAx − bᵀx with A symmetric positive definite (eigenvalues 1…10), float64; minimiser A⁻¹b.</summary>
    private sealed class Quadratic : IDisposable
    {
        public readonly Tensor A, B;
        public readonly Parameter X;
        public Quadratic(int n, ulong seed)
        {
            using var g = new Generator(seed);
            using var m = torch.randn(n, n, dtype: ScalarType.Float64, generator: g);
            var (q, _) = torch.linalg.qr(m);
            using var qq = q;
            using var eig = torch.linspace(1, 10, n, dtype: ScalarType.Float64);
            A = qq.mm(torch.diag(eig)).mm(qq.t());
            B = torch.randn(n, dtype: ScalarType.Float64, generator: g);
            X = new Parameter(torch.zeros(n, dtype: ScalarType.Float64));
        }
        public Tensor Loss(Tensor x) => 0.5 * x.dot(A.mv(x)) - B.dot(x);
        public Tensor Closure()
        {
            X.grad?.zero_();
            var f = Loss(X);
            f.backward();
            return f;
        }
        public Tensor Solution => torch.linalg.solve(A, B);
        public void Dispose() { A.Dispose(); B.Dispose(); X.Dispose(); }
    }

    [Fact]
    public void FineTuning_WithConjugateGradients_LeavesNoTensorAlive_HoweverManyEvaluations()
    {
        // Fitted batches make the line searches evaluate many times per step (as in late hinton2006 epochs); every
        // evaluation's tensors must die in a dispose scope, not wait for the garbage collector.
        using var g = new Generator(3);
        using var x = torch.rand(300, 20, generator: g);
        using var y = torch.randint(0, 3, 300, generator: g);
        using var model = nn.Sequential(("fc1", nn.Linear(20, 16)), ("s", nn.Sigmoid()), ("out", nn.Linear(16, 3)));
        var options = new ClassifierTrainingOptions
        {
            Optimizer = FineTuningOptimizer.ConjugateGradient, LineSearches = 3, BatchSize = 100, LearningRate = 1,
            LearningRateDecay = 1, Epochs = 12, ValidationCount = 0, Patience = 0,
        };
        int evaluations = 0;
        long live = TestUtil.LiveTensorsAfter(() =>
        {
            using var tuner = new FineTuner(model, options);
            tuner.Fit(x, y);
            evaluations = ((ConjugateGradient)tuner.Optimizer).LastEvaluations;
        });
        Assert.True(evaluations > 3, $"the last step evaluated {evaluations} times");
        Assert.Equal(0, live);
    }

    [Fact]
    public void Step_OnAQuadratic_ReachesTheMinimiser()
    {
        using var q = new Quadratic(8, 1);
        using var cg = new ConjugateGradient([q.X], lineSearches: 40);
        using var f0 = cg.step(q.Closure);
        Assert.Equal(0.0, f0.ToDouble());                       // the loss at the start, x = 0
        using var solution = q.Solution;
        using var err = (q.X - solution).norm();
        using var scale = solution.norm();
        Assert.True(err.ToDouble() <= 1e-6 * scale.ToDouble(), $"|x − A⁻¹b| = {err.ToDouble():G3} (|A⁻¹b| = {scale.ToDouble():G3})");
        Assert.True(cg.LastEvaluations > 8, $"{cg.LastEvaluations} evaluations");
    }

    [Fact]
    public void OneLineSearch_MovesAlongMinusTheGradient_AndSatisfiesTheStrongWolfeConditions()
    {
        using var q = new Quadratic(6, 2);
        using (torch.no_grad()) q.X.copy_(torch.linspace(-1, 1, 6, dtype: ScalarType.Float64));
        using var x0 = q.X.detach().clone();
        double f0;
        using (var s = torch.NewDisposeScope()) f0 = q.Closure().ToDouble();
        using var g0 = q.X.grad!.clone();
        using var cg = new ConjugateGradient([q.X], lineSearches: 1, sufficientDecrease: 0.01, curvature: 0.5);
        cg.step(q.Closure).Dispose();
        using var dx = q.X.detach() - x0;
        double gg = g0.dot(g0).ToDouble();
        double z = -dx.dot(g0).ToDouble() / gg;                 // x1 = x0 − z g0
        Assert.True(z > 0, $"step length {z}");
        using var onRay = x0 - z * g0;
        TestUtil.AllClose(onRay, q.X.detach(), 1e-12, "x1 lies on the ray x0 − z g0");
        double f1;
        using (var s = torch.NewDisposeScope()) f1 = q.Closure().ToDouble();
        using var g1 = q.X.grad!.clone();
        Assert.True(f1 <= f0 - 0.01 * z * gg, $"sufficient decrease: f1 = {f1}, f0 = {f0}, z = {z}, |g0|² = {gg}");
        Assert.True(Math.Abs(g1.dot(g0).ToDouble()) <= 0.5 * gg, "strong curvature condition |g1·s| ≤ σ|g0·s|");
    }

    [Fact]
    public void Steps_OnRosenbrock_ConvergeToOneOne()
    {
        using var x = new Parameter(torch.tensor(new[] { -1.2, 1.0 }, dtype: ScalarType.Float64));
        Tensor Closure()
        {
            x.grad?.zero_();
            var a = x[0];
            var b = x[1];
            var f = 100 * (b - a * a).pow(2) + (1 - a).pow(2);
            f.backward();
            return f;
        }
        using var cg = new ConjugateGradient([x], lineSearches: 3);
        double first = double.NaN, last = double.NaN;
        for (int i = 0; i < 200; i++)
        {
            using var scope = torch.NewDisposeScope();
            double f = cg.step(Closure).ToDouble();
            if (i == 0) first = f;
            last = f;
        }
        Assert.Equal(24.2, first, 10);                          // f(−1.2, 1) returned by the first step
        var p = TestUtil.ToArray(x.detach());
        Assert.True(Math.Abs(p[0] - 1) < 1e-4 && Math.Abs(p[1] - 1) < 1e-4, $"x = ({p[0]}, {p[1]}), last f = {last}");
    }

    [Fact]
    public void ApproximateWolfe_KeepsMakingProgress_WhenTheLossNoLongerResolvesTheDecrease()
    {
        // Near the minimiser x* the quadratic's excess f − f* is ~1e-6; the closure rounds it up to steps of 1e-4 (its
        // gradient stays exact), as a float32 cross-entropy near zero rounds, plus 1e-9 per evaluation (rounding noise
        // that happens to go up): no trial point shows the decrease the sufficient-decrease condition asks for.
        (int evaluations, double gradientRatio) Run(double tolerance)
        {
            using var q = new Quadratic(6, 4);
            using var solution = q.Solution;
            double fStar;
            using (var s = torch.NewDisposeScope()) fStar = q.Loss(solution).ToDouble();
            using (torch.no_grad()) q.X.copy_(solution + 1e-3 * torch.linspace(-1, 1, 6, dtype: ScalarType.Float64));
            int calls = 0;
            Tensor Closure()
            {
                q.X.grad?.zero_();
                var f = q.Loss(q.X);
                var rounded = f + (((f - fStar) / 1e-4).ceil() * 1e-4 + fStar + 1e-9 * calls++ - f).detach();
                rounded.backward();
                return rounded;
            }
            double GradNorm() { using var s = torch.NewDisposeScope(); Closure(); return q.X.grad!.norm().ToDouble(); }
            double before = GradNorm();
            using var cg = new ConjugateGradient([q.X], lineSearches: 3, valueTolerance: tolerance);
            cg.step(Closure).Dispose();
            return (cg.LastEvaluations, GradNorm() / before);
        }
        var strict = Run(0);
        var approximate = Run(1e-2);
        Assert.True(approximate.gradientRatio < 0.5, $"|∇f| shrank only to {approximate.gradientRatio:P0} with the approximate conditions");
        Assert.True(strict.gradientRatio > 0.99, $"without them the step cannot move (|∇f| at {strict.gradientRatio:P0})");
        Assert.True(approximate.evaluations < strict.evaluations,
            $"evaluations: {approximate.evaluations} with the approximate conditions, {strict.evaluations} without");
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConjugateGradient([new Parameter(torch.zeros(1))], valueTolerance: -1));
    }

    [Fact]
    public void Step_LeavesFrozenParametersAlone_AndNeedsAClosure()
    {
        using var q = new Quadratic(4, 3);
        // A parameter frozen after it got a gradient: its stale .grad must not move it.
        using var frozen = new Parameter(torch.ones(3, dtype: ScalarType.Float64));
        using (var s = torch.NewDisposeScope()) frozen.sum().backward();
        frozen.requires_grad = false;
        using (var stale = frozen.grad) Assert.True(stale is not null, "the frozen parameter keeps a stale gradient");
        using var cg = new ConjugateGradient([q.X, frozen], lineSearches: 5);
        cg.step(q.Closure).Dispose();
        using var ones = torch.ones(3, dtype: ScalarType.Float64);
        TestUtil.AllClose(ones, frozen.detach(), 0, "frozen parameter");
        using var moved = q.X.detach().abs().sum();
        Assert.True(moved.ToDouble() > 0, "the trainable parameter moved");
        var e = Assert.Throws<ArgumentNullException>(() => cg.step());
        Assert.Contains("closure", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConjugateGradient([q.X], lineSearches: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConjugateGradient([q.X], sufficientDecrease: 0.6, curvature: 0.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConjugateGradient([q.X], expectedReduction: double.NaN));
        Assert.Throws<ArgumentException>(() => new ConjugateGradient(Array.Empty<Parameter>()));
    }

    [Fact]
    public void NonFiniteValues_AreTooFar_DuringASearch_AndStopTheStepAtTheStart()
    {
        // f(x) = ½|x − c|² inside |x| < 3, NaN outside: the first trial step (from far below the minimiser) lands outside.
        using var x = new Parameter(torch.zeros(2, dtype: ScalarType.Float64));
        using var c = torch.tensor(new[] { 2.0, 1.0 }, dtype: ScalarType.Float64);
        Tensor Closure()
        {
            x.grad?.zero_();
            var f = 0.5 * (x - c).pow(2).sum();
            f.backward();
            return x.norm().ToDouble() < 3 ? f : f + double.NaN;
        }
        using var cg = new ConjugateGradient([x], lineSearches: 10, expectedReduction: 1000);
        cg.step(Closure).Dispose();
        TestUtil.AllClose(c, x.detach(), 1e-6, "minimiser reached despite NaN beyond the radius");

        // A NaN gradient at the start: the step returns without moving.
        using var y = new Parameter(torch.ones(2, dtype: ScalarType.Float64));
        Tensor NanGradient()
        {
            y.grad?.zero_();
            var f = (y * y).sum();
            f.backward();
            using (torch.no_grad()) y.grad!.fill_(double.NaN);
            return f;
        }
        using var cg2 = new ConjugateGradient([y], lineSearches: 3);
        cg2.step(NanGradient).Dispose();
        using var ones = torch.ones(2, dtype: ScalarType.Float64);
        TestUtil.AllClose(ones, y.detach(), 0, "parameters after a NaN gradient");
        Assert.Equal(1, cg2.LastEvaluations);
    }

    [Fact]
    public void FineTuner_DivergedLoss_StopsBeforeTheStep_WithConjugateGradientsAndLbfgs()
    {
        using var x = torch.randn(40, 5);
        using var y = torch.zeros(40, dtype: ScalarType.Int64);
        foreach (var useLbfgs in new[] { false, true })
        {
            using var clf = DbnClassifier.Build([5, 4], 2);
            // A NaN output bias makes the loss NaN on finite inputs (NaN inputs are refused before training).
            var output = (Linear)clf.named_children().Single(c => c.name == "out").module;
            using (torch.no_grad()) output.bias![0] = torch.tensor(float.NaN);
            using var before = Fc(clf).weight!.detach().clone();
            using var opt = useLbfgs ? optim.LBFGS(clf.parameters(), lr: 1, max_iter: 5) : null;
            using var tuner = new FineTuner(clf, new ClassifierTrainingOptions
            {
                Epochs = 1, BatchSize = 40, ValidationCount = 0, Optimizer = FineTuningOptimizer.ConjugateGradient,
            }, opt);
            var e = Assert.Throws<TrainingDivergedException>(() => tuner.Fit(x, y));
            Assert.Equal(1, e.Epoch);
            TestUtil.AllClose(before, Fc(clf).weight!.detach(), 0, useLbfgs ? "weights after L-BFGS met a NaN loss" : "weights after CG met a NaN loss");
        }
    }

    private static Linear Fc(Sequential s) => (Linear)s.named_children().Single(c => c.name == "fc1").module;

    [Fact]
    public void FineTuner_TrainsWithConjugateGradients_AndWithLbfgs()
    {
        // Two well-separated Gaussian classes in 20 dimensions: a full-batch optimizer should fit them almost perfectly.
        using var g = new Generator(7);
        using var y = torch.arange(400, dtype: ScalarType.Int64).remainder(2);
        using var shift = (y.to(ScalarType.Float32) * 2 - 1).unsqueeze(1) * 0.8;
        using var x = torch.randn(400, 20, generator: g) + shift;
        double Train(Func<Sequential, optim.Optimizer?> optimizer, ClassifierTrainingOptions options)
        {
            using var gen = new Generator(8);
            using var clf = DbnClassifier.Build([20, 16], 2, generator: gen);
            using (torch.no_grad()) foreach (var p in clf.parameters()) p.normal_(0, 0.1, gen);
            using var opt = optimizer(clf);
            using var tuner = new FineTuner(clf, options, opt);
            var history = tuner.Fit(x, y);
            Assert.Equal(options.Epochs, history.Epochs.Count);
            Assert.True(history.Epochs[^1].TrainLoss < 0.5 * history.Epochs[0].TrainLoss,
                $"training loss {history.Epochs[0].TrainLoss:F4} → {history.Epochs[^1].TrainLoss:F4}");
            return tuner.Evaluate(x, y, n_classes: 2).ErrorRate;
        }
        var common = new ClassifierTrainingOptions { Epochs = 6, BatchSize = 400, ValidationCount = 0, LearningRateDecay = 1 };
        double cgError = Train(_ => null, common with { Optimizer = FineTuningOptimizer.ConjugateGradient, LineSearches = 5 });
        double lbfgsError = Train(c => optim.LBFGS(c.parameters(), lr: 1, max_iter: 5), common);
        Assert.True(cgError < 0.05, $"CG training error {cgError:P1}");
        Assert.True(lbfgsError < 0.05, $"L-BFGS training error {lbfgsError:P1}");
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClassifierTrainingOptions { LineSearches = 0 }.Validate());
    }

    [Fact]
    public void FineTuner_RefusesConjugateGradients_OnAModelWithDropout_NamingIt()
    {
        // A mask drawn anew for each of a line search's evaluations would make its loss comparisons noise.
        using var clf = DbnClassifier.Build([20, 16], 2, hidden_dropout: 0.5);
        var cg = new ClassifierTrainingOptions { Optimizer = FineTuningOptimizer.ConjugateGradient, ValidationCount = 0 };
        var e = Assert.Throws<ArgumentException>(() => new FineTuner(clf, cg));
        Assert.Contains("needs a deterministic loss", e.Message);
        var drop = clf.named_modules().First(m => m.module is TorchSharp.Modules.Dropout or TorchBoltzmann.Modules.FastDropout).name;
        Assert.Contains($"'{drop}'", e.Message);
        using var passed = new ConjugateGradient(clf.parameters());
        Assert.Throws<ArgumentException>(() => new FineTuner(clf, new ClassifierTrainingOptions { ValidationCount = 0 }, passed));
        // SGD takes the same model; CG takes it with dropout off (p = 0).
        using (new FineTuner(clf, cg with { Optimizer = FineTuningOptimizer.Sgd })) { }
        using var plain = DbnClassifier.Build([20, 16], 2, hidden_dropout: 0);
        using (new FineTuner(plain, cg)) { }
    }

    [Fact]
    public void Pipeline_RejectsConjugateGradientsWithDropout()
    {
        var preset = DbnClassifierPreset.Dropout with { FineTuning = DbnClassifierPreset.Dropout.FineTuning with { Optimizer = FineTuningOptimizer.ConjugateGradient, MomentumRampEpochs = 0, DampenMomentum = false } };
        using var x = torch.rand(20, 784);
        using var y = torch.zeros(20, dtype: ScalarType.Int64);
        var e = Assert.Throws<ArgumentException>(() => DbnClassifierPipeline.Run(preset, x, y, x, y));
        Assert.Contains("dropout", e.Message);
    }
}

#!/usr/bin/env python3
"""The peers of TorchBoltzmann's side-by-side benchmark (`TorchBoltzmann.Bench --compare`): one column per run.

    python3 bench/peers/peers.py COLUMN --mnist DIR [--threads T] [--limit N]

or `python3 bench/peers/peers.py check` (see check_fused), prints one JSON line {"column", "seconds", "samples", "blas", "threads", "peak_rss_mb", "note"} for ONE epoch of COLUMN
over the first N MNIST training digits (all 60,000 by default). The script times itself: the interpreter's start, the
imports, reading MNIST and a warm-up of 5 batches (BLAS threads started, buffers allocated) are not timed. An import that
fails exits with status 3 and one line on stderr naming the Debian package to install.

Data (as the C# bench): the IDX file train-images-idx3-ubyte read directly, x = pixel / 255 in float32, binarised as
TorchBoltzmann's Binarize.Threshold does, v = 1 where x > 0.5 else 0 (pixel >= 128). The fine-tuning column uses x itself.

Columns (RBM 784x500, batch B = 100, float32, the training digits shuffled every epoch as RbmTrainer does):
  numpy-floor     the five matrix products of a CD-1 step per batch, as the C# GemmEpoch (W: 500x784, h: Bx500):
                  a1 = v0 Wt, a2 = h W, a3 = a2 Wt, g1 = a1t v0, g2 = a3t a2 (numpy on the loaded BLAS)
  torch-floor     the same five products in PyTorch
  torch-cd1       hand-fused CD-1, no autograd, RbmTrainer's direct path and defaults (see cd_epoch)
  torch-cd10      the same with k = 10
  torch-pcd1      the same, persistent chains (PCD-1)
  torch-autograd-cd1  CD-1 as the surrogate loss mean F(v0) - mean F(vk) (F the free energy), backward(), torch.optim.SGD
  torch-finetune  one fine-tuning epoch of 784-500-500-2000-10 (see finetune_epoch)
  sklearn-pcd     sklearn.neural_network.BernoulliRBM(n_components=500, batch_size=100, n_iter=1, learning_rate=0.1): fit
                  (PCD-1, float32 in, no momentum, no weight decay)

Threads: the parent sets OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = T and LD_LIBRARY_PATH to OpenBLAS-OpenMP's directory;
the script calls torch.set_num_threads(T) too and reports the BLAS library it finds mapped in its own address space.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

NV, NH, B = 784, 500, 100
WARMUP_BATCHES = 5
# RbmTrainingOptions' defaults for a first epoch: eta = 0.1, momentum 0.5 (InitialMomentum, epochs 0..4), weight decay
# lambda = 2e-4 on W only, the last visible layer of CD as probabilities (SampleVisible = false), PCD's chains sampled.
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.5, 2e-4
# ClassifierTrainingOptions' defaults as the C# --dropout bench uses them: SGD eta = 0.1, momentum 0.9 (undampened), no
# weight decay, batch 100, every digit trained on (ValidationCount = 0); dropout 0.2 on the input, 0.5 after each hidden layer.
FT_LR, FT_MOMENTUM, FT_SIZES, FT_DROP_IN, FT_DROP_HIDDEN = 0.1, 0.9, (784, 500, 500, 2000), 0.2, 0.5


def need(module, package):
    try:
        return __import__(module)
    except ImportError as e:
        print(f"{package} not installed ({e}): apt-get install {package}; column skipped", file=sys.stderr)
        sys.exit(3)


def read_idx(path, limit):
    """An IDX file of unsigned bytes: magic 0x00000801 (labels: N) or 0x00000803 (images: N, rows, cols), big-endian,
    then the bytes. Images come back as an N x rows*cols uint8 array, labels as N int64."""
    np = need("numpy", "python3-numpy")
    with open(path, "rb") as f:
        magic = int(np.frombuffer(f.read(4), dtype=">i4")[0])
        if magic not in (0x801, 0x803):
            sys.exit(f"{path}: not an IDX1 label or IDX3 image file (magic {magic:#x})")
        dims = [int(d) for d in np.frombuffer(f.read(4 * (magic & 0xFF)), dtype=">i4")]
        n = min(dims[0], limit) if limit else dims[0]
        width = int(np.prod(dims[1:])) if len(dims) > 1 else 1
        data = np.frombuffer(f.read(n * width), dtype=np.uint8)
        return data.reshape(n, width) if magic == 0x803 else data.astype(np.int64)


def read_idx_images(path, limit):
    """IDX3 images as an N x rows*cols uint8 array."""
    return read_idx(path, limit)


def read_idx_labels(path, limit):
    """IDX1 labels as N int64."""
    return read_idx(path, limit)


def blas_loaded():
    """The BLAS libraries mapped into this process (resolved file names), e.g. libopenblasp-r0.3.21.so (openblas-openmp)."""
    names = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            base = os.path.basename(path)
            if any(k in base for k in ("libblas", "libopenblas", "libmkl", "libcblas", "libblis", "libatlas")):
                real = os.path.realpath(path)
                names.add(os.path.basename(real) + f" ({os.path.basename(os.path.dirname(real))})")
    found = ", ".join(sorted(names)) or "no BLAS library mapped"
    if "torch" in sys.modules:   # Debian's torch is built with BLAS_INFO=generic: it calls whatever libblas.so.3 resolves to
        info = [s.split("=", 1)[1] for s in sys.modules["torch"].__config__.show().replace(",", " ").split() if s.startswith("BLAS_INFO=")]
        found += f"; torch BLAS_INFO={info[0] if info else '?'}"
    return found


def batches(n):
    return n // B   # whole batches only, as the C# floor; the trainers also take a short last batch (none for 60,000)


def numpy_floor(v, threads):
    np = need("numpy", "python3-numpy")
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((NH, NV)) * 0.01).astype(np.float32)
    h = rng.random((B, NH), dtype=np.float32)

    def run(nb):
        for b in range(nb):
            v0 = v[b * B:(b + 1) * B]
            a1 = v0 @ w.T      # positive hidden net
            a2 = h @ w         # visible net
            a3 = a2 @ w.T      # negative hidden net
            g1 = a1.T @ v0     # positive statistics
            g2 = a3.T @ a2     # negative statistics
    run(WARMUP_BATCHES)
    t = time.perf_counter()
    run(batches(len(v)))
    return time.perf_counter() - t, "five GEMMs per batch, no sampling or update"


def torch_setup(threads):
    torch = need("torch", "python3-torch")
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    return torch


def torch_floor(v, threads):
    torch = torch_setup(threads)
    v = torch.from_numpy(v)
    w = torch.randn(NH, NV) * 0.01
    h = torch.rand(B, NH)

    def run(nb):
        with torch.no_grad():
            for b in range(nb):
                v0 = v[b * B:(b + 1) * B]
                a1 = v0 @ w.t()
                a2 = h @ w
                a3 = a2 @ w.t()
                g1 = a1.t() @ v0
                g2 = a3.t() @ a2
    run(WARMUP_BATCHES)
    t = time.perf_counter()
    run(batches(len(v)))
    return time.perf_counter() - t, "five GEMMs per batch, no sampling or update"


def cd_epoch(v, threads, k=1, persistent=False):
    """Hand-fused CD-k / PCD-k, RbmTrainer's direct path: per batch v0 (rows gathered by a fresh permutation),
        ph0 = sigmoid(c + v0 Wt);  h ~ Bernoulli(p(h|v));  p(v|h) = sigmoid(b + h W)  (k steps from v0, or from the
        persistent chains; the steps before the last sample v, the last one of CD keeps p(v|h), PCD samples it)
        phk = sigmoid(c + vk Wt)
        uW <- mu uW - ph0t v0 / B + phkt vk / B + lambda W    (two addmm_ calls, the first scaling the old buffer by mu)
        ub <- mu ub + mean vk - mean v0;  uc <- mu uc + mean phk - mean ph0     (addmv_ with a ones vector)
        theta <- theta - eta u
    which is torch.optim.SGD(momentum = mu) on the CD gradient with weight decay lambda on W only."""
    torch = torch_setup(threads)
    data = torch.from_numpy(v)
    n = data.shape[0]
    g = torch.Generator().manual_seed(1)
    W = torch.randn(NH, NV, generator=g) * 0.01
    bv = torch.zeros(NV)
    ch = torch.zeros(NH)
    uW, ub, uc = torch.zeros_like(W), torch.zeros_like(bv), torch.zeros_like(ch)
    ones = torch.ones(B)
    chains = None

    def step(v0):
        nonlocal chains
        ph0 = torch.sigmoid(torch.addmm(ch, v0, W.t()))
        if persistent:
            if chains is None:
                chains = torch.bernoulli(v0, generator=g)   # PCD's chains start at samples of the first batch
            x, hm = chains, torch.sigmoid(torch.addmm(ch, chains, W.t()))
        else:
            x, hm = v0, ph0
        for s in range(k):
            if s > 0:
                hm = torch.sigmoid(torch.addmm(ch, x, W.t()))
            hs = torch.bernoulli(hm, generator=g)
            pv = torch.sigmoid(torch.addmm(bv, hs, W))
            x = torch.bernoulli(pv, generator=g) if (s < k - 1 or persistent) else pv
        if persistent:
            chains = x
        phk = torch.sigmoid(torch.addmm(ch, x, W.t()))
        uW.addmm_(ph0.t(), v0, beta=MOMENTUM, alpha=-1.0 / B)
        uW.addmm_(phk.t(), x, beta=1.0, alpha=1.0 / B)
        uW.add_(W, alpha=WEIGHT_DECAY)
        ub.addmv_(x.t(), ones, beta=MOMENTUM, alpha=1.0 / B).addmv_(v0.t(), ones, alpha=-1.0 / B)
        uc.addmv_(phk.t(), ones, beta=MOMENTUM, alpha=1.0 / B).addmv_(ph0.t(), ones, alpha=-1.0 / B)
        W.add_(uW, alpha=-LR)
        bv.add_(ub, alpha=-LR)
        ch.add_(uc, alpha=-LR)

    def run(nb):
        perm = torch.randperm(n, generator=g)
        with torch.no_grad():
            for b in range(nb):
                step(data.index_select(0, perm[b * B:(b + 1) * B]))
    run(WARMUP_BATCHES)
    t = time.perf_counter()
    run(batches(n))
    name = f"{'PCD' if persistent else 'CD'}-{k}"
    return time.perf_counter() - t, f"{name} hand-fused: eta {LR}, momentum {MOMENTUM}, weight decay {WEIGHT_DECAY} on W"


def autograd_cd1(v, threads):
    """CD-1 through autograd: L = mean F(v0) - mean F(v1), F(v) = -v.b - sum_j softplus(c_j + (v Wt)_j), v1 from one
    Gibbs step under no_grad (p(v|h) kept, as CD's default), then L.backward() and torch.optim.SGD(momentum 0.5) with
    weight decay 2e-4 on W only (a parameter group of its own)."""
    torch = torch_setup(threads)
    F = torch.nn.functional
    data = torch.from_numpy(v)
    n = data.shape[0]
    g = torch.Generator().manual_seed(1)
    W = torch.nn.Parameter(torch.randn(NH, NV, generator=g) * 0.01)
    bv = torch.nn.Parameter(torch.zeros(NV))
    ch = torch.nn.Parameter(torch.zeros(NH))
    opt = torch.optim.SGD([{"params": [W], "weight_decay": WEIGHT_DECAY}, {"params": [bv, ch], "weight_decay": 0.0}],
                          lr=LR, momentum=MOMENTUM)

    def free_energy(x):
        return -(x @ bv) - F.softplus(F.linear(x, W, ch)).sum(1)

    def run(nb):
        perm = torch.randperm(n, generator=g)
        for b in range(nb):
            v0 = data.index_select(0, perm[b * B:(b + 1) * B])
            with torch.no_grad():
                h = torch.bernoulli(torch.sigmoid(F.linear(v0, W, ch)), generator=g)
                v1 = torch.sigmoid(F.linear(h, W.t(), bv))
            opt.zero_grad()
            loss = free_energy(v0).mean() - free_energy(v1).mean()
            loss.backward()
            opt.step()
    run(WARMUP_BATCHES)
    t = time.perf_counter()
    run(batches(n))
    return time.perf_counter() - t, f"CD-1 surrogate loss + backward + optim.SGD: eta {LR}, momentum {MOMENTUM}, weight decay {WEIGHT_DECAY} on W"


def finetune_epoch(x, y, threads):
    """One epoch of nn.Sequential(Dropout(0.2), [Linear, Sigmoid, Dropout(0.5)] x 3, Linear(2000, 10)) on x = pixel/255,
    cross-entropy, torch.optim.SGD(lr 0.1, momentum 0.9), batch 100, shuffled, loss.item() read every batch (as
    FineTuner does for its divergence check): DbnClassifier.Build([784, 500, 500, 2000], 10, 0.2, 0.5) under FineTuner's
    defaults, the configuration of the C# --dropout bench."""
    torch = torch_setup(threads)
    nn = torch.nn
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    n = X.shape[0]
    layers = [nn.Dropout(FT_DROP_IN)]
    for a, b in zip(FT_SIZES, FT_SIZES[1:]):
        layers += [nn.Linear(a, b), nn.Sigmoid(), nn.Dropout(FT_DROP_HIDDEN)]
    model = nn.Sequential(*layers, nn.Linear(FT_SIZES[-1], 10))
    opt = torch.optim.SGD(model.parameters(), lr=FT_LR, momentum=FT_MOMENTUM)
    model.train()

    def run(nb):
        perm = torch.randperm(n)
        for b in range(nb):
            idx = perm[b * B:(b + 1) * B]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(X.index_select(0, idx)), Y.index_select(0, idx))
            loss.backward()
            opt.step()
            if not math.isfinite(loss.item()):
                sys.exit("fine-tuning diverged")
    run(WARMUP_BATCHES)
    t = time.perf_counter()
    run(batches(n))
    return time.perf_counter() - t, "784-500-500-2000-10, dropout 0.2/0.5, SGD eta 0.1 momentum 0.9"


def sklearn_pcd(v, threads):
    np = need("numpy", "python3-numpy")
    need("sklearn", "python3-sklearn")
    from sklearn.neural_network import BernoulliRBM
    warm = BernoulliRBM(n_components=NH, batch_size=B, n_iter=1, learning_rate=LR, random_state=1)
    warm.partial_fit(v[:WARMUP_BATCHES * B])
    rbm = BernoulliRBM(n_components=NH, batch_size=B, n_iter=1, learning_rate=LR, random_state=1)
    t = time.perf_counter()
    rbm.fit(v)
    s = time.perf_counter() - t
    return s, f"BernoulliRBM.fit, PCD-1, eta {LR}, no momentum or weight decay, weights {rbm.components_.dtype}"


def check_fused():
    """The hand-fused update of cd_epoch against autograd on one batch: with mu = 0.5 and zero buffers, uW must equal
    d/dW [mean F(v0) - mean F(v1)] + lambda W, ub and uc the bias gradients (float32 rounding apart). Exits 1 if not."""
    torch = torch_setup(1)
    F = torch.nn.functional
    v0 = (torch.rand(B, NV) > 0.5).float()
    W, bv, ch = torch.randn(NH, NV) * 0.01, torch.randn(NV) * 0.1, torch.randn(NH) * 0.1
    v1 = torch.sigmoid(F.linear(torch.bernoulli(torch.sigmoid(F.linear(v0, W, ch))), W.t(), bv))
    ph0, phk = torch.sigmoid(torch.addmm(ch, v0, W.t())), torch.sigmoid(torch.addmm(ch, v1, W.t()))
    uW, ub, uc, ones = torch.zeros_like(W), torch.zeros(NV), torch.zeros(NH), torch.ones(B)
    uW.addmm_(ph0.t(), v0, beta=MOMENTUM, alpha=-1.0 / B).addmm_(phk.t(), v1, alpha=1.0 / B).add_(W, alpha=WEIGHT_DECAY)
    ub.addmv_(v1.t(), ones, beta=MOMENTUM, alpha=1.0 / B).addmv_(v0.t(), ones, alpha=-1.0 / B)
    uc.addmv_(phk.t(), ones, beta=MOMENTUM, alpha=1.0 / B).addmv_(ph0.t(), ones, alpha=-1.0 / B)
    Wp, bp, cp = (t.clone().requires_grad_() for t in (W, bv, ch))
    fe = lambda x: -(x @ bp) - F.softplus(F.linear(x, Wp, cp)).sum(1)
    (fe(v0).mean() - fe(v1).mean()).backward()
    diffs = [(uW - Wp.grad - WEIGHT_DECAY * W).abs().max().item(), (ub - bp.grad).abs().max().item(), (uc - cp.grad).abs().max().item()]
    print(json.dumps({"check": "hand-fused CD-1 update = autograd gradient", "max_abs_diff_W_b_c": diffs}))
    sys.exit(0 if max(diffs) < 1e-5 else 1)


COLUMNS = {
    "numpy-floor": lambda v, x, y, t: numpy_floor(v, t),
    "torch-floor": lambda v, x, y, t: torch_floor(v, t),
    "torch-cd1": lambda v, x, y, t: cd_epoch(v, t, k=1),
    "torch-cd10": lambda v, x, y, t: cd_epoch(v, t, k=10),
    "torch-pcd1": lambda v, x, y, t: cd_epoch(v, t, k=1, persistent=True),
    "torch-autograd-cd1": lambda v, x, y, t: autograd_cd1(v, t),
    "torch-finetune": lambda v, x, y, t: finetune_epoch(x, y, t),
    "sklearn-pcd": lambda v, x, y, t: sklearn_pcd(v, t),
}


def main():
    if sys.argv[1:] == ["check"]:
        check_fused()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("column", choices=sorted(COLUMNS))
    p.add_argument("--mnist", default=os.environ.get("MNIST_DIR", os.path.expanduser("~/.local/share/torchboltzmann/mnist")))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=0, help="first N training digits (0: all)")
    a = p.parse_args()
    if a.threads < 1:
        sys.exit(f"--threads: expected a positive number, got {a.threads}")
    if a.column.startswith("torch"):
        need("torch", "python3-torch")
    if a.column.startswith("sklearn"):
        need("sklearn", "python3-sklearn")
    np = need("numpy", "python3-numpy")
    pixels = read_idx_images(os.path.join(a.mnist, "train-images-idx3-ubyte"), a.limit)
    x = pixels.astype(np.float32) / np.float32(255)
    v = (x > np.float32(0.5)).astype(np.float32)
    y = read_idx_labels(os.path.join(a.mnist, "train-labels-idx1-ubyte"), a.limit) if a.column == "torch-finetune" else None
    seconds, note = COLUMNS[a.column](v, x, y, a.threads)
    samples = batches(len(v)) * B if a.column != "sklearn-pcd" else len(v)
    print(json.dumps({
        "column": a.column, "seconds": seconds, "samples": samples, "blas": blas_loaded(), "threads": a.threads,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "note": note,
    }))


if __name__ == "__main__":
    main()

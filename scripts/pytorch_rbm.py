#!/usr/bin/env python3
"""Plain-PyTorch reference for TorchBoltzmann's PyTorch interchange (TorchBoltzmann.PyTorch.PyTorchInterchange).

An exported model is two files: MODEL.pth, the state_dict that torch.load reads, and MODEL.pth.json, the library's
checkpoint sidecar (model_type, architecture, unit types, dtype, training record). An RBM's state_dict holds
    weight        W, shape (n_hidden, n_visible)  (the nn.Linear layout)
    visible_bias  b, shape (n_visible)
    hidden_bias   c, shape (n_hidden)
and its free energy (Bernoulli hidden units; visible units Bernoulli or Bernoulli+Softmax(K), whose self-energy is the
same -b.v) is
    F(v) = -b.v - sum_j softplus(c_j + W_j v).

As a module:   W, b, c, meta = load_rbm("rbm.pth");  F = free_energy(W, b, c, v)
               save_rbm("rbm.pth", W, b, c)      # torch.save + the sidecar TorchBoltzmann's import needs
               model = load_classifier("classifier.pth")   # nn.Sequential with the exported weights
From the shell (the cross-check test of the C# suite runs these):
    pytorch_rbm.py free-energy MODEL.pth INPUTS.json OUT.json   # INPUTS.json: {"v": [[...], ...]}
    pytorch_rbm.py logits CLASSIFIER.pth INPUTS.json OUT.json   # {"x": [[...], ...]} -> {"logits": [[...], ...]}
    pytorch_rbm.py random-rbm MODEL.pth N_VISIBLE N_HIDDEN SEED DTYPE OUT.json
        # writes a random RBM with torch.save (+ sidecar) and OUT.json = {"v": inputs, "free_energy": F(inputs)}
    pytorch_rbm.py resave-classifier CLASSIFIER.pth OUT.pth
        # load_classifier, then torch.save(model.state_dict(), OUT.pth) and the sidecar OUT.pth.json
Needs only torch (Debian: apt-get install python3-torch).
"""
import collections
import json
import os
import sys

import torch
import torch.nn.functional as F

# TorchSharp's ScalarType names, as the sidecar's "dtype" writes them.
DTYPES = {"Float32": torch.float32, "Float64": torch.float64, "Float16": torch.float16, "BFloat16": torch.bfloat16}


def read_sidecar(path):
    """The metadata sidecar of an exported file: PATH + '.json'."""
    with open(path + ".json", encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != "torchboltzmann-checkpoint":
        raise ValueError(f"{path}.json: expected format 'torchboltzmann-checkpoint', got {meta.get('format')!r}")
    return meta


def load_rbm(path):
    """(W, b, c, metadata) of an exported RBM, as plain tensors."""
    meta = read_sidecar(path)
    if meta["model_type"] != "RBM":
        raise ValueError(f"{path}: expected an RBM, got a {meta['model_type']}")
    arch = meta["architecture"]
    if arch["hidden_units"] != "Bernoulli" or not arch["visible_units"].startswith("Bernoulli"):
        raise ValueError(f"{path}: free_energy here covers Bernoulli hidden units, got {arch}")
    sd = torch.load(path, map_location="cpu")
    return sd["weight"], sd["visible_bias"], sd["hidden_bias"], meta


def free_energy(W, b, c, v):
    """F(v) = -b.v - sum_j softplus(c_j + W_j v), for v of shape (B, n_visible) or (n_visible)."""
    v = v.to(W.dtype)
    return -(v @ b) - F.softplus(v @ W.T + c).sum(-1)


def save_rbm(path, W, b, c, visible_units="Bernoulli", hidden_units="Bernoulli", training=None):
    """Writes an RBM as TorchBoltzmann's import reads it: torch.save(state_dict) and the sidecar PATH.json."""
    n_hidden, n_visible = W.shape
    assert b.shape == (n_visible,) and c.shape == (n_hidden,) and b.dtype == W.dtype == c.dtype
    dtype = next(name for name, dt in DTYPES.items() if dt == W.dtype)
    state = collections.OrderedDict(
        weight=W.detach().contiguous().clone(), visible_bias=b.detach().contiguous().clone(),
        hidden_bias=c.detach().contiguous().clone())
    torch.save(state, path)
    sidecar = {
        "format": "torchboltzmann-checkpoint", "format_version": 1, "model_type": "RBM",
        "architecture": {"n_visible": n_visible, "n_hidden": n_hidden, "visible_units": visible_units,
                         "hidden_units": hidden_units, "dtype": dtype},
        "weights_format": "pytorch-state-dict", "weights_file": os.path.basename(path),
        "training": training,
    }
    with open(path + ".json", "w", encoding="utf-8") as f:
        json.dump(sidecar, f, indent=2)


def load_classifier(path):
    """An exported classifier (model_type Sequential) as an nn.Sequential with the same child names, in eval mode."""
    meta = read_sidecar(path)
    if meta["model_type"] != "Sequential":
        raise ValueError(f"{path}: expected a Sequential, got a {meta['model_type']}")
    dtype = DTYPES[meta["architecture"]["dtype"]]
    layers = collections.OrderedDict()
    for layer in meta["architecture"]["layers"]:
        kind = layer["type"]
        if kind == "Linear":
            m = torch.nn.Linear(layer["in_features"], layer["out_features"], bias=layer["bias"], dtype=dtype)
        elif kind == "Dropout":
            m = torch.nn.Dropout(layer["p"])
        else:
            m = {"Sigmoid": torch.nn.Sigmoid, "ReLU": torch.nn.ReLU, "Tanh": torch.nn.Tanh}[kind]()
        layers[layer["name"]] = m
    model = torch.nn.Sequential(layers)
    model.load_state_dict(torch.load(path, map_location="cpu"))   # strict: every key and shape must match
    return model.eval()


def save_classifier(path, model, metadata):
    """Writes torch.save(model.state_dict()) and a sidecar with the architecture of METADATA (a classifier's sidecar)."""
    torch.save(model.state_dict(), path)
    sidecar = {key: metadata[key] for key in ("format", "format_version", "model_type", "architecture")}
    sidecar.update(weights_format="pytorch-state-dict", weights_file=os.path.basename(path))
    with open(path + ".json", "w", encoding="utf-8") as f:
        json.dump(sidecar, f, indent=2)


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _write_json(path, obj):
    obj["torch_version"] = torch.__version__
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def main(argv):
    if len(argv) >= 4 and argv[0] == "free-energy":
        W, b, c, _ = load_rbm(argv[1])
        v = torch.tensor(_read_json(argv[2])["v"], dtype=W.dtype)
        with torch.no_grad():
            _write_json(argv[3], {"free_energy": free_energy(W, b, c, v).double().tolist()})
    elif len(argv) >= 4 and argv[0] == "logits":
        model = load_classifier(argv[1])
        x = torch.tensor(_read_json(argv[2])["x"], dtype=next(model.parameters()).dtype)
        with torch.no_grad():
            _write_json(argv[3], {"logits": model(x).double().tolist()})
    elif len(argv) >= 7 and argv[0] == "random-rbm":
        path, nv, nh, seed, dtype, out = argv[1], int(argv[2]), int(argv[3]), int(argv[4]), DTYPES[argv[5]], argv[6]
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(nh, nv, generator=g, dtype=torch.float64).mul(0.5).to(dtype)
        b = torch.randn(nv, generator=g, dtype=torch.float64).mul(0.5).to(dtype)
        c = torch.randn(nh, generator=g, dtype=torch.float64).mul(0.5).to(dtype)
        save_rbm(path, W, b, c, training={"written_by": "scripts/pytorch_rbm.py random-rbm", "seed": seed})
        v = torch.bernoulli(torch.full((16, nv), 0.5, dtype=torch.float64), generator=g).to(dtype)
        with torch.no_grad():
            _write_json(out, {"v": v.double().tolist(), "free_energy": free_energy(W, b, c, v).double().tolist()})
    elif len(argv) >= 3 and argv[0] == "resave-classifier":
        save_classifier(argv[2], load_classifier(argv[1]), read_sidecar(argv[1]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

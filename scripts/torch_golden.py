#!/usr/bin/env python3
"""Golden files for nanolm's tests, computed with PyTorch (CPU is enough).

Writes, next to the tests:

  tests/golden/lm_small.safetensors
      A tiny CS336-style TransformerLM (vocab 61, context 12, d_model 32, 2 layers, 4 heads, d_ff 40,
      RoPE theta 10000): its weights under the CS336 state-dict names, `input_ids` and `targets` (I32, batch 2,
      seq 11), the `logits`, the mean cross-entropy `loss`, and `grad.<name>` (d loss / d weight) for every weight.

  tests/golden/adamw_step.safetensors
      Three AdamW steps (CS336 Algorithm 1: decoupled weight decay after the update, bias correction folded into
      the step size) with global gradient-norm clipping before each step: initial `param.<name>`, the gradients of
      each step `grad.<t>.<name>` (t = 1, 2, 3), and after the last step `param_after.<name>`, `m.<name>`, `v.<name>`.
      Hyper-parameters in the metadata.

All math runs in float64 and is stored as float32, so the files are a reference for float32 implementations rather
than a copy of one float32 rounding order. The model code is the reference architecture:

  - Linear without bias, weight (out_features, in_features), y = x W^T;
  - Embedding lookup; RMSNorm y = x / sqrt(mean(x^2) + 1e-5) * g (computed in at least float32);
  - SwiGLU feed-forward w2(silu(w1 x) * w3 x);
  - RoPE on queries and keys of each head, rotating interleaved pairs (2k, 2k+1) of position i by
    i / theta^(2k / d_head);
  - causal multi-head self-attention softmax(Q K^T / sqrt(d_head) + mask) V, then output_proj;
  - pre-norm blocks x + attn(ln1(x)), then x + ffn(ln2(x)); final ln_final; lm_head.

Run with Debian's torch (`apt-get install python3-torch python3-numpy`):

  /usr/bin/python3 scripts/torch_golden.py

and, to check that weights written by nanolm load into PyTorch with load_state_dict and give the same logits
(the file holds the weights under their CS336 names, `input_ids` as I32 (batch, seq), the `logits` nanolm computed,
and the model config as JSON in the metadata key `config`):

  /usr/bin/python3 scripts/torch_golden.py --check model_and_logits.safetensors [atol]
"""

import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden")
DTYPE = torch.float64

CONFIG = {
    "vocabSize": 61,
    "contextLength": 12,
    "dModel": 32,
    "numLayers": 2,
    "numHeads": 4,
    "dFf": 40,
    "ropeTheta": 10000.0,
}
BATCH, SEQ = 2, 11


# ---------------------------------------------------------------------------------------------------- safetensors


def write_safetensors(path, tensors, metadata):
    """Writes the safetensors layout: u64 LE header length, JSON header padded with spaces to 8 bytes, data."""
    codes = {np.dtype("float32"): "F32", np.dtype("int32"): "I32"}
    header = {"__metadata__": metadata}
    chunks, offset = [], 0
    for name, array in tensors.items():
        array = np.array(array, order="C")  # (ascontiguousarray would turn a scalar into shape [1])
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": codes[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    metadata = header.pop("__metadata__", {})
    types = {"F32": np.float32, "I32": np.int32}
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(blob[8 + n + b : 8 + n + end], dtype=types[e["dtype"]]).reshape(e["shape"])
    return out, metadata


# ---------------------------------------------------------------------------------------------------------- model


class Linear(torch.nn.Module):
    def __init__(self, d_in, d_out, gen):
        super().__init__()
        std = math.sqrt(2.0 / (d_in + d_out))
        w = torch.empty(d_out, d_in, dtype=DTYPE)
        _trunc(w, std, gen)
        self.weight = torch.nn.Parameter(w)

    def forward(self, x):
        return x @ self.weight.T


class Embedding(torch.nn.Module):
    def __init__(self, vocab, d, gen):
        super().__init__()
        w = torch.empty(vocab, d, dtype=DTYPE)
        _trunc(w, 1.0, gen)
        self.weight = torch.nn.Parameter(w)

    def forward(self, ids):
        return self.weight[ids]


class RMSNorm(torch.nn.Module):
    def __init__(self, d, gen, eps=1e-5):
        super().__init__()
        self.eps = eps
        # Gains away from 1 so that a test notices an implementation that ignores them.
        self.weight = torch.nn.Parameter(1.0 + 0.2 * torch.randn(d, dtype=DTYPE, generator=gen))

    def forward(self, x):
        in_dtype = x.dtype
        x = x.to(torch.promote_types(in_dtype, torch.float32))
        rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (x / rms * self.weight).to(in_dtype)


def rope(x, positions, theta):
    """Rotates interleaved pairs (2k, 2k+1) of the last dimension by positions / theta^(2k/d)."""
    d = x.shape[-1]
    k = torch.arange(0, d, 2, dtype=DTYPE)
    angles = positions.to(DTYPE)[:, None] / theta ** (k / d)  # (T, d/2)
    cos, sin = torch.cos(angles), torch.sin(angles)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x_even * cos - x_odd * sin
    out[..., 1::2] = x_even * sin + x_odd * cos
    return out


class Attention(torch.nn.Module):
    def __init__(self, d, heads, theta, gen):
        super().__init__()
        self.heads, self.theta = heads, theta
        self.q_proj, self.k_proj = Linear(d, d, gen), Linear(d, d, gen)
        self.v_proj, self.output_proj = Linear(d, d, gen), Linear(d, d, gen)

    def forward(self, x):
        B, T, d = x.shape
        h, dh = self.heads, d // self.heads
        split = lambda t: t.view(B, T, h, dh).transpose(1, 2)  # (B, h, T, dh)
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        pos = torch.arange(T)
        q, k = rope(q, pos, self.theta), rope(k, pos, self.theta)
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(mask, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v
        return self.output_proj(out.transpose(1, 2).reshape(B, T, d))


class SwiGLU(torch.nn.Module):
    def __init__(self, d, d_ff, gen):
        super().__init__()
        self.w1, self.w2, self.w3 = Linear(d, d_ff, gen), Linear(d_ff, d, gen), Linear(d, d_ff, gen)

    def forward(self, x):
        a = self.w1(x)
        return self.w2(a * torch.sigmoid(a) * self.w3(x))


class Block(torch.nn.Module):
    def __init__(self, c, gen):
        super().__init__()
        d = c["dModel"]
        self.ln1 = RMSNorm(d, gen)
        self.attn = Attention(d, c["numHeads"], c["ropeTheta"], gen)
        self.ln2 = RMSNorm(d, gen)
        self.ffn = SwiGLU(d, c["dFf"], gen)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class TransformerLM(torch.nn.Module):
    def __init__(self, c, gen):
        super().__init__()
        self.token_embeddings = Embedding(c["vocabSize"], c["dModel"], gen)
        self.layers = torch.nn.ModuleList([Block(c, gen) for _ in range(c["numLayers"])])
        self.ln_final = RMSNorm(c["dModel"], gen)
        self.lm_head = Linear(c["dModel"], c["vocabSize"], gen)

    def forward(self, ids):
        x = self.token_embeddings(ids)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.ln_final(x))


def _trunc(w, std, gen):
    """N(0, std^2) truncated at 3 std, by resampling (torch 1.13's trunc_normal_ takes no generator)."""
    with torch.no_grad():
        v = torch.randn(w.shape, dtype=DTYPE, generator=gen) * std
        bad = v.abs() > 3 * std
        while bad.any():
            v[bad] = torch.randn(int(bad.sum()), dtype=DTYPE, generator=gen) * std
            bad = v.abs() > 3 * std
        w.copy_(v)


# ------------------------------------------------------------------------------------------------------- goldens


def lm_golden(path):
    gen = torch.Generator().manual_seed(336)
    model = TransformerLM(CONFIG, gen)
    ids = torch.randint(0, CONFIG["vocabSize"], (BATCH, SEQ + 1), generator=gen)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    logits = model(inputs)
    loss = F.cross_entropy(logits.reshape(-1, CONFIG["vocabSize"]), targets.reshape(-1))
    loss.backward()

    f32 = lambda t: t.detach().to(torch.float32).numpy()
    tensors = {name: f32(p) for name, p in model.named_parameters()}
    tensors["input_ids"] = inputs.to(torch.int32).numpy()
    tensors["targets"] = targets.to(torch.int32).numpy()
    tensors["logits"] = f32(logits)
    tensors["loss"] = f32(loss)
    for name, p in model.named_parameters():
        tensors[f"grad.{name}"] = f32(p.grad)
    meta = {
        "config": json.dumps(CONFIG),
        "batch": str(BATCH),
        "seq": str(SEQ),
        "compute_dtype": "float64",
        "torch": torch.__version__,
        "generator": "scripts/torch_golden.py",
    }
    write_safetensors(path, tensors, meta)

    # Self-check: the stored float32 weights, loaded with load_state_dict, give the stored logits.
    stored, _ = read_safetensors(path)
    again = TransformerLM(CONFIG, torch.Generator().manual_seed(0))
    again.load_state_dict({n: torch.from_numpy(stored[n].astype(np.float64)) for n, _ in again.named_parameters()})
    with torch.no_grad():
        re_logits = again(torch.from_numpy(stored["input_ids"].astype(np.int64)))
    err = (re_logits - torch.from_numpy(stored["logits"].astype(np.float64))).abs().max().item()
    assert err < 1e-4, f"reloaded logits differ by {err}"
    print(f"{path}: loss {loss.item():.6f}, {sum(p.numel() for p in model.parameters())} parameters, "
          f"reload max |dlogit| {err:.2e}, {os.path.getsize(path)} bytes")


def clip_gradients(grads, max_norm):
    """CS336 gradient clipping: scale all gradients by max_norm / (norm + 1e-6) when the global norm exceeds it."""
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
    if norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        grads = {n: g * scale for n, g in grads.items()}
    return grads, norm


def adamw_golden(path):
    gen = torch.Generator().manual_seed(2024)
    shapes = {"layers.0.attn.q_proj.weight": (6, 4), "layers.0.ln1.weight": (4,), "lm_head.weight": (5, 4)}
    hp = {"lr": 0.01, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "max_norm": 2.0, "steps": 3}
    params = {n: torch.randn(s, dtype=DTYPE, generator=gen) for n, s in shapes.items()}
    # Gradient scales chosen so that clipping is active on steps 1 and 3 and not on step 2.
    scales = [1.0, 0.15, 3.0]
    grads = [{n: scales[t] * torch.randn(s, dtype=DTYPE, generator=gen) for n, s in shapes.items()} for t in range(3)]

    # Store the float32 inputs and run the reference on exactly those values.
    f32 = lambda t: t.detach().to(torch.float32).numpy()
    tensors = {f"param.{n}": f32(p) for n, p in params.items()}
    for t, g in enumerate(grads, start=1):
        tensors.update({f"grad.{t}.{n}": f32(x) for n, x in g.items()})
    params = {n: torch.from_numpy(tensors[f"param.{n}"]).to(DTYPE) for n in shapes}
    grads = [{n: torch.from_numpy(tensors[f"grad.{t}.{n}"]).to(DTYPE) for n in shapes} for t in range(1, 4)]

    theta = {n: p.clone() for n, p in params.items()}
    m = {n: torch.zeros_like(p) for n, p in params.items()}
    v = {n: torch.zeros_like(p) for n, p in params.items()}
    norms = []
    for t in range(1, hp["steps"] + 1):
        g, norm = clip_gradients(grads[t - 1], hp["max_norm"])
        norms.append(norm)
        lr_t = hp["lr"] * math.sqrt(1 - hp["beta2"] ** t) / (1 - hp["beta1"] ** t)
        for n in theta:
            m[n] = hp["beta1"] * m[n] + (1 - hp["beta1"]) * g[n]
            v[n] = hp["beta2"] * v[n] + (1 - hp["beta2"]) * g[n] ** 2
            theta[n] = theta[n] - lr_t * m[n] / (torch.sqrt(v[n]) + hp["eps"])
            theta[n] = theta[n] - hp["lr"] * hp["weight_decay"] * theta[n]
    assert norms[0] > hp["max_norm"] and norms[1] < hp["max_norm"] and norms[2] > hp["max_norm"], norms

    # Cross-check against torch.optim.AdamW, which differs only in where eps and the weight decay sit.
    ref = {n: torch.nn.Parameter(p.clone()) for n, p in params.items()}
    opt = torch.optim.AdamW(ref.values(), lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                            weight_decay=hp["weight_decay"])
    for t in range(3):
        for n, p in ref.items():
            p.grad = grads[t][n].clone()
        torch.nn.utils.clip_grad_norm_(ref.values(), hp["max_norm"])
        opt.step()
    diff = max((ref[n] - theta[n]).abs().max().item() for n in theta)
    assert diff < 1e-4, f"differs from torch.optim.AdamW by {diff}"

    for n in shapes:
        tensors[f"param_after.{n}"] = f32(theta[n])
        tensors[f"m.{n}"] = f32(m[n])
        tensors[f"v.{n}"] = f32(v[n])
    meta = {k: repr(float(x)) if k != "steps" else str(x) for k, x in hp.items()}
    meta["grad_norms"] = json.dumps(norms)
    meta["algorithm"] = "CS336 Algorithm 1 (AdamW) with global gradient-norm clipping (eps 1e-6) before each step"
    meta["generator"] = "scripts/torch_golden.py"
    write_safetensors(path, tensors, meta)
    print(f"{path}: grad norms {[round(x, 4) for x in norms]}, max |ours - torch.optim.AdamW| {diff:.2e}, "
          f"{os.path.getsize(path)} bytes")


def check_weights(path, atol):
    """Loads a safetensors file written by nanolm (weights under CS336 names, `input_ids` I32 (B, T), `logits`,
    and the model config as JSON in metadata `config`) into the PyTorch model with load_state_dict, and compares
    logits. Returns the process exit status."""
    stored, meta = read_safetensors(path)
    config = json.loads(meta["config"])
    config = config.get("model", config)
    unsupported = {k: config.get(k) for k in ("norm", "position", "ffn", "parallelLayers", "tieEmbeddings")
                   if config.get(k) not in (None, "pre", "rope", "swiglu", False)}
    if unsupported:
        print(f"{path}: the reference model here is the CS336 default architecture; unsupported variants {unsupported}")
        return 2
    model = TransformerLM(config, torch.Generator().manual_seed(0))
    names = [n for n, _ in model.named_parameters()]
    missing = [n for n in names if n not in stored]
    if missing:
        print(f"{path}: missing weights {missing}")
        return 1
    model.load_state_dict({n: torch.from_numpy(stored[n].astype(np.float64)) for n in names})
    with torch.no_grad():
        logits = model(torch.from_numpy(stored["input_ids"].astype(np.int64)))
    err = (logits - torch.from_numpy(stored["logits"].astype(np.float64))).abs().max().item()
    ok = err <= atol
    print(f"{path}: max |logits(PyTorch) - logits(file)| = {err:.3e} ({'ok' if ok else 'FAIL'}, atol {atol})")
    return 0 if ok else 1


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--check":
        return check_weights(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 1e-4)
    torch.manual_seed(0)
    os.makedirs(OUT_DIR, exist_ok=True)
    lm_golden(os.path.normpath(os.path.join(OUT_DIR, "lm_small.safetensors")))
    adamw_golden(os.path.normpath(os.path.join(OUT_DIR, "adamw_step.safetensors")))


if __name__ == "__main__":
    sys.exit(main())

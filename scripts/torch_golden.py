#!/usr/bin/python3
"""Golden files for tests/model_test.ts: a CS336-style transformer LM in PyTorch, its logits, loss and gradients.

The PyTorch module below has the architecture and parameter names of the CS336 assignment 1 reference
(token_embeddings, layers.{i}.attn.{q,k,v,output}_proj, ln1, ffn.w1/w2/w3, ln2, ln_final, lm_head), with linear
weights stored (out, in), RoPE on interleaved pairs (2k, 2k+1), and the ablation variants of nanolm's model
config (norm pre/post/none, RoPE or NoPE, SwiGLU or SiLU feed-forward, parallel blocks, tied embeddings).

Weights are drawn in float32 from a fixed seed (CS336 initialisation; RMSNorm gains perturbed away from 1 so that
a model ignoring them cannot pass), then the forward and backward run in float64, so the golden values are the
exact function of the stored f32 weights and differences in the test are ours alone. Each file holds:
every weight, `input_ids` and `targets` (I32), `logits`, `loss` (mean cross-entropy, shape ()), and `grad.<name>`
for every parameter (F32), with the model config as JSON in the `__metadata__` entry "config".

The other direction, `--check FILE`: FILE holds weights written by nanolm (the model config as JSON in the
metadata entry "config"), `input_ids` and nanolm's `logits`; the weights are loaded into the PyTorch module with
`load_state_dict(strict=True)` and its logits must match (relative error below 1e-4). Exit status 0 when they do.

Run with Debian's torch (apt-get install -y python3-torch python3-numpy):

    /usr/bin/python3 scripts/torch_golden.py            # writes tests/golden/*.safetensors
    /usr/bin/python3 scripts/torch_golden.py --check weights.safetensors
"""

import json
import math
import os
import struct
import sys

import numpy as np
import torch
from torch import nn


class Linear(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        std = math.sqrt(2.0 / (d_in + d_out))
        self.weight = nn.Parameter(torch.empty(d_out, d_in))
        nn.init.trunc_normal_(self.weight, std=std, a=-3 * std, b=3 * std)

    def forward(self, x):
        return x @ self.weight.T


class Embedding(nn.Module):
    def __init__(self, vocab, d):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab, d))
        nn.init.trunc_normal_(self.weight, std=1.0, a=-3.0, b=3.0)

    def forward(self, ids):
        return self.weight[ids]


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        rms = torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return x / rms * self.weight


def rope(x, positions, theta):
    """Rotates interleaved pairs (x[..., 2k], x[..., 2k+1]) by positions * theta^(-2k/d)."""
    d = x.shape[-1]
    k = torch.arange(d // 2, dtype=torch.float64)
    angles = positions.to(torch.float64)[:, None] * theta ** (-2.0 * k / d)  # (T, d/2)
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)  # (..., T, d/2, 2)
    return out.flatten(-2)


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model, num_heads, theta):
        super().__init__()
        self.num_heads, self.theta = num_heads, theta
        self.q_proj = Linear(d_model, d_model)
        self.k_proj = Linear(d_model, d_model)
        self.v_proj = Linear(d_model, d_model)
        self.output_proj = Linear(d_model, d_model)

    def forward(self, x, positions):
        B, T, D = x.shape
        H = self.num_heads
        heads = lambda t: t.view(B, T, H, D // H).transpose(1, 2)  # (B, H, T, hd)
        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        if self.theta is not None:
            q, k = rope(q, positions, self.theta), rope(k, positions, self.theta)
        scores = q @ k.transpose(-1, -2) / math.sqrt(D // H)  # (B, H, T, T)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
        o = torch.softmax(scores, dim=-1) @ v  # (B, H, T, hd)
        return self.output_proj(o.transpose(1, 2).reshape(B, T, D))


class FeedForward(nn.Module):
    def __init__(self, d_model, d_ff, kind):
        super().__init__()
        self.w1 = Linear(d_model, d_ff)
        self.w2 = Linear(d_ff, d_model)
        if kind == "swiglu":
            self.w3 = Linear(d_model, d_ff)
        self.kind = kind

    def forward(self, x):
        a = torch.nn.functional.silu(self.w1(x))
        return self.w2(a * self.w3(x) if self.kind == "swiglu" else a)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        theta = c["ropeTheta"] if c["position"] == "rope" else None
        self.attn = CausalSelfAttention(c["dModel"], c["numHeads"], theta)
        self.norm, self.parallel = c["norm"], c["parallelLayers"]
        if self.norm != "none":
            self.ln1 = RMSNorm(c["dModel"], c["normEps"])
        self.ffn = FeedForward(c["dModel"], c["dFf"], c["ffn"])
        if self.norm != "none" and not self.parallel:
            self.ln2 = RMSNorm(c["dModel"], c["normEps"])

    def forward(self, x, positions):
        ident = lambda t: t
        ln1 = self.ln1 if self.norm != "none" else ident
        ln2 = self.ln2 if self.norm != "none" and not self.parallel else ident
        if self.parallel:
            if self.norm == "post":
                return ln1(x + self.attn(x, positions) + self.ffn(x))
            h = ln1(x)
            return x + self.attn(h, positions) + self.ffn(h)
        if self.norm == "post":
            h = ln1(x + self.attn(x, positions))
            return ln2(h + self.ffn(h))
        h = x + self.attn(ln1(x), positions)
        return h + self.ffn(ln2(h))


class TransformerLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.token_embeddings = Embedding(c["vocabSize"], c["dModel"])
        self.layers = nn.ModuleList([Block(c) for _ in range(c["numLayers"])])
        if c["norm"] != "none":
            self.ln_final = RMSNorm(c["dModel"], c["normEps"])
        if not c["tieEmbeddings"]:
            self.lm_head = Linear(c["dModel"], c["vocabSize"])

    def forward(self, ids):
        positions = torch.arange(ids.shape[1])
        x = self.token_embeddings(ids)
        for layer in self.layers:
            x = layer(x, positions)
        if self.c["norm"] != "none":
            x = self.ln_final(x)
        if self.c["tieEmbeddings"]:
            return x @ self.token_embeddings.weight.T
        return self.lm_head(x)


def write_safetensors(path, tensors, metadata):
    """Safetensors: u64 little-endian header length, JSON header (padded with spaces to 8 bytes), raw data."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype("float32"): "F32", np.dtype("int32"): "I32"}[arr.dtype]
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path):
    """The tensors (as numpy arrays) and the metadata of a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", {})
    dtypes = {"F32": "<f4", "I32": "<i4", "F64": "<f8", "I64": "<i8"}
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        data = np.frombuffer(raw[8 + n + begin:8 + n + end], dtype=dtypes[info["dtype"]])
        tensors[name] = data.reshape(info["shape"])
    return tensors, metadata


def with_defaults(config):
    return {"normEps": 1e-5, "norm": "pre", "position": "rope", "ffn": "swiglu", "parallelLayers": False,
            "tieEmbeddings": False, **config}


def check(path):
    tensors, metadata = read_safetensors(path)
    c = with_defaults(json.loads(metadata["config"]))
    model = TransformerLM(c)
    ids = torch.from_numpy(tensors.pop("input_ids").astype(np.int64))
    expected = tensors.pop("logits").astype(np.float64)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
    with torch.no_grad():
        logits = model.double()(ids).numpy()
    err = np.abs(logits - expected).max() / np.abs(expected).max()
    print(f"{path}: {len(tensors)} weights loaded strictly, logits {logits.shape}, max error / max |logit| {err:.2e}")
    return 0 if err < 1e-4 else 1


def golden(path, config, batch, seq, seed):
    c = with_defaults(config)
    torch.manual_seed(seed)
    model = TransformerLM(c)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("ln1.weight", "ln2.weight", "ln_final.weight")):
                p.add_(0.2 * torch.randn_like(p))
    ids = torch.randint(0, c["vocabSize"], (batch, seq + 1))
    inputs, targets = ids[:, :-1], ids[:, 1:]
    weights = {name: p.detach().clone() for name, p in model.state_dict().items()}

    model = model.double()
    logits = model(inputs)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, c["vocabSize"]), targets.reshape(-1))
    loss.backward()

    f32 = lambda t: t.detach().to(torch.float32).numpy()
    tensors = {name: w.numpy() for name, w in weights.items()}
    tensors["input_ids"] = inputs.to(torch.int32).numpy()
    tensors["targets"] = targets.to(torch.int32).numpy()
    tensors["logits"] = f32(logits)
    tensors["loss"] = f32(loss)
    for name, p in model.named_parameters():
        tensors[f"grad.{name}"] = f32(p.grad)
    write_safetensors(path, tensors, {"config": json.dumps(c), "torch": torch.__version__, "seed": str(seed)})
    print(f"{path}: {os.path.getsize(path)} bytes, loss {loss.item():.6f}, {len(weights)} weights")


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden")
    os.makedirs(out, exist_ok=True)
    small = {"vocabSize": 61, "contextLength": 12, "dModel": 32, "numLayers": 2, "numHeads": 4, "dFf": 40,
             "ropeTheta": 10000.0}
    golden(os.path.join(out, "lm_small.safetensors"), small, batch=2, seq=11, seed=1234)
    # The ablation variants, each on a smaller model (d_model 16, two heads of 8) to keep the files small.
    tiny = {"vocabSize": 23, "contextLength": 8, "dModel": 16, "numLayers": 2, "numHeads": 2, "dFf": 24,
            "ropeTheta": 10000.0}
    variants = {
        "post_silu_tied_nope": {"norm": "post", "ffn": "silu", "dFf": 64, "tieEmbeddings": True, "position": "none"},
        "parallel_pre": {"parallelLayers": True},
        "norm_none": {"norm": "none"},
        "parallel_post_tied": {"parallelLayers": True, "norm": "post", "tieEmbeddings": True, "ropeTheta": 100.0},
    }
    for i, (name, v) in enumerate(variants.items()):
        golden(os.path.join(out, f"lm_{name}.safetensors"), {**tiny, **v}, batch=2, seq=7, seed=100 + i)
    # Head dim 6 is not a multiple of 4, so nanolm's attention takes its composite path (matmul + masked softmax)
    # instead of the fused kernels; the sequence fills the whole context.
    golden(os.path.join(out, "lm_head_dim_6.safetensors"), {**tiny, "dModel": 12, "dFf": 20}, batch=3, seq=8, seed=200)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    if len(sys.argv) != 1:
        sys.exit(f"usage: {sys.argv[0]} [--check FILE]")
    sys.exit(main())

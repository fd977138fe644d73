"""PyTorch beside bench/find_max.ts: one eager fp32 training step of the CS336-style LM of torch_train_step.py (RoPE,
SwiGLU, RMSNorm pre-norm, untied head, AdamW, grad clip 1.0) at one shape, with its speed and peak GPU memory, or
"out of memory". Takes the shape flags of torch_train_step.py (--vocab --ctx --d-model --layers --heads --d-ff --batch
--steps); --sdpa uses fused attention instead of the eager one. The model is built on the GPU (no host copy of the
weights). Prints one JSON line; find_max.ts prints the command for the largest shape it trained and the smallest
that failed."""
import argparse, json, math, time
import torch, torch.nn as nn, torch.nn.functional as F

ap = argparse.ArgumentParser()
for name, default in [("vocab", 50257), ("ctx", 1024), ("d_model", 1600), ("layers", 48), ("heads", 25), ("d_ff", 6400), ("batch", 1), ("steps", 3)]:
    ap.add_argument("--" + name.replace("_", "-"), type=int, default=default)
ap.add_argument("--sdpa", action="store_true")
a = ap.parse_args()
V, T, D, L, H, FF, BS = a.vocab, a.ctx, a.d_model, a.layers, a.heads, a.d_ff, a.batch
torch.backends.cuda.matmul.allow_tf32 = False; torch.backends.cudnn.allow_tf32 = False

class RMSNorm(nn.Module):
    def __init__(s, d): super().__init__(); s.w = nn.Parameter(torch.ones(d))
    def forward(s, x): return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * s.w

def rope(x, cos, sin):
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1).flatten(-2)

class Block(nn.Module):
    def __init__(s):
        super().__init__(); s.n1, s.n2 = RMSNorm(D), RMSNorm(D)
        s.qkv = nn.Linear(D, 3 * D, bias=False); s.o = nn.Linear(D, D, bias=False)
        s.w1 = nn.Linear(D, FF, bias=False); s.w3 = nn.Linear(D, FF, bias=False); s.w2 = nn.Linear(FF, D, bias=False)
    def forward(s, x, cos, sin):
        B_, T_, _ = x.shape
        q, k, v = s.qkv(s.n1(x)).view(B_, T_, 3, H, D // H).permute(2, 0, 3, 1, 4)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if a.sdpa: y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-1, -2)) / math.sqrt(D // H)
            att = att.masked_fill(torch.triu(torch.ones(T_, T_, device=x.device, dtype=torch.bool), 1), float("-inf"))
            y = att.softmax(-1) @ v
        x = x + s.o(y.transpose(1, 2).reshape(B_, T_, D)); h = s.n2(x)
        return x + s.w2(F.silu(s.w1(h)) * s.w3(h))

class LM(nn.Module):
    def __init__(s):
        super().__init__(); s.emb = nn.Embedding(V, D); s.blocks = nn.ModuleList([Block() for _ in range(L)])
        s.nf = RMSNorm(D); s.head = nn.Linear(D, V, bias=False)
        inv = 1.0 / (10000 ** (torch.arange(0, D // H, 2).float() / (D // H))); f = torch.outer(torch.arange(T).float(), inv)
        s.register_buffer("cos", f.cos()); s.register_buffer("sin", f.sin())
    def forward(s, idx):
        x = s.emb(idx)
        for b in s.blocks: x = b(x, s.cos, s.sin)
        return s.head(s.nf(x))

shape = {"vocab": V, "ctx": T, "d_model": D, "layers": L, "heads": H, "d_ff": FF, "batch": BS}
name = "torch eager fp32" + (" sdpa" if a.sdpa else "")
try:
    torch.manual_seed(0)
    with torch.device("cuda"): m = LM()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.1, betas=(0.9, 0.95))
    n = sum(p.numel() for p in m.parameters())
    x = torch.randint(0, V, (BS, T), device="cuda"); y = torch.randint(0, V, (BS, T), device="cuda")
    def step():
        loss = F.cross_entropy(m(x).view(-1, V), y.view(-1)); opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); return loss
    torch.cuda.reset_peak_memory_stats()
    step(); torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(a.steps): loss = step()
    torch.cuda.synchronize(); dt = (time.perf_counter() - t) / a.steps
    print(json.dumps({"variant": name, "ok": True, "shape": shape, "params": n, "ms_per_step": round(dt * 1e3, 1),
                      "tokens_per_s": round(BS * T / dt), "loss": loss.item(),
                      "max_allocated_bytes": torch.cuda.max_memory_allocated(), "reserved_bytes": torch.cuda.memory_reserved()}))
except torch.cuda.OutOfMemoryError as e:
    print(json.dumps({"variant": name, "ok": False, "shape": shape, "error": "out of memory: " + str(e).split("\n")[0][:200]}))

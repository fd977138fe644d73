"""PyTorch beside `bench/gpu.ts --only "attention bthd"`: causal attention at one shape, forward and forward +
backward, in fp32 without TF32, as fused SDPA (`F.scaled_dot_product_attention`, which picks its fp32 kernel, the
memory-efficient one on sm90) and as the eager composite of torch_train_step.py (scores, mask, softmax, p @ v).
Takes the shape flags of torch_train_step.py (--d-model --heads --ctx --batch; the others are ignored). Times by CUDA
events over --reps calls after warm-up. TFLOP/s counts the causal FLOPs as bench/gpu.ts does: 2 T^2 hd a head
forward, 7 T^2 hd forward + backward. Prints one JSON line per case."""
import argparse, json, math
import torch, torch.nn.functional as F

ap = argparse.ArgumentParser()
for name, default in [("vocab", 10000), ("ctx", 256), ("d_model", 512), ("layers", 4), ("heads", 16), ("d_ff", 1344), ("batch", 32), ("reps", 20)]:
    ap.add_argument("--" + name.replace("_", "-"), type=int, default=default)
a = ap.parse_args()
B, T, H, hd = a.batch, a.ctx, a.heads, a.d_model // a.heads
torch.backends.cuda.matmul.allow_tf32 = False; torch.backends.cudnn.allow_tf32 = False
mask = torch.triu(torch.ones(T, T, device="cuda", dtype=torch.bool), 1)

def eager(q, k, v):
    att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
    return att.masked_fill(mask, float("-inf")).softmax(-1) @ v

def sdpa(q, k, v): return F.scaled_dot_product_attention(q, k, v, is_causal=True)

def timed(fn, reps):
    for _ in range(3): fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps): fn()
    end.record(); torch.cuda.synchronize()
    return start.elapsed_time(end) / reps

qkv = [torch.randn(B, H, T, hd, device="cuda", requires_grad=True) for _ in range(3)]
dout = torch.randn(B, H, T, hd, device="cuda")
units = B * H * T * T * hd
for name, attn in [("sdpa", sdpa), ("eager", eager)]:
    with torch.no_grad(): ms = timed(lambda: attn(*qkv), a.reps)
    print(json.dumps({"case": f"attention fwd {name}", "shape": [B, H, T, hd], "ms": round(ms, 3), "tflops": round(2 * units / ms / 1e9, 2)}))
    def both():
        for t in qkv: t.grad = None
        attn(*qkv).backward(dout)
    ms = timed(both, a.reps)
    print(json.dumps({"case": f"attention fwd+bwd {name}", "shape": [B, H, T, hd], "ms": round(ms, 3), "tflops": round(7 * units / ms / 1e9, 2)}))

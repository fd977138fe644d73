"""cuBLAS f32 (no TF32) on the forward products of bench/matmul_tune.ts's "transposed" plan: `x @ W.T` (as
torch.nn.functional.linear runs it) and `x @ Wt` with a contiguous transposed copy, timed with CUDA events.

    python3 bench/torch_matmul_shapes.py
"""
import torch

torch.backends.cuda.matmul.allow_tf32 = False
R, D, FF, V = 8192, 512, 1344, 10000
SHAPES = [
    ("ts qkv", R, 3 * D, D), ("ts o", R, D, D), ("ts w13", R, 2 * FF, D), ("ts w2", R, D, FF), ("ts head", R, V, D),
    ("gpt2 qkv", R, 3 * 768, 768), ("gpt2 o", R, 768, 768), ("gpt2 w13", R, 4096, 768), ("gpt2 w2", R, 768, 2048),
    ("gpt2 head chunk", 2048, 50257, 768), ("gpt2 head", R, 50257, 768),
]


def timed(f, ms=200.0):
    for _ in range(10):
        f()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    f()
    end.record()
    torch.cuda.synchronize()
    reps = max(10, int(ms / max(start.elapsed_time(end), 1e-3)))
    for _ in range(reps):
        f()
    start.record()
    for _ in range(reps):
        f()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


for name, m, n, k in SHAPES:
    x = torch.randn(m, k, device="cuda")
    w = torch.randn(n, k, device="cuda")
    wt = w.t().contiguous()
    flops = 2 * m * n * k
    a = timed(lambda: x @ w.t())
    b = timed(lambda: x @ wt)
    c = timed(lambda: w.t().contiguous())
    print(f"| {name} {m}x{n}x{k} | x@W^T {flops / a / 1e9:.1f} TFLOP/s ({a:.3f} ms) | x@Wt {flops / b / 1e9:.1f}"
          f" ({b:.3f} ms) | transpose copy {c:.3f} ms |")

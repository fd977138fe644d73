"""cuBLAS f32 (no TF32) at 4096^3 over a short run (3 warm-up calls, 20 timed: as ../shared/device's torch_matmul.py)
and a sustained one (1 s of warm-up calls, then >= 1 s timed), to compare with bench/matmul_tune.ts --warm-ms/--time-ms.

    python3 bench/torch_matmul_sustained.py [--n 4096] [--seconds 1.0]
"""
import argparse
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=4096)
parser.add_argument("--seconds", type=float, default=1.0)
args = parser.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
n = args.n
a = torch.randn(n, n, device="cuda")
b = torch.randn(n, n, device="cuda")
flops = 2 * n**3


def timed(warm: int, reps: int) -> float:
    for _ in range(warm):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps


short = timed(3, 20)
print(f"torch fp32 matmul {n}^3 short (3 warm, 20 timed): {flops / short / 1e12:.1f} TFLOP/s")
calls = max(20, int(args.seconds / short))
sustained = timed(calls, calls)
print(f"torch fp32 matmul {n}^3 sustained ({calls} warm, {calls} timed): {flops / sustained / 1e12:.1f} TFLOP/s")

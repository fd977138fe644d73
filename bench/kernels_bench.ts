/**
 * `deno bench` for the GPU kernels on whatever adapter this machine has (the software adapter here and in CI, a real
 * GPU elsewhere). Each iteration records a batch of dispatches and waits once, so the ~10 ms GPU round trip of Deno
 * is amortised; for per-kernel GPU timestamps on a real GPU use `deno task bench:gpu`.
 *
 * @module
 */
import {
  attention,
  crossEntropy,
  initGpu,
  matmul,
  randn,
  rmsNorm,
  softmax,
  type Tensor,
  tensor,
  tidy,
} from "../lib/tensor/mod.ts";

const backend = await initGpu();
const small = backend.info.isSoftware;
const n = small ? 128 : 1024, rows = small ? 256 : 8192, vocab = small ? 1000 : 10000, batch = 10;
const a = randn([n, n], { seed: 1 }), b = randn([n, n], { seed: 2 });
const x = randn([rows, 512], { seed: 3 }), w = randn([512], { seed: 4 });
const logits = randn([rows, vocab], { seed: 5 });
const targets = tensor(Int32Array.from({ length: rows }, (_, i) => i % vocab), { dtype: "i32" });
const bh = small ? 8 : 512, T = small ? 64 : 256;
const q = randn([bh, T, 32], { seed: 6 }), k = randn([bh, T, 32], { seed: 7 }), v = randn([bh, T, 32], { seed: 8 });

async function run(fn: () => Tensor | void): Promise<void> {
  for (let i = 0; i < batch; i++) tidy(fn);
  await backend.sync();
}

Deno.bench(`matmul ${n}^3 x${batch}`, { group: "matmul" }, () => run(() => matmul(a, b)));
Deno.bench(
  `matmul ${n}^3 b transposed x${batch}`,
  { group: "matmul" },
  () => run(() => matmul(a, b, { transB: true })),
);
Deno.bench(`softmax (${rows}, 512) x${batch}`, { group: "rows" }, () => run(() => softmax(x)));
Deno.bench(`rmsNorm (${rows}, 512) x${batch}`, { group: "rows" }, () => run(() => rmsNorm(x, w)));
Deno.bench(
  `crossEntropy (${rows}, ${vocab}) x${batch}`,
  { group: "rows" },
  () => run(() => crossEntropy(logits, targets)),
);
Deno.bench(
  `attention fused (${bh}, ${T}, 32) x${batch}`,
  { group: "attention", baseline: true },
  () => run(() => attention(q, k, v)),
);
Deno.bench(
  `attention composite (${bh}, ${T}, 32) x${batch}`,
  { group: "attention" },
  () => run(() => attention(q, k, v, { fused: false })),
);

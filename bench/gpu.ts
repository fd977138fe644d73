/**
 * GPU kernel benchmark: matmul (square and the LM's shapes, forward and backward layouts, several tiles),
 * softmax, RMSNorm, attention, cross-entropy and the LM head's chunked loss. Times come from GPU timestamps when the
 * adapter has them (per kernel), else from wall-clock around a synced batch. Prints a table and one JSON line per
 * case. The LM's shapes are CS336's TinyStories model at batch 32 unless the flags of `torch_train_step.py` say
 * otherwise (`--vocab --ctx --d-model --layers --heads --d-ff --batch`; `--layers` does not matter here).
 *
 * Run on the GPU machine with `deno task bench:gpu` (see bench/README.md), beside `python3 .device/torch_matmul.py`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  attention,
  backward,
  crossEntropy,
  type DType,
  gpu,
  initGpu,
  matmul,
  permute,
  randn,
  reshape,
  rmsNorm,
  rope,
  softmax,
  sum,
  type Tensor,
  tensor,
  tidy,
} from "../lib/tensor/mod.ts";
import { gatherKernel } from "../kernels/copy.ts";
import type { AttentionVariant } from "../kernels/attention.ts"; // not mod.ts: the GPU machine has no network for npm packages
import type { MatmulTile } from "../kernels/matmul.ts";
import { param } from "../lib/tensor/create.ts";
import { empty } from "../lib/tensor/tensor.ts";
import { withMatmulTuning } from "../lib/tensor/ops/matmul.ts";
import { linearCrossEntropy, logitChunkRows } from "../lib/tensor/ops/nn.ts";
import { lmShapeConfig, lmShapeOptions } from "./lm_shape.ts";

const args = parseArgs({
  options: {
    ...lmShapeOptions,
    batch: { type: "string", default: "32" },
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    reps: { type: "string" },
  },
});

const shape = lmShapeConfig(args.values);
const batch = Number(args.values.batch);
if (!Number.isInteger(batch) || batch <= 0) {
  throw new Error(`--batch must be a positive integer, got ${args.values.batch}`);
}
const backend = await initGpu();
const quick = args.values.quick || backend.info.isSoftware;
const reps = Number(args.values.reps ?? (quick ? 2 : 20));
console.log(`# device: ${backend.info.description}; timestamps: ${backend.info.timestamps}; reps ${reps}`);

interface Result {
  name: string;
  ms: number;
  tflops?: number;
  gbps?: number;
  kernels?: string;
}
const results: Result[] = [];

/** Times `fn` (which records GPU work) over `reps` runs; returns GPU ms per run. */
async function time(fn: () => unknown): Promise<{ ms: number; kernels: string }> {
  // Discard what fn returns: tidy keeps returned tensors alive.
  const run = () =>
    tidy(() => {
      fn();
    });
  // The H100 idles at 345 MHz and drops its clocks within milliseconds of idling, so a kernel timed right after a
  // sync runs at about a third of its speed. So: estimate the cost of one call, queue ~0.3 s of calls, and queue
  // the timed calls behind them without waiting in between, so the GPU never idles before or during the timing.
  for (let i = 0; i < 2; i++) run();
  await backend.sync();
  // The cost of one call by GPU timestamps (wall-clock would count the ~11 ms round trip of the sync).
  const t0 = performance.now();
  const probe = await backend.profile(() => {
    for (let i = 0; i < 3; i++) run();
  });
  const probeMs = probe.reduce((s, t) => s + t.ms, 0) / 3;
  const perCall = Math.max(probeMs > 0 ? probeMs : (performance.now() - t0) / 3, 0.005);
  const warmCalls = Math.min(2000, Math.ceil(300 / perCall));
  let kernels = "";
  if (backend.info.timestamps) {
    // Rounds of (warm-up, then at least ~30 ms of timed calls), the best kept: single rounds of 20 calls read 2-5x
    // slow on about one case in four in the 2026-11-29 H200 runs (a different case each run), the longer
    // interleaved rounds of bench/matmul_tune.ts never did.
    const timed = Math.min(2000, Math.max(reps, Math.ceil(30 / perCall)));
    let best = Infinity;
    for (let round = 0; round < (quick ? 1 : 3); round++) {
      for (let i = 0; i < warmCalls; i++) run();
      backend.flush();
      const timings = await backend.profile(() => {
        for (let i = 0; i < timed; i++) run();
      });
      const total = timings.reduce((s, t) => s + t.ms, 0) / timed;
      if (total > 0 && total < best) {
        best = total;
        kernels = timings.slice(0, 4).map((t) => `${t.name}:${(t.ms / timed).toFixed(3)}`).join(" ");
      }
    }
    // Software adapters report zero timestamps: fall back to wall-clock below.
    if (best < Infinity) return { ms: best, kernels };
  }
  for (let i = 0; i < warmCalls; i++) run();
  backend.flush();
  await backend.sync();
  const t1 = performance.now();
  for (let i = 0; i < reps; i++) run();
  await backend.sync();
  return { ms: (performance.now() - t1) / reps, kernels };
}

function want(name: string): boolean {
  return !args.values.only || name.includes(args.values.only);
}

async function benchMatmul(
  name: string,
  dims: { batch?: number; m: number; n: number; k: number; transA?: boolean; transB?: boolean },
  tile?: MatmulTile,
  extra: { splitK?: number } = {},
): Promise<void> {
  if (!want(name)) return;
  const { batch = 1, m, n, k, transA = false, transB = false } = dims;
  const lead = batch > 1 ? [batch] : [];
  const a = randn([...lead, ...(transA ? [k, m] : [m, k])], { seed: 1 });
  const b = randn([...lead, ...(transB ? [n, k] : [k, n])], { seed: 2 });
  const { ms, kernels } = await time(() => {
    withMatmulTuning({ tile, ...extra }, () => matmul(a, b, { transA, transB }));
  });
  const tflops = (2 * batch * m * n * k) / (ms / 1000) / 1e12;
  results.push({ name, ms, tflops, kernels });
  a.dispose();
  b.dispose();
}

/**
 * Times `fn` over the tensors `make` creates; reports GB/s when the call moves `rate.bytes`, TFLOP/s when it does
 * `rate.flops` useful floating-point operations, else only the time.
 */
async function benchOp(
  name: string,
  rate: { bytes?: number; flops?: number },
  make: () => Tensor[],
  fn: (ts: Tensor[]) => void,
): Promise<void> {
  if (!want(name)) return;
  const ts = make();
  const { ms, kernels } = await time(() => fn(ts));
  const per = (n?: number, unit = 1e9) => (n === undefined ? undefined : n / (ms / 1000) / unit);
  results.push({ name, ms, gbps: per(rate.bytes), tflops: per(rate.flops, 1e12), kernels });
  for (const t of ts) t.dispose();
}

function benchBandwidth(name: string, bytes: number, make: () => Tensor[], fn: (ts: Tensor[]) => void) {
  return benchOp(name, { bytes }, make, fn);
}

/** Drops the gradients a fwd+bwd case left on its parameters (each call starts from none). */
function clearGrads(ts: Tensor[]): void {
  for (const t of ts) {
    t.grad?.dispose();
    t.grad = null;
  }
}

function ids(n: number, vocab: number, dtype: DType = "i32"): Tensor {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = (i * 7919) % vocab;
  return tensor(a, { dtype });
}

const s = quick ? 256 : 1;
// Square matmuls, tile variants at 4096.
for (const size of quick ? [256] : [1024, 2048, 4096]) {
  await benchMatmul(`matmul ${size}^3`, { m: size, n: size, k: size });
}
// Tile and code-generation variants are compared in bench/matmul_tune.ts.
// The LM's matmuls: by default CS336's TinyStories model at batch 32 x ctx 256: rows = 8192, d_model 512, d_ff 1344,
// vocab 10000.
const rows = Math.max(1, Math.floor((batch * shape.contextLength) / s));
const D = shape.dModel, FF = shape.dFf!, V = shape.vocabSize;
const lm: [string, number, number][] = [["qkvo", D, D], ["w1/w3", FF, D], ["w2", D, FF], ["lm_head", V, D]];
for (const [label, out, inp] of lm) {
  await benchMatmul(`lm ${label} fwd x@W^T (${rows}x${inp} @ ${inp}x${out})`, {
    m: rows,
    n: out,
    k: inp,
    transB: true,
  });
  await benchMatmul(`lm ${label} dX dY@W (${rows}x${out} @ ${out}x${inp})`, { m: rows, n: inp, k: out });
  await benchMatmul(`lm ${label} dW dY^T@X (${out}x${rows} @ ${rows}x${inp})`, {
    m: out,
    n: inp,
    k: rows,
    transA: true,
  });
}
// The LM head's weight transposed, (V, d) into (d, V): the tiled kernel that matrix transposes take, against the
// strided gather every other permute takes.
const headT = [Math.max(1, Math.floor(V / s)), D];
await benchBandwidth(
  `transpose tiled (${headT.join("x")})`,
  headT[0] * D * 8,
  () => [randn(headT, { seed: 6 })],
  ([w]) => permute(w, [1, 0]),
);
await benchBandwidth(
  `transpose gather (${headT.join("x")})`,
  headT[0] * D * 8,
  () => [randn(headT, { seed: 6 })],
  ([w]) => {
    const out = empty([D, headT[0]]);
    gpu().run(gatherKernel({ outShape: [D, headT[0]], inStrides: [1, D], dtype: "f32" }), [w.buffer, out.buffer]);
  },
);
// Attention matmuls: (B*H, T, hd), by default (512, 256, 32).
const BH = Math.max(1, Math.floor((batch * shape.numHeads) / s)), T = shape.contextLength, hd = D / shape.numHeads;
await benchMatmul(`attn q@k^T (${BH}x ${T}x${hd} @ ${hd}x${T})`, { batch: BH, m: T, n: T, k: hd, transB: true });
await benchMatmul(`attn p@v (${BH}x ${T}x${T} @ ${T}x${hd})`, { batch: BH, m: T, n: hd, k: T });

await benchBandwidth(
  `softmax causal (${BH}x${T}x${T})`,
  BH * T * T * 8,
  () => [randn([BH, T, T], { seed: 3 })],
  ([x]) => softmax(x, { causal: true, scale: 0.17 }),
);
await benchBandwidth(
  `rmsnorm fwd (${rows}x${D})`,
  rows * D * 8,
  () => [randn([rows, D], { seed: 4 }), randn([D], { seed: 5 })],
  ([x, w]) => rmsNorm(x, w),
);
// Logits over the storage binding limit (GPT-2 small at batch 16) can only run chunked.
const logitsFit = rows * V * 4 <= backend.limits.maxStorageBufferBindingSize;
if (logitsFit) {
  await benchBandwidth(
    `cross-entropy fwd (${rows}x${V})`,
    rows * V * 4,
    () => [randn([rows, V], { seed: 6 }), ids(rows, V)],
    ([x, t]) => crossEntropy(x, t),
  );
  await benchBandwidth(
    `cross-entropy fwd+bwd (${rows}x${V})`,
    rows * V * 12,
    () => [param(randn([rows, V], { seed: 7 })), ids(rows, V)],
    ([x, t]) => {
      crossEntropy(x, t).backward();
      x.grad?.dispose();
      x.grad = null;
    },
  );
}
// The LM head and its loss, forward and backward: unchunked (head matmul, then cross-entropy) where the logits fit,
// and linearCrossEntropy by default and in four chunks. TFLOP/s counts the head's three matmuls (2 N V d each), not
// the forward recomputed by the chunked backward.
const headInputs =
  () => [param(randn([rows, D], { seed: 12 })), param(randn([V, D], { seed: 13, std: 0.02 })), ids(rows, V)];
const headFlops = 6 * rows * V * D;
type HeadLoss = (h: Tensor, w: Tensor, t: Tensor) => Tensor;
const chunked = (chunkRows?: number): [string, HeadLoss] => {
  const r = logitChunkRows(rows, V, { chunkRows });
  const label = `${chunkRows ? "" : "default, "}${Math.ceil(rows / r)} chunk(s) of ${r} rows`;
  return [label, (h, w, t) => linearCrossEntropy(h, w, t, { chunkRows })];
};
const heads: [string, HeadLoss][] = [chunked(), chunked(Math.ceil(rows / 4 / 64) * 64)];
if (logitsFit) heads.unshift(["unchunked", (h, w, t) => crossEntropy(matmul(h, w, { transB: true }), t)]);
for (const [label, loss] of heads) {
  await benchOp(`lm head loss fwd+bwd ${label} (${rows}x${D} @ ${D}x${V})`, { flops: headFlops }, headInputs, (ts) => {
    loss(ts[0], ts[1], ts[2]).backward();
    clearGrads(ts.slice(0, 2));
  });
}
await benchBandwidth(
  `attention fwd (B*H=${BH}, T=${T}, hd=${hd})`,
  BH * T * hd * 16,
  () => [randn([BH, T, hd], { seed: 8 }), randn([BH, T, hd], { seed: 9 }), randn([BH, T, hd], { seed: 10 })],
  ([q, k, v]) => attention(q, k, v),
);
await benchBandwidth(
  `attention fwd+bwd (B*H=${BH}, T=${T}, hd=${hd})`,
  BH * T * hd * 16,
  () => [param(randn([BH, T, hd], { seed: 8 })), randn([BH, T, hd], { seed: 9 }), randn([BH, T, hd], { seed: 10 })],
  ([q, k, v]) => {
    sum(attention(q, k, v)).backward();
    q.grad?.dispose();
    q.grad = null;
  },
);

// Attention on the projections' (B, T, H, hd) layout, per kernel work split (AttentionVariant), at the LM's shape
// (TinyStories: B*H = 32*16 = 512, T = 256, hd = 32). `--only "attention bthd"` runs just these; `--only "[rows2]"` one
// variant. TFLOP/s counts the useful (causal, unmasked) FLOPs: 2 T^2 hd a head forward (q k^T and p v over half the
// square), 5 T^2 hd backward (s recomputed, dP, dV, dQ, dK).
const attnB = quick ? 1 : batch, attnH = quick ? 2 : shape.numHeads;
const attnFlops = attnB * attnH * T * T * hd;
// The splits without unrolling (rows2, kb64, keys2, kg128, qt64, ...) measured no better than the default at the
// TinyStories shape on the H200 (bench/RESULTS.md, 2026-11-29); the block sizes are timed again at head dim 64.
const attentionVariants: [string, Partial<AttentionVariant>][] = [
  ["default", {}],
  ["rows", { dkv: "rows" }],
  ["qb64", { queryBlock: 64 }],
  ["qb128", { queryBlock: 128 }],
  ["kb64", { keyBlock: 64 }],
  ["unroll", { unroll: "all" }],
  ["unroll rows2", { unroll: "all", rowsPerThread: 2 }],
  ["unroll keys2", { unroll: "all", keysPerThread: 2 }],
  ["unroll rows2 keys2", { unroll: "all", rowsPerThread: 2, keysPerThread: 2 }],
  ["unroll qb128", { unroll: "all", queryBlock: 128 }],
  // The register-tiled kernels: all three, then one at a time beside the default's others.
  ["flash", { forward: "flash", dkv: "flash", dq: "flash", tile: 32 }],
  ["flash t16", { forward: "flash", dkv: "flash", dq: "flash", tile: 16 }],
  ["flash 128", { forward: "flash", dkv: "flash", dq: "flash", tile: 32, flashThreads: 128 }],
  ["flash t16 128", { forward: "flash", dkv: "flash", dq: "flash", tile: 16, flashThreads: 128 }],
  ["flash unroll", { forward: "flash", dkv: "flash", dq: "flash", tile: 32, unroll: "all" }],
  ["flash dkv", { dkv: "flash", tile: 32 }],
  ["scores", { dq: "scores" }],
  ["scores without prefetch", { dq: "scores", scoresPipeline: "none" }],
  ["scores q32", { dq: "scores", scoresQueries: 32 }],
  ["scores q128 t128", { dq: "scores", scoresQueries: 128, scoresThreads: 128 }],
  ["flash dkv scores", { dkv: "flash", dq: "scores", tile: 32, flashThreads: 128 }],
  ["flash dkv scores q64", { dkv: "flash", dq: "scores", tile: 32, flashThreads: 128, scoresQueries: 64 }],
  ["flash dkv scores t256", { dkv: "flash", dq: "scores", tile: 32, flashThreads: 128, scoresThreads: 256 }],
  ["flash dkv scores q32", { dkv: "flash", dq: "scores", tile: 32, flashThreads: 128, scoresQueries: 32 }],
  ["flash dkv scores q32 t256", {
    dkv: "flash",
    dq: "scores",
    tile: 32,
    flashThreads: 128,
    scoresQueries: 32,
    scoresThreads: 256,
  }],
  ["flash dkv scores q64 t256", {
    dkv: "flash",
    dq: "scores",
    tile: 32,
    flashThreads: 128,
    scoresQueries: 64,
    scoresThreads: 256,
  }],
  ["flash dq", { dq: "flash", tile: 32 }],
  ["flash fwd", { forward: "flash", tile: 32 }],
  // Key blocks and query tiles loaded into registers one ahead (`rowPipeline`, `flashPipeline`), beside the same
  // without.
  // The blocks with the most causal pairs first (`order`), beside the default's order.
  ["order blocks", { order: "blocks" }],
  ["order heavy", { order: "heavy" }],
  ["order blocks unroll", { order: "blocks", unroll: "all" }],
  ["order heavy unroll", { order: "heavy", unroll: "all" }],
  ["staged rows", { rowPipeline: "none" }],
  ["staged rows prefetch", { rowPipeline: "prefetch" }],
  ["staged flash dkv", { dkv: "flash", dq: "scores", tile: 32, flashThreads: 128, flashPipeline: "none" }],
  ["staged flash dkv prefetch", { dkv: "flash", dq: "scores", tile: 32, flashThreads: 128, flashPipeline: "prefetch" }],
  ["staged flash dkv t16 prefetch", {
    dkv: "flash",
    dq: "scores",
    tile: 16,
    flashThreads: 128,
    flashPipeline: "prefetch",
  }],
  ["staged flash dkv t16 64 prefetch", {
    dkv: "flash",
    dq: "scores",
    tile: 16,
    flashThreads: 64,
    flashPipeline: "prefetch",
  }],
];
const bthd = (seed: number, grad: boolean) => {
  const t = randn([attnB, T, attnH, hd], { seed }); // (B, T, H, hd)
  return grad ? param(t) : t;
};
for (const [label, variant] of attentionVariants) {
  const shape = `B*H=${attnB * attnH}, T=${T}, hd=${hd}`;
  await benchOp(
    `attention bthd fwd [${label}] (${shape})`,
    { flops: 2 * attnFlops },
    () => [bthd(8, false), bthd(9, false), bthd(10, false)],
    ([q, k, v]) => attention(q, k, v, { layout: "bthd", variant }),
  );
  await benchOp(
    `attention bthd fwd+bwd [${label}] (${shape})`,
    { flops: 7 * attnFlops },
    () => [bthd(8, true), bthd(9, true), bthd(10, true), bthd(11, false)],
    (ts) => {
      const [q, k, v, dout] = ts;
      backward(attention(q, k, v, { layout: "bthd", variant }), dout);
      clearGrads(ts);
    },
  );
}
// The attention sub-layer between the projections, forward and backward, as the model ran it before (head permutes
// to (B, H, T, hd) and back around RoPE and attention) and as it runs now (no permutes).
const positions = tensor(Int32Array.from({ length: T }, (_, i) => i));
// Three (B, T, d) projections as parameters, and the gradient of the sub-layer's output.
const projections = () => [
  ...[11, 12, 13].map((seed) => param(randn([attnB, T, attnH * hd], { seed }))),
  randn([attnB, T, attnH * hd], { seed: 14 }),
];
await benchOp(
  `attention layer bhtd: permutes + rope + attention fwd+bwd (B=${attnB}, T=${T}, H=${attnH}, hd=${hd})`,
  {},
  projections,
  (ts) => {
    const [q, k, v] = ts.slice(0, 3).map((t) => permute(reshape(t, [attnB, T, attnH, hd]), [0, 2, 1, 3])); // (B, H, T, hd)
    const o = attention(rope(q, positions), rope(k, positions), v); // (B, H, T, hd)
    backward(reshape(permute(o, [0, 2, 1, 3]), [attnB, T, attnH * hd]), ts[3]); // (B, T, d)
    clearGrads(ts);
  },
);
await benchOp(
  `attention layer bthd: rope + attention fwd+bwd (B=${attnB}, T=${T}, H=${attnH}, hd=${hd})`,
  {},
  projections,
  (ts) => {
    const [q, k, v] = ts.slice(0, 3).map((t) => reshape(t, [attnB, T, attnH, hd])); // (B, T, H, hd)
    const opts = { layout: "bthd" } as const;
    const o = attention(rope(q, positions, opts), rope(k, positions, opts), v, opts); // (B, T, H, hd)
    backward(reshape(o, [attnB, T, attnH * hd]), ts[3]); // (B, T, d)
    clearGrads(ts);
  },
);
positions.dispose();

console.log("| case | GPU ms | TFLOP/s | GB/s | top kernels (ms) |");
console.log("| --- | ---: | ---: | ---: | --- |");
for (const r of results) {
  console.log(
    `| ${r.name} | ${r.ms.toFixed(3)} | ${r.tflops?.toFixed(2) ?? ""} | ${r.gbps?.toFixed(0) ?? ""} | ${
      r.kernels ?? ""
    } |`,
  );
}
for (const r of results) console.log(JSON.stringify({ ...r, device: backend.info.description }));
console.log(`# kernels compiled: ${backend.kernelCount}; memory: ${JSON.stringify(gpu().memory())}`);

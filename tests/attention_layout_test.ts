/**
 * Attention and RoPE in the projections' (B, T, H, d) layout (`"bthd"`), and the fused kernels' work-split variants,
 * against the float64 reference: outputs and all three gradients (the reference gradient is itself checked against
 * finite differences here), on odd lengths, a single position, fewer queries than keys, non-causal masks and every
 * head-dim class.
 */
import { assert, assertClose, assertThrows } from "./assert.ts";
import { assertNoGpuErrors, checkGrad, dispatchedKernels, maxAbs, upload, uploadInts, withLimits } from "./harness.ts";
import * as ref from "./reference.ts";
import { type Nd, randNd, rngFor } from "./reference.ts";
import {
  attention,
  type AttentionLayout,
  gpu,
  initGpu,
  mul,
  param,
  readAll,
  rope,
  sum,
  tidy,
} from "../lib/tensor/mod.ts";
import type { AttentionVariant } from "../kernels/attention.ts";
import { setAttentionVariant } from "../lib/tensor/ops/nn.ts";
import { attentionWorkgroupBytes, DEFAULT_ATTENTION_VARIANT, savedScoresBytes } from "../kernels/attention.ts";

await initGpu();

/** (B, H, T, d) <-> (B, T, H, d). */
const swapHeads = (x: Nd) => ref.permute(x, [0, 2, 1, 3]);

interface Case {
  B: number;
  H: number;
  tq: number;
  tk: number;
  d: number;
  causal?: boolean;
}

const cases: Case[] = [
  { B: 2, H: 3, tq: 37, tk: 37, d: 32 }, // odd T, across key blocks
  { B: 1, H: 2, tq: 1, tk: 1, d: 8 }, // T = 1
  { B: 2, H: 2, tq: 5, tk: 40, d: 8 }, // fewer queries than keys: the causal offset
  { B: 1, H: 2, tq: 33, tk: 65, d: 64, causal: false }, // non-causal, the largest head dim
  { B: 1, H: 3, tq: 70, tk: 70, d: 4 }, // across 64-query blocks and 64-key groups
  { B: 2, H: 2, tq: 1, tk: 9, d: 16 }, // one query (decoding)
  { B: 1, H: 2, tq: 131, tk: 131, d: 32 }, // across 128-query blocks and 128-key groups
  { B: 1, H: 2, tq: 33, tk: 65, d: 16, causal: false }, // non-causal where every kernel fits 32 KiB
];

const name = (c: Case) => `B ${c.B} H ${c.H} tq ${c.tq} tk ${c.tk} d ${c.d} causal ${c.causal ?? true}`;

/**
 * Runs attention on the GPU in `layout` and the backward of `sum(out * r)`, and compares the output and the
 * gradients of q, k and v with the float64 reference (computed in (B, H, T, d) and moved to the layout).
 */
async function checkAttention(
  c: Case,
  opts: { layout: AttentionLayout; variant?: Partial<AttentionVariant>; fused?: boolean },
): Promise<void> {
  const msg = `${name(c)} ${JSON.stringify(opts)}`;
  const rng = rngFor(name(c));
  const q = randNd(rng, [c.B, c.H, c.tq, c.d]), k = randNd(rng, [c.B, c.H, c.tk, c.d]);
  const v = randNd(rng, [c.B, c.H, c.tk, c.d]), r = randNd(rng, [c.B, c.H, c.tq, c.d]);
  const causal = c.causal ?? true;
  const expected = [ref.attention(q, k, v, { causal }), ...ref.attentionGrad(q, k, v, r, { causal })];
  const toLayout = opts.layout === "bthd" ? swapHeads : (x: Nd) => x;
  const [qt, kt, vt] = [q, k, v].map((x) => param(upload(toLayout(x))));
  const actual = await tidy(async () => {
    const out = attention(qt, kt, vt, { causal, ...opts });
    sum(mul(out, upload(toLayout(r)))).backward();
    return (await readAll([out, qt.grad!, kt.grad!, vt.grad!])) as Float32Array[];
  });
  for (const t of [qt, kt, vt]) t.dispose();
  assertNoGpuErrors();
  ["output", "dq", "dk", "dv"].forEach((what, i) => {
    const e = toLayout(expected[i]).data;
    assertClose(actual[i], e, { atol: 2e-6 * Math.max(maxAbs(e), 1), rtol: 1e-4, msg: `${msg} ${what}` });
  });
}

Deno.test("attention reference gradient matches finite differences", () => {
  const rng = rngFor("attention-grad-reference");
  for (const causal of [true, false]) {
    const q = randNd(rng, [2, 3, 4]), k = randNd(rng, [2, 5, 4]), v = randNd(rng, [2, 5, 4]);
    const r = randNd(rng, [2, 3, 4]);
    const analytic = ref.attentionGrad(q, k, v, r, { causal });
    [q, k, v].forEach((x, i) => {
      const numeric = ref.numericGrad(() => ref.dot(ref.attention(q, k, v, { causal }), r), x.data);
      assertClose(analytic[i].data, numeric, { atol: 1e-7, rtol: 1e-6, msg: `causal ${causal} input ${i}` });
    });
  }
});

Deno.test("fused attention in both layouts: output and gradients against the float64 reference", async () => {
  for (const c of cases) {
    for (const layout of ["bhtd", "bthd"] as const) await checkAttention(c, { layout });
  }
});

Deno.test("composite attention in the bthd layout: forced, and for head dims the kernels lack", async () => {
  for (const c of [cases[0], cases[2], cases[3]]) await checkAttention(c, { layout: "bthd", fused: false });
  await checkAttention({ B: 2, H: 2, tq: 6, tk: 6, d: 6 }, { layout: "bthd" });
  // dv != d also takes the composite.
  const rng = rngFor("attention-bthd-dv");
  const q = randNd(rng, [2, 4, 3, 4]), k = randNd(rng, [2, 7, 3, 4]), v = randNd(rng, [2, 7, 3, 5]);
  await checkGrad({
    name: "attention bthd dv 5",
    inputs: [q, k, v],
    gpu: ([a, b, c]) => attention(a, b, c, { layout: "bthd" }),
    ref: ([a, b, c]) => swapHeads(ref.attention(swapHeads(a), swapHeads(b), swapHeads(c))),
    forward: { atol: 1e-6, rtol: 1e-5 },
  });
});

const variants: Partial<AttentionVariant>[] = [
  { dkv: "flash", dq: "flash" },
  { dkv: "flash", tile: 32, flashThreads: 128 },
  { dkv: "flash", dq: "scores" },
  { dkv: "flash", dq: "scores", tile: 32, flashThreads: 128 },
  { dq: "scores" },
  { dq: "scores", keysPerThread: 2, keyGroup: 128 },
  { dq: "scores", scoresPipeline: "prefetch" },
  { dq: "scores", scoresPipeline: "prefetch", scoresQueries: 128, scoresThreads: 128 },
  { dkv: "flash", dq: "scores", scoresQueries: 64, scoresThreads: 256 },
  { dkv: "flash", dq: "scores", tile: 32, flashThreads: 128, flashPipeline: "prefetch" },
  { dkv: "flash", dq: "flash", flashPipeline: "prefetch" },
  { dkv: "flash", dq: "scores", scoresQueries: 32, scoresThreads: 256 },
  { forward: "flash" },
  { forward: "flash", dkv: "flash", dq: "flash", tile: 32 },
  { forward: "flash", dkv: "flash", dq: "flash", flashThreads: 128 },
  { rowsPerThread: 2 },
  { rowsPerThread: 2, queryBlock: 128 },
  { queryBlock: 128 },
  { keyBlock: 64 },
  { rowsPerThread: 2, keyBlock: 64 },
  { keysPerThread: 2 },
  { keysPerThread: 2, keyGroup: 128 },
  { keyGroup: 128 },
  { queryTile: 64 },
  { keysPerThread: 2, queryTile: 64 },
  { rowPipeline: "prefetch" },
  { rowPipeline: "prefetch", rowsPerThread: 2, keysPerThread: 2, queryTile: 64 },
  { rowPipeline: "prefetch", queryBlock: 128, keyGroup: 128, dq: "scores" },
  { order: "heavy" },
  { order: "heavy", dq: "scores", rowPipeline: "prefetch" },
  { order: "heavy", forward: "flash", dkv: "flash", dq: "flash" },
  { order: "heavy", dkv: "flash", dq: "scores", tile: 32, flashThreads: 128, flashPipeline: "prefetch" },
];

// Unrolled kernels take seconds to compile on a software adapter at d = 32 (minutes at 64): small head dims only,
// which run the same generated structure (one copy of the loop body per key or query of a block).
for (
  const variant of [
    { unroll: "all" },
    { unroll: "forward", rowsPerThread: 2 },
    { unroll: "all", rowsPerThread: 2, keysPerThread: 2 },
    { unroll: "all", forward: "flash", dkv: "flash", dq: "flash", tile: 16 },
    { unroll: "all", dkv: "flash", dq: "scores", tile: 16 },
    { unroll: "all", dq: "scores" },
    { unroll: "all", dq: "scores", scoresPipeline: "prefetch" },
    { unroll: "all", dkv: "flash", dq: "flash", tile: 16, flashPipeline: "prefetch" },
    { unroll: "all", rowPipeline: "prefetch" },
    { unroll: "forward", rowPipeline: "prefetch", dq: "scores" },
  ] as Partial<AttentionVariant>[]
) {
  Deno.test(`fused attention variant ${JSON.stringify(variant)} (small head dims) against the float64 reference`, async () => {
    const small: Case[] = [cases[1], cases[2], cases[4], { B: 1, H: 2, tq: 33, tk: 65, d: 4, causal: false }];
    for (const c of small) await checkAttention(c, { layout: "bthd", variant });
    await checkAttention(cases[2], { layout: "bhtd", variant });
  });
}

for (const variant of variants) {
  Deno.test(`fused attention variant ${JSON.stringify(variant)} against the float64 reference`, async () => {
    const full = { ...DEFAULT_ATTENTION_VARIANT, ...variant };
    const limit = gpu().device.limits.maxComputeWorkgroupStorageSize;
    let ran = 0;
    for (const c of [cases[0], cases[1], cases[2], cases[3], cases[6], cases[7]]) {
      // Key blocks of 64 at d = 64 need 48 KB of workgroup memory; a software adapter may allow only 32.
      if (attentionWorkgroupBytes(c.d, full) > limit) continue;
      await checkAttention(c, { layout: "bthd", variant });
      ran++;
    }
    // The layout is orthogonal to the split: one case in the (BH, T, d) layout too.
    await checkAttention(cases[0], { layout: "bhtd", variant });
    assert(ran >= 4, `only ${ran} cases fit this device's workgroup memory`);
  });
}

Deno.test("dQ from saved scores: the dK/dV kernel saves dS for it, past one binding dQ recomputes", async () => {
  const rng = rngFor("attention-saved-scores");
  const [B, T, H, d] = [1, 131, 2, 32];
  const [q, k, v, r] = [0, 1, 2, 3].map(() => swapHeads(randNd(rng, [B, H, T, d]))); // (B, T, H, d)
  const variant = { dq: "scores" } as const;
  const backward = (limit: number) =>
    withLimits({ maxStorageBufferBindingSize: limit }, () =>
      tidy(async () => {
        const [pq, pk, pv] = [q, k, v].map((t) => param(upload(t)));
        const out = attention(pq, pk, pv, { layout: "bthd", variant });
        const names = dispatchedKernels(() => sum(mul(out, upload(r))).backward()).map((kernel) => kernel.name);
        return { names, grads: (await readAll([pq.grad!, pk.grad!, pv.grad!])) as Float32Array[] };
      }));
  const bytes = savedScoresBytes({ bh: B * H, tq: T, tk: T, d, scale: d ** -0.5, causal: true, heads: H });
  const saved = await backward(gpu().limits.maxStorageBufferBindingSize);
  assert(saved.names.includes("attention_backward_dq_scores"), saved.names.join());
  assert(bytes > 4 * q.data.length, `dS (${bytes} bytes) must exceed the limit below while q, k, v fit it`);
  const recomputed = await backward(bytes - 4);
  assert(recomputed.names.includes("attention_backward_dq"), recomputed.names.join());
  assert(!recomputed.names.includes("attention_backward_dq_scores"), recomputed.names.join());
  // Both ways are checked against float64 in the variant tests above; here they must agree with each other.
  saved.grads.forEach((g, i) => assertClose(g, recomputed.grads[i], { atol: 1e-5, rtol: 1e-4, msg: `grad ${i}` }));
  assertNoGpuErrors();
});

Deno.test("setAttentionVariant applies to later calls; bad and oversized variants throw naming the field", async () => {
  const rng = rngFor("attention-variant-setter");
  const x = upload(swapHeads(randNd(rng, [1, 2, 3, 64]))); // (1, 3, 2, 64)
  // 128 query rows by 64-key blocks at d = 64: 64 KB of workgroup memory, more than any device allows.
  const huge = { queryBlock: 128, keyBlock: 64 } as const;
  assertThrows(() => attention(x, x, x, { layout: "bthd", variant: huge }), "bytes of workgroup memory");
  const before = setAttentionVariant(huge);
  try {
    assertThrows(() => attention(x, x, x, { layout: "bthd" }), "head dim 64");
  } finally {
    assert(JSON.stringify(setAttentionVariant(before)) === JSON.stringify(huge));
  }
  const [y] = await readAll([attention(x, x, x, { layout: "bthd" })]);
  assert(Array.from(y).every(Number.isFinite));
  assertThrows(() => attention(x, x, x, { variant: { rowsPerThread: 3 as 1 } }), "rowsPerThread must be 1 or 2, got 3");
  assertThrows(() => setAttentionVariant({ rows: 2 } as Partial<AttentionVariant>), 'unknown variant field "rows"');
  x.dispose();
});

Deno.test("attention bthd: shape errors name the op, the shapes and the layout", () => {
  const f = (...shape: number[]) => upload(ref.nd(shape));
  assertThrows(() => attention(f(2, 5, 3, 8), f(2, 5, 4, 8), f(2, 5, 4, 8), { layout: "bthd" }), "(2, 5, 3, 8)");
  assertThrows(() => attention(f(2, 5, 3, 8), f(2, 5, 3, 8), f(2, 6, 3, 8), { layout: "bthd" }), 'layout "bthd"');
  assertThrows(() => attention(f(5, 8), f(5, 8), f(5, 8), { layout: "bthd" }), "attention: q (5, 8)");
  assertThrows(() => attention(f(1, 6, 2, 8), f(1, 5, 2, 8), f(1, 5, 2, 8), { layout: "bthd" }), "queries (6)");
});

// ---- RoPE ---------------------------------------------------------------------------------------------------------

Deno.test("rope bthd: shared, per-sequence and per-row positions; backward is the inverse rotation", async () => {
  const rng = rngFor("rope-bthd");
  const cases: { shape: number[]; positions: number[]; posShape: number[]; theta: number; maxPosition?: number }[] = [
    { shape: [2, 5, 3, 8], positions: [0, 1, 2, 3, 4], posShape: [5], theta: 10000 },
    { shape: [2, 3, 2, 4], positions: [3, 1, 0, 9, 2, 2], posShape: [2, 3], theta: 10000, maxPosition: 16 },
    { shape: [2, 2, 2, 6], positions: [5, 0, 7, 1, 2, 3, 4, 6], posShape: [2, 2, 2], theta: 100, maxPosition: 8 },
    { shape: [7, 1, 2], positions: [6, 5, 4, 3, 2, 1, 0], posShape: [7], theta: 500 },
    { shape: [2, 2, 3, 2, 4], positions: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], posShape: [2, 2, 3], theta: 10000 },
  ];
  for (const c of cases) {
    const [T, H] = c.shape.slice(-3, -1), rows = ref.numel(c.shape.slice(0, -1));
    // The position of each row of x (row-major over (..., T, H)) for the reference, which takes one per row.
    const perRow = Array.from({ length: rows }, (_, r) => {
      if (ref.numel(c.posShape) === rows) return c.positions[r];
      const seqRow = Math.floor(r / H);
      return c.posShape.length === 1 ? c.positions[seqRow % T] : c.positions[seqRow];
    });
    await checkGrad({
      name: `rope bthd ${JSON.stringify(c.shape)} positions ${JSON.stringify(c.posShape)} theta ${c.theta}`,
      inputs: [randNd(rng, c.shape)],
      gpu: ([t]) =>
        rope(t, uploadInts(c.positions, c.posShape), { theta: c.theta, maxPosition: c.maxPosition, layout: "bthd" }),
      ref: ([v]) => ref.rope(v, perRow, c.theta),
      forward: { atol: 1e-6, rtol: 1e-5 },
      gradTol: 2e-5,
    });
  }
});

Deno.test("rope bthd equals rope on the (B, H, T, hd) permute; errors name the accepted position shapes", async () => {
  const rng = rngFor("rope-bthd-vs-bhtd");
  const x = randNd(rng, [2, 6, 3, 8]); // (B, T, H, hd)
  const pos = uploadInts([4, 0, 2, 1, 5, 3], [6]);
  const [a, b] = await readAll([
    rope(upload(x), pos, { layout: "bthd" }),
    rope(upload(swapHeads(x)), pos), // (B, H, T, hd)
  ]);
  assertClose(a, swapHeads(ref.nd([2, 3, 6, 8], b)).data, { atol: 0, rtol: 0 });
  const bad = uploadInts([0, 1, 2], [3]);
  assertThrows(() => rope(upload(x), bad, { layout: "bthd" }), "must be (6), (2, 6) or (2, 6, 3)");
  assertThrows(() => rope(upload(ref.nd([6, 8])), pos, { layout: "bthd" }), 'layout "bthd" needs');
});

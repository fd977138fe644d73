/**
 * The predicted cost of every generated kernel (`KernelSource.cost`): present on every kernel the generators make,
 * and equal to hand counts of FLOPs (2 M N K per matmul, FlashAttention's attention count, the accounting's
 * per-element counts) and of the bytes each launch must move at least. That the cost leaves the WGSL unchanged is
 * `kernel_wgsl_test.ts`'s job.
 */
import { assert, assertEquals } from "./assert.ts";
import { kernelCorpus } from "./kernel_corpus.ts";
import type { KernelSource } from "../kernels/common.ts";
import { elementwiseKernel, expressionFlops } from "../kernels/elementwise.ts";
import { concatKernel, gatherKernel, splitKernel } from "../kernels/copy.ts";
import { reduceKernel } from "../kernels/reduce.ts";
import { softmaxBackwardKernel, softmaxForwardKernel } from "../kernels/softmax.ts";
import { crossEntropyBackwardKernel, crossEntropyForwardKernel } from "../kernels/cross_entropy.ts";
import { embeddingBackwardKernel, embeddingForwardKernel } from "../kernels/embedding.ts";
import { siluGateBackwardKernel, siluGateForwardKernel } from "../kernels/silu_gate.ts";
import { adamwKernel, sumSquaresKernel } from "../kernels/adamw.ts";
import {
  rmsNormBackwardFusedKernel,
  rmsNormBackwardKernel,
  rmsNormForwardKernel,
  rmsNormWeightGradKernel,
} from "../kernels/rmsnorm.ts";
import { ropeKernel } from "../kernels/rope.ts";
import { decodeAttentionKernel, decodeLinearKernel, decodeQkvKernel, lastRowsKernel } from "../kernels/decode.ts";
import { sampleKernel } from "../kernels/sample.ts";
import {
  attentionBackwardDeltaKernel,
  attentionBackwardDkvKernel,
  attentionBackwardDqKernel,
  attentionForwardKernel,
  DEFAULT_ATTENTION_VARIANT,
} from "../kernels/attention.ts";
import {
  largeTiles,
  matmulKernel,
  type MatmulSpec,
  matmulStreamKFixupKernel,
  matmulTiles,
  streamKSchedule,
} from "../kernels/matmul.ts";

/** Every KernelSource inside a corpus result (a kernel, or a plan holding several). */
function kernelsIn(value: unknown, out: KernelSource[] = []): KernelSource[] {
  if (value && typeof value === "object") {
    if ("source" in value && "workgroups" in value) out.push(value as KernelSource);
    else for (const v of Object.values(value)) kernelsIn(v, out);
  }
  return out;
}

/** The generators the corpus leaves out, over a few specs. */
function otherKernels(): KernelSource[] {
  return [
    rmsNormForwardKernel(64, 128, 1e-5),
    rmsNormForwardKernel(2, 128, 1e-5, { inPlace: true }),
    rmsNormBackwardKernel(64, 128),
    rmsNormBackwardKernel(64, 128, true),
    rmsNormWeightGradKernel(4096, 128),
    rmsNormBackwardFusedKernel(70, 36),
    rmsNormBackwardFusedKernel(37, 130, true),
    ropeKernel({ rows: 64, dim: 32, group: 1, cycle: 0, tableRows: 64, inverse: false }),
    ropeKernel({ rows: 96, dim: 8, group: 12, cycle: 4, tableRows: 16, inverse: true, rotated: 8 }),
    decodeLinearKernel({ rows: 3, k: 64, n: 96, norm: { eps: 1e-5 }, epilogue: "swiglu" }),
    decodeLinearKernel({ rows: 1, k: 30, n: 7, epilogue: "add" }),
    decodeQkvKernel({ rows: 2, dModel: 64, heads: 4, maxLen: 32, norm: { eps: 1e-5 }, rope: true }),
    decodeAttentionKernel({ rows: 2, heads: 4, headDim: 16, maxLen: 300, tile: 128 }),
    lastRowsKernel(2, 8, 100),
    sampleKernel({ rows: 8, vocab: 1000, ringSteps: 16, advance: true }),
  ];
}

Deno.test("every kernel the generators make carries a finite, non-negative cost", () => {
  let count = 0;
  const missing: string[] = [];
  const check = (label: string, k: KernelSource) => {
    count++;
    const c = k.cost;
    if (!c || !(Number.isFinite(c.flops) && c.flops >= 0 && Number.isFinite(c.bytes) && c.bytes > 0)) {
      missing.push(`${label} (${k.name}): ${JSON.stringify(c)}`);
    }
  };
  for (const [label, run] of kernelCorpus()) {
    let value: unknown;
    try {
      value = run();
    } catch {
      continue; // a case that checks an error
    }
    for (const k of kernelsIn(value)) check(label, k);
  }
  for (const k of otherKernels()) check("other", k);
  assertEquals(missing.slice(0, 10), []);
  assert(count > 8000, `only ${count} kernels`);
});

Deno.test("a matmul costs 2 M N K (plus the addend) and reads A and B, writes C once", () => {
  const base: MatmulSpec = {
    batch: 2,
    m: 33,
    n: 65,
    k: 17,
    transA: false,
    transB: true,
    batchStrideA: 33 * 17,
    batchStrideB: 0, // B shared by the batch: read once
    tile: matmulTiles.small,
  };
  assertEquals(matmulKernel(base).cost, {
    flops: 2 * 2 * 33 * 65 * 17,
    bytes: 4 * (2 * 33 * 17 + 65 * 17 + 2 * 33 * 65),
  });
  assertEquals(matmulKernel({ ...base, addend: true }).cost, {
    flops: 2 * 2 * 33 * 65 * 17 + 2 * 33 * 65,
    bytes: 4 * (2 * 33 * 17 + 65 * 17 + 2 * 2 * 33 * 65),
  });
  // The gate's backward (one batch, N % 4 == 0): dG's elements cost what silu_gate_packed_backward's do.
  const gate = { ...base, batch: 1, n: 64, batchStrideA: 0, transB: false, gateBackward: true };
  assertEquals(matmulKernel(gate).cost, {
    flops: 2 * 33 * 64 * 17 + 12 * 33 * 64,
    bytes: 4 * (33 * 17 + 17 * 64 + 4 * 33 * 64),
  });
  assertEquals(siluGateBackwardKernel({ rows: 33, width: 64 }).cost?.flops, 12 * 33 * 64);
  // Split-K in 4 chunks of 512: each layer writes a whole (M, N) of partial products; their sum is a reduction.
  const split = matmulKernel({ ...base, batch: 1, m: 64, n: 64, k: 2048, batchStrideA: 0, splitK: 4 });
  assertEquals(split.cost, { flops: 2 * 64 * 64 * 2048, bytes: 4 * (64 * 2048 + 2048 * 64 + 4 * 64 * 64) });
  assertEquals(reduceKernel({ kind: "sum", outer: 1, reduced: 4, inner: 64 * 64 }).cost, {
    flops: 4 * 64 * 64,
    bytes: 4 * 5 * 64 * 64,
  });
});

Deno.test("a stream-K matmul and its fixup write and sum each partial tile that a brute-force schedule makes", () => {
  const [M, N, K, units] = [1000, 900, 512, 7];
  const tile = largeTiles.wide;
  const spec: MatmulSpec = {
    batch: 1,
    m: M,
    n: N,
    k: K,
    transA: false,
    transB: false,
    batchStrideA: 0,
    batchStrideB: 0,
    tile,
    streamK: units,
  };
  // Brute force: walk every K iteration of the tail, note which (unit, tile) pairs share one.
  const sk = streamKSchedule(spec, tile, units);
  const total = sk.tail * sk.kIters, pairs = new Set<string>();
  for (let u = 0; u < units; u++) {
    const [from, to] = [Math.floor((u * total) / units), Math.floor(((u + 1) * total) / units)];
    for (let i = from; i < to; i++) pairs.add(`${u}:${Math.floor(i / sk.kIters)}`);
  }
  let partialElements = 0, tailElements = 0, partialTiles = 0;
  for (let t = 0; t < sk.tail; t++) {
    const index = sk.dataParallel + t;
    const rows = Math.min(tile.bm, M - Math.floor(index / sk.tilesN) * tile.bm);
    const cols = Math.min(tile.bn, N - (index % sk.tilesN) * tile.bn);
    const n = [...pairs].filter((p) => p.endsWith(`:${t}`)).length;
    partialTiles += n;
    partialElements += n * rows * cols;
    tailElements += rows * cols;
  }
  assert(sk.tail > 0 && partialTiles > sk.tail, "the case should share tiles between workgroups");
  assertEquals(matmulKernel(spec).cost, {
    flops: 2 * M * N * K,
    bytes: 4 * (M * K + K * N + (M * N - tailElements) + partialTiles * tile.bm * tile.bn),
  });
  assertEquals(matmulStreamKFixupKernel({ m: M, n: N, k: K, tile, units }).cost, {
    flops: partialElements,
    bytes: 4 * (partialElements + tailElements),
  });
  // An addend: the main kernel adds it to the whole tiles, the fixup to the tail tiles.
  const whole = M * N - tailElements;
  assertEquals(matmulKernel({ ...spec, addend: true }).cost, {
    flops: 2 * M * N * K + whole,
    bytes: 4 * (M * K + K * N + 2 * whole + partialTiles * tile.bm * tile.bn),
  });
  assertEquals(matmulStreamKFixupKernel({ m: M, n: N, k: K, tile, units, addend: true }).cost, {
    flops: partialElements + tailElements,
    bytes: 4 * (partialElements + 2 * tailElements),
  });
  // The gate's backward: 12 FLOPs per element of dG, which becomes two elements of h read and two of dh written.
  assertEquals(matmulKernel({ ...spec, gateBackward: true }).cost, {
    flops: 2 * M * N * K + 12 * whole,
    bytes: 4 * (M * K + K * N + 4 * whole + partialTiles * tile.bm * tile.bn),
  });
  assertEquals(matmulStreamKFixupKernel({ m: M, n: N, k: K, tile, units, gateBackward: true }).cost, {
    flops: partialElements + 12 * tailElements,
    bytes: 4 * (partialElements + 4 * tailElements),
  });
});

Deno.test("attention costs FlashAttention's count: 4 T^2 d per head forward, 2.5 times that backward, causal halved", () => {
  const spec = { bh: 8, tq: 128, tk: 128, d: 32, scale: 32 ** -0.5, causal: true, heads: 1 };
  const variant = DEFAULT_ATTENTION_VARIANT;
  const forward = attentionForwardKernel({ ...spec, variant }).cost!;
  const dq = attentionBackwardDqKernel({ ...spec, variant }).cost!;
  const dkv = attentionBackwardDkvKernel({ ...spec, variant }).cost!;
  const full = 4 * 8 * 128 * 128 * 32;
  assertEquals(forward.flops, full / 2);
  assertEquals(dq.flops + dkv.flops, 2.5 * forward.flops);
  const qkv = 8 * 128 * 32;
  assertEquals(forward.bytes, 4 * (4 * qkv + 8 * 128)); // q, k, v, out and the log-sum-exp
  assertEquals(dq.bytes, 4 * (5 * qkv + 2 * 8 * 128)); // q, k, v, dO, lse, delta; dq
  assertEquals(dkv.bytes, 4 * (6 * qkv + 2 * 8 * 128)); // q, k, v, dO, lse, delta; dk, dv
  const open = attentionForwardKernel({ ...spec, causal: false, variant }).cost!;
  assertEquals(open.flops, full);
  // Packed q/k/v move the same elements through one binding.
  assertEquals(attentionForwardKernel({ ...spec, heads: 4, bh: 8, packed: true, variant }).cost, forward);
  // Fewer queries than keys (a cached prefix): the first tk - tq keys are visible to every query.
  const cross = attentionForwardKernel({ ...spec, tq: 32, variant }).cost!;
  assertEquals(cross.flops, 4 * 8 * 32 * 32 * (128 - 32 + 16));
  // Both work splits count the same useful work.
  const flash = { ...variant, forward: "flash", dq: "flash", dkv: "flash" } as const;
  assertEquals(attentionForwardKernel({ ...spec, variant: flash }).cost, forward);
  assertEquals(attentionBackwardDqKernel({ ...spec, variant: flash }).cost, dq);
  assertEquals(attentionBackwardDkvKernel({ ...spec, variant: flash }).cost, dkv);
  // dQ from saved scores: the dK/dV kernel writes the visible dS once, the dQ kernel reads it, K, and writes dq.
  const scores = { ...flash, dq: "scores" } as const, pairs = 8 * (128 * 128) / 2;
  assertEquals(attentionBackwardDkvKernel({ ...spec, variant: scores }).cost, { ...dkv, bytes: dkv.bytes + 4 * pairs });
  assertEquals(attentionBackwardDqKernel({ ...spec, variant: scores }).cost, { ...dq, bytes: 4 * (pairs + 2 * qkv) });
  assertEquals(attentionBackwardDeltaKernel({ rows: 1024, d: 32 }).cost, {
    flops: 2 * 1024 * 32,
    bytes: 4 * (2 * 1024 * 32 + 1024),
  });
});

Deno.test("elementwise, copy and reduction costs count the expression per element and each element once", () => {
  assertEquals(expressionFlops("v0 / (1.0 + exp(-v0))"), 4); // the accounting's SiLU
  assertEquals(expressionFlops("v2 * -0.5 * v1 * v1 * v1"), 4);
  assertEquals(expressionFlops("select(0.0, v2, v0 > 0.0)"), 1);
  assertEquals(expressionFlops("i32(clamp(v0, -2147483648.0, 2147483520.0))"), 2);
  assertEquals(expressionFlops(`select(bitcast<f32>(0x7f800000u), v0, v0 < 1e-7)`), 1);
  const f = "f32" as const;
  const add = elementwiseKernel({
    name: "add",
    outShape: [2, 3],
    outDtype: f,
    inputs: [{ shape: [2, 3], dtype: f }, { shape: [3], dtype: f }],
    expr: "v0 + v1",
  });
  assertEquals(add.cost, { flops: 6, bytes: 4 * (6 + 3 + 6) });
  // In parts of 4 elements: a launch covers one part, and reads the broadcast input whole.
  const parted = elementwiseKernel({
    name: "mul",
    outShape: [10],
    outDtype: f,
    inputs: [{ shape: [10], dtype: f }, { shape: [1], dtype: f }],
    expr: "v0 * v1",
    part: 4,
  });
  assertEquals(parted.cost, { flops: 4, bytes: 4 * (4 + 1 + 4) });
  // A (2, 3) transposed into (3, 2), and a (3) row broadcast to (4, 3): the row is read once.
  assertEquals(gatherKernel({ outShape: [3, 2], inStrides: [1, 3], dtype: f }).cost, { flops: 0, bytes: 4 * 12 });
  assertEquals(gatherKernel({ outShape: [4, 3], inStrides: [0, 1], dtype: f }).cost, { flops: 0, bytes: 4 * 15 });
  assertEquals(concatKernel({ sizes: [6, 4], dtype: f }).cost, { flops: 0, bytes: 4 * 20 });
  assertEquals(splitKernel({ sizes: [6, 4], dtype: f }).cost, { flops: 0, bytes: 4 * 20 });
  assertEquals(reduceKernel({ kind: "sum", outer: 4, reduced: 8, inner: 1 }).cost, { flops: 32, bytes: 4 * 36 });
  assertEquals(reduceKernel({ kind: "max", outer: 2, reduced: 10, inner: 3, group: 4, scale: 0.5 }).cost, {
    flops: 60 + 2 * 3 * 3, // 3 groups of the 10: 18 outputs scaled
    bytes: 4 * (60 + 18),
  });
});

Deno.test("row ops, embedding and AdamW cost the accounting's FLOPs per element and their tensors once", () => {
  const n = 64 * 100;
  assertEquals(softmaxForwardKernel({ rows: 64, cols: 100, scale: 1, log: false }).cost, {
    flops: 5 * n,
    bytes: 4 * 2 * n,
  });
  assertEquals(softmaxForwardKernel({ rows: 64, cols: 100, scale: 0.1, causalQueries: 100, log: true }).cost, {
    flops: 7 * n,
    bytes: 4 * 2 * n,
  });
  assertEquals(softmaxBackwardKernel({ rows: 64, cols: 100, scale: 1, log: false }).cost, {
    flops: 5 * n,
    bytes: 4 * 3 * n,
  });
  const [rows, vocab] = [64, 50257];
  assertEquals(crossEntropyForwardKernel({ rows, vocab }).cost, {
    flops: rows * (4 * vocab + 3),
    bytes: 4 * (rows * vocab + 3 * rows), // logits, targets; loss and lse
  });
  assertEquals(crossEntropyBackwardKernel({ rows, vocab }).cost, {
    flops: 4 * rows * vocab,
    bytes: 4 * (2 * rows * vocab + 2 * rows + 1), // logits, dlogits; targets, lse; dloss
  });
  // 256 tokens of a 100-row table: at most 100 distinct rows are read (and, backward, updated in place).
  assertEquals(embeddingForwardKernel({ tokens: 256, dim: 64, vocab: 100 }).cost, {
    flops: 0,
    bytes: 4 * (256 + 100 * 64 + 256 * 64),
  });
  assertEquals(embeddingBackwardKernel({ tokens: 256, dim: 64, vocab: 1000 }).cost, {
    flops: 256 * 64,
    bytes: 4 * (256 * 64 + 256 + 2 * 256 * 64),
  });
  assertEquals(siluGateForwardKernel({ rows: 64, width: 256 }).cost, { flops: 5 * 64 * 256, bytes: 4 * 3 * 64 * 256 });
  assertEquals(siluGateBackwardKernel({ rows: 64, width: 256 }).cost, {
    flops: 12 * 64 * 256,
    bytes: 4 * 5 * 64 * 256,
  });
  assertEquals(adamwKernel({ sizes: [1024, 300] }).cost, { flops: 18 * 1324, bytes: 4 * (7 * 1324 + 1) });
  assertEquals(sumSquaresKernel({ sizes: [100_000, 64], offset: 0 }).cost, {
    flops: 2 * 100_064,
    bytes: 4 * (100_064 + 8), // 7 + 1 workgroups write a partial each
  });
  assertEquals(rmsNormForwardKernel(64, 128, 1e-5).cost, {
    flops: 64 * (4 * 128 + 3),
    bytes: 4 * (2 * 64 * 128 + 128 + 64),
  });
  assertEquals(rmsNormBackwardKernel(64, 128, true).cost, {
    flops: 64 * (8 * 128 + 3),
    bytes: 4 * (4 * 64 * 128 + 128 + 64),
  });
  assertEquals(rmsNormBackwardFusedKernel(8192, 512, true).cost, {
    flops: 8192 * (11 * 512 + 3),
    bytes: 4 * (4 * 8192 * 512 + 512 * 512 + 512 + 8192), // 512 workgroups write a row of partials each
  });
  assertEquals(rmsNormWeightGradKernel(4096, 128).cost, {
    flops: 3 * 4096 * 128,
    bytes: 4 * (2 * 4096 * 128 + 4096 + 128 * 128), // 128 chunks of partials
  });
  // 64 rows of 16 pairs, a position each, a table row each.
  assertEquals(ropeKernel({ rows: 64, dim: 32, group: 1, cycle: 0, tableRows: 64, inverse: false }).cost, {
    flops: 6 * 64 * 16,
    bytes: 4 * (2 * 64 * 32 + 64 + 64 * 32),
  });
});

Deno.test("decode and sampling kernels cost their matrix-vector products and one pass over the logits", () => {
  const linear = decodeLinearKernel({ rows: 3, k: 64, n: 96, norm: { eps: 1e-5 }, epilogue: "swiglu" });
  assertEquals(linear.cost, {
    flops: 3 * 96 * (2 * 64 * 2 + 7) + 3 * (3 * 64 + 3),
    bytes: 4 * (2 * 96 * 64 + 3 * 64 + 64 + 3 * 96),
  });
  assertEquals(decodeAttentionKernel({ rows: 2, heads: 4, headDim: 16, maxLen: 300 }).cost, {
    flops: 4 * 2 * 4 * 300 * 16,
    bytes: 4 * (2 * 2 * 64 + 2 * 2 * 4 * 300 * 16 + 2),
  });
  assertEquals(lastRowsKernel(2, 8, 100).cost, { flops: 0, bytes: 4 * (2 * 200 + 2) });
  assertEquals(sampleKernel({ rows: 8, vocab: 1000, ringSteps: 16, advance: false }).cost!.flops, 8 * 1000);
});

/**
 * A corpus of generated kernels: every generator of `kernels/` (except the decoding and sampling ones, rmsnorm and
 * rope, which have their own owner) over a wide set of specs, and every plan the matmul planner makes for the LM's
 * shapes and others. The WGSL a generator writes is what runs on the GPU, so identical source means identical speed:
 * `kernel_wgsl_test.ts` compares each case's hash with `golden/kernel_wgsl.json`, which proves a refactor of the
 * generators or the planner byte-identical.
 *
 * When a kernel changes on purpose, regenerate the golden file (and say why in the commit):
 *
 * ```sh
 * deno run -A tests/kernel_corpus.ts --write
 * ```
 *
 * @module
 */
import type { KernelSource } from "../kernels/common.ts";
import { flatGrid, foldGrid, rowKernelEntry, workgroupReduce } from "../kernels/common.ts";
import { broadcastIndex, elementwiseKernel } from "../kernels/elementwise.ts";
import { concatKernel, gatherKernel, splitKernel, transposeKernel, transposeManyKernel } from "../kernels/copy.ts";
import { reduceKernel, type ReduceKind } from "../kernels/reduce.ts";
import { softmaxBackwardKernel, softmaxForwardKernel } from "../kernels/softmax.ts";
import {
  crossEntropyBackwardKernel,
  crossEntropyChunkBackwardKernel,
  crossEntropyForwardKernel,
} from "../kernels/cross_entropy.ts";
import { embeddingBackwardKernel, embeddingForwardKernel } from "../kernels/embedding.ts";
import { siluGateBackwardKernel, siluGateForwardKernel } from "../kernels/silu_gate.ts";
import { adamwKernel, gradNormKernel, sumSquaresKernel } from "../kernels/adamw.ts";
import {
  attentionBackwardDeltaKernel,
  attentionBackwardDkvKernel,
  attentionBackwardDqKernel,
  attentionForwardKernel,
  type AttentionSpec,
  type AttentionVariant,
} from "../kernels/attention.ts";
import {
  largeTiles,
  matmulKernel,
  type MatmulSpec,
  matmulStreamKFixupKernel,
  type MatmulTile,
  matmulTiles,
  type MatmulVariant,
} from "../kernels/matmul.ts";
import {
  matmulLaunch,
  type MatmulSettings,
  type MatmulTuning,
  planMatmul,
  setMatmulSettings,
  withMatmulTuning,
} from "../lib/tensor/ops/matmul.ts";

/** One case: a label and what it produces (a kernel, a WGSL snippet, or a plan), or the error it throws. */
export type Case = [label: string, run: () => unknown];

/** The canonical text of a case's result: kernels field by field in a fixed order, errors by their message. */
export function canonical(run: () => unknown): string {
  let value: unknown;
  try {
    value = run();
  } catch (e) {
    return `error: ${(e as Error).message}`;
  }
  return JSON.stringify(value, (_key, v) => {
    if (v && typeof v === "object" && "source" in v && "workgroups" in v) {
      const k = v as KernelSource;
      return { name: k.name, workgroups: k.workgroups, loops: k.loops ?? null, source: k.source };
    }
    return v;
  });
}

/** SHA-256 of `text`, hex, first 16 characters (enough to tell kernels apart; the file stays small). */
export async function shortHash(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest).slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- Matmul -----------------------------------------------------------------------------------------------------

const tile = (bm: number, bn: number, bk: number, tm = 8, tn = 8): MatmulTile => ({ bm, bn, bk, tm, tn });

/** The planner's tiles and the others the benchmarks time. */
const tiles: Record<string, MatmulTile> = {
  large: matmulTiles.large,
  medium: matmulTiles.medium,
  small: matmulTiles.small,
  wide: largeTiles.wide,
  n192: largeTiles.n192,
  n192Deep: largeTiles.n192Deep,
  deep: largeTiles.deep,
  "128x64": tile(128, 64, 16, 4, 8),
  "64x128": tile(64, 128, 16, 8, 4),
  bk8: tile(128, 128, 8),
  wide32: tile(128, 256, 32, 8, 16),
  "256x128": tile(256, 128, 16, 16, 8),
  threads128: tile(128, 128, 32, 8, 16),
  "192x128": tile(192, 128, 32, 12, 8),
};

interface Shape {
  batch: number;
  m: number;
  n: number;
  k: number;
  /** Batch strides of A and B (0: shared). */
  strides?: [number, number];
}

const shapes: Record<string, Shape> = {
  aligned: { batch: 1, m: 256, n: 512, k: 384 },
  odd: { batch: 1, m: 130, n: 70, k: 45 },
  k4: { batch: 1, m: 129, n: 68, k: 36 },
  batched: { batch: 3, m: 100, n: 40, k: 12, strides: [1200, 0] },
  bothBatched: { batch: 2, m: 36, n: 20, k: 40, strides: [1440, 800] },
  longK: { batch: 1, m: 97, n: 10, k: 1100 },
};

const transposes: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

function spec(shape: Shape, transA: boolean, transB: boolean, extra: Partial<MatmulSpec> = {}): MatmulSpec {
  const { batch, m, n, k, strides = [0, 0] } = shape;
  return { batch, m, n, k, transA, transB, batchStrideA: strides[0], batchStrideB: strides[1], ...extra };
}

const tr = (transA: boolean, transB: boolean) => `${transA ? "tA" : "A"}${transB ? "tB" : "B"}`;

/** Variant space: every pipeline, layout, transpose and padding. */
function* variantSpace(): Generator<Partial<MatmulVariant>> {
  for (const pipeline of ["none", "prefetch", "double", "double2"] as const) {
    for (const layout of ["flat", "lanes", "rows"] as const) {
      for (const transpose of ["scalar", "block"] as const) {
        for (const pad of [0, 4]) yield { pipeline, layout, transpose, pad, swizzle: 0 };
      }
    }
  }
}

function* matmulCases(): Generator<Case> {
  // Every tile with every variant, the four transposes cycling over two shapes (one aligned, one odd).
  let i = 0;
  for (const [tn, t] of Object.entries(tiles)) {
    for (const variant of variantSpace()) {
      for (const [transA, transB] of transposes) {
        const sn = ++i % 2 ? "odd" : "aligned";
        yield [
          `matmul ${tn} ${Object.values(variant).join("/")} ${tr(transA, transB)} ${sn}`,
          () => matmulKernel(spec(shapes[sn], transA, transB, { tile: t, variant })),
        ];
      }
    }
  }
  // Every tile with its default variant over all shapes, transposes and epilogues.
  for (const [tn, t] of Object.entries(tiles)) {
    for (const [sn, shape] of Object.entries(shapes)) {
      for (const [transA, transB] of transposes) {
        const base = spec(shape, transA, transB, { tile: t });
        const label = `matmul ${tn} default ${tr(transA, transB)} ${sn}`;
        yield [`${label} plain`, () => matmulKernel(base)];
        yield [`${label} addend`, () => matmulKernel({ ...base, addend: true })];
        yield [`${label} splitK 3`, () => matmulKernel({ ...base, splitK: 3 })];
        yield [`${label} splitK 3 addend`, () => matmulKernel({ ...base, splitK: 3, addend: true })];
        yield [`${label} streamK 5`, () => matmulKernel({ ...base, streamK: 5 })];
        yield [`${label} streamK 5 addend`, () => matmulKernel({ ...base, streamK: 5, addend: true })];
        yield [
          `${label} streamK 2 prefetch`,
          () => matmulKernel({ ...base, streamK: 2, variant: { pipeline: "prefetch" } }),
        ];
      }
    }
  }
  // The "dot" inner loop (x @ W^T) with every pipeline, shape and epilogue.
  for (const [tn, t] of Object.entries(tiles)) {
    for (const pipeline of ["none", "prefetch", "double", "double2"] as const) {
      for (const sn of ["k4", "aligned", "odd", "longK"]) {
        const base = spec(shapes[sn], false, true, { tile: t, variant: { compute: "dot", pipeline } });
        const label = `matmul ${tn} dot ${pipeline} ${sn}`;
        yield [`${label} plain`, () => matmulKernel(base)];
        yield [`${label} addend`, () => matmulKernel({ ...base, addend: true })];
        yield [`${label} splitK 2`, () => matmulKernel({ ...base, splitK: 2 })];
        yield [`${label} streamK 3`, () => matmulKernel({ ...base, streamK: 3 })];
      }
    }
    yield [
      `matmul ${tn} dot tA`,
      () => matmulKernel(spec(shapes.k4, true, true, { tile: t, variant: { compute: "dot" } })),
    ];
  }
  // Warp-shaped thread maps and swizzled launch orders.
  for (const [tn, t] of Object.entries(tiles)) {
    for (const warpRows of [4, 8, 2]) {
      for (const layout of ["flat", "lanes", "rows"] as const) {
        for (const [transA, transB] of transposes) {
          const variant = { warpRows, layout, pipeline: "prefetch" as const };
          yield [
            `matmul ${tn} warpRows ${warpRows} ${layout} ${tr(transA, transB)}`,
            () => matmulKernel(spec(shapes.odd, transA, transB, { tile: t, variant })),
          ];
        }
      }
    }
    for (const swizzle of [2, 3, 4, 8]) {
      for (const [transA, transB] of transposes) {
        const tall = { batch: 1, m: 1100, n: 300, k: 20 };
        yield [
          `matmul ${tn} swizzle ${swizzle} ${tr(transA, transB)}`,
          () => matmulKernel(spec(tall, transA, transB, { tile: t, variant: { swizzle } })),
        ];
        yield [
          `matmul ${tn} swizzle ${swizzle} ${tr(transA, transB)} batched`,
          () => matmulKernel(spec(shapes.batched, transA, transB, { tile: t, variant: { swizzle } })),
        ];
      }
    }
  }
  // Grids past 65,535 workgroups in a dimension (folded flat), and bad tiles.
  for (const [transA, transB] of transposes) {
    const label = tr(transA, transB);
    yield [
      `matmul fold batch ${label}`,
      () => matmulKernel(spec({ batch: 70000, m: 8, n: 8, k: 8, strides: [64, 64] }, transA, transB)),
    ];
    yield [
      `matmul fold rows ${label}`,
      () => matmulKernel(spec({ batch: 1, m: 32 * 70000, n: 8, k: 8 }, transA, transB, { tile: matmulTiles.small })),
    ];
    yield [
      `matmul fold splitK ${label}`,
      () =>
        matmulKernel(
          spec({ batch: 1, m: 32 * 70000, n: 8, k: 64 }, transA, transB, { tile: matmulTiles.small, splitK: 2 }),
        ),
    ];
  }
  // The SwiGLU gate's backward in the epilogue (w2's dX), plain and stream-K, and what it cannot combine with.
  for (const [tn, t] of Object.entries(tiles)) {
    for (const sn of ["aligned", "k4"]) {
      const base = spec(shapes[sn], false, false, { tile: t, gateBackward: true });
      yield [`matmul ${tn} gateBackward ${sn} plain`, () => matmulKernel(base)];
      yield [`matmul ${tn} gateBackward ${sn} streamK 3`, () => matmulKernel({ ...base, streamK: 3 })];
    }
  }
  for (const [sn, extra] of Object.entries({ splitK: { splitK: 2 }, addend: { addend: true } })) {
    yield [
      `matmul gateBackward ${sn}`,
      () => matmulKernel(spec(shapes.aligned, false, false, { gateBackward: true, ...extra })),
    ];
  }
  yield ["matmul gateBackward odd N", () => matmulKernel(spec(shapes.odd, false, false, { gateBackward: true }))];
  yield [
    "matmul gateBackward batched",
    () => matmulKernel(spec(shapes.bothBatched, false, false, { gateBackward: true })),
  ];
  yield ["matmul bad tile", () => matmulKernel(spec(shapes.odd, false, false, { tile: tile(128, 128, 16, 6, 8) }))];
  yield ["matmul bad pad", () => matmulKernel(spec(shapes.odd, false, false, { variant: { pad: 2 } }))];
  yield ["matmul splitK batched", () => matmulKernel(spec(shapes.batched, false, false, { splitK: 2 }))];
  yield ["matmul auto tile", () => matmulKernel(spec(shapes.odd, false, false))];
  // Stream-K fixups.
  for (const [tn, t] of Object.entries(tiles)) {
    for (const [m, n, k, units] of [[4096, 4096, 4096, 132], [200, 70, 300, 5], [200, 70, 20, 5], [1000, 258, 77, 7]]) {
      yield [`matmul fixup ${tn} ${m}x${n}x${k} ${units}`, () => matmulStreamKFixupKernel({ m, n, k, tile: t, units })];
      yield [
        `matmul fixup ${tn} ${m}x${n}x${k} ${units} addend`,
        () => matmulStreamKFixupKernel({ m, n, k, tile: t, units, addend: true }),
      ];
    }
    // The gate's backward needs n % 4 == 0: the shapes above with such an n (one without follows).
    for (const [m, n, k, units] of [[4096, 4096, 4096, 132], [200, 68, 300, 5], [200, 68, 20, 5], [1000, 260, 77, 7]]) {
      yield [
        `matmul fixup ${tn} ${m}x${n}x${k} ${units} gateBackward`,
        () => matmulStreamKFixupKernel({ m, n, k, tile: t, units, gateBackward: true }),
      ];
    }
  }
  // RoPE in the epilogue: a packed q/k/v shape (3 heads of 64 in 192 columns, the first two rotating), shared or
  // per-row positions, plain and stream-K, its fixup; and the shapes it refuses.
  const qkv = { batch: 1, m: 300, n: 192, k: 64 };
  for (const [tn, t] of Object.entries(tiles)) {
    for (const cycle of [0, 100]) {
      const rope = { headDim: 64, columns: 128, cycle, tableRows: 128 };
      const base = spec(qkv, false, false, { tile: t, rope });
      yield [`matmul ${tn} rope cycle ${cycle}`, () => matmulKernel(base)];
      yield [`matmul ${tn} rope cycle ${cycle} streamK 7`, () => matmulKernel({ ...base, streamK: 7 })];
      yield [
        `matmul fixup ${tn} rope cycle ${cycle}`,
        () => matmulStreamKFixupKernel({ ...qkv, tile: t, units: 7, rope }),
      ];
    }
  }
  const rope = { headDim: 64, columns: 128, cycle: 0, tableRows: 128 };
  yield ["matmul rope splitK", () => matmulKernel(spec(qkv, false, false, { rope, splitK: 2 }))];
  yield ["matmul rope addend", () => matmulKernel(spec(qkv, false, false, { rope, addend: true }))];
  yield ["matmul rope odd N", () => matmulKernel(spec(shapes.odd, false, false, { rope: { ...rope, headDim: 2 } }))];
  yield ["matmul rope gateBackward", () => matmulKernel(spec(qkv, false, false, { rope, gateBackward: true }))];
  yield [
    "matmul fixup rope gateBackward",
    () => matmulStreamKFixupKernel({ ...qkv, tile: matmulTiles.small, units: 7, rope, gateBackward: true }),
  ];
  yield [
    "matmul fixup gateBackward odd n",
    () => matmulStreamKFixupKernel({ m: 200, n: 70, k: 300, tile: matmulTiles.small, units: 5, gateBackward: true }),
  ];
  yield* planCases();
}

/** The LM's products (TinyStories shape: 8192 rows, d 512, d_ff 1344, vocab 10000), fused ones, squares, others. */
function planShapes(): [
  string,
  { batch: number; m: number; n: number; k: number; transA: boolean; transB: boolean },
][] {
  const R = 8192, D = 512, FF = 1344, V = 10000;
  const lm: [string, number, number, number, boolean, boolean][] = [
    ["qkvo fwd", R, D, D, false, true],
    ["w1 fwd", R, FF, D, false, true],
    ["w2 fwd", R, D, FF, false, true],
    ["lm_head fwd", R, V, D, false, true],
    ["qkvo dX", R, D, D, false, false],
    ["w1 dX", R, D, FF, false, false],
    ["w2 dX", R, FF, D, false, false],
    ["lm_head dX", R, D, V, false, false],
    ["qkvo dW", D, D, R, true, false],
    ["w1 dW", FF, D, R, true, false],
    ["w2 dW", D, FF, R, true, false],
    ["lm_head dW", V, D, R, true, false],
    ["qkv fwd", R, 3 * D, D, false, true],
    ["w13 fwd", R, 2 * FF, D, false, true],
    ["qkv dX", R, D, 3 * D, false, false],
    ["w13 dX", R, D, 2 * FF, false, false],
    ["qkv dW", 3 * D, D, R, true, false],
    ["w13 dW", 2 * FF, D, R, true, false],
    ["small lm fwd", 8192, 128, 128, false, true],
    ["small lm head", 8192, 512, 128, false, true],
    ["small lm dW", 128, 512, 8192, true, false],
    ["4224x4096x4096", 4224, 4096, 4096, false, false],
    ["1536x3072x8192", 1536, 3072, 8192, false, false],
    ["odd", 130, 70, 45, false, false],
    ["long K", 5, 7, 1030, false, false],
    ["decode", 1, 10000, 512, false, true],
  ];
  const out: [string, { batch: number; m: number; n: number; k: number; transA: boolean; transB: boolean }][] = lm
    .map(([name, m, n, k, transA, transB]) => [name, { batch: 1, m, n, k, transA, transB }]);
  for (const s of [256, 1024, 1536, 2048, 2560, 3072, 4096, 6144]) {
    for (const [transA, transB] of transposes) {
      out.push([`${s}^3 ${tr(transA, transB)}`, { batch: 1, m: s, n: s, k: s, transA, transB }]);
    }
  }
  // Attention's composite products: (B*H) batches of (T, T) scores.
  out.push(["scores", { batch: 512, m: 256, n: 256, k: 32, transA: false, transB: true }]);
  out.push(["probs @ v", { batch: 512, m: 256, n: 32, k: 256, transA: false, transB: false }]);
  out.push(["dP^T", { batch: 512, m: 256, n: 32, k: 256, transA: true, transB: false }]);
  return out;
}

/**
 * What `matmul` dispatches for a problem under the current settings ({@linkcode matmulLaunch}): the plan, then each
 * kernel (split-K: the split kernel and the sum; stream-K: the kernel, its fixup and the workspace's bytes; else the
 * kernel, with an addend when asked), after the transpose of B when it runs from a transposed copy.
 */
function dispatched(
  s: { batch: number; m: number; n: number; k: number; transA: boolean; transB: boolean; gateBackward?: boolean },
  maxSharedBytes: number,
  addend: boolean,
): unknown {
  const full = { ...s, batchStrideA: s.batch > 1 ? s.m * s.k : 0, batchStrideB: s.batch > 1 ? s.k * s.n : 0 };
  const { plan, mode, main, finish, scratchBytes, transposeB } = matmulLaunch(full, addend, maxSharedBytes);
  const first = transposeB ? [transposeB] : [];
  if (mode === "splitK") return { plan, kernels: [...first, main, finish] };
  if (mode === "streamK") return { plan, workspace: scratchBytes, kernels: [...first, main, finish] };
  return { plan, kernels: [...first, main] };
}

function* planCases(): Generator<Case> {
  const settings: [string, Partial<MatmulSettings>, Partial<MatmulTuning>][] = [
    ["default", {}, {}],
    ["no stream-K", {}, { autoStreamK: false }],
    ["dot", {}, { transposedBCompute: "dot" }],
    ["outer", {}, { transposedBCompute: "outer" }],
    ["108 units", { computeUnits: 108 }, {}],
  ];
  for (const [sn, setting, tuning] of settings) {
    for (const [name, s] of planShapes()) {
      for (const maxShared of [Infinity, 32768, 16384]) {
        for (const addend of [false, true]) {
          yield [`plan ${sn} ${name} shared ${maxShared}${addend ? " addend" : ""}`, () => {
            const before = setMatmulSettings(setting);
            try {
              return withMatmulTuning(tuning, () => dispatched(s, maxShared, addend));
            } finally {
              setMatmulSettings(before);
            }
          }];
        }
      }
    }
  }
  // The gate's backward in dG's epilogue: w2's dX and other row-major products (a long K that would split, an
  // odd N that does not fit).
  const gated = new Set(["w2 dX", "qkvo dX", "w1 dX", "1536x3072x8192", "odd"]);
  for (const [sn, setting, tuning] of settings) {
    for (const [name, s] of planShapes().filter(([name]) => gated.has(name))) {
      for (const maxShared of [Infinity, 32768]) {
        yield [`plan ${sn} ${name} shared ${maxShared} gateBackward`, () => {
          const before = setMatmulSettings(setting);
          try {
            return withMatmulTuning(tuning, () => dispatched({ ...s, gateBackward: true }, maxShared, false));
          } finally {
            setMatmulSettings(before);
          }
        }];
      }
    }
  }
  yield [
    "plan forced split and stream",
    () => planMatmul({ batch: 1, m: 4096, n: 4096, k: 4096 }, { splitK: 2, streamK: 132 }),
  ];
  yield ["plan forced stream whole waves", () => planMatmul({ batch: 1, m: 4224, n: 4096, k: 4096 }, { streamK: 132 })];
  yield ["plan forced tile", () => planMatmul({ batch: 1, m: 4096, n: 4096, k: 4096 }, { tile: matmulTiles.small })];
}

// ---- Attention --------------------------------------------------------------------------------------------------

function* attentionVariants(): Generator<AttentionVariant> {
  for (const rowsPerThread of [1, 2] as const) {
    for (const queryBlock of [64, 128] as const) {
      for (const keyBlock of [32, 64] as const) {
        for (const keysPerThread of [1, 2] as const) {
          for (const keyGroup of [64, 128] as const) {
            for (const queryTile of [32, 64] as const) {
              for (const unroll of ["none", "forward", "all"] as const) {
                yield {
                  rowsPerThread,
                  queryBlock,
                  keyBlock,
                  keysPerThread,
                  keyGroup,
                  queryTile,
                  unroll,
                  order: "blocks",
                  rowPipeline: "none",
                  dkv: "rows",
                  dq: "rows",
                  forward: "rows",
                  tile: 16,
                  flashPipeline: "none",
                  flashThreads: 64,
                  scoresQueries: 128,
                  scoresThreads: 128,
                  scoresPipeline: "none",
                };
              }
            }
          }
        }
      }
    }
  }
}

function* attentionCases(): Generator<Case> {
  const specs: Record<string, AttentionSpec> = {
    bhtd: { bh: 8, tq: 100, tk: 100, d: 32, scale: 32 ** -0.5, causal: true, heads: 1 },
    bthd: { bh: 8, tq: 70, tk: 70, d: 16, scale: 0.25, causal: true, heads: 4 },
    packed: { bh: 8, tq: 70, tk: 70, d: 32, scale: 32 ** -0.5, causal: true, heads: 4, packed: true },
    cross: { bh: 3, tq: 5, tk: 77, d: 8, scale: 0.3, causal: true, heads: 1 },
    full: { bh: 2, tq: 33, tk: 45, d: 4, scale: 1, causal: false, heads: 2 },
    d64: { bh: 4, tq: 256, tk: 256, d: 64, scale: 0.125, causal: true, heads: 1 },
    fold: { bh: 70000, tq: 1, tk: 1, d: 4, scale: 1, causal: true, heads: 1 },
  };
  let i = 0;
  const names = Object.keys(specs);
  for (const variant of attentionVariants()) {
    // Every variant on two of the specs (cycling), every spec with the default-like first variants below.
    for (const sn of [names[i % names.length], names[(i + 3) % names.length]]) {
      // The row kernels' fields name the variant (the flash kernels' have their own cases below).
      const {
        order: _o,
        rowPipeline: _rp,
        dkv: _k,
        dq: _q,
        forward: _f,
        tile: _t,
        flashPipeline: _fp,
        flashThreads: _n,
        scoresQueries: _sq,
        scoresThreads: _st,
        scoresPipeline: _sp,
        ...rowFields
      } = variant;
      const s = specs[sn], label = `${sn} ${Object.values(rowFields).join("/")}`;
      yield [`attention forward ${label}`, () => attentionForwardKernel({ ...s, variant })];
      yield [`attention dq ${label}`, () => attentionBackwardDqKernel({ ...s, variant })];
      yield [`attention dkv ${label}`, () => attentionBackwardDkvKernel({ ...s, variant })];
    }
    i++;
  }
  const base: AttentionVariant = {
    rowsPerThread: 1,
    queryBlock: 64,
    keyBlock: 32,
    keysPerThread: 1,
    keyGroup: 64,
    queryTile: 32,
    unroll: "none",
    order: "blocks",
    rowPipeline: "none",
    dkv: "rows",
    dq: "rows",
    forward: "rows",
    tile: 16,
    flashPipeline: "none",
    flashThreads: 64,
    scoresQueries: 128,
    scoresThreads: 128,
    scoresPipeline: "none",
  };
  for (const [sn, s] of Object.entries(specs)) {
    const flashShapes = [[16, 64, "none"], [32, 64, "none"], [16, 128, "none"], [32, 128, "none"], [32, 64, "all"]];
    for (const [tile, flashThreads, unroll] of flashShapes as [16 | 32, 64 | 128, "none" | "all"][]) {
      const variant = { ...base, forward: "flash", dkv: "flash", dq: "flash", tile, flashThreads, unroll } as const;
      const label = `${sn} flash ${tile} ${flashThreads}${unroll === "all" ? " unrolled" : ""}`;
      yield [`attention forward ${label}`, () => attentionForwardKernel({ ...s, variant })];
      yield [`attention dq ${label}`, () => attentionBackwardDqKernel({ ...s, variant })];
      yield [`attention dkv ${label}`, () => attentionBackwardDkvKernel({ ...s, variant })];
    }
  }
  // dQ and dK rotated back by RoPE as they are stored (packed only): shared positions and a list per sequence, on
  // every backward kernel.
  for (const unrope of [{ cycle: 70, tableRows: 128 }, { cycle: 0, tableRows: 256 }]) {
    const s = { ...specs.packed, unrope }, label = `packed unrope ${unrope.cycle}`;
    const flash = { ...base, dkv: "flash", dq: "flash", tile: 16, flashThreads: 64 } as const;
    const scores = { ...base, dkv: "flash", dq: "scores", tile: 32, flashThreads: 128, unroll: "forward" } as const;
    for (const [vn, variant] of [["rows", base], ["flash", flash], ["scores", scores]] as const) {
      yield [`attention dq ${label} ${vn}`, () => attentionBackwardDqKernel({ ...s, variant })];
      yield [`attention dkv ${label} ${vn}`, () => attentionBackwardDkvKernel({ ...s, variant })];
    }
  }
  for (const [sn, s] of Object.entries(specs)) {
    for (const unroll of ["none", "forward"] as const) {
      // dQ from the dS the flash dK/dV kernel saves.
      const flash = { dkv: "flash", dq: "scores", tile: 32, flashThreads: 128 } as const;
      const variant = { ...base, ...flash, scoresQueries: 64, scoresThreads: 256, unroll } as const;
      yield [`attention dq ${sn} scores ${unroll}`, () => attentionBackwardDqKernel({ ...s, variant })];
      const prefetch = { ...variant, scoresPipeline: "prefetch" } as const;
      yield [
        `attention dq ${sn} scores prefetch ${unroll}`,
        () => attentionBackwardDqKernel({ ...s, variant: prefetch }),
      ];
      yield [`attention dkv ${sn} scores ${unroll}`, () => attentionBackwardDkvKernel({ ...s, variant })];
      const staged = { ...prefetch, flashPipeline: "prefetch" } as const;
      yield [
        `attention dkv ${sn} scores flash prefetch ${unroll}`,
        () => attentionBackwardDkvKernel({ ...s, variant: staged }),
      ];
      yield [
        `attention dq ${sn} flash prefetch ${unroll}`,
        () => attentionBackwardDqKernel({ ...s, variant: { ...staged, dq: "flash" } }),
      ];
      const rows = { ...base, dq: "scores", unroll } as const;
      yield [`attention dkv ${sn} rows scores ${unroll}`, () => attentionBackwardDkvKernel({ ...s, variant: rows })];
      // The row kernels with the next key block or query tile loaded ahead.
      const ahead = { ...base, rowPipeline: "prefetch", unroll } as const;
      yield [`attention forward ${sn} rows prefetch ${unroll}`, () => attentionForwardKernel({ ...s, variant: ahead })];
      yield [`attention dq ${sn} rows prefetch ${unroll}`, () => attentionBackwardDqKernel({ ...s, variant: ahead })];
      yield [`attention dkv ${sn} rows prefetch ${unroll}`, () => attentionBackwardDkvKernel({ ...s, variant: ahead })];
      // Heavy blocks first: the row kernels, the flash ones, dQ from the saved scores.
      for (const v of [{ ...base, unroll }, { ...base, ...flash, forward: "flash", unroll }] as const) {
        const heavy = { ...v, order: "heavy" } as const, kind = v.dkv;
        yield [
          `attention forward ${sn} ${kind} heavy ${unroll}`,
          () => attentionForwardKernel({ ...s, variant: heavy }),
        ];
        yield [`attention dq ${sn} ${kind} heavy ${unroll}`, () => attentionBackwardDqKernel({ ...s, variant: heavy })];
        yield [
          `attention dkv ${sn} ${kind} heavy ${unroll}`,
          () => attentionBackwardDkvKernel({ ...s, variant: heavy }),
        ];
      }
    }
  }
  for (const [sn, s] of Object.entries(specs)) {
    for (const unroll of ["none", "forward", "all"] as const) {
      const variant = { ...base, unroll };
      yield [`attention forward ${sn} ${unroll}`, () => attentionForwardKernel({ ...s, variant })];
      yield [`attention dq ${sn} ${unroll}`, () => attentionBackwardDqKernel({ ...s, variant })];
      yield [`attention dkv ${sn} ${unroll}`, () => attentionBackwardDkvKernel({ ...s, variant })];
    }
  }
  for (const [rows, d] of [[1024, 32], [100, 4], [70000 * 256, 64]]) {
    yield [`attention delta ${rows} ${d}`, () => attentionBackwardDeltaKernel({ rows, d })];
  }
}

// ---- The other generators ---------------------------------------------------------------------------------------

function* elementwiseCases(): Generator<Case> {
  const f = "f32" as const, i = "i32" as const;
  const specs: [string, Parameters<typeof elementwiseKernel>[0]][] = [
    ["scalar", { name: "neg", outShape: [], outDtype: f, inputs: [{ shape: [], dtype: f }], expr: "-v0" }],
    ["same", {
      name: "add",
      outShape: [2, 3],
      outDtype: f,
      inputs: [{ shape: [2, 3], dtype: f }, { shape: [2, 3], dtype: f }],
      expr: "v0 + v1",
    }],
    ["row", {
      name: "mul",
      outShape: [4, 2, 3],
      outDtype: f,
      inputs: [{ shape: [4, 1, 3], dtype: f }, { shape: [2, 1], dtype: f }],
      expr: "v0 * v1",
    }],
    ["one", {
      name: "mul",
      outShape: [5, 7],
      outDtype: f,
      inputs: [{ shape: [1], dtype: f }, { shape: [5, 7], dtype: f }],
      expr: "v0 * v1",
    }],
    ["none", { name: "fill", outShape: [3, 3], outDtype: i, inputs: [], expr: "7" }],
    ["cast", { name: "cast", outShape: [10], outDtype: i, inputs: [{ shape: [10], dtype: f }], expr: "i32(v0)" }],
    ["big", {
      name: "exp",
      outShape: [70000, 300],
      outDtype: f,
      inputs: [{ shape: [70000, 300], dtype: f }],
      expr: "exp(v0)",
    }],
    ["part", {
      name: "add",
      outShape: [40000000],
      outDtype: f,
      inputs: [{ shape: [40000000], dtype: f }, { shape: [1], dtype: f }],
      expr: "v0 + v1",
      part: 1 << 24,
    }],
    ["part broadcast", {
      name: "where",
      outShape: [2, 20000000],
      outDtype: f,
      inputs: [{ shape: [2, 20000000], dtype: f }, { shape: [20000000], dtype: f }],
      expr: "v0 * v1",
      part: 1 << 22,
    }],
    ["middle", {
      name: "sub",
      outShape: [2, 5, 3, 4],
      outDtype: f,
      inputs: [{ shape: [5, 1, 4], dtype: f }, { shape: [2, 1, 3, 1], dtype: f }],
      expr: "v0 - v1",
    }],
  ];
  for (const [label, s] of specs) yield [`elementwise ${label}`, () => elementwiseKernel(s)];
  const bi: [number[], number[]][] = [[[3], [2, 3]], [[2, 1], [2, 3]], [[1], [4]], [[4, 1, 3], [2, 4, 5, 3]], [[2, 3], [
    2,
    3,
  ]]];
  for (const [a, b] of bi) yield [`broadcastIndex ${a} ${b}`, () => [broadcastIndex(a, b), broadcastIndex(a, b, "g")]];
}

function* copyCases(): Generator<Case> {
  const gathers: [string, Parameters<typeof gatherKernel>[0]][] = [
    ["transpose", { outShape: [3, 2], inStrides: [1, 3], dtype: "f32" }],
    ["permute", { outShape: [2, 4, 3, 5], inStrides: [60, 5, 20, 1], dtype: "f32" }],
    ["slice", { outShape: [4, 3], inStrides: [7, 1], inOffset: 2, dtype: "i32" }],
    ["pad", { outShape: [4, 3], inStrides: [3, 1], outStrides: [7, 1], outOffset: 2, dtype: "f32" }],
    ["broadcast", { outShape: [5, 1, 6], inStrides: [0, 0, 1], dtype: "f32" }],
    ["offset", { outShape: [10], inStrides: [1], outOffset: 5, dtype: "f32" }],
    ["big", { outShape: [70000, 300], inStrides: [1, 70000], dtype: "f32" }],
  ];
  for (const [label, s] of gathers) yield [`gather ${label}`, () => gatherKernel(s)];
  for (const [rows, cols] of [[768, 2304], [50257, 768], [3, 5], [70000, 40]]) {
    yield [`transpose ${rows} ${cols}`, () => transposeKernel({ rows, cols })];
  }
  yield ["transpose 37 41 i32", () => transposeKernel({ rows: 37, cols: 41, dtype: "i32" })];
  const block = [{ rows: 1536, cols: 512 }, { rows: 512, cols: 512 }, { rows: 2688, cols: 512 }, {
    rows: 512,
    cols: 1344,
  }];
  yield ["transpose many TinyStories block", () => transposeManyKernel({ matrices: block })];
  yield [
    "transpose many 37 41, 5 3",
    () => transposeManyKernel({ matrices: [{ rows: 37, cols: 41 }, { rows: 5, cols: 3 }] }),
  ];
  for (const sizes of [[6, 4], [1], [3, 3, 3, 3, 3, 3, 3], [20000000, 5], [16, 4, 12]]) {
    for (const dtype of ["f32", "i32"] as const) {
      yield [`concat ${sizes} ${dtype}`, () => concatKernel({ sizes, dtype })];
      yield [`split ${sizes} ${dtype}`, () => splitKernel({ sizes, dtype })];
    }
  }
}

function* reduceCases(): Generator<Case> {
  const dims: [number, number, number, number?][] = [
    [4, 8, 1],
    [1, 100000, 1],
    [70000, 10, 1],
    [3, 50, 7],
    [3, 50, 8],
    [1, 8192, 512],
    [2, 1000, 12, 64],
    [2, 1000, 13, 64],
    [1, 3000000, 1, 4096],
    [5, 300, 1, 100],
    [10, 20, 30, 50],
    [1, 512, 512],
    [1, 1024, 768],
    [2, 600, 3],
    [1, 4096, 8],
  ];
  for (const kind of ["sum", "max"] as ReduceKind[]) {
    for (const [outer, reduced, inner, group] of dims) {
      for (const scale of [1, 0.125]) {
        yield [
          `reduce ${kind} ${outer}x${reduced}x${inner} group ${group} scale ${scale}`,
          () => reduceKernel({ kind, outer, reduced, inner, group, scale }),
        ];
      }
    }
  }
}

function* rowOpCases(): Generator<Case> {
  for (const [rows, cols] of [[64, 100], [8, 256], [70000, 32], [3, 1]]) {
    for (const scale of [1, 0.25]) {
      for (const causalQueries of [undefined, Math.min(rows, cols)]) {
        for (const log of [false, true]) {
          const s = { rows, cols, scale, causalQueries, log };
          const label = `${rows}x${cols} scale ${scale} causal ${causalQueries} log ${log}`;
          yield [`softmax forward ${label}`, () => softmaxForwardKernel(s)];
          yield [`softmax backward ${label}`, () => softmaxBackwardKernel(s)];
        }
      }
    }
  }
  for (const [rows, vocab] of [[64, 50257], [64, 10000], [8192, 512], [70000, 7], [3, 4]]) {
    yield [`cross entropy forward ${rows} ${vocab}`, () => crossEntropyForwardKernel({ rows, vocab })];
    yield [`cross entropy backward ${rows} ${vocab}`, () => crossEntropyBackwardKernel({ rows, vocab })];
  }
  // The forward's longest rows held in registers (16 vec4s a thread), and the shortest it loops over.
  for (const vocab of [16384, 16388]) {
    yield [`cross entropy forward 64 ${vocab}`, () => crossEntropyForwardKernel({ rows: 64, vocab })];
  }
  for (const [rows, vocab, meanOver] of [[2560, 50257, 16384], [64, 10000, 200], [8, 7, 13]]) {
    const spec = { rows, vocab, meanOver };
    yield [`cross entropy chunk backward ${rows} ${vocab} of ${meanOver}`, () => crossEntropyChunkBackwardKernel(spec)];
  }
  // Vocabularies padded by linearCrossEntropy (paddedVocab).
  for (const [rows, vocab, cols] of [[2048, 50257, 50304], [200, 37, 40]]) {
    const label = `${rows} ${vocab} cols ${cols}`;
    yield [`cross entropy forward ${label}`, () => crossEntropyForwardKernel({ rows, vocab, cols })];
    yield [
      `cross entropy chunk backward ${label}`,
      () => crossEntropyChunkBackwardKernel({ rows, vocab, cols, meanOver: 8192 }),
    ];
  }
  for (const [tokens, dim, vocab] of [[256, 64, 1000], [8192, 512, 10000], [1, 3, 5], [70000, 300, 50257]]) {
    yield [`embedding forward ${tokens} ${dim} ${vocab}`, () => embeddingForwardKernel({ tokens, dim, vocab })];
    yield [`embedding backward ${tokens} ${dim} ${vocab}`, () => embeddingBackwardKernel({ tokens, dim, vocab })];
  }
  for (const [rows, width] of [[64, 256], [8192, 1344], [5, 7], [70000, 300]]) {
    yield [`silu gate forward ${rows} ${width}`, () => siluGateForwardKernel({ rows, width })];
    yield [`silu gate backward ${rows} ${width}`, () => siluGateBackwardKernel({ rows, width })];
  }
  for (
    const sizes of [
      [1024, 300],
      [1],
      [16384 * 200, 7, 512 * 1344],
      Array.from({ length: 39 }, (_, i) => 1000 * i + 1),
    ]
  ) {
    yield [`adamw ${sizes.length} ${sizes[0]}`, () => adamwKernel({ sizes })];
    yield [`sum squares ${sizes.length} ${sizes[0]}`, () => sumSquaresKernel({ sizes, offset: 0 })];
    yield [`sum squares ${sizes.length} ${sizes[0]} offset`, () => sumSquaresKernel({ sizes, offset: 17 })];
  }
  for (const partials of [1, 1400, 100_000]) {
    yield [`grad norm ${partials}`, () => gradNormKernel({ partials })];
    yield [`grad norm ${partials} clip`, () => gradNormKernel({ partials, maxNorm: 1 })];
  }
}

function* commonCases(): Generator<Case> {
  for (const n of [1, 100, 65535, 65536, 100000, 70000 * 300]) yield [`flatGrid ${n}`, () => flatGrid(n)];
  for (const dims of [[2, 8], [2, 70000], [70000], [3, 4, 70000], [65535, 65535, 1]]) {
    yield [`foldGrid ${dims}`, () => foldGrid(dims)];
  }
  yield ["foldGrid too many", () => foldGrid([65535, 65535, 2])];
  for (const size of [64, 128, 256]) {
    yield [
      `workgroupReduce ${size}`,
      () => [workgroupReduce("sum", "v", "t", size), workgroupReduce("max", "m", "x", size, "s")],
    ];
    yield [`rowKernelEntry ${size}`, () => [rowKernelEntry(10, size), rowKernelEntry(100000, size)]];
  }
}

/** Every case of the corpus, in a fixed order. */
export function* kernelCorpus(): Generator<Case> {
  yield* commonCases();
  yield* elementwiseCases();
  yield* copyCases();
  yield* reduceCases();
  yield* rowOpCases();
  yield* attentionCases();
  yield* matmulCases();
}

/** The URL of the golden hashes. */
export const GOLDEN = new URL("./golden/kernel_wgsl.json", import.meta.url);

/** Hashes of every case, by label. Throws on a repeated label. */
export async function corpusHashes(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [label, run] of kernelCorpus()) {
    if (label in out) throw new Error(`Repeated corpus label ${label}`);
    out[label] = await shortHash(canonical(run));
  }
  return out;
}

if (import.meta.main) {
  if (!Deno.args.includes("--write")) {
    console.error("Usage: deno run -A tests/kernel_corpus.ts --write   (rewrites tests/golden/kernel_wgsl.json)");
    Deno.exit(2);
  }
  const hashes = await corpusHashes();
  const tmp = new URL("./golden/kernel_wgsl.json.tmp", import.meta.url);
  await Deno.writeTextFile(tmp, JSON.stringify(hashes, null, 2) + "\n");
  await Deno.rename(tmp, GOLDEN);
  console.log(`${Object.keys(hashes).length} cases written to ${GOLDEN.pathname}`);
}

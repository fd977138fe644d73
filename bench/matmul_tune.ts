/**
 * Matmul tuning on the GPU: times code-generation variants and tiles of the generated kernel by GPU timestamps on
 * the LM's shapes and 4096^3, interleaving variants over several rounds (so clock drift hits all alike), and checks
 * each timed kernel's output at sampled entries against float64 dot products.
 *
 * `deno run -A bench/matmul_tune.ts --plan streamk2 [--reps 10] [--rounds 2] [--only substring] [--small]`
 *
 * `--small` runs every case of the plan once on a small odd shape with the same transposes and prints its error
 * against float64 instead of timing it: a check that runs on a software adapter before GPU time is spent.
 *
 * A plan is a list of shapes, each with the cases to time against each other; "auto (lib)" is what the library's
 * planner runs. Cases labelled "legacy" time another version of the generator, copied beside this file as
 * bench/matmul_legacy.ts with the tile and split-K rule its library used (`legacyDispatch`); they are skipped when
 * the file is absent. To compare with the generator of a commit:
 * `git show <commit>:kernels/matmul.ts | sed 's#"./common.ts"#"../kernels/common.ts"#' > bench/matmul_legacy.ts`.
 * The figures each plan produced, and the choices they led to, are in bench/RESULTS.md. Each row also gives the span
 * (first start to last end, gaps between dispatches included) as TFLOP/s, the figure to compare with a wall-clock
 * timing of a multi-dispatch plan.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { empty } from "../lib/tensor/tensor.ts";
import { gpu, initGpu, matmul, type Tensor, tensor, tidy } from "../lib/tensor/mod.ts";
import {
  chooseLargeTile,
  chooseVariant,
  matmulSharedBytes,
  type MatmulTile,
  matmulTiles,
  type MatmulVariant,
} from "../kernels/matmul.ts";
import { reduceKernel } from "../kernels/reduce.ts";
import { planMatmul, withMatmulTuning } from "../lib/tensor/ops/matmul.ts";
// Optional: another version of the generator to compare with (see the module doc).
type LegacyGen = (spec: Record<string, unknown>) => { name: string; source: string; workgroups: number[] };
let legacyKernel: LegacyGen | null = null;
try {
  legacyKernel = (await import("./" + "matmul_legacy.ts")).matmulKernel as LegacyGen;
} catch { /* not present */ }

const args = parseArgs({
  options: {
    plan: { type: "string", default: "explore" },
    reps: { type: "string", default: "10" },
    rounds: { type: "string", default: "3" },
    only: { type: "string" },
    // Check every case of the plan for correctness on a small odd shape with the same transposes (no timing):
    // runs on software adapters, before spending GPU time.
    small: { type: "boolean", default: false },
    // Milliseconds of the same work queued before each timing, and the least each timing covers: longer runs show
    // whether clocks drop under sustained load (power or heat).
    "warm-ms": { type: "string", default: "150" },
    "time-ms": { type: "string", default: "30" },
    // Operand values: "uniform" in [-1, 1), or "normal" (as torch.randn, which the PyTorch references use).
    data: { type: "string", default: "uniform" },
  },
});
const warmMs = Number(args.values["warm-ms"]), timeMs = Number(args.values["time-ms"]);
if (args.values.data !== "uniform" && args.values.data !== "normal") {
  throw new Error(`--data must be "uniform" or "normal", got ${JSON.stringify(args.values.data)}`);
}
const backend = await initGpu();
const reps = Number(args.values.reps), rounds = Number(args.values.rounds);
console.log(`# ${backend.info.description}; timestamps ${backend.info.timestamps}; reps ${reps} x rounds ${rounds}`);

interface Shape {
  name: string;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
}
interface Case {
  label: string;
  legacy?: boolean;
  tile?: MatmulTile;
  splitK?: number;
  /** Stream-K units (0: off); automatic when absent. */
  streamK?: number;
  variant?: Partial<MatmulVariant>;
}

const sq = (s: number): Shape => ({ name: `${s}^3`, m: s, n: s, k: s });
const R = 8192, D = 512, FF = 1344, V = 10000;
const lmShapes: Shape[] = [
  { name: "qkvo fwd", m: R, n: D, k: D, transB: true },
  { name: "w1 fwd", m: R, n: FF, k: D, transB: true },
  { name: "w2 fwd", m: R, n: D, k: FF, transB: true },
  { name: "lm_head fwd", m: R, n: V, k: D, transB: true },
  { name: "qkvo dX", m: R, n: D, k: D },
  { name: "w1 dX", m: R, n: D, k: FF },
  { name: "w2 dX", m: R, n: FF, k: D },
  { name: "lm_head dX", m: R, n: D, k: V },
  { name: "qkvo dW", m: D, n: D, k: R, transA: true },
  { name: "w1 dW", m: FF, n: D, k: R, transA: true },
  { name: "w2 dW", m: D, n: FF, k: R, transA: true },
  { name: "lm_head dW", m: V, n: D, k: R, transA: true },
];
/** The TinyStories LM head's forward product, h @ W^T from W's transposed copy, at a vocabulary of `v` words. */
const headFwd = (v: number): Shape => ({ name: `ts head fwd V ${v}`, m: R, n: v, k: D });
/** A weight gradient dW = dY^T X (transposed A) of an (m, n) weight over `k` rows (a TinyStories batch's). */
const weightGrad = (name: string, m: number, n: number, k = R): Shape => ({ name, m, n, k, transA: true });
const t = (bm: number, bn: number, bk: number, tm = 8, tn = 8): MatmulTile => ({ bm, bn, bk, tm, tn });
const vr = (s: string): Partial<MatmulVariant> => {
  const [pipeline, pad, transpose, swizzle, layout, warpRows] = s.split(":");
  return {
    pipeline: pipeline as MatmulVariant["pipeline"],
    pad: Number(pad ?? 4),
    transpose: (transpose ?? "scalar") as MatmulVariant["transpose"],
    swizzle: Number(swizzle ?? 0),
    layout: (layout ?? "lanes") as MatmulVariant["layout"],
    warpRows: Number(warpRows ?? 0),
  };
};

/** The cases, where `cond` holds (a tile that only fits some shapes); none otherwise. */
const when = (cond: boolean | undefined, ...cases: Case[]): Case[] => (cond ? cases : []);

const plans: Record<string, () => [Shape, Case[]][]> = {
  // The LM head's three products with the vocabulary padded to a multiple of 128, 192 or 256 (the logits' extra
  // columns cost their FLOPs; whole tiles drop the bounds checks, and 192 or 256 take the wider tiles), and the
  // K-dependence of the 128 x 256 tile at 8192 x 512 (one wave of 128 tiles) for the per-tile cost.
  // Every product of the TinyStories step (fused q/k/v and w1/w3) as the library runs it, for a per-shape comparison
  // with cuBLAS f32 (the forward products from W's transposed copy, so untransposed here; their residual adds left out).
  tsStep: () => {
    const auto: Case[] = [{ label: "auto (lib)" }];
    // (name, output features, input features) of each weight.
    const layer: [string, number, number][] = [
      ["qkv", 3 * D, D],
      ["wo", D, D],
      ["w13", 2 * FF, D],
      ["w2", D, FF],
      ["head", V, D],
    ];
    // Products over K = 512 also with the automatic tile double-buffered (one barrier a step), where both buffers fit
    // in NVIDIA's 48 KiB of workgroup memory.
    const double = (sh: Shape): Case[] => {
      const tile = chooseLargeTile({ batch: 1, m: sh.m, n: sh.n, transA: !!sh.transA, transB: !!sh.transB });
      const variant: MatmulVariant = { ...chooseVariant({ transA: !!sh.transA }, tile), pipeline: "double" };
      return when(sh.k === D && matmulSharedBytes(tile, variant) <= 48 * 1024, { label: "double", variant });
    };
    return [
      ...layer.map(([name, out, inp]): Shape => ({ name: `ts ${name} fwd`, m: R, n: out, k: inp })),
      ...layer.map(([name, out, inp]): Shape => ({ name: `ts ${name} dX`, m: R, n: inp, k: out })),
      ...layer.map(([name, out, inp]): Shape => ({ name: `ts ${name} dW`, m: out, n: inp, k: R, transA: true })),
    ].map((sh): [Shape, Case[]] => [sh, [...auto, ...double(sh)]]);
  },
  // The TinyStories weight gradients at split-K factors around the wave model's choice, on the automatic tile and the
  // other 128 x 128 one (BK 16 "flat" or BK 32 prefetch); and the head's forward with and without stream-K at its
  // bounds-checked vocabulary and at whole tiles.
  tsDw: () => {
    const deep = t(128, 128, 32);
    const splits = (tile: MatmulTile, tag: string): Case[] =>
      [2, 3, 4, 6, 8, 11, 16].map((s) => ({ label: `${tag} split ${s}`, tile, splitK: s }));
    const dW = (name: string, m: number): Shape => ({ name: `ts ${name} dW`, m, n: D, k: R, transA: true });
    const grads = [dW("head", V), dW("qkv", 3 * D), dW("wo", D), dW("w13", 2 * FF)];
    const streamK = [V, 10112].map((v): [Shape, Case[]] => [headFwd(v), [
      { label: "auto (lib)" },
      { label: "no stream-K", streamK: 0 },
    ]]);
    return [
      ...grads.map((sh): [Shape, Case[]] => {
        const auto = chooseLargeTile({ batch: 1, m: sh.m, n: sh.n, transA: true, transB: false });
        const other = auto.bk === 32 ? matmulTiles.large : deep;
        return [sh, [
          { label: "auto (lib)" },
          ...splits(auto, `bk${auto.bk}`),
          { label: `bk${other.bk} auto split`, tile: other },
        ]];
      }),
      ...streamK,
    ];
  },
  // The TinyStories head's weight gradient both ways round: dW = dlogits^T h (10000 x 512, as the library runs it)
  // against dW^T = h^T dlogits (512 x 10000, which would need a transpose after), on the automatic and wider tiles.
  headDwT: () => {
    const wide = t(128, 256, 16, 8, 16), n192 = t(128, 192, 16, 8, 12);
    const cases: Case[] = [
      { label: "auto (lib)" },
      { label: "128x256 prefetch rows", tile: wide, variant: vr("prefetch:0:scalar:0:rows") },
      { label: "128x192 prefetch lanes", tile: n192, variant: vr("prefetch:0:scalar:0:lanes") },
      { label: "128x128 bk16 flat", tile: matmulTiles.large, variant: vr("none:0:scalar:0:flat") },
      { label: "128x128 bk32 prefetch rows", tile: t(128, 128, 32), variant: vr("prefetch:0:scalar:0:rows") },
    ];
    return [
      weightGrad("ts head dW", V, D),
      weightGrad("ts head dW^T", D, V),
    ].map((sh): [Shape, Case[]] => [sh, cases]);
  },
  // The head's forward at vocabularies whose rows are 128-byte aligned (10016, 10048: a bounds-checked last column of
  // tiles) or not (10000), and at whole tiles (10112): which of the two costs the 10000-word head its 6%.
  headAlign: () =>
    [10000, 10016, 10048, 10112].map((v): [Shape, Case[]] => [headFwd(v), [
      { label: "auto (lib)" },
    ]]),
  headPad: () => {
    const auto: Case[] = [{ label: "auto (lib)" }];
    const head = (v: number): Shape[] => [
      headFwd(v),
      { name: `ts head dX V ${v}`, m: R, n: D, k: v },
      { name: `ts head dW V ${v}`, m: v, n: D, k: R, transA: true },
    ];
    const kdep = [512, 1024, 2048, 4096].map((k): Shape => ({ name: `8192x512 K ${k}`, m: R, n: D, k }));
    return [...[10000, 10112, 10176, 10240].flatMap(head), ...kdep].map((sh): [Shape, Case[]] => [sh, auto]);
  },
  // 512-thread workgroups (8 x 8 outputs a thread over 256 x 128 and 128 x 256 tiles: twice the resident warps of the
  // 256-thread 128 x 256 tile, whose 128 accumulators allow one workgroup per SM) against the automatic choice.
  threads512: () => {
    const tall = t(256, 128, 16), wide = t(128, 256, 16);
    const cases = (sh: Shape): Case[] => [
      { label: "auto (lib)" },
      { label: "256x128 8x8 prefetch rows", tile: tall, variant: vr("prefetch:0:scalar:0:rows") },
      { label: "256x128 8x8 none lanes", tile: tall, variant: vr("none:0:scalar:0:lanes") },
      ...when(!sh.transB, { label: "128x256 8x8 prefetch rows", tile: wide, variant: vr("prefetch:0:scalar:0:rows") }),
    ];
    return [sq(4096), ...lmShapes].map((sh): [Shape, Case[]] => [sh, cases(sh)]);
  },
  // Weight gradients (transposed A: both operands staged as loaded) on the 128 x 256 tile, split along K as the
  // planner splits it, against the automatic choice; the TinyStories and GPT-2 small shapes.
  wideA: () => {
    const wide = t(128, 256, 16, 8, 16);
    const cases: Case[] = [
      { label: "auto (lib)" },
      { label: "128x256 flat", tile: wide, variant: vr("none:0:scalar:0:flat") },
      { label: "128x256 prefetch flat", tile: wide, variant: vr("prefetch:0:scalar:0:flat") },
      { label: "128x256 prefetch rows", tile: wide, variant: vr("prefetch:0:scalar:0:rows") },
    ];
    return [
      weightGrad("ts qkv dW", 3 * D, D),
      weightGrad("ts wo dW", D, D),
      weightGrad("ts w13 dW", 2 * FF, D),
      weightGrad("ts lm_head dW", V, D),
      weightGrad("gpt2 qkv dW", 2304, 768),
      weightGrad("gpt2 wo dW", 768, 768),
      weightGrad("gpt2 w13 dW", 4096, 768),
      weightGrad("gpt2 w2 dW", 768, 2048),
    ].map((sh): [Shape, Case[]] => [sh, cases]);
  },
  // Weight gradients (transposed A, split K as the planner splits each tile) on the 128 x 128 tiles with the pipelines
  // and layouts the automatic choice does not take for them: BK 16 with register prefetch or two workgroup buffers
  // (the automatic BK-16 tile runs "flat" without prefetch), BK 32 without prefetch; TinyStories and GPT-2 small.
  dwPipelines: () => {
    const bk16 = matmulTiles.large, bk32 = t(128, 128, 32);
    const cases: Case[] = [
      { label: "auto (lib)" },
      { label: "bk16 flat", tile: bk16, variant: vr("none:0:scalar:0:flat") },
      { label: "bk16 flat prefetch", tile: bk16, variant: vr("prefetch:0:scalar:0:flat") },
      { label: "bk16 flat double", tile: bk16, variant: vr("double:0:scalar:0:flat") },
      { label: "bk16 rows prefetch", tile: bk16, variant: vr("prefetch:0:scalar:0:rows") },
      { label: "bk32 rows", tile: bk32, variant: vr("none:0:scalar:0:rows") },
      { label: "bk32 rows prefetch", tile: bk32, variant: vr("prefetch:0:scalar:0:rows") },
    ];
    return [
      weightGrad("ts head dW", V, D),
      weightGrad("ts qkv dW", 3 * D, D),
      weightGrad("ts wo dW", D, D),
      weightGrad("ts w13 dW", 2 * FF, D),
      weightGrad("gpt2 qkv dW", 2304, 768),
      weightGrad("gpt2 w13 dW", 4096, 768),
      weightGrad("gpt2 b8 head chunk dW", 50304, 768, 2048),
    ].map((sh): [Shape, Case[]] => [sh, cases]);
  },
  // Products over a short K (512: 32 BK-16 steps a tile) on the 128 x 192 tile at BK 32 (block transposes of A),
  // against the automatic choice.
  shortK: () => {
    const deep192 = t(128, 192, 32, 8, 12);
    return [
      { name: "ts w13 fwd", m: R, n: 2 * FF, k: D },
      { name: "ts w2 dX", m: R, n: FF, k: D },
    ].map((sh): [Shape, Case[]] => [sh, [
      { label: "auto (lib)" },
      { label: "128x192 bk32 block rows", tile: deep192, variant: vr("prefetch:0:block:0:rows") },
      { label: "128x192 bk32 block rows pad4", tile: deep192, variant: vr("prefetch:4:block:0:rows") },
      { label: "128x192 bk32 scalar rows", tile: deep192, variant: vr("prefetch:0:scalar:0:rows") },
    ]]);
  },
  // Untransposed products whose N is no multiple of 256 (the forward products from a transposed copy of W): the
  // 128 x 256 tile with bounds-checked columns against the automatic choice.
  ragged: () => {
    const wide = t(128, 256, 16, 8, 16), n192 = t(128, 192, 16, 8, 12);
    return [
      { name: "ts w13 fwd", m: R, n: 2 * FF, k: D },
      { name: "ts lm_head fwd", m: R, n: V, k: D },
      { name: "gpt2 head chunk fwd", m: 2048, n: 50304, k: 768 },
      { name: "gpt2 b16 head chunk fwd", m: 2432, n: 50304, k: 768 },
      { name: "gpt2 b16 head chunk fwd (old rows)", m: 2368, n: 50304, k: 768 },
    ].map((sh): [Shape, Case[]] => [sh, [
      { label: "auto (lib)" },
      { label: "128x256", tile: wide },
      ...when(sh.n % 192 !== 0, { label: "128x192", tile: n192 }),
    ]]);
  },
  // The legacy generator with its own tile choice against the automatic choice, on every shape.
  final: () =>
    [sq(1024), sq(2048), sq(4096), ...lmShapes].map((
      sh,
    ) => [sh, [{ label: "legacy", legacy: true }, { label: "auto (lib)" }]]),
  // BK-32 block transposes with register prefetch (BK-16 flat for transposed A) against the automatic choice.
  next: () => {
    const deep = t(128, 128, 32);
    return [sq(4096), sq(2048), ...lmShapes].map((sh): [Shape, Case[]] => [sh, [
      { label: "auto (lib)" },
      {
        label: sh.transA ? "bk16 flat prefetch" : "bk32 block prefetch",
        tile: sh.transA ? matmulTiles.large : deep,
        variant: vr(`prefetch:0:block:0:${sh.transA ? "flat" : "lanes"}`),
      },
    ]]);
  },
  // Stream-K for the last, partial wave, against the same tiles without it.
  streamk: () => {
    const off: Case[] = [{ label: "auto (lib)" }, { label: "no stream-K", streamK: 0 }];
    return [
      sq(4096),
      sq(3072),
      { name: "w13 fwd", m: R, n: 2 * FF, k: D, transB: true },
      lmShapes[3],
      { name: "w2 dX", m: R, n: FF, k: D },
    ].map((sh): [Shape, Case[]] => [sh, off]);
  },
  // Every shape (square, the LM's, its fused projections) where the automatic plan takes stream-K, against the plan
  // without it (one workgroup per tile or split-K).
  streamk2: () => {
    const fused: Shape[] = [
      { name: "qkv fwd", m: R, n: 3 * D, k: D, transB: true },
      { name: "w13 fwd", m: R, n: 2 * FF, k: D, transB: true },
      { name: "qkv dX", m: R, n: D, k: 3 * D },
      { name: "w13 dX", m: R, n: D, k: 2 * FF },
      { name: "qkv dW", m: 3 * D, n: D, k: R, transA: true },
      { name: "w13 dW", m: 2 * FF, n: D, k: R, transA: true },
    ];
    const shapes = [1536, 2560, 3072, 4096, 6144].map(sq).concat(lmShapes, fused);
    return shapes.filter((sh) => planMatmul({ batch: 1, ...sh }).streamK > 0)
      .map((sh): [Shape, Case[]] => [sh, [{ label: "auto (lib)" }, { label: "no stream-K", streamK: 0 }]]);
  },
  // Wave quantization of the automatic 128 x 256 tile. 4096^3 is 512 tiles, 3.88 waves of 132; 4224 rows make 528
  // (4 full waves), 4608 x 2816 make 396 (3 full waves); 132 and 144 tiles of K = 8192 show the slot count.
  waves: () =>
    [
      sq(4096),
      { name: "528 tiles", m: 4224, n: 4096, k: 4096 },
      { name: "396 tiles", m: 4608, n: 2816, k: 4096 },
      { name: "132 tiles", m: 1536, n: 2816, k: 8192 },
      { name: "144 tiles", m: 1536, n: 3072, k: 8192 },
    ].map((sh): [Shape, Case[]] => [sh, [{ label: "auto (lib), unsplit", splitK: 1 }]]),
  // One barrier a step with constant buffer indices ("double2"), and the "dot" inner loop for x @ W^T, against the
  // automatic choice.
  explore11: () => {
    const dv = (s: string): Partial<MatmulVariant> => ({ ...vr(s), compute: "dot" });
    const wide = t(128, 256, 16, 8, 16), n192 = t(128, 192, 16, 8, 12), L = matmulTiles.large;
    const plain: Case[] = [
      { label: "auto (lib)" },
      { label: "128x256 bk16 double2 rows", tile: wide, variant: vr("double2:0:scalar:0:rows") },
      { label: "128x128 bk16 double2 rows", tile: L, variant: vr("double2:0:scalar:0:rows") },
    ];
    const tB: Case[] = [
      { label: "auto (lib)" },
      { label: "dot 128x128 bk32 prefetch", tile: t(128, 128, 32), variant: dv("prefetch:0:scalar:0:rows") },
      { label: "dot 128x128 bk16 prefetch", tile: L, variant: dv("prefetch:0:scalar:0:rows") },
      { label: "dot 128x128 bk16 double2", tile: L, variant: dv("double2:0:scalar:0:rows") },
      { label: "dot 128x256 bk16 prefetch", tile: wide, variant: dv("prefetch:0:scalar:0:rows") },
    ];
    const tA: Case[] = [
      { label: "auto (lib)" },
      { label: "128x128 bk16 double2 rows", tile: L, variant: vr("double2:0:scalar:0:rows") },
      { label: "128x192 bk16 double2 rows", tile: n192, variant: vr("double2:0:scalar:0:rows") },
    ];
    return [sq(4096), ...lmShapes].map((sh): [Shape, Case[]] => [sh, sh.transA ? tA : sh.transB ? tB : plain]);
  },
  // The "dot" inner loop for x @ W^T (K-contiguous tiles, no transposing stores) with each tile and pipeline.
  explore10: () => {
    const dv = (s: string): Partial<MatmulVariant> => ({ ...vr(s), compute: "dot" });
    const cases = (sh: Shape): Case[] => [
      { label: "auto (lib)" },
      { label: "dot 128x128 bk32 prefetch", tile: t(128, 128, 32), variant: dv("prefetch:0:scalar:0:rows") },
      { label: "dot 128x128 bk32 none", tile: t(128, 128, 32), variant: dv("none:0:scalar:0:rows") },
      { label: "dot 128x128 bk16 prefetch", tile: t(128, 128, 16), variant: dv("prefetch:0:scalar:0:rows") },
      { label: "dot 128x128 bk16 none", tile: t(128, 128, 16), variant: dv("none:0:scalar:0:rows") },
      { label: "dot 128x256 bk16 prefetch", tile: t(128, 256, 16, 8, 16), variant: dv("prefetch:0:scalar:0:rows") },
      ...when(sh.n % 192 === 0, {
        label: "dot 128x192 bk16 prefetch",
        tile: t(128, 192, 16, 8, 12),
        variant: dv("prefetch:0:scalar:0:rows"),
      }),
    ];
    return lmShapes.filter((sh) => sh.transB).map((sh): [Shape, Case[]] => [sh, cases(sh)]);
  },
  // Launch order (L2 grouping) and warp shape for the 128 x 256 tile at 4096^3.
  explore9: () => {
    const wide = t(128, 256, 16, 8, 16);
    return [[sq(4096), [
      { label: "auto (lib)" },
      { label: "128x256 rows swizzle 4", tile: wide, variant: vr("prefetch:0:scalar:4:rows") },
      { label: "128x256 rows swizzle 8", tile: wide, variant: vr("prefetch:0:scalar:8:rows") },
      { label: "128x256 rows swizzle 16", tile: wide, variant: vr("prefetch:0:scalar:16:rows") },
      { label: "128x256 rows warp8", tile: wide, variant: vr("prefetch:0:scalar:0:rows:8") },
      { label: "128x256 rows block", tile: wide, variant: vr("prefetch:0:block:0:rows") },
    ]]];
  },
  // Padding, block transposes and warp shapes around the 128x256 BK 16 and 128x128 BK 32 "rows" tiles, and
  // 192-wide tiles where N or M is 1344.
  explore8: () => {
    const wide = t(128, 256, 16, 8, 16), deep = t(128, 128, 32);
    const plain = (sh: Shape): Case[] => [
      { label: "auto (lib)" },
      { label: "bk32 prefetch rows pad4", tile: deep, variant: vr("prefetch:4:block:0:rows") },
      { label: "128x256 bk16 prefetch rows", tile: wide, variant: vr("prefetch:0:scalar:0:rows") },
      { label: "128x256 bk16 prefetch rows pad4", tile: wide, variant: vr("prefetch:4:scalar:0:rows") },
      { label: "128x256 bk16 prefetch rows pad4 block", tile: wide, variant: vr("prefetch:4:block:0:rows") },
      { label: "128x256 bk16 prefetch rows pad4 warp4", tile: wide, variant: vr("prefetch:4:scalar:0:rows:4") },
      { label: "128x256 bk16 prefetch rows pad8", tile: wide, variant: vr("prefetch:8:scalar:0:rows") },
      ...when(sh.n % 192 === 0, {
        label: "128x192 bk16 prefetch rows pad4",
        tile: t(128, 192, 16, 8, 12),
        variant: vr("prefetch:4:scalar:0:rows"),
      }, {
        label: "128x192 bk16 prefetch lanes",
        tile: t(128, 192, 16, 8, 12),
        variant: vr("prefetch:0:scalar:0:lanes"),
      }),
    ];
    const tA = (sh: Shape): Case[] => [
      { label: "auto (lib)" },
      { label: "bk32 rows prefetch", tile: deep, variant: vr("prefetch:0:scalar:0:rows") },
      { label: "bk32 rows prefetch pad4", tile: deep, variant: vr("prefetch:4:scalar:0:rows") },
      {
        label: "128x256 bk32 rows prefetch pad4",
        tile: t(128, 256, 32, 8, 16),
        variant: vr("prefetch:4:scalar:0:rows"),
      },
      { label: "128x256 bk16 rows prefetch", tile: wide, variant: vr("prefetch:0:scalar:0:rows") },
      ...when(sh.n % 192 === 0, {
        label: "128x192 bk32 rows prefetch",
        tile: t(128, 192, 32, 8, 12),
        variant: vr("prefetch:0:scalar:0:rows"),
      }),
      ...when(sh.m % 192 === 0, {
        label: "192x128 bk32 rows prefetch",
        tile: t(192, 128, 32, 12, 8),
        variant: vr("prefetch:0:scalar:0:rows"),
      }),
    ];
    return [sq(4096), ...lmShapes].map((sh): [Shape, Case[]] => [sh, sh.transA ? tA(sh) : plain(sh)]);
  },
  // The "rows" layout at 128x256 (BK 16 and 32) and with double buffering; 128x192 tiles for N 1344.
  explore7: () => {
    const deep = t(128, 128, 32), wide = t(128, 256, 16, 8, 16), wide32 = t(128, 256, 32, 8, 16);
    const plain = (sh: Shape): Case[] => [
      { label: "auto (lib)" },
      { label: "bk32 prefetch rows", tile: deep, variant: vr("prefetch:0:block:0:rows") },
      { label: "bk32 prefetch rows pad4", tile: deep, variant: vr("prefetch:4:block:0:rows") },
      { label: "128x256 bk16 prefetch lanes", tile: wide, variant: vr("prefetch:0:scalar:0:lanes") },
      { label: "128x256 bk16 prefetch rows", tile: wide, variant: vr("prefetch:0:scalar:0:rows") },
      { label: "128x256 bk16 double rows", tile: wide, variant: vr("double:0:scalar:0:rows") },
      { label: "128x256 bk32 prefetch rows block", tile: wide32, variant: vr("prefetch:0:block:0:rows") },
      { label: "128x256 bk32 prefetch rows scalar", tile: wide32, variant: vr("prefetch:0:scalar:0:rows") },
      { label: "128x256 bk32 none rows block", tile: wide32, variant: vr("none:0:block:0:rows") },
      { label: "128x256 bk8 double rows", tile: t(128, 256, 8, 8, 16), variant: vr("double:0:scalar:0:rows") },
      ...when(sh.n % 192 === 0, {
        label: "128x192 bk16 prefetch lanes",
        tile: t(128, 192, 16, 8, 12),
        variant: vr("prefetch:0:scalar:0:lanes"),
      }, {
        label: "128x192 bk32 prefetch rows",
        tile: t(128, 192, 32, 8, 12),
        variant: vr("prefetch:0:scalar:0:rows"),
      }),
    ];
    const tA = (sh: Shape): Case[] => [
      { label: "auto (lib)" },
      { label: "bk32 lanes prefetch", tile: deep, variant: vr("prefetch:0:scalar:0:lanes") },
      { label: "bk32 rows prefetch", tile: deep, variant: vr("prefetch:0:scalar:0:rows") },
      { label: "bk16 rows none", tile: matmulTiles.large, variant: vr("none:0:scalar:0:rows") },
      { label: "128x256 bk32 rows prefetch", tile: wide32, variant: vr("prefetch:0:scalar:0:rows") },
      { label: "128x256 bk16 rows double", tile: wide, variant: vr("double:0:scalar:0:rows") },
      ...when(sh.n % 192 === 0, {
        label: "128x192 bk32 rows prefetch",
        tile: t(128, 192, 32, 8, 12),
        variant: vr("prefetch:0:scalar:0:rows"),
      }),
    ];
    return [sq(4096), sq(2048), ...lmShapes].map((sh): [Shape, Case[]] => [sh, sh.transA ? tA(sh) : plain(sh)]);
  },
  // Warp-shaped thread maps, 128-thread workgroups, 128x256 and 256x128 tiles, BK 32 for transposed A.
  explore6: () => {
    const deep = t(128, 128, 32);
    const plain: Case[] = [
      { label: "auto (lib)" },
      { label: "bk32 prefetch warp4", tile: deep, variant: vr("prefetch:0:block:0:lanes:4") },
      { label: "bk32 prefetch warp8", tile: deep, variant: vr("prefetch:0:block:0:lanes:8") },
      { label: "bk32 none warp4", tile: deep, variant: vr("none:0:block:0:lanes:4") },
      {
        label: "128x128 8x16 bk32 prefetch (128 thr)",
        tile: t(128, 128, 32, 8, 16),
        variant: vr("prefetch:0:block:0:lanes"),
      },
      { label: "128x128 8x16 bk32 none (128 thr)", tile: t(128, 128, 32, 8, 16), variant: vr("none:0:block:0:lanes") },
      {
        label: "128x128 16x8 bk32 prefetch (128 thr)",
        tile: t(128, 128, 32, 16, 8),
        variant: vr("prefetch:0:block:0:lanes"),
      },
      {
        label: "128x128 8x16 bk16 prefetch (128 thr)",
        tile: t(128, 128, 16, 8, 16),
        variant: vr("prefetch:0:scalar:0:lanes"),
      },
      { label: "128x256 8x16 bk16 prefetch", tile: t(128, 256, 16, 8, 16), variant: vr("prefetch:0:scalar:0:lanes") },
      { label: "128x256 8x16 bk16 none", tile: t(128, 256, 16, 8, 16), variant: vr("none:0:scalar:0:lanes") },
      {
        label: "128x256 8x16 bk16 prefetch warp4",
        tile: t(128, 256, 16, 8, 16),
        variant: vr("prefetch:0:scalar:0:lanes:4"),
      },
      { label: "256x128 16x8 bk16 prefetch", tile: t(256, 128, 16, 16, 8), variant: vr("prefetch:0:scalar:0:lanes") },
      {
        label: "256x128 16x8 bk32 flat prefetch",
        tile: t(256, 128, 32, 16, 8),
        variant: vr("prefetch:0:block:0:flat"),
      },
      {
        label: "64x128 8x8 bk32 prefetch (128 thr)",
        tile: t(64, 128, 32, 8, 8),
        variant: vr("prefetch:0:block:0:lanes"),
      },
    ];
    const tA: Case[] = [
      { label: "auto (lib)" },
      { label: "bk16 flat none warp4", tile: matmulTiles.large, variant: vr("none:0:scalar:0:flat:4") },
      { label: "bk32 flat prefetch", tile: deep, variant: vr("prefetch:0:scalar:0:flat") },
      { label: "bk32 flat none", tile: deep, variant: vr("none:0:scalar:0:flat") },
      { label: "bk32 flat prefetch warp4", tile: deep, variant: vr("prefetch:0:scalar:0:flat:4") },
      { label: "bk32 lanes prefetch", tile: deep, variant: vr("prefetch:0:scalar:0:lanes") },
      {
        label: "128x128 8x16 bk32 flat prefetch (128 thr)",
        tile: t(128, 128, 32, 8, 16),
        variant: vr("prefetch:0:scalar:0:flat"),
      },
      {
        label: "128x256 8x16 bk16 flat prefetch",
        tile: t(128, 256, 16, 8, 16),
        variant: vr("prefetch:0:scalar:0:flat"),
      },
    ];
    return [sq(4096), sq(2048), ...lmShapes].map((sh): [Shape, Case[]] => [sh, sh.transA ? tA : plain]);
  },
  // BK-32 variants at 4096^3: block transposes with prefetch, a swizzled launch, a 64x128 tile, scalar transposes.
  explore5: () => {
    const deep = t(128, 128, 32);
    return [[sq(4096), [
      { label: "auto (lib)" },
      { label: "bk32 block prefetch", tile: deep, variant: vr("prefetch:0:block:0:lanes") },
      { label: "bk32 block swizzle8", tile: deep, variant: vr("none:0:block:8:lanes") },
      { label: "64x128 8x4 bk32 block", tile: t(64, 128, 32, 8, 4), variant: vr("none:0:block:0:lanes") },
      { label: "bk32 scalar lanes", tile: deep, variant: vr("none:0:scalar:0:lanes") },
    ]]];
  },
  // The legacy generator, the automatic choice and BK-32 "lanes" and "flat" tiles on squares and the LM's shapes.
  r4: () => {
    const cands = (sh: Shape): Case[] => [
      { label: "legacy", legacy: true },
      { label: "auto (lib)" },
      { label: "lanes bk32 block", tile: t(128, 128, 32), variant: vr("none:0:block:0:lanes") },
      { label: "flat bk32 pad0", tile: t(128, 128, 32), variant: vr("none:0:scalar:0:flat") },
      ...when(sh.transB, { label: "lanes bk16 block", tile: matmulTiles.large, variant: vr("none:0:block:0:lanes") }),
      ...when(sh.transA, {
        label: "lanes bk16 scalar",
        tile: matmulTiles.large,
        variant: vr("none:0:scalar:0:lanes"),
      }),
    ];
    return [sq(4096), sq(2048), sq(1024), ...lmShapes].map((sh) => [sh, cands(sh)]);
  },
  // Pipelines (none, prefetch, double at BK 8) on the large, 128x64, 64x128 and medium tiles; split-K factors and
  // layouts of the lm_head weight gradient.
  r3: () => {
    const none = vr("none:4:scalar:0:lanes"),
      dbl = vr("double:4:scalar:0:lanes"),
      pre = vr("prefetch:4:scalar:0:lanes");
    const L = matmulTiles.large;
    const big: Case[] = [
      { label: "lanes none", tile: L, variant: none },
      { label: "lanes double bk8", tile: t(128, 128, 8), variant: dbl },
      { label: "lanes prefetch bk8", tile: t(128, 128, 8), variant: pre },
      { label: "128x64 4x8 none", tile: t(128, 64, 16, 4, 8), variant: none },
      { label: "128x64 4x8 double", tile: t(128, 64, 16, 4, 8), variant: dbl },
      { label: "128x64 4x8 prefetch", tile: t(128, 64, 16, 4, 8), variant: pre },
      { label: "64x128 8x4 none", tile: t(64, 128, 16, 8, 4), variant: none },
      { label: "64x128 8x4 double", tile: t(64, 128, 16, 8, 4), variant: dbl },
      { label: "medium none", tile: matmulTiles.medium, variant: none },
      { label: "medium double", tile: matmulTiles.medium, variant: dbl },
      { label: "lanes none bk32 block", tile: t(128, 128, 32), variant: vr("none:4:block:0:lanes") },
    ];
    const lm: Case[] = [
      { label: "lanes none", tile: L, variant: none },
      { label: "lanes double bk8", tile: t(128, 128, 8), variant: dbl },
      { label: "128x64 4x8 double", tile: t(128, 64, 16, 4, 8), variant: dbl },
      { label: "128x64 4x8 none", tile: t(128, 64, 16, 4, 8), variant: none },
    ];
    const dW: Case[] = [
      { label: "lanes none split1", tile: L, splitK: 1, variant: none },
      { label: "lanes none split2", tile: L, splitK: 2, variant: none },
      { label: "lanes none split5", tile: L, splitK: 5, variant: none },
      { label: "flat none split1", tile: L, splitK: 1, variant: vr("none:0:scalar:0:flat") },
      { label: "flat none split5", tile: L, splitK: 5, variant: vr("none:0:scalar:0:flat") },
      { label: "lanes none block split5", tile: L, splitK: 5, variant: vr("none:4:block:0:lanes") },
    ];
    return [[sq(4096), big], [lmShapes[0], lm], [lmShapes[1], lm], [lmShapes[11], dW]];
  },
  // "flat" and "lanes" layouts, pipelines and block transposes on every LM shape; split-K factors and tiles of the
  // weight gradients.
  r2: () => {
    const common: Case[] = [
      { label: "legacy", legacy: true },
      { label: "flat none pad0", tile: matmulTiles.large, variant: vr("none:0:scalar:0:flat") },
      { label: "lanes none", tile: matmulTiles.large, variant: vr("none:4:scalar:0:lanes") },
      { label: "lanes none block", tile: matmulTiles.large, variant: vr("none:4:block:0:lanes") },
      { label: "lanes double", tile: matmulTiles.large, variant: vr("double:4:scalar:0:lanes") },
      { label: "lanes double block", tile: matmulTiles.large, variant: vr("double:4:block:0:lanes") },
    ];
    const big: Case[] = [
      ...common,
      { label: "lanes prefetch", tile: matmulTiles.large, variant: vr("prefetch:4:scalar:0:lanes") },
      { label: "lanes none bk32", tile: t(128, 128, 32), variant: vr("none:4:scalar:0:lanes") },
      { label: "flat none bk32", tile: t(128, 128, 32), variant: vr("none:0:scalar:0:flat") },
      { label: "lanes none 128x64", tile: t(128, 64, 16), variant: vr("none:4:scalar:0:lanes") },
      { label: "lanes none 64x128", tile: t(64, 128, 16), variant: vr("none:4:scalar:0:lanes") },
      { label: "lanes none swz8", tile: matmulTiles.large, variant: vr("none:4:scalar:8:lanes") },
    ];
    const n1344: Case[] = [
      ...common,
      { label: "lanes none 128x64", tile: t(128, 64, 16), variant: vr("none:4:scalar:0:lanes") },
      { label: "lanes double 128x64", tile: t(128, 64, 16), variant: vr("double:4:scalar:0:lanes") },
    ];
    const dW = (splits: number[], tiles: [string, MatmulTile][]): Case[] => [
      { label: "legacy", legacy: true },
      { label: "auto (lib)" },
      ...tiles.flatMap(([tn, tile]) =>
        splits.flatMap((splitK) => [
          { label: `${tn} split${splitK} none`, tile, splitK, variant: vr("none:4:scalar:0:lanes") },
          { label: `${tn} split${splitK} double`, tile, splitK, variant: vr("double:4:scalar:0:lanes") },
        ])
      ),
    ];
    const L = matmulTiles.large, m128x64 = t(128, 64, 16);
    return [
      [sq(4096), big],
      [sq(2048), common],
      [lmShapes[0], common],
      [lmShapes[1], n1344],
      [lmShapes[2], common],
      [lmShapes[3], common],
      [lmShapes[4], common],
      [lmShapes[5], common],
      [lmShapes[6], n1344],
      [lmShapes[7], common.slice(0, 5)],
      [lmShapes[8], dW([8, 16], [["large", L], ["128x64", m128x64]])],
      [lmShapes[9], dW([3, 6], [["large", L], ["128x64", m128x64]])],
      [lmShapes[10], dW([3, 6], [["large", L]])],
      [lmShapes[11], [...common.slice(0, 5), { label: "auto (lib)" }]],
    ];
  },
  // Three cheap cases (transposed A, split-K, a 128x64 tile) to check the harness.
  // The forward products x @ W^T of both benchmark models (TinyStories, GPT-2 small) as the library runs them (W
  // stored (N, K), B transposed) against the same products from a transposed copy of W (K, N): what keeping W^T
  // beside W would buy. The GPT-2 head is one chunk of linearCrossEntropy at batch 8 (2048 rows).
  transposed: () => {
    const fwd: [string, number, number, number][] = [
      ["ts qkv", R, 3 * D, D],
      ["ts o", R, D, D],
      ["ts w13", R, 2 * FF, D],
      ["ts w2", R, D, FF],
      ["ts head", R, V, D],
      ["gpt2 qkv", R, 3 * 768, 768],
      ["gpt2 o", R, 768, 768],
      ["gpt2 w13", R, 2 * 2048, 768],
      ["gpt2 w2", R, 768, 2048],
      ["gpt2 head chunk", 2048, 50257, 768],
      ["gpt2 head", R, 50257, 768],
    ];
    return fwd.flatMap(([name, m, n, k]): [Shape, Case[]][] => [
      [{ name: `${name} x@W^T`, m, n, k, transB: true }, [{ label: "auto (lib)" }]],
      [{ name: `${name} x@Wt`, m, n, k }, [{ label: "auto (lib)" }]],
    ]);
  },
  // The three products of a chunk of GPT-2's head (2048 rows, vocab 50257) against the same with the vocabulary
  // padded to a multiple of 4 (50260) and of 64 (50304): what an odd N or K costs the vec4 loads and stores.
  vocab: () =>
    [50257, 50260, 50304].flatMap((v): [Shape, Case[]][] => [
      [{ name: `head fwd V ${v}`, m: 2048, n: v, k: 768, transB: true }, [{ label: "auto (lib)" }]],
      [{ name: `head dX V ${v}`, m: 2048, n: 768, k: v }, [{ label: "auto (lib)" }]],
      [{ name: `head dW V ${v}`, m: v, n: 768, k: 2048, transA: true }, [{ label: "auto (lib)" }]],
    ]),
  smoke: () => [
    [{ name: "small", m: 256, n: 192, k: 1040, transA: true }, [
      { label: "legacy", legacy: true },
      { label: "double", tile: matmulTiles.large, splitK: 3 },
      { label: "prefetch block", tile: t(128, 64, 16), variant: vr("prefetch:4:block:2") },
    ]],
  ],
  // Pipelines, padding, block transposes, a swizzle and other tiles around the large tile at 4096^3, on the LM's
  // products and on a weight gradient's split-K.
  explore: () => {
    const big: Case[] = [
      { label: "legacy", legacy: true },
      { label: "none:0:scalar", variant: vr("none:0:scalar") },
      { label: "none:4:scalar", variant: vr("none:4:scalar") },
      { label: "prefetch:4:scalar", variant: vr("prefetch:4:scalar") },
      { label: "prefetch:4:block", variant: vr("prefetch:4:block") },
      { label: "double:0:scalar", variant: vr("double:0:scalar") },
      { label: "double:4:scalar", variant: vr("double:4:scalar") },
      { label: "double:4:block", variant: vr("double:4:block") },
      { label: "double:4:scalar:8", variant: vr("double:4:scalar:8") },
      { label: "double 128x64", tile: t(128, 64, 16), variant: vr("double:4:scalar") },
      { label: "double 64x128", tile: t(64, 128, 16), variant: vr("double:4:scalar") },
      { label: "double bk8", tile: t(128, 128, 8), variant: vr("double:4:scalar") },
      { label: "prefetch bk32", tile: t(128, 128, 32), variant: vr("prefetch:4:scalar") },
    ];
    const lm: Case[] = [
      { label: "legacy", legacy: true },
      { label: "none:4:scalar", tile: matmulTiles.large, variant: vr("none:4:scalar") },
      { label: "prefetch:4:scalar", tile: matmulTiles.large, variant: vr("prefetch:4:scalar") },
      { label: "double:4:scalar", tile: matmulTiles.large, variant: vr("double:4:scalar") },
      { label: "double:4:block", tile: matmulTiles.large, variant: vr("double:4:block") },
      { label: "double 128x64", tile: t(128, 64, 16), variant: vr("double:4:scalar") },
      { label: "double 64x128", tile: t(64, 128, 16), variant: vr("double:4:scalar") },
    ];
    const dW: Case[] = [
      { label: "legacy", legacy: true },
      { label: "legacy split1", legacy: true, splitK: 1 },
      { label: "large split1", tile: matmulTiles.large, splitK: 1 },
      { label: "large split8", tile: matmulTiles.large, splitK: 8 },
      { label: "large split16", tile: matmulTiles.large, splitK: 16 },
      { label: "128x64 split8", tile: t(128, 64, 16), splitK: 8 },
      { label: "medium split4", tile: matmulTiles.medium, splitK: 4 },
      { label: "medium split8", tile: matmulTiles.medium, splitK: 8 },
    ];
    return [
      [sq(4096), big],
      [lmShapes[0], lm],
      [lmShapes[1], lm],
      [lmShapes[2], lm],
      [lmShapes[3], lm.slice(0, 5)],
      [lmShapes[4], lm],
      [lmShapes[8], dW],
    ];
  },
};

let seed = 1;
function randomArray(n: number): Float32Array {
  const a = new Float32Array(n);
  const uniform = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return (seed >>> 8) / 2 ** 23 - 1;
  };
  for (let i = 0; i < n; i++) {
    // Box-Muller from two uniforms in (0, 1].
    a[i] = args.values.data === "normal"
      ? Math.sqrt(-2 * Math.log((uniform() + 1.0000001) / 2.0000001)) * Math.cos(Math.PI * (uniform() + 1))
      : uniform();
  }
  return a;
}

/**
 * The legacy generator's dispatch with the tile and split-K rule of its library: the large tile when it gives 132
 * workgroups, else the medium one; K split to fill two waves of 132.
 */
function legacyDispatch(sh: Shape, a: Tensor, b: Tensor, out: Tensor, splitOverride?: number): void {
  const spec = {
    batch: 1,
    m: sh.m,
    n: sh.n,
    k: sh.k,
    transA: !!sh.transA,
    transB: !!sh.transB,
    batchStrideA: 0,
    batchStrideB: 0,
  };
  const tiles = matmulTiles; // unchanged names and sizes
  const groups = (tl: MatmulTile) => Math.ceil(sh.m / tl.bm) * Math.ceil(sh.n / tl.bn);
  const tile = groups(tiles.large) >= 132 ? tiles.large : tiles.medium;
  const g = groups(tile);
  const splits = splitOverride ??
    (g >= 132 || sh.k < 1024 ? 1 : Math.max(1, Math.min(Math.floor(sh.k / 256), Math.ceil(264 / g), 32)));
  const k = legacyKernel!({ ...spec, tile, splitK: splits });
  const be = gpu();
  if (splits > 1) {
    const layers = k.workgroups[2];
    const partial = be.alloc(layers * sh.m * sh.n * 4);
    be.dispatch(be.prepare(k.name + "_legacy", k.source), {
      buffers: [a.buffer, b.buffer, partial],
      workgroups: k.workgroups as [number, number, number],
    });
    const r = reduceKernel({ kind: "sum", outer: 1, reduced: layers, inner: sh.m * sh.n });
    be.dispatch(be.prepare(r.name, r.source), { buffers: [partial, out.buffer], workgroups: r.workgroups });
    be.free(partial);
  } else {
    be.dispatch(be.prepare(k.name + "_legacy", k.source), {
      buffers: [a.buffer, b.buffer, out.buffer],
      workgroups: k.workgroups as [number, number, number],
    });
  }
}

interface Row {
  shape: string;
  label: string;
  /** Kernel time per run (sum of the dispatches' timestamps), per round. */
  ms: number[];
  /** First start to last end per run, gaps between dispatches included, per round. */
  spanMs: number[];
  err: number;
  compileMs: number;
}
const rows: Row[] = [];
// Whole-process warm-up: bring the clocks up before the first timing.
if (!backend.info.isSoftware) {
  const wa = tensor(randomArray(2048 * 2048), { shape: [2048, 2048] });
  for (let i = 0; i < 150; i++) tidy(() => void matmul(wa, wa));
  await backend.sync();
  wa.dispose();
}
for (const [sh, cases] of plans[args.values.plan!]()) {
  if (args.values.only && !sh.name.includes(args.values.only)) continue;
  const { m, n, k } = args.values.small ? { m: 260, n: 268, k: 1100 } : sh;
  const ha = randomArray(m * k), hb = randomArray(k * n);
  const a = tensor(ha, { shape: sh.transA ? [k, m] : [m, k] }), b = tensor(hb, { shape: sh.transB ? [n, k] : [k, n] });
  const run = (c: Case): Tensor => {
    if (c.legacy) {
      const out = empty([m, n]);
      legacyDispatch(sh, a, b, out, c.splitK);
      return out;
    }
    const forced = { tile: c.tile, splitK: c.splitK, streamK: c.streamK, variant: c.variant };
    return withMatmulTuning(forced, () => matmul(a, b, { transA: sh.transA, transB: sh.transB }));
  };
  const live: { c: Case; row: Row }[] = [];
  for (const c of cases) {
    if (c.legacy && !legacyKernel) continue;
    const t0 = performance.now();
    let out: Tensor;
    try {
      out = run(c);
      const got = (await out.data()) as Float32Array;
      // Sampled entries against float64 dot products.
      let err = 0;
      for (let s = 0; s < 48; s++) {
        const i = (s * 7919 + 13) % m, j = (s * 104729 + 7) % n;
        let ref = 0;
        for (let p = 0; p < k; p++) {
          ref += (sh.transA ? ha[p * m + i] : ha[i * k + p]) * (sh.transB ? hb[j * k + p] : hb[p * n + j]);
        }
        err = Math.max(err, Math.abs(got[i * n + j] - ref) / Math.sqrt(k));
      }
      out.dispose();
      const row = {
        shape: sh.name,
        label: c.label,
        ms: [] as number[],
        spanMs: [] as number[],
        err,
        compileMs: performance.now() - t0,
      };
      rows.push(row);
      live.push({ c, row });
    } catch (e) {
      console.log(`${sh.name} ${c.label}: FAILED ${e}`);
    }
  }
  // The GPU drops its clocks within milliseconds of idling (345 MHz at rest), so a short kernel timed right after a
  // sync runs at a fraction of its speed: each timing follows --warm-ms of the same work submitted without a wait,
  // and repeats until it covers --time-ms.
  if (args.values.small) {
    for (const { row } of live) console.log(`${sh.name} ${row.label}: err ${row.err.toExponential(1)}`);
    a.dispose();
    b.dispose();
    continue;
  }
  const est = new Map<Case, number>();
  for (const { c } of live) {
    const timings = await backend.profile(() => void tidy(() => void run(c)));
    est.set(c, Math.max(0.005, timings.reduce((s, x) => s + x.ms, 0)));
  }
  for (let r = 0; r < rounds; r++) {
    for (const { c, row } of live) {
      const e = est.get(c)!;
      const warm = Math.min(4000, Math.ceil(warmMs / e)), n = Math.min(4000, Math.max(reps, Math.ceil(timeMs / e)));
      for (let i = 0; i < warm; i++) tidy(() => void run(c));
      const { kernels, spanMs } = await backend.profileSpan(() => {
        for (let i = 0; i < n; i++) tidy(() => void run(c));
      });
      row.ms.push(kernels.reduce((s, x) => s + x.ms, 0) / n);
      row.spanMs.push(spanMs / n);
      est.set(c, Math.min(...row.ms));
    }
  }
  const flops = 2 * m * n * k;
  for (const { row } of live) {
    const best = Math.min(...row.ms), tf = (ms: number) => (flops / (ms / 1e3) / 1e12).toFixed(1);
    console.log(
      `| ${sh.name} ${m}x${n}x${k}${sh.transA ? " tA" : ""}${sh.transB ? " tB" : ""} | ${row.label} | ${tf(best)} | ${
        row.ms.map(tf).join(" ")
      } | ${best.toFixed(3)} | span ${tf(Math.min(...row.spanMs))} | err ${row.err.toExponential(1)} | compile+check ${
        row.compileMs.toFixed(0)
      } ms |`,
    );
  }
  a.dispose();
  b.dispose();
}
console.log(JSON.stringify(rows));

/**
 * Matrix multiplication, batched, with either operand transposed in storage, on the generated tiled kernel.
 *
 * The planner picks a tile, a split of K and stream-K by a wave model of the GPU (a launch runs in waves of resident
 * workgroups, and a partial last wave costs a whole one); {@linkcode MatmulTuning} overrides it for benchmarks and
 * tests. The measurements behind its rules are in bench/RESULTS.md.
 *
 * @module
 */
import {
  chooseLargeTile,
  chooseTile,
  chooseVariant,
  matmulKernel,
  matmulSharedBytes,
  type MatmulSpec,
  matmulStreamKFixupKernel,
  type MatmulTile,
  matmulTiles,
  type MatmulVariant,
  streamKSchedule,
  streamKWorkspaceBytes,
} from "../../../kernels/matmul.ts";
import type { KernelSource } from "../../../kernels/common.ts";
import { transposeKernel, transposeManyKernel } from "../../../kernels/copy.ts";
import { ropeKernel } from "../../../kernels/rope.ts";
import { reduceKernel } from "../../../kernels/reduce.ts";
import { gpu, type GpuBuffer } from "../../gpu/backend.ts";
import { recordAccumulating } from "../graph.ts";
import { fmt, prod, sameShape } from "../shape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { reshape } from "./movement.ts";
import { cachedRopeTable } from "./rope_table.ts";

/** Options of {@linkcode matmul}. */
export interface MatmulOptions {
  /** Treat `a`'s last two dims as transposed: `a` is (..., K, M). */
  transA?: boolean;
  /** Treat `b`'s last two dims as transposed: `b` is (..., N, K) (e.g. PyTorch linear weights). */
  transB?: boolean;
  /**
   * A tensor shaped like the result, added to it in the kernel's epilogue: `matmul(h, w, { transB: true, addend:
   * x })` is `x + h @ w^T` (a residual connection) in one pass over the output instead of two. Its gradient is the
   * result's gradient. Problems that would split K run unsplit with an addend.
   */
  addend?: Tensor;
  /**
   * RoPE on the result's rows, applied as the product is stored: `matmul(x, wqkv, { transB: true, rope })` is
   * `x @ wqkv^T` with its query and key heads rotated, in one pass over the output instead of two. Its gradient is
   * the result's gradient rotated back. Not with an addend.
   */
  rope?: MatmulRopeOptions;
}

/** {@linkcode MatmulOptions.rope}: which columns of the result rotate, and by which positions. */
export interface MatmulRopeOptions {
  /**
   * i32 positions of the result's rows: (M) for a result (..., M, N), every matrix of the batch alike (a sequence's
   * positions for a batch of sequences), or one per row, shaped like the result without its last dim.
   */
  positions: Tensor;
  /** Values per head: each row's columns are heads of `headDim` values (even), rotated in interleaved pairs. */
  headDim: number;
  /** Columns `[0, columns)` rotate and the rest pass through (a packed q/k/v projection: `2 * heads * headDim`); all by default. */
  columns?: number;
  /** Base of the frequencies (default 10000). */
  theta?: number;
  /** The largest position that can occur (sizes the table; default M - 1). Positions past the table give NaN. */
  maxPosition?: number;
  /**
   * The result's consumer returns the gradient of the values before the rotation (`packedAttention` given the same
   * positions as its `rope`), so the backward rotates nothing back. Default false: the backward undoes the rotation.
   */
  gradientBeforeRotation?: boolean;
}

/**
 * Workgroups of a tile resident at once: two per compute unit for 64 accumulators a thread (256 threads leave room
 * for two per SM on an H100/H200), one for the 96-128 of the 192- and 256-wide tiles. A launch runs in waves of
 * this many; a last, partial wave costs as much as a full one. WebGPU does not report the compute units:
 * {@linkcode MatmulSettings.computeUnits} holds them.
 */
const slots = (tile: MatmulTile) => (tile.tm * tile.tn > 64 ? 1 : 2) * settings.computeUnits;
/**
 * The wave model's rates: FLOP/s of a full wave of large tiles (what they sustain on an H100/H200, which sets the
 * seconds of a BK step), and bytes/s of the passes that write and sum partial products.
 */
const WAVE_FLOPS = 36e12, BANDWIDTH = 2.8e12;

/**
 * Predicted seconds of a launch of `tile`s by a wave model: a launch runs in waves of {@linkcode slots}
 * workgroups, each wave costs its longest workgroup's BK steps, and split-K and stream-K add the traffic of
 * writing and summing partial products.
 */
function launchSeconds(spec: { m: number; n: number; k: number }, tile: MatmulTile) {
  const units = slots(tile);
  const tiles = Math.ceil(spec.m / tile.bm) * Math.ceil(spec.n / tile.bn);
  const stepSeconds = (2 * tile.bm * tile.bn * tile.bk * units) / WAVE_FLOPS;
  const tileBytes = tile.bm * tile.bn * 4;
  return {
    units,
    /** K cut into `s` chunks, one workgroup layer each, then a pass that sums the layers. */
    splitK: (s: number) => {
      const chunk = Math.ceil(spec.k / s / tile.bk) * tile.bk;
      const layers = Math.ceil(spec.k / chunk);
      const waves = Math.ceil((tiles * layers) / units);
      const reduce = layers > 1 ? ((2 * layers + 1) * spec.m * spec.n * 4) / BANDWIDTH : 0;
      return waves * (chunk / tile.bk) * stepSeconds + reduce;
    },
    /** Whole waves as usual, the tail's iterations shared by one wave ({@linkcode streamKSchedule}); Infinity where it does not apply. */
    streamK: () => {
      const sk = streamKSchedule(spec, tile, units);
      if (sk.tail === 0 || sk.tail * sk.kIters >= 2 ** 32 / units) return Infinity;
      const steps = (sk.dataParallel / units) * sk.kIters + Math.ceil((sk.tail * sk.kIters) / units);
      // Up to two partial tiles written per stream-K workgroup, read back, and the tail tiles written.
      const fixup = 5e-6 + ((2 * (units + sk.tail) + sk.tail) * tileBytes) / BANDWIDTH;
      return steps * stepSeconds + fixup;
    },
  };
}

/**
 * Split-K factor by the wave model of {@linkcode launchSeconds}: few output tiles with a long K (weight gradients)
 * are split along K until their workgroups fill the GPU's waves, each further split taken only when the model
 * predicts 2% or more. The split layers' dynamic K bounds cost nothing measurable, so what decides is how full
 * the waves are and the cost of summing the layers.
 *
 * @example
 * ```ts
 * import { chooseSplitK } from "./matmul.ts";
 * import { matmulTiles } from "../../../kernels/matmul.ts";
 * // A weight gradient: 4 x 4 output tiles over K = 8192 split 16 ways, 256 workgroups, about one wave.
 * const splits = chooseSplitK({ batch: 1, m: 512, n: 512, k: 8192 }, matmulTiles.large);
 * if (splits !== 16) throw new Error(`${splits}`);
 * ```
 */
export function chooseSplitK(spec: { batch: number; m: number; n: number; k: number }, tile: MatmulTile): number {
  if (spec.batch !== 1 || spec.k < 1024) return 1;
  const cost = launchSeconds(spec, tile).splitK;
  let best = 1;
  for (let s = 2; s <= Math.min(32, Math.floor(spec.k / 256)); s++) if (cost(s) < cost(best) * 0.98) best = s;
  return best;
}

/**
 * Stream-K units for a problem (0: launch one workgroup per tile, or split K, as {@linkcode chooseSplitK} says).
 * When the tiles leave a last, partial wave, stream-K shares that wave's K-iterations evenly among one wave of
 * workgroups ({@linkcode streamKSchedule}): the tail costs `tail / slots` of a wave instead of a whole one, plus
 * writing and summing up to two partial tiles per workgroup. Taken when the wave model predicts it at least 2%
 * faster than the best split-K factor (which includes no split), or than `splitK` when the caller has it. Not for
 * transposed A (weight gradients), where split-K measured faster on the LM's shapes (bench/RESULTS.md).
 *
 * @example
 * ```ts
 * import { chooseStreamK } from "./matmul.ts";
 * import { largeTiles } from "../../../kernels/matmul.ts";
 * // 512 tiles of 128 x 256: 3 whole waves of 132 and a tail of 116 tiles, shared among 132 workgroups.
 * const units = chooseStreamK({ batch: 1, m: 4096, n: 4096, k: 4096 }, largeTiles.wide);
 * if (units !== 132) throw new Error(`${units}`);
 * ```
 */
export function chooseStreamK(
  spec: { batch: number; m: number; n: number; k: number; transA?: boolean },
  tile: MatmulTile,
  splitK: number = chooseSplitK(spec, tile),
): number {
  // The resident-workgroup counts of `slots` hold for the large tiles only (a medium tile's wave is larger and its
  // steps cheaper, so the model would overrate stream-K there).
  if (spec.batch !== 1 || spec.transA || tile.tm * tile.tn < 64) return 0;
  const model = launchSeconds(spec, tile);
  return model.streamK() < model.splitK(splitK) * 0.98 ? model.units : 0;
}

/** Process-wide matmul settings (like PyTorch's backend flags). */
export interface MatmulSettings {
  /**
   * Streaming multiprocessors (compute units) of the GPU, which the split-K and stream-K plans fill in waves.
   * WebGPU does not expose it; the default is the H100 SXM's and H200's 132 (an A100 has 108, an H100 PCIe 114).
   * A wrong value costs speed, never correctness.
   */
  computeUnits: number;
}

const settings: MatmulSettings = { computeUnits: 132 };

/**
 * Changes process-wide matmul settings and returns the previous ones.
 *
 * @example
 * ```ts
 * import { setMatmulSettings } from "@nanolm/nanolm/tensor";
 * const before = setMatmulSettings({ computeUnits: 108 }); // an A100
 * setMatmulSettings(before);
 * if (before.computeUnits !== 132) throw new Error(`${before.computeUnits}`);
 * ```
 */
export function setMatmulSettings(change: Partial<MatmulSettings>): MatmulSettings {
  const units = change.computeUnits;
  if (units !== undefined && !(Number.isInteger(units) && units > 0)) {
    throw new RangeError(`setMatmulSettings: computeUnits must be a positive integer, got ${units}`);
  }
  const before = { ...settings };
  Object.assign(settings, change);
  return before;
}

/**
 * Overrides of the planner for benchmarks and tests, which time or check one kernel configuration against another.
 * Not part of the package's API (lib/tensor/mod.ts does not export it): the planner's choices are the fast ones.
 */
export interface MatmulTuning {
  /** Tile of every matmul; the planner's when undefined. */
  tile: MatmulTile | undefined;
  /** Split-K factor; the planner's when undefined. */
  splitK: number | undefined;
  /** Stream-K over this many resident workgroups, or 0 for none; the planner's when undefined. */
  streamK: number | undefined;
  /** Code-generation choices; {@linkcode chooseVariant}'s when undefined. */
  variant: Partial<MatmulVariant> | undefined;
  /**
   * How `x @ W^T` problems run: "copy" transposes W into a scratch (K, N) first and runs the untransposed kernel
   * where {@linkcode copiesTransposedB} says it pays (else as "outer"); on the large tiles, "outer" stages W with
   * transposing stores into k-major tiles, "dot" keeps K-contiguous tiles and takes dot products (see
   * {@linkcode MatmulVariant}).
   */
  transposedBCompute: "outer" | "dot" | "copy";
  /** Stream-K for launches that end in a partial wave, where {@linkcode chooseStreamK} predicts a gain. */
  autoStreamK: boolean;
}

let tuning: MatmulTuning = {
  tile: undefined,
  splitK: undefined,
  streamK: undefined,
  variant: undefined,
  transposedBCompute: "copy",
  autoStreamK: true,
};

/**
 * Changes the {@linkcode MatmulTuning} of every later matmul and returns the previous one (pass it back to
 * restore).
 *
 * @example
 * ```ts
 * import { setMatmulTuning } from "./matmul.ts";
 * const before = setMatmulTuning({ transposedBCompute: "dot" });
 * setMatmulTuning(before);
 * if (before.transposedBCompute !== "copy") throw new Error(before.transposedBCompute);
 * ```
 */
export function setMatmulTuning(change: Partial<MatmulTuning>): MatmulTuning {
  const before = tuning;
  tuning = { ...tuning, ...change };
  return before;
}

/**
 * Runs `fn` with the {@linkcode MatmulTuning} changed by `change`, then restores it (a benchmark's or test's forced
 * tile, split or variant for the matmuls `fn` runs).
 *
 * @example
 * ```ts
 * import { withMatmulTuning } from "./matmul.ts";
 * import { initGpu, matmul, tensor } from "@nanolm/nanolm/tensor";
 * import { matmulTiles } from "../../../kernels/matmul.ts";
 * await initGpu();
 * const a = tensor([[1, 2], [3, 4]]);
 * const c = withMatmulTuning({ tile: matmulTiles.small, splitK: 2 }, () => matmul(a, a));
 * if ((await c.data()).join() !== "7,10,15,22") throw new Error("wrong product");
 * ```
 */
export function withMatmulTuning<T>(change: Partial<MatmulTuning>, fn: () => T): T {
  const before = setMatmulTuning(change);
  try {
    return fn();
  } finally {
    tuning = before;
  }
}

/**
 * Tile, split-K and stream-K for a problem. A long K over a small output takes the large tile split along K rather
 * than a smaller tile: its 8 x 8 outputs a thread do twice the FMAs per staged value of the medium tile's 4 x 4,
 * and the split fills the GPU all the same. Problems that fill the GPU with large tiles get the layout-specific
 * large tile of {@linkcode chooseLargeTile}, unless its workgroup memory exceeds what the device allows
 * (`maxSharedBytes`), in which case the BK-16 large tile stays.
 *
 * @example
 * ```ts
 * import { planMatmul } from "./matmul.ts";
 * import { largeTiles } from "../../../kernels/matmul.ts";
 * const plan = planMatmul({ batch: 1, m: 4096, n: 4096, k: 4096 }); // 128 x 256 tiles, stream-K over 132
 * if (plan.tile !== largeTiles.wide || plan.splitK !== 1 || plan.streamK !== 132) throw new Error(`${plan.streamK}`);
 * ```
 */
export function planMatmul(
  spec: { batch: number; m: number; n: number; k: number; transA?: boolean; transB?: boolean },
  opts: { tile?: MatmulTile; splitK?: number; streamK?: number; maxSharedBytes?: number } = {},
): { tile: MatmulTile; splitK: number; streamK: number } {
  let tile = opts.tile ?? chooseTile(spec);
  if (!opts.tile && spec.batch === 1 && spec.k >= 1024 && Math.min(spec.m, spec.n) >= 256) tile = matmulTiles.large;
  if (!opts.tile && tile === matmulTiles.large) {
    const layout = { ...spec, transA: spec.transA ?? false, transB: spec.transB ?? false };
    const fast = chooseLargeTile(layout);
    if (matmulSharedBytes(fast, chooseVariant(layout, fast)) <= (opts.maxSharedBytes ?? Infinity)) tile = fast;
  }
  if (opts.streamK && opts.splitK && opts.splitK > 1) {
    throw new Error(`matmul: split-K (${opts.splitK}) and stream-K (${opts.streamK}) cannot be combined`);
  }
  const splitK = opts.splitK ?? chooseSplitK(spec, tile);
  const auto = opts.splitK === undefined && tuning.autoStreamK;
  let streamK = opts.streamK ?? (auto ? chooseStreamK(spec, tile, splitK) : 0);
  // Whole waves leave no tail to share out: a forced stream-K then launches as usual.
  if (streamK && streamKSchedule(spec, tile, streamK).tail === 0) streamK = 0;
  return { tile, splitK: streamK ? 1 : splitK, streamK };
}

/**
 * `a @ b` over the last two dims. Leading (batch) dims must match, or one operand may be 2-D and is shared
 * across the batch.
 *
 * @example
 * ```ts
 * import { initGpu, matmul, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const x = tensor([[[1, 2]], [[3, 4]]]); // (B = 2, T = 1, in = 2)
 * const w = tensor([[1, 0], [0, 1], [1, 1]]); // (out = 3, in = 2), as a linear layer stores it
 * const y = matmul(x, w, { transB: true }); // (2, 1, 3)
 * if (y.shape.join() !== "2,1,3" || (await y.data()).join() !== "1,2,3,3,4,7") throw new Error("wrong product");
 * ```
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const problem = matmulProblem(a, b, transA, transB);
  const addend = opts.addend;
  if (addend && (addend.dtype !== "f32" || !sameShape(addend.shape, problem.outShape))) {
    throw new Error(`matmul: addend ${addend.describe()} must be f32 of the result's shape ${fmt(problem.outShape)}`);
  }
  const rope = opts.rope ? matmulRope(opts.rope, problem.spec, problem.outShape, !!addend) : null;
  const out = empty(problem.outShape);
  if (out.size > 0) {
    if (rope?.fused) runMatmul({ ...problem.spec, rope: rope.fused }, [a.buffer, b.buffer], out.buffer, rope.buffers);
    else if (rope) {
      const product = empty(out.shape);
      runMatmul(problem.spec, [a.buffer, b.buffer], product.buffer);
      rope.rotate(product, out, false);
      product.dispose();
    } else runMatmul(problem.spec, [a.buffer, b.buffer], out.buffer, addend ? [addend.buffer] : []);
  }
  const [batchA, batchB] = [a.ndim > 2, b.ndim > 2];
  return recordAccumulating(out, "matmul", addend ? [a, b, addend] : [a, b], (dcOut, prior) => {
    // The gradient of the product before its rotation (which the consumer may have computed already).
    const dc = rope && !opts.rope!.gradientBeforeRotation ? rope.rotate(dcOut, empty(dcOut.shape), true) : dcOut;
    // C = op(a) op(b): dA = dC op(b)^T, dB = op(a)^T dC, written back in each operand's storage layout. When a
    // already has a gradient from another use (x feeding q, k and v projections), dC op(b)^T adds it in its
    // epilogue.
    const ga = a.requiresGrad
      ? (transA
        ? matmul(b, dc, { transA: transB, transB: true })
        : matmul(dc, b, { transB: !transB, addend: prior[0] }))
      : null;
    const gb = b.requiresGrad
      ? (b.ndim === 2 && a.ndim > 2 && !transA
        ? sharedWeightGrad(a, dc, transB)
        : transB
        ? matmul(dc, a, { transA: true, transB: transA })
        : matmul(a, dc, { transA: !transA }))
      : null;
    if (dc !== dcOut) dc.dispose();
    return addend ? [ga, gb, dc] : [ga, gb];
  }, { accumulates: [!transA && (batchA || !batchB), false] });
}

/**
 * Checks {@linkcode MatmulOptions.rope} against the product and plans it: the epilogue's spec and buffers where
 * the kernels can rotate as they store (N, the head dim and the rotated columns multiples of 4, one batch after
 * folding), and `rotate`, the RoPE kernel over a result-shaped tensor (the backward, and the forward elsewhere).
 */
function matmulRope(opts: MatmulRopeOptions, spec: MatmulSpec, outShape: readonly number[], addend: boolean) {
  const { positions, headDim } = opts;
  const n = spec.n, columns = opts.columns ?? n, rowShape = outShape.slice(0, -1), m = outShape[outShape.length - 2];
  const where = `matmul: rope with a result ${fmt(outShape)}`;
  if (addend) throw new Error(`${where}: an addend and RoPE cannot go together; add it after`);
  if (!(headDim > 0) || headDim % 2 || n % headDim || columns % headDim || columns < 0 || columns > n) {
    throw new Error(`${where}: headDim ${headDim} must be even and divide the ${n} columns and ${columns} rotated`);
  }
  if (positions.dtype !== "i32") throw new TypeError(`${where}: positions must be i32, got ${positions.describe()}`);
  const perRow = sameShape(positions.shape, rowShape);
  if (!perRow && !(positions.ndim === 1 && positions.shape[0] === m)) {
    throw new Error(`${where}: positions ${positions.describe()} must be (${m}) or ${fmt(rowShape)}`);
  }
  const cycle = perRow ? 0 : m;
  const table = cachedRopeTable(opts.theta ?? 10000, headDim, opts.maxPosition ?? m - 1);
  const rows = prod(rowShape);
  const kernelSpec = {
    rows: (rows * n) / headDim,
    dim: headDim,
    group: n / headDim,
    cycle,
    tableRows: table.size,
    rotated: columns / headDim,
  };
  const fits = n % 4 === 0 && headDim % 4 === 0 && columns % 4 === 0 && spec.batch === 1;
  return {
    fused: fits ? { headDim, columns, cycle, tableRows: table.size } : null,
    buffers: [positions.buffer, table.table.buffer],
    rotate(x: Tensor, y: Tensor, inverse: boolean): Tensor {
      if (x.size > 0) {
        gpu().run(ropeKernel({ ...kernelSpec, inverse }), [x.buffer, positions.buffer, table.table.buffer, y.buffer]);
      }
      return y;
    },
  };
}

/**
 * Checks the operands of `op(a) @ op(b)` and describes the problem: the kernel spec (a batch of row-major A
 * against a shared B folded into one big matmul) and the result's shape.
 */
function matmulProblem(a: Tensor, b: Tensor, transA: boolean, transB: boolean) {
  const shapes = `${a.describe()} and ${b.describe()}${transA ? " (a transposed)" : ""}${
    transB ? " (b transposed)" : ""
  }`;
  if (a.ndim < 2 || b.ndim < 2) throw new Error(`matmul: needs tensors of at least 2 dims, got ${shapes}`);
  if (a.dtype !== "f32" || b.dtype !== "f32") throw new TypeError(`matmul: needs f32 tensors, got ${shapes}`);
  const [ar, ac] = a.shape.slice(-2), [br, bc] = b.shape.slice(-2);
  const M = transA ? ac : ar, K = transA ? ar : ac;
  const Kb = transB ? bc : br, N = transB ? br : bc;
  if (K !== Kb) throw new Error(`matmul: inner dims differ (${K} vs ${Kb}) for ${shapes}`);
  const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
  if (batchA.length && batchB.length && !sameShape(batchA, batchB)) {
    throw new Error(`matmul: batch dims ${fmt(batchA)} and ${fmt(batchB)} differ for ${shapes}`);
  }
  const batchShape = batchA.length ? batchA : batchB;
  let batch = prod(batchShape), m = M;
  let strideA = batchA.length ? M * K : 0;
  const strideB = batchB.length ? K * N : 0;
  // A batch of row-major A against a shared B is one big matmul: fold the batch into M.
  if (!transA && batchA.length && !batchB.length) {
    m = batch * M;
    batch = 1;
    strideA = 0;
  }
  const spec: MatmulSpec = { batch, m, n: N, k: K, transA, transB, batchStrideA: strideA, batchStrideB: strideB };
  return { spec, outShape: [...batchShape, M, N] };
}

/**
 * What {@linkcode matmul} dispatches for a problem: the plan, the matmul kernel, and for split-K the sum of its
 * layers (over a scratch of partial products) or for stream-K the fixup (over the partial-tile workspace).
 */
export interface MatmulLaunch {
  /**
   * For `x @ W^T` run from a transposed copy ({@linkcode copiesTransposedB}): the transpose of b (N, K) into a
   * scratch (K, N) of `n * k` floats, dispatched first; the other kernels then read that scratch as b.
   */
  transposeB?: KernelSource;
  /** The planner's choice (split-K is not used with an addend or the gate's backward). */
  plan: { tile: MatmulTile; splitK: number; streamK: number };
  mode: "plain" | "splitK" | "streamK";
  /**
   * Bindings a, b, then c (split-K: the scratch; with the gate's backward: dh), then the addend r or the gate's h,
   * and/or the stream-K workspace w.
   */
  main: KernelSource;
  /**
   * Split-K: scratch (read), c (write); stream-K: workspace (read), c (read-write), then the addend r or the gate's
   * h.
   */
  finish?: KernelSource;
  /** Bytes of the scratch or workspace; 0 when plain. */
  scratchBytes: number;
}

/**
 * The kernels of a matmul under the current {@linkcode MatmulTuning}, on a device with `maxSharedBytes` of
 * workgroup memory (pure: the kernel corpus test checks it). A spec with `gateBackward` (see {@linkcode MatmulSpec})
 * runs unsplit like one with an addend, its stream-K fixup applying the gate's backward too.
 *
 * @example
 * ```ts
 * import { matmulLaunch } from "./matmul.ts";
 * const spec = { batch: 1, m: 4096, n: 4096, k: 4096, transA: false, transB: false, batchStrideA: 0, batchStrideB: 0 };
 * const launch = matmulLaunch(spec, false, 49152);
 * if (launch.mode !== "streamK" || launch.finish?.name !== "matmul_streamK_fixup_128x256") throw new Error(launch.mode);
 * ```
 */
export function matmulLaunch(spec: MatmulSpec, addend: boolean, maxSharedBytes: number): MatmulLaunch {
  if (copiesTransposedB(spec)) {
    const launch = matmulLaunch({ ...spec, transB: false }, addend, maxSharedBytes);
    return { ...launch, transposeB: transposeKernel({ rows: spec.n, cols: spec.k }) };
  }
  const { m, n, k, transA, transB } = spec;
  const plan = planMatmul(spec, { tile: tuning.tile, splitK: tuning.splitK, streamK: tuning.streamK, maxSharedBytes });
  const gateBackward = spec.gateBackward;
  // An epilogue that needs the whole sum (the addend, the gate's backward, RoPE) cannot run on split-K's layers.
  const tile = plan.tile, splits = addend || gateBackward || spec.rope ? 1 : plan.splitK;
  // x @ W^T on a large tile: the inner loop the tuning asks for (a forced tile or variant keeps its own).
  const dot = tuning.transposedBCompute === "dot" && transB && !transA && k % 4 === 0 && !tuning.tile;
  const variant = tuning.variant ?? (dot && tile.bm === 128 ? { compute: "dot" as const } : undefined);
  if (splits > 1) {
    // Few output tiles but a long K (weight gradients): split K across workgroups, then sum the layers.
    const main = matmulKernel({ ...spec, tile, splitK: splits, variant });
    const layers = main.workgroups[2];
    const finish = reduceKernel({ kind: "sum", outer: 1, reduced: layers, inner: m * n });
    return { plan, mode: "splitK", main, finish, scratchBytes: layers * m * n * 4 };
  }
  if (plan.streamK) {
    // The last, partial wave's tiles shared out along K, then their partial products summed (plus the addend).
    const main = matmulKernel({ ...spec, tile, variant, streamK: plan.streamK, addend });
    const finish = matmulStreamKFixupKernel({
      m,
      n,
      k,
      tile,
      units: plan.streamK,
      addend,
      gateBackward,
      rope: spec.rope,
    });
    return { plan, mode: "streamK", main, finish, scratchBytes: streamKWorkspaceBytes(tile, plan.streamK) };
  }
  return { plan, mode: "plain", main: matmulKernel({ ...spec, tile, variant, addend }), scratchBytes: 0 };
}

/**
 * Rows of A from which `x @ W^T` runs faster as a transpose of W and an untransposed product. The untransposed
 * kernels stage B without transposing stores and take the wider tiles: on the H200 they ran the two benchmark
 * models' forward products 3-11% faster at 8192 rows (bench/RESULTS.md), while the copy reads and writes W once,
 * a cost that does not grow with the rows (at 2048 rows of GPT-2's head the two were within the copy's cost).
 * Residual products (with an addend) too: stream-K shares out the wide tiles' partial last wave there as well.
 */
const TRANSPOSED_COPY_MIN_ROWS = 4096;

/**
 * Whether `matmulLaunch` runs this problem from a transposed copy of B: `x @ W^T` with one shared 2-D W, at least
 * {@linkcode TRANSPOSED_COPY_MIN_ROWS} rows, when the tuning's `transposedBCompute` is "copy" (the default) and no
 * tile is forced.
 *
 * @example
 * ```ts
 * import { copiesTransposedB } from "./matmul.ts";
 * const fwd = { batch: 1, m: 8192, n: 2304, k: 768, transA: false, transB: true, batchStrideA: 0, batchStrideB: 0 };
 * if (!copiesTransposedB(fwd) || copiesTransposedB({ ...fwd, m: 1 })) throw new Error("many rows only");
 * ```
 */
export function copiesTransposedB(spec: MatmulSpec): boolean {
  return tuning.transposedBCompute === "copy" && !tuning.tile && spec.transB && !spec.transA &&
    spec.batch === 1 && spec.batchStrideB === 0 && spec.m >= TRANSPOSED_COPY_MIN_ROWS;
}

/** A transposed copy of a weight made ahead of its product: the weight's bytes and shape, and the copy. */
interface TransposedCopy {
  weight: GpuBuffer;
  n: number;
  k: number;
  copy: GpuBuffer;
}

const transposedAhead: TransposedCopy[] = [];

/** The copy of `b` (N, K) that {@linkcode withTransposedWeights} made, taken from the list (the product frees it). */
function takeTransposedCopy(b: GpuBuffer, spec: MatmulSpec): GpuBuffer | null {
  const i = transposedAhead.findIndex(({ weight: w, n, k }) =>
    w.buffer === b.buffer && w.offset === b.offset && w.bytes === b.bytes && n === spec.n && k === spec.k
  );
  return i < 0 ? null : transposedAhead.splice(i, 1)[0].copy;
}

/**
 * Runs `fn` with the transposed copies that its `x @ W^T` products over `rows` rows of x would make
 * ({@linkcode copiesTransposedB}) made ahead, for all of `weights` in one dispatch: a transformer block's four
 * forward products otherwise each wait on a transpose of their own. Weights that lie end to end in one buffer with
 * the same columns (packed projections, see `concat`) are copied as the one matrix their product reads. A product
 * takes its copy once; copies no product took are freed when `fn` returns. Weights must not change inside `fn`.
 *
 * @example
 * ```ts
 * import { initGpu, matmul, randn, withTransposedWeights } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const x = randn([4096, 8]), w1 = randn([16, 8]), w2 = randn([8, 16]);
 * const y = withTransposedWeights([w1, w2], 4096, () => matmul(matmul(x, w1, { transB: true }), w2, { transB: true }));
 * if (y.shape.join() !== "4096,8") throw new Error(y.describe());
 * ```
 */
export function withTransposedWeights<T>(weights: readonly Tensor[], rows: number, fn: () => T): T {
  const matrices = packedMatrices(weights).filter(({ n, k }) =>
    copiesTransposedB({ batch: 1, m: rows, n, k, transA: false, transB: true, batchStrideA: 0, batchStrideB: 0 })
  );
  if (matrices.length < 2) return fn();
  const backend = gpu();
  const made = matrices.map((m) => ({ ...m, copy: backend.alloc(m.n * m.k * 4) }));
  // Two bindings a matrix, as many matrices a dispatch as the device binds, up to 32 (a branch each in the kernel).
  const perDispatch = Math.max(1, Math.min(32, Math.floor(backend.storageBindings() / 2)));
  for (let i = 0; i < made.length; i += perDispatch) {
    const chunk = made.slice(i, i + perDispatch);
    const kernel = transposeManyKernel({ matrices: chunk.map(({ n, k }) => ({ rows: n, cols: k })) });
    backend.run(kernel, chunk.flatMap(({ weight, copy }) => [weight, copy]));
  }
  transposedAhead.push(...made);
  try {
    return fn();
  } finally {
    for (const m of made) {
      const i = transposedAhead.indexOf(m);
      if (i >= 0) backend.free(transposedAhead.splice(i, 1)[0].copy);
    }
  }
}

/** The 2-D f32 `weights` as (N, K) matrices, where pieces lie end to end in one buffer joined into one. */
function packedMatrices(weights: readonly Tensor[]): { weight: GpuBuffer; n: number; k: number }[] {
  const byBuffer = new Map<GPUBuffer, { weight: GpuBuffer; n: number; k: number }[]>();
  for (const w of weights) {
    if (w.ndim !== 2 || w.dtype !== "f32") continue;
    const list = byBuffer.get(w.buffer.buffer) ?? [];
    list.push({ weight: w.buffer, n: w.shape[0], k: w.shape[1] });
    byBuffer.set(w.buffer.buffer, list);
  }
  const out: { weight: GpuBuffer; n: number; k: number }[] = [];
  for (const list of byBuffer.values()) {
    list.sort((a, b) => a.weight.offset - b.weight.offset);
    for (const m of list) {
      const last = out.at(-1);
      if (
        last?.weight.buffer === m.weight.buffer && last.k === m.k &&
        last.weight.offset + last.weight.bytes === m.weight.offset
      ) {
        last.weight = { ...last.weight, bytes: last.weight.bytes + m.weight.bytes };
        last.n += m.n;
      } else out.push({ ...m });
    }
  }
  return out;
}

/**
 * Dispatches {@linkcode matmulLaunch}'s kernels for `c = a @ b`, with `extra` the bindings that follow c: the
 * addend r; with `spec.gateBackward`, c = dh and the gate's packed input h; with `spec.rope`, the positions and
 * the RoPE table.
 */
function runMatmul(spec: MatmulSpec, [a, b]: [GpuBuffer, GpuBuffer], c: GpuBuffer, extra: GpuBuffer[] = []): void {
  const backend = gpu();
  const addend = !spec.rope && !spec.gateBackward && extra.length > 0;
  const launch = matmulLaunch(spec, addend, backend.device.limits.maxComputeWorkgroupStorageSize);
  // A copy made ahead by withTransposedWeights, or one made now.
  const ahead = launch.transposeB ? takeTransposedCopy(b, spec) : null;
  const bt = launch.transposeB ? ahead ?? backend.alloc(spec.n * spec.k * 4) : null;
  if (bt && !ahead) backend.run(launch.transposeB!, [b, bt]);
  const bIn = bt ?? b;
  if (launch.mode === "plain") {
    backend.run(launch.main, [a, bIn, c, ...extra]);
  } else {
    const scratch = backend.alloc(launch.scratchBytes);
    backend.run(launch.main, launch.mode === "splitK" ? [a, bIn, scratch] : [a, bIn, c, ...extra, scratch]);
    backend.run(launch.finish!, launch.mode === "splitK" ? [scratch, c] : [scratch, c, ...extra]);
    backend.free(scratch);
  }
  if (bt) backend.free(bt);
}

/**
 * Whether {@linkcode matmulGateBackward} fuses the gate's backward for a gate of `width` columns (dG's N): its
 * vec4 epilogue needs a multiple of 4. Where it does not, the caller runs the product and the gate's own backward
 * kernel.
 *
 * @example
 * ```ts
 * import { fusesGateBackward } from "./matmul.ts";
 * if (!fusesGateBackward(1344) || fusesGateBackward(6)) throw new Error("vec4 widths only");
 * ```
 */
export function fusesGateBackward(width: number): boolean {
  return width > 0 && width % 4 === 0;
}

/**
 * The gradient dh (..., 2F) of the SwiGLU gate's packed input h (..., 2F) (see `packedSiluGate`) from the
 * gradient dy (..., K) of `gate(h) @ w^T` with w (K, F): dG = dy @ w in one matmul launch whose epilogue applies the
 * gate's backward, so dG is never stored (see `gateBackward` of kernels/matmul.ts). The leading dims fold into
 * the rows; plans as `matmul(dy, w)` does, never splitting K. Needs {@linkcode fusesGateBackward} of F. Not
 * recorded for autograd: it is a backward.
 *
 * @example
 * ```ts
 * import { matmulGateBackward } from "./matmul.ts";
 * import { initGpu, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * // One row, F = 4: u = 0 (s = 1/2) and v = 2 for column 0; dG = dy @ w = [3, 0, 0, 0].
 * const h = tensor([[0, 0, 0, 0, 2, 0, 0, 0]]), w = tensor([[1, 0, 0, 0]]), dy = tensor([[3]]);
 * const dh = await matmulGateBackward(dy, w, h).data(); // du = 3 * 2 * 1/2 * (1 + 0), dv = 3 * 0 * 1/2
 * if (dh[0] !== 3 || dh[4] !== 0) throw new Error(`${dh}`);
 * ```
 */
export function matmulGateBackward(dy: Tensor, w: Tensor, h: Tensor): Tensor {
  const K = dy.shape[dy.ndim - 1], F = w.shape[1], rows = h.size / (2 * F);
  const fits = dy.ndim >= 1 && w.ndim === 2 && h.ndim >= 1 && w.shape[0] === K && fusesGateBackward(F) &&
    h.shape[h.ndim - 1] === 2 * F && dy.size === rows * K && [dy, w, h].every((t) => t.dtype === "f32");
  if (!fits) {
    const got = `${dy.describe()}, ${w.describe()} and ${h.describe()}`;
    throw new Error(`matmulGateBackward: needs f32 dy (..., K), w (K, F), F % 4 == 0, h (..., 2F), got ${got}`);
  }
  const dh = empty(h.shape);
  const spec: MatmulSpec = {
    batch: 1,
    m: rows,
    n: F,
    k: K,
    transA: false,
    transB: false,
    batchStrideA: 0,
    batchStrideB: 0,
    gateBackward: true,
  };
  if (dh.size > 0) runMatmul(spec, [dy.buffer, w.buffer], dh.buffer, [h.buffer]);
  return dh;
}

/**
 * The gradient of a 2-D B shared across the batch of a row-major `a` (a linear layer's weight): the batch dims of
 * `a` (..., M, K) and `dc` (..., M, N) fold into the rows, so one 2-D matmul over all B*M rows gives the gradient
 * directly, with no per-batch copies to sum afterwards. Stored as (K, N), or (N, K) when B is used transposed.
 */
function sharedWeightGrad(a: Tensor, dc: Tensor, transB: boolean): Tensor {
  const a2 = reshape(a, [-1, a.shape[a.ndim - 1]]); // (B*M, K)
  const dc2 = reshape(dc, [-1, dc.shape[dc.ndim - 1]]); // (B*M, N)
  return transB ? matmul(dc2, a2, { transA: true }) : matmul(a2, dc2, { transA: true });
}

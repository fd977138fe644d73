/**
 * Neural-network ops with fused kernels: softmax, log-softmax, RMSNorm, rotary embedding, embedding lookup,
 * cross-entropy, the LM head's cross-entropy in chunks of rows, and causal scaled-dot-product attention (a composite of matmul and the fused masked softmax,
 * so its gradient comes from theirs).
 *
 * @module
 */
import {
  crossEntropyBackwardKernel,
  crossEntropyChunkBackwardKernel,
  crossEntropyForwardKernel,
} from "../../../kernels/cross_entropy.ts";
import { gatherKernel } from "../../../kernels/copy.ts";
import { embeddingBackwardKernel, embeddingForwardKernel } from "../../../kernels/embedding.ts";
import {
  rmsNormBackwardFusedKernel,
  rmsNormBackwardKernel,
  rmsNormForwardKernel,
  rmsNormFusedSplit,
  rmsNormWeightGradChunks,
  rmsNormWeightGradKernel,
} from "../../../kernels/rmsnorm.ts";
import { ropeKernel } from "../../../kernels/rope.ts";
import { siluGateBackwardKernel, siluGateForwardKernel } from "../../../kernels/silu_gate.ts";
import { softmaxBackwardKernel, softmaxForwardKernel, type SoftmaxSpec } from "../../../kernels/softmax.ts";
import type { KernelSource } from "../../../kernels/common.ts";
import {
  ATTENTION_KERNELS,
  attentionBackwardDeltaKernel,
  attentionBackwardDkvKernel,
  attentionBackwardDqKernel,
  attentionForwardKernel,
  attentionKernelBytes,
  type AttentionSpec,
  type AttentionVariant,
  attentionWorkgroupBytes,
  DEFAULT_ATTENTION_VARIANT,
  fusedAttentionSupports,
  savedScoresBytes,
} from "../../../kernels/attention.ts";
import { formatBytes, gpu, type GpuBuffer } from "../../gpu/backend.ts";
import { isGradEnabled, noGrad, record, recordAccumulating } from "../graph.ts";
import { fmt, prod, sameShape } from "../shape.ts";
import { empty, rowRange, type Tensor } from "../tensor.ts";
import { add, fill, mapElements, mul } from "./elementwise.ts";
import { copiesTransposedB, fusesGateBackward, matmul, matmulGateBackward } from "./matmul.ts";
import { cachedRopeTable } from "./rope_table.ts";
import { concat, permute, reshape, slice } from "./movement.ts";
import { mean, sumTo } from "./reduce.ts";

function run(k: KernelSource, tensors: Tensor[]): void {
  gpu().run(k, tensors.map((t) => t.buffer));
}

function requireF32(op: string, t: Tensor): void {
  if (t.dtype !== "f32") throw new TypeError(`${op}: expected an f32 tensor, got ${t.describe()}`);
}

// ---- Softmax --------------------------------------------------------------------------------------------------

/** Options of {@linkcode softmax} and {@linkcode logSoftmax}. */
export interface SoftmaxOptions {
  /** Multiply the input by this first. */
  scale?: number;
  /** Causal mask for attention scores (..., queries, keys): key j is hidden from query i when j > i + keys - queries. */
  causal?: boolean;
}

function softmaxOp(x: Tensor, opts: SoftmaxOptions, log: boolean): Tensor {
  const op = log ? "logSoftmax" : "softmax";
  requireF32(op, x);
  if (x.ndim < 1) throw new Error(`${op}: needs at least one dim, got ${x.describe()}`);
  const cols = x.shape[x.ndim - 1];
  if (opts.causal && (x.ndim < 2 || x.shape[x.ndim - 2] > cols)) {
    throw new Error(`${op}: a causal mask needs (..., queries, keys) with queries <= keys, got ${x.describe()}`);
  }
  const spec: SoftmaxSpec = {
    rows: x.size / Math.max(cols, 1),
    cols,
    scale: opts.scale ?? 1,
    causalQueries: opts.causal ? x.shape[x.ndim - 2] : undefined,
    log,
  };
  const y = empty(x.shape);
  if (y.size > 0) run(softmaxForwardKernel(spec), [x, y]);
  return record(y, op, [x], (dy) => {
    const dx = empty(x.shape);
    if (dx.size > 0) run(softmaxBackwardKernel(spec), [y, dy, dx]);
    return [dx];
  });
}

/**
 * Softmax over the last axis, numerically stable (the row maximum is subtracted first).
 *
 * @example
 * ```ts
 * import { initGpu, softmax, zeros } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const p = await softmax(zeros([2, 2]), { scale: 0.5, causal: true }).data(); // query 0 sees key 0 only
 * if (p.join() !== "1,0,0.5,0.5") throw new Error(`${p}`);
 * ```
 */
export function softmax(x: Tensor, opts: SoftmaxOptions = {}): Tensor {
  return softmaxOp(x, opts, false);
}

/**
 * Log-softmax over the last axis, numerically stable.
 *
 * @example
 * ```ts
 * import { initGpu, logSoftmax, zeros } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const logp = await logSoftmax(zeros([4])).data();
 * if (logp.some((v) => Math.abs(v + Math.log(4)) > 1e-6)) throw new Error(`${logp}`);
 * ```
 */
export function logSoftmax(x: Tensor, opts: SoftmaxOptions = {}): Tensor {
  return softmaxOp(x, opts, true);
}

// ---- RMSNorm --------------------------------------------------------------------------------------------------

/**
 * RMSNorm over the last axis: `x / sqrt(mean(x^2) + eps) * weight`.
 *
 * @example
 * ```ts
 * import { initGpu, ones, rmsNorm, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const h = await rmsNorm(tensor([[3, 4]]), ones([2]), { eps: 0 }).data(); // rms = sqrt(12.5)
 * if (Math.abs(h[0] - 3 / Math.sqrt(12.5)) > 1e-6 || Math.abs(h[1] - 4 / Math.sqrt(12.5)) > 1e-6) throw new Error();
 * ```
 */
export function rmsNorm(x: Tensor, weight: Tensor, opts: { eps?: number } = {}): Tensor {
  requireF32("rmsNorm", x);
  const dim = x.shape[x.ndim - 1];
  if (weight.ndim !== 1 || weight.shape[0] !== dim) {
    throw new Error(`rmsNorm: weight ${weight.describe()} does not match the last dim of ${x.describe()}`);
  }
  const eps = opts.eps ?? 1e-5;
  const rows = x.size / dim;
  const y = empty(x.shape), rstd = empty([rows]);
  if (y.size > 0) run(rmsNormForwardKernel(rows, dim, eps), [x, weight, y, rstd]);
  return recordAccumulating(y, "rmsNorm", [x, weight], (dy, prior) => {
    let dx: Tensor | null = null, dw: Tensor | null = null;
    const p = prior[0], split = rmsNormFusedSplit(rows, dim);
    if (x.requiresGrad && weight.requiresGrad && split && rows > 0) {
      // Both gradients from one read of x and dy: dx, and a row of column sums for dW a workgroup, summed after.
      dx = empty(x.shape);
      const partial = empty([split.groups, dim]);
      run(
        rmsNormBackwardFusedKernel(rows, dim, !!p),
        p ? [x, weight, rstd, dy, dx, partial, p] : [x, weight, rstd, dy, dx, partial],
      );
      dw = sumTo(partial, [dim]);
      partial.dispose();
      return [dx, dw];
    }
    if (x.requiresGrad) {
      // x is usually also the residual stream: its gradient from there (prior[0]) is added in the same kernel.
      dx = empty(x.shape);
      if (dx.size > 0) {
        run(rmsNormBackwardKernel(rows, dim, !!p), p ? [x, weight, rstd, dy, dx, p] : [x, weight, rstd, dy, dx]);
      }
    }
    if (weight.requiresGrad) {
      // Per-chunk column sums of dy * x * rstd, then a sum over the chunks.
      const chunks = rmsNormWeightGradChunks(rows);
      const partial = empty([chunks, dim]);
      run(rmsNormWeightGradKernel(rows, dim), [x, dy, rstd, partial]);
      dw = sumTo(partial, [dim]);
      partial.dispose();
    }
    return [dx, dw];
  }, { saved: [rstd], accumulates: [true, false] });
}

// ---- Rotary position embedding ----------------------------------------------------------------------------------

/** Options of {@linkcode rope}. */
export interface RopeOptions {
  /** Base of the frequencies (CS336: 10000). */
  theta?: number;
  /**
   * The largest position that can occur (sizes the cos/sin table); defaults to the sequence length. Positions
   * outside the table (negative, or larger than this rounded up to a power of two) give NaN.
   */
  maxPosition?: number;
  /**
   * Where the sequence axis is: `"bhtd"` (default), x (..., T, dim); `"bthd"`, x (..., T, H, dim), the layout of a
   * linear projection's output split into heads, every head of a position rotated alike.
   */
  layout?: AttentionLayout;
  /**
   * x is a fused q/k/v projection's output (..., T, 3, H, dim) (see {@linkcode packedAttention}): the q and k parts
   * are rotated and the v part copied, in one dispatch each way. Positions as for `"bthd"`: (T) shared or (..., T)
   * per sequence. Overrides `layout`.
   */
  packed?: boolean;
}

/** The RoPE kernel's spec and table for {@linkcode rope}'s arguments, checked. */
function ropePlan(x: Tensor, positions: Tensor, opts: RopeOptions) {
  requireF32("rope", x);
  const dim = x.shape[x.ndim - 1];
  if (dim % 2 !== 0) throw new Error(`rope: the last dim must be even, got ${x.describe()}`);
  if (positions.dtype !== "i32") throw new TypeError(`rope: positions must be i32, got ${positions.describe()}`);
  const packed = opts.packed ?? false;
  const bthd = opts.layout === "bthd" || packed;
  if (packed && (x.ndim < 4 || x.shape[x.ndim - 3] !== 3)) {
    throw new Error(`rope: packed q/k/v needs x (..., T, 3, H, dim), got ${x.describe()}`);
  }
  if (bthd && x.ndim < 3) throw new Error(`rope: layout "bthd" needs x (..., T, H, dim), got ${x.describe()}`);
  // Rows that share a position (the heads of one, packed: of all three parts), and the sequence axis.
  const group = packed ? 3 * x.shape[x.ndim - 2] : bthd ? x.shape[x.ndim - 2] : 1;
  const seqAxis = x.ndim - (packed ? 4 : bthd ? 3 : 2);
  const seq = seqAxis >= 0 ? x.shape[seqAxis] : 1;
  const rowsShape = x.shape.slice(0, -1);
  let spec: { group: number; cycle: number };
  if (!packed && sameShape(positions.shape, rowsShape)) spec = { group: 1, cycle: 0 };
  else if (bthd && sameShape(positions.shape, x.shape.slice(0, seqAxis + 1))) spec = { group, cycle: 0 };
  else if (positions.ndim === 1 && positions.shape[0] === seq) spec = { group, cycle: seq };
  else {
    const forms = packed
      ? `(${seq}) or ${fmt(x.shape.slice(0, seqAxis + 1))}`
      : bthd
      ? `(${seq}), ${fmt(x.shape.slice(0, -2))} or ${fmt(rowsShape)}`
      : `(${seq}) or ${fmt(rowsShape)}`;
    throw new Error(`rope: positions ${positions.describe()} must be ${forms} for ${x.describe()}`);
  }
  const table = cachedRopeTable(opts.theta ?? 10000, dim, opts.maxPosition ?? seq);
  // Packed: of each position's 3H rows, the first 2H (q and k) rotate and the H value rows are copied.
  const rotated = packed ? { rotated: (2 * group) / 3 } : {};
  const kernelSpec = { rows: prod(rowsShape), dim, ...spec, tableRows: table.size, ...rotated };
  return { kernelSpec, table };
}

/**
 * `x` unchanged, recorded with the backward of {@linkcode rope}: the gradient arriving for x is that of values RoPE
 * rotated, and leaves as the gradient of the values before the rotation. For a consumer that promises the latter
 * (`packedAttention`'s `rope`) where its fused kernels, which rotate back as they store, do not apply.
 */
function ropeGradient(x: Tensor, positions: Tensor, opts: RopeOptions): Tensor {
  const { kernelSpec, table } = ropePlan(x, positions, opts);
  const y = noGrad(() => mapElements("copy", [x], "v0"));
  return record(y, "ropeGradient", [x], (dy) => {
    const dx = empty(x.shape);
    if (dx.size > 0) run(ropeKernel({ ...kernelSpec, inverse: true }), [dy, positions, table.table, dx]);
    return [dx];
  });
}

/**
 * Rotary position embedding of `x` at integer `positions`. Rotates interleaved pairs (2k, 2k+1) of the last dim by
 * `position * theta^(-2k/dim)`.
 *
 * - layout `"bhtd"`: x (..., T, dim); positions (T) shared by all leading dims, or x's shape without the last dim.
 * - layout `"bthd"`: x (..., T, H, dim); positions (T) shared, (..., T) per sequence (all heads alike), or x's
 *   shape without the last dim.
 * - `packed`: x (..., T, 3, H, dim), q, k and v of a fused projection; q and k rotated, v copied; positions (T) or
 *   (..., T).
 *
 * @example
 * ```ts
 * import { initGpu, rope, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const q = tensor([[[1, 0], [1, 0]]]); // (B = 1, T = 2, hd = 2)
 * const positions = tensor(new Int32Array([0, 1])); // (T)
 * const [a, b, c, d] = await rope(q, positions, { theta: 10000 }).data();
 * // Position 0 is left alone; position 1 turns the pair by 1 radian (theta^0), keeping its length.
 * if (a !== 1 || b !== 0 || Math.abs(c - Math.cos(1)) > 1e-6 || Math.abs(Math.hypot(c, d) - 1) > 1e-6) throw new Error();
 * ```
 */
export function rope(x: Tensor, positions: Tensor, opts: RopeOptions = {}): Tensor {
  const { kernelSpec, table } = ropePlan(x, positions, opts);
  const y = empty(x.shape);
  if (y.size > 0) run(ropeKernel({ ...kernelSpec, inverse: false }), [x, positions, table.table, y]);
  return record(y, "rope", [x], (dy) => {
    const dx = empty(x.shape);
    if (dx.size > 0) run(ropeKernel({ ...kernelSpec, inverse: true }), [dy, positions, table.table, dx]);
    return [dx];
  });
}

// ---- SwiGLU gate ----------------------------------------------------------------------------------------------

/**
 * The SwiGLU gate over a fused w1/w3 projection's output `h` (..., 2F): `silu(a) * b` (..., F) with a the first
 * half of the last axis and b the second, read in place. The backward writes both halves of dh in one dispatch.
 *
 * @example
 * ```ts
 * import { initGpu, packedSiluGate, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * // h = x @ concat([w1, w3], 0)^T in a model: (N, 2F), here N = 1, F = 2.
 * const [g0, g1] = await packedSiluGate(tensor([[0, 2, 5, 3]])).data(); // silu([0, 2]) * [5, 3]
 * if (g0 !== 0 || Math.abs(g1 - (3 * 2) / (1 + Math.exp(-2))) > 1e-5) throw new Error(`${g0} ${g1}`);
 * ```
 */
export function packedSiluGate(h: Tensor): Tensor {
  requireF32("packedSiluGate", h);
  const width2 = h.ndim > 0 ? h.shape[h.ndim - 1] : 0;
  if (h.ndim < 1 || width2 % 2 !== 0) {
    throw new Error(`packedSiluGate: needs h (..., 2F) with an even last dim, got ${h.describe()}`);
  }
  const width = width2 / 2, rows = h.size / Math.max(width2, 1);
  const y = empty([...h.shape.slice(0, -1), width]);
  if (y.size > 0) run(siluGateForwardKernel({ rows, width }), [h, y]);
  return record(y, "packedSiluGate", [h], (dy) => {
    const dh = empty(h.shape);
    if (dh.size > 0) run(siluGateBackwardKernel({ rows, width }), [h, dy, dh]);
    return [dh];
  });
}

/** Options of {@linkcode siluGateLinear}. */
export interface SiluGateLinearOptions {
  /**
   * A tensor shaped like the result, added in the matmul's epilogue (a residual connection), as `matmul`'s
   * `addend`. Its gradient is the result's.
   */
  addend?: Tensor;
}

/**
 * `addend + packedSiluGate(h) @ w^T`: SwiGLU's gate over a fused w1/w3 output h (..., 2F) and the down projection
 * w (D, F) (a PyTorch-style linear weight), result (..., D), as one autograd node. The forward runs the same two
 * kernels as the composition; the backward computes dG = dy @ w in one matmul launch whose epilogue applies the
 * gate's backward and writes dh directly, so that dG is never stored and read back by a separate pass (where F is
 * not a multiple of 4, which the fused vec4 epilogue needs, it runs the composition's two kernels instead). dW
 * comes from the gate's output, kept from the forward.
 *
 * @example
 * ```ts
 * import { initGpu, param, randn, siluGateLinear, sum } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const h = param(randn([6, 16])), w = param(randn([5, 8])); // F = 8, D = 5
 * const y = siluGateLinear(h, w, { addend: randn([6, 5]) }); // (6, 5)
 * sum(y).backward();
 * if (y.shape.join() !== "6,5" || h.grad?.shape.join() !== "6,16") throw new Error(`${h.grad?.describe()}`);
 * ```
 */
export function siluGateLinear(h: Tensor, w: Tensor, opts: SiluGateLinearOptions = {}): Tensor {
  requireF32("siluGateLinear", h);
  requireF32("siluGateLinear", w);
  const F = w.ndim === 2 ? w.shape[1] : -1, D = w.shape[0];
  if (h.ndim < 2 || w.ndim !== 2 || h.shape[h.ndim - 1] !== 2 * F) {
    throw new Error(`siluGateLinear: needs h (..., 2F) and w (D, F), got ${h.describe()} and ${w.describe()}`);
  }
  const addend = opts.addend;
  // The composition's kernels, unrecorded: this node differentiates both. g (..., F) stays for dW.
  const g = noGrad(() => packedSiluGate(h));
  const y = noGrad(() => matmul(g, w, { transB: true, addend })); // (..., D)
  return record(y, "siluGateLinear", addend ? [h, w, addend] : [h, w], (dy) => {
    let dh: Tensor | null = null;
    if (h.requiresGrad && fusesGateBackward(F)) {
      dh = matmulGateBackward(dy, w, h);
    } else if (h.requiresGrad) {
      const dg = matmul(dy, w); // (..., F)
      dh = empty(h.shape);
      if (dh.size > 0) run(siluGateBackwardKernel({ rows: h.size / (2 * F), width: F }), [h, dg, dh]);
      dg.dispose();
    }
    // As matmul's weight gradient of a linear layer: all rows folded into one product.
    const dw = w.requiresGrad ? matmul(reshape(dy, [-1, D]), reshape(g, [-1, F]), { transA: true }) : null; // (D, F)
    return addend ? [dh, dw, dy] : [dh, dw];
  }, [g]);
}

// ---- Embedding ------------------------------------------------------------------------------------------------

/**
 * Rows of `table` (vocab, dim) at integer `ids` of any shape: result (...ids.shape, dim). Ids outside the table
 * give zero rows (the GPU cannot raise errors; validate ids on the host when they come from users).
 *
 * @example
 * ```ts
 * import { embedding, initGpu, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const table = tensor([[0, 1], [2, 3], [4, 5]]); // (vocab, dim)
 * const h = embedding(table, tensor(new Int32Array([2, 0]), { shape: [1, 2] })); // (B, T, dim)
 * if (h.shape.join() !== "1,2,2" || (await h.data()).join() !== "4,5,0,1") throw new Error(h.describe());
 * ```
 */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  if (table.ndim !== 2) throw new Error(`embedding: table must be (vocab, dim), got ${table.describe()}`);
  if (ids.dtype !== "i32") throw new TypeError(`embedding: ids must be i32, got ${ids.describe()}`);
  const [vocab, dim] = table.shape;
  const y = empty([...ids.shape, dim]);
  if (y.size > 0) run(embeddingForwardKernel({ tokens: ids.size, dim, vocab }), [table, ids, y]);
  return record(y, "embedding", [table], (dy) => {
    const grad = fill(table.shape, 0);
    if (dy.size > 0) run(embeddingBackwardKernel({ tokens: ids.size, dim, vocab }), [dy, ids, grad]);
    return [grad];
  });
}

// ---- Cross-entropy --------------------------------------------------------------------------------------------

/**
 * Mean cross-entropy of `logits` (..., vocab) against integer `targets` (...), fused with a stable log-softmax.
 * Out-of-range targets give NaN (so they cannot pass unnoticed).
 *
 * @example
 * ```ts
 * import { crossEntropy, initGpu, tensor, zeros } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const loss = await crossEntropy(zeros([2, 4]), tensor(new Int32Array([1, 3]))).item(); // uniform over 4
 * if (Math.abs(loss - Math.log(4)) > 1e-6) throw new Error(`${loss}`);
 * ```
 */
export function crossEntropy(logits: Tensor, targets: Tensor): Tensor {
  requireF32("crossEntropy", logits);
  if (targets.dtype !== "i32") throw new TypeError(`crossEntropy: targets must be i32, got ${targets.describe()}`);
  if (!sameShape(logits.shape.slice(0, -1), targets.shape)) {
    throw new Error(`crossEntropy: logits ${logits.describe()} and targets ${targets.describe()} do not match`);
  }
  const vocab = logits.shape[logits.ndim - 1], rows = targets.size;
  if (rows === 0) throw new Error(`crossEntropy: no targets in ${targets.describe()}`);
  const losses = empty([rows]), lse = empty([rows]);
  run(crossEntropyForwardKernel({ rows, vocab }), [logits, targets, losses, lse]);
  const loss = mean(losses);
  losses.dispose();
  return record(loss, "crossEntropy", [logits], (dy) => {
    const dl = empty(logits.shape);
    run(crossEntropyBackwardKernel({ rows, vocab }), [logits, targets, lse, dy, dl]);
    return [dl];
  }, [lse]);
}

// ---- The LM head's cross-entropy, in chunks of rows -----------------------------------------------------------

/**
 * Most bytes of logits {@linkcode linearCrossEntropy} computes at once by default: 512 MiB. The logits of CS336's
 * TinyStories step (8192 x 10000, 312.5 MiB) fit in one chunk, which runs the unchunked kernels; a GPT-2-sized
 * batch (16 x 1024 x 50257, 3.3 GB, over a 2 GiB storage binding) takes 7 chunks of at most 2432 rows.
 */
export const LOGIT_CHUNK_BYTES = 512 * 2 ** 20;

/** Options of {@linkcode linearCrossEntropy}. */
export interface LinearCrossEntropyOptions {
  /**
   * Rows whose logits are computed at once. By default all of them when their logits take at most
   * {@linkcode LOGIT_CHUNK_BYTES}, else the fewest chunks of about equal size under it, in multiples of 128 rows
   * (the matmul tile) where that fits. Chunks start at multiples of the storage offset alignment in rows (64 rows
   * where it is 256 bytes, the usual), so a smaller value is rounded down to such a multiple (at least one); a chunk
   * never exceeds the storage binding limit. The loss does not depend on it; the gradients only by the f32 rounding
   * of sums taken in another order.
   */
  chunkRows?: number;
}

/**
 * Rows of each chunk of logits {@linkcode linearCrossEntropy} computes at once for `rows` rows of `vocab` logits on
 * this device; `rows` itself means one chunk (the kernels of `crossEntropy` over `matmul`).
 *
 * @example
 * ```ts
 * import { initGpu, logitChunkRows } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * if (logitChunkRows(1024, 10000) !== 1024) throw new Error("40 MB of logits make one chunk");
 * const rows = logitChunkRows(200, 10, { chunkRows: 100 }); // 64 where offsets align to 256 bytes
 * if (!(rows <= 100 && 200 % rows !== 0)) throw new Error(`${rows}`);
 * ```
 */
export function logitChunkRows(rows: number, vocab: number, opts: LinearCrossEntropyOptions = {}): number {
  const backend = gpu(), asked = opts.chunkRows;
  if (asked !== undefined && !(Number.isInteger(asked) && asked > 0)) {
    throw new RangeError(`linearCrossEntropy: chunkRows must be a positive integer, got ${asked}`);
  }
  const rowBytes = paddedVocab(vocab) * 4, binding = backend.limits.maxStorageBufferBindingSize;
  const bindingRows = Math.floor(binding / rowBytes);
  const most = Math.min(asked ?? Math.floor(LOGIT_CHUNK_BYTES / rowBytes), bindingRows);
  if (rows <= most) return rows;
  // A chunk's rows of h, targets and the per-row results are bound in place: they must start at aligned offsets.
  const align = backend.device.limits.minStorageBufferOffsetAlignment / 4;
  const aligned = Math.max(align, Math.floor(most / align) * align);
  if (aligned > bindingRows) {
    throw new RangeError(
      `linearCrossEntropy: ${align} rows of ${vocab} logits (${formatBytes(align * rowBytes)}) exceed this GPU's ` +
        `${formatBytes(binding)} storage binding limit (maxStorageBufferBindingSize); use a smaller vocabulary`,
    );
  }
  if (asked !== undefined) return aligned;
  // Whole rows of the head's 128-row matmul tiles where they fit: a partly filled row of tiles costs a whole one and
  // bounds-checks every tile's loads (GPT-2's head forward: 35 TFLOP/s in 2368-row chunks, 42 in 2432, RESULTS.md).
  const unit = most >= HEAD_TILE_ROWS && HEAD_TILE_ROWS % align === 0 ? HEAD_TILE_ROWS : align;
  const chunks = Math.ceil(rows / (Math.floor(most / unit) * unit));
  return Math.ceil(rows / chunks / unit) * unit;
}

/** Rows of the large matmul tiles that run the head's products. */
const HEAD_TILE_ROWS = 128;

/**
 * Columns of the logits {@linkcode linearCrossEntropy} computes for a vocabulary: the vocabulary itself when it is
 * a multiple of 4, else rounded up to a multiple of 64 (of 4 below 4096 words, where 64 would add more than 1.6%).
 * The head's three matmuls load and store 16 bytes at a time only along dims of a multiple of 4: on the H200 a
 * chunk of GPT-2's head (2048 rows, vocab 50257) took 13.2 ms for its three products, 10.9 ms padded to 50304
 * (bench/RESULTS.md). The weight's extra rows are zeros and the loss ignores their logits, so nothing but speed
 * changes.
 *
 * @example
 * ```ts
 * import { paddedVocab } from "./nn.ts";
 * if (paddedVocab(50257) !== 50304 || paddedVocab(10000) !== 10000 || paddedVocab(97) !== 100) throw new Error();
 * ```
 */
export function paddedVocab(vocab: number): number {
  if (vocab % 4 === 0) return vocab;
  const multiple = vocab >= 4096 ? 64 : 4;
  return Math.ceil(vocab / multiple) * multiple;
}

/**
 * Mean cross-entropy of the logits `h @ weight^T` against integer `targets`, never holding more than one chunk of
 * the logits: an LM head and its loss. h (N, d), weight (V, d) (a linear layer's (out, in) weight, or a tied
 * embedding table), targets (N) i32. Out-of-range targets give NaN, as in {@linkcode crossEntropy}.
 *
 * When the logits fit in one chunk ({@linkcode logitChunkRows}) and the vocabulary is a multiple of 4 this is
 * `crossEntropy(matmul(h, weight, { transB: true }), targets)`, the same kernels. Otherwise (a vocabulary of another
 * size takes zero rows of weight up to {@linkcode paddedVocab}, whose logits the loss ignores) each chunk of rows
 * computes its logits and its rows' losses, and, where a gradient will be wanted (grad mode on, h or weight
 * requiring it), their gradients at once:
 * the logits' gradient overwrites them and gives the chunk's rows of dh and its part of dweight, before the logits
 * are freed (the Liger kernel's fused linear cross-entropy). The backward only scales them by the loss gradient.
 * Memory stays at one chunk of logits whatever the batch and vocabulary, plus dh and dweight held from the forward,
 * for the head's FLOPs unchunked.
 *
 * @example
 * ```ts
 * import { crossEntropy, initGpu, linearCrossEntropy, matmul, param, randn, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const h = param(randn([200, 8], { seed: 1 })), weight = param(randn([50, 8], { seed: 2 }));
 * const targets = tensor(Int32Array.from({ length: 200 }, (_, i) => i % 50));
 * const loss = linearCrossEntropy(h, weight, targets, { chunkRows: 64 }); // chunks of 64, 64, 64 and 8 rows
 * const whole = crossEntropy(matmul(h, weight, { transB: true }), targets);
 * if (Math.abs((await loss.item()) - (await whole.item())) > 1e-5) throw new Error("chunked loss differs");
 * loss.backward();
 * if (h.grad!.shape.join() !== "200,8" || weight.grad!.shape.join() !== "50,8") throw new Error("no gradients");
 * ```
 */
export function linearCrossEntropy(
  h: Tensor,
  weight: Tensor,
  targets: Tensor,
  opts: LinearCrossEntropyOptions = {},
): Tensor {
  requireF32("linearCrossEntropy", h);
  requireF32("linearCrossEntropy", weight);
  if (h.ndim !== 2 || weight.ndim !== 2 || weight.shape[1] !== h.shape[1]) {
    throw new Error(`linearCrossEntropy: h ${h.describe()} must be (N, d) and weight ${weight.describe()} (V, d)`);
  }
  if (targets.dtype !== "i32" || targets.ndim !== 1 || targets.shape[0] !== h.shape[0]) {
    throw new TypeError(`linearCrossEntropy: targets ${targets.describe()} must be i32 (N) for h ${h.describe()}`);
  }
  const rows = h.shape[0], vocab = weight.shape[0];
  if (rows === 0) throw new Error(`linearCrossEntropy: no targets in ${targets.describe()}`);
  const chunkRows = logitChunkRows(rows, vocab, opts);
  if (chunkRows >= rows && paddedVocab(vocab) === vocab) {
    return crossEntropy(matmul(h, weight, { transB: true }), targets);
  }
  const chunks: [number, number][] = [];
  for (let start = 0; start < rows; start += chunkRows) chunks.push([start, Math.min(rows, start + chunkRows)]);
  const losses = empty([rows]), lse = empty([rows]);
  const grad = isGradEnabled(), wants = { h: grad && h.requiresGrad, weight: grad && weight.requiresGrad };
  const grads = noGrad(() => chunkedHead({ h, weight, targets, losses, lse, chunks }, wants));
  lse.dispose();
  const loss = mean(losses);
  losses.dispose();
  if (!grads.dh && !grads.dw) return loss;
  const saved = [grads.dh, grads.dw].filter((t): t is Tensor => t !== null);
  // The gradients were taken for a loss gradient of 1: scale them by the one that arrives.
  return recordAccumulating(loss, "linearCrossEntropy", [h, weight], (dy, prior) => {
    const dh = grads.dh && mul(grads.dh, dy);
    if (!grads.dw) return [dh, null];
    const dw = mul(grads.dw, dy);
    if (!prior[1]) return [dh, dw];
    const sum = add(prior[1], dw);
    dw.dispose();
    return [dh, sum];
  }, { saved, accumulates: [false, true] });
}

/**
 * {@linkcode linearCrossEntropy}'s chunked path, chunk by chunk: the logits, the rows' losses and log-sum-exps, and,
 * for the inputs in `wants`, the gradients of the mean loss (for a loss gradient of 1): the logits' gradient
 * overwrites them, then gives the chunk's rows of dh and adds its part of dweight in the matmul's epilogue. Taking
 * the gradients here, while the logits exist, costs the head no more matmuls than unchunked; computing them again
 * in the backward would cost a third more.
 */
function chunkedHead(
  io: { h: Tensor; weight: Tensor; targets: Tensor; losses: Tensor; lse: Tensor; chunks: [number, number][] },
  wants: { h: boolean; weight: boolean },
): { dh: Tensor | null; dw: Tensor | null } {
  const { h, weight, targets, losses, lse, chunks } = io;
  const backend = gpu();
  const [rows, dim] = h.shape, vocab = weight.shape[0], cols = paddedVocab(vocab);
  const wp = cols === vocab ? weight : padRows(weight, cols); // (cols, d)
  // h @ W^T over all the rows would run from a transposed copy of W (see copiesTransposedB): take it once for all
  // chunks, which are each too short for the copy to pay alone.
  const whole = { batch: 1, m: rows, n: cols, k: dim, transA: false, transB: true, batchStrideA: 0, batchStrideB: 0 };
  const wt = copiesTransposedB(whole) ? permute(wp, [1, 0]) : null; // (d, cols)
  const one = wants.h || wants.weight ? fill([1], 1) : null;
  const dh = wants.h ? empty(h.shape) : null;
  let dw: Tensor | null = null;
  for (const [start, end] of chunks) {
    const n = end - start, part = (t: Tensor) => rowsOf(t.buffer, start, end);
    const hc = rowRange(h, start, end);
    const logits = wt ? matmul(hc, wt) : matmul(hc, wp, { transB: true }); // (n, cols)
    const ce = { rows: n, vocab, ...(cols === vocab ? {} : { cols }) };
    backend.run(crossEntropyForwardKernel(ce), [logits.buffer, part(targets), part(losses), part(lse)]);
    if (one) {
      const spec = { ...ce, meanOver: rows };
      backend.run(crossEntropyChunkBackwardKernel(spec), [logits.buffer, part(targets), part(lse), one.buffer]);
    }
    if (dh) {
      const dhc = matmul(logits, wp); // (n, d)
      const copy = gatherKernel({ outShape: [n * dim], inStrides: [1], dtype: "f32" });
      backend.run(copy, [dhc.buffer, backend.range(dh.buffer, start * dim * 4, n * dim * 4)]);
      dhc.dispose();
    }
    if (wants.weight) {
      const next = matmul(logits, hc, { transA: true, ...(dw ? { addend: dw } : {}) }); // (cols, d)
      dw?.dispose();
      dw = next;
    }
    logits.dispose();
    hc.dispose();
  }
  one?.dispose();
  wt?.dispose();
  if (wp !== weight) wp.dispose();
  if (!dw || cols === vocab) return { dh, dw };
  const rowsOfVocab = rowRange(dw, 0, vocab); // (V, d): the padding rows' gradients are zeros
  dw.dispose();
  return { dh, dw: rowsOfVocab };
}

/** `weight` (V, d) with zero rows appended up to `cols` rows. */
function padRows(weight: Tensor, cols: number): Tensor {
  const [vocab, dim] = weight.shape;
  const zeros = fill([cols - vocab, dim], 0);
  const out = concat([weight, zeros], 0); // (cols, d)
  zeros.dispose();
  return out;
}

/** Elements [start, end) of a buffer of 4-byte elements, to bind in place (`start` aligned, see `logitChunkRows`). */
function rowsOf(buf: GpuBuffer, start: number, end: number): GpuBuffer {
  return gpu().range(buf, start * 4, (end - start) * 4);
}

// ---- Attention ------------------------------------------------------------------------------------------------

/**
 * Memory layout of attention's per-head tensors: `"bhtd"`, (..., T, d) with the heads among the leading dims
 * (typically (B, H, T, d)); `"bthd"`, (..., T, H, d), which is how a linear projection's (B, T, H*d) output splits
 * into heads by a free reshape.
 */
export type AttentionLayout = "bhtd" | "bthd";

export type { AttentionVariant } from "../../../kernels/attention.ts";

/** Options of {@linkcode attention}. */
export interface AttentionOptions {
  /** Causal mask (default true): query i sees key j when j <= i + (keys - queries). */
  causal?: boolean;
  /** Score scale (default 1/sqrt(d)). */
  scale?: number;
  /** Use the fused kernels when the head dim allows (default true); false forces the composite. */
  fused?: boolean;
  /**
   * Layout of q, k, v and the output (default `"bhtd"`): `"bhtd"` takes q (..., Tq, d), k (..., Tk, d),
   * v (..., Tk, dv) and returns (..., Tq, dv); `"bthd"` takes q (..., Tq, H, d), k (..., Tk, H, d),
   * v (..., Tk, H, dv) and returns (..., Tq, H, dv), with no copies on the fused path.
   */
  layout?: AttentionLayout;
  /**
   * Work split of the fused kernels, for benchmarks; fields left out come from {@linkcode setAttentionVariant}'s
   * setting (by default `DEFAULT_ATTENTION_VARIANT`). A variant whose workgroup memory exceeds the device's limit
   * at this head dim throws.
   */
  variant?: Partial<AttentionVariant>;
}

const variantChoices: { [K in keyof AttentionVariant]: readonly AttentionVariant[K][] } = {
  rowsPerThread: [1, 2],
  queryBlock: [64, 128],
  keyBlock: [32, 64],
  keysPerThread: [1, 2],
  keyGroup: [64, 128],
  queryTile: [32, 64],
  unroll: ["none", "forward", "all"],
  order: ["blocks", "heavy"],
  rowPipeline: ["none", "prefetch"],
  dkv: ["rows", "flash"],
  dq: ["rows", "flash", "scores"],
  forward: ["rows", "flash"],
  tile: [16, 32],
  flashPipeline: ["none", "prefetch"],
  flashThreads: [64, 128],
  scoresQueries: [32, 64, 128],
  scoresThreads: [128, 256],
  scoresPipeline: ["none", "prefetch"],
};

/** The fields {@linkcode setAttentionVariant} set; the others follow {@linkcode defaultAttentionVariant}. */
let variantSetting: Partial<AttentionVariant> = {};

/**
 * The variant attention runs at head dim `d` on this adapter unless told otherwise: `DEFAULT_ATTENTION_VARIANT`,
 * and on hardware adapters the forward kernel unrolled (`unroll: "forward"`), the causal blocks with the most work
 * started first (`order: "heavy"`), and dQ from the dS the dK/dV kernel saves (`dq: "scores"`: a dQ kernel of its own
 * computes S and dP again), loading its next dS and K block into registers while it multiplies the current one
 * (`scoresPipeline: "prefetch"`); at head dim 64, 128 query rows a workgroup in the forward kernel and the
 * register-tiled dK/dV kernel with 128 threads, 32-query tiles each loaded while the one before is computed
 * (`flashPipeline: "prefetch"`) and its loops unrolled (`unroll: "all"`, which leaves the other kernels as "forward"
 * has them). Each made the attention of GPT-2 small and of CS336's TinyStories model faster on the H200
 * (bench/RESULTS.md): at head dim 64 the row dK/dV kernel's thread holds 4 x 64 floats of keys, values and their
 * gradients, past the register file; at head dim 32 (TinyStories) the row kernels with 64-row blocks stay fastest,
 * and unrolling them makes the dK/dV kernel slower. Software adapters keep the row kernels' loops: Mesa's lavapipe
 * spends minutes compiling the unrolled kernel at head dim 32.
 *
 * @example
 * ```ts
 * import { defaultAttentionVariant } from "./nn.ts";
 * import { gpu, initGpu } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const { unroll, dkv, dq, order } = defaultAttentionVariant(64);
 * const hardware = !gpu().info.isSoftware;
 * if (unroll !== (hardware ? "all" : "none") || dkv !== (hardware ? "flash" : "rows")) throw new Error(dkv);
 * if (dq !== (hardware ? "scores" : "rows") || order !== (hardware ? "heavy" : "blocks")) throw new Error(dq);
 * const { scoresPipeline, flashPipeline } = defaultAttentionVariant(64);
 * if (scoresPipeline !== flashPipeline || flashPipeline !== (hardware ? "prefetch" : "none")) throw new Error("ahead");
 * if (defaultAttentionVariant(32).unroll !== (hardware ? "forward" : "none")) throw new Error("unrolled at 32");
 * ```
 */
export function defaultAttentionVariant(d: number): AttentionVariant {
  if (gpu().info.isSoftware) return { ...DEFAULT_ATTENTION_VARIANT };
  const wide = d === 64
    ? { queryBlock: 128, dkv: "flash", tile: 32, flashThreads: 128, flashPipeline: "prefetch", unroll: "all" } as const
    : {};
  const ahead = { dq: "scores", scoresPipeline: "prefetch" } as const;
  return { ...DEFAULT_ATTENTION_VARIANT, unroll: "forward", order: "heavy", ...ahead, ...wide };
}

/** `partial` over `base`, checked, with its keys in the default's order (it is part of the kernel cache key). */
function resolveVariant(base: AttentionVariant, partial: Partial<AttentionVariant>): AttentionVariant {
  const out = {} as Record<keyof AttentionVariant, number | string>;
  for (const key of Object.keys(variantChoices) as (keyof AttentionVariant)[]) {
    const value = partial[key] ?? base[key];
    const choices = variantChoices[key] as readonly (number | string)[];
    if (!choices.includes(value)) {
      throw new RangeError(`attention: variant ${key} must be ${choices.join(" or ")}, got ${value}`);
    }
    out[key] = value;
  }
  for (const key of Object.keys(partial)) {
    if (!(key in variantChoices)) throw new RangeError(`attention: unknown variant field ${JSON.stringify(key)}`);
  }
  return out as unknown as AttentionVariant;
}

/**
 * Sets the fused attention kernels' work split for every later {@linkcode attention} call that does not pass its
 * own (a benchmark hook: it lets a whole training step run under a variant). Fields left out follow
 * {@linkcode defaultAttentionVariant}, so `setAttentionVariant({})` restores the default. Returns the previous
 * setting.
 *
 * @example
 * ```ts
 * import { setAttentionVariant } from "./nn.ts";
 * const before = setAttentionVariant({ rowsPerThread: 2, keysPerThread: 2 });
 * // ... time a training step ...
 * const mine = setAttentionVariant(before);
 * if (mine.rowsPerThread !== 2 || Object.keys(before).length !== 0) throw new Error(JSON.stringify(mine));
 * ```
 */
export function setAttentionVariant(variant: Partial<AttentionVariant>): Partial<AttentionVariant> {
  resolveVariant(DEFAULT_ATTENTION_VARIANT, variant); // checks every field now, before any GPU is needed
  const previous = variantSetting;
  variantSetting = { ...variant };
  return previous;
}

/**
 * Scaled dot-product attention `softmax(q k^T * scale) v`, causal by default, over per-head tensors in either
 * layout (see {@linkcode AttentionOptions.layout}).
 *
 * For head dims that are a multiple of 4 up to 64 it runs fused FlashAttention-style kernels that read and write
 * both layouts in place: nothing of T x T is kept between forward and backward; on hardware adapters the backward
 * holds one layer's dS while it runs (B x H x Tq x Tk floats, where that fits one storage binding; see
 * {@linkcode AttentionVariant}'s `dq`). Otherwise it is a composite of matmul and the fused masked softmax, whose
 * gradients it inherits (in the `"bthd"` layout with head permutes around it).
 *
 * @example
 * ```ts
 * import { attention, initGpu, randn } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const [q, k, v] = [1, 2, 3].map((seed) => randn([2, 3, 4], { seed })); // (B*H, T, hd)
 * const out = await attention(q, k, v).data(); // causal: query 0 sees key 0 only, so out[0] = v[0]
 * const v0 = (await v.data()).slice(0, 4);
 * if (v0.some((x, i) => Math.abs(out[i] - x) > 1e-6)) throw new Error(`${out.slice(0, 4)}`);
 * ```
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const bthd = opts.layout === "bthd";
  // Axes from the end: the sequence, and in "bthd" the heads between it and the head dim.
  const seqFromEnd = bthd ? 3 : 2;
  const d = q.shape[q.ndim - 1];
  const tq = q.shape[q.ndim - seqFromEnd], tk = k.shape[k.ndim - seqFromEnd];
  const heads = bthd ? q.shape[q.ndim - 2] : 1;
  const lead = q.shape.slice(0, -seqFromEnd);
  // The dims besides the sequence and the head dim (the leading ones, and in "bthd" the heads) must agree.
  const others = (t: Tensor) => (bthd ? [...t.shape.slice(0, -3), t.shape[t.ndim - 2]] : t.shape.slice(0, -2));
  if (
    q.ndim < seqFromEnd || k.ndim !== q.ndim || v.ndim !== q.ndim || k.shape[k.ndim - 1] !== d ||
    v.shape[v.ndim - seqFromEnd] !== tk || !sameShape(others(k), others(q)) || !sameShape(others(v), others(q))
  ) {
    const layout = bthd ? ` (layout "bthd": (..., T, H, d))` : "";
    throw new Error(`attention: q ${q.describe()}, k ${k.describe()}, v ${v.describe()} do not fit together${layout}`);
  }
  const causal = opts.causal ?? true, scale = opts.scale ?? 1 / Math.sqrt(d);
  if (causal && tq > tk) throw new Error(`attention: causal attention needs queries (${tq}) <= keys (${tk})`);
  const dv = v.shape[v.ndim - 1];
  const variant = (opts.fused ?? true) && dv === d && tq > 0 && tk > 0 ? fusedVariant(d, opts) : null;
  if (variant) {
    return fusedAttention([q, k, v], q.shape, { bh: prod(lead) * heads, tq, tk, d, scale, causal, heads }, variant);
  }
  if (!bthd) return compositeAttention(q, k, v, { tq, tk, scale, causal });
  // The composite runs per head on (..., H, T, d): swap the sequence and head axes around it.
  const n = q.ndim, swap = [...Array.from({ length: n - 3 }, (_, i) => i), n - 2, n - 3, n - 1];
  const [qh, kh, vh] = [q, k, v].map((t) => permute(t, swap)); // (..., H, T, d)
  const o = compositeAttention(qh, kh, vh, { tq, tk, scale, causal }); // (..., H, Tq, dv)
  return permute(o, swap); // (..., Tq, H, dv)
}
/**
 * The variant the fused kernels run at head dim `d` under `opts`, or null when they cannot (the head dim, or the
 * default variant needing more workgroup memory than the device has: the caller then takes the composite).
 */
function fusedVariant(d: number, opts: { variant?: Partial<AttentionVariant> }): AttentionVariant | null {
  if (!fusedAttentionSupports(d)) return null;
  const base = defaultAttentionVariant(d);
  const variant = resolveVariant(resolveVariant(base, variantSetting), opts.variant ?? {});
  const limit = gpu().device.limits.maxComputeWorkgroupStorageSize;
  const bytes = attentionWorkgroupBytes(d, variant);
  if (bytes <= limit) return variant;
  // A variant asked for must not silently become another (a benchmark would time the wrong thing); the default
  // falls back to the row kernel for each kernel that does not fit, then (at d = 64 the row kernels need 24 KB,
  // more than WebGPU guarantees) the composite.
  if (JSON.stringify(variant) === JSON.stringify(base)) {
    const rows: AttentionVariant = { ...variant };
    for (const kernel of ATTENTION_KERNELS) {
      if (attentionKernelBytes(d, variant, kernel) > limit) rows[kernel] = "rows";
    }
    return attentionWorkgroupBytes(d, rows) <= limit ? rows : null;
  }
  throw new Error(
    `attention: variant ${JSON.stringify(variant)} needs ${bytes} bytes of workgroup memory at head dim ${d}; ` +
      `this device allows ${limit}`,
  );
}

/** Options of {@linkcode packedAttention}: those of {@linkcode attention} except the layout, which is fixed, and `rope`. */
export interface PackedAttentionOptions extends Omit<AttentionOptions, "layout"> {
  /**
   * q and k of `qkv` were rotated by RoPE at these positions ((T) or (..., T), see {@linkcode rope}) before attention,
   * by the q/k/v product's epilogue that leaves the rotation's backward to its consumer (`matmul`'s
   * `rope.gradientBeforeRotation`): the gradient returned for `qkv` is that of the values before the rotation. The
   * fused backward kernels rotate dQ and dK back as they store them, which saves a pass over the gradient.
   */
  rope?: Pick<RopeOptions, "theta" | "maxPosition"> & { positions: Tensor };
}

/**
 * Causal self-attention over the output of a fused q/k/v projection, `qkv` (..., T, 3, H, d): part 0 the queries,
 * 1 the keys, 2 the values, each (..., T, H, d) in the `"bthd"` layout of {@linkcode attention}. Returns
 * (..., T, H, d). The fused kernels read the three parts in place (no copies), and the gradient of `qkv` is one
 * tensor whose parts the dQ and dK/dV kernels write, so that `x @ Wqkv^T`'s backward is one matmul per operand.
 * Where the fused kernels do not apply (head dim, `fused: false`) the parts are sliced out for the composite.
 *
 * @example
 * ```ts
 * import { initGpu, packedAttention, randn } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * // In a model: reshape(matmul(x, concat([wq, wk, wv], 0), { transB: true }), [B, T, 3, H, hd]).
 * const qkv = randn([1, 3, 3, 2, 4], { seed: 0 }); // (B, T, 3, H, hd)
 * const o = packedAttention(qkv); // (B, T, H, hd): position 0 sees itself only, so o[0] is its v
 * const [out, all] = [await o.data(), await qkv.data()];
 * if (o.shape.join() !== "1,3,2,4" || Math.abs(out[0] - all[16]) > 1e-6) throw new Error(o.describe());
 * ```
 */
export function packedAttention(qkv: Tensor, opts: PackedAttentionOptions = {}): Tensor {
  if (qkv.ndim < 4 || qkv.shape[qkv.ndim - 3] !== 3) {
    throw new Error(`packedAttention: qkv must be (..., T, 3, H, d), got ${qkv.describe()}`);
  }
  const n = qkv.ndim, d = qkv.shape[n - 1], heads = qkv.shape[n - 2], t = qkv.shape[n - 4];
  const lead = qkv.shape.slice(0, -4);
  const causal = opts.causal ?? true, scale = opts.scale ?? 1 / Math.sqrt(d);
  const variant = (opts.fused ?? true) && t > 0 ? fusedVariant(d, opts) : null;
  const { rope: turned, ...attentionOpts } = opts;
  const ropeOpts = turned ? { packed: true, theta: turned.theta, maxPosition: turned.maxPosition } : null;
  if (!variant) {
    const x = turned ? ropeGradient(qkv, turned.positions, ropeOpts!) : qkv;
    const part = (p: number) => reshape(slice(x, { axis: -3, start: p, end: p + 1 }), [...lead, t, heads, d]);
    return attention(part(0), part(1), part(2), { ...attentionOpts, layout: "bthd" }); // (..., T, H, d)
  }
  const spec: AttentionSpec = { bh: prod(lead) * heads, tq: t, tk: t, d, scale, causal, heads, packed: true };
  if (!turned) return fusedAttention([qkv], [...lead, t, heads, d], spec, variant);
  const { kernelSpec, table } = ropePlan(qkv, turned.positions, ropeOpts!);
  const unrope = { cycle: kernelSpec.cycle, tableRows: kernelSpec.tableRows };
  return fusedAttention([qkv], [...lead, t, heads, d], { ...spec, unrope }, variant, [turned.positions, table.table]);
}

/**
 * Attention as matmul + fused masked softmax + matmul, recorded as one op: the scores are freed as soon as the
 * softmax has read them, and the probabilities live only as long as the backward needs them.
 */
function compositeAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  spec: { tq: number; tk: number; scale: number; causal: boolean },
): Tensor {
  const { tq, tk, scale, causal } = spec;
  const [p, out] = noGrad(() => {
    const scores = matmul(q, k, { transB: true }); // (..., Tq, Tk)
    const p = softmax(scores, { scale, causal });
    scores.dispose();
    return [p, matmul(p, v)]; // (..., Tq, dv)
  });
  return record(out, "attention", [q, k, v], (dout) => {
    const dv = matmul(p, dout, { transA: true });
    const dp = matmul(dout, v, { transB: true });
    const ds = empty(dp.shape);
    const softmaxSpec = { rows: ds.size / Math.max(tk, 1), cols: tk, scale, causalQueries: causal ? tq : undefined };
    if (ds.size > 0) run(softmaxBackwardKernel({ ...softmaxSpec, log: false }), [p, dp, ds]);
    return [matmul(ds, k), matmul(ds, q, { transA: true }), dv];
  }, [p]);
}

/**
 * The variant the backward runs: `variant`, except that dQ from saved scores takes the row kernel where dS would not
 * fit one storage binding (its size grows with Tq x Tk, the fused kernels' memory does not).
 */
function backwardVariant(spec: AttentionSpec, variant: AttentionVariant): AttentionVariant {
  if (variant.dq !== "scores") return variant;
  const fits = savedScoresBytes(spec) <= gpu().limits.maxStorageBufferBindingSize;
  return fits ? variant : { ...variant, dq: "rows" };
}

/**
 * The fused kernels over `inputs`: q, k, v (either layout; `spec.heads` says which), or, with `spec.packed`, the one
 * packed qkv tensor. The output is `outShape`; the gradients take their inputs' shapes (packed: part 0 written by
 * the dQ kernel, parts 1 and 2 by the dK/dV kernel). The log-sum-exp and delta hold one float per query row in q's
 * row order.
 */
function fusedAttention(
  inputs: Tensor[],
  outShape: readonly number[],
  spec: AttentionSpec,
  variant: AttentionVariant,
  unrope: Tensor[] = [],
): Tensor {
  const out = empty(outShape), lse = empty([spec.bh * spec.tq]);
  const { unrope: _, ...forward } = spec;
  run(attentionForwardKernel({ ...forward, variant }), [...inputs, out, lse]);
  return record(out, spec.packed ? "packedAttention" : "attention", inputs, (dout) => {
    // delta_i = rowsum(dO_i * O_i), the softmax backward's correction term.
    const delta = empty([spec.bh * spec.tq]);
    run(attentionBackwardDeltaKernel({ rows: spec.bh * spec.tq, d: spec.d }), [dout, out, delta]);
    const grads = inputs.map((t) => empty(t.shape));
    const [dq, dk, dv] = spec.packed ? [grads[0], grads[0], null] : grads;
    const kernels = { ...spec, variant: backwardVariant(spec, variant) };
    // Packed, dk and dv are parts of one gradient, bound once.
    // With `spec.unrope`, the positions and the RoPE table follow each backward kernel's own bindings.
    const dkv = [...inputs, dout, lse, delta, dk, ...(dv ? [dv] : [])];
    if (kernels.variant.dq === "scores") {
      // The dK/dV kernel saves dS, then dQ = scale * dS @ K reads it.
      const ds = empty([savedScoresBytes(spec) / 4]);
      run(attentionBackwardDkvKernel(kernels), [...dkv, ds, ...unrope]);
      run(attentionBackwardDqKernel(kernels), [spec.packed ? inputs[0] : inputs[1], ds, dq, ...unrope]);
      ds.dispose();
    } else {
      run(attentionBackwardDqKernel(kernels), [...inputs, dout, lse, delta, dq, ...unrope]);
      run(attentionBackwardDkvKernel(kernels), [...dkv, ...unrope]);
    }
    delta.dispose();
    return grads;
  }, [lse]);
}

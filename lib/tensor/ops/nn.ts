/**
 * Neural-network ops with fused kernels: softmax, log-softmax, RMSNorm, rotary embedding, embedding lookup,
 * cross-entropy, and causal scaled-dot-product attention (a composite of matmul and the fused masked softmax,
 * so its gradient comes from theirs).
 *
 * @module
 */
import { crossEntropyBackwardKernel, crossEntropyForwardKernel } from "../../../kernels/cross_entropy.ts";
import { embeddingBackwardKernel, embeddingForwardKernel } from "../../../kernels/embedding.ts";
import {
  rmsNormBackwardKernel,
  rmsNormForwardKernel,
  rmsNormWeightGradChunks,
  rmsNormWeightGradKernel,
} from "../../../kernels/rmsnorm.ts";
import { ropeKernel } from "../../../kernels/rope.ts";
import { softmaxBackwardKernel, softmaxForwardKernel, type SoftmaxSpec } from "../../../kernels/softmax.ts";
import type { KernelSource } from "../../../kernels/common.ts";
import {
  attentionBackwardDkvKernel,
  attentionBackwardDqKernel,
  attentionDeltaKernel,
  attentionForwardKernel,
  type AttentionSpec,
  fusedAttentionSupports,
} from "../../../kernels/attention.ts";
import { gpu } from "../../gpu/backend.ts";
import { noGrad, record } from "../autograd.ts";
import { fmt, prod, sameShape } from "../shape.ts";
import { empty, keep, type Tensor } from "../tensor.ts";
import { fill } from "./elementwise.ts";
import { matmul } from "./matmul.ts";
import { mean, sumTo } from "./reduce.ts";
import { tensor } from "../create.ts";

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
 * ```ts ignore
 * const p = softmax(scores, { scale: 1 / Math.sqrt(64), causal: true });
 * ```
 */
export function softmax(x: Tensor, opts: SoftmaxOptions = {}): Tensor {
  return softmaxOp(x, opts, false);
}

/**
 * Log-softmax over the last axis, numerically stable.
 *
 * @example
 * ```ts ignore
 * const logp = logSoftmax(logits);
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
 * ```ts ignore
 * const h = rmsNorm(x, gain, { eps: 1e-5 });
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
  return record(y, "rmsNorm", [x, weight], (dy) => {
    let dx: Tensor | null = null, dw: Tensor | null = null;
    if (x.requiresGrad) {
      dx = empty(x.shape);
      if (dx.size > 0) run(rmsNormBackwardKernel(rows, dim), [x, weight, rstd, dy, dx]);
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
  }, [rstd]);
}

// ---- Rotary position embedding ----------------------------------------------------------------------------------

const ropeTables = new Map<string, { cos: Tensor; sin: Tensor; size: number }>();

function ropeTable(theta: number, dim: number, maxPos: number): { cos: Tensor; sin: Tensor; size: number } {
  // Rows 0..maxPos inclusive; grow in powers of two so that a longer sequence rarely forces a new upload.
  const size = 2 ** Math.ceil(Math.log2(Math.max(maxPos + 1, 64)));
  const key = `${theta}/${dim}/${size}`;
  let t = ropeTables.get(key);
  if (!t) {
    const half = dim / 2, c = new Float32Array(size * half), s = new Float32Array(size * half);
    for (let p = 0; p < size; p++) {
      for (let k = 0; k < half; k++) {
        const angle = p * Math.pow(theta, (-2 * k) / dim);
        c[p * half + k] = Math.cos(angle);
        s[p * half + k] = Math.sin(angle);
      }
    }
    t = { cos: keep(tensor(c, { shape: [size, half] })), sin: keep(tensor(s, { shape: [size, half] })), size };
    ropeTables.set(key, t);
  }
  return t;
}

/** Options of {@linkcode rope}. */
export interface RopeOptions {
  /** Base of the frequencies (CS336: 10000). */
  theta?: number;
  /**
   * The largest position that can occur (sizes the cos/sin table); defaults to the sequence length. Positions
   * outside the table (negative, or larger than this rounded up to a power of two) give NaN.
   */
  maxPosition?: number;
}

/**
 * Rotary position embedding of `x` (..., seq, dim) at integer `positions`: shape (seq) shared by all leading
 * dims, or exactly x's shape without the last dim. Rotates interleaved pairs (2k, 2k+1) by
 * `position * theta^(-2k/dim)`.
 *
 * @example
 * ```ts ignore
 * const q2 = rope(q, positions, { theta: 10000 }); // q (B, H, T, hd), positions (T) i32
 * ```
 */
export function rope(x: Tensor, positions: Tensor, opts: RopeOptions = {}): Tensor {
  requireF32("rope", x);
  const dim = x.shape[x.ndim - 1];
  if (dim % 2 !== 0) throw new Error(`rope: the last dim must be even, got ${x.describe()}`);
  if (positions.dtype !== "i32") throw new TypeError(`rope: positions must be i32, got ${positions.describe()}`);
  const seq = x.ndim >= 2 ? x.shape[x.ndim - 2] : 1;
  const rowsShape = x.shape.slice(0, -1);
  const posPerRow = sameShape(positions.shape, rowsShape);
  if (!posPerRow && !(positions.ndim === 1 && positions.shape[0] === seq)) {
    throw new Error(
      `rope: positions ${positions.describe()} must be (${seq}) or ${fmt(rowsShape)} for ${x.describe()}`,
    );
  }
  const table = ropeTable(opts.theta ?? 10000, dim, opts.maxPosition ?? seq);
  const spec = { rows: prod(rowsShape), dim, posPerRow, seq, tableRows: table.size };
  const y = empty(x.shape);
  if (y.size > 0) run(ropeKernel({ ...spec, inverse: false }), [x, positions, table.cos, table.sin, y]);
  return record(y, "rope", [x], (dy) => {
    const dx = empty(x.shape);
    if (dx.size > 0) run(ropeKernel({ ...spec, inverse: true }), [dy, positions, table.cos, table.sin, dx]);
    return [dx];
  });
}

// ---- Embedding ------------------------------------------------------------------------------------------------

/**
 * Rows of `table` (vocab, dim) at integer `ids` of any shape: result (...ids.shape, dim). Ids outside the table
 * give zero rows (the GPU cannot raise errors; validate ids on the host when they come from users).
 *
 * @example
 * ```ts ignore
 * const h = embedding(tokenEmbeddings, ids); // (B, T, d_model)
 * ```
 */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  if (table.ndim !== 2) throw new Error(`embedding: table must be (vocab, dim), got ${table.describe()}`);
  if (ids.dtype !== "i32") throw new TypeError(`embedding: ids must be i32, got ${ids.describe()}`);
  const [vocab, dim] = table.shape;
  const y = empty([...ids.shape, dim]);
  if (y.size > 0) run(embeddingForwardKernel(ids.size, dim, vocab), [table, ids, y]);
  return record(y, "embedding", [table], (dy) => {
    const grad = fill(table.shape, 0);
    if (dy.size > 0) run(embeddingBackwardKernel(ids.size, dim, vocab), [dy, ids, grad]);
    return [grad];
  });
}

// ---- Cross-entropy --------------------------------------------------------------------------------------------

/**
 * Mean cross-entropy of `logits` (..., vocab) against integer `targets` (...), fused with a stable log-softmax.
 * Out-of-range targets give NaN (so they cannot pass unnoticed).
 *
 * @example
 * ```ts ignore
 * const loss = crossEntropy(logits, targets); // scalar
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
  run(crossEntropyForwardKernel(rows, vocab), [logits, targets, losses, lse]);
  const loss = mean(losses);
  losses.dispose();
  return record(loss, "crossEntropy", [logits], (dy) => {
    const dl = empty(logits.shape);
    run(crossEntropyBackwardKernel(rows, vocab), [logits, targets, lse, dy, dl]);
    return [dl];
  }, [lse]);
}

// ---- Attention ------------------------------------------------------------------------------------------------

/** Options of {@linkcode attention}. */
export interface AttentionOptions {
  /** Causal mask (default true): query i sees key j when j <= i + (keys - queries). */
  causal?: boolean;
  /** Score scale (default 1/sqrt(d)). */
  scale?: number;
  /** Use the fused kernels when the head dim allows (default true); false forces the composite. */
  fused?: boolean;
}

/**
 * Scaled dot-product attention `softmax(q k^T * scale) v` over (..., T, d) tensors, causal by default.
 *
 * For head dims that are a multiple of 4 up to 64 it runs fused FlashAttention-style kernels (no T x T matrix in
 * memory); otherwise it is a composite of matmul and the fused masked softmax, whose gradients it inherits.
 *
 * @example
 * ```ts ignore
 * const out = attention(q, k, v); // (B, H, T, hd)
 * ```
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const d = q.shape[q.ndim - 1];
  const tq = q.shape[q.ndim - 2], tk = k.shape[k.ndim - 2];
  const lead = q.shape.slice(0, -2);
  if (
    q.ndim < 2 || k.ndim !== q.ndim || v.ndim !== q.ndim || k.shape[k.ndim - 1] !== d ||
    v.shape[v.ndim - 2] !== tk || !sameShape(k.shape.slice(0, -2), lead) || !sameShape(v.shape.slice(0, -2), lead)
  ) {
    throw new Error(`attention: q ${q.describe()}, k ${k.describe()}, v ${v.describe()} do not fit together`);
  }
  const causal = opts.causal ?? true, scale = opts.scale ?? 1 / Math.sqrt(d);
  if (causal && tq > tk) throw new Error(`attention: causal attention needs queries (${tq}) <= keys (${tk})`);
  const dv = v.shape[v.ndim - 1];
  if ((opts.fused ?? true) && dv === d && fusedAttentionSupports(d) && tq > 0 && tk > 0) {
    return fusedAttention(q, k, v, { bh: prod(lead), tq, tk, d, scale, causal });
  }
  return compositeAttention(q, k, v, { tq, tk, scale, causal });
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

function fusedAttention(q: Tensor, k: Tensor, v: Tensor, spec: AttentionSpec): Tensor {
  const out = empty(q.shape), lse = empty([spec.bh, spec.tq]);
  run(attentionForwardKernel(spec), [q, k, v, out, lse]);
  return record(out, "attention", [q, k, v], (dout) => {
    // delta_i = rowsum(dO_i * O_i), the softmax backward's correction term.
    const delta = empty([spec.bh, spec.tq]);
    run(attentionDeltaKernel(spec.bh * spec.tq, spec.d), [dout, out, delta]);
    const dq = empty(q.shape), dk = empty(k.shape), dv = empty(v.shape);
    run(attentionBackwardDqKernel(spec), [q, k, v, dout, lse, delta, dq]);
    run(attentionBackwardDkvKernel(spec), [q, k, v, dout, lse, delta, dk, dv]);
    delta.dispose();
    return [dq, dk, dv];
  }, [lse]);
}

/**
 * Float64 CPU reference implementations of the tensor ops, written independently of the GPU code (no imports from
 * `lib/tensor` or `kernels/`), plus central finite differences for checking gradients.
 *
 * Arrays are {@linkcode Nd}: a shape and row-major float64 data. Everything here favours obviousness over speed:
 * loops over multi-indices, no clever index arithmetic, so that a bug in the GPU code cannot be mirrored here.
 *
 * @module
 */
import { Rng } from "../lib/util/random.ts";

/** A float64 n-dimensional array: shape and row-major data. */
export interface Nd {
  shape: number[];
  data: Float64Array;
}

/** Product of the dimensions. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** An array of `shape` holding `data` (zeros when absent). */
export function nd(shape: readonly number[], data?: ArrayLike<number>): Nd {
  const n = numel(shape);
  const out = new Float64Array(n);
  if (data) {
    if (data.length !== n) throw new Error(`nd: ${data.length} values for shape (${shape})`);
    for (let i = 0; i < n; i++) out[i] = data[i];
  }
  return { shape: [...shape], data: out };
}

/** Row-major strides of `shape`. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/** The multi-index of flat position `flat` in `shape`. */
export function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = flat % shape[d];
    flat = Math.floor(flat / shape[d]);
  }
  return idx;
}

/** The flat position of multi-index `idx` in `shape`. */
export function ravel(idx: readonly number[], shape: readonly number[]): number {
  let flat = 0;
  for (let d = 0; d < shape.length; d++) flat = flat * shape[d] + idx[d];
  return flat;
}

/**
 * Uniform values in [low, high) rounded to float32 (so that the GPU and the reference see the same inputs). Values
 * closer than `awayFrom.margin` to any of `awayFrom.points` are redrawn (keeps inputs off kinks such as 0 for relu).
 */
export function randNd(
  rng: Rng,
  shape: readonly number[],
  opts: { low?: number; high?: number; awayFrom?: { points: number[]; margin: number } } = {},
): Nd {
  const low = opts.low ?? -1, high = opts.high ?? 1;
  const x = nd(shape);
  for (let i = 0; i < x.data.length; i++) {
    let v: number;
    do v = Math.fround(low + (high - low) * rng.uniform()); while (
      opts.awayFrom && opts.awayFrom.points.some((p) => Math.abs(v - p) < opts.awayFrom!.margin)
    );
    x.data[i] = v;
  }
  return x;
}

/** Integers uniform in [0, n). */
export function randInts(rng: Rng, count: number, n: number): number[] {
  return Array.from({ length: count }, () => rng.int(n));
}

/** Applies `f` to every element. */
export function map(x: Nd, f: (v: number) => number): Nd {
  const out = nd(x.shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = f(x.data[i]);
  return out;
}

/** The NumPy broadcast of shapes (throws when they do not broadcast). */
export function broadcastShape(...shapes: (readonly number[])[]): number[] {
  const ndim = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(ndim).fill(1);
  for (const s of shapes) {
    for (let j = 0; j < s.length; j++) {
      const d = ndim - s.length + j;
      if (s[j] === 1) continue;
      if (out[d] !== 1 && out[d] !== s[j]) throw new Error(`reference: shapes do not broadcast`);
      out[d] = s[j];
    }
  }
  return out;
}

/** Repeats `x` along broadcast dims to `shape`. */
export function broadcastTo(x: Nd, shape: readonly number[]): Nd {
  const out = nd(shape);
  const pad = shape.length - x.shape.length;
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, shape);
    const src = x.shape.map((d, j) => (d === 1 ? 0 : idx[pad + j]));
    out.data[i] = x.data[ravel(src, x.shape)];
  }
  return out;
}

/** Elementwise `f` of several arrays broadcast together. */
export function zip(xs: Nd[], f: (...v: number[]) => number): Nd {
  const shape = broadcastShape(...xs.map((x) => x.shape));
  const bs = xs.map((x) => broadcastTo(x, shape));
  const out = nd(shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = f(...bs.map((b) => b.data[i]));
  return out;
}

/** Reduction kinds of {@linkcode reduce}. */
export type RefReduce = "sum" | "mean" | "max";

/** Reduces `axes` (all when undefined; negative allowed) of `x`. */
export function reduce(x: Nd, kind: RefReduce, axes?: number | number[], keepDims = false): Nd {
  const nd0 = x.shape.length;
  const list = axes === undefined ? [...x.shape.keys()] : (Array.isArray(axes) ? axes : [axes]);
  const set = new Set(list.map((a) => (a < 0 ? a + nd0 : a)));
  const keptShape = x.shape.map((d, i) => (set.has(i) ? 1 : d));
  const outShape = keepDims ? keptShape : x.shape.filter((_, i) => !set.has(i));
  const acc = new Float64Array(numel(keptShape)).fill(kind === "max" ? -Infinity : 0);
  for (let i = 0; i < x.data.length; i++) {
    const idx = unravel(i, x.shape).map((v, d) => (set.has(d) ? 0 : v));
    const o = ravel(idx, keptShape);
    acc[o] = kind === "max" ? Math.max(acc[o], x.data[i]) : acc[o] + x.data[i];
  }
  if (kind === "mean") {
    const count = numel(x.shape) / numel(keptShape);
    for (let i = 0; i < acc.length; i++) acc[i] /= count;
  }
  return nd(outShape, acc);
}

/** Output dim `i` is input dim `axes[i]`. */
export function permute(x: Nd, axes: readonly number[]): Nd {
  const ax = axes.map((a) => (a < 0 ? a + x.shape.length : a));
  const outShape = ax.map((a) => x.shape[a]);
  const out = nd(outShape);
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, outShape);
    const src = new Array<number>(x.shape.length);
    ax.forEach((a, j) => (src[a] = idx[j]));
    out.data[i] = x.data[ravel(src, x.shape)];
  }
  return out;
}

/** Swaps two dims. */
export function transpose(x: Nd, d0 = -2, d1 = -1): Nd {
  const n = x.shape.length;
  const axes = [...x.shape.keys()];
  const a = d0 < 0 ? d0 + n : d0, b = d1 < 0 ? d1 + n : d1;
  [axes[a], axes[b]] = [axes[b], axes[a]];
  return permute(x, axes);
}

/** Elements `start <= i < end` along `axis` (negative start/end count from the end). */
export function slice(x: Nd, axis: number, start: number, end?: number): Nd {
  const a = axis < 0 ? axis + x.shape.length : axis;
  const size = x.shape[a];
  const s = start < 0 ? start + size : start;
  const e = end === undefined ? size : end < 0 ? end + size : end;
  const outShape = x.shape.map((d, i) => (i === a ? e - s : d));
  const out = nd(outShape);
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, outShape);
    idx[a] += s;
    out.data[i] = x.data[ravel(idx, x.shape)];
  }
  return out;
}

/** Joins along `axis`. */
export function concat(xs: Nd[], axis: number): Nd {
  const a = axis < 0 ? axis + xs[0].shape.length : axis;
  const outShape = xs[0].shape.map((d, i) => (i === a ? xs.reduce((s, x) => s + x.shape[a], 0) : d));
  const out = nd(outShape);
  let offset = 0;
  for (const x of xs) {
    for (let i = 0; i < x.data.length; i++) {
      const idx = unravel(i, x.shape);
      idx[a] += offset;
      out.data[ravel(idx, outShape)] = x.data[i];
    }
    offset += x.shape[a];
  }
  return out;
}

/**
 * `op(a) @ op(b)` over the last two dims, `op` transposing when asked. Batch dims must be equal, or one operand
 * 2-D (shared).
 */
export function matmul(a: Nd, b: Nd, opts: { transA?: boolean; transB?: boolean } = {}): Nd {
  const ta = opts.transA ?? false, tb = opts.transB ?? false;
  const [ar, ac] = a.shape.slice(-2), [br, bc] = b.shape.slice(-2);
  const M = ta ? ac : ar, K = ta ? ar : ac, N = tb ? br : bc;
  if ((tb ? bc : br) !== K) throw new Error("reference matmul: inner dims differ");
  const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
  const batchShape = batchA.length ? batchA : batchB;
  const batch = numel(batchShape);
  const out = nd([...batchShape, M, N]);
  for (let p = 0; p < batch; p++) {
    const offA = batchA.length ? p * ar * ac : 0, offB = batchB.length ? p * br * bc : 0;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a.data[offA + (ta ? k * ac + i : i * ac + k)];
          const bv = b.data[offB + (tb ? j * bc + k : k * bc + j)];
          s += av * bv;
        }
        out.data[p * M * N + i * N + j] = s;
      }
    }
  }
  return out;
}

/** Whether key `j` is visible to query `i` under a causal mask with `tq` queries and `tk` keys. */
export function causalVisible(i: number, j: number, tq: number, tk: number): boolean {
  return j <= i + (tk - tq);
}

/**
 * Softmax (or log-softmax) of `x * scale` over the last axis; with `causal`, entries hidden by the mask over the
 * last two dims give 0 (softmax) or -Infinity (log-softmax).
 */
export function softmax(x: Nd, opts: { scale?: number; causal?: boolean; log?: boolean } = {}): Nd {
  const scale = opts.scale ?? 1;
  const cols = x.shape[x.shape.length - 1];
  const tq = x.shape.length >= 2 ? x.shape[x.shape.length - 2] : 1;
  const rows = x.data.length / cols;
  const out = nd(x.shape);
  for (let r = 0; r < rows; r++) {
    const q = r % tq;
    const vis = (j: number) => !opts.causal || causalVisible(q, j, tq, cols);
    let m = -Infinity;
    for (let j = 0; j < cols; j++) if (vis(j)) m = Math.max(m, x.data[r * cols + j] * scale);
    let total = 0;
    for (let j = 0; j < cols; j++) if (vis(j)) total += Math.exp(x.data[r * cols + j] * scale - m);
    for (let j = 0; j < cols; j++) {
      const z = x.data[r * cols + j] * scale - m;
      out.data[r * cols + j] = vis(j)
        ? (opts.log ? z - Math.log(total) : Math.exp(z) / total)
        : (opts.log ? -Infinity : 0);
    }
  }
  return out;
}

/** `x / sqrt(mean(x^2, last axis) + eps) * w`. */
export function rmsNorm(x: Nd, w: Nd, eps = 1e-5): Nd {
  const dim = x.shape[x.shape.length - 1];
  const out = nd(x.shape);
  for (let r = 0; r < x.data.length / dim; r++) {
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x.data[r * dim + j] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) out.data[r * dim + j] = x.data[r * dim + j] * inv * w.data[j];
  }
  return out;
}

/**
 * Rotary embedding of `x` (..., seq, dim): the pair (2k, 2k+1) of row `r` is rotated by the angle
 * `pos * theta^(-2k/dim)`, where `pos` is `positions[r]` when one position is given per row, else
 * `positions[r % seq]`.
 */
export function rope(x: Nd, positions: readonly number[], theta = 10000): Nd {
  const dim = x.shape[x.shape.length - 1];
  const rows = x.data.length / dim;
  const seq = x.shape.length >= 2 ? x.shape[x.shape.length - 2] : 1;
  const out = nd(x.shape);
  for (let r = 0; r < rows; r++) {
    const pos = positions.length === rows ? positions[r] : positions[r % seq];
    for (let k = 0; k < dim / 2; k++) {
      const angle = pos * Math.pow(theta, (-2 * k) / dim);
      const c = Math.cos(angle), s = Math.sin(angle);
      const x0 = x.data[r * dim + 2 * k], x1 = x.data[r * dim + 2 * k + 1];
      out.data[r * dim + 2 * k] = x0 * c - x1 * s;
      out.data[r * dim + 2 * k + 1] = x0 * s + x1 * c;
    }
  }
  return out;
}

/** Rows of `table` (vocab, dim) at `ids` (of shape `idsShape`); ids outside the table give zero rows. */
export function embedding(table: Nd, ids: readonly number[], idsShape: readonly number[]): Nd {
  const [vocab, dim] = table.shape;
  const out = nd([...idsShape, dim]);
  ids.forEach((id, n) => {
    if (id < 0 || id >= vocab) return;
    for (let j = 0; j < dim; j++) out.data[n * dim + j] = table.data[id * dim + j];
  });
  return out;
}

/** Mean over rows of `-log softmax(logits)[target]` (a 0-d array). */
export function crossEntropy(logits: Nd, targets: readonly number[]): Nd {
  const vocab = logits.shape[logits.shape.length - 1];
  let total = 0;
  targets.forEach((t, r) => {
    let m = -Infinity;
    for (let j = 0; j < vocab; j++) m = Math.max(m, logits.data[r * vocab + j]);
    let s = 0;
    for (let j = 0; j < vocab; j++) s += Math.exp(logits.data[r * vocab + j] - m);
    total += m + Math.log(s) - logits.data[r * vocab + t];
  });
  return nd([], [total / targets.length]);
}

/** `softmax(q k^T * scale, causal) v`, by default causal with scale `1/sqrt(d)`. */
export function attention(q: Nd, k: Nd, v: Nd, opts: { causal?: boolean; scale?: number } = {}): Nd {
  const d = q.shape[q.shape.length - 1];
  const scores = matmul(q, k, { transB: true });
  const p = softmax(scores, { scale: opts.scale ?? 1 / Math.sqrt(d), causal: opts.causal ?? true });
  return matmul(p, v);
}

/**
 * Gradients of `sum(attention(q, k, v) * dout)` with respect to q, k and v (..., T, d), the softmax backward written
 * out: dV = P^T dO, dS = P * (dP - rowsum(P * dP)) with dP = dO V^T, dQ = scale dS K, dK = scale dS^T Q.
 */
export function attentionGrad(q: Nd, k: Nd, v: Nd, dout: Nd, opts: { causal?: boolean; scale?: number } = {}): Nd[] {
  const d = q.shape[q.shape.length - 1];
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  const p = softmax(matmul(q, k, { transB: true }), { scale, causal: opts.causal ?? true });
  const dp = matmul(dout, v, { transB: true });
  const cols = p.shape[p.shape.length - 1];
  const ds = nd(p.shape);
  for (let r = 0; r < p.data.length / cols; r++) {
    let rowsum = 0;
    for (let j = 0; j < cols; j++) rowsum += p.data[r * cols + j] * dp.data[r * cols + j];
    for (let j = 0; j < cols; j++) ds.data[r * cols + j] = p.data[r * cols + j] * (dp.data[r * cols + j] - rowsum);
  }
  const dq = map(matmul(ds, k), (x) => x * scale);
  const dk = map(matmul(ds, q, { transA: true }), (x) => x * scale);
  return [dq, dk, matmul(p, dout, { transA: true })];
}

/** `sum(y * r)` over all elements (the scalar losses of the gradient checks). */
export function dot(y: Nd, r: Nd): number {
  let s = 0;
  for (let i = 0; i < y.data.length; i++) {
    if (r.data[i] !== 0) s += y.data[i] * r.data[i];
  }
  return s;
}

/**
 * Central finite differences of the scalar `f()` with respect to every element of `x` (which `f` reads and which is
 * perturbed in place and restored). The step is `h * max(1, |x_i|)`.
 */
export function numericGrad(f: () => number, x: Float64Array, h = 1e-6): Float64Array {
  return Float64Array.from(x, (_, i) => numericGradAt(f, x, i, h));
}

/** {@linkcode numericGrad} at element `i` only. */
export function numericGradAt(f: () => number, x: Float64Array, i: number, h = 1e-6): number {
  const orig = x[i];
  const step = h * Math.max(1, Math.abs(orig));
  x[i] = orig + step;
  const up = f();
  x[i] = orig - step;
  const down = f();
  x[i] = orig;
  return (up - down) / (2 * step);
}

/** A seeded generator for a test, from a string (so that every test draws its own reproducible stream). */
export function rngFor(name: string): Rng {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return new Rng(h);
}

/**
 * A random shape of `ndim` dims drawn from sizes that stress the kernels: 1 (broadcast-like), small odd sizes, and
 * sizes just past powers of two; the total size is capped at `maxSize`.
 */
export function randShape(rng: Rng, ndim: number, maxSize = 4096): number[] {
  const pool = [1, 2, 3, 5, 7, 9, 13, 17, 31, 33, 65, 129, 257];
  for (;;) {
    const shape = Array.from({ length: ndim }, () => pool[rng.int(pool.length)]);
    if (numel(shape) <= maxSize) return shape;
  }
}

/**
 * A shape that broadcasts to `shape`: some dims set to 1 and possibly some leading dims dropped.
 */
export function broadcastableShape(rng: Rng, shape: readonly number[]): number[] {
  const drop = rng.int(shape.length + 1);
  return shape.slice(drop).map((d) => (rng.uniform() < 0.4 ? 1 : d));
}

/**
 * Row softmax and log-softmax over the last axis, forward and backward, with an optional scale and causal mask
 * folded in (attention scores never need a separate scale or mask pass).
 *
 * One workgroup per row: a strided pass finds the maximum, a second sums exponentials, a third writes; each
 * reduction goes through workgroup memory. The causal mask hides key `j` from query `q` when
 * `j > q + (keys - queries)`, which also covers decoding with a KV cache (queries are the last positions).
 *
 * @module
 */
import {
  bindings,
  ELEMENT_BYTES,
  f32Literal,
  type KernelSource,
  memoized,
  read,
  readWrite,
  rowKernelEntry,
  workgroupReduce,
} from "./common.ts";

const WG = 128;

/** Shape and options of a softmax. */
export interface SoftmaxSpec {
  /** Number of rows. */
  rows: number;
  /** Row length. */
  cols: number;
  /** Multiplies the input first (attention's 1/sqrt(d)). */
  scale: number;
  /** Causal masking with this many queries per (batch, head); rows are (..., queries) in order. */
  causalQueries?: number;
  /** Log-softmax instead of softmax. */
  log: boolean;
}

function maskExpr(spec: SoftmaxSpec): string {
  if (!spec.causalQueries) return "";
  return `let limit = (row % ${spec.causalQueries}u) + ${spec.cols - spec.causalQueries}u;`;
}

function visible(spec: SoftmaxSpec, j: string): string {
  return spec.causalQueries ? `${j} <= limit` : "true";
}

/** Loop iterations of a thread that makes `passes` strided passes over a row. */
function rowLoops(spec: SoftmaxSpec, passes: number): { iterations: number; of: string } {
  return { iterations: passes * Math.ceil(spec.cols / WG), of: `rows of (${spec.rows}, ${spec.cols})` };
}

/**
 * FLOPs per element of the accounting's softmax: max, subtract, exp, sum, divide (log-softmax: the log-sum-exp's
 * subtract in place of the divide), one more for the scale and one for the causal mask.
 */
function forwardFlopsPerElement(spec: SoftmaxSpec): number {
  return 5 + (spec.scale === 1 ? 0 : 1) + (spec.causalQueries ? 1 : 0);
}

/**
 * Forward: `out = softmax(x * scale)` (or log-softmax) per row; masked entries become 0 (or -inf). Bindings: x
 * (read), out (write). Cost: {@linkcode forwardFlopsPerElement} per element, x read and out written once.
 */
function generateSoftmaxForwardKernel(spec: SoftmaxSpec): KernelSource {
  const entry = rowKernelEntry(spec.rows, WG);
  const s = spec.scale === 1 ? "" : ` * ${f32Literal(spec.scale)}`;
  const neg = f32Literal(-Infinity);
  const write = spec.log
    ? `select(${neg}, x[base + j]${s} - m - log(total), ${visible(spec, "j")})`
    : `select(0.0, exp(x[base + j]${s} - m) / total, ${visible(spec, "j")})`;
  return {
    name: spec.log ? "log_softmax_forward" : "softmax_forward",
    workgroups: entry.workgroups,
    cost: {
      flops: spec.rows * spec.cols * forwardFlopsPerElement(spec),
      bytes: 2 * spec.rows * spec.cols * ELEMENT_BYTES,
    },
    loops: rowLoops(spec, 3),
    source: `${bindings([read("x", "f32"), readWrite("out", "f32")])}
${entry.head}
  let base = row * ${spec.cols}u;
  ${maskExpr(spec)}
  var mx = ${neg};
  for (var j = lid.x; j < ${spec.cols}u; j += ${WG}u) {
    if (${visible(spec, "j")}) { mx = max(mx, x[base + j]${s}); }
  }
${workgroupReduce("max", "mx", "m", WG)}
  var acc = 0.0;
  for (var j = lid.x; j < ${spec.cols}u; j += ${WG}u) {
    if (${visible(spec, "j")}) { acc += exp(x[base + j]${s} - m); }
  }
${workgroupReduce("sum", "acc", "total", WG)}
  for (var j = lid.x; j < ${spec.cols}u; j += ${WG}u) { out[base + j] = ${write}; }
}
`,
  };
}

/**
 * Backward from the forward's output `y`: softmax `dx = scale * y * (dy - sum(dy * y))`; log-softmax
 * `dx = scale * (dy - exp(y) * sum(dy))`. Masked entries get 0. Bindings: y, dy (read), dx (write). Cost: 5 FLOPs
 * per element (softmax: the product and sum of the dot, then subtract and two multiplies; log-softmax: the sum, exp,
 * multiply, subtract and scale); y and dy read, dx written once.
 */
function generateSoftmaxBackwardKernel(spec: SoftmaxSpec): KernelSource {
  const entry = rowKernelEntry(spec.rows, WG);
  const s = f32Literal(spec.scale);
  const dot = spec.log ? "dy[base + j]" : "dy[base + j] * y[base + j]";
  const grad = spec.log ? `(dy[base + j] - exp(y[base + j]) * total)` : `y[base + j] * (dy[base + j] - total)`;
  return {
    name: spec.log ? "log_softmax_backward" : "softmax_backward",
    workgroups: entry.workgroups,
    cost: { flops: 5 * spec.rows * spec.cols, bytes: 3 * spec.rows * spec.cols * ELEMENT_BYTES },
    loops: rowLoops(spec, 2),
    source: `${bindings([read("y", "f32"), read("dy", "f32"), readWrite("dx", "f32")])}
${entry.head}
  let base = row * ${spec.cols}u;
  ${maskExpr(spec)}
  var acc = 0.0;
  for (var j = lid.x; j < ${spec.cols}u; j += ${WG}u) {
    if (${visible(spec, "j")}) { acc += ${dot}; }
  }
${workgroupReduce("sum", "acc", "total", WG)}
  for (var j = lid.x; j < ${spec.cols}u; j += ${WG}u) {
    dx[base + j] = select(0.0, ${s} * ${grad}, ${visible(spec, "j")});
  }
}
`,
  };
}

/**
 * {@linkcode generateSoftmaxForwardKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { softmaxForwardKernel } from "./softmax.ts";
 * const k = softmaxForwardKernel({ rows: 64, cols: 100, scale: 1, log: false });
 * if (k.name !== "softmax_forward" || k.workgroups[0] !== 64) throw new Error(`${k.workgroups}`); // a workgroup a row
 * ```
 */
export const softmaxForwardKernel: (spec: SoftmaxSpec) => KernelSource = memoized(generateSoftmaxForwardKernel);

/**
 * {@linkcode generateSoftmaxBackwardKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { softmaxBackwardKernel } from "./softmax.ts";
 * const k = softmaxBackwardKernel({ rows: 64, cols: 100, scale: 1, log: false });
 * if (k.name !== "softmax_backward" || k.workgroups[0] !== 64) throw new Error(`${k.workgroups}`);
 * ```
 */
export const softmaxBackwardKernel: (spec: SoftmaxSpec) => KernelSource = memoized(generateSoftmaxBackwardKernel);

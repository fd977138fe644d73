/**
 * RMSNorm over the last axis: `y = x * rstd * w`, `rstd = 1 / sqrt(mean(x^2) + eps)`, one workgroup per row.
 * The forward also writes `rstd` per row for the backward.
 *
 * @module
 */
import { f32Literal, flatGrid, type KernelSource, memoized, rowKernelEntry, workgroupReduce } from "./common.ts";

const WG = 128;

/** Forward; bindings: x, w, y (write), rstd (write). */
function generateRmsNormForwardKernel(rows: number, dim: number, eps: number): KernelSource {
  const entry = rowKernelEntry(rows, WG);
  return {
    name: "rmsnorm_forward",
    workgroups: entry.workgroups,
    loops: { iterations: 2 * Math.ceil(dim / WG), of: `rows of (${rows}, ${dim})` },
    source: `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
${entry.head}
  let base = row * ${dim}u;
  var acc = 0.0;
  for (var j = lid.x; j < ${dim}u; j += ${WG}u) { let v = x[base + j]; acc += v * v; }
${workgroupReduce("sum", "acc", "ss", WG)}
  let r = inverseSqrt(ss / ${f32Literal(dim)} + ${f32Literal(eps)});
  for (var j = lid.x; j < ${dim}u; j += ${WG}u) { y[base + j] = x[base + j] * r * w[j]; }
  if (lid.x == 0u) { rstd[row] = r; }
}
`,
  };
}

/**
 * Backward for x: `dx = rstd * (g - x * rstd^2 * mean(g * x))` with `g = dy * w` (plus `prior` when
 * accumulating); bindings: x, w, rstd, dy, dx (write)[, prior]. The weight gradient `sum_rows(dy * x * rstd)` is a column reduction done by the caller.
 */
function generateRmsNormBackwardKernel(rows: number, dim: number, accumulate = false): KernelSource {
  const entry = rowKernelEntry(rows, WG);
  // With `accumulate`, a sixth binding holds the gradient x already received from its other uses (the residual
  // stream), added here instead of in a separate pass.
  const plus = accumulate ? " + prior[base + j]" : "";
  return {
    name: "rmsnorm_backward",
    workgroups: entry.workgroups,
    loops: { iterations: 2 * Math.ceil(dim / WG), of: `rows of (${rows}, ${dim})` },
    source: `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
${accumulate ? "@group(0) @binding(5) var<storage, read> prior: array<f32>;" : ""}
${entry.head}
  let base = row * ${dim}u;
  let r = rstd[row];
  var acc = 0.0;
  for (var j = lid.x; j < ${dim}u; j += ${WG}u) { acc += dy[base + j] * w[j] * x[base + j]; }
${workgroupReduce("sum", "acc", "dot", WG)}
  let c = r * r * dot / ${f32Literal(dim)};
  for (var j = lid.x; j < ${dim}u; j += ${WG}u) {
    dx[base + j] = r * (dy[base + j] * w[j] - x[base + j] * c)${plus};
  }
}
`,
  };
}

/**
 * {@linkcode generateRmsNormForwardKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { rmsNormForwardKernel } from "./rmsnorm.ts";
 * const k = rmsNormForwardKernel(64, 128, 1e-5);
 * console.log(k.name, k.workgroups); // rmsnorm_forward [ 64, 1, 1 ]
 * ```
 */
export const rmsNormForwardKernel: (rows: number, dim: number, eps: number) => KernelSource = memoized(
  generateRmsNormForwardKernel,
);

/**
 * {@linkcode generateRmsNormBackwardKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { rmsNormBackwardKernel } from "./rmsnorm.ts";
 * const k = rmsNormBackwardKernel(64, 128);
 * console.log(k.name, k.workgroups); // rmsnorm_backward [ 64, 1, 1 ]
 * ```
 */
export const rmsNormBackwardKernel: (rows: number, dim: number, accumulate?: boolean) => KernelSource = memoized(
  generateRmsNormBackwardKernel,
);

/**
 * Row chunks of {@linkcode rmsNormWeightGradKernel}: enough threads for a large GPU, few partials to sum, and no
 * more than 4096 rows a chunk (a thread loops over its chunk's rows).
 *
 * @example
 * ```ts
 * import { rmsNormWeightGradChunks } from "./rmsnorm.ts";
 * console.log(rmsNormWeightGradChunks(4096), rmsNormWeightGradChunks(2_000_000)); // 128 489
 * ```
 */
export function rmsNormWeightGradChunks(rows: number): number {
  return Math.max(1, Math.min(256, Math.floor(rows / 32)), Math.ceil(rows / 4096));
}

/**
 * Partial weight gradients `partial[c, j] = sum over rows r of chunk c of dy[r, j] * x[r, j] * rstd[r]`, one
 * thread per (chunk, column), so neighbouring threads read neighbouring columns. Summing over chunks (a column
 * reduction) gives dW; the product is never stored. Bindings: x, dy, rstd, partial (write, (chunks, dim)).
 */
function generateRmsNormWeightGradKernel(rows: number, dim: number): KernelSource {
  const chunks = rmsNormWeightGradChunks(rows);
  const per = Math.ceil(rows / chunks);
  const n = chunks * dim, WG = 256;
  const grid = flatGrid(Math.ceil(n / WG));
  return {
    name: "rmsnorm_weight_backward",
    workgroups: grid.workgroups,
    loops: { iterations: per, of: `${rows} rows` },
    source: `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = ${grid.index} * ${WG}u + lid.x;
  if (t >= ${n}u) { return; }
  let c = t / ${dim}u;
  let j = t % ${dim}u;
  let end = min((c + 1u) * ${per}u, ${rows}u);
  var acc = 0.0;
  for (var r = c * ${per}u; r < end; r++) { acc += dy[r * ${dim}u + j] * x[r * ${dim}u + j] * rstd[r]; }
  partial[t] = acc;
}
`,
  };
}

/**
 * {@linkcode generateRmsNormWeightGradKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { rmsNormWeightGradKernel } from "./rmsnorm.ts";
 * const k = rmsNormWeightGradKernel(4096, 128); // (128 chunks, 128) partials
 * console.log(k.name, k.workgroups); // rmsnorm_weight_backward [ 64, 1, 1 ]
 * ```
 */
export const rmsNormWeightGradKernel: (rows: number, dim: number) => KernelSource = memoized(
  generateRmsNormWeightGradKernel,
);

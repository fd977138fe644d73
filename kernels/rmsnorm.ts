/**
 * RMSNorm over the last axis: `y = x * rstd * w`, `rstd = 1 / sqrt(mean(x^2) + eps)`, one workgroup per row.
 * The forward also writes `rstd` per row for the backward.
 *
 * @module
 */
import { f32Literal, type KernelSource, memoized, rowKernelEntry, workgroupReduce } from "./common.ts";

const WG = 128;

/** Forward; bindings: x, w, y (write), rstd (write). */
function generateRmsNormForwardKernel(rows: number, dim: number, eps: number): KernelSource {
  const entry = rowKernelEntry(rows, WG);
  return {
    name: "rmsnorm_forward",
    workgroups: entry.workgroups,
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
 * Backward for x: `dx = rstd * (g - x * rstd^2 * mean(g * x))` with `g = dy * w`; bindings: x, w, rstd, dy,
 * dx (write). The weight gradient `sum_rows(dy * x * rstd)` is a column reduction done by the caller.
 */
function generateRmsNormBackwardKernel(rows: number, dim: number): KernelSource {
  const entry = rowKernelEntry(rows, WG);
  return {
    name: "rmsnorm_backward",
    workgroups: entry.workgroups,
    source: `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
${entry.head}
  let base = row * ${dim}u;
  let r = rstd[row];
  var acc = 0.0;
  for (var j = lid.x; j < ${dim}u; j += ${WG}u) { acc += dy[base + j] * w[j] * x[base + j]; }
${workgroupReduce("sum", "acc", "dot", WG)}
  let c = r * r * dot / ${f32Literal(dim)};
  for (var j = lid.x; j < ${dim}u; j += ${WG}u) {
    dx[base + j] = r * (dy[base + j] * w[j] - x[base + j] * c);
  }
}
`,
  };
}

/** {@linkcode generateRmsNormForwardKernel}, memoized by its arguments (see `memoized` in common.ts). */
export const rmsNormForwardKernel: (rows: number, dim: number, eps: number) => KernelSource = memoized(
  generateRmsNormForwardKernel,
);

/** {@linkcode generateRmsNormBackwardKernel}, memoized by its arguments (see `memoized` in common.ts). */
export const rmsNormBackwardKernel: (rows: number, dim: number) => KernelSource = memoized(
  generateRmsNormBackwardKernel,
);

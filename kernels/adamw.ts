/**
 * Fused AdamW step, in place on parameter and moments, as CS336's Algorithm 1:
 *
 *   g <- g * clip                      (global gradient-norm clipping factor, computed on the GPU)
 *   m <- b1 m + (1 - b1) g
 *   v <- b2 v + (1 - b2) g^2
 *   p <- p - lr_t m / (sqrt(v) + eps)  with lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)
 *   p <- p - lr wd p
 *
 * One kernel reads p, g, m, v once and writes p, m, v once: the update is bandwidth-bound, so fusing the six
 * elementwise steps is the whole optimisation. Per-step scalars come through a uniform block so the kernel
 * compiles once per parameter size.
 *
 * @module
 */
import { flatGrid, type KernelSource, memoized, workgroupReduce } from "./common.ts";

const WG = 256;

/** Bindings: p (rw), g, m (rw), v (rw), clip (1 f32), uniforms {lr, lrT, b1, b2, eps, wd}. */
function generateAdamwKernel(n: number): KernelSource {
  const grid = flatGrid(Math.ceil(n / WG));
  return {
    name: "adamw_step",
    workgroups: grid.workgroups,
    source: `struct Step { lr: f32, lrT: f32, b1: f32, b2: f32, eps: f32, wd: f32 }
@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> clip: array<f32>;
@group(0) @binding(5) var<uniform> s: Step;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ${grid.index} * ${WG}u + lid.x;
  if (i >= ${n}u) { return; }
  let gi = g[i] * clip[0];
  let mi = s.b1 * m[i] + (1.0 - s.b1) * gi;
  let vi = s.b2 * v[i] + (1.0 - s.b2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  let pi = p[i] - s.lrT * mi / (sqrt(vi) + s.eps);
  p[i] = pi - s.lr * s.wd * pi;
}
`,
  };
}

/**
 * Partial sums of squares of several tensors of `sizes` in one dispatch: tensor `t` gets
 * `sumSquaresGroups(sizes[t])` workgroups, and workgroup `w` writes its share to `out[offset + w]`. Summing all
 * partials gives the squared global norm. One dispatch per few gradients instead of one per gradient: a step of
 * the TinyStories model has 39 of them, and each small dispatch costs more than its work.
 * Bindings: x0..x{n-1}, out (rw).
 */
function generateSumSquaresKernel(sizes: readonly number[], offset: number): KernelSource {
  const groups = sizes.map(sumSquaresGroups);
  const branches: string[] = [];
  let first = 0;
  sizes.forEach((n, t) => {
    const g = groups[t];
    branches.push(`if (w >= ${first}u && w < ${first + g}u) {
    for (var i = (w - ${first}u) * ${WG}u + lid.x; i < ${n}u; i += ${g * WG}u) { let v = x${t}[i]; acc += v * v; }
  }`);
    first += g;
  });
  const decls = sizes.map((_, t) => `@group(0) @binding(${t}) var<storage, read> x${t}: array<f32>;`).join("\n");
  return {
    name: "sum_squares",
    workgroups: [first, 1, 1],
    source: `${decls}
@group(0) @binding(${sizes.length}) var<storage, read_write> out: array<f32>;
var<workgroup> red: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let w = wid.x;
  var acc = 0.0;
  ${branches.join(" else ")}
${workgroupReduce("sum", "acc", "total", WG)}
  if (lid.x == 0u) { out[${offset}u + w] = total; }
}
`,
  };
}

/** Workgroups {@linkcode sumSquaresKernel} uses for `n` elements: about 16K elements each, at most 128. */
export function sumSquaresGroups(n: number): number {
  return Math.max(1, Math.min(128, Math.ceil(n / 16384)));
}

/** {@linkcode generateAdamwKernel}, memoized by its arguments (see `memoized` in common.ts). */
export const adamwKernel: (n: number) => KernelSource = memoized(generateAdamwKernel);

/** {@linkcode generateSumSquaresKernel}, memoized by its arguments (see `memoized` in common.ts). */
export const sumSquaresKernel: (sizes: readonly number[], offset: number) => KernelSource = memoized(
  generateSumSquaresKernel,
);

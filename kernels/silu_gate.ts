/**
 * The SwiGLU gate `silu(a) * b` over a fused w1/w3 projection's output h (rows, 2F), whose row is a (the w1 half)
 * then b (the w3 half): the forward reads both halves in place, and the backward writes both halves of dh in one
 * dispatch, so that the projection's backward is one matmul per operand with no sum of two input gradients.
 *
 * @module
 */
import { flatGrid, type KernelSource, memoized } from "./common.ts";

const WG = 256;

/** `sigmoid(x)` in WGSL, for a scalar or a vector `x`. */
const sigmoid = (x: string) => `(1.0 / (1.0 + exp(-${x})))`;

/**
 * Forward (`backward` false): bindings h (rows, 2F), y (write, (rows, F)). Backward: bindings h, dy (rows, F), dh
 * (write, (rows, 2F)), with `da = dy * b * s * (1 + a * (1 - s))`, `db = dy * a * s`, `s = sigmoid(a)`. Rows of a
 * multiple of 4 go four values a thread.
 */
function generateSiluGateKernel(spec: { rows: number; width: number; backward: boolean }): KernelSource {
  const W = spec.width % 4 === 0 ? 4 : 1, type = W === 4 ? "vec4f" : "f32";
  const F = spec.width / W, n = spec.rows * F;
  const grid = flatGrid(Math.ceil(n / WG));
  const head = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ${grid.index} * ${WG}u + lid.x;
  if (i >= ${n}u) { return; }
  let ia = i / ${F}u * ${2 * F}u + i % ${F}u;
  let a = h[ia];
  let b = h[ia + ${F}u];
  let s = ${sigmoid("a")};`;
  if (!spec.backward) {
    return {
      name: "silu_gate_packed",
      workgroups: grid.workgroups,
      source: `@group(0) @binding(0) var<storage, read> h: array<${type}>;
@group(0) @binding(1) var<storage, read_write> y: array<${type}>;
${head}
  y[i] = a * s * b;
}
`,
    };
  }
  return {
    name: "silu_gate_packed_backward",
    workgroups: grid.workgroups,
    source: `@group(0) @binding(0) var<storage, read> h: array<${type}>;
@group(0) @binding(1) var<storage, read> dy: array<${type}>;
@group(0) @binding(2) var<storage, read_write> dh: array<${type}>;
${head}
  let g = dy[i];
  dh[ia] = g * b * s * (1.0 + a * (1.0 - s));
  dh[ia + ${F}u] = g * a * s;
}
`,
  };
}

/**
 * {@linkcode generateSiluGateKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { siluGateKernel } from "./silu_gate.ts";
 * const k = siluGateKernel({ rows: 64, width: 256, backward: false });
 * console.log(k.name, k.workgroups); // silu_gate_packed [ 16, 1, 1 ]
 * ```
 */
export const siluGateKernel: (spec: { rows: number; width: number; backward: boolean }) => KernelSource = memoized(
  generateSiluGateKernel,
);

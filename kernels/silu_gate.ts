/**
 * The SwiGLU gate `silu(a) * b` over a fused w1/w3 projection's output h (rows, 2F), whose row is a (the w1 half)
 * then b (the w3 half): the forward reads both halves in place, and the backward writes both halves of dh in one
 * dispatch, so that the projection's backward is one matmul per operand with no sum of two input gradients.
 *
 * @module
 */
import { bindings, ELEMENT_BYTES, flatGrid, type KernelSource, memoized, read, readWrite } from "./common.ts";

const WG = 256;

/** The gate over `rows` rows of h (rows, 2 * width): a the first `width` columns, b the last. */
export interface SiluGateSpec {
  rows: number;
  width: number;
}

/**
 * `sigmoid(x)` in WGSL, for a scalar or a vector `x`: what the gate kernels and the matmul epilogue that applies
 * the gate's backward (`gateBackward` of kernels/matmul.ts) both compute `s` with.
 *
 * @example
 * ```ts
 * import { sigmoidWgsl } from "./silu_gate.ts";
 * if (sigmoidWgsl("a") !== "(1.0 / (1.0 + exp(-a)))") throw new Error(sigmoidWgsl("a"));
 * ```
 */
export const sigmoidWgsl = (x: string): string => `(1.0 / (1.0 + exp(-${x})))`;

/**
 * The gate's gradients in WGSL, one definition for the backward kernel here and the matmul epilogue that fuses it:
 * given the output gradient `dy`, the halves `a`, `b` and `s = sigmoid(a)` (names of WGSL values, scalar or vector),
 * `da = dy * b * s * (1 + a * (1 - s))` (d silu(a) / da = s (1 + a (1 - s))) and `db = dy * a * s`.
 *
 * @example
 * ```ts
 * import { siluGateGradWgsl } from "./silu_gate.ts";
 * const { da, db } = siluGateGradWgsl("g", "a", "b", "s");
 * if (da !== "g * b * s * (1.0 + a * (1.0 - s))" || db !== "g * a * s") throw new Error(`${da} ${db}`);
 * ```
 */
export function siluGateGradWgsl(dy: string, a: string, b: string, s: string): { da: string; db: string } {
  return { da: `${dy} * ${b} * ${s} * (1.0 + ${a} * (1.0 - ${s}))`, db: `${dy} * ${a} * ${s}` };
}

/**
 * What both directions share: the element type (rows of a multiple of 4 go four values a thread), and the entry
 * point that loads a thread's a, b and s = sigmoid(a); F is the width in elements of that type.
 */
function gateEntry(
  spec: SiluGateSpec,
): { type: string; F: number; workgroups: [number, number, number]; head: string } {
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
  let s = ${sigmoidWgsl("a")};`;
  return { type, F, workgroups: grid.workgroups, head };
}

/**
 * `y = silu(a) * b`. Bindings: h (read, (rows, 2F)), y (write, (rows, F)). Cost: the accounting's 5 FLOPs per
 * output (SiLU 4, the gate product 1); h read and y written once.
 */
function generateSiluGateForwardKernel(spec: SiluGateSpec): KernelSource {
  const { type, workgroups, head } = gateEntry(spec);
  return {
    name: "silu_gate_packed",
    workgroups,
    cost: { flops: 5 * spec.rows * spec.width, bytes: 3 * spec.rows * spec.width * ELEMENT_BYTES },
    source: `${bindings([read("h", type), readWrite("y", type)])}
${head}
  y[i] = a * s * b;
}
`,
  };
}

/**
 * `da = dy * b * s * (1 + a * (1 - s))`, `db = dy * a * s`, with `s = sigmoid(a)`, both halves of dh in one
 * dispatch. Bindings: h, dy (read, (rows, F)), dh (write, (rows, 2F)). Cost: 12 FLOPs per output unit (the sigmoid
 * recomputed 4, da 6, db 2); h and dy read, dh written once.
 */
function generateSiluGateBackwardKernel(spec: SiluGateSpec): KernelSource {
  const { type, F, workgroups, head } = gateEntry(spec);
  const grad = siluGateGradWgsl("g", "a", "b", "s");
  return {
    name: "silu_gate_packed_backward",
    workgroups,
    cost: { flops: 12 * spec.rows * spec.width, bytes: 5 * spec.rows * spec.width * ELEMENT_BYTES },
    source: `${bindings([read("h", type), read("dy", type), readWrite("dh", type)])}
${head}
  let g = dy[i];
  dh[ia] = ${grad.da};
  dh[ia + ${F}u] = ${grad.db};
}
`,
  };
}

/**
 * {@linkcode generateSiluGateForwardKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { siluGateForwardKernel } from "./silu_gate.ts";
 * const k = siluGateForwardKernel({ rows: 64, width: 256 }); // four values a thread
 * if (k.name !== "silu_gate_packed" || k.workgroups[0] !== 16) throw new Error(`${k.workgroups}`);
 * ```
 */
export const siluGateForwardKernel: (spec: SiluGateSpec) => KernelSource = memoized(generateSiluGateForwardKernel);

/**
 * {@linkcode generateSiluGateBackwardKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { siluGateBackwardKernel } from "./silu_gate.ts";
 * const k = siluGateBackwardKernel({ rows: 64, width: 256 });
 * if (k.name !== "silu_gate_packed_backward" || k.workgroups[0] !== 16) throw new Error(`${k.workgroups}`);
 * ```
 */
export const siluGateBackwardKernel: (spec: SiluGateSpec) => KernelSource = memoized(generateSiluGateBackwardKernel);

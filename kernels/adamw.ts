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
import {
  type Binding,
  bindings,
  ELEMENT_BYTES,
  f32Literal,
  flatGrid,
  type KernelSource,
  memoized,
  read,
  readWrite,
  uniform,
  workgroupReduce,
} from "./common.ts";

const WG = 256;

/** Tensors of `sizes` elements updated (AdamW) or measured (sum of squares) in one dispatch. */
export interface TensorListSpec {
  sizes: readonly number[];
}

/** Partial sums of squares of tensors of `sizes`, written from element `offset` of the output on. */
export interface SumSquaresSpec extends TensorListSpec {
  offset: number;
}

/**
 * One AdamW step for several parameters of `sizes` in one dispatch: parameter `t` gets ceil(size/256) workgroups,
 * chosen by workgroup index (uniform per workgroup). A training step of the TinyStories model updates 39
 * parameters, and one dispatch each cost more than their bandwidth.
 * Bindings: for each parameter t, p_t (rw), g_t, m_t (rw), v_t (rw) at 4t..4t+3; then clip (1 f32) and the
 * uniforms {lr, lrT, b1, b2, eps, wd}. Cost: the 18 FLOPs of `update` per element; p, g, m, v read and p, m, v
 * written once, and the clip factor.
 */
function generateAdamwKernel({ sizes }: TensorListSpec): KernelSource {
  const buffers: Binding[] = [];
  const branches: string[] = [];
  let first = 0;
  sizes.forEach((n, t) => {
    buffers.push(readWrite(`p${t}`, "f32"), read(`g${t}`, "f32"), readWrite(`m${t}`, "f32"), readWrite(`v${t}`, "f32"));
    const groups = Math.ceil(n / WG);
    branches.push(`if (w >= ${first}u && w < ${first + groups}u) {
    let i = (w - ${first}u) * ${WG}u + lid.x;
    if (i < ${n}u) {
      let r = update(p${t}[i], g${t}[i], m${t}[i], v${t}[i]);
      p${t}[i] = r.x; m${t}[i] = r.y; v${t}[i] = r.z;
    }
  }`);
    first += groups;
  });
  const grid = flatGrid(first);
  const elements = sizes.reduce((a, b) => a + b, 0);
  return {
    name: "adamw_step",
    workgroups: grid.workgroups,
    cost: { flops: 18 * elements, bytes: (7 * elements + 1) * ELEMENT_BYTES },
    source: `struct Step { lr: f32, lrT: f32, b1: f32, b2: f32, eps: f32, wd: f32 }
${bindings([...buffers, read("clip", "f32"), uniform("s", "Step")])}
// (new p, new m, new v) from (p, g, m, v).
fn update(p: f32, g: f32, m: f32, v: f32) -> vec3f {
  let gi = g * clip[0];
  let mi = s.b1 * m + (1.0 - s.b1) * gi;
  let vi = s.b2 * v + (1.0 - s.b2) * gi * gi;
  let pi = p - s.lrT * mi / (sqrt(vi) + s.eps);
  return vec3f(pi - s.lr * s.wd * pi, mi, vi);
}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let w = ${grid.index};
  ${branches.join(" else ")}
}
`,
  };
}

/**
 * Partial sums of squares of several tensors of `sizes` in one dispatch: tensor `t` gets
 * `sumSquaresGroups(sizes[t])` workgroups, and workgroup `w` writes its share to `out[offset + w]`. Summing all
 * partials gives the squared global norm. One dispatch per few gradients instead of one per gradient: a step of
 * the TinyStories model has 39 of them, and each small dispatch costs more than its work.
 * Bindings: x0..x{n-1} (read), out (rw). Cost: a multiply and an add per element; every element read once, one
 * partial written per workgroup.
 */
function generateSumSquaresKernel({ sizes, offset }: SumSquaresSpec): KernelSource {
  const groups = sizes.map(sumSquaresGroups);
  const branches: string[] = [];
  let first = 0;
  // Tensors of a multiple of 4 elements are read as vectors: a quarter of the loads, each 16 bytes.
  const vec = (n: number) => n % 4 === 0;
  sizes.forEach((n, t) => {
    const g = groups[t], len = vec(n) ? n / 4 : n, square = vec(n) ? "dot(v, v)" : "v * v";
    branches.push(`if (w >= ${first}u && w < ${first + g}u) {
    for (var i = (w - ${first}u) * ${WG}u + lid.x; i < ${len}u; i += ${g * WG}u) { let v = x${t}[i]; acc += ${square}; }
  }`);
    first += g;
  });
  const buffers = [...sizes.map((n, t) => read(`x${t}`, vec(n) ? "vec4f" : "f32")), readWrite("out", "f32")];
  const elements = sizes.reduce((a, b) => a + b, 0);
  return {
    name: "sum_squares",
    workgroups: [first, 1, 1],
    cost: { flops: 2 * elements, bytes: (elements + first) * ELEMENT_BYTES },
    source: `${bindings(buffers)}
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

/** The global gradient norm from the partial sums of squares, and optionally the clipping factor for a norm. */
export interface GradNormSpec {
  /** Partial sums of squares to add up (the outputs of {@linkcode sumSquaresKernel}). */
  partials: number;
  /** Clip to this global norm: also write the factor `max / (norm + 1e-6)` when the norm exceeds it, else 1. */
  maxNorm?: number;
}

/**
 * The end of the clipping chain in one workgroup: adds up the partial sums of squares (in the order of a row
 * reduction: each thread a strided share, then the workgroup's tree), and writes the norm, its square root, and
 * the clipping factor that {@linkcode adamwKernel} reads. One dispatch where the sum, the square root and the
 * factor took three, each waiting for the one before.
 * Bindings: partials (read), norm (rw, 1)[, clip (rw, 1)]. Cost: an add per partial; the partials read once.
 */
function generateGradNormKernel({ partials, maxNorm }: GradNormSpec): KernelSource {
  const clip = maxNorm !== undefined;
  const buffers = [read("partials", "f32"), readWrite("norm", "f32"), ...(clip ? [readWrite("clip", "f32")] : [])];
  const max = clip ? f32Literal(maxNorm) : "";
  return {
    name: clip ? "grad_norm_clip" : "grad_norm",
    workgroups: [1, 1, 1],
    loops: { iterations: Math.ceil(partials / WG), of: `the sum of ${partials} partial sums of squares` },
    cost: { flops: partials + 2, bytes: (partials + (clip ? 2 : 1)) * ELEMENT_BYTES },
    source: `${bindings(buffers)}
var<workgroup> red: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u) {
  var acc = 0.0;
  for (var j = lid.x; j < ${partials}u; j += ${WG}u) { acc = acc + partials[j]; }
${workgroupReduce("sum", "acc", "total", WG)}
  if (lid.x == 0u) {
    let n = sqrt(total);
    norm[0] = n;${
      clip
        ? `
    clip[0] = select(1.0, ${max} / (n + 1e-6), n > ${max});`
        : ""
    }
  }
}
`,
  };
}

/**
 * Workgroups {@linkcode sumSquaresKernel} uses for `n` elements: about 16K elements each, so that a large gradient
 * (GPT-2 small's LM head, 38.6M elements) spreads over every SM; at most 4096, so that a dispatch, whose workgroups
 * stay within a grid dimension's 65535, still takes 15 of the largest tensors.
 *
 * @example
 * ```ts
 * import { sumSquaresGroups } from "./adamw.ts";
 * if (sumSquaresGroups(100_000) !== 7) throw new Error("about 16K elements a workgroup");
 * if (sumSquaresGroups(50257 * 768) !== 2356) throw new Error("GPT-2's head: one workgroup per 16K elements");
 * ```
 */
export function sumSquaresGroups(n: number): number {
  return Math.max(1, Math.min(4096, Math.ceil(n / 16384)));
}

/**
 * {@linkcode generateAdamwKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { adamwKernel } from "./adamw.ts";
 * const k = adamwKernel({ sizes: [1024, 300] }); // two parameters in one dispatch: 4 + 2 workgroups
 * if (k.name !== "adamw_step" || k.workgroups[0] !== 6) throw new Error(`${k.workgroups}`);
 * ```
 */
export const adamwKernel: (spec: TensorListSpec) => KernelSource = memoized(generateAdamwKernel);

/**
 * {@linkcode generateSumSquaresKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { sumSquaresKernel } from "./adamw.ts";
 * const k = sumSquaresKernel({ sizes: [100_000, 64], offset: 0 }); // partials in out[0..8)
 * if (k.name !== "sum_squares" || k.workgroups[0] !== 8) throw new Error(`${k.workgroups}`);
 * ```
 */
export const sumSquaresKernel: (spec: SumSquaresSpec) => KernelSource = memoized(generateSumSquaresKernel);

/**
 * {@linkcode generateGradNormKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { gradNormKernel } from "./adamw.ts";
 * const k = gradNormKernel({ partials: 1400, maxNorm: 1 }); // norm and clipping factor from 1400 partials
 * if (k.name !== "grad_norm_clip" || k.workgroups[0] !== 1) throw new Error(k.name);
 * ```
 */
export const gradNormKernel: (spec: GradNormSpec) => KernelSource = memoized(generateGradNormKernel);

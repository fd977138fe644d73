/**
 * Reduction along one axis of a contiguous tensor viewed as (outer, R, inner).
 *
 * When the reduced axis is innermost (inner = 1) a workgroup reduces each row cooperatively (coalesced reads,
 * tree reduction in workgroup memory); otherwise each thread owns one (outer, inner) output and walks R with a
 * stride of `inner`, which keeps neighbouring threads on neighbouring addresses.
 *
 * @module
 */
import { f32Literal, flatGrid, type KernelSource, memoized, rowKernelEntry, workgroupReduce } from "./common.ts";

/** Reduction kinds. */
export type ReduceKind = "sum" | "max";

const ROW_WG = 256;
const COL_WG = 256;

/** Generates `out[o, i] = reduce_r in[o, r, i] * scale`. */
function generateReduceKernel(
  kind: ReduceKind,
  dims: { outer: number; reduced: number; inner: number },
  scale = 1,
): KernelSource {
  const { outer, reduced: R, inner } = dims;
  const init = kind === "sum" ? "0.0" : f32Literal(-Infinity);
  const combine = (acc: string, v: string) => kind === "sum" ? `${acc} + ${v}` : `max(${acc}, ${v})`;
  const scaled = scale === 1 ? "r" : `r * ${f32Literal(scale)}`;
  const head = `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;`;
  if (inner === 1) {
    const entry = rowKernelEntry(outer, ROW_WG);
    return {
      name: `reduce_${kind}_rows`,
      workgroups: entry.workgroups,
      source: `${head}
${entry.head}
  let base = row * ${R}u;
  var acc = ${init};
  for (var j = lid.x; j < ${R}u; j += ${ROW_WG}u) { acc = ${combine("acc", "x[base + j]")}; }
${workgroupReduce(kind, "acc", "r", ROW_WG)}
  if (lid.x == 0u) { out[row] = ${scaled}; }
}
`,
    };
  }
  if (inner % 4 === 0) {
    // Four neighbouring outputs a thread, read as vec4: a quarter of the load instructions, and 16-byte loads keep
    // more bytes in flight per thread (the split-K sums of the weight gradients are pure bandwidth).
    const n4 = (outer * inner) / 4, inner4 = inner / 4;
    const grid = flatGrid(Math.ceil(n4 / COL_WG));
    const init4 = kind === "sum" ? "vec4f(0.0)" : `vec4f(${init})`;
    return {
      name: `reduce_${kind}_cols`,
      workgroups: grid.workgroups,
      source: `@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4f>;
@compute @workgroup_size(${COL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = ${grid.index} * ${COL_WG}u + lid.x;
  if (t >= ${n4}u) { return; }
  let o = t / ${inner4}u;
  let i = t % ${inner4}u;
  var p = o * ${R * inner4}u + i;
  var acc = ${init4};
  for (var j = 0u; j < ${R}u; j++) { acc = ${combine("acc", "x[p]")}; p += ${inner4}u; }
  let r = acc;
  out[t] = ${scaled};
}
`,
    };
  }
  const n = outer * inner;
  const grid = flatGrid(Math.ceil(n / COL_WG));
  return {
    name: `reduce_${kind}_cols`,
    workgroups: grid.workgroups,
    source: `${head}
@compute @workgroup_size(${COL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = ${grid.index} * ${COL_WG}u + lid.x;
  if (t >= ${n}u) { return; }
  let o = t / ${inner}u;
  let i = t % ${inner}u;
  var p = o * ${R * inner}u + i;
  var acc = ${init};
  for (var j = 0u; j < ${R}u; j++) { acc = ${combine("acc", "x[p]")}; p += ${inner}u; }
  let r = acc;
  out[t] = ${scaled};
}
`,
  };
}

/** {@linkcode generateReduceKernel}, memoized by its arguments (see `memoized` in common.ts). */
export const reduceKernel: (
  kind: ReduceKind,
  dims: { outer: number; reduced: number; inner: number },
  scale?: number,
) => KernelSource = memoized(generateReduceKernel);

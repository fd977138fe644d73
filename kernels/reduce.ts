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
  // Inner sizes of a multiple of 4: four neighbouring outputs a thread, read as vec4 (a quarter of the load
  // instructions, and 16-byte loads keep more bytes in flight: the split-K sums of weight gradients are pure
  // bandwidth). Otherwise one output a thread.
  const w = inner % 4 === 0 ? 4 : 1, type = w === 4 ? "vec4f" : "f32";
  const n = (outer * inner) / w, innerW = inner / w;
  const grid = flatGrid(Math.ceil(n / COL_WG));
  return {
    name: `reduce_${kind}_cols`,
    workgroups: grid.workgroups,
    source: `@group(0) @binding(0) var<storage, read> x: array<${type}>;
@group(0) @binding(1) var<storage, read_write> out: array<${type}>;
@compute @workgroup_size(${COL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = ${grid.index} * ${COL_WG}u + lid.x;
  if (t >= ${n}u) { return; }
  let o = t / ${innerW}u;
  let i = t % ${innerW}u;
  var p = o * ${R * innerW}u + i;
  var acc = ${type}(${init});
  for (var j = 0u; j < ${R}u; j++) { acc = ${combine("acc", "x[p]")}; p += ${innerW}u; }
  let r = acc;
  out[t] = ${scaled};
}
`,
  };
}

/**
 * {@linkcode generateReduceKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { reduceKernel } from "./reduce.ts";
 * const k = reduceKernel("sum", { outer: 4, reduced: 8, inner: 1 }); // row sums of a (4, 8)
 * console.log(k.name, k.workgroups); // reduce_sum_rows [ 4, 1, 1 ]
 * ```
 */
export const reduceKernel: (
  kind: ReduceKind,
  dims: { outer: number; reduced: number; inner: number },
  scale?: number,
) => KernelSource = memoized(generateReduceKernel);

/**
 * Reduction along one axis of a contiguous tensor viewed as (outer, R, inner).
 *
 * When the reduced axis is innermost (inner = 1) a workgroup reduces each row cooperatively (coalesced reads,
 * tree reduction in workgroup memory); otherwise each thread owns one (outer, inner) output and walks R with a
 * stride of `inner`, which keeps neighbouring threads on neighbouring addresses.
 *
 * With `group`, R is cut into groups of that many (the last one shorter) reduced separately, to (outer, groups,
 * inner): the first pass of a long axis, so that no thread loops for long (see {@linkcode reduceGroupSize}).
 *
 * @module
 */
import {
  bindings,
  ELEMENT_BYTES,
  f32Literal,
  flatGrid,
  type KernelCost,
  type KernelSource,
  memoized,
  read,
  readWrite,
  rowKernelEntry,
  workgroupReduce,
} from "./common.ts";

/** Reduction kinds. */
export type ReduceKind = "sum" | "max";

/** A contiguous tensor viewed as (outer, reduced, inner), reduced along the middle; see the module doc for `group`. */
export interface ReduceDims {
  /** Product of the dims before the reduced one. */
  outer: number;
  /** Length of the reduced axis. */
  reduced: number;
  /** Product of the dims after it. */
  inner: number;
  /** Reduce groups of this many along the axis separately (the last one shorter), to (outer, groups, inner). */
  group?: number;
}

/** A reduction: its kind, the (outer, reduced, inner) view, and a factor applied to the result (a mean's 1/n). */
export interface ReduceSpec extends ReduceDims {
  kind: ReduceKind;
  /** Multiplies the result (default 1). */
  scale?: number;
}

const ROW_WG = 256;
const COL_WG = 256;

/**
 * The largest group along the reduced axis that a thread reduces in at most `iterations` loop iterations: a
 * workgroup of 256 reduces a group together when `inner` is 1, one thread walks it otherwise.
 *
 * @example
 * ```ts
 * import { reduceGroupSize } from "./reduce.ts";
 * if (reduceGroupSize(1, 16) !== 4096) throw new Error("a workgroup of 256 reduces each group together");
 * if (reduceGroupSize(8, 4096) !== 4096) throw new Error("one thread walks each group");
 * ```
 */
export function reduceGroupSize(inner: number, iterations: number): number {
  return inner === 1 ? iterations * ROW_WG : iterations;
}

/**
 * One FLOP per element reduced (an add or a max) and one per output scaled; every input element read once, every
 * output (one per group along the axis) written once.
 */
function reduceCost(dims: ReduceDims, scale: number): KernelCost {
  const { outer, reduced: R, inner } = dims;
  const outputs = outer * inner * (dims.group !== undefined && dims.group < R ? Math.ceil(R / dims.group) : 1);
  return {
    flops: outer * R * inner + (scale === 1 ? 0 : outputs),
    bytes: (outer * R * inner + outputs) * ELEMENT_BYTES,
  };
}

/**
 * Generates `out[o, i] = reduce_r in[o, r, i] * scale` (over each group of r, with `spec.group`). Bindings: x
 * (read), out (write).
 */
function generateReduceKernel(spec: ReduceSpec): KernelSource {
  return { ...generateReduceSource(spec), cost: reduceCost(spec, spec.scale ?? 1) };
}

function generateReduceSource(spec: ReduceSpec): KernelSource {
  const { kind, outer, reduced: R, inner, scale = 1 } = spec;
  if (spec.group !== undefined && spec.group < R) {
    return generateGroupedKernel(kind, { outer, reduced: R, inner, group: spec.group }, scale);
  }
  const init = kind === "sum" ? "0.0" : f32Literal(-Infinity);
  const combine = (acc: string, v: string) => kind === "sum" ? `${acc} + ${v}` : `max(${acc}, ${v})`;
  const scaled = scale === 1 ? "r" : `r * ${f32Literal(scale)}`;
  const head = bindings([read("x", "f32"), readWrite("out", "f32")]);
  if (inner === 1) {
    const entry = rowKernelEntry(outer, ROW_WG);
    return {
      name: `reduce_${kind}_rows`,
      workgroups: entry.workgroups,
      loops: { iterations: Math.ceil(R / ROW_WG), of: `rows of ${R}` },
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
    loops: { iterations: Math.ceil(R / COLUMN_CHUNK), of: `an axis of ${R}` },
    source: `${bindings([read("x", type), readWrite("out", type)])}
@compute @workgroup_size(${COL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = ${grid.index} * ${COL_WG}u + lid.x;
  if (t >= ${n}u) { return; }
  let o = t / ${innerW}u;
  let i = t % ${innerW}u;
  var p = o * ${R * innerW}u + i;
  var acc = ${type}(${init});
${columnLoop(R, innerW, combine)}
  let r = acc;
  out[t] = ${scaled};
}
`,
  };
}

/** Rows of a column sum whose loads a thread issues before it adds them. */
const COLUMN_CHUNK = 16;

/**
 * The column kernel's walk down `R` rows `stride` apart from `p`, combining into `acc`: the loads of each chunk of
 * {@linkcode COLUMN_CHUNK} rows are issued before their adds, so that a thread waits on memory once a chunk instead
 * of once a row (the split-K sums of weight gradients are a few rows a thread over few threads: latency, not
 * bandwidth, bounds a loop that adds each load as it comes). The adds keep the row order, so the result is the same
 * as the plain loop's.
 */
function columnLoop(R: number, stride: number, combine: (acc: string, v: string) => string): string {
  const chunk = (n: number) => {
    const loads = Array.from({ length: n }, (_, j) => `let v${j} = x[p${j ? ` + ${j * stride}u` : ""}];`);
    const adds = Array.from({ length: n }, (_, j) => `acc = ${combine("acc", `v${j}`)};`);
    return `${loads.join(" ")}\n    ${adds.join(" ")}`;
  };
  // An empty axis still names x, whose binding a pipeline drops otherwise.
  if (R === 0) return `  for (var j = 0u; j < 0u; j++) { acc = ${combine("acc", "x[p]")}; }`;
  const full = Math.floor(R / COLUMN_CHUNK), rest = R % COLUMN_CHUNK;
  const lines: string[] = [];
  const next = `p += ${COLUMN_CHUNK * stride}u;`;
  if (full === 1) lines.push(`  {\n    ${chunk(COLUMN_CHUNK)}${rest ? `\n    ${next}` : ""}\n  }`);
  if (full > 1) {
    lines.push(`  for (var j = 0u; j < ${full}u; j++) {\n    ${chunk(COLUMN_CHUNK)}\n    ${next}\n  }`);
  }
  if (rest > 0) lines.push(`  {\n    ${chunk(rest)}\n  }`);
  return lines.join("\n");
}

/** The grouped form: `out[o, g, i] = reduce over r in group g of in[o, r, i] * scale`. */
function generateGroupedKernel(kind: ReduceKind, dims: Required<ReduceDims>, scale = 1): KernelSource {
  const { outer, reduced: R, inner, group: S } = dims;
  const G = Math.ceil(R / S);
  const init = kind === "sum" ? "0.0" : f32Literal(-Infinity);
  const combine = (acc: string, v: string) => kind === "sum" ? `${acc} + ${v}` : `max(${acc}, ${v})`;
  const scaled = scale === 1 ? "r" : `r * ${f32Literal(scale)}`;
  if (inner === 1) {
    const entry = rowKernelEntry(outer * G, ROW_WG);
    return {
      name: `reduce_${kind}_row_groups`,
      workgroups: entry.workgroups,
      loops: { iterations: Math.ceil(S / ROW_WG), of: `groups of ${S}` },
      source: `${bindings([read("x", "f32"), readWrite("out", "f32")])}
${entry.head}
  let g = row % ${G}u;
  let base = (row / ${G}u) * ${R}u + g * ${S}u;
  let len = min(${S}u, ${R}u - g * ${S}u);
  var acc = ${init};
  for (var j = lid.x; j < len; j += ${ROW_WG}u) { acc = ${combine("acc", "x[base + j]")}; }
${workgroupReduce(kind, "acc", "r", ROW_WG)}
  if (lid.x == 0u) { out[row] = ${scaled}; }
}
`,
    };
  }
  const w = inner % 4 === 0 ? 4 : 1, type = w === 4 ? "vec4f" : "f32";
  const innerW = inner / w, n = outer * G * innerW;
  const grid = flatGrid(Math.ceil(n / COL_WG));
  return {
    name: `reduce_${kind}_col_groups`,
    workgroups: grid.workgroups,
    loops: { iterations: S, of: `groups of ${S}` },
    source: `${bindings([read("x", type), readWrite("out", type)])}
@compute @workgroup_size(${COL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = ${grid.index} * ${COL_WG}u + lid.x;
  if (t >= ${n}u) { return; }
  let i = t % ${innerW}u;
  let og = t / ${innerW}u;
  let g = og % ${G}u;
  let first = (og / ${G}u) * ${R}u + g * ${S}u;
  let len = min(${S}u, ${R}u - g * ${S}u);
  var p = first * ${innerW}u + i;
  var acc = ${type}(${init});
  for (var j = 0u; j < len; j++) { acc = ${combine("acc", "x[p]")}; p += ${innerW}u; }
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
 * const k = reduceKernel({ kind: "sum", outer: 4, reduced: 8, inner: 1 }); // row sums of a (4, 8)
 * if (k.name !== "reduce_sum_rows" || k.workgroups[0] !== 4) throw new Error(k.name);
 * ```
 */
export const reduceKernel: (spec: ReduceSpec) => KernelSource = memoized(generateReduceKernel);

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
  if (sharesColumns(spec)) return generateSharedColumnsKernel(kind, spec, scale);
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

/** Most rows {@linkcode sharesColumns} takes: a chunk of loads for each of a workgroup's threads. */
const SHARED_COLUMNS_MAX_ROWS = COL_WG * 16;

/**
 * Whether {@linkcode reduceKernel} reduces these dims with a workgroup's threads sharing each column: under 16K
 * columns (outer x inner) and 64 to 4096 rows, such as the partial weight gradients of RMSNorm (512 rows of 512 at
 * the TinyStories shape). A thread a column would walk every row alone on a mostly idle GPU; the rows are cut among
 * up to 256 threads instead, each adding at most 16, and the workgroup adds their sums, in one dispatch.
 *
 * @example
 * ```ts
 * import { sharesColumns } from "./reduce.ts";
 * if (!sharesColumns({ outer: 1, reduced: 512, inner: 512 })) throw new Error("RMSNorm's partials: shared");
 * if (sharesColumns({ outer: 1, reduced: 11, inner: 1536 * 512 })) throw new Error("split-K sums: a thread each");
 * ```
 */
export function sharesColumns({ outer, reduced, inner }: ReduceDims): boolean {
  return inner > 1 && outer * inner < 1 << 14 && reduced >= 64 && reduced <= SHARED_COLUMNS_MAX_ROWS;
}

/**
 * The shared-columns form ({@linkcode sharesColumns}): a workgroup of 256 threads takes `C` neighbouring columns (of
 * vec4 where inner allows) of one outer index, as `C` column lanes times `L` row lanes; lane `l` adds rows l, l + L,
 * ... (at most 16, their loads issued together), and the `L` lanes' sums are added in workgroup memory.
 */
function generateSharedColumnsKernel(kind: ReduceKind, dims: ReduceDims, scale: number): KernelSource {
  const { outer, reduced: R, inner } = dims;
  const w = inner % 4 === 0 ? 4 : 1, type = w === 4 ? "vec4f" : "f32", innerW = inner / w;
  // Row lanes: the fewest powers of two that leave each at most 16 rows; the rest of the workgroup takes columns.
  let L = 1;
  while (Math.ceil(R / L) > 16) L *= 2;
  const C = COL_WG / L, blocks = Math.ceil(innerW / C), perLane = Math.ceil(R / L);
  // Under 16K columns: within one grid dimension.
  const grid = flatGrid(outer * blocks);
  const init = kind === "sum" ? "0.0" : f32Literal(-Infinity);
  const combine = (a: string, b: string) => kind === "sum" ? `${a} + ${b}` : `max(${a}, ${b})`;
  const loads = Array.from({ length: perLane }, (_, j) => {
    const row = `l + ${j * L}u`;
    // Rows past R only where L does not divide it; the last lane's rows are the ones that can run over.
    const guarded = (j + 1) * L > R;
    return guarded
      ? `let v${j} = select(${type}(${init}), x[base + min(${row}, ${R - 1}u) * ${innerW}u], ${row} < ${R}u);`
      : `let v${j} = x[base + (${row}) * ${innerW}u];`;
  });
  const adds = Array.from({ length: perLane }, (_, j) => `acc = ${combine("acc", `v${j}`)};`);
  const tree: string[] = [];
  for (let s = L / 2; s >= 1; s /= 2) {
    tree.push(
      `  if (l < ${s}u) { red[lid.x] = ${combine("red[lid.x]", `red[lid.x + ${s * C}u]`)}; }`,
      "  workgroupBarrier();",
    );
  }
  const scaled = scale === 1 ? "red[c]" : `red[c] * ${f32Literal(scale)}`;
  return {
    name: `reduce_${kind}_cols_shared`,
    workgroups: grid.workgroups,
    source: `${bindings([read("x", type), readWrite("out", type)])}
var<workgroup> red: array<${type}, ${COL_WG}>;
@compute @workgroup_size(${COL_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let block = ${grid.index};
  let o = block / ${blocks}u;
  let c = lid.x % ${C}u;
  let l = lid.x / ${C}u;
  // Columns past the row clamped: loaded, never stored, and every thread reaches the barriers.
  let i = min((block % ${blocks}u) * ${C}u + c, ${innerW - 1}u);
  let base = o * ${R * innerW}u + i;
  var acc = ${type}(${init});
  ${loads.join("\n  ")}
  ${adds.join(" ")}
  red[lid.x] = acc;
  workgroupBarrier();
${tree.join("\n")}
  if (l == 0u && (block % ${blocks}u) * ${C}u + c < ${innerW}u) {
    out[o * ${innerW}u + i] = ${scaled};
  }
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

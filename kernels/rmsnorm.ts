/**
 * RMSNorm over the last axis: `y = x * rstd * w`, `rstd = 1 / sqrt(mean(x^2) + eps)`, one workgroup per row
 * (reading vectors of 4 where the row length allows). The forward also writes `rstd` per row for the backward; its
 * in-place variant (a decode step's post-norm) overwrites x and keeps no `rstd`. The backward takes dx and the weight
 * gradient's partial sums from one read of x and dy where a thread can hold its share of a row in registers
 * ({@linkcode rmsNormBackwardFusedKernel}), else in two kernels: dx a workgroup a row, and the partials by row
 * chunks. Kernels that fuse the norm into a matrix product (the decode kernels) take the sum of squares as they go
 * and scale with {@linkcode rmsNormScale}, so the formula is written here once.
 *
 * @module
 */
import {
  ELEMENT_BYTES,
  f32Literal,
  flatGrid,
  type KernelSource,
  memoized,
  rowKernelEntry,
  workgroupReduce,
} from "./common.ts";

const WG = 128;

/**
 * How a row kernel reads a row of `dim` floats: as `dim / 4` vectors by 64 threads where `dim` is a multiple of 4,
 * else as floats by 128 threads. `part(acc)` is the WGSL of a thread's scalar share of a vector accumulator.
 */
function rowAccess(
  dim: number,
): { type: string; n: number; threads: number; zero: string; part: (acc: string) => string } {
  if (dim % 4 === 0) {
    return {
      type: "vec4f",
      n: dim / 4,
      threads: 64,
      zero: "vec4f(0.0)",
      part: (acc) => `(${acc}.x + ${acc}.y) + (${acc}.z + ${acc}.w)`,
    };
  }
  return { type: "f32", n: dim, threads: WG, zero: "0.0", part: (acc) => acc };
}

/**
 * The WGSL expression of `rstd` from a row's sum of squares: `inverseSqrt(sumSquares / dim + eps)`.
 *
 * @example
 * ```ts
 * import { rmsNormScale } from "./rmsnorm.ts"; // kernels are internal: not exported by the package
 * const wgsl = rmsNormScale("ss", 64, 1e-5);
 * if (wgsl !== "inverseSqrt(ss / 64.0 + f32(0.00001))") throw new Error(wgsl);
 * ```
 */
export function rmsNormScale(sumSquares: string, dim: number, eps: number): string {
  return `inverseSqrt(${sumSquares} / ${f32Literal(dim)} + ${f32Literal(eps)})`;
}

/** Options of {@linkcode rmsNormForwardKernel}. */
export interface RmsNormForwardOptions {
  /** Normalise x in place (bindings: x (read_write), w) and write no `rstd`: for inference only. */
  inPlace?: boolean;
}

/**
 * Most vectors (or floats) of a row one thread of the forward holds in registers (rows of up to 2048 floats, or
 * 1024 not a multiple of 4); longer rows loop over the row twice.
 */
const HELD_PER_THREAD = 8;

/**
 * WGSL that sums the `T` partials of a slot of threads, `value` from each (thread `t` of the slot), into `let <out>`
 * in every thread of the slot, with two barriers where {@linkcode workgroupReduce}'s tree takes one a level (eight
 * for 64 threads): the slot's first `T / 8` threads each add eight partials into `red2`, then every thread adds
 * those sums. `slot` is the WGSL of the slot's index where a workgroup has several (`red` and `red2` hold `T` and
 * `T / 8` floats a slot), null where it is one slot.
 */
function twoLevelSum(value: string, out: string, T: number, slot: string | null, indent: string): string {
  const S = T / 8;
  const at = (size: number) => (slot === null ? "" : `${slot} * ${size}u + `);
  return [
    `red[lid.x] = ${value};`,
    "workgroupBarrier();",
    `if (t < ${S}u) {`,
    `  let at = ${at(T)}t * 8u;`,
    `  red2[${at(S)}t] = ((red[at] + red[at + 1u]) + (red[at + 2u] + red[at + 3u])) +`,
    "    ((red[at + 4u] + red[at + 5u]) + (red[at + 6u] + red[at + 7u]));",
    "}",
    "workgroupBarrier();",
    `let ${out} = ${Array.from({ length: S }, (_, k) => `red2[${at(S)}${k}u]`).join(" + ")};`,
  ].map((line) => indent + line).join("\n");
}

/**
 * Forward; bindings: x, w, y (write), rstd (write); in place: x (read_write), w. A workgroup owns a row. Where a
 * thread's share of the row is at most {@linkcode HELD_PER_THREAD} vectors (or floats), the thread loads its x and w
 * before any arithmetic, every load in flight at once, sums the squares from those registers, merges the sums in
 * two levels ({@linkcode twoLevelSum}) and writes y from the registers: x and w are read once. (Looping over the row
 * for the sum, reducing through a tree with a barrier a level and looping again for y took 13 us a dispatch on the
 * H200 over the 8192 rows of 512 of a TinyStories step, whose 33.5 MB take about 8 us at its bandwidth.) Longer
 * rows keep those two loops. Cost: the accounting's 4 FLOPs per element (square, sum, scale, gain) and 3 per row
 * (divide, add, inverse square root); x and w read, y and rstd (in place: x) written once.
 */
function generateRmsNormForwardKernel(
  rows: number,
  dim: number,
  eps: number,
  options: RmsNormForwardOptions = {},
): KernelSource {
  const { type, n, threads, zero, part } = rowAccess(dim);
  const entry = rowKernelEntry(rows, threads);
  const inPlace = options.inPlace ?? false;
  const perThread = Math.ceil(n / threads), held = perThread <= HELD_PER_THREAD;
  const bindings = inPlace
    ? `@group(0) @binding(0) var<storage, read_write> x: array<${type}>;
@group(0) @binding(1) var<storage, read> w: array<${type}>;`
    : `@group(0) @binding(0) var<storage, read> x: array<${type}>;
@group(0) @binding(1) var<storage, read> w: array<${type}>;
@group(0) @binding(2) var<storage, read_write> y: array<${type}>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;`;
  const out = inPlace ? "x" : "y";
  const writeRstd = inPlace ? "" : "\n  if (lid.x == 0u) { rstd[row] = r; }";
  // In place, each thread rewrites only the elements it read, after every read of the row (the reduction's barriers).
  const body = held ? heldForwardBody(n, threads, zero, part, out, dim, eps) : `  var acc = ${zero};
  for (var j = lid.x; j < ${n}u; j += ${threads}u) { let v = x[base + j]; acc = fma(v, v, acc); }
${workgroupReduce("sum", part("acc"), "ss", threads)}
  let r = ${rmsNormScale("ss", dim, eps)};
  for (var j = lid.x; j < ${n}u; j += ${threads}u) { ${out}[base + j] = x[base + j] * r * w[j]; }`;
  return {
    name: inPlace ? "rmsnorm_inplace" : "rmsnorm_forward",
    workgroups: entry.workgroups,
    cost: {
      flops: rows * (4 * dim + 3),
      bytes: (2 * rows * dim + dim + (inPlace ? 0 : rows)) * ELEMENT_BYTES,
    },
    ...(held ? {} : { loops: { iterations: 2 * perThread, of: `rows of (${rows}, ${dim})` } }),
    source: `${bindings}
${held ? `var<workgroup> red2: array<f32, ${threads / 8}>;\n` : ""}${entry.head}
  let base = row * ${n}u;
${body}${writeRstd}
}
`,
  };
}

/**
 * The columns of a row that thread `t` of a slot of `T` threads holds in registers: column `t + T * i` for each `i`
 * of `count`. Where `T` does not divide the row's `n` columns, a thread's last ones can run past it: `index` clamps
 * them to the row's last column (an in-bounds read), `zeroPast` reads them as zero (adding nothing to a sum), and
 * `guarded` skips their writes.
 */
function heldColumns(n: number, T: number) {
  const count = Math.ceil(n / T);
  const col = (i: number) => (i === 0 ? "t" : `t + ${T * i}u`);
  const past = (i: number) => T * (i + 1) > n;
  return {
    count,
    each: (f: (i: number) => string) => Array.from({ length: count }, (_, i) => f(i)).join("\n"),
    col,
    index: (i: number) => (past(i) ? `min(${col(i)}, ${n - 1}u)` : col(i)),
    zeroPast: (i: number, value: string, zero: string) =>
      past(i) ? `select(${zero}, ${value}, ${col(i)} < ${n}u)` : value,
    guarded: (i: number, stmt: string) => (past(i) ? `if (${col(i)} < ${n}u) { ${stmt} }` : stmt),
  };
}

/**
 * The held forward's body after `base` (the row's first element): `x_i` and `w_i` are the row's element
 * `t + threads * i` and its gain. Where `threads` does not divide the row, the last elements of a thread can run
 * past it: those read x as zero (adding nothing to the sum of squares) and w at the row's last element, and are not
 * written. Each thread writes only the elements it read, so in place every read is done before its element is
 * rewritten (and the sum's barriers order all threads' reads before any write).
 */
function heldForwardBody(
  n: number,
  threads: number,
  zero: string,
  part: (acc: string) => string,
  out: string,
  dim: number,
  eps: number,
): string {
  const { count, each, col, index, zeroPast, guarded } = heldColumns(n, threads);
  const store = (i: number) => guarded(i, `${out}[base + ${col(i)}] = x_${i} * r * w_${i};`);
  return `  let t = lid.x;
  // Every load first (${count} of x and of w a thread), then the arithmetic: the loads are all in flight at once.
${each((i) => `  let x_${i} = ${zeroPast(i, `x[base + ${index(i)}]`, zero)};`)}
${each((i) => `  let w_${i} = w[${index(i)}];`)}
  var acc = ${zero};
${each((i) => `  acc = fma(x_${i}, x_${i}, acc);`)}
${twoLevelSum(part("acc"), "ss", threads, null, "  ")}
  let r = ${rmsNormScale("ss", dim, eps)};
${each((i) => `  ${store(i)}`)}`;
}

/**
 * Backward for x: `dx = rstd * (g - x * rstd^2 * mean(g * x))` with `g = dy * w` (plus `prior` when
 * accumulating); bindings: x, w, rstd, dy, dx (write)[, prior]. The weight gradient `sum_rows(dy * x * rstd)` is a column reduction done by the caller.
 * Cost: 7 FLOPs per element (the dot's two products and add, then two multiplies, a subtract and a multiply; 8
 * with `prior`) and 3 per row; x, dy (and prior) read, dx written once, w and rstd read once.
 */
function generateRmsNormBackwardKernel(rows: number, dim: number, accumulate = false): KernelSource {
  const { type, n, threads, zero, part } = rowAccess(dim);
  const entry = rowKernelEntry(rows, threads);
  // With `accumulate`, a sixth binding holds the gradient x already received from its other uses (the residual
  // stream), added here instead of in a separate pass.
  const plus = accumulate ? " + prior[base + j]" : "";
  return {
    name: "rmsnorm_backward",
    workgroups: entry.workgroups,
    cost: {
      flops: rows * ((accumulate ? 8 : 7) * dim + 3),
      bytes: ((accumulate ? 4 : 3) * rows * dim + dim + rows) * ELEMENT_BYTES,
    },
    loops: { iterations: 2 * Math.ceil(n / threads), of: `rows of (${rows}, ${dim})` },
    source: `@group(0) @binding(0) var<storage, read> x: array<${type}>;
@group(0) @binding(1) var<storage, read> w: array<${type}>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<${type}>;
@group(0) @binding(4) var<storage, read_write> dx: array<${type}>;
${accumulate ? `@group(0) @binding(5) var<storage, read> prior: array<${type}>;` : ""}
${entry.head}
  let base = row * ${n}u;
  let r = rstd[row];
  var acc = ${zero};
  for (var j = lid.x; j < ${n}u; j += ${threads}u) { acc = fma(dy[base + j] * w[j], x[base + j], acc); }
${workgroupReduce("sum", part("acc"), "dot", threads)}
  let c = r * r * dot / ${f32Literal(dim)};
  for (var j = lid.x; j < ${n}u; j += ${threads}u) {
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
 * import { rmsNormForwardKernel } from "./rmsnorm.ts"; // kernels are internal: not exported by the package
 * const k = rmsNormForwardKernel(64, 128, 1e-5);
 * if (k.name !== "rmsnorm_forward" || k.workgroups[0] !== 64) throw new Error(`${k.name} ${k.workgroups}`);
 * const inPlace = rmsNormForwardKernel(2, 128, 1e-5, { inPlace: true });
 * if (inPlace.name !== "rmsnorm_inplace" || inPlace.source.includes("rstd")) throw new Error("not in place");
 * ```
 */
export const rmsNormForwardKernel: (
  rows: number,
  dim: number,
  eps: number,
  options?: RmsNormForwardOptions,
) => KernelSource = memoized(generateRmsNormForwardKernel);

/**
 * {@linkcode generateRmsNormBackwardKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { rmsNormBackwardKernel } from "./rmsnorm.ts"; // kernels are internal: not exported by the package
 * const k = rmsNormBackwardKernel(64, 128);
 * if (k.name !== "rmsnorm_backward" || k.workgroups[0] !== 64) throw new Error(`${k.name} ${k.workgroups}`);
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
 * import { rmsNormWeightGradChunks } from "./rmsnorm.ts"; // kernels are internal: not exported by the package
 * if (rmsNormWeightGradChunks(4096) !== 128 || rmsNormWeightGradChunks(2_000_000) !== 489) throw new Error("chunks");
 * ```
 */
export function rmsNormWeightGradChunks(rows: number): number {
  return Math.max(1, Math.min(256, Math.floor(rows / 32)), Math.ceil(rows / 4096));
}

/**
 * Partial weight gradients `partial[c, j] = sum over rows r of chunk c of dy[r, j] * x[r, j] * rstd[r]`, one
 * thread per (chunk, column), so neighbouring threads read neighbouring columns. Summing over chunks (a column
 * reduction) gives dW; the product is never stored. Bindings: x, dy, rstd, partial (write, (chunks, dim)). Cost: 3
 * FLOPs per element (two multiplies and the add); x, dy and rstd read, the partials written once.
 */
function generateRmsNormWeightGradKernel(rows: number, dim: number): KernelSource {
  const chunks = rmsNormWeightGradChunks(rows);
  const per = Math.ceil(rows / chunks);
  const n = chunks * dim, WG = 256;
  const grid = flatGrid(Math.ceil(n / WG));
  return {
    name: "rmsnorm_weight_backward",
    workgroups: grid.workgroups,
    cost: { flops: 3 * rows * dim, bytes: (2 * rows * dim + rows + n) * ELEMENT_BYTES },
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
 * import { rmsNormWeightGradKernel } from "./rmsnorm.ts"; // kernels are internal: not exported by the package
 * const k = rmsNormWeightGradKernel(4096, 128); // (128 chunks, 128) partials: 64 workgroups of 256
 * if (k.name !== "rmsnorm_weight_backward" || k.workgroups[0] !== 64) throw new Error(`${k.name} ${k.workgroups}`);
 * ```
 */
export const rmsNormWeightGradKernel: (rows: number, dim: number) => KernelSource = memoized(
  generateRmsNormWeightGradKernel,
);

/** Threads of the fused RMSNorm backward's workgroup: {@linkcode rowAccess}'s threads a row times rows at once. */
const FUSED_WG = 256;

/** Most vectors (or floats) of a row one thread of the fused backward holds in registers. */
const FUSED_MAX_PER_THREAD = 8;

/**
 * The split of {@linkcode rmsNormBackwardFusedKernel}: rows a workgroup normalises at once (`group`, one row per
 * 64 threads for vectors of 4, per 128 for floats), rows a workgroup covers (`perGroup`, a multiple of `group`),
 * and workgroups (each writes one row of weight-gradient partials); `null` where a row is too long for a thread to
 * hold its share in registers.
 *
 * @example
 * ```ts
 * import { rmsNormFusedSplit } from "./rmsnorm.ts"; // kernels are internal: not exported by the package
 * const split = rmsNormFusedSplit(8192, 512); // 16 rows a workgroup, 4 at once
 * if (split?.groups !== 512 || split.perGroup !== 16) throw new Error(JSON.stringify(split));
 * if (rmsNormFusedSplit(8, 8192) !== null) throw new Error("2048 vectors a row: 32 a thread");
 * ```
 */
export function rmsNormFusedSplit(
  rows: number,
  dim: number,
): { group: number; perGroup: number; groups: number } | null {
  const { n, threads } = rowAccess(dim);
  if (Math.ceil(n / threads) > FUSED_MAX_PER_THREAD) return null;
  const group = FUSED_WG / threads;
  // 16 rows a workgroup keeps thousands of workgroups in flight on large inputs; past 2048 workgroups each takes
  // more rows, so that the partials (a row a workgroup) stay small.
  const perGroup = Math.ceil(Math.max(16, Math.ceil(rows / 2048)) / group) * group;
  const groups = Math.ceil(rows / perGroup);
  return { group, perGroup, groups };
}

/**
 * The whole RMSNorm backward in one pass over x and dy: dx as {@linkcode generateRmsNormBackwardKernel} computes it,
 * and the weight gradient's partial column sums `sum over rows of dy * x * rstd`, one row of partials per workgroup
 * (summing those rows gives dW). A workgroup normalises `group` rows at once, each by a slot of threads that keeps
 * its share of the row (x, dy, w and the partials) in registers, so x and dy are read once for both gradients; the
 * slots add their partials through workgroup memory at the end. Bindings: x, w, rstd, dy, dx (write), partial
 * (write, (groups, dim))[, prior]. Cost: 10 FLOPs per element (11 with `prior`) and 3 per row; x, dy (and prior)
 * read, dx and the partials written, w read once.
 */
function generateRmsNormBackwardFusedKernel(rows: number, dim: number, accumulate = false): KernelSource {
  const { type, n, threads: T, zero, part } = rowAccess(dim);
  const split = rmsNormFusedSplit(rows, dim);
  if (!split) throw new RangeError(`rmsNormBackwardFusedKernel: rows of ${dim} are too long to hold in registers`);
  const { group: G, perGroup, groups } = split;
  const S = T / 8, grid = flatGrid(groups);
  // Column j_i = t + T i of the row; where T does not divide the row, the last ones are clamped and not written.
  const { each, index, zeroPast, guarded } = heldColumns(n, T);
  return {
    name: "rmsnorm_backward_fused",
    workgroups: grid.workgroups,
    cost: {
      flops: rows * ((accumulate ? 11 : 10) * dim + 3),
      bytes: ((accumulate ? 4 : 3) * rows * dim + groups * dim + dim + rows) * ELEMENT_BYTES,
    },
    loops: { iterations: perGroup / G, of: `rows of (${rows}, ${dim})` },
    source: `@group(0) @binding(0) var<storage, read> x: array<${type}>;
@group(0) @binding(1) var<storage, read> w: array<${type}>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<${type}>;
@group(0) @binding(4) var<storage, read_write> dx: array<${type}>;
@group(0) @binding(5) var<storage, read_write> partial: array<${type}>;
${accumulate ? `@group(0) @binding(6) var<storage, read> prior: array<${type}>;` : ""}
var<workgroup> red: array<f32, ${FUSED_WG}>;
var<workgroup> red2: array<f32, ${G * S}>;
var<workgroup> slots: array<${type}, ${(G - 1) * n}>;
@compute @workgroup_size(${FUSED_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let chunk = ${grid.index};
  if (chunk >= ${groups}u) { return; }
  let q = lid.x / ${T}u; let t = lid.x % ${T}u;
  let first = chunk * ${perGroup}u; let end = min(first + ${perGroup}u, ${rows}u);
${each((i) => `  let j_${i} = ${index(i)}; let w_${i} = w[j_${i}];`)}
${each((i) => `  var wacc_${i} = ${zero};`)}
  for (var r0 = first; r0 < end; r0 += ${G}u) {
    let row = r0 + q; let live = row < end;
    let base = min(row, ${rows - 1}u) * ${n}u;
    let r = select(0.0, rstd[min(row, ${rows - 1}u)], live);
${
      each((i) => {
        // A clamped column reads zeros, adding nothing to the row's dot product.
        const load = (a: string) => zeroPast(i, `${a}[base + j_${i}]`, zero);
        return `    let x_${i} = ${load("x")}; let dy_${i} = ${load("dy")}; let g_${i} = dy_${i} * w_${i};`;
      })
    }
    var acc = ${zero};
${each((i) => `    acc = fma(g_${i}, x_${i}, acc);`)}
    // The row's dot product: its slot's partial sums in eights, then those sums.
${twoLevelSum(part("acc"), "dot", T, "q", "    ")}
    let c = r * r * dot / ${f32Literal(dim)};
    if (live) {
${
      each((i) =>
        `      ${
          guarded(i, `dx[base + j_${i}] = r * (g_${i} - x_${i} * c)${accumulate ? ` + prior[base + j_${i}]` : ""};`)
        }`
      )
    }
    }
${each((i) => `    wacc_${i} = fma(dy_${i} * x_${i}, ${type}(r), wacc_${i});`)}
  }
  // The row slots' partials summed through workgroup memory: one row of partials a workgroup.
  if (q > 0u) {
${each((i) => `    ${guarded(i, `slots[(q - 1u) * ${n}u + j_${i}] = wacc_${i};`)}`)}
  }
  workgroupBarrier();
  if (q == 0u) {
${
      each((i) => {
        const sum = Array.from({ length: G - 1 }, (_, s) => ` + slots[${s * n}u + j_${i}]`).join("");
        return `    ${guarded(i, `partial[chunk * ${n}u + j_${i}] = wacc_${i}${sum};`)}`;
      })
    }
  }
}
`,
  };
}

/**
 * {@linkcode generateRmsNormBackwardFusedKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { rmsNormBackwardFusedKernel } from "./rmsnorm.ts"; // kernels are internal: not exported by the package
 * const k = rmsNormBackwardFusedKernel(8192, 512); // 512 workgroups of 16 rows
 * if (k.name !== "rmsnorm_backward_fused" || k.workgroups[0] !== 512) throw new Error(`${k.name} ${k.workgroups}`);
 * ```
 */
export const rmsNormBackwardFusedKernel: (rows: number, dim: number, accumulate?: boolean) => KernelSource = memoized(
  generateRmsNormBackwardFusedKernel,
);

/**
 * Strided gather: every movement op (permute, slice, broadcast, concat pieces) is `out[i] = in[offset(i)]`
 * where `offset` is an affine function of the output coordinates, fixed at generation time.
 *
 * @module
 */
import { bindings, ELEMENT_BYTES, flatGrid, foldGrid, type KernelSource, memoized, read, readWrite } from "./common.ts";

const WG = 256;

/**
 * A strided copy: an input read with `inStrides` (per output dim, 0 for broadcast) from `inOffset`, written to an
 * output of `outShape` elements starting at element `outOffset` with `outStrides` (contiguous when absent).
 */
export interface GatherSpec {
  /** Shape of the copied elements (the output's, unless `outStrides` writes into a larger one). */
  outShape: readonly number[];
  /** Input stride of each output dim (0 broadcasts it). */
  inStrides: readonly number[];
  /** Input element of the first copied one. */
  inOffset?: number;
  /** Output stride of each dim; contiguous when absent. */
  outStrides?: readonly number[];
  /** Output element of the first copied one. */
  outOffset?: number;
  dtype: "f32" | "i32";
}

/**
 * Generates the copy of a {@linkcode GatherSpec}. Bindings: x (read), out (write). Cost: no FLOPs; the distinct input
 * elements (a broadcast dim is read once) and every output element once.
 */
function generateGatherKernel(spec: GatherSpec): KernelSource {
  const { outShape, inStrides } = spec;
  const n = outShape.reduce((a, b) => a * b, 1);
  const grid = flatGrid(Math.ceil(n / WG));
  const src: string[] = [spec.inOffset ? `${spec.inOffset}u` : "0u"];
  const dst: string[] = [spec.outOffset ? `${spec.outOffset}u` : "0u"];
  let stride = 1;
  for (let d = outShape.length - 1; d >= 0; d--) {
    const coord = stride === 1 ? `(i % ${outShape[d]}u)` : `((i / ${stride}u) % ${outShape[d]}u)`;
    if (inStrides[d] !== 0 && outShape[d] !== 1) src.push(`${coord} * ${inStrides[d]}u`);
    if (spec.outStrides && spec.outStrides[d] !== 0 && outShape[d] !== 1) dst.push(`${coord} * ${spec.outStrides[d]}u`);
    stride *= outShape[d];
  }
  const outIndex = spec.outStrides ? dst.join(" + ") : (spec.outOffset ? `${spec.outOffset}u + i` : "i");
  const distinct = outShape.reduce((a, d, j) => (inStrides[j] === 0 ? a : a * d), 1);
  return {
    name: "gather_copy",
    workgroups: grid.workgroups,
    cost: { flops: 0, bytes: (distinct + n) * ELEMENT_BYTES },
    source: `${bindings([read("x", spec.dtype), readWrite("out", spec.dtype)])}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ${grid.index} * ${WG}u + lid.x;
  if (i >= ${n}u) { return; }
  out[${outIndex}] = x[${src.join(" + ")}];
}
`,
  };
}

/**
 * {@linkcode generateGatherKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { gatherKernel } from "./copy.ts";
 * const k = gatherKernel({ outShape: [3, 2], inStrides: [1, 3], dtype: "f32" }); // transposes a (2, 3)
 * if (k.name !== "gather_copy" || !k.source.includes("out[i] = x[")) throw new Error(k.source);
 * ```
 */
export const gatherKernel: (spec: GatherSpec) => KernelSource = memoized(generateGatherKernel);

/** A (rows, cols) matrix to transpose into (cols, rows). */
export interface TransposeSpec {
  rows: number;
  cols: number;
  /** Element type; f32 when absent. */
  dtype?: "f32" | "i32";
}

/** Side of the square tile a workgroup of the transpose stages. */
const TRANSPOSE_TILE = 32;

/** A transpose workgroup's load of its tile (from `r0`, `c0`) of the (rows, cols) matrix `x` into workgroup memory. */
function tileLoad(x: string, rows: number, cols: number, indent: string): string {
  const T = TRANSPOSE_TILE, pad = T + 1;
  return `${indent}for (var j = 0u; j < ${T}u; j += 8u) {
${indent}  let r = r0 + lid.y + j; let c = c0 + lid.x;
${indent}  if (r < ${rows}u && c < ${cols}u) { tile[(lid.y + j) * ${pad}u + lid.x] = ${x}[r * ${cols}u + c]; }
${indent}}`;
}

/** The store of that tile, transposed, into the (cols, rows) matrix `out`. */
function tileStore(out: string, rows: number, cols: number, indent: string): string {
  const T = TRANSPOSE_TILE, pad = T + 1;
  return `${indent}for (var j = 0u; j < ${T}u; j += 8u) {
${indent}  let c = c0 + lid.y + j; let r = r0 + lid.x;
${indent}  if (c < ${cols}u && r < ${rows}u) { ${out}[c * ${rows}u + r] = tile[lid.x * ${pad}u + lid.y + j]; }
${indent}}`;
}

/**
 * `out = x^T` for a row-major (rows, cols) `x`, through 32 x 32 tiles in workgroup memory so that both the reads of
 * `x` and the writes of `out` are coalesced (a gather writing `out` in order reads `x` a column at a time, one
 * memory sector per element). The tile rows are padded by one float so that reading a tile column hits 32 banks.
 * Bindings: x (read), out (write). Grid: (ceil(cols / 32), ceil(rows / 32)), 32 x 8 threads each copying 4
 * elements. Cost: every element read and written once.
 */
function generateTransposeKernel({ rows, cols, dtype = "f32" }: TransposeSpec): KernelSource {
  const T = TRANSPOSE_TILE, pad = T + 1;
  const grid = foldGrid([Math.ceil(cols / T), Math.ceil(rows / T)]);
  return {
    name: "transpose",
    workgroups: grid.workgroups,
    cost: { flops: 0, bytes: 2 * rows * cols * ELEMENT_BYTES },
    source: `${bindings([read("x", dtype), readWrite("out", dtype)])}
var<workgroup> tile: array<${dtype}, ${T * pad}>;
@compute @workgroup_size(${T}, 8)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${grid.guard ? `  ${grid.guard}\n` : ""}  let c0 = ${grid.index[0]} * ${T}u; let r0 = ${grid.index[1]} * ${T}u;
${tileLoad("x", rows, cols, "  ")}
  workgroupBarrier();
${tileStore("out", rows, cols, "  ")}
}
`,
  };
}

/** Several matrices to transpose in one dispatch ({@linkcode transposeManyKernel}). */
export interface TransposeManySpec {
  /** Each (rows, cols) f32 matrix, transposed into (cols, rows). */
  matrices: readonly { rows: number; cols: number }[];
}

/**
 * {@linkcode generateTransposeKernel}'s tiles for several matrices in one dispatch: matrix `t` takes the next
 * ceil(cols / 32) x ceil(rows / 32) workgroups of a flat grid, chosen by workgroup index (uniform per workgroup,
 * so the barrier between the tile's load and its store stays in uniform control flow). A block's forward products
 * transpose their four weights at once instead of in four dependent dispatches.
 * Bindings: x_t (read), out_t (write) at 2t, 2t + 1. Cost: every element read and written once.
 */
function generateTransposeManyKernel({ matrices }: TransposeManySpec): KernelSource {
  const T = TRANSPOSE_TILE, pad = T + 1;
  const loads: string[] = [], stores: string[] = [];
  let first = 0;
  matrices.forEach(({ rows, cols }, t) => {
    const across = Math.ceil(cols / T), tiles = across * Math.ceil(rows / T);
    const tile = `let l = w - ${first}u; let c0 = (l % ${across}u) * ${T}u; let r0 = (l / ${across}u) * ${T}u;`;
    const within = `w >= ${first}u && w < ${first + tiles}u`;
    loads.push(`if (${within}) {\n    ${tile}\n${tileLoad(`x${t}`, rows, cols, "    ")}\n  }`);
    stores.push(`if (${within}) {\n    ${tile}\n${tileStore(`out${t}`, rows, cols, "    ")}\n  }`);
    first += tiles;
  });
  const grid = flatGrid(first);
  const elements = matrices.reduce((n, m) => n + m.rows * m.cols, 0);
  return {
    name: "transpose_many",
    workgroups: grid.workgroups,
    cost: { flops: 0, bytes: 2 * elements * ELEMENT_BYTES },
    source: `${bindings(matrices.flatMap((_, t) => [read(`x${t}`, "f32"), readWrite(`out${t}`, "f32")]))}
var<workgroup> tile: array<f32, ${T * pad}>;
@compute @workgroup_size(${T}, 8)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let w = ${grid.index};
  ${loads.join(" else ")}
  workgroupBarrier();
  ${stores.join(" else ")}
}
`,
  };
}

/**
 * {@linkcode generateTransposeManyKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { transposeManyKernel } from "./copy.ts";
 * const k = transposeManyKernel({ matrices: [{ rows: 64, cols: 32 }, { rows: 40, cols: 40 }] }); // 2 + 4 tiles
 * if (k.name !== "transpose_many" || k.workgroups[0] !== 6) throw new Error(`${k.workgroups}`);
 * ```
 */
export const transposeManyKernel: (spec: TransposeManySpec) => KernelSource = memoized(generateTransposeManyKernel);

/**
 * {@linkcode generateTransposeKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { transposeKernel } from "./copy.ts";
 * const k = transposeKernel({ rows: 768, cols: 2304 }); // a (768, 2304) weight into (2304, 768)
 * if (k.name !== "transpose" || k.workgroups.join() !== "72,24,1") throw new Error(`${k.workgroups}`);
 * ```
 */
export const transposeKernel: (spec: TransposeSpec) => KernelSource = memoized(generateTransposeKernel);

/**
 * Most pieces the one-dispatch concatenation and split take: with the output (or input) that is 8 storage
 * bindings, the minimum every WebGPU device allows per shader stage.
 */
export const MAX_CONCAT_PIECES = 7;

/** WGSL that picks piece `p` of flat element `i` by the pieces' start offsets, and the offset `j` within it. */
function pieceSelect(sizes: readonly number[], body: (p: number, j: string) => string): string {
  let start = 0;
  const branches = sizes.map((size, p) => {
    const j = start === 0 ? "i" : `i - ${start}u`;
    const cond = p === sizes.length - 1 ? "" : `if (i < ${start + size}u) `;
    start += size;
    return `${cond}{ ${body(p, j)} }`;
  });
  return "  " + branches.join(" else ");
}

/**
 * Vector width and element type of a concatenation's or split's copies: 4-element vectors where every piece is a
 * multiple of 4 elements (a quarter of the threads and memory instructions), else scalars.
 */
function piecesVector(spec: PiecesSpec): { w: number; type: string; sizes: number[]; n: number } {
  const w = spec.sizes.every((size) => size % 4 === 0) ? 4 : 1;
  const type = w === 1 ? spec.dtype : spec.dtype === "f32" ? "vec4f" : "vec4i";
  const sizes = spec.sizes.map((size) => size / w);
  return { w, type, sizes, n: sizes.reduce((a, b) => a + b, 0) };
}

/** Contiguous pieces of `sizes` elements laid end to end: a concatenation's output, or a split's input. */
export interface PiecesSpec {
  /** Elements of each piece, in order (at most {@linkcode MAX_CONCAT_PIECES}). */
  sizes: readonly number[];
  dtype: "f32" | "i32";
}

/**
 * Concatenation of contiguous pieces laid end to end (axis 0, or any axis with only ones before it) in one
 * dispatch: a thread per output element (or vector of 4, see `piecesVector`) copies it from whichever piece holds
 * it. Bindings: the pieces x0, x1, ... (read), out (write). Cost: every element read and written once.
 */
function generateConcatKernel(spec: PiecesSpec): KernelSource {
  const { w, type, sizes, n } = piecesVector(spec);
  const grid = flatGrid(Math.ceil(n / WG));
  const buffers = [...sizes.map((_, p) => read(`x${p}`, type)), readWrite("out", type)];
  return {
    name: "concat_copy",
    workgroups: grid.workgroups,
    cost: { flops: 0, bytes: 2 * n * w * ELEMENT_BYTES },
    source: `${bindings(buffers)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ${grid.index} * ${WG}u + lid.x;
  if (i >= ${n}u) { return; }
${pieceSelect(sizes, (p, j) => `out[i] = x${p}[${j}];`)}
}
`,
  };
}

/**
 * {@linkcode generateConcatKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { concatKernel } from "./copy.ts";
 * const k = concatKernel({ sizes: [6, 4], dtype: "f32" }); // 6 + 4 elements
 * if (k.name !== "concat_copy" || !k.source.includes("x1[i - 6u]")) throw new Error(k.source);
 * ```
 */
export const concatKernel: (spec: PiecesSpec) => KernelSource = memoized(generateConcatKernel);

/**
 * The inverse of {@linkcode concatKernel} (the backward of a concatenation): one dispatch splits a contiguous
 * input into consecutive pieces of `sizes` elements, in vectors of 4 where they allow (see `piecesVector`).
 * Bindings: x (read), then the pieces y0, y1, ... (write). Cost: every element read and written once.
 */
function generateSplitKernel(spec: PiecesSpec): KernelSource {
  const { w, type, sizes, n } = piecesVector(spec);
  const grid = flatGrid(Math.ceil(n / WG));
  const buffers = [read("x", type), ...sizes.map((_, p) => readWrite(`y${p}`, type))];
  return {
    name: "split_copy",
    workgroups: grid.workgroups,
    cost: { flops: 0, bytes: 2 * n * w * ELEMENT_BYTES },
    source: `${bindings(buffers)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ${grid.index} * ${WG}u + lid.x;
  if (i >= ${n}u) { return; }
${pieceSelect(sizes, (p, j) => `y${p}[${j}] = x[i];`)}
}
`,
  };
}

/**
 * {@linkcode generateSplitKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { splitKernel } from "./copy.ts";
 * const k = splitKernel({ sizes: [6, 4], dtype: "f32" }); // 10 elements into 6 + 4
 * if (k.name !== "split_copy" || !k.source.includes("y1[i - 6u] = x[i]")) throw new Error(k.source);
 * ```
 */
export const splitKernel: (spec: PiecesSpec) => KernelSource = memoized(generateSplitKernel);

/**
 * Kernels of the KV-cached decode step: one new token per sequence, so every matmul is a matrix-vector product
 * over at most a few rows, and every dispatch is latency-bound rather than compute-bound.
 *
 * Why dedicated kernels rather than the tensor ops: a decode step at the CS336 TinyStories shape is ~90 MB of
 * weight reads and a few MFLOP, so its cost is the number of dispatches (about 3 us each on the H100 even when
 * tiny) plus one pass over the weights. These kernels fuse what the tensor ops do in separate dispatches:
 *
 * - {@linkcode decodeLinearKernel}: RMSNorm (prologue, scaled by `rmsNormScale` of rmsnorm.ts) + `x W^T` +
 *   residual add, SiLU or SwiGLU (epilogue);
 * - {@linkcode decodeQkvKernel}: RMSNorm + q, k, v projections + RoPE (the `ropeTable` of rope.ts) + append of
 *   k, v to the cache at the sequence's position;
 * - {@linkcode decodeAttentionKernel}: one query against the first `pos + 1` cached rows.
 *
 * Per-sequence positions live in a small `state` buffer (u32 words, {@linkcode STATE_WORDS} per row: position,
 * draw counter) that the sampling kernel advances on the GPU, so that the sources never depend on the step: each
 * kernel compiles once per model and batch size, and a step needs no upload and no readback.
 *
 * @module
 */
import { ELEMENT_BYTES, f32Literal, flatGrid, foldGrid, type KernelSource, workgroupReduce } from "./common.ts";
import { rmsNormScale } from "./rmsnorm.ts";

/** u32 words per sequence in the decode `state` buffer: [position of the next token to feed, draw counter, 0, 0]. */
export const STATE_WORDS = 4;

/** Threads of the matrix-vector kernels. */
const LINEAR_WG = 128;
/** Output columns per workgroup; LINEAR_WG / COLS threads split each column's dot products. */
const COLS = 4;
/** Rows (sequences) handled by one workgroup; more rows use more workgroups along y. */
const MAX_ROWS = 8;

/** Epilogue of {@linkcode decodeLinearKernel}. */
export type DecodeEpilogue = "store" | "add" | "silu" | "swiglu";

/** A decode matrix-vector product: `out (rows, n) = f(norm(x) (rows, k) @ W (n, k)^T)`. */
export interface DecodeLinearSpec {
  /** Sequences in the batch. */
  rows: number;
  /** Input features. */
  k: number;
  /** Output features. */
  n: number;
  /** Fuse an RMSNorm of each input row (with a gain vector bound after `x`) when given. */
  norm?: { eps: number } | null;
  /**
   * `store`: out = y; `add`: out += y (residual update in place; `out` must not be `x`); `silu`: out = silu(y);
   * `swiglu`: out = silu(x W1^T) * (x W3^T), with W3 bound after W1.
   */
  epilogue: DecodeEpilogue;
}

/** Vector width used for K: vec4 loads when K allows them. */
function lanes(k: number): { t: string; w: number; dot: (a: string, b: string) => string } {
  return k % 4 === 0
    ? { t: "vec4f", w: 4, dot: (a, b) => `dot(${a}, ${b})` }
    : { t: "f32", w: 1, dot: (a, b) => `(${a} * ${b})` };
}

/**
 * The shared body of the matrix-vector kernels: each column group of G threads walks K for one output column and
 * `rb` rows, then a tree over the G lanes leaves slot s of row r in `red[(s * rb + r) * WG + c * G]`. Slot
 * `weights.length` holds the row's sum of squares when `norm` is set (every column group covers all of K).
 */
function gemvBody(spec: {
  k: number;
  rows: number;
  rb: number;
  weights: string[];
  loadWeight?: (name: string, index: string) => string;
  norm: boolean;
}): { decls: string; body: string; slots: number } {
  const { k, rows, rb, weights, norm } = spec;
  const L = lanes(k);
  const kv = k / L.w;
  const G = LINEAR_WG / COLS;
  const slots = weights.length + (norm ? 1 : 0);
  const load = spec.loadWeight ?? ((name, index) => `${name}[${index}]`);
  const lines: string[] = [];
  for (let r = 0; r < rb; r++) {
    lines.push(`  let xrow${r} = min(b0 + ${r}u, ${rows - 1}u) * ${kv}u;`);
    for (let s = 0; s < slots; s++) lines.push(`  var acc${s}_${r} = 0.0;`);
  }
  lines.push(`  for (var i = g; i < ${kv}u; i += ${G}u) {`);
  weights.forEach((w, s) => lines.push(`    let w${s} = ${load(w, `wrow + i`)};`));
  if (norm) lines.push(`    let gain = lnw[i];`);
  for (let r = 0; r < rb; r++) {
    lines.push(`    let xv${r} = x[xrow${r} + i];`);
    const xin = norm ? `(xv${r} * gain)` : `xv${r}`;
    weights.forEach((_, s) => lines.push(`    acc${s}_${r} += ${L.dot(`w${s}`, xin)};`));
    if (norm) lines.push(`    acc${weights.length}_${r} += ${L.dot(`xv${r}`, `xv${r}`)};`);
  }
  lines.push("  }");
  for (let s = 0; s < slots; s++) {
    for (let r = 0; r < rb; r++) lines.push(`  red[${(s * rb + r) * LINEAR_WG}u + t] = acc${s}_${r};`);
  }
  lines.push("  workgroupBarrier();");
  for (let step = G / 2; step >= 1; step /= 2) {
    lines.push(`  if (g < ${step}u) {`);
    for (let s = 0; s < slots; s++) {
      for (let r = 0; r < rb; r++) {
        const at = `${(s * rb + r) * LINEAR_WG}u + t`;
        lines.push(`    red[${at}] += red[${at} + ${step}u];`);
      }
    }
    lines.push("  }", "  workgroupBarrier();");
  }
  return {
    decls: `var<workgroup> red: array<f32, ${slots * rb * LINEAR_WG}>;`,
    body: lines.join("\n"),
    slots,
  };
}

/** A folded grid's guard as the first line of `main` (nothing for a plain grid). */
function guard(grid: { guard: string }): string {
  return grid.guard ? `  ${grid.guard}\n` : "";
}

function rowBlock(rows: number): { rb: number; blocks: number } {
  const rb = Math.min(rows, MAX_ROWS);
  return { rb, blocks: Math.ceil(rows / rb) };
}

function checkPositive(name: string, fields: Record<string, number>): void {
  for (const [key, v] of Object.entries(fields)) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name}: ${key} must be an integer >= 1, got ${v}`);
  }
}

/**
 * Matrix-vector product for decoding, see {@linkcode DecodeLinearSpec}. Bindings: x (rows, k), [gain (k) if
 * norm], W (n, k), [W3 (n, k) if swiglu], out (rows, n). Grid: (ceil(n / 4), ceil(rows / 8)). Cost: 2 k FLOPs per
 * output and weight matrix, the norm's 3 per input element and 3 per row, and the epilogue's (store 1, add 2,
 * SiLU 5, SwiGLU 7) per output; the weights, x, the gain and out (read and written by `add`) once.
 *
 * @example
 * ```ts
 * import { decodeLinearKernel } from "./decode.ts"; // kernels are internal: not exported by the package
 * const k = decodeLinearKernel({ rows: 1, k: 512, n: 1344, norm: { eps: 1e-5 }, epilogue: "swiglu" });
 * if (k.workgroups[0] !== 336) throw new Error(`${k.workgroups}`); // 4 columns a workgroup
 * ```
 */
export function decodeLinearKernel(spec: DecodeLinearSpec): KernelSource {
  const { rows, k, n, epilogue } = spec;
  checkPositive("decodeLinearKernel", { rows, k, n });
  const norm = spec.norm ?? null;
  const { rb, blocks } = rowBlock(rows);
  const L = lanes(k);
  const weights = epilogue === "swiglu" ? ["w", "w3"] : ["w"];
  const gemv = gemvBody({ k, rows, rb, weights, norm: norm !== null });
  const G = LINEAR_WG / COLS;
  let b = 0;
  const bind = (decl: string) => `@group(0) @binding(${b++}) ${decl}`;
  const decls = [
    bind(`var<storage, read> x: array<${L.t}>;`),
    norm ? bind(`var<storage, read> lnw: array<${L.t}>;`) : "",
    bind(`var<storage, read> w: array<${L.t}>;`),
    epilogue === "swiglu" ? bind(`var<storage, read> w3: array<${L.t}>;`) : "",
    bind(`var<storage, read_write> out: array<f32>;`),
  ].filter(Boolean).join("\n");
  const at = (s: number) => `red[${s} * ${rb * LINEAR_WG}u + r * ${LINEAR_WG}u + c * ${G}u]`;
  const scale = norm ? rmsNormScale(at(gemv.slots - 1), k, norm.eps) : "1.0";
  const value = epilogue === "swiglu"
    ? `silu(${at(0)} * rs) * (${at(1)} * rs)`
    : epilogue === "silu"
    ? `silu(${at(0)} * rs)`
    : `${at(0)} * rs`;
  const write = epilogue === "add" ? "out[o] = out[o] + y;" : "out[o] = y;";
  const grid = foldGrid([Math.ceil(n / COLS), blocks]);
  const epilogueFlops = { store: 1, add: 2, silu: 5, swiglu: 7 }[epilogue];
  const normFlops = norm ? rows * (3 * k + 3) : 0;
  return {
    name: `decode_linear_${epilogue}`,
    workgroups: grid.workgroups,
    cost: {
      flops: rows * n * (2 * k * weights.length + epilogueFlops) + normFlops,
      bytes: (weights.length * n * k + rows * k + (norm ? k : 0) + rows * n * (epilogue === "add" ? 2 : 1)) *
        ELEMENT_BYTES,
    },
    source: `${decls}
${gemv.decls}
fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }
@compute @workgroup_size(${LINEAR_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${guard(grid)}  let t = lid.x;
  let c = t / ${G}u;
  let g = t % ${G}u;
  let col = ${grid.index[0]} * ${COLS}u + c;
  let b0 = ${grid.index[1]} * ${rb}u;
  let wrow = min(col, ${n - 1}u) * ${k / L.w}u;
${gemv.body}
  // Lane r of each column group writes row r of its column.
  let r = g;
  if (r < ${rb}u && b0 + r < ${rows}u && col < ${n}u) {
    let rs = ${scale};
    let y = ${value};
    let o = (b0 + r) * ${n}u + col;
    ${write}
  }
}
`,
  };
}

/** The fused q/k/v projection of a decode step. */
export interface DecodeQkvSpec {
  /** Sequences in the batch. */
  rows: number;
  /** Model width (= heads * head dim). */
  dModel: number;
  /** Attention heads. */
  heads: number;
  /** Rows of the KV cache per (sequence, head): the context length. */
  maxLen: number;
  /** Fuse the block's RMSNorm (gain bound after `x`) when given. */
  norm?: { eps: number } | null;
  /** Apply RoPE to q and k from the (maxLen, headDim / 2) (cos, sin) pairs of `ropeTable` (kernels/rope.ts). */
  rope: boolean;
}

/**
 * `q, k, v = norm(x) Wq^T, Wk^T, Wv^T`, RoPE on q and k at each sequence's position `state[b].pos`, q written to
 * `q` (rows, dModel) and k, v appended to the caches (rows, heads, maxLen, headDim) at row `pos` (skipped when
 * `pos >= maxLen`). Bindings: x, [gain], wq, wk, wv, [rope table], state, q, kCache, vCache.
 * Grid: (3 * dModel / 4, ceil(rows / 8)). Cost: 2 dModel FLOPs per output, the norm's 3 per input element and 3 per
 * row, a scale per output and RoPE's 3 per element of q and k; the three weights, x, the gain, a table row and the
 * position per sequence read, q and the new cache rows written once.
 *
 * @example
 * ```ts
 * import { decodeQkvKernel } from "./decode.ts"; // kernels are internal: not exported by the package
 * const k = decodeQkvKernel({ rows: 2, dModel: 64, heads: 4, maxLen: 32, norm: { eps: 1e-5 }, rope: true });
 * if (k.workgroups[0] !== 48) throw new Error(`${k.workgroups}`); // 3 * 64 columns, 4 a workgroup
 * ```
 */
export function decodeQkvKernel(spec: DecodeQkvSpec): KernelSource {
  const { rows, dModel: d, heads, maxLen } = spec;
  checkPositive("decodeQkvKernel", { rows, dModel: d, heads, maxLen });
  const hd = d / heads;
  if (!Number.isInteger(hd) || (spec.rope && hd % 2 !== 0)) {
    throw new RangeError(`decodeQkvKernel: heads (${heads}) must divide dModel (${d}) into an even head dim`);
  }
  const norm = spec.norm ?? null;
  const { rb, blocks } = rowBlock(rows);
  const L = lanes(d);
  const gemv = gemvBody({
    k: d,
    rows,
    rb,
    weights: ["w"],
    // Columns [0, d) come from wq, [d, 2d) from wk, [2d, 3d) from wv; the branch is uniform per column group.
    loadWeight: (_name, index) => `loadW(which, ${index})`,
    norm: norm !== null,
  });
  const G = LINEAR_WG / COLS;
  let b = 0;
  const bind = (decl: string) => `@group(0) @binding(${b++}) ${decl}`;
  const decls = [
    bind(`var<storage, read> x: array<${L.t}>;`),
    norm ? bind(`var<storage, read> lnw: array<${L.t}>;`) : "",
    bind(`var<storage, read> wq: array<${L.t}>;`),
    bind(`var<storage, read> wk: array<${L.t}>;`),
    bind(`var<storage, read> wv: array<${L.t}>;`),
    spec.rope ? bind(`var<storage, read> ropeTable: array<vec2f>;`) : "",
    bind(`var<storage, read> state: array<u32>;`),
    bind(`var<storage, read_write> q: array<f32>;`),
    bind(`var<storage, read_write> kCache: array<f32>;`),
    bind(`var<storage, read_write> vCache: array<f32>;`),
  ].filter(Boolean).join("\n");
  const at = (s: string, cc: string) => `red[${s} * ${rb * LINEAR_WG}u + r * ${LINEAR_WG}u + ${cc} * ${G}u]`;
  const scale = norm ? rmsNormScale(at(String(gemv.slots - 1), "c"), d, norm.eps) : "1.0";
  // Pairs (2i, 2i+1) of a head are neighbouring columns of one workgroup (COLS is even, d is even).
  const rope = spec.rope
    ? `if (which < 2u) {
      let partner = ${at("0u", "(c ^ 1u)")} * rs;
      let cs = ropeTable[min(p, ${maxLen - 1}u) * ${hd / 2}u + (i / 2u)];
      y = select(partner * cs.y + y * cs.x, y * cs.x - partner * cs.y, (i & 1u) == 0u);
    }`
    : "";
  const grid = foldGrid([Math.ceil((3 * d) / COLS), blocks]);
  const flops = rows * 3 * d * (2 * d + 1) + (norm ? rows * (3 * d + 3) : 0) + (spec.rope ? rows * 6 * d : 0);
  return {
    name: "decode_qkv",
    workgroups: grid.workgroups,
    cost: {
      flops,
      bytes: (3 * d * d + rows * d + (norm ? d : 0) + (spec.rope ? rows * hd : 0) + rows + 3 * rows * d) *
        ELEMENT_BYTES,
    },
    source: `${decls}
${gemv.decls}
fn loadW(which: u32, index: u32) -> ${L.t} {
  if (which == 0u) { return wq[index]; }
  if (which == 1u) { return wk[index]; }
  return wv[index];
}
@compute @workgroup_size(${LINEAR_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${guard(grid)}  let t = lid.x;
  let c = t / ${G}u;
  let g = t % ${G}u;
  let n = min(${grid.index[0]} * ${COLS}u + c, ${3 * d - 1}u);
  let which = n / ${d}u;
  let col = n % ${d}u;
  let b0 = ${grid.index[1]} * ${rb}u;
  let wrow = col * ${d / L.w}u;
${gemv.body}
  let r = g;
  let row = b0 + r;
  if (r < ${rb}u && row < ${rows}u && ${grid.index[0]} * ${COLS}u + c < ${3 * d}u) {
    let rs = ${scale};
    let p = state[row * ${STATE_WORDS}u];
    let h = col / ${hd}u;
    let i = col % ${hd}u;
    var y = ${at("0u", "c")} * rs;
    ${rope}
    if (which == 0u) {
      q[row * ${d}u + col] = y;
    } else if (p < ${maxLen}u) {
      let dst = ((row * ${heads}u + h) * ${maxLen}u + p) * ${hd}u + i;
      if (which == 1u) { kCache[dst] = y; } else { vCache[dst] = y; }
    }
  }
}
`,
  };
}

/** Threads of the decode attention kernel. */
const ATTN_WG = 256;
/** Keys whose scores a workgroup holds at once (8 KiB); longer caches are walked in tiles with an online softmax. */
export const DECODE_ATTENTION_TILE = 2048;

/**
 * Attention of one query per (sequence, head) against the first `min(pos + 1, maxLen)` rows of the caches, with
 * `pos` read from `state`: the length is dynamic, so the kernel compiles once. Scores are scaled by
 * 1/sqrt(headDim) as in the training attention. Keys are taken in tiles of `tile` (default
 * {@linkcode DECODE_ATTENTION_TILE}) with a running maximum and sum, so any context length works. Bindings: q
 * (rows, dModel), kCache, vCache (rows, heads, maxLen, headDim), state, out (rows, dModel) with heads merged.
 * Grid: (heads, rows). Cost, for a full cache (the length is read on the GPU, so this is the most a launch does):
 * FlashAttention's 4 headDim FLOPs per (query, key) pair; q, both caches and the positions read, out written once.
 *
 * @example
 * ```ts
 * import { decodeAttentionKernel } from "./decode.ts"; // kernels are internal: not exported by the package
 * const k = decodeAttentionKernel({ rows: 1, heads: 16, headDim: 32, maxLen: 256 });
 * if (k.workgroups[0] !== 16) throw new Error(`${k.workgroups}`); // one workgroup per head
 * ```
 */
export function decodeAttentionKernel(
  spec: { rows: number; heads: number; headDim: number; maxLen: number; tile?: number },
): KernelSource {
  const { rows, heads, headDim: hd, maxLen } = spec;
  const tile = Math.min(spec.tile ?? DECODE_ATTENTION_TILE, maxLen);
  checkPositive("decodeAttentionKernel", { rows, heads, headDim: hd, maxLen, tile });
  if (hd > ATTN_WG) throw new RangeError(`decodeAttentionKernel: headDim ${hd} exceeds ${ATTN_WG}`);
  const d = heads * hd;
  const groups = Math.floor(ATTN_WG / hd); // phase 2: `groups` threads per output dim split the keys
  const L = lanes(hd);
  const hv = hd / L.w;
  const dots = Array.from({ length: hv }, (_, i) => L.dot(`qs[${i}]`, `kCache[kb + ${i}u]`)).join(" + ");
  const grid = foldGrid([heads, rows]);
  return {
    name: "decode_attention",
    workgroups: grid.workgroups,
    cost: {
      flops: 4 * rows * heads * maxLen * hd,
      bytes: (2 * rows * d + 2 * rows * heads * maxLen * hd + rows) * ELEMENT_BYTES,
    },
    loops: {
      iterations: Math.ceil(maxLen / tile) * (2 * Math.ceil(tile / ATTN_WG) + Math.ceil(tile / groups) + 1) + groups,
      of: `a cache of ${maxLen}`,
    },
    source: `@group(0) @binding(0) var<storage, read> q: array<${L.t}>;
@group(0) @binding(1) var<storage, read> kCache: array<${L.t}>;
@group(0) @binding(2) var<storage, read> vCache: array<f32>;
@group(0) @binding(3) var<storage, read> state: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
var<workgroup> qs: array<${L.t}, ${hv}>;
var<workgroup> sc: array<f32, ${tile}>;
var<workgroup> red: array<f32, ${ATTN_WG}>;
@compute @workgroup_size(${ATTN_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${guard(grid)}  let h = ${grid.index[0]};
  let b = ${grid.index[1]};
  let len = min(state[b * ${STATE_WORDS}u] + 1u, ${maxLen}u);
  let base = (b * ${heads}u + h) * ${maxLen}u;
  if (lid.x < ${hv}u) { qs[lid.x] = q[(b * ${d}u + h * ${hd}u) / ${L.w}u + lid.x] * ${f32Literal(1 / Math.sqrt(hd))}; }
  workgroupBarrier();
  // Phase 2 layout: thread (grp, i) sums p_j v_j[i] over keys j = grp, grp + ${groups}, ... of each tile.
  let i = lid.x % ${hd}u;
  let grp = lid.x / ${hd}u;
  var acc = 0.0;
  var mRun = bitcast<f32>(0xff800000u);
  var lRun = 0.0;
  for (var t0 = 0u; t0 < len; t0 += ${tile}u) {
    let tn = min(len - t0, ${tile}u);
    var mloc = bitcast<f32>(0xff800000u);
    for (var j = lid.x; j < tn; j += ${ATTN_WG}u) {
      let kb = (base + t0 + j) * ${hv}u;
      let s = ${dots};
      sc[j] = s;
      mloc = max(mloc, s);
    }
${workgroupReduce("max", "mloc", "mt", ATTN_WG).replace(/^/gm, "  ")}
    // Rescale what earlier tiles accumulated to the new maximum (exp(-inf) = 0 before the first tile).
    let mNew = max(mRun, mt);
    let corr = exp(mRun - mNew);
    var lloc = 0.0;
    for (var j = lid.x; j < tn; j += ${ATTN_WG}u) {
      let e = exp(sc[j] - mNew);
      sc[j] = e;
      lloc += e;
    }
${workgroupReduce("sum", "lloc", "lt", ATTN_WG).replace(/^/gm, "  ")}
    lRun = lRun * corr + lt;
    acc *= corr;
    if (grp < ${groups}u) {
      for (var j = grp; j < tn; j += ${groups}u) { acc += sc[j] * vCache[(base + t0 + j) * ${hd}u + i]; }
    }
    mRun = mNew;
    workgroupBarrier();
  }
  red[lid.x] = acc;
  workgroupBarrier();
  if (lid.x < ${hd}u) {
    var total = 0.0;
    for (var s = 0u; s < ${groups}u; s++) { total += red[s * ${hd}u + lid.x]; }
    out[b * ${d}u + h * ${hd}u + lid.x] = total / lRun;
  }
}
`,
  };
}

/**
 * Picks each sequence's last prompt row out of prefill logits: `out[b] = logits[b, state[b].pos - 1]`.
 * Bindings: logits (rows, seq, vocab), state, out (rows, vocab). Cost: no FLOPs; a row of logits read and written
 * per sequence, and its position.
 *
 * @example
 * ```ts
 * import { lastRowsKernel } from "./decode.ts"; // kernels are internal: not exported by the package
 * const k = lastRowsKernel(2, 8, 100);
 * if (k.name !== "decode_last_rows" || k.workgroups[0] !== 1) throw new Error(`${k.name} ${k.workgroups}`);
 * ```
 */
export function lastRowsKernel(rows: number, seq: number, vocab: number): KernelSource {
  checkPositive("lastRowsKernel", { rows, seq, vocab });
  const n = rows * vocab;
  const grid = flatGrid(Math.ceil(n / 256));
  return {
    name: "decode_last_rows",
    workgroups: grid.workgroups,
    cost: { flops: 0, bytes: (2 * n + rows) * ELEMENT_BYTES },
    source: `@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> state: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ${grid.index} * 256u + lid.x;
  if (i >= ${n}u) { return; }
  let b = i / ${vocab}u;
  let t = clamp(state[b * ${STATE_WORDS}u], 1u, ${seq}u) - 1u;
  out[i] = logits[(b * ${seq}u + t) * ${vocab}u + i % ${vocab}u];
}
`,
  };
}

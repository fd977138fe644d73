/**
 * Fused causal attention (FlashAttention-2 style) for head dims that are a multiple of 4, up to 64.
 *
 * Why: the composite `softmax(q k^T) v` writes and re-reads the (T, T) score matrix per head in forward and
 * backward; at CS336's TinyStories shape that is 134 MB per layer and dominated the layer's time (GPU timestamps on
 * the H100, bench/RESULTS.md). These kernels keep scores in workgroup memory and registers (only the dK/dV kernel
 * under `dq: "scores"` writes dS out, for the backward's dQ product):
 *
 * - forward: a workgroup owns a block of query rows of one (batch, head), one thread per row (or two, see
 *   {@linkcode AttentionVariant}); it streams key/value blocks through workgroup memory, with the online softmax
 *   (running max and sum), and writes the output and the log-sum-exp of each row for the backward.
 * - backward dQ: the same layout, recomputing probabilities from the saved log-sum-exp.
 * - backward dK, dV: a workgroup owns a group of key rows, one thread per key (or two), and streams query tiles.
 * - backward dQ from saved scores (`dq: "scores"`): the dK/dV kernel also writes dS (Tq x Tk floats per head, for
 *   the backward only), and dQ = dS K is a tiled product of it: no score is computed twice, which at GPT-2 small's
 *   shape made dQ 3 times faster than recomputing S and dP in a dQ kernel (bench/RESULTS.md).
 * - register-tiled variants of all three (`forward`, `dq`, `dkv` set to "flash"): a workgroup owns 32 rows of one
 *   side of the scores and each thread a block of every score tile, so that no thread holds a whole row of operands
 *   and accumulators (at head dim 64 the row dK/dV kernel's 256 floats a thread are past the register file).
 *   32-row tiles give a thread a 4 x 4 block (4 x 2 with 128 threads) and operands are staged row-major, so that
 *   each vector read from workgroup memory feeds 8 multiply-adds of the scores: smaller blocks leave a kernel bound
 *   by those reads (the matmul kernels are bound by arithmetic).
 *
 * Layouts: `q` has Tq positions, `k` and `v` Tk, all contiguous, in one of two layouts chosen by `spec.heads`:
 * (BH, T, d) when it is 1, or the projections' own (B, T, H, d) when it is H, where row (b, h, t) starts at element
 * `((b*T + t)*H + h)*d` (so the model needs no head permutes). Outputs and gradients come in the layout of their
 * inputs; the log-sum-exp and delta hold one float per query row in the same order ((BH, Tq) or (B, Tq, H)). With
 * `spec.packed`, q, k and v are the three parts of one (B, T, 3, H, d) tensor (a fused q/k/v projection), read in
 * place through one binding, and the backward writes their gradients into the parts of one tensor of that shape.
 * Query i sees key j when `j <= i + (Tk - Tq)` (causal) or always (non-causal).
 *
 * @module
 */
import {
  type Binding,
  bindings,
  ELEMENT_BYTES,
  f32Literal,
  flatGrid,
  foldGrid,
  type KernelCost,
  type KernelSource,
  memoized,
  read,
  readWrite,
} from "./common.ts";
import { ropePairs } from "./rope.ts";

/** Shape of an attention problem. */
export interface AttentionSpec {
  /** Batch times heads. */
  bh: number;
  /** Query positions. */
  tq: number;
  /** Key positions. */
  tk: number;
  /** Head dim (multiple of 4, at most 64). */
  d: number;
  /** Score scale, usually 1/sqrt(d). */
  scale: number;
  /** Causal masking. */
  causal: boolean;
  /**
   * Heads interleaved in each position: 1 for (BH, T, d) tensors, H for (B, T, H, d) ones (`bh` is then B*H, and
   * head `bh` is batch `bh / H`, head `bh % H`).
   */
  heads: number;
  /**
   * q, k, v are the three parts of one (B, T, 3, H, d) tensor (a fused q/k/v projection's output), bound once:
   * row (b, h, t) of part p (0 q, 1 k, 2 v) starts at element `(((b*T + t)*3 + p)*H + h)*d`. Needs `heads` = H and
   * Tq = Tk. The output, log-sum-exp and delta keep the unpacked (B, T, H) row order; the backward kernels write
   * dq (part 0) and dk, dv (parts 1, 2) into one gradient of the packed shape, bound once.
   */
  packed?: boolean;
  /**
   * q and k were rotated by RoPE before attention (packed: in the q/k/v product's epilogue), and the backward
   * kernels store the gradient of the values before that rotation, each dQ and dK vector rotated back as it is stored
   * (the `rope_backward` pass folded in). See {@linkcode AttentionUnrope}.
   */
  unrope?: AttentionUnrope;
}

/**
 * Where the backward kernels find the rotation to undo (`AttentionSpec.unrope`): the position of row (b, h, t) is
 * `positions[t % cycle]` (cycle > 0: one list for every sequence) or `positions[b * T + t]` (cycle 0), an index into
 * a {@linkcode ropeTable} of `tableRows` rows. Positions outside the table give NaN, as the RoPE kernel's do.
 * Bindings after the kernel's own: positions (i32), the table (read as vec4f).
 */
export interface AttentionUnrope {
  cycle: number;
  tableRows: number;
}

/** The bindings `spec.unrope` adds to a backward kernel. */
function unropeBindings(spec: AttentionSpec): Binding[] {
  return spec.unrope ? [read("positions", "i32"), read("ropeTable", "vec4f")] : [];
}

/** The WGSL function `unrope(v, t, col, bh)`: vector `col` of head `bh`'s dQ or dK row `t`, rotated back. */
function unropeFunction(spec: AttentionSpec): string {
  if (!spec.unrope) return "";
  const { cycle, tableRows } = spec.unrope, D4 = spec.d / 4;
  const index = cycle > 0 ? `t % ${cycle}u` : `bh / ${spec.heads}u * ${spec.tq}u + t`;
  return `
fn unrope(v: vec4f, t: u32, col: u32, bh: u32) -> vec4f {
  let p = positions[${index}];
  if (p < 0 || p >= ${tableRows}) { return vec4f(bitcast<f32>(0x7fc00000u)); }
  let cs = ropeTable[u32(p) * ${D4}u + col];
  let c = cs.xz;
  let s = -cs.yw;
  return ${ropePairs("v", "c", "s")};
}`;
}

/** WGSL of a dQ or dK vector `v` (column `col` of position `t`) as stored: rotated back under `spec.unrope`. */
function unroped(spec: AttentionSpec, v: string, t: string, col: string): string {
  return spec.unrope ? `unrope(${v}, ${t}, ${col}, bh)` : v;
}

/** What one of the fused kernels is generated for: the problem and the work split. */
export interface AttentionKernelSpec extends AttentionSpec {
  variant: AttentionVariant;
}

/**
 * How the fused kernels split their work between threads. {@linkcode DEFAULT_ATTENTION_VARIANT} is the measured
 * one; the others exist to be timed against it on the GPU (bench/gpu.ts, `--only attention`).
 */
export interface AttentionVariant {
  /**
   * Query rows each thread of the forward and dQ kernels owns. With 2, both rows share every K/V read from
   * workgroup memory (half the reads per FLOP), for twice the registers (at d = 64 that may spill).
   */
  rowsPerThread: 1 | 2;
  /** Query rows per workgroup of the forward and dQ kernels; threads = queryBlock / rowsPerThread. */
  queryBlock: 64 | 128;
  /** Key rows per block that the forward and dQ kernels stage through workgroup memory. */
  keyBlock: 32 | 64;
  /** Key rows each thread of the dK/dV kernel owns; with 2, both share every staged query and dO read. */
  keysPerThread: 1 | 2;
  /** Key rows per workgroup of the dK/dV kernel; threads = keyGroup / keysPerThread. */
  keyGroup: 64 | 128;
  /** Query rows per tile that the dK/dV kernel stages through workgroup memory. */
  queryTile: 32 | 64;
  /**
   * Unroll the loops over a staged block's keys (forward, dQ) and queries (dK/dV) in the generated code: every
   * workgroup-memory index becomes a constant (no bounds clamp or index arithmetic per read, as in the matmul
   * kernels), and the forward keeps a block's scores in registers instead of workgroup memory. "forward" unrolls
   * only the forward kernel, which unrolling makes faster while it makes the backward kernels slower
   * (bench/RESULTS.md). The ops run "forward" on hardware adapters (`defaultAttentionVariant` in
   * lib/tensor/ops/nn.ts), "none" on software ones, which compile unrolled kernels slowly. The flash kernels unroll
   * their loops (over the head dim and a tile's rows) under "all" only.
   */
  unroll: "none" | "forward" | "all";
  /**
   * The dK/dV kernel's work split: "rows", one key row per thread with the fields above; "flash", register blocks
   * of the score tile per thread (`generateAttentionBackwardFlashKernel`, with `tile`, `flashThreads`, `unroll`).
   */
  dkv: "rows" | "flash";
  /**
   * The dQ kernel's work split, as `dkv`: one query row per thread, or register blocks of the score tile; or
   * "scores": the dK/dV kernel also writes dS to memory, and dQ is its product with K in tiles
   * ({@linkcode generateAttentionBackwardDqFromScoresKernel}), which computes no score twice. dS is `bh x Tq x Tk`
   * floats while the backward runs ({@linkcode savedScoresBytes}).
   */
  dq: "rows" | "flash" | "scores";
  /**
   * The forward kernel's work split: "rows", one query row per thread (with `rowsPerThread`, `queryBlock`,
   * `keyBlock`, `unroll`); "flash", register blocks of the score tile (`generateAttentionForwardFlashKernel`).
   */
  forward: "rows" | "flash";
  /** Rows of the other side (keys, or in the dK/dV kernel queries) the flash kernels stream per tile. */
  tile: 16 | 32;
  /**
   * Which blocks the workgroup indices give first (GPUs start workgroups roughly in index order): "blocks", a head's
   * blocks one after the other; "heavy", under the causal mask, the blocks with the most visible pairs of every head
   * first, so that the last workgroups to start are the shortest.
   */
  order: "blocks" | "heavy";
  /**
   * How the row kernels (forward, dQ and dK/dV with `forward`, `dq` or `dkv`: "rows") stage each key block or query
   * tile: "none", loaded and stored at the top of the block; "prefetch", the next block loaded into registers while
   * this one is computed.
   */
  rowPipeline: "none" | "prefetch";
  /**
   * How the flash backward kernels stage each streamed tile: "none", loaded and stored at the top of the tile;
   * "prefetch", the next tile loaded into registers while this one is computed (stored after its last barrier).
   */
  flashPipeline: "none" | "prefetch";
  /**
   * Threads per workgroup of the flash kernels: 64 give each thread a 4 x (tile / 8) block of every score tile,
   * 128 a 4 x (tile / 16) one (more threads to hide latency, fewer dot products per workgroup-memory read).
   */
  flashThreads: 64 | 128;
  /**
   * Query rows a workgroup of the dQ-from-scores kernel (`dq: "scores"`) owns; a thread accumulates
   * scoresQueries / 16 of them.
   */
  scoresQueries: 32 | 64 | 128;
  /** Threads a workgroup of the dQ-from-scores kernel: 128 own 8 head-dim columns each, 256 own 4. */
  scoresThreads: 128 | 256;
  /**
   * How the dQ-from-scores kernel's global loads overlap its multiply-adds: "none", load, barrier, compute;
   * "prefetch", the next block of dS and K is loaded into registers while the current one is computed.
   */
  scoresPipeline: "none" | "prefetch";
}

/**
 * The variant the ops use unless told otherwise: one row (key) per thread, 64 query rows and 32-key blocks, 64
 * keys and 32-query tiles. Key blocks of 32 and 64 threads per dK/dV workgroup are what the H100 measured best
 * (32 threads sharing 16 KB of staged queries left it mostly idle: few resident warps per SM).
 */
export const DEFAULT_ATTENTION_VARIANT: Readonly<AttentionVariant> = Object.freeze({
  rowsPerThread: 1,
  queryBlock: 64,
  keyBlock: 32,
  keysPerThread: 1,
  keyGroup: 64,
  queryTile: 32,
  unroll: "none",
  order: "blocks",
  rowPipeline: "none",
  dkv: "rows",
  dq: "rows",
  forward: "rows",
  tile: 16,
  flashPipeline: "none",
  flashThreads: 64,
  scoresQueries: 64,
  scoresThreads: 256,
  scoresPipeline: "none",
});

/**
 * Whether the fused kernels support this head dim.
 *
 * @example
 * ```ts
 * import { fusedAttentionSupports } from "./attention.ts";
 * if (!fusedAttentionSupports(64) || fusedAttentionSupports(96)) throw new Error("head dims up to 64");
 * ```
 */
export function fusedAttentionSupports(d: number): boolean {
  return d % 4 === 0 && d >= 4 && d <= 64;
}

/**
 * Bytes of workgroup memory the largest of the three kernels needs at head dim `d` (the row forward's score scratch
 * and K/V blocks, the row dK/dV kernel's query tiles, or a flash kernel's staged rows and scores), to check a
 * variant against the device's limit.
 *
 * @example
 * ```ts
 * import { attentionWorkgroupBytes, DEFAULT_ATTENTION_VARIANT } from "./attention.ts";
 * const bytes = attentionWorkgroupBytes(32, DEFAULT_ATTENTION_VARIANT);
 * if (bytes !== 16384) throw new Error(`${bytes}`); // within WebGPU's guaranteed 16 KiB
 * ```
 */
export function attentionWorkgroupBytes(d: number, variant: AttentionVariant): number {
  return Math.max(...ATTENTION_KERNELS.map((kernel) => attentionKernelBytes(d, variant, kernel)));
}

/** The three fused kernels, named as the {@linkcode AttentionVariant} fields that choose their work split. */
export type AttentionKernel = "forward" | "dq" | "dkv";

/** Every {@linkcode AttentionKernel}. */
export const ATTENTION_KERNELS: readonly AttentionKernel[] = ["forward", "dq", "dkv"];

/**
 * Bytes of workgroup memory of one of the fused kernels at head dim `d` under `variant`.
 *
 * @example
 * ```ts
 * import { attentionKernelBytes, DEFAULT_ATTENTION_VARIANT } from "./attention.ts";
 * const flash = { ...DEFAULT_ATTENTION_VARIANT, forward: "flash", tile: 32 } as const;
 * const bytes = attentionKernelBytes(64, flash, "forward");
 * if (bytes !== 31232) throw new Error(`${bytes}`); // within a 32 KiB limit
 * ```
 */
export function attentionKernelBytes(d: number, variant: AttentionVariant, kernel: AttentionKernel): number {
  if (variant[kernel] === "flash") return flashBytes(d, variant, kernel);
  if (kernel === "dq" && variant.dq === "scores") return scoresTileBytes(d, variant);
  if (kernel === "dkv") return 2 * 4 * variant.queryTile * d + 2 * 4 * variant.queryTile;
  // The row kernels stage key blocks; unrolled, the forward keeps its scores in registers (no score scratch), and
  // the dQ kernel has none.
  const scores = kernel === "forward" && variant.unroll === "none" ? 4 * variant.keyBlock * variant.queryBlock : 0;
  return scores + 2 * 4 * variant.keyBlock * d;
}

const NEG_INF = f32Literal(-Infinity);

function vecs(n: number, f: (i: number) => string, sep = "\n"): string {
  return Array.from({ length: n }, (_, i) => f(i)).join(sep);
}

function pairs(n: number, f: (i: number) => [string, string]): [string, string][] {
  return Array.from({ length: n }, (_, i) => f(i));
}

/**
 * WGSL statements (at `indent`) that declare `name` as the sum of `dot(a_i, b_i)` over `terms`: one vector
 * multiply-add per pair into `<name>_parts` and one horizontal sum. `dot(a, b) + ...` costs a multiply, three
 * multiply-adds and an add per pair, each sum waiting on the last.
 */
function letDotSum(name: string, terms: [string, string][], indent: string): string {
  const [[a0, b0], ...rest] = terms;
  const v = rest.reduce((acc, [a, b]) => `fma(${a}, ${b}, ${acc})`, `${a0} * ${b0}`);
  return `let ${name}_parts = ${v};\n${indent}let ${name} = ${horizontalSum(`${name}_parts`)};`;
}

/** WGSL of the sum of a vec4's components, as two independent adds and a third. */
function horizontalSum(v: string): string {
  return `(${v}.x + ${v}.y) + (${v}.z + ${v}.w)`;
}

/**
 * Name suffix of the values of a thread's row (or key) `u` when it owns `n`: none for one, so that the default
 * variant's WGSL reads as before, `_0`, `_1` for two.
 */
function suffix(n: number): (u: number) => string {
  return (u) => (n === 1 ? "" : `_${u}`);
}

/** WGSL of the flat row index of position `t` (an expression) of head `bh` in a tensor of `T` positions. */
function rowIndex(spec: AttentionSpec, t: string, T: number): string {
  if (spec.heads === 1) return `bh * ${T}u + ${t}`;
  return `(bh / ${spec.heads}u * ${T}u + ${t}) * ${spec.heads}u + bh % ${spec.heads}u`;
}

/**
 * WGSL of the flat row index of position `t` of head `bh` in q, k or v (`part` 0, 1, 2): {@linkcode rowIndex} for
 * separate tensors, or the part's row in the packed one.
 */
function partRow(spec: AttentionSpec, part: 0 | 1 | 2, t: string, T: number): string {
  if (!spec.packed) return rowIndex(spec, t, T);
  const H = spec.heads, partOffset = part === 0 ? "" : ` + ${part * H}u`;
  return `(bh / ${H}u * ${T}u + ${t}) * ${3 * H}u${partOffset} + bh % ${H}u`;
}

/**
 * The arrays q, k and v are read from (all `qkv` when packed), and the element offset of a v row from the k row of
 * the same position and head (packed: the next part, H rows on; else the same index into `v`).
 */
function qkvArrays(spec: AttentionSpec): { q: string; k: string; v: string; vShift: string } {
  if (!spec.packed) return { q: "q", k: "k", v: "v", vShift: "" };
  return { q: "qkv", k: "qkv", v: "qkv", vShift: ` + ${(spec.heads * spec.d) / 4}u` };
}

/** The q, k, v bindings, first of every fused kernel's (one, `qkv`, when packed). */
function qkvBuffers(spec: AttentionSpec): Binding[] {
  if (spec.packed) return [read("qkv", "vec4f")];
  return [read("q", "vec4f"), read("k", "vec4f"), read("v", "vec4f")];
}

function visible(spec: AttentionSpec, key: string, query: string): string {
  const off = spec.tk - spec.tq;
  const inRange = `${key} < ${spec.tk}u && ${query} < ${spec.tq}u`;
  return spec.causal ? `${inRange} && ${key} <= ${query} + ${off}u` : inRange;
}

/** The query-side kernels' (forward and dQ) thread layout. */
interface QuerySplit {
  /** Rows per thread. */
  R: number;
  /** Rows per workgroup. */
  BR: number;
  /** Keys per staged block. */
  BC: number;
  /** Threads per workgroup. */
  threads: number;
  /** Suffix of row u's values. */
  sfx: (u: number) => string;
  /** Row u of this thread, as an offset from the block's first row. */
  local: (u: number) => string;
}

function querySplit(variant: AttentionVariant): QuerySplit {
  const R = variant.rowsPerThread, BR = variant.queryBlock, threads = BR / R;
  // Rows lid.x and lid.x + threads: a thread's score scratch entries stay contiguous across the workgroup.
  return {
    R,
    BR,
    BC: variant.keyBlock,
    threads,
    sfx: suffix(R),
    local: (u) => (u === 0 ? "lid.x" : `lid.x + ${u * threads}u`),
  };
}

/**
 * WGSL that stages key/value block `kb` (BC rows) of head `bh` into workgroup memory `Ks`/`Vs` with all threads,
 * then waits for the whole workgroup. Rows past the end repeat the last row; the masks ignore them.
 */
function stageKeyBlock(spec: AttentionSpec, qs: QuerySplit): string {
  const D4 = spec.d / 4, arr = qkvArrays(spec);
  return `    for (var e = lid.x; e < ${qs.BC * D4}u; e += ${qs.threads}u) {
      let row = kb * ${qs.BC}u + e / ${D4}u;
      let src = (${partRow(spec, 1, `min(row, ${spec.tk - 1}u)`, spec.tk)}) * ${D4}u + e % ${D4}u;
      Ks[e] = ${arr.k}[src];
      Vs[e] = ${arr.v}[src${arr.vShift}];
    }
    workgroupBarrier();`;
}

/**
 * The key/value staging of a query-block kernel's loop over key blocks `kb` into `Ks`/`Vs` (`variant.rowPipeline`):
 * "none" stages block kb at the top of each iteration ({@linkcode stageKeyBlock}); "prefetch" loads block kb + 1
 * into registers while block kb is computed ({@linkcode registerStaging}).
 */
function keyBlockStaging(spec: AttentionKernelSpec, qs: QuerySplit): BlockStaging {
  if (spec.variant.rowPipeline === "none") return { declare: "", stage: stageKeyBlock(spec, qs) };
  return registerStaging(qs.threads, [
    stagedRows(spec, "K", qs.BC, (e) => `Ks[${e}]`),
    stagedRows(spec, "V", qs.BC, (e) => `Vs[${e}]`),
  ], { index: "kb", first: "0u", end: "nkb" });
}

/**
 * Loop iterations of a thread of a query-block kernel: per key block, the staging loop and `blockLoops` loops over
 * the block's keys (none when unrolled).
 */
function keyLoops(spec: AttentionSpec, qs: QuerySplit, blockLoops: number): { iterations: number; of: string } {
  const blocks = Math.ceil(spec.tk / qs.BC), staging = Math.ceil((qs.BC * (spec.d / 4)) / qs.threads);
  return { iterations: blocks * (staging + blockLoops * qs.BC + 1), of: `${spec.tk} keys` };
}

/**
 * Reads of key/value vector `i` of staged key `j`: inline for one row per thread (the default's WGSL), else loaded
 * once into `ks<i>`/`vs<i>` by `load` and shared by the rows.
 */
function stagedReads(
  D4: number,
  R: number,
): { load: (names: ("k" | "v")[]) => string; k: (i: number) => string; v: (i: number) => string } {
  const at = (arr: string, i: number) => `${arr}[j * ${D4}u + ${i}u]`;
  if (R === 1) return { load: () => "", k: (i) => at("Ks", i), v: (i) => at("Vs", i) };
  return {
    load: (names) =>
      names.map((n) => vecs(D4, (i) => `      let ${n}s${i} = ${at(n === "k" ? "Ks" : "Vs", i)};`)).join("\n") + "\n",
    k: (i) => `ks${i}`,
    v: (i) => `vs${i}`,
  };
}

/**
 * `for (var <name> = 0u; <name> < count; <name>++) { body }`, or with `unroll` the body `count` times, each copy in
 * its own block with `<name>` a constant (so that indices built from it are constant expressions).
 */
function loop(name: string, count: number, body: string, unroll: boolean): string {
  if (!unroll) {
    return `    for (var ${name} = 0u; ${name} < ${count}u; ${name}++) {
${body}
    }`;
  }
  return Array.from({ length: count }, (_, c) =>
    `    { const ${name} = ${c}u;
${body}
    }`).join("\n");
}

/**
 * Name of the flat row of q of a thread's query row with suffix `s`: `r` (the output's row order, which q shares
 * unless packed) or `rq` (its row in the packed tensor).
 */
function queryRow(spec: AttentionSpec): (s: string) => string {
  return (s) => (spec.packed ? `rq${s}` : `r${s}`);
}

/**
 * The grid of a kernel whose workgroup owns block `name` (of `blocks`) of one head `bh`, and the WGSL that names both.
 * `variant.order` "blocks": a head's blocks in neighbouring workgroups, which share its operands in L2 (`reversed`: the
 * last block first). "heavy", under the causal mask: heads fastest and the blocks with the most visible pairs first
 * (keys' first blocks, `heavy: "first"`; queries' last, "last"), so that the workgroups that start last end soonest.
 */
function headBlocks(
  spec: AttentionKernelSpec,
  name: string,
  blocks: number,
  heavy: "first" | "last",
  reversed = false,
): { workgroups: [number, number, number]; setup: string } {
  const heavyFirst = spec.variant.order === "heavy" && spec.causal;
  const grid = foldGrid(heavyFirst ? [spec.bh, blocks] : [blocks, spec.bh]);
  const guard = grid.guard ? `  ${grid.guard}\n` : "";
  const [b, bh] = heavyFirst ? [grid.index[1], grid.index[0]] : grid.index;
  const last = heavyFirst ? heavy === "last" : reversed;
  return {
    workgroups: grid.workgroups,
    setup: `${guard}  let ${name} = ${last ? `${blocks - 1}u - ` : ""}${b}; let bh = ${bh};`,
  };
}

/**
 * The part both query-block kernels (forward and dQ) share: the K/V staging arrays, each of the thread's query rows
 * `u` (`qi`, flat row `r`, suffixed), its scaled query in registers `q0..`, and `nkb`, the number of key blocks the
 * workgroup needs (causal: its last query sees keys up to qb*BR + BR - 1 + (Tk - Tq)).
 */
function queryBlockPrologue(
  spec: AttentionKernelSpec,
  qs: QuerySplit,
): { shared: string; setup: string; workgroups: [number, number, number] } {
  const D4 = spec.d / 4, off = spec.tk - spec.tq, { BR, BC, sfx } = qs, arr = qkvArrays(spec);
  const grid = headBlocks(spec, "qb", Math.ceil(spec.tq / BR), "last");
  const qRow = queryRow(spec);
  const keyBlocks = Math.ceil(spec.tk / BC);
  const nkb = spec.causal ? `min(${keyBlocks}u, (qb * ${BR}u + ${BR - 1 + off}u) / ${BC}u + 1u)` : `${keyBlocks}u`;
  const row = (u: number) =>
    `  let qi${sfx(u)} = qb * ${BR}u + ${qs.local(u)};
  let r${sfx(u)} = ${rowIndex(spec, `min(qi${sfx(u)}, ${spec.tq - 1}u)`, spec.tq)};${
      spec.packed ? `\n  let rq${sfx(u)} = ${partRow(spec, 0, `min(qi${sfx(u)}, ${spec.tq - 1}u)`, spec.tq)};` : ""
    }
${vecs(D4, (i) => `  let q${i}${sfx(u)} = ${arr.q}[${qRow(sfx(u))} * ${D4}u + ${i}u] * ${f32Literal(spec.scale)};`)}`;
  return {
    shared: `var<workgroup> Ks: array<vec4f, ${BC * D4}>;
var<workgroup> Vs: array<vec4f, ${BC * D4}>;`,
    setup: `${grid.setup}
${vecs(qs.R, row)}
  let nkb = ${nkb};`,
    workgroups: grid.workgroups,
  };
}

/**
 * The (query, key) pairs of one head that attention computes, as FlashAttention counts them: all `tq * tk`, or with
 * the causal mask the visible ones with the diagonal block halved, `tq * (tk - tq) + tq^2 / 2` (for `tq = tk`
 * exactly half: FlashAttention's causal halving).
 *
 * @example
 * ```ts
 * import { attentionPairs } from "./attention.ts";
 * const spec = { bh: 1, tq: 256, tk: 256, d: 32, scale: 1, causal: true, heads: 1 };
 * if (attentionPairs(spec) !== 256 * 256 / 2) throw new Error("causal halves the square");
 * if (attentionPairs({ ...spec, causal: false }) !== 256 * 256) throw new Error("non-causal counts it all");
 * ```
 */
export function attentionPairs(spec: AttentionSpec): number {
  return spec.causal ? spec.tq * (spec.tk - spec.tq) + (spec.tq * spec.tq) / 2 : spec.tq * spec.tk;
}

/**
 * The cost of each fused kernel. FLOPs as FlashAttention counts them: the forward's two matmuls (S = QK^T and PV),
 * 4 d FLOPs per pair, and a backward of 2.5 times that in five matmuls (S recomputed, dV, dP, dQ, dK). The dK/dV
 * kernel is credited four (S, dP, dV, dK) and the dQ kernel one (dQ): the dQ kernel recomputes S and dP as well,
 * and that repeated work is not counted, so its achieved rate is of useful work only. Softmax arithmetic is not
 * counted either (FlashAttention's convention). Bytes: q, k, v (and dO, the log-sum-exp and delta in the backward)
 * read once, the outputs written once.
 */
function fusedAttentionCost(spec: AttentionKernelSpec, kernel: "forward" | "dq" | "dkv"): KernelCost {
  const pairFlops = 2 * spec.bh * attentionPairs(spec) * spec.d;
  const q = spec.bh * spec.tq * spec.d, kv = spec.bh * spec.tk * spec.d, rows = spec.bh * spec.tq;
  if (kernel === "forward") return { flops: 2 * pairFlops, bytes: (2 * q + 2 * kv + rows) * ELEMENT_BYTES };
  const inputs = 2 * q + 2 * kv + 2 * rows; // q, dO, k, v, lse, delta
  if (kernel === "dq") return { flops: pairFlops, bytes: (inputs + q) * ELEMENT_BYTES };
  // Saving dS for the dQ-from-scores kernel writes each visible score once more.
  const saved = spec.variant.dq === "scores" ? spec.bh * attentionPairs(spec) : 0;
  return { flops: 4 * pairFlops, bytes: (inputs + 2 * kv + saved) * ELEMENT_BYTES };
}

/**
 * Bindings: q, k, v (or qkv when packed), out (write), lse (write, one per query row). Grid: (ceil(Tq/queryBlock),
 * BH). Cost: see `fusedAttentionCost`.
 */
function generateAttentionForwardKernel(spec: AttentionKernelSpec): KernelSource {
  if (spec.variant.forward === "flash") return generateAttentionForwardFlashKernel(spec);
  const D4 = spec.d / 4, variant = spec.variant;
  const qs = querySplit(variant), { R, BR, BC, sfx } = qs;
  const pro = queryBlockPrologue(spec, qs);
  const rows = (f: (s: string, u: number) => string) => vecs(R, (u) => f(sfx(u), u));
  const kv = stagedReads(D4, R);
  const unroll = variant.unroll !== "none";
  // A block's scores: workgroup memory indexed by thread, or (unrolled, constant index) a private array in registers.
  const score = (s: string, u: number) => (unroll ? `sreg${s}[j]` : `S[j * ${BR}u + ${qs.local(u)}]`);
  const staging = keyBlockStaging(spec, qs);
  return {
    name: "attention_forward",
    workgroups: pro.workgroups,
    cost: fusedAttentionCost(spec, "forward"),
    loops: keyLoops(spec, qs, unroll ? 0 : 2),
    source: `${bindings([...qkvBuffers(spec), readWrite("o", "vec4f"), readWrite("lse", "f32")])}
${pro.shared}
${unroll ? "" : `var<workgroup> S: array<f32, ${BC * BR}>;`}
@compute @workgroup_size(${qs.threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${pro.setup}
${rows((s) => vecs(D4, (i) => `  var o${i}${s} = vec4f(0.0);`))}
${rows((s) => `  var m${s} = ${NEG_INF};\n  var l${s} = 0.0;`)}
${unroll ? rows((s) => `  var sreg${s}: array<f32, ${BC}>;`) : ""}
${staging.declare}  for (var kb = 0u; kb < nkb; kb++) {
${staging.stage}
${rows((s) => `    var mb${s} = m${s};`)}
${
      loop(
        "j",
        BC,
        `      let kj = kb * ${BC}u + j;
${kv.load(["k"])}${
          rows((s, u) =>
            `      ${letDotSum(`s${s}`, pairs(D4, (i) => [`q${i}${s}`, kv.k(i)]), "      ")}
      let sv${s} = select(${NEG_INF}, s${s}, ${visible(spec, "kj", `qi${s}`)});
      ${score(s, u)} = sv${s};
      mb${s} = max(mb${s}, sv${s});`
          )
        }`,
        unroll,
      )
    }
    // Rescale what was accumulated under the old maximum (nothing visible yet: keep the factor at 1).
${
      rows((s) =>
        `    let corr${s} = select(exp(m${s} - mb${s}), 1.0, mb${s} == ${NEG_INF});
    l${s} *= corr${s};
${vecs(D4, (i) => `    o${i}${s} *= corr${s};`)}`
      )
    }
${
      loop(
        "j",
        BC,
        `${kv.load(["v"])}${
          rows((s, u) =>
            `      let sv${s} = ${score(s, u)};
      let p${s} = select(exp(sv${s} - mb${s}), 0.0, sv${s} == ${NEG_INF});
      l${s} += p${s};
${vecs(D4, (i) => `      o${i}${s} += p${s} * ${kv.v(i)};`)}`
          )
        }`,
        unroll,
      )
    }
${rows((s) => `    m${s} = mb${s};`)}
    workgroupBarrier();
  }
${
      rows((s) =>
        `  if (qi${s} < ${spec.tq}u) {
    let inv = select(1.0 / l${s}, 0.0, l${s} == 0.0);
    let orow = (${rowIndex(spec, `qi${s}`, spec.tq)}) * ${D4}u;
${vecs(D4, (i) => `    o[orow + ${i}u] = o${i}${s} * inv;`)}
    lse[${rowIndex(spec, `qi${s}`, spec.tq)}] = m${s} + log(l${s});
  }`
      )
    }
}
`,
  };
}

/**
 * dQ = scale * sum_j dS_ij k_j with dS = P (dP - D), dP = dO v^T, P recomputed from the log-sum-exp.
 * Bindings: q, k, v (or qkv), dout, lse, delta (rowsum(dO * O)), dq (write; packed: the packed gradient, of which
 * it writes part 0). Grid: (ceil(Tq/queryBlock), BH).
 */
function generateAttentionBackwardDqKernel(spec: AttentionKernelSpec): KernelSource {
  if (spec.variant.dq === "flash") return generateAttentionBackwardFlashKernel({ ...spec, side: "queries" });
  if (spec.variant.dq === "scores") return generateAttentionBackwardDqFromScoresKernel(spec);
  const D4 = spec.d / 4, variant = spec.variant, qRow = queryRow(spec);
  const qs = querySplit(variant), { R, BC, sfx } = qs;
  const pro = queryBlockPrologue(spec, qs);
  const rows = (f: (s: string, u: number) => string) => vecs(R, (u) => f(sfx(u), u));
  const kv = stagedReads(D4, R), staging = keyBlockStaging(spec, qs);
  return {
    name: "attention_backward_dq",
    workgroups: pro.workgroups,
    cost: fusedAttentionCost(spec, "dq"),
    loops: keyLoops(spec, qs, variant.unroll === "all" ? 0 : 1),
    source: `${
      bindings([
        ...qkvBuffers(spec),
        read("dout", "vec4f"),
        read("lse", "f32"),
        read("delta", "f32"),
        readWrite("dq", "vec4f"),
        ...unropeBindings(spec),
      ])
    }${unropeFunction(spec)}
${pro.shared}
@compute @workgroup_size(${qs.threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${pro.setup}
${rows((s) => vecs(D4, (i) => `  let g${i}${s} = dout[r${s} * ${D4}u + ${i}u];`))}
${rows((s) => vecs(D4, (i) => `  var dq${i}${s} = vec4f(0.0);`))}
${rows((s) => `  let rowLse${s} = lse[r${s}];\n  let rowDelta${s} = delta[r${s}];`)}
${staging.declare}  for (var kb = 0u; kb < nkb; kb++) {
${staging.stage}
${
      loop(
        "j",
        BC,
        `      let kj = kb * ${BC}u + j;
${kv.load(["k", "v"])}${
          rows((s) =>
            `      ${letDotSum(`s${s}`, pairs(D4, (i) => [`q${i}${s}`, kv.k(i)]), "      ")}
      let p${s} = select(0.0, exp(s${s} - rowLse${s}), ${visible(spec, "kj", `qi${s}`)});
      ${letDotSum(`dp${s}`, pairs(D4, (i) => [`g${i}${s}`, kv.v(i)]), "      ")}
      let ds${s} = p${s} * (dp${s} - rowDelta${s});
${vecs(D4, (i) => `      dq${i}${s} += ds${s} * ${kv.k(i)};`)}`
          )
        }`,
        variant.unroll === "all",
      )
    }
    workgroupBarrier();
  }
${
      rows((s) =>
        `  if (qi${s} < ${spec.tq}u) {
${
          vecs(D4, (i) =>
            `    dq[${qRow(s)} * ${D4}u + ${i}u] = ${
              unroped(spec, `dq${i}${s} * ${f32Literal(spec.scale)}`, `qi${s}`, `${i}u`)
            };`)
        }
  }`
      )
    }
}
`,
  };
}

/**
 * The query tile staging of the row dK/dV kernel's loop over tiles `qb` of `n` queries into `Qs`/`Gs`/`Ls`/`Ds`: q,
 * dO, the log-sum-exp and delta, at the top of each tile ("none", `variant.rowPipeline`) or loaded one tile ahead
 * into registers ("prefetch", {@linkcode registerStaging}).
 */
function queryTileStaging(spec: AttentionKernelSpec, tiles: BlockLoop, n: number, threads: number): BlockStaging {
  const D4 = spec.d / 4, last = spec.tq - 1;
  if (spec.variant.rowPipeline === "none") {
    return stagedInLoop(`    for (var e = lid.x; e < ${n * D4}u; e += ${threads}u) {
      let row = qb * ${n}u + e / ${D4}u;
      let src = (${rowIndex(spec, `min(row, ${last}u)`, spec.tq)}) * ${D4}u + e % ${D4}u;${
      spec.packed
        ? `
      Qs[e] = qkv[(${partRow(spec, 0, `min(row, ${last}u)`, spec.tq)}) * ${D4}u + e % ${D4}u];`
        : `
      Qs[e] = q[src];`
    }
      Gs[e] = dout[src];
    }
    for (var e = lid.x; e < ${n}u; e += ${threads}u) {
      let row = ${rowIndex(spec, `min(qb * ${n}u + e, ${last}u)`, spec.tq)};
      Ls[e] = lse[row];
      Ds[e] = delta[row];
    }`);
  }
  const stat = (array: string) => (e: string, b: string) =>
    `${array}[${rowIndex(spec, `min(${b} * ${n}u + ${e}, ${last}u)`, spec.tq)}]`;
  return registerStaging(threads, [
    stagedRows(spec, "Q", n, (e) => `Qs[${e}]`),
    stagedRows(spec, "G", n, (e) => `Gs[${e}]`),
    { total: n, load: stat("lse"), at: (e) => `Ls[${e}]`, scalar: true },
    { total: n, load: stat("delta"), at: (e) => `Ds[${e}]`, scalar: true },
  ], tiles);
}

/**
 * dV = sum_i P_ij dO_i and dK = scale * sum_i dS_ij q_i, one thread per key row (or two).
 * Bindings: q, k, v, dout, lse, delta, dk (write), dv (write); packed: qkv, dout, lse, delta, and the packed gradient
 * (write), of which it writes parts 1 and 2. Grid: (ceil(Tk/keyGroup), BH).
 */
function generateAttentionBackwardDkvKernel(spec: AttentionKernelSpec): KernelSource {
  if (spec.variant.dkv === "flash") return generateAttentionBackwardFlashKernel({ ...spec, side: "keys" });
  const D4 = spec.d / 4, off = spec.tk - spec.tq, variant = spec.variant, arr = qkvArrays(spec);
  // Packed, dk and dv are parts of one buffer: one binding (two writable bindings of a buffer may not alias).
  const dkName = spec.packed ? "dqkv" : "dk", dvName = spec.packed ? "dqkv" : "dv";
  const outputs = spec.packed ? [readWrite("dqkv", "vec4f")] : [readWrite("dk", "vec4f"), readWrite("dv", "vec4f")];
  const KPT = variant.keysPerThread, KEYS = variant.keyGroup, QUERIES = variant.queryTile, threads = KEYS / KPT;
  const sfx = suffix(KPT);
  const keys = (f: (s: string, u: number) => string) => vecs(KPT, (u) => f(sfx(u), u));
  const queryBlocks = Math.ceil(spec.tq / QUERIES);
  // Causal: the first query that sees key kb*KEYS is kb*KEYS - off.
  const qb0 = spec.causal ? `select(0u, (kb * ${KEYS}u - ${off}u) / ${QUERIES}u, kb * ${KEYS}u > ${off}u)` : "0u";
  const staging = queryTileStaging(spec, { index: "qb", first: qb0, end: `${queryBlocks}u` }, QUERIES, threads);
  // Staged query (and dO) vector c of tile row i: inline for one key per thread, else loaded once for both keys.
  const at = (arr: string, c: number) => `${arr}[i * ${D4}u + ${c}u]`;
  const Q = (c: number) => (KPT === 1 ? at("Qs", c) : `qs${c}`);
  const G = (c: number) => (KPT === 1 ? at("Gs", c) : `gs${c}`);
  const load = KPT === 1
    ? ""
    : `${vecs(D4, (c) => `      let qs${c} = ${at("Qs", c)};`)}\n${
      vecs(D4, (c) => `      let gs${c} = ${at("Gs", c)};`)
    }\n`;
  const grid = headBlocks(spec, "kb", Math.ceil(spec.tk / KEYS), "first");
  const perTile = Math.ceil((QUERIES * D4) / threads) + Math.ceil(QUERIES / threads) +
    (variant.unroll === "all" ? 0 : QUERIES);
  // Under `dq: "scores"` each dS is saved for the dQ kernel: a warp writes 32 consecutive keys of one query.
  const saved = variant.dq === "scores" ? [readWrite("dsSaved", "f32")] : [];
  const save = (s: string) =>
    saved.length
      ? `\n      if (qi < ${spec.tq}u && kj${s} < ${spec.tk}u) { dsSaved[(bh * ${spec.tq}u + qi) * ${
        savedScoresStride(spec.tk)
      }u + kj${s}] = ds${s}; }`
      : "";
  return {
    name: "attention_backward_dkv",
    workgroups: grid.workgroups,
    cost: fusedAttentionCost(spec, "dkv"),
    loops: { iterations: queryBlocks * (perTile + 1), of: `${spec.tq} queries` },
    source: `${
      bindings([
        ...qkvBuffers(spec),
        read("dout", "vec4f"),
        read("lse", "f32"),
        read("delta", "f32"),
        ...outputs,
        ...saved,
        ...unropeBindings(spec),
      ])
    }${unropeFunction(spec)}
var<workgroup> Qs: array<vec4f, ${QUERIES * D4}>;
var<workgroup> Gs: array<vec4f, ${QUERIES * D4}>;
var<workgroup> Ls: array<f32, ${QUERIES}>;
var<workgroup> Ds: array<f32, ${QUERIES}>;
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${grid.setup}
${
      keys((s, u) =>
        `  let kj${s} = kb * ${KEYS}u + ${u === 0 ? "lid.x" : `lid.x + ${u * threads}u`};
  let r${s} = ${partRow(spec, 1, `min(kj${s}, ${spec.tk - 1}u)`, spec.tk)};
${vecs(D4, (i) => `  let k${i}${s} = ${arr.k}[r${s} * ${D4}u + ${i}u] * ${f32Literal(spec.scale)};`)}
${vecs(D4, (i) => `  let v${i}${s} = ${arr.v}[r${s} * ${D4}u + ${i}u${arr.vShift}];`)}
${vecs(D4, (i) => `  var dk${i}${s} = vec4f(0.0);`)}
${vecs(D4, (i) => `  var dv${i}${s} = vec4f(0.0);`)}`
      )
    }
${staging.declare}  for (var qb = ${qb0}; qb < ${queryBlocks}u; qb++) {
${staging.stage}
${
      loop(
        "i",
        QUERIES,
        `      let qi = qb * ${QUERIES}u + i;
${load}${
          keys((s) =>
            `      ${letDotSum(`s${s}`, pairs(D4, (c) => [Q(c), `k${c}${s}`]), "      ")}
      let p${s} = select(0.0, exp(s${s} - Ls[i]), ${visible(spec, `kj${s}`, "qi")});
      ${letDotSum(`dp${s}`, pairs(D4, (c) => [G(c), `v${c}${s}`]), "      ")}
      let ds${s} = p${s} * (dp${s} - Ds[i]);${save(s)}
${vecs(D4, (c) => `      dv${c}${s} += p${s} * ${G(c)};`)}
${vecs(D4, (c) => `      dk${c}${s} += ds${s} * ${Q(c)};`)}`
          )
        }`,
        variant.unroll === "all",
      )
    }
    workgroupBarrier();
  }
${
      keys((s) =>
        `  if (kj${s} < ${spec.tk}u) {
${
          vecs(D4, (c) =>
            `    ${dkName}[r${s} * ${D4}u + ${c}u] = ${
              unroped(spec, `dk${c}${s} * ${f32Literal(spec.scale)}`, `kj${s}`, `${c}u`)
            };`)
        }
${vecs(D4, (c) => `    ${dvName}[r${s} * ${D4}u + ${c}u${arr.vShift}] = dv${c}${s};`)}
  }`
      )
    }
}
`,
  };
}

/**
 * The side of the scores a workgroup of a flash kernel owns: "keys" in the dK/dV kernel, "queries" in the forward
 * and dQ kernels.
 */
type OwnedSide = "keys" | "queries";

/** WGSL of the clamped flat rows of a position of q, k (which v shares) and dO, and reads of their vectors. */
interface OperandRows {
  q: (pos: string) => string;
  k: (pos: string) => string;
  g: (pos: string) => string;
  /** Vector `col` of row `pos` of Q, K, V or G (dO), by the operand's first letter. */
  reads: Record<string, (pos: string, col: string) => string>;
}

function operandRows(spec: AttentionSpec): OperandRows {
  const D4 = spec.d / 4, arr = qkvArrays(spec);
  const srcRow = (part: 0 | 1 | 2, pos: string, T: number) => `(${partRow(spec, part, `min(${pos}, ${T - 1}u)`, T)})`;
  const q = (pos: string) => srcRow(0, pos, spec.tq), k = (pos: string) => srcRow(1, pos, spec.tk);
  const g = (pos: string) => `(${rowIndex(spec, `min(${pos}, ${spec.tq - 1}u)`, spec.tq)})`;
  return {
    q,
    k,
    g,
    reads: {
      Q: (pos, col) => `${arr.q}[${q(pos)} * ${D4}u + ${col}]`,
      K: (pos, col) => `${arr.k}[${k(pos)} * ${D4}u + ${col}]`,
      V: (pos, col) => `${arr.v}[${k(pos)} * ${D4}u + ${col}${arr.vShift}]`,
      G: (pos, col) => `dout[${g(pos)} * ${D4}u + ${col}]`,
    },
  };
}

/**
 * WGSL that stages `rows` rows from position `first` on of the operands `names` (their arrays in workgroup memory,
 * whose first letter says which: Q, K, V or G) with all `threads`, vector c of row r at index `at` (a WGSL expression
 * of r and c); with `scaled`, the first operand times the score scale. Rows past the end repeat the last one.
 */
function stageOperands(
  spec: AttentionSpec,
  o: { names: string[]; first: string; rows: number; threads: number; at: string; scaled: boolean },
): string {
  const D4 = spec.d / 4, reads = operandRows(spec).reads;
  return `    for (var e = lid.x; e < ${o.rows * D4}u; e += ${o.threads}u) {
      let r = e / ${D4}u; let c = e % ${D4}u; let pos = ${o.first} + r;
${
    o.names.map((n, i) =>
      `      ${n}[${o.at}] = ${reads[n[0]]("pos", "c")}${i === 0 && o.scaled ? ` * ${f32Literal(spec.scale)}` : ""};`
    ).join("\n")
  }
    }`;
}

/** WGSL that stages the log-sum-exp and delta of `n` query rows from `first` on into arrays `names`. */
function stageStats(rows: OperandRows, names: [string, string], first: string, n: number, threads: number): string {
  return `    for (var e = lid.x; e < ${n}u; e += ${threads}u) {
      let row = ${rows.g(`${first} + e`)};
      ${names[0]}[e] = lse[row];
      ${names[1]}[e] = delta[row];
    }`;
}

/**
 * The streamed tiles `t` (from, to) a workgroup `blk` owning `own` rows of `side` visits: all, or under the causal
 * mask those that see its rows (keys see queries from blk*own - off on; queries see keys up to blk*own + own-1 + off).
 */
function streamRange(spec: AttentionSpec, side: OwnedSide, own: number, tile: number): { from: string; to: string } {
  const tiles = Math.ceil((side === "keys" ? spec.tq : spec.tk) / tile), off = spec.tk - spec.tq;
  if (!spec.causal) return { from: "0u", to: `${tiles}u` };
  if (side === "keys") {
    return { from: `select(0u, (blk * ${own}u - ${off}u) / ${tile}u, blk * ${own}u > ${off}u)`, to: `${tiles}u` };
  }
  return { from: "0u", to: `min(${tiles}u, (blk * ${own}u + ${own - 1 + off}u) / ${tile}u + 1u)` };
}

/**
 * The bindings of a backward kernel of `side`: q, k, v (or qkv), dout, lse, delta, then its gradients (and `more`).
 */
function backwardBindings(spec: AttentionSpec, side: OwnedSide, more: Binding[] = []): string {
  const outputs = spec.packed
    ? [readWrite("dqkv", "vec4f")]
    : side === "keys"
    ? [readWrite("dk", "vec4f"), readWrite("dv", "vec4f")]
    : [readWrite("dq", "vec4f")];
  return bindings([
    ...qkvBuffers(spec),
    read("dout", "vec4f"),
    read("lse", "f32"),
    read("delta", "f32"),
    ...outputs,
    ...more,
    ...unropeBindings(spec),
  ]) + unropeFunction(spec);
}

/**
 * WGSL that writes the accumulated gradients of an owned row at position `pos`, vector column `col`, when `pos` is
 * in range (and `also`, a further condition, holds): dK = `a1`, dV = `a2` for "keys", dQ = `a1` for "queries".
 */
function writeGrads(
  spec: AttentionSpec,
  side: OwnedSide,
  o: { pos: string; col: string; a1: string; a2: string; also?: string },
): string {
  const D4 = spec.d / 4, rows = operandRows(spec), vShift = qkvArrays(spec).vShift;
  const cond = `${o.pos} < ${side === "keys" ? spec.tk : spec.tq}u${o.also ? ` && ${o.also}` : ""}`;
  const a1 = unroped(spec, o.a1, o.pos, o.col);
  if (side === "queries") {
    return `    if (${cond}) { ${spec.packed ? "dqkv" : "dq"}[${rows.q(o.pos)} * ${D4}u + ${o.col}] = ${a1}; }`;
  }
  const [dk, dv] = spec.packed ? ["dqkv", "dqkv"] : ["dk", "dv"];
  return `    if (${cond}) {
      ${dk}[${rows.k(o.pos)} * ${D4}u + ${o.col}] = ${a1};
      ${dv}[${rows.k(o.pos)} * ${D4}u + ${o.col}${vShift}] = ${o.a2};
    }`;
}

/** Rows of the owned side a workgroup of the flash kernels holds. */
const FLASH_OWNED_ROWS = 32;

/**
 * The flash kernels' split of a 32-row owned block by a `TILE`-row streamed tile between `threads` threads, with
 * g = lid % 8 and lane = lid / 8 (< SG = threads / 8):
 *
 * - scores phase: a thread computes the block of owned rows `g + 8u` (u < 4) by streamed rows `lane + SG w` (w < W);
 * - products phase: a thread accumulates owned rows `g + 8u` by NC = ceil(D4 / SG) vector columns `lane + SG m` of
 *   the head dim ({@linkcode headColumns}: clamped where SG does not divide D4, those copies not written).
 *
 * Operand rows are staged row-major with a stride of D4 + 1 vectors: the 8 owned rows a quarter warp reads at one
 * column fall in distinct banks. With `unroll` (`variant.unroll: "all"`) the loops over the head dim (scores) and
 * the tile's rows (products) are unrolled in the generated code, every workgroup-memory index then a constant
 * offset from the thread's base.
 */
interface FlashLayout {
  D4: number;
  TILE: number;
  threads: number;
  SG: number;
  W: number;
  stride: number;
  unroll: boolean;
}

function flashLayout(d: number, variant: AttentionVariant): FlashLayout {
  const D4 = d / 4, threads = variant.flashThreads, SG = threads / 8, TILE = variant.tile;
  const unroll = variant.unroll === "all";
  return { D4, TILE, threads, SG, W: TILE / SG, stride: D4 + 1, unroll };
}

/**
 * Bytes of workgroup memory of a flash kernel: the owned rows' operands (one for the forward, two for the
 * backward), the streamed tile's two, the tile's P (forward) or dS (and P for dV) as vectors of 4 owned rows, and
 * the forward's partial row maxima or the dK/dV kernel's streamed log-sum-exp and delta.
 */
function flashBytes(d: number, variant: AttentionVariant, kernel: AttentionKernel): number {
  const { TILE, SG, stride } = flashLayout(d, variant), OWN = FLASH_OWNED_ROWS, vec = 16;
  const operands = (rows: number) => rows * stride * vec, scores = TILE * (OWN / 4) * vec;
  if (kernel === "forward") return operands(OWN) + 2 * operands(TILE) + scores + 4 * OWN * SG;
  if (kernel === "dq") return 2 * operands(OWN) + 2 * operands(TILE) + scores;
  return 2 * operands(OWN) + 2 * operands(TILE) + 2 * scores + 2 * 4 * TILE;
}

/**
 * A thread's vector columns `c_m = lane + step m` (m in `ms`) of a head dim of `D4` vectors, declared by `declare`.
 * Where `step` does not divide D4 the last ones are clamped to the last column: those threads compute a copy, and
 * `own(m)` is the WGSL condition for writing column m (undefined where every thread owns it).
 */
function headColumns(D4: number, step: number, lane: string) {
  const ms = Array.from({ length: Math.ceil(D4 / step) }, (_, m) => m);
  const clamped = (m: number) => step * (m + 1) > D4;
  return {
    ms,
    declare: ms.map((m) =>
      `  let c_${m} = ${clamped(m) ? `min(${lane} + ${step * m}u, ${D4 - 1}u)` : `${lane} + ${step * m}u`};`
    ).join("\n"),
    own: (m: number) => (clamped(m) ? `${lane} + ${step * m}u < ${D4}u` : undefined),
  };
}

/** WGSL pieces the flash kernels share, for a layout `L` and owned block `blk`. */
function flashParts(L: FlashLayout) {
  const { D4, SG, W, stride } = L;
  const us = [0, 1, 2, 3], ws = Array.from({ length: W }, (_, w) => w);
  const each = (f: (u: number, w: number) => string) => us.flatMap((u) => ws.map((w) => f(u, w))).join("\n");
  // The products phase's columns (some threads clamp theirs where SG does not divide D4).
  const columns = headColumns(D4, SG, "lane"), ms = columns.ms;
  // A product's scores acc_u_w from the vector partial sums the scores phase accumulated.
  const sums = (acc: string) =>
    each((u, w) => `    var ${acc}_${u}_${w} = ${horizontalSum(`${acc}_${u}_${w}_parts`)};`);
  return {
    us,
    ws,
    ms,
    each,
    /** The thread's indices: owned positions o_u, staged row offsets, product columns c_m. */
    setup: `  let g = lid.x % 8u; let lane = lid.x / 8u; let xr = g * ${stride}u; let yr = lane * ${stride}u;
${us.map((u) => `  let o_${u} = blk * ${FLASH_OWNED_ROWS}u + g + ${8 * u}u;`).join("\n")}
${columns.declare}`,
    /** Whether column c_m is the thread's own: a WGSL condition, or undefined when it always is. */
    ownColumn: columns.own,
    /** The positions t_w of the thread's streamed rows of tile t. */
    streamed: ws.map((w) => `    let t_${w} = t * ${L.TILE}u + lane + ${SG * w}u;`).join("\n"),
    /**
     * The scores phase: acc_u_w = dot(x[g + 8u], y[lane + SG w]) over the head dim for each [x, y, acc] of
     * `products`, one product after the other (fewer registers live), as vector multiply-adds into acc_u_w_parts summed
     * once after the loop.
     */
    scores: (products: [string, string, string][]) =>
      `${each((u, w) => `    var ${products.map(([, , a]) => `${a}_${u}_${w}_parts = vec4f(0.0);`).join(" var ")}`)}
${
        loop(
          "k",
          D4,
          products.map(([x, y, a]) =>
            `${us.map((u) => `      let ${x}_${u} = ${x}[xr + ${8 * u * stride}u + k];`).join("\n")}
${ws.map((w) => `      let ${y}_${w} = ${y}[yr + ${SG * w * stride}u + k];`).join("\n")}
${each((u, w) => `      ${a}_${u}_${w}_parts = fma(${x}_${u}, ${y}_${w}, ${a}_${u}_${w}_parts);`)}`
          ).join("\n"),
          L.unroll,
        )
      }
${products.map(([, , a]) => sums(a)).join("\n")}`,
    /** Stores the thread's block of tile `array` (values name_u_w) as one vector of 4 owned rows per streamed row. */
    store: (array: string, name: string) =>
      ws.map((w) =>
        `    ${array}[(lane + ${SG * w}u) * 8u + g] = vec4f(${us.map((u) => `${name}_${u}_${w}`).join(", ")});`
      ).join("\n"),
    /**
     * The products phase: for each [scores, y, acc] of `products`, acc_u_m += scores[s][u] * y[s][c_m] over the
     * tile's streamed rows s (`scores_s` names the scores' vector; `more` is WGSL added to the loop).
     */
    products: (products: [string, string, string][], more = "") =>
      loop(
        "s",
        L.TILE,
        products.map(([sc, y, a]) =>
          `      let ${sc}_s = ${sc}[s * 8u + g];
${ms.map((m) => `      let ${y}_${m} = ${y}[s * ${stride}u + c_${m}];`).join("\n")}
${us.flatMap((u) => ms.map((m) => `      ${a}_${u}_${m} += ${sc}_s[${u}] * ${y}_${m};`)).join("\n")}`
        ).join("\n") + (more ? `\n${more}` : ""),
        L.unroll,
      ),
  };
}

/** Loop iterations of a flash kernel's thread: the owned block's staging, then per tile `perTile` plus its loops. */
function flashLoops(spec: AttentionKernelSpec, L: FlashLayout, kernel: AttentionKernel): {
  iterations: number;
  of: string;
} {
  const { D4, TILE, threads } = L, streamed = kernel === "dkv" ? spec.tq : spec.tk;
  const perTile = Math.ceil((TILE * D4) / threads) + (kernel === "dkv" ? Math.ceil(TILE / threads) : 0) +
    (L.unroll ? 0 : D4 + TILE);
  return {
    iterations: Math.ceil((FLASH_OWNED_ROWS * D4) / threads) + Math.ceil(streamed / TILE) * (perTile + 1),
    of: `${streamed} ${kernel === "dkv" ? "queries" : "keys"}`,
  };
}

/**
 * The staging of a flash backward kernel's streamed tile `t`: S's operand times the scale, dP's operand, and for the
 * dK/dV kernel the queries' log-sum-exp and delta. "none" (`variant.flashPipeline`) loads and stores them at the top
 * of each tile; "prefetch" loads tile t + 1 into registers while tile t is computed ({@linkcode registerStaging}).
 */
function flashStaging(spec: AttentionKernelSpec, L: FlashLayout, side: OwnedSide, blocks: BlockLoop): BlockStaging {
  const { D4, TILE, threads, stride } = L, keys = side === "keys", rows = operandRows(spec);
  const [y1, y2] = keys ? ["Qy", "Gy"] : ["Ky", "Vy"];
  if (spec.variant.flashPipeline === "none") {
    const at = `r * ${stride}u + c`;
    return stagedInLoop(
      `${stageOperands(spec, { names: [y1, y2], first: `t * ${TILE}u`, rows: TILE, threads, at, scaled: true })}
${keys ? stageStats(rows, ["Ly", "Dy"], `t * ${TILE}u`, TILE, threads) : ""}`,
    );
  }
  const operand = (name: string, scaled: boolean) =>
    stagedRows(spec, name, TILE, (e) => `${name}[${e} / ${D4}u * ${stride}u + ${e} % ${D4}u]`, scaled);
  const stat = (array: string, name: string): StagedOperand => ({
    total: TILE,
    load: (e, b) => `${array}[${rows.g(`${b} * ${TILE}u + ${e}`)}]`,
    at: (e) => `${name}[${e}]`,
    scalar: true,
  });
  const operands = [operand(y1, true), operand(y2, false), ...(keys ? [stat("lse", "Ly"), stat("delta", "Dy")] : [])];
  return registerStaging(threads, operands, blocks);
}

/**
 * The backward in register blocks of the score matrix, FlashAttention-2's way (`variant.dkv` or `variant.dq`:
 * "flash"): a workgroup owns 32 rows of one side of the scores of one head ("keys": K, V; "queries": Q, dO and their
 * log-sum-exp and delta, in registers) and streams tiles of `variant.tile` rows of the other. Per tile:
 *
 * - scores: each thread computes its block of S and dP (see {@linkcode FlashLayout}), 2 dot products per vector read;
 * - P and dS = P (dP - delta) into workgroup memory, one vector of 4 owned rows per streamed row;
 * - products: each thread adds dS times the streamed operand of S (and for dV, P times dO) into its 4 owned rows by
 *   NC columns, one vector read of the scores and NC of the operand per 4 NC vector multiply-adds.
 *
 * The streamed operand of S (K, or Q in the dK/dV kernel) is staged times the scale, so neither S nor the
 * accumulated dQ or dK need scaling. Bindings as the row kernels'. Grid: (ceil(T_owned / 32), BH).
 */
function generateAttentionBackwardFlashKernel(spec: AttentionKernelSpec & { side: OwnedSide }): KernelSource {
  const { side } = spec, keys = side === "keys", L = flashLayout(spec.d, spec.variant), P = flashParts(L);
  const { TILE, threads, SG, stride } = L, OWN = FLASH_OWNED_ROWS;
  // The dK/dV kernel saves dS for the dQ-from-scores kernel: (bh, Tq, Tk rounded up to vectors), visible tiles only.
  const saves = keys && spec.variant.dq === "scores", dsStride = savedScoresStride(spec.tk);
  const save = (u: number, w: number) => {
    const at = `(bh * ${spec.tq}u + t_${w}) * ${dsStride}u + o_${u}`;
    return `    if (t_${w} < ${spec.tq}u && o_${u} < ${spec.tk}u) { dsSaved[${at}] = ds_${u}_${w}; }`;
  };
  const ownT = keys ? spec.tk : spec.tq;
  // The owned rows' operands of S and dP, and the streamed ones (S's times the scale).
  const [x1, x2, y1, y2] = keys ? ["Kx", "Vx", "Qy", "Gy"] : ["Qx", "Gx", "Ky", "Vy"];
  const rows = operandRows(spec), range = streamRange(spec, side, OWN, TILE);
  const stage = (names: string[], first: string, n: number, scaled: boolean) =>
    stageOperands(spec, { names, first, rows: n, threads, at: `r * ${stride}u + c`, scaled });
  const grid = headBlocks(spec, "blk", Math.ceil(ownT / OWN), keys ? "first" : "last");
  const pipe = flashStaging(spec, L, side, { index: "t", first: range.from, end: range.to });
  // The log-sum-exp and delta of the query of score (u, w): staged per streamed query, or the owned query's.
  const stat = (name: "L" | "D", u: number, w: number) =>
    keys ? `${name}y[lane + ${SG * w}u]` : `${name === "L" ? "lse" : "delta"}_${u}`;
  // Positions of the key and the query of score (u, w).
  const owned = (u: number) => `o_${u}`, streamed = (_u: number, w: number) => `t_${w}`;
  const [key, query] = keys ? [owned, streamed] : [streamed, owned];
  const write = (u: number, m: number) =>
    writeGrads(spec, side, {
      pos: `o_${u}`,
      col: `c_${m}`,
      a1: `a1_${u}_${m}`,
      a2: `a2_${u}_${m}`,
      also: P.ownColumn(m),
    });
  return {
    name: keys ? "attention_backward_dkv" : "attention_backward_dq",
    workgroups: grid.workgroups,
    cost: fusedAttentionCost(spec, keys ? "dkv" : "dq"),
    loops: flashLoops(spec, L, keys ? "dkv" : "dq"),
    source: `${backwardBindings(spec, side, saves ? [readWrite("dsSaved", "f32")] : [])}
var<workgroup> ${x1}: array<vec4f, ${OWN * stride}>;
var<workgroup> ${x2}: array<vec4f, ${OWN * stride}>;
var<workgroup> ${y1}: array<vec4f, ${TILE * stride}>;
var<workgroup> ${y2}: array<vec4f, ${TILE * stride}>;
${keys ? `var<workgroup> Ly: array<f32, ${TILE}>;\nvar<workgroup> Dy: array<f32, ${TILE}>;\n` : ""}\
var<workgroup> dS: array<vec4f, ${TILE * 8}>;
${keys ? `var<workgroup> P: array<vec4f, ${TILE * 8}>;\n` : ""}@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${grid.setup}
${P.setup}
${stage([x1, x2], `blk * ${OWN}u`, OWN, false)}
${
      keys
        ? ""
        : P.us.map((u) => `  let lse_${u} = lse[${rows.g(`o_${u}`)}]; let delta_${u} = delta[${rows.g(`o_${u}`)}];`)
          .join("\n")
    }
${
      P.us.flatMap((u) =>
        P.ms.map((m) => `  var a1_${u}_${m} = vec4f(0.0);${keys ? ` var a2_${u}_${m} = vec4f(0.0);` : ""}`)
      ).join("\n")
    }
${pipe.declare}  for (var t = ${range.from}; t < ${range.to}; t++) {
${pipe.stage}
${P.streamed}
${P.scores([[x1, y1, "s"], [x2, y2, "dp"]])}
${
      P.each((u, w) =>
        `    let p_${u}_${w} = select(0.0, exp(s_${u}_${w} - ${stat("L", u, w)}), ${
          visible(spec, key(u, w), query(u, w))
        });
    let ds_${u}_${w} = p_${u}_${w} * (dp_${u}_${w} - ${stat("D", u, w)});`
      )
    }
${saves ? `${P.each(save)}\n` : ""}${P.store("dS", "ds")}
${keys ? P.store("P", "p") : ""}
    workgroupBarrier();
${P.products(keys ? [["dS", y1, "a1"], ["P", y2, "a2"]] : [["dS", y1, "a1"]])}
    workgroupBarrier();
  }
${P.us.flatMap((u) => P.ms.map((m) => write(u, m))).join("\n")}
}
`,
  };
}

/** Keys the dQ-from-scores kernel stages per step. */
const SCORES_KEYS = 32;

/** Bytes of workgroup memory of the dQ-from-scores kernel at head dim `d`: a dS tile (rows padded) and a K tile. */
function scoresTileBytes(d: number, variant: AttentionVariant): number {
  return (variant.scoresQueries * (SCORES_KEYS / 4 + 1) + SCORES_KEYS * (d / 4)) * 16;
}

/** Floats a row of the saved dS takes: the keys rounded up to whole vectors, so that rows are read as vectors. */
function savedScoresStride(tk: number): number {
  return Math.ceil(tk / 4) * 4;
}

/**
 * Bytes of the dS that the dK/dV kernel saves under `dq: "scores"`: (bh, Tq, Tk) floats, the keys rounded up to a
 * multiple of 4. The caller checks it against one storage binding's limit.
 *
 * @example
 * ```ts
 * import { savedScoresBytes } from "./attention.ts";
 * const bytes = savedScoresBytes({ bh: 96, tq: 1024, tk: 1024, d: 64, scale: 0.125, causal: true, heads: 12 });
 * if (bytes !== 96 * 1024 * 1024 * 4) throw new Error(`${bytes}`); // GPT-2 small at batch 8: 403 MB
 * ```
 */
export function savedScoresBytes(spec: AttentionSpec): number {
  return spec.bh * spec.tq * savedScoresStride(spec.tk) * ELEMENT_BYTES;
}

/**
 * One operand a workgroup stages per block: `total` vectors (or with `scalar`, f32s), element e of block `b` loaded by
 * `load(e, b)` into `at(e)`.
 */
interface StagedOperand {
  total: number;
  load: (e: string, b: string) => string;
  at: (e: string) => string;
  scalar?: boolean;
}

/** The block loop a {@linkcode registerStaging} serves: its variable, first block and end (WGSL expressions). */
interface BlockLoop {
  index: string;
  first: string;
  end: string;
}

/**
 * How a kernel stages each block of its block loop: `declare` goes before the loop (empty, or lines ending in a
 * newline), `stage` at the top of the loop's body, which it leaves with the block in workgroup memory and the
 * workgroup past a barrier.
 */
interface BlockStaging {
  declare: string;
  stage: string;
}

/** Staging at the top of each block: the loads and stores `store`, then the barrier. */
function stagedInLoop(store: string): BlockStaging {
  return { declare: "", stage: `${store}\n    workgroupBarrier();` };
}

/**
 * WGSL that stages `operands` block by block with `threads` threads through registers: `declare` loads the loop's
 * first block; `stage` writes the registers to workgroup memory, waits at the barrier, then loads the next block, so
 * that those loads are in flight while the block is computed.
 */
function registerStaging(threads: number, operands: StagedOperand[], blocks: BlockLoop): BlockStaging {
  // Each thread's elements n: e = lid + n * threads, guarded where threads do not divide the total.
  const parts = operands.flatMap((o, k) =>
    Array.from({ length: Math.ceil(o.total / threads) }, (_, n) => ({
      o,
      reg: `pf${k}_${n}`,
      e: `(lid.x + ${n * threads}u)`,
      guard: (n + 1) * threads > o.total ? `lid.x + ${n * threads}u < ${o.total}u` : "",
    }))
  );
  const guarded = (guard: string, body: string) => (guard ? `if (${guard}) { ${body} }` : body);
  const loads = (b: string, indent: string) =>
    parts.map((p) => `${indent}${guarded(p.guard, `${p.reg} = ${p.o.load(p.e, b)};`)}`).join("\n");
  const store = parts.map((p) => `    ${guarded(p.guard, `${p.o.at(p.e)} = ${p.reg};`)}`).join("\n");
  return {
    declare: `${parts.map((p) => `  var ${p.reg} = ${p.o.scalar ? "0.0" : "vec4f(0.0)"};`).join("\n")}
${loads(blocks.first, "  ")}
`,
    stage: `${store}
    workgroupBarrier();
    if (${blocks.index} + 1u < ${blocks.end}) {
${loads(`(${blocks.index} + 1u)`, "      ")}
    }`,
  };
}

/**
 * Operand `name` (its first letter says which: Q, K, V or G, as in {@linkcode stageOperands}) as
 * {@linkcode registerStaging} stages it in blocks of `n` rows: vector e of block b is column e % D4 of row
 * b * n + e / D4 (clamped to the last), stored by `at`; with `scaled`, times the score scale.
 */
function stagedRows(
  spec: AttentionSpec,
  name: string,
  n: number,
  at: (e: string) => string,
  scaled = false,
): StagedOperand {
  const D4 = spec.d / 4, read = operandRows(spec).reads[name[0]];
  const times = scaled ? ` * ${f32Literal(spec.scale)}` : "";
  return { total: n * D4, load: (e, b) => `${read(`${b} * ${n}u + ${e} / ${D4}u`, `${e} % ${D4}u`)}${times}`, at };
}

/**
 * dQ = scale * dS @ K from the dS the dK/dV kernel saved (`variant.dq: "scores"`), a tiled product: a
 * workgroup of `scoresThreads` threads owns `scoresQueries` query rows of one head and all d columns, and stages 32
 * keys a step (dS rows as read, K rows); a thread accumulates the query rows ty + 16 i by the vector columns
 * tx + CT m (CT = scoresThreads / 16 column threads, see {@linkcode headColumns}), each dS vector of 4 keys feeding
 * 4 vector multiply-adds per row and column. Causal, a workgroup stops at the last key its last row sees and masks
 * the rest: dS entries the dK/dV kernel skipped (invisible tiles) are never used, whatever they hold; the blocks with
 * the most keys start first. Bindings: k (or qkv), the saved dS (f32, rows of {@linkcode savedScoresBytes}' stride),
 * dq (write; packed: the packed gradient, of which it writes part 0). Grid: (ceil(Tq / scoresQueries), BH).
 */
function generateAttentionBackwardDqFromScoresKernel(spec: AttentionKernelSpec): KernelSource {
  const D4 = spec.d / 4, BQ = spec.variant.scoresQueries, BK = SCORES_KEYS, K4 = BK / 4, AS = K4 + 1;
  const threads = spec.variant.scoresThreads, CT = threads / 16, columns = headColumns(D4, CT, "tx");
  const rowStep = threads / CT, RQ = BQ / rowStep, off = spec.tk - spec.tq;
  const rows = operandRows(spec), stride4 = savedScoresStride(spec.tk) / 4;
  const grid = headBlocks(spec, "qb", Math.ceil(spec.tq / BQ), "last", spec.causal);
  const keyBlocks = Math.ceil(spec.tk / BK);
  const nkb = spec.causal ? `min(${keyBlocks}u, (qb * ${BQ}u + ${BQ - 1 + off}u) / ${BK}u + 1u)` : `${keyBlocks}u`;
  const is = Array.from({ length: RQ }, (_, i) => i), ms = columns.ms;
  const each = (f: (i: number, m: number) => string) => is.flatMap((i) => ms.map((m) => f(i, m))).join("\n");
  const unroll = spec.variant.unroll !== "none";
  const cost = fusedAttentionCost(spec, "dq"), pairs = spec.bh * attentionPairs(spec);
  // Block kb's dS vector e (row e / K4, keys masked past what the row sees) and K vector e.
  const dsVector = (e: string, kb: string) => {
    const row = `min(qb * ${BQ}u + ${e} / ${K4}u, ${spec.tq - 1}u)`,
      col = `min(${kb} * ${K4}u + ${e} % ${K4}u, ${stride4 - 1}u)`;
    const q = `qb * ${BQ}u + ${e} / ${K4}u`, key = `${kb} * ${BK}u + ${e} % ${K4}u * 4u`;
    const visibleKeys = spec.causal ? `min(${q} + ${off}u, ${spec.tk - 1}u)` : `${spec.tk - 1}u`;
    return `select(vec4f(0.0), dsSaved[(bh * ${spec.tq}u + ${row}) * ${stride4}u + ${col}], vec4u(${key}) + vec4u(0u, 1u, 2u, 3u) <= vec4u(${visibleKeys}))`;
  };
  const last = spec.causal ? `min(q + ${off}u, ${spec.tk - 1}u)` : `${spec.tk - 1}u`;
  const plain = `    for (var e = lid.x; e < ${BQ * K4}u; e += ${threads}u) {
      let r = e / ${K4}u; let c = e % ${K4}u;
      let q = qb * ${BQ}u + r; let key = kb * ${BK}u + c * 4u;
      let v = dsSaved[(bh * ${spec.tq}u + min(q, ${spec.tq - 1}u)) * ${stride4}u + min(kb * ${K4}u + c, ${
    stride4 - 1
  }u)];
      As[r * ${AS}u + c] = select(vec4f(0.0), v, vec4u(key) + vec4u(0u, 1u, 2u, 3u) <= vec4u(${last}));
    }
    for (var e = lid.x; e < ${BK * D4}u; e += ${threads}u) {
      Bs[e] = ${rows.reads.K(`kb * ${BK}u + e / ${D4}u`, `e % ${D4}u`)};
    }`;
  const staging = spec.variant.scoresPipeline === "none" ? stagedInLoop(plain) : registerStaging(threads, [
    { total: BQ * K4, load: dsVector, at: (e) => `As[${e} / ${K4}u * ${AS}u + ${e} % ${K4}u]` },
    stagedRows(spec, "K", BK, (e) => `Bs[${e}]`),
  ], { index: "kb", first: "0u", end: "nkb" });
  return {
    name: "attention_backward_dq_scores",
    workgroups: grid.workgroups,
    cost: { flops: cost.flops, bytes: (pairs + spec.bh * (spec.tk + spec.tq) * spec.d) * ELEMENT_BYTES },
    loops: {
      iterations: keyBlocks * ((BQ * K4) / threads + Math.ceil((BK * D4) / threads) + (unroll ? 0 : K4) + 1),
      of: `${spec.tk} keys`,
    },
    source: `${
      bindings([
        read(qkvArrays(spec).k, "vec4f"),
        read("dsSaved", "vec4f"),
        readWrite(spec.packed ? "dqkv" : "dq", "vec4f"),
        ...unropeBindings(spec),
      ])
    }${unropeFunction(spec)}
var<workgroup> As: array<vec4f, ${BQ * AS}>;
var<workgroup> Bs: array<vec4f, ${BK * D4}>;
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${grid.setup}
  let tx = lid.x % ${CT}u; let ty = lid.x / ${CT}u;
${columns.declare}
${each((i, m) => `  var a_${i}_${m} = vec4f(0.0);`)}
  let nkb = ${nkb};
${staging.declare}  for (var kb = 0u; kb < nkb; kb++) {
${staging.stage}
${
      loop(
        "k4",
        K4,
        `${is.map((i) => `      let s_${i} = As[(ty + ${rowStep * i}u) * ${AS}u + k4];`).join("\n")}
${
          [0, 1, 2, 3].map((j) =>
            `${ms.map((m) => `      let b${j}_${m} = Bs[(k4 * 4u + ${j}u) * ${D4}u + c_${m}];`).join("\n")}
${
              each((i, m) =>
                `      a_${i}_${m} += s_${i}[${j}] * b${j}_${m};`
              )
            }`
          ).join("\n")
        }`,
        unroll,
      )
    }
    workgroupBarrier();
  }
${
      each((i, m) =>
        writeGrads(spec, "queries", {
          pos: `qb * ${BQ}u + ty + ${rowStep * i}u`,
          col: `c_${m}`,
          a1: `a_${i}_${m} * ${f32Literal(spec.scale)}`,
          a2: "",
          also: columns.own(m),
        })
      )
    }
}
`,
  };
}

/**
 * The forward in register blocks of the score matrix (`variant.forward: "flash"`): a workgroup owns 32 query rows
 * of one head (staged times the scale) and streams tiles of `variant.tile` keys with the online softmax. Per tile:
 *
 * - scores: each thread computes its block of S (see {@linkcode FlashLayout}), masked, and the maximum of each of
 *   its 4 rows into workgroup memory (one partial per thread sharing the row);
 * - each thread reads the partials of its rows, the new running maxima and correction factors (every thread of a
 *   row computes the same), and stores its probabilities as vectors of 4 queries per key;
 * - products: each thread rescales its 4 rows by NC columns of the output and the row sums, and adds P times V.
 *
 * Writes the output and the log-sum-exp as the row kernel does. Grid: (ceil(Tq / 32), BH).
 */
function generateAttentionForwardFlashKernel(spec: AttentionKernelSpec): KernelSource {
  const L = flashLayout(spec.d, spec.variant), P = flashParts(L), { D4, TILE, threads, SG, stride } = L;
  const OWN = FLASH_OWNED_ROWS, range = streamRange(spec, "queries", OWN, TILE), parts = SG / 4;
  const stage = (names: string[], first: string, n: number, scaled: boolean) =>
    stageOperands(spec, { names, first, rows: n, threads, at: `r * ${stride}u + c`, scaled });
  const grid = headBlocks(spec, "blk", Math.ceil(spec.tq / OWN), "last");
  // The maximum of owned row u over the thread's keys, and over the partials of all threads sharing the row.
  const rowMax = (u: number) => P.ws.map((w) => `s_${u}_${w}`).reduce((a, b) => `max(${a}, ${b})`);
  const partials = (u: number) =>
    Array.from({ length: parts }, (_, i) => `Mp[(g + ${8 * u}u) * ${parts}u + ${i}u]`).reduce((a, b) =>
      `max(${a}, ${b})`
    );
  const write = (u: number) => {
    const row = `(${rowIndex(spec, `o_${u}`, spec.tq)})`;
    return `  if (o_${u} < ${spec.tq}u) {
    let inv = select(1.0 / l[${u}], 0.0, l[${u}] == 0.0);
${
      P.ms.map((m) => {
        const own = P.ownColumn(m), store = `o[${row} * ${D4}u + c_${m}] = a_${u}_${m} * inv;`;
        return `    ${own ? `if (${own}) { ${store} }` : store}`;
      }).join("\n")
    }
    if (lane == 0u) { lse[${row}] = m[${u}] + log(l[${u}]); }
  }`;
  };
  return {
    name: "attention_forward",
    workgroups: grid.workgroups,
    cost: fusedAttentionCost(spec, "forward"),
    loops: flashLoops(spec, L, "forward"),
    source: `${bindings([...qkvBuffers(spec), readWrite("o", "vec4f"), readWrite("lse", "f32")])}
var<workgroup> Qx: array<vec4f, ${OWN * stride}>;
var<workgroup> Ky: array<vec4f, ${TILE * stride}>;
var<workgroup> Vy: array<vec4f, ${TILE * stride}>;
var<workgroup> P: array<vec4f, ${TILE * 8}>;
var<workgroup> Mp: array<vec4f, ${OWN * parts}>;
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${grid.setup}
${P.setup}
${stage(["Qx"], `blk * ${OWN}u`, OWN, true)}
  var m = vec4f(${NEG_INF});
  var l = vec4f(0.0);
${P.us.flatMap((u) => P.ms.map((m) => `  var a_${u}_${m} = vec4f(0.0);`)).join("\n")}
  for (var t = ${range.from}; t < ${range.to}; t++) {
${stage(["Ky", "Vy"], `t * ${TILE}u`, TILE, false)}
    workgroupBarrier();
${P.streamed}
${P.scores([["Qx", "Ky", "s"]])}
${P.each((u, w) => `    s_${u}_${w} = select(${NEG_INF}, s_${u}_${w}, ${visible(spec, `t_${w}`, `o_${u}`)});`)}
${P.us.map((u) => `    Mp[(g + ${8 * u}u) * ${parts}u + lane / 4u][lane % 4u] = ${rowMax(u)};`).join("\n")}
    workgroupBarrier();
${P.us.map((u) => `    let mp_${u} = ${partials(u)};`).join("\n")}
    let mn = max(m, vec4f(${P.us.map((u) => `max(max(mp_${u}.x, mp_${u}.y), max(mp_${u}.z, mp_${u}.w))`).join(", ")}));
    // Nothing visible yet: keep the factor at 1.
    let corr = select(exp(m - mn), vec4f(1.0), mn == vec4f(${NEG_INF}));
${P.each((u, w) => `    let p_${u}_${w} = select(exp(s_${u}_${w} - mn[${u}]), 0.0, s_${u}_${w} == ${NEG_INF});`)}
${P.store("P", "p")}
    m = mn;
    workgroupBarrier();
    l *= corr;
${P.us.flatMap((u) => P.ms.map((m) => `    a_${u}_${m} *= corr[${u}];`)).join("\n")}
${P.products([["P", "Vy", "a"]], "      l += P_s;")}
    workgroupBarrier();
  }
${P.us.map(write).join("\n")}
}
`,
  };
}

/**
 * {@linkcode generateAttentionForwardKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { attentionForwardKernel, DEFAULT_ATTENTION_VARIANT } from "./attention.ts";
 * const problem = { bh: 8, tq: 128, tk: 128, d: 32, scale: 32 ** -0.5, causal: true, heads: 1 };
 * const k = attentionForwardKernel({ ...problem, variant: DEFAULT_ATTENTION_VARIANT });
 * if (k.name !== "attention_forward" || k.workgroups.join() !== "2,8,1") throw new Error(`${k.workgroups}`);
 * ```
 */
export const attentionForwardKernel: (spec: AttentionKernelSpec) => KernelSource = memoized(
  generateAttentionForwardKernel,
);

/**
 * {@linkcode generateAttentionBackwardDqKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { attentionBackwardDqKernel, DEFAULT_ATTENTION_VARIANT } from "./attention.ts";
 * const problem = { bh: 8, tq: 128, tk: 128, d: 32, scale: 32 ** -0.5, causal: true, heads: 1 };
 * const k = attentionBackwardDqKernel({ ...problem, variant: DEFAULT_ATTENTION_VARIANT });
 * if (k.name !== "attention_backward_dq" || k.workgroups.join() !== "2,8,1") throw new Error(`${k.workgroups}`);
 * ```
 */
export const attentionBackwardDqKernel: (spec: AttentionKernelSpec) => KernelSource = memoized(
  generateAttentionBackwardDqKernel,
);

/**
 * {@linkcode generateAttentionBackwardDkvKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { attentionBackwardDkvKernel, DEFAULT_ATTENTION_VARIANT } from "./attention.ts";
 * const problem = { bh: 8, tq: 128, tk: 128, d: 32, scale: 32 ** -0.5, causal: true, heads: 1 };
 * const k = attentionBackwardDkvKernel({ ...problem, variant: DEFAULT_ATTENTION_VARIANT });
 * if (k.name !== "attention_backward_dkv" || k.workgroups.join() !== "2,8,1") throw new Error(`${k.workgroups}`);
 * ```
 */
export const attentionBackwardDkvKernel: (spec: AttentionKernelSpec) => KernelSource = memoized(
  generateAttentionBackwardDkvKernel,
);

/** The rows of the delta kernel: `rows` rows of head dim `d`. */
export interface AttentionDeltaSpec {
  rows: number;
  d: number;
}

/**
 * `delta[r] = dot(dO[r], O[r])` for every row of (rows, d): the softmax backward's correction term. A thread a row
 * would read addresses a row apart across its neighbours (a separate 32-byte sector for every thread of a load), so
 * `L` lanes share each row instead and read its vec4s in turn: lane `l` reads vec4s `l, l + L, ...`, so consecutive
 * threads read consecutive vec4s. `L` is `min(P, 4)` for `P` the head dim's vec4 count rounded up to a power of two
 * (a count that is not a power of two leaves some lanes idle on the last step), giving each lane up to 4 vec4s of
 * each operand in flight; the `L` partial sums meet in workgroup memory after one barrier, and the first `256 / L`
 * threads each add up a row's and store it (consecutive rows: a coalesced store). A row of one vec4 needs no
 * combining. The grid covers `rows` rows, `256 / L` a workgroup. Bindings: dout, o (read), delta (write). Cost: a
 * multiply and an add per element; dout and o read, delta written once.
 */
function generateAttentionBackwardDeltaKernel({ rows, d }: AttentionDeltaSpec): KernelSource {
  const D4 = d / 4, WG = 256;
  const P = 2 ** Math.ceil(Math.log2(D4)), L = Math.min(P, 4), RPW = WG / L;
  const grid = flatGrid(Math.ceil(rows / RPW));
  const head = `${bindings([read("dout", "vec4f"), read("o", "vec4f"), readWrite("delta", "f32")])}
${L === 1 ? "" : `var<workgroup> part: array<f32, ${WG}>;\n`}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {`;
  const steps = Array.from({ length: P / L }, (_, j) => {
    const at = j === 0 ? "base" : `base + ${j * L}u`, acc = `s += dot(dout[${at}], o[${at}]);`;
    return (j + 1) * L <= D4 ? `    ${acc}` : `    if (lane${j === 0 ? "" : ` + ${j * L}u`} < ${D4}u) { ${acc} }`;
  }).join("\n");
  const body = L === 1
    ? `
  let r = ${grid.index} * ${WG}u + lid.x;
  if (r >= ${rows}u) { return; }
  delta[r] = dot(dout[r], o[r]);`
    : `
  let lane = lid.x % ${L}u;
  let r = ${grid.index} * ${RPW}u + lid.x / ${L}u;
  var s = 0.0;
  if (r < ${rows}u) {
    let base = r * ${D4}u + lane;
${steps}
  }
  part[lid.x] = s;
  workgroupBarrier();
  let row = ${grid.index} * ${RPW}u + lid.x;
  if (lid.x < ${RPW}u && row < ${rows}u) {
    delta[row] = ${Array.from({ length: L }, (_, l) => `part[lid.x * ${L}u + ${l}u]`).join(" + ")};
  }`;
  return {
    name: "attention_delta",
    workgroups: grid.workgroups,
    cost: { flops: 2 * rows * d, bytes: (2 * rows * d + rows) * ELEMENT_BYTES },
    source: `${head}${body}
}
`,
  };
}

/**
 * {@linkcode generateAttentionBackwardDeltaKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { attentionBackwardDeltaKernel } from "./attention.ts";
 * const k = attentionBackwardDeltaKernel({ rows: 1024, d: 32 }); // 4 lanes a row, 64 rows a workgroup
 * if (k.name !== "attention_delta" || k.workgroups[0] !== 16) throw new Error(`${k.workgroups}`);
 * ```
 */
export const attentionBackwardDeltaKernel: (spec: AttentionDeltaSpec) => KernelSource = memoized(
  generateAttentionBackwardDeltaKernel,
);

/**
 * Generated, register-blocked batched matmul: `C[b] = A[b] @ B[b]` with either operand optionally transposed in
 * storage, for any M, N, K.
 *
 * Why generated: WGSL compilers keep small arrays in registers only when every index is a constant; an inner loop
 * that indexes local arrays dynamically keeps them in memory and runs tens of times slower. So the generator writes
 * out every FMA of a BK step explicitly, with constant indices and vec4 accumulators, specialised to the shape.
 *
 * Layout: a workgroup computes a BM x BN tile of C with (BM/TM) x (BN/TN) threads; each thread owns TM x TN
 * outputs, spread as groups of 4 rows/columns spaced BM/(TM/4) apart so that neighbouring threads read
 * neighbouring vec4s of workgroup memory (no bank conflicts) and write neighbouring vec4s of C (coalesced).
 * Tiles of A and B for each BK slice of K are staged in workgroup memory as [k][m] and [k][n] rows of vec4s, so
 * that every read of the inner loop is one 16-byte load. Global loads are vec4 where the contiguous dimension is
 * a multiple of 4, scalar otherwise; bounds checks are generated only for the dimensions that are not multiples
 * of the tile, and on loads only along K, except with transposed A (see `loadChecks`). See
 * {@linkcode MatmulVariant} for the pipelining choices, {@linkcode chooseVariant} and {@linkcode largeTiles} for why
 * the defaults are what they are, and {@linkcode streamKSchedule} for the launch order of the last wave. The
 * measurements behind these choices are in bench/RESULTS.md ("Matmul: the measurements behind the rules");
 * bench/matmul_tune.ts times the alternatives.
 *
 * @module
 */
import { ropePairs } from "./rope.ts";
import {
  type Binding,
  bindings,
  ELEMENT_BYTES,
  flatGrid,
  foldGrid,
  type KernelCost,
  type KernelSource,
  memoized,
  read,
  readWrite,
} from "./common.ts";
import { sigmoidWgsl, siluGateGradWgsl } from "./silu_gate.ts";

/** Tile configuration of the matmul kernel. */
export interface MatmulTile {
  /** Rows of C per workgroup. */
  bm: number;
  /** Columns of C per workgroup. */
  bn: number;
  /** Slice of K staged per step. */
  bk: number;
  /** Rows per thread (multiple of 4). */
  tm: number;
  /** Columns per thread (multiple of 4). */
  tn: number;
}

/** Tile configurations by name, largest first. */
export const matmulTiles: Record<"large" | "medium" | "small", MatmulTile> = {
  large: { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8 },
  medium: { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 },
  small: { bm: 32, bn: 32, bk: 16, tm: 4, tn: 4 },
};

/**
 * The large tile with BK = 32: half the barriers per FMA of BK 16, and for untransposed A its 128 x 32
 * K-contiguous tiles split into exactly one 4x4 block per thread for the "block" transpose. With transposed A it
 * pays only where the BK-16 tile leaves the GPU short of workgroups (see {@linkcode chooseLargeTile}).
 */
export const largeTileDeepK: MatmulTile = { bm: 128, bn: 128, bk: 32, tm: 8, tn: 8 };

/** Code-generation choices that do not change the tiling (benchmarks pick among them; defaults are the fastest). */
export interface MatmulVariant {
  /**
   * How global loads overlap the FMAs. "none": load, barrier, compute, barrier. "prefetch": the next slice is
   * loaded into registers before computing the current one (two barriers a step). "double": as "prefetch" with
   * two workgroup buffers, so a step needs one barrier. "double2": as "double" with the step loop unrolled by two,
   * so that every buffer index is a constant (no per-read address arithmetic for the buffer choice).
   */
  pipeline: "none" | "prefetch" | "double" | "double2";
  /** "flat" layout only: floats of padding per k-row of a tile (multiple of 4); 4 makes transposing stores conflict-free. */
  pad: number;
  /**
   * How a K-contiguous operand (A, or B transposed) is transposed into its [k][m] tile: "scalar" stores four
   * floats per loaded vec4; "block" loads 4 rows x 4 k per thread and stores four vec4s.
   */
  transpose: "scalar" | "block";
  /** Launch tiles in groups of this many tile-rows (L2 reuse); 0 keeps the plain row-major grid. */
  swizzle: number;
  /**
   * Workgroup tile layout. "flat": [k][m] rows of vec4s, read at `As[const + l.y]`. "lanes": `As[l.y][const]`,
   * one row of vec4s per thread row (padded to an odd length), so that the per-thread part of every inner-loop
   * address is computed once (WGSL bounds clamps wrap each dynamic index: a flat index needs its own clamp per read).
   * "rows": `As[k][const + l.y]`, the flat order as a 2-D array: conflict-free like "flat", one clamp per thread like
   * "lanes", and no odd-length padding (so a 128 x 256 tile at BK 32 fits in 48 KB).
   */
  layout: "flat" | "lanes" | "rows";
  /**
   * Thread rows of the output tile that one 32-thread warp spans (the warp covers warpRows x 32/warpRows threads
   * of the thread grid). 0 keeps the plain row-major mapping of `@workgroup_size(tx, ty)`, where a warp spans 32/tx
   * rows. A squarer warp reads fewer distinct A and B vec4s from workgroup memory per inner-loop step.
   */
  warpRows?: number;
  /**
   * Inner loop. "outer" (default): tiles stored k-major, each k adds an outer product of TM A values and TN B
   * values. "dot" (only for A untransposed and B transposed, K a multiple of 4: x @ W^T): both tiles stored as their
   * K-contiguous rows, exactly as loaded (no transposing stores), each k-vec4 adds TM x TN dot products.
   */
  compute?: "outer" | "dot";
}

/**
 * Large-tile configurations by operand layout, the fastest measured for each ({@linkcode chooseLargeTile} picks):
 * - untransposed operands, N a multiple of 256: 128 x 256, BK 16, 8 x 16 outputs a thread, register prefetch,
 *   "rows" layout. A wider tile reads each staged A value for twice the columns; "rows" computes each thread's
 *   workgroup-memory address clamp once instead of per read. Not where B is transposed: there every B element
 *   would need a transposing store.
 * - untransposed, N a multiple of 192 (d_ff 1344): 128 x 192, BK 16, prefetch, "lanes", for the same reuse.
 * - otherwise untransposed A: 128 x 128, BK 32, block transposes, prefetch, "rows" padded by 4 floats.
 * - transposed A (weight gradients, split K), N a multiple of 192: 128 x 192, BK 32, prefetch, "rows". M of 4096
 *   or more: the BK-16 128 x 128 tile, "flat", no prefetch, which has tiles enough without a deep K. Otherwise
 *   128 x 128, BK 32, prefetch, "rows".
 *
 * Every wider tile keeps to one workgroup of 256 threads and at most 128 accumulators a thread: beyond that the
 * compiler spills registers.
 */
export const largeTiles: Record<"wide" | "n192" | "n192Deep" | "deep", MatmulTile> = {
  wide: { bm: 128, bn: 256, bk: 16, tm: 8, tn: 16 },
  n192: { bm: 128, bn: 192, bk: 16, tm: 8, tn: 12 },
  n192Deep: { bm: 128, bn: 192, bk: 32, tm: 8, tn: 12 },
  deep: largeTileDeepK,
};

/**
 * The large tile for a problem that fills the GPU with 128 x 128 tiles (see {@linkcode largeTiles} for the reason
 * behind each branch). Wider tiles are taken only when they still give at least 120 workgroups, close to one per
 * compute unit.
 *
 * @example
 * ```ts
 * import { chooseLargeTile } from "./matmul.ts";
 * const fwd = chooseLargeTile({ batch: 1, m: 8192, n: 512, transA: false, transB: true }); // x @ W^T
 * if (fwd.bn !== 128 || fwd.bk !== 32) throw new Error(JSON.stringify(fwd)); // B transposed: the BK-32 tile
 * ```
 */
export function chooseLargeTile(
  spec: { batch: number; m: number; n: number; transA: boolean; transB: boolean },
): MatmulTile {
  const groups = (t: MatmulTile) => spec.batch * Math.ceil(spec.m / t.bm) * Math.ceil(spec.n / t.bn);
  if (spec.transA) {
    if (spec.n % 192 === 0) return largeTiles.n192Deep;
    return spec.m >= 4096 ? matmulTiles.large : largeTiles.deep;
  }
  if (spec.transB) return largeTiles.deep;
  if (spec.n % 256 === 0 && groups(largeTiles.wide) >= 120) return largeTiles.wide;
  if (spec.n % 192 === 0 && groups(largeTiles.n192) >= 120) return largeTiles.n192;
  return largeTiles.deep;
}

/**
 * The fastest {@linkcode MatmulVariant} for a tile and operand layout. Why each part:
 * - pipeline: register prefetch holds the next slice in registers. With 64 accumulators at BK 16 those registers
 *   cost the second resident workgroup per SM, more than the overlap gains; from BK 32, or with the 96-128
 *   accumulators of the 192- and 256-wide tiles (one workgroup per SM either way), "prefetch" wins.
 * - layout: "rows" for the 128 x 128 BK 32 and 128 x 256 tiles and BK 32 transposed A (see {@linkcode largeTiles}),
 *   "lanes" for the 128 x 192 BK 16 and the smaller tiles, "flat" unpadded tiles for transposed A at BK 16: the
 *   fastest of the three for each.
 * - transpose "block" with BK 32 (one 4x4 block per thread, vec4 stores); "scalar" with BK 16, where blocks would
 *   leave half the threads idle.
 * - pad 4 floats per k-row for "rows" at BK 32 with block transposes: the vec4 stores of a quarter-warp then hit
 *   distinct banks.
 * - swizzle 0: grouping tile rows for L2 does not pay, since the K-slabs in flight already fit in L2.
 *
 * @example
 * ```ts
 * import { chooseVariant, largeTiles } from "./matmul.ts";
 * const variant = chooseVariant({ transA: false }, largeTiles.wide);
 * if (variant.layout !== "rows" || variant.pipeline !== "prefetch") throw new Error(JSON.stringify(variant));
 * ```
 */
export function chooseVariant(spec: { transA: boolean }, tile: MatmulTile): MatmulVariant {
  const base: MatmulVariant = { pipeline: "none", pad: 0, transpose: "scalar", swizzle: 0, layout: "lanes" };
  const deep = tile.bk >= 32;
  if (spec.transA) {
    return deep ? { ...base, pipeline: "prefetch", layout: "rows" } : { ...base, layout: "flat" };
  }
  if (deep) return { ...base, pipeline: "prefetch", transpose: "block", layout: "rows", pad: tile.bn === 128 ? 4 : 0 };
  if (tile.tm * tile.tn > 64) return { ...base, pipeline: "prefetch", layout: tile.bn === 256 ? "rows" : "lanes" };
  return base;
}

/**
 * Bytes of workgroup memory the kernel for this tile and variant declares (a GPU refuses a pipeline over its
 * `maxComputeWorkgroupStorageSize`: 48 KiB on NVIDIA, 32 KiB on Mesa's lavapipe).
 *
 * @example
 * ```ts
 * import { chooseVariant, largeTiles, matmulSharedBytes } from "./matmul.ts";
 * const tile = largeTiles.wide;
 * const bytes = matmulSharedBytes(tile, chooseVariant({ transA: false }, tile));
 * if (bytes !== 24576) throw new Error(`${bytes}`); // within every GPU's 32 KiB
 * ```
 */
export function matmulSharedBytes(tile: MatmulTile, variant: MatmulVariant): number {
  const { bm, bn, bk, tm, tn } = tile;
  const copies = variant.pipeline === "double" || variant.pipeline === "double2" ? 2 : 1;
  if (variant.compute === "dot") return copies * (bm + bn) * (bk / 4 + 1) * 16;
  const one = (outer: number, lanes: number, groups: number) => {
    if (variant.layout === "flat" || variant.layout === "rows") return bk * (outer + variant.pad) * 4;
    const row = bk * groups + ((bk * groups) % 2 ? 0 : 1);
    return lanes * row * 16;
  };
  return copies * (one(bm, bm / tm, tm / 4) + one(bn, bn / tn, tn / 4));
}

/** A matmul problem. Strides are in elements; a batch stride of 0 broadcasts that operand. */
export interface MatmulSpec {
  batch: number;
  m: number;
  n: number;
  k: number;
  /** A is stored (K, M) instead of (M, K). */
  transA: boolean;
  /** B is stored (N, K) instead of (K, N). */
  transB: boolean;
  batchStrideA: number;
  batchStrideB: number;
  /** Tile to use; chosen by {@linkcode chooseTile} when absent. */
  tile?: MatmulTile;
  /**
   * Split K into this many chunks, one per workgroup layer, each writing its partial product to
   * `C[split]` (C then has shape (splitK, M, N) and the caller sums the layers). Needs batch 1.
   */
  splitK?: number;
  /** Code-generation choices; {@linkcode chooseVariant}'s where absent. */
  variant?: Partial<MatmulVariant>;
  /**
   * Add a fourth binding `r`, shaped like C, to the result in the epilogue (`C = A @ B + R`: a residual connection
   * without a separate add pass over C). Not with split-K.
   */
  addend?: boolean;
  /**
   * Stream-K scheduling for this many resident workgroups (the GPU's wave, see {@linkcode streamKSchedule}): the
   * tiles that fill whole waves run as usual, and the K-iterations of the last, partial wave's tiles are shared out
   * evenly among `streamK` workgroups. Those write partial tiles to a fourth binding `w` of
   * {@linkcode streamKWorkspaceBytes} bytes, which {@linkcode matmulStreamKFixupKernel} then sums into C. Needs
   * batch 1, no split-K and no addend.
   */
  streamK?: number;
  /** RoPE on C's columns as the epilogue stores them ({@linkcode MatmulRope}). Not with split-K or an addend. */
  rope?: MatmulRope;
  /**
   * Apply the SwiGLU gate's backward in the epilogue (see kernels/silu_gate.ts): C is the gate's output gradient
   * dG (M, N), which is never stored. Binding c becomes dh (M, 2N), the gradient of the gate's packed input h, and
   * a fourth binding `h` (M, 2N) is read: for each accumulator dg at (row, col), with u = h[row, col], v = h[row, N
   * + col] and s = sigmoid(u), the kernel writes dh[row, col] = dg v s (1 + u (1 - s)) and dh[row, N + col] = dg u
   * s. This saves the separate gate-backward pass, which wrote dG and read it back. Needs N % 4 == 0 (vec4
   * stores), batch 1, no split-K and no addend; with stream-K, {@linkcode matmulStreamKFixupKernel} applies it to
   * the tail tiles.
   */
  gateBackward?: boolean;
}

/**
 * RoPE applied to a matmul's result as it is stored: C's row r is a position's projection, its columns heads of
 * `headDim` values whose interleaved pairs rotate as kernels/rope.ts rotates them (the same table, the same
 * arithmetic). Bindings `positions` (i32) and `ropeTable` (its `ropeTable` read as vec4s) follow c.
 * Needs N, `headDim` and `columns` multiples of 4 (a vec4 of accumulators is two pairs of one head) and batch 1.
 */
export interface MatmulRope {
  /** Values per head (a multiple of 4). */
  headDim: number;
  /** Columns `[0, columns)` rotate, the rest pass through (a packed q/k/v projection: the keys' end). */
  columns: number;
  /** Row r reads `positions[r % cycle]` (one table of positions for every sequence), or `positions[r]` when 0. */
  cycle: number;
  /** Positions in the table; those outside `[0, tableRows)` give NaN. */
  tableRows: number;
}

/**
 * How a stream-K matmul divides its work. `tiles` output tiles of `kIters` BK-steps each; the first `dataParallel`
 * (whole waves of `units`) run one workgroup per tile as usual; the remaining `tail` tiles' `tail * kIters`
 * K-iterations are cut into `units` contiguous ranges, one per extra workgroup. A range is shorter than a tile's K
 * (the tail has fewer tiles than `units`), so it touches at most two tiles: each stream-K workgroup writes at most
 * two partial tiles, to slots `2 * unit` and `2 * unit + 1` of the workspace.
 *
 * Why: a launch runs in waves of resident workgroups, and a last, partial wave costs a full one. 4096^3 with
 * 128 x 256 tiles is 512 tiles on 132 SMs (one workgroup each): 3.88 waves that take as long as 4 (on the H200,
 * 4224 x 4096 x 4096, 4 whole waves, takes as long as 4096^3).
 *
 * @example
 * ```ts
 * import { largeTiles, streamKSchedule } from "./matmul.ts";
 * const s = streamKSchedule({ m: 4096, n: 4096, k: 4096 }, largeTiles.wide, 132);
 * if (s.dataParallel !== 396 || s.tail !== 116) throw new Error(JSON.stringify(s)); // 3 whole waves, then 116 tiles
 * ```
 */
export function streamKSchedule(
  shape: { m: number; n: number; k: number },
  tile: MatmulTile,
  units: number,
): {
  tilesM: number;
  tilesN: number;
  tiles: number;
  kIters: number;
  dataParallel: number;
  tail: number;
  units: number;
} {
  const tilesM = Math.ceil(shape.m / tile.bm), tilesN = Math.ceil(shape.n / tile.bn), tiles = tilesM * tilesN;
  const kIters = Math.ceil(shape.k / tile.bk), tail = tiles % units;
  return { tilesM, tilesN, tiles, kIters, dataParallel: tiles - tail, tail, units };
}

/**
 * Bytes of the partial-tile workspace of a stream-K matmul (two tiles per stream-K workgroup).
 *
 * @example
 * ```ts
 * import { largeTiles, streamKWorkspaceBytes } from "./matmul.ts";
 * if (streamKWorkspaceBytes(largeTiles.wide, 132) !== 2 * 132 * 128 * 256 * 4) throw new Error();
 * ```
 */
export function streamKWorkspaceBytes(tile: MatmulTile, units: number): number {
  return 2 * units * tile.bm * tile.bn * 4;
}

/**
 * Picks the largest tile that still gives the GPU enough workgroups to fill it.
 *
 * @example
 * ```ts
 * import { chooseTile, matmulTiles } from "./matmul.ts";
 * if (chooseTile({ batch: 1, m: 100, n: 100 }) !== matmulTiles.medium) throw new Error("expected 64 x 64");
 * ```
 */
export function chooseTile(spec: { batch: number; m: number; n: number }): MatmulTile {
  const groups = (t: MatmulTile) => spec.batch * Math.ceil(spec.m / t.bm) * Math.ceil(spec.n / t.bn);
  if (groups(matmulTiles.large) >= 132) return matmulTiles.large;
  if (groups(matmulTiles.medium) >= 64) return matmulTiles.medium;
  return spec.m * spec.n >= 64 * 64 ? matmulTiles.medium : matmulTiles.small;
}

/** What every part of the generated kernel needs: the problem, tile and variant, and the numbers derived from them. */
interface MatmulLayout {
  spec: MatmulSpec;
  tile: MatmulTile;
  v: MatmulVariant;
  /** Threads along N and along M, and in all. */
  tx: number;
  ty: number;
  T: number;
  /** Bounds checks are generated only for the dimensions that are not multiples of the tile. */
  checkM: boolean;
  checkN: boolean;
  checkK: boolean;
  /** K chunks (one per workgroup layer), their length (whole BK slices), and the BK steps of one. */
  splits: number;
  chunk: number;
  steps: number;
  /** vec4 groups per thread along M and N, and the rows (columns) between a thread's groups. */
  gm: number;
  gn: number;
  rowSpacing: number;
  colSpacing: number;
  /** Two workgroup copies of each tile ("double" pipelines). */
  double: boolean;
  /** The "dot" inner loop. */
  dot: boolean;
  /** Global load width of A and B: 4 where the operand's contiguous dimension allows vec4 loads. */
  wA: number;
  wB: number;
  tilesM: number;
  tilesN: number;
  /** Workgroup layers: K chunks, or batches. */
  z: number;
  /** Whether the launch order is swizzled (grouped tile rows). */
  swizzle: boolean;
  sk: ReturnType<typeof streamKSchedule> | null;
  /** The plain grid (a workgroup per tile and batch or K-layer), folded flat past 65,535 in a dimension. */
  grid: ReturnType<typeof foldGrid>;
}

/** Checks a spec and derives the {@linkcode MatmulLayout}; throws naming what does not fit. */
function matmulLayout(spec: MatmulSpec): MatmulLayout {
  const { batch, m: M, n: N, k: K, transA, transB } = spec;
  const tile = spec.tile ?? chooseTile(spec);
  const v: MatmulVariant = { ...chooseVariant(spec, tile), ...spec.variant };
  const { bm: BM, bn: BN, bk: BK, tm: TM, tn: TN } = tile;
  const tx = BN / TN, ty = BM / TM, T = tx * ty;
  if (TM % 4 || TN % 4 || BM % TM || BN % TN || BK % 4 || v.pad % 4) {
    throw new Error(`Bad matmul tile ${JSON.stringify(tile)} / variant ${JSON.stringify(v)}`);
  }
  const splits = spec.splitK ?? 1;
  if (splits > 1 && batch !== 1) throw new Error("Split-K matmul needs batch 1");
  // Chunks are whole BK slices, so a tile never straddles two chunks.
  const chunk = Math.ceil(K / splits / BK) * BK;
  const layers = splits > 1 ? Math.ceil(K / chunk) : 1;
  const dot = v.compute === "dot";
  if (dot && (transA || !transB || K % 4 !== 0)) {
    throw new Error(
      `Matmul "dot" compute needs A untransposed, B transposed and K % 4 == 0, got ${JSON.stringify(spec)}`,
    );
  }
  if (spec.addend && splits > 1) throw new Error("A matmul with an addend cannot split K");
  if (spec.rope) checkRope(spec, splits);
  if (spec.gateBackward && (N % 4 !== 0 || batch !== 1 || splits > 1 || spec.addend)) {
    throw new Error(`A matmul with the gate's backward needs N % 4 == 0, batch 1, no split-K and no addend`);
  }
  const tilesN = Math.ceil(N / BN), tilesM = Math.ceil(M / BM), z = splits > 1 ? layers : batch;
  const swizzle = v.swizzle > 0 && tilesM * tilesN <= 65535 && z <= 65535 && tilesM > v.swizzle;
  const sk = spec.streamK ? streamKSchedule(spec, tile, spec.streamK) : null;
  const grid = foldGrid([tilesN, tilesM, z]);
  if (sk) checkStreamK(spec, splits, sk);
  const warpRows = v.warpRows ?? 0;
  if (warpRows && (T % 32 || ty % warpRows || tx % (32 / warpRows))) {
    throw new Error(`Matmul warpRows ${warpRows} does not fit the ${tx} x ${ty} thread grid`);
  }
  const gm = TM / 4, gn = TN / 4;
  return {
    spec,
    tile,
    v,
    tx,
    ty,
    T,
    checkM: M % BM !== 0,
    checkN: N % BN !== 0,
    checkK: K % BK !== 0,
    splits,
    chunk,
    steps: Math.ceil(chunk / BK),
    gm,
    gn,
    rowSpacing: BM / gm,
    colSpacing: BN / gn,
    double: v.pipeline === "double" || v.pipeline === "double2",
    dot,
    wA: (transA ? M : K) % 4 === 0 ? 4 : 1,
    wB: (transB ? K : N) % 4 === 0 ? 4 : 1,
    tilesM,
    tilesN,
    z,
    swizzle,
    sk,
    grid,
  };
}

function checkRope(spec: MatmulSpec, splits: number): void {
  const { headDim, columns } = spec.rope!;
  if (splits > 1 || spec.addend || spec.batch !== 1) {
    throw new Error("A matmul with RoPE needs batch 1, no split-K and no addend");
  }
  if (spec.gateBackward) throw new Error("A matmul applies RoPE or the gate's backward, not both");
  if (spec.n % 4 || headDim % 4 || columns % headDim || columns > spec.n) {
    throw new Error(
      `Matmul RoPE needs N, the head dim and the rotated columns multiples of 4, got ${JSON.stringify(spec)}`,
    );
  }
}

function checkStreamK(spec: MatmulSpec, splits: number, sk: ReturnType<typeof streamKSchedule>): void {
  if (spec.batch !== 1 || splits > 1) throw new Error("A stream-K matmul needs batch 1 and no split-K");
  if (sk.tail === 0 || sk.tail * sk.kIters >= 2 ** 32 / sk.units) {
    throw new Error(`Stream-K does not apply to ${JSON.stringify(sk)}`);
  }
}

/** The buffer index of a double-buffered tile (`[buf]`), or nothing when single-buffered (`buf` empty). */
const bufIndex = (buf: string) => buf ? `[${buf}]` : "";

/**
 * A workgroup tile of one operand in the variant's layout: its declaration, the element a store writes (`at`), and
 * the vec4 an inner-loop read takes (`read`). `buf` is the buffer index expression when double-buffered ("").
 */
interface SharedTile {
  decl: string;
  at: (buf: string, k: string, o: string) => string;
  read: (buf: string, kk: number, g: number, lane: string) => string;
}

/**
 * The tile `name` of one operand: `outer` (BM or BN) by BK, as vec4s of 4 consecutive rows/columns. `lanes`
 * threads along that dimension each own `groups` vec4s spaced `spacing` apart.
 */
function sharedTile(L: MatmulLayout, name: string, outer: number, lanes: number, groups: number, spacing: number) {
  const { v, double } = L, BK = L.tile.bk;
  if (v.layout === "flat") {
    const S = outer + v.pad, size = (BK * S) / 4;
    const off = (buf: string) => buf ? `(${buf}) * ${size}u + ` : "";
    return {
      decl: `var<workgroup> ${name}: array<vec4f, ${size * (double ? 2 : 1)}>;`,
      at: (buf: string, k: string, o: string) => `${name}[${off(buf)}${k} * ${S / 4}u + (${o} >> 2u)]`,
      read: (buf: string, kk: number, g: number, lane: string) =>
        `${name}[${off(buf)}${(kk * S + g * spacing) / 4}u + ${lane}]`,
    };
  }
  if (v.layout === "rows") {
    // [k][vec4 of the tile row]: the constant k index needs no bounds clamp, and the per-thread `const + lane`
    // index is the same expression at every k, so its clamp is computed once; lanes read consecutive vec4s.
    const S = (outer + v.pad) / 4;
    const rowT = `array<array<vec4f, ${S}>, ${BK}>`;
    return {
      decl: `var<workgroup> ${name}: ${double ? `array<${rowT}, 2>` : rowT};`,
      at: (buf: string, k: string, o: string) => `${name}${bufIndex(buf)}[${k}][${o} >> 2u]`,
      read: (buf: string, kk: number, g: number, lane: string) =>
        `${name}${bufIndex(buf)}[${kk}][${(g * spacing) / 4}u + ${lane}]`,
    };
  }
  const I = BK * groups + ((BK * groups) % 2 ? 0 : 1);
  const row = `array<array<vec4f, ${I}>, ${lanes}>`;
  return {
    decl: `var<workgroup> ${name}: ${double ? `array<${row}, 2>` : row};`,
    at: (buf: string, k: string, o: string) =>
      `${name}${bufIndex(buf)}[(${o} % ${spacing}u) >> 2u][${k} * ${groups}u + ${o} / ${spacing}u]`,
    read: (buf: string, kk: number, g: number, lane: string) => `${name}${bufIndex(buf)}[${lane}][${kk * groups + g}]`,
  };
}

/**
 * A "dot" tile's declaration: row o of the tile at physical row (o % 4) * (outer / 4) + o / 4, so that the 4 rows
 * of a thread's vec4 group lie outer/4 apart and neighbouring threads read neighbouring rows; rows of BK/4 + 1 vec4s
 * (an odd number of 16-byte bank groups) keep the 8 rows a quarter-warp reads in distinct banks.
 */
function dotTileDecl(L: MatmulLayout, name: string, outer: number): string {
  const t = `array<array<vec4f, ${L.tile.bk / 4 + 1}>, ${outer}>`;
  return `var<workgroup> ${name}: ${L.double ? `array<${t}, 2>` : t};`;
}

/** One operand's part of the kernel: register declarations, global loads into them, stores into its tile. */
interface OperandCode {
  decls: string[];
  load: (k0: string) => string[];
  store: (buf: string) => string[];
}

/** One operand (A or B) of an "outer" kernel, as {@linkcode operandCode} reads and writes it. */
interface Operand {
  which: "A" | "B";
  /** Global load width (1 or 4). */
  w: number;
  /** A not transposed, or B transposed: the stored rows run along K. */
  contiguousIsK: boolean;
  /** BM or BN: tile extent of the non-K dimension. */
  outer: number;
  tile: SharedTile;
  /** M or N. */
  limit: number;
  /** Row length of the stored matrix (K when contiguousIsK, else M or N). */
  stride: number;
  /** Flat start of this batch's matrix. */
  base: string;
  /** m0 or n0. */
  o0: string;
  check: boolean;
}

/**
 * Loads of one operand. Work is cut into jobs (a vec4, a scalar, or a 4x4 block); job j of round r is done by
 * thread `lid - first + r*T`. When an operand has fewer jobs than threads, A's run on the first threads and
 * B's on the last, so that the two overlap as little as possible.
 */
function operandCode(L: MatmulLayout, op: Operand): OperandCode {
  const { T } = L, BK = L.tile.bk;
  const block = op.contiguousIsK && op.w === 4 && L.v.transpose === "block";
  const jobs = block ? (op.outer * BK) / 16 : (op.outer * BK) / op.w;
  if (jobs % T && T % jobs) {
    throw new Error(`Matmul tile ${JSON.stringify(L.tile)} does not divide the ${op.which} loads`);
  }
  const rounds = Math.max(1, jobs / T);
  const first = jobs >= T ? 0 : op.which === "A" ? 0 : T - jobs;
  const guard = jobs < T ? (first ? `lid >= ${first}u` : `lid < ${jobs}u`) : "";
  const job = (r: number) => `(lid${first ? ` - ${first}u` : ""}${r ? ` + ${r * T}u` : ""})`;
  const regs = block ? 4 : 1;
  const ty = op.w === 4 ? "vec4f" : "f32";
  const decls: string[] = [];
  for (let r = 0; r < rounds; r++) for (let i = 0; i < regs; i++) decls.push(`  var r${op.which}${r}_${i}: ${ty};`);
  const coords = (j: string) => jobCoords(L, op, block, j);
  const wrap = (body: string[]) => guard ? [`  if (${guard}) {`, ...body, "  }"] : body;
  return {
    decls,
    load: (k0) => wrap(operandLoads(L, op, rounds, regs, (r) => coords(job(r)), k0)),
    store: (buf) => wrap(operandStores(op, rounds, block, (r) => coords(job(r)), buf)),
  };
}

/** Index math per job `j`: (o, kk) of the element (or vec4 start) it loads. */
function jobCoords(L: MatmulLayout, op: Operand, block: boolean, j: string): { o: string; kk: string } {
  const BK = L.tile.bk, { outer, w } = op;
  if (block) {
    // Pairs of k-vec4s fastest, then 4-row blocks: a warp reads 32 contiguous bytes of 16 rows (full sectors)
    // and its vec4 stores hit 8 distinct 16-byte bank groups per quarter-warp when S % 8 == 4.
    const per = BK / 4, nb = outer / 4;
    if (per % 2 === 0) {
      return { o: `((${j} >> 1u) % ${nb}u) * 4u`, kk: `((${j} / ${2 * nb}u) * 2u + (${j} & 1u)) * 4u` };
    }
    return { o: `(${j} / ${per}u) * 4u`, kk: `(${j} % ${per}u) * 4u` };
  }
  if (op.contiguousIsK && w === 4) {
    const per = BK / 4;
    if (outer % 16 === 0 && per % 2 === 0) {
      // 16 rows fastest, then k-vec4s: a warp reads 32 contiguous bytes of 16 rows, and its four scalar
      // stores per vec4 land in 32 distinct banks when S % 8 == 4 (the two k-vec4s are 16 banks apart).
      return { o: `((${j} & 15u) + (${j} / ${16 * per}u) * 16u)`, kk: `((${j} >> 4u) % ${per}u) * 4u` };
    }
    return { o: `(${j} / ${per}u)`, kk: `(${j} % ${per}u) * 4u` };
  }
  if (op.contiguousIsK) return { o: `(${j} % ${outer}u)`, kk: `(${j} / ${outer}u)` };
  const per = outer / w;
  return { o: `(${j} % ${per}u) * ${w}u`, kk: `(${j} / ${per}u)` };
}

/** Global loads of an operand's slice starting at K offset `k0` into its registers, bounds-checked where needed. */
function operandLoads(
  L: MatmulLayout,
  op: Operand,
  rounds: number,
  regs: number,
  coords: (r: number) => { o: string; kk: string },
  k0: string,
): string[] {
  const src = op.which === "A" ? "a" : "b", zero = op.w === 4 ? "vec4f(0.0)" : "0.0";
  const out: string[] = [];
  for (let r = 0; r < rounds; r++) {
    const { o, kk } = coords(r);
    out.push(`  { let o = ${op.o0} + ${o}; let kg = ${k0} + ${kk};`);
    for (let i = 0; i < regs; i++) {
      const oi = i ? `(o + ${i}u)` : "o";
      const inb = [op.check ? `${oi} < ${op.limit}u` : "", L.checkK ? `kg < ${L.spec.k}u` : ""].filter(Boolean)
        .join(" && ");
      const idx = op.contiguousIsK
        ? `${op.base} + ${oi} * ${op.stride}u + kg`
        : `${op.base} + kg * ${op.stride}u + ${oi}`;
      const ld = op.w === 4 ? `${src}[(${idx}) / 4u]` : `${src}[${idx}]`;
      out.push(`    r${op.which}${r}_${i} = ${inb ? `select(${zero}, ${ld}, ${inb})` : ld};`);
    }
    out.push("  }");
  }
  return out;
}

/** Stores of an operand's registers into its workgroup tile `buf`, transposing K-contiguous rows to k-major. */
function operandStores(
  op: Operand,
  rounds: number,
  block: boolean,
  coords: (r: number) => { o: string; kk: string },
  buf: string,
): string[] {
  const out: string[] = [];
  const at = (k: string) => op.tile.at(buf, k, "o");
  for (let r = 0; r < rounds; r++) {
    const { o, kk } = coords(r);
    out.push(`  { let o = ${o}; let kk = ${kk};`);
    const reg = (i: number) => `r${op.which}${r}_${i}`;
    if (block) {
      // 4x4 transpose in registers: row c of the tile gets element c of each of the 4 loaded rows.
      for (let c = 0; c < 4; c++) {
        const vals = [0, 1, 2, 3].map((i) => `${reg(i)}[${c}]`).join(", ");
        out.push(`    ${at(`(kk + ${c}u)`)} = vec4f(${vals});`);
      }
    } else if (op.contiguousIsK && op.w === 4) {
      for (let c = 0; c < 4; c++) out.push(`    ${at(`(kk + ${c}u)`)}[o & 3u] = ${reg(0)}[${c}];`);
    } else if (op.w === 4) {
      out.push(`    ${at("kk")} = ${reg(0)};`);
    } else {
      out.push(`    ${at("kk")}[o & 3u] = ${reg(0)};`);
    }
    out.push("  }");
  }
  return out;
}

/**
 * A "dot" operand: vec4 loads along K, k-vec4s fastest (a warp reads whole 128-byte row segments), stored as is.
 * `outer` is BM or BN, `limit` M or N, `base` the batch's flat start, `o0` m0 or n0.
 */
function dotOperandCode(
  L: MatmulLayout,
  which: "A" | "B",
  outer: number,
  limit: number,
  base: string,
  o0: string,
  check: boolean,
): OperandCode {
  const { T } = L, BK = L.tile.bk, K = L.spec.k;
  const src = which === "A" ? "a" : "b", per = BK / 4, jobs = outer * per;
  if (jobs % T) throw new Error(`Matmul tile ${JSON.stringify(L.tile)} does not divide the ${which} loads`);
  const rounds = jobs / T;
  const decls = Array.from({ length: rounds }, (_, r) => `  var r${which}${r}: vec4f;`);
  const coords = (r: number) => `let j = lid${r ? ` + ${r * T}u` : ""}; let o = j / ${per}u; let kv = j % ${per}u;`;
  const load = (k0: string) =>
    Array.from({ length: rounds }, (_, r) => {
      const inb = [check ? `${o0} + o < ${limit}u` : "", L.checkK ? `${k0} + kv * 4u < ${K}u` : ""].filter(Boolean);
      const ld = `${src}[(${base} + (${o0} + o) * ${K}u + ${k0} + kv * 4u) / 4u]`;
      return `  { ${coords(r)} r${which}${r} = ${
        inb.length ? `select(vec4f(0.0), ${ld}, ${inb.join(" && ")})` : ld
      }; }`;
    });
  const store = (buf: string) =>
    Array.from(
      { length: rounds },
      (_, r) =>
        `  { ${coords(r)} ${which}s${bufIndex(buf)}[(o & 3u) * ${outer / 4}u + (o >> 2u)][kv] = r${which}${r}; }`,
    );
  return { decls, load, store };
}

/**
 * The storage bindings: a, b (read), c (read-write), then r (the addend) or h (the gate's packed input), the
 * RoPE positions and table, and/or w (the stream-K workspace); with RoPE, the functions its stores call.
 */
function matmulBindings(L: MatmulLayout): string {
  const cType = L.spec.n % 4 === 0 ? "vec4f" : "f32";
  return bindings([
    read("a", L.wA === 4 ? "vec4f" : "f32"),
    read("b", L.wB === 4 ? "vec4f" : "f32"),
    readWrite("c", cType),
    ...epilogueBindings(L.spec, cType),
    ...(L.sk ? [readWrite("w", "vec4f")] : []),
  ]) + epilogueFunctions(L.spec, L.spec.m);
}

/**
 * What a launch applies to the outputs it finishes, besides storing them: the main kernel to its whole tiles, the
 * stream-K fixup to the tail tiles. At most one of the three (each check refuses the others with it).
 */
type Epilogue = Pick<MatmulSpec, "addend" | "gateBackward" | "rope">;

/** The epilogue's bindings, which follow c: the addend r, the gate's packed input h, or RoPE's positions and table. */
function epilogueBindings(e: Epilogue, cType: string): Binding[] {
  if (e.addend) return [read("r", cType)];
  if (e.gateBackward) return [read("h", "vec4f")];
  return e.rope ? [read("positions", "i32"), read("ropeTable", "vec4f")] : [];
}

/** With RoPE, the WGSL functions its stores call (after the bindings), else nothing. */
function epilogueFunctions(e: Epilogue, m: number): string {
  return e.rope ? `\n${ropeEpilogueFunctions(e.rope, m)}` : "";
}

/** The kernel name's suffix for the epilogue. */
function epilogueSuffix(e: Epilogue): string {
  return e.addend ? "_add" : e.gateBackward ? "_gateBwd" : e.rope ? "_rope" : "";
}

/**
 * What the epilogue adds to a launch that finishes `elements` outputs of C (n columns): an add and a read for each
 * addend element; the gate's backward as its own kernel counts it, 12 FLOPs, two elements of h read and two of dh
 * written in place of one of C; RoPE's share ({@linkcode ropeCost}).
 */
function epilogueCost(e: Epilogue, elements: number, n: number): KernelCost {
  const added = e.addend ? elements : 0, gated = e.gateBackward ? elements : 0;
  const rope = e.rope ? ropeCost(e.rope, elements / n, n) : { flops: 0, bytes: 0 };
  return { flops: added + 12 * gated + rope.flops, bytes: (added + 3 * gated) * ELEMENT_BYTES + rope.bytes };
}

/**
 * The WGSL functions of the RoPE epilogue: `rope_position(row)` (C's rows past M read a valid index), `rope_cs(p,
 * col)` the table vec4 of the two pairs at (p, col..col+3) (NaN for a position outside the table), and
 * `rope_turn(v, cs, col)` the rotated vec4, or v unchanged past the rotated columns. The stores load every row's
 * position and then a row's table entries before its stores: a store may alias a later load as far as the
 * compiler knows, so loads left between stores each wait for the one before.
 */
function ropeEpilogueFunctions(rope: MatmulRope, m: number): string {
  const position = rope.cycle > 0 ? `positions[row % ${rope.cycle}u]` : `positions[min(row, ${m - 1}u)]`;
  return `fn rope_position(row: u32) -> i32 { return ${position}; }
fn rope_cs(p: i32, col: u32) -> vec4f {
  if (col >= ${rope.columns}u) { return vec4f(1.0, 0.0, 1.0, 0.0); }
  if (p < 0 || p >= ${rope.tableRows}) { return vec4f(bitcast<f32>(0x7fc00000u)); }
  return ropeTable[u32(p) * ${rope.headDim / 4}u + (col % ${rope.headDim}u) / 4u];
}
fn rope_turn(v: vec4f, cs: vec4f, col: u32) -> vec4f {
  if (col >= ${rope.columns}u) { return v; }
  let c = cs.xz;
  let s = cs.yw;
  return ${ropePairs("v", "c", "s")};
}`;
}

/** The entry point up to the K loop: the thread's coordinates, its tile (unless stream-K), batch bases. */
function matmulPrologue(L: MatmulLayout): string[] {
  const { v, tx, grid, sk } = L, { bm: BM, bn: BN } = L.tile, [gx, gy, gz] = grid.index;
  const lines = [
    `@compute @workgroup_size(${tx}, ${L.ty})`,
    "fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) l: vec3u, " +
    "@builtin(local_invocation_index) lid: u32) {",
  ];
  if (!sk && !L.swizzle && grid.guard) lines.push(`  ${grid.guard}`);
  const warpRows = v.warpRows ?? 0;
  if (warpRows) {
    // Warp w covers a warpRows x wc block of the thread grid; blocks run row-major over the grid.
    const wc = 32 / warpRows, across = tx / wc;
    lines.push(`  let w = lid / 32u; let wl = lid % 32u;`);
    lines.push(
      `  let lx = (w % ${across}u) * ${wc}u + wl % ${wc}u; let ly = (w / ${across}u) * ${warpRows}u + wl / ${wc}u;`,
    );
  } else lines.push("  let lx = l.x; let ly = l.y;");
  if (sk) {
    // Tile coordinates come per segment, in the stream-K loop.
  } else if (L.swizzle) {
    // Groups of G tile-rows run column by column, so concurrent workgroups share A rows and B columns in L2.
    const G = v.swizzle, width = G * L.tilesN;
    lines.push(`  let grp = wid.x / ${width}u; let first = grp * ${G}u; let gs = min(${L.tilesM}u - first, ${G}u);`);
    lines.push(`  let inG = wid.x % ${width}u;`);
    lines.push(`  let n0 = (inG / gs) * ${BN}u; let m0 = (first + inG % gs) * ${BM}u;`);
  } else lines.push(`  let n0 = ${gx} * ${BN}u; let m0 = ${gy} * ${BM}u;`);
  lines.push(`  let batch = ${L.splits > 1 ? "0u" : gz};`);
  lines.push(`  let baseA = batch * ${L.spec.batchStrideA}u; let baseB = batch * ${L.spec.batchStrideB}u;`);
  return lines;
}

/**
 * Which operand loads are checked against M and N. A load past M or N (in bounds of the buffer, or clamped by
 * WebGPU's robust buffer access) feeds only outputs past M or N, whose stores are checked, so the check can go: the
 * 10000-word TinyStories head's forward (a ragged last column of tiles) takes 2.002 ms without it on the H200, 2.120
 * with it. Kernels with transposed A (the weight gradients) run faster with their checks: the head's weight gradient
 * takes 2.045 ms checked, 2.222 unchecked (bench/RESULTS.md).
 */
function loadChecks(L: MatmulLayout): { m: boolean; n: boolean } {
  return L.spec.transA ? { m: L.checkM, n: L.checkN } : { m: false, n: false };
}

/** The operands' load and store code: "dot" ones, or "outer" ones through the variant's shared tiles. */
function matmulOperands(L: MatmulLayout): { a: OperandCode; b: OperandCode; tileA: SharedTile; tileB: SharedTile } {
  const { spec, tile, dot } = L, { m: M, n: N, k: K, transA, transB } = spec;
  const tileA = sharedTile(L, "As", tile.bm, L.ty, L.gm, L.rowSpacing);
  const tileB = sharedTile(L, "Bs", tile.bn, L.tx, L.gn, L.colSpacing);
  const checks = loadChecks(L);
  const a = dot ? dotOperandCode(L, "A", tile.bm, M, "baseA", "m0", checks.m) : operandCode(L, {
    which: "A",
    w: L.wA,
    contiguousIsK: !transA,
    outer: tile.bm,
    tile: tileA,
    limit: M,
    stride: transA ? M : K,
    base: "baseA",
    o0: "m0",
    check: checks.m,
  });
  const b = dot ? dotOperandCode(L, "B", tile.bn, N, "baseB", "n0", checks.n) : operandCode(L, {
    which: "B",
    w: L.wB,
    contiguousIsK: transB,
    outer: tile.bn,
    tile: tileB,
    limit: N,
    stride: transB ? K : N,
    base: "baseB",
    o0: "n0",
    check: checks.n,
  });
  return { a, b, tileA, tileB };
}

/**
 * The K range of the workgroup (`kBegin`, `nSteps`): all of K, its split-K chunk, or for stream-K the head of the
 * loop over the tile segments of its iterations [it, itEnd) of the flattened (tile, k-step) space: one whole tile
 * for a data-parallel workgroup, a 1/units share of the tail's iterations for a stream-K one.
 */
function kRange(L: MatmulLayout): string[] {
  const { sk, tile: { bm: BM, bn: BN, bk: BK } } = L;
  if (sk) {
    const { kIters, dataParallel: D, tail, units: U } = sk;
    const iters = tail * kIters, D0 = D * kIters;
    return [
      "  var it: u32; var itEnd: u32;",
      `  if (wid.x < ${D}u) { it = wid.x * ${kIters}u; itEnd = it + ${kIters}u; } else {`,
      `    let u = wid.x - ${D}u; it = ${D0}u + (u * ${iters}u) / ${U}u; itEnd = ${D0}u + ((u + 1u) * ${iters}u) / ${U}u;`,
      "  }",
      "  var seg = 0u;",
      "  loop {",
      "  if (it >= itEnd) { break; }",
      `  let tile = it / ${kIters}u; let kBegin = (it % ${kIters}u) * ${BK}u;`,
      `  let segEnd = min(itEnd, (tile + 1u) * ${kIters}u); let nSteps = segEnd - it;`,
      `  let m0 = (tile / ${sk.tilesN}u) * ${BM}u; let n0 = (tile % ${sk.tilesN}u) * ${BN}u;`,
      ...accumulators(L, false),
    ];
  }
  if (L.splits > 1) {
    return [
      `  let kBegin = ${L.grid.index[2]} * ${L.chunk}u;`,
      `  let nSteps = min(${L.steps}u, (${L.spec.k}u - kBegin + ${BK - 1}u) / ${BK}u);`,
    ];
  }
  return [`  let kBegin = 0u; let nSteps = ${L.steps}u;`];
}

/** The TM x TN/4 vec4 accumulators of a thread: declared, or reset for the next stream-K segment. */
function accumulators(L: MatmulLayout, declare: boolean): string[] {
  const lines: string[] = [];
  for (let i = 0; i < L.tile.tm; i++) {
    for (let j = 0; j < L.gn; j++) {
      lines.push(declare ? `  var acc${i}_${j} = vec4f(0.0);` : `  acc${i}_${j} = vec4f(0.0);`);
    }
  }
  return lines;
}

/** One BK step of FMAs from workgroup buffer `buf`, every index a constant. */
function innerProduct(L: MatmulLayout, tileA: SharedTile, tileB: SharedTile, buf: string): string[] {
  const { bm: BM, bn: BN, bk: BK, tm: TM, tn: TN } = L.tile, { gm, gn } = L;
  const lines: string[] = [];
  if (L.dot) {
    // Thread row i = g*rowSpacing + ly*4 + r sits at physical row r*BM/4 + g*rowSpacing/4 + ly (columns alike).
    const xyzw = "xyzw";
    for (let kv = 0; kv < BK / 4; kv++) {
      for (let i = 0; i < TM; i++) {
        const row = (i % 4) * (BM / 4) + (Math.floor(i / 4) * L.rowSpacing) / 4;
        lines.push(`  let a${kv}_${i} = As${bufIndex(buf)}[${row}u + ly][${kv}];`);
      }
      for (let j = 0; j < TN; j++) {
        const row = (j % 4) * (BN / 4) + (Math.floor(j / 4) * L.colSpacing) / 4;
        lines.push(`  let b${kv}_${j} = Bs${bufIndex(buf)}[${row}u + lx][${kv}];`);
      }
      for (let i = 0; i < TM; i++) {
        for (let j = 0; j < TN; j++) {
          lines.push(`  acc${i}_${Math.floor(j / 4)}.${xyzw[j % 4]} += dot(a${kv}_${i}, b${kv}_${j});`);
        }
      }
    }
    return lines;
  }
  for (let kk = 0; kk < BK; kk++) {
    for (let g = 0; g < gm; g++) lines.push(`  let a${kk}_${g} = ${tileA.read(buf, kk, g, "ly")};`);
    for (let g = 0; g < gn; g++) lines.push(`  let b${kk}_${g} = ${tileB.read(buf, kk, g, "lx")};`);
    for (let i = 0; i < TM; i++) {
      const av = `a${kk}_${Math.floor(i / 4)}[${i % 4}]`;
      for (let j = 0; j < gn; j++) lines.push(`  acc${i}_${j} = fma(vec4f(${av}), b${kk}_${j}, acc${i}_${j});`);
    }
  }
  return lines;
}

/** What a pipeline needs: the loads of a K offset, the stores into a buffer, the FMAs from a buffer. */
interface StepCode {
  load: (k0: string) => string[];
  store: (buf: string) => string[];
  compute: (buf: string) => string[];
}

/** The K loop of each pipeline (see {@linkcode MatmulVariant.pipeline}). */
const pipelines: Record<MatmulVariant["pipeline"], (BK: number, c: StepCode) => string[]> = {
  none: (BK, c) => [
    "  for (var s = 0u; s < nSteps; s++) {",
    `  let k0 = kBegin + s * ${BK}u;`,
    ...c.load("k0"),
    ...c.store(""),
    "  workgroupBarrier();",
    "  {",
    ...c.compute(""),
    "  }",
    "  workgroupBarrier();",
    "  }",
  ],
  prefetch: (BK, c) => [
    ...c.load("kBegin"),
    "  for (var s = 0u; s < nSteps; s++) {",
    ...c.store(""),
    "  workgroupBarrier();",
    `  if (s + 1u < nSteps) {`,
    ...c.load(`kBegin + (s + 1u) * ${BK}u`),
    "  }",
    "  {",
    ...c.compute(""),
    "  }",
    "  workgroupBarrier();",
    "  }",
  ],
  // Step s computes from buffer s & 1 while the loads for step s + 1 are in flight, then stores them into the
  // other buffer, which nobody reads until after the barrier that ends step s.
  double: (BK, c) => [
    ...c.load("kBegin"),
    ...c.store("0u"),
    "  workgroupBarrier();",
    "  for (var s = 0u; s < nSteps; s++) {",
    "  let cur = s & 1u;",
    `  let more = s + 1u < nSteps;`,
    "  if (more) {",
    ...c.load(`kBegin + (s + 1u) * ${BK}u`),
    "  }",
    "  {",
    ...c.compute("cur"),
    "  }",
    "  if (more) {",
    ...c.store("1u - cur"),
    "  }",
    "  workgroupBarrier();",
    "  }",
  ],
  // Two steps per iteration: step s computes from buffer 0 while step s + 1 is loaded and stored into buffer 1,
  // then step s + 1 computes from buffer 1 while step s + 2 goes into buffer 0. Each store targets the buffer
  // whose readers finished before the last barrier, so one barrier per step suffices.
  double2: (BK, c) => {
    const half = (h: 1 | 2) => {
      const [cur, next] = h === 1 ? ["0u", "1u"] : ["1u", "0u"];
      return [
        `  let more${h} = s + ${h}u < nSteps;`,
        `  if (more${h}) {`,
        ...c.load(`kBegin + (s + ${h}u) * ${BK}u`),
        "  }",
        "  {",
        ...c.compute(cur),
        "  }",
        `  if (more${h}) {`,
        ...c.store(next),
        "  }",
        "  workgroupBarrier();",
      ];
    };
    return [
      ...c.load("kBegin"),
      ...c.store("0u"),
      "  workgroupBarrier();",
      "  for (var s = 0u; s < nSteps; s += 2u) {",
      ...half(1),
      "  if (!more1) { break; }",
      ...half(2),
      "  }",
    ];
  },
};

/**
 * The stores of the accumulators: thread rows are m0 + g*rowSpacing + ly*4 + r, columns n0 + g*colSpacing +
 * lx*4 + (0..3). A stream-K workgroup writes its partial tile to the workspace instead, and closes the segment loop.
 */
function matmulEpilogue(L: MatmulLayout): string[] {
  const { sk } = L;
  if (!sk) return storeC(L);
  // A stream-K segment writes its whole partial tile (no bounds: the fixup reads only what is inside C) to
  // its slot, rows of BN/4 vec4s.
  const { bm: BM, bn: BN, tm: TM } = L.tile;
  const lines = [
    `  if (wid.x >= ${sk.dataParallel}u) {`,
    `  let slot = ((wid.x - ${sk.dataParallel}u) * 2u + seg) * ${(BM * BN) / 4}u + ly * ${BN}u + lx;`,
  ];
  for (let i = 0; i < TM; i++) {
    const row = Math.floor(i / 4) * L.rowSpacing + (i % 4);
    for (let j = 0; j < L.gn; j++) lines.push(`  w[slot + ${(row * BN + j * L.colSpacing) / 4}u] = acc${i}_${j};`);
  }
  return [...lines, "  } else {", ...storeC(L), "  }", "  it = segEnd; seg += 1u;", "  }"];
}

/** The WGSL added to a value stored at C[idx]: the addend's element r[idx] with an addend, else nothing. */
function addendTerm(addend: boolean | undefined): (idx: string) => string {
  return (idx) => addend ? ` + r[${idx}]` : "";
}

/**
 * The gate's backward applied to the dG vec4 `dg` at (`row`, `col`) of an (M, `n`) product (see
 * {@linkcode MatmulSpec.gateBackward}): reads the two vec4s of h (M, 2n) and writes the two of dh, bound as c.
 * h loads beside its stores, not a row ahead as RoPE's table does: holding the next row's vec4s of h costs more
 * registers than the waiting loads cost time (bench/RESULTS.md).
 */
function gateBackwardStore(n: number, dg: string): string {
  const { da, db } = siluGateGradWgsl(dg, "hu", "hv", "hs");
  return `{ let hi = (row * ${2 * n}u + col) / 4u; let hu = h[hi]; let hv = h[hi + ${n / 4}u]; ` +
    `let hs = ${sigmoidWgsl("hu")}; c[hi] = ${da}; c[hi + ${n / 4}u] = ${db}; }`;
}

/**
 * The accumulators into C (plus the addend r), vec4 stores where N allows, bounds-checked where needed; with the
 * gate's backward, into dh instead.
 */
function storeC(L: MatmulLayout): string[] {
  const { m: M, n: N } = L.spec, { checkM, checkN } = L;
  const plusR = addendTerm(L.spec.addend);
  const gate = L.spec.gateBackward;
  // With the gate's backward there is one batch and C's rows are dh's (2N wide): no base offset.
  const lines = gate ? [] : [`  let baseC = ${L.splits > 1 ? L.grid.index[2] : "batch"} * ${M * N}u;`];
  const rowOf = (i: number) => `m0 + ${Math.floor(i / 4) * L.rowSpacing + (i % 4)}u + ly * 4u`;
  const colOf = (j: number) => `n0 + ${j * L.colSpacing}u + lx * 4u`;
  const rope = !!L.spec.rope;
  // RoPE's table entries for row i load before row i - 1's stores (see ropeEpilogueFunctions).
  const ahead = (i: number) =>
    rope && i < L.tile.tm
      ? Array.from({ length: L.gn }, (_, j) => `  let cs${i}_${j} = rope_cs(rp${i}, ${colOf(j)});`)
      : [];
  if (rope) { for (let i = 0; i < L.tile.tm; i++) lines.push(`  let rp${i} = rope_position(${rowOf(i)});`); }
  lines.push(...ahead(0));
  for (let i = 0; i < L.tile.tm; i++) {
    lines.push(...ahead(i + 1));
    lines.push(`  { let row = ${rowOf(i)};`);
    if (checkM) lines.push(`  if (row < ${M}u) {`);
    for (let j = 0; j < L.gn; j++) {
      lines.push(`    { let col = ${colOf(j)};`);
      if (gate) {
        const store = gateBackwardStore(N, `acc${i}_${j}`);
        lines.push(`      ${checkN ? `if (col < ${N}u) ${store}` : store}`);
      } else if (N % 4 === 0) {
        const idx = `(baseC + row * ${N}u + col) / 4u`;
        const value = rope ? `rope_turn(acc${i}_${j}, cs${i}_${j}, col)` : `acc${i}_${j}`;
        const store = `c[${idx}] = ${value}${plusR(idx)};`;
        lines.push(`      ${checkN ? `if (col < ${N}u) { ${store} }` : store}`);
      } else {
        for (let q = 0; q < 4; q++) {
          const idx = `baseC + row * ${N}u + col + ${q}u`;
          lines.push(`      if (col + ${q}u < ${N}u) { c[${idx}] = acc${i}_${j}[${q}]${plusR(idx)}; }`);
        }
      }
      lines.push("    }");
    }
    if (checkM) lines.push("  }");
    lines.push("  }");
  }
  return lines;
}

/**
 * For each tail tile of a stream-K schedule, the stream-K workgroups whose K range touches it (each writes one
 * partial tile for it), and the tile's elements inside C.
 */
function streamKTailTiles(
  shape: { m: number; n: number },
  tile: MatmulTile,
  sk: ReturnType<typeof streamKSchedule>,
): { partials: number; elements: number }[] {
  const L = sk.tail * sk.kIters, U = sk.units;
  const start = (u: number) => Math.floor((u * L) / U);
  const unitOf = (i: number) => Math.floor(((i + 1) * U - 1) / L);
  return Array.from({ length: sk.tail }, (_, t) => {
    const first = t * sk.kIters;
    let partials = 0;
    for (let u = unitOf(first); u <= unitOf(first + sk.kIters - 1); u++) if (start(u) !== start(u + 1)) partials++;
    const index = sk.dataParallel + t;
    const rows = Math.min(tile.bm, shape.m - Math.floor(index / sk.tilesN) * tile.bm);
    const cols = Math.min(tile.bn, shape.n - (index % sk.tilesN) * tile.bn);
    return { partials, elements: rows * cols };
  });
}

/**
 * A launch's cost: 2 M N K FLOPs per batch, plus one per output for an addend; A and B read once (a batch stride of
 * 0 reads one), and what the launch writes: C (split-K: every layer of partial products; stream-K: the whole tiles'
 * part of C and a partial tile for each stream-K segment), plus the addend read (stream-K: the whole tiles' part).
 * The gate's backward costs what its own kernel does for the outputs it finishes (stream-K: the whole tiles'): 12
 * FLOPs each, two elements of h read and two of dh written in place of one of C.
 */
function matmulCost(L: MatmulLayout): KernelCost {
  const { batch, m: M, n: N, k: K } = L.spec;
  const a = (L.spec.batchStrideA === 0 ? 1 : batch) * M * K, b = (L.spec.batchStrideB === 0 ? 1 : batch) * K * N;
  let written = (L.splits > 1 ? L.z : batch) * M * N, whole = batch * M * N;
  if (L.sk) {
    const tail = streamKTailTiles(L.spec, L.tile, L.sk);
    const tileElements = L.tile.bm * L.tile.bn;
    whole = M * N - tail.reduce((sum, t) => sum + t.elements, 0);
    written = whole + tail.reduce((sum, t) => sum + t.partials * tileElements, 0);
  }
  // Stream-K's fixup applies the epilogue to the tail tiles.
  const epilogue = epilogueCost(L.spec, whole, N);
  return {
    flops: 2 * batch * M * N * K + epilogue.flops,
    bytes: (a + b + written) * ELEMENT_BYTES + epilogue.bytes,
  };
}

/**
 * RoPE's share of a launch storing `rows` rows of C: 3 FLOPs per rotated value (as the RoPE kernel counts 6 per
 * pair), and the rows' positions and at most one table row each read.
 */
function ropeCost(rope: MatmulRope, rows: number, n: number): KernelCost {
  const rotated = Math.min(rope.columns, n);
  const tableRows = Math.min(rope.cycle > 0 ? rope.cycle : rows, rope.tableRows, rows);
  return { flops: 3 * rows * rotated, bytes: (rows + tableRows * rope.headDim) * ELEMENT_BYTES };
}

/**
 * Generates the kernel (see the module doc for the layout). Bindings: a, b (read), c (write; dh with the gate's
 * backward); r (read) with an addend or h (read) with the gate's backward; w (read-write) with stream-K. Cost: see
 * `matmulCost`.
 */
function generateMatmulKernel(spec: MatmulSpec): KernelSource {
  const L = matmulLayout(spec);
  const { tile, sk, splits } = L;
  const ops = matmulOperands(L);
  const decls = L.dot
    ? [dotTileDecl(L, "As", tile.bm), dotTileDecl(L, "Bs", tile.bn)]
    : [ops.tileA.decl, ops.tileB.decl];
  const step: StepCode = {
    load: (k0) => [...ops.a.load(k0), ...ops.b.load(k0)],
    store: (buf) => [...ops.a.store(buf), ...ops.b.store(buf)],
    compute: (buf) => innerProduct(L, ops.tileA, ops.tileB, buf),
  };
  const lines = [
    matmulBindings(L),
    ...decls,
    ...matmulPrologue(L),
    ...accumulators(L, true),
    ...ops.a.decls,
    ...ops.b.decls,
    ...kRange(L),
    ...pipelines[L.v.pipeline](tile.bk, step),
    ...matmulEpilogue(L),
    "}",
  ];
  const { transA, transB } = spec;
  return {
    name: `matmul_${tile.bm}x${tile.bn}${transA ? "_tA" : ""}${transB ? "_tB" : ""}${splits > 1 ? "_splitK" : ""}${
      epilogueSuffix(spec)
    }${sk ? "_streamK" : ""}`,
    source: lines.join("\n") + "\n",
    cost: matmulCost(L),
    // The K loop (a stream-K workgroup's range is at most one tile's K, in up to two segments).
    loops: { iterations: sk ? sk.kIters + 2 : L.steps, of: `an inner dim of ${spec.k}` },
    workgroups: sk ? [sk.dataParallel + sk.units, 1, 1] : L.swizzle ? [L.tilesM * L.tilesN, 1, L.z] : L.grid.workgroups,
  };
}

/**
 * {@linkcode generateMatmulKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { matmulKernel } from "./matmul.ts";
 * const spec = { batch: 1, m: 33, n: 65, k: 17, transA: false, transB: true, batchStrideA: 0, batchStrideB: 0 };
 * const k = matmulKernel(spec); // the small tile: 3 x 2 workgroups
 * if (k.name !== "matmul_32x32_tB" || k.workgroups.join() !== "3,2,1") throw new Error(`${k.name} ${k.workgroups}`);
 * ```
 */
export const matmulKernel: (spec: MatmulSpec) => KernelSource = memoized(generateMatmulKernel);

/** The second pass of a stream-K matmul of (m, n, k) with `tile`s over `units` resident workgroups. */
export interface StreamKFixupSpec {
  m: number;
  n: number;
  k: number;
  tile: MatmulTile;
  units: number;
  /** Add a matrix shaped like C (binding r) to the tail tiles, as the main kernel adds it to the whole ones. */
  addend?: boolean;
  /**
   * Apply the gate's backward to the tail tiles' sums, as the main kernel does to the whole ones (see
   * {@linkcode MatmulSpec.gateBackward}): c is dh (m, 2n), and binding h (m, 2n) is read. Needs n % 4 == 0.
   */
  gateBackward?: boolean;
  /** Rotate the tail tiles as the main kernel rotates the whole ones (needs N a multiple of 4). */
  rope?: MatmulRope;
}

/**
 * The second pass of a stream-K matmul (see {@linkcode streamKSchedule}): sums each tail tile's partial products
 * from the workspace into C, one thread per vec4 of a tile. The workgroups whose iteration ranges touch tile t are
 * found arithmetically: workgroup u starts at iteration floor(u L / U), so iteration i belongs to the last u with
 * floor(u L / U) <= i, which is floor(((i + 1) U - 1) / L). A workgroup's partial of t is in its first slot when
 * its range starts inside t, else in its second. The workspace holds plain partial products, so the gate's
 * backward, when asked, applies to their sum. Bindings: w (read), C (read-write; dh with the gate's backward), then
 * r (read) with an addend or h (read) with the gate's backward. Cost: an add for each partial tile element summed
 * (and each addend element, or the gate's 12 FLOPs per element); the partials (and the tail's addend, or two
 * elements of h per element) read and the tail tiles of C (or two elements of dh per element) written once.
 *
 * @example
 * ```ts
 * import { largeTiles, matmulStreamKFixupKernel } from "./matmul.ts";
 * const k = matmulStreamKFixupKernel({ m: 4096, n: 4096, k: 4096, tile: largeTiles.wide, units: 132 });
 * if (k.name !== "matmul_streamK_fixup_128x256") throw new Error(k.name); // a thread per vec4 of the 116 tail tiles
 * ```
 */
export const matmulStreamKFixupKernel: (spec: StreamKFixupSpec) => KernelSource = memoized((spec) => {
  const { m: M, n: N, tile } = spec;
  const { bm: BM, bn: BN } = tile;
  const sk = streamKSchedule(spec, tile, spec.units);
  const { kIters, dataParallel: D, tail, units: U, tilesN } = sk;
  const L = tail * kIters, perTile = (BM * BN) / 4, threads = tail * perTile;
  const grid = flatGrid(Math.ceil(threads / 256));
  const vec = N % 4 === 0;
  if (spec.gateBackward && (!vec || spec.addend)) {
    throw new Error("A stream-K fixup with the gate's backward needs n % 4 == 0 and no addend");
  }
  const start = (u: string) => `((${u}) * ${L}u) / ${U}u`;
  const unitOf = (i: string) => `((${i} + 1u) * ${U}u - 1u) / ${L}u`;
  const plusR = addendTerm(spec.addend);
  if (spec.rope && (!vec || spec.addend)) throw new Error("A stream-K fixup with RoPE needs N % 4 == 0 and no addend");
  if (spec.rope && spec.gateBackward) throw new Error("A stream-K fixup applies RoPE or the gate's backward, not both");
  const sum = spec.rope ? "rope_turn(sum, rope_cs(rope_position(row), col), col)" : "sum";
  const store = spec.gateBackward
    ? [`  ${gateBackwardStore(N, "sum")}`]
    : vec
    ? [`  c[(row * ${N}u + col) / 4u] = ${sum}${plusR(`(row * ${N}u + col) / 4u`)};`]
    : [0, 1, 2, 3].map((q) => {
      const idx = `row * ${N}u + col + ${q}u`;
      return `  if (col + ${q}u < ${N}u) { c[${idx}] = sum[${q}]${plusR(idx)}; }`;
    });
  const cType = vec ? "vec4f" : "f32";
  const source = `${bindings([read("w", "vec4f"), readWrite("c", cType), ...epilogueBindings(spec, cType)])}${
    epilogueFunctions(spec, M)
  }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = ${grid.index} * 256u + lid;
  if (idx >= ${threads}u) { return; }
  let t = idx / ${perTile}u; let e = idx % ${perTile}u;
  let row = ((${D}u + t) / ${tilesN}u) * ${BM}u + e / ${BN / 4}u;
  let col = ((${D}u + t) % ${tilesN}u) * ${BN}u + (e % ${BN / 4}u) * 4u;
  if (row >= ${M}u || col >= ${N}u) { return; }
  let first = t * ${kIters}u;
  var sum = vec4f(0.0);
  for (var u = ${unitOf("first")}; u <= ${unitOf(`first + ${kIters - 1}u`)}; u++) {
    let s = ${start("u")};
    if (s == ${start("u + 1u")}) { continue; } // an empty range (fewer tail iterations than workgroups)
    sum += w[(u * 2u + select(1u, 0u, s >= first)) * ${perTile}u + e];
  }
${store.join("\n")}
}
`;
  const tailTiles = streamKTailTiles(spec, tile, sk);
  const sums = tailTiles.reduce((sum, t) => sum + t.partials * t.elements, 0);
  const written = tailTiles.reduce((sum, t) => sum + t.elements, 0);
  const epilogue = epilogueCost(spec, written, N);
  return {
    name: `matmul_streamK_fixup_${BM}x${BN}${epilogueSuffix(spec)}`,
    source,
    workgroups: grid.workgroups,
    cost: { flops: sums + epilogue.flops, bytes: (sums + written) * ELEMENT_BYTES + epilogue.bytes },
  };
});

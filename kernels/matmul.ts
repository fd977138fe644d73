/**
 * Generated, register-blocked batched matmul: `C[b] = A[b] @ B[b]` with either operand optionally transposed in
 * storage, for any M, N, K.
 *
 * Why generated: WGSL compilers keep small arrays in registers only when every index is a constant. A kernel
 * whose inner loop indexes local arrays dynamically ran at 0.4-0.9 TFLOP/s on an H100; the same tiling with the
 * inner loops unrolled by this generator (constant indices, vec4 accumulators) reached 38 TFLOP/s
 * (../shared/device/README.md). So the generator writes out every FMA of a BK step explicitly.
 *
 * Layout: a workgroup computes a BM x BN tile of C with (BM/TM) x (BN/TN) threads; each thread owns TM x TN
 * outputs, spread as groups of 4 rows/columns spaced BM/(TM/4) apart so that neighbouring threads read
 * neighbouring vec4s of workgroup memory (no bank conflicts) and write neighbouring vec4s of C (coalesced).
 * Tiles of A and B for each BK slice of K are staged in workgroup memory as [k][m] and [k][n]. Global loads are
 * vec4 where the contiguous dimension is a multiple of 4, scalar otherwise; bounds checks are generated only
 * for the dimensions that are not multiples of the tile.
 *
 * @module
 */
import type { KernelSource } from "./common.ts";

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
  /** Workgroup-memory layout: vec4 arrays (vector reads, component writes) or f32 arrays. */
  shared?: "vec4" | "f32";
}

/** Picks the largest tile that still gives the GPU enough workgroups to fill it. */
export function chooseTile(spec: { batch: number; m: number; n: number }): MatmulTile {
  const groups = (t: MatmulTile) => spec.batch * Math.ceil(spec.m / t.bm) * Math.ceil(spec.n / t.bn);
  if (groups(matmulTiles.large) >= 132) return matmulTiles.large;
  if (groups(matmulTiles.medium) >= 64) return matmulTiles.medium;
  return spec.m * spec.n >= 64 * 64 ? matmulTiles.medium : matmulTiles.small;
}

/** Generates the kernel; bindings: A, B (read), C (write). */
export function matmulKernel(spec: MatmulSpec): KernelSource {
  const { batch, m: M, n: N, k: K, transA, transB } = spec;
  const tile = spec.tile ?? chooseTile(spec);
  const { bm: BM, bn: BN, bk: BK, tm: TM, tn: TN } = tile;
  const tx = BN / TN, ty = BM / TM, T = tx * ty;
  if (TM % 4 || TN % 4 || BM % TM || BN % TN) throw new Error(`Bad matmul tile ${JSON.stringify(tile)}`);
  const checkM = M % BM !== 0, checkN = N % BN !== 0, checkK = K % BK !== 0;
  const splits = spec.splitK ?? 1;
  if (splits > 1 && batch !== 1) throw new Error("Split-K matmul needs batch 1");
  // Chunks are whole BK slices, so a tile never straddles two chunks.
  const chunk = Math.ceil(K / splits / BK) * BK;
  const f32Shared = (spec.shared ?? "f32") === "f32";
  const sharedStore = (arr: string, idx: string, v: string) =>
    f32Shared ? `${arr}[${idx}] = ${v};` : `{ let q = ${idx}; ${arr}[q >> 2u][q & 3u] = ${v}; }`;

  // Global loads: vector width 4 where the operand's contiguous dimension allows it.
  const wA = (transA ? M : K) % 4 === 0 ? 4 : 1;
  const wB = (transB ? K : N) % 4 === 0 ? 4 : 1;
  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);

  const loadTile = (
    which: "A" | "B",
    w: number,
    contiguousIsK: boolean, // A not transposed, or B transposed: the stored rows run along K.
    outer: number, // BM or BN: tile extent of the non-K dimension.
    limit: number, // M or N.
    stride: number, // row length of the stored matrix (K when contiguousIsK, else M or N).
    base: string, // flat start of this batch's matrix.
    o0: string, // m0 or n0.
    check: boolean,
  ) => {
    const shared = which === "A" ? "As" : "Bs";
    const vecs = (outer * BK) / w;
    if (vecs % T) throw new Error(`Matmul tile ${JSON.stringify(tile)} does not divide the ${which} loads`);
    const src = which === "A" ? "a" : "b";
    for (let t = 0; t < vecs / T; t++) {
      const e = `(lid + ${t * T}u)`;
      if (contiguousIsK) {
        const per = BK / w; // vectors per stored row in the tile
        emit(`  { let r = ${e} / ${per}u; let kk = (${e} % ${per}u) * ${w}u;`);
        emit(`    let o = ${o0} + r; let kg = k0 + kk;`);
        const inb = [check ? `o < ${limit}u` : "", checkK ? `kg < ${K}u` : ""].filter(Boolean).join(" && ");
        const load = w === 4 ? `${src}[(${base} + o * ${stride}u + kg) / 4u]` : `${src}[${base} + o * ${stride}u + kg]`;
        const zero = w === 4 ? "vec4f(0.0)" : "0.0";
        emit(`    let v = ${inb ? `select(${zero}, ${load}, ${inb})` : load};`);
        if (w === 4) {
          for (let c = 0; c < 4; c++) emit(`    ${sharedStore(shared, `(kk + ${c}u) * ${outer}u + r`, `v[${c}]`)}`);
        } else emit(`    ${sharedStore(shared, `kk * ${outer}u + r`, "v")}`);
        emit("  }");
      } else {
        const per = outer / w; // vectors per K-row of the tile
        emit(`  { let kk = ${e} / ${per}u; let oo = (${e} % ${per}u) * ${w}u;`);
        emit(`    let o = ${o0} + oo; let kg = k0 + kk;`);
        const inb = [check ? `o < ${limit}u` : "", checkK ? `kg < ${K}u` : ""].filter(Boolean).join(" && ");
        const load = w === 4 ? `${src}[(${base} + kg * ${stride}u + o) / 4u]` : `${src}[${base} + kg * ${stride}u + o]`;
        const zero = w === 4 ? "vec4f(0.0)" : "0.0";
        emit(`    let v = ${inb ? `select(${zero}, ${load}, ${inb})` : load};`);
        if (w === 4 && !f32Shared) emit(`    ${shared}[(kk * ${outer}u + oo) >> 2u] = v;`);
        else if (w === 4) {
          emit(`    { let q = kk * ${outer}u + oo;`);
          for (let c = 0; c < 4; c++) emit(`      ${shared}[q + ${c}u] = v[${c}];`);
          emit("    }");
        } else emit(`    ${sharedStore(shared, `kk * ${outer}u + oo`, "v")}`);
        emit("  }");
      }
    }
  };

  const gm = TM / 4, gn = TN / 4; // vec4 groups per thread along M and N
  const rowSpacing = BM / gm, colSpacing = BN / gn;
  emit(`@group(0) @binding(0) var<storage, read> a: array<${wA === 4 ? "vec4f" : "f32"}>;`);
  emit(`@group(0) @binding(1) var<storage, read> b: array<${wB === 4 ? "vec4f" : "f32"}>;`);
  emit(`@group(0) @binding(2) var<storage, read_write> c: array<${N % 4 === 0 ? "vec4f" : "f32"}>;`);
  if (f32Shared) {
    emit(`var<workgroup> As: array<f32, ${BK * BM}>;`);
    emit(`var<workgroup> Bs: array<f32, ${BK * BN}>;`);
  } else {
    emit(`var<workgroup> As: array<vec4f, ${(BK * BM) / 4}>;`);
    emit(`var<workgroup> Bs: array<vec4f, ${(BK * BN) / 4}>;`);
  }
  emit(`@compute @workgroup_size(${tx}, ${ty})`);
  emit(
    "fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) l: vec3u, " +
      "@builtin(local_invocation_index) lid: u32) {",
  );
  emit(`  let n0 = wid.x * ${BN}u; let m0 = wid.y * ${BM}u; let batch = ${splits > 1 ? "0u" : "wid.z"};`);
  emit(`  let baseA = batch * ${spec.batchStrideA}u; let baseB = batch * ${spec.batchStrideB}u;`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < gn; j++) emit(`  var acc${i}_${j} = vec4f(0.0);`);
  if (splits > 1) emit(`  let kBegin = wid.z * ${chunk}u; let kEnd = min(kBegin + ${chunk}u, ${K}u);`);
  else emit(`  let kBegin = 0u; let kEnd = ${K}u;`);
  emit(`  for (var k0 = kBegin; k0 < kEnd; k0 += ${BK}u) {`);
  loadTile("A", wA, !transA, BM, M, transA ? M : K, "baseA", "m0", checkM);
  loadTile("B", wB, transB, BN, N, transB ? K : N, "baseB", "n0", checkN);
  emit("  workgroupBarrier();");
  for (let kk = 0; kk < BK; kk++) {
    const read = (arr: string, base: number, lane: string) =>
      f32Shared
        ? `vec4f(${[0, 1, 2, 3].map((c) => `${arr}[${base + c}u + ${lane} * 4u]`).join(", ")})`
        : `${arr}[${base / 4}u + ${lane}]`;
    for (let g = 0; g < gm; g++) emit(`  let a${kk}_${g} = ${read("As", kk * BM + g * rowSpacing, "l.y")};`);
    for (let g = 0; g < gn; g++) emit(`  let b${kk}_${g} = ${read("Bs", kk * BN + g * colSpacing, "l.x")};`);
    for (let i = 0; i < TM; i++) {
      const av = `a${kk}_${Math.floor(i / 4)}[${i % 4}]`;
      for (let j = 0; j < gn; j++) emit(`  acc${i}_${j} = fma(vec4f(${av}), b${kk}_${j}, acc${i}_${j});`);
    }
  }
  emit("  workgroupBarrier();");
  emit("  }");
  // Epilogue: thread rows are m0 + g*rowSpacing + l.y*4 + r, columns n0 + g*colSpacing + l.x*4 + (0..3).
  emit(`  let baseC = ${splits > 1 ? "wid.z" : "batch"} * ${M * N}u;`);
  for (let i = 0; i < TM; i++) {
    const g = Math.floor(i / 4), r = i % 4;
    emit(`  { let row = m0 + ${g * rowSpacing + r}u + l.y * 4u;`);
    if (checkM) emit(`  if (row < ${M}u) {`);
    for (let j = 0; j < gn; j++) {
      emit(`    { let col = n0 + ${j * colSpacing}u + l.x * 4u;`);
      if (N % 4 === 0) {
        emit(
          `      ${checkN ? `if (col < ${N}u) { ` : ""}c[(baseC + row * ${N}u + col) / 4u] = acc${i}_${j};${
            checkN ? " }" : ""
          }`,
        );
      } else {
        for (let q = 0; q < 4; q++) {
          emit(`      if (col + ${q}u < ${N}u) { c[baseC + row * ${N}u + col + ${q}u] = acc${i}_${j}[${q}]; }`);
        }
      }
      emit("    }");
    }
    if (checkM) emit("  }");
    emit("  }");
  }
  emit("}");
  return {
    name: `matmul_${BM}x${BN}${transA ? "_tA" : ""}${transB ? "_tB" : ""}${splits > 1 ? "_splitK" : ""}`,
    source: lines.join("\n") + "\n",
    workgroups: [Math.ceil(N / BN), Math.ceil(M / BM), splits > 1 ? Math.ceil(K / chunk) : batch],
  };
}

/**
 * Rotary position embedding on interleaved pairs (2k, 2k+1), reading cos/sin from a table computed on the host
 * in float64 (GPU sin/cos of large angles lose accuracy). The backward is the rotation by the opposite angle.
 * {@linkcode ropeTable} builds the table for the RoPE op and the decode step's fused q/k/v kernel alike.
 *
 * @module
 */
import {
  bindings,
  ELEMENT_BYTES,
  flatGrid,
  type KernelCost,
  type KernelSource,
  memoized,
  read,
  readWrite,
} from "./common.ts";

const WG = 256;

/**
 * The RoPE table of `rows` positions: `(cos, sin)` of `p * theta^(-2k / dim)` interleaved at
 * `[(p * dim / 2 + k) * 2]` and `[... + 1]`, computed in float64 and rounded once to f32. Kernels read it as
 * `array<vec2f>` indexed by `p * dim / 2 + k`, or, where dim is a multiple of 4, as `array<vec4f>` whose entry
 * `p * dim / 4 + j` holds pairs 2j and 2j + 1.
 *
 * @example
 * ```ts
 * import { ropeTable } from "./rope.ts"; // kernels are internal: not exported by the package
 * const t = ropeTable(10000, 4, 3); // positions 0..2, pairs k = 0, 1
 * const [cos, sin] = [t[(2 * 2 + 1) * 2], t[(2 * 2 + 1) * 2 + 1]]; // p = 2, k = 1: angle 2 * 10000^(-1/2)
 * if (Math.abs(cos - Math.cos(0.02)) > 1e-7 || Math.abs(sin - Math.sin(0.02)) > 1e-7) throw new Error("table");
 * ```
 */
export function ropeTable(theta: number, dim: number, rows: number): Float32Array {
  const half = dim / 2, out = new Float32Array(rows * half * 2);
  for (let p = 0; p < rows; p++) {
    for (let k = 0; k < half; k++) {
      const angle = p * Math.pow(theta, (-2 * k) / dim);
      out[(p * half + k) * 2] = Math.cos(angle);
      out[(p * half + k) * 2 + 1] = Math.sin(angle);
    }
  }
  return out;
}

/** Shape of a RoPE problem. */
export interface RopeSpec {
  /** Rows of `dim` values. */
  rows: number;
  /** Row length (even). */
  dim: number;
  /**
   * Row r reads position `(r / group) % cycle`: `group` consecutive rows share a position (1, or H for the heads of
   * a (..., T, H, dim) tensor), and with `cycle` > 0 the positions repeat every `cycle` groups (a (T) table shared by
   * the leading dims); 0 means one position per group.
   */
  group: number;
  /** See `group`. */
  cycle: number;
  /** Positions in the {@linkcode ropeTable}. */
  tableRows: number;
  /** Rotate by the negative angle (the backward). */
  inverse: boolean;
  /**
   * Only the first `rotated` rows of each group are rotated, the rest copied (a packed (..., T, 3, H, dim) q/k/v
   * tensor: group 3H, rotated 2H, so the values pass through); all of them when absent.
   */
  rotated?: number;
}

/**
 * 6 FLOPs per rotated pair (four multiplies, an add and a subtract), none for the rows copied through; x read and
 * out written once, each position read once, and at most one (cos, sin) row of the table per position.
 */
function ropeCost(spec: RopeSpec): KernelCost {
  const half = spec.dim / 2;
  const rotated = spec.rotated !== undefined && spec.rotated < spec.group ? spec.rotated / spec.group : 1;
  const positions = spec.cycle > 0 ? Math.min(spec.cycle, spec.rows / spec.group) : Math.ceil(spec.rows / spec.group);
  const tableRows = Math.min(positions, spec.tableRows);
  return {
    flops: 6 * spec.rows * half * rotated,
    bytes: (2 * spec.rows * spec.dim + positions + tableRows * spec.dim) * ELEMENT_BYTES,
  };
}

/**
 * The WGSL of two pairs rotated: `v` a vec4 holding pairs (x, y) and (z, w), `c` and `s` vec2s of their cosines
 * and sines (a table vec4's `.xz` and `.yw`). The matmul epilogue that applies RoPE uses the same expression.
 *
 * @example
 * ```ts
 * import { ropePairs } from "./rope.ts"; // kernels are internal: not exported by the package
 * if (!ropePairs("v", "c", "s").startsWith("vec4f(v.x * c.x - v.y * s.x")) throw new Error("pairs");
 * ```
 */
export function ropePairs(v: string, c: string, s: string): string {
  return `vec4f(${v}.x * ${c}.x - ${v}.y * ${s}.x, ${v}.x * ${s}.x + ${v}.y * ${c}.x, ` +
    `${v}.z * ${c}.y - ${v}.w * ${s}.y, ${v}.z * ${s}.y + ${v}.w * ${c}.y)`;
}

/**
 * Bindings: x (rows, dim), positions (i32, indexed as `spec.group`/`spec.cycle` say), the {@linkcode ropeTable}
 * of (tableRows, dim/2) (cos, sin) pairs, out (write). Positions outside [0, tableRows) give NaN. Where dim is a
 * multiple of 4, a thread rotates two pairs, x, the table and out as vec4: 16-byte accesses, and one position and
 * table index read for two pairs (a table row's j-th vec4 is pairs 2j and 2j + 1, as in x). Each pair takes the
 * same arithmetic as in the one-pair (vec2) path of other dims. Cost: see `ropeCost`.
 */
function generateRopeKernel(spec: RopeSpec): KernelSource {
  const w = spec.dim % 4 === 0 ? 4 : 2, type = w === 4 ? "vec4f" : "vec2f";
  const perRow = spec.dim / w, n = spec.rows * perRow;
  const grid = flatGrid(Math.ceil(n / WG));
  const index = spec.group === 1 ? "row" : `(row / ${spec.group}u)`;
  const pos = spec.cycle > 0 ? `positions[${index} % ${spec.cycle}u]` : `positions[${index}]`;
  const sign = spec.inverse ? "-" : "";
  const rotate = w === 4
    ? `  let c = cs.xz;
  let s = ${sign}cs.yw;
  out[i] = ${ropePairs("v", "c", "s")};`
    : `  let c = cs.x;
  let s = ${sign}cs.y;
  out[i] = vec2f(v.x * c - v.y * s, v.x * s + v.y * c);`;
  return {
    name: spec.inverse ? "rope_backward" : "rope_forward",
    workgroups: grid.workgroups,
    cost: ropeCost(spec),
    source: `${bindings([read("x", type), read("positions", "i32"), read("table", type), readWrite("out", type)])}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ${grid.index} * ${WG}u + lid.x;
  if (i >= ${n}u) { return; }
  let row = i / ${perRow}u;
  let k = i % ${perRow}u;
  let p = ${pos};
  let v = x[i];
${
      spec.rotated !== undefined && spec.rotated < spec.group
        ? `  if (row % ${spec.group}u >= ${spec.rotated}u) { out[i] = v; return; }
`
        : ""
    }  // A position outside the table gives NaN rather than a silent rotation by whatever lies past its end.
  if (p < 0 || p >= ${spec.tableRows}) { out[i] = ${type}(bitcast<f32>(0x7fc00000u)); return; }
  let cs = table[u32(p) * ${perRow}u + k];
${rotate}
}
`,
  };
}

/**
 * {@linkcode generateRopeKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { ropeKernel } from "./rope.ts"; // kernels are internal: not exported by the package
 * const k = ropeKernel({ rows: 64, dim: 32, group: 1, cycle: 0, tableRows: 64, inverse: false });
 * // 64 rows of 8 vec4s (two pairs each) in workgroups of 256 threads.
 * if (k.name !== "rope_forward" || k.workgroups[0] !== 2) throw new Error(`${k.name} ${k.workgroups}`);
 * ```
 */
export const ropeKernel: (spec: RopeSpec) => KernelSource = memoized(generateRopeKernel);

/**
 * Rotary position embedding on interleaved pairs (2k, 2k+1), reading cos/sin from a table computed on the host
 * in float64 (GPU sin/cos of large angles lose accuracy). The backward is the rotation by the opposite angle.
 *
 * @module
 */
import { flatGrid, type KernelSource, memoized } from "./common.ts";

const WG = 256;

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
  /** Rows of the cos/sin tables. */
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
 * Bindings: x (rows, dim), positions (i32, indexed as `spec.group`/`spec.cycle` say), cos and sin tables
 * (tableRows, dim/2), out (write). Positions outside [0, tableRows) give NaN.
 */
function generateRopeKernel(spec: RopeSpec): KernelSource {
  const half = spec.dim / 2;
  const n = spec.rows * half;
  const grid = flatGrid(Math.ceil(n / WG));
  const index = spec.group === 1 ? "row" : `(row / ${spec.group}u)`;
  const pos = spec.cycle > 0 ? `positions[${index} % ${spec.cycle}u]` : `positions[${index}]`;
  const sign = spec.inverse ? "-" : "";
  return {
    name: spec.inverse ? "rope_backward" : "rope_forward",
    workgroups: grid.workgroups,
    source: `@group(0) @binding(0) var<storage, read> x: array<vec2f>;
@group(0) @binding(1) var<storage, read> positions: array<i32>;
@group(0) @binding(2) var<storage, read> cosTable: array<f32>;
@group(0) @binding(3) var<storage, read> sinTable: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<vec2f>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ${grid.index} * ${WG}u + lid.x;
  if (i >= ${n}u) { return; }
  let row = i / ${half}u;
  let k = i % ${half}u;
  let p = ${pos};
  let v = x[i];
${
      spec.rotated !== undefined && spec.rotated < spec.group
        ? `  if (row % ${spec.group}u >= ${spec.rotated}u) { out[i] = v; return; }
`
        : ""
    }  // A position outside the table gives NaN rather than a silent rotation by whatever lies past its end.
  if (p < 0 || p >= ${spec.tableRows}) { out[i] = vec2f(bitcast<f32>(0x7fc00000u)); return; }
  let t = u32(p) * ${half}u + k;
  let c = cosTable[t];
  let s = ${sign}sinTable[t];
  out[i] = vec2f(v.x * c - v.y * s, v.x * s + v.y * c);
}
`,
  };
}

/**
 * {@linkcode generateRopeKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { ropeKernel } from "./rope.ts";
 * const k = ropeKernel({ rows: 64, dim: 32, group: 1, cycle: 0, tableRows: 64, inverse: false });
 * console.log(k.name, k.workgroups); // rope_forward [ 4, 1, 1 ]
 * ```
 */
export const ropeKernel: (spec: RopeSpec) => KernelSource = memoized(generateRopeKernel);

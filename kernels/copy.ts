/**
 * Strided gather: every movement op (permute, slice, broadcast, concat pieces) is `out[i] = in[offset(i)]`
 * where `offset` is an affine function of the output coordinates, fixed at generation time.
 *
 * @module
 */
import { flatGrid, type KernelSource, memoized } from "./common.ts";

const WG = 256;

/**
 * Generates a copy of an input read with `inStrides` (per output dim, 0 for broadcast) from `inOffset`, written
 * contiguously to an output of `outShape` starting at element `outOffset` with `outStrides` (defaults to
 * contiguous).
 */
function generateGatherKernel(spec: {
  outShape: readonly number[];
  inStrides: readonly number[];
  inOffset?: number;
  outStrides?: readonly number[];
  outOffset?: number;
  dtype: "f32" | "i32";
}): KernelSource {
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
  return {
    name: "gather_copy",
    workgroups: grid.workgroups,
    source: `@group(0) @binding(0) var<storage, read> x: array<${spec.dtype}>;
@group(0) @binding(1) var<storage, read_write> out: array<${spec.dtype}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ${grid.index} * ${WG}u + lid.x;
  if (i >= ${n}u) { return; }
  out[${outIndex}] = x[${src.join(" + ")}];
}
`,
  };
}

/** {@linkcode generateGatherKernel}, memoized by its arguments (see `memoized` in common.ts). */
export const gatherKernel: (spec: {
  outShape: readonly number[];
  inStrides: readonly number[];
  inOffset?: number;
  outStrides?: readonly number[];
  outOffset?: number;
  dtype: "f32" | "i32";
}) => KernelSource = memoized(generateGatherKernel);

/**
 * Reductions along axes: sum, mean, max. Multi-axis reductions run one axis at a time; a full reduction of a
 * large tensor runs in two passes so that it is not left to a single workgroup.
 *
 * @module
 */
import { f32Literal } from "../../../kernels/common.ts";
import {
  type ReduceDims,
  reduceGroupSize,
  reduceKernel,
  type ReduceKind,
  sharesColumns,
} from "../../../kernels/reduce.ts";
import { formatBytes, gpu, type GpuBuffer } from "../../gpu/backend.ts";
import { noGrad, record } from "../graph.ts";
import { fmt, normAxis, prod } from "../shape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { mapElements } from "./elementwise.ts";
import { broadcastTo, reshape } from "./movement.ts";

/** Options of the reductions. */
export interface ReduceOptions {
  /** Axis or axes to reduce (negative counts from the end); all axes when absent. */
  axis?: number | number[];
  /** Keep reduced dims as size 1. */
  keepDims?: boolean;
}

/** Most loop iterations a reduction's thread runs: a longer axis is cut into groups reduced first. */
const MAX_REDUCE_ITERATIONS = 4096;

function reduceAxis(kind: ReduceKind, x: Tensor, axis: number, scale: number, op: string): Tensor {
  const dims = { outer: prod(x.shape, 0, axis), reduced: x.shape[axis], inner: prod(x.shape, axis + 1) };
  const out = empty(x.shape.map((d, i) => i === axis ? 1 : d), "f32");
  if (out.size > 0) reduceInto(kind, x.buffer, out.buffer, dims, scale, x.shape, op);
  return out;
}

/**
 * Writes `x` (outer, reduced, inner) reduced along the middle, times `scale`, into `out` (outer, inner), in as many
 * passes as it takes: a long axis is cut into groups reduced first, and a tensor over the storage binding limit is
 * taken a part at a time. `shape` (the tensor's) and `op` are for errors.
 */
function reduceInto(
  kind: ReduceKind,
  x: GpuBuffer,
  out: GpuBuffer,
  dims: ReduceDims,
  scale: number,
  shape: readonly number[],
  op: string,
): void {
  const backend = gpu();
  if (x.bytes > backend.limits.maxStorageBufferBindingSize) return reduceInParts(kind, x, out, dims, scale, shape, op);
  const { outer, reduced: R, inner } = dims;
  const iterations = Math.max(2, Math.min(MAX_REDUCE_ITERATIONS, backend.limits.loopIterations));
  // A long single row would leave one workgroup doing everything: reduce groups of 4096 first.
  if (outer * inner === 1 && R > 16384) {
    return reduceInGroups(kind, x, out, dims, Math.min(4096, reduceGroupSize(1, iterations)), scale, shape, op);
  }
  // Few columns over a long axis (weight gradients: a (rows, d) tensor summed over its B*T rows) would leave a thread
  // a column walking the axis alone on a mostly idle GPU. Up to 4096 rows a workgroup's threads share each column
  // (the partial weight gradients of RMSNorm); a longer axis is split into groups reduced in parallel, then those.
  const columns = outer * inner;
  if (sharesColumns(dims)) return backend.run(reduceKernel({ kind, ...dims, scale }), [x, out]);
  if (inner > 1 && columns < 1 << 16 && R >= 512) {
    const groups = [64, 32, 16, 8, 4, 2].find((g) => R % g === 0 && R / g >= 8);
    if (groups) {
      const partial = backend.alloc(outer * groups * inner * 4);
      reduceInto(kind, x, partial, { outer: outer * groups, reduced: R / groups, inner }, 1, shape, op);
      reduceInto(kind, partial, out, { outer, reduced: groups, inner }, scale, shape, op);
      backend.free(partial);
      return;
    }
  }
  // Lavapipe ends a shader's loops after 65,535 iterations: no thread may loop that long.
  if ((inner === 1 ? Math.ceil(R / 256) : R) > iterations) {
    return reduceInGroups(kind, x, out, dims, reduceGroupSize(inner, iterations), scale, shape, op);
  }
  backend.run(reduceKernel({ kind, ...dims, scale }), [x, out]);
}

/** Reduces groups of `group` along the axis to a partial (outer, groups, inner), then the partial into `out`. */
function reduceInGroups(
  kind: ReduceKind,
  x: GpuBuffer,
  out: GpuBuffer,
  dims: ReduceDims,
  group: number,
  scale: number,
  shape: readonly number[],
  op: string,
): void {
  const backend = gpu(), groups = Math.ceil(dims.reduced / group);
  const partial = backend.alloc(dims.outer * groups * dims.inner * 4);
  backend.run(reduceKernel({ kind, ...dims, group }), [x, partial]);
  reduceInto(kind, partial, out, { outer: dims.outer, reduced: groups, inner: dims.inner }, scale, shape, op);
  backend.free(partial);
}

/**
 * {@linkcode reduceInto} for an `x` over the storage binding limit, a binding-sized part at a time: runs of outer
 * rows, or, for a single row, runs of groups along the axis into a partial that is reduced after. Each part holds a
 * multiple of `step` rows or groups, so that its ranges of x and of the output start on aligned offsets.
 */
function reduceInParts(
  kind: ReduceKind,
  x: GpuBuffer,
  out: GpuBuffer,
  dims: ReduceDims,
  scale: number,
  shape: readonly number[],
  op: string,
): void {
  const backend = gpu(), limit = backend.limits.maxStorageBufferBindingSize, elements = Math.floor(limit / 4);
  const align = backend.device.limits.minStorageBufferOffsetAlignment / 4;
  const { outer, reduced: R, inner } = dims;
  const step = align / gcd(inner, align);
  const rows = Math.floor(elements / (R * inner) / step) * step;
  if (outer > 1 && rows > 0) {
    for (let o = 0; o < outer; o += rows) {
      const n = Math.min(rows, outer - o);
      const part = backend.range(x, o * R * inner * 4, n * R * inner * 4);
      const outPart = backend.range(out, o * inner * 4, n * inner * 4);
      reduceInto(kind, part, outPart, { outer: n, reduced: R, inner }, scale, shape, op);
    }
    return;
  }
  const iterations = Math.max(2, Math.min(MAX_REDUCE_ITERATIONS, backend.limits.loopIterations));
  const group = Math.min(4096, reduceGroupSize(inner, iterations), Math.floor(elements / (inner * step)));
  if (outer > 1 || group < 2) {
    throw new RangeError(
      `${op}: a tensor of shape ${fmt(shape)} is ${formatBytes(x.bytes)}, over this GPU's ${formatBytes(limit)} ` +
        `storage binding limit (maxStorageBufferBindingSize), and the reduction over this axis cannot be split into parts ` +
        `that fit; use smaller tensors`,
    );
  }
  const groups = Math.ceil(R / group), perPart = Math.floor(elements / (group * inner) / step) * step;
  const partial = backend.alloc(groups * inner * 4);
  for (let g = 0; g < groups; g += perPart) {
    const first = g * group, end = Math.min(R, (g + perPart) * group);
    const part = backend.range(x, first * inner * 4, (end - first) * inner * 4);
    const outPart = backend.range(partial, g * inner * 4, Math.ceil((end - first) / group) * inner * 4);
    backend.run(reduceKernel({ kind, outer: 1, reduced: end - first, inner, group }), [part, outPart]);
  }
  reduceInto(kind, partial, out, { outer: 1, reduced: groups, inner }, scale, shape, op);
  backend.free(partial);
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function reduce(kind: ReduceKind, x: Tensor, opts: ReduceOptions, mean: boolean): Tensor {
  const op = mean ? "mean" : kind;
  if (x.dtype !== "f32") throw new TypeError(`${op} needs an f32 tensor, got ${x.describe()}`);
  const axes = opts.axis === undefined
    ? [...x.shape.keys()]
    : [...new Set((Array.isArray(opts.axis) ? opts.axis : [opts.axis]).map((a) => normAxis(op, a, x.shape)))];
  const count = axes.reduce((n, a) => n * x.shape[a], 1);
  if (count === 0 && kind === "max") throw new Error(`max: cannot reduce an empty axis of ${x.describe()}`);
  const keptShape = x.shape.map((d, i) => axes.includes(i) ? 1 : d);
  const outShape = opts.keepDims ? keptShape : x.shape.filter((_, i) => !axes.includes(i));
  const y = noGrad(() => {
    let cur = x;
    const sorted = [...axes].sort((a, b) => b - a);
    sorted.forEach((a, j) => {
      const next = reduceAxis(kind, cur, a, mean && j === sorted.length - 1 ? 1 / count : 1, op);
      if (cur !== x) cur.dispose();
      cur = next;
    });
    if (cur === x) cur = mapElements("copy", [x], "v0");
    const shaped = reshape(cur, outShape);
    if (shaped !== cur) cur.dispose();
    return shaped;
  });
  return record(y, op, [x], (dy) => {
    const dyKept = reshape(dy, keptShape);
    if (kind === "sum") {
      // Broadcasting against x gives the gradient x's shape; the mean also scales it.
      return [
        mean
          ? mapElements("mean_backward", [x, dyKept], `v1 * ${f32Literal(1 / count)}`)
          : broadcastTo(dyKept, x.shape),
      ];
    }
    // max: the gradient goes to the positions that hold the maximum.
    const yKept = reshape(y, keptShape);
    return [mapElements("max_backward", [x, yKept, dyKept], "select(0.0, v2, v0 == v1)")];
  });
}

/**
 * Sum over `axis` (all axes by default).
 *
 * @example
 * ```ts
 * import { initGpu, sum, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const rows = sum(tensor([[1, 2], [3, 4]]), { axis: -1, keepDims: true }); // (2, 1)
 * if (rows.shape.join() !== "2,1" || (await rows.data()).join() !== "3,7") throw new Error(rows.describe());
 * ```
 */
export function sum(x: Tensor, opts: ReduceOptions = {}): Tensor {
  return reduce("sum", x, opts, false);
}

/**
 * Mean over `axis` (all axes by default).
 *
 * @example
 * ```ts
 * import { initGpu, mean, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const columns = await mean(tensor([[1, 2], [3, 6]]), { axis: 0 }).data();
 * if (columns.join() !== "2,4") throw new Error(`${columns}`);
 * ```
 */
export function mean(x: Tensor, opts: ReduceOptions = {}): Tensor {
  return reduce("sum", x, opts, true);
}

/**
 * Maximum over `axis` (all axes by default). The gradient flows to every position equal to the maximum.
 *
 * @example
 * ```ts
 * import { initGpu, max, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const best = await max(tensor([[1, 5, 2], [7, 0, 3]]), { axis: -1 }).data();
 * if (best.join() !== "5,7") throw new Error(`${best}`);
 * ```
 */
export function max(x: Tensor, opts: ReduceOptions = {}): Tensor {
  return reduce("max", x, opts, false);
}

/**
 * Sums `x` down to `shape`, undoing NumPy broadcasting: the one place where gradients are un-broadcast.
 *
 * @example
 * ```ts
 * import { initGpu, sumTo, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const grad = tensor([[[1, 2], [3, 4]], [[5, 6], [7, 8]]]); // (B, T, D) = (2, 2, 2)
 * const bias = sumTo(grad, [1, 2]); // the gradient of a (1, D) bias broadcast over B and T
 * if ((await bias.data()).join() !== "16,20") throw new Error(bias.describe());
 * ```
 */
export function sumTo(x: Tensor, shape: readonly number[]): Tensor {
  const pad = x.ndim - shape.length;
  if (pad < 0 || shape.some((d, i) => d !== 1 && d !== x.shape[pad + i])) {
    throw new Error(`sumTo: cannot reduce ${x.describe()} to ${fmt(shape)}`);
  }
  const axes = x.shape.map((_, i) => i).filter((i) => i < pad || (shape[i - pad] === 1 && x.shape[i] !== 1));
  if (axes.length === 0) return reshape(x, shape);
  // One recorded op, so that the intermediate sum can be freed (its reshape view keeps the storage).
  const y = noGrad(() => {
    const s = sum(x, { axis: axes, keepDims: true });
    const shaped = reshape(s, shape);
    s.dispose();
    return shaped;
  });
  return record(y, "sumTo", [x], (dy) => [broadcastTo(dy, x.shape)]);
}

/**
 * Reductions along axes: sum, mean, max. Multi-axis reductions run one axis at a time; a full reduction of a
 * large tensor runs in two passes so that it is not left to a single workgroup.
 *
 * @module
 */
import { f32Literal } from "../../../kernels/common.ts";
import { reduceKernel, type ReduceKind } from "../../../kernels/reduce.ts";
import { gpu } from "../../gpu/backend.ts";
import { noGrad, record } from "../autograd.ts";
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

function reduceAxis(kind: ReduceKind, x: Tensor, axis: number, scale: number): Tensor {
  const outer = prod(x.shape, 0, axis), R = x.shape[axis], inner = prod(x.shape, axis + 1);
  const outShape = x.shape.map((d, i) => i === axis ? 1 : d);
  // A long single row would leave one workgroup doing everything: split it and reduce twice.
  if (outer * inner === 1 && R > 16384) {
    const chunk = 4096;
    const rows = Math.ceil(R / chunk);
    if (rows * chunk === R) {
      // The views hold references to their storage: dispose each once the kernel that reads it is recorded.
      const rowsView = reshape(x, [rows, chunk]);
      const partial = reduceAxis(kind, rowsView, 1, 1);
      rowsView.dispose();
      const partialView = reshape(partial, [rows]);
      partial.dispose();
      const total = reduceAxis(kind, partialView, 0, scale);
      partialView.dispose();
      const out = reshape(total, outShape);
      total.dispose();
      return out;
    }
  }
  // A long reduced axis over few columns (weight gradients: sum over B*T rows of a (rows, d) tensor) gives one
  // thread per column and a long serial loop: split the axis into groups reduced in parallel, then reduce those.
  if (inner > 1 && R >= 512 && outer * inner < 1 << 16) {
    const groups = [64, 32, 16, 8, 4, 2].find((g) => R % g === 0 && R / g >= 8);
    if (groups) {
      const split = reshape(x, [outer, groups, R / groups, inner]);
      const partial = reduceAxis(kind, split, 2, 1); // (outer, groups, 1, inner)
      split.dispose();
      const partialView = reshape(partial, [outer, groups, inner]);
      partial.dispose();
      const total = reduceAxis(kind, partialView, 1, scale); // (outer, 1, inner)
      partialView.dispose();
      const result = reshape(total, outShape);
      total.dispose();
      return result;
    }
  }
  const out = empty(outShape, "f32");
  if (out.size === 0) return out;
  const k = reduceKernel(kind, { outer, reduced: R, inner }, scale);
  gpu().run(k, [x.buffer, out.buffer]);
  return out;
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
      const next = reduceAxis(kind, cur, a, mean && j === sorted.length - 1 ? 1 / count : 1);
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
 * ```ts ignore
 * sum(x, { axis: -1, keepDims: true });
 * ```
 */
export function sum(x: Tensor, opts: ReduceOptions = {}): Tensor {
  return reduce("sum", x, opts, false);
}

/**
 * Mean over `axis` (all axes by default).
 *
 * @example
 * ```ts ignore
 * mean(x, { axis: 0 });
 * ```
 */
export function mean(x: Tensor, opts: ReduceOptions = {}): Tensor {
  return reduce("sum", x, opts, true);
}

/**
 * Maximum over `axis` (all axes by default). The gradient flows to every position equal to the maximum.
 *
 * @example
 * ```ts ignore
 * max(logits, { axis: -1 });
 * ```
 */
export function max(x: Tensor, opts: ReduceOptions = {}): Tensor {
  return reduce("max", x, opts, false);
}

/**
 * Sums `x` down to `shape`, undoing NumPy broadcasting: the one place where gradients are un-broadcast.
 *
 * @example
 * ```ts ignore
 * sumTo(grad, [1, D]); // from (B, T, D)
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

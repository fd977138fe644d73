/**
 * Shape rules shared by the ops: broadcasting, axis normalisation, and the checks that name the op and shapes.
 *
 * @module
 */

/**
 * Formats a shape as `(2, 3)`.
 *
 * @example
 * ```ts
 * import { fmt } from "./shape.ts";
 * if (fmt([2, 3]) !== "(2, 3)") throw new Error(fmt([2, 3]));
 * ```
 */
export function fmt(shape: readonly number[]): string {
  return `(${shape.join(", ")})`;
}

/**
 * The NumPy broadcast of several shapes; throws naming the op and shapes when they do not broadcast.
 *
 * @example
 * ```ts
 * import { broadcastShapes } from "./shape.ts";
 * const shape = broadcastShapes("add", [4, 1, 3], [2, 1]);
 * if (shape.join() !== "4,2,3") throw new Error(`${shape}`);
 * ```
 */
export function broadcastShapes(op: string, ...shapes: (readonly number[])[]): number[] {
  const ndim = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let d = 0; d < ndim; d++) {
    let size = 1;
    for (const s of shapes) {
      const dim = s[s.length - ndim + d] ?? 1;
      if (dim === 1) continue;
      if (size !== 1 && dim !== size) {
        throw new Error(`${op}: shapes ${shapes.map(fmt).join(" and ")} cannot be broadcast together`);
      }
      size = dim;
    }
    out.push(size);
  }
  return out;
}

/**
 * Resolves a possibly negative axis against `shape`; throws naming the op and the shape when out of range.
 *
 * @example
 * ```ts
 * import { normAxis } from "./shape.ts";
 * if (normAxis("sum", -1, [2, 3, 4]) !== 2) throw new Error("-1 is the last axis");
 * ```
 */
export function normAxis(op: string, axis: number, shape: readonly number[]): number {
  const ndim = shape.length;
  const a = axis < 0 ? axis + ndim : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= ndim) {
    throw new RangeError(`${op}: axis ${axis} is out of range for shape ${fmt(shape)} (${ndim} dimensions)`);
  }
  return a;
}

/**
 * Whether two shapes are equal.
 *
 * @example
 * ```ts
 * import { sameShape } from "./shape.ts";
 * if (!sameShape([2, 3], [2, 3]) || sameShape([2, 3], [3, 2])) throw new Error("sameShape");
 * ```
 */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Product of dims in [from, to).
 *
 * @example
 * ```ts
 * import { prod } from "./shape.ts";
 * if (prod([2, 3, 4]) !== 24 || prod([2, 3, 4], 1) !== 12) throw new Error("prod");
 * ```
 */
export function prod(shape: readonly number[], from = 0, to = shape.length): number {
  let n = 1;
  for (let i = from; i < to; i++) n *= shape[i];
  return n;
}

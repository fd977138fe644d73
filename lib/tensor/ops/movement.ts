/**
 * Movement ops: reshape (a view), and permute, slice, concat and broadcast (strided copies through one gather
 * kernel, and matrix transposes through a tiled one). Each backward sits under its forward.
 *
 * @module
 */
import { concatKernel, gatherKernel, MAX_CONCAT_PIECES, splitKernel, transposeKernel } from "../../../kernels/copy.ts";
import { gpu } from "../../gpu/backend.ts";
import { record } from "../graph.ts";
import { fmt, normAxis, prod, sameShape } from "../shape.ts";
import { empty, RangeStorage, rowRange, type Storage, Tensor, view } from "../tensor.ts";
import { fill } from "./elementwise.ts";

function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

function runGather(
  x: Tensor,
  out: Tensor,
  spec: {
    outShape: readonly number[];
    inStrides: number[];
    inOffset?: number;
    outStrides?: number[];
    outOffset?: number;
  },
): void {
  if (prod(spec.outShape) === 0) return;
  const k = gatherKernel({ ...spec, dtype: x.dtype });
  gpu().run(k, [x.buffer, out.buffer]);
}

/**
 * The same values with another shape (no copy). One dim may be -1 and is inferred.
 *
 * @example
 * ```ts
 * import { initGpu, reshape, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const x = tensor([1, 2, 3, 4, 5, 6]);
 * const y = reshape(x, [2, -1]); // (2, 3), sharing x's storage
 * if (y.shape.join() !== "2,3" || y.storage !== x.storage) throw new Error(y.describe());
 * ```
 */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1);
  const infer = shape.length - known.length;
  if (infer > 1 || known.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`reshape: invalid target shape ${fmt(shape)} for ${x.describe()}`);
  }
  const knownSize = prod(known);
  const resolved = shape.map((d) => d === -1 ? (knownSize === 0 ? 0 : x.size / knownSize) : d);
  if (prod(resolved) !== x.size || resolved.some((d) => !Number.isInteger(d))) {
    throw new Error(`reshape: cannot reshape ${x.describe()} (${x.size} elements) to ${fmt(shape)}`);
  }
  const y = view(x, resolved);
  return record(y, "reshape", [x], (dy) => [reshape(dy, x.shape)]);
}

/**
 * Reorders dimensions: output dim `i` is input dim `axes[i]`.
 *
 * @example
 * ```ts
 * import { initGpu, permute, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const x = tensor([[[1, 2, 3], [4, 5, 6]]]); // (1, 2, 3)
 * const y = permute(x, [2, 0, 1]); // (3, 1, 2)
 * if (y.shape.join() !== "3,1,2" || (await y.data()).join() !== "1,4,2,5,3,6") throw new Error(y.describe());
 * ```
 */
export function permute(x: Tensor, axes: readonly number[]): Tensor {
  const nd = x.ndim;
  const ax = axes.map((a) => normAxis("permute", a, x.shape));
  if (ax.length !== nd || new Set(ax).size !== nd) {
    throw new Error(`permute: axes [${axes}] are not a permutation of ${nd} dims of ${x.describe()}`);
  }
  const inStrides = contiguousStrides(x.shape);
  const outShape = ax.map((a) => x.shape[a]);
  const out = empty(outShape, x.dtype);
  if (nd === 2 && ax[0] === 1 && x.size > 0) {
    // A matrix transpose: through workgroup-memory tiles, coalesced on both sides (a gather reads a column a time).
    gpu().run(transposeKernel({ rows: x.shape[0], cols: x.shape[1], dtype: x.dtype }), [x.buffer, out.buffer]);
  } else {
    runGather(x, out, { outShape, inStrides: ax.map((a) => inStrides[a]) });
  }
  const inverse = new Array(nd);
  ax.forEach((a, i) => inverse[a] = i);
  return record(out, "permute", [x], (dy) => [permute(dy, inverse)]);
}

/**
 * Swaps two dimensions.
 *
 * @example
 * ```ts
 * import { initGpu, tensor, transpose } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const w = tensor([[1, 2, 3], [4, 5, 6]]); // (out, in)
 * const t = transpose(w, 0, 1); // (in, out)
 * if (t.shape.join() !== "3,2" || (await t.data()).join() !== "1,4,2,5,3,6") throw new Error(t.describe());
 * ```
 */
export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  const axes = [...x.shape.keys()];
  const a = normAxis("transpose", dim0, x.shape), b = normAxis("transpose", dim1, x.shape);
  [axes[a], axes[b]] = [axes[b], axes[a]];
  return permute(x, axes);
}

/**
 * Elements `start <= i < end` along `axis` (a copy).
 *
 * @example
 * ```ts
 * import { initGpu, slice, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const x = tensor([[1, 2, 3], [4, 5, 6]]);
 * const y = slice(x, { axis: -1, start: 1 }); // columns 1 and 2
 * if ((await y.data()).join() !== "2,3,5,6") throw new Error(y.describe());
 * ```
 */
export function slice(x: Tensor, { axis, start, end }: { axis: number; start: number; end?: number }): Tensor {
  const a = normAxis("slice", axis, x.shape);
  const size = x.shape[a];
  const s = start < 0 ? start + size : start;
  const e = end === undefined ? size : end < 0 ? end + size : end;
  if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e > size || s > e) {
    throw new RangeError(`slice: range [${start}, ${end}) is out of bounds for axis ${axis} of ${x.describe()}`);
  }
  const outShape = x.shape.map((d, i) => i === a ? e - s : d);
  const inStrides = contiguousStrides(x.shape);
  const out = empty(outShape, x.dtype);
  runGather(x, out, { outShape, inStrides, inOffset: s * inStrides[a] });
  return record(out, "slice", [x], (dy) => [padInto(dy, x.shape, a, s)]);
}

/** A zero tensor of `shape` with `part` written at offset `start` along `axis` (the backward of slice). */
function padInto(part: Tensor, shape: readonly number[], axis: number, start: number): Tensor {
  const out = fill(shape, 0, part.dtype);
  const outStrides = contiguousStrides(shape);
  runGather(part, out, {
    outShape: part.shape,
    inStrides: contiguousStrides(part.shape),
    outStrides,
    outOffset: start * outStrides[axis],
  });
  return out;
}

/**
 * Joins tensors along `axis`; all other dims must match. Along the first axis (or one with only ones before it)
 * the pieces lie end to end in the output: up to 7 of them are then copied by one dispatch, and the backward
 * splits the gradient back into pieces by one dispatch (e.g. a fused q/k/v weight from its three parameters).
 *
 * @example
 * ```ts
 * import { concat, initGpu, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = concat([tensor([[1], [2]]), tensor([[3, 4], [5, 6]])], -1);
 * if (y.shape.join() !== "2,3" || (await y.data()).join() !== "1,3,4,2,5,6") throw new Error(y.describe());
 * ```
 */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error("concat: needs at least one tensor");
  const first = xs[0];
  const a = normAxis("concat", axis, first.shape);
  for (const x of xs) {
    if (x.ndim !== first.ndim || x.dtype !== first.dtype || x.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new Error(`concat: shapes ${xs.map((t) => t.describe()).join(", ")} do not match outside axis ${axis}`);
    }
  }
  const outShape = first.shape.map((d, i) => i === a ? xs.reduce((s, x) => s + x.shape[a], 0) : d);
  const endToEnd = prod(first.shape.slice(0, a)) === 1 && xs.every((x) => x.size > 0);
  const adjacent = endToEnd ? adjacentRanges(xs) : null;
  if (adjacent) return concatInPlace(xs, adjacent, outShape);
  const out = empty(outShape, first.dtype);
  if (endToEnd && xs.length <= MAX_CONCAT_PIECES) return concatEndToEnd(xs, out);
  const outStrides = contiguousStrides(outShape);
  let offset = 0;
  const starts: number[] = [];
  for (const x of xs) {
    starts.push(offset);
    runGather(x, out, {
      outShape: x.shape,
      inStrides: contiguousStrides(x.shape),
      outStrides,
      outOffset: offset * outStrides[a],
    });
    offset += x.shape[a];
  }
  return record(
    out,
    "concat",
    [...xs],
    (dy) => xs.map((x, i) => slice(dy, { axis: a, start: starts[i], end: starts[i] + x.shape[a] })),
  );
}

/**
 * Where pieces of a concatenation already lie end to end in one buffer (ranges of one storage, such as the
 * weights that `Linear.packRows` of the nn layer packs): that storage and the byte offset of the first piece in it.
 */
function adjacentRanges(xs: readonly Tensor[]): { root: Storage; offset: number } | null {
  const first = xs[0].storage;
  if (!(first instanceof RangeStorage)) return null;
  let end = first.buf.offset;
  for (const x of xs) {
    const s = x.storage;
    if (!(s instanceof RangeStorage) || s.root !== first.root || s.buf.offset !== end) return null;
    end += x.size * 4;
  }
  return { root: first.root, offset: first.buf.offset - first.root.buf.offset };
}

/** {@linkcode concat} of pieces that already lie end to end: a view of their memory, no copy. */
function concatInPlace(
  xs: readonly Tensor[],
  at: { root: Storage; offset: number },
  outShape: readonly number[],
): Tensor {
  const bytes = xs.reduce((sum, x) => sum + x.size * 4, 0);
  const storage = new RangeStorage(gpu().range(at.root.buf, at.offset, bytes), at.root);
  return record(new Tensor(storage, outShape, xs[0].dtype), "concat", [...xs], (dy) => splitGradient(xs, dy));
}

/** {@linkcode concat} of pieces that lie end to end in `out`: one dispatch forward, one backward. */
function concatEndToEnd(xs: readonly Tensor[], out: Tensor): Tensor {
  const spec = { sizes: xs.map((x) => x.size), dtype: out.dtype };
  gpu().run(concatKernel(spec), [...xs.map((x) => x.buffer), out.buffer]);
  return record(out, "concat", [...xs], (dy) => splitGradient(xs, dy));
}

/**
 * The pieces' gradients of an end-to-end concatenation: row views of `dy` where every piece starts at an offset
 * the device can bind, else one split dispatch into new tensors. Pieces that need no gradient get none.
 */
function splitGradient(xs: readonly Tensor[], dy: Tensor): (Tensor | null)[] {
  const align = gpu().device.limits.minStorageBufferOffsetAlignment;
  const starts: number[] = [];
  let rows = 0;
  for (const x of xs) {
    starts.push(rows);
    rows += x.size;
  }
  // Pieces in place always start aligned (each was bound); copied ones number at most MAX_CONCAT_PIECES.
  if (!starts.every((s) => (s * 4) % align === 0)) {
    const spec = { sizes: xs.map((x) => x.size), dtype: dy.dtype };
    const parts = xs.map((x) => empty(x.shape, x.dtype));
    gpu().run(splitKernel(spec), [dy.buffer, ...parts.map((t) => t.buffer)]);
    return parts.map((t, i) => {
      if (xs[i].requiresGrad) return t;
      t.dispose();
      return null;
    });
  }
  const flat = view(dy, [rows]); // (total): one row an element
  const parts = xs.map((x, i) => {
    if (!x.requiresGrad) return null;
    const piece = rowRange(flat, starts[i], starts[i] + x.size);
    const shaped = view(piece, x.shape);
    piece.dispose();
    return shaped;
  });
  flat.dispose();
  return parts;
}

/**
 * Repeats `x` along broadcast dims to `shape` (NumPy rules). The backward sums back (done by autograd).
 *
 * @example
 * ```ts
 * import { broadcastTo, initGpu, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = broadcastTo(tensor([1, 2]), [2, 2]); // a copy, one row per leading index
 * if ((await y.data()).join() !== "1,2,1,2") throw new Error(y.describe());
 * ```
 */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  const pad = shape.length - x.ndim;
  if (pad < 0 || x.shape.some((d, i) => d !== 1 && d !== shape[pad + i])) {
    throw new Error(`broadcastTo: cannot broadcast ${x.describe()} to ${fmt(shape)}`);
  }
  if (sameShape(x.shape, shape)) return reshape(x, shape);
  const strides = contiguousStrides(x.shape);
  const inStrides = shape.map((_, i) => i < pad || x.shape[i - pad] === 1 ? 0 : strides[i - pad]);
  const out = empty(shape, x.dtype);
  runGather(x, out, { outShape: shape, inStrides });
  return record(out, "broadcastTo", [x], (dy) => [dy]);
}

/**
 * The tensor: a shape, a dtype and a reference to GPU storage. Nothing else.
 *
 * Op logic lives in `ops/`, the graph in `graph.ts`, gradients in `backward.ts`, GPU calls in `../gpu/backend.ts`.
 * Tensors are always contiguous, row-major; a reshape shares its input's storage, every other op writes a new
 * buffer.
 *
 * JavaScript has no destructors for GPU memory, so lifetimes are explicit: `tidy(fn)` disposes every tensor
 * created inside `fn` except the ones it returns or `keep`s; `dispose()` / `using` free one tensor now. Storage is
 * reference-counted so that views keep their buffer alive.
 *
 * @module
 */
import { gpu, type GpuBuffer } from "../gpu/backend.ts";
import { backward } from "./backward.ts";
import type { GradNode } from "./graph.ts";
import { factsBundle, JUPYTER_DISPLAY, type MimeBundle, previewValues } from "../notebook/display.ts";
import { cellResult } from "../notebook/display.ts";

/** Element types. `i32` holds token ids and targets; `f32` everything else. */
export type DType = "f32" | "i32";

/** Bytes per element of each dtype. */
export const dtypeBytes: Record<DType, number> = { f32: 4, i32: 4 };

/** Host array type of each dtype. */
export type HostArray<D extends DType = DType> = D extends "i32" ? Int32Array : Float32Array;

/** A nested array of numbers, as in `tensor([[1, 2], [3, 4]])`. */
export type NestedArray = number | NestedArray[];

/**
 * GPU storage shared by a tensor and its views.
 *
 * @example
 * ```ts
 * import { initGpu, reshape, type Storage, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const t = tensor([1, 2, 3, 4]);
 * const v = reshape(t, [2, 2]); // a view: the same storage, one more reference
 * const storage: Storage = t.storage, refs = () => storage.refs;
 * if (v.storage !== storage || refs() !== 2) throw new Error(`${refs()} references, not 2`);
 * t.dispose(); // the buffer stays for the view
 * if (refs() !== 1 || (await v.data()).join() !== "1,2,3,4") throw new Error("the view lost its values");
 * v.dispose(); // the last reference: the buffer goes back to the pool
 * if (refs() !== 0) throw new Error(`${refs()} references left`);
 * ```
 */
export class Storage {
  /** The pooled buffer. */
  readonly buf: GpuBuffer;
  /** Number of live tensors that use this storage. */
  refs = 1;

  /** Takes ownership of a pooled buffer, with one reference. */
  constructor(buf: GpuBuffer) {
    this.buf = buf;
  }

  /** Drops one reference; returns the buffer to the pool at zero. */
  release(): void {
    if (--this.refs === 0) gpu().free(this.buf);
  }
}

let nextId = 1;

/**
 * An n-dimensional array on the GPU.
 *
 * Create tensors with the functions in `create.ts` (`tensor`, `zeros`, `randn`, ...) and combine them with the
 * ops; read values with `await t.data()` (one GPU round trip; batch reads with `readAll`).
 *
 * @example
 * ```ts
 * import { add, initGpu, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const x = tensor([[1, 2], [3, 4]]);
 * const y = add(x, x);
 * if (y.describe() !== "(2, 2) f32" || (await y.data()).join() !== "2,4,6,8") throw new Error(y.describe());
 * ```
 */
export class Tensor {
  /** Unique id, for debugging and graph bookkeeping. */
  readonly id: number = nextId++;
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** Whether gradients flow to this tensor: set for parameters, propagated to results of ops on them. */
  requiresGrad = false;
  /** Accumulated gradient after `backward()`, for tensors with `requiresGrad` that are leaves (parameters). */
  grad: Tensor | null = null;
  /** The op that produced this tensor, when it was recorded for autograd. */
  node: GradNode | null = null;
  /** Optional name, shown in errors and displays (parameter names). */
  name = "";
  #storage: Storage | null;

  /** Wraps storage as a tensor of `shape` (ops and creation functions do this; users call `tensor`, `zeros`...). */
  constructor(storage: Storage, shape: readonly number[], dtype: DType) {
    this.#storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    trackInScope(this);
  }

  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }

  /** Whether `dispose()` has been called. */
  get disposed(): boolean {
    return this.#storage === null;
  }

  /** The storage; throws if the tensor was disposed. Used by ops. */
  get storage(): Storage {
    if (!this.#storage) {
      throw new Error(`Tensor ${this.describe()} was used after it was disposed`);
    }
    return this.#storage;
  }

  /** The GPU buffer; throws if the tensor was disposed. Used by kernels. */
  get buffer(): GpuBuffer {
    return this.storage.buf;
  }

  /** A short description: name, shape and dtype, e.g. `"lm_head.weight (10000, 512) f32"`. */
  describe(): string {
    return `${this.name ? this.name + " " : ""}(${this.shape.join(", ")}) ${this.dtype}`;
  }

  /** Frees the tensor's GPU memory now (its gradient too). Safe to call twice. */
  dispose(): void {
    if (!this.#storage) return;
    this.#storage.release();
    this.#storage = null;
    for (const t of this.node?.saved ?? []) t.dispose();
    this.node = null;
    this.grad?.dispose();
    this.grad = null;
  }

  /** `using t = ...` support. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Copies the values to the host (one GPU round trip). */
  async data(): Promise<HostArray> {
    const bytes = this.size * dtypeBytes[this.dtype];
    const raw = await gpu().read(this.buffer, bytes);
    return this.dtype === "i32" ? new Int32Array(raw) : new Float32Array(raw);
  }

  /** The values as nested arrays of the tensor's shape. */
  async toArray(): Promise<NestedArray> {
    return nest(Array.from(await this.data()), this.shape);
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item() needs a one-element tensor, got shape (${this.shape.join(", ")})`);
    return (await this.data())[0];
  }

  /** Runs reverse-mode autograd from this scalar (see `backward` in backward.ts). */
  backward(): void {
    backward(this);
  }

  /** Rich display in Jupyter: shape, dtype, device, gradient state and a preview of the values. */
  async [JUPYTER_DISPLAY](): Promise<MimeBundle> {
    const facts: [string, string][] = [
      ["shape", `(${this.shape.join(", ")})`],
      ["dtype", this.dtype],
      ["device", gpu().info.description],
      ["requires grad", String(this.requiresGrad)],
    ];
    // cellResult: the Deno kernel can deliver a cell's result too late to be shown (see jupyter.ts).
    if (this.disposed) return cellResult(factsBundle(`Tensor ${this.name} (disposed)`, facts));
    if (this.grad) facts.push(["grad", `(${this.grad.shape.join(", ")})`]);
    return cellResult(factsBundle(
      `Tensor${this.name ? " " + this.name : ""}`,
      facts,
      previewValues(await this.data(), this.shape),
    ));
  }

  /** Shape and dtype, e.g. `Tensor(2, 3) f32`. */
  toString(): string {
    return `Tensor${this.describe()}`;
  }
}

/**
 * Product of the dimensions.
 *
 * @example
 * ```ts
 * import { sizeOf } from "./tensor.ts";
 * if (sizeOf([2, 3, 4]) !== 24 || sizeOf([]) !== 1) throw new Error("a scalar has one element");
 * ```
 */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function nest(flat: number[], shape: readonly number[]): NestedArray {
  if (shape.length === 0) return flat[0];
  const [first, ...rest] = shape;
  const step = sizeOf(rest);
  return Array.from({ length: first }, (_, i) => nest(flat.slice(i * step, (i + 1) * step), rest));
}

/**
 * Reads several tensors with one GPU round trip.
 *
 * @example
 * ```ts
 * import { initGpu, readAll, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const [a, b] = await readAll([tensor([1, 2]), tensor([3])]);
 * if (a.join() !== "1,2" || b.join() !== "3") throw new Error("wrong values");
 * ```
 */
export async function readAll(tensors: readonly Tensor[]): Promise<HostArray[]> {
  const raws = await gpu().readMany(tensors.map((t) => ({ buf: t.buffer, bytes: t.size * dtypeBytes[t.dtype] })));
  return raws.map((raw, i) => tensors[i].dtype === "i32" ? new Int32Array(raw) : new Float32Array(raw));
}

/**
 * Allocates an uninitialised tensor (kernels fill it).
 *
 * @example
 * ```ts
 * import { empty } from "./tensor.ts";
 * import { initGpu } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const t = empty([2, 3], "i32"); // contents undefined until a kernel writes them
 * if (t.size !== 6 || t.dtype !== "i32") throw new Error(t.describe());
 * ```
 */
export function empty(shape: readonly number[], dtype: DType = "f32"): Tensor {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new RangeError(`Invalid shape (${shape.join(", ")}): dims must be integers >= 0`);
    }
  }
  const buf = gpu().alloc(sizeOf(shape) * dtypeBytes[dtype], shape, dtype);
  return new Tensor(new Storage(buf), shape, dtype);
}

/**
 * A tensor sharing `t`'s storage with another shape of the same size (a view).
 *
 * @example
 * ```ts
 * import { view } from "./tensor.ts";
 * import { initGpu, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const t = tensor([1, 2, 3, 4, 5, 6]), v = view(t, [2, 3]);
 * if (v.storage !== t.storage || v.shape.join() !== "2,3") throw new Error("not a view");
 * ```
 */
export function view(t: Tensor, shape: readonly number[]): Tensor {
  const storage = t.storage;
  storage.refs++;
  return new Tensor(storage, shape, t.dtype);
}

/**
 * Storage over a byte range of another storage (its `root`, never itself a range), which it keeps alive while it
 * lives: row views of a tensor that bind in place.
 *
 * @example
 * ```ts
 * import { initGpu, tensor } from "@nanolm/nanolm/tensor";
 * import { RangeStorage, rowRange } from "./tensor.ts"; // the ops' helper: no published name reaches it
 * await initGpu();
 * const t = tensor(Array.from({ length: 128 }, (_, i) => i), { shape: [2, 64] });
 * const second = rowRange(t, 1, 2); // 256 bytes in: an aligned offset
 * if (!(second.storage instanceof RangeStorage) || second.storage.root !== t.storage) throw new Error("a view");
 * ```
 */
export class RangeStorage extends Storage {
  /** The storage whose buffer the range lies in. */
  readonly root: Storage;

  constructor(buf: GpuBuffer, parent: Storage) {
    super(buf);
    this.root = parent instanceof RangeStorage ? parent.root : parent;
    this.root.refs++;
  }

  override release(): void {
    if (--this.refs === 0) this.root.release();
  }
}

/**
 * Rows [start, end) of a contiguous tensor as a tensor over the same memory, without a copy. The start's byte
 * offset must be a multiple of the device's `minStorageBufferOffsetAlignment` (256 bytes at most).
 *
 * @example
 * ```ts
 * import { initGpu, tensor } from "@nanolm/nanolm/tensor";
 * import { rowRange } from "./tensor.ts"; // the ops' helper: no published name reaches it
 * await initGpu();
 * const t = tensor(Array.from({ length: 192 }, (_, i) => i), { shape: [3, 64] });
 * const rows = rowRange(t, 1, 3); // (2, 64), from element 64
 * if ((await rows.data())[0] !== 64 || rows.shape.join() !== "2,64") throw new Error(rows.describe());
 * ```
 */
export function rowRange(t: Tensor, start: number, end: number): Tensor {
  const width = t.size / t.shape[0]; // elements of 4 bytes (f32, i32)
  const buf = gpu().range(t.buffer, start * width * 4, (end - start) * width * 4);
  return new Tensor(new RangeStorage(buf, t.storage), [end - start, ...t.shape.slice(1)], t.dtype);
}

// ---- Scopes -------------------------------------------------------------------------------------------------

const scopes: Set<Tensor>[] = [];

function trackInScope(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Anything a tidy function may return: tensors, arrays or plain objects of them, or other values. */
export type TensorContainer = unknown;

function collect(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 8 || value === null || typeof value !== "object") return;
  if (value instanceof Tensor) {
    out.add(value);
    if (value.grad) out.add(value.grad);
    return;
  }
  if (Array.isArray(value)) { for (const v of value) collect(v, out, depth + 1); }
  else if (value instanceof Map) { for (const v of value.values()) collect(v, out, depth + 1); }
  else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, depth + 1);
  }
}

/**
 * Runs `fn` and disposes every tensor created inside it except those it returns (in arrays, maps or plain objects)
 * and those passed to {@linkcode keep}. Works with async functions too.
 *
 * @example
 * ```ts
 * import { initGpu, mul, sum, type Tensor, tensor, tidy } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const x = tensor([1, 2, 3]);
 * let product: Tensor | undefined;
 * const s = tidy(() => sum(product = mul(x, x))); // the product is freed, the sum kept
 * if (!product!.disposed || (await s.item()) !== 14) throw new Error("tidy kept the wrong tensors");
 * ```
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let popped = false;
  const finish = (result: unknown) => {
    if (popped) return;
    popped = true;
    const i = scopes.lastIndexOf(scope);
    if (i >= 0) scopes.splice(i, 1);
    const kept = new Set<Tensor>();
    collect(result, kept);
    const parent = scopes[scopes.length - 1];
    for (const t of scope) {
      if (kept.has(t)) parent?.add(t);
      else if (!t.disposed) t.dispose();
    }
  };
  try {
    const result = fn();
    if (result instanceof Promise) {
      return result.then((r) => {
        finish(r);
        return r;
      }, (e) => {
        finish(undefined);
        throw e;
      }) as T;
    }
    finish(result);
    return result;
  } catch (e) {
    finish(undefined);
    throw e;
  }
}

/**
 * Exempts tensors from disposal by the enclosing {@linkcode tidy} scopes (parameters, optimizer state, caches).
 * Returns its argument.
 *
 * @example
 * ```ts
 * import { initGpu, keep, randn, type Tensor, tidy } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * let w: Tensor | undefined;
 * tidy(() => {
 *   w = keep(randn([4, 4])); // not returned, but kept
 * });
 * if (w!.disposed) throw new Error("keep did not exempt the tensor");
 * ```
 */
export function keep<T extends Tensor>(t: T): T {
  for (const scope of scopes) scope.delete(t);
  return t;
}

/**
 * Number of open tidy scopes (for tests).
 *
 * @example
 * ```ts
 * import { tidy } from "@nanolm/nanolm/tensor";
 * import { scopeDepth } from "./tensor.ts";
 * if (scopeDepth() !== 0 || tidy(() => scopeDepth()) !== 1) throw new Error("tidy opens one scope");
 * ```
 */
export function scopeDepth(): number {
  return scopes.length;
}

/**
 * Creating tensors: from host data, constants, and seeded random distributions.
 *
 * Random tensors are drawn on the host from a seeded {@linkcode Rng} and uploaded, so the same seed gives the
 * same values on every GPU and in tests' float64 references.
 *
 * @module
 */
import { gpu } from "../gpu/backend.ts";
import { Rng } from "../util/random.ts";
import { fmt, prod } from "./shape.ts";
import { type DType, empty, keep, type NestedArray, type Tensor } from "./tensor.ts";
import { fill } from "./ops/elementwise.ts";
import { makeLeaf } from "./graph.ts";

function flatten(
  data: NestedArray,
  shape: number[] = [],
  depth = 0,
  out: number[] = [],
): { flat: number[]; shape: number[] } {
  if (typeof data === "number") {
    if (depth === 0) shape.length = 0;
    out.push(data);
    return { flat: out, shape };
  }
  if (!Array.isArray(data)) throw new TypeError(`tensor: expected numbers or nested arrays, got ${typeof data}`);
  if (shape.length === depth) shape.push(data.length);
  else if (shape[depth] !== data.length) {
    throw new Error(`tensor: ragged nested array: length ${data.length} at depth ${depth}, expected ${shape[depth]}`);
  }
  for (const d of data) flatten(d, shape, depth + 1, out);
  return { flat: out, shape };
}

/** Throws unless every value is an integer in the i32 range (Int32Array.from would wrap or truncate it silently). */
function checkInt32(values: ArrayLike<number>): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31)) {
      throw new RangeError(`tensor: value ${v} at index ${i} is not an i32 (an integer in [-2^31, 2^31))`);
    }
  }
}

/** Options of {@linkcode tensor}. */
export interface TensorOptions {
  /** Shape (required for flat typed arrays of more than one dimension). */
  shape?: readonly number[];
  /** Element type; defaults to i32 for Int32Array input, f32 otherwise. */
  dtype?: DType;
}

/**
 * Uploads host data: a nested array, a number, or a typed array with a shape.
 *
 * @example
 * ```ts
 * import { initGpu, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const x = tensor([[1, 2], [3, 4]]);
 * const ids = tensor(new Int32Array([1, 2, 3, 4]), { shape: [2, 2] });
 * if (x.describe() !== "(2, 2) f32" || ids.describe() !== "(2, 2) i32") throw new Error(ids.describe());
 * ```
 */
export function tensor(data: NestedArray | Float32Array | Int32Array | number[], opts: TensorOptions = {}): Tensor {
  let flat: ArrayLike<number>, shape: readonly number[];
  if (data instanceof Float32Array || data instanceof Int32Array) {
    flat = data;
    shape = opts.shape ?? [data.length];
  } else {
    const r = flatten(data);
    flat = r.flat;
    shape = opts.shape ?? r.shape;
  }
  if (prod(shape) !== flat.length) {
    throw new Error(`tensor: ${flat.length} values do not fill shape ${fmt(shape)}`);
  }
  const dtype = opts.dtype ?? (data instanceof Int32Array ? "i32" : "f32");
  if (dtype === "i32" && !(flat instanceof Int32Array)) checkInt32(flat);
  const host = dtype === "i32"
    ? (flat instanceof Int32Array ? flat : Int32Array.from(flat))
    : (flat instanceof Float32Array ? flat : Float32Array.from(flat));
  const t = empty(shape, dtype);
  if (host.length > 0) gpu().write(t.buffer, host);
  return t;
}

/**
 * Zeros.
 *
 * @example
 * ```ts
 * import { initGpu, zeros } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * if ((await zeros([2, 3]).data()).join() !== "0,0,0,0,0,0") throw new Error("not zeros");
 * ```
 */
export function zeros(shape: readonly number[], dtype: DType = "f32"): Tensor {
  return fill(shape, 0, dtype);
}

/**
 * Ones.
 *
 * @example
 * ```ts
 * import { initGpu, ones } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * if ((await ones([3], "i32").data()).join() !== "1,1,1") throw new Error("not ones");
 * ```
 */
export function ones(shape: readonly number[], dtype: DType = "f32"): Tensor {
  return fill(shape, 1, dtype);
}

/**
 * `value` everywhere.
 *
 * @example
 * ```ts
 * import { full, initGpu } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * if ((await full([2], 7).data()).join() !== "7,7") throw new Error("not sevens");
 * ```
 */
export function full(shape: readonly number[], value: number, dtype: DType = "f32"): Tensor {
  return fill(shape, value, dtype);
}

/** Options of the random constructors. */
export interface RandomOptions {
  /** Seed for a fresh generator (default 0) ... */
  seed?: number;
  /** ... or a generator to draw from (advances it). */
  rng?: Rng;
}

function rngOf(opts: RandomOptions): Rng {
  return opts.rng ?? new Rng(opts.seed ?? 0);
}

/**
 * Normal samples with mean `mean` and standard deviation `std`.
 *
 * @example
 * ```ts
 * import { initGpu, randn } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const w = randn([64, 64], { std: 0.02, seed: 1 });
 * const again = randn([64, 64], { std: 0.02, seed: 1 }); // the same seed gives the same values
 * if ((await w.data()).join() !== (await again.data()).join()) throw new Error("not reproducible");
 * ```
 */
export function randn(shape: readonly number[], opts: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  const rng = rngOf(opts), n = prod(shape), host = new Float32Array(n);
  const mean = opts.mean ?? 0, std = opts.std ?? 1;
  for (let i = 0; i < n; i++) host[i] = mean + std * rng.normal();
  return tensor(host, { shape });
}

/**
 * Uniform samples in [low, high).
 *
 * @example
 * ```ts
 * import { initGpu, rand } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const u = await rand([100], { low: -1, high: 1, seed: 2 }).data();
 * if (u.some((v) => v < -1 || v >= 1)) throw new Error("out of [-1, 1)");
 * ```
 */
export function rand(shape: readonly number[], opts: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  const rng = rngOf(opts), n = prod(shape), host = new Float32Array(n);
  const low = opts.low ?? 0, high = opts.high ?? 1;
  for (let i = 0; i < n; i++) host[i] = low + (high - low) * rng.uniform();
  return tensor(host, { shape });
}

/**
 * Normal samples truncated to [mean + a*std, mean + b*std] by resampling (CS336's initialisation uses a = -3,
 * b = 3).
 *
 * @example
 * ```ts
 * import { initGpu, truncNormal } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const w = await truncNormal([64, 32], { std: 0.1, a: -3, b: 3, seed: 0 }).data();
 * if (w.some((v) => Math.abs(v) > 0.3 + 1e-6)) throw new Error("outside 3 standard deviations");
 * ```
 */
export function truncNormal(
  shape: readonly number[],
  opts: RandomOptions & { mean?: number; std?: number; a?: number; b?: number } = {},
): Tensor {
  const rng = rngOf(opts), n = prod(shape), host = new Float32Array(n);
  const mean = opts.mean ?? 0, std = opts.std ?? 1, a = opts.a ?? -2, b = opts.b ?? 2;
  if (!(a < b)) throw new RangeError(`truncNormal: bounds a=${a}, b=${b} must satisfy a < b`);
  for (let i = 0; i < n; i++) {
    let z: number;
    do z = rng.normal(); while (z < a || z > b);
    host[i] = mean + std * z;
  }
  return tensor(host, { shape });
}

/**
 * Marks a tensor as a trainable parameter: gradients flow to it, and it survives `tidy` scopes.
 *
 * @example
 * ```ts
 * import { initGpu, param, randn } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const w = param(randn([4, 4]), "w");
 * if (!w.requiresGrad || w.describe() !== "w (4, 4) f32") throw new Error(w.describe());
 * ```
 */
export function param(t: Tensor, name = ""): Tensor {
  if (t.dtype !== "f32") throw new TypeError(`param: parameters must be f32, got ${t.describe()}`);
  t.requiresGrad = true;
  makeLeaf(t);
  if (name) t.name = name;
  return keep(t);
}

export { empty };

/**
 * GPU side of the op tests: uploads reference arrays, runs an op and its backward, and compares against the float64
 * reference in `reference.ts` and its finite differences.
 *
 * @module
 */
import { assertClose } from "./assert.ts";
import { dot, type Nd, nd, numericGrad, numericGradAt, randNd, rngFor } from "./reference.ts";
import {
  compare,
  gpu,
  initGpu,
  mul,
  param,
  readAll,
  sum,
  type Tensor,
  tensor,
  tidy,
  where,
} from "../lib/tensor/mod.ts";
import type { BackendLimits } from "../lib/gpu/mod.ts";
import type { Kernel } from "../lib/gpu/backend.ts";

await initGpu();
// A kernel that fails to compile or bind only reports an uncaptured error and leaves its output unwritten: collect
// them so that the comparisons fail loudly instead of comparing stale memory.
const gpuErrors: string[] = [];
gpu().device.addEventListener("uncapturederror", (e) => {
  gpuErrors.push((e as GPUUncapturedErrorEvent).error.message);
});

/** Fails if the GPU reported any error since the last check. */
export function assertNoGpuErrors(): void {
  if (gpuErrors.length) throw new Error(`WebGPU reported errors:\n${gpuErrors.splice(0).join("\n")}`);
}

/** Uploads a reference array as an f32 tensor. */
export function upload(x: Nd): Tensor {
  return tensor(Float32Array.from(x.data), { shape: x.shape });
}

/** Uploads integers as an i32 tensor of `shape`. */
export function uploadInts(values: readonly number[], shape: readonly number[]): Tensor {
  return tensor(Int32Array.from(values), { shape });
}

/** Runs `fn` with the backend enforcing `limits` (lower ones reach the paths of huge tensors at small sizes). */
export async function withLimits<T>(limits: Partial<BackendLimits>, fn: () => Promise<T>): Promise<T> {
  const before = gpu().setLimits(limits);
  try {
    return await fn();
  } finally {
    gpu().setLimits(before);
  }
}

/** The kernels `fn` dispatches, in order: name and WGSL source of each. */
export function dispatchedKernels(fn: () => void): { name: string; source: string }[] {
  const backend = gpu();
  const sources = new Map<Kernel, string>();
  const seen: { name: string; source: string }[] = [];
  const [prepare, dispatch] = [backend.prepare, backend.dispatch];
  backend.prepare = (name, source) => {
    const k = prepare.call(backend, name, source);
    sources.set(k, source);
    return k;
  };
  backend.dispatch = (k, args) => {
    seen.push({ name: k.name, source: sources.get(k) ?? "" });
    dispatch.call(backend, k, args);
  };
  try {
    fn();
  } finally {
    backend.prepare = prepare;
    backend.dispatch = dispatch;
  }
  return seen;
}

/** Tolerances of a comparison. */
export interface Tol {
  atol?: number;
  rtol?: number;
}

/** Largest absolute value (0 for empty arrays). */
export function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/**
 * {@linkcode assertClose} where infinities and NaNs of the expected values must be matched exactly (log-softmax's
 * masked entries are -inf).
 */
export function assertCloseInf(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tol & { msg?: string } = {},
): void {
  const a = Array.from(actual), e = Array.from(expected);
  for (let i = 0; i < e.length; i++) {
    if (!Number.isFinite(e[i])) {
      if (!Object.is(a[i], e[i])) throw new Error(`${tol.msg ?? ""}: element ${i} is ${a[i]}, expected ${e[i]}`);
      a[i] = e[i] = 0;
    }
  }
  assertClose(a, e, { atol: tol.atol ?? 1e-6, rtol: tol.rtol ?? 1e-5, msg: tol.msg });
}

/** Reads `actual` (one round trip) and compares each with the matching reference, shapes included. */
export async function expectClose(actual: Tensor[], expected: Nd[], tol: Tol & { msg?: string } = {}): Promise<void> {
  const values = await readAll(actual);
  assertNoGpuErrors();
  values.forEach((v, i) => {
    const msg = `${tol.msg ?? ""}[${i}]`;
    if (actual[i].shape.join() !== expected[i].shape.join()) {
      throw new Error(`${msg}: shape (${actual[i].shape}) != expected (${expected[i].shape})`);
    }
    assertCloseInf(v, expected[i].data, { atol: tol.atol ?? 1e-6, rtol: tol.rtol ?? 1e-5, msg });
  });
}

/** A gradient check: an op on the GPU and its float64 reference over the same inputs. */
export interface GradCheck {
  /** Name, for messages and the seed of the random loss weights. */
  name: string;
  /** Inputs (f32-representable values). */
  inputs: Nd[];
  /** The op on the GPU (inputs as tensors, those in `wrt` as parameters). */
  gpu: (xs: Tensor[]) => Tensor;
  /** The op in float64. */
  ref: (xs: Nd[]) => Nd;
  /** Inputs to differentiate (default: all). */
  wrt?: number[];
  /** Tolerance of the forward comparison. */
  forward?: Tol;
  /** Gradient tolerance relative to the largest gradient magnitude (default 1e-4). */
  gradTol?: number;
  /** Loss weights of zero where this is false (e.g. entries a causal log-softmax sets to -inf). */
  lossMask?: (flat: number) => boolean;
  /** Finite-difference step (relative). */
  h?: number;
  /** Check only this many randomly chosen elements of each input's gradient (for inputs too big to sweep). */
  sample?: number;
}

/**
 * Checks the forward of `gpu` against `ref` and the gradient of `sum(gpu(xs) * r)` (random `r`, so that every
 * output element matters) against central finite differences of `sum(ref(xs) * r)` in float64.
 */
export async function checkGrad(c: GradCheck): Promise<void> {
  const wrt = c.wrt ?? c.inputs.map((_, i) => i);
  const expectedY = c.ref(c.inputs);
  const r = randNd(rngFor(`${c.name}/r`), expectedY.shape);
  if (c.lossMask) { for (let i = 0; i < r.data.length; i++) if (!c.lossMask(i)) r.data[i] = 0; }
  const xs = c.inputs.map((x, i) => (wrt.includes(i) ? param(upload(x)) : upload(x)));
  let y: Float32Array, grads: Float32Array[];
  try {
    [y, ...grads] = await tidy(async () => {
      const out = c.gpu(xs);
      // With a loss mask, masked outputs may be -inf: select them away instead of multiplying by 0.
      const loss = c.lossMask ? sum(maskedTimes(out, r)) : sum(mul(out, upload(r)));
      loss.backward();
      for (const i of wrt) {
        if (!xs[i].grad) throw new Error(`${c.name}: no gradient reached input ${i}`);
      }
      return (await readAll([out, ...wrt.map((i) => xs[i].grad!)])) as Float32Array[];
    });
  } finally {
    for (const x of xs) x.dispose();
  }
  assertNoGpuErrors();
  const ftol = c.forward ?? {};
  assertCloseInf(y, expectedY.data, { atol: ftol.atol ?? 1e-6, rtol: ftol.rtol ?? 1e-5, msg: `${c.name} forward` });
  wrt.forEach((i, j) => {
    const x = c.inputs[i];
    const copies = c.inputs.map((v) => nd(v.shape, v.data));
    if (grads[j].length !== x.data.length) throw new Error(`${c.name}: gradient ${i} has the wrong size`);
    const f = () => dot(c.ref(copies), r);
    let actual: ArrayLike<number> = grads[j], expected: Float64Array;
    if (c.sample !== undefined && c.sample < x.data.length) {
      // Finite differences at a random subset of positions, perturbing one element at a time.
      const rng = rngFor(`${c.name}/sample${i}`);
      const at = Array.from({ length: c.sample }, () => rng.int(x.data.length));
      expected = Float64Array.from(at, (k) => numericGradAt(f, copies[i].data, k, c.h ?? 1e-6));
      actual = at.map((k) => grads[j][k]);
    } else {
      expected = numericGrad(f, copies[i].data, c.h ?? 1e-6);
    }
    const scale = Math.max(maxAbs(expected), 1e-3);
    const tol = c.gradTol ?? 1e-4;
    assertClose(actual, expected, { atol: tol * scale, rtol: tol, msg: `${c.name} d/dinput${i}` });
  });
}

/** `where(r != 0, out * r, 0)` with r uploaded: a weighted sum that ignores (possibly infinite) masked outputs. */
function maskedTimes(out: Tensor, r: Nd): Tensor {
  const rt = upload(r);
  return where(compare("ne", rt, 0), mul(out, rt), 0);
}

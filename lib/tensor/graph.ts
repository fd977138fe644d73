/**
 * The autograd graph: each op records a {@linkcode GradNode} on its output when gradients are enabled and an input
 * requires them; the node's `backward` (written under the op's forward in `ops/`) maps the output's gradient to its
 * inputs'. This module only records and cuts the graph; walking it is `backward.ts`. It imports no ops, so that every
 * op module can record without depending on the engine.
 *
 * @module
 */
import { type Tensor, view } from "./tensor.ts";

/** The record of one op for autograd. */
export interface GradNode {
  /** Op name, for errors. */
  op: string;
  /** The op's tensor inputs (gradients flow to those with `requiresGrad`). */
  inputs: Tensor[];
  /**
   * Maps the gradient of the output to the gradients of the inputs (null where none flows). For inputs marked in
   * `accumulates`, `prior[j]` is the gradient that input has already received from its other uses (if any), and
   * the returned gradient must include it.
   */
  backward: (dy: Tensor, prior: readonly (Tensor | undefined)[]) => (Tensor | null)[];
  /**
   * Inputs whose already accumulated gradient the backward adds into its own result (in the same kernel), instead
   * of the engine adding the two in a separate pass: a residual stream's gradient joins a norm's or a
   * projection's input gradient this way.
   */
  accumulates?: readonly boolean[];
  /** Tensors only `backward` reads (e.g. saved row statistics): freed when the node is released. */
  saved?: Tensor[];
}

let gradEnabled = true;

/**
 * Whether ops currently record for autograd.
 *
 * @example
 * ```ts
 * import { isGradEnabled, noGrad } from "@nanolm/nanolm/tensor";
 * if (!isGradEnabled() || noGrad(() => isGradEnabled())) throw new Error("noGrad did not turn recording off");
 * ```
 */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Runs `fn` without recording ops for autograd (inference, optimizer updates).
 *
 * @example
 * ```ts
 * import { initGpu, mul, noGrad, param, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const w = param(tensor([1, 2]));
 * const y = noGrad(() => mul(w, 2));
 * if (y.requiresGrad) throw new Error("noGrad recorded an op");
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Records `out` as produced by an op from `inputs` when any input requires gradients. Ops call this right after
 * computing their forward. `saved` are tensors that only the backward reads: they are freed with the node (after
 * `backward()`, or when `out` is disposed), or right away when nothing is recorded. Returns `out`.
 *
 * @example
 * ```ts
 * import { initGpu, mapElements, param, record, sum, type Tensor, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * // A new op: y = 2x, whose gradient is 2 dy.
 * const double = (x: Tensor) =>
 *   record(mapElements("double", [x], "v0 * 2.0"), "double", [x], (dy) => [mapElements("double", [dy], "v0 * 2.0")]);
 * const x = param(tensor([1, 2]));
 * sum(double(x)).backward();
 * if ((await x.grad!.data()).join() !== "2,2") throw new Error("wrong gradient");
 * ```
 */
export function record(
  out: Tensor,
  op: string,
  inputs: Tensor[],
  backward: (dy: Tensor) => (Tensor | null)[],
  saved?: Tensor[],
): Tensor {
  return recordAccumulating(out, op, inputs, backward, { saved });
}

/** Options of {@linkcode recordAccumulating}. */
export interface RecordOptions {
  /** Tensors only the backward reads, freed with the node (as `saved` of {@linkcode record}). */
  saved?: Tensor[];
  /** Per input: whether the backward adds the input's prior gradient into its result (see {@linkcode GradNode}). */
  accumulates?: readonly boolean[];
}

/**
 * {@linkcode record} for an op whose backward can fold the prior gradient of some inputs into its own kernel
 * (see `GradNode.accumulates`).
 *
 * @example
 * ```ts
 * import { initGpu, mapElements, param, recordAccumulating, sum, type Tensor, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * // y = 3x, whose backward adds x's gradient from other uses (prior[0]) in the same kernel.
 * const triple = (x: Tensor) =>
 *   recordAccumulating(mapElements("triple", [x], "v0 * 3.0"), "triple", [x], (dy, prior) => [
 *     prior[0] ? mapElements("triple_acc", [dy, prior[0]], "v0 * 3.0 + v1") : mapElements("triple", [dy], "v0 * 3.0"),
 *   ], { accumulates: [true] });
 * const x = param(tensor([1, 2]));
 * sum(triple(x)).backward();
 * if ((await x.grad!.data()).join() !== "3,3") throw new Error("wrong gradient");
 * ```
 */
export function recordAccumulating(
  out: Tensor,
  op: string,
  inputs: Tensor[],
  backward: (dy: Tensor, prior: readonly (Tensor | undefined)[]) => (Tensor | null)[],
  options: RecordOptions = {},
): Tensor {
  const { saved, accumulates } = options;
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward, saved, accumulates };
  } else if (saved) {
    for (const t of saved) t.dispose();
  }
  return out;
}

/**
 * A tensor that shares `t`'s values but is cut from the graph (a view: no copy).
 *
 * @example
 * ```ts
 * import { detach, initGpu, mul, param, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = detach(mul(param(tensor([1, 2])), 2));
 * if (y.requiresGrad || y.node) throw new Error("detach kept the graph");
 * ```
 */
export function detach(t: Tensor): Tensor {
  return view(t, t.shape);
}

/** Results of ops whose graph a backward() has released: they cannot be differentiated through again. */
const released = new WeakSet<Tensor>();

/**
 * Releases the node of `t` after a backward pass: frees its saved tensors and remembers that `t` came from a
 * released graph, so that differentiating through it again is an error rather than a silently missing gradient.
 *
 * @example
 * ```ts
 * import { isReleased, release } from "./graph.ts";
 * import { initGpu, mul, param, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = mul(param(tensor([1, 2])), 3);
 * release(y);
 * if (y.node || !isReleased(y)) throw new Error("not released");
 * ```
 */
export function release(t: Tensor): void {
  if (t.node) released.add(t);
  for (const x of t.node?.saved ?? []) x.dispose();
  t.node = null;
}

/**
 * Whether `t` is the result of an op whose graph a backward pass released (see {@linkcode release}).
 *
 * @example
 * ```ts
 * import { isReleased } from "./graph.ts";
 * import { initGpu, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * if (isReleased(tensor([1]))) throw new Error("a fresh tensor is not released");
 * ```
 */
export function isReleased(t: Tensor): boolean {
  return released.has(t);
}

/**
 * Cuts `t` from the graph that produced it, making it a leaf (`param` uses this).
 *
 * @example
 * ```ts
 * import { makeLeaf } from "./graph.ts";
 * import { initGpu, mul, param, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const y = mul(param(tensor([1, 2])), 3);
 * makeLeaf(y); // backward stops at y now
 * if (y.node !== null) throw new Error("still recorded");
 * ```
 */
export function makeLeaf(t: Tensor): void {
  for (const x of t.node?.saved ?? []) x.dispose();
  t.node = null;
  released.delete(t);
}

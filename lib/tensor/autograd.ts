/**
 * Reverse-mode automatic differentiation over a tape of recorded ops.
 *
 * Each op records a {@linkcode GradNode} on its output when gradients are enabled and an input requires them;
 * the node's `backward` (written next to the op's forward in `ops/`) maps the output's gradient to its inputs'.
 * `backward(loss)` walks the graph in reverse topological order, sums gradients that meet, un-broadcasts them in
 * one place, and accumulates into `.grad` of leaf tensors, so repeated calls accumulate gradients across
 * micro-batches until the caller zeroes them.
 *
 * @module
 */
import { keep, setBackwardHook, type Tensor, tidy } from "./tensor.ts";

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
 * import { isGradEnabled, noGrad } from "./autograd.ts";
 * console.log(isGradEnabled(), noGrad(() => isGradEnabled())); // true false
 * ```
 */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Runs `fn` without recording ops for autograd (inference, optimizer updates).
 *
 * @example
 * ```ts ignore
 * import { noGrad, matmul } from "../../mod.ts";
 * const y = noGrad(() => matmul(x, w)); // y.requiresGrad === false
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
 * ```ts ignore
 * import { record } from "./autograd.ts";
 * import { mapElements } from "./mod.ts";
import { type Tensor } from "../../mod.ts";
 * const double = (x: Tensor) =>
 *   record(mapElements("double", [x], "v0 * 2.0"), "double", [x], (dy) => [mapElements("double", [dy], "v0 * 2.0")]);
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
 * ```ts ignore
 * return recordAccumulating(y, "rmsNorm", [x, w], (dy, prior) => [dxPlus(prior[0]), dw], {
 *   saved: [rstd],
 *   accumulates: [true, false],
 * });
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
 * A tensor that shares `t`'s values but is cut from the graph.
 *
 * @example
 * ```ts ignore
 * import { detach } from "./autograd.ts";
 * import { initGpu, param, tensor } from "../../mod.ts";
import { mul } from "./mod.ts";
 * await initGpu();
 * console.log(detach(mul(param(tensor([1, 2])), 2)).requiresGrad); // false
 * ```
 */
export function detach(t: Tensor): Tensor {
  return noGrad(() => hooks().view(t));
}

/** The few ops autograd itself needs; the ops modules install them, which keeps the import graph acyclic. */
export interface AutogradOps {
  /** Elementwise sum of two same-shaped tensors. */
  add: (a: Tensor, b: Tensor) => Tensor;
  /** Ones of the same shape. */
  onesLike: (t: Tensor) => Tensor;
  /** A view of the same storage (no copy). */
  view: (t: Tensor) => Tensor;
  /** A copy into new storage. */
  copy: (t: Tensor) => Tensor;
  /** Sums a broadcast gradient back down to `shape`. */
  sumTo: (t: Tensor, shape: readonly number[]) => Tensor;
}

let autogradOps: AutogradOps | null = null;

/**
 * Installs {@linkcode AutogradOps}.
 *
 * @example
 * ```ts ignore
 * import { type AutogradOps, setAutogradOps } from "./autograd.ts";
 * declare const ops: AutogradOps; // lib/tensor/mod.ts builds them from the ops modules and installs them on import
 * setAutogradOps(ops);
 * ```
 */
export function setAutogradOps(ops: AutogradOps): void {
  autogradOps = ops;
}

function hooks(): AutogradOps {
  if (!autogradOps) throw new Error("Autograd ops are not installed: import the package through mod.ts");
  return autogradOps;
}

/**
 * Computes gradients of `loss` with respect to every leaf tensor with `requiresGrad` that it depends on, and adds
 * them to those tensors' `.grad` (creating it at first). `loss` must have one element unless `grad` is given.
 * The graph is released afterwards, so intermediate tensors can be freed.
 *
 * @example
 * ```ts ignore
 * import { backward, mul, sum } from "./mod.ts";
import { param, tensor } from "../../mod.ts";
 * const w = param(tensor([1, 2, 3]));
 * backward(sum(mul(w, w)));
 * console.log(await w.grad!.data()); // [2, 4, 6]
 * ```
 */
export function backward(loss: Tensor, grad?: Tensor): void {
  if (!loss.requiresGrad) {
    throw new Error(`backward() needs a tensor that depends on parameters; ${loss.describe()} does not require grad`);
  }
  if (!grad && loss.size !== 1) {
    throw new Error(`backward() without a gradient needs a one-element loss, got ${loss.describe()}`);
  }
  if (grad && grad.shape.join() !== loss.shape.join()) {
    throw new Error(`backward(): gradient ${grad.describe()} does not match the shape of ${loss.describe()}`);
  }
  checkUsable(loss);
  // Topological order by iterative DFS (models are deep enough to overflow recursion).
  const order: Tensor[] = [];
  const seen = new Set<number>();
  const stack: [Tensor, number][] = [[loss, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    if (i === 0) {
      if (seen.has(t.id)) {
        stack.pop();
        continue;
      }
      seen.add(t.id);
    }
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const child = inputs[i];
      if (child.requiresGrad && !seen.has(child.id)) {
        checkUsable(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }

  const ops = hooks();
  tidy(() =>
    noGrad(() => {
      const grads = new Map<number, Tensor>();
      grads.set(loss.id, grad ?? ops.onesLike(loss));
      for (let k = order.length - 1; k >= 0; k--) {
        const t = order[k];
        const g = grads.get(t.id);
        if (!g) continue;
        grads.delete(t.id);
        if (!t.node) {
          // A leaf: accumulate into .grad, which outlives this scope.
          if (t.grad) {
            const sum = ops.add(t.grad, g);
            t.grad.dispose();
            t.grad = keep(sum);
          } else {
            t.grad = keep(g === grad ? ops.copy(g) : g);
          }
          continue;
        }
        const node = t.node;
        // Prior gradients for the inputs whose backward sums them in itself (each input once).
        const prior = node.inputs.map((input, j) =>
          node.accumulates?.[j] && input.requiresGrad && node.inputs.indexOf(input) === j
            ? grads.get(input.id)
            : undefined
        );
        const inGrads = node.backward(g, prior);
        const used = new Set<Tensor>([g]);
        node.inputs.forEach((input, j) => {
          let gi = inGrads[j];
          if (!gi || !input.requiresGrad) return;
          const p = prior[j];
          if (p && gi !== p) {
            if (gi.shape.join() !== input.shape.join()) {
              throw new Error(
                `${node.op} backward: accumulated gradient ${gi.describe()} does not match ${input.describe()}`,
              );
            }
            grads.set(input.id, gi);
            used.add(gi);
            p.dispose();
            return;
          }
          if (p) return; // The backward handed the prior gradient back unchanged: it stays.
          if (gi.shape.join() !== input.shape.join()) gi = ops.sumTo(gi, input.shape);
          // The same tensor may come back for several inputs (add) or be dy itself: give each owner a view.
          if (used.has(gi)) gi = ops.view(gi);
          used.add(gi);
          const prev = grads.get(input.id);
          if (prev) {
            grads.set(input.id, ops.add(prev, gi));
            prev.dispose();
            gi.dispose();
          } else {
            grads.set(input.id, gi);
          }
        });
        if (g !== grad) g.dispose();
      }
    })
  );
  // Release the graph so that saved tensors can be freed.
  for (const t of order) {
    if (t.node) released.add(t);
    for (const x of t.node?.saved ?? []) x.dispose();
    t.node = null;
  }
}

/** Results of ops whose graph a backward() has released: they cannot be differentiated through again. */
const released = new WeakSet<Tensor>();

/**
 * Cuts `t` from the graph that produced it, making it a leaf (`param` uses this).
 *
 * @example
 * ```ts ignore
 * import { makeLeaf } from "./autograd.ts";
 * import { initGpu, param, tensor } from "../../mod.ts";
import { mul } from "./mod.ts";
 * await initGpu();
 * const y = mul(param(tensor([1, 2])), 3);
 * makeLeaf(y); // y.node is null now: backward stops at y
 * ```
 */
export function makeLeaf(t: Tensor): void {
  for (const x of t.node?.saved ?? []) x.dispose();
  t.node = null;
  released.delete(t);
}

/**
 * A disposed or released tensor in the graph would otherwise look like a leaf (its node is gone), and the
 * gradient to everything before it would be dropped without a word.
 */
function checkUsable(t: Tensor): void {
  if (t.disposed) {
    throw new Error(`backward(): ${t.describe()} in the graph was disposed before backward() reached it`);
  }
  if (released.has(t)) {
    throw new Error(
      `backward(): ${t.describe()} comes from a graph that an earlier backward() released; ` +
        "recompute the forward to differentiate again",
    );
  }
}

setBackwardHook((t) => backward(t));

/**
 * Returns a function that evaluates `fn` and the gradients of its scalar result with respect to `params`
 * (without touching their `.grad`).
 *
 * @example
 * ```ts ignore
 * import { valueAndGrad, mul, sum } from "./mod.ts";
import { param, tensor } from "../../mod.ts";
 * const w = param(tensor([1, 2, 3]));
 * const [loss, [dw]] = valueAndGrad(() => sum(mul(w, w)), [w])();
 * ```
 */
export function valueAndGrad(fn: () => Tensor, params: Tensor[]): () => [Tensor, Tensor[]] {
  return () => {
    const saved = params.map((p) => p.grad);
    for (const p of params) p.grad = null;
    try {
      const value = fn();
      backward(value);
      const grads = params.map((p) => {
        if (!p.grad) throw new Error(`valueAndGrad: the result does not depend on ${p.describe()}`);
        return p.grad;
      });
      return [value, grads];
    } finally {
      params.forEach((p, i) => p.grad = saved[i]);
    }
  };
}

/**
 * Reverse-mode automatic differentiation: the engine that walks the graph `graph.ts` records.
 *
 * `backward(loss)` visits the graph in reverse topological order, sums gradients that meet, un-broadcasts them in
 * one place, and accumulates into `.grad` of leaf tensors, so repeated calls accumulate gradients across
 * micro-batches until the caller zeroes them. It imports the few ops it needs itself (a sum of gradients, ones,
 * views, copies, `sumTo`); `Tensor.backward()` calls it, which is the one import cycle of this layer (tensor.ts and
 * this module use each other only when called, never while being imported).
 *
 * @module
 */
import { ones } from "./create.ts";
import { isReleased, noGrad, release } from "./graph.ts";
import { copy, mapElements } from "./ops/elementwise.ts";
import { sumTo } from "./ops/reduce.ts";
import { keep, type Tensor, tidy, view } from "./tensor.ts";

/** The sum of two gradients of the same shape (no recording: the engine runs under noGrad). */
function accumulate(a: Tensor, b: Tensor): Tensor {
  return mapElements("grad_accumulate", [a, b], "v0 + v1");
}

/**
 * Computes gradients of `loss` with respect to every leaf tensor with `requiresGrad` that it depends on, and adds
 * them to those tensors' `.grad` (creating it at first). `loss` must have one element unless `grad` is given.
 * The graph is released afterwards, so intermediate tensors can be freed.
 *
 * @example
 * ```ts
 * import { backward, initGpu, mul, param, sum, tensor } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const w = param(tensor([1, 2, 3]));
 * backward(sum(mul(w, w)));
 * if ((await w.grad!.data()).join() !== "2,4,6") throw new Error("wrong gradient");
 * ```
 */
export function backward(loss: Tensor, grad?: Tensor): void {
  checkLoss(loss, grad);
  const order = topologicalOrder(loss);
  tidy(() => noGrad(() => propagate(loss, grad, order)));
  // Release the graph so that saved tensors can be freed.
  for (const t of order) release(t);
}

function checkLoss(loss: Tensor, grad: Tensor | undefined): void {
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
}

/** The tensors that `loss` depends on through recorded ops, inputs before results (iterative: models are deep). */
function topologicalOrder(loss: Tensor): Tensor[] {
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
  return order;
}

/** Runs each node's backward from the loss down, keeping one pending gradient per tensor (by id). */
function propagate(loss: Tensor, grad: Tensor | undefined, order: Tensor[]): void {
  const grads = new Map<number, Tensor>();
  grads.set(loss.id, grad ?? ones(loss.shape));
  for (let k = order.length - 1; k >= 0; k--) {
    const t = order[k];
    const g = grads.get(t.id);
    if (!g) continue;
    grads.delete(t.id);
    if (t.node) {
      backwardNode(t, g, grads);
      if (g !== grad) g.dispose();
    } else {
      accumulateIntoLeaf(t, g, grad);
    }
  }
}

/** Adds `g` to a leaf's `.grad`, which outlives the backward's tidy scope. */
function accumulateIntoLeaf(t: Tensor, g: Tensor, lossGrad: Tensor | undefined): void {
  if (t.grad) {
    const sum = accumulate(t.grad, g);
    t.grad.dispose();
    t.grad = keep(sum);
  } else {
    t.grad = keep(g === lossGrad ? copy(g) : g);
  }
}

/** Runs the backward of `t`'s node on its gradient `g` and adds what comes out to its inputs' pending gradients. */
function backwardNode(t: Tensor, g: Tensor, grads: Map<number, Tensor>): void {
  const node = t.node!;
  // Prior gradients for the inputs whose backward sums them in itself (each input once).
  const prior = node.inputs.map((input, j) =>
    node.accumulates?.[j] && input.requiresGrad && node.inputs.indexOf(input) === j ? grads.get(input.id) : undefined
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
    if (gi.shape.join() !== input.shape.join()) gi = sumTo(gi, input.shape);
    // The same tensor may come back for several inputs (add) or be dy itself: give each owner a view.
    if (used.has(gi)) gi = view(gi, gi.shape);
    used.add(gi);
    const prev = grads.get(input.id);
    if (prev) {
      grads.set(input.id, accumulate(prev, gi));
      prev.dispose();
      gi.dispose();
    } else {
      grads.set(input.id, gi);
    }
  });
}

/**
 * A disposed or released tensor in the graph would otherwise look like a leaf (its node is gone), and the
 * gradient to everything before it would be dropped without a word.
 */
function checkUsable(t: Tensor): void {
  if (t.disposed) {
    throw new Error(`backward(): ${t.describe()} in the graph was disposed before backward() reached it`);
  }
  if (isReleased(t)) {
    throw new Error(
      `backward(): ${t.describe()} comes from a graph that an earlier backward() released; ` +
        "recompute the forward to differentiate again",
    );
  }
}

/**
 * Returns a function that evaluates `fn` and the gradients of its scalar result with respect to `params`
 * (without touching their `.grad`).
 *
 * @example
 * ```ts
 * import { initGpu, mul, param, sum, tensor, valueAndGrad } from "@nanolm/nanolm/tensor";
 * await initGpu();
 * const w = param(tensor([1, 2, 3]));
 * const [loss, [dw]] = valueAndGrad(() => sum(mul(w, w)), [w])();
 * if ((await loss.item()) !== 14 || (await dw.data()).join() !== "2,4,6" || w.grad) throw new Error("wrong");
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

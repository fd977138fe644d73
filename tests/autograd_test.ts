/**
 * Autograd semantics: accumulation across backward calls, noGrad, detach, valueAndGrad, shared inputs (diamonds),
 * explicit output gradients, graph release, and a small network end to end against finite differences.
 */
import { assert, assertClose, assertEquals, assertThrows } from "./assert.ts";
import { checkGrad, upload, uploadInts } from "./harness.ts";
import * as ref from "./reference.ts";
import { randInts, randNd, rngFor } from "./reference.ts";
import {
  add,
  attention,
  backward,
  crossEntropy,
  detach,
  exp,
  initGpu,
  isGradEnabled,
  matmul,
  mean,
  mul,
  noGrad,
  param,
  readAll,
  reshape,
  rmsNorm,
  silu,
  square,
  sum,
  tensor,
  tidy,
  valueAndGrad,
} from "../lib/tensor/mod.ts";

await initGpu();

Deno.test("gradients accumulate across backward() calls until zeroed", async () => {
  const w = param(tensor([1, -2, 3]));
  sum(mul(w, w)).backward(); // 2w
  sum(mul(w, 3)).backward(); // + 3
  const [g] = await readAll([w.grad!]);
  assertEquals(Array.from(g), [5, -1, 9]);
  w.grad!.dispose();
  w.grad = null;
  sum(w).backward();
  assertEquals(Array.from(await w.grad!.data()), [1, 1, 1]);
  w.dispose();
});

Deno.test("diamonds: an input used twice gets the sum of both paths", async () => {
  const x = param(tensor([0.5, -1, 2]));
  sum(add(x, x)).backward();
  const g1 = await x.grad!.data();
  x.grad!.dispose();
  x.grad = null;
  sum(mul(x, x)).backward();
  const g2 = await x.grad!.data();
  assertEquals(Array.from(g1), [2, 2, 2]);
  assertEquals(Array.from(g2), [1, -2, 4]);
  x.dispose();
  // A deeper diamond: x feeds exp, a product with itself and a reduction that is broadcast back.
  const rng = rngFor("diamond");
  await checkGrad({
    name: "exp(x) * x + sum(x) - x^2",
    inputs: [randNd(rng, [3, 4])],
    gpu: ([t]) => add(add(mul(exp(t), t), sum(t, { axis: -1, keepDims: true })), mul(square(t), -1)),
    ref: ([v]) => {
      const s = ref.reduce(v, "sum", -1, true);
      return ref.zip([v, s], (e, r) => Math.exp(e) * e + r - e * e);
    },
  });
  // The same tensor on both sides of a matmul.
  await checkGrad({
    name: "matmul(x, x)",
    inputs: [randNd(rng, [5, 5])],
    gpu: ([t]) => matmul(t, t),
    ref: ([v]) => ref.matmul(v, v),
  });
  await checkGrad({
    name: "matmul(x, x^T)",
    inputs: [randNd(rng, [3, 4])],
    gpu: ([t]) => matmul(t, t, { transB: true }),
    ref: ([v]) => ref.matmul(v, v, { transB: true }),
  });
});

Deno.test("accumulating backwards (RMSNorm, matmul) fold a tensor's other gradients into their kernels", async () => {
  // x reaches the loss through a residual path, an RMSNorm and three projections of the normalised x, in both
  // orders of use, so that each accumulating backward runs with and without a prior gradient.
  const rng = rngFor("accumulate");
  const [B, T, d] = [2, 3, 8];
  const inputs = [randNd(rng, [B, T, d]), randNd(rng, [d]), randNd(rng, [d, d]), randNd(rng, [d, d])];
  const refNorm = (x: ref.Nd, w: ref.Nd) => ref.rmsNorm(x, w);
  await checkGrad({
    name: "x + h @ Wa^T + h @ Wb^T + (h @ Wa^T) @ Wb with h = rmsNorm(x)",
    inputs,
    gpu: ([x, w, wa, wb]) => {
      const h = rmsNorm(x, w);
      const a = matmul(h, wa, { transB: true });
      return add(add(add(x, a), matmul(h, wb, { transB: true })), matmul(a, wb));
    },
    ref: ([x, w, wa, wb]) => {
      const h = refNorm(x, w);
      const a = ref.matmul(h, wa, { transB: true });
      const sum3 = ref.zip([x, a, ref.matmul(h, wb, { transB: true })], (p, q, r) => p + q + r);
      return ref.zip([sum3, ref.matmul(a, wb)], (p, q) => p + q);
    },
  });
  await checkGrad({
    name: "rmsNorm(x) used before the residual: rmsNorm(x) @ Wa + x",
    inputs: inputs.slice(0, 3),
    gpu: ([x, w, wa]) => add(matmul(rmsNorm(x, w), wa), x),
    ref: ([x, w, wa]) => ref.zip([ref.matmul(refNorm(x, w), wa), x], (p, q) => p + q),
  });
});

Deno.test("noGrad records nothing and restores the previous mode, even on throw", async () => {
  const w = param(tensor([1, 2]));
  const y = noGrad(() => {
    assert(!isGradEnabled());
    return mul(w, w);
  });
  assert(isGradEnabled());
  assert(!y.requiresGrad && y.node === null);
  assertThrows(() => y.backward(), "does not require grad");
  assertThrows(() =>
    noGrad(() => {
      throw new Error("inner");
    }), "inner");
  assert(isGradEnabled());
  // Nested: the inner call leaves the outer one disabled.
  noGrad(() => {
    noGrad(() => {});
    assert(!isGradEnabled());
  });
  assertEquals(Array.from(await y.data()), [1, 4]);
  w.dispose();
});

Deno.test("detach shares values but cuts the graph", async () => {
  const x = param(tensor([1, 2, 3]));
  const d = detach(x);
  assert(!d.requiresGrad);
  sum(mul(x, d)).backward(); // d/dx of x * const = const = x
  const [g, dv] = await readAll([x.grad!, d]);
  assertEquals(Array.from(g), [1, 2, 3]);
  assertEquals(Array.from(dv), [1, 2, 3]);
  x.dispose();
});

Deno.test("valueAndGrad returns the value and gradients and leaves .grad alone", async () => {
  const a = param(tensor([1, 2])), b = param(tensor([3, -1]));
  sum(a).backward(); // a.grad = [1, 1] beforehand
  const f = valueAndGrad(() => sum(mul(mul(a, a), b)), [a, b]);
  const [value, [ga, gb]] = f();
  const [v, gav, gbv, aGrad] = await readAll([value, ga, gb, a.grad!]);
  assertEquals(Array.from(v), [1 * 3 + 4 * -1]);
  assertEquals(Array.from(gav), [6, -4]); // 2ab
  assertEquals(Array.from(gbv), [1, 4]); // a^2
  assertEquals(Array.from(aGrad), [1, 1]);
  assertEquals(b.grad, null);
  // A second call gives fresh gradients, not accumulated ones.
  const [, [ga2]] = f();
  assertEquals(Array.from(await ga2.data()), [6, -4]);
  // A parameter the function does not use is an error.
  const c = param(tensor([0]));
  assertThrows(() => valueAndGrad(() => sum(a), [a, c])(), "does not depend");
  for (const t of [a, b, c, ga, gb, ga2]) t.dispose();
});

Deno.test("backward with an explicit output gradient, and its errors", async () => {
  const x = param(tensor([1, 2, 3]));
  const y = mul(x, x);
  assertThrows(() => y.backward(), "one-element");
  backward(y, tensor([1, 0, -1]));
  assertEquals(Array.from(await x.grad!.data()), [2, 0, -6]);
  assertThrows(() => backward(tensor([1])), "does not require grad");
  // A gradient of another shape is an error naming both, not a broadcast.
  assertThrows(() => backward(mul(x, x), tensor([1, 2])), "(2) f32");
  assertThrows(() => backward(mul(x, x), tensor([5])), "(3) f32");
  x.dispose();
});

Deno.test("backward releases the graph: a second backward through it is an error, not a silent no-op", async () => {
  const x = param(tensor([1, 2]));
  const h = exp(x);
  const loss = sum(h);
  loss.backward();
  assert(loss.node === null && h.node === null, "graph released");
  assertThrows(() => loss.backward(), "backward");
  // Using a released intermediate in a new graph must not silently drop the gradient to x.
  assertThrows(() => sum(mul(h, 2)).backward(), "backward");
  const g = await x.grad!.data();
  assertClose(g, [Math.E, Math.E ** 2], { rtol: 1e-6 });
  x.dispose();
});

Deno.test("a result of a released graph can become a parameter of a new one", async () => {
  const x = param(tensor([1, 2]));
  const h = mul(x, 3);
  sum(h).backward();
  const p = param(h);
  sum(mul(p, p)).backward();
  assertEquals(Array.from(await p.grad!.data()), [6, 12]);
  x.dispose();
  p.dispose();
});

Deno.test("backward through a disposed intermediate is an error, not a silently missing gradient", () => {
  const x = param(tensor([1, 2]));
  const h = exp(x);
  const loss = sum(h);
  h.dispose();
  assertThrows(() => loss.backward(), "disposed");
  x.dispose();
});

Deno.test("gradients of a tiny MLP (rmsNorm, matmul, silu, crossEntropy) match finite differences", async () => {
  const rng = rngFor("mlp");
  const [B, T, D, H, V] = [2, 3, 6, 5, 7];
  const targets = randInts(rng, B * T, V);
  const mlpRef = ([x, g, w1, w2]: ref.Nd[]) => {
    const h = ref.rmsNorm(x, g);
    const a = ref.map(ref.matmul(h, w1), (v) => v / (1 + Math.exp(-v)));
    return ref.crossEntropy(ref.matmul(a, w2, { transB: true }), targets);
  };
  await checkGrad({
    name: "mlp",
    inputs: [
      randNd(rng, [B, T, D]),
      randNd(rng, [D], { low: 0.5, high: 1.5 }),
      randNd(rng, [D, H]),
      randNd(rng, [V, H]),
    ],
    gpu: ([x, g, w1, w2]) =>
      crossEntropy(matmul(silu(matmul(rmsNorm(x, g), w1)), w2, { transB: true }), uploadInts(targets, [B, T])),
    ref: mlpRef,
    forward: { atol: 1e-6, rtol: 1e-5 },
  });
});

Deno.test("gradients flow through reshape views and mean", async () => {
  const rng = rngFor("views");
  await checkGrad({
    name: "mean(reshape(x) * x')",
    inputs: [randNd(rng, [2, 6])],
    gpu: ([t]) => mean(mul(reshape(t, [3, 4]), reshape(t, [3, 4])), { axis: 0 }),
    ref: ([v]) => ref.reduce(ref.nd([3, 4], v.data.map((e) => e * e)), "mean", 0),
  });
});

Deno.test("tidy keeps gradients of returned parameters and frees the rest", async () => {
  const w = param(tensor([1, 2, 3]));
  const loss = tidy(() => {
    const l = sum(square(w));
    l.backward();
    return l;
  });
  assert(!loss.disposed && !w.grad!.disposed);
  const [l, g] = await readAll([loss, w.grad!]);
  assertEquals(Array.from(l), [14]);
  assertEquals(Array.from(g), [2, 4, 6]);
  w.dispose();
  assert(w.grad === null);
});

Deno.test("a non-parameter input never receives a gradient", async () => {
  const x = upload(ref.nd([2], [1, 2]));
  const w = param(tensor([3, 4]));
  sum(mul(x, w)).backward();
  assertEquals(x.grad, null);
  assertEquals(Array.from(await w.grad!.data()), [1, 2]);
  w.dispose();
});

Deno.test("gradients when only some inputs are parameters (matmul, rmsNorm, attention, where)", async () => {
  const rng = rngFor("partial");
  const a = randNd(rng, [2, 3, 4]), b = randNd(rng, [4, 5]);
  for (const wrt of [[0], [1]]) {
    await checkGrad({
      name: `matmul wrt ${wrt}`,
      inputs: [a, b],
      wrt,
      gpu: ([x, y]) => matmul(x, y),
      ref: ([x, y]) => ref.matmul(x, y),
    });
    await checkGrad({
      name: `rmsNorm wrt ${wrt}`,
      inputs: [randNd(rng, [3, 6]), randNd(rng, [6], { low: 0.5, high: 1.5 })],
      wrt,
      gpu: ([x, w]) => rmsNorm(x, w),
      ref: ([x, w]) => ref.rmsNorm(x, w),
    });
  }
  for (const fused of [true, false]) {
    await checkGrad({
      name: `attention wrt v, fused ${fused}`,
      inputs: [randNd(rng, [2, 5, 4]), randNd(rng, [2, 5, 4]), randNd(rng, [2, 5, 4])],
      wrt: [2],
      gpu: ([q, k, v]) => attention(q, k, v, { fused }),
      ref: ([q, k, v]) => ref.attention(q, k, v),
    });
  }
});

/**
 * Elementwise ops, comparisons, selection, reductions and movement ops: forward against the float64 reference on
 * seeded random shapes (odd sizes, size-1 dims, broadcasting), backward against finite differences.
 */
import { assert, assertClose, assertEquals } from "./assert.ts";
import { assertCloseInf, checkGrad, dispatchedKernels, expectClose, upload, uploadInts } from "./harness.ts";
import { gpu } from "../lib/gpu/backend.ts";
import { rowRange } from "../lib/tensor/tensor.ts";
import * as ref from "./reference.ts";
import { type Nd, randNd, randShape, rngFor } from "./reference.ts";
import {
  abs,
  add,
  broadcastTo,
  cast,
  compare,
  type CompareOp,
  concat,
  copy,
  div,
  exp,
  initGpu,
  log,
  max,
  maximum,
  mean,
  minimum,
  mul,
  neg,
  param,
  permute,
  pow,
  readAll,
  relu,
  reshape,
  rmsNorm,
  rsqrt,
  sigmoid,
  silu,
  slice,
  sqrt,
  square,
  sub,
  sum,
  tanh,
  type Tensor,
  tensor,
  transpose,
  where,
} from "../lib/tensor/mod.ts";

await initGpu();

// ---- Unary ------------------------------------------------------------------------------------------------------

interface UnaryCase {
  gpu: (x: Tensor) => Tensor;
  ref: (v: number) => number;
  low: number;
  high: number;
  /** Points where the op has a kink, kept away from by the inputs of the gradient check. */
  kinks?: number[];
}

const unaryCases: Record<string, UnaryCase> = {
  neg: { gpu: neg, ref: (v) => -v, low: -2, high: 2 },
  exp: { gpu: exp, ref: Math.exp, low: -3, high: 3 },
  log: { gpu: log, ref: Math.log, low: 0.05, high: 4 },
  sqrt: { gpu: sqrt, ref: Math.sqrt, low: 0.05, high: 4 },
  rsqrt: { gpu: rsqrt, ref: (v) => 1 / Math.sqrt(v), low: 0.05, high: 4 },
  square: { gpu: square, ref: (v) => v * v, low: -2, high: 2 },
  abs: { gpu: abs, ref: Math.abs, low: -2, high: 2, kinks: [0] },
  relu: { gpu: relu, ref: (v) => Math.max(v, 0), low: -2, high: 2, kinks: [0] },
  sigmoid: { gpu: sigmoid, ref: (v) => 1 / (1 + Math.exp(-v)), low: -8, high: 8 },
  silu: { gpu: silu, ref: (v) => v / (1 + Math.exp(-v)), low: -8, high: 8 },
  tanh: { gpu: tanh, ref: Math.tanh, low: -4, high: 4 },
};

for (const [name, c] of Object.entries(unaryCases)) {
  Deno.test(`${name}: forward and backward match the float64 reference`, async () => {
    const rng = rngFor(`unary/${name}`);
    for (const shape of [[1], [3, 1, 87], randShape(rng, 2, 600)]) {
      const x = randNd(rng, shape, { low: c.low, high: c.high, awayFrom: { points: c.kinks ?? [], margin: 1e-3 } });
      await checkGrad({
        name: `${name}${JSON.stringify(shape)}`,
        inputs: [x],
        gpu: ([t]) => c.gpu(t),
        ref: ([v]) => ref.map(v, c.ref),
        gradTol: 2e-5,
      });
    }
  });
}

Deno.test("unary ops stay finite and exact at large magnitudes", async () => {
  const xs = [-100, -50, -20, 0, 20, 50, 100];
  const x = tensor(xs);
  const names = ["sigmoid", "silu", "tanh", "relu", "abs", "neg"];
  const outs = names.map((n) => unaryCases[n].gpu(x));
  const values = await readAll(outs);
  names.forEach((n, i) => {
    assertClose(values[i], xs.map(unaryCases[n].ref), { atol: 1e-6, rtol: 1e-6, msg: n });
  });
  // exp overflows to +inf and underflows to 0 like float32 does, log of 0 is -inf.
  const [e, l] = await readAll([exp(tensor([-200, 0, 200])), log(tensor([0, 1]))]);
  assertEquals(Array.from(e), [0, 1, Infinity]);
  assertEquals(Array.from(l), [-Infinity, 0]);
});

// ---- Binary with broadcasting -------------------------------------------------------------------------------------

interface BinaryCase {
  gpu: (a: Tensor | number, b: Tensor | number) => Tensor;
  ref: (a: number, b: number) => number;
  a: (rng: ReturnType<typeof rngFor>, shape: number[]) => Nd;
  b: (rng: ReturnType<typeof rngFor>, shape: number[]) => Nd;
}

const uniform = (low: number, high: number) => (rng: ReturnType<typeof rngFor>, shape: number[]) =>
  randNd(rng, shape, { low, high });
/** Values on a grid offset by `offset`: two grids with different offsets never tie (maximum/minimum kinks). */
const grid = (offset: number) => (rng: ReturnType<typeof rngFor>, shape: number[]) =>
  ref.map(randNd(rng, shape), () => Math.fround((rng.int(40) - 20) / 10 + offset));

const binaryCases: Record<string, BinaryCase> = {
  add: { gpu: add, ref: (a, b) => a + b, a: uniform(-2, 2), b: uniform(-2, 2) },
  sub: { gpu: sub, ref: (a, b) => a - b, a: uniform(-2, 2), b: uniform(-2, 2) },
  mul: { gpu: mul, ref: (a, b) => a * b, a: uniform(-2, 2), b: uniform(-2, 2) },
  div: {
    gpu: div,
    ref: (a, b) => a / b,
    a: uniform(-2, 2),
    b: (rng, shape) => ref.map(randNd(rng, shape, { low: 0.5, high: 2 }), (v) => (rng.int(2) ? v : -v)),
  },
  pow: { gpu: pow, ref: Math.pow, a: uniform(0.3, 2), b: uniform(-2, 3) },
  maximum: { gpu: maximum, ref: Math.max, a: grid(0), b: grid(0.05) },
  minimum: { gpu: minimum, ref: Math.min, a: grid(0), b: grid(0.05) },
};

/** Pairs of shapes that broadcast: same shape, scalar-like, rank-extending, outer-product-like, random. */
function broadcastPairs(rng: ReturnType<typeof rngFor>): [number[], number[]][] {
  const out = randShape(rng, 3, 500);
  return [
    [[5, 7], [5, 7]],
    [[3, 1, 5], [4, 5]],
    [[1], [2, 3]],
    [[17, 1], [1, 33]],
    [out, ref.broadcastableShape(rng, out)],
  ];
}

for (const [name, c] of Object.entries(binaryCases)) {
  Deno.test(`${name}: broadcasting forward and backward match the float64 reference`, async () => {
    const rng = rngFor(`binary/${name}`);
    for (const [sa, sb] of broadcastPairs(rng)) {
      for (const [shapeA, shapeB] of [[sa, sb], [sb, sa]]) {
        await checkGrad({
          name: `${name} ${JSON.stringify(shapeA)} ${JSON.stringify(shapeB)}`,
          inputs: [c.a(rng, shapeA), c.b(rng, shapeB)],
          gpu: ([a, b]) => c.gpu(a, b),
          ref: ([a, b]) => ref.zip([a, b], c.ref),
          forward: { atol: 1e-6, rtol: name === "pow" ? 2e-5 : 1e-5 },
          gradTol: 2e-5,
        });
      }
    }
  });

  Deno.test(`${name}: a number on either side`, async () => {
    const rng = rngFor(`binary-scalar/${name}`);
    const sa = c.a(rng, [1]).data[0], sb = c.b(rng, [1]).data[0];
    const x = c.a(rng, [3, 5]), y = c.b(rng, [3, 5]);
    await checkGrad({
      name: `${name}(x, ${sb})`,
      inputs: [x],
      gpu: ([t]) => c.gpu(t, sb),
      ref: ([v]) => ref.map(v, (e) => c.ref(e, sb)),
      gradTol: 2e-5,
    });
    await checkGrad({
      name: `${name}(${sa}, y)`,
      inputs: [y],
      gpu: ([t]) => c.gpu(sa, t),
      ref: ([v]) => ref.map(v, (e) => c.ref(sa, e)),
      gradTol: 2e-5,
    });
  });
}

Deno.test("pow: negative bases with integer exponents, zero bases and zero exponents", async () => {
  const a = tensor([-2, -2, -3, -1.5, 0, 0, 0, 2, 0, 0]);
  const b = tensor([2, 3, -1, 2, 0, 2, 1, 0, -1, -0.5]);
  const expected = [4, -8, -1 / 3, 2.25, 1, 0, 0, 1, Infinity, Infinity];
  const pa = param(tensor([-2, -2, -3, 0, 0]));
  const e = tensor([2, 3, -1, 1, 2]);
  const loss = sum(pow(pa, e));
  loss.backward();
  const [y, cube, ga] = await readAll([pow(a, b), pow(a, 3), pa.grad!]);
  assertCloseInf(y, expected, { atol: 1e-6, rtol: 1e-6 });
  assertClose(cube, [-8, -8, -27, -3.375, 0, 0, 0, 8, 0, 0], { atol: 1e-5, rtol: 1e-6 });
  // d/da a^b = b a^(b-1): at a = 0 that is 1 for b = 1 and 0 for b = 2.
  assertClose(ga, [-4, 12, -1 / 9, 1, 0], { atol: 1e-6, rtol: 1e-5 });
  pa.dispose();
});

Deno.test("maximum/minimum: at ties the whole gradient goes to one side (a valid subgradient)", async () => {
  const a = param(tensor([1, 2, 3])), b = param(tensor([1, 5, 0]));
  const loss = add(sum(maximum(a, b)), sum(mul(minimum(a, b), 2)));
  loss.backward();
  const [ga, gb] = await readAll([a.grad!, b.grad!]);
  // Per element: d(max + 2 min) sums to 3 over a and b.
  for (let i = 0; i < 3; i++) assertEquals(ga[i] + gb[i], 3);
  assertEquals(Array.from(ga).slice(1), [2, 1]);
  assertEquals(Array.from(gb).slice(1), [1, 2]);
  a.dispose();
  b.dispose();
});

// ---- Comparisons and where ---------------------------------------------------------------------------------------

const compareRefs: Record<CompareOp, (a: number, b: number) => boolean> = {
  eq: (a, b) => a === b,
  ne: (a, b) => a !== b,
  lt: (a, b) => a < b,
  le: (a, b) => a <= b,
  gt: (a, b) => a > b,
  ge: (a, b) => a >= b,
};

Deno.test("compare: every op with broadcasting, ties, numbers and i32 inputs", async () => {
  const rng = rngFor("compare");
  // Small integers so that ties are common.
  const ints = (shape: number[]) => ref.map(ref.nd(shape), () => rng.int(3) - 1);
  const a = ints([4, 1, 5]), b = ints([3, 1]);
  const ta = upload(a), tb = upload(b);
  const ia = uploadInts(Array.from(a.data), a.shape);
  const outs: Tensor[] = [], expected: Nd[] = [];
  for (const [op, f] of Object.entries(compareRefs) as [CompareOp, (a: number, b: number) => boolean][]) {
    const r = (x: number, y: number) => (f(x, y) ? 1 : 0);
    outs.push(compare(op, ta, tb), compare(op, ta, 0), compare(op, 0, tb), compare(op, ia, tb));
    expected.push(
      ref.zip([a, b], r),
      ref.map(a, (x) => r(x, 0)),
      ref.map(b, (y) => r(0, y)),
      ref.zip([a, b], r),
    );
  }
  await expectClose(outs, expected, { atol: 0, rtol: 0 });
});

Deno.test("where: forward and backward with broadcasting, f32 and i32 masks, numbers", async () => {
  const rng = rngFor("where");
  const mask = ref.map(ref.nd([3, 1, 6]), () => rng.int(2));
  const a = randNd(rng, [4, 6]), b = randNd(rng, [3, 4, 1]);
  const sel = (c: number, x: number, y: number) => (c !== 0 ? x : y);
  await checkGrad({
    name: "where(f32 mask, a, b)",
    inputs: [mask, a, b],
    wrt: [1, 2],
    gpu: ([m, x, y]) => where(m, x, y),
    ref: ([m, x, y]) => ref.zip([m, x, y], sel),
  });
  const ids = Array.from(mask.data);
  await checkGrad({
    name: "where(i32 mask, a, 2.5)",
    inputs: [a],
    gpu: ([x]) => where(uploadInts(ids, mask.shape), x, 2.5),
    ref: ([x]) => ref.zip([mask, x], (m, v) => sel(m, v, 2.5)),
  });
  await checkGrad({
    name: "where(mask, -1, b)",
    inputs: [b],
    gpu: ([y]) => where(upload(mask), -1, y),
    ref: ([y]) => ref.zip([mask, y], (m, v) => sel(m, -1, v)),
  });
});

Deno.test("copy and cast", async () => {
  const x = tensor([1.7, -1.7, 2.5, -0.2]);
  const [c, i, back] = await readAll([copy(x), cast(x, "i32"), cast(cast(x, "i32"), "f32")]);
  assertClose(c, [1.7, -1.7, 2.5, -0.2], { atol: 0, rtol: 1e-7 });
  assert(i instanceof Int32Array);
  assertEquals(Array.from(i), [1, -1, 2, 0]);
  assertEquals(Array.from(back), [1, -1, 2, 0]);
});

// ---- Reductions -------------------------------------------------------------------------------------------------

const reducers = { sum, mean, max };

Deno.test("sum/mean/max: random shapes, single and multiple axes, negative axes, keepDims", async () => {
  const rng = rngFor("reduce");
  const outs: Tensor[] = [], expected: Nd[] = [];
  // [5, 4] and [3, 6, 8] reduce over non-innermost axes with inner sizes that are multiples of 4 (the vec4 kernel).
  const shapes = [
    [7],
    [1, 5],
    [5, 4],
    [3, 1, 17],
    [2, 33, 5],
    [3, 6, 8],
    randShape(rng, 3, 3000),
    randShape(rng, 4, 3000),
  ];
  for (const shape of shapes) {
    const x = randNd(rng, shape, { low: -2, high: 2 });
    const t = upload(x);
    const n = shape.length;
    const axesList: (number | number[] | undefined)[] = [undefined, 0, -1, n > 1 ? [0, n - 1] : [0]];
    if (n >= 3) axesList.push(1, [-3, 1]);
    for (const axis of axesList) {
      for (const keepDims of [false, true]) {
        for (const [kind, fn] of Object.entries(reducers) as [ref.RefReduce, typeof sum][]) {
          outs.push(fn(t, { axis, keepDims }));
          expected.push(ref.reduce(x, kind, axis, keepDims));
        }
      }
    }
  }
  await expectClose(outs, expected, { atol: 1e-5, rtol: 1e-5 });
});

Deno.test("sum/mean/max of long rows: the two-pass path and the single-workgroup path", async () => {
  const rng = rngFor("reduce-long");
  const outs: Tensor[] = [], expected: Nd[] = [];
  for (const n of [20480, 20001, 16385]) {
    const x = randNd(rng, [n], { low: 0, high: 1 });
    const t = upload(x);
    for (const [kind, fn] of Object.entries(reducers) as [ref.RefReduce, typeof sum][]) {
      outs.push(fn(t), fn(reshape(t, [1, n, 1]), { axis: 1, keepDims: true }));
      expected.push(ref.reduce(x, kind), ref.reduce(ref.nd([1, n, 1], x.data), kind, 1, true));
    }
  }
  // float32 accumulation over 2e4 values of ~0.5: relative error ~1e-6.
  await expectClose(outs, expected, { atol: 1e-5, rtol: 2e-5 });
});

Deno.test("sum/mean/max: backward matches finite differences", async () => {
  const rng = rngFor("reduce-grad");
  for (
    const [shape, axis, keepDims] of [
      [[7], undefined, false],
      [[3, 1, 5], -1, true],
      [[4, 5, 3], [0, 2], false],
      [[2, 3, 4], 1, false],
    ] as [number[], number | number[] | undefined, boolean][]
  ) {
    for (const [kind, fn] of Object.entries(reducers) as [ref.RefReduce, typeof sum][]) {
      await checkGrad({
        name: `${kind} ${JSON.stringify(shape)} axis ${JSON.stringify(axis)} keepDims ${keepDims}`,
        inputs: [randNd(rng, shape, { low: -2, high: 2 })],
        gpu: ([t]) => fn(t, { axis, keepDims }),
        ref: ([x]) => ref.reduce(x, kind, axis, keepDims),
        forward: { atol: 1e-6, rtol: 1e-5 },
      });
    }
  }
});

// ---- Movement ---------------------------------------------------------------------------------------------------

Deno.test("reshape: shares storage, infers -1, and passes gradients through", async () => {
  const rng = rngFor("reshape");
  const x = randNd(rng, [2, 3, 5]);
  for (const shape of [[6, 5], [-1], [5, -1, 1], [30, 1], [1, 2, 15]]) {
    await checkGrad({
      name: `reshape ${JSON.stringify(shape)}`,
      inputs: [x],
      gpu: ([t]) => reshape(t, shape),
      ref: ([v]) => {
        const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
        return ref.nd(shape.map((d) => (d === -1 ? 30 / known : d)), v.data);
      },
    });
  }
  const t = tensor([1, 2, 3, 4]);
  const v = reshape(t, [2, 2]);
  assertEquals(v.shape, [2, 2]);
  assertEquals(v.buffer, t.buffer);
});

Deno.test("permute/transpose: random permutations of random shapes, forward and backward", async () => {
  const rng = rngFor("permute");
  const outs: Tensor[] = [], expected: Nd[] = [];
  for (let n = 1; n <= 5; n++) {
    for (let trial = 0; trial < 3; trial++) {
      const shape = randShape(rng, n, 2000);
      const axes = [...shape.keys()];
      for (let i = n - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [axes[i], axes[j]] = [axes[j], axes[i]];
      }
      const x = randNd(rng, shape);
      outs.push(permute(upload(x), axes));
      expected.push(ref.permute(x, axes));
      if (n >= 2) {
        outs.push(transpose(upload(x)), transpose(upload(x), 0, n - 1));
        expected.push(ref.transpose(x), ref.transpose(x, 0, n - 1));
      }
    }
  }
  await expectClose(outs, expected, { atol: 0, rtol: 0 });
  await checkGrad({
    name: "permute [2, 0, 3, 1]",
    inputs: [randNd(rng, [3, 4, 1, 5])],
    gpu: ([t]) => permute(t, [2, 0, 3, 1]),
    ref: ([x]) => ref.permute(x, [2, 0, 3, 1]),
  });
  await checkGrad({
    name: "transpose(1, -1)",
    inputs: [randNd(rng, [2, 3, 5])],
    gpu: ([t]) => transpose(t, 1, -1),
    ref: ([x]) => ref.transpose(x, 1, -1),
  });
});

Deno.test("transpose of a matrix: whole and partial 32 x 32 tiles, f32 and i32, forward and backward", async () => {
  const rng = rngFor("matrix-transpose");
  const shapes = [[70, 45], [33, 1], [1, 100], [64, 96], [300, 7]];
  const outs: Tensor[] = [], expected: Nd[] = [];
  for (const shape of shapes) {
    const x = randNd(rng, shape);
    outs.push(transpose(upload(x)));
    expected.push(ref.transpose(x));
  }
  await expectClose(outs, expected, { atol: 0, rtol: 0 });
  const ints = Array.from({ length: 37 * 41 }, (_, i) => (i * 7919) % 1000 - 500);
  const got = await transpose(uploadInts(ints, [37, 41])).data();
  assertEquals(Array.from(got), Array.from({ length: 37 * 41 }, (_, i) => ints[(i % 37) * 41 + Math.floor(i / 37)]));
  await checkGrad({
    name: "transpose of a (35, 40) matrix",
    inputs: [randNd(rng, [35, 40])],
    gpu: ([t]) => transpose(t),
    ref: ([x]) => ref.transpose(x),
  });
});

Deno.test("slice: every axis, negative bounds, empty and full ranges, forward and backward", async () => {
  const rng = rngFor("slice");
  const x = randNd(rng, [4, 7, 5]);
  const cases: [number, number, number | undefined][] = [
    [0, 1, 3],
    [1, 2, 7],
    [2, 0, 1],
    [-1, -3, -1],
    [1, -4, undefined],
    [0, 0, 4],
    [1, 3, 3],
  ];
  const outs = cases.map(([axis, start, end]) => slice(upload(x), { axis, start, end }));
  await expectClose(outs, cases.map(([axis, start, end]) => ref.slice(x, axis, start, end)), { atol: 0, rtol: 0 });
  for (const [axis, start, end] of cases.slice(0, 5)) {
    await checkGrad({
      name: `slice axis ${axis} [${start}, ${end})`,
      inputs: [x],
      gpu: ([t]) => slice(t, { axis, start, end }),
      ref: ([v]) => ref.slice(v, axis, start, end),
    });
  }
});

Deno.test("concat: along each axis, with size-1 pieces, forward and backward", async () => {
  const rng = rngFor("concat");
  for (
    const [axis, shapes] of [
      [0, [[2, 3], [1, 3], [4, 3]]],
      [1, [[2, 1, 5], [2, 6, 5], [2, 2, 5]]],
      [-1, [[3, 2, 1], [3, 2, 7]]],
      [0, [[5]]],
      [1, [[2, 0], [2, 3], [2, 0]]],
    ] as [number, number[][]][]
  ) {
    await checkGrad({
      name: `concat axis ${axis} ${JSON.stringify(shapes)}`,
      inputs: shapes.map((s) => randNd(rng, s)),
      gpu: (ts) => concat(ts, axis),
      ref: (xs) => ref.concat(xs, axis),
    });
  }
});

Deno.test("concat: pieces end to end (one dispatch each way), up to the binding limit and past it", async () => {
  const rng = rngFor("concat end to end");
  for (
    const [axis, shapes] of [
      [0, [[6, 4], [6, 4], [6, 4]]], // a fused q/k/v weight: copied 4 elements at a time
      [0, [[1, 4], [3, 4], [2, 4], [5, 4]]], // pieces of 4, 12, 8 and 20 elements: vectors of 4
      [0, [[5, 3], [7, 3]]],
      [1, [[1, 2, 3], [1, 5, 3], [1, 1, 3]]], // only ones before the axis: still end to end
      [0, Array.from({ length: 7 }, (_, i) => [i + 1, 2])], // the most one dispatch takes
      [0, Array.from({ length: 8 }, () => [2, 3])], // one more: the per-piece gather
      [0, [[3, 2, 2]]],
    ] as [number, number[][]][]
  ) {
    await checkGrad({
      name: `concat end to end axis ${axis} ${JSON.stringify(shapes)}`,
      inputs: shapes.map((s) => randNd(rng, s)),
      gpu: (ts) => concat(ts, axis),
      ref: (xs) => ref.concat(xs, axis),
    });
  }
  // A piece without gradients (a frozen weight) gets none; the others still get theirs.
  const a = param(tensor([[1, 2], [3, 4]])), b = tensor([[5, 6]]), c = param(tensor([[7, 8]]));
  const y = concat([a, b, c], 0);
  assertEquals(Array.from(await y.data()), [1, 2, 3, 4, 5, 6, 7, 8]);
  sum(mul(y, tensor([[1, 2], [3, 4], [5, 6], [7, 8]]))).backward();
  assertEquals(Array.from(await a.grad!.data()), [1, 2, 3, 4]);
  assertEquals(b.grad, null);
  assertEquals(Array.from(await c.grad!.data()), [7, 8]);
});

Deno.test("concat: pieces at bindable offsets get views of the gradient, pieces already end to end make a view", async () => {
  const rng = rngFor("concat views");
  const align = gpu().device.limits.minStorageBufferOffsetAlignment / 4;
  // Pieces of a multiple of the alignment: the backward binds dy's rows in place instead of a split dispatch.
  const shapes = [[2, align], [1, align], [3, align]];
  await checkGrad({
    name: "concat aligned pieces",
    inputs: shapes.map((s) => randNd(rng, s)),
    gpu: (ts) => concat(ts, 0),
    ref: (xs) => ref.concat(xs, 0),
  });
  const pieces = shapes.map((s) => param(upload(randNd(rng, s))));
  const backward = dispatchedKernels(() => sum(mul(concat(pieces, 0), upload(randNd(rng, [6, align])))).backward());
  assertEquals(backward.filter((k) => k.name.includes("split")).length, 0, backward.map((k) => k.name).join());
  // Rows of one buffer, in order: the concatenation is a view (no dispatch); its gradient reaches each piece, and
  // gradients accumulate over two backward passes.
  const whole = upload(randNd(rng, [6, align]));
  const rows = [[0, 2], [2, 3], [3, 6]].map(([a, b]) => param(rowRange(whole, a, b)));
  const r = randNd(rng, [6, align]);
  let y: Tensor | null = null;
  assertEquals(dispatchedKernels(() => y = concat(rows, 0)).length, 0);
  assertEquals(Array.from(await y!.data()), Array.from(await whole.data()));
  for (let pass = 0; pass < 2; pass++) sum(mul(concat(rows, 0), upload(r))).backward();
  const grads = await readAll(rows.map((t) => t.grad!));
  assertEquals(grads.flatMap((g) => Array.from(g)), Array.from(r.data, (v) => Math.fround(Math.fround(v) * 2)));
  // Out of order, or with a gap: copied as before.
  assertEquals((await concat([rows[1], rows[0]], 0).data())[0], (await rows[1].data())[0]);
  assert(dispatchedKernels(() => concat([rows[0], rows[2]], 0)).length > 0, "pieces with a gap are copied");
});

Deno.test("broadcastTo: forward and backward (gradients sum over broadcast dims)", async () => {
  const rng = rngFor("broadcastTo");
  for (
    const [from, to] of [
      [[1], [4]],
      [[3, 1], [2, 3, 5]],
      [[1, 5], [3, 5]],
      [[2, 1, 4], [2, 3, 4]],
      [[3], [3]],
    ]
  ) {
    await checkGrad({
      name: `broadcastTo ${JSON.stringify(from)} -> ${JSON.stringify(to)}`,
      inputs: [randNd(rng, from)],
      gpu: ([t]) => broadcastTo(t, to),
      ref: ([x]) => ref.broadcastTo(x, to),
    });
  }
});

Deno.test("empty tensors pass through elementwise, movement and sum", async () => {
  const x = tensor(new Float32Array(0), { shape: [0, 3] });
  const outs = [
    exp(x),
    add(x, tensor([1, 2, 3])),
    transpose(x),
    concat([x, x], 0),
    sum(x, { axis: 0 }),
    slice(tensor([1, 2]), { axis: 0, start: 1, end: 1 }),
  ];
  const values = await readAll(outs);
  assertEquals(outs.map((t) => t.shape), [[0, 3], [0, 3], [3, 0], [0, 3], [3], [0]]);
  assertEquals(values.map((v) => v.length), [0, 0, 0, 0, 3, 0]);
  assertEquals(Array.from(values[4]), [0, 0, 0]);
});

Deno.test("0-d tensors broadcast, reduce and receive gradients", async () => {
  const s = param(tensor(2));
  const y = sum(mul(add(s, tensor([1, 2])), tensor(3)));
  y.backward();
  const [yv, g] = await readAll([y, s.grad!]);
  assertEquals(y.shape, []);
  assertEquals(s.grad!.shape, []);
  assertEquals(Array.from(yv), [21]);
  assertEquals(Array.from(g), [6]);
  s.dispose();
});

Deno.test("movement ops keep i32 values exact (token ids)", async () => {
  const ids = tensor(new Int32Array([1, 2, 3, 4, 5, 1 << 30]), { shape: [2, 3] });
  const outs = [
    slice(ids, { axis: 1, start: 1 }),
    concat([ids, ids], 0),
    permute(ids, [1, 0]),
    broadcastTo(reshape(ids, [1, 6]), [2, 6]),
  ];
  const values = await readAll(outs);
  assert(values.every((v) => v instanceof Int32Array));
  assertEquals(values.map((v) => Array.from(v)), [
    [2, 3, 5, 1 << 30],
    [1, 2, 3, 4, 5, 1 << 30, 1, 2, 3, 4, 5, 1 << 30],
    [1, 4, 2, 5, 3, 1 << 30],
    [1, 2, 3, 4, 5, 1 << 30, 1, 2, 3, 4, 5, 1 << 30],
  ]);
});

Deno.test("broadcasting across five dims with interleaved size-1 dims, forward and backward", async () => {
  const rng = rngFor("broadcast-5d");
  const [sa, sb, sc] = [[2, 1, 3, 1, 5], [4, 1, 5, 1], [3, 1, 1]];
  await checkGrad({
    name: "a * b + c in 5-D",
    inputs: [randNd(rng, sa), randNd(rng, sb), randNd(rng, sc)],
    gpu: ([a, b, c]) => add(mul(a, b), c),
    ref: ([a, b, c]) => ref.zip([a, b, c], (x, y, z) => x * y + z),
  });
  const x = randNd(rng, [2, 3, 1, 4, 1, 2]);
  const axes = [5, 3, 0, 4, 1, 2];
  await expectClose([permute(upload(x), axes)], [ref.permute(x, axes)], { atol: 0, rtol: 0 });
});

Deno.test("number operands that constant-fold to invalid WGSL still compile: pow(0, x), pow(-2, x), huge literals", async () => {
  const x = param(tensor([1, 2, 3, 0]));
  const outs = [pow(0, x), pow(-2, x), mul(x, 1e39), add(x, -1e39)];
  sum(add(pow(-2, x), pow(2, x))).backward();
  await expectClose([...outs, x.grad!], [
    ref.nd([4], [0, 0, 0, 1]),
    ref.nd([4], [-2, 4, -8, 1]),
    ref.nd([4], [Infinity, Infinity, Infinity, NaN]), // 0 * inf
    ref.nd([4], [-Infinity, -Infinity, -Infinity, -Infinity]),
    // d/dx (-2)^x has no real value (0 by convention); d/dx 2^x = 2^x ln 2.
    ref.nd([4], [2, 4, 8, 1].map((v) => v * Math.log(2))),
  ], { atol: 1e-6, rtol: 1e-6 });
  x.dispose();
});

Deno.test("broadcasting property test: random shapes of 1 to 5 dims, three inputs", async () => {
  const rng = rngFor("broadcast-property");
  const outs: Tensor[] = [], expected: Nd[] = [];
  for (let trial = 0; trial < 25; trial++) {
    const shape = randShape(rng, 1 + rng.int(5), 3000);
    const [sa, sb, sc] = [0, 1, 2].map(() => ref.broadcastableShape(rng, shape));
    sa.unshift(...shape.slice(0, shape.length - sa.length)); // one input spans the full rank
    const m = ref.map(randNd(rng, sc), (v) => (v > 0 ? 1 : 0));
    const a = randNd(rng, sa), b = randNd(rng, sb);
    outs.push(where(upload(m), upload(a), upload(b)), sub(upload(a), upload(b)));
    expected.push(ref.zip([m, a, b], (c, x, y) => (c ? x : y)), ref.zip([a, b], (x, y) => x - y));
  }
  // The difference is rounded to f32 once.
  await expectClose(outs, expected, { atol: 1e-7, rtol: 1e-7 });
});

Deno.test("sum/mean/max down long columns (a workgroup's threads sharing a column, or two passes) and the RMSNorm weight gradient", async () => {
  // Up to 4096 rows over few columns, one workgroup's row lanes share each column: 4 to 256 lanes, scalar and vec4
  // columns, rows that the lanes do not divide, columns past the last block's, several outer indices. Longer axes
  // take the grouped two-pass path ([5000, 3]).
  const rng = rngFor("reduce-columns");
  const outs: Tensor[] = [], expected: Nd[] = [];
  for (
    const [shape, axis] of [
      [[1024, 5], 0],
      [[4096, 8], 0],
      [[3, 200, 16], 1],
      [[5000, 3], 0],
      [[2, 600, 3], 1],
      [[3, 513, 2], 1],
      [[520, 1, 7], [0, 1]],
      [[256, 300], 0],
      [[64, 5], 0],
      [[96, 3], 0],
    ] as [
      number[],
      number | number[],
    ][]
  ) {
    const x = randNd(rng, shape);
    const t = upload(x);
    for (const [kind, fn] of Object.entries(reducers) as [ref.RefReduce, typeof sum][]) {
      outs.push(fn(t, { axis, keepDims: true }));
      expected.push(ref.reduce(x, kind, axis, true));
    }
  }
  await expectClose(outs, expected, { atol: 2e-5, rtol: 1e-5 });
  await checkGrad({
    name: "rmsNorm weight gradient over 1024 rows",
    inputs: [randNd(rng, [2, 512, 4]), randNd(rng, [4], { low: 0.5, high: 1.5 })],
    wrt: [1],
    gpu: ([x, w]) => rmsNorm(x, w),
    ref: ([x, w]) => ref.rmsNorm(x, w),
  });
});

Deno.test("sum/max down columns of 1 to 50 rows: every chunking of the column kernel's loads", async () => {
  // The column kernel loads 16 rows before adding them: a partial chunk alone, one whole chunk, a whole chunk and a
  // rest, the chunk loop, and the loop and a rest; over vec4 columns (8) and scalar ones (7).
  const rng = rngFor("reduce-column-chunks");
  const outs: Tensor[] = [], expected: Nd[] = [];
  for (const rows of [1, 3, 15, 16, 17, 31, 32, 33, 50]) {
    for (const cols of [8, 7]) {
      const x = randNd(rng, [rows, cols]);
      const t = upload(x);
      outs.push(sum(t, { axis: 0 }), max(t, { axis: 0 }));
      expected.push(ref.reduce(x, "sum", 0, false), ref.reduce(x, "max", 0, false));
    }
  }
  await expectClose(outs, expected, { atol: 1e-6, rtol: 1e-6 });
});

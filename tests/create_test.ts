/**
 * Creating tensors: from host data, constants, and the seeded random constructors (reproducibility, moments,
 * truncation bounds).
 */
import { assert, assertClose, assertEquals, assertThrows } from "./assert.ts";
import { Rng } from "../lib/util/random.ts";
import {
  full,
  initGpu,
  ones,
  rand,
  randn,
  readAll,
  type Tensor,
  tensor,
  truncNormal,
  zeros,
} from "../lib/tensor/mod.ts";

await initGpu();

function moments(x: ArrayLike<number>): { mean: number; std: number; min: number; max: number } {
  let s = 0, s2 = 0, min = Infinity, max = -Infinity;
  for (let i = 0; i < x.length; i++) {
    s += x[i];
    s2 += x[i] * x[i];
    min = Math.min(min, x[i]);
    max = Math.max(max, x[i]);
  }
  const mean = s / x.length;
  return { mean, std: Math.sqrt(s2 / x.length - mean * mean), min, max };
}

Deno.test("tensor: nested arrays, numbers, typed arrays with shapes, i32; toArray and item", async () => {
  const a = tensor([[1, 2, 3], [4, 5, 6]]);
  const s = tensor(7);
  const t = tensor(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [3, 2] });
  const ids = tensor(new Int32Array([3, -1, 2]));
  const cast = tensor([1, 2], { dtype: "i32" });
  assertEquals([a.shape, s.shape, t.shape, ids.shape], [[2, 3], [], [3, 2], [3]]);
  assertEquals([ids.dtype, cast.dtype, a.dtype], ["i32", "i32", "f32"]);
  assertEquals(await a.toArray(), [[1, 2, 3], [4, 5, 6]]);
  assertEquals(await t.toArray(), [[1, 2], [3, 4], [5, 6]]);
  assertEquals(await s.item(), 7);
  const [iv, cv] = await readAll([ids, cast]);
  assert(iv instanceof Int32Array && cv instanceof Int32Array);
  assertEquals(Array.from(iv), [3, -1, 2]);
  assertEquals(Array.from(cv), [1, 2]);
});

Deno.test("zeros, ones and full in f32 and i32", async () => {
  const ts = [zeros([2, 3]), ones([5]), full([3, 1], -2.5), full([4], 7, "i32"), zeros([2], "i32")];
  const values = await readAll(ts);
  assertEquals(values.map((v) => Array.from(v)), [
    [0, 0, 0, 0, 0, 0],
    [1, 1, 1, 1, 1],
    [-2.5, -2.5, -2.5],
    [7, 7, 7, 7],
    [0, 0],
  ]);
  assert(values[3] instanceof Int32Array);
});

Deno.test("random constructors: same seed gives the same values, other seeds others; rng option advances", async () => {
  const make = (seed: number) => [
    randn([3, 5], { seed }),
    rand([7], { seed, low: -1, high: 2 }),
    truncNormal([4], { seed, std: 0.1 }),
  ];
  const [a, b, c] = await Promise.all([0, 0, 1].map((seed) => readAll(make(seed))));
  a.forEach((v, i) => assertEquals(v, b[i]));
  a.forEach((v, i) => assert(Array.from(v).some((e, j) => e !== c[i][j]), `constructor ${i} ignores the seed`));
  // Drawn on the host from the seeded Rng: the values are predictable in float64 references.
  const rng = new Rng(0);
  assertClose(a[0], Array.from({ length: 15 }, () => rng.normal()), { atol: 0, rtol: 1e-7 });
  // A shared generator continues its stream across calls.
  const shared = new Rng(5);
  const [first, second] = await readAll([randn([4], { rng: shared }), randn([4], { rng: shared })]);
  const [both] = await readAll([randn([8], { seed: 5 })]);
  assertEquals(Array.from(first).concat(Array.from(second)), Array.from(both));
});

Deno.test("randn and rand have the requested moments", async () => {
  const n = 20000;
  const [z, u] = await readAll([randn([n], { seed: 3, mean: 2, std: 0.5 }), rand([n], { seed: 4, low: -3, high: 1 })]);
  const mz = moments(z), mu = moments(u);
  // Standard errors: 0.5 / sqrt(n) = 0.0035 for the mean; allow ~4 sigma.
  assert(Math.abs(mz.mean - 2) < 0.015, `randn mean ${mz.mean}`);
  assert(Math.abs(mz.std - 0.5) < 0.01, `randn std ${mz.std}`);
  assert(mu.min >= -3 && mu.max < 1, `rand range [${mu.min}, ${mu.max}]`);
  assert(Math.abs(mu.mean + 1) < 0.05, `rand mean ${mu.mean}`);
  assert(Math.abs(mu.std - 4 / Math.sqrt(12)) < 0.02, `rand std ${mu.std}`);
});

Deno.test("truncNormal stays within [mean + a*std, mean + b*std] and has the truncated variance", async () => {
  const n = 20000;
  const ts: Tensor[] = [
    truncNormal([n], { seed: 1 }), // defaults: a = -2, b = 2
    truncNormal([n], { seed: 2, mean: 1, std: 0.1, a: -3, b: 3 }),
    truncNormal([n], { seed: 3, a: 0, b: 0.5 }),
  ];
  const [d, w, h] = await readAll(ts);
  const md = moments(d), mw = moments(w), mh = moments(h);
  assert(md.min >= -2 && md.max <= 2, `default bounds [${md.min}, ${md.max}]`);
  assert(mw.min >= Math.fround(0.7) && mw.max <= Math.fround(1.3), `[-3, 3] bounds [${mw.min}, ${mw.max}]`);
  assert(mh.min >= 0 && mh.max <= 0.5, `[0, 0.5] bounds [${mh.min}, ${mh.max}]`);
  // A standard normal truncated to [-2, 2] has variance 1 - 2 * 2 phi(2) / (Phi(2) - Phi(-2)) = 0.7737.
  assert(Math.abs(md.mean) < 0.02, `truncated mean ${md.mean}`);
  assert(Math.abs(md.std - Math.sqrt(0.7737)) < 0.015, `truncated std ${md.std}`);
  assert(Math.abs(mw.mean - 1) < 0.005, `shifted mean ${mw.mean}`);
  assertThrows(() => truncNormal([2], { a: 1, b: 1 }), "a < b");
});

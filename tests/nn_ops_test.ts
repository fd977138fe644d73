/**
 * The fused neural-network ops (softmax, log-softmax, RMSNorm, RoPE, embedding, cross-entropy, attention) against
 * the float64 reference, with gradients against finite differences.
 */
import { assert, assertClose, assertEquals } from "./assert.ts";
import { assertCloseInf, assertNoGpuErrors, checkGrad, expectClose, upload, uploadInts } from "./harness.ts";
import * as ref from "./reference.ts";
import { type Nd, randInts, randNd, rngFor } from "./reference.ts";
import { crossEntropyForwardKernel } from "../kernels/cross_entropy.ts";
import { rmsNormForwardKernel } from "../kernels/rmsnorm.ts";
import {
  add,
  attention,
  crossEntropy,
  embedding,
  full,
  gpu,
  initGpu,
  logSoftmax,
  mul,
  param,
  readAll,
  rmsNorm,
  rope,
  softmax,
  sum,
  type Tensor,
  tensor,
} from "../lib/tensor/mod.ts";

await initGpu();

// ---- Softmax ------------------------------------------------------------------------------------------------------

Deno.test("softmax/logSoftmax: rows of odd lengths, longer than a workgroup, with scales", async () => {
  const rng = rngFor("softmax");
  const shapes = [[1, 1], [3, 7], [2, 5, 129], [4, 300], [6]];
  for (const [i, shape] of shapes.entries()) {
    for (const scale of [1, [0.37, -2][i % 2]]) {
      const x = randNd(rng, shape, { low: -3, high: 3 });
      const t = upload(x);
      const [p, lp] = await readAll([softmax(t, { scale }), logSoftmax(t, { scale })]);
      const msg = `${JSON.stringify(shape)} scale ${scale}`;
      assertClose(p, ref.softmax(x, { scale }).data, { atol: 1e-7, rtol: 1e-5, msg });
      assertCloseInf(lp, ref.softmax(x, { scale, log: true }).data, { atol: 1e-5, rtol: 1e-5, msg });
    }
  }
});

Deno.test("softmax/logSoftmax: causal mask with queries <= keys", async () => {
  const rng = rngFor("softmax-causal");
  for (const shape of [[2, 5, 5], [3, 4, 9], [1, 1, 6], [2, 2, 3, 140]]) {
    const x = randNd(rng, shape, { low: -3, high: 3 });
    const t = upload(x);
    const scale = 0.5;
    const [p, lp] = await readAll([softmax(t, { scale, causal: true }), logSoftmax(t, { scale, causal: true })]);
    const msg = `causal ${JSON.stringify(shape)}`;
    assertClose(p, ref.softmax(x, { scale, causal: true }).data, { atol: 1e-7, rtol: 1e-5, msg });
    assertCloseInf(lp, ref.softmax(x, { scale, causal: true, log: true }).data, { atol: 1e-5, rtol: 1e-5, msg });
  }
});

Deno.test("softmax/logSoftmax: numerically stable for large logits", async () => {
  const x = [1000, 1001, 999, -1000];
  const t = tensor(x);
  const [p, lp] = await readAll([softmax(t), logSoftmax(t)]);
  const expected = ref.softmax(ref.nd([4], x));
  assertClose(p, expected.data, { atol: 1e-7, rtol: 1e-5 });
  assertCloseInf(lp, ref.softmax(ref.nd([4], x), { log: true }).data, { atol: 1e-5, rtol: 1e-5 });
});

Deno.test("softmax/logSoftmax: backward matches finite differences (plain, scaled, causal)", async () => {
  const rng = rngFor("softmax-grad");
  for (const log of [false, true]) {
    for (
      const [shape, scale, causal] of [
        [[3, 7], 1, false],
        [[2, 130], 0.6, false],
        [[2, 4, 6], 0.5, true],
        [[3, 3], -1.5, true],
      ] as [number[], number, boolean][]
    ) {
      const cols = shape[shape.length - 1], tq = shape[shape.length - 2];
      await checkGrad({
        name: `${log ? "logSoftmax" : "softmax"} ${JSON.stringify(shape)} scale ${scale} causal ${causal}`,
        inputs: [randNd(rng, shape, { low: -2, high: 2 })],
        gpu: ([t]) => (log ? logSoftmax : softmax)(t, { scale, causal }),
        ref: ([x]) => ref.softmax(x, { scale, causal, log }),
        lossMask: causal ? (i) => ref.causalVisible(Math.floor(i / cols) % tq, i % cols, tq, cols) : undefined,
        forward: { atol: 1e-6, rtol: 1e-5 },
      });
    }
  }
});

// ---- RMSNorm ------------------------------------------------------------------------------------------------------

Deno.test("rmsNorm: forward and backward (x and weight) on odd and long rows", async () => {
  const rng = rngFor("rmsnorm");
  for (
    const [shape, eps] of [
      [[4, 7], 1e-5],
      [[2, 3, 130], 1e-5],
      [[5], 1e-2],
      [[3, 1], 1e-5],
      [[3, 64], 1e-5], // rows of 16 vectors: fewer than the 64 threads
      [[2, 2, 36], 1e-5],
      [[2, 1032], 1e-5], // 258 vectors: more than one per thread
      [[70, 36], 1e-5], // the fused backward: 5 workgroups of 16 rows, the last 6 rows in 4 slots
      [[37, 130], 1e-5], // floats: 2 rows at once, a second column per thread for 2 of 128 threads
      [[2, 1030], 1e-5], // 9 floats a thread: too long for the fused backward's registers
      [[2, 2, 2052], 1e-5], // 513 vectors: too long as well
    ] as [number[], number][]
  ) {
    const dim = shape[shape.length - 1];
    await checkGrad({
      name: `rmsNorm ${JSON.stringify(shape)} eps ${eps}`,
      inputs: [randNd(rng, shape, { low: -2, high: 2 }), randNd(rng, [dim], { low: 0.5, high: 1.5 })],
      gpu: ([x, w]) => rmsNorm(x, w, { eps }),
      ref: ([x, w]) => ref.rmsNorm(x, w, eps),
      forward: { atol: 1e-6, rtol: 1e-5 },
      ...(shape.reduce((a, b) => a * b) > 3000 ? { sample: 40 } : {}),
    });
  }
});

Deno.test("rmsNorm: backward adds the gradient x has from its other uses (the residual stream)", async () => {
  const rng = rngFor("rmsnorm-residual");
  for (const shape of [[70, 36], [37, 130], [3, 1030]]) {
    const dim = shape[1];
    await checkGrad({
      name: `x * x + rmsNorm(x, w) ${JSON.stringify(shape)}`,
      inputs: [randNd(rng, shape, { low: -2, high: 2 }), randNd(rng, [dim], { low: 0.5, high: 1.5 })],
      gpu: ([x, w]) => add(mul(x, x), rmsNorm(x, w)),
      ref: ([x, w]) => ref.zip([x, ref.rmsNorm(x, w)], (v, y) => v * v + y),
      forward: { atol: 1e-6, rtol: 1e-5 },
      ...(shape[0] * dim > 3000 ? { sample: 40 } : {}),
    });
  }
});

Deno.test("rmsNorm: default eps is 1e-5 and a zero row stays zero", async () => {
  const x = ref.nd([2, 3], [0, 0, 0, 1e-3, -2e-3, 3e-3]), w = ref.nd([3], [1, 2, 3]);
  const [y] = await readAll([rmsNorm(upload(x), upload(w))]);
  assertClose(y, ref.rmsNorm(x, w, 1e-5).data, { atol: 1e-7, rtol: 1e-5 });
});

Deno.test("rmsNorm: forward kernel, held and looped rows, into y and in place, against float64", async () => {
  const rng = rngFor("rmsnorm-forward-kernel");
  const eps = 1e-5;
  for (
    const [rows, dim, looped] of [
      [5, 512, 0], // 128 vectors: 2 a thread
      [5, 516, 0], // 129 vectors: a third for thread 0 only
      [4, 260, 0], // 65 vectors: a second for thread 0 only
      [3, 2048, 0], // 8 vectors a thread, the most held
      [3, 2052, 18], // 9 a thread: looped
      [2, 4100, 34],
      [5, 37, 0], // floats: 37 of 128 threads
      [4, 130, 0], // a second float for 2 of 128 threads
      [3, 1022, 0], // 8 floats a thread, the last for 126
      [2, 1030, 18],
    ]
  ) {
    const x = randNd(rng, [rows, dim], { low: -2, high: 2 }), w = randNd(rng, [dim], { low: 0.5, high: 1.5 });
    const want = ref.rmsNorm(x, w, eps);
    const rstdWant = Array.from({ length: rows }, (_, r) => {
      let ss = 0;
      for (let j = 0; j < dim; j++) ss += x.data[r * dim + j] ** 2;
      return 1 / Math.sqrt(ss / dim + eps);
    });
    for (const inPlace of [false, true]) {
      const kernel = rmsNormForwardKernel(rows, dim, eps, { inPlace });
      const msg = `(${rows}, ${dim})${inPlace ? " in place" : ""}`;
      assertEquals([kernel.source.includes("for (var j"), kernel.loops?.iterations], [
        looped > 0,
        looped || undefined,
      ], msg);
      const tx = upload(x), tw = upload(w);
      if (inPlace) {
        gpu().run(kernel, [tx.buffer, tw.buffer]);
        const [got] = await readAll([tx]);
        assertClose(got, want.data, { atol: 1e-6, rtol: 1e-5, msg });
      } else {
        const y = full([rows, dim], 0), rstd = full([rows], 0);
        gpu().run(kernel, [tx.buffer, tw.buffer, y.buffer, rstd.buffer]);
        const [got, gotRstd] = await readAll([y, rstd]);
        assertClose(got, want.data, { atol: 1e-6, rtol: 1e-5, msg });
        assertClose(gotRstd, rstdWant, { atol: 0, rtol: 1e-5, msg: `${msg} rstd` });
        for (const t of [y, rstd]) t.dispose();
      }
      assertNoGpuErrors();
      for (const t of [tx, tw]) t.dispose();
    }
  }
});

// ---- RoPE ---------------------------------------------------------------------------------------------------------

Deno.test("rope: shared and per-row positions, offsets, thetas; backward is the inverse rotation", async () => {
  const rng = rngFor("rope");
  const cases: { shape: number[]; positions: number[]; posShape: number[]; theta: number; maxPosition?: number }[] = [
    { shape: [2, 3, 6, 8], positions: [0, 1, 2, 3, 4, 5], posShape: [6], theta: 10000 },
    { shape: [5, 2], positions: [0, 1, 2, 3, 4], posShape: [5], theta: 10000 },
    { shape: [2, 4, 6], positions: [7, 8, 9, 10], posShape: [4], theta: 100, maxPosition: 11 },
    {
      shape: [2, 3, 4],
      positions: [3, 1, 0, 9, 2, 2],
      posShape: [2, 3],
      theta: 10000,
      maxPosition: 16,
    },
    { shape: [1, 1, 10], positions: [200], posShape: [1], theta: 500, maxPosition: 256 },
  ];
  for (const c of cases) {
    const x = randNd(rng, c.shape);
    await checkGrad({
      name: `rope ${JSON.stringify(c.shape)} positions ${c.positions} theta ${c.theta}`,
      inputs: [x],
      gpu: ([t]) => rope(t, uploadInts(c.positions, c.posShape), { theta: c.theta, maxPosition: c.maxPosition }),
      ref: ([v]) => ref.rope(v, c.positions, c.theta),
      forward: { atol: 1e-6, rtol: 1e-5 },
      gradTol: 2e-5,
    });
  }
});

Deno.test("rope: positions up to maxPosition inclusive are exact; positions past the table give NaN", async () => {
  const rng = rngFor("rope-offset");
  // dim 8 takes the kernel's two-pairs-a-thread (vec4) path, dim 6 its one-pair (vec2) path.
  for (const dim of [8, 6]) {
    const x = randNd(rng, [2, 1, dim]);
    const t = upload(x);
    const at = (p: number, maxPosition?: number) => rope(t, uploadInts([p], [1]), { maxPosition });
    // Decoding with a cache: one query at a late position. The table holds rows 0..maxPosition.
    const [y64, y100, y128, bad, neg] = await readAll([at(64, 64), at(100, 128), at(128, 128), at(100), at(-1, 8)]);
    const tol = { atol: 1e-6, rtol: 1e-5 };
    assertClose(y64, ref.rope(x, [64]).data, { ...tol, msg: `dim ${dim} position 64, maxPosition 64` });
    assertClose(y100, ref.rope(x, [100]).data, { ...tol, msg: `dim ${dim} position 100, maxPosition 128` });
    assertClose(y128, ref.rope(x, [128]).data, { ...tol, msg: `dim ${dim} position 128, maxPosition 128` });
    // Without maxPosition the table covers the sequence (here 1 row, rounded up to 64): 100 is outside it.
    assert(Array.from(bad).every(Number.isNaN), `dim ${dim}: position 100 past the table gave ${bad}`);
    assert(Array.from(neg).every(Number.isNaN), `dim ${dim}: position -1 gave ${neg}`);
  }
});

// ---- Embedding ----------------------------------------------------------------------------------------------------

Deno.test("embedding: gather with repeated ids; backward scatter-adds (collisions) to the table", async () => {
  const rng = rngFor("embedding");
  for (
    const [vocab, dim, idsShape] of [[11, 6, [2, 7]], [5, 3, [40]], [300, 1, [3, 1, 2]]] as [
      number,
      number,
      number[],
    ][]
  ) {
    const ids = randInts(rng, ref.numel(idsShape), Math.min(vocab, 4)); // few distinct ids: many collisions
    ids[0] = vocab - 1;
    await checkGrad({
      name: `embedding vocab ${vocab} dim ${dim} ids ${JSON.stringify(idsShape)}`,
      inputs: [randNd(rng, [vocab, dim])],
      gpu: ([table]) => embedding(table, uploadInts(ids, idsShape)),
      ref: ([table]) => ref.embedding(table, ids, idsShape),
    });
  }
});

Deno.test("embedding: ids outside the table give zero rows and no gradient", async () => {
  const table = param(tensor([[1, 2], [3, 4], [5, 6]]));
  const ids = tensor(new Int32Array([2, -1, 3, 0, 2]));
  const y = embedding(table, ids);
  sum(y).backward();
  const [yv, g] = await readAll([y, table.grad!]);
  assertEquals(Array.from(yv), [5, 6, 0, 0, 0, 0, 1, 2, 5, 6]);
  assertEquals(Array.from(g), [1, 1, 0, 0, 2, 2]);
  table.dispose();
});

// ---- Cross-entropy ------------------------------------------------------------------------------------------------

Deno.test("crossEntropy: forward and backward on small and long vocabularies", async () => {
  const rng = rngFor("cross-entropy");
  // 300 and 1028 take the vec4 kernels (1028 / 4 = 257 vec4s: longer than a 256-thread workgroup).
  for (const shape of [[5, 11], [2, 3, 300], [3, 1028], [1, 2], [7]]) {
    const vocab = shape[shape.length - 1];
    const targets = randInts(rng, ref.numel(shape) / vocab, vocab);
    await checkGrad({
      name: `crossEntropy ${JSON.stringify(shape)}`,
      inputs: [randNd(rng, shape, { low: -3, high: 3 })],
      gpu: ([logits]) => crossEntropy(logits, uploadInts(targets, shape.slice(0, -1))),
      ref: ([logits]) => ref.crossEntropy(logits, targets),
      forward: { atol: 1e-6, rtol: 1e-5 },
    });
  }
});

Deno.test("crossEntropy: stable for large logits; out-of-range targets give NaN", async () => {
  const logits = ref.nd([2, 3], [1000, 0, -1000, 500, 501, 502]);
  const [good, bad] = await readAll([
    crossEntropy(upload(logits), uploadInts([0, 1], [2])),
    crossEntropy(upload(logits), uploadInts([0, 3], [2])),
  ]);
  assertClose(good, ref.crossEntropy(logits, [0, 1]).data, { atol: 1e-5, rtol: 1e-5 });
  assert(Number.isNaN(bad[0]), `out-of-range target gave ${bad[0]}`);
  // The same with rows of a multiple of 4 (vec4 kernels): targets past either end give NaN.
  const wide = ref.nd([2, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
  const [low, high, fine] = await readAll([
    crossEntropy(upload(wide), uploadInts([-1, 0], [2])),
    crossEntropy(upload(wide), uploadInts([3, 4], [2])),
    crossEntropy(upload(wide), uploadInts([3, 2], [2])),
  ]);
  assert(Number.isNaN(low[0]) && Number.isNaN(high[0]), `out-of-range targets gave ${low[0]}, ${high[0]}`);
  assertClose(fine, ref.crossEntropy(wide, [3, 2]).data, { atol: 1e-6, rtol: 1e-6 });
});

Deno.test("crossEntropy: -inf logits (masked entries) contribute nothing, in rows longer than a workgroup", async () => {
  const rng = rngFor("cross-entropy-masked");
  for (const vocab of [5, 300, 1028]) {
    const x = randNd(rng, [3, vocab], { low: -2, high: 2 });
    // Masked entries early in each row, before finite ones that the same thread reads later.
    for (const [r, j] of [[0, 0], [1, 1], [1, 2], [2, vocab - 1]]) x.data[r * vocab + j] = -Infinity;
    const targets = [3, 0, 2];
    const logits = param(upload(x));
    const loss = crossEntropy(logits, uploadInts(targets, [3]));
    loss.backward();
    const [l, g] = await readAll([loss, logits.grad!]);
    const finite = ref.nd([3, vocab], x.data.map((v) => (v === -Infinity ? -1e30 : v)));
    assertClose(l, ref.crossEntropy(finite, targets).data, { atol: 1e-6, rtol: 1e-5, msg: `vocab ${vocab}` });
    assert(Array.from(g).every(Number.isFinite), `vocab ${vocab}: gradient ${g}`);
    for (const [r, j] of [[0, 0], [1, 1], [2, vocab - 1]]) assertEquals(g[r * vocab + j], 0);
    logits.dispose();
  }
});

/**
 * Float64 loss and log-sum-exp of each row of `x` (rows, cols) over its first `vocab` columns: NaN loss for a
 * target out of range, and a row of -inf logits has lse -inf (and NaN loss: -inf minus -inf).
 */
function rowLosses(x: Nd, vocab: number, targets: readonly number[]): { loss: number[]; lse: number[] } {
  const cols = x.shape[1], loss: number[] = [], lse: number[] = [];
  targets.forEach((t, r) => {
    const row = x.data.subarray(r * cols, r * cols + vocab);
    const m = row.reduce((a, b) => Math.max(a, b), -Infinity);
    const l = m === -Infinity ? -Infinity : m + Math.log(row.reduce((a, b) => a + Math.exp(b - m), 0));
    lse.push(l);
    loss.push(t >= 0 && t < vocab ? l - row[t] : NaN);
  });
  return { loss, lse };
}

Deno.test("crossEntropy forward kernel: each row's loss and lse match float64 on every path", async () => {
  const rng = rngFor("cross-entropy-rows");
  // [vocab, cols, path]: rows held in registers (a multiple of 4 up to 16,384 columns), looped over (longer rows of
  // a multiple of 4, GPT-2's padded vocabulary among them), and the one-logit loop (other lengths).
  const cases: [number, number, "held" | "looped" | "scalar"][] = [
    [1028, 1028, "held"], // 257 vec4s: a second vec4 for thread 0 only
    [10000, 10000, "held"],
    [16384, 16384, "held"],
    [8, 8, "held"],
    [1021, 1024, "held"], // padded vocabulary (paddedVocab)
    [37, 40, "held"],
    [16388, 16388, "looped"],
    [50257, 50304, "looped"],
    [1027, 1027, "scalar"],
  ];
  for (const [vocab, cols, path] of cases) {
    const rows = 7;
    const x = randNd(rng, [rows, cols], { low: -3, high: 3 });
    const set = (r: number, j: number, v: number) => x.data[r * cols + j] = v;
    for (let j = vocab; j < cols; j++) for (let r = 0; r < rows; r++) set(r, j, 1000); // padding: ignored
    set(1, 0, -Infinity); // a masked entry
    set(1, vocab - 1, -Infinity);
    for (let j = 0; j < vocab; j++) set(2, j, x.data[2 * cols + j] + 80); // large logits: the max is subtracted
    for (let j = 20; j < Math.min(24, vocab); j++) set(3, j, -Infinity); // all of thread 5's first vec4
    for (let j = 0; j < vocab; j++) set(4, j, -Infinity); // a row of -inf
    const targets = [vocab - 1, 2, 5, 0, 1, vocab, -1]; // the last two out of range
    const kernel = crossEntropyForwardKernel({ rows, vocab, ...(cols === vocab ? {} : { cols }) });
    const looped = kernel.source.includes("for (var j");
    assertEquals([looped, kernel.source.includes("let v0 =")], [path !== "held", path === "held"], `${vocab}`);
    const loops = { held: undefined, looped: 5 * Math.ceil(cols / 1024), scalar: Math.ceil(vocab / 256) }[path];
    assertEquals(kernel.loops?.iterations, loops, `${vocab}: loop iterations`);
    const logits = upload(x), ids = uploadInts(targets, [rows]), loss = full([rows], 0), lse = full([rows], 0);
    gpu().run(kernel, [logits.buffer, ids.buffer, loss.buffer, lse.buffer]);
    const [gotLoss, gotLse] = await readAll([loss, lse]);
    assertNoGpuErrors();
    const want = rowLosses(x, vocab, targets), msg = `vocab ${vocab}, cols ${cols}`;
    assertCloseInf(gotLse, want.lse, { atol: 1e-5, rtol: 1e-6, msg: `${msg} lse` });
    assertCloseInf(gotLoss, want.loss, { atol: 1e-5, rtol: 1e-6, msg: `${msg} loss` });
    for (const t of [logits, ids, loss, lse]) t.dispose();
  }
});

Deno.test("crossEntropy: the backward scales with the incoming gradient", async () => {
  const rng = rngFor("cross-entropy-scaled");
  const targets = [2, 0, 4];
  await checkGrad({
    name: "3 * crossEntropy + 1",
    inputs: [randNd(rng, [3, 5])],
    gpu: ([logits]) => add(sum(crossEntropy(logits, uploadInts(targets, [3])), {}), 1),
    ref: ([logits]) => ref.map(ref.crossEntropy(logits, targets), (v) => v + 1),
  });
});

// ---- Attention ----------------------------------------------------------------------------------------------------

Deno.test("attention: causal and full, fewer queries than keys, custom scale; gradients for q, k, v", async () => {
  const rng = rngFor("attention");
  const cases: {
    q: number[];
    kv: number[];
    dv: number;
    causal?: boolean;
    scale?: number;
    fused?: boolean;
    sample?: number;
  }[] = [
    // Head dims that are multiples of 4 up to 64 with dv = d run the fused kernels, unless fused is false.
    // Long sequences cross the fused kernels' query and key blocks; their gradients are sampled.
    { q: [1, 70, 64], kv: [1, 70, 64], dv: 64, sample: 24 },
    { q: [2, 33, 32], kv: [2, 97, 32], dv: 32, sample: 24 },
    { q: [1, 65, 4], kv: [1, 65, 4], dv: 4, causal: false, sample: 24 },
    { q: [2, 2, 5, 4], kv: [2, 2, 5, 4], dv: 4 },
    { q: [2, 2, 5, 4], kv: [2, 2, 5, 4], dv: 4, fused: false },
    { q: [1, 2, 3, 8], kv: [1, 2, 7, 8], dv: 8 },
    { q: [1, 37, 8], kv: [1, 37, 8], dv: 8, scale: 0.3 },
    { q: [2, 3, 16], kv: [2, 6, 16], dv: 16, causal: false },
    { q: [1, 3, 16], kv: [1, 6, 16], dv: 16, causal: false, fused: false },
    { q: [1, 2, 3, 4], kv: [1, 2, 6, 4], dv: 5 },
    { q: [2, 5, 3], kv: [2, 5, 3], dv: 3, causal: false },
    { q: [1, 4, 6], kv: [1, 4, 6], dv: 2, scale: 0.9 },
    { q: [1, 1, 1, 3], kv: [1, 1, 1, 3], dv: 3 },
  ];
  for (const c of cases) {
    const vShape = [...c.kv.slice(0, -1), c.dv];
    const opts = { causal: c.causal, scale: c.scale, fused: c.fused };
    await checkGrad({
      name: `attention q ${JSON.stringify(c.q)} kv ${JSON.stringify(c.kv)} dv ${c.dv} ${JSON.stringify(opts)}`,
      inputs: [randNd(rng, c.q), randNd(rng, c.kv), randNd(rng, vShape)],
      gpu: ([q, k, v]) => attention(q, k, v, opts),
      ref: ([q, k, v]) => ref.attention(q, k, v, opts),
      forward: { atol: 1e-6, rtol: 1e-5 },
      sample: c.sample,
    });
  }
});

Deno.test("attention: the first query of a causal attention sees only the first key", async () => {
  const rng = rngFor("attention-first");
  const q = randNd(rng, [1, 4, 3]), k = randNd(rng, [1, 4, 3]), v = randNd(rng, [1, 4, 2]);
  const out: Tensor = attention(upload(q), upload(k), upload(v));
  await expectClose([out], [ref.attention(q, k, v)]);
  const [y] = await readAll([out]);
  assertClose(y.slice(0, 2), v.data.slice(0, 2), { atol: 1e-7, rtol: 1e-6 });
});

Deno.test("row kernels with more than 65,535 rows use the 2-D launch grid correctly", async () => {
  const rng = rngFor("grid");
  const rows = 65537;
  const x = randNd(rng, [rows, 2], { low: -2, high: 2 });
  const targets = randInts(rng, rows, 2);
  const t = upload(x);
  await expectClose(
    [softmax(t), sum(t, { axis: -1 }), crossEntropy(t, uploadInts(targets, [rows]))],
    [ref.softmax(x), ref.reduce(x, "sum", -1), ref.crossEntropy(x, targets)],
    { atol: 1e-6, rtol: 1e-5 },
  );
});

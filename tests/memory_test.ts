/**
 * GPU memory stays flat: 1,000 training iterations of a tiny MLP inside `tidy`, and every op frees everything it
 * allocated once its inputs and outputs are disposed (with and without autograd, without any `tidy`).
 */
import { assert, assertClose, assertEquals, assertThrows } from "./assert.ts";
import { randInts, randNd, rngFor } from "./reference.ts";
import { upload, uploadInts } from "./harness.ts";
import {
  add,
  attention,
  concat,
  crossEntropy,
  embedding,
  exp,
  full,
  gpu,
  initGpu,
  keep,
  logSoftmax,
  matmul,
  max,
  mean,
  mul,
  noGrad,
  param,
  permute,
  readAll,
  reshape,
  rmsNorm,
  rope,
  silu,
  slice,
  softmax,
  sub,
  sum,
  sumTo,
  type Tensor,
  tensor,
  tidy,
} from "../lib/tensor/mod.ts";
import { scopeDepth } from "../lib/tensor/tensor.ts";
import { AdamW } from "../lib/optim/adamw.ts";

await initGpu();

const [N, D, H, V] = [8, 16, 24, 10];

function tinyMlp(seed: string) {
  const rng = rngFor(seed);
  const x = keep(upload(randNd(rng, [N, D])));
  const targets = keep(uploadInts(randInts(rng, N, V), [N]));
  const params = [
    param(upload(randNd(rng, [D], { low: 0.5, high: 1.5 })), "norm"),
    param(upload(randNd(rng, [D, H], { low: -0.3, high: 0.3 })), "w1"),
    param(upload(randNd(rng, [V, H], { low: -0.3, high: 0.3 })), "w2"),
  ];
  const loss = ([g, w1, w2]: Tensor[]) =>
    crossEntropy(matmul(silu(matmul(rmsNorm(x, g), w1)), w2, { transB: true }), targets);
  return { x, targets, params, loss };
}

/** Runs `iters` steps of `step` and fails if memory in use or allocated grows after the warm-up. */
async function assertFlat(iters: number, step: (i: number) => Tensor): Promise<number[]> {
  const losses: number[] = [];
  let baseline: { inUseBytes: number; totalBytes: number; inUseBuffers: number } | null = null;
  for (let i = 0; i < iters; i++) {
    const loss = step(i);
    if (i % 100 === 0 || i === iters - 1) {
      // Reading now and then keeps the GPU from falling far behind the recording.
      losses.push((await loss.data())[0]);
      const m = gpu().memory();
      if (i === 100) baseline = { inUseBytes: m.inUseBytes, totalBytes: m.totalBytes, inUseBuffers: m.inUseBuffers };
      if (baseline) {
        assertEquals(
          { inUseBytes: m.inUseBytes, totalBytes: m.totalBytes, inUseBuffers: m.inUseBuffers },
          baseline,
          `GPU memory grew by iteration ${i}`,
        );
      }
    }
    loss.dispose();
  }
  assertEquals(scopeDepth(), 0);
  return losses;
}

Deno.test("1,000 SGD steps of a tiny MLP in tidy keep GPU memory flat, and the loss falls", async () => {
  const { x, targets, loss, params } = tinyMlp("memory-sgd");
  const lr = 0.5;
  const losses = await assertFlat(1000, () =>
    tidy(() => {
      const l = loss(params);
      l.backward();
      noGrad(() => {
        params.forEach((p, j) => {
          const next = param(keep(sub(p, mul(p.grad!, lr))), p.name);
          p.dispose(); // frees its gradient too
          params[j] = next;
        });
      });
      return l;
    }));
  assert(losses[losses.length - 1] < losses[0] * 0.5, `loss did not fall: ${losses}`);
  for (const t of [x, targets, ...params]) t.dispose();
});

Deno.test("1,000 AdamW steps of a tiny MLP in tidy keep GPU memory flat, and the loss falls", async () => {
  const { x, targets, loss, params } = tinyMlp("memory-adamw");
  const opt = new AdamW(params, { lr: 1e-2, weightDecay: 0 });
  const losses = await assertFlat(1000, () => {
    const l = tidy(() => {
      const l = loss(params);
      l.backward();
      return l;
    });
    opt.step({ maxGradNorm: 1 });
    opt.zeroGrad();
    return l;
  });
  assert(losses[losses.length - 1] < losses[0] * 0.5, `loss did not fall: ${losses}`);
  for (const t of [x, targets, ...params]) t.dispose();
});

/** Every op: with its inputs and result disposed, memory in use returns to where it was, without any tidy. */
Deno.test("ops free every buffer they allocate, with and without autograd, without tidy", async () => {
  const rng = rngFor("memory-ops");
  type Inputs = Record<"a" | "b" | "long" | "w" | "a3" | "q3", Tensor> & Record<"pos" | "ids" | "tg", Tensor>;
  const ops: Record<string, (t: Inputs) => Tensor> = {
    exp: (t) => exp(t.a),
    add: (t) => add(t.a, t.w),
    sum: (t) => sum(t.a, { axis: 1 }),
    "sum of a long row": (t) => sum(t.long),
    mean: (t) => mean(t.a),
    max: (t) => max(t.a, { axis: 0, keepDims: true }),
    sumTo: (t) => sumTo(t.a, [1, 8]),
    reshape: (t) => reshape(t.a, [8, 6]),
    permute: (t) => permute(t.a, [1, 0]),
    slice: (t) => slice(t.a, { axis: 1, start: 2, end: 5 }),
    concat: (t) => concat([t.a, t.b], 0),
    matmul: (t) => matmul(t.a, t.b, { transB: true }),
    softmax: (t) => softmax(t.a),
    logSoftmax: (t) => logSoftmax(t.a),
    rmsNorm: (t) => rmsNorm(t.a, t.w),
    rope: (t) => rope(t.a3, t.pos),
    embedding: (t) => embedding(t.a, t.ids),
    crossEntropy: (t) => crossEntropy(t.a, t.tg),
    attention: (t) => attention(t.a3, t.a3, t.a3),
    "attention (composite)": (t) => attention(t.q3, t.q3, t.q3, { fused: false }),
  };
  const leaks: string[] = [];
  for (const [name, op] of Object.entries(ops)) {
    for (const withGrad of [false, true]) {
      const run = async () => {
        const f32 = { a: [6, 8], b: [5, 8], long: [20480], w: [8], a3: [2, 3, 8], q3: [3, 2, 8] };
        const t = Object.fromEntries(
          Object.entries(f32).map(([k, shape]) => {
            const x = upload(randNd(rng, shape));
            return [k, withGrad ? param(x) : x];
          }),
        ) as Inputs;
        t.pos = uploadInts([0, 1, 2], [3]);
        t.ids = uploadInts([0, 5, 1], [3]);
        t.tg = uploadInts([1, 2, 3, 4, 5, 6], [6]);
        const y = op(t);
        if (withGrad) {
          const l = sum(y);
          l.backward();
          l.dispose();
        }
        await readAll([y]);
        y.dispose();
        for (const x of Object.values(t)) x.dispose();
      };
      await run(); // first use may allocate caches (RoPE tables)
      const before = gpu().memory().inUseBytes;
      await run();
      const after = gpu().memory().inUseBytes;
      if (after !== before) leaks.push(`${name}${withGrad ? " (with grad)" : ""}: ${after - before} bytes`);
    }
  }
  assertEquals(leaks, []);
});

Deno.test("a disposed tensor cannot be used, read or disposed into trouble", async () => {
  const x = tensor([1, 2, 3]);
  const v = reshape(x, [3, 1]);
  x.dispose();
  x.dispose(); // twice is fine
  assert(x.disposed);
  assertThrows(() => exp(x), "disposed");
  assertThrows(() => add(x, 1), "disposed");
  assertThrows(() => matmul(reshape(v, [1, 3]), reshape(x, [3, 1])), "disposed");
  let err: unknown = null;
  try {
    await x.data();
  } catch (e) {
    err = e;
  }
  assert(err instanceof Error && /disposed/.test(err.message), `data() of a disposed tensor: ${err}`);
  // The view keeps the storage alive.
  assertEquals(Array.from(await v.data()), [1, 2, 3]);
  v.dispose();
});

Deno.test("tidy disposes what it created except results and kept tensors; nested and async scopes", async () => {
  const start = gpu().memory().inUseBytes;
  let inner: Tensor | null = null, kept: Tensor | null = null;
  const out = tidy(() => {
    const a = tensor([1, 2]);
    kept = keep(mul(a, 3));
    const b = tidy(() => {
      inner = add(a, 1);
      return { result: mul(inner, 2) };
    }).result;
    assert(inner!.disposed, "inner intermediate freed by the inner scope");
    assert(!b.disposed, "inner result survives into the outer scope");
    return [b];
  })[0];
  assert(!out.disposed && !kept!.disposed);
  assertEquals(Array.from(await out.data()), [4, 6]);
  const asyncOut = await tidy(async () => {
    const t = tensor([5]);
    const u = mul(t, 2);
    await u.data();
    return u;
  });
  assertEquals(Array.from(await asyncOut.data()), [10]);
  out.dispose();
  kept!.dispose();
  asyncOut.dispose();
  assertEquals(gpu().memory().inUseBytes, start);
  assertThrows(() =>
    tidy(() => {
      tensor([1]);
      throw new Error("boom");
    }), "boom");
  assertEquals(scopeDepth(), 0);
  assertEquals(gpu().memory().inUseBytes, start);
});

Deno.test("a buffer freed and reused at once: earlier recorded work still sees the old contents", async () => {
  const before = gpu().memory();
  const x = tensor([1, 2, 3, 4]);
  const y = exp(x); // recorded, not yet run
  x.dispose(); // x's buffer goes back to the pool
  const z = tensor([10, 20, 30, 40]); // an upload that can reuse it
  const w = mul(z, 2);
  const u = full([4], 7); // a kernel write into a reused buffer
  z.dispose();
  const [yv, wv, uv] = await readAll([y, w, u]);
  assertClose(yv, [1, 2, 3, 4].map(Math.exp), { atol: 0, rtol: 1e-6 });
  assertEquals(Array.from(wv), [20, 40, 60, 80]);
  assertEquals(Array.from(uv), [7, 7, 7, 7]);
  for (const t of [y, w, u]) t.dispose();
  assertEquals(gpu().memory().inUseBytes, before.inUseBytes);
});

Deno.test("ops never flush, read or wait: a whole forward + backward reaches the GPU only in the backend's batches", async () => {
  const rng = rngFor("no-sync");
  const x = upload(randNd(rng, [2, 4, 8])), g = param(upload(randNd(rng, [8])));
  const w = param(upload(randNd(rng, [8, 8]))), emb = param(upload(randNd(rng, [10, 8])));
  const ids = uploadInts(randInts(rng, 8, 10), [2, 4]), targets = uploadInts(randInts(rng, 8, 10), [2, 4]);
  const pos = uploadInts([0, 1, 2, 3], [4]);
  const step = () =>
    tidy(() => {
      const h = rmsNorm(add(embedding(emb, ids), x), g);
      const q = rope(matmul(h, w), pos);
      const l = crossEntropy(matmul(silu(attention(q, q, q)), emb, { transB: true }), targets);
      l.backward();
      return l;
    });
  const first = step(); // first use compiles kernels and uploads the RoPE table
  await readAll([first]);
  first.dispose();
  // The backend submits in batches as dispatches accumulate; what no op may do is flush, read or wait itself.
  const backend = gpu(), calls: string[] = [];
  const watched = ["flush", "sync", "readMany", "read"] as const;
  for (const m of watched) {
    const original = backend[m] as (...args: unknown[]) => unknown;
    const value = (...args: unknown[]) => (calls.push(m), original.apply(backend, args));
    Object.defineProperty(backend, m, { value, configurable: true });
  }
  const before = backend.submits;
  let loss: Tensor;
  try {
    loss = step();
  } finally {
    for (const m of watched) delete (backend as unknown as Record<string, unknown>)[m];
  }
  assertEquals(calls, [], "ops flushed, read or waited while recording");
  const [l] = await readAll([loss]);
  assert(Number.isFinite(l[0]));
  assert(gpu().submits > before, "the read submits the recorded work");
  for (const t of [x, g, w, emb, ids, targets, pos, loss]) t.dispose();
});

Deno.test("releasePool destroys only pooled buffers; recorded work and live tensors are unaffected", async () => {
  const a = tensor([1, 2, 3]);
  const tmp = add(a, 1);
  const b = mul(tmp, 2); // recorded, reads tmp
  tmp.dispose(); // tmp's buffer is now pooled
  gpu().releasePool();
  const m = gpu().memory();
  assertEquals(m.pooledBytes, 0);
  assertEquals(m.totalBytes, m.inUseBytes);
  const [bv, cv] = await readAll([b, exp(a)]);
  assertEquals(Array.from(bv), [4, 6, 8]);
  assertClose(cv, [1, 2, 3].map(Math.exp), { atol: 0, rtol: 1e-6 });
  a.dispose();
  b.dispose();
});

Deno.test("`using` disposes a tensor at the end of its block", () => {
  const before = gpu().memory().inUseBytes;
  let escaped: Tensor;
  {
    using t = tensor([1, 2, 3]);
    escaped = t;
    assert(!t.disposed);
  }
  assert(escaped.disposed);
  assertEquals(gpu().memory().inUseBytes, before);
});

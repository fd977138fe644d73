/**
 * Large tensors never give silently wrong results: ops past the GPU's limits (the storage binding size, lavapipe's
 * loop limit, 65,535 workgroups a grid dimension) either work, checked against float64, or throw an error that
 * names the op, the shape and the limit.
 */
import { assertClose, assertEquals, assertThrows } from "./assert.ts";
import { assertNoGpuErrors, expectClose, upload, withLimits } from "./harness.ts";
import * as ref from "./reference.ts";
import { randNd, rngFor } from "./reference.ts";
import { decodeLinearKernel } from "../kernels/decode.ts";
import { matmulTiles } from "../kernels/matmul.ts";
import type { AttentionVariant } from "../kernels/attention.ts";
import { withMatmulTuning } from "../lib/tensor/ops/matmul.ts";
import {
  add,
  attention,
  cast,
  compare,
  concat,
  copy,
  crossEntropy,
  embedding,
  exp,
  full,
  gpu,
  logSoftmax,
  matmul,
  max,
  mean,
  mul,
  ones,
  param,
  readAll,
  rmsNorm,
  slice,
  softmax,
  sum,
  tensor,
  tidy,
  transpose,
  where,
} from "../lib/tensor/mod.ts";

/** Mesa's llvmpipe (lavapipe) ends every shader's loops after 65,535 iterations in all. */
const llvmpipe = /llvmpipe|lavapipe/i.test(gpu().info.description);

/** Fails unless `fn` throws an error whose message contains every one of `parts`. */
function assertErrorNames(fn: () => unknown, ...parts: string[]): Error {
  const err = assertThrows(fn);
  for (const p of parts) {
    if (!err.message.includes(p)) throw new Error(`error ${JSON.stringify(err.message)} does not mention "${p}"`);
  }
  return err;
}

// ---- The storage binding limit --------------------------------------------------------------------------------------

Deno.test("a tensor just under the binding limit binds its own bytes, not its pool size class", async () => {
  // 1020 floats are 4080 bytes, in the 4096-byte size class: over a 4080-byte limit only if the class is bound.
  const x = randNd(rngFor("limits-size-class"), [1020]);
  await withLimits({ maxStorageBufferBindingSize: 4080 }, () =>
    tidy(async () => {
      const t = upload(x);
      await expectClose([add(t, 1), sum(t)], [ref.map(x, (v) => v + 1), ref.reduce(x, "sum")], { atol: 1e-5 });
    }));
});

Deno.test("ops that cannot split a tensor over the binding limit say so: op, shape, limit", async () => {
  await withLimits({ maxStorageBufferBindingSize: 4096 }, () =>
    tidy(() => {
      // Uploads: no kernel, so nothing to refuse yet.
      const f32 = (...shape: number[]) => tensor(new Float32Array(shape.reduce((a, b) => a * b)), { shape });
      const wide = f32(2, 3000), square = f32(40, 40), heads = f32(2, 300, 4), table = f32(1500, 4);
      const ids = tensor(new Int32Array(2), { shape: [2] }), w = f32(3000);
      const limit = ["4096 bytes", "maxStorageBufferBindingSize"];
      assertErrorNames(() => softmax(wide), "softmax", "(2, 3000)", ...limit);
      assertErrorNames(() => logSoftmax(wide), "softmax", "(2, 3000)", ...limit);
      assertErrorNames(() => rmsNorm(wide, w), "rmsnorm", "(2, 3000)", ...limit);
      assertErrorNames(() => crossEntropy(wide, ids), "cross_entropy", "(2, 3000)", ...limit);
      assertErrorNames(() => embedding(table, ids), "embedding", "(1500, 4)", ...limit);
      assertErrorNames(() => attention(heads, heads, heads), "attention", "(2, 300, 4)", ...limit);
      assertErrorNames(() => matmul(square, square), "matmul", "(40, 40)", ...limit);
      assertErrorNames(() => transpose(wide), "(2, 3000)", ...limit);
      assertErrorNames(() => slice(wide, { axis: 1, start: 1 }), "(2, 3000)", ...limit);
      assertErrorNames(() => concat([wide, wide], 1), "(2, 3000)", ...limit);
      assertErrorNames(() => sum(wide, { axis: 1 }), "sum", "(2, 3000)", ...limit);
      return Promise.resolve();
    }));
});

Deno.test("elementwise ops, fill, cast and copy over the binding limit run in parts", async () => {
  const rng = rngFor("limits-elementwise-parts");
  const x = randNd(rng, [5, 700]), y = randNd(rng, [5, 700]), row = randNd(rng, [700]), col = randNd(rng, [5, 1]);
  // 4 KiB bindings: the (5, 700) tensors (14,000 bytes) run in parts of 1024 elements; the broadcast row and
  // column are bound whole.
  await withLimits({ maxStorageBufferBindingSize: 4096 }, () =>
    tidy(async () => {
      const [tx, ty, trow, tcol] = [x, y, row, col].map(upload);
      const ints = cast(mul(tx, 100), "i32");
      await expectClose(
        [
          add(tx, trow),
          mul(tcol, tx),
          exp(tx),
          where(compare("gt", tx, ty), tx, ty),
          cast(ints, "f32"),
          copy(tx),
          full([5, 700], 2.5),
          cast(ones([3, 1000], "i32"), "f32"),
        ],
        [
          ref.zip([x, row], (a, b) => a + b),
          ref.zip([col, x], (a, b) => a * b),
          ref.map(x, Math.exp),
          ref.zip([x, y], (a, b) => (a > b ? a : b)),
          ref.map(x, (v) => Math.trunc(Math.fround(v * 100))),
          x,
          ref.nd([5, 700], new Float64Array(3500).fill(2.5)),
          ref.nd([3, 1000], new Float64Array(3000).fill(1)),
        ],
        { atol: 1e-6, rtol: 1e-6, msg: "elementwise in parts" },
      );
    }));
});

Deno.test("a broadcast input over the binding limit is refused with the op, the shape and the limit", async () => {
  await withLimits({ maxStorageBufferBindingSize: 4096 }, () =>
    tidy(() => {
      const big = full([3, 2000], 1), row = full([1, 2000], 2);
      assertErrorNames(() => add(big, row), "add", "(1, 2000)", "4096 bytes", "maxStorageBufferBindingSize");
      return Promise.resolve();
    }));
});

Deno.test("reductions over the binding limit run in parts of rows or of groups along the axis", async () => {
  const rng = rngFor("limits-reduce-parts");
  const rowsX = randNd(rng, [700, 10]), longX = randNd(rng, [5000, 8]), flatX = randNd(rng, [9000]);
  await withLimits({ maxStorageBufferBindingSize: 16384 }, () =>
    tidy(async () => {
      const [r, l, f] = [rowsX, longX, flatX].map(upload);
      await expectClose(
        [
          sum(r, { axis: 1 }),
          mean(r, { axis: -1 }),
          max(r, { axis: 1, keepDims: true }),
          sum(l, { axis: 0 }),
          mean(l, { axis: 0 }),
          max(l, { axis: 0 }),
          sum(f),
          mean(r),
          max(f),
        ],
        [
          ref.reduce(rowsX, "sum", 1),
          ref.reduce(rowsX, "mean", -1),
          ref.reduce(rowsX, "max", 1, true),
          ref.reduce(longX, "sum", 0),
          ref.reduce(longX, "mean", 0),
          ref.reduce(longX, "max", 0),
          ref.reduce(flatX, "sum"),
          ref.reduce(rowsX, "mean"),
          ref.reduce(flatX, "max"),
        ],
        { atol: 1e-4, rtol: 1e-5, msg: "reductions in parts" },
      );
    }));
});

Deno.test("fill and sum of a tensor just over the adapter's storage binding limit", async () => {
  const limit = gpu().device.limits.maxStorageBufferBindingSize;
  if (limit > 256 * 2 ** 20) return; // a hardware GPU: its limit is too large for a quick test
  const n = limit / 4 + 4096;
  const [s] = await tidy(() => readAll([sum(full([n], 0.5))]));
  assertNoGpuErrors();
  assertClose(s, [n / 2], { atol: 0, rtol: 1e-6, msg: `sum(full([${n}], 0.5))` });
});

// ---- Loops: Mesa's llvmpipe (lavapipe) ends a shader's loops after 65,535 iterations --------------------------------

Deno.test("sum, mean and max over 17,000,000 elements (not a multiple of 4096) match float64", async () => {
  const n = 17_000_000;
  const host = new Float32Array(n);
  for (let i = 0; i < n; i++) host[i] = ((i * 7919) % 1000) / 1000 - 0.25;
  host[n - 1] = 7; // the maximum is the very last element
  let total = 0, biggest = -Infinity;
  for (let i = 0; i < n; i++) {
    total += host[i];
    biggest = Math.max(biggest, host[i]);
  }
  const [s, m, mx, allOnes] = await tidy(() => {
    const x = tensor(host);
    return readAll([sum(x), mean(x), max(x), sum(ones([n]))]);
  });
  assertNoGpuErrors();
  assertClose(allOnes, [n], { atol: 0, rtol: 1e-7, msg: "sum(ones([17_000_000]))" });
  assertClose(s, [total], { atol: 1, rtol: 1e-5, msg: "sum" });
  assertClose(m, [total / n], { atol: 1e-7, rtol: 1e-5, msg: "mean" });
  assertClose(mx, [biggest], { atol: 0, rtol: 0, msg: "max" });
});

Deno.test("sum, mean and max over 65,537 rows (a prime: no even split) of 3 and 4 columns match float64", async () => {
  const rng = rngFor("limits-columns");
  for (const cols of [3, 4]) {
    const x = randNd(rng, [65_537, cols]);
    const t = upload(x);
    await expectClose(
      [sum(t, { axis: 0 }), mean(t, { axis: 0 }), max(t, { axis: 0 })],
      [ref.reduce(x, "sum", 0), ref.reduce(x, "mean", 0), ref.reduce(x, "max", 0)],
      { atol: 1e-3, rtol: 1e-4, msg: `(65537, ${cols})` },
    );
    t.dispose();
  }
});

Deno.test("reductions stay within a lowered loop limit", async () => {
  const rng = rngFor("limits-loops");
  const cols = randNd(rng, [300, 3]), row = randNd(rng, [40_000]), rows = randNd(rng, [3, 20_000]);
  await withLimits({ loopIterations: 64 }, () =>
    tidy(async () => {
      const [c, r, rs] = [cols, row, rows].map(upload);
      await expectClose(
        [sum(c, { axis: 0 }), max(c, { axis: 0 }), sum(r), mean(rs, { axis: 1 })],
        [ref.reduce(cols, "sum", 0), ref.reduce(cols, "max", 0), ref.reduce(row, "sum"), ref.reduce(rows, "mean", 1)],
        { atol: 1e-3, rtol: 1e-5, msg: "reductions under 64 loop iterations" },
      );
    }));
});

Deno.test("kernels that would loop past a lowered loop limit are refused, naming the op and the dims", async () => {
  await withLimits({ loopIterations: 64 }, () =>
    tidy(() => {
      const rows = full([3, 20_000], 0), long = full([1, 70_000], 1);
      assertErrorNames(() => softmax(rows), "softmax", "(3, 20000)", "loop");
      assertErrorNames(() => rmsNorm(rows, full([20_000], 1)), "rmsnorm", "(3, 20000)", "loop");
      assertErrorNames(
        () => withMatmulTuning({ splitK: 1, streamK: 0 }, () => matmul(long, long, { transB: true })),
        "matmul",
        "70000",
        "loop",
      );
      return Promise.resolve();
    }));
});

Deno.test("softmax over a row of 3,000,000: right on hardware, a clear error where loops are capped", async () => {
  const cols = 3_000_000;
  const x = full([1, cols], 0);
  if (llvmpipe) {
    assertErrorNames(() => softmax(x), "softmax", "65535", "3000000");
  } else {
    const [p] = await readAll([softmax(x)]);
    assertClose(p, new Float64Array(cols).fill(1 / cols), { atol: 1e-12, rtol: 1e-5 });
  }
  x.dispose();
});

// ---- Grids past 65,535 workgroups in one dimension ------------------------------------------------------------------

Deno.test("matmul over a batch of 70,000 small matrices matches float64, with either operand transposed", async () => {
  const rng = rngFor("limits-matmul-batch");
  const a = randNd(rng, [70_000, 2, 3]), b = randNd(rng, [70_000, 3, 2]);
  // The small tile: the default large one would spend seconds of lavapipe on 128 x 128 tiles of 2 x 2 outputs.
  const tile = matmulTiles.small;
  const [ta, tb] = [upload(a), upload(b)];
  const [ab, atb] = [ref.transpose(a), ref.transpose(b)].map(upload);
  await expectClose(
    withMatmulTuning({ tile }, () => [
      matmul(ta, tb),
      matmul(ab, tb, { transA: true }),
      matmul(ta, atb, { transB: true }),
    ]),
    [ref.matmul(a, b), ref.matmul(a, b), ref.matmul(a, b)],
    { atol: 1e-5, rtol: 1e-5, msg: "batched matmul" },
  );
  for (const t of [ta, tb, ab, atb]) t.dispose();
});

Deno.test("matmul with 2,100,000 output columns (65,625 column tiles) matches float64", async () => {
  const rng = rngFor("limits-matmul-wide");
  const a = randNd(rng, [1, 2]), b = randNd(rng, [2, 2_100_000]);
  const [ta, tb] = [upload(a), upload(b)];
  const y = withMatmulTuning({ tile: matmulTiles.small }, () => matmul(ta, tb));
  await expectClose([y], [ref.matmul(a, b)], { atol: 1e-6, rtol: 1e-5, msg: "wide matmul" });
  for (const t of [ta, tb, y]) t.dispose();
});

Deno.test("fused attention over 70,000 (batch x heads) matches float64, forward and backward", async () => {
  const rng = rngFor("limits-attention");
  const shape = [70_000, 3, 4];
  const [q, k, v, dout] = [0, 1, 2, 3].map(() => randNd(rng, shape));
  const expected = [ref.attention(q, k, v), ...ref.attentionGrad(q, k, v, dout)];
  // The folded grid in both orders: a head's blocks first, and heads first (dQ from the saved scores too).
  for (const variant of [{}, { order: "heavy", dq: "scores" }] as Partial<AttentionVariant>[]) {
    const ts = [q, k, v].map((x) => param(upload(x)));
    const values = await tidy(() => {
      const o = attention(ts[0], ts[1], ts[2], { variant });
      sum(mul(o, upload(dout))).backward();
      return readAll([o, ...ts.map((t) => t.grad!)]);
    });
    assertNoGpuErrors();
    const msg = (i: number) => `attention ${JSON.stringify(variant)} [${i}]`;
    values.forEach((x, i) => assertClose(x, expected[i].data, { atol: 1e-5, rtol: 1e-4, msg: msg(i) }));
    for (const t of ts) t.dispose();
  }
});

Deno.test("the decode matrix-vector kernel over a vocabulary of 262,148 (65,537 column groups)", async () => {
  const rng = rngFor("limits-decode-linear");
  const n = 262_148, k = 4;
  const x = randNd(rng, [2, k]), w = randNd(rng, [n, k]);
  const [tx, tw, out] = [upload(x), upload(w), full([2, n], 0)];
  gpu().run(decodeLinearKernel({ rows: 2, k, n, epilogue: "store" }), [tx.buffer, tw.buffer, out.buffer]);
  await expectClose([out], [ref.matmul(x, w, { transB: true })], { atol: 1e-6, rtol: 1e-5, msg: "decode linear" });
  for (const t of [tx, tw, out]) t.dispose();
});

// ---- Integers -------------------------------------------------------------------------------------------------------

Deno.test("i32 tensors: values outside the i32 range or not integers throw, naming the value and its index", () => {
  assertErrorNames(() => tensor([1, 2 ** 31], { dtype: "i32" }), "2147483648", "index 1");
  assertErrorNames(() => tensor([[0, -(2 ** 31) - 1]], { dtype: "i32" }), "-2147483649", "index 1");
  assertErrorNames(() => tensor(new Float32Array([0, 0, 3e9]), { dtype: "i32" }), "3000000000", "index 2");
  assertErrorNames(() => tensor([0.5], { dtype: "i32" }), "0.5", "index 0");
  assertErrorNames(() => full([2], 2.5, "i32"), "fill", "2.5");
  const ok = tensor([-(2 ** 31), 2 ** 31 - 1], { dtype: "i32" });
  ok.dispose();
});

Deno.test("cast to i32 saturates outside the i32 range and truncates toward zero inside it", async () => {
  const [v] = await tidy(() => readAll([cast(tensor([3e9, -3e9, Infinity, -Infinity, 2.7, -2.7, 16777217]), "i32")]));
  // 16777217 is not an f32: the upload rounds it to 16777216.
  assertEquals(v, new Int32Array([2 ** 31 - 128, -(2 ** 31), 2 ** 31 - 128, -(2 ** 31), 2, -2, 16777216]));
});

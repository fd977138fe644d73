/**
 * Every op family at a size past 65,535 workgroups in some grid dimension (where a kernel must fold its grid),
 * against float64: elementwise with broadcasting, movement, softmax, RMSNorm, embedding, cross-entropy and AdamW.
 * (Reductions, matmul and attention at such sizes are in limits_test.ts.) Gradients are checked by central finite
 * differences of the float64 reference at sampled elements, among them some of the last rows.
 */
import { assertClose } from "./assert.ts";
import { assertNoGpuErrors, upload, uploadInts } from "./harness.ts";
import * as ref from "./reference.ts";
import { type Nd, randInts, randNd, rngFor } from "./reference.ts";
import type { Rng } from "../lib/util/random.ts";
import { AdamW } from "../lib/optim/adamw.ts";
import {
  add,
  concat,
  crossEntropy,
  embedding,
  logSoftmax,
  mul,
  param,
  readAll,
  rmsNorm,
  slice,
  softmax,
  sum,
  tensor,
  tidy,
  transpose,
} from "../lib/tensor/mod.ts";

/** Rows of 3 or 4 values: 70,000 of them need 70,000 workgroups in the one-workgroup-a-row kernels. */
const ROWS = 70_000;

/** Deterministic f32 values in [-0.5, 0.5), cheap enough for 17 million of them. */
function pattern(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = ((Math.imul(i + seed, 2654435761) >>> 8) / 2 ** 24) - 0.5;
  return out;
}

/** Row `r` of a 2-D array. */
function row(x: Nd, r: number): Nd {
  const cols = x.shape[1];
  return ref.nd([1, cols], x.data.subarray(r * cols, (r + 1) * cols));
}

/** Sampled rows: the first, some in the middle, and the last few (past 65,535 workgroups). */
function sampleRows(rng: Rng, rows: number): number[] {
  return [0, ...randInts(rng, 6, rows), rows - 2, rows - 1];
}

/**
 * Compares `grad` (of a row-wise op's scalar loss) with central differences of `rowLoss(row r of x)`, the loss
 * restricted to row r, at every element of the sampled rows.
 */
function checkRowGrad(
  name: string,
  x: Nd,
  grad: ArrayLike<number>,
  rows: number[],
  rowLoss: (xr: Nd, r: number) => number,
  tol = 1e-4,
): void {
  const cols = x.shape[1];
  for (const r of rows) {
    const xr = ref.nd([1, cols], x.data.subarray(r * cols, (r + 1) * cols));
    const expected = ref.numericGrad(() => rowLoss(xr, r), xr.data);
    const actual = Array.from({ length: cols }, (_, j) => grad[r * cols + j]);
    assertClose(actual, expected, { atol: tol, rtol: tol, msg: `${name} row ${r}` });
  }
}

Deno.test("elementwise with broadcasting, transpose, slice and concat over 17,000,000 elements", async () => {
  const rows = 4250, cols = 4000, n = rows * cols; // 66,407 workgroups of 256
  const x = pattern(n, 1), bias = pattern(cols, 2);
  const [y, t, s, c] = await tidy(() => {
    const tx = tensor(x, { shape: [rows, cols] }), tb = tensor(bias);
    const tail = tensor(pattern(rows * 3, 3), { shape: [rows, 3] });
    return readAll([
      add(mul(tx, 2), tb),
      transpose(tx),
      slice(tx, { axis: 1, start: 5, end: 3995 }),
      concat([tx, tail], 1),
    ]);
  });
  assertNoGpuErrors();
  const tail = pattern(rows * 3, 3);
  let bad = 0;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = x[i * cols + j];
      if (y[i * cols + j] !== Math.fround(Math.fround(2 * v) + bias[j])) bad++;
      if (t[j * rows + i] !== v) bad++;
      if (j >= 5 && j < 3995 && s[i * 3990 + j - 5] !== v) bad++;
      if (c[i * (cols + 3) + j] !== v) bad++;
    }
    for (let j = 0; j < 3; j++) if (c[i * (cols + 3) + cols + j] !== tail[i * 3 + j]) bad++;
  }
  assertClose([bad], [0], { atol: 0, rtol: 0, msg: "elements that differ from float64" });
});

Deno.test("softmax and logSoftmax over 70,000 rows, forward and backward", async () => {
  const rng = rngFor("large-softmax");
  const x = randNd(rng, [ROWS, 3], { low: -3, high: 3 }), r = randNd(rng, [ROWS, 3]);
  const tx = param(upload(x));
  for (const log of [false, true]) {
    const [y, dx] = await tidy(() => {
      const out = log ? logSoftmax(tx, { scale: 0.7 }) : softmax(tx, { scale: 0.7 });
      sum(mul(out, upload(r))).backward();
      return readAll([out, tx.grad!]);
    });
    tx.grad!.dispose();
    tx.grad = null;
    assertNoGpuErrors();
    const name = log ? "logSoftmax" : "softmax";
    assertClose(y, ref.softmax(x, { scale: 0.7, log }).data, { atol: 1e-6, rtol: 1e-5, msg: name });
    checkRowGrad(
      name,
      x,
      dx,
      sampleRows(rng, ROWS),
      (xr, i) => ref.dot(ref.softmax(xr, { scale: 0.7, log }), row(r, i)),
    );
  }
  tx.dispose();
});

Deno.test("rmsNorm over 70,000 rows, forward and backward (x and the weight)", async () => {
  const rng = rngFor("large-rmsnorm");
  const x = randNd(rng, [ROWS, 4]), w = randNd(rng, [4], { low: 0.5, high: 1.5 }), r = randNd(rng, [ROWS, 4]);
  const [tx, tw] = [param(upload(x)), param(upload(w))];
  const [y, dx, dw] = await tidy(() => {
    const out = rmsNorm(tx, tw);
    sum(mul(out, upload(r))).backward();
    return readAll([out, tx.grad!, tw.grad!]);
  });
  assertNoGpuErrors();
  assertClose(y, ref.rmsNorm(x, w).data, { atol: 1e-5, rtol: 1e-5, msg: "rmsNorm" });
  checkRowGrad("rmsNorm dx", x, dx, sampleRows(rng, ROWS), (xr, i) => ref.dot(ref.rmsNorm(xr, w), row(r, i)));
  // dw over all rows: the loss is linear in w, so its gradient is the sum of the normalised x times r.
  const normed = ref.rmsNorm(x, ref.nd([4], [1, 1, 1, 1]));
  const expected = ref.reduce(ref.zip([normed, r], (a, b) => a * b), "sum", 0);
  assertClose(dw, expected.data, { atol: 1e-3, rtol: 1e-4, msg: "rmsNorm dw" });
  tx.dispose();
  tw.dispose();
});

Deno.test("embedding of 70,000 ids of dim 240 (16.8 million outputs), forward and backward", async () => {
  const rng = rngFor("large-embedding");
  const vocab = 5000, dim = 240;
  const table = randNd(rng, [vocab, dim]), ids = randInts(rng, ROWS, vocab), dy = pattern(ROWS * dim, 4);
  const tt = param(upload(table));
  const [y, grad] = await tidy(() => {
    const out = embedding(tt, uploadInts(ids, [ROWS]));
    sum(mul(out, tensor(dy, { shape: [ROWS, dim] }))).backward();
    return readAll([out, tt.grad!]);
  });
  assertNoGpuErrors();
  assertClose(y, ref.embedding(table, ids, [ROWS]).data, { atol: 0, rtol: 0, msg: "embedding" });
  const expected = new Float64Array(vocab * dim);
  ids.forEach((id, n) => {
    for (let j = 0; j < dim; j++) expected[id * dim + j] += dy[n * dim + j];
  });
  assertClose(grad, expected, { atol: 1e-4, rtol: 1e-4, msg: "embedding backward" });
  tt.dispose();
});

Deno.test("crossEntropy over 70,000 rows of 12 logits, forward and backward", async () => {
  const rng = rngFor("large-cross-entropy");
  const vocab = 12;
  const logits = ref.nd([ROWS, vocab], Float64Array.from(pattern(ROWS * vocab, 5), (v) => 8 * v));
  const targets = randInts(rng, ROWS, vocab);
  const tl = param(tensor(Float32Array.from(logits.data), { shape: [ROWS, vocab] }));
  const [loss, grad] = await tidy(() => {
    const l = crossEntropy(tl, uploadInts(targets, [ROWS]));
    l.backward();
    return readAll([l, tl.grad!]);
  });
  assertNoGpuErrors();
  assertClose(loss, ref.crossEntropy(logits, targets).data, { atol: 1e-5, rtol: 1e-5, msg: "crossEntropy" });
  const rowLoss = (xr: Nd, i: number) => ref.crossEntropy(xr, [targets[i]]).data[0] / ROWS;
  checkRowGrad("crossEntropy", logits, grad, sampleRows(rng, ROWS), rowLoss, 1e-9);
  tl.dispose();
});

Deno.test("an AdamW step of a 16,777,472-element parameter (65,537 workgroups) matches float64", async () => {
  const n = 16_777_472, lr = 0.01, [b1, b2] = [0.9, 0.999], eps = 1e-8, wd = 0.1;
  const p0 = pattern(n, 6), g = pattern(n, 7);
  const p = param(tensor(p0));
  p.grad = tensor(g);
  const opt = new AdamW([p], { lr, betas: [b1, b2], eps, weightDecay: wd });
  opt.step();
  const [after] = await readAll([p]);
  assertNoGpuErrors();
  // Step 1 from zero moments: m = (1 - b1) g, v = (1 - b2) g^2, lr_t = lr sqrt(1 - b2) / (1 - b1).
  const lrT = (lr * Math.sqrt(1 - b2)) / (1 - b1);
  let worst = 0, at = -1;
  for (let i = 0; i < n; i++) {
    const m = (1 - b1) * g[i], v = (1 - b2) * g[i] * g[i];
    const stepped = p0[i] - (lrT * m) / (Math.sqrt(v) + eps);
    const expected = stepped - lr * wd * stepped;
    const err = Math.abs(after[i] - expected) / (1e-6 + 1e-5 * Math.abs(expected));
    if (err > worst) [worst, at] = [err, i];
  }
  assertClose([worst], [0], { atol: 1, rtol: 0, msg: `AdamW: worst element ${at} (in units of the tolerance)` });
  p.dispose();
});

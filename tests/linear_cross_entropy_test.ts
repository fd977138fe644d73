/**
 * The LM head and its loss in chunks of rows: `linearCrossEntropy` and `TransformerLM.loss` against the float64
 * reference and finite differences, against the unchunked `crossEntropy(model.forward(x), y)` (the same values, and
 * the same kernels when one chunk holds all the logits), under lowered storage binding limits (the logits of a
 * GPT-2-sized batch exceed a binding), in GPU memory, and in the trainer.
 */
import { assert, assertClose, assertEquals, assertThrows } from "./assert.ts";
import { assertNoGpuErrors, checkGrad, dispatchedKernels, upload, uploadInts, withLimits } from "./harness.ts";
import * as ref from "./reference.ts";
import { type Nd, randInts, randNd, rngFor } from "./reference.ts";
import {
  crossEntropy,
  gpu,
  linearCrossEntropy,
  logitChunkRows,
  matmul,
  noGrad,
  param,
  readAll,
  type Tensor,
  tensor,
  tidy,
} from "../lib/tensor/mod.ts";
import { TransformerLM } from "../lib/nn/transformer.ts";
import type { ModelConfigInput } from "../lib/nn/config.ts";
import { AdamW } from "../lib/optim/adamw.ts";
import { writeTokenFile } from "../lib/data/token_files.ts";
import { Trainer } from "../lib/train/trainer.ts";
import { Rng } from "../lib/util/random.ts";

/** Float64 loss and gradients of `mean cross-entropy(h @ w^T, targets)`: dlogits = (softmax - onehot) / N. */
function referenceHead(h: Nd, w: Nd, targets: readonly number[]): { loss: Nd; dh: Nd; dw: Nd } {
  const logits = ref.matmul(h, w, { transB: true });
  const [n, vocab] = logits.shape;
  const p = ref.softmax(logits);
  const dlogits = ref.nd(
    logits.shape,
    p.data.map((v, i) => (v - (i % vocab === targets[Math.floor(i / vocab)] ? 1 : 0)) / n),
  );
  return {
    loss: ref.crossEntropy(logits, targets),
    dh: ref.matmul(dlogits, w),
    dw: ref.matmul(ref.transpose(dlogits), h),
  };
}

// ---- The op ----------------------------------------------------------------------------------------------------------

Deno.test("linearCrossEntropy: loss and gradients match float64 and finite differences for any chunk size", async () => {
  const rng = rngFor("linear-cross-entropy");
  const d = 8;
  // Rows and chunk sizes: one chunk (the unchunked kernels), chunks that divide the rows, chunks that do not, and a
  // size rounded down to whole aligned chunks; a vocabulary of 37 runs padded to 40 columns, in one chunk or several.
  const cases: [number, number | undefined, number][] = [
    [200, undefined, 40],
    [192, 64, 40],
    [200, 64, 40],
    [200, 128, 40],
    [200, 100, 40],
    [200, undefined, 37],
    [200, 64, 37],
    // Enough rows for the head's weight to be transposed once for all chunks (copiesTransposedB).
    [4160, 1024, 37],
  ];
  for (const [rows, chunkRows, vocab] of cases) {
    const h = randNd(rng, [rows, d]), w = randNd(rng, [vocab, d]);
    const targets = randInts(rng, rows, vocab);
    const chunk = logitChunkRows(rows, vocab, { chunkRows });
    let kernels: string[] = [];
    await checkGrad({
      name: `linearCrossEntropy ${rows} rows, chunkRows ${chunkRows}, vocab ${vocab}`,
      inputs: [h, w],
      gpu: ([th, tw]) => {
        let out: Tensor | null = null;
        kernels = dispatchedKernels(() => out = linearCrossEntropy(th, tw, uploadInts(targets, [rows]), { chunkRows }))
          .map((k) => k.name);
        return out!;
      },
      ref: ([rh, rw]) => ref.crossEntropy(ref.matmul(rh, rw, { transB: true }), targets),
      forward: { atol: 1e-5, rtol: 1e-5 },
      gradTol: 1e-4,
      sample: 60,
    });
    const chunks = Math.ceil(rows / chunk);
    assertEquals(kernels.filter((k) => k === "cross_entropy_forward").length, chunks, `${rows}/${chunkRows}`);
    assertEquals(kernels.includes("transpose"), rows >= 4096, `${rows}/${chunkRows}: the weight transposed once`);
    if (chunks === 1 && vocab % 4 === 0) continue;
    // Chunked, the gradients are taken in the forward (three matmuls a chunk) only when one will be wanted.
    const matmuls = (names: string[]) => names.filter((k) => k.startsWith("matmul")).length;
    assertEquals(matmuls(kernels), 3 * chunks, `${rows}/${chunkRows} with gradients: ${kernels}`);
    const [th, tw] = [h, w].map((x) => param(upload(x)));
    const evaluation = noGrad(() =>
      dispatchedKernels(() => linearCrossEntropy(th, tw, uploadInts(targets, [rows]), { chunkRows })).map((k) => k.name)
    );
    assertEquals(matmuls(evaluation), chunks, `${rows}/${chunkRows} under noGrad: ${evaluation}`);
    assert(!evaluation.includes("cross_entropy_backward_chunk"), `${evaluation}`);
    th.dispose();
    tw.dispose();
  }
});

Deno.test("linearCrossEntropy: out-of-range targets give NaN, bad shapes throw", async () => {
  const h = upload(randNd(rngFor("lce-nan"), [130, 4])), w = upload(randNd(rngFor("lce-nan-w"), [6, 4]));
  const targets = Array.from({ length: 130 }, (_, i) => i % 6);
  const bad = [...targets];
  bad[129] = 6; // in the last chunk
  const [whole, chunked, good] = await tidy(() =>
    readAll([
      linearCrossEntropy(h, w, uploadInts(bad, [130])),
      linearCrossEntropy(h, w, uploadInts(bad, [130]), { chunkRows: 64 }),
      linearCrossEntropy(h, w, uploadInts(targets, [130]), { chunkRows: 64 }),
    ])
  );
  assert(Number.isNaN(whole[0]) && Number.isNaN(chunked[0]) && Number.isFinite(good[0]), `${whole} ${chunked}`);
  assertThrows(() => linearCrossEntropy(h, w, uploadInts(targets.slice(1), [129])), "must be i32 (N)");
  assertThrows(
    () => linearCrossEntropy(h, upload(randNd(rngFor("lce-d"), [6, 5])), uploadInts(targets, [130])),
    "(V, d)",
  );
  assertThrows(() => linearCrossEntropy(h, w, uploadInts(targets, [130]), { chunkRows: 0 }), "positive integer");
  h.dispose();
  w.dispose();
});

Deno.test("the head's default chunks are the fewest under the byte budget, in whole 128-row matmul tiles", async () => {
  const vocab = 50257, rowBytes = 50304 * 4; // padded to a multiple of 64 columns
  await withLimits({ maxStorageBufferBindingSize: 128 * 2 ** 20 }, () => {
    const most = Math.floor((128 * 2 ** 20) / rowBytes); // 667 rows of logits under the binding
    for (const rows of [1300, 2500, 16384, 5000]) {
      const chunk = logitChunkRows(rows, vocab), chunks = Math.ceil(rows / chunk);
      assertEquals(chunk % 128, 0, `${rows} rows: chunks of ${chunk}`);
      assert(chunk <= most, `${rows} rows: ${chunk} over ${most}`);
      // No fewer chunks of whole tiles fit: n - 1 chunks would need one of more than `most` rows.
      assert(Math.ceil(rows / (chunks - 1) / 128) * 128 > most, `${rows} rows: ${chunks} chunks of ${chunk}`);
    }
    // Where 128 rows exceed the binding (111 rows of 300000 logits fit), chunks of the offset alignment (64 rows).
    assertEquals(logitChunkRows(1000, 300000), 64);
    return Promise.resolve();
  });
});

Deno.test("logits over a lowered binding limit: the unchunked loss refuses them, linearCrossEntropy matches float64", async () => {
  const rng = rngFor("lce-limits");
  const [rows, d, vocab] = [256, 8, 1024]; // 1 MiB of logits, four times the limit
  const h = randNd(rng, [rows, d]), w = randNd(rng, [vocab, d], { low: -2, high: 2 });
  const targets = randInts(rng, rows, vocab);
  const want = referenceHead(h, w, targets);
  await withLimits({ maxStorageBufferBindingSize: 256 * 1024 }, () =>
    tidy(async () => {
      const [th, tw] = [param(upload(h)), param(upload(w))];
      const ids = uploadInts(targets, [rows]);
      assertThrows(() => crossEntropy(matmul(th, tw, { transB: true }), ids), "maxStorageBufferBindingSize");
      assertEquals(logitChunkRows(rows, vocab), 64);
      const loss = linearCrossEntropy(th, tw, ids);
      loss.backward();
      const [l, dh, dw] = await readAll([loss, th.grad!, tw.grad!]);
      assertNoGpuErrors();
      assertClose(l, want.loss.data, { atol: 1e-5, rtol: 1e-5, msg: "loss" });
      assertClose(dh, want.dh.data, { atol: 1e-7, rtol: 1e-4, msg: "dh" });
      assertClose(dw, want.dw.data, { atol: 1e-7, rtol: 1e-4, msg: "dw" });
      th.dispose();
      tw.dispose();
    }));
});

// ---- The model -------------------------------------------------------------------------------------------------------

const tiny: ModelConfigInput = { vocabSize: 97, contextLength: 40, dModel: 16, numLayers: 1, numHeads: 2, dFf: 32 };

/** Loss and every parameter's gradient, by `model.loss` or by `crossEntropy(model.forward(x), y)`. */
async function lossAndGrads(model: TransformerLM, ids: Int32Array, targets: Int32Array, chunkRows?: number) {
  const shape = [ids.length / model.config.contextLength, model.config.contextLength];
  const params = [...model.parameters().values()];
  const values = await tidy(() => {
    const [x, y] = [tensor(ids, { shape, dtype: "i32" }), tensor(targets, { shape, dtype: "i32" })];
    const loss = chunkRows === 0 ? crossEntropy(model.forward(x), y) : model.loss(x, y, { chunkRows });
    loss.backward();
    return readAll([loss, ...params.map((p) => p.grad!)]);
  });
  for (const p of params) {
    p.grad!.dispose();
    p.grad = null;
  }
  return values;
}

Deno.test("TransformerLM.loss equals crossEntropy(forward) in loss and gradients, tied and untied, chunked or not", async () => {
  const rng = new Rng(11);
  // 3 x 40 = 120 rows: chunks of 64 rows leave a last one of 56.
  const ids = Int32Array.from({ length: 120 }, () => rng.int(97));
  const targets = Int32Array.from({ length: 120 }, () => rng.int(97));
  for (const variant of [{}, { tieEmbeddings: true }, { tieEmbeddings: true, norm: "none" as const }]) {
    const model = new TransformerLM({ ...tiny, ...variant }, { seed: 2 });
    const [want, ...wantGrads] = await lossAndGrads(model, ids, targets, 0);
    for (const chunkRows of [undefined, 64]) {
      const [got, ...grads] = await lossAndGrads(model, ids, targets, chunkRows);
      const msg = `${JSON.stringify(variant)} chunkRows ${chunkRows}`;
      assertClose(got, want, { atol: 1e-6, rtol: 1e-6, msg });
      grads.forEach((g, i) => {
        const scale = Math.max(...wantGrads[i].map(Math.abs));
        assertClose(g, wantGrads[i], { atol: 1e-5 * scale, rtol: 1e-4, msg: `${msg} grad ${i}` });
      });
    }
    model.dispose();
  }
  assertThrows(() => {
    const m = new TransformerLM(tiny);
    const x = tensor(new Int32Array(40), { shape: [1, 40], dtype: "i32" });
    m.loss(x, tensor(new Int32Array(40), { shape: [40], dtype: "i32" }));
  }, "must be i32 of the shape of ids");
});

Deno.test("one chunk: TransformerLM.loss dispatches the kernels of crossEntropy(forward), WGSL for WGSL", () => {
  // The TinyStories model at batch 2: its 5 MB of logits make one chunk on every device.
  const config = { vocabSize: 10000, contextLength: 256, dModel: 512, numLayers: 4, numHeads: 16, dFf: 1344 };
  const model = new TransformerLM(config, { seed: 0 });
  const rng = new Rng(3);
  const ids = Int32Array.from({ length: 512 }, () => rng.int(10000));
  const params = [...model.parameters().values()];
  const step = (loss: (x: Tensor, y: Tensor) => Tensor) =>
    gpu().record(() =>
      tidy(() => {
        const x = tensor(ids, { shape: [2, 256], dtype: "i32" }), y = tensor(ids, { shape: [2, 256], dtype: "i32" });
        loss(x, y).backward();
        for (const p of params) p.grad?.dispose(), p.grad = null;
      })
    );
  let names: string[][] = [];
  const [before, after] = [
    (x: Tensor, y: Tensor) => crossEntropy(model.forward(x), y),
    (x: Tensor, y: Tensor) => model.loss(x, y),
  ].map((loss) => {
    let recording: ReturnType<typeof step> | null = null;
    const kernels = dispatchedKernels(() => recording = step(loss));
    names = [...names, [...recording!.names]];
    recording!.dispose();
    return kernels;
  });
  assertEquals(names[1], names[0], "kernel names as the profiler sees them");
  assert(names[0].includes("cross_entropy_backward") && !names[0].includes("cross_entropy_backward_chunk"));
  assertEquals(after.length, before.length);
  after.forEach((k, i) => assert(k.source === before[i].source, `dispatch ${i} (${k.name}) has other WGSL`));
  model.dispose();
});

Deno.test("the GPU memory of a training step does not grow with batch x vocabulary beyond one chunk", async () => {
  const config = { vocabSize: 8192, contextLength: 32, dModel: 16, numLayers: 1, numHeads: 2, dFf: 32 };
  const model = new TransformerLM(config, { seed: 0 });
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const rng = new Rng(4);
  /** Bytes of new buffers a training step allocates, from an empty pool. */
  const stepBytes = async (batch: number, unchunked: boolean) => {
    const ids = Int32Array.from({ length: batch * 32 }, () => rng.int(8192));
    const step = () => {
      tidy(() => {
        const x = tensor(ids, { shape: [batch, 32], dtype: "i32" });
        (unchunked ? crossEntropy(model.forward(x), x) : model.loss(x, x, { chunkRows: 64 })).backward();
      });
      opt.step({ lr: 1e-3, maxGradNorm: 1 });
      opt.zeroGrad();
    };
    step(); // optimizer state and compiled kernels
    await gpu().sync();
    gpu().releasePool();
    const before = gpu().memory().totalBytes;
    step();
    await gpu().sync();
    return gpu().memory().totalBytes - before;
  };
  const chunkBytes = 64 * 8192 * 4;
  // From 4 to 16 sequences the logits grow by 12 x 32 x 8192 x 4 = 12 MiB, twice that with their gradient; the
  // activations by less than 1 MiB.
  const growth = async (unchunked: boolean) => (await stepBytes(16, unchunked)) - (await stepBytes(4, unchunked));
  const [chunked, whole] = [await growth(false), await growth(true)];
  assert(chunked < chunkBytes, `a step's memory grew by ${chunked} bytes from batch 4 to 16, chunked`);
  assert(whole > 24 * 2 ** 20, `the unchunked step grew by ${whole} bytes only: the test measures nothing`);
  model.dispose();
  opt.dispose();
});

// ---- The trainer -----------------------------------------------------------------------------------------------------

/** A trainer over random tokens whose logits (4 x 32 rows of 1024) are 512 KiB, twice a 256 KiB binding limit. */
async function wideVocabTrainer(dir: string): Promise<Trainer> {
  const rng = new Rng(5);
  const ids = (n: number) => Array.from({ length: n }, () => rng.int(1024));
  await writeTokenFile(`${dir}/train.bin`, ids(2000));
  await writeTokenFile(`${dir}/val.bin`, ids(600));
  return await Trainer.create({
    model: { vocabSize: 1024, contextLength: 32, dModel: 16, numLayers: 1, numHeads: 2, dFf: 32 },
    train: {
      trainData: `${dir}/train.bin`,
      valData: `${dir}/val.bin`,
      outDir: dir,
      steps: 2,
      batchSize: 4,
      evalIters: 2,
      checkpointInterval: 0,
      seed: 1,
    },
  });
}

Deno.test("the trainer steps and evaluates when the logits exceed the storage binding limit", async () => {
  const dir = await Deno.makeTempDir();
  const limit = { maxStorageBufferBindingSize: 256 * 1024 };
  // The same run twice, under the device's limits and under the lowered one: the same losses and gradient norm.
  const results: number[][] = [];
  for (const limits of [{}, limit]) {
    const trainer = await wideVocabTrainer(dir);
    results.push(
      await withLimits(limits, async () => {
        const valLoss = await trainer.evaluate();
        const { loss, gradNorm } = await trainer.trainStep();
        const [l, g] = await readAll([loss, gradNorm]);
        loss.dispose();
        gradNorm.dispose();
        return [valLoss, l[0], g[0]];
      }),
    );
    trainer.dispose();
  }
  assertNoGpuErrors();
  assert(results[0].every(Number.isFinite) && Math.abs(results[0][0] - Math.log(1024)) < 0.5, `${results[0]}`);
  assertClose(results[1], results[0], { atol: 1e-5, rtol: 1e-5, msg: "chunked vs whole logits" });
  await Deno.remove(dir, { recursive: true });
});

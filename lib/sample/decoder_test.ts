import { argmaxNext } from "../../tests/next_token.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import { logitKey } from "../../kernels/sample.ts";
import { gpu, initGpu, noGrad, readAll, tensor, tidy } from "../tensor/mod.ts";
import type { ModelConfigInput } from "../nn/config.ts";
import { TransformerLM } from "../nn/transformer.ts";
import { Rng } from "../util/random.ts";
import { KvCacheDecoder, sampleOnGpu, samplingParams } from "./decoder.ts";
import { candidateSet } from "./sampling.ts";
import { generateStream } from "./stream.ts";

await initGpu();
const model = new TransformerLM({
  vocabSize: 40,
  contextLength: 16,
  dModel: 32,
  numLayers: 2,
  numHeads: 4,
  dFf: 48,
}, { seed: 7 });

async function collect(
  m: TransformerLM,
  prompts: number[][],
  opts: Parameters<typeof generateStream>[2],
): Promise<number[][]> {
  const out: number[][] = prompts.map(() => []);
  for await (const e of generateStream(m, prompts, opts)) {
    assertEquals(e.index, out[e.row].length);
    out[e.row].push(e.token);
  }
  return out;
}

Deno.test("greedy cached decoding of a ragged batch equals the argmax of a full forward pass at every step, across a slide", async () => {
  const long = Array.from({ length: 20 }, (_, i) => (i * 7) % 40);
  const prompts = [[3, 14, 15], [1, 2, 3, 4, 5, 6], long];
  // 16 new tokens: rows 0 and 1 pass the context length (16) once, row 1 first, so row 0 is re-prefilled whole
  // while row 1 slides; row 2's prompt is longer than the context: it keeps its last 16 tokens and slides at once.
  const got = await collect(model, prompts, { temperature: 0, maxNewTokens: 16, readEvery: 4 });
  const keep = 8; // ceil(contextLength / 2)
  for (let b = 0; b < prompts.length; b++) {
    assertEquals(got[b].length, 16);
    let window = prompts[b].slice(-16);
    for (let i = 0; i < got[b].length; i++) {
      assertEquals(got[b][i], await argmaxNext(model, window), `row ${b}, token ${i}, window ${window}`);
      window.push(got[b][i]);
      if (window.length > 16) window = window.slice(-keep);
    }
  }
});

Deno.test("decode attention walks long caches in tiles with an online softmax", async () => {
  const dec = new KvCacheDecoder(model, { batch: 2, attentionTile: 3 });
  dec.setSampling({ temperature: 0 });
  const prompts = [[9, 8, 7, 6, 5], [4, 3]];
  dec.prefill(prompts);
  dec.step(7);
  const ring = await dec.readRing();
  dec.dispose();
  for (let b = 0; b < 2; b++) {
    const window = [...prompts[b]];
    for (let d = 0; d < 8; d++) {
      const id = ring[(d % dec.ringSteps) * 2 + b];
      assertEquals(id, await argmaxNext(model, window), `row ${b}, draw ${d}`);
      window.push(id);
    }
  }
});

/**
 * Each window's last-row logits from one uncached full forward pass over the windows right-padded to length `T`
 * (the causal mask hides the padding from the real tokens; one length compiles once): (windows, vocab).
 */
async function forwardLastRows(m: TransformerLM, windows: readonly number[][], T: number): Promise<Float32Array[]> {
  const V = m.config.vocabSize;
  const ids = new Int32Array(windows.length * T);
  windows.forEach((w, b) => ids.set(w, b * T));
  const logits = tidy(() => noGrad(() => m.forward(tensor(ids, { shape: [windows.length, T], dtype: "i32" }))));
  const [values] = await readAll([logits]);
  logits.dispose();
  return windows.map((w, b) => (values as Float32Array).subarray((b * T + w.length - 1) * V, (b * T + w.length) * V));
}

// Every structural path of a block's decode step (norm pre/post/none, serial or parallel) and every other option
// the config allows (NoPE, SiLU, tied head, unfused projections, widths that are not multiples of 4).
const VARIANTS: Partial<ModelConfigInput>[] = [
  {},
  { norm: "post" },
  { norm: "none", position: "none" },
  { parallelLayers: true },
  { parallelLayers: true, norm: "post", ffn: "silu" },
  { parallelLayers: true, norm: "none", tieEmbeddings: true },
  { fusedProjections: false },
  { fusedProjections: false, parallelLayers: true, norm: "post", position: "none" },
  { tieEmbeddings: true, ffn: "silu", norm: "post" },
  { dModel: 18, numHeads: 3, dFf: 22 },
];

Deno.test("every model variant's cached decode step gives the logits of its full forward pass, step by step", async () => {
  for (const v of VARIANTS) {
    const m = new TransformerLM(
      { vocabSize: 30, contextLength: 12, dModel: 16, numLayers: 2, numHeads: 2, dFf: 24, ...v },
      { seed: 3 },
    );
    const dec = new KvCacheDecoder(m, { batch: 2 });
    dec.setSampling({ temperature: 0 });
    const windows = [[5, 6, 7], [11]]; // ragged: each row at its own position
    dec.prefill(windows);
    for (let draw = 0; draw < 5; draw++) {
      if (draw > 0) dec.step(1);
      const [logits, ring, reference] = await Promise.all([
        dec.readLogits(),
        dec.readRing(),
        forwardLastRows(m, windows, 8),
      ]);
      for (let b = 0; b < 2; b++) {
        const want = reference[b];
        const got = logits.subarray(b * 30, (b + 1) * 30);
        const at = `variant ${JSON.stringify(v)}, row ${b}, draw ${draw}`;
        want.forEach((w, i) =>
          assert(Math.abs(got[i] - w) <= 1e-4 + 1e-4 * Math.abs(w), `${at}, id ${i}: ${got[i]} vs ${w}`)
        );
        windows[b].push(ring[(draw % dec.ringSteps) * 2 + b]);
      }
    }
    dec.dispose();
    m.dispose();
  }
});

Deno.test("GPU top-k / top-p keep exactly the CPU reference candidate sets, and sample only from them", async () => {
  const rng = new Rng(11);
  const rows = 24, vocab = 64;
  for (const [temperature, topK, topP] of [[1, 5, 1], [0.7, 0, 0.5], [1.3, 10, 0.9], [1, 0, 0.95], [0.5, 3, 0.2]]) {
    const host = new Float32Array(rows * vocab);
    for (let i = 0; i < host.length; i++) host[i] = rng.normal() * 2;
    const logits = tensor(host, { shape: [rows, vocab] });
    const { ids, info } = await sampleOnGpu(logits, { temperature, topK, topP, seed: 1 });
    // The 256-thread fallback sums in another order but must keep the same sets.
    const small = await sampleOnGpu(logits, { temperature, topK, topP, seed: 1, workgroupSize: 256 });
    assertEquals(small.info, info);
    logits.dispose();
    for (let r = 0; r < rows; r++) {
      const row = host.subarray(r * vocab, (r + 1) * vocab);
      const [tk, tp, all] = info.subarray(r * 4, r * 4 + 3);
      const kept: number[] = [];
      for (let i = 0; i < vocab; i++) {
        const key = logitKey(row[i]);
        if (key >= tk && (all === 1 || key > tp)) kept.push(i);
      }
      const want = candidateSet(row, { temperature, topK, topP }).ids.sort((a, b) => a - b);
      assertEquals(kept, want, `row ${r}, T=${temperature} k=${topK} p=${topP}`);
      assert(want.includes(ids[r]), `sampled ${ids[r]} outside the candidates ${want}`);
    }
  }
});

Deno.test("GPU sampling follows the renormalised distribution; seeds reproduce; greedy is the argmax", async () => {
  const base = [1, 2, 0.5, 3, -1, 2.5];
  const rows = 800;
  const logits = tensor(new Float32Array(rows * base.length).map((_, i) => base[i % base.length]), {
    shape: [rows, base.length],
  });
  const { ids, probs } = candidateSet(base, { topK: 4, topP: 0.9 });
  const a = await sampleOnGpu(logits, { topK: 4, topP: 0.9, seed: 5 });
  const counts = new Map<number, number>();
  for (const id of a.ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  assertEquals([...counts.keys()].sort(), [...ids].sort(), "support");
  ids.forEach((id, j) => {
    const f = counts.get(id)! / rows;
    assert(Math.abs(f - probs[j]) < 0.06, `token ${id}: frequency ${f}, probability ${probs[j]}`);
  });
  const greedy = await sampleOnGpu(logits, { temperature: 0 });
  assert(greedy.ids.every((id) => id === 3));
  logits.dispose();
  const few = tensor(new Float32Array(64 * base.length).map((_, i) => base[i % base.length]), {
    shape: [64, base.length],
  });
  const first = await sampleOnGpu(few, { topK: 4, topP: 0.9, seed: 5 });
  assertEquals((await sampleOnGpu(few, { topK: 4, topP: 0.9, seed: 5 })).ids, first.ids);
  const other = await sampleOnGpu(few, { topK: 4, topP: 0.9, seed: 6 });
  assert(other.ids.some((id, i) => id !== first.ids[i]), "another seed draws differently");
  const later = await sampleOnGpu(few, { topK: 4, topP: 0.9, seed: 5, draw: 1 });
  assert(later.ids.some((id, i) => id !== first.ids[i]), "another draw counter draws differently");
  few.dispose();
  const ties = tensor(new Float32Array([0, 4, 1, 4]), { shape: [1, 4] });
  assertEquals([...(await sampleOnGpu(ties, { temperature: 0 })).ids], [1]);
  ties.dispose();
  assertThrows(() => samplingParams({ topP: 0 }), "topP must be in (0, 1], got 0");
  assertThrows(() => samplingParams({ temperature: -1 }), "temperature must be a finite number >= 0, got -1");
  assertThrows(() => samplingParams({ topK: 1.5 }), "topK must be an integer >= 0, got 1.5");
});

Deno.test("a seed reproduces a sampled batch; another seed changes it", async () => {
  const opts = { temperature: 1, topP: 0.9, maxNewTokens: 10 };
  const a = await collect(model, [[1, 2], [7]], { ...opts, seed: 5 });
  const b = await collect(model, [[1, 2], [7]], { ...opts, seed: 5 });
  const c = await collect(model, [[1, 2], [7]], { ...opts, seed: 6 });
  assertEquals(a, b);
  assert(JSON.stringify(a) !== JSON.stringify(c), "seed 6 gave the same tokens as seed 5");
});

Deno.test("the decode loop allocates nothing: GPU memory is flat over a generation", async () => {
  const inUse: number[] = [], total: number[] = [];
  for await (const e of generateStream(model, [[1, 2, 3]], { temperature: 1, maxNewTokens: 12, readEvery: 2 })) {
    if (e.index === 0) continue;
    inUse.push(gpu().memory().inUseBytes);
    total.push(gpu().memory().totalBytes);
  }
  assertEquals(inUse.length, 11);
  assertEquals(new Set(inUse).size, 1, `bytes in use changed: ${inUse}`);
  assertEquals(new Set(total).size, 1, `pool grew: ${total}`);
});

Deno.test("the decoder checks its inputs", async () => {
  const dec = new KvCacheDecoder(model, { batch: 1 });
  assertThrows(() => dec.prefill([[1], [2]]), "expected 1 prompts, got 2");
  assertThrows(() => dec.prefill([[40]]), "token 40, outside the vocabulary [0, 40)");
  assertThrows(() => dec.prefill([new Array(17).fill(1)]), "prompt 0 has 17 tokens; it needs 1 to 16");
  dec.prefill([new Array(14).fill(1)]);
  assertThrows(() => dec.step(3), "would feed position 16, beyond the context length 16");
  dec.dispose();
  assertThrows(() => dec.step(), "used after dispose()");
  await assertRejects(async () => {
    for await (const _ of generateStream(model, [[1, 2, 3]], { maxNewTokens: 15, overflow: "error" })) break;
  }, "needs 17 positions; the context length is 16");
});

Deno.test({
  name: "profileStep times every dispatch of a replayed step by kernel name, in dispatch order",
  ignore: !gpu().info.timestamps,
  fn: async () => {
    const dec = new KvCacheDecoder(model, { batch: 1 });
    dec.prefill([[1, 2, 3]]);
    const timings = await dec.profileStep();
    const order = [...new Set(dec.stepKernels)];
    const counts = order.map((name) => dec.stepKernels.filter((n) => n === name).length);
    assertEquals(timings.map((t) => t.name), order);
    assertEquals(timings.map((t) => t.count), counts);
    assertEquals(dec.stepKernels.length, 13); // embedding, 5 per layer, head, sampler
    assertEquals(dec.draws, 2);
    assertEquals(dec.positions, [4]);
    dec.dispose();
  },
});

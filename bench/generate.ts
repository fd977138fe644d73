/**
 * Text-generation benchmark at CS336's TinyStories shape (vocab 10000, context 256, d_model 512, 4 layers, 16 heads,
 * d_ff 1344), or any other through the flags of `torch_generate.py` (`--vocab --ctx --d-model --layers --heads --d-ff
 * --new-tokens`), with random weights: `generateStream` (KV cache on the GPU, GPU sampling, batched readback) from a
 * 16-token prompt, 200 new tokens, at batch 1 and batch 8, with the sampling settings of
 * `.device/torch_generate.py` (temperature 0.8, top-p 0.9) and greedy. Also: the decode loop alone (steps recorded
 * back to back, one read at the end) and a per-kernel GPU-time split of one decode step.
 *
 * Imports modules directly (not mod.ts) so that it runs offline from the prepared Deno cache. Run on the GPU
 * machine beside `python3 .device/torch_generate.py` and compare tokens/s.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { initGpu } from "../lib/tensor/mod.ts";
import { TransformerLM } from "../lib/nn/transformer.ts";
import { lmShapeConfig, lmShapeOptions } from "./lm_shape.ts";
import { Rng } from "../lib/util/random.ts";
import { KvCacheDecoder } from "../lib/sample/decoder.ts";
import { generateStream, type GenerateStreamOptions } from "../lib/sample/stream.ts";

const { values } = parseArgs({
  options: {
    ...lmShapeOptions,
    "new-tokens": { type: "string", default: "200" },
    "prompt-tokens": { type: "string", default: "16" },
    // Batch sizes to run, as torch_generate.py does (1 and 8); `--batch N` runs N alone.
    batches: { type: "string", default: "1,8" },
    batch: { type: "string" },
    repeats: { type: "string", default: "3" },
  },
});
const num = (k: keyof typeof values) => Number(values[k]);
const config = lmShapeConfig(values);
const newTokens = num("new-tokens"), promptTokens = num("prompt-tokens"), repeats = num("repeats");
const batches = (values.batch ?? values.batches!).split(",").map(Number);
for (const [flag, n] of [["new-tokens", newTokens], ["prompt-tokens", promptTokens], ["repeats", repeats]] as const) {
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${flag} must be a positive integer, got ${values[flag]}`);
}
if (batches.some((b) => !Number.isInteger(b) || b <= 0)) {
  throw new Error(`--batch/--batches must be positive integers, got ${values.batch ?? values.batches}`);
}

const backend = await initGpu();
console.error(`adapter: ${backend.info.description}`);
const model = new TransformerLM(config, { seed: 0 });

function prompts(batch: number): number[][] {
  const rng = new Rng(batch);
  return Array.from({ length: batch }, () => Array.from({ length: promptTokens }, () => rng.int(config.vocabSize)));
}

async function run(batch: number, opts: GenerateStreamOptions, tokens: number): Promise<number> {
  const start = performance.now();
  let count = 0;
  for await (const _ of generateStream(model, prompts(batch), { maxNewTokens: tokens, ...opts })) count++;
  const seconds = (performance.now() - start) / 1000;
  if (count !== batch * tokens) throw new Error(`expected ${batch * tokens} tokens, got ${count}`);
  return seconds;
}

const variants: [string, GenerateStreamOptions][] = [
  ["top-p 0.9, temperature 0.8", { temperature: 0.8, topP: 0.9 }],
  ["greedy", { temperature: 0 }],
  ["top-p 0.9, temperature 0.8, fixed readEvery 16, readAhead 64", {
    temperature: 0.8,
    topP: 0.9,
    readEvery: 16,
    readAhead: 64,
  }],
  ["top-k 50, top-p 0.9, temperature 0.8", { temperature: 0.8, topK: 50, topP: 0.9 }],
];

for (const batch of batches) {
  for (const [label, opts] of variants) {
    await run(batch, opts, 8); // compile and warm up
    const times: number[] = [];
    for (let r = 0; r < repeats; r++) times.push(await run(batch, { ...opts, seed: r }, newTokens));
    const best = Math.min(...times);
    console.log(JSON.stringify({
      variant: `nanolm generateStream ${label}, batch ${batch}`,
      new_tokens: newTokens,
      tokens_per_s: Math.round((batch * newTokens) / best),
      ms_per_token_step: +(best / newTokens * 1e3).toFixed(3),
      runs_s: times.map((t) => +t.toFixed(4)),
    }));
  }

  // The decode loop alone: steps recorded back to back in chunks of 16, one read at the end.
  const dec = new KvCacheDecoder(model, { batch, ringSteps: 16 });
  dec.setSampling({ temperature: 0.8, topP: 0.9 });
  const steps = Math.min(newTokens - 1, config.contextLength - promptTokens - 2);
  for (let r = 0; r < 2; r++) {
    dec.prefill(prompts(batch));
    await dec.readRing();
    const start = performance.now();
    for (let done = 0; done < steps; done += 16) dec.step(Math.min(16, steps - done));
    await dec.readRing();
    const seconds = (performance.now() - start) / 1000;
    if (r === 1) {
      console.log(JSON.stringify({
        variant: `nanolm decode loop only (no host processing), batch ${batch}`,
        steps,
        dispatches_per_step: dec.dispatchesPerStep,
        tokens_per_s: Math.round((batch * steps) / seconds),
        ms_per_token_step: +(seconds / steps * 1e3).toFixed(3),
      }));
    }
  }
  dec.prefill(prompts(batch));
  const timings = await dec.profileStep();
  const total = timings.reduce((a, t) => a + t.ms, 0);
  console.log(JSON.stringify({
    variant: `nanolm decode step GPU time by kernel (one pass per dispatch), batch ${batch}`,
    total_us: +(total * 1e3).toFixed(1),
    kernels: timings.map((t) => ({ name: t.name, count: t.count, us: +(t.ms * 1e3).toFixed(1) })),
  }));
  dec.dispose();
}

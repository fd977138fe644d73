import { argmaxNext } from "../../tests/next_token.ts";
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { initGpu } from "../tensor/mod.ts";
import { TransformerLM } from "../nn/transformer.ts";
import { generate } from "./generate.ts";

await initGpu();
const model = new TransformerLM({
  vocabSize: 40,
  contextLength: 16,
  dModel: 32,
  numLayers: 2,
  numHeads: 4,
  dFf: 48,
}, { seed: 7 });

Deno.test("greedy decoding picks the argmax of a full unpadded forward pass at every step", async () => {
  const prompt = [3, 14, 15];
  const out: number[] = [];
  for await (const id of generate(model, prompt, { temperature: 0, maxNewTokens: 20 })) out.push(id);
  assertEquals(out.length, 20);
  // Independent check: run the exact (unpadded, slid) context and take the argmax of its last row.
  const ids = [...prompt];
  for (const produced of out) {
    const best = await argmaxNext(model, ids.slice(-16));
    assertEquals(produced, best);
    ids.push(produced);
  }
});

Deno.test("a seed reproduces a sampled continuation; stop tokens end it", async () => {
  const run = async (seed: number, stopTokens: number[] = []) => {
    const out: number[] = [];
    for await (const id of generate(model, [1, 2], { temperature: 1, topP: 0.9, seed, maxNewTokens: 12, stopTokens })) {
      out.push(id);
    }
    return out;
  };
  const a = await run(5), b = await run(5);
  assertEquals(a, b);
  const stopped = await run(5, [a[3]]);
  assert(stopped.length <= 4 && stopped[stopped.length - 1] === a[3]);
  await assertRejects(async () => {
    for await (const _ of generate(model, [99])) break;
  }, "prompt token 99 is outside the vocabulary [0, 40)");
});

/**
 * `vocabLimit` across the generation paths (`generate`, `generateStream`, `generateText`): with a model whose
 * vocabulary is larger than its tokenizer's, ids without text are never sampled, and the default comes from the tokenizer.
 */
import { assert, assertEquals, assertRejects } from "./assert.ts";
import { initGpu } from "../lib/tensor/mod.ts";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { generate } from "../lib/sample/generate.ts";
import { generateStream, generateText } from "../lib/sample/stream.ts";
import { argmaxNext, chainModel } from "./next_token.ts";

await initGpu();

// A byte-level tokenizer of 257 ids (256 bytes + <|endoftext|>), and a model with 300: ids 257-299 have no text.
const tokenizer = new Tokenizer(
  new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])),
  [],
  ["<|endoftext|>"],
);
const LIMIT = tokenizer.vocabSize, VOCAB = 300, EXTRA = 280, D = 32;

/**
 * After chain token j the model prefers the extra id EXTRA by far (logit 2 * sqrt(D) after the final RMSNorm) over
 * the chain's next byte (sqrt(D)); everything else scores 0. EXTRA embeds as the chain's first token, so unmasked
 * the model says EXTRA again and again; masked, it spells the chain.
 */
const chain = [..."abcdefgh"].map((c) => c.charCodeAt(0));
const model = await chainModel(chain, { vocabSize: VOCAB, dModel: D, seed: 3, extra: EXTRA });

async function streamIds(prompt: number[], opts: Parameters<typeof generateStream>[2]): Promise<number[]> {
  const out: number[] = [];
  for await (const e of generateStream(model, prompt, opts)) out.push(e.token);
  return out;
}

Deno.test("vocabLimit: greedy decoding takes the argmax over the ids below the limit, cached and uncached", async () => {
  const prompt = [chain[0]];
  // Unmasked, the extra id wins: the test would see it without the limit.
  assertEquals(await streamIds(prompt, { temperature: 0, maxNewTokens: 1 }), [EXTRA]);
  const masked = await streamIds(prompt, { temperature: 0, maxNewTokens: 6, vocabLimit: LIMIT });
  const expected: number[] = [];
  const ids = [...prompt];
  for (let n = 0; n < 6; n++) {
    const next = await argmaxNext(model, ids, LIMIT);
    expected.push(next);
    ids.push(next);
  }
  assertEquals(masked, expected);
  assertEquals(masked, chain.slice(1, 7));
  const cpu: number[] = [];
  for await (const id of generate(model, prompt, { temperature: 0, maxNewTokens: 6, vocabLimit: LIMIT })) cpu.push(id);
  assertEquals(cpu, expected);
});

Deno.test("vocabLimit: sampling never draws an id at or above the limit; a tokenizer sets it by default", async () => {
  const prompts = [[chain[0]], [chain[2]], [chain[4]], [chain[1]]];
  const opts = { temperature: 1, maxNewTokens: 16, seed: 11 };
  const unmasked = await streamIds(prompts.flat(), opts); // one prompt of 4 ids
  assert(unmasked.filter((id) => id >= LIMIT).length > 8, `extra ids are likely unmasked: ${unmasked}`);
  for (const prompt of prompts) {
    const ids = await streamIds(prompt, { ...opts, vocabLimit: LIMIT });
    assertEquals(ids.length, 16);
    assert(ids.every((id) => id < LIMIT), `${ids}`);
  }
  // With a tokenizer and no explicit limit, generateText decodes every id (it threw "Unknown token id 280").
  const texts = await generateText(model, ["a", "c"], { tokenizer, temperature: 0, maxNewTokens: 4 });
  assertEquals(texts, ["bcde", "defg"]);
  for (const bad of [0, VOCAB + 1, 2.5]) {
    await assertRejects(() => streamIds([chain[0]], { vocabLimit: bad }), `vocabLimit must be an integer in [1, 300]`);
  }
});

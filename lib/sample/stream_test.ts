import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { initGpu } from "../tensor/mod.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { generateStream, generateText, type GenerationEvent } from "./stream.ts";
import { chainModel } from "../../tests/next_token.ts";

await initGpu();

// A byte-level tokenizer: id i is byte i, plus <|endoftext|> at 256.
const tokenizer = new Tokenizer(
  new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])),
  [],
  ["<|endoftext|>"],
);
const EOT = tokenizer.specialTokens.get("<|endoftext|>")!;

const text = "aé🙂bXYcd"; // 'é' is 2 bytes, '🙂' 4: split across tokens; all bytes distinct
const bytes = [...new TextEncoder().encode(text)];
const model = await chainModel([...bytes, EOT], { vocabSize: 257, dModel: 32, seed: 1 });

async function events(prompt: string, opts: Parameters<typeof generateStream>[2]): Promise<GenerationEvent[]> {
  const out: GenerationEvent[] = [];
  for await (const e of generateStream(model, prompt, { tokenizer, temperature: 0, ...opts })) out.push(e);
  return out;
}

Deno.test("streamed text never splits a multi-byte character; the stop token ends the stream", async () => {
  const ev = await events("a", { maxNewTokens: 30, stopTokens: [EOT] });
  assertEquals(ev.map((e) => e.token), [...bytes.slice(1), EOT]);
  // 'é' = C3 A9: the first byte's event has no text, the second the whole character.
  assertEquals(ev[0].text, "");
  assertEquals(ev[1].text, "é");
  assertEquals(ev.slice(2, 6).map((e) => e.text), ["", "", "", "🙂"]);
  for (const e of ev) assert(!e.text.includes("\ufffd"), `broken character in ${JSON.stringify(e.text)}`);
  assertEquals(ev.map((e) => e.text).join(""), text.slice(1));
  assertEquals(ev[ev.length - 1].finishReason, "stop_token");
  assert(ev.slice(0, -1).every((e) => e.finishReason === undefined));
});

Deno.test("stop strings end the text right before them; a partial match is held back, then released", async () => {
  const ev = await events("a", { maxNewTokens: 30, stopStrings: ["XY"] });
  assertEquals(ev.map((e) => e.text).join(""), "é🙂b");
  assertEquals(ev[ev.length - 1].finishReason, "stop_string");
  assertEquals(ev[ev.length - 1].token, "Y".charCodeAt(0));
  const held = await events("a", { maxNewTokens: 30, stopStrings: ["Xc", "🙂z"], stopTokens: [EOT] });
  const xAt = held.findIndex((e) => e.token === "X".charCodeAt(0));
  assertEquals(held[xAt].text, ""); // "X" could start "Xc"
  assertEquals(held[xAt + 1].text, "XY"); // released once "XY" cannot
  assertEquals(held.map((e) => e.text).join(""), text.slice(1));
  assertEquals(held[held.length - 1].finishReason, "stop_token");
});

Deno.test("maxNewTokens ends each sequence with finishReason length; text prompts need a tokenizer", async () => {
  const ev = await events("a", { maxNewTokens: 3 });
  assertEquals(ev.length, 3);
  assertEquals(ev[2].finishReason, "length");
  const opts = { tokenizer, temperature: 0, maxNewTokens: 6, stopTokens: [EOT] };
  const [story, other] = await generateText(model, ["a", "b"], opts);
  assertEquals(story, "é🙂");
  assertEquals(other, "XYcd");
  // Cut inside '🙂' by the length limit: the incomplete bytes end the text as one U+FFFD.
  const [cut] = await generateText(model, ["a"], { ...opts, maxNewTokens: 4 });
  assertEquals(cut, "é\ufffd");
  await assertRejects(async () => {
    for await (const _ of generateStream(model, "a")) break;
  }, "prompt 0 is text; pass a tokenizer to encode it");
});

Deno.test("a batch streams step by step, rows in order, whatever the pacing of steps and reads", async () => {
  // Row 0 spells the chain after "a" up to the stop token; row 1 starts at "b" and stops 5 tokens in.
  const chainAfter = (c: string) => [...bytes.slice(bytes.indexOf(c.charCodeAt(0)) + 1), EOT];
  const want = [chainAfter("a"), chainAfter("b")];
  const expected: { row: number; token: number; index: number }[] = [];
  for (let i = 0; i < want[0].length; i++) {
    for (let row = 0; row < 2; row++) if (i < want[row].length) expected.push({ row, token: want[row][i], index: i });
  }
  for (const pacing of [{}, { readEvery: 1, readAhead: 1 }, { readEvery: 3, readAhead: 2 }, { readAhead: 5 }]) {
    const got: { row: number; token: number; index: number }[] = [];
    const opts = { tokenizer, temperature: 0, maxNewTokens: 30, stopTokens: [EOT], ...pacing };
    for await (const e of generateStream(model, ["a", "b"], opts)) {
      got.push({ row: e.row, token: e.token, index: e.index });
    }
    assertEquals(got, expected, `pacing ${JSON.stringify(pacing)}`);
  }
});

/**
 * CS336 assignment-1 tokenizer conformance, on the fixtures in ../shared/cs336 (see its README). Fails, never
 * skips, when the fixtures are missing.
 */
import { assert, assertEquals } from "../tests/assert.ts";
import { tiktokenEncode } from "../tests/gpt2_oracle.ts";
import { printableToBytes } from "../lib/tokenizer/mod.ts";
import { type Tokenizer, trainBpe } from "../mod.ts";
import { loadGpt2Tokenizer } from "../lib/data/tokenizer_files.ts";

const FIXTURES = new URL("../../shared/cs336/", import.meta.url);

function fixture(name: string): URL {
  const url = new URL(name, FIXTURES);
  try {
    Deno.statSync(url);
  } catch {
    throw new Error(`CS336 fixture ${name} not found at ${url.pathname}: the conformance suite needs ../shared/cs336`);
  }
  return url;
}

function fromPrintable(text: string): Uint8Array {
  const bytes = printableToBytes(text);
  if (!bytes) throw new Error(`Not GPT-2 printable text: ${JSON.stringify(text)}`);
  return bytes;
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

Deno.test("fixtures are present", () => {
  for (const name of ["corpus.en", "train-bpe-reference-merges.txt", "gpt2_vocab.json", "address.txt"]) fixture(name);
});

Deno.test("training on corpus.en (vocab 500) gives the reference merges and vocab, fast", () => {
  const started = performance.now();
  const { vocab, merges } = trainBpe(fixture("corpus.en").pathname, {
    vocabSize: 500,
    specialTokens: ["<|endoftext|>"],
  });
  const seconds = (performance.now() - started) / 1000;
  const expectedMerges = Deno.readTextFileSync(fixture("train-bpe-reference-merges.txt")).split("\n")
    .filter((line) => line !== "")
    .map((line) => line.split(" ").map(fromPrintable).map(hex).join(" "));
  assertEquals(merges.map(([a, b]) => `${hex(a)} ${hex(b)}`), expectedMerges);
  const expectedVocab = Object.keys(JSON.parse(Deno.readTextFileSync(fixture("train-bpe-reference-vocab.json"))))
    .map((token) => hex(fromPrintable(token))).sort();
  assertEquals([...vocab.values()].map(hex).sort(), expectedVocab);
  assertEquals(vocab.size, 500);
  assertEquals(hex(vocab.get(256)!), hex(new TextEncoder().encode("<|endoftext|>")));
  assert(seconds < 1.5, `training took ${seconds.toFixed(2)} s (the reference suite allows 1.5 s)`);
});

Deno.test("training with Workers gives the same merges as on one thread", () => {
  const path = fixture("corpus.en").pathname;
  const one = trainBpe(path, { vocabSize: 500, specialTokens: ["<|endoftext|>"], workers: 1 });
  const two = trainBpe(path, { vocabSize: 500, specialTokens: ["<|endoftext|>"], workers: 2 });
  assertEquals(two.merges.map(([a, b]) => hex(a) + " " + hex(b)), one.merges.map(([a, b]) => hex(a) + " " + hex(b)));
});

let gpt2: Tokenizer | undefined;
function gpt2FromFiles(): Tokenizer {
  gpt2 ??= loadGpt2Tokenizer(fixture("gpt2_vocab.json"), fixture("gpt2_merges.txt"), ["<|endoftext|>"]);
  return gpt2;
}

Deno.test("GPT-2 from vocab.json + merges.txt encodes like tiktoken and round-trips", () => {
  const tok = gpt2FromFiles();
  const texts = ["", "s", "🙃", "Hello, how are you?"];
  for (const name of ["address.txt", "german.txt", "tinystories_sample.txt"]) {
    texts.push(Deno.readTextFileSync(fixture(name)));
  }
  for (const text of texts) {
    const ids = tok.encode(text);
    assertEquals(ids, tiktokenEncode(text), `ids of ${JSON.stringify(text.slice(0, 40))}`);
    assertEquals(tok.decode(ids), text);
  }
});

Deno.test("overlapping special tokens keep the longer one whole", () => {
  const tok = loadGpt2Tokenizer(fixture("gpt2_vocab.json"), fixture("gpt2_merges.txt"), [
    "<|endoftext|>",
    "<|endoftext|><|endoftext|>",
  ]);
  const text = "Hello, how <|endoftext|><|endoftext|> are you?<|endoftext|>";
  const ids = tok.encode(text);
  const pieces = ids.map((id) => tok.decode([id]));
  assertEquals(pieces.filter((p) => p === "<|endoftext|><|endoftext|>").length, 1);
  assertEquals(pieces.filter((p) => p === "<|endoftext|>").length, 1);
  assertEquals(tok.decode(ids), text);
});

Deno.test("streaming a fixture file equals encoding it whole", async () => {
  const tok = gpt2FromFiles();
  for (const name of ["tinystories_sample.txt", "address.txt", "german.txt"]) {
    const whole = tok.encode(Deno.readTextFileSync(fixture(name)));
    const file = await Deno.open(fixture(name));
    const streamed: number[] = [];
    for await (const id of tok.encodeIterable(file.readable)) streamed.push(id);
    assertEquals(streamed, whole, name);
  }
});

Deno.test("GPT-2 merges.txt equals the merges recovered from tiktoken's ranks", async () => {
  const { gpt2Tokenizer } = await import("../tests/gpt2_oracle.ts");
  const fromRanks = gpt2Tokenizer().merges().map(([a, b]) => hex(a) + " " + hex(b));
  const fromFile = gpt2FromFiles().merges().map(([a, b]) => hex(a) + " " + hex(b));
  assertEquals(fromRanks.length, fromFile.length);
  assert(fromRanks.every((m, i) => m === fromFile[i]), "merge lists differ");
});

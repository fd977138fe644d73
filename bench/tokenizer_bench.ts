/**
 * `deno bench` micro-benchmarks of the tokenizer against the `tiktoken` npm package on the same inputs: encoding
 * 1 MB of English, and pre-tokenizing it with the scanner versus the reference regex. The full speed report
 * (12 MB, training, files) is `bench/tokenizer_speed.ts`.
 */
import { get_encoding } from "tiktoken";
import { GPT2_PATTERN, pretokenize } from "../lib/tokenizer/mod.ts";
import { pretokenEnds } from "../lib/tokenizer/pretokenize.ts";
import { gpt2Tokenizer } from "../tests/gpt2_oracle.ts";
import { englishCorpus } from "./english_corpus.ts";

const text = englishCorpus().slice(0, 1_000_000);
const ours = gpt2Tokenizer();
const tiktoken = get_encoding("gpt2");

Deno.bench({ name: "encode 1 MB English: nanolm", group: "encode", baseline: true, fn: () => void ours.encode(text) });
Deno.bench({
  name: "encode 1 MB English: tiktoken (npm, WASM)",
  group: "encode",
  fn: () => void tiktoken.encode(text),
});
const ends: number[] = [];
Deno.bench({
  name: "pre-tokenize 1 MB: scanner, piece ends (what encode and training use)",
  group: "pretokenize",
  baseline: true,
  fn: () => {
    ends.length = 0;
    pretokenEnds(text, 0, text.length, ends);
  },
});
Deno.bench({
  name: "pre-tokenize 1 MB: reference regex, match ends",
  group: "pretokenize",
  fn: () => {
    ends.length = 0;
    const re = new RegExp(GPT2_PATTERN.source, "gu");
    while (re.exec(text) !== null) ends.push(re.lastIndex);
  },
});
Deno.bench({
  name: "pre-tokenize 1 MB: scanner, piece strings",
  group: "pretokenize",
  fn: () => void pretokenize(text),
});

/**
 * GPT-2's tokenizer for the default tests, taken from the `tiktoken` npm package (no network at test time beyond
 * npm, and no ../shared): its rank table for our {@linkcode Tokenizer}, and its WASM encoder as the oracle.
 *
 * @module
 */
import gpt2Ranks from "tiktoken/encoders/gpt2.json" with { type: "json" };
import { get_encoding, type Tiktoken } from "tiktoken";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";

/** The `<|endoftext|>` id in GPT-2. */
export const GPT2_EOT = 50256;

/** GPT-2's ranks as `.tiktoken` text (`base64 rank` per line), expanded from the package's compact form. */
export function gpt2TiktokenText(): string {
  const lines: string[] = [];
  for (const row of (gpt2Ranks as unknown as { bpe_ranks: string }).bpe_ranks.split("\n")) {
    if (!row) continue;
    const [_, offset, ...tokens] = row.split(" ");
    tokens.forEach((token, i) => lines.push(`${token} ${Number(offset) + i}`));
  }
  return lines.join("\n");
}

let cached: Tokenizer | undefined;

/** Our tokenizer built from tiktoken's GPT-2 ranks, with `<|endoftext|>` as a special token. */
export function gpt2Tokenizer(): Tokenizer {
  cached ??= Tokenizer.fromTiktokenText(gpt2TiktokenText(), { specialTokens: { "<|endoftext|>": GPT2_EOT } });
  return cached;
}

let oracle: Tiktoken | undefined;

/** tiktoken's own GPT-2 encoding of `text`, `<|endoftext|>` allowed. */
export function tiktokenEncode(text: string): number[] {
  oracle ??= get_encoding("gpt2");
  return Array.from(oracle.encode(text, ["<|endoftext|>"]));
}

/** tiktoken's GPT-2 encoding of `text` with no special tokens recognised. */
export function tiktokenEncodeOrdinary(text: string): number[] {
  oracle ??= get_encoding("gpt2");
  return Array.from(oracle.encode_ordinary(text));
}

/**
 * Exhaustive check against tiktoken: encodes every Unicode code point (surrogates excepted) in several contexts
 * (after a space, next to letters and digits, doubled, after an apostrophe and a newline) with our GPT-2 tokenizer
 * and with tiktoken's, and reports any difference. Too slow for the test suite (about a minute); the suite runs
 * every BMP code point and a sample of the rest.
 *
 * Usage: `deno run -A scripts/tokenizer_unicode_sweep.ts`
 *
 * @module
 */
import { gpt2Tokenizer, tiktokenEncode } from "../tests/gpt2_oracle.ts";

const tok = gpt2Tokenizer();
let mismatches = 0, blocks = 0;
const pieces: string[] = [];
for (let c = 0; c < 0x110000; c++) {
  if (c >= 0xd800 && c <= 0xdfff) continue;
  const ch = String.fromCodePoint(c);
  pieces.push(` ${ch}a${ch}${ch}1 ${ch}\n'${ch}`);
}
for (let i = 0; i < pieces.length; i += 8192) {
  const block = pieces.slice(i, i + 8192);
  const text = block.join("");
  blocks++;
  if (tok.encode(text).join() === tiktokenEncode(text).join()) continue;
  for (const piece of block) {
    if (tok.encode(piece).join() !== tiktokenEncode(piece).join()) {
      mismatches++;
      console.log(`mismatch at U+${piece.codePointAt(1)!.toString(16).toUpperCase()}: ${JSON.stringify(piece)}`);
    }
  }
}
console.log(`${pieces.length} code points in ${blocks} blocks: ${mismatches} mismatches`);
if (mismatches > 0) Deno.exit(1);

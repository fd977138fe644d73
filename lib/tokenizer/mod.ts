/**
 * Byte-level BPE tokenizer, runtime-independent (it also runs in a browser): BPE training on pre-token counts
 * ({@linkcode bpeFromCounts}), encoding and decoding ({@linkcode Tokenizer}), GPT-2 pre-tokenization. Reading and
 * writing tokenizer files, training on text files and encoding files into token files are `@nanolm/nanolm/data`.
 *
 * - Pre-tokenization is GPT-2's regex, reproduced exactly (tiktoken's meaning of `\s` included) by a hand-written
 *   scanner; special tokens are split out first, longest match winning.
 * - BPE follows CS336 assignment 1: ids 0-255 are the bytes, then the special tokens, then one id per merge; ties go
 *   to the lexicographically greater pair.
 * - `Tokenizer` reads and writes the texts of GPT-2 / Hugging Face `vocab.json` + `merges.txt`, tiktoken rank files
 *   and nanolm's single-file JSON; it gives tiktoken's GPT-2 ids.
 *
 * @example
 * ```ts
 * import { bpeFromCounts, countPretokensOfText, PretokenCounter, Tokenizer } from "@nanolm/nanolm/tokenizer";
 * const counts = new PretokenCounter();
 * countPretokensOfText("the cat sat on the mat", counts, null);
 * const { vocab, merges } = bpeFromCounts(counts.toMap(), { vocabSize: 270 });
 * const tokenizer = new Tokenizer(vocab, merges);
 * if (tokenizer.decode(tokenizer.encode("the mat")) !== "the mat") throw new Error("round trip failed");
 * ```
 *
 * @module
 */
export { bpeFromCounts, type BpeModel, type BpeOptions, checkBpeOptions, learnMerges } from "./bpe_train.ts";
export {
  type Merge,
  type TiktokenOptions,
  Tokenizer,
  type TokenizerOptions,
  type TokenizerSnapshot,
} from "./tokenizer.ts";
export type { PairTableData } from "./bpe_merge.ts";
export { countPretokensOfText, PretokenCounter, specialTokenPattern } from "./pretoken_counts.ts";
export { GPT2_PATTERN, pretokenize, pretokenizeRegex } from "./pretokenize.ts";
export { BYTE_TO_CHAR, bytesToPrintable, printableToBytes } from "./bytes_unicode.ts";
export {
  TOKEN_SPLIT_SAMPLE,
  tokenizerBundle,
  type TokenizerView,
  tokenSplit,
  tokenSplitBundle,
  tokenText,
} from "./view.ts";

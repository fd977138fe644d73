/**
 * Byte-level BPE tokenizer: training ({@linkcode trainBpe}), encoding and decoding ({@linkcode Tokenizer}), and
 * encoding files to token files ({@linkcode encodeFile}).
 *
 * - Pre-tokenization is GPT-2's regex, reproduced exactly (tiktoken's meaning of `\s` included) by a hand-written
 *   scanner; special tokens are split out first, longest match winning.
 * - `trainBpe` follows CS336 assignment 1: ids 0-255 are the bytes, then the special tokens, then one id per merge;
 *   ties go to the lexicographically greater pair. It is synchronous, Workers included.
 * - `Tokenizer` reads and writes GPT-2 / Hugging Face `vocab.json` + `merges.txt`, tiktoken `.tiktoken` rank
 *   files, and nanolm's single-file JSON (`save` / `load`); it gives tiktoken's GPT-2 ids.
 * - Token files are raw little-endian ids with no header: uint16, or uint32 when the name ends in `.u32`.
 *
 * @example
 * ```ts
 * import { Tokenizer, trainBpe } from "./mod.ts";
 * const path = Deno.makeTempFileSync();
 * Deno.writeTextFileSync(path, "the cat sat on the mat<|endoftext|>the end");
 * const { vocab, merges } = trainBpe(path, { vocabSize: 270, specialTokens: ["<|endoftext|>"] });
 * const tokenizer = new Tokenizer(vocab, merges, ["<|endoftext|>"]);
 * console.assert(tokenizer.decode(tokenizer.encode("the mat")) === "the mat");
 * ```
 *
 * @module
 */
export { type BpeModel, learnMerges, trainBpe, type TrainBpeOptions } from "./bpe_train.ts";
export {
  type Merge,
  type TiktokenOptions,
  Tokenizer,
  type TokenizerOptions,
  type TokenizerSnapshot,
} from "./tokenizer.ts";
export type { PairTableData } from "./bpe_merge.ts";
export { encodeFile, type EncodeFileOptions, type EncodeFileResult } from "../data/encode_file.ts";
export { GPT2_PATTERN, pretokenize, pretokenizeRegex } from "./pretokenize.ts";
export { BYTE_TO_CHAR, bytesToPrintable, printableToBytes } from "./bytes_unicode.ts";

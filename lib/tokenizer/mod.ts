/**
 * Byte-level BPE tokenizer: training ({@linkcode trainBpe}), encoding and decoding ({@linkcode Tokenizer}), and
 * encoding files to token files ({@linkcode encodeFile}).
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
export { type Merge, type TiktokenOptions, Tokenizer, type TokenizerOptions } from "./tokenizer.ts";
export {
  encodeFile,
  type EncodeFileOptions,
  type EncodeFileResult,
  type TokenDtype,
  tokenFileDtype,
} from "./encode_file.ts";
export { GPT2_PATTERN, pretokenize, pretokenizeRegex } from "./pretokenize.ts";
export { BYTE_TO_CHAR, bytesToPrintable, printableToBytes } from "./bytes_unicode.ts";

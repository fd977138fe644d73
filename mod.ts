/**
 * nanolm: a language model from scratch on WebGPU, in TypeScript.
 *
 * Tokenizer, tensors with reverse-mode autograd, transformer LM, trainer and sampler.
 *
 * @example
 * ```ts
 * import { Rng } from "@nanolm/nanolm";
 * const rng = new Rng(0);
 * console.log(rng.uniform());
 * ```
 *
 * @module
 */
export { Rng, type RngState } from "./lib/random.ts";
export {
  type BpeModel,
  BYTE_TO_CHAR,
  bytesToPrintable,
  encodeFile,
  type EncodeFileOptions,
  type EncodeFileResult,
  GPT2_PATTERN,
  learnMerges,
  type Merge,
  pretokenize,
  pretokenizeRegex,
  printableToBytes,
  type TiktokenOptions,
  type TokenDtype,
  tokenFileDtype,
  Tokenizer,
  type TokenizerOptions,
  trainBpe,
  type TrainBpeOptions,
} from "./lib/tokenizer/mod.ts";

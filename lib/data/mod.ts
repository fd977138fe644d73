/**
 * Data on disk: token files and batches, tokenizer files, BPE training on text files, encoding text files into
 * token files (in parallel Workers), the embedded default corpus, and `prepare-data` (text to tokenizer and token
 * files).
 *
 * @example
 * ```ts
 * import { TokenDataset, writeTokenFile } from "@nanolm/nanolm/data";
 * const path = await Deno.makeTempFile({ suffix: ".bin" });
 * await writeTokenFile(path, Array.from({ length: 100 }, (_, i) => i % 50));
 * using data = await TokenDataset.open(path);
 * if (data.length !== 100 || (await data.maxTokenId()) !== 49) throw new Error("wrong token file");
 * ```
 *
 * @module
 */
export {
  RandomBatchSampler,
  type RandomBatchSamplerOptions,
  type SamplerState,
  type TokenBatch,
  TokenDataset,
  type TokenDatasetOptions,
  type TokenDtype,
  tokenDtypeForPath,
  writeTokenFile,
} from "./token_files.ts";
export {
  loadGpt2Tokenizer,
  loadTiktoken,
  loadTokenizer,
  saveGpt2Tokenizer,
  saveTiktoken,
  saveTokenizer,
} from "./tokenizer_files.ts";
export { trainBpe, type TrainBpeOptions } from "./train_bpe.ts";
export {
  type CountOptions,
  countPretokens,
  countPretokensOfFile,
  type FileRange,
  type ParallelCountOptions,
  splitFiles,
} from "./corpus_counts.ts";
export { encodeFile, type EncodeFileOptions, type EncodeFileResult } from "./encode_file.ts";
export {
  defaultCorpus,
  defaultDataFolder,
  type DefaultRunSettings,
  defaultRunSettings,
  END_OF_TEXT,
  type PreparedData,
  prepareDefaultData,
} from "./default_data.ts";
export {
  MIN_TRAIN_TOKENS,
  type PreparedTextData,
  type PrepareOptions,
  prepareTextData,
  scanText,
  type TextScan,
  TINYSTORIES_URLS,
} from "./prepare.ts";
export type { ProgressBarOptions } from "../util/progress.ts";

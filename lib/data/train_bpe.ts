/**
 * Byte-level BPE training on text files (CS336's `train_bpe(input_path, vocab_size, special_tokens)`): pre-token
 * counts streamed from the files (in parallel Workers on large inputs), then the merges (`bpeFromCounts`).
 *
 * @module
 */
import { bpeFromCounts, type BpeModel, checkBpeOptions } from "../tokenizer/bpe_train.ts";
import { ProgressBar, type ProgressBarOptions } from "../util/progress.ts";
import { countPretokens } from "./corpus_counts.ts";

/** Options of {@linkcode trainBpe}. */
export interface TrainBpeOptions {
  /** Size of the final vocabulary: 256 bytes + special tokens + merges. */
  vocabSize: number;
  /** Special tokens: added to the vocabulary after the bytes, split out of the corpus and never merged. */
  specialTokens?: readonly string[];
  /**
   * Worker threads for pre-token counting; by default one per core for inputs over 8 MB, else none. 0 or 1 counts
   * on the calling thread.
   */
  workers?: number;
  /** Show progress bars (pre-tokenization in MB/s, merges in merges/s); pass options to customise them. */
  progress?: boolean | ProgressBarOptions;
}

/**
 * Trains a byte-level BPE tokenizer on one or several text files.
 *
 * Synchronous (it blocks until done, Workers included), so both `trainBpe(...)` and `await trainBpe(...)` work.
 *
 * @example
 * ```ts
 * import { trainBpe } from "@nanolm/nanolm";
 * const path = Deno.makeTempFileSync();
 * Deno.writeTextFileSync(path, "low low low lower lowest<|endoftext|>newer newest");
 * const { vocab, merges } = trainBpe(path, { vocabSize: 260, specialTokens: ["<|endoftext|>"] });
 * if (vocab.size !== 260 || merges.length !== 3) throw new Error(`${vocab.size} tokens, ${merges.length} merges`);
 * if (new TextDecoder().decode(vocab.get(256)) !== "<|endoftext|>") throw new Error("special token misplaced");
 * ```
 */
export function trainBpe(input: string | URL | ReadonlyArray<string | URL>, options: TrainBpeOptions): BpeModel {
  const specialTokens = checkBpeOptions(options);
  const paths = typeof input === "string" || input instanceof URL ? [input] : [...input];
  if (paths.length === 0) throw new RangeError("trainBpe needs at least one input file");
  let totalBytes = 0;
  for (const path of paths) {
    let size: number;
    try {
      size = Deno.statSync(path).size;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new Deno.errors.NotFound(`Corpus file not found: ${String(path)}`);
      throw e;
    }
    totalBytes += size;
  }
  if (totalBytes === 0) throw new RangeError(`Corpus is empty: ${paths.map(String).join(", ")}`);

  const barOptions = options.progress === true ? {} : options.progress || null;
  const workers = options.workers ?? (totalBytes > 8 << 20 ? navigator.hardwareConcurrency : 1);
  const counts = countPretokens(paths, { specialTokens, workers, progress: barOptions });
  let bar: ProgressBar | null = null;
  const model = bpeFromCounts(counts, {
    vocabSize: options.vocabSize,
    specialTokens,
    onProgress: barOptions
      ? (done, total) =>
        (bar ??= new ProgressBar(total, { label: "bpe merges", unit: "merges", ...barOptions }))
          .update(done)
      : undefined,
  });
  (bar as ProgressBar | null)?.done();
  return model;
}

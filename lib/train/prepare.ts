/**
 * Real data for training: fetch (or take) a text corpus such as TinyStories, train a BPE tokenizer on the training
 * split, and encode both splits into token files the trainer reads.
 *
 * @module
 */
import { ProgressBar } from "../progress.ts";
import { trainBpe } from "../tokenizer/bpe_train.ts";
import { encodeFile } from "../tokenizer/encode_file.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";

/** TinyStories V2 (GPT-4 generated) text files, as CS336 uses them. */
export const TINYSTORIES_URLS: { train: string; val: string } = {
  train: "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-train.txt",
  val: "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-valid.txt",
};

/** Options of {@linkcode prepareTextData}. */
export interface PrepareOptions {
  /** Training text: a local path or an http(s) URL (downloaded into `outDir`). */
  train: string;
  /** Validation text (path or URL); without it the last `valFraction` of the training text is held out. */
  val?: string;
  /** Output directory for the text, tokenizer and token files. */
  outDir: string;
  /** Tokenizer vocabulary size (CS336 TinyStories: 10000). */
  vocabSize: number;
  /** Special tokens (default `<|endoftext|>`). */
  specialTokens?: string[];
  /** Held-out fraction when there is no `val` (default 0.01). */
  valFraction?: number;
  /** Show progress bars. */
  progress?: boolean;
  /** Status lines. */
  log?: (line: string) => void;
}

/** What {@linkcode prepareTextData} produced. */
export interface PreparedTextData {
  /** Training token file. */
  trainData: string;
  /** Validation token file. */
  valData: string;
  /** The tokenizer in nanolm's JSON format. */
  tokenizerPath: string;
  /** Token counts. */
  tokens: { train: number; val: number };
}

async function localCopy(source: string, dir: string, name: string, progress: boolean): Promise<string> {
  if (!/^https?:\/\//.test(source)) {
    try {
      const info = await Deno.stat(source);
      if (!info.isFile) throw new Error(`Input ${source} is not a file`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new Error(`Input file ${source} does not exist`);
      throw e;
    }
    return source;
  }
  const path = `${dir}/${name}`;
  try {
    await Deno.stat(path);
    return path; // downloaded before
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const response = await fetch(source);
  if (!response.ok || !response.body) throw new Error(`Download of ${source} failed: HTTP ${response.status}`);
  const total = Number(response.headers.get("content-length") ?? 0);
  const bar = progress && total > 0 ? new ProgressBar(total / 1e6, { label: `download ${name}`, unit: "MB" }) : null;
  const tmp = `${path}.part`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  let done = 0;
  try {
    for await (const chunk of response.body) {
      await file.write(chunk);
      done += chunk.byteLength;
      bar?.update(done / 1e6);
    }
  } finally {
    file.close();
  }
  bar?.done();
  await Deno.rename(tmp, path); // a partial download never looks complete
  return path;
}

async function splitTail(path: string, dir: string, fraction: number): Promise<{ train: string; val: string }> {
  if (!(fraction > 0 && fraction < 1)) throw new RangeError(`valFraction must be in (0, 1), got ${fraction}`);
  const text = await Deno.readTextFile(path);
  // Cut at a line break so that no document is split mid-line.
  let cut = Math.floor(text.length * (1 - fraction));
  const nl = text.indexOf("\n", cut);
  cut = nl < 0 ? cut : nl + 1;
  const train = `${dir}/train.txt`, val = `${dir}/val.txt`;
  await Deno.writeTextFile(train, text.slice(0, cut));
  await Deno.writeTextFile(val, text.slice(cut));
  return { train, val };
}

/**
 * Prepares token files from text: downloads URLs, trains the tokenizer on the training text, encodes both splits
 * (uint16 when the vocabulary fits, else `.u32`).
 *
 * @example
 * ```ts ignore
 * const data = await prepareTextData({
 *   train: TINYSTORIES_URLS.train, val: TINYSTORIES_URLS.val, outDir: "data/tinystories", vocabSize: 10000,
 * });
 * // deno task train --train-data data/tinystories/train.bin --val-data data/tinystories/val.bin ...
 * ```
 */
export async function prepareTextData(options: PrepareOptions): Promise<PreparedTextData> {
  const { outDir, vocabSize } = options;
  const specials = options.specialTokens ?? ["<|endoftext|>"];
  const log = options.log ?? (() => {});
  const progress = options.progress ?? false;
  await Deno.mkdir(outDir, { recursive: true });
  let trainText = await localCopy(options.train, outDir, "train.txt", progress);
  let valText: string;
  if (options.val) valText = await localCopy(options.val, outDir, "val.txt", progress);
  else ({ train: trainText, val: valText } = await splitTail(trainText, outDir, options.valFraction ?? 0.01));
  const ext = vocabSize > 65536 ? "u32" : "bin";
  const tokenizerPath = `${outDir}/tokenizer-${vocabSize}.json`;
  log(`training a ${vocabSize}-token BPE tokenizer on ${trainText}`);
  const { vocab, merges } = trainBpe(trainText, { vocabSize, specialTokens: specials, progress });
  const tokenizer = new Tokenizer(vocab, merges, specials);
  tokenizer.save(tokenizerPath);
  const trainData = `${outDir}/train.${ext}`, valData = `${outDir}/val.${ext}`;
  log(`encoding ${trainText} -> ${trainData}`);
  const trainResult = await encodeFile(trainText, trainData, tokenizer, { progress });
  log(`encoding ${valText} -> ${valData}`);
  const valResult = await encodeFile(valText, valData, tokenizer, { progress });
  return { trainData, valData, tokenizerPath, tokens: { train: trainResult.tokens, val: valResult.tokens } };
}

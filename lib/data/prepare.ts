/**
 * Real data for training: fetch (or take) a text corpus such as TinyStories, train a BPE tokenizer on the training
 * split, and encode both splits into token files the trainer reads.
 *
 * Every option and local input is checked before anything is written, and no input is ever one of the run's
 * outputs. The inputs are then scanned: bytes that are not UTF-8 (they become U+FFFD in the tokens) and corpora
 * too small or only whitespace are reported as warnings; a file that is mostly not UTF-8 is an error. Each output
 * file is written under a temporary name and renamed, so an interrupted run never leaves a torn file in place; the
 * next run removes the partial files it left.
 *
 * @module
 */
import { basename, dirname, extname, join, resolve } from "node:path";
import { ProgressBar } from "../util/progress.ts";
import { trainBpe } from "./train_bpe.ts";
import { encodeFile } from "./encode_file.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { saveTokenizer } from "./tokenizer_files.ts";
import { exists } from "../io/exists.ts";
import { STALE_TEMP_MS } from "../io/atomic_write.ts";

/** TinyStories V2 (GPT-4 generated) text files, as CS336 uses them. */
export const TINYSTORIES_URLS: { train: string; val: string } = {
  train: "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-train.txt",
  val: "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-valid.txt",
};

/** Fewer training tokens than this draw a warning: one sequence of `deno task train`'s default context (256). */
export const MIN_TRAIN_TOKENS = 257;

/** Above this share of bytes that are not UTF-8, a file is refused as not being UTF-8 text at all. */
const MAX_INVALID_SHARE = 0.01;

/** Options of {@linkcode prepareTextData}. */
export interface PrepareOptions {
  /** Training text: a local path or an http(s) URL (downloaded into `outDir`). */
  train: string;
  /** Validation text (path or URL); without it the last `valFraction` of the training text is held out. */
  val?: string;
  /** Output directory for the text, tokenizer and token files. */
  outDir: string;
  /** Tokenizer vocabulary size (CS336 TinyStories: 10000); more than 256 + the number of special tokens. */
  vocabSize: number;
  /** Special tokens (default `<|endoftext|>`). */
  specialTokens?: string[];
  /** Held-out fraction when there is no `val`, in (0, 1) (default 0.01). */
  valFraction?: number;
  /** Show progress bars. */
  progress?: boolean;
  /** Status lines. */
  log?: (line: string) => void;
  /** Warnings as they arise (they are also listed in the result). */
  warn?: (line: string) => void;
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
  /** Problems that did not stop the run: bytes that are not UTF-8, a tiny or whitespace-only corpus, a short vocab. */
  warnings: string[];
}

const isUrl = (s: string) => /^https?:\/\//.test(s);

/** What a scan of a text file found ({@linkcode scanText}). */
export interface TextScan {
  /** Size of the file in bytes. */
  bytes: number;
  /** Bytes that are not part of a valid UTF-8 sequence (each run of them becomes one U+FFFD). */
  invalid: number;
  /** Offset of the first of them, or -1. */
  firstInvalid: number;
  /** NUL bytes (a binary file read as text has many). */
  nul: number;
  /** Only ASCII whitespace (or nothing). */
  blank: boolean;
}

/** Length of the valid UTF-8 sequence at `buf[i]` (0 if invalid, -1 if it may continue past `end`). */
function sequenceLength(buf: Uint8Array, i: number, end: number): number {
  const b = buf[i];
  if (b < 0x80) return 1;
  let n: number, lo = 0x80, hi = 0xbf;
  if (b >= 0xc2 && b <= 0xdf) n = 2;
  else if (b >= 0xe0 && b <= 0xef) [n, lo, hi] = [3, b === 0xe0 ? 0xa0 : 0x80, b === 0xed ? 0x9f : 0xbf];
  else if (b >= 0xf0 && b <= 0xf4) [n, lo, hi] = [4, b === 0xf0 ? 0x90 : 0x80, b === 0xf4 ? 0x8f : 0xbf];
  else return 0;
  for (let k = 1; k < n; k++) {
    if (i + k >= end) return -1;
    const c = buf[i + k];
    if (c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return 0;
  }
  return n;
}

/**
 * Counts the bytes of a file that are not valid UTF-8, its NUL bytes, and whether it holds only whitespace,
 * streaming it in 1 MiB chunks.
 *
 * @example
 * ```ts
 * import { scanText } from "@nanolm/nanolm/data";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeFile(`${dir}/text.txt`, new Uint8Array([104, 105, 0xff, 0xfe])); // "hi" and two stray bytes
 * const scan = await scanText(`${dir}/text.txt`);
 * if (scan.invalid !== 2 || scan.firstInvalid !== 2 || scan.blank) throw new Error(JSON.stringify(scan));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function scanText(path: string): Promise<TextScan> {
  const scan: TextScan = { bytes: 0, invalid: 0, firstInvalid: -1, nul: 0, blank: true };
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array((1 << 20) + 3);
  let carry = 0; // bytes of an unfinished sequence moved to the front of buf
  while (true) {
    const n = await file.read(buf.subarray(carry));
    const end = carry + (n ?? 0), last = n === null;
    let i = 0;
    while (i < end) {
      const b = buf[i];
      if (b < 0x80) {
        if (b === 0) scan.nul++;
        else if (scan.blank && b !== 0x20 && (b < 0x09 || b > 0x0d)) scan.blank = false;
        i++;
        continue;
      }
      const len = sequenceLength(buf, i, end);
      if (len === -1 && !last) break; // finish it with the next chunk
      if (len > 0) {
        scan.blank = false;
        i += len;
        continue;
      }
      if (scan.firstInvalid < 0) scan.firstInvalid = scan.bytes + i;
      scan.invalid++;
      i++;
    }
    scan.bytes += i;
    if (last) return scan;
    buf.copyWithin(0, i, end);
    carry = end - i;
  }
}

/** The temporary name {@linkcode atomically} writes `path` under: `.<name>.<8 hex digits>.partial<ext>`. */
function isPartialOf(entry: string, path: string): boolean {
  const name = basename(path), ext = extname(path);
  const middle = entry.slice(name.length + 2, entry.length - ".partial".length - ext.length);
  return entry.startsWith(`.${name}.`) && entry.endsWith(`.partial${ext}`) && /^[0-9a-f]{8}$/.test(middle);
}

/**
 * Removes what killed runs left of `paths` (their partial files, unmodified for {@linkcode STALE_TEMP_MS}: one that
 * changed since may be another process's, still being written). A download's partial file can be gigabytes.
 */
async function removeStalePartials(dir: string, paths: string[]): Promise<void> {
  const cutoff = Date.now() - STALE_TEMP_MS;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !paths.some((p) => isPartialOf(entry.name, p))) continue;
    const path = join(dir, entry.name);
    const mtime = (await Deno.stat(path).catch(() => null))?.mtime?.getTime();
    if (mtime !== undefined && mtime <= cutoff) await Deno.remove(path).catch(() => {});
  }
}

/** Writes `path` through a temporary file in the same folder (same extension) and a rename. */
async function atomically<T>(path: string, write: (tmp: string) => Promise<T> | T): Promise<T> {
  const tmp = `${dirname(path)}/.${basename(path)}.${crypto.randomUUID().slice(0, 8)}.partial${extname(path)}`;
  try {
    const result = await write(tmp);
    await Deno.rename(tmp, path);
    return result;
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

async function download(source: string, path: string, progress: boolean): Promise<void> {
  try {
    await Deno.stat(path);
    return; // downloaded before (downloads are renamed into place only when complete)
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  let response: Response;
  try {
    response = await fetch(source);
  } catch (e) {
    const cause = (e as Error).cause;
    throw new Error(`download of ${source} failed: ${cause instanceof Error ? cause.message : (e as Error).message}`);
  }
  if (!response.ok || !response.body) throw new Error(`download of ${source} failed: HTTP ${response.status}`);
  const total = Number(response.headers.get("content-length") ?? 0);
  const name = basename(path);
  const bar = progress && total > 0 ? new ProgressBar(total / 1e6, { label: `download ${name}`, unit: "MB" }) : null;
  await atomically(path, async (tmp) => {
    using file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    let done = 0;
    for await (const chunk of response.body!) {
      await file.write(chunk);
      done += chunk.byteLength;
      bar?.update(done / 1e6);
    }
  });
  bar?.done();
}

/** Copies bytes [start, end) of `from` into a new file `to`, atomically. */
async function copyRange(from: string, to: string, start: number, end: number): Promise<void> {
  await atomically(to, async (tmp) => {
    using input = await Deno.open(from, { read: true });
    using output = await Deno.open(tmp, { write: true, create: true, truncate: true });
    await input.seek(start, Deno.SeekMode.Start);
    const buf = new Uint8Array(1 << 20);
    for (let left = end - start; left > 0;) {
      const n = await input.read(buf.subarray(0, Math.min(buf.length, left)));
      if (n === null) throw new Error(`${from} changed while it was being split`);
      let written = 0;
      while (written < n) written += await output.write(buf.subarray(written, n));
      left -= n;
    }
  });
}

/**
 * Holds out the tail of `path`: the cut is the first line break after `1 - fraction` of the bytes (so no line is
 * split), or, without one before the end of the file, the nearest character boundary.
 */
async function splitTail(path: string, train: string, val: string, fraction: number): Promise<void> {
  const size = (await Deno.stat(path)).size;
  let cut = Math.floor(size * (1 - fraction));
  {
    using file = await Deno.open(path, { read: true });
    await file.seek(cut, Deno.SeekMode.Start);
    const buf = new Uint8Array(1 << 16);
    let at = cut, found = -1;
    for (let n = await file.read(buf); n !== null && found < 0; n = await file.read(buf)) {
      const nl = buf.subarray(0, n).indexOf(0x0a);
      if (nl >= 0) found = at + nl + 1;
      at += n;
    }
    // A line break that ends the file would leave nothing to hold out: cut inside the last line instead.
    if (found >= 0 && found < size) cut = found;
    else {
      const byte = new Uint8Array(1);
      for (; cut > 0; cut--) {
        await file.seek(cut, Deno.SeekMode.Start);
        if ((await file.read(byte)) === null || (byte[0] & 0xc0) !== 0x80) break;
      }
    }
  }
  await copyRange(path, train, 0, cut);
  await copyRange(path, val, cut, size);
}

/** Every check that needs no writing: option values, local inputs, and inputs that are also outputs. */
async function checkOptions(options: PrepareOptions, outputs: string[]): Promise<void> {
  const specials = options.specialTokens ?? ["<|endoftext|>"];
  const least = 256 + specials.length + 1;
  if (!Number.isInteger(options.vocabSize) || options.vocabSize < least) {
    throw new RangeError(
      `vocab size must be an integer of at least 256 bytes + ${specials.length} special tokens + 1 = ${least}, ` +
        `got ${options.vocabSize}`,
    );
  }
  if (specials.some((s) => s === "") || new Set(specials).size !== specials.length) {
    throw new RangeError("special tokens must be non-empty and distinct");
  }
  const fraction = options.valFraction ?? 0.01;
  if (!(fraction > 0 && fraction < 1)) throw new RangeError(`valFraction must be in (0, 1), got ${fraction}`);
  const written = new Set(outputs.map((p) => resolve(p)));
  for (const [what, source] of [["input", options.train], ["validation input", options.val]] as const) {
    if (source === undefined || isUrl(source)) continue;
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(source);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new Error(`${what} file ${source} does not exist`);
      throw new Error(`${what} file ${source} cannot be read (${(e as Error).name})`);
    }
    if (info.isDirectory) throw new Error(`${what} ${source} is a directory, not a file`);
    if (!info.isFile) throw new Error(`${what} ${source} is not a file`);
    if (info.size === 0) throw new Error(`${what} file ${source} is empty`);
    const real = await Deno.realPath(source);
    for (const out of written) {
      const realOut = await Deno.realPath(out).catch(() => out);
      if (realOut === real || out === resolve(source)) {
        throw new Error(
          `${what} file ${source} is also an output of this run (${out}) and would be overwritten; ` +
            `move it or choose another output directory`,
        );
      }
    }
  }
}

/** Scans an input text: an error when it is mostly not UTF-8, else warnings. */
async function checkText(path: string, what: string, warn: (line: string) => void): Promise<void> {
  const scan = await scanText(path);
  const share = (n: number) => `${n} of ${scan.bytes} bytes (${(100 * n / scan.bytes).toPrecision(2)}%)`;
  if (scan.bytes === 0) throw new Error(`${what} ${path} is empty`);
  if (scan.invalid > MAX_INVALID_SHARE * scan.bytes || scan.nul > MAX_INVALID_SHARE * scan.bytes) {
    const bad = scan.invalid > scan.nul ? `${share(scan.invalid)} are not UTF-8` : `${share(scan.nul)} are NUL`;
    throw new Error(`${what} ${path} is not UTF-8 text: ${bad}; convert it first (e.g. iconv -t utf-8)`);
  }
  if (scan.invalid > 0) {
    warn(
      `${what} ${path}: ${share(scan.invalid)} are not valid UTF-8 (the first at byte ${scan.firstInvalid}); ` +
        "each run of them becomes U+FFFD",
    );
  }
  if (scan.blank) warn(`${what} ${path} holds only whitespace: there is nothing to learn from it`);
}

/**
 * Prepares token files from text: checks every option and input first (no input may be an output), downloads
 * URLs, trains the tokenizer on the training text, encodes both splits (uint16 when the vocabulary fits, else
 * `.u32`). Outputs in `outDir`: `tokenizer-<vocabSize>.json`, `train.<ext>`, `val.<ext>`, downloads as
 * `train.txt`/`val.txt`, and without a validation input the split texts `train-split.txt`/`val-split.txt`.
 *
 * @example
 * ```ts
 * import { prepareTextData, TokenDataset } from "@nanolm/nanolm";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/stories.txt`, "Once upon a time there was a cat.<|endoftext|>".repeat(200));
 * const data = await prepareTextData({ train: `${dir}/stories.txt`, outDir: `${dir}/out`, vocabSize: 300 });
 * // Without a validation text, the last 1% of the training text is held out.
 * using train = await TokenDataset.open(data.trainData);
 * if (train.length !== data.tokens.train || !(data.tokens.val > 0)) throw new Error(JSON.stringify(data.tokens));
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * CS336's TinyStories (a download of about 2 GB):
 *
 * ```ts ignore
 * import { prepareTextData } from "@nanolm/nanolm";
 * import { TINYSTORIES_URLS } from "@nanolm/nanolm/data";
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
  const warnings: string[] = [];
  const warn = (line: string) => {
    warnings.push(line);
    options.warn?.(line);
  };
  const progress = options.progress ?? false;
  const ext = vocabSize > 65536 ? "u32" : "bin";
  const tokenizerPath = `${outDir}/tokenizer-${vocabSize}.json`;
  const trainData = `${outDir}/train.${ext}`, valData = `${outDir}/val.${ext}`;
  const downloads = { train: `${outDir}/train.txt`, val: `${outDir}/val.txt` };
  const split = options.val ? null : { train: `${outDir}/train-split.txt`, val: `${outDir}/val-split.txt` };
  const outputs = [tokenizerPath, trainData, valData, ...(split ? [split.train, split.val] : [])];
  if (isUrl(options.train)) outputs.push(downloads.train);
  if (options.val && isUrl(options.val)) outputs.push(downloads.val);
  await checkOptions(options, outputs);

  const created = !(await exists(outDir));
  await Deno.mkdir(outDir, { recursive: true });
  await removeStalePartials(outDir, [...outputs, downloads.train, downloads.val]);
  let trainText = options.train, valText = options.val;
  try {
    if (isUrl(options.train)) {
      await download(options.train, downloads.train, progress);
      trainText = downloads.train;
    }
    if (options.val && isUrl(options.val)) {
      await download(options.val, downloads.val, progress);
      valText = downloads.val;
    }
  } catch (e) {
    // A failed download leaves nothing behind: not even the folder it made for the files.
    if (created) await Deno.remove(outDir).catch(() => {});
    throw e;
  }
  await checkText(trainText, "input", warn);
  if (valText) await checkText(valText, "validation input", warn);
  if (split) {
    await splitTail(trainText, split.train, split.val, options.valFraction ?? 0.01);
    [trainText, valText] = [split.train, split.val];
  }

  log(`training a ${vocabSize}-token BPE tokenizer on ${trainText}`);
  const { vocab, merges } = trainBpe(trainText, { vocabSize, specialTokens: specials, progress });
  const tokenizer = new Tokenizer(vocab, merges, specials);
  if (tokenizer.vocabSize < vocabSize) {
    warn(
      `the corpus yields only ${merges.length} merges: the tokenizer has ${tokenizer.vocabSize} ids, not ` +
        `${vocabSize}; train with --vocab-size ${tokenizer.vocabSize}`,
    );
  }
  await atomically(tokenizerPath, (tmp) => saveTokenizer(tokenizer, tmp));
  log(`encoding ${trainText} -> ${trainData}`);
  const trainResult = await atomically(trainData, (tmp) => encodeFile(trainText, tmp, tokenizer, { progress }));
  log(`encoding ${valText} -> ${valData}`);
  const valResult = await atomically(valData, (tmp) => encodeFile(valText!, tmp, tokenizer, { progress }));
  const tokens = { train: trainResult.tokens, val: valResult.tokens };
  if (tokens.train < MIN_TRAIN_TOKENS) {
    warn(
      `only ${tokens.train} training tokens: one sequence of context length 256 (deno task train's default) ` +
        `needs ${MIN_TRAIN_TOKENS}; use a larger corpus or a smaller --context-length`,
    );
  }
  if (tokens.val === 0) warn("the validation split is empty: raise --val-fraction or pass --val-input");
  return { trainData, valData, tokenizerPath, tokens, warnings };
}

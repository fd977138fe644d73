/**
 * Pre-token counting over Workers. Each file is cut into one byte range per worker at safe cuts (see
 * {@linkcode findSafeCut}); every worker streams its ranges and sends its counts back through a growable
 * SharedArrayBuffer. The calling thread waits with `Atomics.wait`, so training stays a synchronous call.
 *
 * @module
 */

import { ProgressBar, type ProgressBarOptions } from "../util/progress.ts";
import {
  countPretokensOfText,
  findSafeCut,
  PretokenCounter,
  specialTokenPattern,
} from "../tokenizer/pretoken_counts.ts";

/** A byte range of a file. */
export interface FileRange {
  /** File path. */
  path: string;
  /** First byte. */
  start: number;
  /** End byte (exclusive). */
  end: number;
}

/** Options of {@linkcode countPretokens}. */
export interface ParallelCountOptions {
  /** Special tokens to split out. */
  specialTokens?: readonly string[];
  /** Number of workers; 0 or 1 counts on the calling thread. */
  workers?: number;
  /** Progress bar options, or null for none. */
  progress?: ProgressBarOptions | null;
}

/** Control words shared with a worker: state, result length, progress (bytes done, as two 32-bit halves). */
export const CONTROL_STATE = 0, CONTROL_LENGTH = 1, CONTROL_DONE_LOW = 2, CONTROL_DONE_HIGH = 3;
/** Worker states. */
export const STATE_WAITING = 0, STATE_RUNNING = 1, STATE_FINISHED = 2, STATE_FAILED = 3;

/**
 * Cuts each file into at most `parts` byte ranges at safe cuts.
 *
 * @example
 * ```ts
 * import { splitFiles } from "@nanolm/nanolm/data";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/corpus.txt`, "one two three four five six seven\n".repeat(100));
 * const ranges = splitFiles([`${dir}/corpus.txt`], 2, []);
 * // Two ranges that cover the file and meet at a safe cut: just before a newline, never inside a pre-token.
 * if (ranges.length !== 2 || ranges[0].end !== ranges[1].start || ranges[1].end !== 3400) throw new Error("bad split");
 * const text = Deno.readTextFileSync(`${dir}/corpus.txt`);
 * if (text[ranges[1].start] !== "\n") throw new Error(`cut at ${ranges[1].start}, inside a line`);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function splitFiles(
  paths: ReadonlyArray<string | URL>,
  parts: number,
  specialTokens: readonly string[],
): FileRange[] {
  const specials = specialTokens.map((s) => new TextEncoder().encode(s));
  const ranges: FileRange[] = [];
  const window = 1 << 20;
  for (const p of paths) {
    const path = p instanceof URL ? fileUrlToPath(p) : p;
    const size = Deno.statSync(p).size;
    const cuts = [0];
    const file = Deno.openSync(p, { read: true });
    try {
      const buffer = new Uint8Array(window);
      for (let i = 1; i < parts; i++) {
        const target = Math.floor((size * i) / parts);
        const from = Math.max(cuts[cuts.length - 1], target - window);
        if (target - from < 2) continue;
        file.seekSync(from, Deno.SeekMode.Start);
        let filled = 0;
        while (filled < target - from) {
          const got = file.readSync(buffer.subarray(filled, target - from));
          if (got === null || got === 0) break;
          filled += got;
        }
        const cut = findSafeCut(buffer, filled, specials, window);
        if (cut > 0 && from + cut > cuts[cuts.length - 1]) cuts.push(from + cut);
      }
    } finally {
      file.close();
    }
    cuts.push(size);
    for (let i = 0; i + 1 < cuts.length; i++) {
      if (cuts[i + 1] > cuts[i]) ranges.push({ path, start: cuts[i], end: cuts[i + 1] });
    }
  }
  return ranges;
}

/** The path of a `file:` URL (ranges are sent to Workers, which cannot receive URL objects). */
function fileUrlToPath(url: URL): string {
  if (url.protocol !== "file:") throw new TypeError(`Input must be a file path or file: URL, got ${url.href}`);
  const path = decodeURIComponent(url.pathname);
  return /^\/[A-Za-z]:\//.test(path) ? path.slice(1) : path;
}

/**
 * Counts the pre-tokens of files (word -> count), in parallel Workers when `workers > 1`.
 *
 * @example
 * ```ts
 * import { countPretokens } from "@nanolm/nanolm/data";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/corpus.txt`, "the cat<|endoftext|>the dog");
 * const counts = countPretokens([`${dir}/corpus.txt`], { specialTokens: ["<|endoftext|>"], workers: 1 });
 * if (counts.get("the") !== 2 || counts.get(" cat") !== 1 || counts.size !== 3) throw new Error(JSON.stringify([...counts]));
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function countPretokens(
  paths: ReadonlyArray<string | URL>,
  options: ParallelCountOptions = {},
): Map<string, number> {
  const specialTokens = options.specialTokens ?? [];
  const workers = Math.max(1, Math.floor(options.workers ?? 1));
  const ranges = splitFiles(paths, workers, specialTokens);
  const totalBytes = ranges.reduce((sum, r) => sum + r.end - r.start, 0);
  const bar = options.progress
    ? new ProgressBar(totalBytes / 1e6, { label: "pre-tokenize", unit: "MB", ...options.progress })
    : null;
  let counts: Map<string, number>;
  if (workers <= 1 || ranges.length <= 1) {
    const counter = new PretokenCounter();
    let before = 0;
    for (const range of ranges) {
      countPretokensOfFile(range.path, counter, {
        specialTokens,
        start: range.start,
        end: range.end,
        onProgress: (done) => bar?.update((before + done) / 1e6),
      });
      before += range.end - range.start;
    }
    counts = counter.toMap();
  } else {
    counts = countInWorkers(ranges, workers, specialTokens, bar);
  }
  bar?.done();
  return counts;
}

interface WorkerSlot {
  worker: Worker;
  control: Int32Array;
  result: SharedArrayBuffer;
}

function countInWorkers(
  ranges: FileRange[],
  workers: number,
  specialTokens: readonly string[],
  bar: ProgressBar | null,
): Map<string, number> {
  // Balance by bytes: ranges are already about equal, so deal them round-robin.
  const jobs: FileRange[][] = Array.from({ length: Math.min(workers, ranges.length) }, () => []);
  ranges.forEach((range, i) => jobs[i % jobs.length].push(range));
  // The calling thread takes the first share itself (it would only wait otherwise); Workers take the rest.
  const [own, ...others] = jobs;
  const slots: WorkerSlot[] = others.map((job) => {
    const worker = new Worker(new URL("./pretoken_worker.ts", import.meta.url), { type: "module" });
    const control = new Int32Array(new SharedArrayBuffer(16));
    const result = new SharedArrayBuffer(0, { maxByteLength: 2 ** 31 });
    worker.postMessage({ ranges: job, specialTokens, control: control.buffer, result });
    return { worker, control, result };
  });
  try {
    const workersDone = () => {
      let done = 0;
      for (const s of slots) {
        done += Atomics.load(s.control, CONTROL_DONE_HIGH) * 2 ** 32 +
          (Atomics.load(s.control, CONTROL_DONE_LOW) >>> 0);
      }
      return done;
    };
    const ownCounts = new PretokenCounter();
    let before = 0;
    for (const range of own) {
      countPretokensOfFile(range.path, ownCounts, {
        specialTokens,
        start: range.start,
        end: range.end,
        onProgress: (done) => bar?.update((before + done + workersDone()) / 1e6),
      });
      before += range.end - range.start;
    }
    const started = performance.now();
    for (const slot of slots) {
      for (;;) {
        const state = Atomics.load(slot.control, CONTROL_STATE);
        if (state === STATE_FINISHED || state === STATE_FAILED) break;
        if (state === STATE_WAITING && performance.now() - started > 120_000) {
          throw new Error("Pre-tokenization worker did not start within 120 s");
        }
        Atomics.wait(slot.control, CONTROL_STATE, state, 200);
        bar?.update((before + workersDone()) / 1e6);
      }
    }
    const counts = ownCounts.toMap();
    for (const slot of slots) {
      const length = Atomics.load(slot.control, CONTROL_LENGTH);
      const bytes = new Uint8Array(slot.result, 0, length).slice();
      if (Atomics.load(slot.control, CONTROL_STATE) === STATE_FAILED) {
        throw new Error(`Pre-tokenization worker failed: ${new TextDecoder().decode(bytes)}`);
      }
      mergeSerializedCounts(bytes, counts);
    }
    return counts;
  } finally {
    for (const slot of slots) slot.worker.terminate();
  }
}

/**
 * Serializes counts as `[n: u32][pad][counts: f64 x n][lengths: u32 x n][UTF-8 of the joined words]`.
 *
 * @example
 * ```ts
 * import { mergeSerializedCounts, serializeCounts } from "./corpus_counts.ts";
 * const back = new Map<string, number>();
 * mergeSerializedCounts(serializeCounts(new Map([["a", 2], [" b", 3]])), back);
 * if (back.get("a") !== 2 || back.get(" b") !== 3) throw new Error(JSON.stringify([...back]));
 * ```
 */
export function serializeCounts(counts: ReadonlyMap<string, number>): Uint8Array {
  const n = counts.size;
  const words = [...counts.keys()];
  const text = new TextEncoder().encode(words.join(""));
  const out = new Uint8Array(8 + 12 * n + text.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, n, true);
  let i = 0;
  for (const [word, count] of counts) {
    view.setFloat64(8 + 8 * i, count, true);
    view.setUint32(8 + 8 * n + 4 * i, word.length, true);
    i++;
  }
  out.set(text, 8 + 12 * n);
  return out;
}

/**
 * Adds counts serialized by {@linkcode serializeCounts} into `counts`.
 *
 * @example
 * ```ts
 * import { mergeSerializedCounts, serializeCounts } from "./corpus_counts.ts";
 * const counts = new Map([["the", 1]]);
 * mergeSerializedCounts(serializeCounts(new Map([["the", 2], [" cat", 1]])), counts);
 * if (counts.get("the") !== 3 || counts.get(" cat") !== 1) throw new Error(JSON.stringify([...counts]));
 * ```
 */
export function mergeSerializedCounts(bytes: Uint8Array, counts: Map<string, number>): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getUint32(0, true);
  const text = new TextDecoder().decode(bytes.subarray(8 + 12 * n));
  let at = 0;
  for (let i = 0; i < n; i++) {
    const count = view.getFloat64(8 + 8 * i, true);
    const length = view.getUint32(8 + 8 * n + 4 * i, true);
    const word = text.slice(at, at += length);
    counts.set(word, (counts.get(word) ?? 0) + count);
  }
}

/** Options of {@linkcode countPretokensOfFile}. */
export interface CountOptions {
  /** Special tokens to split out (not counted). */
  specialTokens?: readonly string[];
  /** Bytes read per block. */
  blockBytes?: number;
  /** Byte range of the file to count, `[start, end)`; the whole file by default. */
  start?: number;
  /** End of the byte range (exclusive). */
  end?: number;
  /** Called after each block with the number of bytes done so far in the range. */
  onProgress?: (bytesDone: number) => void;
}

/**
 * Counts the pre-tokens of a file (or a byte range of it that starts and ends at safe cuts), reading it in blocks
 * so that memory stays at one block plus the counts.
 *
 * @example
 * ```ts
 * import { countPretokensOfFile } from "@nanolm/nanolm/data";
 * import { PretokenCounter } from "@nanolm/nanolm/tokenizer";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/corpus.txt`, "a cat<|endoftext|>".repeat(2000));
 * const counts = countPretokensOfFile(`${dir}/corpus.txt`, new PretokenCounter(), {
 *   specialTokens: ["<|endoftext|>"],
 *   blockBytes: 4096, // small blocks: pre-tokens and special tokens across block edges still count once
 * }).toMap();
 * if (counts.get(" cat") !== 2000 || counts.get("a") !== 2000 || counts.size !== 2) throw new Error(JSON.stringify([...counts]));
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function countPretokensOfFile(
  path: string | URL,
  counts: PretokenCounter,
  options: CountOptions = {},
): PretokenCounter {
  const specials = options.specialTokens ?? [];
  const pattern = specialTokenPattern(specials);
  const specialBytes = specials.map((s) => new TextEncoder().encode(s));
  const file = Deno.openSync(path, { read: true });
  try {
    const start = options.start ?? 0;
    const end = options.end ?? file.statSync().size;
    file.seekSync(start, Deno.SeekMode.Start);
    let buffer = new Uint8Array(Math.max(1024, Math.min(options.blockBytes ?? 1 << 23, end - start)));
    const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
    let filled = 0, done = 0;
    while (done + filled < end - start) {
      if (filled === buffer.length) {
        // No safe cut in a whole block (e.g. no ASCII whitespace at all): grow rather than cut unsafely.
        const bigger = new Uint8Array(buffer.length * 2);
        bigger.set(buffer);
        buffer = bigger;
      }
      const want = Math.min(buffer.length - filled, end - start - done - filled);
      const got = file.readSync(buffer.subarray(filled, filled + want));
      if (got === null || got === 0) break;
      filled += got;
      const atEnd = done + filled >= end - start;
      const cut = atEnd ? filled : findSafeCut(buffer, filled, specialBytes);
      if (cut <= 0) continue;
      countPretokensOfText(decoder.decode(buffer.subarray(0, cut)), counts, pattern);
      buffer.copyWithin(0, cut, filled);
      filled -= cut;
      done += cut;
      options.onProgress?.(done);
    }
    if (filled > 0) {
      countPretokensOfText(decoder.decode(buffer.subarray(0, filled)), counts, pattern);
      options.onProgress?.(done + filled);
    }
  } finally {
    file.close();
  }
  return counts;
}

/**
 * Encoding a text file into a token file: raw little-endian token ids with no header, uint16 when the vocabulary
 * fits (ids < 65536), uint32 when the output name ends in `.u32` (the nanoGPT convention the data loader follows).
 * Large files are cut at safe places and encoded by parallel Workers, each streaming its part.
 *
 * @module
 */

import { type TokenDtype, tokenDtypeForPath } from "./token_files.ts";
import { ProgressBar, type ProgressBarOptions } from "../util/progress.ts";
import { splitFiles } from "./corpus_counts.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

/** Element type of a token file. */

/** Options of {@linkcode encodeFile}. */
export interface EncodeFileOptions {
  /** Worker threads; by default one per core for inputs over 16 MB, else none. */
  workers?: number;
  /** Show a progress bar (MB/s); pass options to customise it. */
  progress?: boolean | ProgressBarOptions;
  /** Bytes read at a time per thread. */
  blockBytes?: number;
}

/** What {@linkcode encodeFile} wrote. */
export interface EncodeFileResult {
  /** Number of tokens written. */
  tokens: number;
  /** Bytes of text read. */
  textBytes: number;
  /** Element type of the output. */
  dtype: TokenDtype;
  /** Wall-clock seconds. */
  seconds: number;
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("Token files are little-endian; this big-endian platform is not supported");
}

/** Converts ids to the bytes of a token file. */
function idsToBytes(ids: number[], dtype: TokenDtype): Uint8Array {
  const array = dtype === "uint16" ? Uint16Array.from(ids) : Uint32Array.from(ids);
  return new Uint8Array(array.buffer);
}

/**
 * Encodes `[start, end)` of a text file (a range cut at safe places) and writes the ids to `output`, streaming in
 * blocks; returns the number of tokens.
 *
 * @example
 * ```ts
 * import { Tokenizer } from "@nanolm/nanolm";
 * import { encodeRange } from "./encode_file.ts";
 * const tokenizer = new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), []);
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/corpus.txt`, "hello world\n".repeat(100));
 * {
 *   using out = await Deno.open(`${dir}/part.bin`, { write: true, create: true });
 *   const tokens = await encodeRange(`${dir}/corpus.txt`, out, tokenizer, { start: 0, end: 12, dtype: "uint16" });
 *   if (tokens !== 12) throw new Error(`${tokens} tokens`); // the bytes of the first line
 * }
 * const ids = new Uint16Array((await Deno.readFile(`${dir}/part.bin`)).buffer);
 * if (tokenizer.decode(ids) !== "hello world\n") throw new Error("wrong ids");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function encodeRange(
  path: string | URL,
  output: Deno.FsFile,
  tokenizer: Tokenizer,
  options: { start: number; end: number; dtype: TokenDtype; blockBytes?: number; onProgress?: (bytes: number) => void },
): Promise<number> {
  const input = await Deno.open(path, { read: true });
  try {
    await input.seek(options.start, Deno.SeekMode.Start);
    const buffer = new Uint8Array(options.blockBytes ?? 1 << 22);
    const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
    let remaining = options.end - options.start, pending = "", tokens = 0, retryAt = 0;
    const write = async (ids: number[]) => {
      if (ids.length === 0) return;
      tokens += ids.length;
      const bytes = idsToBytes(ids, options.dtype);
      for (let at = 0; at < bytes.length;) at += await output.write(bytes.subarray(at));
    };
    while (remaining > 0) {
      const got = await input.read(buffer.subarray(0, Math.min(buffer.length, remaining)));
      if (got === null || got === 0) break;
      remaining -= got;
      pending += decoder.decode(buffer.subarray(0, got), { stream: true });
      options.onProgress?.(options.end - options.start - remaining);
      if (pending.length < retryAt) continue;
      const ids: number[] = [];
      const used = tokenizer.encodePrefix(pending, ids);
      pending = pending.slice(used);
      retryAt = used === 0 ? pending.length * 2 : 0;
      await write(ids);
    }
    pending += decoder.decode();
    const ids: number[] = [];
    tokenizer.encodePrefix(pending, ids, { final: true });
    await write(ids);
    return tokens;
  } finally {
    input.close();
  }
}

/**
 * Encodes a text file into a token file (raw little-endian ids, no header): uint32 if `outputPath` ends in
 * `.u32`, else uint16, which needs every id below 65536. Uses Workers on large inputs and shows a progress bar
 * when asked.
 *
 * @example
 * ```ts
 * import { TokenDataset, Tokenizer } from "@nanolm/nanolm";
 * import { encodeFile } from "@nanolm/nanolm/data";
 * const tokenizer = new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), []);
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/train.txt`, "hello world\n".repeat(100));
 * const { tokens } = await encodeFile(`${dir}/train.txt`, `${dir}/train.bin`, tokenizer); // progress: true for a bar
 * using data = await TokenDataset.open(`${dir}/train.bin`);
 * if (tokens !== 1200 || data.length !== 1200 || data.dtype !== "uint16") throw new Error(`${tokens} tokens`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function encodeFile(
  inputPath: string | URL,
  outputPath: string | URL,
  tokenizer: Tokenizer,
  options: EncodeFileOptions = {},
): Promise<EncodeFileResult> {
  const started = performance.now();
  const dtype = tokenDtypeForPath(String(outputPath));
  if (dtype === "uint16" && tokenizer.vocabSize > 65536) {
    throw new RangeError(
      `Vocab size ${tokenizer.vocabSize} does not fit uint16 token file ${String(outputPath)}; ` +
        `name it *.u32 for uint32 ids`,
    );
  }
  let size: number;
  try {
    size = (await Deno.stat(inputPath)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Deno.errors.NotFound(`Input file not found: ${String(inputPath)}`);
    throw e;
  }
  const workers = Math.max(1, Math.floor(options.workers ?? (size > 16 << 20 ? navigator.hardwareConcurrency : 1)));
  const barOptions = options.progress === true ? {} : options.progress || null;
  const bar = barOptions ? new ProgressBar(size / 1e6, { label: "encode", unit: "MB", ...barOptions }) : null;
  const ranges = splitFiles([inputPath], workers, [...tokenizer.specialTokens.keys()]);
  const output = await Deno.open(outputPath, { write: true, create: true, truncate: true });
  let tokens = 0;
  try {
    if (workers <= 1 || ranges.length <= 1) {
      for (const range of ranges) {
        tokens += await encodeRange(range.path, output, tokenizer, {
          start: range.start,
          end: range.end,
          dtype,
          blockBytes: options.blockBytes,
          onProgress: (done) => bar?.update((range.start + done) / 1e6),
        });
      }
    } else {
      tokens = await encodeInWorkers(ranges, output, tokenizer, dtype, options.blockBytes, bar);
    }
  } finally {
    output.close();
  }
  bar?.done();
  return { tokens, textBytes: size, dtype, seconds: (performance.now() - started) / 1000 };
}

async function encodeInWorkers(
  ranges: Array<{ path: string; start: number; end: number }>,
  output: Deno.FsFile,
  tokenizer: Tokenizer,
  dtype: TokenDtype,
  blockBytes: number | undefined,
  bar: ProgressBar | null,
): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "nanolm-encode-" });
  try {
    const snapshot = tokenizer.snapshot();
    const done = new Array<number>(ranges.length).fill(0);
    const showProgress = () => bar?.update(done.reduce((a, b) => a + b, 0) / 1e6);
    const workers: Worker[] = [];
    // Workers take ranges 1..n into part files; this thread encodes range 0 straight into the output meanwhile.
    const others = Promise.all(
      ranges.slice(1).map((range, k) =>
        new Promise<number>((resolve, reject) => {
          const i = k + 1;
          const worker = new Worker(new URL("./encode_worker.ts", import.meta.url), { type: "module" });
          workers.push(worker);
          worker.onmessage = (event: MessageEvent) => {
            const message = event.data as { progress?: number; tokens?: number; error?: string };
            if (message.progress !== undefined) {
              done[i] = message.progress;
              showProgress();
            } else {
              worker.terminate();
              if (message.error !== undefined) reject(new Error(`Encoding worker failed: ${message.error}`));
              else resolve(message.tokens!);
            }
          };
          worker.onerror = (event) => {
            event.preventDefault();
            worker.terminate();
            reject(new Error(`Encoding worker failed: ${event.message}`));
          };
          worker.postMessage({ snapshot, range, partPath: `${dir}/part${i}`, dtype, blockBytes });
        })
      ),
    );
    others.catch(() => {}); // awaited below; this only keeps an early rejection from being reported as unhandled
    let counts: number[];
    try {
      const own = await encodeRange(ranges[0].path, output, tokenizer, {
        start: ranges[0].start,
        end: ranges[0].end,
        dtype,
        blockBytes,
        onProgress: (progress) => {
          done[0] = progress;
          showProgress();
        },
      });
      counts = [own, ...await others];
    } finally {
      for (const worker of workers) worker.terminate();
    }
    for (let i = 1; i < ranges.length; i++) {
      const part = await Deno.open(`${dir}/part${i}`, { read: true });
      await part.readable.pipeTo(output.writable, { preventClose: true });
    }
    return counts.reduce((a, b) => a + b, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

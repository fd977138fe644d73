/**
 * Token files and batches for language-model training.
 *
 * A token file is a flat array of little-endian unsigned integers with no header: `uint16` by default, `uint32`
 * when the file name ends in `.u32` (for vocabularies above 65536). Files of many gigabytes are read by seeking to
 * the windows a batch needs, never loaded whole; small files are cached in memory for speed.
 *
 * Batches follow CS336 `get_batch`: each of the B rows starts at a uniformly random offset s in [0, n − T − 1],
 * `inputs` are tokens s..s+T−1 and `targets` tokens s+1..s+T.
 *
 * @module
 */
import { writeFileAtomic } from "../io/atomic_write.ts";
import { Rng, type RngState } from "../util/random.ts";

/** Element type of a token file. */
export type TokenDtype = "uint16" | "uint32";

/** A batch of B sequences of T tokens, row-major (B·T each). */
export interface TokenBatch {
  /** Input ids, `inputs[b * T + t]`. */
  inputs: Int32Array;
  /** Next-token targets: `targets[b * T + t]` is the token after `inputs[b * T + t]`. */
  targets: Int32Array;
  /** B. */
  batchSize: number;
  /** T. */
  contextLength: number;
}

/** Options of {@linkcode TokenDataset.open}. */
export interface TokenDatasetOptions {
  /** Element type; by default `uint32` if the name ends in `.u32`, otherwise `uint16`. */
  dtype?: TokenDtype;
  /** Files up to this many bytes are read into memory once (default 64 MiB); 0 always reads from disk. */
  cacheLimitBytes?: number;
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  // Tokens are reinterpreted from file bytes with typed arrays, which use the platform's byte order.
  throw new Error("data.ts needs a little-endian platform");
}

/**
 * The token type a file name implies: `uint32` for names ending in `.u32`, otherwise `uint16`.
 *
 * @example
 * ```ts
 * import { tokenDtypeForPath } from "@nanolm/nanolm/data";
 * if (tokenDtypeForPath("owt_train.u32") !== "uint32") throw new Error(".u32 holds uint32 ids");
 * if (tokenDtypeForPath("tinystories_train.bin") !== "uint16") throw new Error("anything else holds uint16 ids");
 * ```
 */
export function tokenDtypeForPath(path: string): TokenDtype {
  return path.endsWith(".u32") ? "uint32" : "uint16";
}

function bytesPerToken(dtype: TokenDtype): number {
  if (dtype !== "uint16" && dtype !== "uint32") {
    throw new TypeError(`Token dtype must be "uint16" or "uint32", got ${JSON.stringify(dtype)}`);
  }
  return dtype === "uint16" ? 2 : 4;
}

/**
 * A token file opened for random and sequential reads.
 *
 * @example
 * ```ts
 * import { Rng, TokenDataset, writeTokenFile } from "@nanolm/nanolm";
 * const dir = await Deno.makeTempDir();
 * await writeTokenFile(`${dir}/train.bin`, Array.from({ length: 100 }, (_, i) => i));
 * using ds = await TokenDataset.open(`${dir}/train.bin`);
 * const { inputs, targets } = await ds.sampleBatch(new Rng(0), 4, 8); // 4 windows of 8 tokens
 * // The targets are the inputs shifted by one token.
 * if (inputs.length !== 32 || targets[0] !== inputs[0] + 1 || targets[31] !== inputs[31] + 1) throw new Error("bad batch");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class TokenDataset {
  /** The file path. */
  readonly path: string;
  /** The element type. */
  readonly dtype: TokenDtype;
  /** Number of tokens in the file. */
  readonly length: number;
  #file: Deno.FsFile | null;
  #cache: Uint16Array | Uint32Array | null;

  private constructor(
    path: string,
    dtype: TokenDtype,
    length: number,
    file: Deno.FsFile | null,
    cache: Uint16Array | Uint32Array | null,
  ) {
    this.path = path;
    this.dtype = dtype;
    this.length = length;
    this.#file = file;
    this.#cache = cache;
  }

  /** Opens a token file; errors name the file when it is missing, empty, or not a whole number of tokens. */
  static async open(path: string, options: TokenDatasetOptions = {}): Promise<TokenDataset> {
    const dtype = options.dtype ?? tokenDtypeForPath(path);
    const width = bytesPerToken(dtype);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new Error(`Token file ${path} does not exist`, { cause: e });
      throw new Error(`Token file ${path} cannot be opened: ${(e as Error).message}`, { cause: e });
    }
    if (!(await file.stat()).isFile) {
      file.close();
      throw new Error(`Token file ${path} is not a file (a directory?): pass the path of a .bin or .u32 token file`);
    }
    try {
      const size = (await file.stat()).size;
      if (size % width !== 0) {
        throw new Error(
          `Token file ${path} has ${size} bytes, not a multiple of ${width} (${dtype} tokens): wrong dtype or truncated?`,
        );
      }
      if (size === 0) throw new Error(`Token file ${path} is empty`);
      const length = size / width;
      if (size <= (options.cacheLimitBytes ?? 64 * 1024 * 1024)) {
        const bytes = await readAt(file, 0, size, path);
        file.close();
        const cache = dtype === "uint16"
          ? new Uint16Array(bytes.buffer, 0, length)
          : new Uint32Array(bytes.buffer, 0, length);
        return new TokenDataset(path, dtype, length, null, cache);
      }
      return new TokenDataset(path, dtype, length, file, null);
    } catch (e) {
      try {
        file.close();
      } catch { /* already closed */ }
      throw e;
    }
  }

  /** Whether the whole file is held in memory. */
  get inMemory(): boolean {
    return this.#cache !== null;
  }

  /** Reads `count` tokens starting at token `start`. */
  async readTokens(start: number, count: number): Promise<Int32Array> {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 0) {
      throw new RangeError(`Token range must be non-negative integers, got start ${start}, count ${count}`);
    }
    if (start + count > this.length) {
      throw new RangeError(
        `Token range [${start}, ${start + count}) is past the end of ${this.path} (${this.length} tokens)`,
      );
    }
    if (this.#cache) return Int32Array.from(this.#cache.subarray(start, start + count));
    if (!this.#file) throw new Error(`Token file ${this.path} is closed`);
    const width = bytesPerToken(this.dtype);
    const bytes = await readAt(this.#file, start * width, count * width, this.path);
    return Int32Array.from(this.dtype === "uint16" ? new Uint16Array(bytes.buffer) : new Uint32Array(bytes.buffer));
  }

  /**
   * A random batch, CS336 `get_batch`: for each row b in order, `s = rng.int(n − T)` (uniform in [0, n − T − 1]),
   * inputs are tokens s..s+T−1, targets s+1..s+T. The same generator state gives the same batch.
   */
  async sampleBatch(rng: Rng, batchSize: number, contextLength: number): Promise<TokenBatch> {
    this.#checkShape(batchSize, contextLength);
    const T = contextLength;
    const inputs = new Int32Array(batchSize * T), targets = new Int32Array(batchSize * T);
    const starts = Array.from({ length: batchSize }, () => rng.int(this.length - T));
    for (let b = 0; b < batchSize; b++) {
      const window = await this.readTokens(starts[b], T + 1);
      inputs.set(window.subarray(0, T), b * T);
      targets.set(window.subarray(1), b * T);
    }
    return { inputs, targets, batchSize, contextLength };
  }

  /**
   * Consecutive non-overlapping batches from the start of the file, for validation: row r of the whole sequence of
   * rows covers tokens r·T .. r·T+T (its targets shifted by one). Stops at the last full batch, or after
   * `maxBatches`.
   */
  async *sequentialBatches(
    batchSize: number,
    contextLength: number,
    options: { maxBatches?: number } = {},
  ): AsyncGenerator<TokenBatch> {
    this.#checkShape(batchSize, contextLength);
    const T = contextLength;
    const rows = Math.floor((this.length - 1) / T);
    const total = Math.min(Math.floor(rows / batchSize), options.maxBatches ?? Infinity);
    for (let i = 0; i < total; i++) {
      const first = i * batchSize * T;
      const span = await this.readTokens(first, batchSize * T + 1);
      yield { inputs: span.slice(0, batchSize * T), targets: span.slice(1), batchSize, contextLength };
    }
  }

  /**
   * The largest token id in the file (one pass over it, in chunks for files not held in memory). The trainer checks
   * it against the model's vocabulary before the first step: the embedding reads no row for an id past its end, so
   * such ids would otherwise train silently into NaN.
   */
  async maxTokenId(): Promise<number> {
    const chunk = 1 << 22;
    let max = 0;
    for (let start = 0; start < this.length; start += chunk) {
      const ids = this.#cache
        ? this.#cache.subarray(start, Math.min(start + chunk, this.length))
        : await this.readTokens(start, Math.min(chunk, this.length - start));
      // `>>> 0`: uint32 ids above 2^31 come back negative through readTokens' Int32Array.
      for (let i = 0; i < ids.length; i++) if (ids[i] >>> 0 > max) max = ids[i] >>> 0;
    }
    return max;
  }

  /**
   * Consecutive non-overlapping rows of `contextLength` tokens from the start of the file, `batchSize` rows a batch
   * and a last, shorter batch when the rows run out: every file of at least `contextLength + 1` tokens gives at least
   * one batch (a validation split may be smaller than one full batch). At most `maxBatches` batches.
   */
  async *evaluationBatches(
    batchSize: number,
    contextLength: number,
    maxBatches = Infinity,
  ): AsyncGenerator<TokenBatch> {
    this.#checkShape(batchSize, contextLength);
    const T = contextLength, rows = Math.floor((this.length - 1) / T);
    for (let first = 0, n = 0; first < rows && n < maxBatches; first += batchSize, n++) {
      const B = Math.min(batchSize, rows - first);
      const span = await this.readTokens(first * T, B * T + 1);
      yield { inputs: span.slice(0, B * T), targets: span.slice(1), batchSize: B, contextLength };
    }
  }

  /** Number of full batches {@linkcode TokenDataset.sequentialBatches} yields. */
  sequentialBatchCount(batchSize: number, contextLength: number): number {
    this.#checkShape(batchSize, contextLength);
    return Math.floor(Math.floor((this.length - 1) / contextLength) / batchSize);
  }

  #checkShape(batchSize: number, contextLength: number): void {
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`Batch size must be a positive integer, got ${batchSize}`);
    }
    if (!Number.isSafeInteger(contextLength) || contextLength < 1) {
      throw new RangeError(`Context length must be a positive integer, got ${contextLength}`);
    }
    if (this.length < contextLength + 1) {
      throw new Error(
        `Token file ${this.path} has ${this.length} tokens, fewer than context length + 1 = ${contextLength + 1}`,
      );
    }
  }

  /** Closes the file. */
  close(): void {
    this.#file?.close();
    this.#file = null;
    this.#cache = null;
  }

  /** Closes the file (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** The resumable state of a {@linkcode RandomBatchSampler}: JSON, stored as a checkpoint's data position. */
export interface SamplerState {
  /** State of the sampler's own generator. */
  rng: RngState;
  /** Batches drawn so far. */
  batches: number;
}

/** Options of {@linkcode RandomBatchSampler}. */
export interface RandomBatchSamplerOptions {
  /** Sequences per batch. */
  batchSize: number;
  /** Tokens per sequence. */
  contextLength: number;
  /** Seed of the sampler's generator (ignored when `state` is given). */
  seed?: number;
  /** A state from {@linkcode RandomBatchSampler.state} to resume from. */
  state?: SamplerState;
}

/**
 * Random training batches from a {@linkcode TokenDataset} with a generator of their own, so that the data
 * position of a run is one small JSON value: resuming from `state()` yields exactly the batches that would have
 * followed.
 *
 * @example
 * ```ts
 * import { TokenDataset, writeTokenFile } from "@nanolm/nanolm";
 * import { RandomBatchSampler } from "@nanolm/nanolm/data";
 * const dir = await Deno.makeTempDir();
 * await writeTokenFile(`${dir}/train.bin`, Array.from({ length: 50 }, (_, i) => i % 7));
 * using ds = await TokenDataset.open(`${dir}/train.bin`);
 * const sampler = new RandomBatchSampler(ds, { batchSize: 2, contextLength: 4, seed: 1 });
 * await sampler.next();
 * const resumed = new RandomBatchSampler(ds, { batchSize: 2, contextLength: 4, state: sampler.state() });
 * // A sampler restored from a saved state draws the batches the original would have.
 * if ((await sampler.next()).inputs.join() !== (await resumed.next()).inputs.join()) throw new Error("diverged");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class RandomBatchSampler {
  /** The dataset sampled. */
  readonly dataset: TokenDataset;
  /** Sequences per batch. */
  readonly batchSize: number;
  /** Tokens per sequence. */
  readonly contextLength: number;
  #rng: Rng;
  #batches: number;

  /** Creates a sampler from a seed or a saved state. */
  constructor(dataset: TokenDataset, options: RandomBatchSamplerOptions) {
    this.dataset = dataset;
    this.batchSize = options.batchSize;
    this.contextLength = options.contextLength;
    if (options.state) {
      if (!Number.isSafeInteger(options.state.batches) || options.state.batches < 0) {
        throw new RangeError(`Sampler state batches must be a non-negative integer, got ${options.state.batches}`);
      }
      this.#rng = Rng.fromState(options.state.rng);
      this.#batches = options.state.batches;
    } else {
      this.#rng = new Rng(options.seed ?? 0);
      this.#batches = 0;
    }
    // Fail at construction, not at the first step, if the file is shorter than a sequence.
    dataset.sequentialBatchCount(1, this.contextLength);
  }

  /** The next random batch. */
  async next(): Promise<TokenBatch> {
    const batch = await this.dataset.sampleBatch(this.#rng, this.batchSize, this.contextLength);
    this.#batches++;
    return batch;
  }

  /** The state to resume from (a copy; JSON-serialisable). */
  state(): SamplerState {
    return { rng: this.#rng.state(), batches: this.#batches };
  }
}

/**
 * Writes token ids to a token file (little-endian, no header; dtype from the name unless given), atomically. Throws
 * if an id does not fit the dtype, before anything is written.
 *
 * @example
 * ```ts
 * import { TokenDataset, writeTokenFile } from "@nanolm/nanolm";
 * const dir = await Deno.makeTempDir();
 * await writeTokenFile(`${dir}/train.u32`, [70000, 1, 2]); // ids past 65535 need .u32
 * using ds = await TokenDataset.open(`${dir}/train.u32`);
 * if (ds.dtype !== "uint32" || (await ds.readTokens(0, 3)).join() !== "70000,1,2") throw new Error("wrong ids");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeTokenFile(
  path: string,
  tokens: ArrayLike<number>,
  options: { dtype?: TokenDtype } = {},
): Promise<void> {
  const dtype = options.dtype ?? tokenDtypeForPath(path);
  const max = dtype === "uint16" ? 0xffff : 0xffffffff;
  bytesPerToken(dtype);
  const out = dtype === "uint16" ? new Uint16Array(tokens.length) : new Uint32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t > max) {
      throw new RangeError(`Token ${t} at index ${i} does not fit a ${dtype} token file (${path})`);
    }
    out[i] = t;
  }
  const bytes = new Uint8Array(out.buffer);
  await writeFileAtomic(path, async (file) => {
    for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
  });
}

async function readAt(file: Deno.FsFile, offset: number, size: number, path: string): Promise<Uint8Array> {
  await file.seek(offset, Deno.SeekMode.Start);
  const out = new Uint8Array(size);
  let done = 0;
  while (done < size) {
    const got = await file.read(out.subarray(done));
    if (got === null) throw new Error(`Token file ${path} ended early at byte ${offset + done} (changed on disk?)`);
    done += got;
  }
  return out;
}

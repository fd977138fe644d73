/**
 * A GPU-resident, KV-cached decode loop for a {@linkcode TransformerLM}.
 *
 * - The cache: per layer, K and V buffers (batch, heads, contextLength, headDim), allocated once. A prefill runs
 *   the model's ordinary forward over the (right-padded) prompts and copies each layer's keys and values into the
 *   cache; each decode step then runs the model's own `decodeStep` on one token per sequence at its own position,
 *   which appends k and v in place. Nothing is allocated per step, so GPU memory is flat over a generation.
 * - Positions live on the GPU (a small `state` buffer, advanced by the sampling kernel), so a step is the same
 *   list of dispatches every time: it is recorded once (`Backend.record`: each bind group built once, each
 *   kernel compiled once) and replayed per step, with no upload and no readback. Sequences of different lengths
 *   decode together: each attends to its own prefix.
 * - Sampling happens on the GPU ({@linkcode sampleKernel}) and writes the next id into the buffer the next step's
 *   embedding reads, plus a ring of recent ids that the host reads back in batches while the GPU runs ahead.
 *
 * The decoder knows nothing of the block's structure: the model's layers define their decode steps beside their
 * forwards (a pre-norm block is ~5 dispatches: fused RMSNorm + q/k/v + RoPE + cache append, attention, output
 * projection + residual, RMSNorm + SwiGLU, down projection + residual). Several steps go into one submission.
 *
 * Positions must stay below the context length: the caller (see `generateStream`) re-prefills a window before a
 * sequence's next position would reach it.
 *
 * @module
 */
import { gatherKernel } from "../../kernels/copy.ts";
import type { KernelSource } from "../../kernels/common.ts";
import { lastRowsKernel, STATE_WORDS } from "../../kernels/decode.ts";
import { SAMPLE_WORKGROUP_BYTES, sampleKernel } from "../../kernels/sample.ts";
import { type Backend, gpu, type GpuBuffer, type KernelTiming, type Recording } from "../gpu/backend.ts";
import type { KvSink } from "../nn/attention.ts";
import { DecodeWorkspace, type LayerKvCache } from "../nn/decode.ts";
import type { TransformerLM } from "../nn/transformer.ts";
import { noGrad, slice, type Tensor, tensor, tidy } from "../tensor/mod.ts";

/** Sampling settings of the GPU sampler. */
export interface GpuSamplingOptions {
  /** Softmax temperature; 0 means greedy (argmax, ties to the lower id). Default 1. */
  temperature?: number;
  /** Keep only the k most likely ids (0 or absent: all). */
  topK?: number;
  /** Keep the smallest prefix of most likely ids whose probability reaches p (1 or absent: all). */
  topP?: number;
  /** Seed of the counter-based generator (default 0). */
  seed?: number;
}

/** Options of the {@linkcode KvCacheDecoder} constructor. */
export interface KvCacheDecoderOptions {
  /** Sequences decoded together. */
  batch: number;
  /** Slots of the ring of sampled ids: the most steps recorded between two reads of {@linkcode KvCacheDecoder.readRing} (default 16). */
  ringSteps?: number;
  /** Keys the decode attention scores per tile (default `DECODE_ATTENTION_TILE`, 2048); small values test tiling. */
  attentionTile?: number;
  /**
   * Only ids below this are ever sampled (default: the model's vocabSize). A model whose vocabulary is larger than
   * its tokenizer's (e.g. padded to a multiple of 64) would otherwise produce ids the tokenizer cannot decode.
   */
  vocabLimit?: number;
}

/**
 * Converts sampling options to the 4 words the sampling kernel reads, validating them.
 *
 * @example
 * ```ts
 * import { samplingParams } from "./decoder.ts"; // internal to the sample layer: not exported by the package
 * const words = samplingParams({ temperature: 0, topK: 5 });
 * if (words[1] !== 0 || words[2] !== 5) throw new Error(`${words}`);
 * ```
 */
export function samplingParams(opts: GpuSamplingOptions): Uint32Array {
  const temperature = opts.temperature ?? 1, topK = opts.topK ?? 0, topP = opts.topP ?? 1, seed = opts.seed ?? 0;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`temperature must be a finite number >= 0, got ${temperature}`);
  }
  if (!Number.isInteger(topK) || topK < 0) throw new RangeError(`topK must be an integer >= 0, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${topP}`);
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  const words = new Uint32Array(4);
  // Both halves of a 53-bit seed matter.
  words[0] = (seed >>> 0) ^ Math.floor(Math.abs(seed) / 2 ** 32) ^ (seed < 0 ? 0x5bd1e995 : 0);
  new Float32Array(words.buffer, 4, 1)[0] = temperature;
  words[2] = Math.min(topK, 0xffffffff);
  new Float32Array(words.buffer, 12, 1)[0] = topP;
  return words;
}

/**
 * The KV cache and GPU decode loop of one model and batch size (see the module doc).
 *
 * @example
 * ```ts
 * import { initGpu } from "@nanolm/nanolm/tensor";
 * import { TransformerLM } from "@nanolm/nanolm/nn";
 * import { KvCacheDecoder } from "@nanolm/nanolm/sample";
 * await initGpu();
 * const model = new TransformerLM({ vocabSize: 32, contextLength: 16, dModel: 16, numLayers: 1, numHeads: 2 });
 * const dec = new KvCacheDecoder(model, { batch: 1 });
 * dec.setSampling({ temperature: 0 });
 * dec.prefill([[1, 2, 3]]); // samples the first new id
 * dec.step(4); // four more, no round trip
 * const ring = await dec.readRing(); // id of draw d at ring[(d % ringSteps) * batch + b]
 * if (dec.draws !== 5 || dec.positions[0] !== 7 || !ring.slice(0, 5).every((id) => id >= 0 && id < 32)) {
 *   throw new Error(`draws ${dec.draws}, positions ${dec.positions}, ring ${ring}`);
 * }
 * dec.dispose();
 * model.dispose();
 * ```
 */
export class KvCacheDecoder {
  /** Sequences decoded together. */
  readonly batch: number;
  /** Cache rows per sequence: the model's context length. */
  readonly maxLen: number;
  /** Slots of the ring of sampled ids. */
  readonly ringSteps: number;
  /** Ids below this are sampled, the rest never (see {@linkcode KvCacheDecoderOptions.vocabLimit}). */
  readonly vocabLimit: number;
  readonly #model: TransformerLM;
  readonly #backend: Backend;
  readonly #owned: GpuBuffer[] = [];
  readonly #caches: LayerKvCache[] = [];
  readonly #state: GpuBuffer;
  readonly #params: GpuBuffer;
  readonly #tokens: GpuBuffer;
  readonly #ring: GpuBuffer;
  readonly #info: GpuBuffer;
  readonly #logits: GpuBuffer;
  readonly #workspace: DecodeWorkspace;
  readonly #step: Recording;
  #draws = 0;
  readonly #positions: number[];
  readonly #retired: boolean[];
  #disposed = false;

  /** Allocates the cache and the state and sampling buffers, and records the decode step of `model`. */
  constructor(model: TransformerLM, options: KvCacheDecoderOptions) {
    const { batch: B, ringSteps: R, vocabLimit } = checkOptions(model, options);
    const c = model.config, H = c.numHeads, hd = c.dModel / H, L = c.contextLength;
    this.#model = model;
    this.#backend = gpu();
    this.batch = B;
    this.ringSteps = R;
    this.vocabLimit = vocabLimit;
    this.maxLen = L;
    this.#positions = new Array(B).fill(0);
    this.#retired = new Array(B).fill(false);
    const alloc = (bytes: number) => {
      const b = this.#backend.alloc(bytes);
      this.#owned.push(b);
      return b;
    };
    for (let i = 0; i < c.numLayers; i++) {
      this.#caches.push({ keys: alloc(B * H * L * hd * 4), values: alloc(B * H * L * hd * 4) });
    }
    this.#state = alloc(B * STATE_WORDS * 4);
    this.#backend.write(this.#state, new Uint32Array(B * STATE_WORDS));
    this.#params = alloc(16);
    this.#backend.write(this.#params, samplingParams({}));
    this.#tokens = alloc(B * 4);
    this.#ring = alloc(R * B * 4);
    this.#info = alloc(B * 16);
    // Logits of the sampled ids only: the head computes the first vocabLimit rows of its weight, the rest never.
    this.#logits = alloc(B * vocabLimit * 4);
    this.#workspace = new DecodeWorkspace({
      rows: B,
      maxLen: L,
      state: this.#state,
      attentionTile: options.attentionTile,
    });
    try {
      this.#step = this.#backend.record(() => {
        model.decodeStep(this.#tokens, this.#logits, this.#caches, this.#workspace, vocabLimit);
        this.#backend.run(this.#sampler(true), this.#samplerBuffers());
      });
    } catch (e) {
      this.#free();
      throw e;
    }
  }

  /** Number of ids sampled per sequence so far (prefills included). */
  get draws(): number {
    return this.#draws;
  }

  /** Each sequence's position of the next token to feed (its cache length), as tracked on the host (a live view). */
  get positions(): readonly number[] {
    return this.#positions;
  }

  /**
   * Marks a sequence as finished: its row keeps being computed (the batch steps together) but its position no
   * longer limits {@linkcode KvCacheDecoder.step}. Past the context length its cache writes are skipped and its
   * attention is clamped to the cache, so it only produces ids nobody reads.
   */
  retire(row: number): void {
    if (!Number.isInteger(row) || row < 0 || row >= this.batch) {
      throw new RangeError(`retire: row ${row} is outside [0, ${this.batch})`);
    }
    this.#retired[row] = true;
  }

  /** Dispatches of one decode step. */
  get dispatchesPerStep(): number {
    return this.#step.names.length;
  }

  /** Kernel name of each dispatch of one decode step, in order. */
  get stepKernels(): readonly string[] {
    return this.#step.names;
  }

  /** Sets temperature, top-k, top-p and seed for the following samples (validated; see {@linkcode samplingParams}). */
  setSampling(opts: GpuSamplingOptions): void {
    this.#check();
    this.#backend.write(this.#params, samplingParams(opts));
  }

  /**
   * Runs the prompts (one per sequence, 1 to contextLength ids each) through the model in one pass, fills the
   * cache, and samples each sequence's next id (draw number {@linkcode KvCacheDecoder.draws}). Replaces whatever
   * the cache held: a window of a longer sequence is re-prefilled this way, at positions from 0.
   */
  prefill(prompts: readonly (readonly number[])[]): void {
    this.#check();
    this.#checkPrompts(prompts);
    const B = this.batch, longest = Math.max(...prompts.map((p) => p.length));
    // Right padding is invisible to the real tokens under the causal mask; its cache rows are overwritten by
    // decode steps before any query can see them. Powers of two bound the distinct shapes (compilations).
    const P = Math.min(this.maxLen, 2 ** Math.ceil(Math.log2(longest)));
    const ids = new Int32Array(B * P);
    const state = new Uint32Array(B * STATE_WORDS);
    prompts.forEach((p, b) => {
      ids.set(p, b * P);
      state[b * STATE_WORDS] = p.length;
      state[b * STATE_WORDS + 1] = this.#draws;
    });
    this.#backend.write(this.#state, state);
    const sinks = this.#cacheSinks(P);
    tidy(() =>
      noGrad(() => {
        const full = this.#model.forward(tensor(ids, { shape: [B, P], dtype: "i32" }), { kvSinks: sinks });
        const limit = this.vocabLimit;
        const logits = limit < full.shape[2] ? slice(full, { axis: 2, start: 0, end: limit }) : full;
        this.#backend.run(lastRowsKernel(B, P, limit), [logits.buffer, this.#state, this.#logits]);
        this.#backend.run(this.#sampler(false), this.#samplerBuffers());
      })
    );
    this.#backend.flush();
    this.#draws++;
    prompts.forEach((p, b) => this.#positions[b] = p.length);
  }

  /**
   * Records `count` decode steps and submits them: each feeds every sequence's last sampled id at its position
   * and samples the next. Nothing waits on the GPU, and nothing is allocated or built: the recorded step is
   * replayed. The position of every sequence not retired must stay below the context length.
   */
  step(count = 1): void {
    this.#check();
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(`step: count must be an integer >= 0, got ${count}`);
    }
    if (count === 0) return;
    const worst = this.#furthest() + count - 1;
    if (worst >= this.maxLen) {
      throw new RangeError(
        `step: ${count} steps would feed position ${worst}, beyond the context length ${this.maxLen}; re-prefill a window`,
      );
    }
    this.#backend.flush();
    this.#backend.replay(this.#step, count);
    this.#backend.flush();
    this.#draws += count;
    for (let b = 0; b < this.batch; b++) this.#positions[b] += count;
  }

  /**
   * Runs one decode step with a GPU timestamp around each dispatch and returns the time per kernel name, in
   * dispatch order of first appearance (empty without the adapter's `timestamp-query` feature). Each dispatch
   * gets its own pass, so the sum exceeds a normal step's time by the pass overhead; the split is what it is for.
   */
  async profileStep(): Promise<KernelTiming[]> {
    this.#check();
    if (!this.#backend.info.timestamps) return [];
    const worst = this.#furthest();
    if (worst >= this.maxLen) throw new RangeError(`profileStep: position ${worst} is at the context length`);
    const timings = await this.#backend.profile(() => this.step(1));
    const order = this.#step.names;
    return timings.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
  }

  /**
   * Reads the ring of sampled ids back (one round trip; work recorded later does not change what it returns):
   * the id of draw `d` of sequence `b` is at `(d % ringSteps) * batch + b`, valid for the last `ringSteps` draws.
   */
  async readRing(): Promise<Int32Array> {
    this.#check();
    return new Int32Array(await this.#backend.read(this.#ring, this.ringSteps * this.batch * 4));
  }

  /**
   * Reads what the last sample of each sequence decided (for tests): 4 u32 per sequence, the top-k key threshold,
   * the top-p key threshold, 1 when top-p kept everything, and the id. See `logitKey` in kernels/sample.ts.
   */
  async readInfo(): Promise<Uint32Array> {
    this.#check();
    return new Uint32Array(await this.#backend.read(this.#info, this.batch * 16));
  }

  /** Reads the logits the last sample drew from (for tests): (batch, vocabLimit), row-major. */
  async readLogits(): Promise<Float32Array> {
    this.#check();
    return new Float32Array(await this.#backend.read(this.#logits, this.batch * this.vocabLimit * 4));
  }

  /** Frees the cache, state and scratch buffers (work already submitted still completes). Safe to call twice. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#step.dispose();
    this.#free();
  }

  #free(): void {
    this.#workspace.dispose();
    for (const b of this.#owned) this.#backend.free(b);
    this.#owned.length = 0;
  }

  #checkPrompts(prompts: readonly (readonly number[])[]): void {
    const B = this.batch, V = this.#model.config.vocabSize;
    if (prompts.length !== B) throw new RangeError(`prefill: expected ${B} prompts, got ${prompts.length}`);
    prompts.forEach((p, b) => {
      if (p.length < 1 || p.length > this.maxLen) {
        throw new RangeError(`prefill: prompt ${b} has ${p.length} tokens; it needs 1 to ${this.maxLen}`);
      }
      for (const id of p) {
        if (!Number.isInteger(id) || id < 0 || id >= V) {
          throw new RangeError(`prefill: prompt ${b} has token ${id}, outside the vocabulary [0, ${V})`);
        }
      }
    });
  }

  /** Per layer, a sink that copies the prefill's (B, P, H, hd) keys and values into the (B, H, L, hd) cache. */
  #cacheSinks(P: number): KvSink[] {
    const c = this.#model.config, B = this.batch, H = c.numHeads, hd = c.dModel / H, L = this.maxLen;
    const copy = gatherKernel({
      outShape: [B, H, P, hd],
      inStrides: [P * H * hd, hd, H * hd, 1],
      outStrides: [H * L * hd, L * hd, hd, 1],
      dtype: "f32",
    });
    return this.#caches.map((cache) => (k: Tensor, v: Tensor) => {
      this.#backend.run(copy, [k.buffer, cache.keys]);
      this.#backend.run(copy, [v.buffer, cache.values]);
    });
  }

  /** The largest position of a sequence not retired (-1 when all are). */
  #furthest(): number {
    let worst = -1;
    for (let b = 0; b < this.batch; b++) if (!this.#retired[b]) worst = Math.max(worst, this.#positions[b]);
    return worst;
  }

  #sampler(advance: boolean): KernelSource {
    const workgroupSize = samplerThreads(this.#backend);
    return sampleKernel({
      rows: this.batch,
      vocab: this.vocabLimit,
      ringSteps: this.ringSteps,
      advance,
      workgroupSize,
    });
  }

  #samplerBuffers(): GpuBuffer[] {
    return [this.#logits, this.#params, this.#state, this.#tokens, this.#ring, this.#info];
  }

  #check(): void {
    if (this.#disposed) throw new Error("KvCacheDecoder was used after dispose()");
  }
}

/** Validates the constructor's options against the model; returns them with defaults filled in. */
function checkOptions(
  model: TransformerLM,
  options: KvCacheDecoderOptions,
): { batch: number; ringSteps: number; vocabLimit: number } {
  const B = options.batch, R = options.ringSteps ?? 16, V = model.config.vocabSize;
  if (!Number.isInteger(B) || B < 1) throw new RangeError(`KvCacheDecoder: batch must be an integer >= 1, got ${B}`);
  if (!Number.isInteger(R) || R < 1) {
    throw new RangeError(`KvCacheDecoder: ringSteps must be an integer >= 1, got ${R}`);
  }
  const limit = options.vocabLimit ?? V;
  if (!Number.isInteger(limit) || limit < 1 || limit > V) {
    throw new RangeError(`KvCacheDecoder: vocabLimit must be an integer in [1, ${V}], got ${limit}`);
  }
  return { batch: B, ringSteps: R, vocabLimit: limit };
}

/** 512 sampler threads where the adapter allows them (see `SAMPLE_WORKGROUP_BYTES`), else 256. */
function samplerThreads(backend: Backend): 256 | 512 {
  const l = backend.device.limits;
  const fits = l.maxComputeWorkgroupStorageSize >= SAMPLE_WORKGROUP_BYTES &&
    l.maxComputeInvocationsPerWorkgroup >= 512 &&
    l.maxComputeWorkgroupSizeX >= 512;
  return fits ? 512 : 256;
}

/** Result of {@linkcode sampleOnGpu}. */
export interface GpuSampleResult {
  /** The chosen id of each row. */
  ids: Int32Array;
  /** Per row: top-k key threshold, top-p key threshold, 1 when top-p kept everything, id (see `readInfo`). */
  info: Uint32Array;
}

/**
 * Runs the GPU sampling kernel once on fixed logits (rows, vocab): every row is an independent draw (its row
 * index enters the hash), so sampling the same logits in many rows draws many samples at once. For tests and for
 * callers that hold logits of their own. `draw` is the counter mixed into the hash (default 0), `workgroupSize`
 * forces the kernel's thread count (default: 512 where the adapter allows).
 *
 * @example
 * ```ts
 * import { initGpu, tensor } from "@nanolm/nanolm/tensor";
 * import { sampleOnGpu } from "./decoder.ts"; // internal to the sample layer: not exported by the package
 * await initGpu();
 * const logits = tensor(new Float32Array([0, 2, 1, 3, 5, 4, 0, 0]), { shape: [2, 4] });
 * const { ids } = await sampleOnGpu(logits, { temperature: 0 });
 * if (ids.join() !== "3,0") throw new Error(`greedy ids ${ids}`);
 * ```
 */
export async function sampleOnGpu(
  logits: Tensor,
  opts: GpuSamplingOptions & { draw?: number; workgroupSize?: 256 | 512 } = {},
): Promise<GpuSampleResult> {
  if (logits.ndim !== 2 || logits.dtype !== "f32") {
    throw new TypeError(`sampleOnGpu: logits must be an f32 tensor (rows, vocab), got ${logits.describe()}`);
  }
  const [rows, vocab] = logits.shape;
  const backend = gpu();
  const params = backend.alloc(16), state = backend.alloc(rows * STATE_WORDS * 4);
  const tokens = backend.alloc(rows * 4), ring = backend.alloc(rows * 4), info = backend.alloc(rows * 16);
  try {
    backend.write(params, samplingParams(opts));
    const s = new Uint32Array(rows * STATE_WORDS);
    for (let r = 0; r < rows; r++) s[r * STATE_WORDS + 1] = opts.draw ?? 0;
    backend.write(state, s);
    const k = sampleKernel({
      rows,
      vocab,
      ringSteps: 1,
      advance: false,
      workgroupSize: opts.workgroupSize ?? samplerThreads(backend),
    });
    backend.run(k, [logits.buffer, params, state, tokens, ring, info]);
    const [ids, inf] = await backend.readMany([{ buf: tokens, bytes: rows * 4 }, { buf: info, bytes: rows * 16 }]);
    return { ids: new Int32Array(ids), info: new Uint32Array(inf) };
  } finally {
    for (const b of [params, state, tokens, ring, info]) backend.free(b);
  }
}

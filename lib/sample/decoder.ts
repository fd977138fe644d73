/**
 * A GPU-resident, KV-cached decode loop for a {@linkcode TransformerLM}.
 *
 * - The cache: per layer, K and V buffers (batch, heads, contextLength, headDim), allocated once. A prefill runs
 *   the model's ordinary forward over the (right-padded) prompts and copies each layer's keys and values into the
 *   cache; each decode step then runs the model on one token per sequence at its own position, appending k and v
 *   in place. Nothing is allocated per step, so GPU memory is flat over a generation.
 * - Positions live on the GPU (a small `state` buffer, advanced by the sampling kernel), so a step is the same
 *   list of dispatches every time: its bind groups are built once, each kernel compiles once, and a step needs
 *   no upload and no readback. Sequences of different lengths decode together: each attends to its own prefix.
 * - Sampling happens on the GPU ({@linkcode sampleKernel}) and writes the next id into the buffer the next step's
 *   embedding reads, plus a ring of recent ids that the host reads back in batches while the GPU runs ahead.
 *
 * A step is ~5 dispatches per layer (fused RMSNorm + q/k/v + RoPE + cache append, attention, output projection +
 * residual, RMSNorm + SwiGLU, down projection + residual) plus embedding, head and sampling, recorded into one
 * compute pass; several steps go into one submission.
 *
 * Positions must stay below the context length: the caller (see `generateStream`) re-prefills a window before a
 * sequence's next position would reach it.
 *
 * @module
 */
import { gatherKernel } from "../../kernels/copy.ts";
import type { KernelSource } from "../../kernels/common.ts";
import {
  decodeAttentionKernel,
  decodeLinearKernel,
  decodeQkvKernel,
  decodeRmsNormInPlaceKernel,
  lastRowsKernel,
  STATE_WORDS,
} from "../../kernels/decode.ts";
import { embeddingForwardKernel } from "../../kernels/embedding.ts";
import { rmsNormForwardKernel } from "../../kernels/rmsnorm.ts";
import { SAMPLE_WORKGROUP_BYTES, sampleKernel } from "../../kernels/sample.ts";
import { type Backend, gpu, type GpuBuffer, type KernelTiming } from "../gpu/backend.ts";
import type { KvSink } from "../nn/attention.ts";
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

interface Op {
  name: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
}

/** Dispatches per submission; the backend submits at the same size. */
const MAX_DISPATCHES_PER_SUBMIT = 512;

/**
 * Converts sampling options to the 4 words the sampling kernel reads, validating them.
 *
 * @example
 * ```ts
 * import { samplingParams } from "./decoder.ts";
 * console.assert(samplingParams({ temperature: 0 })[1] === 0);
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
 * ```ts ignore
 * const dec = new KvCacheDecoder(model, { batch: 1 });
 * dec.setSampling({ temperature: 0 });
 * dec.prefill([[1, 2, 3]]); // samples the first new id
 * dec.step(4); // four more, no round trip
 * const ring = await dec.readRing(); // id of draw d at ring[(d % ringSteps) * batch + b]
 * dec.dispose();
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
  readonly #kCache: GpuBuffer[] = [];
  readonly #vCache: GpuBuffer[] = [];
  readonly #state: GpuBuffer;
  readonly #params: GpuBuffer;
  readonly #tokens: GpuBuffer;
  readonly #ring: GpuBuffer;
  readonly #info: GpuBuffer;
  readonly #logits: GpuBuffer;
  readonly #ops: Op[] = [];
  #draws = 0;
  #positions: number[];
  #retired: boolean[];
  #disposed = false;

  /** Allocates the cache and scratch buffers and builds the decode step for `model` at `options.batch` rows. */
  constructor(model: TransformerLM, options: KvCacheDecoderOptions) {
    const B = options.batch, R = options.ringSteps ?? 16;
    if (!Number.isInteger(B) || B < 1) throw new RangeError(`KvCacheDecoder: batch must be an integer >= 1, got ${B}`);
    if (!Number.isInteger(R) || R < 1) {
      throw new RangeError(`KvCacheDecoder: ringSteps must be an integer >= 1, got ${R}`);
    }
    const c = model.config;
    const limit = options.vocabLimit ?? c.vocabSize;
    if (!Number.isInteger(limit) || limit < 1 || limit > c.vocabSize) {
      throw new RangeError(`KvCacheDecoder: vocabLimit must be an integer in [1, ${c.vocabSize}], got ${limit}`);
    }
    this.#model = model;
    this.#backend = gpu();
    this.batch = B;
    this.ringSteps = R;
    this.vocabLimit = limit;
    this.maxLen = c.contextLength;
    this.#positions = new Array(B).fill(0);
    this.#retired = new Array(B).fill(false);
    const d = c.dModel, H = c.numHeads, hd = d / H, V = c.vocabSize, L = c.contextLength;
    const alloc = (bytes: number) => {
      const b = this.#backend.alloc(bytes);
      this.#owned.push(b);
      return b;
    };
    for (let i = 0; i < c.numLayers; i++) {
      this.#kCache.push(alloc(B * H * L * hd * 4));
      this.#vCache.push(alloc(B * H * L * hd * 4));
    }
    this.#state = alloc(B * STATE_WORDS * 4);
    this.#backend.write(this.#state, new Uint32Array(B * STATE_WORDS));
    this.#params = alloc(16);
    this.#backend.write(this.#params, samplingParams({}));
    this.#tokens = alloc(B * 4);
    this.#ring = alloc(R * B * 4);
    this.#info = alloc(B * 16);
    // Logits of the sampled ids only: the head computes the first vocabLimit rows of its weight, the rest never.
    this.#logits = alloc(B * limit * 4);
    const x = alloc(B * d * 4), q = alloc(B * d * 4), att = alloc(B * d * 4);
    const ff = alloc(B * c.dFf * 4);
    const h = c.parallelLayers ? alloc(B * d * 4) : null;
    const rstd = c.parallelLayers && c.norm === "pre" ? alloc(B * 4) : null;
    const rope = c.position === "rope" ? alloc(L * hd * 4) : null;
    if (rope) this.#backend.write(rope, ropeTable(c.ropeTheta, hd, L));

    const op = (k: KernelSource, buffers: GpuBuffer[]) => this.#ops.push(this.#op(k, buffers));
    const eps = { eps: c.normEps };
    op(embeddingForwardKernel({ tokens: B, dim: d, vocab: V }), [model.tokenEmbeddings.weight.buffer, this.#tokens, x]);
    model.layers.forEach((layer, i) => {
      const attn = layer.attn, ffn = layer.ffn;
      const pre = layer.norm === "pre", post = layer.norm === "post";
      let src = x, qkvNorm: Tensor | null = pre ? layer.ln1!.weight : null;
      if (h) {
        // Parallel blocks: both sub-layers read the same input, which the residual updates below overwrite.
        if (pre) op(rmsNormForwardKernel(B, d, c.normEps), [x, layer.ln1!.weight.buffer, h, rstd!]);
        else op(gatherKernel({ outShape: [B * d], inStrides: [1], dtype: "f32" }), [x, h]);
        src = h;
        qkvNorm = null;
      }
      op(
        decodeQkvKernel({ rows: B, dModel: d, heads: H, maxLen: L, norm: qkvNorm ? eps : null, rope: rope !== null }),
        [
          src,
          ...(qkvNorm ? [qkvNorm.buffer] : []),
          attn.qProj.weight.buffer,
          attn.kProj.weight.buffer,
          attn.vProj.weight.buffer,
          ...(rope ? [rope] : []),
          this.#state,
          q,
          this.#kCache[i],
          this.#vCache[i],
        ],
      );
      op(decodeAttentionKernel({ rows: B, heads: H, headDim: hd, maxLen: L, tile: options.attentionTile }), [
        q,
        this.#kCache[i],
        this.#vCache[i],
        this.#state,
        att,
      ]);
      op(decodeLinearKernel({ rows: B, k: d, n: d, epilogue: "add" }), [att, attn.outputProj.weight.buffer, x]);
      if (post && !h) op(decodeRmsNormInPlaceKernel(B, d, c.normEps), [x, layer.ln1!.weight.buffer]);
      const ffnNorm = !h && pre ? layer.ln2!.weight : null;
      const ffnSrc = h ?? x;
      const swiglu = ffn.w3 !== null;
      op(
        decodeLinearKernel({
          rows: B,
          k: d,
          n: c.dFf,
          norm: ffnNorm ? eps : null,
          epilogue: swiglu ? "swiglu" : "silu",
        }),
        [
          ffnSrc,
          ...(ffnNorm ? [ffnNorm.buffer] : []),
          ffn.w1.weight.buffer,
          ...(swiglu ? [ffn.w3!.weight.buffer] : []),
          ff,
        ],
      );
      op(decodeLinearKernel({ rows: B, k: c.dFf, n: d, epilogue: "add" }), [ff, ffn.w2.weight.buffer, x]);
      if (post) {
        const gain = h ? layer.ln1!.weight : layer.ln2!.weight;
        op(decodeRmsNormInPlaceKernel(B, d, c.normEps), [x, gain.buffer]);
      }
    });
    const head = model.lmHead ? model.lmHead.weight : model.tokenEmbeddings.weight;
    op(
      decodeLinearKernel({ rows: B, k: d, n: limit, norm: model.lnFinal ? eps : null, epilogue: "store" }),
      [x, ...(model.lnFinal ? [model.lnFinal.weight.buffer] : []), head.buffer, this.#logits],
    );
    op(
      sampleKernel({
        rows: B,
        vocab: limit,
        ringSteps: R,
        advance: true,
        workgroupSize: samplerThreads(this.#backend),
      }),
      this.#samplerBuffers(),
    );
  }

  /** Number of ids sampled per sequence so far (prefills included). */
  get draws(): number {
    return this.#draws;
  }

  /** Each sequence's position of the next token to feed (its cache length), as tracked on the host. */
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
    return this.#ops.length;
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
    const longest = Math.max(...prompts.map((p) => p.length));
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
    const c = this.#model.config, H = c.numHeads, hd = c.dModel / H, L = this.maxLen;
    // The sink gets (B, P, H, hd) keys and values; the cache holds (B, H, L, hd): permute while copying.
    const copy = gatherKernel({
      outShape: [B, H, P, hd],
      inStrides: [P * H * hd, hd, H * hd, 1],
      outStrides: [H * L * hd, L * hd, hd, 1],
      dtype: "f32",
    });
    const sinks: KvSink[] = this.#kCache.map((kc, i) => (k: Tensor, v: Tensor) => {
      this.#dispatch(copy, [k.buffer, kc]);
      this.#dispatch(copy, [v.buffer, this.#vCache[i]]);
    });
    tidy(() =>
      noGrad(() => {
        const full = this.#model.forward(tensor(ids, { shape: [B, P], dtype: "i32" }), { kvSinks: sinks });
        const limit = this.vocabLimit;
        const logits = limit < V ? slice(full, { axis: 2, start: 0, end: limit }) : full;
        this.#dispatch(lastRowsKernel(B, P, limit), [logits.buffer, this.#state, this.#logits]);
        this.#dispatch(
          sampleKernel({
            rows: B,
            vocab: limit,
            ringSteps: this.ringSteps,
            advance: false,
            workgroupSize: samplerThreads(this.#backend),
          }),
          this.#samplerBuffers(),
        );
      })
    );
    this.#backend.flush();
    this.#draws++;
    this.#positions = prompts.map((p) => p.length);
  }

  /**
   * Records `count` decode steps and submits them: each feeds every sequence's last sampled id at its position
   * and samples the next. Nothing waits on the GPU. The position of every sequence not retired must stay below
   * the context length.
   */
  step(count = 1): void {
    this.#check();
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(`step: count must be an integer >= 0, got ${count}`);
    }
    if (count === 0) return;
    const worst = Math.max(-1, ...this.#positions.filter((_, b) => !this.#retired[b])) + count - 1;
    if (worst >= this.maxLen) {
      throw new RangeError(
        `step: ${count} steps would feed position ${worst}, beyond the context length ${this.maxLen}; re-prefill a window`,
      );
    }
    this.#backend.flush();
    const device = this.#backend.device;
    let encoder = device.createCommandEncoder();
    let pass = encoder.beginComputePass();
    let recorded = 0;
    for (let s = 0; s < count; s++) {
      for (const op of this.#ops) {
        if (recorded === MAX_DISPATCHES_PER_SUBMIT) {
          pass.end();
          device.queue.submit([encoder.finish()]);
          encoder = device.createCommandEncoder();
          pass = encoder.beginComputePass();
          recorded = 0;
        }
        pass.setPipeline(op.pipeline);
        pass.setBindGroup(0, op.bindGroup);
        pass.dispatchWorkgroups(...op.workgroups);
        recorded++;
      }
    }
    pass.end();
    device.queue.submit([encoder.finish()]);
    this.#draws += count;
    this.#positions = this.#positions.map((p) => p + count);
  }

  /**
   * Runs one decode step with a GPU timestamp around each dispatch and returns the time per kernel name, in
   * dispatch order of first appearance (empty without the adapter's `timestamp-query` feature). Each dispatch
   * gets its own pass, so the sum exceeds a normal step's time by the pass overhead; the split is what it is for.
   */
  async profileStep(): Promise<KernelTiming[]> {
    this.#check();
    if (!this.#backend.info.timestamps) return [];
    const worst = Math.max(-1, ...this.#positions.filter((_, b) => !this.#retired[b]));
    if (worst >= this.maxLen) throw new RangeError(`profileStep: position ${worst} is at the context length`);
    this.#backend.flush();
    const device = this.#backend.device, n = this.#ops.length;
    const querySet = device.createQuerySet({ type: "timestamp", count: 2 * n });
    const resolve = device.createBuffer({
      size: 16 * n,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const staging = device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const encoder = device.createCommandEncoder();
    this.#ops.forEach((op, i) => {
      const pass = encoder.beginComputePass({
        timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
      });
      pass.setPipeline(op.pipeline);
      pass.setBindGroup(0, op.bindGroup);
      pass.dispatchWorkgroups(...op.workgroups);
      pass.end();
    });
    encoder.resolveQuerySet(querySet, 0, 2 * n, resolve, 0);
    encoder.copyBufferToBuffer(resolve, 0, staging, 0, 16 * n);
    device.queue.submit([encoder.finish()]);
    this.#draws++;
    this.#positions = this.#positions.map((p) => p + 1);
    await staging.mapAsync(GPUMapMode.READ);
    const stamps = new BigUint64Array(staging.getMappedRange().slice(0));
    staging.unmap();
    for (const b of [staging, resolve]) b.destroy();
    querySet.destroy();
    const timings = new Map<string, KernelTiming>();
    this.#ops.forEach((op, i) => {
      const t = timings.get(op.name) ?? { name: op.name, count: 0, ms: 0 };
      t.count++;
      t.ms += Number(stamps[2 * i + 1] - stamps[2 * i]) / 1e6;
      timings.set(op.name, t);
    });
    return [...timings.values()];
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

  /** Frees the cache and scratch buffers (work already submitted still completes). Safe to call twice. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const b of this.#owned) this.#backend.free(b);
    this.#owned.length = 0;
    this.#ops.length = 0;
  }

  #samplerBuffers(): GpuBuffer[] {
    return [this.#logits, this.#params, this.#state, this.#tokens, this.#ring, this.#info];
  }

  #op(k: KernelSource, buffers: GpuBuffer[]): Op {
    const kernel = this.#backend.prepare(k.name, k.source);
    const bindGroup = this.#backend.device.createBindGroup({
      layout: kernel.pipeline.getBindGroupLayout(0),
      entries: buffers.map((b, i) => ({ binding: i, resource: { buffer: b.buffer } })),
    });
    return { name: k.name, pipeline: kernel.pipeline, bindGroup, workgroups: k.workgroups };
  }

  #dispatch(k: KernelSource, buffers: GpuBuffer[]): void {
    this.#backend.run(k, buffers);
  }

  #check(): void {
    if (this.#disposed) throw new Error("KvCacheDecoder was used after dispose()");
  }
}

/** 512 sampler threads where the adapter allows them (see `SAMPLE_WORKGROUP_BYTES`), else 256. */
function samplerThreads(backend: Backend): 256 | 512 {
  const l = backend.device.limits;
  const fits = l.maxComputeWorkgroupStorageSize >= SAMPLE_WORKGROUP_BYTES &&
    l.maxComputeInvocationsPerWorkgroup >= 512 &&
    l.maxComputeWorkgroupSizeX >= 512;
  return fits ? 512 : 256;
}

/** Interleaved (cos, sin) per (position, pair), computed in float64 exactly as the RoPE op's table. */
function ropeTable(theta: number, dim: number, rows: number): Float32Array {
  const half = dim / 2, out = new Float32Array(rows * half * 2);
  for (let p = 0; p < rows; p++) {
    for (let k = 0; k < half; k++) {
      const angle = p * Math.pow(theta, (-2 * k) / dim);
      out[(p * half + k) * 2] = Math.cos(angle);
      out[(p * half + k) * 2 + 1] = Math.sin(angle);
    }
  }
  return out;
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
 * ```ts ignore
 * const logits = tensor(new Float32Array([0, 2, 1, 3]), { shape: [1, 4] });
 * const { ids } = await sampleOnGpu(logits, { temperature: 0 }); // [3]
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

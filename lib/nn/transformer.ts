/**
 * The transformer language model of CS336 assignment 1: token embeddings, a stack of transformer blocks, a final
 * RMSNorm and a linear LM head producing next-token logits, plus the architecture variants of its ablations
 * (norm placement, NoPE, SiLU feed-forward, parallel blocks, tied embeddings). Its `decodeStep` computes the
 * next-token logits of one new token per sequence with a KV cache, layer by layer through the layers' own
 * decode steps, so that a cached decoder runs exactly the network that `forward` defines.
 *
 * Parameters carry the names of the CS336 reference state dict and PyTorch layouts, so weights move between this
 * model and a PyTorch module of the same architecture unchanged:
 *
 * | name | shape |
 * | --- | --- |
 * | `token_embeddings.weight` | (vocabSize, dModel) |
 * | `layers.{i}.attn.{q_proj,k_proj,v_proj,output_proj}.weight` | (dModel, dModel) |
 * | `layers.{i}.ln1.weight` (absent with `norm: "none"`) | (dModel) |
 * | `layers.{i}.ffn.w1.weight`, `layers.{i}.ffn.w3.weight` (no `w3` for `ffn: "silu"`) | (dFf, dModel) |
 * | `layers.{i}.ffn.w2.weight` | (dModel, dFf) |
 * | `layers.{i}.ln2.weight` (absent with `norm: "none"` or parallel layers) | (dModel) |
 * | `ln_final.weight` (absent with `norm: "none"`) | (dModel) |
 * | `lm_head.weight` (absent with tied embeddings) | (vocabSize, dModel) |
 *
 * @module
 */
import { gatherKernel } from "../../kernels/copy.ts";
import { decodeLinearKernel } from "../../kernels/decode.ts";
import { type ModelConfig, type ModelConfigInput, parseModelConfig } from "./config.ts";
import { gpu, type GpuBuffer } from "../gpu/backend.ts";
import { Rng } from "../util/random.ts";
import {
  keep,
  linearCrossEntropy,
  type LinearCrossEntropyOptions,
  matmul,
  reshape,
  type Tensor,
  tensor,
} from "../tensor/mod.ts";
import type { KvSink } from "./attention.ts";
import type { DecodeContext, LayerKvCache } from "./decode.ts";
import { TransformerBlock } from "./block.ts";
import { Embedding, Linear, RMSNorm } from "./layers.ts";
import { JUPYTER_DISPLAY, type MimeBundle } from "../notebook/display.ts";
import { cellResult } from "../notebook/display.ts";
import { modelBundle } from "./view.ts";

/** Options of the {@linkcode TransformerLM} constructor. */
export interface TransformerLMOptions {
  /** Seed of the initial weights (default 0) ... */
  seed?: number;
  /** ... or a generator to draw them from (advanced). */
  rng?: Rng;
}

/** Options of {@linkcode TransformerLM.forward}. */
export interface ForwardOptions {
  /**
   * Positions of the tokens for RoPE (i32): (seq) shared by the batch, or (batch, seq). Default 0..seq-1. A
   * decoder with a KV cache passes the absolute positions of the new tokens. Positions must lie in
   * [0, contextLength); outside it RoPE gives NaN.
   */
  positions?: Tensor;
  /** One callback per layer that receives its keys and values after RoPE (a KV cache's prefill). */
  kvSinks?: readonly KvSink[];
}

/** Host data of one weight, as read from a checkpoint: a shape and row-major f32 values. */
export interface WeightArray {
  /** Dimensions, outermost first. */
  shape: readonly number[];
  /** Row-major values. */
  data: Float32Array;
}

/**
 * A decoder-only transformer language model on WebGPU.
 *
 * @example
 * ```ts
 * import { crossEntropy, initGpu, tensor, tidy } from "@nanolm/nanolm/tensor";
 * import { TransformerLM } from "@nanolm/nanolm/nn";
 * await initGpu();
 * const model = new TransformerLM({
 *   vocabSize: 256, contextLength: 16, dModel: 32, numLayers: 2, numHeads: 4, dFf: 96, ropeTheta: 10000,
 * }, { seed: 0 });
 * const ids = tensor(new Int32Array(2 * 16).fill(7), { shape: [2, 16] });
 * tidy(() => crossEntropy(model.forward(ids), ids).backward()); // fills every parameter's .grad
 * const missing = [...model.parameters()].filter(([, p]) => !p.grad).map(([name]) => name);
 * if (missing.length > 0) throw new Error(`no gradient for ${missing}`);
 * model.dispose();
 * ```
 */
export class TransformerLM {
  /** The architecture, validated, with defaults filled in. */
  readonly config: ModelConfig;
  /** Token embedding table. */
  readonly tokenEmbeddings: Embedding;
  /** The blocks, input first. */
  readonly layers: readonly TransformerBlock[];
  /** Final norm; null with `norm: "none"`. */
  readonly lnFinal: RMSNorm | null;
  /** LM head; null when the embeddings are tied. */
  readonly lmHead: Linear | null;
  readonly #params: Map<string, Tensor>;
  /** 0..T-1 for each sequence length seen, uploaded once (positions are the same every step). */
  readonly #arange = new Map<number, Tensor>();

  /**
   * Creates the model with freshly initialised weights. The config goes through `parseModelConfig` (defaults for
   * the variants and `dFf`); an invalid one throws a `ConfigError` naming each bad field.
   */
  constructor(config: ModelConfigInput, options: TransformerLMOptions = {}) {
    const c = parseModelConfig(config);
    this.config = c;
    const rng = options.rng ?? new Rng(options.seed ?? 0);
    this.tokenEmbeddings = new Embedding(c.vocabSize, c.dModel, { rng });
    this.layers = Array.from({ length: c.numLayers }, () =>
      new TransformerBlock(c.dModel, {
        numHeads: c.numHeads,
        dFf: c.dFf,
        ropeTheta: c.position === "rope" ? c.ropeTheta : null,
        maxPosition: c.contextLength - 1,
        norm: c.norm,
        normEps: c.normEps,
        ffn: c.ffn,
        parallel: c.parallelLayers,
        fusedProjections: c.fusedProjections,
        rng,
      }));
    this.lnFinal = c.norm === "none" ? null : new RMSNorm(c.dModel, { eps: c.normEps });
    this.lmHead = c.tieEmbeddings ? null : new Linear(c.dModel, c.vocabSize, { rng });
    this.#params = new Map([
      ...this.tokenEmbeddings.namedParameters("token_embeddings."),
      ...this.layers.flatMap((layer, i) => layer.namedParameters(`layers.${i}.`)),
      ...(this.lnFinal ? this.lnFinal.namedParameters("ln_final.") : []),
      ...(this.lmHead ? this.lmHead.namedParameters("lm_head.") : []),
    ]);
    for (const [name, p] of this.#params) p.name = name;
  }

  /**
   * Next-token logits (batch, seq, vocabSize) for i32 token ids (batch, seq), seq <= contextLength. Records the
   * graph for autograd when gradients are enabled; call it inside `tidy` so that activations are freed. For the
   * training loss use {@linkcode TransformerLM.loss}, which never holds all the logits.
   */
  forward(ids: Tensor, options: ForwardOptions = {}): Tensor {
    const x = this.#hidden("forward", ids, options); // (B, T, d)
    if (this.lmHead) return this.lmHead.forward(x); // (B, T, V)
    // Tied: the embedding table (V, d) is the head's (out, in) weight.
    const [B, T] = ids.shape;
    const rows = reshape(x, [B * T, this.config.dModel]); // (B*T, d)
    const logits = matmul(rows, this.tokenEmbeddings.weight, { transB: true }); // (B*T, V)
    return reshape(logits, [B, T, this.config.vocabSize]); // (B, T, V)
  }

  /**
   * Mean next-token cross-entropy of i32 token ids (batch, seq) against i32 `targets` of the same shape: the value
   * of `crossEntropy(model.forward(ids), targets)`, but the head and the loss run as `linearCrossEntropy`, in chunks
   * of rows when the logits are large (a GPT-2-sized vocabulary and batch), so that memory does not grow with batch
   * x vocabulary. When the logits fit in one chunk it runs exactly the kernels of that expression.
   *
   * @example
   * ```ts
   * import { crossEntropy, initGpu, tensor } from "@nanolm/nanolm/tensor";
   * import { TransformerLM } from "@nanolm/nanolm/nn";
   * await initGpu();
   * const model = new TransformerLM({
   *   vocabSize: 256, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 4, dFf: 96, ropeTheta: 10000,
   * });
   * const ids = tensor(new Int32Array(8 * 16).fill(7), { shape: [8, 16] });
   * const loss = await model.loss(ids, ids, { chunkRows: 64 }).item(); // two chunks of 64 rows of logits
   * const whole = await crossEntropy(model.forward(ids), ids).item();
   * if (Math.abs(loss - whole) > 1e-5) throw new Error(`${loss} vs ${whole}`);
   * ```
   */
  loss(ids: Tensor, targets: Tensor, options: LinearCrossEntropyOptions = {}): Tensor {
    if (targets.dtype !== "i32" || targets.shape.join() !== ids.shape.join()) {
      throw new TypeError(
        `TransformerLM.loss: targets ${targets.describe()} must be i32 of the shape of ids ${ids.describe()}`,
      );
    }
    const x = this.#hidden("loss", ids, {}); // (B, T, d)
    const rows = ids.size, d = this.config.dModel;
    // Tied: the embedding table (V, d) is the head's (out, in) weight.
    const head = this.lmHead ? this.lmHead.weight : this.tokenEmbeddings.weight;
    return linearCrossEntropy(reshape(x, [rows, d]), head, reshape(targets, [rows]), options);
  }

  /** The residual stream after the last block and the final norm, (batch, seq, d), for `forward` and `loss`. */
  #hidden(method: string, ids: Tensor, options: ForwardOptions): Tensor {
    if (ids.dtype !== "i32" || ids.ndim !== 2) {
      throw new TypeError(`TransformerLM.${method}: ids must be an i32 tensor (batch, seq), got ${ids.describe()}`);
    }
    const [B, T] = ids.shape;
    const { contextLength } = this.config;
    if (T < 1 || T > contextLength) {
      throw new RangeError(
        `TransformerLM.${method}: sequence length ${T} is outside [1, contextLength = ${contextLength}]`,
      );
    }
    const positions = this.#positions(B, T, options.positions); // (T) or (B, T)
    let x = this.tokenEmbeddings.forward(ids); // (B, T, d)
    if (options.kvSinks && options.kvSinks.length !== this.layers.length) {
      throw new Error(
        `TransformerLM.${method}: kvSinks has ${options.kvSinks.length} entries for ${this.layers.length} layers`,
      );
    }
    this.layers.forEach((layer, i) => x = layer.forward(x, positions, options.kvSinks?.[i])); // (B, T, d)
    return this.lnFinal ? this.lnFinal.forward(x) : x; // (B, T, d)
  }

  /**
   * {@linkcode TransformerLM.forward} of one new token per sequence, at each sequence's position in `ctx.state`:
   * embeds `ids` (i32, rows), runs every block's decode step (appending to `caches`, one per layer), and writes the
   * first `vocabLimit` (default: all) logits of each row to `logits` (rows, vocabLimit), the final norm fused into
   * the head. Only dispatches: record it once and replay it per step (see `KvCacheDecoder`).
   */
  decodeStep(
    ids: GpuBuffer,
    logits: GpuBuffer,
    caches: readonly LayerKvCache[],
    ctx: DecodeContext,
    vocabLimit: number = this.config.vocabSize,
  ): void {
    if (caches.length !== this.layers.length) {
      throw new Error(`TransformerLM.decodeStep: ${caches.length} caches for ${this.layers.length} layers`);
    }
    const V = this.config.vocabSize;
    if (!Number.isInteger(vocabLimit) || vocabLimit < 1 || vocabLimit > V) {
      throw new RangeError(`TransformerLM.decodeStep: vocabLimit must be an integer in [1, ${V}], got ${vocabLimit}`);
    }
    const rows = ctx.rows, d = this.config.dModel;
    const x = ctx.scratch("lm.x", rows * d * 4); // the residual stream
    this.tokenEmbeddings.decodeStep(ids, x, ctx);
    this.layers.forEach((layer, i) => layer.decodeStep(x, caches[i], ctx));
    // Tied: the embedding table (V, d) is the head's (out, in) weight; its first vocabLimit rows give the logits.
    const head = this.lmHead ? this.lmHead.weight : this.tokenEmbeddings.weight;
    const norm = this.lnFinal;
    gpu().run(decodeLinearKernel({ rows, k: d, n: vocabLimit, norm: norm && { eps: norm.eps }, epilogue: "store" }), [
      x,
      ...(norm ? [norm.weight.buffer] : []),
      head.buffer,
      logits,
    ]);
  }

  #positions(B: number, T: number, given: Tensor | undefined): Tensor | undefined {
    if (this.config.position === "none") return undefined;
    if (!given) {
      let t = this.#arange.get(T);
      if (!t) {
        t = keep(tensor(Int32Array.from({ length: T }, (_, i) => i))); // (T)
        this.#arange.set(T, t);
      }
      return t;
    }
    if (given.dtype !== "i32") {
      throw new TypeError(`TransformerLM.forward: positions must be i32, got ${given.describe()}`);
    }
    if (given.ndim === 1 && given.shape[0] === T) return given; // (T)
    // RoPE runs on (B, T, H, hd) and takes per-sequence positions (B, T) as they are.
    if (given.ndim === 2 && given.shape[0] === B && given.shape[1] === T) return given; // (B, T)
    throw new Error(`TransformerLM.forward: positions ${given.describe()} must be (${T}) or (${B}, ${T})`);
  }

  /** Every parameter by its CS336 name (the live tensors, which the optimizer updates in place). */
  parameters(): Map<string, Tensor> {
    return new Map(this.#params);
  }

  /**
   * The weights by their CS336 names, in the reference module's order: the live parameter tensors (not copies),
   * as PyTorch's `state_dict()` returns references.
   */
  stateDict(): Map<string, Tensor> {
    return new Map(this.#params);
  }

  /**
   * Overwrites every parameter in place (an optimizer that holds them keeps working) from tensors or host arrays
   * with the same names and shapes. Checks everything first, so a bad map changes nothing: a missing or unexpected
   * name, or a shape mismatch, throws naming the key. A plain object of the same entries works too.
   */
  loadStateDict(entries: Map<string, Tensor | WeightArray> | Record<string, Tensor | WeightArray>): void {
    const map = entries instanceof Map ? entries : new Map(Object.entries(entries));
    const missing = [...this.#params.keys()].filter((k) => !map.has(k));
    const unexpected = [...map.keys()].filter((k) => !this.#params.has(k));
    if (missing.length || unexpected.length) {
      const parts = [];
      if (missing.length) parts.push(`missing keys ${missing.map((k) => JSON.stringify(k)).join(", ")}`);
      if (unexpected.length) parts.push(`unexpected keys ${unexpected.map((k) => JSON.stringify(k)).join(", ")}`);
      throw new Error(`loadStateDict: ${parts.join("; ")}`);
    }
    for (const [name, p] of this.#params) {
      const v = map.get(name)!;
      const shape = [...v.shape];
      if (shape.length !== p.ndim || shape.some((d, i) => d !== p.shape[i])) {
        throw new Error(
          `loadStateDict: "${name}" has shape (${shape.join(", ")}), the model expects (${p.shape.join(", ")})`,
        );
      }
      if (isTensor(v)) {
        if (v.dtype !== "f32") throw new TypeError(`loadStateDict: "${name}" must be f32, got ${v.describe()}`);
        if (v.disposed) throw new Error(`loadStateDict: the tensor for "${name}" was disposed`);
      } else if (!(v.data instanceof Float32Array) || v.data.length !== p.size) {
        const got = v.data instanceof Float32Array
          ? `${v.data.length} values`
          : String((v.data as unknown as object)?.constructor?.name);
        throw new TypeError(`loadStateDict: "${name}" needs a Float32Array of ${p.size} values, got ${got}`);
      }
    }
    for (const [name, p] of this.#params) {
      const v = map.get(name)!;
      if (isTensor(v)) copyInto(p, v);
      else gpu().write(p.buffer, v.data);
    }
  }

  /** Total number of scalar parameters. */
  numParameters(): number {
    let n = 0;
    for (const p of this.#params.values()) n += p.size;
    return n;
  }

  /** Rich display in Jupyter: the architecture and a table of parameters and FLOPs by component. */
  [JUPYTER_DISPLAY](): Promise<MimeBundle> {
    return cellResult(modelBundle(this.config));
  }

  /** Frees the parameters (and their gradients) and cached position tensors. The model is unusable afterwards. */
  dispose(): void {
    for (const p of this.#params.values()) p.dispose();
    for (const t of this.#arange.values()) t.dispose();
    this.#arange.clear();
  }
}

function isTensor(v: Tensor | WeightArray): v is Tensor {
  return typeof (v as Tensor).describe === "function";
}

/** GPU-side copy of `src` into the storage of `dst` (same size); the tensor ops only ever write new tensors. */
function copyInto(dst: Tensor, src: Tensor): void {
  if (dst === src || dst.buffer === src.buffer || dst.size === 0) return;
  const k = gatherKernel({ outShape: [dst.size], inStrides: [1], dtype: "f32" });
  gpu().run(k, [src.buffer, dst.buffer]);
}

/**
 * The parameterised building blocks of the transformer: a bias-free linear map, a token embedding table and
 * RMSNorm. Each holds its weight as a parameter (it requires gradients and survives `tidy` scopes) and is
 * initialised as in CS336 assignment 1, drawing from a caller-supplied generator so that one seed fixes a model.
 * The embedding and the norm also have a `decodeStep` beside their `forward`: the same function on the buffers
 * of a decode step (see decode.ts).
 *
 * @module
 */
import { embeddingForwardKernel } from "../../kernels/embedding.ts";
import { rmsNormForwardKernel } from "../../kernels/rmsnorm.ts";
import { gpu, type GpuBuffer } from "../gpu/backend.ts";
import type { Rng } from "../util/random.ts";
import {
  concat,
  embedding,
  matmul,
  noGrad,
  ones,
  param,
  reshape,
  rmsNorm,
  type Tensor,
  truncNormal,
} from "../tensor/mod.ts";
import { rowRange } from "../tensor/tensor.ts";
import type { DecodeContext } from "./decode.ts";

/** Options of the layer constructors. */
export interface LayerInitOptions {
  /** Generator the initial weights are drawn from (advanced); a fresh `Rng(0)` when absent. */
  rng?: Rng;
}

/**
 * `y = x W^T` without a bias. The weight is stored (out, in) like PyTorch's `nn.Linear`, so state dicts move
 * between the two unchanged; it starts from N(0, 2 / (in + out)) truncated at ±3 standard deviations.
 *
 * @example
 * ```ts
 * import { initGpu, randn } from "@nanolm/nanolm/tensor";
 * import { Linear } from "@nanolm/nanolm/nn";
 * await initGpu();
 * const proj = new Linear(32, 64);
 * const y = proj.forward(randn([2, 5, 32]));
 * if (y.shape.join() !== "2,5,64") throw new Error(y.describe());
 * ```
 */
export class Linear {
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;
  #weight: Tensor;

  /** Creates the layer with a freshly initialised weight. */
  constructor(inFeatures: number, outFeatures: number, options: LayerInitOptions = {}) {
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const std = Math.sqrt(2 / (inFeatures + outFeatures));
    this.#weight = param(truncNormal([outFeatures, inFeatures], { std, a: -3, b: 3, rng: options.rng }));
  }

  /** The weight, (out, in). */
  get weight(): Tensor {
    return this.#weight;
  }

  /**
   * Moves the weights of `layers` (of one input size) end to end into one buffer, each still its own parameter
   * with its values, so that their concatenation along the rows (a fused projection's weight, see
   * {@linkcode concat}) is a view: no copy forward, none backward. Returns false, and leaves the layers as they
   * were, where a weight would not start at an offset the device can bind (tiny weights).
   *
   * @example
   * ```ts
   * import { concat, initGpu } from "@nanolm/nanolm/tensor";
   * import { Linear } from "@nanolm/nanolm/nn";
   * await initGpu();
   * const [q, k] = [new Linear(64, 64), new Linear(64, 64)];
   * const before = await q.weight.data();
   * if (!Linear.packRows([q, k])) throw new Error("64 x 64 floats start at a bindable offset");
   * const qk = concat([q.weight, k.weight], 0); // (128, 64), a view
   * if (qk.storage.buf.buffer !== q.weight.storage.buf.buffer) throw new Error("not a view");
   * if ((await q.weight.data()).join() !== before.join()) throw new Error("the values moved");
   * ```
   */
  static packRows(layers: readonly Linear[]): boolean {
    const align = gpu().device.limits.minStorageBufferOffsetAlignment;
    let rows = 0;
    for (const l of layers) {
      if (l.inFeatures !== layers[0].inFeatures || (rows * l.inFeatures * 4) % align !== 0) return false;
      rows += l.outFeatures;
    }
    const packed = noGrad(() => concat(layers.map((l) => l.#weight), 0)); // (rows, in), a copy
    rows = 0;
    for (const l of layers) {
      const name = l.#weight.name;
      l.#weight.dispose();
      l.#weight = param(rowRange(packed, rows, rows + l.outFeatures), name);
      rows += l.outFeatures;
    }
    packed.dispose();
    return true;
  }

  /**
   * Maps (..., in) to (..., out). With `residual` (shaped like the result), returns `residual + x W^T`, the sum
   * formed in the matmul's epilogue rather than by a separate add over the output.
   */
  forward(x: Tensor, options: { residual?: Tensor } = {}): Tensor {
    const lead = x.shape.slice(0, -1);
    // One 2-D matmul over all rows: its weight gradient is then a single (out, in) product, not a batch of them
    // that autograd would have to sum afterwards.
    const rows = reshape(x, [-1, this.inFeatures]); // (N, in)
    const r = options.residual;
    if (r && (r.ndim !== lead.length + 1 || r.shape[r.ndim - 1] !== this.outFeatures)) {
      throw new Error(`Linear.forward: residual ${r.describe()} does not match the output (..., ${this.outFeatures})`);
    }
    const addend = r ? reshape(r, [-1, this.outFeatures]) : undefined; // (N, out)
    const y = matmul(rows, this.weight, { transB: true, addend }); // (N, out)
    return reshape(y, [...lead, this.outFeatures]); // (..., out)
  }

  /** The parameters under their state-dict names, prefixed with `prefix`. */
  namedParameters(prefix: string): [string, Tensor][] {
    return [[`${prefix}weight`, this.weight]];
  }
}

/**
 * Token embedding lookup: a (vocab, dModel) table, initialised N(0, 1) truncated at ±3.
 *
 * @example
 * ```ts
 * import { initGpu, tensor } from "@nanolm/nanolm/tensor";
 * import { Embedding } from "@nanolm/nanolm/nn";
 * await initGpu();
 * const emb = new Embedding(100, 16);
 * const h = emb.forward(tensor(new Int32Array([1, 2, 3]), { shape: [1, 3] }));
 * const [table, rows] = [await emb.weight.data(), await h.data()];
 * if (h.shape.join() !== "1,3,16" || rows[16] !== table[2 * 16]) throw new Error("not the rows of ids 1, 2, 3");
 * ```
 */
export class Embedding {
  /** Number of token ids. */
  readonly numEmbeddings: number;
  /** Width of each embedding. */
  readonly embeddingDim: number;
  /** The table, (vocab, dim). */
  readonly weight: Tensor;

  /** Creates the table with freshly initialised rows. */
  constructor(numEmbeddings: number, embeddingDim: number, options: LayerInitOptions = {}) {
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    this.weight = param(truncNormal([numEmbeddings, embeddingDim], { std: 1, a: -3, b: 3, rng: options.rng }));
  }

  /** Maps i32 ids of any shape (...) to (..., dim). Ids outside the table give zero rows. */
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }

  /** {@linkcode Embedding.forward} of one i32 id per sequence, `ids` (rows), into `out` (rows, dim). */
  decodeStep(ids: GpuBuffer, out: GpuBuffer, ctx: DecodeContext): void {
    const kernel = embeddingForwardKernel({ tokens: ctx.rows, dim: this.embeddingDim, vocab: this.numEmbeddings });
    gpu().run(kernel, [this.weight.buffer, ids, out]);
  }

  /** The parameters under their state-dict names, prefixed with `prefix`. */
  namedParameters(prefix: string): [string, Tensor][] {
    return [[`${prefix}weight`, this.weight]];
  }
}

/** Options of {@linkcode RMSNorm}. */
export interface RMSNormOptions {
  /** Added to the mean square before the square root (default 1e-5). */
  eps?: number;
}

/**
 * Root-mean-square normalisation over the last axis with a learned gain (initialised to ones):
 * `x / sqrt(mean(x^2) + eps) * weight`.
 *
 * @example
 * ```ts
 * import { initGpu, randn } from "@nanolm/nanolm/tensor";
 * import { RMSNorm } from "@nanolm/nanolm/nn";
 * await initGpu();
 * const norm = new RMSNorm(16);
 * const y = await norm.forward(randn([2, 3, 16])).data(); // (2, 3, 16)
 * for (let r = 0; r < 6; r++) {
 *   let squares = 0;
 *   for (let j = 0; j < 16; j++) squares += y[r * 16 + j] ** 2;
 *   const rms = Math.sqrt(squares / 16);
 *   if (Math.abs(rms - 1) > 1e-3) throw new Error(`row ${r} has RMS ${rms}`); // a gain of ones: unit RMS
 * }
 * ```
 */
export class RMSNorm {
  /** Width of the normalised axis. */
  readonly dim: number;
  /** Epsilon inside the square root. */
  readonly eps: number;
  /** The gain, (dim). */
  readonly weight: Tensor;

  /** Creates the norm with a gain of ones. */
  constructor(dim: number, options: RMSNormOptions = {}) {
    this.dim = dim;
    this.eps = options.eps ?? 1e-5;
    this.weight = param(ones([dim]));
  }

  /** Normalises (..., dim) row by row. */
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, { eps: this.eps });
  }

  /**
   * {@linkcode RMSNorm.forward} of `x` (rows, dim) into `out`, in place when `out` is `x`. A norm that feeds a
   * projection is not run on its own in a decode step: the projection's kernel fuses it (see `decodeStep` of the
   * attention and the feed-forward network).
   */
  decodeStep(x: GpuBuffer, out: GpuBuffer, ctx: DecodeContext): void {
    const rows = ctx.rows;
    if (out === x) {
      gpu().run(rmsNormForwardKernel(rows, this.dim, this.eps, { inPlace: true }), [x, this.weight.buffer]);
    } else {
      const rstd = ctx.scratch("rmsnorm.rstd", rows * 4); // written by the kernel, read by nothing at inference
      gpu().run(rmsNormForwardKernel(rows, this.dim, this.eps), [x, this.weight.buffer, out, rstd]);
    }
  }

  /** The parameters under their state-dict names, prefixed with `prefix`. */
  namedParameters(prefix: string): [string, Tensor][] {
    return [[`${prefix}weight`, this.weight]];
  }
}

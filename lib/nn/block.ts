/**
 * One transformer block: causal self-attention and a feed-forward network, each wrapped in a residual connection,
 * with RMSNorm placed before each sub-layer (pre-norm, CS336's default), after each residual add (post-norm, the
 * original transformer), or nowhere. In the parallel variant (GPT-J, PaLM) both sub-layers read the same input and
 * their outputs are added to the residual stream together, so the block has a single norm, `ln1`. Its
 * `decodeStep` runs the same structure on one token per sequence.
 *
 * @module
 */
import { gatherKernel } from "../../kernels/copy.ts";
import { gpu, type GpuBuffer } from "../gpu/backend.ts";
import type { FeedForwardKind, NormPlacement } from "./config.ts";
import type { Rng } from "../util/random.ts";
import { add, type Tensor, withTransposedWeights } from "../tensor/mod.ts";
import { CausalSelfAttention, type KvSink } from "./attention.ts";
import type { DecodeContext, LayerKvCache } from "./decode.ts";
import { FeedForward } from "./feed_forward.ts";
import { RMSNorm } from "./layers.ts";

/** Options of {@linkcode TransformerBlock}. */
export interface TransformerBlockOptions {
  /** Number of attention heads. */
  numHeads: number;
  /** Hidden width of the feed-forward network. */
  dFf: number;
  /** RoPE base Θ, or null for no position encoding. */
  ropeTheta: number | null;
  /** The largest position RoPE handles. */
  maxPosition: number;
  /** Norm placement (default `"pre"`). */
  norm?: NormPlacement;
  /** RMSNorm epsilon (default 1e-5). */
  normEps?: number;
  /** Feed-forward variant (default `"swiglu"`). */
  ffn?: FeedForwardKind;
  /** Attention and feed-forward in parallel on the same input (default false). */
  parallel?: boolean;
  /** One matmul against the concatenated q/k/v (and w1/w3) weights (default true). */
  fusedProjections?: boolean;
  /** Generator for the weights. */
  rng?: Rng;
}

/**
 * A residual block of attention and feed-forward over (batch, seq, dModel).
 *
 * @example
 * ```ts
 * import { initGpu, randn } from "@nanolm/nanolm/tensor";
 * import { TransformerBlock } from "@nanolm/nanolm/nn";
 * await initGpu();
 * const block = new TransformerBlock(32, { numHeads: 4, dFf: 96, ropeTheta: 10000, maxPosition: 15 });
 * const y = block.forward(randn([2, 5, 32]));
 * if (y.shape.join() !== "2,5,32") throw new Error(y.describe());
 * ```
 */
export class TransformerBlock {
  /** Norm placement. */
  readonly norm: NormPlacement;
  /** Whether attention and feed-forward run in parallel. */
  readonly parallel: boolean;
  /** Self-attention. */
  readonly attn: CausalSelfAttention;
  /** Norm of the attention sub-layer (of both sub-layers when parallel); null without norms. */
  readonly ln1: RMSNorm | null;
  /** Feed-forward network. */
  readonly ffn: FeedForward;
  /** Norm of the feed-forward sub-layer; null without norms or when parallel. */
  readonly ln2: RMSNorm | null;

  /** Creates the sub-layers. */
  constructor(dModel: number, options: TransformerBlockOptions) {
    this.norm = options.norm ?? "pre";
    this.parallel = options.parallel ?? false;
    const rng = options.rng, eps = options.normEps;
    this.attn = new CausalSelfAttention(dModel, {
      numHeads: options.numHeads,
      ropeTheta: options.ropeTheta,
      maxPosition: options.maxPosition,
      fused: options.fusedProjections,
      rng,
    });
    this.ffn = new FeedForward(dModel, options.dFf, { kind: options.ffn, fused: options.fusedProjections, rng });
    const hasNorm = this.norm !== "none";
    this.ln1 = hasNorm ? new RMSNorm(dModel, { eps }) : null;
    this.ln2 = hasNorm && !this.parallel ? new RMSNorm(dModel, { eps }) : null;
  }

  /** Maps the residual stream (B, T, dModel) to (B, T, dModel); `positions` and `kvSink` as in the attention. */
  forward(x: Tensor, positions?: Tensor, kvSink?: KvSink): Tensor {
    // The projections' x @ W^T products, where they run from transposed copies of W, find them made in one dispatch.
    const weights = this.namedParameters("").map(([, p]) => p);
    return withTransposedWeights(weights, x.size / x.shape[x.ndim - 1], () => this.#forward(x, positions, kvSink));
  }

  #forward(x: Tensor, positions?: Tensor, kvSink?: KvSink): Tensor {
    const ln1 = (t: Tensor) => this.ln1 ? this.ln1.forward(t) : t;
    const ln2 = (t: Tensor) => this.ln2 ? this.ln2.forward(t) : t;
    if (this.parallel) {
      if (this.norm === "post") {
        return ln1(add(add(x, this.attn.forward(x, { positions, kvSink })), this.ffn.forward(x))); // (B, T, d)
      }
      // Pre-norm (or none): both sub-layers read the one normalised input, computed once.
      const h = ln1(x); // (B, T, d)
      return add(add(x, this.attn.forward(h, { positions, kvSink })), this.ffn.forward(h)); // (B, T, d)
    }
    if (this.norm === "post") {
      const h = ln1(add(x, this.attn.forward(x, { positions, kvSink }))); // (B, T, d)
      return ln2(add(h, this.ffn.forward(h))); // (B, T, d)
    }
    // Pre-norm (or none): the residual sums happen in the output projections' matmul epilogues.
    const h = this.attn.forward(ln1(x), { positions, kvSink, residual: x }); // x + attn(ln1(x)), (B, T, d)
    return this.ffn.forward(ln2(h), { residual: h }); // h + ffn(ln2(h)), (B, T, d)
  }

  /**
   * {@linkcode TransformerBlock.forward} of one token per sequence: updates the residual stream `x` (rows, dModel)
   * in place, appending this layer's keys and values to `cache`. A norm before a sub-layer is fused into its first
   * kernel; a norm after a residual add runs in place.
   */
  decodeStep(x: GpuBuffer, cache: LayerKvCache, ctx: DecodeContext): void {
    if (this.parallel) {
      // Both sub-layers read one input, taken before their residual adds overwrite x.
      const size = ctx.rows * this.attn.dModel, h = ctx.scratch("block.h", size * 4);
      if (this.norm === "pre") this.ln1!.decodeStep(x, h, ctx);
      else gpu().run(gatherKernel({ outShape: [size], inStrides: [1], dtype: "f32" }), [x, h]);
      this.attn.decodeStep(h, x, cache, ctx);
      this.ffn.decodeStep(h, x, ctx);
      if (this.norm === "post") this.ln1!.decodeStep(x, x, ctx);
      return;
    }
    if (this.norm === "post") {
      this.attn.decodeStep(x, x, cache, ctx);
      this.ln1!.decodeStep(x, x, ctx);
      this.ffn.decodeStep(x, x, ctx);
      this.ln2!.decodeStep(x, x, ctx);
      return;
    }
    // Pre-norm (or none): each norm is fused into the first kernel of its sub-layer.
    this.attn.decodeStep(x, x, cache, ctx, this.ln1);
    this.ffn.decodeStep(x, x, ctx, this.ln2);
  }

  /** The parameters under their CS336 names (`attn.q_proj.weight`, `ln1.weight`, ...), prefixed with `prefix`. */
  namedParameters(prefix: string): [string, Tensor][] {
    // The order of the CS336 module's state dict: attn, ln1, ffn, ln2.
    return [
      ...this.attn.namedParameters(`${prefix}attn.`),
      ...(this.ln1 ? this.ln1.namedParameters(`${prefix}ln1.`) : []),
      ...this.ffn.namedParameters(`${prefix}ffn.`),
      ...(this.ln2 ? this.ln2.namedParameters(`${prefix}ln2.`) : []),
    ];
  }
}

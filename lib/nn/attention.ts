/**
 * Causal multi-head self-attention with optional rotary position embeddings, as in CS336 assignment 1: separate
 * bias-free q, k, v and output projections, RoPE applied to queries and keys (never values), scaled dot-product
 * attention under a causal mask. Its `decodeStep` computes the same for one new token per sequence against a KV
 * cache.
 *
 * @module
 */
import { decodeAttentionKernel, decodeLinearKernel, decodeQkvKernel } from "../../kernels/decode.ts";
import { ropeTable } from "../../kernels/rope.ts";
import { gpu, type GpuBuffer } from "../gpu/backend.ts";
import type { Rng } from "../util/random.ts";
import {
  attention,
  concat,
  matmul,
  packedAttention,
  reshape,
  rope,
  slice,
  type Tensor,
  tensor,
} from "../tensor/mod.ts";
import type { DecodeContext, LayerKvCache } from "./decode.ts";
import { Linear, type RMSNorm } from "./layers.ts";

/**
 * Receives a layer's keys and values (B, T, H, hd), after RoPE, during a forward pass: a KV-cached decoder fills
 * its cache from the prompt's forward this way (the tensors are the forward's own, valid until its scope ends).
 */
export type KvSink = (k: Tensor, v: Tensor) => void;

/** Options of {@linkcode CausalSelfAttention}. */
export interface CausalSelfAttentionOptions {
  /** Number of heads; must divide `dModel`. */
  numHeads: number;
  /** RoPE base Θ; `null` disables position encoding (NoPE: the causal mask is the only order signal). */
  ropeTheta: number | null;
  /** The largest position RoPE must handle (sizes its cos/sin table). */
  maxPosition: number;
  /**
   * One matmul against the row-concatenated q/k/v weights, and attention reading its packed output in place
   * (default true); false runs the three projections separately (for comparison; the same values).
   */
  fused?: boolean;
  /** Generator for the projection weights. */
  rng?: Rng;
}

/** Options of {@linkcode CausalSelfAttention.forward}. */
export interface AttentionForwardOptions {
  /**
   * Token positions for RoPE (i32): (T) shared by the batch, or (B, T) per sequence; 0..T-1 when absent, unused
   * without RoPE.
   */
  positions?: Tensor;
  /** Receives the keys and values (after RoPE), as the KV-cached decoder's prefill needs them. */
  kvSink?: KvSink;
  /**
   * The residual stream (B, T, dModel): when given, the result is `residual + attention(x)`, summed in the output
   * projection's matmul epilogue.
   */
  residual?: Tensor;
}

/**
 * Causal multi-head self-attention over (batch, seq, dModel).
 *
 * @example
 * ```ts
 * import { initGpu, randn, tensor } from "@nanolm/nanolm/tensor";
 * import { CausalSelfAttention } from "@nanolm/nanolm/nn";
 * await initGpu();
 * const attn = new CausalSelfAttention(32, { numHeads: 4, ropeTheta: 10000, maxPosition: 15 });
 * const positions = tensor(new Int32Array([0, 1, 2, 3, 4]));
 * const y = attn.forward(randn([2, 5, 32]), { positions });
 * if (y.shape.join() !== "2,5,32") throw new Error(y.describe());
 * ```
 */
export class CausalSelfAttention {
  /** Width of the residual stream. */
  readonly dModel: number;
  /** Number of heads. */
  readonly numHeads: number;
  /** Width of each head. */
  readonly headDim: number;
  /** RoPE base, or null for no position encoding. */
  readonly ropeTheta: number | null;
  /** The largest position RoPE handles. */
  readonly maxPosition: number;
  /** Query projection. */
  readonly qProj: Linear;
  /** Key projection. */
  readonly kProj: Linear;
  /** Value projection. */
  readonly vProj: Linear;
  /** Output projection back to the residual stream. */
  readonly outputProj: Linear;
  /** Whether q, k and v come from one matmul against the concatenated weights. */
  readonly fused: boolean;

  /** Creates the four projections. */
  constructor(dModel: number, options: CausalSelfAttentionOptions) {
    if (dModel % options.numHeads !== 0) {
      throw new RangeError(`numHeads (${options.numHeads}) must divide dModel (${dModel})`);
    }
    this.dModel = dModel;
    this.numHeads = options.numHeads;
    this.headDim = dModel / options.numHeads;
    if (options.ropeTheta !== null && this.headDim % 2 !== 0) {
      throw new RangeError(`RoPE needs an even head dim, got dModel / numHeads = ${this.headDim}`);
    }
    this.ropeTheta = options.ropeTheta;
    this.maxPosition = options.maxPosition;
    this.fused = options.fused ?? true;
    const rng = options.rng;
    this.qProj = new Linear(dModel, dModel, { rng });
    this.kProj = new Linear(dModel, dModel, { rng });
    this.vProj = new Linear(dModel, dModel, { rng });
    this.outputProj = new Linear(dModel, dModel, { rng });
    // The fused projection's weight is then a view of the three, not a copy made every step.
    if (this.fused) Linear.packRows([this.qProj, this.kProj, this.vProj]);
  }

  /** Attends over `x` (B, T, dModel); see {@linkcode AttentionForwardOptions}. */
  forward(x: Tensor, options: AttentionForwardOptions = {}): Tensor {
    const { kvSink, residual } = options;
    const [B, T] = x.shape;
    // RoPE's positions: 0..T-1 unless given; none without RoPE.
    const pos = this.ropeTheta === null
      ? undefined
      : options.positions ?? tensor(Int32Array.from({ length: T }, (_, i) => i)); // (T) or (B, T)
    if (this.fused) return this.fusedForward(x, pos, kvSink, residual);
    const H = this.numHeads, hd = this.headDim;
    // A projection's (B, T, d) output is already (B, T, H, hd) heads: RoPE and attention work in that layout, so
    // the heads need no permute in either direction (forward or backward).
    let q = reshape(this.qProj.forward(x), [B, T, H, hd]); // (B, T, H, hd)
    let k = reshape(this.kProj.forward(x), [B, T, H, hd]); // (B, T, H, hd)
    const v = reshape(this.vProj.forward(x), [B, T, H, hd]); // (B, T, H, hd)
    if (this.ropeTheta !== null && pos) {
      const opts = { theta: this.ropeTheta, maxPosition: this.maxPosition, layout: "bthd" } as const;
      q = rope(q, pos, opts); // (B, T, H, hd)
      k = rope(k, pos, opts); // (B, T, H, hd)
    }
    kvSink?.(k, v);
    const o = attention(q, k, v, { causal: true, layout: "bthd" }); // (B, T, H, hd)
    return this.outputProj.forward(reshape(o, [B, T, this.dModel]), { residual }); // (B, T, d)
  }

  /**
   * {@linkcode CausalSelfAttention.forward} of one new token per sequence: q, k, v of `x` (rows, dModel) (after
   * `norm`, fused, when given: a pre-norm block's), q and k rotated at each sequence's position (`ctx.state`), k
   * and v appended to `cache` at that position, the query attending over the cache up to it, and the output
   * projection added to `residual` (rows, dModel) in place. Fused or not, the projections run as one kernel.
   */
  decodeStep(
    x: GpuBuffer,
    residual: GpuBuffer,
    cache: LayerKvCache,
    ctx: DecodeContext,
    norm: RMSNorm | null = null,
  ): void {
    const rows = ctx.rows, d = this.dModel, heads = this.numHeads, hd = this.headDim, maxLen = ctx.maxLen;
    const theta = this.ropeTheta;
    const table = theta === null
      ? null
      : ctx.constant(`rope/${theta}/${hd}/${maxLen}`, () => ropeTable(theta, hd, maxLen));
    const q = ctx.scratch("attn.q", rows * d * 4), o = ctx.scratch("attn.out", rows * d * 4);
    const qkv = decodeQkvKernel({ rows, dModel: d, heads, maxLen, norm: norm && { eps: norm.eps }, rope: !!table });
    gpu().run(qkv, [
      x,
      ...(norm ? [norm.weight.buffer] : []),
      this.qProj.weight.buffer,
      this.kProj.weight.buffer,
      this.vProj.weight.buffer,
      ...(table ? [table] : []),
      ctx.state,
      q,
      cache.keys,
      cache.values,
    ]);
    const attend = decodeAttentionKernel({ rows, heads, headDim: hd, maxLen, tile: ctx.attentionTile });
    gpu().run(attend, [q, cache.keys, cache.values, ctx.state, o]);
    gpu().run(decodeLinearKernel({ rows, k: d, n: d, epilogue: "add" }), [o, this.outputProj.weight.buffer, residual]);
  }

  /**
   * {@linkcode forward} with one projection: `x @ [Wq; Wk; Wv]^T` is (B, T, 3d) = (B, T, 3, H, hd), which RoPE
   * and the attention kernels read in place. Its backward is one dX matmul (K = 3d, so no sum of three input
   * gradients) and one weight-gradient matmul, split back into the three parameters' gradients by the concat.
   */
  private fusedForward(x: Tensor, pos?: Tensor, kvSink?: KvSink, residual?: Tensor): Tensor {
    const [B, T] = x.shape;
    const H = this.numHeads, hd = this.headDim, d = this.dModel;
    const w = concat([this.qProj.weight, this.kProj.weight, this.vProj.weight], 0); // (3d, d)
    // RoPE turns the query and key heads (the first 2d columns) as the product is stored.
    const turn = this.ropeTheta !== null && pos
      ? { positions: pos, headDim: hd, columns: 2 * d, theta: this.ropeTheta, maxPosition: this.maxPosition }
      : undefined;
    // Without a sink, attention's backward rotates dQ and dK back as it stores them (the only consumer of qkv).
    const unrope = turn && !kvSink
      ? { positions: turn.positions, theta: turn.theta, maxPosition: turn.maxPosition }
      : undefined;
    const product = matmul(x, w, { transB: true, rope: turn && { ...turn, gradientBeforeRotation: !!unrope } });
    const qkv = reshape(product, [B, T, 3, H, hd]); // (B, T, 3, H, hd)
    if (kvSink) {
      // The sink's contract is separate (B, T, H, hd) keys and values: copies, made only when one is given.
      const part = (p: number) => reshape(slice(qkv, { axis: 2, start: p, end: p + 1 }), [B, T, H, hd]);
      kvSink(part(1), part(2));
    }
    const o = packedAttention(qkv, { causal: true, rope: unrope }); // (B, T, H, hd)
    return this.outputProj.forward(reshape(o, [B, T, d]), { residual }); // (B, T, d)
  }

  /** The parameters under their CS336 names (`q_proj.weight`, ...), prefixed with `prefix`. */
  namedParameters(prefix: string): [string, Tensor][] {
    return [
      ...this.qProj.namedParameters(`${prefix}q_proj.`),
      ...this.kProj.namedParameters(`${prefix}k_proj.`),
      ...this.vProj.namedParameters(`${prefix}v_proj.`),
      ...this.outputProj.namedParameters(`${prefix}output_proj.`),
    ];
  }
}

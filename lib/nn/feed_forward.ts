/**
 * The position-wise feed-forward network of a transformer block: SwiGLU `w2(silu(w1 x) * w3 x)` (CS336's
 * default), or the plain SiLU MLP `w2(silu(w1 x))` of the activation ablation, which has no `w3` and is usually
 * given d_ff = 4 * d_model so that both variants have about the same number of parameters. Its `decodeStep`
 * computes the same for one token per sequence.
 *
 * @module
 */
import { decodeLinearKernel } from "../../kernels/decode.ts";
import { gpu, type GpuBuffer } from "../gpu/backend.ts";
import type { FeedForwardKind } from "./config.ts";
import type { Rng } from "../util/random.ts";
import { record } from "../tensor/graph.ts";
import { concat, mapElements, matmul, reshape, silu, siluGateLinear, type Tensor } from "../tensor/mod.ts";
import type { DecodeContext } from "./decode.ts";
import { Linear, type RMSNorm } from "./layers.ts";

const SIGMOID = "(1.0 / (1.0 + exp(-v0)))";

/**
 * `silu(a) * b` in one kernel, and its gradients in one kernel per input. Compared with `mul(silu(a), b)` this
 * runs three kernels instead of five per step and never stores `silu(a)`, a (batch, seq, dFf) activation per layer
 * (44 MB at the CS336 TinyStories shape with batch 32).
 */
function siluGate(a: Tensor, b: Tensor): Tensor {
  if (a.shape.join() !== b.shape.join() || a.dtype !== "f32" || b.dtype !== "f32") {
    throw new Error(`siluGate: needs two f32 tensors of one shape, got ${a.describe()} and ${b.describe()}`);
  }
  const y = mapElements("silu_gate", [a, b], `v0 * ${SIGMOID} * v1`);
  return record(y, "siluGate", [a, b], (dy) => [
    // d silu(a) / da = s (1 + a (1 - s)) with s = sigmoid(a).
    a.requiresGrad
      ? mapElements("silu_gate_backward_a", [a, b, dy], `v2 * v1 * ${SIGMOID} * (1.0 + v0 * (1.0 - ${SIGMOID}))`)
      : null,
    b.requiresGrad ? mapElements("silu_gate_backward_b", [a, dy], `v1 * v0 * ${SIGMOID}`) : null,
  ]);
}

/** Options of {@linkcode FeedForward}. */
export interface FeedForwardOptions {
  /** Variant (default `"swiglu"`). */
  kind?: FeedForwardKind;
  /**
   * SwiGLU only: one matmul against the row-concatenated w1/w3 weights, gated in place (default true); false runs
   * the two projections separately (for comparison; the same values).
   */
  fused?: boolean;
  /** Generator for the weights. */
  rng?: Rng;
}

/**
 * SwiGLU or SiLU feed-forward network over (..., dModel).
 *
 * @example
 * ```ts
 * import { initGpu, randn } from "@nanolm/nanolm/tensor";
 * import { FeedForward } from "@nanolm/nanolm/nn";
 * await initGpu();
 * const ffn = new FeedForward(32, 96);
 * const y = ffn.forward(randn([2, 5, 32]));
 * if (y.shape.join() !== "2,5,32" || ffn.w3 === null) throw new Error(`${y.describe()}, SwiGLU by default`);
 * ```
 */
export class FeedForward {
  /** The variant. */
  readonly kind: FeedForwardKind;
  /** Up projection through the activation, (dFf, dModel). */
  readonly w1: Linear;
  /** Down projection, (dModel, dFf). */
  readonly w2: Linear;
  /** Gate projection (SwiGLU only), (dFf, dModel). */
  readonly w3: Linear | null;
  /** Whether SwiGLU's w1 and w3 projections run as one matmul against their concatenated weights. */
  readonly fused: boolean;

  /** Creates the projections. */
  constructor(dModel: number, dFf: number, options: FeedForwardOptions = {}) {
    this.kind = options.kind ?? "swiglu";
    this.fused = options.fused ?? true;
    const rng = options.rng;
    // Creation order w1, w2, w3 matches the CS336 module so that seeded initialisations line up.
    this.w1 = new Linear(dModel, dFf, { rng });
    this.w2 = new Linear(dFf, dModel, { rng });
    this.w3 = this.kind === "swiglu" ? new Linear(dModel, dFf, { rng }) : null;
    // The fused projection's weight is then a view of the two, not a copy made every step.
    if (this.w3 && this.fused) Linear.packRows([this.w1, this.w3]);
  }

  /**
   * Maps (..., dModel) to (..., dModel). With `residual` (shaped like the result), returns `residual + ffn(x)`,
   * summed in the last projection's matmul epilogue.
   */
  forward(x: Tensor, options: { residual?: Tensor } = {}): Tensor {
    const residual = options.residual;
    if (this.w3 && this.fused) {
      // x @ [W1; W3]^T: one matmul forward, one per operand backward (K = 2 dFf: no sum of two dX).
      const lead = x.shape.slice(0, -1), dModel = this.w2.outFeatures;
      const w = concat([this.w1.weight, this.w3.weight], 0); // (2 dFf, dModel)
      const rows = reshape(x, [-1, this.w1.inFeatures]); // (N, dModel)
      const h = matmul(rows, w, { transB: true }); // (N, 2 dFf)
      // The gate and w2 as one op (w2.forward's product, bias-free): its backward applies the gate's backward in
      // the epilogue of dG's matmul instead of a separate pass over dG.
      if (residual && (residual.ndim !== lead.length + 1 || residual.shape[residual.ndim - 1] !== dModel)) {
        throw new Error(
          `FeedForward.forward: residual ${residual.describe()} does not match the output (..., ${dModel})`,
        );
      }
      const addend = residual ? reshape(residual, [-1, dModel]) : undefined; // (N, dModel)
      const y = siluGateLinear(h, this.w2.weight, { addend }); // (N, dModel)
      return reshape(y, [...lead, dModel]); // (..., dModel)
    }
    const h1 = this.w1.forward(x); // (..., dFf)
    const hidden = this.w3 ? siluGate(h1, this.w3.forward(x)) : silu(h1); // (..., dFf)
    return this.w2.forward(hidden, { residual }); // (..., dModel)
  }

  /**
   * {@linkcode FeedForward.forward} of one token per sequence: `x` (rows, dModel), after `norm` (fused) when given,
   * through w1 (and w3) with the activation, then w2 added to `residual` (rows, dModel) in place. Fused or not,
   * SwiGLU's two projections run as one kernel.
   */
  decodeStep(x: GpuBuffer, residual: GpuBuffer, ctx: DecodeContext, norm: RMSNorm | null = null): void {
    const rows = ctx.rows, dModel = this.w1.inFeatures, dFf = this.w1.outFeatures;
    const hidden = ctx.scratch("ffn.hidden", rows * dFf * 4);
    const epilogue = this.w3 ? "swiglu" : "silu";
    gpu().run(decodeLinearKernel({ rows, k: dModel, n: dFf, norm: norm && { eps: norm.eps }, epilogue }), [
      x,
      ...(norm ? [norm.weight.buffer] : []),
      this.w1.weight.buffer,
      ...(this.w3 ? [this.w3.weight.buffer] : []),
      hidden,
    ]);
    gpu().run(decodeLinearKernel({ rows, k: dFf, n: dModel, epilogue: "add" }), [
      hidden,
      this.w2.weight.buffer,
      residual,
    ]);
  }

  /** The parameters under their CS336 names (`w1.weight`, ...), prefixed with `prefix`. */
  namedParameters(prefix: string): [string, Tensor][] {
    return [
      ...this.w1.namedParameters(`${prefix}w1.`),
      ...this.w2.namedParameters(`${prefix}w2.`),
      ...(this.w3 ? this.w3.namedParameters(`${prefix}w3.`) : []),
    ];
  }
}

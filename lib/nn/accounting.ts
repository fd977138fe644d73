/**
 * Resource accounting of the transformer LM: parameters, FLOPs, memory and model FLOPs utilisation (MFU), by
 * component, following the conventions of CS336 assignment 1:
 *
 * - a matrix multiply of (m×k)·(k×n) costs 2·m·k·n FLOPs;
 * - attention scores QKᵀ and the weighted sum AV are counted in full (the causal mask is not credited), summed
 *   over heads they cost 2·T²·d_model each per sequence;
 * - the backward pass costs twice the forward pass, so a training step costs three forward passes;
 * - AdamW keeps two float32 moments per parameter.
 *
 * The parameter names follow the CS336 state dict: per layer `attn.{q,k,v,output}_proj` (d×d each), `ln1`, `ln2`
 * (d each, absent with `norm: "none"`; a parallel block has one shared `ln1`), `ffn.w1`, `ffn.w3` (d_ff×d) and
 * `ffn.w2` (d×d_ff) — no `w3` for the SiLU MLP — then `ln_final` and `lm_head` (absent when tied).
 *
 * @module
 */
import type { ModelConfig } from "./config.ts";

/**
 * The architecture fields accounting needs: the shape fields of a {@linkcode ModelConfig}, with the variants
 * optional (defaults: SwiGLU, pre-norm, RoPE, sequential, untied). A `ModelConfig` fits.
 */
export type ModelShape =
  & Pick<ModelConfig, "vocabSize" | "contextLength" | "dModel" | "numLayers" | "numHeads" | "dFf">
  & Partial<Pick<ModelConfig, "ffn" | "norm" | "position" | "parallelLayers" | "tieEmbeddings">>;

/** Parameter counts by component (whole model unless noted). */
export interface ParameterCounts {
  /** Token embedding matrix V·d. */
  embedding: number;
  /** Attention projections of all layers, 4·d² per layer. */
  attention: number;
  /** Feed-forward weights of all layers. */
  feedForward: number;
  /** RMSNorm gains of all layers and the final norm. */
  norms: number;
  /** LM head V·d (0 when tied). */
  lmHead: number;
  /** Parameters of one block. */
  perLayer: number;
  /** Everything. */
  total: number;
}

/** Forward FLOPs by component for a batch, whole model. */
export interface ForwardFlops {
  /** Q, K and V projections: 3 · 2·B·T·d² per layer. */
  qkvProjections: number;
  /** QKᵀ: 2·B·T²·d per layer. */
  attentionScores: number;
  /** Attention-weighted sum of values AV: 2·B·T²·d per layer. */
  attentionValues: number;
  /** Output projection: 2·B·T·d² per layer. */
  outputProjection: number;
  /** Feed-forward matmuls: 3 (SwiGLU) or 2 (SiLU) · 2·B·T·d·d_ff per layer. */
  feedForward: number;
  /** LM head: 2·B·T·d·V. */
  lmHead: number;
  /** Sum of the matrix multiplies above. */
  matmul: number;
  /** Elementwise and reduction work (norms, RoPE, softmax, activations, residual adds, cross-entropy), estimated. */
  nonMatmul: number;
  /** `matmul + nonMatmul`. */
  total: number;
}

/** Options of the FLOP and memory functions. */
export interface WorkloadOptions {
  /** Sequences per batch B (default 1). */
  batchSize?: number;
  /** Tokens per sequence T (default the context length). */
  seqLen?: number;
}

function resolve(shape: ModelShape, options: WorkloadOptions = {}) {
  const B = options.batchSize ?? 1, T = options.seqLen ?? shape.contextLength;
  const { vocabSize, contextLength, dModel, numLayers, numHeads, dFf } = shape;
  const sizes = { vocabSize, contextLength, dModel, numLayers, numHeads, dFf, batchSize: B, seqLen: T };
  for (const [name, v] of Object.entries(sizes)) {
    if (!(Number.isInteger(v) && v > 0)) {
      throw new RangeError(`Accounting needs ${name} to be a positive integer, got ${v}`);
    }
  }
  if (shape.dModel % shape.numHeads !== 0) {
    throw new RangeError(`Accounting needs numHeads (${shape.numHeads}) to divide dModel (${shape.dModel})`);
  }
  const ffnMatrices = (shape.ffn ?? "swiglu") === "swiglu" ? 3 : 2;
  const hasNorm = (shape.norm ?? "pre") !== "none";
  const normsPerLayer = hasNorm ? (shape.parallelLayers ? 1 : 2) : 0;
  return {
    B,
    T,
    d: shape.dModel,
    V: shape.vocabSize,
    L: shape.numLayers,
    f: shape.dFf,
    ffnMatrices,
    hasNorm,
    normsPerLayer,
  };
}

/**
 * Parameter counts by component.
 *
 * @example
 * ```ts
 * import { parameterCounts } from "@nanolm/nanolm/nn";
 * // GPT-2 XL with SwiGLU: L·(4d² + 3·d·d_ff + 2d) + 2·V·d + d, the CS336 answer.
 * const xl = { vocabSize: 50257, contextLength: 1024, dModel: 1600, numLayers: 48, numHeads: 25, dFf: 6400 };
 * if (parameterCounts(xl).total !== 2_127_057_600) throw new Error("GPT-2 XL has 2,127,057,600 parameters");
 * ```
 */
export function parameterCounts(shape: ModelShape): ParameterCounts {
  const { d, V, L, f, ffnMatrices, hasNorm, normsPerLayer } = resolve(shape);
  const attentionPerLayer = 4 * d * d, ffnPerLayer = ffnMatrices * d * f, normsInLayer = normsPerLayer * d;
  const perLayer = attentionPerLayer + ffnPerLayer + normsInLayer;
  const embedding = V * d, lmHead = shape.tieEmbeddings ? 0 : V * d;
  const norms = L * normsInLayer + (hasNorm ? d : 0);
  return {
    embedding,
    attention: L * attentionPerLayer,
    feedForward: L * ffnPerLayer,
    norms,
    lmHead,
    perLayer,
    total: embedding + L * perLayer + (hasNorm ? d : 0) + lmHead,
  };
}

/**
 * Forward-pass FLOPs by component for `batchSize` sequences of `seqLen` tokens. The non-matmul estimate counts,
 * per element: RMSNorm 4 (square, sum, scale, gain), RoPE 3 per element of Q and K, softmax 5 per score (max,
 * subtract, exp, sum, divide), causal mask 1 per score, SwiGLU 5 per hidden unit (SiLU 4 + gate product; SiLU MLP
 * 4), residual adds 1, cross-entropy 4 per logit.
 *
 * @example
 * ```ts
 * import { forwardFlops } from "@nanolm/nanolm/nn";
 * // One GPT-2 XL sequence of 1024 tokens: about 4.51 TFLOPs of matmuls (the CS336 answer).
 * const xl = { vocabSize: 50257, contextLength: 1024, dModel: 1600, numLayers: 48, numHeads: 25, dFf: 6400 };
 * const flops = forwardFlops(xl);
 * if (Math.abs(flops.matmul / 4.51e12 - 1) > 0.01) throw new Error(`matmul FLOPs ${flops.matmul}, not 4.51e12`);
 * if (!(flops.total > flops.matmul)) throw new Error("the total adds the non-matmul estimate");
 * ```
 */
export function forwardFlops(shape: ModelShape, options: WorkloadOptions = {}): ForwardFlops {
  const { B, T, d, V, L, f, ffnMatrices, hasNorm, normsPerLayer } = resolve(shape, options);
  const h = shape.numHeads, tokens = B * T;
  const qkvProjections = L * 3 * 2 * tokens * d * d;
  const attentionScores = L * 2 * B * T * T * d;
  const attentionValues = L * 2 * B * T * T * d;
  const outputProjection = L * 2 * tokens * d * d;
  const feedForward = L * ffnMatrices * 2 * tokens * d * f;
  const lmHead = 2 * tokens * d * V;
  const matmul = qkvProjections + attentionScores + attentionValues + outputProjection + feedForward + lmHead;
  const normFlops = 4 * tokens * d * (L * normsPerLayer + (hasNorm ? 1 : 0));
  const ropeFlops = (shape.position ?? "rope") === "rope" ? L * 3 * 2 * tokens * d : 0;
  const softmaxFlops = L * 6 * B * h * T * T;
  const activationFlops = L * tokens * f * (ffnMatrices === 3 ? 5 : 4);
  const residualFlops = L * 2 * tokens * d;
  const crossEntropyFlops = 4 * tokens * V;
  const nonMatmul = normFlops + ropeFlops + softmaxFlops + activationFlops + residualFlops + crossEntropyFlops;
  return {
    qkvProjections,
    attentionScores,
    attentionValues,
    outputProjection,
    feedForward,
    lmHead,
    matmul,
    nonMatmul,
    total: matmul + nonMatmul,
  };
}

/** FLOPs of one training step (forward + backward), matmuls only or with the non-matmul estimate. */
export interface TrainingFlops {
  /** Forward pass. */
  forward: number;
  /** Backward pass, twice the forward pass. */
  backward: number;
  /** Forward + backward. */
  total: number;
}

/**
 * FLOPs of a training step: forward plus a backward pass of twice the forward cost. Matmul FLOPs only unless
 * `includeNonMatmul`.
 *
 * @example
 * ```ts
 * import { forwardFlops, trainingFlops } from "@nanolm/nanolm/nn";
 * const shape = { vocabSize: 10000, contextLength: 256, dModel: 512, numLayers: 4, numHeads: 16, dFf: 1344 };
 * const forward = forwardFlops(shape, { batchSize: 32 }).matmul;
 * const step = trainingFlops(shape, { batchSize: 32 });
 * if (step.backward !== 2 * forward || step.total !== 3 * forward) throw new Error("backward is twice the forward");
 * ```
 */
export function trainingFlops(
  shape: ModelShape,
  options: WorkloadOptions & { includeNonMatmul?: boolean } = {},
): TrainingFlops {
  const f = forwardFlops(shape, options);
  const forward = options.includeNonMatmul ? f.total : f.matmul;
  return { forward, backward: 2 * forward, total: 3 * forward };
}

/** Bytes of training state and activations. */
export interface MemoryUsage {
  /** Parameters. */
  parameters: number;
  /** Gradients (one per parameter). */
  gradients: number;
  /** AdamW first and second moments. */
  optimizerState: number;
  /** Activations saved for the backward pass of one batch. */
  activations: number;
  /** Sum of the above. */
  total: number;
}

/**
 * Memory of a training step in bytes (float32 by default). Activations follow the CS336 counting: per block the
 * outputs of the two RMSNorms, Q/K/V, the scores and softmax (h·T² each per sequence), the attention output and
 * its projection, the feed-forward intermediates (SwiGLU: w1, w3, SiLU and product, d_ff each; SiLU MLP: w1 and
 * SiLU) and w2's output; then the final norm, the logits and the softmax of the cross-entropy.
 *
 * @example
 * ```ts
 * import { memoryUsage, parameterCounts } from "@nanolm/nanolm/nn";
 * const shape = { vocabSize: 10000, contextLength: 256, dModel: 512, numLayers: 4, numHeads: 16, dFf: 1344 };
 * const mem = memoryUsage(shape, { batchSize: 32 });
 * const P = parameterCounts(shape).total;
 * // float32 parameters and gradients, and AdamW's two float32 moments.
 * if (mem.parameters !== 4 * P || mem.gradients !== 4 * P) throw new Error("4 bytes a parameter and a gradient");
 * if (mem.optimizerState !== 8 * P) throw new Error("AdamW keeps two moments a parameter");
 * ```
 */
export function memoryUsage(
  shape: ModelShape,
  options: WorkloadOptions & { bytesPerElement?: number } = {},
): MemoryUsage {
  const { B, T, d, V, L, f, ffnMatrices, hasNorm, normsPerLayer } = resolve(shape, options);
  const bytes = options.bytesPerElement ?? 4;
  const P = parameterCounts(shape).total;
  const perTokenPerLayer = normsPerLayer * d + 3 * d + 2 * shape.numHeads * T + d + d +
    (ffnMatrices === 3 ? 4 * f : 2 * f) + d;
  const elements = B * T * (L * perTokenPerLayer + (hasNorm ? d : 0) + 2 * V);
  const parameters = bytes * P, gradients = bytes * P, optimizerState = 2 * bytes * P;
  const activations = bytes * elements;
  return {
    parameters,
    gradients,
    optimizerState,
    activations,
    total: parameters + gradients + optimizerState + activations,
  };
}

/**
 * Model FLOPs utilisation: achieved training matmul FLOP/s (3 × forward matmul FLOPs per token × tokens/s) over the
 * hardware's peak FLOP/s.
 *
 * @example
 * ```ts
 * import { modelFlopsUtilization } from "@nanolm/nanolm/nn";
 * const shape = { vocabSize: 10000, contextLength: 256, dModel: 512, numLayers: 4, numHeads: 16, dFf: 1344 };
 * const mfu = modelFlopsUtilization(257_000, shape, { peakFlopsPerSecond: 67e12 });
 * // 6N + 12·L·T·d = 111,722,496 FLOPs a token, for N = 17,571,840 matmul weights.
 * if (Math.abs(mfu - (257_000 * 111_722_496) / 67e12) > 1e-12) throw new Error(`MFU ${mfu}, not 0.4286`);
 * ```
 */
export function modelFlopsUtilization(
  tokensPerSecond: number,
  shape: ModelShape,
  options: { peakFlopsPerSecond: number; seqLen?: number },
): number {
  if (!(options.peakFlopsPerSecond > 0)) {
    throw new RangeError(`Peak FLOP/s must be positive, got ${options.peakFlopsPerSecond}`);
  }
  return (tokensPerSecond * trainingFlopsPerToken(shape, options)) / options.peakFlopsPerSecond;
}

/**
 * Training matmul FLOPs per token at sequence length `seqLen` (default the context length): 3 × forward / T.
 *
 * @example
 * ```ts
 * import { trainingFlopsPerToken } from "@nanolm/nanolm/nn";
 * const shape = { vocabSize: 100, contextLength: 16, dModel: 32, numLayers: 2, numHeads: 4, dFf: 64 };
 * // Kaplan et al.'s 6N + 12·L·T·d, N the matmul weights: L·(4d² + 3·d·d_ff) + V·d.
 * const N = 2 * (4 * 32 * 32 + 3 * 32 * 64) + 100 * 32;
 * const expected = 6 * N + 12 * 2 * 16 * 32;
 * if (trainingFlopsPerToken(shape) !== expected) throw new Error(`${trainingFlopsPerToken(shape)} != ${expected}`);
 * ```
 */
export function trainingFlopsPerToken(shape: ModelShape, options: { seqLen?: number } = {}): number {
  const T = options.seqLen ?? shape.contextLength;
  return trainingFlops(shape, { batchSize: 1, seqLen: T }).total / T;
}

/** One row of {@linkcode accountingTable}. */
export interface AccountingRow {
  /** Component name. */
  component: string;
  /** Parameters of the component (whole model). */
  parameters: number;
  /** Forward FLOPs of the component for the workload. */
  forwardFlops: number;
  /** Share of the forward FLOPs (matmuls plus the non-matmul estimate). */
  flopShare: number;
}

/**
 * Parameters and forward FLOPs by component, one row each, plus a total row: the table of the CS336 accounting
 * questions, ready for `textTable`/`tableDisplay`.
 *
 * @example
 * ```ts
 * import { accountingTable, parameterCounts } from "@nanolm/nanolm/nn";
 * const shape = { vocabSize: 50257, contextLength: 1024, dModel: 768, numLayers: 12, numHeads: 12, dFf: 3072 };
 * const rows = accountingTable(shape);
 * const total = rows.at(-1)!, parts = rows.slice(0, -1);
 * if (total.component !== "total" || total.flopShare !== 1) throw new Error("the last row is the total");
 * const parameters = parts.reduce((sum, row) => sum + row.parameters, 0);
 * if (parameters !== parameterCounts(shape).total) throw new Error("the components add up to the model");
 * const share = parts.reduce((sum, row) => sum + row.flopShare, 0);
 * if (Math.abs(share - 1) > 1e-9) throw new Error(`the FLOP shares add up to ${share}, not 1`);
 * ```
 */
export function accountingTable(shape: ModelShape, options: WorkloadOptions = {}): AccountingRow[] {
  const p = parameterCounts(shape), f = forwardFlops(shape, options);
  const rows: [string, number, number][] = [
    ["token embedding", p.embedding, 0],
    ["attention Q/K/V projections", (p.attention * 3) / 4, f.qkvProjections],
    ["attention scores QKᵀ", 0, f.attentionScores],
    ["attention weighted values AV", 0, f.attentionValues],
    ["attention output projection", p.attention / 4, f.outputProjection],
    ["feed-forward", p.feedForward, f.feedForward],
    ["RMSNorm gains", p.norms, 0],
    ["LM head", p.lmHead, f.lmHead],
    ["non-matmul (norms, RoPE, softmax, activations, residuals, loss)", 0, f.nonMatmul],
  ];
  return [...rows, ["total", p.total, f.total] as [string, number, number]].map(([component, parameters, flops]) => ({
    component,
    parameters,
    forwardFlops: flops,
    flopShare: flops / f.total,
  }));
}

/**
 * The transformer language model and its layers, CS336 style: bias-free linear maps, token embeddings, RMSNorm,
 * SwiGLU (or SiLU) feed-forward, causal multi-head self-attention with RoPE, residual blocks and the LM.
 *
 * @example
 * ```ts
 * import { initGpu, tensor } from "@nanolm/nanolm/tensor";
 * import { TransformerLM } from "@nanolm/nanolm/nn";
 * await initGpu();
 * const model = new TransformerLM({
 *   vocabSize: 256, contextLength: 16, dModel: 32, numLayers: 2, numHeads: 4, dFf: 96, ropeTheta: 10000,
 * });
 * const logits = model.forward(tensor(new Int32Array([1, 2, 3]), { shape: [1, 3] }));
 * if (logits.shape.join() !== "1,3,256") throw new Error(logits.describe());
 * ```
 *
 * @module
 */
export { Embedding, type LayerInitOptions, Linear, RMSNorm, type RMSNormOptions } from "./layers.ts";
export {
  type AttentionForwardOptions,
  CausalSelfAttention,
  type CausalSelfAttentionOptions,
  type KvSink,
} from "./attention.ts";
export { FeedForward, type FeedForwardOptions } from "./feed_forward.ts";
export { TransformerBlock, type TransformerBlockOptions } from "./block.ts";
export { type DecodeContext, DecodeWorkspace, type DecodeWorkspaceOptions, type LayerKvCache } from "./decode.ts";
export { type ForwardOptions, TransformerLM, type TransformerLMOptions, type WeightArray } from "./transformer.ts";
export {
  type FeedForwardKind,
  type ModelConfig,
  type ModelConfigInput,
  type NormPlacement,
  parseModelConfig,
  type PositionEncoding,
} from "./config.ts";
export {
  type AccountingRow,
  accountingTable,
  type ForwardFlops,
  forwardFlops,
  type MemoryUsage,
  memoryUsage,
  modelFlopsUtilization,
  type ModelShape,
  type ParameterCounts,
  parameterCounts,
  type TrainingFlops,
  trainingFlops,
  trainingFlopsPerToken,
  type WorkloadOptions,
} from "./accounting.ts";
export { modelBundle } from "./view.ts";

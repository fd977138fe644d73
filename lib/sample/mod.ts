/**
 * Generation: a KV-cached decode loop on the GPU with GPU top-k/top-p sampling (`generateStream`, `generateText`),
 * and a plain reference loop with host sampling (`generate`).
 *
 * @example
 * ```ts
 * import { initGpu } from "@nanolm/nanolm/tensor";
 * import { TransformerLM } from "@nanolm/nanolm/nn";
 * import { generateStream } from "@nanolm/nanolm/sample";
 * await initGpu();
 * const model = new TransformerLM({ vocabSize: 32, contextLength: 16, dModel: 16, numLayers: 1, numHeads: 2 });
 * const ids: number[] = [];
 * for await (const e of generateStream(model, [1, 2, 3], { maxNewTokens: 4, temperature: 0 })) ids.push(e.token);
 * if (ids.length !== 4) throw new Error(`${ids.length} tokens`);
 * ```
 *
 * @module
 */
export { generate, type GenerateOptions } from "./generate.ts";
export {
  type FinishReason,
  generateStream,
  type GenerateStreamOptions,
  generateText,
  type GenerationEvent,
  type Prompt,
} from "./stream.ts";
export { type GpuSamplingOptions, KvCacheDecoder, type KvCacheDecoderOptions } from "./decoder.ts";
export { candidateSet, sampleToken, type SamplingOptions } from "./sampling.ts";

/**
 * nanolm: a language model from scratch on WebGPU, in TypeScript: a byte-level BPE tokenizer, tensors with
 * reverse-mode autograd and generated WGSL kernels, a transformer LM, AdamW, a trainer with exact resume, and
 * KV-cached generation (Stanford CS336's "language model from scratch" and the nanoGPT experience).
 *
 * The root exports what a first program needs; each layer has a subpath with the rest: `@nanolm/nanolm/tensor`,
 * `/nn`, `/optim`, `/tokenizer`, `/data`, `/sample`, `/train`, `/io`, `/gpu`, `/notebook`.
 *
 * @example
 * ```ts
 * import { AdamW, crossEntropy, initGpu, tensor, tidy, TransformerLM } from "@nanolm/nanolm";
 *
 * await initGpu();
 * const model = new TransformerLM({ vocabSize: 256, contextLength: 32, dModel: 64, numLayers: 2, numHeads: 4 }, {
 *   seed: 0,
 * });
 * const opt = new AdamW(model.parameters(), { lr: 3e-3 });
 *
 * const text = new TextEncoder().encode("hello world, hello webgpu. ".repeat(8));
 * const ids = tensor(Int32Array.from(text.subarray(0, 32)), { shape: [1, 32], dtype: "i32" });
 * const targets = tensor(Int32Array.from(text.subarray(1, 33)), { shape: [1, 32], dtype: "i32" });
 * const losses: number[] = [];
 * for (let step = 0; step < 30; step++) {
 *   const loss = tidy(() => {
 *     const l = crossEntropy(model.forward(ids), targets); // forward
 *     l.backward(); // fills every parameter's .grad
 *     return l; // tidy frees everything else made inside
 *   });
 *   opt.step({ maxGradNorm: 1.0 }); // fused AdamW on the GPU
 *   opt.zeroGrad();
 *   if (step % 10 === 0 || step === 29) losses.push(await loss.item()); // the only GPU->CPU wait
 *   loss.dispose();
 * }
 * if (!(losses.at(-1)! < losses[0] - 1)) throw new Error(`the loss did not fall: ${losses}`);
 * ```
 *
 * @module
 */
export {
  crossEntropy,
  initGpu,
  keep,
  matmul,
  noGrad,
  ones,
  param,
  randn,
  readAll,
  softmax,
  Tensor,
  tensor,
  tidy,
  zeros,
} from "./lib/tensor/mod.ts";
export { type ModelConfig, type ModelConfigInput, parseModelConfig } from "./lib/nn/config.ts";
export { TransformerLM } from "./lib/nn/transformer.ts";
export { AdamW } from "./lib/optim/adamw.ts";
export { cosineLr } from "./lib/optim/schedule.ts";
export { Tokenizer } from "./lib/tokenizer/tokenizer.ts";
export { loadTokenizer, saveTokenizer } from "./lib/data/tokenizer_files.ts";
export { trainBpe } from "./lib/data/train_bpe.ts";
export { TokenDataset, writeTokenFile } from "./lib/data/token_files.ts";
export { END_OF_TEXT, prepareDefaultData } from "./lib/data/default_data.ts";
export { prepareTextData } from "./lib/data/prepare.ts";
export { type FitResult, Trainer, type TrainEvent } from "./lib/train/trainer.ts";
export { type Config, type ConfigInput, parseConfig } from "./lib/train/config.ts";
export { resumePoint } from "./lib/train/resume.ts";
export { loadCheckpoint, loadWeights, saveCheckpoint, saveWeights } from "./lib/train/checkpoint.ts";
export { generate } from "./lib/sample/generate.ts";
export { generateStream, generateText } from "./lib/sample/stream.ts";
export { Rng, type RngState } from "./lib/util/random.ts";
export { ConfigError, type ConfigIssue } from "./lib/util/validate.ts";
export { VERSION } from "./lib/util/version.ts";

/**
 * nanolm: a language model from scratch on WebGPU, in TypeScript.
 *
 * Tokenizer, tensors with reverse-mode autograd, transformer LM, trainer and sampler.
 *
 * @example
 * ```ts
 * import { Rng } from "@nanolm/nanolm";
 * const rng = new Rng(0);
 * console.log(rng.uniform());
 * ```
 *
 * @module
 */
export { Rng, type RngState } from "./lib/random.ts";
export * from "./lib/tensor/mod.ts";
export { ProgressBar, type ProgressBarOptions } from "./lib/progress.ts";

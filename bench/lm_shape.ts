/**
 * The model shape the GPU benchmarks share: CS336's TinyStories LM by default, each field overridable by a flag
 * with the same names as PyTorch's reference scripts (`--vocab --ctx --d-model --layers --heads --d-ff`).
 *
 * @module
 */
import type { ModelConfigInput } from "../lib/nn/config.ts";

/** `parseArgs` options for the shape flags, to spread into a benchmark's own options. */
export const lmShapeOptions = {
  vocab: { type: "string", default: "10000" },
  ctx: { type: "string", default: "256" },
  "d-model": { type: "string", default: "512" },
  layers: { type: "string", default: "4" },
  heads: { type: "string", default: "16" },
  "d-ff": { type: "string", default: "1344" },
} as const;

/** The model config from parsed shape flags. */
export function lmShapeConfig(values: Record<keyof typeof lmShapeOptions, string | undefined>): ModelConfigInput {
  const num = (key: keyof typeof lmShapeOptions) => {
    const n = Number(values[key]);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${key} must be a positive integer, got ${values[key]}`);
    return n;
  };
  return {
    vocabSize: num("vocab"),
    contextLength: num("ctx"),
    dModel: num("d-model"),
    numLayers: num("layers"),
    numHeads: num("heads"),
    dFf: num("d-ff"),
    ropeTheta: 10000,
  };
}

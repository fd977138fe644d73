/**
 * Optimization: AdamW with global gradient-norm clipping, fused on the GPU, and the cosine learning-rate schedule
 * with linear warm-up (CS336).
 *
 * @example
 * ```ts
 * import { cosineLr } from "@nanolm/nanolm/optim";
 * const lr = cosineLr(50, { lrMax: 1e-3, lrMin: 1e-4, warmupSteps: 10, cosineCycleSteps: 100 });
 * if (!(lr < 1e-3 && lr > 1e-4)) throw new Error(`lr ${lr}`);
 * ```
 *
 * @module
 */
export { AdamW, type AdamWOptions, type StepOptions } from "./adamw.ts";
export { cosineLr, type CosineScheduleOptions } from "./schedule.ts";

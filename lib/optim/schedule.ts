/**
 * Learning-rate schedule of CS336: linear warm-up, then cosine annealing, then a constant floor.
 *
 * @module
 */

/** Parameters of {@linkcode cosineLr}, named as in the CS336 handout. */
export interface CosineScheduleOptions {
  /** Peak rate α_max, reached at the end of warm-up. */
  lrMax: number;
  /** Floor rate α_min, from `cosineCycleSteps` on. */
  lrMin: number;
  /** Warm-up iterations T_w. */
  warmupSteps: number;
  /** Cosine annealing iterations T_c (the step at which the rate reaches α_min); at least T_w. */
  cosineCycleSteps: number;
}

/**
 * The learning rate at step `t` (0-based):
 * - `t < T_w`: `t / T_w · α_max` (so step 0 has rate 0);
 * - `T_w ≤ t ≤ T_c`: `α_min + ½ (1 + cos((t − T_w) / (T_c − T_w) · π)) (α_max − α_min)`;
 * - `t > T_c`: `α_min`.
 *
 * @example
 * ```ts
 * import { cosineLr } from "@nanolm/nanolm/optim";
 * const opts = { lrMax: 1e-3, lrMin: 1e-4, warmupSteps: 10, cosineCycleSteps: 100 };
 * if (cosineLr(5, opts) !== 5e-4) throw new Error("halfway through the warmup");
 * if (cosineLr(10, opts) !== 1e-3) throw new Error("the peak after the warmup");
 * if (cosineLr(500, opts) !== 1e-4) throw new Error("the floor after the cycle");
 * ```
 */
export function cosineLr(t: number, options: CosineScheduleOptions): number {
  const { lrMax, lrMin, warmupSteps, cosineCycleSteps } = options;
  if (!Number.isFinite(t) || t < 0) throw new RangeError(`Schedule step must be a non-negative number, got ${t}`);
  if (!(warmupSteps >= 0) || !(cosineCycleSteps >= warmupSteps)) {
    throw new RangeError(
      `Schedule needs 0 <= warmupSteps <= cosineCycleSteps, got warmupSteps ${warmupSteps}, ` +
        `cosineCycleSteps ${cosineCycleSteps}`,
    );
  }
  if (t < warmupSteps) return (t / warmupSteps) * lrMax;
  if (t <= cosineCycleSteps) {
    // T_c == T_w leaves no annealing phase: the rate at t == T_w is α_max, as the handout's formula gives (cos 0).
    const progress = cosineCycleSteps === warmupSteps ? 0 : (t - warmupSteps) / (cosineCycleSteps - warmupSteps);
    return lrMin + 0.5 * (1 + Math.cos(progress * Math.PI)) * (lrMax - lrMin);
  }
  return lrMin;
}

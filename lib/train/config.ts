/**
 * Validated configuration of a training run: the model (see `nn/config.ts`) and the training hyper-parameters.
 *
 * A config is plain JSON (a file, CLI flags, checkpoint metadata), so it is parsed, not trusted: unknown keys are
 * rejected (a typo such as `numHead` must not silently fall back to a default), defaults are filled in, and every
 * problem is reported with the path of the field at fault.
 *
 * @module
 */
import { z } from "zod";

import { type ModelConfig, type ModelConfigInput, modelSchema, nonNegInt, posInt } from "../nn/config.ts";
import { validate } from "../util/validate.ts";

/** Hyper-parameters and file locations of a training run, with every default filled in. */
export interface TrainConfig {
  /** Sequences per optimizer micro-batch. */
  batchSize: number;
  /** Micro-batches whose gradients are summed before each optimizer step. */
  gradAccumulation: number;
  /** Number of optimizer steps. */
  steps: number;
  /** Peak learning rate (reached at the end of warm-up). */
  lrMax: number;
  /** Final learning rate (after the cosine cycle). */
  lrMin: number;
  /** Linear warm-up steps; defaults to 10% of `cosineCycleSteps`, at most 100. */
  warmupSteps: number;
  /** Step at which the cosine decay reaches `lrMin`; defaults to `steps`. */
  cosineCycleSteps: number;
  /** Decoupled AdamW weight decay. */
  weightDecay: number;
  /** AdamW (β1, β2). */
  betas: [number, number];
  /** AdamW ε. */
  eps: number;
  /** Global gradient L2-norm clip; 0 disables clipping. */
  gradClip: number;
  /** Evaluate on the validation file every this many steps (0: never). */
  evalInterval: number;
  /** Validation batches per evaluation. */
  evalIters: number;
  /** Write a checkpoint every this many steps (0: only at the end). */
  checkpointInterval: number;
  /** Stop early after this many evaluations in a row without a new best validation loss (0: never). */
  patience: number;
  /** Log training metrics every this many steps. */
  logInterval: number;
  /** Seed of the run's random generator (initialisation and batch sampling). */
  seed: number;
  /** Token file of the training split. */
  trainData: string;
  /** Token file of the validation split, if any. */
  valData?: string;
  /** Directory for checkpoints, metrics and the report. */
  outDir: string;
  /** Checkpoint to resume from, if any. */
  resume?: string;
  /** A reference to the tokenizer (a path or name) recorded in checkpoints. */
  tokenizer?: string;
}

/** What a caller may pass for a {@linkcode TrainConfig}: `trainData` is required, everything else has a default. */
export type TrainConfigInput = Partial<TrainConfig> & { trainData: string };

/** A whole run: the model architecture and the training hyper-parameters. */
export interface Config {
  /** The architecture. */
  model: ModelConfig;
  /** The training run. */
  train: TrainConfig;
}

/** What a caller may pass for a {@linkcode Config}. */
export interface ConfigInput {
  /** The architecture. */
  model: ModelConfigInput;
  /** The training run. */
  train: TrainConfigInput;
}

/**
 * The zod schema of a training config (used by the run config's schema, and field by field by sweep files). Its
 * input object, with a schema per field, is `trainSchema.in`.
 */
export const trainSchema = z.strictObject({
  batchSize: posInt.default(32),
  gradAccumulation: posInt.default(1),
  steps: posInt.default(5000),
  lrMax: z.number().positive().default(1e-3),
  lrMin: z.number().nonnegative().default(1e-4),
  warmupSteps: nonNegInt.optional(),
  cosineCycleSteps: posInt.optional(),
  weightDecay: z.number().nonnegative().default(0.1),
  betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.95]),
  eps: z.number().positive().default(1e-8),
  gradClip: z.number().nonnegative().default(1.0),
  evalInterval: nonNegInt.default(500),
  evalIters: posInt.default(20),
  checkpointInterval: nonNegInt.default(1000),
  patience: nonNegInt.default(0),
  logInterval: posInt.default(10),
  seed: z.number().int().refine(Number.isSafeInteger, "must be a safe integer").default(0),
  trainData: z.string().min(1),
  valData: z.string().min(1).optional(),
  outDir: z.string().min(1).default("runs/default"),
  resume: z.string().min(1).optional(),
  tokenizer: z.string().min(1).optional(),
}).transform((c): TrainConfig => {
  const cosineCycleSteps = c.cosineCycleSteps ?? c.steps;
  return { ...c, cosineCycleSteps, warmupSteps: c.warmupSteps ?? Math.min(100, Math.floor(cosineCycleSteps / 10)) };
})
  .superRefine((c, ctx) => {
    if (c.lrMin > c.lrMax) {
      ctx.addIssue({ code: "custom", path: ["lrMin"], message: `lrMin (${c.lrMin}) exceeds lrMax (${c.lrMax})` });
    }
    if (c.warmupSteps > c.cosineCycleSteps) {
      ctx.addIssue({
        code: "custom",
        path: ["warmupSteps"],
        message: `warmupSteps (${c.warmupSteps}) exceeds cosineCycleSteps (${c.cosineCycleSteps})`,
      });
    }
  });

const configSchema = z.strictObject({ model: modelSchema, train: trainSchema });

/**
 * Validates a training config and fills in the defaults (`cosineCycleSteps` defaults to `steps`).
 *
 * @example
 * ```ts
 * import { parseTrainConfig } from "@nanolm/nanolm/train";
 * const cfg = parseTrainConfig({ trainData: "data/train.u16", steps: 100, warmupSteps: 10 });
 * // Unset fields get their defaults; the cosine cycle spans the run.
 * if (cfg.cosineCycleSteps !== 100 || cfg.warmupSteps !== 10) throw new Error(JSON.stringify(cfg));
 * ```
 */
export function parseTrainConfig(input: unknown): TrainConfig {
  return validate(trainSchema, "train config", input);
}

/**
 * Validates a whole run config `{ model, train }`; issue paths start with `model.` or `train.`.
 *
 * @example
 * ```ts
 * import { parseConfig } from "@nanolm/nanolm";
 * const cfg = parseConfig({
 *   model: { vocabSize: 256, contextLength: 64, dModel: 64, numLayers: 2, numHeads: 4 },
 *   train: { trainData: "data/train.u16" },
 * });
 * // d_ff defaults to 8/3 d_model rounded up to a multiple of 64.
 * if (cfg.model.dFf !== 192) throw new Error(`dFf ${cfg.model.dFf}`);
 * ```
 */
export function parseConfig(input: unknown): Config {
  return validate(configSchema, "config", input);
}

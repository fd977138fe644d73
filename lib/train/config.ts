/**
 * Validated configuration of the transformer LM and of a training run.
 *
 * A config is plain JSON (a file, CLI flags, checkpoint metadata), so it is parsed, not trusted: unknown keys are
 * rejected (a typo such as `numHead` must not silently fall back to a default), defaults are filled in, and every
 * problem is reported with the path of the field at fault.
 *
 * @module
 */
import { z } from "zod";

/** Where normalisation sits in a block: before each sub-layer (CS336 default), after the residual add, or nowhere. */
export type NormPlacement = "pre" | "post" | "none";
/** Position information: rotary embeddings, or none at all (NoPE, causal masking alone). */
export type PositionEncoding = "rope" | "none";
/** Feed-forward variant: SwiGLU `w2(silu(w1 x) * w3 x)` or a plain SiLU MLP `w2(silu(w1 x))`. */
export type FeedForwardKind = "swiglu" | "silu";

/** The architecture of a TransformerLM, with every default filled in. */
export interface ModelConfig {
  /** Number of token ids. */
  vocabSize: number;
  /** Maximum sequence length (the RoPE tables are built for it). */
  contextLength: number;
  /** Width of the residual stream. */
  dModel: number;
  /** Number of transformer blocks. */
  numLayers: number;
  /** Number of attention heads; must divide `dModel`. */
  numHeads: number;
  /** Hidden width of the feed-forward network. */
  dFf: number;
  /** RoPE base Θ. */
  ropeTheta: number;
  /** RMSNorm epsilon. */
  normEps: number;
  /** Norm placement. */
  norm: NormPlacement;
  /** Position encoding. */
  position: PositionEncoding;
  /** Feed-forward variant. */
  ffn: FeedForwardKind;
  /** Attention and feed-forward read the same input and are added together (GPT-J / PaLM style). */
  parallelLayers: boolean;
  /** The LM head reuses the token embedding matrix (then there is no separate `lm_head.weight`). */
  tieEmbeddings: boolean;
  /**
   * Each step multiplies by the row-concatenated q/k/v weights (and SwiGLU's w1/w3) in one matmul instead of one per
   * weight: fewer, larger dispatches and no sums of input gradients. The parameters stay separate (same state dict);
   * only the speed differs. False keeps the separate matmuls, for comparison.
   */
  fusedProjections: boolean;
}

/**
 * What a caller may pass for a {@linkcode ModelConfig}: the shape fields are required, the rest default to the CS336
 * architecture (pre-norm, RoPE with Θ = 10000, SwiGLU, untied). `dFf` defaults to about 8/3 · dModel rounded up to
 * a multiple of 64 for SwiGLU and to 4 · dModel for the SiLU MLP, so both have about the same parameter count.
 */
export interface ModelConfigInput {
  /** Number of token ids. */
  vocabSize: number;
  /** Maximum sequence length. */
  contextLength: number;
  /** Width of the residual stream. */
  dModel: number;
  /** Number of transformer blocks. */
  numLayers: number;
  /** Number of attention heads. */
  numHeads: number;
  /** Hidden width of the feed-forward network. */
  dFf?: number;
  /** RoPE base Θ (default 10000). */
  ropeTheta?: number;
  /** RMSNorm epsilon (default 1e-5). */
  normEps?: number;
  /** Norm placement (default `"pre"`). */
  norm?: NormPlacement;
  /** Position encoding (default `"rope"`). */
  position?: PositionEncoding;
  /** Feed-forward variant (default `"swiglu"`). */
  ffn?: FeedForwardKind;
  /** Parallel attention and feed-forward (default false). */
  parallelLayers?: boolean;
  /** Tied input/output embeddings (default false). */
  tieEmbeddings?: boolean;
  /** One matmul against the concatenated q/k/v (and w1/w3) weights (default true). */
  fusedProjections?: boolean;
}

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

/** One problem found in a config: the dotted field path (`""` for the object itself) and what is wrong. */
export interface ConfigIssue {
  /** Dotted path of the field, e.g. `"model.numHeads"` or `"train.betas.1"`. */
  path: string;
  /** What is wrong with it. */
  message: string;
}

/**
 * Thrown by the `parse*Config` functions; the message lists every issue as `path: problem`.
 *
 * @example
 * ```ts
 * import { ConfigError, parseModelConfig } from "./config.ts";
 * try {
 *   parseModelConfig({ vocabSize: 10, contextLength: 8, dModel: 30, numLayers: 1, numHeads: 4 });
 * } catch (e) {
 *   console.assert(e instanceof ConfigError && e.issues[0].path === "numHeads");
 * }
 * ```
 */
export class ConfigError extends Error {
  /** Every problem found. */
  readonly issues: ConfigIssue[];

  /** Creates the error for `what` (e.g. "model config") from its issues. */
  constructor(what: string, issues: ConfigIssue[]) {
    const lines = issues.map((i) => `  ${i.path || "(top level)"}: ${i.message}`);
    super(`Invalid ${what}:\n${lines.join("\n")}`);
    this.name = "ConfigError";
    this.issues = issues;
  }
}

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

const modelSchema = z.strictObject({
  vocabSize: posInt,
  contextLength: posInt,
  dModel: posInt,
  numLayers: posInt,
  numHeads: posInt,
  dFf: posInt.optional(),
  ropeTheta: z.number().positive().default(10000),
  normEps: z.number().positive().default(1e-5),
  norm: z.enum(["pre", "post", "none"]).default("pre"),
  position: z.enum(["rope", "none"]).default("rope"),
  ffn: z.enum(["swiglu", "silu"]).default("swiglu"),
  parallelLayers: z.boolean().default(false),
  tieEmbeddings: z.boolean().default(false),
  fusedProjections: z.boolean().default(true),
}).superRefine((c, ctx) => {
  if (c.dModel % c.numHeads !== 0) {
    ctx.addIssue({
      code: "custom",
      path: ["numHeads"],
      message: `numHeads (${c.numHeads}) must divide dModel (${c.dModel})`,
    });
  } else if (c.position === "rope" && (c.dModel / c.numHeads) % 2 !== 0) {
    ctx.addIssue({
      code: "custom",
      path: ["numHeads"],
      message: `RoPE needs an even head dimension, got dModel / numHeads = ${c.dModel / c.numHeads}`,
    });
  }
}).transform((c): ModelConfig => ({ ...c, dFf: c.dFf ?? defaultDFf(c.dModel, c.ffn) }));

const trainSchema = z.strictObject({
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

function defaultDFf(dModel: number, ffn: FeedForwardKind): number {
  return ffn === "silu" ? 4 * dModel : Math.ceil((8 * dModel) / 3 / 64) * 64;
}

function run<T>(schema: z.ZodType<T>, what: string, input: unknown): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new ConfigError(
    what,
    result.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message })),
  );
}

/**
 * Validates a model config and fills in the defaults.
 *
 * @example
 * ```ts
 * import { parseModelConfig } from "./config.ts";
 * const cfg = parseModelConfig({ vocabSize: 10000, contextLength: 256, dModel: 512, numLayers: 4, numHeads: 16, dFf: 1344 });
 * console.assert(cfg.norm === "pre" && cfg.ropeTheta === 10000);
 * ```
 */
export function parseModelConfig(input: unknown): ModelConfig {
  return run(modelSchema, "model config", input);
}

/**
 * Validates a training config and fills in the defaults (`cosineCycleSteps` defaults to `steps`).
 *
 * @example
 * ```ts
 * import { parseTrainConfig } from "./config.ts";
 * const cfg = parseTrainConfig({ trainData: "data/train.u16", steps: 100, warmupSteps: 10 });
 * console.assert(cfg.cosineCycleSteps === 100);
 * ```
 */
export function parseTrainConfig(input: unknown): TrainConfig {
  return run(trainSchema, "train config", input);
}

/**
 * Validates a whole run config `{ model, train }`; issue paths start with `model.` or `train.`.
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * const cfg = parseConfig({
 *   model: { vocabSize: 256, contextLength: 64, dModel: 64, numLayers: 2, numHeads: 4 },
 *   train: { trainData: "data/train.u16" },
 * });
 * console.assert(cfg.model.dFf === 192);
 * ```
 */
export function parseConfig(input: unknown): Config {
  return run(configSchema, "config", input);
}

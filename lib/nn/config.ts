/**
 * The validated architecture of a transformer LM.
 *
 * A config is plain JSON (a file, CLI flags, checkpoint metadata), so it is parsed, not trusted: unknown keys are
 * rejected (a typo such as `numHead` must not silently fall back to a default), defaults are filled in, and every
 * problem is reported with the path of the field at fault.
 *
 * @module
 */
import { z } from "zod";
import { validate } from "../util/validate.ts";

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

/** Positive integers. */
export const posInt = z.number().int().positive();
/** Non-negative integers. */
export const nonNegInt = z.number().int().nonnegative();

/** The zod schema of a model config (used by the run config's schema). */
export const modelSchema = z.strictObject({
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

function defaultDFf(dModel: number, ffn: FeedForwardKind): number {
  return ffn === "silu" ? 4 * dModel : Math.ceil((8 * dModel) / 3 / 64) * 64;
}

/**
 * Validates a model config and fills in the defaults.
 *
 * @example
 * ```ts
 * import { parseModelConfig } from "@nanolm/nanolm/nn";
 * const cfg = parseModelConfig({ vocabSize: 10000, contextLength: 256, dModel: 512, numLayers: 4, numHeads: 16 });
 * if (cfg.norm !== "pre" || cfg.position !== "rope" || cfg.ropeTheta !== 10000) throw new Error("pre-norm RoPE");
 * // SwiGLU's hidden width defaults to 8/3 · d_model rounded up to a multiple of 64: 1365.3 → 1408.
 * if (cfg.dFf !== 1408) throw new Error(`dFf ${cfg.dFf}, not 1408`);
 * let message = "";
 * try {
 *   parseModelConfig({ ...cfg, numHeads: 5 });
 * } catch (e) {
 *   message = (e as Error).message;
 * }
 * if (!message.includes("numHeads (5) must divide dModel (512)")) throw new Error(`unclear error: ${message}`);
 * ```
 */
export function parseModelConfig(input: unknown): ModelConfig {
  return validate(modelSchema, "model config", input);
}

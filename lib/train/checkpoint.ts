/**
 * Checkpoints of a model and its optimizer in one call, as CS336's `save_checkpoint(model, optimizer, iteration,
 * out)` / `load_checkpoint(src, model, optimizer)`, and bare weights a CS336-style PyTorch module loads with
 * `load_state_dict`. The file format (safetensors with metadata) is `io/checkpoint_file.ts`; these functions move
 * the tensors between the GPU and it, and refuse to write weights that are not finite.
 *
 * @module
 */
import {
  type ArrayMap,
  type CheckpointState,
  readCheckpointFile,
  writeCheckpointFile,
  writeWeightsFile,
} from "../io/checkpoint_file.ts";
import { readSafetensors } from "../io/safetensors.ts";
import type { TransformerLM } from "../nn/transformer.ts";
import type { AdamW } from "../optim/adamw.ts";
import { readAll, type Tensor } from "../tensor/mod.ts";

/**
 * Thrown instead of writing a checkpoint whose weights or moments hold NaN or Inf.
 *
 * @example
 * ```ts
 * import { DivergedError } from "@nanolm/nanolm/train";
 * const e = new DivergedError("the parameters hold NaN");
 * if (!(e instanceof Error) || e.name !== "DivergedError") throw new Error("not a DivergedError");
 * ```
 */
export class DivergedError extends Error {
  /** The error's name. */
  override name = "DivergedError";
}

/** What {@linkcode saveCheckpoint} writes; everything but the model and the step is optional. */
export interface CheckpointParts {
  /** The model, whose weights go under their CS336 state-dict names. */
  model: TransformerLM;
  /** Its optimizer, whose moments and step count go along (a resume then continues exactly). */
  optimizer?: AdamW;
  /** Training step (updates applied). */
  step: number;
  /** The run config (any JSON value). */
  config?: unknown;
  /** A reference to the tokenizer, relative to the checkpoint's folder. */
  tokenizer?: string;
  /** State of the run's random generator and data loader, for an exact resume. */
  rngState?: CheckpointState["rngState"];
  /** The data loader's position (any JSON value). */
  dataPosition?: unknown;
  /** Extra string metadata. */
  extra?: Record<string, string>;
}

/**
 * Writes a model (and optimizer) checkpoint atomically: one GPU round trip for every tensor, then one file. Throws
 * {@linkcode DivergedError} rather than write non-finite values. `file` writes elsewhere than `path` (a staging
 * file that the caller renames to `path` later); errors name `path`.
 *
 * @example
 * ```ts
 * import { AdamW, initGpu, saveCheckpoint, TransformerLM } from "@nanolm/nanolm";
 * import { readCheckpointFile } from "@nanolm/nanolm/io";
 * await initGpu();
 * const model = new TransformerLM({ vocabSize: 16, contextLength: 8, dModel: 8, numLayers: 1, numHeads: 2 });
 * const optimizer = new AdamW(model.parameters());
 * const dir = await Deno.makeTempDir();
 * await saveCheckpoint(`${dir}/checkpoint.safetensors`, { model, optimizer, step: 3, config: { note: "any JSON" } });
 *
 * const saved = await readCheckpointFile(`${dir}/checkpoint.safetensors`);
 * if (saved.step !== 3 || !saved.model.has("lm_head.weight") || !saved.optimizer) throw new Error("missing parts");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveCheckpoint(
  path: string,
  parts: CheckpointParts,
  options: { file?: string } = {},
): Promise<void> {
  const params = [...parts.model.stateDict()];
  const moments = parts.optimizer ? [...parts.optimizer.stateTensors()] : [];
  const host = await hostArrays(path, [...params, ...moments]);
  const model: ArrayMap = new Map(), m: ArrayMap = new Map(), v: ArrayMap = new Map();
  params.forEach(([name], i) => model.set(name, host[i]));
  moments.forEach(([key], i) => (key.startsWith("m.") ? m : v).set(key.slice(2), host[params.length + i]));
  await writeCheckpointFile(options.file ?? path, {
    step: parts.step,
    model,
    optimizer: parts.optimizer ? { m, v, step: parts.optimizer.t } : undefined,
    rngState: parts.rngState,
    dataPosition: parts.dataPosition,
    config: parts.config,
    tokenizer: parts.tokenizer,
    extra: parts.extra,
  });
}

/**
 * Loads a checkpoint written by {@linkcode saveCheckpoint} into a model (and optimizer, when the checkpoint has its
 * state) and returns the whole checkpoint (step, config, RNG and data position...).
 *
 * @example
 * ```ts
 * import { AdamW, initGpu, loadCheckpoint, readAll, saveCheckpoint, TransformerLM } from "@nanolm/nanolm";
 * await initGpu();
 * const config = { vocabSize: 16, contextLength: 8, dModel: 8, numLayers: 1, numHeads: 2 };
 * const model = new TransformerLM(config, { seed: 1 });
 * const dir = await Deno.makeTempDir();
 * await saveCheckpoint(`${dir}/checkpoint.safetensors`, { model, optimizer: new AdamW(model.parameters()), step: 3 });
 *
 * const copy = new TransformerLM(config, { seed: 2 }); // other weights until loaded
 * const { step } = await loadCheckpoint(`${dir}/checkpoint.safetensors`, {
 *   model: copy,
 *   optimizer: new AdamW(copy.parameters()),
 * });
 * const name = "layers.0.attn.q_proj.weight";
 * const [a, b] = await readAll([model.stateDict().get(name)!, copy.stateDict().get(name)!]);
 * if (step !== 3 || a.join() !== b.join()) throw new Error("the checkpoint did not round-trip");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadCheckpoint(
  path: string,
  into: { model: TransformerLM; optimizer?: AdamW },
): Promise<CheckpointState> {
  const state = await readCheckpointFile(path);
  restoreCheckpoint(state, into);
  return state;
}

/**
 * Puts a checkpoint already read (`readCheckpointFile`) into a model and, when it has optimizer state, an optimizer.
 *
 * @example
 * ```ts
 * import { initGpu, readAll, saveCheckpoint, TransformerLM } from "@nanolm/nanolm";
 * import { readCheckpointFile } from "@nanolm/nanolm/io";
 * import { restoreCheckpoint } from "@nanolm/nanolm/train";
 * await initGpu();
 * const config = { vocabSize: 16, contextLength: 8, dModel: 8, numLayers: 1, numHeads: 2 };
 * const dir = await Deno.makeTempDir();
 * await saveCheckpoint(`${dir}/checkpoint.safetensors`, { model: new TransformerLM(config, { seed: 1 }), step: 5 });
 *
 * const state = await readCheckpointFile(`${dir}/checkpoint.safetensors`); // read once: step, config, weights
 * const model = new TransformerLM(config, { seed: 2 });
 * restoreCheckpoint(state, { model });
 * const [embeddings] = await readAll([model.stateDict().get("token_embeddings.weight")!]);
 * if (embeddings.join() !== state.model.get("token_embeddings.weight")!.data.join()) throw new Error("not restored");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function restoreCheckpoint(state: CheckpointState, into: { model: TransformerLM; optimizer?: AdamW }): void {
  into.model.loadStateDict(state.model);
  if (into.optimizer && state.optimizer) {
    const moments = new Map<string, Float32Array>();
    for (const [name, a] of state.optimizer.m) moments.set(`m.${name}`, a.data);
    for (const [name, a] of state.optimizer.v) moments.set(`v.${name}`, a.data);
    into.optimizer.loadState(moments, state.optimizer.step);
  }
}

/**
 * Writes a model's weights alone under their CS336 state-dict names, atomically: the file that
 * `safetensors.torch.load_file` + `load_state_dict` reads into a CS336-style PyTorch module.
 *
 * @example
 * ```ts
 * import { initGpu, saveWeights, TransformerLM } from "@nanolm/nanolm";
 * import { readSafetensorsHeader } from "@nanolm/nanolm/io";
 * await initGpu();
 * const model = new TransformerLM({ vocabSize: 16, contextLength: 8, dModel: 8, numLayers: 1, numHeads: 2 });
 * const dir = await Deno.makeTempDir();
 * await saveWeights(`${dir}/weights.safetensors`, model);
 *
 * // Only weights, under the names a CS336 PyTorch module's load_state_dict expects.
 * const { tensors } = await readSafetensorsHeader(`${dir}/weights.safetensors`);
 * if (tensors.get("lm_head.weight")?.shape.join() !== "16,8") throw new Error("lm_head.weight missing or misshapen");
 * if ([...tensors.keys()].some((name) => name.startsWith("m."))) throw new Error("optimizer moments in a weights file");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveWeights(path: string, model: TransformerLM): Promise<void> {
  const params = [...model.stateDict()];
  const host = await hostArrays(path, params);
  await writeWeightsFile(path, new Map(params.map(([name], i) => [name, host[i]])));
}

/**
 * Loads weights written by {@linkcode saveWeights} (or a PyTorch `save_file` of a CS336-style state dict) into a
 * model; names and shapes must match.
 *
 * @example
 * ```ts
 * import { initGpu, loadWeights, readAll, saveWeights, TransformerLM } from "@nanolm/nanolm";
 * await initGpu();
 * const config = { vocabSize: 16, contextLength: 8, dModel: 8, numLayers: 1, numHeads: 2 };
 * const trained = new TransformerLM(config, { seed: 1 });
 * const dir = await Deno.makeTempDir();
 * await saveWeights(`${dir}/weights.safetensors`, trained);
 *
 * const model = new TransformerLM(config, { seed: 2 });
 * await loadWeights(`${dir}/weights.safetensors`, model);
 * const name = "layers.0.ffn.w1.weight";
 * const [a, b] = await readAll([trained.stateDict().get(name)!, model.stateDict().get(name)!]);
 * if (a.join() !== b.join()) throw new Error("the weights did not load");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadWeights(path: string, model: TransformerLM): Promise<void> {
  const { tensors } = await readSafetensors(path);
  const weights = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of tensors) {
    if (t.dtype !== "F32") throw new Error(`Weights file ${path}: tensor "${name}" is ${t.dtype}, expected F32`);
    weights.set(name, { shape: t.shape, data: t.data as Float32Array });
  }
  model.loadStateDict(weights);
}

/** Reads named GPU tensors back in one round trip, refusing non-finite values. */
async function hostArrays(path: string, named: [string, Tensor][]): Promise<{ shape: number[]; data: Float32Array }[]> {
  const host = await readAll(named.map(([, t]) => t));
  return host.map((values, i) => {
    if (!values.every(Number.isFinite)) {
      throw new DivergedError(`Not writing checkpoint ${path}: ${named[i][0]} holds non-finite values`);
    }
    return { shape: [...named[i][1].shape], data: values as Float32Array };
  });
}

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
 * import { DivergedError } from "@nanolm/nanolm";
 * const e = new DivergedError("the parameters hold NaN");
 * if (e.name !== "DivergedError") throw new Error("wrong name");
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
 * import { AdamW, initGpu, loadCheckpoint, saveCheckpoint, TransformerLM } from "@nanolm/nanolm";
 * await initGpu();
 * const config = { vocabSize: 16, contextLength: 8, dModel: 8, numLayers: 1, numHeads: 2 };
 * const model = new TransformerLM(config, { seed: 1 }), optimizer = new AdamW(model.parameters());
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await saveCheckpoint(path, { model, optimizer, step: 3 });
 * const copy = new TransformerLM(config, { seed: 2 });
 * const { step } = await loadCheckpoint(path, { model: copy });
 * if (step !== 3) throw new Error(`step ${step}`);
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
 * ```ts ignore
 * import { loadCheckpoint } from "@nanolm/nanolm";
 * const { step } = await loadCheckpoint("runs/default/checkpoint.safetensors", { model, optimizer });
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
 * ```ts ignore
 * import { readCheckpointFile, restoreCheckpoint } from "@nanolm/nanolm";
 * restoreCheckpoint(await readCheckpointFile("runs/default/checkpoint.safetensors"), { model, optimizer });
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
 * import { initGpu, loadWeights, saveWeights, TransformerLM } from "@nanolm/nanolm";
 * await initGpu();
 * const config = { vocabSize: 16, contextLength: 8, dModel: 8, numLayers: 1, numHeads: 2 };
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await saveWeights(path, new TransformerLM(config, { seed: 1 }));
 * await loadWeights(path, new TransformerLM(config, { seed: 2 }));
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
 * ```ts ignore
 * import { loadWeights } from "@nanolm/nanolm";
 * await loadWeights("weights.safetensors", model);
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

/**
 * The on-disk format of training checkpoints: one safetensors file holding named float32 arrays and the metadata a
 * resumed run needs to continue exactly where it stopped.
 *
 * Tensor names:
 * - `model.<name>`: weights, `<name>` being the CS336 state-dict name (`layers.0.attn.q_proj.weight`...);
 * - `optim.m.<name>`, `optim.v.<name>`: AdamW first and second moments of weight `<name>`.
 *
 * `__metadata__` keys (all strings, as safetensors requires): `format` (`nanolm-checkpoint`), `format_version`,
 * `step`, `optim_step`, `rng_state` (JSON of the four RNG words), `data_position` (JSON of the data loader's
 * state), `config` (JSON of the run config), `tokenizer` (the tokenizer file), plus any caller keys.
 *
 * Paths in a checkpoint are data, not instructions: the checkpoint may come from anywhere. Writers record the
 * tokenizer with `pathToRecord` (relative to the checkpoint's folder when the file sits under it, else the path
 * the user gave); readers resolve it with `choosePath` / `resolveRecordedPath` from `paths.ts`, which follow it
 * only to a file inside the checkpoint's folder unless the user passes a path. The same holds for the paths in
 * `config` (output folder, data files): a resumed run never takes its output folder from the checkpoint.
 *
 * This module knows nothing about tensors: it moves `Float32Array`s, so the model can wrap its own tensors around it.
 *
 * @module
 */
import { findJsonError, lineAndColumn } from "../util/json.ts";
import type { RngState } from "../util/random.ts";
import { readSafetensors, type TensorMap, writeSafetensors } from "./safetensors.ts";

/** A named float32 array: shape and row-major data. */
export interface NamedArray {
  /** Dimensions, outermost first. */
  shape: number[];
  /** Row-major elements; `data.length` is the product of `shape`. */
  data: Float32Array;
}

/** Arrays by name, e.g. a model's state dict. */
export type ArrayMap = Map<string, NamedArray>;

/** AdamW state: the moments of each weight (same names and shapes as the weights) and the step count t. */
export interface OptimizerState {
  /** First moments, by weight name. */
  m: ArrayMap;
  /** Second moments, by weight name. */
  v: ArrayMap;
  /** Number of optimizer updates applied so far (the t of the bias correction). */
  step: number;
}

/** Everything a checkpoint stores. */
export interface CheckpointState {
  /** Training step at which the checkpoint was taken (the next step to run). */
  step: number;
  /** Model weights by state-dict name. */
  model: ArrayMap;
  /** Optimizer state, absent for a weights-only checkpoint. */
  optimizer?: OptimizerState;
  /** State of the run's random generator. */
  rngState?: RngState;
  /** The data loader's position, any JSON value (see `TokenDataset.state`). */
  dataPosition?: unknown;
  /** The run config (any JSON value; parse it with `parseConfig`). */
  config?: unknown;
  /**
   * The tokenizer file as recorded (see `pathToRecord` in `paths.ts`): stored and returned verbatim; resolve it
   * with `choosePath` before reading it.
   */
  tokenizer?: string;
  /** Extra string metadata. */
  extra?: Record<string, string>;
}

const FORMAT = "nanolm-checkpoint";
const FORMAT_VERSION = "1";
const RESERVED = new Set([
  "format",
  "format_version",
  "step",
  "optim_step",
  "rng_state",
  "data_position",
  "config",
  "tokenizer",
]);

function toEntries(prefix: string, arrays: ArrayMap, into: TensorMap): void {
  for (const [name, a] of arrays) {
    if (!(a.data instanceof Float32Array)) {
      throw new TypeError(
        `Checkpoint array "${prefix}${name}" must be a Float32Array, got ${
          (a.data as unknown as object)?.constructor?.name
        }`,
      );
    }
    into.set(prefix + name, { dtype: "F32", shape: a.shape, data: a.data });
  }
}

/**
 * Writes a checkpoint atomically (temporary file, flush, rename), so an interrupted write never leaves a torn file
 * in place of the last good checkpoint.
 *
 * @example
 * ```ts
 * import { readCheckpointFile, writeCheckpointFile } from "@nanolm/nanolm/io";
 * const dir = await Deno.makeTempDir();
 * const model = new Map([["lm_head.weight", { shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }]]);
 * await writeCheckpointFile(`${dir}/ckpt.safetensors`, { step: 10, model, rngState: [1, 2, 3, 4] });
 * const back = await readCheckpointFile(`${dir}/ckpt.safetensors`);
 * if (back.step !== 10 || back.model.get("lm_head.weight")!.data.join() !== "1,2,3,4") throw new Error("changed");
 * if (back.rngState?.join() !== "1,2,3,4") throw new Error("RNG state lost");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeCheckpointFile(path: string, state: CheckpointState): Promise<void> {
  if (!Number.isSafeInteger(state.step) || state.step < 0) {
    throw new RangeError(`Checkpoint step must be a non-negative integer, got ${state.step}`);
  }
  const tensors: TensorMap = new Map();
  toEntries("model.", state.model, tensors);
  const metadata: Record<string, string> = { format: FORMAT, format_version: FORMAT_VERSION, step: `${state.step}` };
  if (state.optimizer) {
    const { m, v, step } = state.optimizer;
    for (const [what, moments] of [["m", m], ["v", v]] as const) {
      for (const [name, a] of moments) {
        const w = state.model.get(name);
        if (!w) throw new Error(`Optimizer moment ${what} of "${name}" has no matching model weight`);
        if (w.shape.join() !== a.shape.join()) {
          throw new Error(`Optimizer moment ${what} of "${name}" has shape [${a.shape}], the weight has [${w.shape}]`);
        }
      }
      toEntries(`optim.${what}.`, moments, tensors);
    }
    if (!Number.isSafeInteger(step) || step < 0) {
      throw new RangeError(`Optimizer step must be a non-negative integer, got ${step}`);
    }
    metadata.optim_step = `${step}`;
  }
  if (state.rngState !== undefined) metadata.rng_state = JSON.stringify(state.rngState);
  if (state.dataPosition !== undefined) metadata.data_position = JSON.stringify(state.dataPosition);
  if (state.config !== undefined) metadata.config = JSON.stringify(state.config);
  if (state.tokenizer !== undefined) metadata.tokenizer = state.tokenizer;
  for (const [k, v] of Object.entries(state.extra ?? {})) {
    if (RESERVED.has(k)) throw new Error(`Checkpoint extra metadata key "${k}" is reserved`);
    metadata[k] = v;
  }
  await writeSafetensors(path, tensors, { metadata });
}

/**
 * Reads a checkpoint written by {@linkcode writeCheckpointFile}. Errors name the file and the problem: missing,
 * truncated or corrupt (from the safetensors reader), not a checkpoint, bad metadata, moments without weights.
 *
 * @example
 * ```ts
 * import { readCheckpointFile, writeCheckpointFile } from "@nanolm/nanolm/io";
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/ckpt.safetensors`;
 * const w = { shape: [3], data: new Float32Array([1, 2, 3]) };
 * const zeros = { shape: [3], data: new Float32Array(3) };
 * await writeCheckpointFile(path, {
 *   step: 5,
 *   model: new Map([["ln_final.weight", w]]),
 *   optimizer: { m: new Map([["ln_final.weight", zeros]]), v: new Map([["ln_final.weight", zeros]]), step: 5 },
 *   dataPosition: { offset: 1024 },
 * });
 * const ckpt = await readCheckpointFile(path);
 * if (ckpt.optimizer?.step !== 5 || !ckpt.optimizer.m.has("ln_final.weight")) throw new Error("moments lost");
 * if ((ckpt.dataPosition as { offset: number }).offset !== 1024) throw new Error("data position lost");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readCheckpointFile(path: string): Promise<CheckpointState> {
  const { tensors, metadata } = await readSafetensors(path);
  // Metadata values are shown only when they look like a format name or version; anything else is described.
  const bad = (problem: string) => new Error(`Checkpoint ${path} ${problem}`);
  if (metadata.format !== FORMAT) {
    throw bad(
      `is not a nanolm checkpoint (metadata format is ${describeValue(metadata.format)}); ` +
        `plain weight files are read with readSafetensors`,
    );
  }
  if (metadata.format_version !== FORMAT_VERSION) {
    const version = /^\d{1,6}$/.test(metadata.format_version ?? "") ? metadata.format_version : undefined;
    throw bad(
      `has format version ${version ?? `(${describeValue(metadata.format_version)})`}, ` +
        `this nanolm reads version ${FORMAT_VERSION}`,
    );
  }
  const intField = (key: string): number => {
    const n = Number(metadata[key]);
    if (!/^\d+$/.test(metadata[key] ?? "") || !Number.isSafeInteger(n)) {
      throw bad(`has an invalid ${key} (expected decimal digits)`);
    }
    return n;
  };
  const jsonField = (key: string): unknown => {
    const text = metadata[key];
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      const found = findJsonError(text) ?? { offset: 0, problem: "not valid JSON" };
      const [line, column] = lineAndColumn(text, found.offset);
      throw bad(`has metadata ${key} that is not valid JSON: ${found.problem} at line ${line}, column ${column}`);
    }
  };
  const model: ArrayMap = new Map(), m: ArrayMap = new Map(), v: ArrayMap = new Map();
  for (const [name, t] of tensors) {
    if (t.dtype !== "F32") throw bad(`has tensor "${name}" of dtype ${t.dtype}, expected F32`);
    const a = { shape: t.shape, data: t.data as Float32Array };
    if (name.startsWith("model.")) model.set(name.slice(6), a);
    else if (name.startsWith("optim.m.")) m.set(name.slice(8), a);
    else if (name.startsWith("optim.v.")) v.set(name.slice(8), a);
    else throw bad(`has tensor "${name}" outside the model. and optim. namespaces`);
  }
  const state: CheckpointState = { step: intField("step"), model };
  if (metadata.optim_step !== undefined) {
    for (const [what, moments] of [["m", m], ["v", v]] as const) {
      for (const [name, a] of moments) {
        const w = model.get(name);
        if (!w || w.shape.join() !== a.shape.join()) {
          throw bad(`has optimizer moment optim.${what}.${name} without a model weight of the same shape`);
        }
      }
    }
    state.optimizer = { m, v, step: intField("optim_step") };
  } else if (m.size + v.size > 0) {
    throw bad("has optimizer moments but no optim_step metadata");
  }
  const rng = jsonField("rng_state");
  if (rng !== undefined) {
    if (!Array.isArray(rng) || rng.length !== 4 || !rng.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32)) {
      throw bad("has an invalid rng_state (expected four 32-bit unsigned integers)");
    }
    state.rngState = rng as RngState;
  }
  const dataPosition = jsonField("data_position");
  if (dataPosition !== undefined) state.dataPosition = dataPosition;
  const config = jsonField("config");
  if (config !== undefined) state.config = config;
  if (metadata.tokenizer !== undefined) state.tokenizer = metadata.tokenizer;
  const extra = Object.fromEntries(Object.entries(metadata).filter(([k]) => !RESERVED.has(k)));
  if (Object.keys(extra).length > 0) state.extra = extra;
  return state;
}

/** A metadata value for an error message: a short name-like string as it is, anything else by its length. */
function describeValue(value: string | undefined): string {
  if (value === undefined) return "missing";
  return /^[\w.-]{1,40}$/.test(value) ? `"${value}"` : `a ${value.length}-character string`;
}

/**
 * Writes bare weights under their state-dict names (no prefix, no optimizer state), atomically: the file that
 * `safetensors.torch.load_file` + `load_state_dict` reads into a CS336-style PyTorch model.
 *
 * @example
 * ```ts
 * import { readSafetensors, writeWeightsFile } from "@nanolm/nanolm/io";
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/weights.safetensors`;
 * await writeWeightsFile(path, new Map([["ln_final.weight", { shape: [2], data: new Float32Array([1, 1]) }]]));
 * const { tensors } = await readSafetensors(path);
 * if (tensors.get("ln_final.weight")?.dtype !== "F32" || tensors.size !== 1) throw new Error("not a weights file");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeWeightsFile(
  path: string,
  weights: ArrayMap,
  options: { metadata?: Record<string, string> } = {},
): Promise<void> {
  const tensors: TensorMap = new Map();
  toEntries("", weights, tensors);
  await writeSafetensors(path, tensors, { metadata: { format: "pt", ...options.metadata } });
}

/**
 * Resuming a run from its checkpoint: the checkpoint's saved config is the base, and only what the caller gives
 * overrides it.
 *
 * A checkpoint is a file anyone can hand over, so the paths inside it are not trusted: its data and tokenizer paths
 * are recorded relative to the checkpoint's own folder ({@linkcode recordedConfig}), resolved against that folder on
 * resume, and refused when they leave it (an absolute path, or `..` past the folder), unless the caller passes the
 * path itself. The output folder is never taken from a checkpoint: a resumed run writes where the caller says, by
 * default into the checkpoint's folder.
 *
 * @module
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { type CheckpointState, readCheckpointFile } from "../io/checkpoint_file.ts";
import { ConfigError } from "../util/validate.ts";
import { parseModelConfig } from "../nn/config.ts";
import { type Config, parseConfig } from "./config.ts";
import { pathToRecord, resolveRecordedPath } from "../io/paths.ts";

/** Fields a caller gives on resume, as parsed from flags or a config file (camelCase keys). */
export interface ConfigOverrides {
  /** Model fields: they must equal the checkpoint's, since the weights fix the architecture. */
  model?: Record<string, unknown>;
  /** Training fields: each one given replaces the saved value. */
  train?: Record<string, unknown>;
}

/** A training field whose saved value a resume replaced. */
export interface Override {
  /** Dotted field path, e.g. `"train.lrMax"`. */
  field: string;
  /** The checkpoint's value. */
  saved: unknown;
  /** The value given now. */
  given: unknown;
}

/** A checkpoint read for resuming, with the config the resumed run uses. */
export interface ResumePoint {
  /** The checkpoint file. */
  path: string;
  /** Its contents. */
  state: CheckpointState;
  /** The resumed run's config: the saved one, with the given fields in place. */
  config: Config;
  /** Saved training fields that a given value replaced. */
  overrides: Override[];
}

/** Options of {@linkcode resumePoint}. */
export interface ResumeOptions {
  /** What the caller gives (flags, a config file, API fields). */
  given?: ConfigOverrides;
  /** Names a field for error messages, e.g. `"train.trainData"` -> `"--train-data"` (default: the field path). */
  describe?: (field: string) => string;
}

const PATH_FIELDS = ["trainData", "valData", "tokenizer"] as const;

/**
 * The config a checkpoint at `checkpointPath` records: data and tokenizer paths relative to the checkpoint's folder
 * when the files sit under it, else absolute (readers then refuse to follow them and ask for the flag); no output
 * folder and no resume path.
 *
 * @example
 * ```ts
 * import { parseConfig } from "@nanolm/nanolm";
 * import { recordedConfig } from "@nanolm/nanolm/train";
 * const config = parseConfig({
 *   model: { vocabSize: 256, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 },
 *   train: { trainData: "runs/a/data/train.bin", outDir: "runs/a" },
 * });
 * const recorded = recordedConfig(config, "runs/a/checkpoint.safetensors");
 * if (recorded.train.trainData !== "data/train.bin") throw new Error(`${recorded.train.trainData}`);
 * if ("outDir" in recorded.train) throw new Error("the output folder must not be recorded");
 * ```
 */
export function recordedConfig(
  config: Config,
  checkpointPath: string,
): { model: unknown; train: Record<string, unknown> } {
  const { outDir: _outDir, resume: _resume, ...train } = config.train;
  const recorded: Record<string, unknown> = { ...train };
  for (const key of PATH_FIELDS) {
    const path = config.train[key];
    if (path === undefined) continue;
    const relative = pathToRecord(path, checkpointPath);
    const inside = !isAbsolute(relative) && resolve(dirname(checkpointPath), relative) === resolve(path);
    recorded[key] = inside ? relative : resolve(path);
  }
  return { model: config.model, train: recorded };
}

/**
 * Reads a checkpoint for resuming and builds the resumed run's config: the saved config, the given training fields
 * in place of the saved ones, recorded paths resolved against the checkpoint's folder, the output folder the given
 * one or else the checkpoint's folder. Model fields may be given only with the values saved.
 *
 * @example
 * ```ts
 * import { initGpu, parseConfig, resumePoint, saveCheckpoint, TransformerLM, writeTokenFile } from "@nanolm/nanolm";
 * import { recordedConfig } from "@nanolm/nanolm/train";
 * await initGpu();
 * const dir = await Deno.makeTempDir();
 * await writeTokenFile(`${dir}/train.bin`, new Uint16Array(64));
 * const config = parseConfig({
 *   model: { vocabSize: 16, contextLength: 8, dModel: 8, numLayers: 1, numHeads: 2 },
 *   train: { trainData: `${dir}/train.bin`, steps: 100 },
 * });
 * const path = `${dir}/checkpoint.safetensors`;
 * await saveCheckpoint(path, { model: new TransformerLM(config.model), step: 100, config: recordedConfig(config, path) });
 *
 * // Train longer: the saved config, with steps replaced (`Trainer.create(point.config, { resume: point })` goes on).
 * const point = await resumePoint(path, { given: { train: { steps: 400 } } });
 * if (point.config.train.steps !== 400 || point.overrides[0]?.field !== "train.steps") throw new Error("not replaced");
 * if (point.config.train.trainData !== `${dir}/train.bin` || point.state.step !== 100) throw new Error("not resumed");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function resumePoint(path: string, options: ResumeOptions = {}): Promise<ResumePoint> {
  const describe = options.describe ?? ((field: string) => field);
  const given = { model: options.given?.model ?? {}, train: options.given?.train ?? {} };
  const state = await readCheckpointFile(path);
  const saved = state.config as { model?: unknown; train?: Record<string, unknown> } | undefined;
  if (!saved || typeof saved !== "object" || !saved.model || !saved.train || typeof saved.train !== "object") {
    throw new Error(`Checkpoint ${path} holds no run config in its metadata, so it cannot be resumed`);
  }
  let savedModel;
  try {
    savedModel = parseModelConfig(saved.model);
  } catch (e) {
    throw new Error(`Checkpoint ${path} holds an invalid model config: ${(e as Error).message}`, { cause: e });
  }
  for (const [key, value] of Object.entries(given.model)) {
    const was = (savedModel as unknown as Record<string, unknown>)[key];
    if (JSON.stringify(was) !== JSON.stringify(value)) {
      throw new Error(
        `${describe(`model.${key}`)} cannot change when resuming: the checkpoint's weights have ${key} = ` +
          `${JSON.stringify(was)}; leave it out, or start a new run`,
      );
    }
  }
  const { outDir: _outDir, resume: _resume, ...savedTrain } = saved.train;
  const train: Record<string, unknown> = { ...savedTrain, outDir: dirname(path) };
  for (const key of PATH_FIELDS) {
    const recorded = savedTrain[key];
    if (typeof recorded === "string" && !(key in given.train)) {
      train[key] = resolveRecordedPath(recorded, { checkpoint: path, key, flag: describe(`train.${key}`) });
    }
  }
  const overrides: Override[] = [];
  for (const [key, value] of Object.entries(given.train)) {
    if (key === "resume") continue;
    if (key in savedTrain && JSON.stringify(savedTrain[key]) !== JSON.stringify(value)) {
      overrides.push({ field: `train.${key}`, saved: savedTrain[key], given: value });
    }
    train[key] = value;
  }
  let config: Config;
  try {
    config = parseConfig({ model: saved.model, train });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const issues = e.issues.map((i) => ({ ...i, path: describe(i.path) }));
    throw new ConfigError(`config of the resumed run (${path} and what was given)`, issues);
  }
  return { path, state, config, overrides };
}

/**
 * Sweeps: a base config, a grid and/or a list of variations over any config field (model variants included), each
 * run trained in turn on the GPU in its own folder `<root>/<run>`, named from the values it varies.
 *
 * A sweep file is JSON:
 *
 * ```json
 * {
 *   "name": "lr",
 *   "base": { "model": { "dModel": 128 }, "train": { "steps": 2000 } },
 *   "grid": { "train": { "lrMax": [1e-3, 3e-3, 1e-2] } },
 *   "runs": [{ "name": "pre-norm" }, { "name": "no-norm", "model": { "norm": "none" } }]
 * }
 * ```
 *
 * Every run is the base, then one entry of `runs` (default: one empty entry), then one point of the grid (the
 * product of its value lists); here 2 × 3 = 6 runs, named `pre-norm_lrMax-0.001` ... `no-norm_lrMax-0.01`. Fields
 * are validated with the config's own schema, value by value, and errors name the field in the file
 * (`grid.train.lrMax.1`). Without `train.trainData` a run uses the embedded default data and the default run's
 * settings for what the file leaves out, exactly as `deno task train` with the same flags. When a run sets `lrMax`
 * but not `lrMin`, `lrMin` is a tenth of it (as in the default run), so a learning-rate grid keeps its floor below
 * its peak. `train.outDir` and `train.resume` belong to the sweep and cannot be set.
 *
 * Running a sweep ({@linkcode runSweep}) skips the runs that ended (done, diverged, stopped early), resumes an
 * interrupted one from its checkpoint exactly, and starts the others; a stop request ends the current run with a
 * checkpoint and starts no other. A run that diverges is recorded as such and the sweep goes on. Before anything
 * trains, every run's folder is checked: one that holds a run of another config is refused, so nothing is lost.
 *
 * @module
 */
import { join, resolve } from "node:path";
import type { z } from "zod";
import { modelSchema } from "../nn/config.ts";
import { defaultDataFolder, defaultRunSettings, prepareDefaultData } from "../data/default_data.ts";
import { initGpu } from "../gpu/backend.ts";
import { gpuPeaks } from "../gpu/peaks.ts";
import { trainingFlopsPerToken } from "../nn/accounting.ts";
import { parseJson } from "../util/json.ts";
import { ConfigError, type ConfigIssue } from "../util/validate.ts";
import { type Config, parseConfig, trainSchema } from "./config.ts";
import { readCheckpointFile } from "../io/checkpoint_file.ts";
import { readRunInfo, type RunInfo, RunLog } from "./runs.ts";
import { CHECKPOINT_NAME, checkRunInputs, Trainer, type TrainEvent } from "./trainer.ts";
import { recordedConfig } from "./resume.ts";
import { exists } from "../io/exists.ts";
import { readNamedTextFile } from "../io/read_text.ts";
import { writeFileAtomicSync } from "../io/atomic_write.ts";

/** Config fields by section, as a sweep file gives them (camelCase keys). */
export interface ConfigFields {
  /** Model fields. */
  model: Record<string, unknown>;
  /** Training fields. */
  train: Record<string, unknown>;
}

/** A validated sweep file. */
export interface SweepSpec {
  /** The sweep's name: its folder under the runs root. */
  name: string;
  /** A sentence on what the sweep asks, for reports. */
  description?: string;
  /** Fields every run shares. */
  base: ConfigFields;
  /** Value lists whose product gives the grid points, by section. */
  grid: { model: Record<string, unknown[]>; train: Record<string, unknown[]> };
  /** The listed variations (at least one: an empty entry when the file lists none). */
  runs: (ConfigFields & { name?: string })[];
}

/** One run of a sweep, before its data and defaults are known. */
export interface SweepRunSpec {
  /** Folder name, from the values it varies. */
  name: string;
  /** The fields it is given: base, then its list entry, then its grid point (and `lrMin` from `lrMax`). */
  given: ConfigFields;
  /** The values that set it apart from the other runs, by dotted field (`train.lrMax`), plus `run` for a name. */
  varied: Record<string, unknown>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
const RESERVED = new Set(["outDir", "resume"]);

function fieldSchemas(): Record<"model" | "train", Record<string, z.ZodType>> {
  const inner = (s: unknown) => (s as { in: { shape: Record<string, z.ZodType> } }).in.shape;
  return { model: inner(modelSchema), train: inner(trainSchema) };
}

/** A near miss for an unknown field: the same up to case, or the only field it starts. */
function nearest(word: string, words: string[]): string | undefined {
  const w = word.toLowerCase();
  const same = words.filter((k) => k.toLowerCase() === w);
  if (same.length === 1) return same[0];
  const prefixed = words.filter((k) => k.toLowerCase().startsWith(w) && w.length >= 3);
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Checks a `{ model?, train? }` section of the file, each value with its field's schema; collects issues. */
function checkFields(
  value: unknown,
  path: string,
  issues: ConfigIssue[],
  options: { lists?: boolean; extra?: string[] } = {},
): ConfigFields & Record<string, unknown> {
  const out: ConfigFields & Record<string, unknown> = { model: {}, train: {} };
  if (value === undefined) return out;
  if (!isObject(value)) {
    issues.push({ path, message: `must be an object {"model": {...}, "train": {...}}` });
    return out;
  }
  const schemas = fieldSchemas();
  for (const [section, fields] of Object.entries(value)) {
    if (options.extra?.includes(section)) {
      out[section] = fields;
      continue;
    }
    if (section !== "model" && section !== "train") {
      issues.push({ path: `${path}.${section}`, message: `unknown section (expected "model" or "train")` });
      continue;
    }
    if (!isObject(fields)) {
      issues.push({ path: `${path}.${section}`, message: "must be an object of config fields" });
      continue;
    }
    for (const [key, given] of Object.entries(fields)) {
      const where = `${path}.${section}.${key}`;
      const schema = schemas[section][key];
      if (!schema) {
        const near = nearest(key, Object.keys(schemas[section]));
        issues.push({ path: where, message: `unknown field${near ? `; did you mean ${section}.${near}?` : ""}` });
        continue;
      }
      if (section === "train" && RESERVED.has(key)) {
        issues.push({ path: where, message: `is set by the sweep (each run's folder, and its resume); remove it` });
        continue;
      }
      const values = options.lists ? given : [given];
      if (options.lists && (!Array.isArray(given) || given.length === 0)) {
        issues.push({ path: where, message: "must be a non-empty list of values" });
        continue;
      }
      (values as unknown[]).forEach((v, i) => {
        const r = schema.safeParse(v);
        if (!r.success || v === null) {
          const message = r.success ? "must not be null" : r.error.issues[0].message;
          issues.push({ path: options.lists ? `${where}.${i}` : where, message });
        }
      });
      out[section][key] = given;
    }
  }
  return out;
}

/**
 * Validates a sweep file's JSON value; `source` names it in errors and gives the default name (the file name
 * without `.json`). Throws a `ConfigError` listing every problem with the field's path in the file.
 *
 * @example
 * ```ts
 * import { parseSweep } from "@nanolm/nanolm/train";
 * const spec = parseSweep({ grid: { train: { lrMax: [1e-3, 3e-3] } } }, "sweeps/lr.json");
 * // Named after its file unless it says otherwise.
 * if (spec.name !== "lr" || spec.grid.train.lrMax.join() !== "0.001,0.003") throw new Error(JSON.stringify(spec));
 * let message = "";
 * try {
 *   parseSweep({ grid: { train: { lrMax: [1e-3, -1] } } }, "lr.json");
 * } catch (e) {
 *   message = (e as Error).message;
 * }
 * // The error names the file and the value at fault: the second learning rate.
 * if (!message.includes("lr.json") || !message.includes("grid.train.lrMax.1")) throw new Error(message);
 * ```
 */
export function parseSweep(value: unknown, source: string): SweepSpec {
  const issues: ConfigIssue[] = [];
  if (!isObject(value)) throw new ConfigError(`sweep file ${source}`, [{ path: "", message: "must be an object" }]);
  for (const key of Object.keys(value)) {
    if (!["name", "description", "base", "grid", "runs"].includes(key)) {
      issues.push({ path: key, message: `unknown key (expected name, description, base, grid, runs)` });
    }
  }
  const fileName = source.split(/[\\/]/).pop()!.replace(/\.json$/i, "");
  const name = value.name ?? fileName;
  if (typeof name !== "string" || !NAME.test(name)) {
    issues.push({ path: "name", message: "must be a folder name: letters, digits, '.', '_', '+' or '-'" });
  }
  if (value.description !== undefined && typeof value.description !== "string") {
    issues.push({ path: "description", message: "must be a string" });
  }
  const base = checkFields(value.base, "base", issues);
  const grid = checkFields(value.grid, "grid", issues, { lists: true }) as unknown as SweepSpec["grid"];
  const runs: SweepSpec["runs"] = [];
  if (value.runs !== undefined && (!Array.isArray(value.runs) || value.runs.length === 0)) {
    issues.push({ path: "runs", message: "must be a non-empty list of {name?, model?, train?}" });
  } else {
    ((value.runs as unknown[] | undefined) ?? []).forEach((entry, i) => {
      const fields = checkFields(entry, `runs.${i}`, issues, { extra: ["name"] });
      const runName = fields.name;
      if (runName !== undefined && (typeof runName !== "string" || !NAME.test(runName))) {
        issues.push({
          path: `runs.${i}.name`,
          message: "must be a folder name: letters, digits, '.', '_', '+' or '-'",
        });
      }
      runs.push({
        model: fields.model,
        train: fields.train,
        ...(runName === undefined ? {} : { name: runName as string }),
      });
    });
  }
  const gridSize = Object.keys(grid.model).length + Object.keys(grid.train).length;
  if (gridSize === 0 && runs.length === 0) {
    issues.push({ path: "", message: `needs a "grid" of values or a list of "runs"` });
  }
  if (issues.length > 0) throw new ConfigError(`sweep file ${source}`, issues);
  return {
    name: name as string,
    ...(value.description === undefined ? {} : { description: value.description as string }),
    base,
    grid,
    runs: runs.length ? runs : [{ model: {}, train: {} }],
  };
}

/**
 * Reads and validates a sweep file.
 *
 * @example
 * ```ts
 * import { readSweepFile } from "@nanolm/nanolm/train";
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await Deno.writeTextFile(path, JSON.stringify({ name: "bs", grid: { train: { batchSize: [8, 16] } } }));
 * const spec = await readSweepFile(path);
 * if (spec.name !== "bs" || spec.grid.train.batchSize.join() !== "8,16") throw new Error(JSON.stringify(spec));
 * await Deno.writeTextFile(path, '{"name": "bs",');
 * const error = await readSweepFile(path).then(() => "", (e) => (e as Error).message);
 * if (!error.includes(`sweep file ${path}`)) throw new Error(`the error names the file: ${error}`);
 * await Deno.remove(path);
 * ```
 */
export async function readSweepFile(path: string): Promise<SweepSpec> {
  const text = await readNamedTextFile(path, "sweep file");
  return parseSweep(parseJson(text, `sweep file ${path}`), path);
}

/** A value as it appears in a run's folder name. */
function nameValue(value: unknown): string {
  const text = Array.isArray(value) ? value.map(String).join("-") : String(value);
  return text.replace(/[^A-Za-z0-9.+-]+/g, "-");
}

function fieldsName(fields: ConfigFields): string {
  return [...Object.entries(fields.model), ...Object.entries(fields.train)]
    .map(([k, v]) => `${k}-${nameValue(v)}`).join("_");
}

/** The grid's points, in the order of its fields (model, then train) and values. */
function gridPoints(grid: SweepSpec["grid"]): ConfigFields[] {
  let points: ConfigFields[] = [{ model: {}, train: {} }];
  for (const section of ["model", "train"] as const) {
    for (const [key, values] of Object.entries(grid[section])) {
      points = points.flatMap((p) => values.map((v) => ({ ...p, [section]: { ...p[section], [key]: v } })));
    }
  }
  return points;
}

/**
 * The runs of a sweep: every list entry with every grid point, each named from what it varies (`lrMax-0.001`,
 * `no-norm_lrMax-0.001`: a list entry's `name`, or its fields, then the grid fields that have more than one value).
 * Throws when two runs would share a folder.
 *
 * @example
 * ```ts
 * import { parseSweep, sweepRuns } from "@nanolm/nanolm/train";
 * const spec = parseSweep({
 *   grid: { train: { lrMax: [1e-3, 1e-2] } },
 *   runs: [{}, { model: { norm: "none" } }],
 * }, "ablation.json");
 * const runs = sweepRuns(spec);
 * const names = runs.map((r) => r.name).join();
 * if (names !== "base_lrMax-0.001,base_lrMax-0.01,norm-none_lrMax-0.001,norm-none_lrMax-0.01") throw new Error(names);
 * // A run given lrMax but not lrMin keeps its floor a tenth of its peak.
 * if (runs[1].given.train.lrMin !== 1e-3) throw new Error(`lrMin ${runs[1].given.train.lrMin}`);
 * ```
 */
export function sweepRuns(spec: SweepSpec): SweepRunSpec[] {
  const points = gridPoints(spec.grid);
  const gridVaried = (["model", "train"] as const).flatMap((s) =>
    Object.entries(spec.grid[s]).filter(([, v]) => v.length > 1).map(([k]) => [s, k] as const)
  );
  const listed = spec.runs.length > 1 || spec.runs[0].name !== undefined ||
    Object.keys(spec.runs[0].model).length + Object.keys(spec.runs[0].train).length > 0;
  const runs: SweepRunSpec[] = [];
  for (const entry of spec.runs) {
    for (const point of points) {
      const given: ConfigFields = {
        model: { ...spec.base.model, ...entry.model, ...point.model },
        train: { ...spec.base.train, ...entry.train, ...point.train },
      };
      if (given.train.lrMax !== undefined && given.train.lrMin === undefined) {
        given.train.lrMin = Number(((given.train.lrMax as number) / 10).toPrecision(12));
      }
      const varied: Record<string, unknown> = {};
      const parts: string[] = [];
      if (listed) {
        const entryName = entry.name ?? (fieldsName(entry) || "base");
        parts.push(entryName);
        varied.run = entryName;
        for (const s of ["model", "train"] as const) {
          for (const [k, v] of Object.entries(entry[s])) varied[`${s}.${k}`] = v;
        }
      }
      const gridPart: ConfigFields = { model: {}, train: {} };
      for (const [s, k] of gridVaried) {
        gridPart[s][k] = point[s][k];
        varied[`${s}.${k}`] = point[s][k];
      }
      if (gridVaried.length) parts.push(fieldsName(gridPart));
      runs.push({ name: parts.join("_") || "base", given, varied });
    }
  }
  const seen = new Map<string, SweepRunSpec>();
  for (const run of runs) {
    const other = seen.get(run.name);
    if (other) {
      throw new ConfigError(`sweep ${spec.name}`, [{
        path: "",
        message: `two runs would share the folder ${run.name} (${JSON.stringify(other.varied)} and ` +
          `${JSON.stringify(run.varied)}); give the list entries distinct names, or distinct values`,
      }]);
    }
    seen.set(run.name, run);
  }
  return runs;
}

/** A run of a sweep with its folder and full config. */
export interface PlannedRun extends SweepRunSpec {
  /** Its folder, `<root>/<name>`. */
  dir: string;
  /** The validated config (output folder included). */
  config: Config;
  /** The embedded default data's vocabulary size, when the run trains on the default data. */
  defaultData?: number;
}

/** A sweep ready to run. */
export interface SweepPlan {
  /** The sweep's name. */
  name: string;
  /** Its description, if the file has one. */
  description?: string;
  /** The folder of its runs (default `runs/<name>`). */
  root: string;
  /** The runs, in order. */
  runs: PlannedRun[];
}

/** Options of {@linkcode planSweep}. */
export interface PlanOptions {
  /** The folder of the runs (default `runs/<name>`). */
  root?: string;
  /** Whether the adapter is a software one (the default run is then tiny); default: asks the GPU. */
  software?: boolean;
  /** Progress lines (preparing the default data). */
  log?: (line: string) => void;
}

/** The smallest vocabulary of the embedded data's tokenizer: the 256 bytes and `<|endoftext|>`. */
const DEFAULT_DATA_MIN_VOCAB = 256 + 1;

/** The default data's token counts, for validating configs before the data is prepared. */
const DEFAULT_TOKENS_ESTIMATE = { train: 544_000, val: 28_000 };

function buildRunConfig(
  run: SweepRunSpec,
  dir: string,
  software: boolean,
  data: { tokens: { train: number; val: number }; files?: Record<string, string> } | null,
): Config {
  let layered: ConfigFields;
  if (run.given.train.trainData === undefined) {
    const vocabSize = (run.given.model.vocabSize as number | undefined) ?? 512;
    const sized = defaultRunSettings(data?.tokens ?? DEFAULT_TOKENS_ESTIMATE, { vocabSize, software });
    const files = data?.files ?? { trainData: "-", valData: "-", tokenizer: "-" };
    layered = {
      model: { ...sized.model, ...run.given.model },
      train: { ...sized.train, ...files, outDir: dir, ...run.given.train },
    };
  } else {
    layered = { model: run.given.model, train: { outDir: dir, ...run.given.train } };
  }
  try {
    return parseConfig(layered);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    throw new ConfigError(`config of run ${run.name}`, e.issues);
  }
}

/** The files of the default data of `vocabSize` inside `dataDir` (the layout `deno task train` makes). */
function defaultDataFiles(dataDir: string, vocabSize: number): Record<string, string> {
  const folder = defaultDataFolder(dataDir, vocabSize);
  return { trainData: `${folder}/train.bin`, valData: `${folder}/val.bin`, tokenizer: `${folder}/tokenizer.json` };
}

/**
 * Validates the config of every run of a sweep without preparing anything (runs on the embedded data are checked
 * against its usual size), and returns the runs. Throws a `ConfigError` naming each run and field at fault.
 *
 * @example
 * ```ts
 * import { checkSweep, parseSweep } from "@nanolm/nanolm/train";
 * const good = parseSweep({ grid: { model: { numHeads: [2, 4] } } }, "heads.json");
 * if (checkSweep(good, { software: false }).length !== 2) throw new Error("two runs");
 * const bad = parseSweep({ grid: { model: { numHeads: [4, 5] } } }, "heads.json");
 * let message = "";
 * try {
 *   checkSweep(bad, { software: false });
 * } catch (e) {
 *   message = (e as Error).message;
 * }
 * // The default model (d_model 128 on a hardware adapter) cannot have 5 heads.
 * if (!message.includes("run numHeads-5: model.numHeads")) throw new Error(`unclear error: ${message}`);
 * ```
 */
export function checkSweep(spec: SweepSpec, options: { software: boolean; root?: string }): SweepRunSpec[] {
  const root = options.root ?? `runs/${spec.name}`;
  const runs = sweepRuns(spec);
  const issues: ConfigIssue[] = [];
  for (const run of runs) {
    try {
      const config = buildRunConfig(run, join(root, run.name), options.software, null);
      const vocabSize = config.model.vocabSize;
      if (run.given.train.trainData === undefined && vocabSize < DEFAULT_DATA_MIN_VOCAB) {
        issues.push({
          path: `run ${run.name}: model.vocabSize`,
          message: `${vocabSize} is too small for the embedded data's tokenizer: it has 256 byte tokens and ` +
            `<|endoftext|>, so give at least ${DEFAULT_DATA_MIN_VOCAB} (or the run's own trainData)`,
        });
      }
      const patience = run.given.train.patience;
      if (typeof patience === "number" && patience > 0 && !(config.train.valData && config.train.evalInterval > 0)) {
        // As `deno task train --patience` does (the command --print-commands gives for the run).
        issues.push({
          path: `run ${run.name}: train.patience`,
          message: `${patience} counts evaluations, and this run makes none: give it valData and an evalInterval ` +
            "above 0, or leave patience out",
        });
      }
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      issues.push(...e.issues.map((i) => ({ path: `run ${run.name}: ${i.path}`, message: i.message })));
    }
  }
  if (issues.length) throw new ConfigError(`sweep ${spec.name}`, issues);
  return runs;
}

/**
 * Builds every run's config: validates them all first (with the default data's usual size), then prepares the
 * embedded default data once per vocabulary size in `<root>/data` for the runs that use it, and sizes those runs
 * to it, as `deno task train` would. Each such run trains on a copy of the data inside its own folder (hard links
 * where the file system allows), so that its folder is self-contained like one `deno task train` makes.
 *
 * @example
 * ```ts
 * import { parseSweep, planSweep } from "@nanolm/nanolm/train";
 * // Runs on data of their own need nothing prepared (without trainData, the embedded data would be).
 * const model = { vocabSize: 512, contextLength: 64, dModel: 64, numLayers: 2, numHeads: 4 };
 * const base = { model, train: { trainData: "data/train.bin", steps: 100 } };
 * const spec = parseSweep({ base, grid: { train: { lrMax: [1e-3, 3e-3] } } }, "lr.json");
 * const plan = await planSweep(spec, { software: true });
 * const dirs = plan.runs.map((r) => r.dir).join();
 * if (plan.root !== "runs/lr" || dirs !== "runs/lr/lrMax-0.001,runs/lr/lrMax-0.003") throw new Error(dirs);
 * const { train } = plan.runs[1].config;
 * if (train.outDir !== "runs/lr/lrMax-0.003" || train.lrMax !== 3e-3) throw new Error("a config a run");
 * ```
 */
export async function planSweep(spec: SweepSpec, options: PlanOptions = {}): Promise<SweepPlan> {
  const root = options.root ?? `runs/${spec.name}`;
  const software = options.software ?? (await initGpu()).info.isSoftware;
  const runs = checkSweep(spec, { software, root });
  const prepared = new Map<number, { tokens: { train: number; val: number } }>();
  const planned: PlannedRun[] = [];
  for (const run of runs) {
    const dir = join(root, run.name);
    if (run.given.train.trainData !== undefined) {
      planned.push({ ...run, dir, config: buildRunConfig(run, dir, software, null) });
      continue;
    }
    const vocabSize = (run.given.model.vocabSize as number | undefined) ?? 512;
    if (!prepared.has(vocabSize)) {
      const data = await prepareDefaultData(join(root, "data"), { vocabSize, log: options.log });
      prepared.set(vocabSize, { tokens: data.tokens });
    }
    const files = defaultDataFiles(join(dir, "data"), vocabSize);
    const config = buildRunConfig(run, dir, software, { tokens: prepared.get(vocabSize)!.tokens, files });
    planned.push({ ...run, dir, config, defaultData: vocabSize });
  }
  return { name: spec.name, ...(spec.description ? { description: spec.description } : {}), root, runs: planned };
}

/** What a sweep will do with a run. */
export type RunAction = "skip" | "resume" | "start";

/** A run's folder as a sweep finds it. */
export interface RunFolderState {
  /** Skip it (it ended), resume it from its checkpoint, or start it. */
  action: RunAction;
  /** Its `run.json`, when it has one. */
  info?: RunInfo;
}

/** A config in a form two configs of the same run compare equal in: no output folder, paths resolved. */
function comparable(recorded: { model: unknown; train: Record<string, unknown> }, dir: string): string {
  const { outDir: _o, resume: _r, tokenizer: _t, ...train } = recorded.train;
  for (const key of ["trainData", "valData"]) {
    const p = train[key];
    if (typeof p === "string") train[key] = resolve(dir, p);
  }
  const sorted = (o: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(o).sort(([a], [b]) => a < b ? -1 : 1));
  return JSON.stringify({ model: sorted(recorded.model as Record<string, unknown>), train: sorted(train) });
}

/** The fields in which two comparable configs differ, for the error that refuses a folder. */
function differences(a: string, b: string): string[] {
  const x = JSON.parse(a), y = JSON.parse(b);
  const out: string[] = [];
  for (const s of ["model", "train"]) {
    for (const k of new Set([...Object.keys(x[s]), ...Object.keys(y[s])])) {
      if (JSON.stringify(x[s][k]) !== JSON.stringify(y[s][k])) {
        out.push(`${s}.${k} ${JSON.stringify(y[s][k])} (the folder's run: ${JSON.stringify(x[s][k])})`);
      }
    }
  }
  return out;
}

/**
 * What a sweep will do with a run's folder: skip a run that ended, resume one that has a checkpoint, start the
 * others (a folder with metrics but no checkpoint never got far enough to keep). Throws when the folder holds a run
 * of another config (the sweep file changed since), naming the fields.
 *
 * @example
 * ```ts
 * import { parseSweep, planSweep, runFolderState, RunLog } from "@nanolm/nanolm/train";
 * const root = await Deno.makeTempDir();
 * const model = { vocabSize: 512, contextLength: 64, dModel: 64, numLayers: 2, numHeads: 4 };
 * const base = { model, train: { trainData: "train.bin", steps: 10 } };
 * const grid = { train: { lrMax: [1e-3, 3e-3] } };
 * const [run] = (await planSweep(parseSweep({ base, grid }, "lr.json"), { root, software: true })).runs;
 * if ((await runFolderState(run)).action !== "start") throw new Error("a new folder: start the run");
 * // The run ends (as a trainer would record it): the sweep skips it from then on.
 * const log = await RunLog.open(run.config);
 * await log.finish({ step: 10, reason: "done", lastLoss: 3 });
 * if ((await runFolderState(run)).action !== "skip") throw new Error("an ended run: skip it");
 * // The sweep file changed since: the folder holds another run, and is refused.
 * const changedBase = { model, train: { ...base.train, steps: 20 } };
 * const changedPlan = await planSweep(parseSweep({ base: changedBase, grid }, "lr.json"), { root, software: true });
 * const [changed] = changedPlan.runs;
 * const error = await runFolderState(changed).then(() => "", (e) => (e as Error).message);
 * if (!error.includes("train.steps 20 (the folder's run: 10)")) throw new Error(`unclear error: ${error}`);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function runFolderState(run: PlannedRun): Promise<RunFolderState> {
  const info = (await readRunInfo(run.dir)) ?? undefined;
  const checkpoint = join(run.dir, CHECKPOINT_NAME);
  const hasCheckpoint = await exists(checkpoint);
  const planned = comparable(recordedConfig(run.config, checkpoint), run.dir);
  const saved = info?.config ?? (hasCheckpoint ? (await readCheckpointFile(checkpoint)).config : undefined);
  if (saved !== undefined && (info?.status !== "running" || hasCheckpoint)) {
    const found = comparable(saved as { model: unknown; train: Record<string, unknown> }, run.dir);
    if (found !== planned) {
      throw new Error(
        `${run.dir} holds a run of another config: ${differences(found, planned).join(", ")}; delete the folder to ` +
          `start it again, or give the sweep another name or --out-dir`,
      );
    }
  }
  const ended = info && info.status !== "running" && info.status !== "interrupted";
  if (ended) return { action: "skip", info };
  return { action: hasCheckpoint ? "resume" : "start", ...(info ? { info } : {}) };
}

/** Plans whose runs' inputs {@linkcode checkSweepRuns} found good (the scan of the data is not repeated). */
const inputsChecked = new WeakSet<SweepPlan>();

/**
 * Everything {@linkcode runSweep} checks before its first run trains: every run's folder (see
 * {@linkcode runFolderState}) and the inputs of every run it will train (data files and tokenizer, as the trainer
 * checks them), so that a bad file of the last run is refused before the first one spends any time. Returns each
 * run's folder state, in order.
 *
 * @example
 * ```ts
 * import { writeTokenFile } from "@nanolm/nanolm/data";
 * import { checkSweepRuns, parseSweep, planSweep } from "@nanolm/nanolm/train";
 * const root = await Deno.makeTempDir();
 * await writeTokenFile(`${root}/train.bin`, Array.from({ length: 2000 }, (_, i) => (i * 3) % 29));
 * await writeTokenFile(`${root}/short.bin`, [1, 2, 3]);
 * const base = {
 *   model: { vocabSize: 32, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 },
 *   train: { trainData: `${root}/train.bin`, steps: 4 },
 * };
 * const grid = { train: { valData: [`${root}/train.bin`, `${root}/short.bin`] } };
 * const plan = await planSweep(parseSweep({ name: "val", base, grid }, "val.json"), { root, software: true });
 * const error = await checkSweepRuns(plan).then(() => "", (e) => (e as Error).message);
 * // The second run's validation file is shorter than one sequence: refused before either run trains.
 * if (!error.includes(`${root}/short.bin has 3 tokens`)) throw new Error(`wrong or no error: ${error}`);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function checkSweepRuns(plan: SweepPlan): Promise<RunFolderState[]> {
  const states: RunFolderState[] = [];
  for (const run of plan.runs) states.push(await runFolderState(run));
  if (inputsChecked.has(plan)) return states;
  const seen = new Set<string>();
  for (const [i, run] of plan.runs.entries()) {
    if (states[i].action === "skip") continue;
    let config = run.config;
    if (run.defaultData !== undefined) {
      // The run's copy of the default data is made when it starts; until then, check the sweep's own.
      const files = defaultDataFiles(join(plan.root, "data"), run.defaultData);
      config = { ...config, train: { ...config.train, ...files } };
    }
    const t = config.train, m = config.model;
    const key = JSON.stringify([t.trainData, t.valData, t.tokenizer, m.contextLength, m.vocabSize]);
    if (seen.has(key)) continue;
    seen.add(key);
    await checkRunInputs(config);
  }
  inputsChecked.add(plan);
  return states;
}

/** Options of {@linkcode runSweep}. */
export interface RunSweepOptions {
  /** Every trainer event, with its run. */
  onEvent?: (run: PlannedRun, event: TrainEvent) => void | Promise<void>;
  /** Before a run trains (or is skipped). */
  onRunStart?: (run: PlannedRun, state: RunFolderState, trainer?: Trainer) => void | Promise<void>;
  /** After a run ended (or was skipped), with its `run.json`. */
  onRunEnd?: (run: PlannedRun, info: RunInfo | undefined, action: RunAction) => void | Promise<void>;
  /** Stops the sweep: the current run ends with a checkpoint (`interrupted`), and no other run starts. */
  signal?: AbortSignal;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** How a sweep ended. */
export interface SweepResult {
  /**
   * Each run that was looked at, with what was done and its status; `error` is the message of a run that failed
   * (it is started again the next time the sweep runs).
   */
  runs: { run: PlannedRun; action: RunAction; info?: RunInfo; error?: string }[];
  /** Whether a stop request ended the sweep before its last run. */
  interrupted: boolean;
}

/**
 * Hard-links (or copies, atomically) the prepared default data into the run's folder, as `deno task train` would
 * have it.
 */
async function placeDefaultData(plan: SweepPlan, run: PlannedRun): Promise<void> {
  const vocab = run.defaultData!;
  const from = join(plan.root, "data"), to = join(run.dir, "data");
  const names = [
    "moby-dick.txt",
    ...["prepared.json", "tokenizer.json", "train.bin", "val.bin"].map((n) => join(defaultDataFolder(".", vocab), n)),
  ];
  await Deno.mkdir(defaultDataFolder(to, vocab), { recursive: true });
  for (const name of names) {
    const target = join(to, name);
    if (await exists(target)) continue;
    try {
      await Deno.link(join(from, name), target);
    } catch {
      // No hard links (another file system): a whole copy appears under the name, or nothing does, so that a
      // copy cut off midway is never taken for the data next time.
      writeFileAtomicSync(target, await Deno.readFile(join(from, name)));
    }
  }
}

/**
 * Runs a planned sweep, one run after another on the GPU: skips ended runs, resumes an interrupted one exactly
 * (checkpoint and metrics), starts the others, records each outcome in its `run.json`, and goes on past a run that
 * diverges. Every folder is checked before the first run trains.
 *
 * @example
 * ```ts
 * import { writeTokenFile } from "@nanolm/nanolm/data";
 * import { parseSweep, planSweep, runSweep } from "@nanolm/nanolm/train";
 * const root = await Deno.makeTempDir();
 * await writeTokenFile(`${root}/train.bin`, Array.from({ length: 2000 }, (_, i) => (i * 3) % 29));
 * const base = {
 *   model: { vocabSize: 32, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 },
 *   train: { trainData: `${root}/train.bin`, steps: 4, batchSize: 4 },
 * };
 * const spec = parseSweep({ name: "lr", base, grid: { train: { lrMax: [1e-3, 1e-2] } } }, "lr.json");
 * const plan = await planSweep(spec, { root });
 * const lines: string[] = [];
 * const result = await runSweep(plan, { log: (line) => lines.push(line) });
 * const ended = result.runs.map((r) => `${r.run.name}: ${r.action}, ${r.info?.status}`).join("; ");
 * if (ended !== "lrMax-0.001: start, done; lrMax-0.01: start, done") throw new Error(ended);
 * // Again: the runs ended, so nothing trains.
 * const again = await runSweep(plan, { log: (line) => lines.push(line) });
 * if (!again.runs.every((r) => r.action === "skip")) throw new Error(lines.join("\n"));
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function runSweep(plan: SweepPlan, options: RunSweepOptions = {}): Promise<SweepResult> {
  const states = await checkSweepRuns(plan);
  const backend = await initGpu();
  const peak = gpuPeaks(backend.info.description)?.f32Tflops;
  const result: SweepResult = { runs: [], interrupted: false };
  for (const [i, run] of plan.runs.entries()) {
    if (options.signal?.aborted) {
      result.interrupted = true;
      break;
    }
    const state = states[i];
    if (state.action === "skip") {
      options.log?.(`${run.name}: ${describeEnd(state.info!)}; skipped`);
      await options.onRunStart?.(run, state);
      await options.onRunEnd?.(run, state.info, "skip");
      result.runs.push({ run, action: "skip", info: state.info });
      continue;
    }
    let info: RunInfo;
    try {
      info = await trainRun(plan, run, state, peak, options);
    } catch (e) {
      // As a run that diverges, a run that fails (a GPU limit at a large batch, say) does not stop the others.
      const error = e instanceof Error ? e.message : String(e);
      options.log?.(`${run.name}: failed: ${error}`);
      result.runs.push({ run, action: state.action, error });
      continue;
    }
    result.runs.push({ run, action: state.action, info });
    if (info.status === "interrupted") {
      result.interrupted = true;
      break;
    }
  }
  return result;
}

async function trainRun(
  plan: SweepPlan,
  run: PlannedRun,
  state: RunFolderState,
  peakTflops: number | undefined,
  options: RunSweepOptions,
): Promise<RunInfo> {
  if (run.defaultData !== undefined) await placeDefaultData(plan, run);
  const flopsPerToken = trainingFlopsPerToken(run.config.model);
  let log: RunLog | null = null;
  const onEvent = async (e: TrainEvent) => {
    const record = e.type === "step" && peakTflops
      ? { ...e, mfu: (e.tokensPerSec * flopsPerToken) / (peakTflops * 1e12) }
      : e;
    log?.log(record);
    await options.onEvent?.(run, record);
  };
  const resume = state.action === "resume" ? join(run.dir, CHECKPOINT_NAME) : undefined;
  const trainer = await Trainer.create(run.config, { onEvent, ...(resume ? { resume } : {}) });
  try {
    log = await RunLog.open(trainer.config, {
      ...(resume ? { resumeStep: trainer.step } : {}),
      sweep: { name: plan.name, run: run.name, varied: run.varied },
    });
    options.log?.(
      `${run.name}: ${resume ? `resuming at step ${trainer.step}` : "starting"} (${run.config.train.steps} steps)`,
    );
    await options.onRunStart?.(run, state, trainer);
    const stop = () => trainer.requestStop();
    options.signal?.addEventListener("abort", stop);
    if (options.signal?.aborted) trainer.requestStop();
    const fit = await trainer.fit().finally(() => options.signal?.removeEventListener("abort", stop));
    const info = await log.finish(fit);
    await options.onRunEnd?.(run, info, state.action);
    options.log?.(`${run.name}: ${describeEnd(info)}`);
    return info;
  } catch (e) {
    await log?.close();
    throw e;
  } finally {
    trainer.dispose();
  }
}

/**
 * A run's outcome in words: its status, step, best validation loss (and bits per byte).
 *
 * @example
 * ```ts
 * import { describeEnd } from "@nanolm/nanolm/train";
 * const now = new Date().toISOString();
 * const info = { steps: 100, seconds: 3, started: now, updated: now, config: { model: {}, train: {} } };
 * const diverged = describeEnd({ ...info, status: "diverged", step: 37 });
 * if (diverged !== "diverged at step 37") throw new Error(diverged);
 * const done = describeEnd({ ...info, status: "done", step: 100, best: { step: 80, valLoss: 3.14159, valBpb: 1.2 } });
 * if (done !== "done, 100 steps; best validation loss 3.1416 (1.2000 bits/byte) at step 80") throw new Error(done);
 * ```
 */
export function describeEnd(info: RunInfo): string {
  const head = info.status === "done"
    ? `done, ${info.step} steps`
    : info.status === "early-stopped"
    ? `stopped early at step ${info.step}`
    : info.status === "diverged"
    ? `diverged at step ${info.divergedAt ?? info.step}`
    : `${info.status} at step ${info.step}`;
  const best = info.best
    ? `; best validation loss ${info.best.valLoss.toFixed(4)}` +
      (info.best.valBpb === undefined ? "" : ` (${info.best.valBpb.toFixed(4)} bits/byte)`) +
      ` at step ${info.best.step}`
    : "";
  return head + best;
}

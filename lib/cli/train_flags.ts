/**
 * Command-line flags of `deno task train`: every model and training field as a kebab-case flag, `--config` for a
 * JSON file, and the program's output flags (`--samples`, `--sample-tokens`, `--peak-tflops`, `--[no-]report`,
 * `--profile [step]`).
 *
 * Parsing ({@linkcode parseTrainCli}) returns only what the user gave (config file and flags), with the origin
 * of each field; {@linkcode buildConfig} lays that over a base (the program's defaults, or a resumed checkpoint's
 * saved config) and validates the result, naming the flag or file of each problem. Precedence: built-in defaults
 * < base < config file < flags.
 *
 * @module
 */
import { parseJson } from "../util/json.ts";
import { readNamedTextFile } from "../io/read_text.ts";
import { type FlagSpec, helpText, nearestWord, parseFlags, UsageError } from "./flags.ts";
import { ConfigError } from "../util/validate.ts";
import { parseModelConfig } from "../nn/config.ts";
import { type Config, parseConfig, parseTrainConfig } from "../train/config.ts";

type Section = "model" | "train";

/** A flag bound to a config field. */
type FieldFlag = FlagSpec & { section: Section; key: string };

const model = (name: string, key: string, type: FlagSpec["type"], help: string, extra: Partial<FlagSpec> = {}) =>
  ({ name, key, type, help, section: "model", group: "Model", ...extra }) as FieldFlag;
const train = (name: string, key: string, type: FlagSpec["type"], help: string, extra: Partial<FlagSpec> = {}) =>
  ({ name, key, type, help, section: "train", group: "Training", ...extra }) as FieldFlag;

const FIELD_FLAGS: FieldFlag[] = [
  model("vocab-size", "vocabSize", "int", "number of token ids"),
  model("context-length", "contextLength", "int", "maximum sequence length"),
  model("d-model", "dModel", "int", "residual stream width"),
  model("num-layers", "numLayers", "int", "transformer blocks"),
  model("num-heads", "numHeads", "int", "attention heads"),
  model("d-ff", "dFf", "int", "feed-forward width", {
    defaultText: "8/3 d-model rounded up to 64 for swiglu, 4 d-model for silu",
  }),
  model("rope-theta", "ropeTheta", "float", "RoPE base"),
  model("norm-eps", "normEps", "float", "RMSNorm epsilon"),
  model("norm", "norm", { enum: ["pre", "post", "none"] }, "norm placement"),
  model("position", "position", { enum: ["rope", "none"] }, "positions"),
  model("ffn", "ffn", { enum: ["swiglu", "silu"] }, "feed-forward kind"),
  model("parallel-layers", "parallelLayers", "bool", "parallel attention + feed-forward"),
  model("tie-embeddings", "tieEmbeddings", "bool", "LM head = embedding"),
  model("fused-projections", "fusedProjections", "bool", "one matmul for q/k/v (and w1/w3)"),
  train("batch-size", "batchSize", "int", "sequences per micro-batch"),
  train("grad-accumulation", "gradAccumulation", "int", "micro-batches per optimizer step"),
  train("steps", "steps", "int", "optimizer steps"),
  train("lr-max", "lrMax", "float", "peak learning rate"),
  train("lr-min", "lrMin", "float", "final learning rate", { defaultText: "a tenth of --lr-max" }),
  train("warmup-steps", "warmupSteps", "int", "linear warm-up steps", {
    defaultText: "10% of cosine-cycle-steps, at most 100",
  }),
  train("cosine-cycle-steps", "cosineCycleSteps", "int", "step where the cosine reaches lr-min", {
    defaultText: "steps",
  }),
  train("weight-decay", "weightDecay", "float", "AdamW weight decay"),
  train("betas", "betas", "pair", "AdamW beta1,beta2"),
  train("eps", "eps", "float", "AdamW epsilon"),
  train("grad-clip", "gradClip", "float", "gradient L2-norm clip, 0 = off"),
  train("eval-interval", "evalInterval", "int", "steps between evaluations, 0 = never"),
  train("eval-iters", "evalIters", "int", "validation batches per evaluation"),
  train("patience", "patience", "int", "stop after this many evaluations in a row without a new best, 0 = off"),
  train("checkpoint-interval", "checkpointInterval", "int", "steps between checkpoints, 0 = only at the end"),
  train("log-interval", "logInterval", "int", "steps between reads of the metrics (every step is recorded)"),
  train("seed", "seed", "int", "random seed"),
  train("train-data", "trainData", "string", "training token file", {
    valueName: "path",
    defaultText: "the embedded Moby-Dick data, prepared under --out-dir",
  }),
  train("val-data", "valData", "string", "validation token file", {
    valueName: "path",
    defaultText: "the embedded data's, else none",
  }),
  train("out-dir", "outDir", "string", "output directory", { valueName: "dir" }),
  train("resume", "resume", "string", "checkpoint to resume from", { valueName: "path" }),
  train("tokenizer", "tokenizer", "string", "tokenizer file", {
    valueName: "path",
    defaultText: "the embedded data's, else none",
  }),
];

const OUTPUT_FLAGS = [
  { name: "samples", type: "int", min: 0, default: 3, help: "sample texts printed at the end", group: "Output" },
  { name: "sample-tokens", type: "int", min: 1, default: 80, help: "tokens per sample", group: "Output" },
  {
    name: "peak-tflops",
    type: "float",
    min: 0,
    minExclusive: true,
    defaultText: "the f32 peak of a known GPU (H100, H200, A100, ...), else none",
    help: "peak TFLOP/s of the GPU, for MFU",
    group: "Output",
  },
  { name: "report", type: "bool", default: true, help: "write the HTML report", group: "Output" },
  {
    name: "profile",
    type: "int",
    min: 1,
    implied: 0,
    valueName: "step",
    defaultText: "off; alone, the run's second step",
    help: "profile a step: GPU time by kernel against the roofline, and trace.json in --out-dir",
    group: "Output",
  },
] as const satisfies readonly FlagSpec[];

const CONFIG_FLAG = {
  name: "config",
  type: "string",
  valueName: "file",
  help: 'JSON file {"model": {...}, "train": {...}} with camelCase fields',
} as const satisfies FlagSpec;

/** Defaults a program supplies below the config file and the flags (e.g. the embedded default run). */
export interface ConfigDefaults {
  /** Model fields. */
  model?: Record<string, unknown>;
  /** Training fields. */
  train?: Record<string, unknown>;
}

/** Config fields the user gave, by section (camelCase keys, as in a config file). */
export interface GivenConfig {
  /** Model fields. */
  model: Record<string, unknown>;
  /** Training fields. */
  train: Record<string, unknown>;
}

/** The training program's own output settings (not part of the config). */
export interface TrainOutputOptions {
  /** Sample texts printed at the end. */
  samples: number;
  /** Tokens per sample. */
  sampleTokens: number;
  /** Peak TFLOP/s for MFU, when the user gave it. */
  peakTflops?: number;
  /** Write the HTML report. */
  report: boolean;
  /** The optimizer step to profile (0: the second step the run makes); none when absent. */
  profile?: number;
}

/** The outcome of {@linkcode parseTrainCli}. */
export type TrainCliResult =
  | { help: true; text: string }
  | {
    help: false;
    /** What the user gave: the config file's fields, overridden by typed flags. */
    given: GivenConfig;
    /** The output settings, validated. */
    output: TrainOutputOptions;
    /** The `--config` file, if any. */
    configFile?: string;
    /** Where a field (`"train.lrMax"`) came from: its flag (`"--lr-max"`), the config file, or undefined. */
    origin(field: string): string | undefined;
  };

/** The built-in defaults of every field that has a plain one (derived and required fields have none). */
function schemaDefaults(): Record<Section, Record<string, unknown>> {
  const m: Record<string, unknown> = {
    ...parseModelConfig({
      vocabSize: 1,
      contextLength: 1,
      dModel: 2,
      numLayers: 1,
      numHeads: 1,
    }),
  };
  const t: Record<string, unknown> = { ...parseTrainConfig({ trainData: "-" }) };
  for (const k of ["vocabSize", "contextLength", "dModel", "numLayers", "numHeads", "dFf"]) delete m[k];
  for (const k of ["trainData", "warmupSteps", "cosineCycleSteps"]) delete t[k];
  return { model: m, train: t };
}

function helpSpecs(defaults: ConfigDefaults = {}): FlagSpec[] {
  const builtIn = schemaDefaults();
  const required = new Set(["vocabSize", "contextLength", "dModel", "numLayers", "numHeads", "trainData"]);
  const fields = FIELD_FLAGS.map((f): FlagSpec => {
    const value = defaults[f.section]?.[f.key] ?? builtIn[f.section][f.key];
    if (value !== undefined) return { ...f, default: value };
    return required.has(f.key) && f.defaultText === undefined ? { ...f, required: true } : f;
  });
  return [CONFIG_FLAG, ...fields, ...OUTPUT_FLAGS];
}

/**
 * The `--help` text of the training command: every flag with its value type and default (the program's
 * `defaults` over the built-in ones), in aligned columns.
 *
 * @example
 * ```ts
 * import { trainHelpText } from "./train_flags.ts";
 * if (!trainHelpText().includes("--lr-max <float>")) throw new Error("--lr-max is not listed");
 * ```
 */
export function trainHelpText(options: { command?: string; defaults?: ConfigDefaults } = {}): string {
  return helpText(
    `${options.command ?? "deno task train"} [--config run.json] [flags]`,
    "Trains a transformer LM. Flags override the config file, which overrides the defaults.",
    helpSpecs(options.defaults),
  );
}

async function readConfigFile(path: string): Promise<GivenConfig> {
  const text = await readNamedTextFile(path, "config file");
  let json: unknown;
  try {
    json = parseJson(text, `config file ${path}`);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new UsageError(`config file ${path} must hold an object {"model": {...}, "train": {...}}`);
  }
  const given: GivenConfig = { model: {}, train: {} };
  for (const [section, fields] of Object.entries(json)) {
    if (section !== "model" && section !== "train") {
      throw new UsageError(`config file ${path} has unknown section "${section}" (expected "model" and "train")`);
    }
    if (fields === null || typeof fields !== "object" || Array.isArray(fields)) {
      throw new UsageError(`config file ${path} section "${section}" must be an object`);
    }
    const known = FIELD_FLAGS.filter((f) => f.section === section).map((f) => f.key);
    for (const key of Object.keys(fields)) {
      if (known.includes(key)) continue;
      const near = nearestWord(key, known);
      throw new UsageError(
        `config file ${path} has unknown field ${section}.${key}${near ? `; did you mean ${near}?` : ""}`,
      );
    }
    Object.assign(given[section], fields);
  }
  return given;
}

/**
 * Parses the training command's arguments: checks every flag (unknown flags with the nearest known one, values by
 * type, output flags by range) and reads the config file, but does not validate the config: see
 * {@linkcode buildConfig}. Returns what the user gave, apart from any defaults, and where each field came from.
 * `defaults` only feed the `--help` text.
 *
 * @example
 * ```ts
 * import { buildConfig, parseTrainCli } from "./train_flags.ts";
 * const defaults = { model: { vocabSize: 256, contextLength: 64, dModel: 128, numLayers: 2, numHeads: 4 } };
 * const cli = await parseTrainCli(["--d-model", "64", "--steps", "200", "--train-data", "data/train.u16"], { defaults });
 * if (cli.help) throw new Error("no --help was given");
 * if (cli.given.model.dModel !== 64 || cli.origin("train.steps") !== "--steps") throw new Error("flags lost");
 * const config = buildConfig(defaults, cli.given, { origin: cli.origin });
 * // The flags win; what they leave out comes from the defaults.
 * if (config.model.dModel !== 64 || config.model.numLayers !== 2) throw new Error(JSON.stringify(config.model));
 * ```
 */
export async function parseTrainCli(
  args: string[],
  options: { defaults?: ConfigDefaults; command?: string } = {},
): Promise<TrainCliResult> {
  const { help, values } = parseFlags(args, [CONFIG_FLAG, ...FIELD_FLAGS, ...OUTPUT_FLAGS]);
  if (help) return { help: true, text: trainHelpText(options) };
  const configFile = values.config as string | undefined;
  const given = configFile === undefined ? { model: {}, train: {} } : await readConfigFile(configFile);
  const origins = new Map<string, string>();
  for (const section of ["model", "train"] as const) {
    for (const key of Object.keys(given[section])) origins.set(`${section}.${key}`, configFile!);
  }
  const byName = values as Record<string, unknown>;
  for (const f of FIELD_FLAGS) {
    if (byName[f.name] === undefined) continue;
    given[f.section][f.key] = byName[f.name];
    origins.set(`${f.section}.${f.key}`, `--${f.name}`);
  }
  const output: TrainOutputOptions = {
    samples: values.samples!,
    sampleTokens: values["sample-tokens"]!,
    report: values.report!,
    ...(values["peak-tflops"] === undefined ? {} : { peakTflops: values["peak-tflops"] }),
    ...(values.profile === undefined ? {} : { profile: values.profile }),
  };
  return { help: false, given, output, configFile, origin: (field) => origins.get(field) };
}

/**
 * Lays the fields the user gave over a base (the program's defaults, or a resumed checkpoint's saved config) and
 * validates the result. A `ConfigError` names, for each problem, the field, where its value came from
 * (`origin`, else `baseName` for base fields) and its flag, so that the user knows what to change.
 *
 * @example
 * ```ts
 * import { buildConfig } from "./train_flags.ts";
 * const base = { model: { vocabSize: 256, contextLength: 64, dModel: 64, numLayers: 2, numHeads: 4 }, train: {} };
 * const config = buildConfig(base, { model: {}, train: { trainData: "t.bin", steps: 10 } });
 * if (config.train.steps !== 10 || config.train.cosineCycleSteps !== 10) throw new Error(JSON.stringify(config.train));
 * let message = "";
 * try {
 *   buildConfig(base, { model: { numHeads: 5 }, train: { trainData: "t.bin" } }, {
 *     origin: (f) => f === "model.numHeads" ? "--num-heads" : undefined,
 *   });
 * } catch (e) {
 *   message = (e as Error).message;
 * }
 * // 64 does not split into 5 heads: the error names the field and the flag that set it.
 * if (!message.includes("model.numHeads (--num-heads)")) throw new Error(`wrong or no error: ${message}`);
 * ```
 */
export function buildConfig(
  base: { model?: object; train?: object },
  given: GivenConfig,
  options: { origin?: (field: string) => string | undefined; baseName?: string } = {},
): Config {
  const merged: GivenConfig = { model: { ...base.model, ...given.model }, train: { ...base.train, ...given.train } };
  try {
    return parseConfig(merged);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const issues = e.issues.map((issue) => {
      const field = issue.path.split(".").slice(0, 2).join(".");
      const flag = FIELD_FLAGS.find((f) => `${f.section}.${f.key}` === field);
      const source = options.origin?.(field) ?? baseSource(merged, field, options);
      const where = [...new Set([source, flag && `--${flag.name}`].filter((s) => s !== undefined))];
      return where.length ? { path: `${issue.path} (${where.join(", ")})`, message: issue.message } : issue;
    });
    throw new ConfigError("config", issues);
  }
}

/** `baseName` for a field that the base supplied (a field nobody set has no source). */
function baseSource(merged: GivenConfig, field: string, options: { baseName?: string }): string | undefined {
  const [section, key] = field.split(".") as [Section, string];
  return merged[section]?.[key] !== undefined ? options.baseName : undefined;
}

/**
 * The command-line flag of a config field (`"train.lrMax"` -> `"--lr-max"`), or the field itself when it has none.
 *
 * @example
 * ```ts
 * import { flagOf } from "./train_flags.ts";
 * if (flagOf("train.trainData") !== "--train-data") throw new Error(flagOf("train.trainData"));
 * if (flagOf("train.outDir") !== "--out-dir") throw new Error(flagOf("train.outDir"));
 * ```
 */
export function flagOf(field: string): string {
  const flag = FIELD_FLAGS.find((f) => `${f.section}.${f.key}` === field);
  return flag ? `--${flag.name}` : field;
}

/**
 * The fields the user gave, with `lrMin` a tenth of `lrMax` when only `lrMax` is given (as the default run has it,
 * and as a sweep does), so that a lower peak never fails on the default floor.
 *
 * @example
 * ```ts
 * import { withLrMinFollowing } from "./train_flags.ts";
 * const given = withLrMinFollowing({ model: {}, train: { lrMax: 1e-4 } });
 * if (given.train.lrMin !== 1e-5) throw new Error(`lrMin ${given.train.lrMin}`);
 * const both = withLrMinFollowing({ model: {}, train: { lrMax: 1e-4, lrMin: 0 } });
 * if (both.train.lrMin !== 0) throw new Error("a given lrMin is kept");
 * ```
 */
export function withLrMinFollowing(given: GivenConfig): GivenConfig {
  const lrMax = given.train.lrMax;
  if (typeof lrMax !== "number" || given.train.lrMin !== undefined) return given;
  return { ...given, train: { ...given.train, lrMin: Number((lrMax / 10).toPrecision(12)) } };
}

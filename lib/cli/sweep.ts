/**
 * `deno task sweep <file>`: trains the runs of a sweep file one after another on the GPU, each in
 * `runs/<sweep>/<run>`, and writes `runs/<sweep>/report.html` comparing them (see `lib/train/sweep.ts` for the
 * file's format). Running the same command again skips the runs that ended and resumes an interrupted one exactly;
 * Ctrl-C ends the current run with a checkpoint. `--print-commands` prints a `deno task train` command per run
 * instead (for GNU parallel or a Slurm job array); `--list` shows the runs and what a run of the command would do
 * with each; `--compare <dir|glob>...` writes the comparison report of any runs.
 *
 * Exit codes: 0 when every run has ended (diverged runs included: the report shows them), 1 on an error (a run
 * that failed included: the others still run, and the next sweep retries it), 2 on a bad flag or sweep file, 130
 * when interrupted.
 *
 * @example
 * ```sh
 * deno task sweep examples/sweeps/lr.json                  # in a clone: train the runs, write runs/lr/report.html
 * deno task sweep examples/sweeps/lr.json --list           # the runs, and what the sweep would do with each
 * deno task sweep examples/sweeps/lr.json --print-commands # a `deno task train` command per run, for a cluster
 * deno task sweep --compare 'runs/lr/*' runs/default --report-file runs/lr-vs-default.html
 * deno run -A jsr:@nanolm/nanolm/cli/sweep --help          # anywhere: every flag
 * ```
 *
 * @module
 */
import { dirname, join } from "node:path";
import { helpText, interruptedExitCode, parseFlags, runMain, UsageError } from "./flags.ts";
import { flagOf } from "./train_flags.ts";
import { InterruptGuard } from "./interrupt.ts";
import { GL_FALLBACK_ADVICE, onGlFallback } from "./vulkan.ts";
import { checkOutputDir } from "./input_files.ts";
import { initGpu } from "../gpu/mod.ts";
import {
  CHECKPOINT_NAME,
  checkSweepRuns,
  type ConfigFields,
  describeEnd,
  loadRuns,
  type PlannedRun,
  planSweep,
  readSweepFile,
  runFolderState,
  runSweep,
  type SweepPlan,
  type SweepResult,
} from "../train/mod.ts";
import { writeComparison } from "../notebook/compare.ts";
import { ProgressBar } from "../util/progress.ts";
import { formatCount } from "../util/format.ts";

const log = (line: string) => console.error(`nanolm: ${line}`);

const FLAGS = [
  {
    name: "out-dir",
    type: "string",
    valueName: "dir",
    defaultText: "runs/<sweep name>",
    help: "folder of the sweep's runs (a folder per run) and its report",
  },
  {
    name: "print-commands",
    type: "bool",
    default: false,
    help: "print a `deno task train` command per run that has not ended, and train nothing",
  },
  { name: "list", type: "bool", default: false, help: "list the runs and what the sweep would do with each" },
  { name: "report", type: "bool", default: true, help: "write <out-dir>/report.html comparing the runs" },
  {
    name: "compare",
    type: "bool",
    default: false,
    help: "compare runs instead: the arguments are run folders, folders of runs or globs (runs/lr/*)",
  },
  {
    name: "report-file",
    type: "string",
    valueName: "path",
    defaultText: "<out-dir>/report.html; with --compare, runs/comparison.html",
    help: "where the report goes",
  },
  { name: "title", type: "string", defaultText: "the sweep's name", help: "the report's title" },
] as const;

const USAGE = "deno task sweep <sweep.json> [flags]\n       deno task sweep --compare <run dir or glob>... [flags]";
const DESCRIPTION =
  "Trains the runs of a sweep file in turn (skipping those that ended, resuming an interrupted one) " +
  "and writes a report comparing them.";

/** A value as a shell word: as it is when safe, else single-quoted. */
function shellWord(text: string): string {
  return /^[A-Za-z0-9_./:=+,-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The `deno task train` command that makes the same run folder as the sweep: `--out-dir` and a flag for every field
 * the run is given (the program's defaults, the embedded data's included, fill in the rest as the sweep does).
 *
 * @example
 * ```ts
 * import { trainCommand } from "@nanolm/nanolm/cli/sweep";
 * const given = { model: { norm: "none", tieEmbeddings: false }, train: { lrMax: 0.003, betas: [0.9, 0.95] } };
 * const command = trainCommand("runs/x/a b", given);
 * // A flag for every field; a folder name with a space is quoted for the shell.
 * const expected = "deno task train --out-dir 'runs/x/a b' --norm none --no-tie-embeddings --lr-max 0.003 " +
 *   "--betas 0.9,0.95";
 * if (command !== expected) throw new Error(command);
 * ```
 */
export function trainCommand(outDir: string, given: ConfigFields): string {
  const words = ["deno", "task", "train", "--out-dir", shellWord(outDir)];
  for (const section of ["model", "train"] as const) {
    for (const [key, value] of Object.entries(given[section])) {
      const flag = flagOf(`${section}.${key}`);
      if (typeof value === "boolean") words.push(value ? flag : flag.replace(/^--/, "--no-"));
      else words.push(flag, shellWord(Array.isArray(value) ? value.join(",") : String(value)));
    }
  }
  return words.join(" ");
}

/** Prints a command per run that has not ended: a resume for one with a checkpoint, a fresh run for the others. */
async function printCommands(plan: SweepPlan): Promise<void> {
  for (const run of plan.runs) {
    const state = await runFolderState(run);
    if (state.action === "skip") continue;
    console.log(
      state.action === "resume"
        ? `deno task train --resume ${shellWord(join(run.dir, CHECKPOINT_NAME))}`
        : trainCommand(run.dir, run.given),
    );
  }
}

/** Refuses flags that belong to the other mode (a sweep file, or --compare) and modes given together. */
function checkModeFlags(compare: boolean, given: string[]): void {
  if (compare) {
    const stray = given.find((f) => ["out-dir", "print-commands", "list"].includes(f));
    if (stray === "out-dir") {
      throw new UsageError("--out-dir applies to a sweep file, not to --compare (whose report goes to --report-file)");
    }
    if (stray) throw new UsageError(`--${stray} applies to a sweep file, not to --compare`);
  } else if (given.includes("print-commands") && given.includes("list")) {
    throw new UsageError("give one of --print-commands and --list");
  }
}

/** Refuses a --report-file that is a folder, or whose folder cannot be made, before any run is read. */
async function checkReportFile(path: string): Promise<void> {
  const info = await Deno.stat(path).catch(() => null);
  if (info?.isDirectory) throw new Error(`--report-file ${path} is a folder; give the path of an .html file`);
  await checkOutputDir(dirname(path), "the folder of --report-file");
}

async function listRuns(plan: SweepPlan): Promise<void> {
  for (const run of plan.runs) {
    const state = await runFolderState(run);
    const what = state.action === "skip"
      ? describeEnd(state.info!)
      : state.action === "resume"
      ? `resume at step ${state.info?.step ?? "?"}`
      : "start";
    const varied = Object.entries(run.varied).map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(", ");
    console.log(`${run.name}\t${what}\t${run.config.train.steps} steps\t${varied}`);
  }
}

/** A progress bar per run, with the loss, the latest validation loss and tokens/s. */
function progress() {
  let bar: ProgressBar | null = null, val = "";
  return {
    start(run: PlannedRun) {
      bar?.done(); // a run that failed ended without its onRunEnd
      bar = new ProgressBar(run.config.train.steps, { label: run.name, unit: "step" });
      val = "";
    },
    event(
      event: { type: string; step: number; loss?: number; valLoss?: number; valBpb?: number; tokensPerSec?: number },
    ) {
      if (event.type === "eval" && event.valLoss !== undefined) {
        val = ` val ${event.valLoss.toFixed(4)}` +
          (event.valBpb === undefined ? "" : ` (${event.valBpb.toFixed(3)} bpb)`);
      }
      if (event.type === "step" && event.loss !== undefined) {
        bar?.update(event.step, `loss ${event.loss.toFixed(4)}${val} | ${formatCount(event.tokensPerSec ?? 0)} tok/s`);
      }
    },
    end() {
      bar?.done();
      bar = null;
    },
  };
}

/** Runs the sweep's runs with the progress bars; the signal is the one that interrupted it, if any. */
async function runPlan(plan: SweepPlan): Promise<SweepResult & { signal: Deno.Signal | null }> {
  const bars = progress();
  const stop = new AbortController();
  const guard = new InterruptGuard({
    onInterrupt: () => {
      log("interrupted: writing a checkpoint of the current run, then stopping (press Ctrl-C again to abort)");
      stop.abort();
    },
  });
  try {
    const result = await runSweep(plan, {
      signal: stop.signal,
      log,
      onRunStart: (run, state) => {
        if (state.action !== "skip") bars.start(run);
      },
      onEvent: (_run, event) => bars.event(event),
      onRunEnd: (_run, _info, action) => {
        if (action !== "skip") bars.end();
      },
    });
    return { ...result, signal: guard.signal };
  } finally {
    guard.dispose();
  }
}

async function main(): Promise<number> {
  const { help, values, positionals, given } = parseFlags(Deno.args, FLAGS, { positionals: true });
  if (help) {
    console.log(helpText(USAGE, DESCRIPTION, FLAGS));
    return 0;
  }
  checkModeFlags(values.compare!, given);
  if (values.compare) {
    if (positionals.length === 0) throw new UsageError("--compare needs run folders or globs, e.g. runs/lr/*");
    const path = values["report-file"] ?? "runs/comparison.html";
    await checkReportFile(path);
    const runs = await loadRuns(positionals);
    await Deno.mkdir(dirname(path), { recursive: true });
    await writeComparison(path, runs, {
      title: values.title ?? `nanolm: ${runs.length} run${runs.length === 1 ? "" : "s"}`,
    });
    log(`report of ${runs.length} run${runs.length === 1 ? "" : "s"}: ${path}`);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(`give one sweep file (got ${positionals.length}): ${USAGE.split("\n")[0]}`);
  }
  // A sweep file that is not JSON is a bad sweep file, as one that fails validation is.
  const spec = await readSweepFile(positionals[0]).catch((e) => {
    throw e instanceof SyntaxError ? new UsageError(e.message) : e;
  });
  const root = values["out-dir"] ?? `runs/${spec.name}`;
  await checkOutputDir(root, "--out-dir", "pick a folder for the sweep's runs");
  const reportFile = values["report-file"] ?? join(root, "report.html");
  if (values.report) await checkReportFile(reportFile);
  const backend = await initGpu();
  if (onGlFallback(backend.info)) throw new Error(GL_FALLBACK_ADVICE);
  const software = backend.info.isSoftware;
  const plan = await planSweep(spec, { root, software, log });
  if (values["print-commands"]) {
    await printCommands(plan);
    return 0;
  }
  if (values.list) {
    await listRuns(plan);
    return 0;
  }
  // Every run's folder and inputs are checked before the first line, so that a mistake is one line.
  await checkSweepRuns(plan);
  log(`${backend.info.description}${software ? " (software adapter: the default model is tiny)" : ""}`);
  const count = plan.runs.length;
  log(`sweep ${plan.name}: ${count} run${count === 1 ? "" : "s"} in ${plan.root}`);
  const { interrupted, runs, signal } = await runPlan(plan);
  const failed = runs.filter((r) => r.error !== undefined).map((r) => r.run);
  if (values.report) {
    const dirs = plan.runs.filter((r) => !failed.includes(r)).map((r) => r.dir);
    const present = [];
    for (const d of dirs) if (await Deno.stat(d).then(() => true, () => false)) present.push(d);
    if (present.length) {
      const path = reportFile;
      await Deno.mkdir(dirname(path), { recursive: true });
      await writeComparison(path, await loadRuns(present), {
        title: values.title ?? `nanolm sweep ${plan.name}`,
        ...(plan.description ? { description: plan.description } : {}),
      });
      log(`report: ${path}`);
    }
  }
  if (interrupted) {
    log(`stopped; run the same command again to resume`);
    return interruptedExitCode(signal);
  }
  if (failed.length > 0) {
    const names = failed.map((r) => r.name).join(", ");
    throw new Error(
      `${failed.length} of ${plan.runs.length} runs failed: ${names} (the errors are above); run the same command ` +
        `again to retry ${failed.length === 1 ? "it" : "them"}`,
    );
  }
  return 0;
}

if (import.meta.main) await runMain(main);

/**
 * A live view of training for notebooks and terminals: pass {@linkcode TrainingMonitor.onEvent} to
 * `Trainer.create(config, { onEvent })` and, in Jupyter, a status panel (step, losses, tokens/s) and a loss chart
 * redraw in place while the training cell runs; in a terminal it prints a progress line instead. It keeps the loss
 * series, so finished runs can be overlaid with {@linkcode lossCurveFigure}.
 *
 * @module
 */
import { inJupyter } from "./display.ts";
import { display } from "./jupyter.ts";
import { LivePlot, lossCurveFigure, type LossCurveRun, type PlotlyFigure } from "./plot.ts";
import type { Series } from "../train/metrics.ts";
import { formatCount } from "../util/format.ts";
import { runBundle, type RunStatus } from "../train/view.ts";

/** The events a monitor reads: those a `Trainer` emits (others are ignored). */
export type MonitorEvent =
  | { type: "step"; step: number; loss: number; lr: number; tokensPerSec: number; elapsed: number }
  | { type: "eval"; step: number; valLoss: number }
  | { type: string; step: number };

/** Options of {@linkcode TrainingMonitor}. */
export interface TrainingMonitorOptions {
  /** Name of the run (legend and titles). */
  name?: string;
  /** Steps planned, for the progress bar. */
  steps: number;
  /** Redraw every this many steps (default 10; evaluations always redraw). */
  every?: number;
  /** Runs already finished, drawn under the live one (a sweep overlays its runs). */
  background?: LossCurveRun[];
  /** Model parameters, shown in the status. */
  parameters?: number;
  /** Title of the chart (default "Training loss"). */
  title?: string;
  /** Print a progress line on every redraw (default: outside Jupyter only). */
  print?: boolean | ((line: string) => void);
  /** Plot the loss on a log scale. */
  logY?: boolean;
}

/**
 * Collects a run's metrics and shows them live.
 *
 * @example
 * ```ts
 * import { TrainingMonitor } from "@nanolm/nanolm/notebook";
 * const lines: string[] = [];
 * const monitor = new TrainingMonitor({ name: "demo", steps: 2, every: 1, print: (l) => lines.push(l) });
 * await monitor.onEvent({ type: "step", step: 1, loss: 5, lr: 1e-3, tokensPerSec: 100, elapsed: 1 });
 * await monitor.onEvent({ type: "eval", step: 1, valLoss: 5.1 });
 * const run = monitor.run();
 * if (run.train?.values.join() !== "5" || run.val?.values.join() !== "5.1") throw new Error("the losses by step");
 * // Outside Jupyter, a progress line at each redraw: every step here, and every evaluation.
 * if (lines.at(-1) !== "demo step 1/2  loss 5.0000  val 5.1000  100 tok/s") throw new Error(lines.join("\n"));
 * ```
 */
export class TrainingMonitor {
  readonly #options: TrainingMonitorOptions;
  readonly #train: Series = { steps: [], values: [] };
  readonly #val: Series = { steps: [], values: [] };
  readonly #lr: Series = { steps: [], values: [] };
  readonly #plot = new LivePlot();
  readonly #statusId = `nanolm-status-${crypto.randomUUID()}`;
  #statusShown = false;
  #status: RunStatus;
  #print: ((line: string) => void) | null;

  /** Creates a monitor; nothing is shown until the first event. */
  constructor(options: TrainingMonitorOptions) {
    if (!(Number.isInteger(options.steps) && options.steps > 0)) {
      throw new RangeError(`TrainingMonitor needs steps to be a positive integer, got ${options.steps}`);
    }
    if (options.every !== undefined && !(Number.isInteger(options.every) && options.every > 0)) {
      throw new RangeError(`TrainingMonitor needs every to be a positive integer, got ${options.every}`);
    }
    this.#options = options;
    this.#status = { name: options.name, step: 0, steps: options.steps, parameters: options.parameters };
    const print = options.print ?? !inJupyter();
    this.#print = typeof print === "function" ? print : print ? (line) => console.log(line) : null;
  }

  /** The event handler to give the trainer (bound, so it can be passed as is). */
  readonly onEvent = async (event: MonitorEvent): Promise<void> => {
    if (event.type === "step" && "loss" in event) {
      this.#train.steps.push(event.step);
      this.#train.values.push(event.loss);
      this.#lr.steps.push(event.step);
      this.#lr.values.push(event.lr);
      Object.assign(this.#status, {
        step: event.step,
        loss: event.loss,
        lr: event.lr,
        tokensPerSec: event.tokensPerSec,
        elapsed: event.elapsed,
      });
      const every = this.#options.every ?? 10;
      if (event.step % every === 0 || event.step === this.#options.steps) await this.show();
    } else if (event.type === "eval" && "valLoss" in event) {
      this.#val.steps.push(event.step);
      this.#val.values.push(event.valLoss);
      Object.assign(this.#status, { valLoss: event.valLoss, valStep: event.step });
      await this.show();
    }
  };

  /** The run's loss curves so far. */
  run(): LossCurveRun {
    const copy = (s: Series): Series => ({ steps: [...s.steps], values: [...s.values] });
    return {
      name: this.#options.name ?? "run",
      train: this.#train.steps.length ? copy(this.#train) : undefined,
      val: this.#val.steps.length ? copy(this.#val) : undefined,
    };
  }

  /** The learning rates the trainer reported, by step. */
  learningRates(): Series {
    return { steps: [...this.#lr.steps], values: [...this.#lr.values] };
  }

  /** The latest status (step, losses, tokens/s...). */
  status(): RunStatus {
    return { ...this.#status };
  }

  /** The loss chart: the background runs and this one. */
  figure(): PlotlyFigure {
    return lossCurveFigure([...(this.#options.background ?? []), this.run()], {
      title: this.#options.title ?? "Training loss",
      logY: this.#options.logY,
    });
  }

  /** Redraws the status and the chart now (in Jupyter), or prints the progress line. */
  async show(): Promise<void> {
    const s = this.#status;
    if (this.#print) {
      const parts = [`${s.name ? `${s.name} ` : ""}step ${s.step}/${s.steps}`];
      if (s.loss !== undefined) parts.push(`loss ${s.loss.toFixed(4)}`);
      if (s.valLoss !== undefined) parts.push(`val ${s.valLoss.toFixed(4)}`);
      if (s.tokensPerSec !== undefined) parts.push(`${formatCount(Math.round(s.tokensPerSec))} tok/s`);
      this.#print(parts.join("  "));
    }
    if (!inJupyter()) return;
    await display(runBundle(s), { raw: true, update: this.#statusShown, displayId: this.#statusId });
    this.#statusShown = true;
    await this.#plot.update(this.figure());
  }
}

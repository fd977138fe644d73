/**
 * A sweep in a notebook cell: the runs of a sweep file (or object) trained one after another, as
 * `deno task sweep` does and into the same folders, with a live grid of curves (a panel per run: training and
 * validation loss, redrawn in place while the cell runs) and a status table. In a terminal it prints progress lines.
 *
 * @module
 */
import { join } from "node:path";
import { metricSeries, readMetrics, type Series } from "../train/metrics.ts";
import { type LoadedRun, loadRuns, METRICS_NAME } from "../train/runs.ts";
import {
  describeEnd,
  parseSweep,
  type PlannedRun,
  planSweep,
  readSweepFile,
  runSweep,
  type SweepPlan,
  type SweepResult,
  type SweepSpec,
} from "../train/sweep.ts";
import { inJupyter } from "./display.ts";
import { display } from "./jupyter.ts";
import { LivePlot, type PlotlyFigure, type PlotlyTrace } from "./plot.ts";
import { htmlTable, type TableRow, textTable } from "./table.ts";

/** One panel of the live grid: a run's curves and where it stands. */
export interface SweepPanel {
  /** The run's name. */
  name: string;
  /** Where it stands: `waiting`, `training`, `done`, `diverged at step 12`... */
  status: string;
  /** Training loss by step. */
  train: Series;
  /** Validation loss by step. */
  val: Series;
}

/**
 * A grid of small charts, one per run, each with its training (solid) and validation (dashed) loss and its status
 * in the panel's title; all panels share the y range, so runs compare at a glance.
 *
 * @example
 * ```ts
 * import { sweepGridFigure } from "@nanolm/nanolm/notebook";
 * const panel = (name: string) => ({
 *   name, status: "done", train: { steps: [1, 2], values: [5, 4] }, val: { steps: [2], values: [4.2] },
 * });
 * const figure = sweepGridFigure([panel("a"), panel("b"), panel("c")], { columns: 2 });
 * // Two traces a panel (training, validation), three panels on a grid of two columns.
 * const grid = figure.layout.grid as { rows: number; columns: number };
 * if (figure.data.length !== 6 || grid.rows !== 2 || grid.columns !== 2) throw new Error(JSON.stringify(grid));
 * if (figure.data[4].xaxis !== "x3" || figure.data[5].yaxis !== "y3") throw new Error("panel c has its own axes");
 * ```
 */
export function sweepGridFigure(panels: readonly SweepPanel[], options: { columns?: number } = {}): PlotlyFigure {
  const columns = Math.max(1, Math.min(options.columns ?? 3, panels.length));
  const rows = Math.max(1, Math.ceil(panels.length / columns));
  const data: PlotlyTrace[] = [];
  const annotations: Record<string, unknown>[] = [];
  const layout: Record<string, unknown> = {
    grid: { rows, columns, pattern: "independent", ygap: 0.35, xgap: 0.12 },
    height: Math.max(260, 230 * rows),
    showlegend: false,
    margin: { l: 50, r: 20, t: 40, b: 40 },
    template: "plotly_white",
  };
  const finite = panels.flatMap((p) => [...p.train.values, ...p.val.values]).filter(Number.isFinite);
  const range = finite.length
    ? [Math.min(...finite) * 0.97, Math.min(Math.max(...finite), 3 * Math.min(...finite))]
    : null;
  panels.forEach((p, i) => {
    const n = i === 0 ? "" : `${i + 1}`;
    data.push({
      type: "scatter",
      mode: "lines",
      name: `${p.name} train`,
      x: [...p.train.steps],
      y: [...p.train.values],
      xaxis: `x${n}`,
      yaxis: `y${n}`,
      line: { color: "#1f77b4", width: 1.5 },
    });
    data.push({
      type: "scatter",
      mode: "lines+markers",
      name: `${p.name} val`,
      x: [...p.val.steps],
      y: [...p.val.values],
      xaxis: `x${n}`,
      yaxis: `y${n}`,
      line: { color: "#ff7f0e", width: 2, dash: "dash" },
      marker: { size: 5 },
    });
    layout[`xaxis${n}`] = { title: { text: "step" } };
    layout[`yaxis${n}`] = range ? { range } : {};
    annotations.push({
      text: `<b>${p.name}</b>: ${p.status}`,
      xref: `x${n} domain`,
      yref: `y${n} domain`,
      x: 0.5,
      y: 1.02,
      xanchor: "center",
      yanchor: "bottom",
      showarrow: false,
      font: { size: 12 },
    });
  });
  layout.annotations = annotations;
  return { data, layout };
}

/** Options of {@linkcode sweep}. */
export interface NotebookSweepOptions {
  /** The folder of the runs (default `runs/<name>`, relative to the notebook's folder). */
  root?: string;
  /** Stops the sweep: the current run ends with a checkpoint, no other starts; running the cell again resumes. */
  signal?: AbortSignal;
  /** Panels per row of the live grid (default 3). */
  columns?: number;
  /** Seconds between redraws of the grid (default 1; evaluations and the end of a run always redraw). */
  redrawSeconds?: number;
  /** Progress lines (default: printed outside Jupyter only). */
  log?: (line: string) => void;
}

/** What {@linkcode sweep} returns: the plan, how it ended, and the runs read back from their folders. */
export interface NotebookSweepResult {
  /** The planned runs. */
  plan: SweepPlan;
  /** What was done with each run. */
  result: SweepResult;
  /** The run folders, loaded (for `compareRuns`). */
  runs: LoadedRun[];
}

/**
 * Runs a sweep from a notebook cell (a sweep file's path, or the same JSON as an object with a `name`), into the
 * folders `deno task sweep` uses, with a live grid of curves and a status table; runs that ended are skipped and an
 * interrupted one resumes, so running the cell again continues the sweep.
 *
 * @example
 * ```ts
 * import { sweep } from "@nanolm/nanolm/notebook";
 * import { writeTokenFile } from "@nanolm/nanolm/data";
 * // In a notebook, on the embedded data:
 * //   const { runs } = await sweep({ name: "lr", grid: { train: { lrMax: [1e-3, 3e-3] } } }, { root: "../runs/lr" });
 * //   await show(compareRuns(runs));
 * // Here a tiny model for 4 steps on a file of tokens:
 * const root = await Deno.makeTempDir();
 * await writeTokenFile(`${root}/train.bin`, Array.from({ length: 2000 }, (_, i) => (i * 3) % 29));
 * const base = {
 *   model: { vocabSize: 32, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 },
 *   train: { trainData: `${root}/train.bin`, steps: 4, batchSize: 4 },
 * };
 * const spec = { name: "lr", base, grid: { train: { lrMax: [1e-3, 1e-2] } } };
 * const lines: string[] = [];
 * const { runs } = await sweep(spec, { root, log: (line) => lines.push(line) });
 * const ended = runs.map((run) => `${run.name} ${run.status} ${run.summary.step}`).join(", ");
 * if (ended !== "lrMax-0.001 done 4, lrMax-0.01 done 4") throw new Error(ended);
 * // Running the cell again trains nothing: the runs ended.
 * const again = await sweep(spec, { root, log: (line) => lines.push(line) });
 * if (!again.result.runs.every((r) => r.action === "skip")) throw new Error(lines.join("\n"));
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function sweep(
  file: string | SweepSpec | Record<string, unknown>,
  options: NotebookSweepOptions = {},
): Promise<NotebookSweepResult> {
  const spec = typeof file === "string" ? await readSweepFile(file) : parseSweep(file, "the sweep given");
  const log = options.log ?? (inJupyter() ? undefined : (line: string) => console.log(line));
  const plan = await planSweep(spec, { ...(options.root ? { root: options.root } : {}), log });
  const view = new SweepView(plan.runs, options);
  const result = await runSweep(plan, {
    signal: options.signal,
    log,
    onRunStart: (run, state) =>
      view.start(run, state.action === "skip" ? "skipped" : state.action === "resume" ? "resuming" : "training"),
    onEvent: (run, event) => view.event(run, event),
    onRunEnd: (run, info) => view.end(run, info ? describeEnd(info) : "skipped"),
  });
  for (const r of result.runs) if (r.error !== undefined) await view.end(r.run, `failed: ${r.error}`);
  await view.redraw(true);
  // A run that failed is shown as such; it is started again the next time the cell runs.
  const dirs = result.runs.filter((r) => r.error === undefined).map((r) => r.run.dir);
  const runs = dirs.length ? await loadRuns(dirs) : [];
  return { plan, result, runs };
}

/** The live grid and status table of a sweep in a notebook. */
class SweepView {
  readonly #panels: Map<string, SweepPanel>;
  readonly #steps: Map<string, number> = new Map();
  readonly #plot = new LivePlot();
  readonly #tableId = `nanolm-sweep-${crypto.randomUUID()}`;
  readonly #options: NotebookSweepOptions;
  #tableShown = false;
  #lastDraw = 0;

  constructor(runs: readonly PlannedRun[], options: NotebookSweepOptions) {
    this.#options = options;
    this.#panels = new Map(runs.map((r) => [r.name, {
      name: r.name,
      status: "waiting",
      train: { steps: [], values: [] },
      val: { steps: [], values: [] },
    }]));
  }

  /** A run starts, resumes or is skipped: its panel shows what its folder already holds. */
  async start(run: PlannedRun, status: string): Promise<void> {
    const panel = this.#panels.get(run.name)!;
    panel.status = status;
    const path = join(run.dir, METRICS_NAME);
    const records = await readMetrics(path).catch(() => []);
    panel.train = metricSeries(records, "loss");
    panel.val = metricSeries(records, "valLoss");
    await this.redraw(true);
  }

  async event(run: PlannedRun, event: { type: string; step: number; loss?: number; valLoss?: number }) {
    const panel = this.#panels.get(run.name)!;
    if (event.type === "step" && event.loss !== undefined) {
      panel.train.steps.push(event.step);
      panel.train.values.push(event.loss);
      this.#steps.set(run.name, event.step);
      panel.status = `step ${event.step} of ${run.config.train.steps}`;
      await this.redraw(false);
    } else if (event.type === "eval" && event.valLoss !== undefined) {
      panel.val.steps.push(event.step);
      panel.val.values.push(event.valLoss);
      await this.redraw(true);
    }
  }

  async end(run: PlannedRun, status: string): Promise<void> {
    this.#panels.get(run.name)!.status = status;
    await this.redraw(true);
  }

  /** Redraws the table and grid now (`force`), or when the last redraw is old enough. */
  async redraw(force: boolean): Promise<void> {
    const now = performance.now();
    if (!inJupyter() || (!force && now - this.#lastDraw < (this.#options.redrawSeconds ?? 1) * 1000)) return;
    this.#lastDraw = now;
    const rows: TableRow[] = [...this.#panels.values()].map((p) => ({
      run: p.name,
      status: p.status,
      "last train loss": p.train.values.at(-1),
      "last val loss": p.val.values.at(-1),
    }));
    const bundle = { "text/html": htmlTable(rows, { title: "Sweep" }), "text/plain": textTable(rows) };
    await display(bundle, { raw: true, update: this.#tableShown, displayId: this.#tableId });
    this.#tableShown = true;
    await this.#plot.update(sweepGridFigure([...this.#panels.values()], { columns: this.#options.columns }));
  }
}

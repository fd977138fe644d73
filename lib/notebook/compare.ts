/**
 * Comparing runs: a table of runs (the values they vary, status, best and last validation loss and bits per byte,
 * tokens/s, time), their training and validation curves overlaid by step and by tokens seen, and the chart CS336
 * asks of a learning-rate sweep (best and final validation loss against the learning rate, diverged runs marked).
 * Shown in a notebook with {@linkcode compareRuns}, or written as a standalone HTML page (plotly.js inlined, so it
 * opens offline) with {@linkcode writeComparison}. The runs come from `loadRuns`, so runs made by `deno task train`,
 * by `deno task sweep` and in notebooks compare together.
 *
 * @module
 */
import { writeFileAtomicSync } from "../io/atomic_write.ts";
import type { MetricRecord, Series } from "../train/metrics.ts";
import { configValue, type LoadedRun, variedFields } from "../train/runs.ts";
import { formatDuration } from "../util/format.ts";
import { cellResult, escapeHtml, inJupyter, JUPYTER_DISPLAY, type JupyterDisplayable } from "./display.ts";
import {
  ensurePlotlyInNotebook,
  lineFigure,
  loadPlotlyJs,
  lossCurveFigure,
  type LossCurveRun,
  type PlotlyFigure,
  plotlyHtml,
  type PlotlyTrace,
} from "./plot.ts";
import { renderPage } from "./report.ts";
import { htmlTable, type TableRow, textTable } from "./table.ts";

/** Options of the comparison views. */
export interface CompareOptions {
  /** Title of the page or the display (default "Runs"). */
  title?: string;
  /** A sentence under the title. */
  description?: string;
  /** Config fields to show as columns (dotted, `train.lrMax`); default: those whose values differ between runs. */
  fields?: string[];
}

const RED = "#d62728";
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/** A field's column name: its key (`lrMax`), or the dotted field when two sections share the key. */
function columnName(field: string, fields: string[]): string {
  const key = field.split(".")[1];
  return fields.filter((f) => f.split(".")[1] === key).length > 1 ? field : key;
}

/** Where a run stands, in a few words: `done`, `diverged at step 37`, `running (step 50 of 400)`. */
function statusText(run: LoadedRun): string {
  const s = run.summary;
  switch (run.status) {
    case "done":
      return "done";
    case "diverged":
      return `diverged at step ${run.info?.divergedAt ?? s.step}`;
    case "running":
      return `running (step ${s.step}${s.steps ? ` of ${s.steps}` : ""})`;
    case "unknown":
      return `step ${s.step}${s.steps ? ` of ${s.steps}` : ""}`;
    default:
      return `${run.status} at step ${s.step}`;
  }
}

/**
 * The comparison table's rows: run, the varied fields, status, steps, best validation loss and its bits per byte,
 * last validation and training loss, median tokens/s and training time.
 *
 * @example
 * ```ts
 * import { comparisonRows } from "@nanolm/nanolm/notebook";
 * import { type LoadedRun, parseConfig } from "@nanolm/nanolm/train";
 * // Runs as `loadRuns("runs/lr")` reads them back.
 * const model = { vocabSize: 256, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 };
 * const run = (lrMax: number, valLoss: number, status: LoadedRun["status"] = "done"): LoadedRun => ({
 *   dir: `runs/lr/lrMax-${lrMax}`,
 *   name: `lrMax-${lrMax}`,
 *   status,
 *   config: parseConfig({ model, train: { trainData: "train.bin", lrMax } }),
 *   records: [{ step: 100, loss: valLoss - 0.25, tokens: 6400 }, { step: 100, valLoss, tokens: 6400 }],
 *   summary: { step: 100, best: { step: 100, valLoss }, lastValLoss: valLoss, lastLoss: valLoss - 0.25 },
 * });
 * const rows = comparisonRows([run(1e-3, 3.5), run(3e-2, NaN, "diverged")]);
 * const expected = {
 *   run: "lrMax-0.03",
 *   lrMax: 0.03,
 *   status: "diverged at step 100",
 *   steps: 100,
 *   "best val loss": NaN,
 *   "best at step": 100,
 *   "last val loss": NaN,
 *   "last train loss": NaN,
 * };
 * // Only the field the runs vary is a column; columns no run has (bits per byte, tokens/s, time) are left out.
 * if (JSON.stringify(rows[1]) !== JSON.stringify(expected)) throw new Error(JSON.stringify(rows[1]));
 * ```
 */
export function comparisonRows(runs: readonly LoadedRun[], options: CompareOptions = {}): TableRow[] {
  const fields = options.fields ?? variedFields(runs);
  const rows = runs.map((run) => {
    const s = run.summary;
    const row: TableRow = { run: run.name };
    for (const f of fields) row[columnName(f, fields)] = configValue(run.config, f);
    row.status = statusText(run);
    row.steps = s.step;
    row["best val loss"] = s.best?.valLoss;
    row["best val bits/byte"] = s.best?.valBpb;
    row["best at step"] = s.best?.step;
    row["last val loss"] = s.lastValLoss;
    row["last train loss"] = s.lastLoss;
    row["tokens/s"] = s.tokensPerSec === undefined ? undefined : Math.round(s.tokensPerSec);
    row.time = s.seconds === undefined ? undefined : formatDuration(s.seconds);
    return row;
  });
  // A column no run has a value for (bits per byte without a tokenizer, time of older runs) says nothing.
  const empty = Object.keys(rows[0] ?? {}).filter((k) => k !== "run" && rows.every((r) => r[k] === undefined));
  for (const r of rows) for (const k of empty) delete r[k];
  return rows;
}

/** `key` against `xKey` over the records that have both (e.g. loss against tokens seen). */
function seriesBy(records: readonly MetricRecord[], key: string, xKey: string): Series {
  const steps: number[] = [], values: number[] = [];
  for (const r of records) {
    const x = r[xKey], y = r[key];
    if (typeof x === "number" && typeof y === "number") {
      steps.push(x);
      values.push(y);
    }
  }
  return { steps, values };
}

function curves(run: LoadedRun, xKey: string, key = "loss", valKey = "valLoss"): LossCurveRun {
  const train = seriesBy(run.records, key, xKey), val = seriesBy(run.records, valKey, xKey);
  return { name: run.name, train: train.steps.length ? train : undefined, val: val.steps.length ? val : undefined };
}

/** The numeric field a sweep chart puts on its x axis: the learning rate when it varies, else the first number. */
function sweptField(runs: readonly LoadedRun[], fields: string[]): string | undefined {
  const numeric = fields.filter((f) =>
    f !== "train.lrMin" && runs.every((r) => r.config === undefined || typeof configValue(r.config, f) === "number") &&
    new Set(runs.map((r) => configValue(r.config, f))).size > 1
  );
  return numeric.includes("train.lrMax") ? "train.lrMax" : numeric[0];
}

/**
 * Best (solid) and final (dotted) validation loss against a numeric config field, one line per combination of the
 * other varied fields; runs that diverged are marked with a red ✕ at their best loss, or along the top of the chart
 * when they have none. For a learning-rate sweep this is CS336's chart of loss against learning rate up to the
 * edge of divergence. The x axis is logarithmic when the values span more than a factor of 10. Returns null when
 * `field` (default: `train.lrMax` when it varies, else the first numeric field that does) is not there.
 *
 * @example
 * ```ts
 * import { sweepFigure } from "@nanolm/nanolm/notebook";
 * import { type LoadedRun, parseConfig } from "@nanolm/nanolm/train";
 * const model = { vocabSize: 256, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 };
 * const run = (lrMax: number, valLoss: number, status: LoadedRun["status"] = "done"): LoadedRun => ({
 *   dir: `runs/lr/lrMax-${lrMax}`,
 *   name: `lrMax-${lrMax}`,
 *   status,
 *   config: parseConfig({ model, train: { trainData: "train.bin", lrMax } }),
 *   records: [{ step: 100, loss: valLoss - 0.25, tokens: 6400 }, { step: 100, valLoss, tokens: 6400 }],
 *   summary: { step: 100, best: { step: 100, valLoss }, lastValLoss: valLoss, lastLoss: valLoss - 0.25 },
 * });
 * const figure = sweepFigure([run(3e-3, 3.25), run(1e-3, 3.5), run(3e-2, NaN, "diverged")])!;
 * const [best, , diverged] = figure.data;
 * if ((best.x as number[]).join() !== "0.001,0.003" || (best.y as number[]).join() !== "3.5,3.25") {
 *   throw new Error("best validation loss by learning rate, in order");
 * }
 * if (diverged.name !== "diverged" || (diverged.x as number[]).join() !== "0.03") throw new Error("a red ✕");
 * // The rates span more than a factor of 10: a log axis.
 * if ((figure.layout.xaxis as { type?: string }).type !== "log") throw new Error("a log x axis");
 * ```
 */
export function sweepFigure(
  runs: readonly LoadedRun[],
  options: { field?: string; fields?: string[]; title?: string } = {},
): PlotlyFigure | null {
  const fields = options.fields ?? variedFields(runs);
  const field = options.field ?? sweptField(runs, fields);
  if (!field) return null;
  const withX = runs.filter((r) => typeof configValue(r.config, field) === "number");
  if (withX.length === 0) return null;
  const others = fields.filter((f) => f !== field && !(field === "train.lrMax" && f === "train.lrMin"));
  const groups = new Map<string, LoadedRun[]>();
  for (const r of withX) {
    const label = others.map((f) => `${columnName(f, fields)} ${JSON.stringify(configValue(r.config, f))}`)
      .join(", ");
    groups.set(label, [...(groups.get(label) ?? []), r]);
  }
  const data: PlotlyTrace[] = [];
  const finite: number[] = [];
  [...groups.entries()].forEach(([label, group], i) => {
    const color = PALETTE[i % PALETTE.length];
    const sorted = [...group].sort((a, b) =>
      (configValue(a.config, field) as number) - (configValue(b.config, field) as number)
    );
    const points = (pick: (r: LoadedRun) => number | undefined) =>
      sorted.filter((r) => r.status !== "diverged" && Number.isFinite(pick(r)));
    const best = points((r) => r.summary.best?.valLoss), last = points((r) => r.summary.lastValLoss);
    finite.push(...best.map((r) => r.summary.best!.valLoss), ...last.map((r) => r.summary.lastValLoss!));
    const name = (what: string) => (label ? `${label}: ${what}` : what);
    data.push({
      type: "scatter",
      mode: "lines+markers",
      name: name("best val loss"),
      legendgroup: label,
      x: best.map((r) => configValue(r.config, field)),
      y: best.map((r) => r.summary.best!.valLoss),
      text: best.map((r) => r.name),
      line: { color, width: 2 },
      marker: { size: 8 },
    });
    data.push({
      type: "scatter",
      mode: "lines+markers",
      name: name("final val loss"),
      legendgroup: label,
      x: last.map((r) => configValue(r.config, field)),
      y: last.map((r) => r.summary.lastValLoss),
      text: last.map((r) => r.name),
      line: { color, width: 1.5, dash: "dot" },
      marker: { size: 6, symbol: "circle-open" },
    });
  });
  const diverged = withX.filter((r) => r.status === "diverged");
  if (diverged.length) {
    const top = finite.length ? Math.max(...finite) * 1.05 : 1;
    data.push({
      type: "scatter",
      mode: "markers",
      name: "diverged",
      x: diverged.map((r) => configValue(r.config, field)),
      y: diverged.map((r) => Number.isFinite(r.summary.best?.valLoss) ? r.summary.best!.valLoss : top),
      text: diverged.map((r) => `${r.name}: ${statusText(r)}`),
      hoverinfo: "x+text",
      marker: { color: RED, size: 13, symbol: "x" },
    });
  }
  const xs = withX.map((r) => configValue(r.config, field) as number);
  const logX = Math.min(...xs) > 0 && Math.max(...xs) / Math.min(...xs) > 10;
  const key = field.split(".")[1];
  const title = options.title ?? `Validation loss against ${key === "lrMax" ? "the peak learning rate" : key}`;
  return {
    data,
    layout: {
      title: { text: title },
      height: 420,
      xaxis: { title: { text: key }, ...(logX ? { type: "log" } : {}) },
      yaxis: { title: { text: "validation loss" } },
      margin: { l: 60, r: 20, t: 50, b: 50 },
      template: "plotly_white",
    },
  };
}

/**
 * The comparison's charts: training and validation loss overlaid by step and by tokens seen, validation bits per
 * byte by tokens seen (when the runs have a tokenizer), and {@linkcode sweepFigure} when a numeric field varies.
 *
 * @example
 * ```ts
 * import { comparisonFigures } from "@nanolm/nanolm/notebook";
 * import { type LoadedRun, parseConfig } from "@nanolm/nanolm/train";
 * const model = { vocabSize: 256, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 };
 * const run = (name: string, lrMax: number): LoadedRun => ({
 *   dir: name,
 *   name,
 *   status: "done",
 *   summary: { step: 2 },
 *   records: [{ step: 2, loss: 3, tokens: 64 }, { step: 2, valLoss: 3.2, valBpb: 1.6, tokens: 64 }],
 *   config: parseConfig({ model, train: { trainData: "train.bin", lrMax } }),
 * });
 * const figures = comparisonFigures([run("a", 1e-3), run("b", 1e-2)]);
 * const titles = figures.map((f) => (f.layout.title as { text: string }).text).join("; ");
 * const expected = "Loss by step; Loss by tokens seen; Validation bits per byte by tokens seen; " +
 *   "Validation loss against the peak learning rate";
 * if (titles !== expected) throw new Error(titles);
 * ```
 */
export function comparisonFigures(runs: readonly LoadedRun[], options: CompareOptions = {}): PlotlyFigure[] {
  const figures = [
    lossCurveFigure(runs.map((r) => curves(r, "step")), { title: "Loss by step" }),
    lossCurveFigure(runs.map((r) => curves(r, "tokens")), { title: "Loss by tokens seen", xTitle: "tokens seen" }),
  ];
  const bpb = runs.map((r) => ({ name: r.name, series: seriesBy(r.records, "valBpb", "tokens") }))
    .filter((l) => l.series.steps.length > 0);
  if (bpb.length) {
    const figure = lineFigure(bpb, {
      title: "Validation bits per byte by tokens seen",
      xTitle: "tokens seen",
      yTitle: "bits per byte",
    });
    for (const t of figure.data) t.mode = "lines+markers";
    figures.push(figure);
  }
  const sweep = sweepFigure(runs, { fields: options.fields ?? variedFields(runs) });
  if (sweep) figures.push(sweep);
  return figures;
}

/** The table and the charts as HTML; the charts rely on the page (or notebook) defining Plotly. */
function comparisonHtml(runs: readonly LoadedRun[], options: CompareOptions, idPrefix: string): string {
  const rows = comparisonRows(runs, options);
  const parts = [htmlTable(rows, { title: options.title })];
  comparisonFigures(runs, options).forEach((f, i) =>
    parts.push(plotlyHtml(f, { plotlyJs: null, divId: `${idPrefix}-${i}` }))
  );
  return parts.join("\n");
}

/**
 * Runs compared in a notebook cell: the table of runs and the overlaid curves (see the module doc). In the kernel
 * plotly.js is sent once per session; elsewhere the HTML is self-contained.
 *
 * @example
 * ```ts
 * import { compareRuns, JUPYTER_DISPLAY } from "@nanolm/nanolm/notebook";
 * import { type LoadedRun, parseConfig } from "@nanolm/nanolm/train";
 * // In a notebook: `await show(compareRuns(await loadRuns(["../runs/lr", "../runs/default"])))`.
 * const model = { vocabSize: 256, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 };
 * const run = (lrMax: number, valLoss: number, status: LoadedRun["status"] = "done"): LoadedRun => ({
 *   dir: `runs/lr/lrMax-${lrMax}`,
 *   name: `lrMax-${lrMax}`,
 *   status,
 *   config: parseConfig({ model, train: { trainData: "train.bin", lrMax } }),
 *   records: [{ step: 100, loss: valLoss - 0.25, tokens: 6400 }, { step: 100, valLoss, tokens: 6400 }],
 *   summary: { step: 100, best: { step: 100, valLoss }, lastValLoss: valLoss, lastLoss: valLoss - 0.25 },
 * });
 * const comparison = compareRuns([run(1e-3, 3.5), run(3e-3, 3.25)], { title: "Learning rate" });
 * if (comparison.rows.length !== 2 || comparison.figures.length !== 3) throw new Error("a row a run, three charts");
 * // Outside the kernel the bundle is self-contained: the table, then the charts, plotly.js inlined.
 * const bundle = await comparison[JUPYTER_DISPLAY]();
 * const html = bundle["text/html"] as string;
 * if (!html.includes("<caption>Learning rate</caption>") || !html.includes("window.Plotly")) throw new Error(html);
 * if (!(bundle["text/plain"] as string).startsWith("Learning rate\nrun ")) throw new Error("a text table too");
 * ```
 */
export function compareRuns(
  runs: readonly LoadedRun[],
  options: CompareOptions = {},
): JupyterDisplayable & { rows: TableRow[]; figures: PlotlyFigure[] } {
  return {
    rows: comparisonRows(runs, options),
    figures: comparisonFigures(runs, options),
    [JUPYTER_DISPLAY]: async () => {
      const id = `nanolm-compare-${crypto.randomUUID()}`;
      const body = comparisonHtml(runs, options, id);
      const inline = inJupyter() ? (await ensurePlotlyInNotebook(), "") : scriptOf(await loadPlotlyJs());
      const plain = textTable(comparisonRows(runs, options), { title: options.title });
      return await cellResult({ "text/html": inline + body, "text/plain": plain });
    },
  };
}

function scriptOf(plotlyJs: string): string {
  return `<script type="text/javascript">if (typeof window.Plotly === "undefined") {\n` +
    `${plotlyJs.replace(/<\/(script)/gi, "<\\/$1")}\n}</script>\n`;
}

/**
 * The comparison as a standalone HTML page, given the plotly.js source (inlined once).
 *
 * @example
 * ```ts
 * import { renderComparison } from "@nanolm/nanolm/notebook";
 * const empty = renderComparison([], { title: "Nothing yet" }, "window.Plotly = {};");
 * if (!empty.includes("<h1>Nothing yet</h1>")) throw new Error("the title");
 * if (empty.includes("window.Plotly = {};")) throw new Error("no runs, no charts: no plotly.js");
 * ```
 */
export function renderComparison(runs: readonly LoadedRun[], options: CompareOptions, plotlyJs: string): string {
  const title = options.title ?? "Runs";
  const parts = [
    `<h1>${escapeHtml(title)}</h1>`,
    `<p class="generated">Generated by nanolm on ${new Date().toISOString()}</p>`,
  ];
  if (options.description) parts.push(`<p>${escapeHtml(options.description)}</p>`);
  parts.push(comparisonHtml(runs, { ...options, title: undefined }, "plot"));
  return renderPage(title, parts.join("\n"), runs.length ? plotlyJs : null);
}

/**
 * Writes the comparison of `runs` to `path` as one HTML file, atomically (plotly.js inlined: it opens offline).
 *
 * @example
 * ```ts
 * import { writeComparison } from "@nanolm/nanolm/notebook";
 * import { loadRuns, writeRunInfo } from "@nanolm/nanolm/train";
 * const root = await Deno.makeTempDir();
 * const now = new Date().toISOString();
 * const model = { vocabSize: 256, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 };
 * for (const lrMax of [1e-3, 3e-3]) {
 *   const dir = `${root}/lr/lrMax-${lrMax}`;
 *   await Deno.mkdir(dir, { recursive: true });
 *   await Deno.writeTextFile(`${dir}/metrics.jsonl`, `{"step":10,"loss":3}\n{"step":10,"valLoss":${3 + lrMax}}\n`);
 *   const config = { model, train: { trainData: "train.bin", lrMax, steps: 10 } };
 *   writeRunInfo(dir, { status: "done", step: 10, steps: 10, seconds: 2, started: now, updated: now, config });
 * }
 * await writeComparison(`${root}/lr/report.html`, await loadRuns(`${root}/lr`), { title: "Learning-rate sweep" });
 * const html = await Deno.readTextFile(`${root}/lr/report.html`);
 * if (!html.includes("<h1>Learning-rate sweep</h1>") || !html.includes("<td>lrMax-0.003</td>")) throw new Error(html);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function writeComparison(
  path: string,
  runs: readonly LoadedRun[],
  options: CompareOptions = {},
): Promise<void> {
  const html = renderComparison(runs, options, await loadPlotlyJs());
  try {
    writeFileAtomicSync(path, html);
  } catch (e) {
    throw new Error(`Report ${path} cannot be written: ${(e as Error).message}`, { cause: e });
  }
}

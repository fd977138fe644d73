/**
 * The end-of-run HTML report: one standalone file (plotly.js inlined, no network needed) with a summary table,
 * loss curves of one or several runs, the learning rate and other recorded metrics, generated samples, and the
 * run configuration.
 *
 * @module
 */
import { writeFileAtomicSync } from "../io/atomic_write.ts";
import { escapeHtml } from "./display.ts";
import { type MetricRecord, metricSeries, type Stepped } from "../train/metrics.ts";
import { lineFigure, loadPlotlyJs, lossCurveFigure, type PlotlyFigure, plotlyHtml, runFromMetrics } from "./plot.ts";

/** One run of a report: a name and its metric records. */
export interface ReportRun {
  /** Legend name. */
  name: string;
  /** The metric records or trainer events (`loss`, `valLoss`, `lr`, `tokensPerSec`... against `step`). */
  records: readonly (MetricRecord | Stepped)[];
}

/** A generated sample. */
export interface ReportSample {
  /** The prompt, shown in bold before the continuation. */
  prompt?: string;
  /** The generated text (the continuation). */
  text: string;
  /** A caption, e.g. `temperature 0.8, top-p 0.95`. */
  label?: string;
}

/** What a report contains. */
export interface ReportContent {
  /** Page title. */
  title: string;
  /** Runs whose curves are drawn (overlaid when several). */
  runs?: ReportRun[];
  /** Generated samples. */
  samples?: (string | ReportSample)[];
  /** The run configuration (any JSON value; nested objects become dotted keys). */
  config?: unknown;
  /** Extra figures, after the curves. */
  figures?: PlotlyFigure[];
  /** A paragraph of plain text under the title. */
  notes?: string;
  /** Facts of the run shown as a table after the notes (model size, tokens seen, best checkpoint, environment...). */
  facts?: [string, string][];
}

/** Metrics drawn as their own chart when a run recorded them: key, then y-axis title. */
const EXTRA_METRICS: [string, string, boolean][] = [
  ["valBpb", "validation bits per byte", false],
  ["lr", "learning rate", false],
  ["tokensPerSec", "tokens/s", false],
  ["gradNorm", "gradient norm", true],
  ["mfu", "MFU", false],
];

function flatten(value: unknown, prefix: string, out: [string, string][]): void {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.push([prefix || "(value)", typeof value === "string" ? value : JSON.stringify(value) ?? "undefined"]);
  }
}

function formatNumber(x: number | undefined): string {
  if (x === undefined) return "–";
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en-US");
  return Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3 ? x.toExponential(3) : x.toPrecision(4);
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b), mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function summaryRow(run: ReportRun): string {
  const train = metricSeries(run.records, "loss");
  const val = metricSeries(run.records, "valLoss");
  const speed = metricSeries(run.records, "tokensPerSec").values;
  const tokens = metricSeries(run.records, "tokens").values, epochs = metricSeries(run.records, "epoch").values;
  const lastStep = run.records.reduce((m, r) => Math.max(m, r.step), -Infinity);
  const bpb = metricSeries(run.records, "valBpb");
  let best: number | undefined, bestStep: number | undefined;
  val.values.forEach((v, i) => {
    if (best === undefined || v < best) [best, bestStep] = [v, val.steps[i]];
  });
  const bestBpb = bestStep === undefined ? undefined : bpb.values[bpb.steps.indexOf(bestStep)];
  const cells = [
    escapeHtml(run.name),
    formatNumber(Number.isFinite(lastStep) ? lastStep : undefined),
    formatNumber(train.values.at(-1)),
    formatNumber(val.values.at(-1)),
    best === undefined ? "–" : `${formatNumber(best)} (step ${formatNumber(bestStep)})`,
    bestBpb === undefined ? "–" : bestBpb.toFixed(3),
    formatNumber(tokens.at(-1)),
    epochs.length ? (epochs.at(-1)!).toFixed(2) : "–",
    formatNumber(median(speed)),
  ];
  return `<tr>${cells.map((c) => `<td>${c}</td>`).join("")}</tr>`;
}

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
  padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .generated { color: #777; margin-top: 0; }
table { border-collapse: collapse; margin: 1rem 0; } td, th { border: 1px solid #ddd; padding: 0.3rem 0.7rem;
  text-align: left; font-variant-numeric: tabular-nums; } th { background: #f5f5f5; }
.sample { border-left: 3px solid #1f77b4; background: #fafafa; padding: 0.5rem 1rem; margin: 1rem 0;
  white-space: pre-wrap; font-family: ui-monospace, monospace; } .sample .label { color: #777; display: block; }
.config td:first-child { font-family: ui-monospace, monospace; }`;

/**
 * Renders a report to an HTML string, given the plotly.js source (see `loadPlotlyJs`), which is inlined once.
 *
 * @example
 * ```ts
 * import { renderReport } from "@nanolm/nanolm/notebook";
 * const records = [{ step: 0, loss: 4 }, { step: 1, loss: 3 }, { step: 1, valLoss: 3.5 }];
 * const plotlyJs = "window.Plotly = { newPlot() {} };";
 * const html = renderReport({ title: "Run", runs: [{ name: "a", records }] }, plotlyJs);
 * if (!html.startsWith("<!DOCTYPE html>") || !html.includes("<h2>Loss</h2>")) throw new Error("a page with curves");
 * // The summary: last step, last training and validation loss, best validation loss and its step.
 * if (!html.includes("<td>a</td><td>1</td><td>3</td><td>3.500</td><td>3.500 (step 1)</td>")) throw new Error(html);
 * if (html.indexOf(plotlyJs) !== html.lastIndexOf(plotlyJs)) throw new Error("plotly.js is inlined once");
 * ```
 */
export function renderReport(content: ReportContent, plotlyJs: string): string {
  const runs = content.runs ?? [];
  let plotCount = 0;
  const plot = (figure: PlotlyFigure) => plotlyHtml(figure, { plotlyJs: null, divId: `plot-${plotCount++}` });
  const parts: string[] = [];
  parts.push(`<h1>${escapeHtml(content.title)}</h1>`);
  parts.push(`<p class="generated">Generated by nanolm on ${new Date().toISOString()}</p>`);
  if (content.notes) parts.push(`<p>${escapeHtml(content.notes)}</p>`);
  if (content.facts?.length) {
    parts.push('<table class="facts"><tbody>');
    for (const [k, v] of content.facts) parts.push(`<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`);
    parts.push("</tbody></table>");
  }
  if (runs.length > 0) {
    parts.push("<h2>Summary</h2><table><thead><tr>");
    const heads = [
      "run",
      "last step",
      "last train loss",
      "last val loss",
      "best val loss",
      "its bits/byte",
      "tokens seen",
      "epochs",
    ];
    for (const h of [...heads, "median tokens/s"]) {
      parts.push(`<th>${h}</th>`);
    }
    parts.push(`</tr></thead><tbody>${runs.map(summaryRow).join("")}</tbody></table>`);
    parts.push("<h2>Loss</h2>");
    parts.push(plot(lossCurveFigure(runs.map((r) => runFromMetrics(r.name, r.records)), { title: "Loss" })));
    for (const [key, yTitle, logY] of EXTRA_METRICS) {
      const lines = runs.map((r) => ({ name: r.name, series: metricSeries(r.records, key) }))
        .filter((l) => l.series.steps.length > 0);
      if (lines.length > 0) parts.push(plot(lineFigure(lines, { title: yTitle, yTitle, logY, height: 300 })));
    }
  }
  if (content.figures?.length) {
    parts.push("<h2>Figures</h2>");
    for (const f of content.figures) parts.push(plot(f));
  }
  if (content.samples?.length) {
    parts.push("<h2>Samples</h2>");
    for (const s of content.samples) {
      const sample = typeof s === "string" ? { text: s } : s;
      const label = sample.label ? `<span class="label">${escapeHtml(sample.label)}</span>` : "";
      const prompt = sample.prompt ? `<b>${escapeHtml(sample.prompt)}</b>` : "";
      parts.push(`<div class="sample">${label}${prompt}${escapeHtml(sample.text)}</div>`);
    }
  }
  if (content.config !== undefined) {
    const rows: [string, string][] = [];
    flatten(content.config, "", rows);
    parts.push('<h2>Configuration</h2><table class="config"><tbody>');
    for (const [k, v] of rows) parts.push(`<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`);
    parts.push("</tbody></table>");
  }
  return renderPage(content.title, parts.join("\n"), plotCount > 0 ? plotlyJs : null);
}

/**
 * A standalone HTML page in the report's style: `body` (HTML) under a head holding `plotlyJs` inlined once (none
 * when null), so that charts drawn by `plotlyHtml(figure, { plotlyJs: null })` in the body work offline.
 *
 * @example
 * ```ts
 * import { renderPage } from "@nanolm/nanolm/notebook";
 * const html = renderPage("Runs <2>", "<p>hello</p>", null);
 * if (!html.includes("<title>Runs &lt;2&gt;</title>")) throw new Error("the title is escaped");
 * if (!html.includes("<body>\n<p>hello</p>\n</body>") || html.includes("<script")) throw new Error(html);
 * // A script's text cannot close its element early.
 * const withJs = renderPage("Runs", "", "const s = '</script>';");
 * if (!withJs.includes("const s = '<\\/script>';")) throw new Error("</script> in plotly.js is escaped");
 * ```
 */
export function renderPage(title: string, body: string, plotlyJs: string | null): string {
  const script = plotlyJs === null
    ? ""
    : `<script type="text/javascript">\n${plotlyJs.replace(/<\/(script)/gi, "<\\/$1")}\n</script>\n`;
  return `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n` +
    `<title>${escapeHtml(title)}</title>\n<style>${STYLE}\n</style>\n${script}</head>\n<body>\n` +
    `${body}\n</body>\n</html>\n`;
}

/**
 * Writes a standalone HTML report to `path` atomically (plotly.js from `npm:plotly.js-dist-min` inlined, so it opens
 * offline).
 *
 * @example
 * ```ts
 * import { loadPlotlyJs, writeReport } from "@nanolm/nanolm/notebook";
 * const path = await Deno.makeTempFile({ suffix: ".html" });
 * await writeReport(path, {
 *   title: "TinyStories 17M",
 *   runs: [{ name: "base", records: [{ step: 0, loss: 9.2 }, { step: 100, loss: 4.1 }, { step: 100, valLoss: 4.3 }] }],
 *   samples: [{ prompt: "Once upon a time", text: " there was a cat." }],
 *   config: { model: { dModel: 512 }, train: { lrMax: 1e-3 } },
 * });
 * const html = await Deno.readTextFile(path);
 * if (!html.includes("<b>Once upon a time</b> there was a cat.")) throw new Error("the sample, its prompt in bold");
 * if (!html.includes("<tr><td>train.lrMax</td><td>0.001</td></tr>")) throw new Error("the config as dotted keys");
 * // plotly.js inlined: the page opens offline.
 * if (!html.includes((await loadPlotlyJs()).slice(0, 1000))) throw new Error("plotly.js is inlined");
 * await Deno.remove(path);
 * ```
 */
export async function writeReport(path: string, content: ReportContent): Promise<void> {
  const html = renderReport(content, await loadPlotlyJs());
  try {
    writeFileAtomicSync(path, html);
  } catch (e) {
    throw new Error(`Report ${path} cannot be written: ${(e as Error).message}`, { cause: e });
  }
}

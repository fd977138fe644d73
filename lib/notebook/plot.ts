/**
 * Plotly charts as plain JSON figures (`{ data, layout }`), their rendering to self-contained HTML, and their
 * display in the Deno Jupyter kernel.
 *
 * A figure is offered to Jupyter both as `application/vnd.plotly.v1+json` (rendered natively where the Plotly
 * extension is installed) and as `text/html` with plotly.js from `npm:plotly.js-dist-min` inlined, so it renders
 * offline and in exported HTML. The minified plotly.js (4.9 MB) is read from the npm package lazily, once per
 * process. In the kernel it is sent to the notebook once per session, gzipped (1.5 MB, 2 MB as base64) and in two
 * pieces, because the Deno kernel loses messages of several megabytes; the page unpacks it with the browser's
 * `DecompressionStream`. Standalone HTML (reports, bundles built outside Jupyter) inlines it whole.
 *
 * Nothing here touches `Deno.jupyter` at import time: it exists only inside the kernel and throws elsewhere.
 *
 * @module
 */
import { createRequire } from "node:module";
import { cellResult, inJupyter, JUPYTER_DISPLAY, type JupyterDisplayable, type MimeBundle } from "./display.ts";
import { display } from "./jupyter.ts";
import { type MetricRecord, metricSeries, type Series, type Stepped } from "../train/metrics.ts";
import { cosineLr, type CosineScheduleOptions } from "../optim/schedule.ts";

/** One Plotly trace (`{ type: "scatter", x, y, ... }`), as JSON. */
export type PlotlyTrace = Record<string, unknown>;

/** A Plotly figure as JSON: what `Plotly.newPlot(div, data, layout)` takes. */
export interface PlotlyFigure {
  /** The traces. */
  data: PlotlyTrace[];
  /** The layout (titles, axes, size). */
  layout: Record<string, unknown>;
}

/** The loss curves of one run. */
export interface LossCurveRun {
  /** Legend name of the run. */
  name: string;
  /** Training loss against step. */
  train?: Series;
  /** Validation loss against step. */
  val?: Series;
}

/** Common options of the figure builders. */
export interface FigureOptions {
  /** Figure title. */
  title?: string;
  /** Height in pixels (default 420). */
  height?: number;
}

// D3's category10: a run's train and validation curves share a colour, runs differ.
const PALETTE = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

function baseLayout(options: FigureOptions, xTitle: string, yTitle: string): Record<string, unknown> {
  return {
    title: { text: options.title ?? "" },
    height: options.height ?? 420,
    xaxis: { title: { text: xTitle } },
    yaxis: { title: { text: yTitle } },
    margin: { l: 60, r: 20, t: options.title ? 50 : 20, b: 50 },
    template: "plotly_white",
  };
}

/**
 * The loss curves of a run from its metric records (`loss` and `valLoss`, see the metrics module).
 *
 * @example
 * ```ts
 * import { runFromMetrics } from "@nanolm/nanolm/notebook";
 * const run = runFromMetrics("baseline", [{ step: 0, loss: 5 }, { step: 0, valLoss: 5.1 }, { step: 1, loss: 4 }]);
 * if (run.train?.steps.join() !== "0,1" || run.train.values.join() !== "5,4") throw new Error("loss by step");
 * if (run.val?.steps.join() !== "0" || run.val.values.join() !== "5.1") throw new Error("valLoss by step");
 * ```
 */
export function runFromMetrics(
  name: string,
  records: readonly (MetricRecord | Stepped)[],
  options: { trainKey?: string; valKey?: string } = {},
): LossCurveRun {
  const train = metricSeries(records, options.trainKey ?? "loss");
  const val = metricSeries(records, options.valKey ?? "valLoss");
  return { name, train: train.steps.length ? train : undefined, val: val.steps.length ? val : undefined };
}

/**
 * Training (solid) and validation (dashed, markers) loss against step (or what the series' `steps` hold: tokens
 * seen, with `xTitle`), one colour per run, several runs overlaid.
 *
 * @example
 * ```ts
 * import { lossCurveFigure } from "@nanolm/nanolm/notebook";
 * const fig = lossCurveFigure([
 *   { name: "lr 1e-3", train: { steps: [0, 1, 2], values: [5, 4, 3.5] } },
 *   { name: "lr 3e-3", train: { steps: [0, 1, 2], values: [5, 3.8, 3.2] }, val: { steps: [2], values: [3.4] } },
 * ], { title: "Learning-rate sweep" });
 * const names = fig.data.map((trace) => trace.name).join();
 * if (names !== "lr 1e-3 train,lr 3e-3 train,lr 3e-3 val") throw new Error(`traces ${names}`);
 * // A run's two curves share a colour; validation is dashed.
 * const [, train, val] = fig.data.map((trace) => trace.line as { color: string; dash?: string });
 * if (train.color !== val.color || val.dash !== "dash") throw new Error("one colour a run, dashed validation");
 * ```
 */
export function lossCurveFigure(
  runs: LossCurveRun[],
  options: FigureOptions & { logY?: boolean; xTitle?: string; yTitle?: string } = {},
): PlotlyFigure {
  const data: PlotlyTrace[] = [];
  runs.forEach((run, i) => {
    const color = PALETTE[i % PALETTE.length];
    const label = (part: string) => (runs.length > 1 ? `${run.name} ${part}` : part);
    if (run.train) {
      data.push({
        type: "scatter",
        mode: "lines",
        name: label("train"),
        legendgroup: run.name,
        x: [...run.train.steps],
        y: [...run.train.values],
        line: { color, width: 1.5 },
      });
    }
    if (run.val) {
      data.push({
        type: "scatter",
        mode: "lines+markers",
        name: label("val"),
        legendgroup: run.name,
        x: [...run.val.steps],
        y: [...run.val.values],
        line: { color, width: 2, dash: "dash" },
        marker: { size: 6 },
      });
    }
  });
  const layout = baseLayout(options, options.xTitle ?? "step", options.yTitle ?? "loss");
  if (options.logY) (layout.yaxis as Record<string, unknown>).type = "log";
  return { data, layout };
}

/** A named series for {@linkcode lineFigure}. */
export interface NamedSeries {
  /** Legend name. */
  name: string;
  /** The points. */
  series: Series;
}

/**
 * Any metric against step, one line per named series (learning rate, tokens/s, gradient norm...).
 *
 * @example
 * ```ts
 * import { lineFigure } from "@nanolm/nanolm/notebook";
 * const fig = lineFigure([{ name: "run", series: { steps: [0, 1], values: [0.5, 0.7] } }], { yTitle: "grad norm" });
 * if (fig.data.length !== 1 || (fig.data[0].y as number[]).join() !== "0.5,0.7") throw new Error("one line");
 * const yaxis = fig.layout.yaxis as { title: { text: string } };
 * if (yaxis.title.text !== "grad norm") throw new Error(`y axis "${yaxis.title.text}"`);
 * ```
 */
export function lineFigure(
  lines: NamedSeries[],
  options: FigureOptions & { xTitle?: string; yTitle?: string; logY?: boolean } = {},
): PlotlyFigure {
  const data: PlotlyTrace[] = lines.map((l, i) => ({
    type: "scatter",
    mode: "lines",
    name: l.name,
    x: [...l.series.steps],
    y: [...l.series.values],
    line: { color: PALETTE[i % PALETTE.length], width: 1.5 },
  }));
  const layout = baseLayout(options, options.xTitle ?? "step", options.yTitle ?? "");
  if (options.logY) (layout.yaxis as Record<string, unknown>).type = "log";
  return { data, layout };
}

/**
 * The learning-rate schedule of updates 1 to `steps` (default 10% past the cosine cycle), optionally with the
 * rates a run actually recorded. Update `s` trains at the schedule's value at `s` (as the trainer does), so a
 * recorded rate sits on the planned curve at its own step.
 *
 * @example
 * ```ts
 * import { learningRateFigure } from "@nanolm/nanolm/notebook";
 * const fig = learningRateFigure({ lrMax: 1e-3, lrMin: 1e-4, warmupSteps: 10, cosineCycleSteps: 100 });
 * const x = fig.data[0].x as number[], y = fig.data[0].y as number[];
 * if (x[0] !== 1 || y[0] !== 1e-4) throw new Error("update 1 trains at 1/10 of the peak, in the warm-up");
 * if (y[x.indexOf(10)] !== 1e-3) throw new Error("the peak at the end of the warm-up");
 * if (x.at(-1)! <= 100 || y.at(-1) !== 1e-4) throw new Error("past the cycle: the floor");
 * ```
 */
export function learningRateFigure(
  schedule: CosineScheduleOptions,
  options: FigureOptions & { steps?: number; recorded?: Series } = {},
): PlotlyFigure {
  const steps = options.steps ?? Math.max(1, Math.ceil(schedule.cosineCycleSteps * 1.1));
  const x = Array.from({ length: steps }, (_, i) => i + 1);
  const data: PlotlyTrace[] = [{
    type: "scatter",
    mode: "lines",
    name: "schedule",
    x,
    y: x.map((t) => cosineLr(t, schedule)),
    line: { color: PALETTE[0] },
  }];
  if (options.recorded) {
    data.push({
      type: "scatter",
      mode: "markers",
      name: "recorded",
      x: [...options.recorded.steps],
      y: [...options.recorded.values],
      marker: { color: PALETTE[1], size: 4 },
    });
  }
  return { data, layout: baseLayout(options, "step", "learning rate") };
}

/** Bins of a histogram: their centres, width and counts. */
export interface Histogram {
  /** Centre of each bin. */
  centers: number[];
  /** Width of every bin. */
  width: number;
  /** Values in each bin. */
  counts: number[];
}

/**
 * Counts values into equal bins on the host, so that a chart carries a few hundred numbers, not every value (the
 * corpus histogram of notebook 1 had 572,822). Integers spanning at most `maxIntegerBins` (default 200) get a bin
 * each, centred on the integer; other values `bins` equal bins (default: about √n, at most 100) from the smallest
 * to the largest, the largest counted in the last. Non-finite values are left out.
 *
 * @example
 * ```ts
 * import { histogramBins } from "@nanolm/nanolm/notebook";
 * // Integers: a bin each, centred on the integer.
 * const lengths = histogramBins([1, 2, 2, 5]);
 * if (lengths.centers.join() !== "1,2,3,4,5" || lengths.width !== 1) throw new Error("a bin per integer");
 * if (lengths.counts.join() !== "1,2,0,0,1") throw new Error(`counts ${lengths.counts}`);
 * // Other values: equal bins from the smallest to the largest, which counts in the last.
 * const weights = histogramBins([0, 0.25, 0.5, 1, NaN], { bins: 2 });
 * if (weights.width !== 0.5 || weights.counts.join() !== "2,2") throw new Error(`counts ${weights.counts}`);
 * ```
 */
export function histogramBins(
  values: ArrayLike<number>,
  options: { bins?: number; maxIntegerBins?: number } = {},
): Histogram {
  let min = Infinity, max = -Infinity, n = 0, integers = true;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    n++;
    if (v < min) min = v;
    if (v > max) max = v;
    if (integers && !Number.isInteger(v)) integers = false;
  }
  if (n === 0) return { centers: [], width: 1, counts: [] };
  let count: number, width: number, start: number;
  if (integers && options.bins === undefined && max - min + 1 <= (options.maxIntegerBins ?? 200)) {
    [count, width, start] = [max - min + 1, 1, min - 0.5];
  } else {
    count = options.bins ?? Math.min(100, Math.max(1, Math.ceil(Math.sqrt(n))));
    width = max > min ? (max - min) / count : 1;
    start = max > min ? min : min - 0.5;
  }
  const counts = new Array<number>(count).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) counts[Math.min(count - 1, Math.floor((v - start) / width))]++;
  }
  return { centers: counts.map((_, i) => start + (i + 0.5) * width), width, counts };
}

/**
 * A histogram of values (token lengths, weights, gradients...), binned on the host by {@linkcode histogramBins} and
 * drawn as bars: the figure holds the bin counts, not the values.
 *
 * @example
 * ```ts
 * import { histogramFigure } from "@nanolm/nanolm/notebook";
 * const fig = histogramFigure(new Float32Array([1, 2, 2, 3]), { title: "Token lengths", xTitle: "bytes" });
 * const bars = fig.data[0];
 * if (bars.type !== "bar" || (bars.x as number[]).join() !== "1,2,3") throw new Error("a bar per length");
 * if ((bars.y as number[]).join() !== "1,2,1") throw new Error(`counts ${bars.y}`);
 * ```
 */
export function histogramFigure(
  values: ArrayLike<number>,
  options: FigureOptions & { xTitle?: string; bins?: number } = {},
): PlotlyFigure {
  const h = histogramBins(values, { bins: options.bins });
  const trace: PlotlyTrace = {
    type: "bar",
    x: h.centers,
    y: h.counts,
    width: h.width,
    marker: { color: PALETTE[0] },
    hovertemplate: `%{x}: %{y}<extra></extra>`,
  };
  return { data: [trace], layout: { ...baseLayout(options, options.xTitle ?? "value", "count"), bargap: 0.02 } };
}

/**
 * A heatmap of a matrix given as rows, or as a flat row-major array with its number of columns.
 *
 * @example
 * ```ts
 * import { heatmapFigure } from "@nanolm/nanolm/notebook";
 * const fig = heatmapFigure({ data: new Float32Array([1, 0, 0.25, 0.75]), cols: 2 }, { x: ["a", "b"], y: ["a", "b"] });
 * const z = fig.data[0].z as number[][];
 * if (JSON.stringify(z) !== "[[1,0],[0.25,0.75]]") throw new Error(`rows ${JSON.stringify(z)}`);
 * // Row 0 at the top, as a matrix is read.
 * if ((fig.layout.yaxis as { autorange: string }).autorange !== "reversed") throw new Error("row 0 on top");
 * ```
 */
export function heatmapFigure(
  matrix: number[][] | { data: ArrayLike<number>; cols: number },
  options: FigureOptions & { x?: string[]; y?: string[]; xTitle?: string; yTitle?: string; colorscale?: string } = {},
): PlotlyFigure {
  let z: number[][];
  if (Array.isArray(matrix)) {
    z = matrix.map((row) => Array.from(row));
  } else {
    const { data, cols } = matrix;
    if (!Number.isInteger(cols) || cols <= 0 || data.length % cols !== 0) {
      throw new RangeError(`Heatmap of ${data.length} values cannot have ${cols} columns`);
    }
    z = Array.from(
      { length: data.length / cols },
      (_, r) => Array.from({ length: cols }, (_, c) => data[r * cols + c]),
    );
  }
  const trace: PlotlyTrace = { type: "heatmap", z, colorscale: options.colorscale ?? "Viridis" };
  if (options.x) trace.x = options.x;
  if (options.y) trace.y = options.y;
  const layout = baseLayout(options, options.xTitle ?? "", options.yTitle ?? "");
  // Row 0 at the top, as a matrix is read.
  (layout.yaxis as Record<string, unknown>).autorange = "reversed";
  return { data: [trace], layout };
}

/**
 * An attention map: weights[query][key] of one head (T×T, row-major), query positions down, key positions across,
 * labelled `position:token` when tokens are given (Plotly merges equal category labels, so the position keeps repeated
 * tokens apart).
 *
 * @example
 * ```ts
 * import { attentionMapFigure } from "@nanolm/nanolm/notebook";
 * const weights = new Float32Array([1, 0, 0.25, 0.75]);
 * const fig = attentionMapFigure(weights, { tokens: ["the", "cat"], title: "layer 0 head 1" });
 * if ((fig.data[0].x as string[]).join() !== "0:the,1:cat") throw new Error("keys labelled position:token");
 * // Query 1 ("cat") attends a quarter to "the" and three quarters to itself.
 * if ((fig.data[0].z as number[][])[1].join() !== "0.25,0.75") throw new Error("a row per query");
 * ```
 */
export function attentionMapFigure(
  weights: ArrayLike<number>,
  options: FigureOptions & { tokens?: string[] } = {},
): PlotlyFigure {
  const T = Math.round(Math.sqrt(weights.length));
  if (T * T !== weights.length) throw new RangeError(`Attention map needs T*T weights, got ${weights.length}`);
  const labels = options.tokens
    ? options.tokens.map((t, i) => `${i}:${t}`)
    : Array.from({ length: T }, (_, i) => `${i}`);
  if (labels.length !== T) throw new RangeError(`Attention map of ${T} positions got ${labels.length} tokens`);
  const fig = heatmapFigure({ data: weights, cols: T }, {
    ...options,
    x: labels,
    y: labels,
    xTitle: "key",
    yTitle: "query",
    colorscale: "Blues",
  });
  return fig;
}

let plotlySource: Promise<string> | undefined;

/**
 * The source text of the minified plotly.js from the `plotly.js-dist-min` npm package, read once and cached. The
 * package is brought into the module graph through its `package.json` (importing plotly.js itself would run it, and
 * it needs a browser), then its main file is located through `import.meta.resolve`, falling back to Node's
 * `require.resolve`.
 *
 * @example
 * ```ts
 * import { loadPlotlyJs } from "@nanolm/nanolm/notebook";
 * const js = await loadPlotlyJs();
 * if (!js.includes("window.Plotly")) throw new Error("not plotly.js");
 * if ((await loadPlotlyJs()) !== js) throw new Error("read once, then cached");
 * ```
 */
export function loadPlotlyJs(): Promise<string> {
  plotlySource ??= locatePlotly().catch((e) => {
    plotlySource = undefined; // let a later call retry (e.g. after the network came back)
    throw e;
  });
  return plotlySource;
}

async function locatePlotly(): Promise<string> {
  let version = "?";
  try {
    const pkg = await import("plotly.js-dist-min/package.json", { with: { type: "json" } });
    version = pkg.default.version;
  } catch (e) {
    throw new Error(`plotly.js could not be loaded from npm:plotly.js-dist-min: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const candidates: (string | URL)[] = [];
  try {
    const url = new URL(import.meta.resolve("plotly.js-dist-min/plotly.min.js"));
    if (url.protocol === "file:") candidates.push(url);
  } catch { /* try the next way */ }
  try {
    candidates.push(createRequire(import.meta.url).resolve("plotly.js-dist-min"));
  } catch { /* try the next way */ }
  for (const where of candidates) {
    try {
      const text = await Deno.readTextFile(where);
      if (text.includes("window.Plotly")) return text;
    } catch { /* try the next candidate */ }
  }
  throw new Error(`plotly.js ${version} is in the npm cache but its plotly.min.js could not be located or read`);
}

/** Options of {@linkcode plotlyHtml}. */
export interface PlotlyHtmlOptions {
  /** The plotly.js source to inline before the plot, or `null` when the page already loads it (or will). */
  plotlyJs: string | null;
  /** The id of the plot's `<div>` (default: a fresh unique id). */
  divId?: string;
}

/** Makes text safe inside an HTML `<script>` element. */
function scriptSafe(js: string): string {
  return js.replace(/<\/(script)/gi, "<\\/$1");
}

/**
 * An HTML fragment (a `<div>` and a `<script>`) that draws the figure. With `plotlyJs` it defines Plotly first
 * unless the page already has it, so the fragment works standalone and offline; without, it draws as soon as
 * Plotly is defined (by the page, or by the loader fragments of {@linkcode plotlyLoaderHtml}).
 *
 * @example
 * ```ts
 * import { plotlyHtml } from "@nanolm/nanolm/notebook";
 * const figure = { data: [{ type: "bar", y: [1, 2] }], layout: {} };
 * const html = plotlyHtml(figure, { plotlyJs: null, divId: "p1" });
 * if (!html.includes('<div id="p1"') || !html.includes('"y":[1,2]')) throw new Error("a div and its figure");
 * if (html.includes("window.Plotly === \"undefined\"")) throw new Error("plotlyJs: null inlines no plotly.js");
 * const standalone = plotlyHtml(figure, { plotlyJs: "window.Plotly = {};" });
 * if (!standalone.includes("window.Plotly = {};")) throw new Error("a standalone fragment defines Plotly");
 * ```
 */
export function plotlyHtml(figure: PlotlyFigure, options: PlotlyHtmlOptions): string {
  const id = options.divId ?? `nanolm-plot-${crypto.randomUUID()}`;
  // "<" escaped so that no string in the data can close the script element.
  const json = JSON.stringify({ data: figure.data, layout: figure.layout }).replace(/</g, "\\u003c");
  const height = typeof figure.layout.height === "number" ? figure.layout.height : 420;
  const define = options.plotlyJs === null
    ? ""
    : `<script type="text/javascript">if (typeof window.Plotly === "undefined") {\n${
      scriptSafe(options.plotlyJs)
    }\n}</script>\n`;
  return `${define}<div id="${id}" class="nanolm-plot" style="width:100%;height:${height}px;"></div>\n` +
    `<script type="text/javascript">(function () {\n` +
    `  var fig = ${json};\n` +
    `  function draw() { window.Plotly.newPlot(${
      JSON.stringify(id)
    }, fig.data, fig.layout, { responsive: true }); }\n` +
    `  if (window.Plotly) draw(); else (window.__nanolmPlotlyWaiters = window.__nanolmPlotlyWaiters || []).push(draw);\n` +
    `})();</script>`;
}

/** Gzip of a text, as base64. */
async function gzipBase64(text: string): Promise<string> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** A class on every loader fragment, so that the notebook's own CSS can hide their (empty) output areas. */
const LOADER_CLASS = "nanolm-plotly-loader";

/**
 * The outputs that carry nothing to see (the plotly.js pieces) take no room: Jupyter gives every output area a
 * margin, and a dozen empty ones made a blank band above the first chart.
 */
const HIDE_LOADER_STYLE = `<style>.jp-OutputArea-child:has(.${LOADER_CLASS}), ` +
  `.output_area:has(.${LOADER_CLASS}) { display: none; }</style>`;

/**
 * plotly.js gzipped, as base64 split into HTML fragments of at most `chunkChars` characters (default 1,000,000: two
 * pieces for the minified 4.9 MB library). Shown in order (one notebook output each), they unpack plotly.js with the
 * browser's `DecompressionStream` when the last one runs, define `window.Plotly`, then draw the charts that were
 * waiting for it. The Deno kernel drops or corrupts single messages of several megabytes, so the library cannot
 * travel inside one chart's output; in pieces it reaches the notebook, and stays in its saved and exported HTML.
 * Each fragment hides its own output area (`:has`), so the pieces leave no blank space above the chart.
 *
 * @example
 * ```ts
 * import { plotlyLoaderHtml } from "@nanolm/nanolm/notebook";
 * const parts = await plotlyLoaderHtml("window.Plotly = {};", { chunkChars: 8 });
 * if (parts.length < 2 || !parts.at(-1)!.includes("DecompressionStream")) throw new Error("the last part unpacks");
 * // Each part carries a piece of the gzipped source as base64: joined and unpacked, they give it back.
 * const base64 = parts.map((part) => JSON.parse(/\] = ("[^"]*");/.exec(part)![1])).join("");
 * const gzipped = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
 * const unpacked = new Blob([gzipped]).stream().pipeThrough(new DecompressionStream("gzip"));
 * if ((await new Response(unpacked).text()) !== "window.Plotly = {};") throw new Error("the pieces lost text");
 * ```
 */
export async function plotlyLoaderHtml(plotlyJs: string, options: { chunkChars?: number } = {}): Promise<string[]> {
  const packed = await gzipBase64(plotlyJs);
  const size = options.chunkChars ?? 1_000_000;
  const count = Math.max(1, Math.ceil(packed.length / size));
  const parts: string[] = [];
  for (let i = 0; i < count; i++) {
    let js = `(window.__nanolmPlotlyParts = window.__nanolmPlotlyParts || [])[${i}] = ` +
      `${JSON.stringify(packed.slice(i * size, (i + 1) * size))};`;
    if (i === count - 1) {
      js += `\n(function () {\n` +
        `  var parts = window.__nanolmPlotlyParts; window.__nanolmPlotlyParts = undefined;\n` +
        `  function ready(source) {\n` +
        `    if (!window.Plotly) { var s = document.createElement("script"); s.text = source; ` +
        `document.head.appendChild(s); }\n` +
        `    var waiting = window.__nanolmPlotlyWaiters || []; window.__nanolmPlotlyWaiters = [];\n` +
        `    waiting.forEach(function (draw) { draw(); });\n` +
        `  }\n` +
        `  var binary = atob(parts.join("")), bytes = new Uint8Array(binary.length);\n` +
        `  for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);\n` +
        `  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));\n` +
        `  new Response(stream).text().then(ready, function (e) {\n` +
        `    console.error("nanolm: plotly.js could not be unpacked: " + e);\n` +
        `  });\n` +
        `})();`;
    }
    parts.push(`<div class="${LOADER_CLASS}"></div>${HIDE_LOADER_STYLE}<script type="text/javascript">${js}</script>`);
  }
  return parts;
}

let plotlySentToKernel = false;
const PLOTLY_CHUNK_PAUSE_MS = 150;
const PLOTLY_DRAIN_MS = 1000;

/**
 * In the Jupyter kernel, sends plotly.js to the notebook once per kernel session (as two hidden outputs of the
 * current cell, see {@linkcode plotlyLoaderHtml}) and returns true; later calls, and calls outside Jupyter, do
 * nothing and return false.
 *
 * @example
 * ```ts
 * import { ensurePlotlyInNotebook } from "@nanolm/nanolm/notebook";
 * if (await ensurePlotlyInNotebook()) throw new Error("deno test is no Jupyter kernel: nothing is sent");
 * ```
 */
export async function ensurePlotlyInNotebook(): Promise<boolean> {
  if (plotlySentToKernel || !inJupyter()) return false;
  const parts = await plotlyLoaderHtml(await loadPlotlyJs());
  for (const [i, html] of parts.entries()) {
    const plain = `(plotly.js for the charts, part ${i + 1} of ${parts.length})`;
    await display({ "text/html": html, "text/plain": plain }, { raw: true });
    // The kernel's output socket drops messages that arrive while the client is still reading earlier ones; after
    // the last piece, wait longer: the chart that follows would be the message dropped.
    const last = i === parts.length - 1;
    await new Promise((resolve) => setTimeout(resolve, last ? PLOTLY_DRAIN_MS : PLOTLY_CHUNK_PAUSE_MS));
  }
  plotlySentToKernel = true;
  return true;
}

/**
 * The mime bundle of a figure: `application/vnd.plotly.v1+json`, `text/html`, and a `text/plain` summary. The HTML
 * inlines plotly.js (self-contained) unless `plotlyJs: "page"`, where it relies on the page (or notebook) defining
 * Plotly, as {@linkcode displayable} arranges in Jupyter.
 *
 * @example
 * ```ts
 * import { loadPlotlyJs, plotlyBundle } from "@nanolm/nanolm/notebook";
 * const figure = { data: [{ type: "scatter", y: [3, 1, 2] }], layout: { title: { text: "loss" } } };
 * const bundle = await plotlyBundle(figure);
 * if (bundle["text/plain"] !== 'Plotly figure "loss" (1 traces)') throw new Error(String(bundle["text/plain"]));
 * const json = bundle["application/vnd.plotly.v1+json"] as typeof figure;
 * if (json.data !== figure.data) throw new Error("the figure for Plotly's own renderer");
 * const js = await loadPlotlyJs();
 * if (!(bundle["text/html"] as string).includes(js.slice(0, 1000))) throw new Error("the HTML inlines plotly.js");
 * const page = await plotlyBundle(figure, { plotlyJs: "page" });
 * if ((page["text/html"] as string).length > 10_000) throw new Error('"page" leaves plotly.js to the page');
 * ```
 */
export async function plotlyBundle(
  figure: PlotlyFigure,
  options: { plotlyJs?: "inline" | "page" } = {},
): Promise<MimeBundle> {
  const title = (figure.layout.title as { text?: string } | undefined)?.text;
  const plotlyJs = options.plotlyJs === "page" ? null : await loadPlotlyJs();
  return {
    "application/vnd.plotly.v1+json": { data: figure.data, layout: figure.layout },
    "text/html": plotlyHtml(figure, { plotlyJs }),
    "text/plain": `Plotly figure${title ? ` "${title}"` : ""} (${figure.data.length} traces)`,
  };
}

async function notebookBundle(figure: PlotlyFigure): Promise<MimeBundle> {
  if (!inJupyter()) return plotlyBundle(figure);
  await ensurePlotlyInNotebook();
  return plotlyBundle(figure, { plotlyJs: "page" });
}

/**
 * Wraps a figure so that a notebook cell returning it shows the chart. In the kernel, plotly.js is sent to the
 * notebook with the first chart of the session and charts reference it; elsewhere the bundle is self-contained.
 *
 * @example
 * ```ts
 * import { displayable, JUPYTER_DISPLAY, lossCurveFigure, plotlyBundle } from "@nanolm/nanolm/notebook";
 * const chart = displayable(lossCurveFigure([{ name: "run", train: { steps: [0, 1], values: [4, 3] } }]));
 * const bundle = await chart[JUPYTER_DISPLAY]();
 * // Outside the kernel: the self-contained bundle of the figure.
 * const expected = await plotlyBundle(chart.figure);
 * if (bundle["text/plain"] !== expected["text/plain"]) throw new Error(String(bundle["text/plain"]));
 * if ((bundle["text/html"] as string).length !== (expected["text/html"] as string).length) {
 *   throw new Error("the HTML inlines plotly.js");
 * }
 * ```
 */
export function displayable(figure: PlotlyFigure): JupyterDisplayable & { figure: PlotlyFigure } {
  return {
    figure,
    [JUPYTER_DISPLAY]: async () => cellResult(await notebookBundle(figure)),
  };
}

/**
 * A chart that redraws in place while a cell runs (a live loss curve): the first {@linkcode LivePlot.update} displays
 * the figure under a display id, later ones replace it. Outside Jupyter updates do nothing and return false, so
 * the same training code runs in a terminal.
 *
 * @example
 * ```ts
 * import { LivePlot, lossCurveFigure } from "@nanolm/nanolm/notebook";
 * const live = new LivePlot();
 * for (let step = 1; step <= 3; step++) {
 *   const shown = await live.update(lossCurveFigure([{ name: "run", train: { steps: [step], values: [1 / step] } }]));
 *   if (shown) throw new Error("deno test is no Jupyter kernel: nothing is shown");
 * }
 * ```
 */
export class LivePlot {
  /** The Jupyter display id. */
  readonly displayId: string;
  #shown = false;

  /** Creates a live plot with a fresh display id. */
  constructor() {
    this.displayId = `nanolm-live-${crypto.randomUUID()}`;
  }

  /** Shows or replaces the chart; returns whether anything was displayed. */
  async update(figure: PlotlyFigure): Promise<boolean> {
    if (!inJupyter()) return false;
    await display(await notebookBundle(figure), { raw: true, update: this.#shown, displayId: this.displayId });
    this.#shown = true;
    return true;
  }
}

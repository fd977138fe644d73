/**
 * A profiled training step in a notebook (see `profileStep`): the per-kernel table, and the roofline chart that
 * places each kernel by arithmetic intensity and achieved TFLOP/s under the adapter's roofline,
 * `min(peak FLOP/s, intensity x peak bandwidth)`.
 *
 * @module
 */
import type { KernelProfile, StepProfile } from "../train/profile.ts";
import type { FigureOptions, PlotlyFigure, PlotlyTrace } from "./plot.ts";
import { formatCell, tableDisplay, type TableRow } from "./table.ts";
import type { JupyterDisplayable } from "./display.ts";

/**
 * The profile's kernel table as a notebook display: the `top` kernels by GPU time (default all) and the totals.
 *
 * @example
 * ```ts
 * import { StepProfile } from "@nanolm/nanolm/train";
 * import { profileTable } from "@nanolm/nanolm/notebook";
 * const d = { cost: { flops: 1e6, bytes: 1e5 }, hostMs: 0, submitMs: 0, gpuStartMs: 0, gpuEndMs: 1 };
 * const profile = new StepProfile({
 *   adapter: "test",
 *   peaks: null,
 *   dispatches: [{ ...d, name: "a" }, { ...d, name: "b", gpuEndMs: 2 }],
 *   phases: [],
 * });
 * const table = profileTable(profile, { top: 1 });
 * if (table.rows.map((r) => r.kernel).join() !== "b,total") throw new Error("the longest kernel, then the total");
 * ```
 */
export function profileTable(
  profile: StepProfile,
  options: { top?: number; title?: string } = {},
): JupyterDisplayable & { rows: TableRow[] } {
  const rows = profile.rows();
  const kernels = rows.slice(0, -1).slice(0, options.top ?? Infinity);
  const title = options.title ?? `GPU time by kernel, one training step on ${profile.adapter}`;
  return tableDisplay([...kernels, rows[rows.length - 1]], { title });
}

/** Options of {@linkcode rooflineFigure}. */
export interface RooflineFigureOptions extends FigureOptions {
  /** Kernels labelled on the chart, by GPU time (default 8; every point has its name on hover). */
  labels?: number;
}

/**
 * The roofline chart of a profile: log-log, x the arithmetic intensity (FLOP/byte), y the achieved TFLOP/s, the
 * roofline drawn from the profile's peaks (none without them), one point per kernel sized by its GPU time. Kernels
 * without FLOPs (copies) have no place on a log axis and are left out; the subtitle counts their time.
 *
 * @example
 * ```ts
 * import { StepProfile } from "@nanolm/nanolm/train";
 * import { rooflineFigure } from "@nanolm/nanolm/notebook";
 * const d = { hostMs: 0, submitMs: 0, gpuStartMs: 0, gpuEndMs: 1 };
 * const profile = new StepProfile({
 *   adapter: "test",
 *   peaks: { name: "test GPU", f32Tflops: 10, memoryGBps: 1000 },
 *   dispatches: [{ ...d, name: "matmul", cost: { flops: 4e9, bytes: 4e7 } }],
 *   phases: [],
 * });
 * const [roof, kernels] = rooflineFigure(profile).data;
 * if ((roof.y as number[]).at(-1) !== 10 || (kernels.y as number[])[0] !== 4) throw new Error("4 of 10 TFLOP/s");
 * ```
 */
export function rooflineFigure(profile: StepProfile, options: RooflineFigureOptions = {}): PlotlyFigure {
  const plotted = profile.kernels.filter((k) => k.flops > 0 && k.bytes > 0 && k.gpuMs > 0);
  const skippedMs = profile.kernels.filter((k) => !plotted.includes(k)).reduce((s, k) => s + finite(k.gpuMs), 0);
  const data: PlotlyTrace[] = [];
  const xs = plotted.map((k) => k.intensity);
  const roof = profile.peaks && xs.length ? rooflineTrace(profile, Math.min(...xs) / 4, Math.max(...xs) * 4) : null;
  if (roof) data.push(roof);
  data.push(kernelTrace(plotted, options.labels ?? 8));
  const peaks = profile.peaks ? `${profile.peaks.name} roofline` : "no peaks known: no roofline";
  const note = `${peaks}; kernels without FLOPs (${skippedMs.toFixed(2)} ms) not shown`;
  return {
    data,
    layout: {
      title: {
        text: `${options.title ?? `Roofline of one training step on ${profile.adapter}`}<br><sub>${note}</sub>`,
      },
      height: options.height ?? 480,
      xaxis: { title: { text: "arithmetic intensity (FLOP/byte)" }, type: "log" },
      yaxis: { title: { text: "achieved TFLOP/s" }, type: "log" },
      margin: { l: 70, r: 20, t: 70, b: 50 },
      template: "plotly_white",
      showlegend: true,
    },
  };
}

/** The roofline from intensity `from` to `to`, with its ridge point (where bandwidth stops limiting). */
function rooflineTrace(profile: StepProfile, from: number, to: number): PlotlyTrace {
  const { f32Tflops: peak, memoryGBps } = profile.peaks!;
  const ridge = (peak * 1e12) / (memoryGBps * 1e9);
  const x = [...new Set([Math.min(from, ridge / 4), ridge, Math.max(to, ridge * 4)])].sort((a, b) => a - b);
  return {
    type: "scatter",
    mode: "lines",
    name: `roofline (${formatCell(peak)} TFLOP/s, ${formatCell(memoryGBps)} GB/s)`,
    x,
    y: x.map((i) => Math.min(peak, (i * memoryGBps) / 1000)),
    line: { color: "#7f7f7f", width: 2 },
    hoverinfo: "skip",
  };
}

/** One point per kernel, its area proportional to its GPU time; the longest `labels` named on the chart. */
function kernelTrace(kernels: readonly KernelProfile[], labels: number): PlotlyTrace {
  const longest = Math.max(...kernels.map((k) => k.gpuMs), 1e-12);
  const percent = (x: number) => Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "–";
  return {
    type: "scatter",
    mode: "markers+text",
    name: "kernels (size: GPU time)",
    x: kernels.map((k) => k.intensity),
    y: kernels.map((k) => k.tflops),
    text: kernels.map((k, i) => (i < labels ? k.name : "")),
    textposition: "top center",
    hovertext: kernels.map((k) =>
      `${k.name}: ${k.dispatches} dispatches, ${k.gpuMs.toFixed(3)} ms, ${k.gbps.toPrecision(3)} GB/s, ` +
      `${percent(k.roofline)} of the roofline`
    ),
    hoverinfo: "text+x+y",
    marker: {
      size: kernels.map((k) => 6 + 34 * Math.sqrt(k.gpuMs / longest)),
      color: "#1f77b4",
      opacity: 0.7,
      line: { color: "#0b3c5d", width: 1 },
    },
  };
}

function finite(x: number): number {
  return Number.isFinite(x) ? x : 0;
}

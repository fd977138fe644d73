/**
 * Notebooks (Jupyter with the Deno kernel): the display protocol nanolm's objects use to show themselves, tables,
 * Plotly charts (plotly.js inlined, so they draw offline and in exported HTML), a live training monitor, and the
 * standalone HTML report of one or several runs.
 *
 * @example
 * ```ts
 * import { lossCurveFigure } from "@nanolm/nanolm/notebook";
 * const figure = lossCurveFigure([{ name: "run", train: { steps: [1, 2], values: [4, 3] } }]);
 * if (figure.data.length !== 1) throw new Error("one trace expected");
 * ```
 *
 * @module
 */
export {
  bundleOf,
  cellResult,
  escapeHtml,
  factsBundle,
  inJupyter,
  JUPYTER_DISPLAY,
  type JupyterDisplayable,
  type MimeBundle,
  previewValues,
} from "./display.ts";
export { display, show } from "./jupyter.ts";
export { formatCell, htmlTable, tableDisplay, type TableOptions, type TableRow, textTable } from "./table.ts";
export {
  attentionMapFigure,
  displayable,
  ensurePlotlyInNotebook,
  type FigureOptions,
  heatmapFigure,
  type Histogram,
  histogramBins,
  histogramFigure,
  learningRateFigure,
  lineFigure,
  LivePlot,
  loadPlotlyJs,
  lossCurveFigure,
  type LossCurveRun,
  type NamedSeries,
  plotlyBundle,
  type PlotlyFigure,
  plotlyHtml,
  type PlotlyHtmlOptions,
  plotlyLoaderHtml,
  type PlotlyTrace,
  runFromMetrics,
} from "./plot.ts";
export { type MonitorEvent, TrainingMonitor, type TrainingMonitorOptions } from "./monitor.ts";
export {
  type CompareOptions,
  compareRuns,
  comparisonFigures,
  comparisonRows,
  renderComparison,
  sweepFigure,
  writeComparison,
} from "./compare.ts";
export {
  type NotebookSweepOptions,
  type NotebookSweepResult,
  sweep,
  sweepGridFigure,
  type SweepPanel,
} from "./live_sweep.ts";
export {
  renderPage,
  renderReport,
  type ReportContent,
  type ReportRun,
  type ReportSample,
  writeReport,
} from "./report.ts";
export { profileTable, rooflineFigure, type RooflineFigureOptions } from "./roofline.ts";

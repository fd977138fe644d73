import { assert, assertClose, assertEquals, assertMatch, assertThrows } from "../../tests/assert.ts";
import {
  attentionMapFigure,
  displayable,
  ensurePlotlyInNotebook,
  heatmapFigure,
  histogramBins,
  histogramFigure,
  learningRateFigure,
  lineFigure,
  LivePlot,
  loadPlotlyJs,
  lossCurveFigure,
  plotlyBundle,
  plotlyHtml,
  plotlyLoaderHtml,
  runFromMetrics,
} from "./plot.ts";
import { cosineLr } from "../optim/schedule.ts";
import { inJupyter, JUPYTER_DISPLAY } from "./display.ts";

Deno.test("lossCurveFigure overlays runs with shared colours per run", () => {
  const fig = lossCurveFigure([
    { name: "a", train: { steps: [0, 10], values: [5, 4] }, val: { steps: [10], values: [4.5] } },
    { name: "b", train: { steps: [0, 10], values: [5, 3] } },
  ], { title: "sweep", logY: true });
  assertEquals(fig.data.map((t) => t.name), ["a train", "a val", "b train"]);
  assertEquals(fig.data[1].x, [10]);
  assertEquals(fig.data[1].y, [4.5]);
  const colour = (i: number) => (fig.data[i].line as { color: string }).color;
  assertEquals(colour(0), colour(1));
  assert(colour(0) !== colour(2));
  assertEquals((fig.layout.yaxis as { type: string }).type, "log");
  assertEquals((fig.layout.title as { text: string }).text, "sweep");
  // A single run is labelled just train/val.
  assertEquals(lossCurveFigure([{ name: "only", train: { steps: [0], values: [1] } }]).data[0].name, "train");
});

Deno.test("lineFigure draws one line per series", () => {
  const fig = lineFigure([
    { name: "a", series: { steps: [0, 1], values: [1, 2] } },
    { name: "b", series: { steps: [0], values: [3] } },
  ], { yTitle: "lr", logY: true });
  assertEquals(fig.data.map((t) => [t.name, t.x, t.y]), [["a", [0, 1], [1, 2]], ["b", [0], [3]]]);
  assertEquals((fig.layout.yaxis as { type: string; title: { text: string } }).title.text, "lr");
});

Deno.test("runFromMetrics picks loss and valLoss", () => {
  const run = runFromMetrics("r", [{ step: 0, loss: 3, lr: 0 }, { step: 5, valLoss: 2.9 }, { step: 5, loss: 2.5 }]);
  assertEquals(run, {
    name: "r",
    train: { steps: [0, 5], values: [3, 2.5] },
    val: { steps: [5], values: [2.9] },
  });
  assertEquals(runFromMetrics("r", [{ step: 0, loss: 1 }]).val, undefined);
});

Deno.test("learningRateFigure samples the schedule at the updates 1..steps", () => {
  const sched = { lrMax: 1, lrMin: 0.1, warmupSteps: 7, cosineCycleSteps: 21 };
  const fig = learningRateFigure(sched, { recorded: { steps: [3], values: [3 / 7] } });
  const x = fig.data[0].x as number[], y = fig.data[0].y as number[];
  assertEquals(x, Array.from({ length: 24 }, (_, i) => i + 1)); // 1..ceil(21 * 1.1)
  assertEquals(y, x.map((t) => cosineLr(t, sched)));
  // A rate the trainer recorded at update 3 (the schedule at 3) lies on the planned curve at x = 3.
  assertEquals(y[x.indexOf(3)], 3 / 7);
  assertEquals(fig.data[1].y, [3 / 7]);
});

Deno.test("histograms are binned on the host: integer bins, or equal bins over the range", () => {
  // Token lengths: a bin per integer from the smallest to the largest, centred on it.
  const lengths = [3, 1, 1, 4, 1, 3, 7];
  assertEquals(histogramBins(lengths), { centers: [1, 2, 3, 4, 5, 6, 7], width: 1, counts: [3, 0, 2, 1, 0, 0, 1] });
  // Reals: 4 bins of width 0.5 over [0, 2]; NaN is left out; the maximum lands in the last bin.
  const h = histogramBins([0, 0.2, 0.5, 0.9, 1.5, 2, NaN], { bins: 4 });
  assertEquals(h, { centers: [0.25, 0.75, 1.25, 1.75], width: 0.5, counts: [2, 2, 0, 2] });
  // Many values become a few hundred numbers.
  const big = histogramFigure(Float64Array.from({ length: 572_822 }, (_, i) => (i * 7919) % 23));
  assertEquals((big.data[0].y as number[]).length, 23);
  assertEquals((big.data[0].y as number[]).reduce((a, b) => a + b, 0), 572_822);
});

Deno.test("histogram, heatmap and attention-map figures", () => {
  const h = histogramFigure(new Float32Array([1, 2, 2]), { bins: 5, xTitle: "len" });
  // Five bins of width 0.2 over [1, 2]: 1 in the first, the largest value in the last.
  assertEquals(h.data[0].type, "bar");
  assertEquals(h.data[0].y, [1, 0, 0, 0, 2]);
  assertClose(h.data[0].x as number[], [1.1, 1.3, 1.5, 1.7, 1.9], { atol: 1e-12 });
  const m = heatmapFigure({ data: [1, 2, 3, 4, 5, 6], cols: 3 });
  assertEquals(m.data[0].z, [[1, 2, 3], [4, 5, 6]]);
  assertEquals(heatmapFigure([[1], [2]]).data[0].z, [[1], [2]]);
  assertThrows(() => heatmapFigure({ data: [1, 2, 3], cols: 2 }), "3 values cannot have 2 columns");
  const a = attentionMapFigure([1, 0, 0, 0.5, 0.5, 0, 0.2, 0.3, 0.5], { tokens: ["a", "b", "a"] });
  assertEquals(a.data[0].x, ["0:a", "1:b", "2:a"]);
  assertEquals((a.data[0].z as number[][])[2], [0.2, 0.3, 0.5]);
  assertEquals((a.layout.yaxis as { autorange: string }).autorange, "reversed");
  assertThrows(() => attentionMapFigure([1, 2, 3]), "T*T weights, got 3");
  assertThrows(() => attentionMapFigure([1, 0, 0, 1], { tokens: ["x"] }), "2 positions got 1 tokens");
});

Deno.test("plotlyHtml embeds the figure safely", () => {
  const fig = { data: [{ type: "scatter", y: [1, 2], name: "</script><b>x</b>" }], layout: { height: 300 } };
  const html = plotlyHtml(fig, { plotlyJs: null, divId: "plot-1" });
  assert(html.includes('<div id="plot-1"'));
  assert(html.includes("height:300px"));
  assert(!html.includes("</script><b>"), "data must not close the script element");
  // The embedded JSON parses back to the figure.
  const json = html.match(/var fig = (.*);\n/)![1];
  assertEquals(JSON.parse(json), fig);
  const withJs = plotlyHtml(fig, { plotlyJs: "var s = '</script>'; window.Plotly = {};" });
  assert(withJs.includes("var s = '<\\/script>'"));
  assertMatch(withJs, /if \(typeof window.Plotly === "undefined"\)/);
});

Deno.test("plotly.js is read minified from npm:plotly.js-dist-min, once", async () => {
  const js = await loadPlotlyJs();
  assertMatch(js.slice(0, 200), /plotly\.js v\d+\.\d+\.\d+/);
  assert(js.includes("window.Plotly = Plotly"));
  assert(js.length > 1_000_000 && js.length < 6_000_000, `${js.length} characters`);
  assert((await loadPlotlyJs()) === js, "second call reuses the cached text");
});

Deno.test("the Jupyter display bundle has plotly JSON and self-contained HTML", async () => {
  const fig = lossCurveFigure([{ name: "run", train: { steps: [0, 1, 2], values: [5.25, 4.125, 3.0625] } }]);
  const chart = displayable(fig);
  assertEquals(Object.getOwnPropertySymbols(chart), [Symbol.for("Jupyter.display")]);
  assert(JUPYTER_DISPLAY === Symbol.for("Jupyter.display"));
  const bundle = await chart[JUPYTER_DISPLAY]();
  assertEquals(bundle["application/vnd.plotly.v1+json"], { data: fig.data, layout: fig.layout });
  const html = bundle["text/html"] as string;
  assert(html.includes("[5.25,4.125,3.0625]"), "plot data inline");
  assert(html.includes("window.Plotly = Plotly"), "plotly.js inline");
  assertMatch(html, /plotly\.js v\d/);
  assertEquals(bundle["text/plain"], "Plotly figure (1 traces)");
  assertEquals((await plotlyBundle(fig))["application/vnd.plotly.v1+json"], bundle["application/vnd.plotly.v1+json"]);
});

Deno.test("outside the kernel, Jupyter helpers are inert", async () => {
  assertEquals(inJupyter(), false);
  const live = new LivePlot();
  assertMatch(live.displayId, /^nanolm-live-/);
  assertEquals(await live.update(lossCurveFigure([])), false);
});

/**
 * Runs the inline scripts of HTML fragments against a fake window/document, in order, as a browser would (atob,
 * Blob, Response and DecompressionStream are the runtime's own, as in a browser).
 */
function runScripts(fragments: string[], win: Record<string, unknown>, appended: string[]): void {
  const doc = {
    createElement: () => ({ text: "" }),
    head: {
      appendChild: (el: { text: string }) => {
        appended.push(el.text);
        new Function("window", el.text)(win); // the appended script runs at once
      },
    },
  };
  for (const html of fragments) {
    for (const m of html.matchAll(/<script type="text\/javascript">([\s\S]*?)<\/script>/g)) {
      new Function("window", "document", m[1])(win, doc);
    }
  }
}

/** Waits until `done()` holds (the loader unpacks plotly.js asynchronously). */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 5));
}

Deno.test("plotly.js sent gzipped in pieces is unpacked and draws the waiting charts", async () => {
  const drawn: string[] = [];
  const fakePlotly = '/* fake plotly </script> \\ " \u2028 é 𝄞 */ window.Plotly = ' +
    "{ newPlot: function (id) { window.drawn.push(id); } };" + " ".repeat(5000);
  const win: Record<string, unknown> = { drawn };
  const appended: string[] = [];
  // A chart shown before Plotly exists waits for it.
  const chart = plotlyHtml({ data: [{ type: "scatter", y: [1] }], layout: {} }, { plotlyJs: null, divId: "early" });
  runScripts([chart], win, appended);
  assertEquals(drawn, []);
  const parts = await plotlyLoaderHtml(fakePlotly, { chunkChars: 40 });
  assert(parts.length > 2, `${parts.length} pieces`);
  // Gzip packs the 5 kB of spaces: the pieces hold less than the library.
  assert(parts.join("").length < fakePlotly.length, "pieces are compressed");
  runScripts(parts.slice(0, -1), win, appended);
  await new Promise((r) => setTimeout(r, 20));
  assertEquals(appended, []); // nothing runs before the last piece
  runScripts(parts.slice(-1), win, appended);
  await until(() => drawn.length > 0);
  assertEquals(appended, [fakePlotly]);
  assertEquals(drawn, ["early"]);
  // Later charts draw at once.
  runScripts([plotlyHtml({ data: [], layout: {} }, { plotlyJs: null, divId: "late" })], win, appended);
  assertEquals(drawn, ["early", "late"]);
  // Each piece hides its own (empty) output area.
  assert(parts.every((p) => p.includes(":has(.nanolm-plotly-loader)") && p.includes('class="nanolm-plotly-loader"')));
});

Deno.test("ensurePlotlyInNotebook does nothing outside the kernel", async () => {
  assertEquals(await ensurePlotlyInNotebook(), false);
});

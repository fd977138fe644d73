import { assert, assertEquals, assertMatch, assertThrows } from "../../tests/assert.ts";
import {
  attentionMapFigure,
  displayable,
  ensurePlotlyInNotebook,
  heatmapFigure,
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

Deno.test("histogram, heatmap and attention-map figures", () => {
  const h = histogramFigure(new Float32Array([1, 2, 2]), { bins: 5, xTitle: "len" });
  assertEquals(h.data[0].x, [1, 2, 2]);
  assertEquals(h.data[0].nbinsx, 5);
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

Deno.test("plotly.js is read from npm:plotly.js-dist, once", async () => {
  const js = await loadPlotlyJs();
  assertMatch(js.slice(0, 200), /plotly\.js v\d+\.\d+\.\d+/);
  assert(js.includes("window.Plotly = Plotly"));
  assert(js.length > 1_000_000);
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

/** Runs the inline scripts of HTML fragments against a fake window/document, as a browser would, in order. */
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

Deno.test("plotly.js sent in pieces is reassembled and draws the waiting charts", () => {
  const drawn: string[] = [];
  const fakePlotly =
    '/* fake plotly </script> \\ " \u2028 */ window.Plotly = { newPlot: function (id) { window.drawn.push(id); } };';
  const win: Record<string, unknown> = { drawn };
  const appended: string[] = [];
  // A chart shown before Plotly exists waits for it.
  const chart = plotlyHtml({ data: [{ type: "scatter", y: [1] }], layout: {} }, { plotlyJs: null, divId: "early" });
  runScripts([chart], win, appended);
  assertEquals(drawn, []);
  const parts = plotlyLoaderHtml(fakePlotly, { chunkChars: 10 });
  assertEquals(parts.length, Math.ceil(fakePlotly.length / 10));
  runScripts(parts.slice(0, -1), win, appended);
  assertEquals(appended, []); // nothing runs before the last piece
  runScripts(parts.slice(-1), win, appended);
  assertEquals(appended, [fakePlotly]);
  assertEquals(drawn, ["early"]);
  // Later charts draw at once.
  runScripts([plotlyHtml({ data: [], layout: {} }, { plotlyJs: null, divId: "late" })], win, appended);
  assertEquals(drawn, ["early", "late"]);
  assert(parts.every((p) => !p.slice(8, -9).includes("</script>")), "no piece closes its script early");
});

Deno.test("ensurePlotlyInNotebook does nothing outside the kernel", async () => {
  assertEquals(await ensurePlotlyInNotebook(), false);
});

import { assert, assertEquals } from "../../tests/assert.ts";
import { parseConfig } from "../train/config.ts";
import type { MetricRecord } from "../train/metrics.ts";
import type { LoadedRun } from "../train/runs.ts";
import { compareRuns, comparisonFigures, comparisonRows, renderComparison, sweepFigure } from "./compare.ts";
import { JUPYTER_DISPLAY } from "./display.ts";
import { sweepGridFigure } from "./live_sweep.ts";

const model = { vocabSize: 64, contextLength: 8, dModel: 16, numLayers: 1, numHeads: 2 };

/** A run as loadRuns would give it: two logged steps of 32 tokens and one evaluation. */
function run(name: string, train: Record<string, unknown>, status: LoadedRun["status"], val?: number): LoadedRun {
  const records: MetricRecord[] = [
    { step: 1, type: "step", loss: 4, tokens: 32, tokensPerSec: 100 },
    { step: 2, type: "step", loss: status === "diverged" ? NaN : 3, tokens: 64, tokensPerSec: 300 },
  ];
  if (val !== undefined) records.push({ step: 2, type: "eval", valLoss: val, valBpb: val / 2, tokens: 64 });
  const best = val === undefined ? undefined : { step: 2, valLoss: val, valBpb: val / 2 };
  return {
    dir: `runs/${name}`,
    name,
    status,
    config: parseConfig({ model, train: { trainData: "t.bin", ...train } }),
    records,
    summary: { step: 2, steps: 2, best, lastValLoss: val, lastLoss: 3, tokensPerSec: 200, tokens: 64 },
    ...(status === "diverged"
      ? {
        info: {
          status,
          step: 2,
          divergedAt: 2,
          steps: 2,
          seconds: 1,
          started: "",
          updated: "",
          config: { model, train: {} },
        },
      }
      : {}),
  };
}

const runs = [
  run("lrMax-0.001", { lrMax: 1e-3, lrMin: 1e-4 }, "done", 3.5),
  run("lrMax-0.01", { lrMax: 1e-2, lrMin: 1e-3 }, "done", 3.1),
  run("lrMax-1", { lrMax: 1, lrMin: 0.1 }, "diverged"),
];

Deno.test("the table of runs: varied values, status with the step a run diverged at, best loss and bits/byte", () => {
  const rows = comparisonRows(runs);
  assertEquals(Object.keys(rows[0]), [
    "run",
    "lrMax",
    "lrMin",
    "status",
    "steps",
    "best val loss",
    "best val bits/byte",
    "best at step",
    "last val loss",
    "last train loss",
    "tokens/s",
  ]); // no run has a time: no column
  assertEquals(rows[2].status, "diverged at step 2");
  assertEquals([rows[0].lrMax, rows[0]["best val loss"], rows[0]["best val bits/byte"]], [1e-3, 3.5, 1.75]);
});

Deno.test("the learning-rate chart: best and final loss against lrMax on a log axis, diverged runs marked", () => {
  const figure = sweepFigure(runs)!;
  assertEquals(figure.layout.xaxis, { title: { text: "lrMax" }, type: "log" });
  const [best, last, diverged] = figure.data;
  assertEquals([best.x, best.y], [[1e-3, 1e-2], [3.5, 3.1]]);
  assertEquals(last.y, [3.5, 3.1]);
  // The diverged run has no validation loss: marked at the top of the chart, 5% above the largest loss.
  assertEquals([diverged.name, diverged.x, diverged.y], ["diverged", [1], [3.5 * 1.05]]);
  // Grouped by the other varied fields: an ablation over norm gives a line per norm.
  const ablation = [
    run("a", { lrMax: 1e-3 }, "done", 3),
    run("b", { lrMax: 1e-2 }, "done", 2.9),
    {
      ...run("c", { lrMax: 1e-3 }, "done", 3.2),
      config: parseConfig({ model: { ...model, norm: "none" }, train: { trainData: "t.bin", lrMax: 1e-3 } }),
    },
  ];
  const names = sweepFigure(ablation)!.data.map((t) => t.name);
  assertEquals(names, [
    'norm "pre": best val loss',
    'norm "pre": final val loss',
    'norm "none": best val loss',
    'norm "none": final val loss',
  ]);
  assertEquals(sweepFigure([runs[0]]), null);
});

Deno.test("curves by step and by tokens seen, bits per byte, and the sweep chart", () => {
  const figures = comparisonFigures(runs);
  assertEquals(figures.map((f) => (f.layout.title as { text: string }).text), [
    "Loss by step",
    "Loss by tokens seen",
    "Validation bits per byte by tokens seen",
    "Validation loss against the peak learning rate",
  ]);
  assertEquals(figures[1].data[0].x, [32, 64]);
  assertEquals((figures[1].layout.xaxis as { title: { text: string } }).title.text, "tokens seen");
});

Deno.test("the comparison page and display are self-contained", async () => {
  const html = renderComparison(runs, { title: "LR <sweep>", description: "three rates" }, "/*PLOTLY*/");
  assert(html.includes("<h1>LR &lt;sweep&gt;</h1>") && html.includes("three rates"));
  assertEquals(html.split("/*PLOTLY*/").length, 2);
  assert(html.includes("diverged at step 2"));
  assertEquals([...html.matchAll(/class="nanolm-plot"/g)].length, 4);
  const bundle = await compareRuns(runs)[JUPYTER_DISPLAY]();
  assert((bundle["text/html"] as string).includes("window.Plotly = Plotly"), "plotly.js inlined outside Jupyter");
  assert((bundle["text/plain"] as string).includes("lrMax-0.01"));
});

Deno.test("the live sweep grid: a panel per run with its own axes and a title with its status", () => {
  const panel = (name: string, status: string) => ({
    name,
    status,
    train: { steps: [1, 2], values: [5, 4] },
    val: { steps: [2], values: [4.5] },
  });
  const figure = sweepGridFigure([panel("a", "done"), panel("b", "step 2 of 9"), panel("c", "waiting")], {
    columns: 2,
  });
  assertEquals(figure.data.map((t) => t.xaxis), ["x", "x", "x2", "x2", "x3", "x3"]);
  assertEquals((figure.layout.grid as { rows: number }).rows, 2);
  const titles = (figure.layout.annotations as { text: string; xref: string }[]).map((a) => [a.text, a.xref]);
  assertEquals(titles[1], ["<b>b</b>: step 2 of 9", "x2 domain"]);
  assertEquals((figure.layout.yaxis3 as { range: number[] }).range, [4 * 0.97, 5]);
});

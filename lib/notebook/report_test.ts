import { assert, assertEquals, assertMatch, assertRejects } from "../../tests/assert.ts";
import { histogramFigure } from "./plot.ts";
import { renderReport, writeReport } from "./report.ts";

const records = [
  { step: 0, loss: 9.5, lr: 0, tokensPerSec: 1000, tokens: 0, epoch: 0 },
  { step: 0, valLoss: 9.25 },
  { step: 50, loss: 4.75, lr: 0.001, tokensPerSec: 3000, tokens: 3200, epoch: 0.5 },
  { step: 50, valLoss: 4.5, valBpb: 1.5 },
  { step: 100, loss: 3.875, lr: 0.0001, tokensPerSec: 2000, tokens: 6400, epoch: 1 },
  { step: 100, valLoss: 4.625 },
];

Deno.test("writeReport writes a standalone page with data, plotly.js, samples and config", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/report.html`;
  await writeReport(path, {
    title: "Tiny <run>",
    notes: "Trained on the embedded corpus.",
    facts: [["parameters", "1,234"], ["best checkpoint", "best.safetensors <step 50>"]],
    runs: [{ name: "base", records }, { name: "no-norm", records: [{ step: 0, loss: 9.125 }] }],
    samples: [{ prompt: "Once upon", text: " a time <there> was", label: "T=0.8" }, "plain sample"],
    config: { model: { dModel: 64, norm: "pre" }, train: { betas: [0.9, 0.95], valData: null } },
    figures: [histogramFigure([1, 2, 3], { title: "lengths" })],
  });
  const html = await Deno.readTextFile(path);
  assertMatch(html, /^<!DOCTYPE html>/);
  // plotly.js inlined exactly once, in the head.
  assertEquals(html.split("window.Plotly = Plotly").length, 2);
  assertMatch(html, /<head>[\s\S]*plotly\.js v\d[\s\S]*<\/head>/);
  // The curves' data: train and validation of both runs.
  assert(html.includes('"x":[0,50,100],"y":[9.5,4.75,3.875]'), "train curve data");
  assert(html.includes('"y":[9.25,4.5,4.625]'), "val curve data");
  assert(html.includes('"y":[9.125]'), "second run");
  assert(html.includes('"y":[0,0.001,0.0001]'), "lr chart");
  assert(html.includes('"text":"tokens/s"'), "throughput chart");
  assert(!html.includes('"text":"gradient norm"'), "no chart for a metric nobody recorded");
  assert(html.includes('"text":"validation bits per byte"') && html.includes('"y":[1.5]'), "bits per byte chart");
  assert(html.includes('"type":"bar"'), "extra figure");
  // Summary: last step, last losses, best val loss with its step, tokens seen, epochs, median tokens/s.
  assert(html.includes(
    "<td>base</td><td>100</td><td>3.875</td><td>4.625</td><td>4.500 (step 50)</td><td>1.500</td><td>6,400</td>" +
      "<td>1.00</td><td>2,000</td>",
  ));
  assert(html.includes("<tr><th>best checkpoint</th><td>best.safetensors &lt;step 50&gt;</td></tr>"), "facts");
  // Text is escaped; samples and config are there.
  assert(html.includes("<title>Tiny &lt;run&gt;</title>"));
  assert(html.includes('<span class="label">T=0.8</span><b>Once upon</b> a time &lt;there&gt; was'));
  assert(html.includes("plain sample"));
  assert(html.includes("<td>model.dModel</td><td>64</td>"));
  assert(html.includes("<td>train.betas</td><td>[0.9,0.95]</td>"));
  assert(html.includes("<td>train.valData</td><td>null</td>"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("renderReport without plots leaves plotly.js out", () => {
  const html = renderReport({ title: "samples only", samples: ["x"] }, "PLOTLY_SOURCE");
  assert(!html.includes("PLOTLY_SOURCE"));
  assert(renderReport({ title: "t", runs: [{ name: "r", records }] }, "PLOTLY_SOURCE").includes("PLOTLY_SOURCE"));
});

Deno.test("writeReport names a path it cannot write", async () => {
  await assertRejects(() => writeReport("/nonexistent/dir/r.html", { title: "x" }), "Report /nonexistent/dir/r.html");
});

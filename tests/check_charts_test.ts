/**
 * The headless-Chromium check of exported pages (scripts/check_charts.ts) against pages built to pass and to fail:
 * a comparison report draws every chart; a chart without plotly.js, a console error and a blank band of empty
 * outputs above the first chart are each caught. Needs chromium (CI installs it).
 */
import { assert, assertEquals } from "./assert.ts";
import { checkPages, findChromium, pageProblems } from "../scripts/check_charts.ts";
import { loadPlotlyJs, plotlyHtml } from "../lib/notebook/plot.ts";
import { renderComparison } from "../lib/notebook/compare.ts";
import { parseConfig } from "../lib/train/config.ts";
import type { LoadedRun } from "../lib/train/runs.ts";

const chromium = await findChromium();

function run(name: string, lrMax: number): LoadedRun {
  const config = parseConfig({
    model: { vocabSize: 64, contextLength: 8, dModel: 16, numLayers: 1, numHeads: 2 },
    train: { trainData: "t.bin", lrMax, lrMin: lrMax / 10 },
  });
  return {
    dir: name,
    name,
    status: "done",
    config,
    records: [{ step: 1, loss: 4, tokens: 8 }, { step: 2, loss: 3, tokens: 16 }, { step: 2, valLoss: 3.5, tokens: 16 }],
    summary: { step: 2, best: { step: 2, valLoss: 3.5 }, lastValLoss: 3.5 },
  };
}

Deno.test({
  name: "headless Chromium: charts drawn, console errors and blank outputs caught",
  ignore: chromium === null,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const good = `${dir}/good.html`;
    await Deno.writeTextFile(good, renderComparison([run("a", 1e-3), run("b", 1e-2)], {}, await loadPlotlyJs()));
    const figure = { data: [{ type: "scatter", y: [1, 2] }], layout: {} };
    // Charts that wait for a plotly.js the page never defines, after a blank band of empty outputs (as the
    // plotly.js pieces used to leave), with a script that fails.
    const bad = `${dir}/bad.html`;
    await Deno.writeTextFile(
      bad,
      `<!DOCTYPE html><html><body><div class="jp-OutputArea">` +
        `<div class="jp-OutputArea-child"><div style="height:150px"></div></div>` +
        `<div class="jp-OutputArea-child">${plotlyHtml(figure, { plotlyJs: null, divId: "lost" })}</div>` +
        `</div><script>console.error("boom"); undefinedFunction();</script></body></html>`,
    );
    const [ok, failing] = await checkPages([good, bad], { timeoutMs: 5000 });
    assertEquals(pageProblems(ok), []);
    assertEquals(ok.charts.length, 3); // by step, by tokens, against the learning rate
    assert(ok.charts.every((c) => c.traces > 0), JSON.stringify(ok.charts));
    const problems = pageProblems(failing).join("\n");
    for (
      const expected of ["chart lost was not drawn", "console: console.error: boom", "undefinedFunction", "150 px"]
    ) {
      assert(problems.includes(expected), `"${expected}" missing from:\n${problems}`);
    }
    await Deno.remove(dir, { recursive: true });
  },
});

/**
 * Executes every notebook in `notebooks/` through the real Jupyter client with the Deno kernel, as a user would,
 * and fails on any error output. Also checks that the committed notebooks carry no outputs, and exports the
 * executed training notebook to HTML: its chart data and every piece of plotly.js must be inside, and running the
 * page's scripts against a stub DOM must rebuild plotly.js byte for byte and draw the charts (so they draw offline).
 *
 * Needs `jupyter nbconvert` and `ipykernel` (Debian: jupyter-nbconvert python3-ipykernel). Usage:
 * `deno task notebooks [name-filter]`.
 *
 * @module
 */
import { loadPlotlyJs } from "../lib/notebook/plot.ts";

const root = new URL("../", import.meta.url).pathname;
const filter = Deno.args[0] ?? "";

async function sh(cmd: string[], opts: { cwd?: string } = {}): Promise<{ code: number; out: string }> {
  const p = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: opts.cwd ?? root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
  const r = await p.output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

interface Cell {
  cell_type: string;
  outputs?: { output_type: string; ename?: string; evalue?: string; name?: string; text?: string | string[] }[];
  execution_count?: number | null;
}

/**
 * Runs nanolm's inline scripts of an exported page in order against a stub DOM, as a browser would: returns the
 * library the plotly.js pieces inject and the trace counts of the charts drawn with it.
 */
function runPageScripts(page: string): { library: string; charts: number[] } {
  const win: Record<string, unknown> = {};
  let library = "";
  const charts: number[] = [];
  const document = {
    createElement: () => ({ text: "" }),
    head: {
      appendChild: (script: { text: string }) => {
        library = script.text;
        win.Plotly = { newPlot: (_id: string, data: unknown[]) => charts.push(data.length) };
      },
    },
  };
  for (const m of page.matchAll(/<script type="text\/javascript">([\s\S]*?)<\/script>/g)) {
    if (m[1].includes("__nanolm")) new Function("window", "document", m[1])(win, document);
  }
  return { library, charts };
}

// --force: re-installing over an existing kernelspec (a second run, a developer machine) must not fail.
const install = await sh(["deno", "jupyter", "--install", "--force"]);
if (install.code !== 0) throw new Error(`deno jupyter --install failed:\n${install.out}`);

const names = [...Deno.readDirSync(`${root}notebooks`)].map((e) => e.name).filter((n) => n.endsWith(".ipynb"))
  .filter((n) => n.includes(filter)).sort();
if (names.length === 0) throw new Error(`No notebooks match "${filter}" in notebooks/`);
const outDir = await Deno.makeTempDir({ prefix: "nanolm-notebooks-" });
const started = performance.now();
let failed = 0, passed = 0;
for (const name of names) {
  const source = JSON.parse(await Deno.readTextFile(`${root}notebooks/${name}`)) as { cells: Cell[] };
  const dirty = source.cells.some((c) => (c.outputs?.length ?? 0) > 0 || (c.execution_count ?? null) !== null);
  const t0 = performance.now();
  const r = await sh([
    "jupyter",
    "nbconvert",
    "--to",
    "notebook",
    "--execute",
    "--ExecutePreprocessor.kernel_name=deno",
    "--ExecutePreprocessor.timeout=1200",
    "--output-dir",
    outDir,
    `notebooks/${name}`,
  ]);
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  const problems: string[] = [];
  if (dirty) problems.push("committed with outputs (strip them before committing)");
  if (r.code !== 0) problems.push(`nbconvert exited ${r.code}:\n${r.out.slice(-3000)}`);
  else {
    const executed = JSON.parse(await Deno.readTextFile(`${outDir}/${name}`)) as { cells: Cell[] };
    executed.cells.forEach((c, i) => {
      for (const o of c.outputs ?? []) {
        if (o.output_type === "error") problems.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
        const text = Array.isArray(o.text) ? o.text.join("") : o.text ?? "";
        if (o.output_type === "stream" && o.name === "stderr" && /\berror\b/i.test(text)) {
          problems.push(`cell ${i} wrote an error to stderr: ${text.slice(0, 500)}`);
        }
      }
    });
  }
  if (problems.length) {
    failed++;
    console.log(`FAIL ${name} (${seconds}s)\n  ${problems.join("\n  ")}`);
  } else {
    passed++;
    console.log(`ok   ${name} (${seconds}s)`);
  }
}

// A plot must survive export to HTML: its data and plotly.js itself (offline) are inside the page.
const withPlot = names.find((n) => n.includes("train")) ?? names[0];
if (await Deno.stat(`${outDir}/${withPlot}`).then(() => true, () => false)) {
  const html = await sh(["jupyter", "nbconvert", "--to", "html", `${outDir}/${withPlot}`, "--output-dir", outDir]);
  const page = html.code === 0 ? await Deno.readTextFile(`${outDir}/${withPlot.replace(/\.ipynb$/, ".html")}`) : "";
  const hasData = page.includes('"type":"scatter"') || page.includes("&quot;type&quot;:&quot;scatter&quot;") ||
    page.includes('"type": "scatter"');
  // plotly.js reaches a notebook in pieces (lib/plot.ts, plotlyLoaderHtml); all of them and the loader that joins
  // them must be in the page, else the charts do not draw offline.
  const pieces = new Set([...page.matchAll(/__nanolmPlotlyParts \|\| \[\]\)\[(\d+)\]/g)].map((m) => Number(m[1])));
  const allPieces = pieces.size > 0 && [...pieces].every((i) => i < pieces.size);
  const hasPlotly = allPieces && page.includes('parts.join("")') && page.includes("Plotly.newPlot");
  const drawn = hasPlotly ? runPageScripts(page) : { library: "", charts: [] };
  const sameLibrary = drawn.library === await loadPlotlyJs();
  if (html.code !== 0 || !hasData || !hasPlotly || !sameLibrary || drawn.charts.length === 0) {
    failed++;
    console.log(
      `FAIL HTML export of ${withPlot}: exported ${html.code === 0}, plot data ${hasData}, plotly.js ${hasPlotly} ` +
        `(pieces ${[...pieces].sort((a, b) => a - b).join(",") || "none"}), pieces rejoin to plotly.js ` +
        `${sameLibrary}, charts drawn ${drawn.charts.length}`,
    );
  } else {
    passed++;
    console.log(
      `ok   HTML export of ${withPlot} holds plotly.js (${pieces.size} pieces, rejoined byte for byte) and draws ` +
        `${drawn.charts.length} charts (${drawn.charts.join(", ")} traces)`,
    );
  }
}
console.log(`notebooks: ${passed} passed, ${failed} failed in ${((performance.now() - started) / 1000).toFixed(1)}s`);
if (failed > 0) Deno.exit(1);

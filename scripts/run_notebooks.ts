/**
 * Executes every notebook in `notebooks/` through the real Jupyter client with the Deno kernel, as a user would, and
 * checks what a reader gets:
 * - the committed notebooks carry no outputs, and their markdown reads as a document (a title, prose, section
 *   headings: not every line a heading, see `notebook_checks.ts`);
 * - executing them gives no error and no empty `Out[n]:`, and each executed notebook stays small (plotly.js once,
 *   gzipped; charts hold their data, not raw values);
 * - their HTML export has the headings of a document and nbconvert has nothing to warn about;
 * - in headless Chromium, every exported notebook and the sweep report of notebook 7 draw all their charts with
 *   traces, log no console error, and leave no blank band above the first chart (`check_charts.ts`).
 *
 * Needs `jupyter nbconvert` and `ipykernel` (Debian: jupyter-nbconvert python3-ipykernel) and chromium. Usage:
 * `deno task notebooks [name-filter] [--keep <dir>] [--no-browser]`: `--keep` leaves the executed notebooks and
 * their HTML in a folder, `--no-browser` skips the Chromium check.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { headingProblems, markdownProblems, type NotebookCell, outputProblems } from "./notebook_checks.ts";
import { checkPages, findChromium, pageProblems } from "./check_charts.ts";

const root = new URL("../", import.meta.url).pathname;
const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { keep: { type: "string" }, "no-browser": { type: "boolean", default: false } },
  allowPositionals: true,
});
const filter = positionals[0] ?? "";
/** An executed notebook larger than this holds something it should not (plotly.js twice, raw data). */
const MAX_EXECUTED_BYTES = 6_000_000;
/** The sweep report notebook 7 writes, checked in Chromium with the notebooks. */
const SWEEP_REPORT = `${root}runs/notebooks/07_sweep/lr/report.html`;

async function sh(cmd: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
  const r = await p.output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

// --force: re-installing over an existing kernelspec (a second run, a developer machine) must not fail.
const install = await sh(["deno", "jupyter", "--install", "--force"]);
if (install.code !== 0) throw new Error(`deno jupyter --install failed:\n${install.out}${install.err}`);
const chromium = values["no-browser"] ? null : await findChromium();
if (!values["no-browser"] && !chromium) {
  throw new Error("chromium is needed for the browser check (apt-get install chromium), or pass --no-browser");
}

const names = [...Deno.readDirSync(`${root}notebooks`)].map((e) => e.name).filter((n) => n.endsWith(".ipynb"))
  .filter((n) => n.includes(filter)).sort();
if (names.length === 0) throw new Error(`No notebooks match "${filter}" in notebooks/`);
const outDir = values.keep ?? await Deno.makeTempDir({ prefix: "nanolm-notebooks-" });
await Deno.mkdir(outDir, { recursive: true });
// nbconvert's page links require.js and MathJax from system paths that may not exist; the notebooks need neither,
// so an empty script stands in for both and a missing file is not reported as the page's error.
const stub = `${outDir}/empty.js`;
await Deno.writeTextFile(stub, "");
const started = performance.now();
let failed = 0, passed = 0;
const pages: string[] = [];
for (const name of names) {
  const source = JSON.parse(await Deno.readTextFile(`${root}notebooks/${name}`)) as {
    cells: (NotebookCell & { execution_count?: number | null })[];
  };
  const problems: string[] = [];
  if (source.cells.some((c) => (c.outputs?.length ?? 0) > 0 || (c.execution_count ?? null) !== null)) {
    problems.push("committed with outputs (strip them before committing)");
  }
  problems.push(...markdownProblems(source.cells));
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
  let size = 0;
  if (r.code !== 0) problems.push(`nbconvert exited ${r.code}:\n${(r.out + r.err).slice(-3000)}`);
  else {
    const executedPath = `${outDir}/${name}`;
    size = (await Deno.stat(executedPath)).size;
    const executed = JSON.parse(await Deno.readTextFile(executedPath)) as { cells: NotebookCell[] };
    problems.push(...outputProblems(executed.cells));
    if (size > MAX_EXECUTED_BYTES) {
      problems.push(`executed notebook of ${mb(size)} (at most ${mb(MAX_EXECUTED_BYTES)})`);
    }
    const html = await sh([
      "jupyter",
      "nbconvert",
      "--to",
      "html",
      `--HTMLExporter.require_js_url=file://${stub}`,
      `--HTMLExporter.mathjax_url=file://${stub}`,
      executedPath,
      "--output-dir",
      outDir,
    ]);
    const page = `${outDir}/${name.replace(/\.ipynb$/, ".html")}`;
    if (html.code !== 0) problems.push(`HTML export failed:\n${html.err.slice(-2000)}`);
    else {
      const warnings = html.err.split("\n").filter((l) => /warn/i.test(l) && !/deno jupyter.*unstable/.test(l));
      for (const w of warnings) problems.push(`nbconvert: ${w.trim()}`);
      problems.push(...headingProblems(await Deno.readTextFile(page)));
      pages.push(page);
    }
  }
  if (problems.length) {
    failed++;
    console.log(`FAIL ${name} (${seconds}s, ${mb(size)})\n  ${problems.join("\n  ")}`);
  } else {
    passed++;
    console.log(`ok   ${name} (${seconds}s, ${mb(size)} executed)`);
  }
}

if (chromium) {
  const report = await Deno.stat(SWEEP_REPORT).then(() => SWEEP_REPORT, () => null);
  const withCharts = [];
  for (const p of pages) if ((await Deno.readTextFile(p)).includes('class="nanolm-plot"')) withCharts.push(p);
  const reports = await checkPages(report ? [...withCharts, report] : withCharts);
  for (const page of reports) {
    const problems = pageProblems(page);
    const what = page.path.replace(`${outDir}/`, "").replace(root, "");
    if (problems.length) {
      failed++;
      console.log(`FAIL ${what} in Chromium\n  ${problems.join("\n  ")}`);
    } else {
      passed++;
      console.log(
        `ok   ${what} in Chromium: ${page.charts.length} charts drawn ` +
          `(${page.charts.map((c) => c.traces).join(", ")} traces), no console error`,
      );
    }
  }
  if (names.some((n) => n.startsWith("07")) && !report) {
    failed++;
    console.log(`FAIL the sweep report ${SWEEP_REPORT} was not written by notebook 7`);
  }
}
console.log(`notebooks: ${passed} passed, ${failed} failed in ${((performance.now() - started) / 1000).toFixed(1)}s`);
if (failed > 0) Deno.exit(1);

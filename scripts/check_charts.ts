/**
 * Opens HTML pages (exported notebooks, sweep reports) from file:// in headless Chromium, as a reader would, and
 * checks what they show: every nanolm chart drawn by plotly.js with at least one trace, nothing written to the
 * console as an error, and, in an exported notebook, no blank band of empty outputs above the first chart. Talks to
 * Chromium over the DevTools protocol (a WebSocket), so it needs nothing but a `chromium` binary (Debian:
 * `apt-get install chromium`). Pages load offline: the charts' plotly.js is inside them.
 *
 * ```sh
 * deno run -A scripts/check_charts.ts page.html [more.html ...]
 * ```
 *
 * With `SCREENSHOTS=<dir>` it also saves a full-page screenshot of each page there (`SCREENSHOT_TOP` and
 * `SCREENSHOT_HEIGHT`: only that band of the page, in pixels).
 *
 * @module
 */

/** What a page shows. */
export interface PageReport {
  /** The file checked. */
  path: string;
  /** Each nanolm chart: its div id, whether plotly.js drew it, and how many traces it drew. */
  charts: { id: string; drawn: boolean; traces: number }[];
  /** Height in pixels of the empty outputs above the first chart in its notebook cell. */
  blankAboveFirstChart: number;
  /** Console errors and uncaught exceptions. */
  errors: string[];
}

/** The chromium binary: $CHROMIUM, else the first of the usual names on the PATH. */
export async function findChromium(): Promise<string | null> {
  const env = Deno.env.get("CHROMIUM");
  const candidates = env ? [env] : ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];
  for (const name of candidates) {
    try {
      const r = await new Deno.Command(name, { args: ["--version"], stdout: "null", stderr: "null" }).output();
      if (r.success) return name;
    } catch { /* not there */ }
  }
  return null;
}

/** A DevTools protocol connection: commands by id, events to listeners. */
class Cdp {
  #ws: WebSocket;
  #next = 1;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #listeners: ((method: string, params: Record<string, unknown>, session?: string) => void)[] = [];

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data as string);
      if (msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`${msg.error.message} (${msg.error.code})`));
        else p?.resolve(msg.result);
      } else {
        for (const l of this.#listeners) l(msg.method, msg.params ?? {}, msg.sessionId);
      }
    };
  }

  static connect(url: string): Promise<Cdp> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve(new Cdp(ws));
      ws.onerror = () => reject(new Error(`cannot connect to Chromium at ${url}`));
    });
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.#next++;
    this.#ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    return new Promise((resolve, reject) => this.#pending.set(id, { resolve: resolve as never, reject }));
  }

  on(listener: (method: string, params: Record<string, unknown>, session?: string) => void): void {
    this.#listeners.push(listener);
  }

  close(): void {
    this.#ws.close();
  }
}

/** Runs in the page: the charts, and the empty outputs above the first one in its notebook cell. */
const INSPECT = `(() => {
  const plots = [...document.querySelectorAll(".nanolm-plot")];
  const charts = plots.map((p) => ({
    id: p.id,
    drawn: p.classList.contains("js-plotly-plot"),
    traces: p.querySelectorAll(".trace, .hm, .hmlayer image").length,
  }));
  let blank = 0;
  const child = plots[0] && plots[0].closest(".jp-OutputArea-child, .output_area");
  for (let prev = child && child.previousElementSibling; prev; prev = prev.previousElementSibling) {
    const empty = prev.innerText.trim() === "" && !prev.querySelector("img, svg, canvas, table, pre");
    if (empty) blank += prev.getBoundingClientRect().height;
  }
  return JSON.stringify({ charts, blank });
})()`;

async function launch(chromium: string, profile: string): Promise<{ child: Deno.ChildProcess; url: string }> {
  const child = new Deno.Command(chromium, {
    args: [
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-extensions",
      "--allow-file-access-from-files",
      "--remote-debugging-port=0",
      `--user-data-dir=${profile}`,
      "about:blank",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += value;
    const m = seen.match(/DevTools listening on (ws:\/\/\S+)/);
    if (m) {
      // Keep draining stderr so that Chromium never blocks on a full pipe.
      (async () => {
        while (!(await reader.read().catch(() => ({ done: true }))).done) { /* drain */ }
      })();
      return { child, url: m[1] };
    }
  }
  child.kill();
  throw new Error(`Chromium did not start its DevTools endpoint:\n${seen.slice(-2000)}`);
}

/**
 * Loads each page in a fresh tab and reports what it shows, waiting up to `timeoutMs` for its charts to draw.
 *
 * @example
 * ```ts ignore
 * import { checkPages } from "./check_charts.ts";
 * const [report] = await checkPages(["runs/lr/report.html"]);
 * console.log(report.charts.length, report.errors);
 * ```
 */
export async function checkPages(
  paths: string[],
  options: { chromium?: string; timeoutMs?: number; screenshots?: string } = {},
): Promise<PageReport[]> {
  const chromium = options.chromium ?? await findChromium();
  if (!chromium) throw new Error("no chromium found: apt-get install chromium (or set CHROMIUM)");
  const profile = await Deno.makeTempDir({ prefix: "nanolm-chromium-" });
  const { child, url } = await launch(chromium, profile);
  const cdp = await Cdp.connect(url);
  const reports: PageReport[] = [];
  try {
    for (const path of paths) {
      reports.push(await checkPage(cdp, path, options.timeoutMs ?? 90_000, options.screenshots));
    }
  } finally {
    cdp.close();
    child.kill();
    await child.status;
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
  return reports;
}

async function checkPage(cdp: Cdp, path: string, timeoutMs: number, screenshots?: string): Promise<PageReport> {
  const absolute = await Deno.realPath(path);
  const { targetId } = await cdp.send("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await cdp.send("Target.attachToTarget", { targetId, flatten: true }) as { sessionId: string };
  const errors: string[] = [];
  let loaded = false;
  cdp.on((method, params, session) => {
    if (session !== sessionId) return;
    if (method === "Page.loadEventFired") loaded = true;
    if (method === "Runtime.exceptionThrown") {
      const d = params.exceptionDetails as { text?: string; exception?: { description?: string } };
      errors.push(`uncaught: ${d.exception?.description ?? d.text}`.slice(0, 500));
    }
    if (method === "Runtime.consoleAPICalled" && (params.type === "error" || params.type === "assert")) {
      const args = params.args as { value?: unknown; description?: string }[];
      errors.push(`console.${params.type}: ${args.map((a) => a.value ?? a.description).join(" ")}`.slice(0, 500));
    }
    if (method === "Log.entryAdded") {
      const entry = params.entry as { level: string; text: string; url?: string };
      if (entry.level === "error") errors.push(`${entry.text}${entry.url ? ` (${entry.url})` : ""}`.slice(0, 500));
    }
  });
  for (const domain of ["Page", "Runtime", "Log"]) await cdp.send(`${domain}.enable`, {}, sessionId);
  await cdp.send("Emulation.setDeviceMetricsOverride", {
    width: 1280,
    height: 900,
    deviceScaleFactor: 1,
    mobile: false,
  }, sessionId);
  await cdp.send("Page.navigate", { url: new URL(`file://${absolute}`).href }, sessionId);
  const deadline = Date.now() + timeoutMs;
  let state = { charts: [] as PageReport["charts"], blank: 0 };
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    if (!loaded) continue;
    const r = await cdp.send("Runtime.evaluate", { expression: INSPECT, returnByValue: true }, sessionId);
    state = JSON.parse((r.result as { value: string }).value);
    if (state.charts.every((c) => c.drawn)) break;
  }
  // A moment more, for errors of late scripts.
  await new Promise((r) => setTimeout(r, 1000));
  if (screenshots) {
    const clip = Number(Deno.env.get("SCREENSHOT_HEIGHT")) || 0;
    const shot = await cdp.send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
      ...(clip
        ? { clip: { x: 0, y: Number(Deno.env.get("SCREENSHOT_TOP")) || 0, width: 1280, height: clip, scale: 1 } }
        : {}),
    }, sessionId);
    const name = path.split("/").pop()!.replace(/\.html$/, ".png");
    await Deno.writeFile(`${screenshots}/${name}`, Uint8Array.from(atob(shot.data as string), (c) => c.charCodeAt(0)));
  }
  await cdp.send("Target.closeTarget", { targetId });
  return { path, charts: state.charts, blankAboveFirstChart: state.blank, errors };
}

/**
 * The problems of a page report: no charts (when `minCharts` > 0), a chart not drawn or with no trace, a console
 * error, empty outputs taller than `maxBlank` pixels above the first chart.
 *
 * @example
 * ```ts
 * import { pageProblems } from "./check_charts.ts";
 * const report = { path: "a.html", charts: [{ id: "p", drawn: true, traces: 0 }], blankAboveFirstChart: 0, errors: [] };
 * console.log(pageProblems(report)); // ["chart p drew no trace"]
 * ```
 */
export function pageProblems(report: PageReport, options: { minCharts?: number; maxBlank?: number } = {}): string[] {
  const problems: string[] = [];
  if (report.charts.length < (options.minCharts ?? 1)) problems.push(`${report.charts.length} charts on the page`);
  for (const c of report.charts) {
    if (!c.drawn) problems.push(`chart ${c.id} was not drawn`);
    else if (c.traces === 0) problems.push(`chart ${c.id} drew no trace`);
  }
  for (const e of report.errors) problems.push(`console: ${e}`);
  if (report.blankAboveFirstChart > (options.maxBlank ?? 20)) {
    problems.push(`${Math.round(report.blankAboveFirstChart)} px of empty outputs above the first chart`);
  }
  return problems;
}

if (import.meta.main) {
  if (Deno.args.length === 0) {
    console.error("usage: deno run -A scripts/check_charts.ts page.html [more.html ...]");
    Deno.exit(2);
  }
  let failed = false;
  const shots = Deno.env.get("SCREENSHOTS");
  for (const report of await checkPages(Deno.args, shots ? { screenshots: shots } : {})) {
    const problems = pageProblems(report);
    const traces = report.charts.map((c) => c.traces).join(", ");
    if (problems.length) failed = true;
    console.log(
      problems.length
        ? `FAIL ${report.path}\n  ${problems.join("\n  ")}`
        : `ok   ${report.path}: ${report.charts.length} charts drawn (${traces} traces), no console errors`,
    );
  }
  if (failed) Deno.exit(1);
}

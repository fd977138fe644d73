/**
 * Proves that the core (tensor, nn, tokenizer, sample) runs in a browser: bundles `scripts/browser/page.ts` for the
 * browser with `deno bundle`, serves it on 127.0.0.1, opens it in headless Chromium with WebGPU, and waits for the
 * page to post its result: the logits of a tiny TransformerLM's forward pass and a greedy continuation
 * (`scripts/browser/tiny_run.ts`). The same run in Deno, with the same seeds, must give logits within 1e-4 and the
 * same continuation. Exits 1 with one line saying what went wrong: no Chromium, a bundle that fails, an error in the
 * page (its message and stack), no result within the time limit, or results that differ.
 *
 * ```sh
 * deno run -A scripts/browser_check.ts   # deno task check:browser; CHROMIUM=/path/to/chrome to pick the browser
 * ```
 *
 * @module
 */
import { tinyRun, type TinyRunResult } from "./browser/tiny_run.ts";

const TOLERANCE = 1e-4;
const TIMEOUT_MS = 60_000;
const root = new URL("../", import.meta.url);

/** The Chromium to run: `$CHROMIUM`, else the first of the usual names on the PATH. */
export async function findChromium(env: Record<string, string | undefined> = Deno.env.toObject()): Promise<string> {
  if (env.CHROMIUM) return env.CHROMIUM;
  for (const name of ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]) {
    for (const dir of (env.PATH ?? "").split(":")) {
      try {
        if ((await Deno.stat(`${dir}/${name}`)).isFile) return `${dir}/${name}`;
      } catch {
        // not in this folder
      }
    }
  }
  throw new Error("no Chromium found: apt-get install chromium (Debian), or set CHROMIUM to a Chrome binary");
}

/** Bundles a page script (by default the check's) for the browser into `dir/page.js`. */
export async function bundlePage(dir: string, entry = "scripts/browser/page.ts"): Promise<void> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--platform", "browser", "--quiet", "-o", `${dir}/page.js`, entry],
    cwd: root,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(`deno bundle failed:\n${new TextDecoder().decode(stderr)}`);
}

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>nanolm in the browser</title></head>
<body>running...<script type="module" src="/page.js"></script></body></html>`;

/** The largest absolute difference between two equally long arrays. */
export function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

/** What differs between the browser's run and Deno's, as sentences (empty when they agree). */
export function differences(browser: TinyRunResult, deno: TinyRunResult, tolerance = TOLERANCE): string[] {
  const found: string[] = [];
  if (browser.ids.join() !== deno.ids.join()) {
    found.push(`prompt ids ${browser.ids} in the browser, ${deno.ids} in Deno`);
  }
  if (browser.shape.join() !== deno.shape.join()) {
    found.push(`logits ${browser.shape} in the browser, ${deno.shape} in Deno`);
  }
  const diff = maxAbsDiff(browser.logits, deno.logits);
  if (!(diff <= tolerance)) found.push(`logits differ by up to ${diff} (tolerance ${tolerance})`);
  if (browser.generated.join() !== deno.generated.join()) {
    found.push(`continuation ${browser.generated} in the browser, ${deno.generated} in Deno`);
  }
  return found;
}

/** Serves the page, runs Chromium on it and returns what the page posted. */
export async function runInChromium(chromium: string, dir: string): Promise<TinyRunResult> {
  const script = await Deno.readFile(`${dir}/page.js`);
  const posted = Promise.withResolvers<{ result?: TinyRunResult; error?: string }>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const { pathname } = new URL(request.url);
    if (request.method === "POST" && pathname === "/result") {
      posted.resolve(JSON.parse(await request.text()));
      return new Response("ok");
    }
    if (pathname === "/page.js") return new Response(script, { headers: { "content-type": "text/javascript" } });
    if (pathname === "/") return new Response(PAGE, { headers: { "content-type": "text/html" } });
    return new Response("not found", { status: 404 });
  });
  const args = [
    "--headless=new",
    "--enable-unsafe-webgpu", // WebGPU on Linux is still behind this flag; headless gets SwiftShader's adapter
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    `--user-data-dir=${dir}/profile`,
    // The page is ours, served on loopback; the sandbox refuses root and fails in many CI containers.
    "--no-sandbox",
    `http://127.0.0.1:${server.addr.port}/`,
  ];
  const browser = new Deno.Command(chromium, { args, stdout: "null", stderr: "piped" }).spawn();
  const exited = browser.output().then(({ code, stderr }) => ({ code, stderr: new TextDecoder().decode(stderr) }));
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const outcome = await Promise.race([
      posted.promise,
      exited.then(({ code, stderr }) => {
        throw new Error(`Chromium exited (code ${code}) before the page reported:\n${stderr.slice(-2000)}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`the page reported nothing within ${TIMEOUT_MS / 1000} s`)),
          TIMEOUT_MS,
        );
      }),
    ]);
    if (outcome.error !== undefined) throw new Error(`the page failed: ${outcome.error}`);
    if (outcome.result === undefined) throw new Error("the page posted no result");
    return outcome.result;
  } finally {
    clearTimeout(timer);
    try {
      browser.kill("SIGTERM");
    } catch {
      // already gone
    }
    await exited.catch(() => {});
    await server.shutdown();
  }
}

if (import.meta.main) {
  const started = performance.now();
  const dir = await Deno.makeTempDir({ prefix: "nanolm-browser-" });
  try {
    const chromium = await findChromium();
    await bundlePage(dir);
    const browser = await runInChromium(chromium, dir);
    const deno = await tinyRun();
    const problems = differences(browser, deno);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (problems.length > 0) {
      for (const p of problems) console.error(`browser: ${p}`);
      Deno.exit(1);
    }
    console.log(
      `browser: the core ran in Chromium (${browser.adapter}) and matched Deno (${deno.adapter}): logits ` +
        `${browser.shape.join("x")} within ${maxAbsDiff(browser.logits, deno.logits).toExponential(1)}, ` +
        `continuation ${browser.generated.join(" ")} (${seconds} s)`,
    );
  } catch (e) {
    console.error(`browser: ${(e as Error).message}`);
    Deno.exit(1);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Checks the architecture the README draws: each folder of `lib/` is a layer that imports only from the layers
 * below it, `kernels/` imports nothing from `lib/`, and the core that a browser page loads (tensor, nn, tokenizer,
 * sample and everything they import) touches neither `Deno.*` nor `node:*`. Tests are exempt, but a test in `lib/`
 * is a unit test of the module beside it (`paths_test.ts` tests `paths.ts`): one without that module belongs in
 * `tests/`. Prints every violation as `file: problem (rule)` and exits 1 if there is any.
 *
 * ```sh
 * deno run --allow-read scripts/check_layers.ts
 * ```
 *
 * @module
 */

/** Each layer and the layers it may import (besides itself and the display protocol). */
export const LAYERS: Record<string, readonly string[]> = {
  util: [],
  io: ["util"],
  gpu: ["util", "kernels"],
  kernels: [],
  tensor: ["gpu", "util", "kernels"],
  nn: ["tensor", "gpu", "util", "kernels"],
  optim: ["tensor", "gpu", "util", "kernels"],
  tokenizer: ["util"],
  data: ["tokenizer", "io", "util"],
  sample: ["nn", "tensor", "gpu", "util", "kernels", "tokenizer"],
  train: ["optim", "nn", "tensor", "gpu", "util", "kernels", "tokenizer", "data", "io", "sample"],
  notebook: ["train", "sample", "optim", "nn", "tensor", "gpu", "util", "kernels", "tokenizer", "data", "io"],
  cli: ["notebook", "train", "sample", "optim", "nn", "tensor", "gpu", "util", "kernels", "tokenizer", "data", "io"],
};

/** The display protocol and table rendering: leaves any layer may import, so that objects show themselves in notebooks. */
export const DISPLAY_LEAF = ["lib/notebook/display.ts", "lib/notebook/table.ts"];

/** The layers whose modules, and every module they import, must run in a browser. */
export const CORE = ["tensor", "nn", "tokenizer", "sample"];

const root = new URL("../", import.meta.url).pathname;

/** The layer of a repository path, or null outside lib/ and kernels/. */
export function layerOf(path: string): string | null {
  if (path.startsWith("kernels/")) return "kernels";
  const m = /^lib\/([^/]+)\//.exec(path);
  return m ? m[1] : path.startsWith("lib/") ? "root" : null;
}

/** Relative import targets of a module's source (static imports and re-exports, dynamic imports, workers). */
export function importsOf(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
  const found: string[] = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|new URL\(\s*)(["'])([^"']+)\1/g;
  for (const m of code.matchAll(pattern)) found.push(m[2]);
  return found;
}

function resolve(from: string, spec: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const piece of spec.split("/")) {
    if (piece === "..") parts.pop();
    else if (piece !== ".") parts.push(piece);
  }
  return parts.join("/");
}

async function* modules(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(`${root}${dir}`)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) yield* modules(path);
    else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) yield path;
  }
}

async function* tests(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(`${root}${dir}`)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) yield* tests(path);
    else if (e.name.endsWith("_test.ts")) yield path;
  }
}

/** Every violation in the repository. */
export async function violations(): Promise<string[]> {
  const sources = new Map<string, string>();
  for (const dir of ["lib", "kernels"]) {
    for await (const path of modules(dir)) sources.set(path, await Deno.readTextFile(`${root}${path}`));
  }
  const problems: string[] = [];
  const graph = new Map<string, string[]>();
  for (const [path, source] of sources) {
    const layer = layerOf(path)!;
    const targets: string[] = [];
    for (const spec of importsOf(source)) {
      if (!spec.startsWith(".")) {
        if (spec.startsWith("node:")) targets.push(spec);
        continue;
      }
      const target = resolve(path, spec);
      targets.push(target);
      const to = layerOf(target);
      if (to === null || to === layer || DISPLAY_LEAF.includes(target)) continue;
      if (layer === "root") continue;
      if (!LAYERS[layer]?.includes(to)) problems.push(`${path}: imports ${target} (${layer} may not import ${to})`);
    }
    graph.set(path, targets);
  }
  for await (const path of tests("lib")) {
    if (!sources.has(path.replace(/_test\.ts$/, ".ts"))) {
      problems.push(`${path}: tests no module of its name (a test that spans modules belongs in tests/)`);
    }
  }
  // The core and everything it imports: no Deno.*, no node:*.
  const seen = new Set<string>();
  const stack = [...sources.keys()].filter((p) => CORE.includes(layerOf(p)!));
  while (stack.length) {
    const path = stack.pop()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const source = sources.get(path);
    if (source === undefined) continue;
    const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
    if (/\bDeno\./.test(code)) problems.push(`${path}: uses Deno.* (the core must run in a browser)`);
    for (const target of graph.get(path) ?? []) {
      if (target.startsWith("node:")) problems.push(`${path}: imports ${target} (the core must run in a browser)`);
      else stack.push(target);
    }
  }
  return problems;
}

if (import.meta.main) {
  const problems = await violations();
  for (const p of problems) console.error(p);
  if (problems.length > 0) {
    console.error(`${problems.length} layer violation(s); the rules are in scripts/check_layers.ts and the README`);
    Deno.exit(1);
  }
  console.log(
    "layers: every import points down; the core uses no Deno.* and no node:*; lib tests sit beside their module",
  );
}

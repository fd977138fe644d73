/**
 * Checks the library's doc examples without running them (`scripts/doc_test.ts` runs them), and exits non-zero
 * naming each `file:line` that breaks a rule:
 *
 * - Every exported function and class carries an `@example` in its doc comment (the Deno std style rule).
 * - Every entry of deno.json's `"exports"` has a module doc (`@module`) with an `@example`.
 * - An example imports the package by its published name (`@nanolm/nanolm` or `@nanolm/nanolm/<layer>`), so that it
 *   can be copied from the JSR page. Only names that no entry publishes (helpers a layer shares between its files)
 *   may come from a relative path, since no published name reaches them. Besides the package, only `npm:`
 *   packages may be imported (a user can copy those); no `jsr:`, no URLs, no import-map names.
 * - An example checks its result with a plain `throw` (`if (...) throw new Error(...)`), never `console.assert`,
 *   which only logs. A block marked `ts ignore` (what cannot run here, such as a download) is exempt from the check
 *   but not from the import rules.
 *
 * Scans `mod.ts`, `kernels/*.ts` and `lib/**\/*.ts` (not `*_test.ts`). Counted as callables: `export function` (and
 * `async`, generator), `export class` (and `abstract`), and `export const X` whose type annotation is a function type
 * or whose value is an arrow function, a function expression or a `memoized(...)` call. Other constants (numbers,
 * strings, frozen objects, URL tables, symbols, regular expressions) are data and need no example. Re-exports
 * (`export { ... } from`) are checked where they are defined. Overloads pass when any of their doc comments has one.
 *
 * Usage: `deno run --allow-read scripts/check_examples.ts` (part of `deno task check:docs`).
 *
 * @module
 */

const root = new URL("../", import.meta.url);

/** A file and an exported callable in it that has no `@example`. */
interface Missing {
  file: string;
  name: string;
}

async function* walk(dir: URL, rel: string): AsyncGenerator<string> {
  const entries: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(dir)) entries.push(e);
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const e of entries) {
    if (e.isDirectory) yield* walk(new URL(`${e.name}/`, dir), `${rel}${e.name}/`);
    else if (e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) yield `${rel}${e.name}`;
  }
}

/** The library's modules: `mod.ts`, `kernels/*.ts` and `lib/**\/*.ts`, without tests, as sorted repository paths. */
export async function sourceFiles(): Promise<string[]> {
  const files = ["mod.ts"];
  for await (const e of Deno.readDir(new URL("kernels/", root))) {
    if (e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) files.push(`kernels/${e.name}`);
  }
  for await (const f of walk(new URL("lib/", root), "lib/")) files.push(f);
  return files.sort();
}

/** Index just past the bracket that closes the one at `open` (`(`, `<`, `[` or `{`), skipping strings. */
function closeBracket(src: string, open: number): number {
  const pairs: Record<string, string> = { "(": ")", "[": "]", "{": "}", "<": ">" };
  const stack: string[] = [];
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    if (c === '"' || c === "'" || c === "`") {
      for (i++; i < src.length && src[i] !== c; i++) if (src[i] === "\\") i++;
    } else if (c in pairs) stack.push(pairs[c]);
    else if (c === "=" && src[i + 1] === ">") i++;
    else if (c === stack[stack.length - 1]) {
      stack.pop();
      if (stack.length === 0) return i + 1;
    }
  }
  return src.length;
}

/** Whether the initialiser starting at `i` is an arrow function, a function expression or a `memoized(...)` call. */
function isCallableValue(src: string, i: number): boolean {
  const rest = src.slice(i);
  if (/^(async\s+)?function\b/.test(rest) || /^memoized\s*[(<]/.test(rest)) return true;
  if (/^(async\s+)?[A-Za-z_$][\w$]*\s*=>/.test(rest)) return true;
  let j = i + (rest.match(/^async\s+/)?.[0].length ?? 0);
  if (src[j] === "<") j = closeBracket(src, j);
  while (/\s/.test(src[j] ?? "")) j++;
  if (src[j] !== "(") return false;
  j = closeBracket(src, j);
  // An optional return type annotation, then the arrow.
  const after = src.slice(j).match(/^\s*(:[^=;{]*?)?\s*=>/);
  return after !== null;
}

/** Whether the `export const` at `i` (just after the name) declares a callable. */
function isCallableConst(src: string, i: number): boolean {
  while (/\s/.test(src[i])) i++;
  if (src[i] === ":") {
    i++;
    while (/\s/.test(src[i])) i++;
    // A function type annotation: `(a: A) => B` or `<T>(a: T) => B`.
    if (src[i] === "(" || src[i] === "<") return true;
    return false;
  }
  if (src[i] !== "=") return false;
  i++;
  while (/\s/.test(src[i])) i++;
  return isCallableValue(src, i);
}

/** The doc comment ending right before `at` (only whitespace between), or `undefined`. */
function docBefore(src: string, at: number): string | undefined {
  const before = src.slice(0, at).trimEnd();
  if (!before.endsWith("*/")) return undefined;
  // A comment's text may hold "/**" (a glob such as runs/**), never "*/": it opens at the first "/**" after the
  // comment that ends before it.
  const previousEnd = before.lastIndexOf("*/", before.length - 3);
  const start = before.indexOf("/**", previousEnd < 0 ? 0 : previousEnd + 2);
  return start < 0 ? undefined : before.slice(start);
}

/** The exported callables of a module's source, each with whether one of its doc comments has an `@example`. */
export function exportedCallables(src: string): Map<string, boolean> {
  const found = new Map<string, boolean>();
  const decl =
    /^export\s+(?:(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)|(?:abstract\s+)?class\s+([A-Za-z_$][\w$]*)|const\s+([A-Za-z_$][\w$]*))/gm;
  for (const m of src.matchAll(decl)) {
    const name = m[1] ?? m[2] ?? m[3];
    if (m[3] !== undefined && !isCallableConst(src, m.index + m[0].length)) continue;
    const hasExample = docBefore(src, m.index)?.includes("@example") ?? false;
    found.set(name, (found.get(name) ?? false) || hasExample);
  }
  return found;
}

/** The package's name in deno.json, which examples import. */
export const PACKAGE = "@nanolm/nanolm";

/** A fenced code block of a doc comment. */
export interface DocExample {
  /** The line (from 1) of the opening fence in its file. */
  line: number;
  /** The fence's language: `ts`, `sh`, ... */
  lang: string;
  /** Whether the fence says `ignore` (type-checked and shown, never run). */
  ignore: boolean;
  /** The code, without the comment's leading `*`. */
  code: string;
}

/** The fenced code blocks of every doc comment of `src`. */
export function docExamples(src: string): DocExample[] {
  const found: DocExample[] = [];
  for (const comment of src.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const firstLine = src.slice(0, comment.index).split("\n").length;
    const lines = comment[0].split("\n").map((l) => l.replace(/^\s*\*(?!\/) ?/, "").replace(/^\/\*\*\s?/, ""));
    let open: { line: number; lang: string; ignore: boolean; body: string[] } | null = null;
    lines.forEach((text, i) => {
      const fence = /^```\s*([\w-]*)\s*(.*)$/.exec(text.trimEnd());
      if (open === null && fence) {
        open = { line: firstLine + i, lang: fence[1], ignore: /\bignore\b/.test(fence[2]), body: [] };
      } else if (open !== null && fence && fence[1] === "" && fence[2] === "") {
        found.push({ line: open.line, lang: open.lang, ignore: open.ignore, code: open.body.join("\n") });
        open = null;
      } else if (open !== null) open.body.push(text);
    });
  }
  return found;
}

/** Whether an example's language is one `deno test --doc` runs. */
export function isScript(lang: string): boolean {
  return ["ts", "js", "tsx", "jsx", "typescript", "javascript", "mts", "mjs"].includes(lang);
}

/** The names a module publishes, from its `export` declarations and `export { ... }` lists. */
export function exportedNames(src: string): string[] {
  const names: string[] = [];
  const code = src.replace(/\/\*[\s\S]*?\*\//g, "");
  for (const m of code.matchAll(/^export\s+(?:type\s+)?\{([^}]*)\}/gm)) {
    for (const part of m[1].split(",")) {
      const name = part.trim().replace(/^type\s+/, "").split(/\s+as\s+/).at(-1)!.trim();
      if (name) names.push(name);
    }
  }
  const decl =
    /^export\s+(?:declare\s+)?(?:default\s+)?(?:async\s+)?(?:abstract\s+)?(?:function\s*\*?|class|const|let|var|interface|type|enum)\s+([A-Za-z_$][\w$]*)/gm;
  for (const m of code.matchAll(decl)) names.push(m[1]);
  return names;
}

/** What the package publishes: each entry's specifier and file, and the specifiers that export each name. */
export interface PublicApi {
  /** Each import specifier (`@nanolm/nanolm`, `@nanolm/nanolm/tensor`, ...) and its file, as a repository path. */
  entries: Map<string, string>;
  /** Each published name and the specifiers that export it. */
  names: Map<string, string[]>;
}

/** Reads deno.json's `"exports"` and what each entry exports. */
export async function publicApi(): Promise<PublicApi> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  const entries = new Map<string, string>();
  const names = new Map<string, string[]>();
  for (const [key, target] of Object.entries(config.exports as Record<string, string>)) {
    const specifier = key === "." ? PACKAGE : `${PACKAGE}/${key.replace(/^\.\//, "")}`;
    const file = target.replace(/^\.\//, "");
    entries.set(specifier, file);
    for (const name of exportedNames(await Deno.readTextFile(new URL(file, root)))) {
      names.set(name, [...(names.get(name) ?? []), specifier]);
    }
  }
  return { entries, names };
}

/** The static imports of an example: each specifier and the names it brings in. */
function importsOf(code: string): { specifier: string; names: string[] }[] {
  const found: { specifier: string; names: string[] }[] = [];
  const pattern =
    /^\s*(?:import|export)\s+(?:type\s+)?([\s\S]*?)\s*from\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']/gm;
  for (const m of code.matchAll(pattern)) {
    if (m[3] !== undefined) {
      found.push({ specifier: m[3], names: [] });
      continue;
    }
    const braced = /\{([^}]*)\}/.exec(m[1])?.[1] ?? "";
    const names = braced.split(",").map((p) => p.trim().replace(/^type\s+/, "").split(/\s+as\s+/)[0].trim())
      .filter((n) => n !== "");
    found.push({ specifier: m[2], names });
  }
  return found;
}

/** What is wrong with one example, each as a short sentence (empty when nothing is). */
export function exampleProblems(example: DocExample, api: PublicApi): string[] {
  if (!isScript(example.lang)) return [];
  const problems: string[] = [];
  const code = example.code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
  if (/\bconsole\.assert\s*\(/.test(code)) {
    problems.push("uses console.assert, which only logs: check with `if (...) throw new Error(...)`");
  }
  for (const { specifier, names } of importsOf(code)) {
    if (specifier === PACKAGE || specifier.startsWith(`${PACKAGE}/`)) {
      if (!api.entries.has(specifier)) {
        problems.push(
          `imports "${specifier}", which deno.json does not export (${[...api.entries.keys()].join(", ")})`,
        );
      }
    } else if (specifier.startsWith(".")) {
      for (const name of names.filter((n) => api.names.has(n))) {
        const from = api.names.get(name)!.map((s) => `"${s}"`).join(" or ");
        problems.push(`imports ${name} from "${specifier}": import it from ${from}, as a user would`);
      }
    } else if (!specifier.startsWith("npm:")) {
      problems.push(`imports "${specifier}": an example imports the package (${PACKAGE}, ${PACKAGE}/<layer>) or npm:`);
    }
  }
  if (!example.ignore && !/\bthrow\b/.test(code)) {
    problems.push("checks nothing: test a result with `if (...) throw new Error(...)`");
  }
  return problems;
}

/** The module doc of a source: its doc comment that carries `@module`, or `undefined`. */
export function moduleDoc(src: string): string | undefined {
  return [...src.matchAll(/\/\*\*[\s\S]*?\*\//g)].map((m) => m[0]).find((c) => /@module\b/.test(c));
}

/** Every problem of the library's examples and module docs, as `file:line: problem` lines. */
export async function problems(): Promise<{ problems: string[]; callables: number; examples: number }> {
  const api = await publicApi();
  const found: string[] = [];
  let callables = 0, examples = 0;
  for (const file of await sourceFiles()) {
    const src = await Deno.readTextFile(new URL(file, root));
    for (const [name, ok] of exportedCallables(src)) {
      callables++;
      if (!ok) found.push(`${file}:${name}: no @example in its doc comment`);
    }
    for (const example of docExamples(src)) {
      if (isScript(example.lang)) examples++;
      for (const problem of exampleProblems(example, api)) found.push(`${file}:${example.line}: ${problem}`);
    }
  }
  for (const [specifier, file] of api.entries) {
    const doc = moduleDoc(await Deno.readTextFile(new URL(file, root)));
    if (doc === undefined) found.push(`${file}:1: entry ${specifier} has no module doc (a doc comment with @module)`);
    else if (!doc.includes("@example")) found.push(`${file}:1: the module doc of entry ${specifier} has no @example`);
  }
  return { problems: found, callables, examples };
}

if (import.meta.main) {
  const { problems: found, callables, examples } = await problems();
  for (const line of found) console.error(line);
  if (found.length > 0) {
    console.error(
      `check_examples: ${found.length} problem(s) in ${callables} exported callables and ${examples} examples`,
    );
    Deno.exit(1);
  }
  console.log(`check_examples: ok (${callables} exported callables, ${examples} examples)`);
}

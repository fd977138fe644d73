/**
 * Checks that every exported function and class of the library carries an `@example` in its doc comment (the Deno
 * std style rule), and exits non-zero naming each `file:export` that does not.
 *
 * Scans `mod.ts`, `kernels/*.ts` and `lib/**\/*.ts` (not `*_test.ts`). Counted as callables: `export function` (and
 * `async`, generator), `export class` (and `abstract`), and `export const X` whose type annotation is a function type
 * or whose value is an arrow function, a function expression or a `memoized(...)` call. Other constants (numbers,
 * strings, frozen objects, URL tables, symbols, regular expressions) are data and need no example. Re-exports
 * (`export { ... } from`) are checked where they are defined. Overloads pass when any of their doc comments has one.
 *
 * Usage: `deno run --allow-read scripts/check_examples.ts` (part of `deno task check`).
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

async function sourceFiles(): Promise<string[]> {
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
  const start = before.lastIndexOf("/**");
  return start < 0 ? undefined : before.slice(start);
}

/** The exported callables of a module's source, each with whether one of its doc comments has an `@example`. */
function exportedCallables(src: string): Map<string, boolean> {
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

if (import.meta.main) {
  const missing: Missing[] = [];
  let total = 0;
  for (const file of await sourceFiles()) {
    const src = await Deno.readTextFile(new URL(file, root));
    for (const [name, ok] of exportedCallables(src)) {
      total++;
      if (!ok) missing.push({ file, name });
    }
  }
  if (missing.length > 0) {
    for (const { file, name } of missing) console.error(`${file}:${name}: no @example in its doc comment`);
    console.error(`${missing.length} of ${total} exported functions and classes lack an @example`);
    Deno.exit(1);
  }
  console.log(`check_examples: all ${total} exported functions and classes have an @example`);
}

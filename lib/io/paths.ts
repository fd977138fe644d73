/**
 * Paths recorded inside files. A checkpoint records its tokenizer (and its run config records data files), but a
 * checkpoint may come from anywhere, so a recorded path is never trusted as a path: it is resolved relative to the
 * checkpoint's folder and refused if it is absolute or leaves that folder (by `..` or through a symbolic link).
 * A path the user passes explicitly (a flag, an API argument) is the user's choice and is never restricted;
 * {@linkcode choosePath} takes both and makes that choice visible at the call site.
 *
 * What a writer records ({@linkcode pathToRecord}): the path relative to the checkpoint's folder when the file sits
 * under it, so the folder can be moved or shared whole; otherwise the path as the user gave it, which readers will
 * refuse to follow and only show, so the user can pass it (or another) explicitly.
 *
 * @module
 */

import { quoteForMessage } from "../util/json.ts";

/** Where a recorded path came from, for resolving it and for the error that refuses it. */
export interface RecordedPathOptions {
  /** The file whose metadata recorded the path, e.g. `runs/tiny/checkpoint.safetensors`. */
  checkpoint: string;
  /** The metadata key it was recorded under, e.g. `tokenizer`. */
  key: string;
  /** How the user passes the path explicitly, named in errors as the fix (default `--<key>`). */
  flag?: string;
}

const WINDOWS = Deno.build.os === "windows";

function isSeparator(c: string): boolean {
  return c === "/" || (WINDOWS && c === "\\");
}

/** The folder of `path`, as the path to it (`.` for a bare file name). */
function dirOf(path: string): string {
  for (let i = path.length - 1; i >= 0; i--) {
    if (isSeparator(path[i])) return i === 0 ? path[0] : path.slice(0, i);
  }
  return ".";
}

function isAbsolute(path: string): boolean {
  return isSeparator(path[0] ?? "") || /^[A-Za-z]:/.test(path) || (WINDOWS && path.startsWith("\\"));
}

/** Whether `child` is `parent` or below it; both are real (absolute, link-free) paths. */
function isInside(child: string, parent: string): boolean {
  const sep = WINDOWS ? "\\" : "/";
  return child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

/**
 * The segments of a relative path after resolving `.` and `..`, or `null` if a `..` climbs above its start.
 * Both `/` and `\` separate segments: a backslash is a separator on Windows, so a recorded path is checked as if
 * it were read there.
 */
function normalizeRelative(path: string): string[] | null {
  const out: string[] = [];
  for (const segment of path.split(/[\\/]/)) {
    if (segment === "" || segment === ".") continue;
    if (segment !== "..") out.push(segment);
    else if (out.pop() === undefined) return null;
  }
  return out;
}

/**
 * Resolves a path recorded in a checkpoint's metadata relative to the checkpoint's folder, and checks it names an
 * existing file inside that folder. Refuses, with one line naming the checkpoint, the key and the fix (`pass
 * --<key> PATH`), a recorded path that is empty, absolute, climbs out with `..`, reaches outside through a
 * symbolic link, or names no file. Never use it for a path the user passed: see {@linkcode choosePath}.
 *
 * @example
 * ```ts
 * import { resolveRecordedPath } from "@nanolm/nanolm/io";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/tokenizer.json`, "{}");
 * const checkpoint = `${dir}/checkpoint.safetensors`;
 * const found = resolveRecordedPath("tokenizer.json", { checkpoint, key: "tokenizer" });
 * if (found !== `${dir}/tokenizer.json`) throw new Error(found);
 * // A path that leaves the checkpoint's folder is refused, whatever it names.
 * let refusal = "";
 * try {
 *   resolveRecordedPath("../../../../etc/passwd", { checkpoint, key: "tokenizer" });
 * } catch (e) {
 *   refusal = (e as Error).message;
 * }
 * if (!refusal.endsWith("pass --tokenizer PATH")) throw new Error(`followed or wrong advice: ${refusal}`);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function resolveRecordedPath(recorded: string, options: RecordedPathOptions): string {
  const { checkpoint, key } = options;
  const refuse = (problem: string) =>
    new Error(
      `Checkpoint ${checkpoint} records ${key} ${quoteForMessage(String(recorded))}, ${problem}: ` +
        `pass ${options.flag ?? `--${key}`} PATH`,
    );
  const outside = "(recorded paths are followed only inside the checkpoint's folder)";
  if (typeof recorded !== "string" || recorded === "") throw refuse("an empty path");
  if (recorded.includes("\0")) throw refuse("a path with a NUL character");
  if (isAbsolute(recorded)) throw refuse(`an absolute path ${outside}`);
  const segments = normalizeRelative(recorded);
  if (segments === null) throw refuse(`which leaves the checkpoint's folder ${outside}`);
  if (segments.length === 0) throw refuse("which names the folder itself, not a file");
  const dir = dirOf(checkpoint);
  const resolved = dir === "."
    ? segments.join("/")
    : `${dir}${isSeparator(dir.at(-1)!) ? "" : "/"}${segments.join("/")}`;
  let real: string, realDir: string;
  try {
    real = Deno.realPathSync(resolved);
    realDir = Deno.realPathSync(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw refuse(`but ${resolved} does not exist`);
    throw refuse(`but ${resolved} cannot be read (${(e as Error).message})`);
  }
  if (!isInside(real, realDir)) throw refuse(`which links to outside the checkpoint's folder ${outside}`);
  if (!Deno.statSync(real).isFile) throw refuse(`but ${resolved} is not a file`);
  return resolved;
}

/** Where an input path comes from: the user, or a checkpoint's metadata. */
export interface PathChoice extends RecordedPathOptions {
  /** The path the user passed (flag or API argument), used as given; `undefined` if none. */
  given?: string;
  /** The path recorded in the checkpoint, resolved with {@linkcode resolveRecordedPath}; `undefined` if none. */
  recorded?: string;
}

/**
 * The path to read: the user's if given (never restricted: the user chose it), else the checkpoint's recorded
 * one resolved and checked by {@linkcode resolveRecordedPath}. With neither, one line naming the checkpoint, the
 * key and the flag.
 *
 * @example
 * ```ts
 * import { choosePath } from "@nanolm/nanolm/io";
 * // The user's path wins and is not checked against the checkpoint's folder.
 * const checkpoint = "runs/tiny/checkpoint.safetensors";
 * const path = choosePath({ given: "/data/tok.json", recorded: "../../etc/passwd", checkpoint, key: "tokenizer" });
 * if (path !== "/data/tok.json") throw new Error(path);
 * ```
 */
export function choosePath(choice: PathChoice): string {
  if (choice.given !== undefined) return choice.given;
  if (choice.recorded === undefined) {
    throw new Error(
      `Checkpoint ${choice.checkpoint} records no ${choice.key}: pass ${choice.flag ?? `--${choice.key}`} PATH`,
    );
  }
  return resolveRecordedPath(choice.recorded, choice);
}

/** `path` made absolute (against the working folder) with `.` and `..` resolved lexically, `/`-separated. */
function absolute(path: string): string {
  const full = isAbsolute(path) ? path : `${Deno.cwd()}/${path}`;
  const root = /^[A-Za-z]:/.test(full) ? full.slice(0, 2) : "";
  const out: string[] = [];
  for (const segment of full.slice(root.length).split(/[\\/]/)) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") out.pop();
    else out.push(segment);
  }
  return `${root}/${out.join("/")}`;
}

/**
 * What a writer records in a checkpoint for the file at `path` (as the user gave it): the path relative to the
 * checkpoint's folder when the file sits under it (readers resolve it there with {@linkcode resolveRecordedPath}),
 * else `path` unchanged, which readers refuse to follow and show in their error, so the user can pass it.
 *
 * @example
 * ```ts
 * import { pathToRecord } from "@nanolm/nanolm/io";
 * const checkpoint = "runs/tiny/checkpoint.safetensors";
 * if (pathToRecord("runs/tiny/tokenizer.json", checkpoint) !== "tokenizer.json") throw new Error("not relative");
 * // Outside the folder: recorded as given, which readers refuse to follow.
 * if (pathToRecord("data/tok.json", checkpoint) !== "data/tok.json") throw new Error("changed");
 * ```
 */
export function pathToRecord(path: string, checkpoint: string): string {
  const dir = absolute(dirOf(checkpoint)), file = absolute(path);
  if (!file.startsWith(dir.endsWith("/") ? dir : `${dir}/`)) return path;
  const relative = file.slice(dir.length).replace(/^\//, "");
  // Lexically inside is not enough when links are involved: record the relative path only if readers will
  // follow it (the real file is inside the real folder) to this same file.
  try {
    const real = Deno.realPathSync(path), realDir = Deno.realPathSync(dirOf(checkpoint));
    const same = Deno.realPathSync(`${dirOf(checkpoint)}/${relative}`) === real;
    return same && isInside(real, realDir) ? relative : path;
  } catch {
    return relative; // not written yet: the lexical answer is the only one
  }
}

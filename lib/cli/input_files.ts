/**
 * Files the command-line programs open on the user's behalf, checked before anything is read: one error line that
 * names the file and what is wrong. (Paths recorded inside a checkpoint go through `paths.ts`.)
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { loadTokenizer } from "../data/tokenizer_files.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

/**
 * Checks that `path` exists and is a regular file, throwing one line that names `what` and the path otherwise
 * (`fix` is appended, e.g. "pass --checkpoint <path>").
 *
 * @example
 * ```ts
 * import { checkInputFile } from "./input_files.ts";
 * let message = "";
 * try {
 *   await checkInputFile("/no/such/file.txt", "input");
 * } catch (e) {
 *   message = (e as Error).message;
 * }
 * if (message !== "input /no/such/file.txt does not exist") throw new Error(`wrong or no error: ${message}`);
 * ```
 */
export async function checkInputFile(
  path: string,
  what: string,
  fix?: string,
  options: { nonEmpty?: boolean } = {},
): Promise<void> {
  const tail = fix ? `; ${fix}` : "";
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${what} ${path} does not exist${tail}`);
    throw new Error(`${what} ${path} cannot be read (${(e as Error).name})${tail}`);
  }
  if (info.isDirectory) throw new Error(`${what} ${path} is a directory, not a file${tail}`);
  if (!info.isFile) throw new Error(`${what} ${path} is not a regular file${tail}`);
  if (options.nonEmpty && info.size === 0) throw new Error(`${what} ${path} is empty${tail}`);
}

/**
 * Checks that the folder `path` exists or can be made: neither it nor any folder above it is a file. Throws one
 * line that names `what`, the path and the file in the way (`fix` is appended), so that a run refuses it before
 * it writes anything.
 *
 * @example
 * ```ts
 * import { checkOutputDir } from "./input_files.ts";
 * const file = await Deno.makeTempFile();
 * let message = "";
 * try {
 *   await checkOutputDir(`${file}/run`, "output folder", "check --out-dir");
 * } catch (e) {
 *   message = (e as Error).message;
 * }
 * const expected = `output folder ${file}/run cannot be made: ${file} is a file, not a folder; check --out-dir`;
 * if (message !== expected) throw new Error(`wrong or no error: ${message}`);
 * await checkOutputDir(`${await Deno.makeTempDir()}/new/run`, "output folder"); // a folder to be made is fine
 * ```
 */
export async function checkOutputDir(path: string, what: string, fix?: string): Promise<void> {
  const tail = fix ? `; ${fix}` : "";
  for (let at = resolve(path);; at = dirname(at)) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(at);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound && dirname(at) !== at) continue;
      if (e instanceof Deno.errors.NotADirectory) continue;
      throw new Error(`${what} ${path} cannot be made (${(e as Error).name} at ${at})${tail}`);
    }
    if (info.isDirectory) return;
    const shown = at === resolve(path) ? path : at;
    throw new Error(
      shown === path
        ? `${what} ${path} is a file, not a folder${tail}`
        : `${what} ${path} cannot be made: ${shown} is a file, not a folder${tail}`,
    );
  }
}

/**
 * Loads a tokenizer file the user named or a checkpoint recorded; any problem is one line that says it is the
 * tokenizer, names the file and ends with `fix` (e.g. "check --tokenizer").
 *
 * @example
 * ```ts
 * import { loadTokenizerFile } from "./input_files.ts";
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await Deno.writeTextFile(path, "[]");
 * let message = "";
 * try {
 *   loadTokenizerFile(path, "check --tokenizer");
 * } catch (e) {
 *   message = (e as Error).message;
 * }
 * if (!message.startsWith(`tokenizer ${path}: not a nanolm tokenizer file`) || !message.endsWith("check --tokenizer")) {
 *   throw new Error(`wrong or no error: ${message}`);
 * }
 * await Deno.remove(path);
 * ```
 */
export function loadTokenizerFile(path: string, fix: string): Tokenizer {
  try {
    return loadTokenizer(path);
  } catch (e) {
    throw new Error(`tokenizer ${(e as Error).message}; ${fix}`, { cause: e });
  }
}

/**
 * Files the command-line programs open on the user's behalf, checked before anything is read: one error line that
 * names the file and what is wrong. (Paths recorded inside a checkpoint go through `paths.ts`.)
 *
 * @module
 */

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
export async function checkInputFile(path: string, what: string, fix?: string): Promise<void> {
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
}

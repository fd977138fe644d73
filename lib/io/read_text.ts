/**
 * Reading a text file the user named (a config, a sweep), with one line that says which file and what is wrong.
 *
 * @module
 */

/**
 * The text of `path`, or an error that names it as `what` ("config file", "sweep file"): "<what> <path> does not
 * exist", "... is a directory, not a file", or "... cannot be read (<error name>)".
 *
 * @example
 * ```ts
 * import { readNamedTextFile } from "./read_text.ts";
 * const dir = await Deno.makeTempDir();
 * let message = "";
 * try {
 *   await readNamedTextFile(dir, "config file");
 * } catch (e) {
 *   message = (e as Error).message;
 * }
 * if (message !== `config file ${dir} is a directory, not a file`) throw new Error(message);
 * await Deno.remove(dir);
 * ```
 */
export async function readNamedTextFile(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${what} ${path} does not exist`, { cause: e });
    if (e instanceof Deno.errors.IsADirectory) throw new Error(`${what} ${path} is a directory, not a file`);
    throw new Error(`${what} ${path} cannot be read (${(e as Error).name})`, { cause: e });
  }
}

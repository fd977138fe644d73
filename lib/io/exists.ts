/**
 * Whether a path exists, for the layers that decide what to create, reuse or refuse by what is on disk.
 *
 * @module
 */

/**
 * Whether `path` exists (a file, a folder or anything else). Errors other than "not found" (no permission, say)
 * are thrown, not taken as "no".
 *
 * @example
 * ```ts
 * import { exists } from "@nanolm/nanolm/io";
 * const dir = await Deno.makeTempDir();
 * if (!(await exists(dir)) || (await exists(`${dir}/missing.txt`))) throw new Error("exists() is wrong");
 * await Deno.remove(dir);
 * ```
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

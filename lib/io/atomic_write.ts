/**
 * Atomic file writes: the bytes go to a temporary file next to the target, which is flushed to disk and renamed
 * over the target, so a crash or a kill leaves either the old file or the new one, never a torn one; readers that
 * hold the old file open keep reading it whole.
 *
 * The temporary file is `.<name>.<16 hex digits>.tmp` in the target's folder. A process killed mid-write leaves
 * it behind, so each write first removes the temporary files of the same target that have not been modified for
 * {@linkcode STALE_TEMP_MS}. Age, not the writer's pid, decides: pids mean nothing across the hosts or containers
 * that may share a folder, while a live writer refreshes the file's modification time with every write. A writer
 * stalled for longer than that loses its temporary file and fails loudly at the rename; the target is untouched.
 *
 * @module
 */

/** Temporary files of a target older than this (by modification time) are left over from a killed write. */
export const STALE_TEMP_MS = 10 * 60 * 1000;

/** A file path from a path or a `file:` URL. */
function toPath(path: string | URL): string {
  if (typeof path === "string") return path;
  if (path.protocol !== "file:") throw new TypeError(`Only file: URLs can be written, got ${path.protocol} URL`);
  const decoded = decodeURIComponent(path.pathname);
  return Deno.build.os === "windows" && /^\/[A-Za-z]:/.test(decoded) ? decoded.slice(1) : decoded;
}

function splitPath(path: string): { dir: string; base: string } {
  const slash = Math.max(path.lastIndexOf("/"), Deno.build.os === "windows" ? path.lastIndexOf("\\") : -1);
  if (slash < 0) return { dir: ".", base: path };
  return { dir: path.slice(0, slash) || "/", base: path.slice(slash + 1) };
}

function join(dir: string, name: string): string {
  return `${dir === "/" ? "" : dir}/${name}`;
}

function tempPath(path: string): string {
  const { dir, base } = splitPath(path);
  const random = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0"));
  return join(dir, `.${base}.${random.join("")}.tmp`);
}

/** Whether `name` (a bare file name) is one of our temporary files for a target named `base`. */
function isTempOf(name: string, base: string): boolean {
  return name.length === base.length + 22 && name.startsWith(`.${base}.`) && /^\.[0-9a-f]{16}\.tmp$/.test(
    name.slice(base.length + 1),
  );
}

/**
 * Removes the temporary files that killed writes of `path` left behind: names of the exact form
 * `.<name>.<16 hex digits>.tmp` in its folder, unmodified for `olderThanMs` (default {@linkcode STALE_TEMP_MS}).
 * Returns the paths removed. Best effort: an unreadable folder or a file that vanished is skipped.
 *
 * @example
 * ```ts
 * import { removeStaleTempFiles } from "@nanolm/nanolm/io";
 * const dir = Deno.makeTempDirSync();
 * // What a write killed halfway leaves behind:
 * Deno.writeTextFileSync(`${dir}/.ckpt.safetensors.0123456789abcdef.tmp`, "torn");
 * const removed = removeStaleTempFiles(`${dir}/ckpt.safetensors`, { olderThanMs: 0 });
 * if (removed.length !== 1 || [...Deno.readDirSync(dir)].length !== 0) throw new Error("the torn file stayed");
 * Deno.removeSync(dir);
 * ```
 */
export function removeStaleTempFiles(path: string | URL, options: { olderThanMs?: number } = {}): string[] {
  const { dir, base } = splitPath(toPath(path));
  const cutoff = Date.now() - (options.olderThanMs ?? STALE_TEMP_MS);
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return removed;
  }
  for (const entry of entries) {
    if (!entry.isFile || !isTempOf(entry.name, base)) continue;
    const temp = join(dir, entry.name);
    try {
      const mtime = Deno.statSync(temp).mtime?.getTime();
      if (mtime === undefined || mtime > cutoff) continue;
      Deno.removeSync(temp);
      removed.push(temp);
    } catch { /* gone already, or not ours to remove */ }
  }
  return removed;
}

/** Persists a rename; not every platform lets a directory be opened, which only weakens durability. */
function syncDir(path: string): void {
  try {
    using dir = Deno.openSync(splitPath(path).dir, { read: true });
    dir.syncSync();
  } catch { /* best effort */ }
}

/**
 * Writes `path` (a path or a `file:` URL) atomically: `write` fills a fresh temporary file next to it, which is
 * flushed and renamed over `path`. On failure the temporary file is removed, `path` is untouched and the error
 * propagates as it is. Stale temporary files of `path` are removed first (see the module doc).
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "@nanolm/nanolm/io";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/a.txt`, async (file) => {
 *   await file.write(new TextEncoder().encode("hello"));
 * });
 * if (Deno.readTextFileSync(`${dir}/a.txt`) !== "hello") throw new Error("not written");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(
  path: string | URL,
  write: (file: Deno.FsFile) => Promise<void>,
): Promise<void> {
  path = toPath(path);
  removeStaleTempFiles(path);
  const temp = tempPath(path);
  const file = await Deno.open(temp, { write: true, createNew: true });
  try {
    try {
      await write(file);
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
  syncDir(path);
}

/**
 * Synchronous {@linkcode writeFileAtomic} of a byte array or a string (written as UTF-8).
 *
 * @example
 * ```ts
 * import { writeFileAtomicSync } from "@nanolm/nanolm/io";
 * const dir = Deno.makeTempDirSync();
 * writeFileAtomicSync(`${dir}/a.json`, '{"a": 1}\n');
 * if (Deno.readTextFileSync(`${dir}/a.json`) !== '{"a": 1}\n') throw new Error("not written");
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function writeFileAtomicSync(path: string | URL, data: Uint8Array | string): void {
  path = toPath(path);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  removeStaleTempFiles(path);
  const temp = tempPath(path);
  const file = Deno.openSync(temp, { write: true, createNew: true });
  try {
    try {
      for (let done = 0; done < bytes.length;) done += file.writeSync(bytes.subarray(done));
      file.syncSync();
    } finally {
      file.close();
    }
    Deno.renameSync(temp, path);
  } catch (e) {
    try {
      Deno.removeSync(temp);
    } catch { /* already gone */ }
    throw e;
  }
  syncDir(path);
}

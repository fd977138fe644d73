/**
 * Files the command-line programs open on the user's behalf: input files checked before anything is read, paths
 * recorded inside a checkpoint resolved without trusting them, and tokenizer files validated so that a malformed
 * one is one clear error. Errors name the file and never quote its contents.
 *
 * A recorded path (the tokenizer in a checkpoint's metadata) is only followed inside the checkpoint's folder:
 * relative to that folder, or as written at training time (relative to the working directory) when that lands
 * inside the folder, or the file of the same name in the folder. Anything else (an absolute path elsewhere,
 * `../..`, a symlink out) is refused, and the user is told to pass the file explicitly; a path the user gives is
 * used as given.
 *
 * @module
 */
import { basename, dirname, isAbsolute, relative, resolve } from "node:path";
import { Tokenizer } from "./tokenizer/tokenizer.ts";

/** Tokenizer files above this size are refused rather than parsed (the 200k-token tiktoken vocabs are ~4 MB). */
const MAX_TOKENIZER_BYTES = 256 << 20;
/** Largest token id a tokenizer file may use (ids index an array, so a huge id would allocate a huge one). */
const MAX_TOKEN_ID = (1 << 24) - 1;

/**
 * Checks that `path` exists and is a regular file, throwing one line that names `what` and the path otherwise
 * (`fix` is appended, e.g. "pass --checkpoint <path>").
 *
 * @example
 * ```ts
 * import { checkInputFile } from "./cli_paths.ts";
 * try {
 *   await checkInputFile("/no/such/file.txt", "input");
 * } catch (e) {
 *   console.assert((e as Error).message === "input /no/such/file.txt does not exist");
 * }
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

function inside(folder: string, path: string): boolean {
  const r = relative(folder, path);
  return r !== "" && r !== ".." && !r.startsWith("../") && !isAbsolute(r);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/**
 * Resolves a path recorded in a checkpoint's metadata (see the module doc) to an existing file inside the
 * checkpoint's folder, or throws one line telling the user to pass `--<flag>`. `what` names the file ("tokenizer").
 *
 * @example
 * ```ts
 * import { resolveRecordedPath } from "./cli_paths.ts";
 * try {
 *   await resolveRecordedPath("../../../../etc/passwd", "runs/x/checkpoint.safetensors", "tokenizer");
 * } catch (e) {
 *   console.assert((e as Error).message.includes("pass --tokenizer"));
 * }
 * ```
 */
export async function resolveRecordedPath(
  recorded: string,
  checkpointPath: string,
  what: string,
  flag: string = what,
): Promise<string> {
  const folder = resolve(dirname(checkpointPath));
  const shown = JSON.stringify(recorded.length > 200 ? `${recorded.slice(0, 200)}…` : recorded);
  const where = `the ${what} path ${shown} recorded in checkpoint ${checkpointPath}`;
  const candidates = [resolve(folder, recorded), resolve(recorded), resolve(folder, basename(recorded))]
    .filter((p, i, all) => inside(folder, p) && all.indexOf(p) === i);
  if (!candidates.some((p) => p === resolve(folder, recorded) || p === resolve(recorded))) {
    throw new Error(`${where} leads outside the checkpoint's folder, so it is not followed; pass --${flag} <path>`);
  }
  for (const candidate of candidates) {
    if (!(await isFile(candidate))) continue;
    // A symlink inside the folder may point anywhere: the real file must be inside the real folder too.
    if (!inside(await Deno.realPath(folder), await Deno.realPath(candidate))) {
      throw new Error(
        `${where} is a link out of the checkpoint's folder, so it is not followed; pass --${flag} <path>`,
      );
    }
    return relative(Deno.cwd(), candidate) || candidate;
  }
  throw new Error(`${where} was not found in ${relative(Deno.cwd(), folder) || "."}; pass --${flag} <path>`);
}

function invalid(path: string, problem: string): Error {
  return new Error(`tokenizer ${path} ${problem}; it must be a nanolm tokenizer file (Tokenizer.save)`);
}

const isId = (x: unknown) => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= MAX_TOKEN_ID;

/** The structure Tokenizer.load reads, checked so that a malformed file is a message, not a TypeError. */
function checkTokenizerJson(path: string, file: unknown): void {
  const f = file as Record<string, unknown>;
  if (f === null || typeof f !== "object" || Array.isArray(f)) throw invalid(path, "does not hold a JSON object");
  if (f.format !== "nanolm-bpe" || f.version !== 1) throw invalid(path, 'has no "format": "nanolm-bpe", version 1');
  if (f.mode !== "merges" && f.mode !== "ranks") throw invalid(path, 'has a "mode" other than "merges" or "ranks"');
  if (!Array.isArray(f.vocab)) throw invalid(path, 'has no "vocab" list');
  f.vocab.forEach((entry, i) => {
    if (!Array.isArray(entry) || entry.length !== 2 || !isId(entry[0]) || typeof entry[1] !== "string") {
      throw invalid(path, `has vocab entry ${i} that is not [id < 2^24, base64 bytes]`);
    }
  });
  if (!Array.isArray(f.merges)) throw invalid(path, 'has no "merges" list');
  f.merges.forEach((merge, i) => {
    if (!Array.isArray(merge) || merge.length !== 2 || !merge.every(isId)) {
      throw invalid(path, `has merge ${i} that is not a pair of token ids`);
    }
  });
  const specials = f.specialTokens;
  if (specials === null || typeof specials !== "object" || Array.isArray(specials)) {
    throw invalid(path, 'has no "specialTokens" object');
  }
  if (!Object.values(specials).every(isId)) throw invalid(path, "has a special token whose id is not an id < 2^24");
}

/**
 * Loads a nanolm tokenizer file, validating it first: a missing file, a directory, a file that is not JSON or
 * not a tokenizer, or a malformed one is an error naming the path (never quoting its contents; `fix` is
 * appended).
 *
 * @example
 * ```ts
 * import { loadTokenizerFile } from "./cli_paths.ts";
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await Deno.writeTextFile(path, "password=hunter2");
 * try {
 *   await loadTokenizerFile(path);
 * } catch (e) {
 *   console.assert(!(e as Error).message.includes("hunter2"));
 * }
 * await Deno.remove(path);
 * ```
 */
export async function loadTokenizerFile(path: string, fix?: string): Promise<Tokenizer> {
  await checkInputFile(path, "tokenizer", fix);
  const tail = fix ? `; ${fix}` : "";
  if ((await Deno.stat(path)).size > MAX_TOKENIZER_BYTES) {
    throw new Error(`tokenizer ${path} is larger than ${MAX_TOKENIZER_BYTES >> 20} MB, too large to be one${tail}`);
  }
  let file: unknown;
  try {
    file = JSON.parse(await Deno.readTextFile(path));
  } catch {
    throw new Error(`tokenizer ${path} is not JSON; it must be a nanolm tokenizer file (Tokenizer.save)${tail}`);
  }
  try {
    checkTokenizerJson(path, file);
  } catch (e) {
    throw new Error(`${(e as Error).message}${tail}`);
  }
  try {
    return Tokenizer.load(path);
  } catch (e) {
    // Tokenizer.load's own messages may quote token text: keep the problem, not the quotes.
    const problem = (e as Error).message.replace(`${path}: `, "").replace(/"(?:[^"\\]|\\.)*"/g, '"…"');
    throw new Error(`tokenizer ${path} is not a valid nanolm tokenizer file (${problem})${tail}`);
  }
}

/**
 * Tokenizer files: nanolm's single-file JSON, GPT-2 / Hugging Face `vocab.json` + `merges.txt`, and tiktoken rank
 * files, read as strict UTF-8 and written atomically (a temporary file renamed over the target, so a reader never
 * sees a torn file). Errors name the file and what is wrong, never its contents.
 *
 * @module
 */
import { writeFileAtomicSync } from "../io/atomic_write.ts";
import { type TiktokenOptions, Tokenizer, type TokenizerOptions } from "../tokenizer/tokenizer.ts";

const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** Reads a text file; a missing, unreadable or non-UTF-8 file is one line naming it. */
function readText(path: string | URL): string {
  const name = String(path);
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Deno.errors.NotFound(`${name} does not exist`);
    if (e instanceof Deno.errors.IsADirectory) throw new Error(`${name} is a directory, not a tokenizer file`);
    throw new Error(`${name} cannot be read: ${(e as Error).message}`, { cause: e });
  }
  try {
    return utf8Strict.decode(bytes);
  } catch {
    throw new SyntaxError(`${name} is not UTF-8 text`);
  }
}

/**
 * Loads a tokenizer saved by {@linkcode saveTokenizer} (nanolm's single-file JSON).
 *
 * @example
 * ```ts
 * import { loadTokenizer, saveTokenizer, Tokenizer } from "@nanolm/nanolm";
 * const tok = new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), [], ["<|eot|>"]);
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * saveTokenizer(tok, path);
 * if (loadTokenizer(path).specialTokens.get("<|eot|>") !== 256) throw new Error("special token lost");
 * ```
 */
export function loadTokenizer(path: string | URL): Tokenizer {
  return Tokenizer.fromFileText(readText(path), String(path));
}

/**
 * Writes a tokenizer in nanolm's single-file JSON format, atomically.
 *
 * @example
 * ```ts
 * import { saveTokenizer, Tokenizer } from "@nanolm/nanolm";
 * const tok = new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), []);
 * saveTokenizer(tok, await Deno.makeTempFile({ suffix: ".json" }));
 * ```
 */
export function saveTokenizer(tokenizer: Tokenizer, path: string | URL): void {
  writeFileAtomicSync(path, tokenizer.toFileText());
}

/**
 * Loads a GPT-2 / Hugging Face tokenizer from `vocab.json` and `merges.txt`.
 *
 * @example
 * ```ts ignore
 * import { loadGpt2Tokenizer } from "@nanolm/nanolm";
 * const gpt2 = loadGpt2Tokenizer("gpt2_vocab.json", "gpt2_merges.txt", ["<|endoftext|>"]);
 * console.log(gpt2.encode("Hello world")); // [15496, 995]
 * ```
 */
export function loadGpt2Tokenizer(
  vocabPath: string | URL,
  mergesPath: string | URL,
  specialTokens?: readonly string[] | TokenizerOptions,
): Tokenizer {
  return Tokenizer.fromGpt2Text(readText(vocabPath), readText(mergesPath), specialTokens, {
    vocab: String(vocabPath),
    merges: String(mergesPath),
  });
}

/**
 * Writes `vocab.json` and `merges.txt` in GPT-2 / Hugging Face format, each atomically.
 *
 * @example
 * ```ts
 * import { loadGpt2Tokenizer, saveGpt2Tokenizer, Tokenizer } from "@nanolm/nanolm";
 * const tok = new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), []);
 * const dir = await Deno.makeTempDir();
 * saveGpt2Tokenizer(tok, `${dir}/vocab.json`, `${dir}/merges.txt`);
 * if (loadGpt2Tokenizer(`${dir}/vocab.json`, `${dir}/merges.txt`).vocabSize !== 256) throw new Error("lost ids");
 * ```
 */
export function saveGpt2Tokenizer(tokenizer: Tokenizer, vocabPath: string | URL, mergesPath: string | URL): void {
  const { vocab, merges } = tokenizer.gpt2Texts();
  writeFileAtomicSync(vocabPath, vocab);
  writeFileAtomicSync(mergesPath, merges);
}

/**
 * Loads a tiktoken rank file (`.tiktoken`: one `base64-token rank` per line); the ranks are the ids.
 *
 * @example
 * ```ts ignore
 * import { loadTiktoken } from "@nanolm/nanolm";
 * const tok = loadTiktoken("r50k_base.tiktoken", { specialTokens: { "<|endoftext|>": 50256 } });
 * ```
 */
export function loadTiktoken(path: string | URL, options: TiktokenOptions = {}): Tokenizer {
  return Tokenizer.fromTiktokenText(readText(path), { ...options, fileName: String(path) });
}

/**
 * Writes a tiktoken rank file, atomically.
 *
 * @example
 * ```ts
 * import { loadTiktoken, saveTiktoken, Tokenizer } from "@nanolm/nanolm";
 * const tok = new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), []);
 * const path = await Deno.makeTempFile({ suffix: ".tiktoken" });
 * saveTiktoken(tok, path);
 * if (loadTiktoken(path).vocabSize !== 256) throw new Error("lost ranks");
 * ```
 */
export function saveTiktoken(tokenizer: Tokenizer, path: string | URL): void {
  writeFileAtomicSync(path, tokenizer.tiktokenText());
}

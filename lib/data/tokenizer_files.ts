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
 * const dir = await Deno.makeTempDir();
 * saveTokenizer(tok, `${dir}/tokenizer.json`);
 * if (loadTokenizer(`${dir}/tokenizer.json`).specialTokens.get("<|eot|>") !== 256) throw new Error("special token lost");
 * await Deno.remove(dir, { recursive: true });
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
 * const dir = await Deno.makeTempDir();
 * saveTokenizer(tok, `${dir}/tokenizer.json`);
 * if (Tokenizer.fromFileText(await Deno.readTextFile(`${dir}/tokenizer.json`)).vocabSize !== 256) throw new Error("lost");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function saveTokenizer(tokenizer: Tokenizer, path: string | URL): void {
  writeFileAtomicSync(path, tokenizer.toFileText());
}

/**
 * Loads a GPT-2 / Hugging Face tokenizer from `vocab.json` and `merges.txt`.
 *
 * @example
 * ```ts
 * import { Tokenizer } from "@nanolm/nanolm";
 * import { loadGpt2Tokenizer } from "@nanolm/nanolm/data";
 * // Files in GPT-2's format: bytes as printable characters (a space is "Ġ"), merges one pair a line.
 * const vocab = new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])]));
 * vocab.set(256, new TextEncoder().encode(" t"));
 * const texts = new Tokenizer(vocab, [[new Uint8Array([32]), new Uint8Array([116])]]).gpt2Texts();
 * if (!texts.merges.includes("Ġ t")) throw new Error("not GPT-2's merges format");
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vocab.json`, texts.vocab);
 * await Deno.writeTextFile(`${dir}/merges.txt`, texts.merges);
 *
 * const tok = loadGpt2Tokenizer(`${dir}/vocab.json`, `${dir}/merges.txt`, ["<|endoftext|>"]);
 * if (tok.encode(" to<|endoftext|>").join() !== "256,111,257") throw new Error(`${tok.encode(" to<|endoftext|>")}`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * GPT-2's own files (from Hugging Face):
 *
 * ```ts ignore
 * import { loadGpt2Tokenizer } from "@nanolm/nanolm/data";
 * const gpt2 = loadGpt2Tokenizer("gpt2_vocab.json", "gpt2_merges.txt", ["<|endoftext|>"]);
 * if (gpt2.encode("Hello world").join() !== "15496,995") throw new Error("not GPT-2's ids");
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
 * import { Tokenizer } from "@nanolm/nanolm";
 * import { loadGpt2Tokenizer, saveGpt2Tokenizer } from "@nanolm/nanolm/data";
 * const tok = new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), []);
 * const dir = await Deno.makeTempDir();
 * saveGpt2Tokenizer(tok, `${dir}/vocab.json`, `${dir}/merges.txt`);
 * if (loadGpt2Tokenizer(`${dir}/vocab.json`, `${dir}/merges.txt`).vocabSize !== 256) throw new Error("lost ids");
 * await Deno.remove(dir, { recursive: true });
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
 * ```ts
 * import { loadTiktoken } from "@nanolm/nanolm/data";
 * const lines = Array.from({ length: 256 }, (_, b) => `${btoa(String.fromCharCode(b))} ${b}`);
 * lines.push(`${btoa("hi")} 256`); // a rank file lists bytes by rank; merges follow from the ranks
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/tiny.tiktoken`, lines.join("\n"));
 * const tok = loadTiktoken(`${dir}/tiny.tiktoken`, { specialTokens: { "<|endoftext|>": 257 } });
 * if (tok.encode("hi<|endoftext|>").join() !== "256,257") throw new Error(`${tok.encode("hi<|endoftext|>")}`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * OpenAI's GPT-2 ranks:
 *
 * ```ts ignore
 * import { loadTiktoken } from "@nanolm/nanolm/data";
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
 * import { Tokenizer } from "@nanolm/nanolm";
 * import { loadTiktoken, saveTiktoken } from "@nanolm/nanolm/data";
 * const tok = new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), []);
 * const dir = await Deno.makeTempDir();
 * saveTiktoken(tok, `${dir}/bytes.tiktoken`);
 * if (loadTiktoken(`${dir}/bytes.tiktoken`).vocabSize !== 256) throw new Error("lost ranks");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function saveTiktoken(tokenizer: Tokenizer, path: string | URL): void {
  writeFileAtomicSync(path, tokenizer.tiktokenText());
}

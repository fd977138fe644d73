/**
 * The byte-level BPE {@linkcode Tokenizer}: encode text to token ids and back, stream-encode, and load or save
 * GPT-2 / Hugging Face (`vocab.json` + `merges.txt`), tiktoken (`.tiktoken`) and nanolm's own JSON format.
 *
 * @module
 */

import { bytesToPrintable, printableToBytes } from "./bytes_unicode.ts";
import { mergePiece, PairTable, type PairTableData } from "./bpe_merge.ts";
import { detachedSlice, pretokenEnds } from "./pretokenize.ts";
import { JUPYTER_DISPLAY, type MimeBundle } from "../notebook/display.ts";
import { kindOf, lineAndColumn, parseJson } from "../util/json.ts";
import { cellResult } from "../notebook/display.ts";
import { tokenizerBundle } from "./view.ts";

/** A merge: the two byte strings that are joined, in order. */
export type Merge = [Uint8Array, Uint8Array];

/** Options of the {@linkcode Tokenizer} constructor. */
export interface TokenizerOptions {
  /** Special tokens: split out of text before pre-tokenization (longest match wins) and never merged. */
  specialTokens?: readonly string[];
}

/** Options of {@linkcode Tokenizer.fromTiktoken}. */
export interface TiktokenOptions {
  /**
   * Special tokens and their ids (tiktoken files hold none): an array appends them after the ranks in order;
   * an object gives each its id, e.g. `{ "<|endoftext|>": 50256 }`.
   */
  specialTokens?: readonly string[] | Readonly<Record<string, number>>;
}

/** Pieces longer than this many UTF-16 units are not cached: they are rare and would crowd the cache. */
const MAX_CACHED_PIECE = 64;
/** Entries of the pre-token cache before it is cleared (bounds memory while streaming). */
const CACHE_CAPACITY = 1 << 17;
const CACHE_MASK = 2 * CACHE_CAPACITY - 1;

/** Open-addressing cache from piece text to its ids, probed by the piece's characters in place. */
class PieceCache {
  keys: (string | undefined)[] = new Array(2 * CACHE_CAPACITY);
  hashes: Int32Array = new Int32Array(2 * CACHE_CAPACITY);
  values: (number | number[])[] = new Array(2 * CACHE_CAPACITY).fill(0);
  size = 0;

  clear(): void {
    this.keys.fill(undefined);
    this.size = 0;
  }
}

function sameChars(key: string, text: string, start: number): boolean {
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) !== text.charCodeAt(start + i)) return false;
  return true;
}

const utf8Decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/**
 * The largest token id. The biggest public vocabularies have about 2^18 ids; ids index a table here and the
 * model's embedding rows, so a stray id of 2^31 in a file would otherwise make a vocabulary of two billion.
 */
const MAX_TOKEN_ID = 2 ** 24 - 1;

/** The on-disk shape of nanolm's single-file tokenizer format. */
interface NanolmTokenizerFile {
  format: "nanolm-bpe";
  version: 1;
  /** "merges": BPE with an ordered merge list; "ranks": tiktoken-style, any pair whose join is a token merges. */
  mode: "merges" | "ranks";
  /** [id, base64 bytes] for every ordinary token. */
  vocab: Array<[number, string]>;
  /** [first id, second id] per merge, in order (mode "merges" only). */
  merges: Array<[number, number]>;
  /** Special token text -> id. */
  specialTokens: Record<string, number>;
}

/**
 * A byte-level BPE tokenizer with GPT-2 pre-tokenization.
 *
 * Two merge rules are supported, both with GPT-2's pre-tokenizer: "merges" (CS336 / Hugging Face: only the listed
 * merges apply, lowest index first) and "ranks" (tiktoken: any two adjacent tokens whose joined bytes are a token
 * merge, lowest rank first, and a piece that is itself a token is emitted directly).
 *
 * @example
 * ```ts
 * import { Tokenizer } from "@nanolm/nanolm";
 * const bytes = (s: string) => new TextEncoder().encode(s);
 * const vocab = new Map<number, Uint8Array>();
 * for (let b = 0; b < 256; b++) vocab.set(b, new Uint8Array([b]));
 * vocab.set(256, bytes("th"));
 * vocab.set(257, bytes("the"));
 * const tok = new Tokenizer(vocab, [[bytes("t"), bytes("h")], [bytes("th"), bytes("e")]], ["<|endoftext|>"]);
 * const ids = tok.encode("the<|endoftext|>");
 * if (ids.join(",") !== "257,258") throw new Error(`${ids}`); // "the", then the special token
 * if (tok.decode(ids) !== "the<|endoftext|>") throw new Error("did not round-trip");
 * ```
 */
export class Tokenizer {
  /** Token id -> bytes (specials included). */
  readonly #tokens: (Uint8Array | undefined)[];
  /** Byte value -> id of its single-byte token. */
  readonly #byteIds: Int32Array;
  readonly #pairs: PairTable;
  readonly #mode: "merges" | "ranks";
  /** Ranks mode: a piece whose bytes are a token maps straight to it (binary string of the bytes -> id). */
  readonly #wholeTokens: Map<string, number> | null;
  readonly #mergeList: Array<[number, number]>;
  readonly #specialIds: Map<string, number>;
  readonly #specialNames: Map<number, string>;
  readonly #specialPattern: RegExp | null;
  readonly #maxSpecialLength: number;
  #cache: PieceCache = new PieceCache();
  #ends: number[] = [];
  #bytes: Uint8Array = new Uint8Array(256);
  #ids: Int32Array = new Int32Array(256);
  #scratch: Int32Array = new Int32Array(256);

  /**
   * Builds a tokenizer from a vocabulary (id -> bytes, all 256 single bytes included) and an ordered merge list
   * (each merge's joined bytes must be in the vocabulary). Special tokens that are not in the vocabulary get new
   * ids after the largest one.
   */
  constructor(
    vocab: ReadonlyMap<number, Uint8Array> | Readonly<Record<number, Uint8Array>>,
    merges: ReadonlyArray<readonly [Uint8Array, Uint8Array]>,
    specialTokens?: readonly string[] | TokenizerOptions,
  ) {
    // The static readers build the core themselves and hand it over here (see `fromCore`).
    const core = pendingCore ?? buildMergesCore(vocab, merges, normalizeSpecials(specialTokens));
    pendingCore = undefined;
    this.#tokens = core.tokens;
    this.#byteIds = core.byteIds;
    this.#pairs = core.pairs;
    this.#mode = core.mode;
    this.#wholeTokens = core.wholeTokens;
    this.#mergeList = core.mergeList;
    this.#specialIds = core.specialIds;
    this.#specialNames = new Map([...core.specialIds].map(([text, id]) => [id, text]));
    const specials = [...core.specialIds.keys()].sort((a, b) => b.length - a.length);
    this.#specialPattern = specials.length
      ? new RegExp(specials.map((s) => s.replace(/[.*+?^${}()|[\]\\\/-]/g, "\\$&")).join("|"), "g")
      : null;
    this.#maxSpecialLength = specials.length ? specials[0].length : 0;
  }

  /**
   * Builds a GPT-2 / Hugging Face tokenizer from the text of its `vocab.json` (printable token -> id) and
   * `merges.txt` (one merge per line, an optional `#version` line first); `names` label errors, which name the file
   * and line of a malformed entry (loading the files: `loadGpt2Tokenizer`).
   *
   * @example
   * ```ts
   * import { Tokenizer } from "@nanolm/nanolm";
   * const vocab = new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])]));
   * vocab.set(256, new Uint8Array([104, 105]));
   * const tok = new Tokenizer(vocab, [[new Uint8Array([104]), new Uint8Array([105])]]);
   * const { vocab: vocabJson, merges } = tok.gpt2Texts();
   * const back = Tokenizer.fromGpt2Text(vocabJson, merges);
   * if (back.encode("hi").join() !== "256") throw new Error("the merge was lost");
   * ```
   */
  static fromGpt2Text(
    vocabJson: string,
    mergesTxt: string,
    specialTokens?: readonly string[] | TokenizerOptions,
    names: { vocab: string; merges: string } = { vocab: "vocab.json", merges: "merges.txt" },
  ): Tokenizer {
    const vocab = parseGpt2Vocab(vocabJson, names.vocab);
    const merges = parseGpt2Merges(mergesTxt, names.merges);
    const specials = normalizeSpecials(specialTokens);
    return fromCore(buildMergesCore(new Map(vocab), merges.pairs, specials, merges.where, names.vocab));
  }

  /**
   * Builds a tokenizer from the text of a tiktoken rank file (`base64-token rank` per line).
   *
   * @example
   * ```ts
   * import { Tokenizer } from "@nanolm/nanolm";
   * const lines = [];
   * for (let b = 0; b < 256; b++) lines.push(`${btoa(String.fromCharCode(b))} ${b}`);
   * lines.push(`${btoa("hi")} 256`);
   * const tok = Tokenizer.fromTiktokenText(lines.join("\n"));
   * if (tok.encode("hi!").join(",") !== "256,33") throw new Error(`${tok.encode("hi!")}`);
   * ```
   */
  static fromTiktokenText(text: string, options: TiktokenOptions & { fileName?: string } = {}): Tokenizer {
    const name = options.fileName ?? "tiktoken text";
    const entries: Array<[number, Uint8Array]> = [];
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (line === "") continue;
      const parts = line.split(" ");
      const rank = Number(parts[1]);
      const bytes = parts.length === 2 ? fromBase64(parts[0]) : undefined;
      if (!bytes || !/^[0-9]+$/.test(parts[1])) {
        throw new SyntaxError(`${name}:${i + 1}: expected "<base64 token> <rank>"`);
      }
      entries.push([rank, bytes]);
    }
    return fromCore(buildRanksCore(entries, options.specialTokens ?? [], name));
  }

  /**
   * Reads nanolm's single-file JSON format (the text {@linkcode Tokenizer.toFileText} writes; `loadTokenizer` reads
   * a file). A malformed text gives one line naming `name` and what is wrong (never the contents).
   *
   * @example
   * ```ts
   * import { Tokenizer } from "@nanolm/nanolm";
   * const vocab = new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])]));
   * vocab.set(256, new Uint8Array([104, 105])); // "hi"
   * const tok = new Tokenizer(vocab, [[new Uint8Array([104]), new Uint8Array([105])]]);
   * const back = Tokenizer.fromFileText(tok.toFileText());
   * if (back.encode("hi").join() !== "256") throw new Error("round trip lost the merge");
   * ```
   */
  static fromFileText(text: string, name = "tokenizer file"): Tokenizer {
    const file = checkNanolmFile(parseJson(text, name), name);
    const entries: Array<[number, Uint8Array]> = file.vocab.map(([id, b64], index) => {
      const bytes = fromBase64(b64);
      if (!bytes) throw new SyntaxError(`${name}: vocab entry ${index} (id ${id}) is not base64`);
      return [id, bytes];
    });
    if (file.mode === "ranks") return fromCore(buildRanksCore(entries, file.specialTokens, name));
    const byId = new Map(entries);
    const merges = file.merges.map(([a, b], i): Merge => {
      const x = byId.get(a), y = byId.get(b);
      if (!x || !y) throw new SyntaxError(`${name}: merge ${i} names unknown token id ${x ? b : a}`);
      return [x, y];
    });
    return fromCore(buildMergesCore(byId, merges, file.specialTokens, () => name, name));
  }

  /** Number of ids (one more than the largest id). */
  get vocabSize(): number {
    return this.#tokens.length;
  }

  /** The special tokens and their ids. */
  get specialTokens(): ReadonlyMap<string, number> {
    return this.#specialIds;
  }

  /** Bytes of token `id` (throws for an unknown id). */
  tokenBytes(id: number): Uint8Array {
    const bytes = this.#tokens[id];
    if (bytes === undefined) throw new RangeError(`Unknown token id ${id}`);
    return bytes;
  }

  /** The vocabulary as CS336 returns it: id -> bytes, specials included. */
  vocab(): Map<number, Uint8Array> {
    const out = new Map<number, Uint8Array>();
    this.#tokens.forEach((bytes, id) => bytes && out.set(id, bytes));
    return out;
  }

  /** The merges as byte-string pairs in order (in ranks mode, recovered from the ranks). */
  merges(): Merge[] {
    return this.#mergeList.map(([a, b]) => [this.#tokens[a]!, this.#tokens[b]!]);
  }

  /** Rich display in Jupyter: vocabulary size, specials, sample merges and a coloured split of a sample sentence. */
  [JUPYTER_DISPLAY](): Promise<MimeBundle> {
    return cellResult(tokenizerBundle(this));
  }

  /**
   * Encodes text to token ids.
   *
   * @example
   * ```ts
   * import { Tokenizer } from "@nanolm/nanolm";
   * const bytes = (s: string) => new TextEncoder().encode(s);
   * const vocab = new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])]));
   * vocab.set(256, bytes("th")).set(257, bytes("the"));
   * const tokenizer = new Tokenizer(vocab, [[bytes("t"), bytes("h")], [bytes("th"), bytes("e")]], ["<|endoftext|>"]);
   * const ids = tokenizer.encode("the cat<|endoftext|>");
   * if (ids.join() !== "257,32,99,97,116,258") throw new Error(`${ids}`); // "the" " " "c" "a" "t" <|endoftext|>
   * ```
   */
  encode(text: string): number[] {
    const out: number[] = [];
    this.#encodeSegments(text, 0, text.length, out);
    return out;
  }

  /**
   * Encodes the longest prefix of `text` whose tokens cannot change when more text is appended, pushing the ids
   * onto `out`; returns the number of UTF-16 units consumed. With `final`, encodes everything. This is the
   * building block of streaming: keep `text.slice(consumed)` and prepend it to the next chunk.
   *
   * @example
   * ```ts
   * import { Tokenizer } from "@nanolm/nanolm";
   * const bytes = (s: string) => new TextEncoder().encode(s);
   * const vocab = new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])]));
   * vocab.set(256, bytes("th")).set(257, bytes("the"));
   * const tokenizer = new Tokenizer(vocab, [[bytes("t"), bytes("h")], [bytes("th"), bytes("e")]]); // no special tokens
   * const out: number[] = [];
   * const used = tokenizer.encodePrefix("the ca", out); // "the" is final, " ca" may grow into " cat"
   * if (used !== 3 || out.join() !== "257") throw new Error(`consumed ${used}: ${out}`);
   * tokenizer.encodePrefix("the ca".slice(used) + "t", out, { final: true });
   * if (out.join() !== tokenizer.encode("the cat").join()) throw new Error("streamed ids differ");
   * ```
   */
  encodePrefix(text: string, out: number[], options: { final?: boolean } = {}): number {
    if (options.final) {
      this.#encodeSegments(text, 0, text.length, out);
      return text.length;
    }
    const len = text.length;
    let pos = 0;
    let plainEnd = len;
    const pattern = this.#specialPattern;
    if (pattern) {
      const maxLen = this.#maxSpecialLength;
      pattern.lastIndex = 0;
      let m: RegExpExecArray | null;
      while ((m = pattern.exec(text)) !== null) {
        // A special that starts here might still grow into a longer one: wait for more text.
        if (m.index + maxLen > len) break;
        this.#encodeOrdinary(text, pos, m.index, out);
        out.push(this.#specialIds.get(m[0])!);
        pos = pattern.lastIndex;
      }
      plainEnd = Math.max(pos, len - maxLen + 1);
    }
    // A piece is final once the scanner's look-ahead (at most one unit past its end, two for a surrogate pair)
    // stays inside the text known to be plain.
    const ends = this.#ends;
    ends.length = 0;
    pretokenEnds(text, pos, plainEnd, ends);
    let count = ends.length;
    while (count > 0 && ends[count - 1] + 3 > plainEnd) count--;
    if (count === 0) return pos;
    // Encode these pieces as cut here: re-scanning just [pos, last) could cut its tail differently.
    this.#encodePieces(text, pos, count, out);
    return ends[count - 1];
  }

  /**
   * Encodes a stream of text lazily: an iterable of strings (or UTF-8 byte chunks) gives a generator of ids; an
   * async iterable, a `ReadableStream` or a `Deno.FsFile` gives an async generator. Memory stays bounded by the chunk size
   * and the longest pre-token, and the ids equal `encode` of the whole text.
   *
   * @example
   * ```ts
   * import { Tokenizer } from "@nanolm/nanolm";
   * const bytes = (s: string) => new TextEncoder().encode(s);
   * const vocab = new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])]));
   * vocab.set(256, bytes("th")).set(257, bytes("the"));
   * const tokenizer = new Tokenizer(vocab, [[bytes("t"), bytes("h")], [bytes("th"), bytes("e")]], ["<|endoftext|>"]);
   * // Chunks cut anywhere, even inside a token, give the ids of the whole text.
   * const ids = [...tokenizer.encodeIterable(["th", "e c", "at"])];
   * if (ids.join() !== tokenizer.encode("the cat").join()) throw new Error(`${ids}`);
   *
   * const dir = await Deno.makeTempDir();
   * await Deno.writeTextFile(`${dir}/big.txt`, "the cat ".repeat(1000));
   * using file = await Deno.open(`${dir}/big.txt`);
   * let total = 0;
   * for await (const _ of tokenizer.encodeIterable(file.readable)) total++;
   * if (total !== 6000) throw new Error(`${total} tokens`); // " " "the" " " "c" "a" "t" each time
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  encodeIterable(chunks: string | Iterable<string | Uint8Array>): Generator<number, void, undefined>;
  /** Async form: chunks from an async iterable, a stream or a file; yields ids lazily. */
  encodeIterable(
    chunks:
      | AsyncIterable<string | Uint8Array>
      | ReadableStream<string | Uint8Array>
      | { readonly readable: ReadableStream<Uint8Array> },
  ): AsyncGenerator<number, void, undefined>;
  encodeIterable(
    chunks:
      | string
      | Iterable<string | Uint8Array>
      | AsyncIterable<string | Uint8Array>
      | ReadableStream<string | Uint8Array>
      | { readonly readable: ReadableStream<Uint8Array> },
  ): Generator<number, void, undefined> | AsyncGenerator<number, void, undefined> {
    if (typeof chunks === "string") return this.#encodeSyncChunks([chunks]);
    if (chunks !== null && typeof chunks === "object") {
      if (typeof (chunks as Iterable<string>)[Symbol.iterator] === "function") {
        return this.#encodeSyncChunks(chunks as Iterable<string | Uint8Array>);
      }
      if (typeof (chunks as AsyncIterable<string>)[Symbol.asyncIterator] === "function") {
        return this.#encodeAsyncChunks(chunks as AsyncIterable<string | Uint8Array>);
      }
      const readable = (chunks as { readable?: unknown }).readable;
      if (readable instanceof ReadableStream) return this.#encodeAsyncChunks(readable); // e.g. a Deno.FsFile
    }
    throw new TypeError(
      `encodeIterable needs an iterable, async iterable or stream of strings or bytes, got ${describe(chunks)}`,
    );
  }

  *#encodeSyncChunks(chunks: Iterable<string | Uint8Array>): Generator<number, void, undefined> {
    const stream = new StreamingEncoder(this);
    const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
    for (const chunk of chunks) yield* stream.push(chunkText(chunk, decoder));
    yield* stream.push(decoder.decode());
    yield* stream.finish();
  }

  async *#encodeAsyncChunks(
    chunks: AsyncIterable<string | Uint8Array> | ReadableStream<string | Uint8Array>,
  ): AsyncGenerator<number, void, undefined> {
    const stream = new StreamingEncoder(this);
    const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
    for await (const chunk of chunks as AsyncIterable<string | Uint8Array>) {
      yield* stream.push(chunkText(chunk, decoder));
    }
    yield* stream.push(decoder.decode());
    yield* stream.finish();
  }

  /**
   * Decodes ids to text; byte sequences that are not valid UTF-8 become U+FFFD.
   *
   * @example
   * ```ts
   * import { Tokenizer } from "@nanolm/nanolm";
   * const tokenizer = new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), []);
   * if (tokenizer.decode(tokenizer.encode("héllo")) !== "héllo") throw new Error("did not round-trip");
   * if (tokenizer.decode([0xc3]) !== "\ufffd") throw new Error("half a character is not U+FFFD");
   * ```
   */
  decode(ids: Iterable<number>): string {
    return utf8Decoder.decode(this.decodeBytes(ids));
  }

  /** Concatenated bytes of the tokens `ids`. */
  decodeBytes(ids: Iterable<number>): Uint8Array {
    const list = Array.isArray(ids) ? ids as number[] : [...ids];
    let total = 0;
    for (const id of list) {
      const bytes = this.#tokens[id];
      if (bytes === undefined) throw new RangeError(`Unknown token id ${id}`);
      total += bytes.length;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const id of list) {
      const bytes = this.#tokens[id]!;
      out.set(bytes, at);
      at += bytes.length;
    }
    return out;
  }

  /**
   * The texts of `vocab.json` and `merges.txt` in GPT-2 / Hugging Face format (specials go into the vocab); see
   * `saveGpt2Tokenizer` for the files.
   *
   * @example
   * ```ts
   * import { Tokenizer } from "@nanolm/nanolm";
   * const tok = new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), []);
   * const { vocab, merges } = tok.gpt2Texts();
   * const back = Tokenizer.fromGpt2Text(vocab, merges);
   * if (back.vocabSize !== 256) throw new Error("vocabulary lost");
   * ```
   */
  gpt2Texts(): { vocab: string; merges: string } {
    const vocab: Record<string, number> = {};
    this.#tokens.forEach((bytes, id) => {
      if (!bytes) return;
      const special = this.#specialName(id);
      vocab[special ?? bytesToPrintable(bytes)] = id;
    });
    const lines = ["#version: 0.2"];
    for (const [a, b] of this.#mergeList) {
      lines.push(`${bytesToPrintable(this.#tokens[a]!)} ${bytesToPrintable(this.#tokens[b]!)}`);
    }
    return { vocab: JSON.stringify(vocab, null, 2) + "\n", merges: lines.join("\n") + "\n" };
  }

  /**
   * The text of a tiktoken rank file (ordinary tokens only; ids are the ranks). Only meaningful for vocabularies
   * whose ids follow merge order, as ours and tiktoken's do.
   *
   * @example
   * ```ts
   * import { Tokenizer } from "@nanolm/nanolm";
   * const tok = new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), []);
   * if (Tokenizer.fromTiktokenText(tok.tiktokenText()).vocabSize !== 256) throw new Error("ranks lost");
   * ```
   */
  tiktokenText(): string {
    const lines: string[] = [];
    this.#tokens.forEach((bytes, id) => {
      if (bytes && this.#specialName(id) === undefined) lines.push(`${toBase64(bytes)} ${id}`);
    });
    return lines.join("\n") + "\n";
  }

  /**
   * nanolm's single-file JSON format (read back by {@linkcode Tokenizer.fromFileText}; `saveTokenizer` writes it
   * to a file atomically).
   *
   * @example
   * ```ts
   * import { Tokenizer } from "@nanolm/nanolm";
   * const tok = new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), []);
   * if (!tok.toFileText().includes('"format":"nanolm-bpe"')) throw new Error("not the nanolm format");
   * ```
   */
  toFileText(): string {
    const file: NanolmTokenizerFile = {
      format: "nanolm-bpe",
      version: 1,
      mode: this.#mode,
      vocab: [],
      merges: this.#mode === "merges" ? this.#mergeList : [],
      specialTokens: Object.fromEntries(this.#specialIds),
    };
    this.#tokens.forEach((bytes, id) => {
      if (bytes && this.#specialName(id) === undefined) file.vocab.push([id, toBase64(bytes)]);
    });
    return JSON.stringify(file) + "\n";
  }

  #encodeSegments(text: string, start: number, end: number, out: number[]): void {
    const pattern = this.#specialPattern;
    if (pattern === null) {
      this.#encodeOrdinary(text, start, end, out);
      return;
    }
    let pos = start;
    pattern.lastIndex = start;
    let m: RegExpExecArray | null;
    while ((m = pattern.exec(text)) !== null && m.index < end) {
      if (m.index + m[0].length > end) break;
      this.#encodeOrdinary(text, pos, m.index, out);
      out.push(this.#specialIds.get(m[0])!);
      pos = pattern.lastIndex;
    }
    this.#encodeOrdinary(text, pos, end, out);
  }

  /** Encodes text that holds no special tokens: pre-tokenize, then look each piece up in the cache or merge it. */
  #encodeOrdinary(text: string, start: number, end: number, out: number[]): void {
    if (start >= end) return;
    this.#ends.length = 0;
    const count = pretokenEnds(text, start, end, this.#ends);
    this.#encodePieces(text, start, count, out);
  }

  /** Encodes the first `count` pieces of #ends, the first starting at `start`. */
  #encodePieces(text: string, start: number, count: number, out: number[]): void {
    const ends = this.#ends;
    const cache = this.#cache;
    let prev = start;
    for (let t = 0; t < count; t++) {
      const e = ends[t];
      if (e - prev > MAX_CACHED_PIECE) {
        this.#encodePiece(text, prev, e, out);
        prev = e;
        continue;
      }
      // Look the piece up by its characters in place: no substring unless it is new.
      let hash = 0x811c9dc5 ^ (e - prev);
      for (let i = prev; i < e; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
      let slot = (hash ^ (hash >>> 15)) & CACHE_MASK;
      let ids: number | number[] | undefined;
      for (;;) {
        const key = cache.keys[slot];
        if (key === undefined) break;
        if (cache.hashes[slot] === hash && key.length === e - prev && sameChars(key, text, prev)) {
          ids = cache.values[slot];
          break;
        }
        slot = (slot + 1) & CACHE_MASK;
      }
      if (ids === undefined) {
        const n = this.#mergeBytes(text, prev, e);
        if (n === 1) ids = this.#ids[0];
        else {
          ids = new Array<number>(n); // a small plain array is cheaper to make than a typed one
          for (let i = 0; i < n; i++) ids[i] = this.#ids[i];
        }
        if (cache.size >= CACHE_CAPACITY) {
          cache.clear();
          slot = (hash ^ (hash >>> 15)) & CACHE_MASK;
        }
        cache.keys[slot] = detachedSlice(text, prev, e);
        cache.hashes[slot] = hash;
        cache.values[slot] = ids;
        cache.size++;
      }
      if (typeof ids === "number") out.push(ids);
      else for (let i = 0; i < ids.length; i++) out.push(ids[i]);
      prev = e;
    }
  }

  #encodePiece(text: string, start: number, end: number, out: number[]): void {
    const n = this.#mergeBytes(text, start, end);
    const ids = this.#ids;
    for (let i = 0; i < n; i++) out.push(ids[i]);
  }

  /** UTF-8 encodes `text[start, end)` into the byte buffer, maps bytes to ids and merges; the result is in #ids. */
  #mergeBytes(text: string, start: number, end: number): number {
    const maxBytes = (end - start) * 3;
    if (this.#bytes.length < maxBytes) {
      this.#bytes = new Uint8Array(maxBytes * 2);
      this.#ids = new Int32Array(maxBytes * 2);
      this.#scratch = new Int32Array(maxBytes * 2);
    }
    const bytes = this.#bytes;
    let n = 0;
    for (let i = start; i < end; i++) {
      let c = text.charCodeAt(i);
      if (c < 0x80) {
        bytes[n++] = c;
        continue;
      }
      if (c < 0x800) {
        bytes[n++] = 0xc0 | (c >> 6);
        bytes[n++] = 0x80 | (c & 63);
        continue;
      }
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < end ? text.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          c = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
          i++;
          bytes[n++] = 0xf0 | (c >> 18);
          bytes[n++] = 0x80 | ((c >> 12) & 63);
          bytes[n++] = 0x80 | ((c >> 6) & 63);
          bytes[n++] = 0x80 | (c & 63);
          continue;
        }
        c = 0xfffd; // a lone surrogate is encoded as U+FFFD, as TextEncoder and tiktoken do
      }
      bytes[n++] = 0xe0 | (c >> 12);
      bytes[n++] = 0x80 | ((c >> 6) & 63);
      bytes[n++] = 0x80 | (c & 63);
    }
    const ids = this.#ids;
    if (this.#wholeTokens !== null) {
      let key = "";
      for (let i = 0; i < n; i++) key += String.fromCharCode(bytes[i]);
      const whole = this.#wholeTokens.get(key);
      if (whole !== undefined) {
        ids[0] = whole;
        return 1;
      }
    }
    const byteIds = this.#byteIds;
    for (let i = 0; i < n; i++) ids[i] = byteIds[bytes[i]];
    return mergePiece(ids, n, this.#pairs, this.#scratch);
  }

  /**
   * The tokenizer as plain, structured-cloneable data, for handing it to a Worker with `postMessage` (much faster
   * than saving and re-reading it). Rebuild it with {@linkcode Tokenizer.fromSnapshot}.
   *
   * @example
   * ```ts
   * import { Tokenizer } from "@nanolm/nanolm";
   * const bytes = (s: string) => new TextEncoder().encode(s);
   * const vocab = new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])]));
   * vocab.set(256, bytes("th")).set(257, bytes("the"));
   * const tokenizer = new Tokenizer(vocab, [[bytes("t"), bytes("h")], [bytes("th"), bytes("e")]], ["<|endoftext|>"]);
   * // `worker.postMessage({ tokenizer: tokenizer.snapshot() })` clones it the same way:
   * const received = structuredClone(tokenizer.snapshot());
   * const copy = Tokenizer.fromSnapshot(received); // in the worker
   * if (copy.encode("the cat").join() !== tokenizer.encode("the cat").join()) throw new Error("the copy differs");
   * ```
   */
  snapshot(): TokenizerSnapshot {
    return {
      format: "nanolm-bpe-snapshot",
      tokens: this.#tokens,
      byteIds: this.#byteIds,
      pairs: this.#pairs.toData(),
      mode: this.#mode,
      wholeTokens: this.#wholeTokens,
      mergeList: this.#mergeList,
      specialIds: this.#specialIds,
    };
  }

  /**
   * Rebuilds a tokenizer from {@linkcode Tokenizer.snapshot} (typically received by a Worker).
   *
   * @example
   * ```ts
   * import { Tokenizer } from "@nanolm/nanolm";
   * const bytes = (s: string) => new TextEncoder().encode(s);
   * const vocab = new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])]));
   * vocab.set(256, bytes("th")).set(257, bytes("the"));
   * const tokenizer = new Tokenizer(vocab, [[bytes("t"), bytes("h")], [bytes("th"), bytes("e")]], ["<|endoftext|>"]);
   * const copy = Tokenizer.fromSnapshot(structuredClone(tokenizer.snapshot()));
   * if (copy.encode("the<|endoftext|>").join() !== "257,258") throw new Error("merges or specials lost");
   * ```
   */
  static fromSnapshot(snapshot: TokenizerSnapshot): Tokenizer {
    if (snapshot?.format !== "nanolm-bpe-snapshot") {
      throw new TypeError(`Not a tokenizer snapshot: ${describe(snapshot?.format)}`);
    }
    return fromCore({ ...snapshot, pairs: PairTable.fromData(snapshot.pairs) });
  }

  #specialName(id: number): string | undefined {
    return this.#specialNames.get(id);
  }
}

/** Text of one stream chunk: strings as they are, bytes through a streaming UTF-8 decoder. */
function chunkText(chunk: unknown, decoder: TextDecoder): string {
  if (typeof chunk === "string") return chunk;
  if (chunk instanceof Uint8Array) return decoder.decode(chunk, { stream: true });
  throw new TypeError(`encodeIterable chunks must be strings or Uint8Arrays, got ${describe(chunk)}`);
}

/** Incremental encoding of a text stream on top of {@linkcode Tokenizer.encodePrefix}. */
class StreamingEncoder {
  #tokenizer: Tokenizer;
  #pending = "";
  /** Length the pending text must reach before trying again after a call that consumed nothing (keeps it linear). */
  #retryAt = 0;

  constructor(tokenizer: Tokenizer) {
    this.#tokenizer = tokenizer;
  }

  push(text: string): number[] {
    this.#pending += text;
    if (this.#pending.length < this.#retryAt) return [];
    const out: number[] = [];
    const used = this.#tokenizer.encodePrefix(this.#pending, out);
    this.#pending = this.#pending.slice(used);
    this.#retryAt = used === 0 ? this.#pending.length * 2 : 0;
    return out;
  }

  finish(): number[] {
    const out: number[] = [];
    this.#tokenizer.encodePrefix(this.#pending, out, { final: true });
    this.#pending = "";
    return out;
  }
}

/** A {@linkcode Tokenizer} as structured-cloneable data ({@linkcode Tokenizer.snapshot}). */
export interface TokenizerSnapshot {
  /** Marks the object as a snapshot. */
  format: "nanolm-bpe-snapshot";
  /** Token id -> bytes (specials included). */
  tokens: (Uint8Array | undefined)[];
  /** Byte value -> id of its single-byte token. */
  byteIds: Int32Array;
  /** The merge table. */
  pairs: PairTableData;
  /** Merge rule: listed merges, or tiktoken ranks. */
  mode: "merges" | "ranks";
  /** Ranks mode: binary string of a token's bytes -> id. */
  wholeTokens: Map<string, number> | null;
  /** Merges as id pairs, in order. */
  mergeList: Array<[number, number]>;
  /** Special token text -> id. */
  specialIds: Map<string, number>;
}

/** Everything a {@linkcode Tokenizer} is built from. */
interface TokenizerCore {
  tokens: (Uint8Array | undefined)[];
  byteIds: Int32Array;
  pairs: PairTable;
  mode: "merges" | "ranks";
  wholeTokens: Map<string, number> | null;
  mergeList: Array<[number, number]>;
  specialIds: Map<string, number>;
}

/**
 * The constructor's signature is the public (vocab, merges, specials) one; the static readers build a core
 * themselves (with file names and lines in their errors) and pass it through this slot.
 */
let pendingCore: TokenizerCore | undefined;

function fromCore(core: TokenizerCore): Tokenizer {
  pendingCore = core;
  try {
    return new Tokenizer(new Map(), []);
  } finally {
    pendingCore = undefined;
  }
}

/** Binary string (one char per byte) of `bytes`: a cheap exact map key. */
function bytesKey(bytes: Uint8Array): string {
  let key = "";
  for (let i = 0; i < bytes.length; i++) key += String.fromCharCode(bytes[i]);
  return key;
}

interface BuiltVocab {
  tokens: (Uint8Array | undefined)[];
  /** Binary string of the bytes -> lowest id with those bytes. */
  ids: Map<string, number>;
  byteIds: Int32Array;
}

function buildVocab(entries: Iterable<[number, Uint8Array]>, name: string): BuiltVocab {
  const tokens: (Uint8Array | undefined)[] = [];
  const ids = new Map<string, number>();
  for (const [id, bytes] of entries) {
    if (!Number.isInteger(id) || id < 0) {
      throw new RangeError(`${name}: token id must be a non-negative integer, got ${describe(id)}`);
    }
    if (id > MAX_TOKEN_ID) throw new RangeError(`${name}: token id ${id} is above the largest id ${MAX_TOKEN_ID}`);
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError(`${name}: token ${id} must be a Uint8Array, got ${describe(bytes)}`);
    }
    if (tokens[id] !== undefined) throw new RangeError(`${name}: token id ${id} appears twice`);
    tokens[id] = bytes;
    const key = bytesKey(bytes);
    const seen = ids.get(key);
    if (seen === undefined || id < seen) ids.set(key, id);
  }
  const byteIds = new Int32Array(256);
  for (let b = 0; b < 256; b++) {
    const id = ids.get(String.fromCharCode(b));
    if (id === undefined) {
      throw new RangeError(`${name}: byte-level BPE needs all 256 single bytes, but byte ${b} has no token`);
    }
    byteIds[b] = id;
  }
  return { tokens, ids, byteIds };
}

function addSpecials(
  built: BuiltVocab,
  specialTokens: readonly string[] | Readonly<Record<string, number>>,
): Map<string, number> {
  const specialIds = new Map<string, number>();
  const list: Array<[string, number | undefined]> = Array.isArray(specialTokens)
    ? specialTokens.map((s) => [s, undefined])
    : Object.entries(specialTokens as Record<string, number>);
  for (const [text, wanted] of list) {
    if (typeof text !== "string") throw new TypeError(`Special tokens must be strings, got ${describe(text)}`);
    if (text === "") throw new RangeError("Special tokens must not be empty strings");
    const bytes = utf8Encoder.encode(text);
    const key = bytesKey(bytes);
    let id = wanted ?? built.ids.get(key);
    if (wanted !== undefined) {
      if (!Number.isInteger(wanted) || wanted < 0 || wanted > MAX_TOKEN_ID) {
        throw new RangeError(`Special token ${JSON.stringify(text)} has invalid id ${describe(wanted)}`);
      }
      const there = built.tokens[wanted];
      if (there !== undefined && bytesKey(there) !== key) {
        throw new RangeError(`Special token ${JSON.stringify(text)} id ${wanted} is already another token's`);
      }
    }
    if (id === undefined) id = built.tokens.length;
    built.tokens[id] = bytes;
    if (!built.ids.has(key)) built.ids.set(key, id);
    specialIds.set(text, id);
  }
  return specialIds;
}

function normalizeSpecials(specialTokens: readonly string[] | TokenizerOptions | undefined): readonly string[] {
  if (specialTokens === undefined) return [];
  if (Array.isArray(specialTokens)) return specialTokens;
  const list = (specialTokens as TokenizerOptions).specialTokens ?? [];
  if (!Array.isArray(list)) throw new TypeError(`Special tokens must be an array of strings, got ${describe(list)}`);
  return list;
}

/**
 * The core of a merges-mode tokenizer. `where(index)` prefixes errors about merge `index` (a file and line for the
 * file readers), `name` those about the vocabulary. Errors never show the tokens: they may come from a file.
 */
function buildMergesCore(
  vocab: ReadonlyMap<number, Uint8Array> | Readonly<Record<number, Uint8Array>>,
  merges: ReadonlyArray<readonly [Uint8Array, Uint8Array]>,
  specialTokens: readonly string[] | Readonly<Record<string, number>>,
  where: (index: number) => string = () => "Merges",
  name = "Vocabulary",
): TokenizerCore {
  const entries: Array<[number, Uint8Array]> = vocab instanceof Map
    ? [...vocab]
    : Object.entries(vocab).map(([k, v]) => [Number(k), v as Uint8Array]);
  const built = buildVocab(entries, name);
  if (!Array.isArray(merges)) {
    throw new TypeError(`Merges must be an array of byte-string pairs, got ${describe(merges)}`);
  }
  const pairs = new PairTable(merges.length);
  const mergeList: Array<[number, number]> = [];
  merges.forEach((merge, index) => {
    if (!Array.isArray(merge) || merge.length !== 2 || !merge.every((m) => m instanceof Uint8Array)) {
      throw new TypeError(`${where(index)}: a merge must be a pair of Uint8Arrays, got ${describe(merge)}`);
    }
    const [x, y] = merge;
    const a = built.ids.get(bytesKey(x)), b = built.ids.get(bytesKey(y));
    const joined = new Uint8Array(x.length + y.length);
    joined.set(x);
    joined.set(y, x.length);
    const merged = built.ids.get(bytesKey(joined));
    if (a === undefined || b === undefined || merged === undefined) {
      const part = a === undefined ? "first" : b === undefined ? "second" : "joined";
      throw new RangeError(`${where(index)}: the ${part} token of merge ${index} is not in the vocabulary`);
    }
    pairs.set(a, b, index, merged);
    mergeList.push([a, b]);
  });
  const specialIds = addSpecials(built, specialTokens);
  return {
    tokens: built.tokens,
    byteIds: built.byteIds,
    pairs,
    mode: "merges",
    wholeTokens: null,
    mergeList,
    specialIds,
  };
}

/**
 * tiktoken's rule: any adjacent pair whose joined bytes are a token merges, at that token's rank. The pair table
 * therefore holds every split of every token into two tokens; the merge list (for saving as merges.txt) is the
 * split that BPE itself reaches with the lower ranks.
 */
function buildRanksCore(
  entries: Array<[number, Uint8Array]>,
  specialTokens: readonly string[] | Readonly<Record<string, number>>,
  name: string,
): TokenizerCore {
  const built = buildVocab(entries, name);
  const wholeTokens = new Map(built.ids);
  const pairs = new PairTable(entries.length * 4);
  for (const [id, bytes] of entries) {
    if (bytes.length < 2) continue;
    const key = bytesKey(bytes);
    for (let cut = 1; cut < key.length; cut++) {
      const a = built.ids.get(key.slice(0, cut));
      const b = a === undefined ? undefined : built.ids.get(key.slice(cut));
      if (a !== undefined && b !== undefined) pairs.set(a, b, id, id);
    }
  }
  const mergeList: Array<[number, number]> = [];
  const order = entries.filter(([, bytes]) => bytes.length > 1).sort((p, q) => p[0] - q[0]);
  const ids = new Int32Array(64), scratch = new Int32Array(64);
  for (const [id, bytes] of order) {
    const work = bytes.length <= 64 ? ids : new Int32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) work[i] = built.byteIds[bytes[i]];
    const n = mergePiece(work, bytes.length, pairs, bytes.length <= 64 ? scratch : new Int32Array(bytes.length), id);
    if (n === 2) mergeList.push([work[0], work[1]]);
  }
  const specialIds = addSpecials(built, specialTokens);
  return { tokens: built.tokens, byteIds: built.byteIds, pairs, mode: "ranks", wholeTokens, mergeList, specialIds };
}

/** Parses a GPT-2 `vocab.json` into (id, bytes) entries; errors name the file and line, never the tokens. */
function parseGpt2Vocab(text: string, name: string): Array<[number, Uint8Array]> {
  const json = parseJson(text, name);
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new SyntaxError(`${name}: expected a JSON object of token -> id, got ${kindOf(json)}`);
  }
  const lineOf = (token: string) => {
    const at = text.indexOf(JSON.stringify(token));
    return at < 0 ? 1 : lineAndColumn(text, at)[0];
  };
  const entries: Array<[number, Uint8Array]> = [];
  const seen = new Map<number, string>();
  for (const [token, id] of Object.entries(json as Record<string, unknown>)) {
    if (!isTokenId(id)) {
      throw new SyntaxError(`${name}:${lineOf(token)}: token id is ${describeId(id)}, not a non-negative integer`);
    }
    const before = seen.get(id);
    if (before !== undefined) {
      throw new SyntaxError(`${name}:${lineOf(token)}: id ${id} is also the id of the token on line ${lineOf(before)}`);
    }
    seen.set(id, token);
    // Printable GPT-2 text; tokens outside the printable alphabet (added specials) are taken as UTF-8.
    entries.push([id, printableToBytes(token) ?? utf8Encoder.encode(token)]);
  }
  return entries;
}

/** Parses a GPT-2 `merges.txt`; errors name the file and line, never the tokens. */
function parseGpt2Merges(text: string, name: string): { pairs: Merge[]; where: (index: number) => string } {
  const lines = text.split("\n");
  const pairs: Merge[] = [];
  const lineNumbers: number[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, "");
    if (line === "" || (i === 0 && line.startsWith("#version"))) continue;
    const parts = line.split(" ");
    const a = parts.length === 2 ? printableToBytes(parts[0]) : undefined;
    const b = parts.length === 2 ? printableToBytes(parts[1]) : undefined;
    if (!a || !b || a.length === 0 || b.length === 0) {
      throw new SyntaxError(`${name}:${i + 1}: expected two space-separated GPT-2 printable tokens`);
    }
    pairs.push([a, b]);
    lineNumbers.push(i + 1);
  }
  return { pairs, where: (index) => `${name}:${lineNumbers[index]}` };
}

function isTokenId(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}

/** A value read from a file where an id belongs: numbers are shown, anything else only named by kind. */
function describeId(value: unknown): string {
  return typeof value === "number" ? String(value) : kindOf(value);
}

/** Checks the shape of a parsed nanolm tokenizer file; errors name the file and the field, never the values. */
function checkNanolmFile(json: unknown, name: string): NanolmTokenizerFile {
  const bad = (problem: string) => new SyntaxError(`${name}: ${problem}`);
  const file = json as Partial<Record<keyof NanolmTokenizerFile, unknown>>;
  if (json === null || typeof json !== "object" || Array.isArray(json) || file.format !== "nanolm-bpe") {
    throw bad(
      'not a nanolm tokenizer file (no "format": "nanolm-bpe"); GPT-2 vocab.json + merges.txt load with ' +
        "loadGpt2Tokenizer, .tiktoken files with loadTiktoken",
    );
  }
  if (file.version !== 1) throw bad(`has version ${describeId(file.version)}; this nanolm reads version 1`);
  if (file.mode !== "merges" && file.mode !== "ranks") throw bad('mode must be "merges" or "ranks"');
  if (!Array.isArray(file.vocab)) throw bad(`vocab must be an array of [id, base64 bytes], got ${kindOf(file.vocab)}`);
  const ids = new Map<number, number>();
  file.vocab.forEach((entry: unknown, index) => {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[1] !== "string") {
      throw bad(`vocab entry ${index} must be [id, base64 bytes]`);
    }
    const id = entry[0];
    if (!isTokenId(id)) {
      throw bad(`vocab entry ${index} has an id that is ${describeId(id)}, not a non-negative integer`);
    }
    if (ids.has(id)) throw bad(`token id ${id} appears twice (vocab entries ${ids.get(id)} and ${index})`);
    ids.set(id, index);
  });
  if (!Array.isArray(file.merges)) throw bad(`merges must be an array of [id, id], got ${kindOf(file.merges)}`);
  file.merges.forEach((merge: unknown, index) => {
    if (!Array.isArray(merge) || merge.length !== 2 || !merge.every(isTokenId)) {
      throw bad(`merge ${index} must be a pair of token ids`);
    }
  });
  const specials = file.specialTokens;
  if (specials === null || typeof specials !== "object" || Array.isArray(specials)) {
    throw bad(`specialTokens must be an object of text -> id, got ${kindOf(specials)}`);
  }
  const specialIds = new Map<number, number>();
  Object.entries(specials).forEach(([text, id], index) => {
    if (text === "") throw bad(`special token ${index} is empty`);
    if (!isTokenId(id)) {
      throw bad(`special token ${index} has an id that is ${describeId(id)}, not a non-negative integer`);
    }
    if (id > MAX_TOKEN_ID) throw bad(`special token ${index} has id ${id}, above the largest id ${MAX_TOKEN_ID}`);
    if (ids.has(id)) throw bad(`special token ${index} has id ${id}, an ordinary token's`);
    if (specialIds.has(id)) {
      throw bad(`special token ${index} has id ${id}, as does special token ${specialIds.get(id)}`);
    }
    specialIds.set(id, index);
  });
  return json as NanolmTokenizerFile;
}

function fromBase64(text: string): Uint8Array | undefined {
  try {
    const binary = atob(text);
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  } catch {
    return undefined;
  }
}

function toBase64(bytes: Uint8Array): string {
  return btoa(bytesKey(bytes));
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value instanceof Uint8Array) return `Uint8Array[${value.join(",")}]`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

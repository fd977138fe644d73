/**
 * Counting pre-tokens of a corpus (word -> count), the first phase of BPE training: streaming reads in blocks cut
 * at places where neither a pre-token nor a special token can straddle the cut, special tokens split out, and the
 * GPT-2 scanner on each piece.
 *
 * @module
 */

import { detachedSlice, pretokenEnds } from "./pretokenize.ts";

/** Escapes text for use inside a RegExp. */
function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\\/-]/g, "\\$&");
}

/**
 * A RegExp matching any of `specialTokens`, longest first so that the longest wins where several start at the same
 * place; `null` when there are none.
 *
 * @example
 * ```ts
 * import { specialTokenPattern } from "@nanolm/nanolm/tokenizer";
 * const re = specialTokenPattern(["<|a|>", "<|a|><|a|>"])!;
 * // The longest special token wins where two overlap.
 * if ("x<|a|><|a|>y".match(re)?.[0] !== "<|a|><|a|>") throw new Error("the shorter token matched");
 * ```
 */
export function specialTokenPattern(specialTokens: readonly string[]): RegExp | null {
  if (specialTokens.length === 0) return null;
  const sorted = [...specialTokens].sort((a, b) => b.length - a.length);
  return new RegExp(sorted.map(escapeRegExp).join("|"), "g");
}

/**
 * Pre-token counts in an open-addressing table probed with the piece's characters in place, so that counting a
 * piece seen before allocates nothing (no substring, no rehash of a fresh string): only new pieces are sliced.
 *
 * @example
 * ```ts
 * import { PretokenCounter } from "@nanolm/nanolm/tokenizer";
 * const counter = new PretokenCounter();
 * counter.add("a cat, a cat", 1, 5); // " cat"
 * counter.add("a cat, a cat", 8, 12);
 * if (counter.toMap().get(" cat") !== 2) throw new Error(`counted ${counter.toMap().get(" cat")}`);
 * ```
 */
export class PretokenCounter {
  #keys: (string | undefined)[] = new Array(1 << 12);
  #hashes: Int32Array = new Int32Array(1 << 12);
  #counts: Float64Array = new Float64Array(1 << 12);
  #size = 0;

  /** Number of distinct pieces. */
  get size(): number {
    return this.#size;
  }

  /** Counts `text[start, end)` `times` times. */
  add(text: string, start: number, end: number, times = 1): void {
    let hash = 0x811c9dc5 ^ (end - start);
    for (let i = start; i < end; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
    const keys = this.#keys;
    const mask = keys.length - 1;
    let slot = (hash ^ (hash >>> 15)) & mask;
    for (;;) {
      const key = keys[slot];
      if (key === undefined) break;
      if (this.#hashes[slot] === hash && key.length === end - start && sameChars(key, text, start)) {
        this.#counts[slot] += times;
        return;
      }
      slot = (slot + 1) & mask;
    }
    keys[slot] = detachedSlice(text, start, end);
    this.#hashes[slot] = hash;
    this.#counts[slot] = times;
    if (++this.#size * 2 > keys.length) this.#grow();
  }

  /** Adds every count of `other`. */
  addAll(other: ReadonlyMap<string, number>): void {
    for (const [word, count] of other) this.add(word, 0, word.length, count);
  }

  /** The counts as a Map (piece -> count). */
  toMap(): Map<string, number> {
    const map = new Map<string, number>();
    const keys = this.#keys;
    for (let slot = 0; slot < keys.length; slot++) {
      const key = keys[slot];
      if (key !== undefined) map.set(key, this.#counts[slot]);
    }
    return map;
  }

  #grow(): void {
    const keys = this.#keys, hashes = this.#hashes, counts = this.#counts;
    const capacity = keys.length * 2, mask = capacity - 1;
    this.#keys = new Array(capacity);
    this.#hashes = new Int32Array(capacity);
    this.#counts = new Float64Array(capacity);
    for (let old = 0; old < keys.length; old++) {
      const key = keys[old];
      if (key === undefined) continue;
      let slot = (hashes[old] ^ (hashes[old] >>> 15)) & mask;
      while (this.#keys[slot] !== undefined) slot = (slot + 1) & mask;
      this.#keys[slot] = key;
      this.#hashes[slot] = hashes[old];
      this.#counts[slot] = counts[old];
    }
  }
}

function sameChars(key: string, text: string, start: number): boolean {
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) !== text.charCodeAt(start + i)) return false;
  return true;
}

/**
 * Adds the pre-tokens of `text` to `counts`, skipping special tokens (which also cut the text: no pre-token
 * spans one).
 *
 * @example
 * ```ts
 * import { countPretokensOfText, PretokenCounter, specialTokenPattern } from "@nanolm/nanolm/tokenizer";
 * const counts = new PretokenCounter();
 * countPretokensOfText("a cat<|endoftext|>a cat", counts, specialTokenPattern(["<|endoftext|>"]));
 * // The special token splits the text and is not counted itself.
 * const map = counts.toMap();
 * if (map.get(" cat") !== 2 || map.get("a") !== 2 || map.size !== 2) throw new Error(JSON.stringify([...map]));
 * ```
 */
export function countPretokensOfText(text: string, counts: PretokenCounter, specials: RegExp | null): void {
  const ends: number[] = [];
  let pos = 0;
  if (specials !== null) {
    specials.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = specials.exec(text)) !== null) {
      countPlain(text, pos, m.index, counts, ends);
      pos = specials.lastIndex;
    }
  }
  countPlain(text, pos, text.length, counts, ends);
}

function countPlain(text: string, start: number, end: number, counts: PretokenCounter, ends: number[]): void {
  if (start >= end) return;
  ends.length = 0;
  pretokenEnds(text, start, end, ends);
  let prev = start;
  for (let t = 0; t < ends.length; t++) {
    counts.add(text, prev, ends[t]);
    prev = ends[t];
  }
}

/** ASCII whitespace bytes: tab, newline, vertical tab, form feed, carriage return, space. */
function isAsciiSpace(b: number): boolean {
  return b === 32 || (b >= 9 && b <= 13);
}

/**
 * A position in `bytes[0, end)` where the corpus can be cut without changing its pre-tokens or special tokens,
 * searching backwards from `end`; -1 if there is none in the last `window` bytes.
 *
 * Between a visible ASCII character and ASCII whitespace there is always a pre-token boundary, and the scanner's
 * look-ahead past it sees the same classes as at the end of text, so both halves pre-tokenize as the whole did.
 * A cut is refused where a special token could straddle it.
 *
 * @example
 * ```ts
 * import { findSafeCut } from "./pretoken_counts.ts";
 * const bytes = new TextEncoder().encode("one two\nthree");
 * // Cut at the last newline, so no pre-token spans two chunks.
 * if (findSafeCut(bytes, bytes.length, []) !== 7) throw new Error(`cut at ${findSafeCut(bytes, bytes.length, [])}`);
 * ```
 */
export function findSafeCut(
  bytes: Uint8Array,
  end: number,
  specials: readonly Uint8Array[],
  window: number = 1 << 20,
): number {
  const stop = Math.max(1, end - window);
  for (let p = end - 1; p >= stop; p--) {
    if (!isAsciiSpace(bytes[p])) continue;
    const before = bytes[p - 1];
    if (before < 0x21 || before > 0x7e) continue;
    if (!straddlesSpecial(bytes, p, end, specials)) return p;
  }
  return -1;
}

function straddlesSpecial(bytes: Uint8Array, p: number, end: number, specials: readonly Uint8Array[]): boolean {
  for (const s of specials) {
    for (let k = 1; k < s.length; k++) {
      const start = p - k;
      if (start < 0) break;
      let match = true;
      for (let i = 0; i < s.length && start + i < end; i++) {
        if (bytes[start + i] !== s[i]) {
          match = false;
          break;
        }
      }
      if (match) return true; // a whole match, or a prefix cut off by `end`: unsafe either way
    }
  }
  return false;
}

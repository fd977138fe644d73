/**
 * GPT-2 pre-tokenization: the regex that cuts text into the pieces BPE works on, and a hand-written scanner that
 * gives exactly the same pieces several times faster.
 *
 * The pattern is GPT-2's
 * `'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`. tiktoken runs it with Rust's regex
 * engine, where `\s` is the Unicode `White_Space` property; JavaScript's `\s` differs (it adds U+FEFF and lacks
 * U+0085), so {@linkcode GPT2_PATTERN} spells the Rust class out to give tiktoken's pieces.
 *
 * @module
 */

/** Unicode `White_Space`, which is what `\s` means in tiktoken's (Rust) regex. */
const WHITE_SPACE = "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/**
 * GPT-2's pre-tokenization regex with tiktoken's meaning of `\s` (global, Unicode). This is the reference that
 * {@linkcode pretokenEnds} is tested against.
 *
 * @example
 * ```ts
 * import { GPT2_PATTERN } from "@nanolm/nanolm/tokenizer";
 * const pieces = "Hello, world!".match(GPT2_PATTERN);
 * if (pieces?.join("|") !== "Hello|,| world|!") throw new Error(`${pieces}`);
 * ```
 */
export const GPT2_PATTERN: RegExp = new RegExp(
  `'(?:[sdmt]|ll|ve|re)| ?\\p{L}+| ?\\p{N}+| ?[^${WHITE_SPACE}\\p{L}\\p{N}]+|[${WHITE_SPACE}]+(?![^${WHITE_SPACE}])|[${WHITE_SPACE}]+`,
  "gu",
);

/**
 * Splits text into GPT-2 pre-tokens with the reference regex (slow; {@linkcode pretokenEnds} is the fast path).
 *
 * @example
 * ```ts
 * import { pretokenizeRegex } from "@nanolm/nanolm/tokenizer";
 * const pieces = pretokenizeRegex("I'll  go").join("|");
 * if (pieces !== "I|'ll| | go") throw new Error(pieces);
 * ```
 */
export function pretokenizeRegex(text: string): string[] {
  return text.match(new RegExp(GPT2_PATTERN.source, "gu")) ?? [];
}

/** Character classes of the scanner. */
const OTHER = 0, LETTER = 1, NUMBER = 2, SPACE = 3;

function buildBmpClasses(): Uint8Array {
  const classes = new Uint8Array(0x10000);
  let all = "";
  for (let c = 0; c < 0x10000; c++) all += c >= 0xd800 && c <= 0xdfff ? "\0" : String.fromCharCode(c);
  const mark = (re: RegExp, cls: number) => {
    for (const m of all.matchAll(re)) {
      for (let i = 0; i < m[0].length; i++) classes[m.index + i] = cls;
    }
  };
  mark(/\p{L}+/gu, LETTER);
  mark(/\p{N}+/gu, NUMBER);
  mark(new RegExp(`[${WHITE_SPACE}]+`, "gu"), SPACE);
  classes[0] = OTHER; // the surrogate stand-in above is NUL, which is OTHER anyway
  return classes;
}

const BMP_CLASSES: Uint8Array = buildBmpClasses();
const ASTRAL_CLASSES = new Map<number, number>();
const LETTER_RE = /^\p{L}$/u, NUMBER_RE = /^\p{N}$/u;

function astralClass(codePoint: number): number {
  let cls = ASTRAL_CLASSES.get(codePoint);
  if (cls === undefined) {
    const ch = String.fromCodePoint(codePoint);
    cls = LETTER_RE.test(ch) ? LETTER : NUMBER_RE.test(ch) ? NUMBER : OTHER;
    ASTRAL_CLASSES.set(codePoint, cls);
  }
  return cls;
}

/**
 * Class of the code point at `i` in `text` (a lone surrogate is OTHER, as its UTF-8 encoding U+FFFD is), packed
 * with its length in UTF-16 units: `class | (length << 2)`.
 */
function classAt(text: string, i: number, end: number): number {
  const c = text.charCodeAt(i);
  if (c < 0xd800 || c > 0xdfff) return BMP_CLASSES[c] | 4;
  if (c <= 0xdbff && i + 1 < end) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return astralClass(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000) | 8;
  }
  return OTHER | 4;
}

/**
 * Appends to `ends` the end offset (in UTF-16 units) of each GPT-2 pre-token of `text[start, end)`, exactly as
 * {@linkcode GPT2_PATTERN} would cut that slice, and returns how many were appended. Pieces are
 * `text.slice(previousEnd, end)`, starting from `start`.
 *
 * @example
 * ```ts
 * import { pretokenEnds } from "./pretokenize.ts";
 * const text = "it's 42 \n";
 * const ends: number[] = [];
 * pretokenEnds(text, 0, text.length, ends);
 * if (ends.join(",") !== "2,4,7,9") throw new Error(`${ends}`); // "it" "'s" " 42" " \n"
 * ```
 */
export function pretokenEnds(text: string, start: number, end: number, ends: number[]): number {
  const before = ends.length;
  let i = start;
  while (i < end) {
    const c = text.charCodeAt(i);
    if (c === 39 && i + 1 < end) { // contractions: 's 't 'm 'd 'll 've 're
      const c1 = text.charCodeAt(i + 1);
      if (c1 === 115 || c1 === 116 || c1 === 109 || c1 === 100) {
        ends.push(i += 2);
        continue;
      }
      if (i + 2 < end) {
        const c2 = text.charCodeAt(i + 2);
        if ((c1 === 108 && c2 === 108) || (c1 === 118 && c2 === 101) || (c1 === 114 && c2 === 101)) {
          ends.push(i += 3);
          continue;
        }
      }
    }
    let info = c < 0xd800 ? BMP_CLASSES[c] | 4 : classAt(text, i, end);
    let j = i;
    if (c === 32 && i + 1 < end) { // " ?" before a letter, number or other run
      const next = classAt(text, i + 1, end);
      if ((next & 3) !== SPACE) {
        info = next;
        j = i + 1;
      }
    }
    const cls = info & 3;
    if (cls === SPACE) {
      // \s+(?!\S) takes the run but gives back its last character when a non-space follows; a single space
      // before a non-space is then matched by the final \s+.
      let k = i + 1, last = i;
      while (k < end) {
        const d = text.charCodeAt(k);
        if (d >= 0xd800 || BMP_CLASSES[d] !== SPACE) break;
        last = k++;
      }
      ends.push(i = k === end || last === i ? k : last);
      continue;
    }
    let k = j + (info >> 2);
    while (k < end) {
      const d = text.charCodeAt(k);
      if (d < 0xd800) {
        if (BMP_CLASSES[d] !== cls) break;
        k++;
      } else {
        const next = classAt(text, k, end);
        if ((next & 3) !== cls) break;
        k += next >> 2;
      }
    }
    ends.push(i = k);
  }
  return ends.length - before;
}

/**
 * Splits text into GPT-2 pre-tokens with the fast scanner (same pieces as {@linkcode pretokenizeRegex}).
 *
 * @example
 * ```ts
 * import { pretokenize } from "@nanolm/nanolm/tokenizer";
 * const pieces = pretokenize("Hi  there").join("|");
 * if (pieces !== "Hi| | there") throw new Error(pieces); // like GPT2_PATTERN, without the regex
 * ```
 */
export function pretokenize(text: string): string[] {
  const ends: number[] = [];
  pretokenEnds(text, 0, text.length, ends);
  const pieces = new Array<string>(ends.length);
  let prev = 0;
  for (let t = 0; t < ends.length; t++) pieces[t] = text.slice(prev, prev = ends[t]);
  return pieces;
}

/**
 * `text.slice(start, end)` as a string of its own. V8 represents slices of 13 or more characters as views into the
 * parent string, so a slice kept in a cache or count table would keep a whole multi-megabyte chunk alive; keys
 * that outlive their chunk are copied with this instead.
 *
 * @example
 * ```ts
 * import { detachedSlice } from "./pretokenize.ts";
 * if (detachedSlice("a long piece of text here", 2, 20) !== "long piece of text") throw new Error("wrong slice");
 * ```
 */
export function detachedSlice(text: string, start: number, end: number): string {
  const n = end - start;
  if (n < 13) return text.slice(start, end);
  const codes = new Uint16Array(n);
  for (let i = 0; i < n; i++) codes[i] = text.charCodeAt(start + i);
  let out = "";
  for (let i = 0; i < n; i += 4096) {
    out += String.fromCharCode.apply(null, codes.subarray(i, i + 4096) as unknown as number[]);
  }
  return out;
}

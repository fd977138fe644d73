/**
 * How a tokenizer shows itself in a notebook: vocabulary, special tokens, sample merges and a coloured token split,
 * as MIME bundles with `text/plain` and `text/html` (they work anywhere: tests, reports).
 *
 * @module
 */
import {
  cellResult,
  escapeHtml,
  factsBundle,
  JUPYTER_DISPLAY,
  type JupyterDisplayable,
  type MimeBundle,
} from "../notebook/display.ts";

/** What a tokenizer view needs: the parts of a `Tokenizer` it reads. */
export interface TokenizerView {
  /** Number of ids. */
  readonly vocabSize: number;
  /** Special tokens and their ids. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** Bytes of a token. */
  tokenBytes(id: number): Uint8Array;
  /** The merges in order. */
  merges(): [Uint8Array, Uint8Array][];
  /** Text to ids. */
  encode(text: string): number[];
}

/** The sentence a tokenizer shows its split of when displayed. */
export const TOKEN_SPLIT_SAMPLE = "Call me Ishmael. The whale, the sea, and 1851's tokenizers!";

// Pastel backgrounds, dark enough apart that neighbouring tokens are distinguishable.
const TOKEN_COLOURS = ["#fde2a7", "#c7e9c0", "#c6dbef", "#fcc5c0", "#dadaeb", "#fdd0a2", "#d9f0a3", "#bcbddc"];

const utf8 = new TextDecoder("utf-8", { fatal: false });

/**
 * A token's bytes as readable text: valid UTF-8 as itself, other bytes as `\xNN`.
 *
 * @example
 * ```ts
 * import { tokenText } from "@nanolm/nanolm/tokenizer";
 * if (tokenText(new Uint8Array([104, 105])) !== "hi") throw new Error("not text");
 * // Part of a UTF-8 character shows as its byte.
 * if (tokenText(new Uint8Array([0xe2])) !== "\\xe2") throw new Error("not the byte");
 * ```
 */
export function tokenText(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return [...bytes].map((b) => `\\x${b.toString(16).padStart(2, "0")}`).join("");
  }
}

/** Shows invisible characters of a token: space as `·`, newline as `↵`, tab as `→`. */
function visible(text: string): string {
  return text.replace(/ /g, "·").replace(/\n/g, "↵").replace(/\t/g, "→");
}

/**
 * How a tokenizer splits `text`: one coloured `<span>` per token (hover for its id) in HTML, tokens between `|` in
 * plain text, with the token count and bytes per token.
 *
 * @example
 * ```ts
 * import { tokenSplitBundle } from "@nanolm/nanolm/tokenizer";
 * const chars = { vocabSize: 256, specialTokens: new Map(), tokenBytes: (id: number) => new Uint8Array([id]),
 *   merges: () => [], encode: (t: string) => [...new TextEncoder().encode(t)] };
 * const bundle = tokenSplitBundle(chars, "hi");
 * if (!(bundle["text/plain"] as string).startsWith("2 tokens")) throw new Error(`${bundle["text/plain"]}`);
 * ```
 */
export function tokenSplitBundle(tokenizer: TokenizerView, text: string): MimeBundle {
  const ids = tokenizer.encode(text);
  const pieces = ids.map((id) => utf8.decode(tokenizer.tokenBytes(id)));
  const bytes = new TextEncoder().encode(text).length;
  const summary = `${ids.length} tokens, ${bytes} bytes (${(bytes / Math.max(ids.length, 1)).toFixed(2)} bytes/token)`;
  const plain = `${summary}\n|${pieces.map(visible).join("|")}|`;
  const spans = pieces.map((p, i) =>
    `<span title="id ${ids[i]}" style="background:${TOKEN_COLOURS[i % TOKEN_COLOURS.length]};` +
    `border-radius:3px;padding:1px 0;margin-right:1px">${escapeHtml(p)}</span>`
  ).join("");
  const html = `<div><div style="font-family:monospace;white-space:pre-wrap;line-height:1.9">${spans}</div>` +
    `<div style="color:#666;font-size:90%">${escapeHtml(summary)}</div></div>`;
  return { "text/plain": plain, "text/html": html };
}

/**
 * A displayable token split (see {@linkcode tokenSplitBundle}): a notebook cell returning it shows the coloured split.
 *
 * @example
 * ```ts
 * import { JUPYTER_DISPLAY } from "@nanolm/nanolm/notebook";
 * import { tokenSplit } from "@nanolm/nanolm/tokenizer";
 * const chars = { vocabSize: 256, specialTokens: new Map(), tokenBytes: (id: number) => new Uint8Array([id]),
 *   merges: () => [], encode: (t: string) => [...new TextEncoder().encode(t)] };
 * const bundle = await tokenSplit(chars, "abc")[JUPYTER_DISPLAY]();
 * if (!(bundle["text/html"] as string).includes("<span")) throw new Error("no token spans");
 * ```
 */
export function tokenSplit(tokenizer: TokenizerView, text: string): JupyterDisplayable {
  return { [JUPYTER_DISPLAY]: () => cellResult(tokenSplitBundle(tokenizer, text)) };
}

/**
 * The view of a tokenizer: vocabulary size, special tokens, the first and last merges, and the split of
 * `sample` (default {@linkcode TOKEN_SPLIT_SAMPLE}).
 *
 * @example
 * ```ts
 * import { tokenizerBundle } from "@nanolm/nanolm/tokenizer";
 * const chars = { vocabSize: 257, specialTokens: new Map([["<|endoftext|>", 256]]),
 *   tokenBytes: (id: number) => new Uint8Array([id]), merges: () => [], encode: (t: string) => [...new TextEncoder().encode(t)] };
 * const text = tokenizerBundle(chars)["text/plain"] as string;
 * if (!text.includes("vocabulary size: 257")) throw new Error(text);
 * ```
 */
export function tokenizerBundle(tokenizer: TokenizerView, sample: string = TOKEN_SPLIT_SAMPLE): MimeBundle {
  const merges = tokenizer.merges();
  const specials = [...tokenizer.specialTokens].map(([text, id]) => `${text} (${id})`).join(", ") || "none";
  const shown = (m: [Uint8Array, Uint8Array]) => `${visible(tokenText(m[0]))} + ${visible(tokenText(m[1]))}`;
  const first = merges.slice(0, 8).map(shown);
  const last = merges.length > 8 ? merges.slice(-4).map(shown) : [];
  const facts: [string, string][] = [
    ["vocabulary size", tokenizer.vocabSize.toLocaleString("en-US")],
    ["special tokens", specials],
    ["merges", merges.length.toLocaleString("en-US")],
    ["first merges", first.join("  ·  ") || "none"],
  ];
  if (last.length) facts.push(["last merges", last.join("  ·  ")]);
  const base = factsBundle("Tokenizer (byte-level BPE)", facts);
  const split = tokenSplitBundle(tokenizer, sample);
  return {
    "text/plain": `${base["text/plain"]}\n  split of a sample: ${split["text/plain"]}`,
    "text/html": `${base["text/html"]}<div style="margin-top:6px"><em>Split of a sample:</em>${
      split["text/html"]
    }</div>`,
  };
}

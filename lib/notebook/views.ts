/**
 * Rich views of nanolm's main objects for notebooks: a tokenizer (vocabulary, specials, sample merges and a coloured
 * token split), a model (architecture and a parameter/FLOP table by component) and a training run (step, losses,
 * tokens/s). Each view is a MIME bundle with `text/plain` and `text/html`; the classes' `[Symbol.for("Jupyter.display")]`
 * methods return them, and the functions work anywhere (tests, reports), since nothing here touches `Deno.jupyter`.
 *
 * The objects are described structurally (`TokenizerView`, `ModelShape`, `RunStatus`) so that this module does not
 * import the classes that import it.
 *
 * @module
 */
import { accountingTable, type ModelShape, parameterCounts } from "../nn/accounting.ts";
import { escapeHtml, factsBundle, JUPYTER_DISPLAY, type MimeBundle } from "./display.ts";
import { cellResult, type JupyterDisplayable } from "./jupyter.ts";
import { formatCount, formatDuration } from "../util/progress.ts";
import { htmlTable, type TableRow, textTable } from "./table.ts";

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
 * import { tokenText } from "./views.ts";
 * console.assert(tokenText(new Uint8Array([104, 105])) === "hi" && tokenText(new Uint8Array([0xe2])) === "\\xe2");
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
 * import { tokenSplitBundle } from "./views.ts";
 * const chars = { vocabSize: 256, specialTokens: new Map(), tokenBytes: (id: number) => new Uint8Array([id]),
 *   merges: () => [], encode: (t: string) => [...new TextEncoder().encode(t)] };
 * const bundle = tokenSplitBundle(chars, "hi");
 * console.assert((bundle["text/plain"] as string).startsWith("2 tokens"));
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
 * import { JUPYTER_DISPLAY } from "./display.ts";
 * import { tokenSplit } from "./views.ts";
 * const chars = { vocabSize: 256, specialTokens: new Map(), tokenBytes: (id: number) => new Uint8Array([id]),
 *   merges: () => [], encode: (t: string) => [...new TextEncoder().encode(t)] };
 * const bundle = await tokenSplit(chars, "abc")[JUPYTER_DISPLAY]();
 * console.assert((bundle["text/html"] as string).includes("<span"));
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
 * import { tokenizerBundle } from "./views.ts";
 * const chars = { vocabSize: 257, specialTokens: new Map([["<|endoftext|>", 256]]),
 *   tokenBytes: (id: number) => new Uint8Array([id]), merges: () => [], encode: (t: string) => [...new TextEncoder().encode(t)] };
 * console.assert((tokenizerBundle(chars)["text/plain"] as string).includes("vocabulary size: 257"));
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

/**
 * The view of a model: its architecture and a table of parameters and forward FLOPs by component (one sequence of
 * the context length, CS336 counting, see the accounting module).
 *
 * @example
 * ```ts
 * import { modelBundle } from "./views.ts";
 * const shape = { vocabSize: 50257, contextLength: 1024, dModel: 768, numLayers: 12, numHeads: 12, dFf: 3072 };
 * console.assert((modelBundle(shape, { title: "GPT-2 small" })["text/html"] as string).includes("LM head"));
 * ```
 */
export function modelBundle(shape: ModelShape, options: { title?: string } = {}): MimeBundle {
  const p = parameterCounts(shape);
  const variants = [
    `norm ${shape.norm ?? "pre"}`,
    `position ${shape.position ?? "rope"}`,
    `ffn ${shape.ffn ?? "swiglu"}`,
    ...(shape.parallelLayers ? ["parallel layers"] : []),
    ...(shape.tieEmbeddings ? ["tied embeddings"] : []),
  ].join(", ");
  const facts: [string, string][] = [
    [
      "shape",
      `${shape.numLayers} layers, d_model ${shape.dModel}, ${shape.numHeads} heads, d_ff ${shape.dFf}, ` +
      `vocab ${shape.vocabSize}, context ${shape.contextLength}`,
    ],
    ["variants", variants],
    ["parameters", `${p.total.toLocaleString("en-US")} (${formatCount(p.total)})`],
  ];
  const rows: TableRow[] = accountingTable(shape).map((r) => ({
    component: r.component,
    parameters: r.parameters,
    "forward FLOPs / sequence": r.forwardFlops,
    "FLOP share": `${(100 * r.flopShare).toFixed(1)}%`,
  }));
  const base = factsBundle(options.title ?? "TransformerLM", facts);
  return {
    "text/plain": `${base["text/plain"]}\n${textTable(rows)}`,
    "text/html": `${base["text/html"]}${htmlTable(rows)}`,
  };
}

/** The state of a training run, as a run view shows it. */
export interface RunStatus {
  /** A name for the run. */
  name?: string;
  /** Steps done. */
  step: number;
  /** Steps planned. */
  steps: number;
  /** Latest training loss. */
  loss?: number;
  /** Latest validation loss and the step it was measured at. */
  valLoss?: number;
  /** Step of `valLoss`. */
  valStep?: number;
  /** Learning rate of the latest step. */
  lr?: number;
  /** Training tokens per second (latest measurement). */
  tokensPerSec?: number;
  /** Seconds since the run started. */
  elapsed?: number;
  /** Model parameters. */
  parameters?: number;
  /** Where checkpoints go. */
  outDir?: string;
}

/**
 * The view of a training run: a progress bar and the latest step, losses, learning rate and tokens/s.
 *
 * @example
 * ```ts
 * import { runBundle } from "./views.ts";
 * const b = runBundle({ step: 50, steps: 100, loss: 3.2, tokensPerSec: 1500, elapsed: 12 });
 * console.assert((b["text/plain"] as string).includes("step: 50 / 100 (50%)"));
 * ```
 */
export function runBundle(status: RunStatus): MimeBundle {
  const pct = status.steps > 0 ? Math.min(100, Math.round((100 * status.step) / status.steps)) : 0;
  const facts: [string, string][] = [["step", `${status.step} / ${status.steps} (${pct}%)`]];
  if (status.loss !== undefined) facts.push(["training loss", status.loss.toFixed(4)]);
  if (status.valLoss !== undefined) {
    facts.push(["validation loss", `${status.valLoss.toFixed(4)} (step ${status.valStep ?? "?"})`]);
  }
  if (status.lr !== undefined) facts.push(["learning rate", status.lr.toExponential(2)]);
  if (status.tokensPerSec !== undefined) facts.push(["tokens/s", formatCount(Math.round(status.tokensPerSec))]);
  if (status.elapsed !== undefined) facts.push(["elapsed", formatDuration(status.elapsed)]);
  if (status.parameters !== undefined) facts.push(["parameters", status.parameters.toLocaleString("en-US")]);
  if (status.outDir !== undefined) facts.push(["output", status.outDir]);
  const base = factsBundle(`Training run${status.name ? ` ${status.name}` : ""}`, facts);
  const bar = `<progress value="${status.step}" max="${Math.max(status.steps, 1)}" style="width:20em"></progress>`;
  return { "text/plain": base["text/plain"], "text/html": `${bar}${base["text/html"]}` };
}

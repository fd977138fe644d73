/**
 * The display protocol of the Deno Jupyter kernel, and the helpers that build MIME bundles: a leaf that any layer
 * may import, so that tensors, tokenizers, models and runs can show themselves in a notebook. Objects opt in by
 * defining a `[Symbol.for("Jupyter.display")]()` method returning a bundle; the kernel calls it (and awaits it) when
 * the object is a cell's value. The module loads in any runtime: `Deno.jupyter` (which exists only inside the
 * kernel, and throws elsewhere) is reached through `globalThis` and only behind {@linkcode inJupyter}.
 *
 * @module
 */

/** The symbol the Deno kernel looks for. */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for("Jupyter.display") as never;

/** A Jupyter MIME bundle: MIME type to content. */
export type MimeBundle = Record<string, unknown>;

/**
 * Escapes text for HTML.
 *
 * @example
 * ```ts
 * import { escapeHtml } from "@nanolm/nanolm/notebook";
 * const escaped = escapeHtml(`<a href="x">Tom & Jerry's</a>`);
 * if (escaped !== "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;") throw new Error(escaped);
 * ```
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function formatValue(v: number): string {
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : v.toFixed(4);
}

/**
 * A preview of an array's values shaped like the tensor, eliding the middle of long dims (NumPy style).
 *
 * @example
 * ```ts
 * import { previewValues } from "@nanolm/nanolm/notebook";
 * const square = previewValues(new Float32Array([1, 2, 3, 4]), [2, 2]);
 * if (square !== "[[1, 2],\n [3, 4]]") throw new Error(square);
 * // A long dim shows its first and last `edge` values around "...".
 * const long = previewValues(Float32Array.from({ length: 10 }, (_, i) => i), [10], 2);
 * if (long !== "[0, 1, ..., 8, 9]") throw new Error(long);
 * ```
 */
export function previewValues(values: ArrayLike<number>, shape: readonly number[], edge = 3): string {
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const rec = (dim: number, offset: number, indent: string): string => {
    if (dim === shape.length) return formatValue(values[offset]);
    const n = shape[dim];
    const idx = n > 2 * edge
      ? [...Array(edge).keys(), -1, ...Array.from({ length: edge }, (_, i) => n - edge + i)]
      : [...Array(n).keys()];
    const sep = dim === shape.length - 1 ? ", " : `,\n${indent} `;
    return "[" + idx.map((i) => i < 0 ? "..." : rec(dim + 1, offset + i * strides[dim], indent + " ")).join(sep) + "]";
  };
  return rec(0, 0, "");
}

/**
 * A MIME bundle (plain text and an HTML table of facts plus a preview).
 *
 * @example
 * ```ts
 * import { factsBundle } from "@nanolm/nanolm/notebook";
 * const bundle = factsBundle("Tensor", [["shape", "(2, 3)"]]);
 * if (bundle["text/plain"] !== "Tensor\n  shape: (2, 3)") throw new Error(String(bundle["text/plain"]));
 * const html = bundle["text/html"] as string;
 * if (!html.includes("<th style=\"text-align:left\">shape</th><td>(2, 3)</td>")) throw new Error(html);
 * ```
 */
export function factsBundle(title: string, facts: [string, string][], preview?: string): MimeBundle {
  const plain = `${title}\n${facts.map(([k, v]) => `  ${k}: ${v}`).join("\n")}${preview ? `\n${preview}` : ""}`;
  const rows = facts.map(([k, v]) =>
    `<tr><th style="text-align:left">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`
  )
    .join("");
  const html = `<div><strong>${escapeHtml(title)}</strong><table>${rows}</table>` +
    (preview ? `<pre>${escapeHtml(preview)}</pre>` : "") + "</div>";
  return { "text/plain": plain, "text/html": html };
}

/** An object the Deno Jupyter kernel displays through {@linkcode JUPYTER_DISPLAY}. */
export interface JupyterDisplayable {
  /** Returns the mime bundle to show. */
  [JUPYTER_DISPLAY](): Promise<MimeBundle>;
}

/**
 * Whether code runs inside the Deno Jupyter kernel (where `Deno.jupyter` exists; elsewhere reading it throws).
 *
 * @example
 * ```ts
 * import { inJupyter } from "@nanolm/nanolm/notebook";
 * if (inJupyter()) throw new Error("deno run and deno test are not the Jupyter kernel");
 * ```
 */
export function inJupyter(): boolean {
  return kernel() !== undefined;
}

/** The kernel's display function, reached through `globalThis` so that this module also loads in a browser. */
function kernel(): ((bundle: MimeBundle, options: { raw: boolean }) => Promise<void>) | undefined {
  try {
    const jupyter = (globalThis as { Deno?: { jupyter?: { display?: unknown } } }).Deno?.jupyter;
    return typeof jupyter?.display === "function" ? jupyter.display.bind(jupyter) as never : undefined;
  } catch {
    return undefined; // Deno.jupyter throws outside the kernel
  }
}

let bundleOnly = 0;

/**
 * Milliseconds to yield after sending a display. The kernel's send completes before the message has left: when a
 * cell ended right after a display that followed GPU work, the message was often delivered after the cell's
 * "idle" and lost (6 of 60 cells of a test notebook; none of 240 with a pause of 0 to 50 ms).
 */
const SETTLE_MS = 20;

/**
 * Yields long enough for a display message to leave before the cell goes on (see `SETTLE_MS`).
 *
 * @example
 * ```ts
 * import { settle } from "./display.ts";
 * const started = performance.now();
 * await settle(); // after a Deno.jupyter.display call, so that the message is sent before the cell ends
 * if (performance.now() - started < 10) throw new Error("settle yields for a while, not just a tick");
 * ```
 */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
}

/**
 * What a `[Symbol.for("Jupyter.display")]` method returns for `bundle`, working around the Deno kernel's (2.9)
 * ordering of a cell's messages: it sends the cell's result from the JavaScript thread and the cell's "idle"
 * status from another thread, and the result sometimes arrives after "idle", when Jupyter clients (nbclient,
 * JupyterLab) have stopped listening to that cell, so the output silently goes missing (in our runs, 10-30% of
 * cells). A display sent from inside the cell is awaited before the cell ends and arrives in time. So inside the
 * kernel this shows `bundle` at once and returns an empty text for the result (a bundle with no MIME type at all
 * made nbconvert warn on every such cell); elsewhere, and when {@linkcode bundleOf} asks for the bundle itself, it
 * returns `bundle`. The kernel still shows an empty `Out[n]:` for that result: end a cell with `await show(x)`
 * (`jupyter.ts`) to have no result at all.
 *
 * @example
 * ```ts
 * import { cellResult } from "@nanolm/nanolm/notebook";
 * const bundle = await cellResult({ "text/plain": "hello" });
 * // Outside the kernel: the bundle itself (inside, an empty text once the bundle is shown).
 * if (bundle["text/plain"] !== "hello") throw new Error(String(bundle["text/plain"]));
 * ```
 */
export async function cellResult(bundle: MimeBundle): Promise<MimeBundle> {
  const show = kernel();
  if (bundleOnly > 0 || !show) return bundle;
  await show(bundle, { raw: true });
  await settle();
  return { "text/plain": "" };
}

/**
 * The MIME bundle of a displayable object (what its `[Symbol.for("Jupyter.display")]` method gives), without
 * showing it, also inside the kernel (see {@linkcode cellResult}).
 *
 * @example
 * ```ts
 * import { bundleOf, JUPYTER_DISPLAY } from "@nanolm/nanolm/notebook";
 * const value = { [JUPYTER_DISPLAY]: () => Promise.resolve({ "text/plain": "x" }) };
 * const bundle = await bundleOf(value);
 * if (bundle["text/plain"] !== "x") throw new Error(String(bundle["text/plain"]));
 * ```
 */
export async function bundleOf(value: JupyterDisplayable): Promise<MimeBundle> {
  bundleOnly++;
  try {
    return await value[JUPYTER_DISPLAY]();
  } finally {
    bundleOnly--;
  }
}

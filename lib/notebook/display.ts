/**
 * Rich display in Jupyter (Deno kernel): helpers that build MIME bundles. Objects opt in by defining a
 * `[Symbol.for("Jupyter.display")]()` method returning one; the kernel calls it (and awaits it) when the object is
 * a cell's value. Nothing here touches `Deno.jupyter`, which throws outside the kernel.
 *
 * @module
 */

/** The symbol the Deno kernel looks for. */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for("Jupyter.display") as never;

/** A Jupyter MIME bundle: MIME type to content. */
export type MimeBundle = Record<string, unknown>;

/** Escapes text for HTML. @example `escapeHtml("<b>")` gives `"&lt;b&gt;"` */
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
 * import { previewValues } from "./display.ts";
 * console.assert(previewValues(new Float32Array([1, 2, 3, 4]), [2, 2]) === "[[1, 2],\n [3, 4]]");
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
 * import { factsBundle } from "./display.ts";
 * const bundle = factsBundle("Tensor", [["shape", "(2, 3)"]]); // also "text/html": a table
 * console.assert(bundle["text/plain"] === "Tensor\n  shape: (2, 3)");
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

/**
 * The display protocol of the Deno Jupyter kernel, shared by every object that shows itself in a notebook (plots,
 * tables, tensors, and later tokenizers and models).
 *
 * A notebook cell whose value has a method under `Symbol.for("Jupyter.display")` shows the mime bundle that method
 * returns (the kernel awaits it). `Deno.jupyter` exists only inside the kernel (reading it elsewhere throws), so it
 * is only touched behind {@linkcode inJupyter}.
 *
 * @module
 */

import { JUPYTER_DISPLAY, type MimeBundle } from "./display.ts";

// The symbol and bundle type live in display.ts with the tensor display; re-exported so that plots and tables
// need one import.
export { JUPYTER_DISPLAY, type MimeBundle };

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
 * import { inJupyter } from "./jupyter.ts";
 * console.assert(inJupyter() === false); // under deno run / deno test
 * ```
 */
export function inJupyter(): boolean {
  try {
    return typeof Deno.jupyter?.display === "function";
  } catch {
    return false;
  }
}

let bundleOnly = 0;

/**
 * Milliseconds to yield after sending a display. The kernel's send completes before the message has left: when a
 * cell ended right after a display that followed GPU work, the message was often delivered after the cell's
 * "idle" and lost (6 of 60 cells of a test notebook; none of 240 with a pause of 0 to 50 ms).
 */
const SETTLE_MS = 20;

function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
}

/**
 * What a `[Symbol.for("Jupyter.display")]` method returns for `bundle`, working around the Deno kernel's (2.9)
 * ordering of a cell's messages: it sends the cell's result from the JavaScript thread and the cell's "idle"
 * status from another thread, and the result sometimes arrives after "idle", when Jupyter clients (nbclient,
 * JupyterLab) have stopped listening to that cell, so the output silently goes missing (in our runs, 10-30% of
 * cells). A display sent from inside the cell is awaited before the cell ends and arrives in time. So inside the
 * kernel this shows `bundle` at once and returns an empty bundle for the result; elsewhere, and when
 * {@linkcode bundleOf} asks for the bundle itself, it returns `bundle`.
 *
 * @example
 * ```ts
 * import { cellResult } from "./jupyter.ts";
 * const bundle = await cellResult({ "text/plain": "hello" });
 * console.assert(bundle["text/plain"] === "hello"); // outside the kernel: the bundle itself
 * ```
 */
export async function cellResult(bundle: MimeBundle): Promise<MimeBundle> {
  if (bundleOnly > 0 || !inJupyter()) return bundle;
  await Deno.jupyter.display(bundle, { raw: true });
  await settle();
  return {};
}

/**
 * The MIME bundle of a displayable object (what its `[Symbol.for("Jupyter.display")]` method gives), without
 * showing it, also inside the kernel (see {@linkcode cellResult}).
 *
 * @example
 * ```ts
 * import { bundleOf, JUPYTER_DISPLAY } from "./jupyter.ts";
 * const value = { [JUPYTER_DISPLAY]: () => Promise.resolve({ "text/plain": "x" }) };
 * console.assert((await bundleOf(value))["text/plain"] === "x");
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

function isDisplayable(value: unknown): value is JupyterDisplayable {
  return typeof value === "object" && value !== null &&
    typeof (value as JupyterDisplayable)[JUPYTER_DISPLAY] === "function";
}

/**
 * Shows a value in the notebook now (not only as the cell's result), optionally under a display id so that a later
 * call with `update: true` replaces it. Outside Jupyter it does nothing and returns false.
 *
 * @example
 * ```ts
 * import { display } from "./jupyter.ts";
 * const shown = await display({ "text/plain": "hello" }, { raw: true });
 * console.assert(shown === false); // not in a kernel here
 * ```
 */
export async function display(
  value: unknown,
  options: { raw?: boolean; update?: boolean; displayId?: string } = {},
): Promise<boolean> {
  if (!inJupyter()) return false;
  // A displayable's bundle is fetched here so that its method does not show it a second time (see cellResult).
  const raw = options.raw || isDisplayable(value);
  await Deno.jupyter.display(isDisplayable(value) ? await bundleOf(value) : value, {
    raw,
    update: options.update ?? false,
    display_id: options.displayId,
  });
  await settle();
  return true;
}

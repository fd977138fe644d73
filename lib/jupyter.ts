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
  await Deno.jupyter.display(value, {
    raw: options.raw ?? false,
    update: options.update ?? false,
    display_id: options.displayId,
  });
  return true;
}

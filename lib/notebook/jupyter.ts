/**
 * Showing values in a notebook while a cell runs (the display protocol itself, which objects implement, is in
 * `display.ts`). `Deno.jupyter` exists only inside the kernel (reading it elsewhere throws), so it is only touched
 * behind `inJupyter`.
 *
 * @module
 */

import { bundleOf, inJupyter, JUPYTER_DISPLAY, type JupyterDisplayable, settle } from "./display.ts";

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
 * import { display } from "@nanolm/nanolm/notebook";
 * const shown = await display({ "text/plain": "hello" }, { raw: true });
 * if (shown) throw new Error("deno test is no Jupyter kernel: nothing is shown");
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

/**
 * Shows values in the notebook now, one output each; outside Jupyter prints their plain-text form. End a cell with
 * `await show(x)` rather than with `x`: the cell then has no result, so no empty `Out[n]:` follows the display (the
 * Deno kernel (2.9) sends a cell's result late, so nanolm's objects display themselves from inside the cell, see
 * `cellResult`, and the result left behind is empty).
 *
 * @example
 * ```ts
 * import { show, tableDisplay } from "@nanolm/nanolm/notebook";
 * // A table in a notebook; in a terminal, its aligned text on the console.
 * const printed: unknown[] = [];
 * const log = console.log;
 * console.log = (...args: unknown[]) => printed.push(...args);
 * try {
 *   await show(tableDisplay([{ run: "a", loss: 3.2 }]));
 * } finally {
 *   console.log = log;
 * }
 * if (printed.join("\n") !== "run  loss\n---  ----\na     3.2") throw new Error(printed.join("\n"));
 * ```
 */
export async function show(...values: unknown[]): Promise<void> {
  for (const value of values) {
    if (inJupyter()) {
      await display(value, { raw: !isDisplayable(value) && isBundle(value) });
    } else if (isDisplayable(value)) {
      const text = (await bundleOf(value))["text/plain"];
      console.log(typeof text === "string" ? text : value);
    } else {
      console.log(value);
    }
  }
}

/** A plain MIME bundle (`{"text/html": ...}`), which the kernel shows as it is. */
function isBundle(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    Object.keys(value).length > 0 && Object.keys(value).every((k) => /^[a-z]+\/[-+.\w]+$/.test(k));
}

/**
 * Tables of records, rendered as aligned plain text (terminal) and as HTML (notebooks, reports), and displayable
 * in Jupyter.
 *
 * @module
 */
import { cellResult, escapeHtml, JUPYTER_DISPLAY, type JupyterDisplayable, type MimeBundle } from "./display.ts";

/** A row: column name to value. */
export type TableRow = Record<string, unknown>;

/** Options of the table renderers. */
export interface TableOptions {
  /** Columns in order (default: the keys of the rows, in first-seen order). */
  columns?: string[];
  /** A caption above the table. */
  title?: string;
}

/**
 * Formats a cell: integers below 10^12 with thousands separators, other numbers with 4 significant digits (scientific beyond
 * 1e6 or below 1e-3), `null`/`undefined` as `–`, objects as JSON.
 *
 * @example
 * ```ts
 * import { formatCell } from "./table.ts";
 * console.assert(formatCell(2127057600) === "2,127,057,600" && formatCell(4.513e12) === "4.513e+12");
 * ```
 */
export function formatCell(value: unknown): string {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return String(value);
    if (Number.isInteger(value) && Math.abs(value) < 1e12) return value.toLocaleString("en-US");
    const a = Math.abs(value);
    return a !== 0 && (a >= 1e6 || a < 1e-3) ? value.toExponential(3) : String(Number(value.toPrecision(4)));
  }
  if (typeof value === "string") return value;
  if (typeof value === "bigint" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

function columnsOf(rows: TableRow[], options: TableOptions): string[] {
  if (options.columns) return options.columns;
  const seen = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) seen.add(k);
  return [...seen];
}

/**
 * The rows as an aligned plain-text table (numbers right-aligned).
 *
 * @example
 * ```ts
 * import { textTable } from "./table.ts";
 * console.log(textTable([{ component: "attention", parameters: 1048576 }, { component: "lm head", parameters: 12 }]));
 * ```
 */
export function textTable(rows: TableRow[], options: TableOptions = {}): string {
  const columns = columnsOf(rows, options);
  const cells = rows.map((r) => columns.map((c) => formatCell(r[c])));
  const numeric = columns.map((c) => rows.length > 0 && rows.every((r) => r[c] == null || typeof r[c] === "number"));
  const widths = columns.map((c, j) => Math.max(c.length, ...cells.map((row) => row[j].length)));
  const line = (values: string[]) =>
    values.map((v, j) => (numeric[j] ? v.padStart(widths[j]) : v.padEnd(widths[j]))).join("  ").trimEnd();
  const out = [line(columns), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)];
  if (options.title) out.unshift(options.title);
  return out.join("\n");
}

/**
 * The rows as an HTML `<table>`.
 *
 * @example
 * ```ts
 * import { htmlTable } from "./table.ts";
 * console.assert(htmlTable([{ a: 1 }]).includes("<td style=\"text-align:right\">1</td>"));
 * ```
 */
export function htmlTable(rows: TableRow[], options: TableOptions = {}): string {
  const columns = columnsOf(rows, options);
  const numeric = columns.map((c) => rows.length > 0 && rows.every((r) => r[c] == null || typeof r[c] === "number"));
  const align = (j: number) => (numeric[j] ? ' style="text-align:right"' : "");
  const head = columns.map((c, j) => `<th${align(j)}>${escapeHtml(c)}</th>`).join("");
  const body = rows.map((r) =>
    `<tr>${columns.map((c, j) => `<td${align(j)}>${escapeHtml(formatCell(r[c]))}</td>`).join("")}</tr>`
  ).join("\n");
  const caption = options.title ? `<caption>${escapeHtml(options.title)}</caption>` : "";
  return `<table>${caption}<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody></table>`;
}

/**
 * A table that a notebook cell shows as HTML (and as text in plain frontends).
 *
 * @example
 * ```ts
 * import { JUPYTER_DISPLAY } from "./display.ts";
 * import { tableDisplay } from "./table.ts";
 * const t = tableDisplay([{ step: 10, loss: 3.21 }], { title: "Progress" });
 * console.assert(typeof (await t[JUPYTER_DISPLAY]())["text/html"] === "string");
 * ```
 */
export function tableDisplay(
  rows: TableRow[],
  options: TableOptions = {},
): JupyterDisplayable & { rows: TableRow[] } {
  return {
    rows,
    [JUPYTER_DISPLAY]: (): Promise<MimeBundle> =>
      cellResult({ "text/html": htmlTable(rows, options), "text/plain": textTable(rows, options) }),
  };
}

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
 * Formats a cell: integers below 10^12 with thousands separators, other numbers with 4 significant digits
 * (scientific beyond 1e6 or below 1e-3, without trailing zeros: a learning rate of 3e-4 reads `3e-4`),
 * `null`/`undefined` as `–`, objects as JSON.
 *
 * @example
 * ```ts
 * import { formatCell } from "@nanolm/nanolm/notebook";
 * const cases: [unknown, string][] = [
 *   [2127057600, "2,127,057,600"],
 *   [4.513e12, "4.513e+12"],
 *   [3.14159, "3.142"],
 *   [2e-5, "2e-5"],
 *   [3.5e-4, "3.5e-4"],
 *   [null, "–"],
 *   [{ lr: 0.001 }, '{"lr":0.001}'],
 * ];
 * for (const [value, text] of cases) {
 *   if (formatCell(value) !== text) throw new Error(`${formatCell(value)}, not ${text}`);
 * }
 * ```
 */
export function formatCell(value: unknown): string {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return String(value);
    if (Number.isInteger(value) && Math.abs(value) < 1e12) return value.toLocaleString("en-US");
    const a = Math.abs(value);
    if (a === 0 || (a < 1e6 && a >= 1e-3)) return String(Number(value.toPrecision(4)));
    return value.toExponential(3).replace(/\.?0+e/, "e");
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
 * import { textTable } from "@nanolm/nanolm/notebook";
 * const text = textTable([{ component: "attention", parameters: 1048576 }, { component: "lm head", parameters: 12 }]);
 * const expected = [
 *   "component  parameters",
 *   "---------  ----------",
 *   "attention   1,048,576",
 *   "lm head            12",
 * ].join("\n");
 * if (text !== expected) throw new Error(text);
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
 * import { htmlTable } from "@nanolm/nanolm/notebook";
 * const html = htmlTable([{ name: "<b>", n: 1 }], { title: "Runs" });
 * if (!html.includes("<caption>Runs</caption>")) throw new Error("the title is the caption");
 * // Numbers align right; text is escaped.
 * if (!html.includes('<td>&lt;b&gt;</td><td style="text-align:right">1</td>')) throw new Error(html);
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
 * import { htmlTable, JUPYTER_DISPLAY, tableDisplay, textTable } from "@nanolm/nanolm/notebook";
 * const rows = [{ step: 10, loss: 3.21 }];
 * const bundle = await tableDisplay(rows, { title: "Progress" })[JUPYTER_DISPLAY]();
 * if (bundle["text/html"] !== htmlTable(rows, { title: "Progress" })) throw new Error("HTML for notebooks");
 * if (bundle["text/plain"] !== textTable(rows, { title: "Progress" })) throw new Error("text for terminals");
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

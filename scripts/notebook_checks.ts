/**
 * Checks of notebooks as a reader sees them, used by `scripts/run_notebooks.ts`: their markdown (prose, not a
 * column of headings), their executed outputs (no errors, no empty `Out[n]:`), and the headings of their HTML
 * export.
 *
 * @module
 */

/** The parts of a notebook cell these checks read. */
export interface NotebookCell {
  /** `markdown`, `code` or `raw`. */
  cell_type: string;
  /** The cell's text, whole or as lines. */
  source: string | string[];
  /** A code cell's outputs. */
  outputs?: {
    output_type: string;
    ename?: string;
    evalue?: string;
    name?: string;
    text?: string | string[];
    data?: Record<string, unknown>;
  }[];
}

const text = (s: string | string[] | undefined) => (Array.isArray(s) ? s.join("") : s ?? "");

/** Longest heading a reader takes for a heading, not a sentence. */
const MAX_HEADING = 80;

/** A heading's problem, if it reads as a stray `#` or a line of prose. */
function headingProblem(heading: string): string | null {
  if (heading === "") return "an empty heading (a line of only #)";
  if (heading.startsWith("#")) return `a heading that shows a literal "#": "${heading.slice(0, 40)}"`;
  if (heading.length > MAX_HEADING) return `a line of prose as a heading: "${heading.slice(0, 40)}..."`;
  if (/[.,;]$/.test(heading)) return `a sentence as a heading: "${heading.slice(0, 40)}"`;
  return null;
}

/**
 * Problems of the notebook's markdown: a prose line written as a heading (every line starting with `# ` renders as
 * a large heading), a title showing a literal `#`, stray `#` lines, not exactly one title (level 1) first.
 *
 * @example
 * ```ts
 * import { markdownProblems } from "./notebook_checks.ts";
 * const cells = [{ cell_type: "markdown", source: "# # 1. Title\n#\n# A sentence of prose." }];
 * console.log(markdownProblems(cells).length); // 3
 * ```
 */
export function markdownProblems(cells: readonly NotebookCell[]): string[] {
  const problems: string[] = [];
  let titles = 0;
  cells.forEach((cell, i) => {
    if (cell.cell_type !== "markdown") return;
    let fenced = false;
    for (const line of text(cell.source).split("\n")) {
      if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
      const m = fenced ? null : line.match(/^(#{1,6})(?:\s+(.*))?$/);
      if (!m) continue;
      if (m[1].length === 1) titles++;
      const problem = headingProblem((m[2] ?? "").trim());
      if (problem) problems.push(`markdown cell ${i}: ${problem}`);
    }
  });
  const first = cells[0];
  if (!first || first.cell_type !== "markdown" || !/^# \S/.test(text(first.source))) {
    problems.push("the first cell is not a markdown cell starting with the title (# Title)");
  }
  if (titles !== 1) problems.push(`${titles} level-1 headings (one title expected)`);
  return problems;
}

/**
 * Problems of an executed notebook's outputs: errors, errors written to stderr, and results that show nothing
 * but an `Out[n]:` prompt (end such a cell with `await show(x)`).
 *
 * @example
 * ```ts
 * import { outputProblems } from "./notebook_checks.ts";
 * const cells = [{ cell_type: "code", source: "x", outputs: [{ output_type: "execute_result", data: {} }] }];
 * console.log(outputProblems(cells)); // ["cell 0: an empty result (Out[n]: with nothing after it)"]
 * ```
 */
export function outputProblems(cells: readonly NotebookCell[]): string[] {
  const problems: string[] = [];
  cells.forEach((c, i) => {
    for (const o of c.outputs ?? []) {
      if (o.output_type === "error") problems.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
      const t = text(o.text);
      if (o.output_type === "stream" && o.name === "stderr" && /\berror\b/i.test(t)) {
        problems.push(`cell ${i} wrote an error to stderr: ${t.slice(0, 500)}`);
      }
      if (o.output_type === "execute_result") {
        const data = o.data ?? {};
        const shown = Object.values(data).some((v) => text(v as string | string[]).trim() !== "");
        if (!shown) problems.push(`cell ${i}: an empty result (Out[n]: with nothing after it)`);
      }
    }
  });
  return problems;
}

/** The headings of an HTML page, as text (tags and nbconvert's ¶ anchors removed), with their level. */
export function htmlHeadings(html: string): { level: number; text: string }[] {
  const out: { level: number; text: string }[] = [];
  for (const m of html.matchAll(/<h([1-6])\b[^>]*>([\s\S]*?)<\/h\1>/gi)) {
    const inner = m[2].replace(/<a class="anchor-link"[\s\S]*?<\/a>/g, "").replace(/<[^>]+>/g, "")
      .replace(/&#182;|¶/g, "").replace(/&amp;/g, "&").replace(/&lt;/g, "<").replace(/&gt;/g, ">")
      .replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/\s+/g, " ").trim();
    out.push({ level: Number(m[1]), text: inner });
  }
  return out;
}

/**
 * Problems of the headings a reader sees in a notebook's HTML export: not exactly one title, a heading showing a
 * literal `#`, a sentence or a line of prose as a heading.
 *
 * @example
 * ```ts
 * import { headingProblems } from "./notebook_checks.ts";
 * const html = '<h1 id="t"># 1. Title<a class="anchor-link" href="#t">&#182;</a></h1><h1>Some prose here.</h1>';
 * console.log(headingProblems(html).length); // 3: two titles, a literal "#", a sentence
 * ```
 */
export function headingProblems(html: string): string[] {
  const headings = htmlHeadings(html);
  const problems: string[] = [];
  const titles = headings.filter((h) => h.level === 1).length;
  if (titles !== 1) problems.push(`the page has ${titles} level-1 headings (one title expected)`);
  for (const h of headings) {
    const problem = headingProblem(h.text);
    if (problem) problems.push(`h${h.level}: ${problem}`);
  }
  return problems;
}

/**
 * The notebook checks of `deno task notebooks` (scripts/notebook_checks.ts): markdown written with `# ` before every
 * line (as all six notebooks were) fails, the committed notebooks pass, an empty `Out[n]:` fails, and the headings
 * of an HTML export are read as a reader sees them.
 */
import { assert, assertEquals } from "./assert.ts";
import { headingProblems, htmlHeadings, markdownProblems, outputProblems } from "../scripts/notebook_checks.ts";

const root = new URL("../", import.meta.url).pathname;

Deno.test("markdown with '# ' before every line fails: literal '#' in the title, stray '#', prose as headings", () => {
  // The first cell of notebooks/01_tokenizer.ipynb as it was.
  const old = [{
    cell_type: "markdown",
    source: [
      "# # 1. A byte-level BPE tokenizer\n",
      "#\n",
      "# Language models read integers, not text. This notebook trains a byte-level BPE tokenizer (the GPT-2 recipe of\n",
      "# CS336 assignment 1) on the default corpus, *Moby-Dick*, then looks at what it learned: the merges, how a sentence\n",
    ],
  }, { cell_type: "markdown", source: "# ## Training\n#\n# BPE starts from the 256 byte values." }];
  const problems = markdownProblems(old);
  assert(problems.some((p) => p.includes('literal "#"')), problems.join("\n"));
  assert(problems.some((p) => p.includes("an empty heading")), problems.join("\n"));
  assert(problems.some((p) => p.includes("prose as a heading")), problems.join("\n"));
  assert(problems.some((p) => p.includes("sentence as a heading")), problems.join("\n"));
  // The same text as markdown reads as a title, prose and a section heading.
  const fixed = [{
    cell_type: "markdown",
    source: "# 1. A byte-level BPE tokenizer\n\nLanguage models read integers, not text.\n\n```sh\n# a comment\n```",
  }, { cell_type: "markdown", source: "## Training\n\nBPE starts from the 256 byte values." }];
  assertEquals(markdownProblems(fixed), []);
  assertEquals(markdownProblems([fixed[1]]).length, 2); // no title first, no level-1 heading
});

Deno.test("the committed notebooks read as documents", async () => {
  const names = [...Deno.readDirSync(`${root}notebooks`)].map((e) => e.name).filter((n) => n.endsWith(".ipynb"));
  assert(names.length >= 7, names.join());
  for (const name of names) {
    const nb = JSON.parse(await Deno.readTextFile(`${root}notebooks/${name}`));
    assertEquals(markdownProblems(nb.cells), [], name);
  }
});

Deno.test("an empty result is an empty Out[n]: and fails; a shown result passes", () => {
  const cell = (data: Record<string, unknown>) => ({
    cell_type: "code",
    source: "x",
    outputs: [{ output_type: "execute_result", data }],
  });
  assertEquals(outputProblems([cell({})]).length, 1);
  assertEquals(outputProblems([cell({ "text/plain": "" })]).length, 1);
  assertEquals(outputProblems([cell({ "text/plain": "42" })]), []);
});

Deno.test("the headings of an HTML export, as a reader sees them", () => {
  const page = '<h1 id="a">1. Tokens<a class="anchor-link" href="#a">&#182;</a></h1><p>x</p>' +
    '<h2 id="b">Training &amp; more<a class="anchor-link" href="#b">&#182;</a></h2>';
  assertEquals(htmlHeadings(page), [{ level: 1, text: "1. Tokens" }, { level: 2, text: "Training & more" }]);
  assertEquals(headingProblems(page), []);
  const old = '<h1 id="1."># 1. Tokens</h1><h1 id="x">Language models read integers, not text.</h1>';
  assertEquals(headingProblems(old).length, 3);
});

import { assert, assertEquals } from "../../tests/assert.ts";
import { JUPYTER_DISPLAY } from "./display.ts";
import { formatCell, htmlTable, tableDisplay, textTable } from "./table.ts";

Deno.test("formatCell", () => {
  assertEquals(
    [1234567, 0.5, 3.14159, 4.513e12, 1e-5, 0, NaN, null, undefined, "x", true, [1, 2]].map(formatCell),
    ["1,234,567", "0.5", "3.142", "4.513e+12", "1e-5", "0", "NaN", "–", "–", "x", "true", "[1,2]"],
  );
});

Deno.test("textTable aligns text left and numbers right", () => {
  const rows = [{ name: "attention", params: 1048576 }, { name: "lm head", params: 12, note: "tied" }];
  assertEquals(textTable(rows, { title: "Parameters" }).split("\n"), [
    "Parameters",
    "name          params  note",
    "---------  ---------  ----",
    "attention  1,048,576  –",
    "lm head           12  tied",
  ]);
  assertEquals(textTable(rows, { columns: ["params"] }).split("\n")[2], "1,048,576");
});

Deno.test("htmlTable escapes and aligns; tableDisplay offers HTML and text", async () => {
  const rows = [{ token: "<eos>", count: 3 }];
  const html = htmlTable(rows, { title: "a & b" });
  assert(html.includes("<caption>a &amp; b</caption>"));
  assert(html.includes('<td>&lt;eos&gt;</td><td style="text-align:right">3</td>'));
  const bundle = await tableDisplay(rows)[JUPYTER_DISPLAY]();
  assertEquals(bundle["text/html"], htmlTable(rows));
  assertEquals(bundle["text/plain"], textTable(rows));
});

/**
 * The example rules of `check_examples.ts` on small sources, and `doc_test.ts`'s reading of `deno test --doc`
 * output.
 */
import { assert, assertEquals } from "../tests/assert.ts";
import { docExamples, exampleProblems, exportedCallables, exportedNames, type PublicApi } from "./check_examples.ts";
import { failedExamples } from "./doc_test.ts";

const api: PublicApi = {
  entries: new Map([["@nanolm/nanolm", "mod.ts"], ["@nanolm/nanolm/io", "lib/io/mod.ts"]]),
  names: new Map([["readSafetensors", ["@nanolm/nanolm/io"]], ["Tokenizer", ["@nanolm/nanolm"]]]),
};

/** A doc comment holding one example with these code lines, indented like a class member's. */
const doc = (fence: string, ...lines: string[]) =>
  [
    "  /**",
    "   * Text.",
    "   *",
    "   * @example",
    `   * ${fence}`,
    ...lines.map((l) => `   * ${l}`),
    "   * ```",
    "   */",
  ]
    .join("\n");

Deno.test("docExamples: fence line, language, ignore, and the code without the comment's stars", () => {
  const src = `const a = 1;\n${doc("```ts ignore", "const x = 1;", "", "if (x) throw new Error();")}\n${
    doc("```sh", "deno task train")
  }`;
  const found = docExamples(src);
  assertEquals(found.map((e) => [e.line, e.lang, e.ignore]), [[6, "ts", true], [16, "sh", false]]);
  assertEquals(found[0].code, "const x = 1;\n\nif (x) throw new Error();");
});

Deno.test("exampleProblems: console.assert, no check, and imports that a user could not copy", () => {
  const problems = (fence: string, ...lines: string[]) => exampleProblems(docExamples(doc(fence, ...lines))[0], api);
  assertEquals(
    problems("```ts", 'import { Tokenizer } from "@nanolm/nanolm";', "if (!Tokenizer) throw new Error();"),
    [],
  );
  const logged = problems("```ts", 'import { Tokenizer } from "@nanolm/nanolm";', "console.assert(Tokenizer);");
  assertEquals(logged.length, 2); // console.assert, and nothing that throws
  assert(logged[0].startsWith("uses console.assert"), logged[0]);
  assert(logged[1].startsWith("checks nothing"), logged[1]);
  const relative = problems("```ts", 'import { readSafetensors } from "./safetensors.ts";', "throw 0;");
  assertEquals(relative, [
    'imports readSafetensors from "./safetensors.ts": import it from "@nanolm/nanolm/io", as a user would',
  ]);
  // A helper no entry publishes can only be reached relatively.
  assertEquals(problems("```ts", 'import { helper } from "./util.ts";', "if (!helper) throw 0;"), []);
  assertEquals(problems("```ts", 'import { assert } from "jsr:@std/assert";', "throw 0;").length, 1);
  assertEquals(problems("```ts", 'import { z } from "npm:zod@^4";', "throw 0;"), []);
  assertEquals(problems("```ts", 'import { x } from "@nanolm/nanolm/nope";', "throw 0;").length, 1);
  // Blocks that are not run need no check, but must still import what a user can copy.
  assertEquals(problems("```ts ignore", 'import { Tokenizer } from "@nanolm/nanolm";', "await download();"), []);
  assertEquals(problems("```ts ignore", 'import { readSafetensors } from "./safetensors.ts";').length, 1);
  assertEquals(problems("```sh", "console.assert(1)"), []);
});

Deno.test("exportedCallables: the whole doc comment, also when its text holds /** (a glob)", () => {
  const src = "/** Not this one. */\nconst a = 1;\n" +
    "/**\n * Globs.\n *\n * @example\n * ```ts\n * f(`runs/**\\/seed-*`);\n * ```\n */\nexport function f() {}\n" +
    "/** No example; runs/** only. */\nexport function g() {}\n";
  assertEquals([...exportedCallables(src)], [["f", true], ["g", false]]);
});

Deno.test("exportedNames: declarations and export lists, with types and renames", () => {
  const src = 'export { a, type B, c as d } from "./x.ts";\nexport type { E } from "./y.ts";\n' +
    "export async function f() {}\nexport class G {}\nexport const h = 1;\nexport interface I {}\n/** export const no = 1; */";
  assertEquals(exportedNames(src).sort(), ["B", "E", "G", "I", "a", "d", "f", "h"]);
});

Deno.test("failedExamples: runtime failures and type errors, as file:line of the opening fence", () => {
  const run = "\x1b[1m ERRORS \x1b[0m\n./lib/io/paths.ts#173-179.ts => ./lib/io/paths.ts#173-179.ts:3:6\n" +
    "error: Error: not relative\n\x1b[1m FAILURES \x1b[0m\n" +
    "file:///repo/lib/io/paths.ts#173-179.ts => ./lib/io/paths.ts#173-179.ts:3:6\n" +
    "./lib/train/meter.ts#87-96.ts (uncaught error)\nFAILED | 3 passed | 2 failed\n";
  assertEquals(failedExamples(run), ["lib/io/paths.ts:173", "lib/train/meter.ts:87"]);
  const typeErrors = "Check mod.ts#10-36.ts\nTS2305 [ERROR]: Module has no exported member 'x'.\n" +
    "    at file:///repo/lib/util/validate.ts#48-57.ts:2:23\n\n" +
    "TS2339 [ERROR]: Property 'dispose' does not exist on type 'void'.\n    at file:///repo/README.md#85-113.ts:40:12\n" +
    "\nerror: Type checking failed.\n";
  assertEquals(failedExamples(typeErrors), ["lib/util/validate.ts:48", "README.md:85"]);
});

import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { findJsonError, kindOf, lineAndColumn, parseJson, quoteForMessage } from "./json.ts";
import { Rng } from "./random.ts";

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

Deno.test("findJsonError accepts exactly what JSON.parse accepts (hand-picked edge cases)", () => {
  const texts = [
    "",
    " ",
    "{}",
    "[]",
    " [ ] ",
    "{ }",
    "0",
    "-0",
    "01",
    "1.",
    ".5",
    "1e",
    "1e+",
    "1E-7",
    "-",
    "+1",
    "2.5e3",
    "true",
    "tru",
    "nul",
    "null x",
    '"a"',
    '"a',
    '"\\u12G4"',
    '"\\u1234"',
    '"\\x"',
    '"\t"',
    '"\\/"',
    "[1,]",
    "[,1]",
    "[1 2]",
    '{"a"}',
    '{"a":}',
    '{"a":1,}',
    '{,"a":1}',
    '{"a" 1}',
    "{1:2}",
    "{'a':1}",
    "[[[[]]]]",
    "[[[[]]]",
    '{"a":[{"b":null}],"c":"d"}',
    "\ufeff{}",
    "\u00a0{}",
    "[NaN]",
    "[Infinity]",
    '"\\"',
    '"\\\\"',
    '"\ud800"',
  ];
  for (const text of texts) {
    const err = findJsonError(text);
    assertEquals(err === null, parses(text), JSON.stringify(text));
  }
});

Deno.test("findJsonError agrees with JSON.parse on randomly damaged JSON", () => {
  const rng = new Rng(11);
  const alphabet = '{}[],:" \\-+.0123456789eEtrufalsn\nxu\t';
  const value = (depth: number): unknown => {
    const r = rng.int(depth > 3 ? 4 : 6);
    if (r === 0) return rng.int(3) === 0 ? null : rng.int(2) === 0;
    if (r === 1) return (rng.uniform() - 0.5) * 10 ** rng.int(8);
    if (r === 2) return 's"\\\n\u0001é'.slice(rng.int(6));
    if (r === 3) return rng.int(1000);
    if (r === 4) return Array.from({ length: rng.int(4) }, () => value(depth + 1));
    return Object.fromEntries(Array.from({ length: rng.int(4) }, (_, k) => [`k${k}`, value(depth + 1)]));
  };
  let invalid = 0;
  for (let trial = 0; trial < 3000; trial++) {
    let text = JSON.stringify(value(0), null, rng.int(2) ? 1 : undefined);
    for (let edits = rng.int(3); edits > 0; edits--) {
      const at = rng.int(text.length + 1);
      const ch = alphabet[rng.int(alphabet.length)];
      const op = rng.int(3);
      text = text.slice(0, at) + (op === 1 ? "" : ch) + text.slice(op === 0 ? at : at + 1);
    }
    const err = findJsonError(text);
    assertEquals(err === null, parses(text), JSON.stringify(text));
    if (err) {
      invalid++;
      assert(err.offset >= 0 && err.offset <= text.length, JSON.stringify(text));
    }
  }
  assert(invalid > 500, `only ${invalid} damaged texts`);
});

Deno.test("parseJson names the file, line and column and never quotes the text", () => {
  assertEquals(parseJson(' {"a": [1, "x"]} ', "ok.json"), { a: [1, "x"] });
  const cases: Array<[string, string]> = [
    ["root:x:0:0:root:/root:/bin/bash\n", "unexpected character at line 1, column 1"],
    ['{\n  "user": "root",\n  "password": hunter2\n}', "unexpected character at line 3, column 15"],
    ['{"a": "unterminated secret', "unterminated string at line 1, column 7"],
    ['{"a": 1', "unexpected end of input at line 1, column 8"],
    ['{"a": 1} secret', "unexpected content after the JSON value at line 1, column 10"],
    ["[1, 2,, secret]", "unexpected character at line 1, column 7"],
    ["[1.]", "invalid number at line 1, column 2"],
    ['{"a" secret}', 'expected ":" after a property name at line 1, column 6'],
  ];
  for (const [text, problem] of cases) {
    const err = assertThrows(() => parseJson(text, "f.json"), `f.json: invalid JSON: ${problem}`);
    assert(!/root|secret|hunter/.test(err.message), err.message);
  }
});

Deno.test("lineAndColumn and kindOf", () => {
  assertEquals(lineAndColumn("a\nbc\nd", 0), [1, 1]);
  assertEquals(lineAndColumn("a\nbc\nd", 3), [2, 2]);
  assertEquals(lineAndColumn("a\nbc\nd", 5), [3, 1]);
  assertEquals([null, true, 1, "s", [], {}, undefined].map(kindOf), [
    "null",
    "a boolean",
    "a number",
    "a string",
    "an array",
    "an object",
    "missing",
  ]);
});

Deno.test("quoteForMessage escapes terminal controls and cuts long values", () => {
  assertEquals(quoteForMessage('a"b'), '"a\\"b"');
  assertEquals(
    quoteForMessage("\u001b]0;x\u0007\u009b31m\u202egnp.exe"),
    '"\\u001b]0;x\\u0007\\u009b31m\\u202egnp.exe"',
  );
  assertEquals(quoteForMessage("é€😀"), '"é€😀"');
  assertEquals(quoteForMessage("abcdef", 3), '"abc"…');
});

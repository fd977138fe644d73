import { assertEquals } from "../../tests/assert.ts";
import { Rng } from "../util/random.ts";
import { pretokenize, pretokenizeRegex } from "./pretokenize.ts";

Deno.test("scanner cuts GPT-2 pieces on hand-picked cases", () => {
  const cases: Array<[string, string[]]> = [
    ["Hello, world!", ["Hello", ",", " world", "!"]],
    ["I'll've 'S 's", ["I", "'ll", "'ve", " '", "S", " '", "s"]],
    ["a  b   \n\n c", ["a", " ", " b", "   \n\n", " c"]],
    ["end  ", ["end", "  "]],
    ["x\n\ny", ["x", "\n", "\n", "y"]],
    ["12,345 ٣٤ ½", ["12", ",", "345", " ٣٤", " ½"]],
    ["🙃🙃 a🙃", ["🙃🙃", " a", "🙃"]],
    ["", []],
  ];
  for (const [text, pieces] of cases) {
    assertEquals(pretokenize(text), pieces, JSON.stringify(text));
    assertEquals(pretokenizeRegex(text), pieces, `regex on ${JSON.stringify(text)}`);
  }
});

Deno.test("scanner equals the reference regex on random text", () => {
  const alphabet = [
    ..."aZé'sllvetdrm   \n\n\t\r1٣½!.-_中ß",
    "🙃",
    "𝔘",
    "𝟙",
    "\u00a0",
    "\u3000",
    "\x85",
    "\ufeff",
    "\u2028",
    "\x0b",
    "\x1c",
    "\ud800",
    "\udc00",
  ];
  const rng = new Rng(3);
  for (let t = 0; t < 20000; t++) {
    let text = "";
    const n = rng.int(24);
    for (let i = 0; i < n; i++) text += alphabet[rng.int(alphabet.length)];
    assertEquals(pretokenize(text), pretokenizeRegex(text), JSON.stringify(text));
  }
});

Deno.test("scanner equals the reference regex around every BMP code point", () => {
  let text = "";
  for (let c = 0; c < 0x10000; c += 1) {
    const ch = String.fromCharCode(c);
    text += ` ${ch}a${ch}${ch}1 ${ch}\n`;
  }
  assertEquals(pretokenize(text), pretokenizeRegex(text));
});

import { assert, assertEquals } from "../../tests/assert.ts";
import { JUPYTER_DISPLAY } from "../notebook/display.ts";
import { tokenizerBundle, tokenSplit, tokenSplitBundle, tokenText } from "./view.ts";
import { Tokenizer } from "./tokenizer.ts";

function tinyTokenizer(): Tokenizer {
  const bytes = (s: string) => new TextEncoder().encode(s);
  const vocab = new Map<number, Uint8Array>();
  for (let b = 0; b < 256; b++) vocab.set(b, new Uint8Array([b]));
  vocab.set(256, bytes("th"));
  vocab.set(257, bytes("the"));
  return new Tokenizer(vocab, [[bytes("t"), bytes("h")], [bytes("th"), bytes("e")]], ["<|endoftext|>"]);
}

Deno.test("token split: one coloured span per token, escaped, with the count", () => {
  const tok = tinyTokenizer();
  const b = tokenSplitBundle(tok, "the <b>");
  const html = b["text/html"] as string;
  assertEquals((html.match(/<span/g) ?? []).length, tok.encode("the <b>").length);
  assert(html.includes("&lt;") && !html.includes("<b>"), "token text is escaped");
  assert((b["text/plain"] as string).startsWith(`${tok.encode("the <b>").length} tokens, 7 bytes`));
  assert((b["text/plain"] as string).includes("|the|·|<|b|>|"));
});

Deno.test("tokenizer view: vocabulary, specials, merges and a split; Tokenizer displays it", async () => {
  const tok = tinyTokenizer();
  const plain = tokenizerBundle(tok, "the")["text/plain"] as string;
  assert(plain.includes("vocabulary size: 259"), plain);
  assert(plain.includes("<|endoftext|> (258)"), plain);
  assert(plain.includes("t + h") && plain.includes("th + e"), plain);
  const shown = await tok[JUPYTER_DISPLAY]();
  assert((shown["text/html"] as string).includes("<span"));
  const split = await tokenSplit(tok, "the")[JUPYTER_DISPLAY]();
  assert((split["text/plain"] as string).startsWith("1 tokens"));
});

Deno.test("tokenText shows invalid UTF-8 as escapes", () => {
  assertEquals(tokenText(new Uint8Array([0xe2, 0x82])), "\\xe2\\x82");
  assertEquals(tokenText(new TextEncoder().encode("é")), "é");
});

import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { gpt2Tokenizer } from "../../tests/gpt2_oracle.ts";
import { encodeFile } from "./encode_file.ts";
import { tokenDtypeForPath } from "./token_files.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";

const TEXT = "Once upon a time, there was a cat.\n\nIt's 42°C — très chaud! 🙃<|endoftext|>The end.  \n";

Deno.test("encodeFile writes raw little-endian uint16 / uint32 ids equal to encode, with or without Workers", async () => {
  const tok = gpt2Tokenizer();
  const dir = await Deno.makeTempDir();
  try {
    const text = TEXT.repeat(3000);
    await Deno.writeTextFile(`${dir}/in.txt`, text);
    const expected = tok.encode(text);
    for (const workers of [1, 2]) {
      const input = workers === 2 ? new URL(`file://${dir}/in.txt`) : `${dir}/in.txt`;
      const result = await encodeFile(input, `${dir}/out${workers}.bin`, tok, { workers });
      assertEquals(result.dtype, "uint16");
      assertEquals(result.tokens, expected.length);
      assertEquals(Array.from(new Uint16Array((await Deno.readFile(`${dir}/out${workers}.bin`)).buffer)), expected);
    }
    const wide = await encodeFile(`${dir}/in.txt`, `${dir}/out.u32`, tok, { workers: 1 });
    assertEquals(wide.dtype, "uint32");
    const bytes = await Deno.readFile(`${dir}/out.u32`);
    assertEquals(bytes.length, 4 * expected.length);
    assertEquals(Array.from(new Uint32Array(bytes.buffer)), expected);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encodeFile picks the dtype by name and refuses ids that do not fit", async () => {
  assertEquals(tokenDtypeForPath("train.u32"), "uint32");
  assertEquals(tokenDtypeForPath("train.bin"), "uint16");
  const vocab = new Map<number, Uint8Array>();
  for (let b = 0; b < 256; b++) vocab.set(b, new Uint8Array([b]));
  vocab.set(70000, new TextEncoder().encode("<big>"));
  const big = new Tokenizer(vocab, []);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/in.txt`, "hello");
    await assertRejects(() => encodeFile(`${dir}/in.txt`, `${dir}/out.bin`, big), "70001");
    await assertRejects(() => encodeFile(`${dir}/missing.txt`, `${dir}/out.u32`, big), "missing.txt");
    const ok = await encodeFile(`${dir}/in.txt`, `${dir}/out.u32`, big);
    assertEquals(ok.tokens, 5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

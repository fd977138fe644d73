import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { relative } from "node:path";
import { checkInputFile, loadTokenizerFile, resolveRecordedPath } from "./cli_paths.ts";
import { Tokenizer } from "./tokenizer/tokenizer.ts";

const SECRET = "SECRET-CONTENTS-42";

Deno.test("resolveRecordedPath: inside, outside, links out and missing files", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  await Deno.mkdir(`${dir}/run/data`, { recursive: true });
  const tok = `${dir}/run/data/tok.json`;
  await Deno.writeTextFile(tok, "{}");
  await Deno.writeTextFile(`${dir}/run/flat.json`, "{}");
  await Deno.writeTextFile(`${dir}/secret.txt`, SECRET);
  const ckpt = `${dir}/run/ckpt.safetensors`;
  const resolved = async (recorded: string) =>
    await Deno.realPath(await resolveRecordedPath(recorded, ckpt, "tokenizer"));
  assertEquals(await resolved("data/tok.json"), tok); // relative to the folder
  assertEquals(await resolved(relative(Deno.cwd(), tok)), tok); // as written at training time, from the cwd
  assertEquals(await resolved(tok), tok); // absolute, inside
  assertEquals(await resolved("old/place/flat.json"), `${dir}/run/flat.json`); // moved: same name in the folder
  for (const outside of ["../secret.txt", `${dir}/secret.txt`, "data/../../secret.txt", "..", "/etc/passwd"]) {
    const e = await assertRejects(() => resolveRecordedPath(outside, ckpt, "tokenizer"), "pass --tokenizer <path>");
    assert(e.message.includes("leads outside the checkpoint's folder"), e.message);
  }
  await Deno.symlink(`${dir}/secret.txt`, `${dir}/run/link.json`);
  await assertRejects(
    () => resolveRecordedPath("link.json", ckpt, "tokenizer"),
    "is a link out of the checkpoint's folder",
  );
  await assertRejects(() => resolveRecordedPath("data/none.json", ckpt, "tokenizer", "tok"), "was not found in ");
  await assertRejects(() => resolveRecordedPath("data/none.json", ckpt, "tokenizer", "tok"), "pass --tok <path>");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadTokenizerFile loads a tokenizer and names malformed ones without quoting them", async () => {
  const dir = await Deno.makeTempDir();
  const vocab = new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])]));
  vocab.set(256, new Uint8Array([104, 105]));
  const tok = new Tokenizer(vocab, [[new Uint8Array([104]), new Uint8Array([105])]], ["<|endoftext|>"]);
  tok.save(`${dir}/tok.json`);
  const loaded = await loadTokenizerFile(`${dir}/tok.json`);
  assertEquals([loaded.vocabSize, loaded.encode("hi<|endoftext|>")], [tok.vocabSize, tok.encode("hi<|endoftext|>")]);

  const file = JSON.parse(await Deno.readTextFile(`${dir}/tok.json`));
  const cases: [unknown, string][] = [
    [[SECRET], "does not hold a JSON object"],
    [{ ...file, format: SECRET }, 'has no "format": "nanolm-bpe", version 1'],
    [{ ...file, vocab: [[0, "AA=="], [SECRET]] }, "has vocab entry 1 that is not [id < 2^24, base64 bytes]"],
    [{ ...file, vocab: [[2 ** 30, "AA=="]] }, "has vocab entry 0 that is not [id < 2^24, base64 bytes]"],
    [{ ...file, merges: [[1, SECRET]] }, "has merge 0 that is not a pair of token ids"],
    [{ ...file, specialTokens: undefined }, 'has no "specialTokens" object'],
    // Tokenizer.load's own message quotes the bad base64: the quote is dropped.
    [{ ...file, vocab: [[0, `${SECRET}!`], ...file.vocab.slice(1)] }, "is not a valid nanolm tokenizer file"],
  ];
  for (const [json, problem] of cases) {
    await Deno.writeTextFile(`${dir}/bad.json`, JSON.stringify(json));
    const e = await assertRejects(() => loadTokenizerFile(`${dir}/bad.json`, "pass --tokenizer <path>"));
    assert(e.message.startsWith(`tokenizer ${dir}/bad.json `) && e.message.includes(problem), e.message);
    assert(e.message.endsWith("; pass --tokenizer <path>"), e.message);
    assert(!e.message.includes(SECRET), e.message);
  }
  await Deno.writeTextFile(`${dir}/bad.json`, `${SECRET} {`);
  await assertRejects(() => loadTokenizerFile(`${dir}/bad.json`), `tokenizer ${dir}/bad.json is not JSON`);
  await assertRejects(() => checkInputFile(dir, "tokenizer"), `tokenizer ${dir} is a directory, not a file`);
  await assertRejects(
    () => checkInputFile(`${dir}/none`, "input", "fix it"),
    `input ${dir}/none does not exist; fix it`,
  );
  await Deno.remove(dir, { recursive: true });
});

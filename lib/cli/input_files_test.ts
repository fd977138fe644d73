import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { checkInputFile, checkOutputDir } from "./input_files.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { loadTokenizer, saveTokenizer } from "../data/tokenizer_files.ts";

const SECRET = "SECRET-CONTENTS-42";

Deno.test("malformed tokenizer files and bad inputs are named, their contents never quoted", async () => {
  const dir = await Deno.makeTempDir();
  const vocab = new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])]));
  vocab.set(256, new Uint8Array([104, 105]));
  const tok = new Tokenizer(vocab, [[new Uint8Array([104]), new Uint8Array([105])]], ["<|endoftext|>"]);
  saveTokenizer(tok, `${dir}/tok.json`);
  const loaded = await loadTokenizer(`${dir}/tok.json`);
  assertEquals([loaded.vocabSize, loaded.encode("hi<|endoftext|>")], [tok.vocabSize, tok.encode("hi<|endoftext|>")]);

  const file = JSON.parse(await Deno.readTextFile(`${dir}/tok.json`));
  const cases: unknown[] = [
    [SECRET],
    { ...file, format: SECRET },
    { ...file, vocab: [[0, "AA=="], [SECRET]] },
    { ...file, vocab: [[2 ** 30, "AA=="]] },
    { ...file, merges: [[1, SECRET]] },
    { ...file, specialTokens: undefined },
    { ...file, vocab: [[0, `${SECRET}!`], ...file.vocab.slice(1)] },
  ];
  for (const json of [...cases.map((c) => JSON.stringify(c)), `${SECRET} {`]) {
    await Deno.writeTextFile(`${dir}/bad.json`, json);
    const e = await assertRejects(() => loadTokenizer(`${dir}/bad.json`));
    assert(e.message.includes(`${dir}/bad.json`) && !e.message.includes("\n"), e.message);
    assert(!e.message.includes(SECRET), e.message);
  }
  await assertRejects(() => checkInputFile(dir, "tokenizer"), `tokenizer ${dir} is a directory, not a file`);
  await assertRejects(
    () => checkInputFile(`${dir}/none`, "input", "fix it"),
    `input ${dir}/none does not exist; fix it`,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an output folder that is a file, or under one, is refused naming the file; a new one is fine", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/file`, "x");
  await assertRejects(
    () => checkOutputDir(`${dir}/file`, "--out-dir", "pick a folder"),
    `--out-dir ${dir}/file is a file, not a folder; pick a folder`,
  );
  await assertRejects(
    () => checkOutputDir(`${dir}/file/a/b`, "--out-dir"),
    `--out-dir ${dir}/file/a/b cannot be made: ${dir}/file is a file, not a folder`,
  );
  await checkOutputDir(`${dir}/new/deeper`, "--out-dir");
  await checkOutputDir(dir, "--out-dir");
  await checkInputFile(`${dir}/file`, "training data", undefined, { nonEmpty: true }); // one byte is not empty
  await Deno.writeTextFile(`${dir}/empty`, "");
  await assertRejects(
    () => checkInputFile(`${dir}/empty`, "training data", "check --train-data", { nonEmpty: true }),
    `training data ${dir}/empty is empty; check --train-data`,
  );
  await Deno.remove(dir, { recursive: true });
});

import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { TokenDataset } from "../data.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { prepareTextData } from "./prepare.ts";

Deno.test("a local corpus becomes a tokenizer and train/val token files that decode back to the text", async () => {
  const dir = await Deno.makeTempDir();
  const stories = Array.from(
    { length: 60 },
    (_, i) => `Once upon a time, a little ${i % 2 ? "cat" : "dog"} named Tim found ${i} shiny stones.\n<|endoftext|>\n`,
  );
  await Deno.writeTextFile(`${dir}/corpus.txt`, stories.join(""));
  const data = await prepareTextData({
    train: `${dir}/corpus.txt`,
    outDir: `${dir}/out`,
    vocabSize: 300,
    valFraction: 0.1,
  });
  const tokenizer = Tokenizer.load(data.tokenizerPath);
  assertEquals(tokenizer.vocabSize, 300);
  using train = await TokenDataset.open(data.trainData);
  using val = await TokenDataset.open(data.valData);
  assertEquals([train.length, val.length], [data.tokens.train, data.tokens.val]);
  const text = tokenizer.decode(await train.readTokens(0, train.length)) +
    tokenizer.decode(await val.readTokens(0, val.length));
  assertEquals(text, stories.join(""));
  assert(data.tokens.val > 0 && data.tokens.train > 5 * data.tokens.val);
  await assertRejects(
    () => prepareTextData({ train: `${dir}/missing.txt`, outDir: `${dir}/x`, vocabSize: 300 }),
    "missing.txt does not exist",
  );
  await Deno.remove(dir, { recursive: true });
});

import { assert, assertEquals } from "../../tests/assert.ts";
import { TokenDataset } from "./token_files.ts";
import { prepareDefaultData } from "./default_data.ts";

Deno.test("default data: each vocabulary size keeps token files of its own", async () => {
  const dir = await Deno.makeTempDir();
  const maxId = async (path: string) => {
    using ds = await TokenDataset.open(path);
    return await ds.maxTokenId();
  };
  const small = await prepareDefaultData(dir, { vocabSize: 300 });
  const large = await prepareDefaultData(dir, { vocabSize: 400 });
  assert((await maxId(large.trainData)) >= 300, "the 400-token files use ids past 300");
  // Switching back must not reuse the 400-token ids (they trained into NaN).
  const again = await prepareDefaultData(dir, { vocabSize: 300 });
  assertEquals(again.tokens, small.tokens);
  assert((await maxId(again.trainData)) < 300, `${again.trainData} holds ids of another tokenizer`);
  assert((await maxId(again.valData)) < 300);
  assertEquals(again.tokenizer.vocabSize, 300);
  await Deno.remove(dir, { recursive: true });
});

import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { writeCheckpointFile } from "../io/checkpoint_file.ts";
import { parseConfig } from "./config.ts";
import { recordedConfig, resumePoint } from "./resume.ts";

const model = { vocabSize: 32, contextLength: 8, dModel: 16, numLayers: 1, numHeads: 2 };

/** A checkpoint in `dir/run` recording a run whose data sits in `dir/run/data`, with the given train fields. */
async function savedRun(dir: string, train: Record<string, unknown> = {}): Promise<string> {
  const config = parseConfig({
    model,
    train: { trainData: `${dir}/run/data/train.bin`, tokenizer: `${dir}/run/data/tok.json`, lrMax: 5e-4, ...train },
  });
  const path = `${dir}/run/checkpoint.safetensors`;
  await Deno.mkdir(`${dir}/run/data`, { recursive: true });
  await Deno.writeFile(`${dir}/run/data/train.bin`, new Uint8Array(64));
  await Deno.writeTextFile(`${dir}/run/data/tok.json`, "{}");
  const weight = { shape: [2], data: new Float32Array([1, 2]) };
  await writeCheckpointFile(path, {
    step: 7,
    model: new Map([["ln_final.weight", weight]]),
    config: recordedConfig(config, path),
  });
  return path;
}

Deno.test("a resumed run takes the saved config and only the fields given, and says which it replaced", async () => {
  const dir = await Deno.makeTempDir();
  const path = await savedRun(dir, { batchSize: 3, warmupSteps: 5 });
  const alone = await resumePoint(path);
  // The saved settings, not the defaults (lrMax 1e-3, batchSize 32); the data resolved against the checkpoint's
  // folder; the output folder is the checkpoint's.
  assertEquals([alone.config.train.lrMax, alone.config.train.batchSize, alone.config.train.warmupSteps], [5e-4, 3, 5]);
  assertEquals(alone.config.train.trainData, `${dir}/run/data/train.bin`);
  assertEquals(alone.config.train.tokenizer, `${dir}/run/data/tok.json`);
  assertEquals(alone.config.train.outDir, `${dir}/run`);
  assertEquals(alone.overrides, []);
  const more = await resumePoint(path, { given: { train: { steps: 9000, batchSize: 3, outDir: `${dir}/next` } } });
  assertEquals([more.config.train.steps, more.config.train.outDir], [9000, `${dir}/next`]);
  assertEquals(more.overrides, [{ field: "train.steps", saved: 5000, given: 9000 }]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a resume cannot change the model", async () => {
  const dir = await Deno.makeTempDir();
  const path = await savedRun(dir);
  const flag = (field: string) => field === "model.dModel" ? "--d-model" : field;
  await assertRejects(
    () => resumePoint(path, { given: { model: { dModel: 32 } }, describe: flag }),
    "--d-model cannot change when resuming",
  );
  // Giving the saved value is fine.
  assertEquals((await resumePoint(path, { given: { model: { dModel: 16 } } })).config.model.dModel, 16);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("paths a checkpoint records outside its folder are refused unless given", async () => {
  const dir = await Deno.makeTempDir();
  const path = await savedRun(dir, { tokenizer: "/etc/passwd" });
  await assertRejects(
    () => resumePoint(path, { describe: (f) => f === "train.tokenizer" ? "--tokenizer" : f }),
    "pass --tokenizer PATH",
  );
  const given = await resumePoint(path, { given: { train: { tokenizer: `${dir}/mine.json` } } });
  assertEquals(given.config.train.tokenizer, `${dir}/mine.json`);
  // A file outside the folder is recorded by its absolute path, which a resume shows but does not follow.
  const outside = await savedRun(dir, { trainData: `${dir}/elsewhere.bin` });
  await Deno.writeFile(`${dir}/elsewhere.bin`, new Uint8Array(64));
  await assertRejects(() => resumePoint(outside), `"${dir}/elsewhere.bin", an absolute path`);
  await Deno.remove(dir, { recursive: true });
});

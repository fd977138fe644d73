import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { writeTokenFile } from "../data/token_files.ts";
import { Rng } from "../util/random.ts";
import { parseConfig } from "./config.ts";
import { MetricsLogger } from "./metrics.ts";
import { expandGlob, loadRun, loadRuns, RunLog, variedFields, writeRunInfo } from "./runs.ts";
import { Trainer } from "./trainer.ts";

const model = { vocabSize: 32, contextLength: 16, dModel: 16, numLayers: 1, numHeads: 2 };

/** A tiny run trained by the trainer alone (no run.json: the way `deno task train` left folders before). */
async function bareRun(dir: string, lrMax: number): Promise<void> {
  const rng = new Rng(1);
  await Deno.mkdir(dir, { recursive: true });
  await writeTokenFile(`${dir}/train.bin`, Array.from({ length: 800 }, (_, i) => (rng.uniform() < 0.8 ? i % 29 : 3)));
  const metrics = await MetricsLogger.open(`${dir}/metrics.jsonl`);
  const trainer = await Trainer.create({
    model,
    train: {
      trainData: `${dir}/train.bin`,
      valData: `${dir}/train.bin`,
      outDir: dir,
      steps: 4,
      batchSize: 2,
      lrMax,
      lrMin: lrMax / 10,
      logInterval: 2,
      evalInterval: 2,
      evalIters: 1,
    },
  }, { onEvent: (e) => metrics.log(e) });
  await trainer.fit();
  trainer.dispose();
  await metrics.close();
}

Deno.test("loadRun reads a folder without run.json: config from the checkpoint header, status from metrics", async () => {
  const dir = await Deno.makeTempDir();
  await bareRun(`${dir}/a`, 2e-3);
  const run = await loadRun(`${dir}/a`);
  assertEquals([run.name, run.status, run.info], ["a", "done", undefined]);
  assertEquals(run.config?.train.lrMax, 2e-3);
  // Recorded paths stay as recorded (relative to the folder): shown, never followed.
  assertEquals(run.config?.train.trainData, "train.bin");
  assertEquals(run.summary.step, 4);
  assert(run.summary.best !== undefined && run.summary.best.step > 0, JSON.stringify(run.summary));
  await assertRejects(() => loadRun(`${dir}/missing`), "holds no run");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadRuns takes folders and globs, names runs by their shared folder, and lists what varies", async () => {
  const dir = await Deno.makeTempDir();
  await bareRun(`${dir}/sweep/lr-1`, 1e-3);
  await bareRun(`${dir}/sweep/lr-3`, 3e-3);
  await bareRun(`${dir}/single`, 3e-3);
  await Deno.mkdir(`${dir}/sweep/lr-1/data`, { recursive: true }); // a run's own subfolders are not runs
  assertEquals((await expandGlob(`${dir}/sweep/lr-*`)).map((p) => p.slice(dir.length)), ["/sweep/lr-1", "/sweep/lr-3"]);
  assertEquals((await expandGlob(`${dir}/**/lr-?`)).length, 2);
  assertEquals((await loadRuns(`${dir}/sweep`)).map((r) => r.name), ["lr-1", "lr-3"]);
  const runs = await loadRuns([`${dir}/sweep/*`, `${dir}/single`]);
  assertEquals(runs.map((r) => r.name), ["sweep/lr-1", "sweep/lr-3", "single"]);
  assertEquals(variedFields(runs), ["train.lrMax", "train.lrMin"]);
  assertEquals((await loadRuns(dir)).length, 3);
  await assertRejects(() => loadRuns(`${dir}/nothing-*`), "names no run folder");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadRuns takes what a shell makes of runs/lr/*: the sweep's data folder and report are passed over", async () => {
  const dir = await Deno.makeTempDir();
  await bareRun(`${dir}/lr/lr-1`, 1e-3);
  await bareRun(`${dir}/lr/lr-3`, 3e-3);
  await Deno.mkdir(`${dir}/lr/data/moby-dick-bpe512`, { recursive: true });
  await Deno.writeTextFile(`${dir}/lr/report.html`, "<html></html>");
  const expanded = [...Deno.readDirSync(`${dir}/lr`)].map((e) => `${dir}/lr/${e.name}`).sort();
  assertEquals((await loadRuns(expanded)).map((r) => r.name), ["lr-1", "lr-3"]);
  // A path that does not exist is still a mistake, named.
  await assertRejects(() => loadRuns([...expanded, `${dir}/lr/lr-30`]), `${dir}/lr/lr-30 does not exist`);
  await assertRejects(() => loadRuns([`${dir}/lr/data`]), "names no run folder");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run.json is validated: a bad field is named with its file", async () => {
  const dir = await Deno.makeTempDir();
  const now = new Date().toISOString();
  writeRunInfo(dir, {
    status: "done",
    step: 3,
    steps: 3,
    seconds: 1,
    started: now,
    updated: now,
    config: { model, train: { trainData: "t.bin" } },
  });
  const text = await Deno.readTextFile(`${dir}/run.json`);
  await Deno.writeTextFile(`${dir}/run.json`, text.replace('"done"', '"finished"'));
  await assertRejects(() => loadRun(dir), `run status ${dir}/run.json`);
  await assertRejects(() => loadRun(dir), "status: ");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("RunLog: metrics and run.json as the run goes; a resume keeps the earlier session's time and best", async () => {
  const dir = await Deno.makeTempDir();
  const config = parseConfig({ model, train: { trainData: "t.bin", outDir: dir, steps: 6 } });
  const first = await RunLog.open(config);
  assertEquals(first.info.status, "running");
  const step = {
    type: "step",
    loss: 3,
    lr: 1e-3,
    gradNorm: 1,
    tokensPerSec: 100,
    tokens: 0,
    epoch: 0,
    elapsed: 0,
  } as const;
  first.log({ ...step, step: 1 });
  first.log({ ...step, step: 2 });
  first.log({ type: "eval", step: 2, valLoss: 2.5, valBpb: 1.2, tokens: 64, best: true });
  first.log({ ...step, step: 3, loss: NaN });
  const diverged = await first.finish({ step: 4, reason: "diverged", lastLoss: NaN });
  assertEquals([diverged.status, diverged.step, diverged.divergedAt], ["diverged", 4, 3]);
  assertEquals(diverged.best, { step: 2, valLoss: 2.5, valBpb: 1.2 });
  const loaded = await loadRun(dir);
  assert(Number.isNaN(loaded.info!.last!.loss), "NaN survives the JSON file");

  // Resumed from a checkpoint at step 2: later records go, the best of step 2 and the first session's time stay.
  const second = await RunLog.open(config, { resumeStep: 2 });
  assertEquals(second.info.best, { step: 2, valLoss: 2.5, valBpb: 1.2 });
  assertEquals(second.info.started, diverged.started);
  assert(second.info.seconds >= diverged.seconds);
  const done = await second.finish({ step: 6, reason: "done", lastLoss: 2 });
  assertEquals([done.status, done.divergedAt], ["done", undefined]);
  assertEquals((await loadRun(dir)).records.map((r) => r.step), [1, 2, 2]);
  await Deno.remove(dir, { recursive: true });
});

import { assert, assertClose, assertEquals, assertMatch, assertRejects, assertThrows } from "../../tests/assert.ts";
import { writeTokenFile } from "../data/token_files.ts";
import { Rng } from "../util/random.ts";
import { ConfigError } from "../util/validate.ts";
import { readMetrics } from "./metrics.ts";
import { loadRuns, readRunInfo } from "./runs.ts";
import {
  checkSweep,
  parseSweep,
  planSweep,
  readSweepFile,
  runFolderState,
  runSweep,
  sweepRuns,
  type SweepSpec,
} from "./sweep.ts";

Deno.test("sweep files: every problem is reported with the field's path in the file", () => {
  const e = assertThrows(() =>
    parseSweep({
      name: "has space",
      base: { model: { numHead: 4 }, train: { outDir: "x" } },
      grid: { train: { lrMax: [1e-3, -1], batchSize: [] }, optim: {} },
      runs: [{ name: "ok" }, { model: { norm: "layer" } }],
      extra: 1,
    }, "sweeps/bad.json")
  );
  const message = e.message;
  for (
    const expected of [
      "Invalid sweep file sweeps/bad.json",
      "name: must be a folder name",
      "base.model.numHead: unknown field; did you mean model.numHeads?",
      "base.train.outDir: is set by the sweep",
      "grid.train.lrMax.1: ",
      "grid.train.batchSize: must be a non-empty list",
      'grid.optim: unknown section (expected "model" or "train")',
      "runs.1.model.norm: Invalid option",
      "extra: unknown key",
    ]
  ) assert(message.includes(expected), `"${expected}" missing from:\n${message}`);
  assertThrows(() => parseSweep({ base: { train: { steps: 10 } } }, "one.json"), `needs a "grid" of values`);
  assertThrows(() => parseSweep([1, 2], "list.json"), "sweep file list.json");
  assertEquals(parseSweep({ grid: { train: { seed: [0, 1] } } }, "dir/seeds.json").name, "seeds");
});

Deno.test("run folders are named from the values each run varies", () => {
  const grid = parseSweep({ grid: { train: { lrMax: [1e-3, 3e-4], seed: [7] } } }, "lr.json");
  const runs = sweepRuns(grid);
  // A grid field with one value is shared, not varied; lrMin follows lrMax unless given.
  assertEquals(runs.map((r) => r.name), ["lrMax-0.001", "lrMax-0.0003"]);
  assertEquals(runs[1].given.train, { lrMax: 3e-4, seed: 7, lrMin: 3e-5 });
  assertEquals(runs[1].varied, { "train.lrMax": 3e-4 });

  const ablation = parseSweep({
    base: { train: { lrMin: 1e-4 } },
    grid: { model: { numLayers: [2, 4] }, train: { lrMax: [1e-3] } },
    runs: [{ name: "baseline" }, { model: { norm: "post" } }, { model: { ffn: "silu", position: "none" } }],
  }, "ablation.json");
  assertEquals(sweepRuns(ablation).map((r) => r.name), [
    "baseline_numLayers-2",
    "baseline_numLayers-4",
    "norm-post_numLayers-2",
    "norm-post_numLayers-4",
    "ffn-silu_position-none_numLayers-2",
    "ffn-silu_position-none_numLayers-4",
  ]);
  assertEquals(sweepRuns(ablation)[2].given, {
    model: { norm: "post", numLayers: 2 },
    train: { lrMin: 1e-4, lrMax: 1e-3 },
  });
  const betas = parseSweep({ grid: { train: { betas: [[0.9, 0.95], [0.9, 0.99]] } } }, "betas.json");
  assertEquals(sweepRuns(betas).map((r) => r.name), ["betas-0.9-0.95", "betas-0.9-0.99"]);
  // Two listed runs that name the same folder are refused, naming both.
  const clash = parseSweep({ runs: [{ name: "a", train: { seed: 1 } }, { name: "a", train: { seed: 2 } }] }, "c.json");
  assertThrows(() => sweepRuns(clash), "two runs would share the folder a");
});

// A token stream with structure (a repeating pattern plus noise) so that the loss can go down.
async function tokenFile(path: string, n: number, seed: number): Promise<string> {
  const rng = new Rng(seed);
  await writeTokenFile(path, Array.from({ length: n }, (_, i) => (rng.uniform() < 0.8 ? (i * 3) % 29 : rng.int(32))));
  return path;
}

async function tinySweep(dir: string, grid: Record<string, unknown[]>): Promise<SweepSpec> {
  const trainData = await tokenFile(`${dir}/train.bin`, 3000, 1), valData = await tokenFile(`${dir}/val.bin`, 400, 2);
  return parseSweep({
    name: "tiny",
    base: {
      model: { vocabSize: 32, contextLength: 16, dModel: 16, numLayers: 1, numHeads: 2 },
      train: {
        trainData,
        valData,
        steps: 8,
        batchSize: 3,
        warmupSteps: 1,
        cosineCycleSteps: 8,
        logInterval: 2,
        evalInterval: 4,
        evalIters: 2,
        checkpointInterval: 0,
        seed: 3,
      },
    },
    grid: { train: grid },
  }, "tiny.json");
}

const losses = async (dir: string) =>
  (await readMetrics(`${dir}/metrics.jsonl`)).filter((r) => r.type === "step").map((r) => [r.step, r.loss as number]);

Deno.test("a sweep stopped mid-run resumes that run exactly, then skips what ended", async () => {
  const dir = await Deno.makeTempDir();
  const spec = await tinySweep(dir, { lrMax: [3e-3, 1e-2] });
  const straight = await planSweep(spec, { root: `${dir}/straight`, software: true });
  await runSweep(straight);

  const plan = await planSweep(spec, { root: `${dir}/stopped`, software: true });
  const stop = new AbortController();
  const first = await runSweep(plan, {
    signal: stop.signal,
    onEvent: (_run, e) => void (e.type === "step" && e.step === 4 && stop.abort()),
  });
  assertEquals(first.interrupted, true);
  assertEquals(first.runs.map((r) => [r.run.name, r.action, r.info?.status, r.info?.step]), [
    ["lrMax-0.003", "start", "interrupted", 4],
  ]);
  assertEquals((await runFolderState(plan.runs[0])).action, "resume");

  const second = await runSweep(plan);
  assertEquals(second.runs.map((r) => [r.run.name, r.action, r.info?.status]), [
    ["lrMax-0.003", "resume", "done"],
    ["lrMax-0.01", "start", "done"],
  ]);
  for (const run of plan.runs) {
    const resumed = await losses(run.dir), reference = await losses(`${dir}/straight/${run.name}`);
    assertEquals(resumed.map(([s]) => s), [1, 2, 3, 4, 5, 6, 7, 8]);
    // Embedding gradients are summed with float atomics in any order: float noise, nothing more.
    assertClose(resumed.map(([, l]) => l), reference.map(([, l]) => l), { atol: 1e-4, rtol: 1e-4 });
  }
  const info = (await readRunInfo(plan.runs[0].dir))!;
  assertEquals([info.status, info.step, info.steps, info.sweep?.run], ["done", 8, 8, "lrMax-0.003"]);
  assert(info.best !== undefined && info.seconds > 0 && info.tokensPerSec! > 0, JSON.stringify(info));

  const metricsBefore = await Deno.readFile(`${plan.runs[1].dir}/metrics.jsonl`);
  const third = await runSweep(plan);
  assertEquals(third.runs.map((r) => r.action), ["skip", "skip"]);
  assertEquals(await Deno.readFile(`${plan.runs[1].dir}/metrics.jsonl`), metricsBefore);

  // The sweep file changed: its folders hold runs of another config, which are refused before anything trains.
  const longer = structuredClone(spec);
  longer.base.train.steps = 12;
  const changed = await planSweep(longer, { root: `${dir}/stopped`, software: true });
  await assertRejects(() => runSweep(changed), "holds a run of another config: train.steps 12 (the folder's run: 8)");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a diverged run is recorded with its step and the sweep goes on; runs load together", async () => {
  const dir = await Deno.makeTempDir();
  const spec = await tinySweep(dir, { lrMax: [1e30, 3e-3] });
  Object.assign(spec.base.train, { gradClip: 0, warmupSteps: 0, logInterval: 1 });
  const plan = await planSweep(spec, { root: `${dir}/runs`, software: true });
  const result = await runSweep(plan);
  assertEquals(result.runs.map((r) => [r.run.name, r.info?.status]), [["lrMax-1e+30", "diverged"], [
    "lrMax-0.003",
    "done",
  ]]);
  const diverged = result.runs[0].info!;
  // Updates of 1e30 overflow within a few steps; the run records the first step whose loss was not finite.
  const steps = await losses(plan.runs[0].dir);
  const firstBad = steps.find(([, l]) => !Number.isFinite(l))![0];
  assertEquals(diverged.divergedAt, firstBad);
  assert(firstBad < 8 && diverged.step >= firstBad, JSON.stringify(diverged));

  const runs = await loadRuns(`${dir}/runs`);
  assertEquals(runs.map((r) => [r.name, r.status]), [["lrMax-0.003", "done"], ["lrMax-1e+30", "diverged"]]);
  assertEquals(runs[0].config?.train.lrMax, 3e-3);
  assertEquals(runs[0].summary.step, 8);
  // A rerun skips both: a diverged run ended.
  assertEquals((await runSweep(plan)).runs.map((r) => r.action), ["skip", "skip"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("configs are validated for every run before anything is prepared, naming the run and field", async () => {
  const spec = parseSweep({
    base: { model: { vocabSize: 32, contextLength: 16, dModel: 24, numLayers: 1 }, train: { trainData: "t.bin" } },
    grid: { model: { numHeads: [2, 5] }, train: { lrMax: [1e-3] } },
  }, "heads.json");
  const dir = await Deno.makeTempDir();
  await assertRejects(
    () => planSweep(spec, { root: `${dir}/runs`, software: true }),
    "run numHeads-5: model.numHeads: numHeads (5) must divide dModel (24)",
  );
  // Nothing was written.
  assertEquals([...Deno.readDirSync(dir)].length, 0);
  await Deno.remove(dir);
});

Deno.test("the example sweep files are valid for the GPU default and name their runs", async () => {
  const root = new URL("../../examples/sweeps/", import.meta.url).pathname;
  const names: Record<string, string[]> = {};
  for (const file of ["lr.json", "batch_size.json", "ablations.json"]) {
    const spec = await readSweepFile(`${root}${file}`);
    names[spec.name] = checkSweep(spec, { software: false }).map((r) => r.name);
  }
  assertEquals(names.lr.length, 7);
  assertEquals(names.batch_size, ["batch-8", "batch-16", "batch-32", "batch-64", "batch-128", "batch-256"]);
  assertEquals(names.ablations.length, 10);
  assert(names.ablations.includes("no-rmsnorm_lrMax-0.001") && names.ablations.includes("silu_lrMax-0.003"));
});

Deno.test("every run's data is checked before the first run trains", async () => {
  const dir = await Deno.makeTempDir();
  const spec = await tinySweep(dir, { lrMax: [3e-3] });
  await writeTokenFile(`${dir}/short.bin`, [1, 2, 3]);
  spec.grid.train = { valData: [spec.base.train.valData, `${dir}/short.bin`] };
  delete spec.base.train.valData;
  const plan = await planSweep(spec, { root: `${dir}/runs`, software: true });
  await assertRejects(() => runSweep(plan), `The validation file ${dir}/short.bin has 3 tokens`);
  // The first run, whose data is good, did not start.
  assertEquals(await Deno.stat(`${dir}/runs`).then(() => true, () => false), false);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("two runs in one folder are a bad sweep file (a ConfigError)", () => {
  const clash = parseSweep({ runs: [{ name: "a" }, { name: "a", train: { lrMax: 0.1 } }] }, "clash.json");
  const e = assertThrows(() => sweepRuns(clash), "two runs would share the folder a");
  assert(e instanceof ConfigError, e.name);
});

Deno.test("patience in a run that never evaluates is refused, as deno task train refuses it", () => {
  const model = { vocabSize: 32, contextLength: 16, dModel: 16, numLayers: 1, numHeads: 2 };
  const spec = parseSweep({
    base: { model, train: { trainData: "t.bin", valData: "v.bin", patience: 3 } },
    grid: { train: { evalInterval: [0, 10] } },
  }, "patience.json");
  const e = assertThrows(() => checkSweep(spec, { software: true }));
  assert(e instanceof ConfigError);
  assertEquals(e.issues.map((i) => i.path), ["run evalInterval-0: train.patience"]);
  assertMatch(e.issues[0].message, /counts evaluations, and this run makes none/);
  delete spec.base.train.valData;
  spec.grid.train.evalInterval = [10];
  assertThrows(() => checkSweep(spec, { software: true }), "run base: train.patience: 3 counts evaluations");
});

Deno.test("a run on the embedded data with a vocabulary below its tokenizer's 257 ids is refused up front", () => {
  const spec = parseSweep({ grid: { model: { vocabSize: [512, 100] } } }, "vocab.json");
  const e = assertThrows(() => checkSweep(spec, { software: true }));
  assert(e instanceof ConfigError);
  assertEquals(e.issues.map((i) => i.path), ["run vocabSize-100: model.vocabSize"]);
  assertMatch(e.issues[0].message, /^100 is too small for the embedded data's tokenizer/);
});

Deno.test("a run that fails is reported with its error and the sweep goes on to the next runs", async () => {
  const dir = await Deno.makeTempDir();
  const spec = await tinySweep(dir, { lrMax: [3e-3, 1e-2] });
  const plan = await planSweep(spec, { root: `${dir}/runs`, software: true });
  // The first run cannot write its metrics: a folder is in the way.
  await Deno.mkdir(`${plan.runs[0].dir}/metrics.jsonl`, { recursive: true });
  const lines: string[] = [];
  const result = await runSweep(plan, { log: (line) => lines.push(line) });
  assertEquals(result.runs.map((r) => [r.run.name, r.action, r.info?.status]), [
    ["lrMax-0.003", "start", undefined],
    ["lrMax-0.01", "start", "done"],
  ]);
  assertMatch(result.runs[0].error ?? "", /metrics\.jsonl/);
  assert(lines.some((l) => l.startsWith("lrMax-0.003: failed: ")), lines.join("\n"));
  // Once the cause is gone, running the sweep again retries the failed run and skips the one that ended.
  await Deno.remove(`${plan.runs[0].dir}/metrics.jsonl`);
  const again = await runSweep(plan);
  assertEquals(again.runs.map((r) => [r.action, r.info?.status]), [["start", "done"], ["skip", "done"]]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a copy of the embedded data that failed midway is made again, never reused as whole", async () => {
  const dir = await Deno.makeTempDir();
  const spec = parseSweep({
    name: "embedded",
    base: {
      model: { vocabSize: 260, contextLength: 16, dModel: 16, numLayers: 1, numHeads: 2 },
      train: { steps: 2, batchSize: 2, warmupSteps: 1, cosineCycleSteps: 2, evalInterval: 0, checkpointInterval: 0 },
    },
    runs: [{ name: "only" }],
  }, "embedded.json");
  const plan = await planSweep(spec, { root: `${dir}/runs`, software: true });
  // A file system without hard links, and a copy that ends halfway (a killed process, a full disk).
  const deno = Deno as unknown as Record<"link" | "copyFile", unknown>;
  const [link, copyFile] = [deno.link, deno.copyFile];
  deno.link = () => Promise.reject(new Deno.errors.PermissionDenied("no hard links here"));
  deno.copyFile = async (from: string, to: string) => {
    if (!from.endsWith("train.bin")) return await (copyFile as typeof Deno.copyFile)(from, to);
    const bytes = await Deno.readFile(from);
    await Deno.writeFile(to, bytes.subarray(0, bytes.length >> 1));
    throw new Error("the copy was cut off");
  };
  try {
    await runSweep(plan, { log: () => {} });
  } finally {
    [deno.link, deno.copyFile] = [link, copyFile];
  }
  const result = await runSweep(plan, { log: () => {} });
  assertEquals(result.runs.map((r) => r.info?.status), ["done"]);
  const source = `${dir}/runs/data`, copy = `${plan.runs[0].dir}/data`;
  const names = ["train.bin", "val.bin", "tokenizer.json", "prepared.json"].map((n) => `moby-dick-bpe260/${n}`);
  for (const name of ["moby-dick.txt", ...names]) {
    assertEquals(await Deno.readFile(`${copy}/${name}`), await Deno.readFile(`${source}/${name}`), name);
  }
  await Deno.remove(dir, { recursive: true });
});

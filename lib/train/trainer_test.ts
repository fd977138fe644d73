import { assert, assertClose, assertEquals, assertRejects } from "../../tests/assert.ts";
import { writeTokenFile } from "../data.ts";
import { Rng } from "../random.ts";
import { type StepMetrics, Trainer, type TrainEvent } from "./trainer.ts";

// A token stream with structure (a repeating pattern plus noise) so that the loss can go down.
async function tokenFile(dir: string, name: string, n: number, seed: number): Promise<string> {
  const rng = new Rng(seed);
  const ids = Array.from({ length: n }, (_, i) => rng.uniform() < 0.8 ? (i * 3) % 29 : rng.int(32));
  const path = `${dir}/${name}`;
  await writeTokenFile(path, ids);
  return path;
}

function configFor(dir: string, train: string, val: string, steps: number) {
  return {
    model: { vocabSize: 32, contextLength: 16, dModel: 32, numLayers: 2, numHeads: 4, dFf: 48 },
    train: {
      trainData: train,
      valData: val,
      outDir: dir,
      steps,
      batchSize: 4,
      lrMax: 3e-3,
      lrMin: 3e-4,
      warmupSteps: 2,
      // Fixed, so that a run cut short and resumed follows the same schedule as one run straight through.
      cosineCycleSteps: 16,
      logInterval: 2,
      evalInterval: 4,
      evalIters: 2,
      checkpointInterval: 0,
      seed: 3,
    },
  };
}

Deno.test("training lowers the loss, logs in batches, evaluates and checkpoints", async () => {
  const dir = await Deno.makeTempDir();
  const train = await tokenFile(dir, "train.bin", 4000, 1), val = await tokenFile(dir, "val.bin", 1000, 2);
  const events: TrainEvent[] = [];
  const trainer = await Trainer.create(configFor(dir, train, val, 16), { onEvent: (e) => void events.push(e) });
  const result = await trainer.fit();
  trainer.dispose();
  const steps = events.filter((e): e is StepMetrics => e.type === "step");
  assertEquals(steps.map((s) => s.step), Array.from({ length: 16 }, (_, i) => i + 1));
  assertEquals(result.reason, "done");
  assert(steps.every((s) => Number.isFinite(s.loss) && s.gradNorm > 0));
  // CS336 warm-up starts at lr 0 and reaches lrMax at step 2.
  assertEquals(steps.slice(0, 3).map((s) => s.lr), [0, 1.5e-3, 3e-3]);
  const first = (steps[0].loss + steps[1].loss) / 2, last = (steps[14].loss + steps[15].loss) / 2;
  assert(last < first - 0.3, `loss did not go down: ${first} -> ${last}`);
  assert(Math.abs(steps[0].loss - Math.log(32)) < 0.5, `initial loss ${steps[0].loss} should be near ln(32)`);
  assertEquals(events.filter((e) => e.type === "eval").map((e) => e.step), [4, 8, 12, 16]);
  assertEquals(result.checkpoint, `${dir}/checkpoint.safetensors`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("step metrics are read one log interval late, so the GPU keeps an interval queued", async () => {
  const dir = await Deno.makeTempDir();
  const train = await tokenFile(dir, "train.bin", 4000, 1), val = await tokenFile(dir, "val.bin", 1000, 2);
  const config = configFor(dir, train, val, 12);
  Object.assign(config.train, { logInterval: 4, evalInterval: 0 });
  // The trainer's step counter when each step's metrics arrive.
  const seenAt: [number, number][] = [];
  const rates: number[] = [];
  let trainer: Trainer | null = null;
  trainer = await Trainer.create(config, {
    onEvent: (e) => {
      if (e.type !== "step") return;
      seenAt.push([e.step, trainer!.step]);
      rates.push(e.tokensPerSec);
    },
  });
  const result = await trainer.fit();
  trainer.dispose();
  assertEquals(result.reason, "done");
  // Steps 1-4 are reported once step 8 is queued, 5-8 at the end with 9-12 (the last interval is read at once).
  const expected = Array.from({ length: 12 }, (_, i): [number, number] => [i + 1, i < 4 ? 8 : 12]);
  assertEquals(seenAt, expected);
  // The final flush reports steps 5-12 together, with one rate over the time since steps 1-4 were reported.
  assertEquals(new Set(rates.slice(4)).size, 1);
  assert(rates.every((r) => Number.isFinite(r) && r > 0));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("resuming from a checkpoint continues the run exactly", async () => {
  const dir = await Deno.makeTempDir();
  const train = await tokenFile(dir, "train.bin", 4000, 1), val = await tokenFile(dir, "val.bin", 1000, 2);
  const straight: number[] = [];
  const a = await Trainer.create(configFor(`${dir}/a`, train, val, 8), {
    onEvent: (e) => void (e.type === "step" && straight.push(e.loss)),
  });
  await a.fit();
  a.dispose();

  const resumed: number[] = [];
  const b1 = await Trainer.create(configFor(`${dir}/b`, train, val, 4), {
    onEvent: (e) => void (e.type === "step" && resumed.push(e.loss)),
  });
  const first = await b1.fit();
  b1.dispose();
  const b2 = await Trainer.create(configFor(`${dir}/b`, train, val, 8), {
    resume: first.checkpoint,
    onEvent: (e) => void (e.type === "step" && resumed.push(e.loss)),
  });
  assertEquals(b2.step, 4);
  await b2.fit();
  b2.dispose();
  assertEquals(resumed.length, 8);
  // Embedding gradients are summed with float atomics in any order, so allow float noise, nothing more.
  assertClose(resumed, straight, { atol: 1e-4, rtol: 1e-4 });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bad inputs fail with errors that name the file or field", async () => {
  const dir = await Deno.makeTempDir();
  const train = await tokenFile(dir, "train.bin", 4000, 1);
  await assertRejects(() => Trainer.create(configFor(dir, `${dir}/missing.bin`, train, 2)), "missing.bin");
  const short = await tokenFile(dir, "short.bin", 10, 1);
  await assertRejects(() => Trainer.create(configFor(dir, short, train, 2)), "short.bin");
  const bad = configFor(dir, train, train, 2);
  (bad.model as Record<string, unknown>).numHeads = 5;
  await assertRejects(() => Trainer.create(bad), "numHeads");
  await Deno.writeTextFile(`${dir}/torn.safetensors`, "not a checkpoint");
  await assertRejects(
    () => Trainer.create(configFor(dir, train, train, 2), { resume: `${dir}/torn.safetensors` }),
    "torn.safetensors",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a stop request (SIGINT in the CLI) ends the run with a checkpoint that resumes", async () => {
  const dir = await Deno.makeTempDir();
  const train = await tokenFile(dir, "train.bin", 4000, 1), val = await tokenFile(dir, "val.bin", 1000, 2);
  let trainer: Trainer | null = null;
  trainer = await Trainer.create(configFor(dir, train, val, 16), {
    onEvent: (e) => void (e.type === "step" && e.step === 4 && trainer!.requestStop()),
  });
  const result = await trainer.fit();
  trainer.dispose();
  assertEquals([result.reason, result.step], ["interrupted", 4]);
  const resumed = await Trainer.create(configFor(dir, train, val, 16), { resume: result.checkpoint });
  assertEquals(resumed.step, 4);
  resumed.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a diverging loss stops the run and keeps the last good checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const train = await tokenFile(dir, "train.bin", 4000, 1), val = await tokenFile(dir, "val.bin", 1000, 2);
  const good = await Trainer.create(configFor(dir, train, val, 4));
  const first = await good.fit();
  good.dispose();
  const before = await Deno.readFile(first.checkpoint!);
  // Resume with an absurd learning rate and no clipping: weights, then the loss, go to Inf/NaN.
  const config = configFor(dir, train, val, 12);
  Object.assign(config.train, { lrMax: 1e12, lrMin: 1e12, warmupSteps: 0, gradClip: 0, checkpointInterval: 2 });
  const bad = await Trainer.create(config, { resume: first.checkpoint });
  const result = await bad.fit();
  bad.dispose();
  assertEquals(result.reason, "diverged");
  assertEquals(result.checkpoint, undefined);
  // Nothing non-finite was written over the good checkpoint.
  assertEquals(await Deno.readFile(first.checkpoint!), before);
  await Deno.remove(dir, { recursive: true });
});

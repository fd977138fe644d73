import { assert, assertClose, assertEquals, assertRejects } from "../../tests/assert.ts";
import { readCheckpointFile } from "../io/checkpoint_file.ts";
import { TokenDataset, writeTokenFile } from "../data/token_files.ts";
import { crossEntropy, keep, noGrad, readAll, tensor, tidy } from "../tensor/mod.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { saveTokenizer } from "../data/tokenizer_files.ts";
import { Rng } from "../util/random.ts";
import { resumePoint } from "./resume.ts";
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
  // Update s uses the schedule at s: half of lrMax after one of two warm-up steps, lrMax at step 2.
  assertEquals(steps.slice(0, 2).map((s) => s.lr), [1.5e-3, 3e-3]);
  const first = (steps[0].loss + steps[1].loss) / 2, last = (steps[14].loss + steps[15].loss) / 2;
  assert(last < first - 0.3, `loss did not go down: ${first} -> ${last}`);
  assert(Math.abs(steps[0].loss - Math.log(32)) < 0.5, `initial loss ${steps[0].loss} should be near ln(32)`);
  assertEquals(events.filter((e) => e.type === "eval").map((e) => e.step), [4, 8, 12, 16]);
  assertEquals(result.checkpoint, `${dir}/checkpoint.safetensors`);
  await Deno.remove(dir, { recursive: true });
});

/** The CS336 schedule written out by hand: linear warm-up from 0, cosine to lrMin at cosineCycleSteps. */
function handLr(t: number, c: { lrMax: number; lrMin: number; warmupSteps: number; cosineCycleSteps: number }) {
  if (t < c.warmupSteps) return (t / c.warmupSteps) * c.lrMax;
  if (t > c.cosineCycleSteps) return c.lrMin;
  const p = (t - c.warmupSteps) / (c.cosineCycleSteps - c.warmupSteps);
  return c.lrMin + 0.5 * (1 + Math.cos(Math.PI * p)) * (c.lrMax - c.lrMin);
}

Deno.test("update s trains and logs with the schedule's rate at s, so the first update moves the weights", async () => {
  const dir = await Deno.makeTempDir();
  const train = await tokenFile(dir, "train.bin", 4000, 1), val = await tokenFile(dir, "val.bin", 1000, 2);
  const config = configFor(dir, train, val, 6);
  Object.assign(config.train, { weightDecay: 0, gradClip: 0, evalInterval: 0, logInterval: 1 });
  const events: StepMetrics[] = [];
  const trainer = await Trainer.create(config, { onEvent: (e) => void (e.type === "step" && events.push(e)) });
  const initial = await readAll([...trainer.model.parameters().values()]);
  const first = await trainer.trainStep();
  first.loss.dispose();
  first.gradNorm.dispose();
  const after = await readAll([...trainer.model.parameters().values()]);
  // AdamW's first update is lr * g / (|g| + eps) per weight: every weight with a gradient well above eps moves by
  // the learning rate itself, so the largest move measures the rate the update used.
  let largest = 0;
  initial.forEach((w, i) => w.forEach((v, j) => largest = Math.max(largest, Math.abs(after[i][j] - v))));
  const lr1 = handLr(1, config.train);
  assertEquals(lr1, 1.5e-3);
  assertClose([largest], [lr1], { rtol: 1e-3 });
  await trainer.fit();
  trainer.dispose();
  // The first update is step 1 (done by hand above); fit reports steps 2..6 with the rates of the schedule at 2..6.
  assertEquals(events.map((e) => e.step), [2, 3, 4, 5, 6]);
  assertClose(events.map((e) => e.lr), events.map((e) => handLr(e.step, config.train)), { rtol: 1e-12 });
  assertEquals(first.lr, lr1);
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
  // One rate per batch read back (1-4, 5-8, 9-12), each finite.
  for (const batch of [rates.slice(0, 4), rates.slice(4, 8), rates.slice(8)]) assertEquals(new Set(batch).size, 1);
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
  // Nothing non-finite was written over the good checkpoint, which the result names.
  assertEquals(result.checkpoint, first.checkpoint);
  assertEquals(await Deno.readFile(first.checkpoint!), before);
  await Deno.remove(dir, { recursive: true });
});

/** A good 4-step run, then a resume with a learning rate that blows the weights up at its first update. */
async function divergingResume(dir: string, steps: number, checkpointInterval: number) {
  const train = await tokenFile(dir, "train.bin", 4000, 1), val = await tokenFile(dir, "val.bin", 1000, 2);
  const good = await Trainer.create(configFor(dir, train, val, 4));
  const first = await good.fit();
  good.dispose();
  const before = await Deno.readFile(first.checkpoint!);
  const config = configFor(dir, train, val, steps);
  // Updates of about 1e30 leave finite weights whose products overflow f32.
  Object.assign(config.train, {
    lrMax: 1e30,
    lrMin: 1e30,
    warmupSteps: 0,
    gradClip: 0,
    checkpointInterval,
    logInterval: 1,
    evalInterval: 0,
  });
  const losses: number[] = [];
  const bad = await Trainer.create(config, {
    resume: first.checkpoint,
    onEvent: (e) => void (e.type === "step" && losses.push(e.loss)),
  });
  const result = await bad.fit();
  bad.dispose();
  return { result, losses, before, path: first.checkpoint! };
}

Deno.test("a checkpoint whose weights give a non-finite loss never replaces the last good one", async () => {
  const dir = await Deno.makeTempDir();
  // Step 5 trains from the good weights (finite loss) and leaves finite but huge weights: the checkpoint at step 5
  // holds them, and the loss of step 6 (their loss) is not finite.
  const { result, losses, before, path } = await divergingResume(dir, 12, 1);
  assert(Number.isFinite(losses[0]) && !Number.isFinite(losses[1]), `losses ${losses}`);
  assertEquals([result.reason, result.checkpoint], ["diverged", path]);
  assertEquals(await Deno.readFile(path), before);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the final checkpoint is kept only when the loss of its weights is finite", async () => {
  const dir = await Deno.makeTempDir();
  // The run ends at step 5, whose loss is finite; its weights are not good, which only a forward pass can tell.
  const { result, losses, before, path } = await divergingResume(dir, 5, 0);
  assert(losses.length === 1 && Number.isFinite(losses[0]), `losses ${losses}`);
  assertEquals([result.reason, result.checkpoint], ["diverged", path]);
  assertEquals(await Deno.readFile(path), before);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("data files are checked before the first step: length, and ids against the vocabulary", async () => {
  const dir = await Deno.makeTempDir();
  const train = await tokenFile(dir, "train.bin", 4000, 1);
  // A validation file shorter than one sequence failed only at the first evaluation.
  const shortVal = await tokenFile(dir, "short_val.bin", 10, 2);
  await assertRejects(() => Trainer.create(configFor(dir, train, shortVal, 2)), "short_val.bin has 10 tokens");
  // Ids past the model's vocabulary (32) trained silently into NaN.
  const ids = Array.from({ length: 1000 }, (_, i) => i % 32);
  ids[517] = 40;
  await writeTokenFile(`${dir}/big_ids.bin`, ids);
  await assertRejects(
    () => Trainer.create(configFor(dir, `${dir}/big_ids.bin`, train, 2)),
    "big_ids.bin holds token id 40",
  );
  await assertRejects(() => Trainer.create(configFor(dir, train, `${dir}/big_ids.bin`, 2)), "vocabulary has 32 ids");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a tokenizer larger than the model's vocabulary is refused", async () => {
  const dir = await Deno.makeTempDir();
  const train = await tokenFile(dir, "train.bin", 4000, 1);
  // 256 byte tokens plus one merge: 257 ids, for a model of 32.
  const merges: [Uint8Array, Uint8Array][] = [[new Uint8Array([97]), new Uint8Array([97])]];
  const vocab = new Map(Array.from({ length: 257 }, (_, i) => [i, new Uint8Array(i < 256 ? [i] : [97, 97])]));
  saveTokenizer(new Tokenizer(vocab, merges), `${dir}/tok.json`);
  const config = configFor(dir, train, train, 2);
  Object.assign(config.train, { tokenizer: `${dir}/tok.json` });
  await assertRejects(() => Trainer.create(config), "has 257 tokens, more than the model's vocabulary of 32");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a validation file shorter than a batch is evaluated on the rows it has", async () => {
  const dir = await Deno.makeTempDir();
  const train = await tokenFile(dir, "train.bin", 4000, 1);
  // Two rows of 16 (batch size 4): the old evaluation found no full batch and reported a loss of 0.
  const val = await tokenFile(dir, "val.bin", 2 * 16 + 1, 2);
  const trainer = await Trainer.create(configFor(dir, train, val, 2));
  const valLoss = await trainer.evaluate();
  const tokens = await (await TokenDataset.open(val)).readTokens(0, 33);
  const direct = tidy(() => {
    const x = tensor(tokens.slice(0, 32), { shape: [2, 16], dtype: "i32" });
    const y = tensor(tokens.slice(1, 33), { shape: [2, 16], dtype: "i32" });
    return keep(noGrad(() => crossEntropy(trainer.model.forward(x), y)));
  });
  assertClose([valLoss], [(await direct.data())[0]], { atol: 1e-6 });
  direct.dispose();
  trainer.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the best validation loss is kept in best.safetensors, and patience stops the run", async () => {
  const dir = await Deno.makeTempDir();
  const train = await tokenFile(dir, "train.bin", 4000, 1), val = await tokenFile(dir, "val.bin", 1000, 2);
  const evals: { step: number; valLoss: number; best: boolean }[] = [];
  const trainer = await Trainer.create(configFor(dir, train, val, 16), {
    onEvent: (e) => void (e.type === "eval" && evals.push(e)),
  });
  const result = await trainer.fit();
  trainer.dispose();
  const min = evals.reduce((a, b) => (b.valLoss < a.valLoss ? b : a));
  assertEquals(result.best, { step: min.step, valLoss: min.valLoss, path: `${dir}/best.safetensors` });
  // Its weights, loaded into a fresh trainer, evaluate to that loss.
  const check = await Trainer.create(configFor(`${dir}/check`, train, val, 16));
  check.model.loadStateDict((await readCheckpointFile(result.best!.path)).model);
  assertClose([await check.evaluate()], [min.valLoss], { atol: 1e-5 });
  check.dispose();

  // A learning rate too small to move any weight: no evaluation improves on the first, so patience 2 stops the run
  // at the third.
  const still = configFor(`${dir}/still`, train, val, 40);
  Object.assign(still.train, { lrMax: 1e-30, lrMin: 1e-30, patience: 2 });
  const stopped = await Trainer.create(still);
  const r = await stopped.fit();
  stopped.dispose();
  assertEquals([r.reason, r.step, r.best?.step], ["early-stopped", 12, 4]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a resumed run keeps its best validation loss", async () => {
  const dir = await Deno.makeTempDir();
  const train = await tokenFile(dir, "train.bin", 4000, 1), val = await tokenFile(dir, "val.bin", 1000, 2);
  const evals: number[] = [];
  const onEvent = (e: TrainEvent) => void (e.type === "eval" && evals.push(e.valLoss));
  const a = await Trainer.create(configFor(dir, train, val, 8), { onEvent });
  const first = await a.fit();
  a.dispose();
  const b = await Trainer.create(configFor(dir, train, val, 16), { resume: first.checkpoint, onEvent });
  const second = await b.fit();
  b.dispose();
  assertEquals(evals.length, 4);
  assertEquals(second.best?.valLoss, Math.min(...evals));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a run folder holds its tokenizer and data paths, so the checkpoint alone resumes it", async () => {
  const dir = await Deno.makeTempDir();
  const train = await tokenFile(dir, "train.bin", 4000, 1), val = await tokenFile(dir, "val.bin", 1000, 2);
  const tokenizerDir = await Deno.makeTempDir();
  saveTokenizer(
    new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), []),
    `${tokenizerDir}/tok.json`,
  );
  const config = configFor(dir, train, val, 4);
  Object.assign(config.model, { vocabSize: 256 });
  Object.assign(config.train, { tokenizer: `${tokenizerDir}/tok.json`, lrMax: 2e-3 });
  const first = await Trainer.create(config);
  const result = await first.fit();
  first.dispose();
  const ckpt = await readCheckpointFile(result.checkpoint!);
  assertEquals(ckpt.tokenizer, "tokenizer.json");
  assertEquals(await Deno.readFile(`${dir}/tokenizer.json`), await Deno.readFile(`${tokenizerDir}/tok.json`));
  const point = await resumePoint(result.checkpoint!, { given: { train: { steps: 6 } } });
  assertEquals([point.config.train.trainData, point.config.train.lrMax], [train, 2e-3]);
  const resumed = await Trainer.create(point.config, { resume: point });
  assertEquals((await resumed.fit()).step, 6);
  resumed.dispose();
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(tokenizerDir, { recursive: true });
});

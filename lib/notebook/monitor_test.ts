import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { TrainingMonitor } from "./monitor.ts";
import { bundleOf } from "./display.ts";
import { writeTokenFile } from "../data/token_files.ts";
import { Rng } from "../util/random.ts";
import { Trainer } from "../train/trainer.ts";

Deno.test("monitor: keeps the series, redraws every `every` steps, on evals and at the end", async () => {
  const lines: string[] = [];
  const m = new TrainingMonitor({ name: "r", steps: 5, every: 2, print: (l) => lines.push(l) });
  for (let step = 1; step <= 5; step++) {
    await m.onEvent({ type: "step", step, loss: 6 - step, lr: 1e-3 * step, tokensPerSec: 1000, elapsed: step });
  }
  await m.onEvent({ type: "eval", step: 5, valLoss: 1.5 });
  await m.onEvent({ type: "checkpoint", step: 5 });
  // steps 2, 4, 5 (the last) and the eval
  assertEquals(lines.length, 4);
  assert(lines[3].includes("val 1.5000"), lines[3]);
  const run = m.run();
  assertEquals(run.train!.values, [5, 4, 3, 2, 1]);
  assertEquals(run.val!.steps, [5]);
  assertEquals(m.learningRates().values.length, 5);
  assertEquals(m.status().step, 5);
  const fig = m.figure();
  assertEquals(fig.data.length, 2);
});

Deno.test("monitor: overlays background runs and rejects bad options", () => {
  const m = new TrainingMonitor({
    steps: 3,
    print: false,
    background: [{ name: "old", train: { steps: [1], values: [2] } }],
  });
  assertEquals(m.figure().data.length, 1); // the live run has no data yet
  assertThrows(() => new TrainingMonitor({ steps: 0 }), "got 0");
  assertThrows(() => new TrainingMonitor({ steps: 3, every: 1.5 }), "got 1.5");
});

Deno.test("a Trainer's events drive the monitor, and the Trainer and its model display their state", async () => {
  const dir = await Deno.makeTempDir();
  const rng = new Rng(1);
  await writeTokenFile(`${dir}/train.bin`, Array.from({ length: 2000 }, () => rng.int(32)));
  await writeTokenFile(`${dir}/val.bin`, Array.from({ length: 500 }, () => rng.int(32)));
  const lines: string[] = [];
  const monitor = new TrainingMonitor({ name: "t", steps: 4, every: 2, print: (l) => lines.push(l) });
  const trainer = await Trainer.create({
    model: { vocabSize: 32, contextLength: 8, dModel: 16, numLayers: 1, numHeads: 2, dFf: 32 },
    train: {
      trainData: `${dir}/train.bin`,
      valData: `${dir}/val.bin`,
      outDir: dir,
      steps: 4,
      batchSize: 2,
      logInterval: 2,
      evalInterval: 4,
      evalIters: 1,
    },
  }, { onEvent: monitor.onEvent });
  const before = (await bundleOf(trainer))["text/plain"] as string;
  assert(before.includes("step: 0 / 4 (0%)") && !before.includes("training loss"), before);
  const result = await trainer.fit();
  const after = (await bundleOf(trainer))["text/plain"] as string;
  assert(after.includes("step: 4 / 4 (100%)"), after);
  assert(after.includes(`training loss: ${result.lastLoss.toFixed(4)}`), after);
  assert(after.includes("validation loss:") && after.includes("tokens/s:"), after);
  assertEquals(monitor.run().train!.steps, [1, 2, 3, 4]);
  assertEquals(monitor.run().val!.steps, [4]);
  assert(lines.length >= 3, lines.join("\n"));
  const model = (await bundleOf(trainer.model))["text/html"] as string;
  assert(model.includes("feed-forward") && model.includes(trainer.model.numParameters().toLocaleString("en-US")));
  trainer.dispose();
  await Deno.remove(dir, { recursive: true });
});

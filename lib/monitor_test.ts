import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { TrainingMonitor } from "./monitor.ts";

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

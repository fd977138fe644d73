import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { StepThroughput, ThroughputMeter } from "./meter.ts";

Deno.test("ThroughputMeter measures over a sliding window", () => {
  const m = new ThroughputMeter({ tokensPerStep: 1000, window: 2 });
  assertEquals(m.tokensPerSecond(), 0);
  m.mark(0, 0);
  m.mark(1, 10_000); // a slow first step (kernel compilation): 100 tok/s
  assertEquals(m.tokensPerSecond(), 100);
  m.mark(2, 10_100);
  assertEquals(m.tokensPerSecond(), 2000 * 1000 / 10_100);
  m.mark(3, 10_200); // the window now spans steps 1..3 only: 2000 tokens in 0.2 s
  assertEquals(m.tokensPerSecond(), 10_000);
  assertEquals(m.mfu(), undefined);
  assertEquals(m.describe(), "10.0k tok/s");
});

Deno.test("ThroughputMeter reports MFU", () => {
  const m = new ThroughputMeter({ tokensPerStep: 100, flopsPerToken: 2e9, peakFlopsPerSecond: 1e12 });
  m.mark(10, 1000);
  m.mark(12, 2000); // 200 tokens per second -> 4e11 FLOP/s
  assertEquals(m.mfu(), 0.4);
  assertEquals(m.describe(), "200 tok/s MFU 40.0%");
  assertThrows(() => new ThroughputMeter({ tokensPerStep: 0 }), "Tokens per step must be positive, got 0");
});

Deno.test("StepThroughput: the slower of the host's and the GPU's span, pauses excluded", async () => {
  let now = 0;
  const c = new StepThroughput({ tokensPerStep: 100, startStep: 0, now: () => now });
  // GPU-bound: the host records steps 1-4 in 40 ms, the GPU finishes them at 400 ms.
  for (let s = 1; s <= 4; s++) c.recorded(s), now += 10;
  now = 400;
  c.completed(4);
  assertEquals(c.rate(1, 4), 4 * 100 * 1000 / 400);
  // An evaluation of 1 s does not count, in either span.
  await c.pause(() => Promise.resolve(now += 1000));
  // Host-bound: steps 5-8 recorded 100 ms apart after the evaluation; their read completes 10 ms after the host's
  // last record, 410 ms after the previous read.
  for (let s = 5; s <= 8; s++) now += 100, c.recorded(s);
  now += 10;
  c.completed(8);
  assertEquals(c.rate(5, 8), 4 * 100 * 1000 / 410);
  // A read completing 1 ms after the host's last record is not a spike: the host took 100 ms a step, and the
  // GPU's span runs from the previous read's completion (810 ms) to this one's (1011 ms).
  for (let s = 9; s <= 10; s++) now += 100, c.recorded(s);
  now += 1;
  c.completed(10);
  assertEquals(c.rate(9, 10), 2 * 100 * 1000 / 201);
});

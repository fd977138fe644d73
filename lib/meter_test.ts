import { assertEquals, assertThrows } from "../tests/assert.ts";
import { ThroughputMeter } from "./meter.ts";

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

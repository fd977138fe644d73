import { assertClose, assertEquals, assertThrows } from "../../tests/assert.ts";
import { cosineLr } from "./schedule.ts";

// An independent evaluation: the schedule written as cosine *decay* factor over the whole run, in the form of
// the PyTorch-style reference (cos is even, so cos(x) = -cos(pi - x); the halves below are rearranged on purpose).
function reference(t: number, aMax: number, aMin: number, tw: number, tc: number): number {
  if (t < tw) return aMax * t / tw;
  if (t > tc) return aMin;
  const decay = tc === tw ? 1 : 1 - (1 - Math.cos(Math.PI * (t - tw) / (tc - tw))) / 2;
  return aMin * (1 - decay) + aMax * decay;
}

Deno.test("cosineLr matches an independent evaluation at every step", () => {
  for (const [aMax, aMin, tw, tc] of [[1, 0.1, 7, 21], [3e-4, 3e-5, 100, 1000], [1e-3, 0, 0, 50], [0.5, 0.5, 3, 9]]) {
    const opts = { lrMax: aMax, lrMin: aMin, warmupSteps: tw, cosineCycleSteps: tc };
    const got: number[] = [], want: number[] = [];
    for (let t = 0; t <= tc + 20; t++) {
      got.push(cosineLr(t, opts));
      want.push(reference(t, aMax, aMin, tw, tc));
    }
    assertClose(got, want, { atol: 1e-15, rtol: 1e-12, msg: `schedule ${[aMax, aMin, tw, tc]}` });
  }
});

Deno.test("cosineLr hits the CS336 reference values and edges", () => {
  // The CS336 adapter test: max 1, min 0.1, warm-up 7, cosine cycle 21.
  const opts = { lrMax: 1, lrMin: 0.1, warmupSteps: 7, cosineCycleSteps: 21 };
  const expected = [
    0,
    0.14285714285714285,
    0.2857142857142857,
    0.42857142857142855,
    0.5714285714285714,
    0.7142857142857143,
    0.8571428571428571,
    1.0,
    0.9887175604818206,
    0.9554359905560885,
    0.9018241671106134,
    0.8305704108364301,
    0.7452476826029011,
    0.6501344202803414,
    0.55,
    0.44986557971965857,
    0.3547523173970989,
    0.26942958916356996,
    0.19817583288938662,
    0.14456400944391146,
    0.11128243951817937,
    0.1,
    0.1,
    0.1,
    0.1,
  ];
  assertClose(expected.map((_, t) => cosineLr(t, opts)), expected, { atol: 1e-12, rtol: 0 });
  assertEquals(cosineLr(0, opts), 0);
  assertEquals(cosineLr(7, opts), 1);
  assertEquals(cosineLr(21, opts), 0.1);
  assertEquals(cosineLr(1e9, opts), 0.1);
  // Fractional steps (e.g. plotting) lie between their neighbours.
  const mid = cosineLr(14.5, opts);
  if (!(mid < cosineLr(14, opts) && mid > cosineLr(15, opts))) throw new Error(`not monotone at 14.5: ${mid}`);
  // No warm-up, no annealing: constant at the peak, then the floor.
  assertEquals(cosineLr(0, { lrMax: 2, lrMin: 1, warmupSteps: 0, cosineCycleSteps: 0 }), 2);
  assertEquals(cosineLr(1, { lrMax: 2, lrMin: 1, warmupSteps: 0, cosineCycleSteps: 0 }), 1);
});

Deno.test("cosineLr rejects bad steps and schedules", () => {
  const opts = { lrMax: 1, lrMin: 0.1, warmupSteps: 7, cosineCycleSteps: 21 };
  assertThrows(() => cosineLr(-1, opts), "got -1");
  assertThrows(() => cosineLr(NaN, opts), "got NaN");
  assertThrows(() => cosineLr(0, { ...opts, cosineCycleSteps: 5 }), "cosineCycleSteps 5");
});

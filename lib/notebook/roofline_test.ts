import { assert, assertEquals } from "../../tests/assert.ts";
import type { DispatchProfile } from "../gpu/backend.ts";
import { StepProfile } from "../train/profile.ts";
import { profileTable, rooflineFigure } from "./roofline.ts";
import { JUPYTER_DISPLAY } from "./display.ts";

const dispatch = (name: string, ms: number, flops: number, bytes: number): DispatchProfile => ({
  name,
  cost: { flops, bytes },
  hostMs: 0,
  submitMs: 0,
  gpuStartMs: 0,
  gpuEndMs: ms,
});

// Peaks 10 TFLOP/s and 1000 GB/s: the ridge at 10 FLOP/B.
const profile = new StepProfile({
  adapter: "test adapter",
  peaks: { name: "test GPU", f32Tflops: 10, memoryGBps: 1000 },
  dispatches: [
    dispatch("matmul", 2, 8e9, 8e7), // 100 FLOP/B, 4 TFLOP/s
    dispatch("softmax", 1, 1e8, 4e8), // 0.25 FLOP/B, 0.1 TFLOP/s (400 GB/s)
    dispatch("copy", 0.5, 0, 2e8), // no FLOPs: not on a log axis
  ],
  phases: [],
});

Deno.test("rooflineFigure: the roofline from the peaks, a point per kernel at (intensity, TFLOP/s), log-log", () => {
  const fig = rooflineFigure(profile);
  const [roof, kernels] = fig.data;
  const x = roof.x as number[], y = roof.y as number[];
  assert(x.includes(10), `the ridge point is drawn: ${x}`);
  x.forEach((xi, i) => assertEquals(y[i], Math.min(10, xi * 1000 / 1000)));
  assert(x[0] <= 0.25 / 4 && x.at(-1)! >= 100 * 4, `the roofline spans the kernels: ${x}`);
  assertEquals(kernels.x, [100, 0.25]);
  assertEquals(kernels.y, [4, 0.1]);
  assertEquals(kernels.text, ["matmul", "softmax"]);
  const sizes = (kernels.marker as { size: number[] }).size;
  assert(sizes[0] > sizes[1], "the longer kernel is the larger point");
  assertEquals([(fig.layout.xaxis as { type: string }).type, (fig.layout.yaxis as { type: string }).type], [
    "log",
    "log",
  ]);
  assert(JSON.stringify(fig.layout.title).includes("kernels without FLOPs (0.50 ms) not shown"));
  assertEquals(rooflineFigure(profile, { labels: 1 }).data[1].text, ["matmul", ""]);
  // Unknown peaks: the kernels, no roofline.
  const bare = rooflineFigure(new StepProfile({ ...profile, peaks: null }));
  assertEquals(bare.data.length, 1);
  assertEquals(bare.data[0].y, [4, 0.1]);
});

Deno.test("profileTable shows the longest kernels and the totals, as HTML in a notebook", async () => {
  const table = profileTable(profile, { top: 2 });
  assertEquals(table.rows.map((r) => r.kernel), ["matmul", "softmax", "total"]);
  assertEquals(table.rows[2].dispatches, 3);
  const bundle = await table[JUPYTER_DISPLAY]();
  assert(String(bundle["text/html"]).includes("GPU time by kernel, one training step on test adapter"));
  assertEquals(profileTable(profile).rows.length, 4);
});

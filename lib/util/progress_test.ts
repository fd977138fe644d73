import { assertEquals, assertMatch } from "../../tests/assert.ts";
import { formatCount, formatDuration, ProgressBar } from "./progress.ts";

Deno.test("progress bar reports fraction, counts and suffix", () => {
  const lines: string[] = [];
  const bar = new ProgressBar(200, { label: "train", unit: "step", write: (t) => lines.push(t), logEverySeconds: 0 });
  bar.update(50, "loss 2.50");
  bar.done();
  assertMatch(lines[0], /^train .* 25\.0% 50\/200 .*step\/s.* loss 2\.50\n$/);
  assertEquals(lines.length, 2);
});

Deno.test("count and duration formatting", () => {
  assertEquals(formatCount(999), "999");
  assertEquals(formatCount(12345), "12.3k");
  assertEquals(formatCount(2.5e6), "2.5M");
  assertEquals(formatDuration(4.25), "4.3s");
  assertEquals(formatDuration(185), "3m05s");
  assertEquals(formatDuration(3725), "1h02m");
});

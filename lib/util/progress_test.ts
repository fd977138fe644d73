import { assertEquals, assertMatch } from "../../tests/assert.ts";
import { ProgressBar } from "./progress.ts";

Deno.test("progress bar reports fraction, counts and suffix", () => {
  const lines: string[] = [];
  const bar = new ProgressBar(200, { label: "train", unit: "step", write: (t) => lines.push(t), logEverySeconds: 0 });
  bar.update(50, "loss 2.50");
  bar.done();
  assertMatch(lines[0], /^train .* 25\.0% 50\/200 .*step\/s.* loss 2\.50\n$/);
  assertEquals(lines.length, 2);
});

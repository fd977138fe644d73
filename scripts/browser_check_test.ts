/** How the browser check compares the page's run with Deno's. */
import { assertEquals } from "../tests/assert.ts";
import { differences, maxAbsDiff } from "./browser_check.ts";

const run = (logits: number[], generated = [1, 2]) => ({
  adapter: "",
  ids: [5, 6],
  shape: [1, 2, logits.length / 2],
  logits,
  generated,
});

Deno.test("maxAbsDiff: the largest difference; NaN and a length mismatch are infinitely far", () => {
  assertEquals(maxAbsDiff([1, 2, 3], [1, 2.5, 2]), 1);
  assertEquals(maxAbsDiff([1, NaN], [1, 1]), Infinity);
  assertEquals(maxAbsDiff([0, 1], [1, NaN]), Infinity);
  assertEquals(maxAbsDiff([1], [1, 2]), Infinity);
});

Deno.test("differences: logits within the tolerance and the same continuation agree; anything else is named", () => {
  assertEquals(differences(run([0.5, 1, -1, 2]), run([0.50005, 1, -1, 2])), []);
  assertEquals(differences(run([0.5, 1, -1, 2]), run([0.5002, 1, -1, 2])).length, 1);
  assertEquals(differences(run([0, 0, 0, 0]), run([0.5, 1, -1, 2]))[0], "logits differ by up to 2 (tolerance 0.0001)");
  assertEquals(differences(run([1, 1], [1, 2]), run([1, 1], [1, 3])), ["continuation 1,2 in the browser, 1,3 in Deno"]);
});

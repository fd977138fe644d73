import { assertEquals } from "../../tests/assert.ts";
import { formatCount, formatDuration } from "./format.ts";

Deno.test("count and duration formatting", () => {
  assertEquals(formatCount(999), "999");
  assertEquals(formatCount(12345), "12.3k");
  assertEquals(formatCount(2.5e6), "2.5M");
  assertEquals(formatDuration(4.25), "4.3s");
  assertEquals(formatDuration(185), "3m05s");
  assertEquals(formatDuration(3725), "1h02m");
});

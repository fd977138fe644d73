/** Which tasks `deno task check` runs. */
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { checkTasks } from "./check.ts";

const config = { tasks: { "check": "x", "check:fmt": "x", "test": "x", "check:lint": "x", "check:browser": "x" } };

Deno.test("checkTasks: every check:* task in order, or the ones named; an unknown name is refused", () => {
  assertEquals(checkTasks(config), ["check:fmt", "check:lint", "check:browser"]);
  assertEquals(checkTasks(config, ["browser", "check:fmt"]), ["check:fmt", "check:browser"]);
  assertThrows(() => checkTasks(config, ["types"]), "no task check:types");
});

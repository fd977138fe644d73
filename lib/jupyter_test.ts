import { assertEquals } from "../tests/assert.ts";
import { display, inJupyter, JUPYTER_DISPLAY } from "./jupyter.ts";

Deno.test("outside the kernel the Jupyter helpers are inert", async () => {
  assertEquals(JUPYTER_DISPLAY, Symbol.for("Jupyter.display"));
  assertEquals(inJupyter(), false);
  assertEquals(await display({ "text/plain": "x" }, { raw: true, displayId: "d" }), false);
});

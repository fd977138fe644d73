import { assertEquals } from "../../tests/assert.ts";
import { bundleOf, cellResult, inJupyter, JUPYTER_DISPLAY } from "./display.ts";
import { display } from "./jupyter.ts";

Deno.test("outside the kernel the Jupyter helpers are inert", async () => {
  assertEquals(JUPYTER_DISPLAY, Symbol.for("Jupyter.display"));
  assertEquals(inJupyter(), false);
  assertEquals(await display({ "text/plain": "x" }, { raw: true, displayId: "d" }), false);
});

Deno.test("outside the kernel cellResult and bundleOf give the bundle itself", async () => {
  const bundle = { "text/plain": "x" };
  assertEquals(await cellResult(bundle), bundle);
  assertEquals(await bundleOf({ [JUPYTER_DISPLAY]: () => cellResult(bundle) }), bundle);
});

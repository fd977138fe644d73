import { assert } from "../../tests/assert.ts";
import { modelBundle } from "./view.ts";

Deno.test("model view: architecture facts and the accounting table", () => {
  const shape = { vocabSize: 50257, contextLength: 1024, dModel: 1600, numLayers: 48, numHeads: 25, dFf: 6400 };
  const b = modelBundle(shape);
  assert((b["text/plain"] as string).includes("2,127,057,600"));
  const html = b["text/html"] as string;
  for (const part of ["token embedding", "feed-forward", "LM head", "total", "100.0%"]) {
    assert(html.includes(part), part);
  }
});

import { assert } from "../../tests/assert.ts";
import { runBundle } from "./view.ts";

Deno.test("run view: progress, losses, throughput", () => {
  const b = runBundle({ name: "a", step: 30, steps: 120, loss: 4.25, valLoss: 4.5, valStep: 25, tokensPerSec: 12345 });
  const plain = b["text/plain"] as string;
  assert(plain.includes("step: 30 / 120 (25%)") && plain.includes("4.2500") && plain.includes("4.5000 (step 25)"));
  assert(plain.includes("12.3k"), plain);
  assert((b["text/html"] as string).includes('<progress value="30" max="120"'));
});

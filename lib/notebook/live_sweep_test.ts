import { assertEquals, assertMatch } from "../../tests/assert.ts";
import { writeTokenFile } from "../data/token_files.ts";
import { sweep } from "./live_sweep.ts";

Deno.test("sweep in a notebook: a run that fails is reported, the others train and load", async () => {
  const root = await Deno.makeTempDir();
  await writeTokenFile(`${root}/train.bin`, Array.from({ length: 2000 }, (_, i) => (i * 3) % 29));
  const base = {
    model: { vocabSize: 32, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 2 },
    train: { trainData: `${root}/train.bin`, steps: 4, batchSize: 4 },
  };
  const spec = { name: "lr", base, grid: { train: { lrMax: [1e-3, 1e-2] } } };
  // The first run cannot write its metrics: a folder is in the way.
  await Deno.mkdir(`${root}/lrMax-0.001/metrics.jsonl`, { recursive: true });
  const lines: string[] = [];
  const { result, runs } = await sweep(spec, { root, log: (line) => lines.push(line) });
  assertMatch(result.runs[0].error ?? "", /metrics\.jsonl/);
  assertEquals(runs.map((run) => `${run.name} ${run.status}`), ["lrMax-0.01 done"]);
  await Deno.remove(root, { recursive: true });
});

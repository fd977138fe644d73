/**
 * Sizes the model and the run of `deno task train`'s embedded default (Moby-Dick, BPE 512) on a GPU: trains
 * candidate shapes for several epochs with frequent evaluations and prints, per candidate, its parameters, the best
 * validation loss and the step (and epoch) it came at, the last validation loss and the wall-clock time. The
 * default is the candidate with the lowest best loss; its run is cut to the epochs that loss needed.
 *
 * ```sh
 * deno run -A bench/default_size.ts --data runs/size/data   # one JSON line per candidate
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { prepareDefaultData } from "../lib/data/default_data.ts";
import { type EvalMetrics, Trainer } from "../lib/train/trainer.ts";

const { values } = parseArgs({
  options: {
    data: { type: "string", default: "runs/default-size/data" },
    only: { type: "string" },
  },
});
const data = await prepareDefaultData(values.data!, { vocabSize: 512 });
const shape = (dModel: number, numLayers: number, numHeads: number) => ({
  vocabSize: 512,
  contextLength: 256,
  dModel,
  numLayers,
  numHeads,
});
const candidates = [
  { name: "d128-L4", model: shape(128, 4, 4), steps: 800, lrMax: 3e-3 },
  { name: "d256-L4", model: shape(256, 4, 4), steps: 800, lrMax: 2e-3 },
  { name: "d256-L4-long", model: shape(256, 4, 4), steps: 2000, lrMax: 2e-3 },
  { name: "d384-L6", model: shape(384, 6, 6), steps: 800, lrMax: 1e-3 },
  { name: "d384-L6-long", model: shape(384, 6, 6), steps: 2000, lrMax: 1e-3 },
  { name: "d512-L4 (the old default)", model: { ...shape(512, 4, 16), dFf: 1344 }, steps: 800, lrMax: 1e-3 },
].filter((c) => !values.only || c.name.includes(values.only));

for (const c of candidates) {
  const evals: EvalMetrics[] = [];
  const trainer = await Trainer.create({
    model: c.model,
    train: {
      trainData: data.trainData,
      valData: data.valData,
      outDir: `${values.data}/../${c.name.split(" ")[0]}`,
      steps: c.steps,
      batchSize: 32,
      lrMax: c.lrMax,
      lrMin: c.lrMax / 10,
      evalInterval: 25,
      evalIters: 8,
      logInterval: 25,
      checkpointInterval: 0,
    },
  }, { onEvent: (e) => void (e.type === "eval" && evals.push(e)) });
  const start = performance.now();
  const result = await trainer.fit();
  const seconds = (performance.now() - start) / 1000;
  const best = evals.reduce((a, b) => (b.valLoss < a.valLoss ? b : a));
  console.log(JSON.stringify({
    name: c.name,
    parameters: trainer.model.numParameters(),
    steps: c.steps,
    lrMax: c.lrMax,
    epochs: (c.steps * trainer.tokensPerStep) / data.tokens.train,
    bestValLoss: best.valLoss,
    bestStep: best.step,
    bestEpoch: (best.step * trainer.tokensPerStep) / data.tokens.train,
    lastValLoss: evals.at(-1)!.valLoss,
    reason: result.reason,
    seconds,
    curve: evals.map((e) => [e.step, Number(e.valLoss.toFixed(4))]),
  }));
  trainer.dispose();
}

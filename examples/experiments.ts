/**
 * The experiments notebook (`notebooks/06_experiments.ipynb`) as a terminal script: a learning-rate sweep of a tiny
 * model on the default corpus, then the same model without RMSNorm (`norm: "none"`) at the best rate and at three
 * times it, all through the trainer API with the same seed. Progress lines while training, a summary table, and an
 * HTML report with the overlaid loss curves.
 *
 * Usage: `deno run -A examples/experiments.ts [--steps 60] [--lrs 1e-3,3e-3,1e-2,3e-2]`. Files go to
 * `runs/examples/experiments/`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  type ConfigInput,
  type FitResult,
  initGpu,
  type ModelConfigInput,
  prepareDefaultData,
  Trainer,
  type TrainEvent,
} from "../mod.ts";
import { type TableRow, textTable, TrainingMonitor, writeReport } from "../lib/notebook/mod.ts";
import type { TrainConfigInput } from "../lib/train/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { steps: { type: "string", default: "60" }, lrs: { type: "string", default: "1e-3,3e-3,1e-2,3e-2" } },
});
const steps = Number(values.steps);
if (!Number.isInteger(steps) || steps < 10) {
  throw new Error(`--steps must be an integer of at least 10, got ${values.steps}`);
}
const lrs = values.lrs!.split(",").map(Number);
if (lrs.length === 0 || lrs.some((lr) => !(lr > 0))) {
  throw new Error(`--lrs must be positive numbers, got ${values.lrs}`);
}

const backend = await initGpu();
const OUT = "runs/examples/experiments";
const data = await prepareDefaultData("runs/examples/data", { vocabSize: 512 });
const base: ConfigInput = {
  model: { vocabSize: 512, contextLength: 64, dModel: 64, numLayers: 2, numHeads: 4, dFf: 176 },
  train: {
    trainData: data.trainData,
    valData: data.valData,
    outDir: OUT,
    steps,
    batchSize: 8,
    warmupSteps: Math.max(1, Math.round(steps / 10)),
    logInterval: 10,
    evalInterval: Math.max(1, Math.round(steps / 2)),
    evalIters: 4,
    seed: 0,
  },
};

interface Outcome {
  name: string;
  result: FitResult;
  events: TrainEvent[];
  monitor: TrainingMonitor;
}

/** Trains one variant of the base config, printing progress. */
async function run(name: string, change: { model?: Partial<ModelConfigInput>; train?: Partial<TrainConfigInput> }) {
  const config: ConfigInput = {
    model: { ...base.model, ...change.model },
    train: { ...base.train, ...change.train, outDir: `${OUT}/${name.replace(/[^a-z0-9.-]+/gi, "_")}` },
  };
  const events: TrainEvent[] = [];
  const monitor = new TrainingMonitor({ name, steps, every: 20, print: (line) => console.error(`  ${line}`) });
  const trainer = await Trainer.create(config, {
    onEvent: async (e) => {
      if (e.type !== "checkpoint") events.push(e);
      await monitor.onEvent(e);
    },
  });
  const result = await trainer.fit();
  trainer.dispose();
  return { name, result, events, monitor };
}

const rows = (outcomes: Outcome[]): TableRow[] =>
  outcomes.map(({ name, result, monitor }) => ({
    run: name,
    "final train loss": result.lastLoss,
    "validation loss": monitor.status().valLoss,
    "tokens/s": Math.round(monitor.status().tokensPerSec ?? 0),
  }));

console.error(`nanolm experiments on ${backend.info.description}: ${steps} steps per run`);
const sweep: Outcome[] = [];
for (const lr of lrs) sweep.push(await run(`lr ${lr}`, { train: { lrMax: lr, lrMin: lr / 10 } }));
console.log(textTable(rows(sweep), { title: "Learning-rate sweep" }));

const best = sweep.reduce((a, b) => (b.result.lastLoss < a.result.lastLoss ? b : a));
const bestLr = lrs[sweep.indexOf(best)], highLr = 3 * bestLr;
const normedHigh = sweep.find((_, i) => Math.abs(lrs[i] / highLr - 1) < 0.2) ??
  await run(`lr ${highLr}`, { train: { lrMax: highLr, lrMin: highLr / 10 } });
const ablation = [
  await run(`no norm, lr ${bestLr}`, { model: { norm: "none" }, train: { lrMax: bestLr, lrMin: bestLr / 10 } }),
  await run(`no norm, lr ${highLr}`, { model: { norm: "none" }, train: { lrMax: highLr, lrMin: highLr / 10 } }),
];
console.log("\n" + textTable(rows([best, ablation[0], normedHigh, ablation[1]]), { title: "RMSNorm ablation" }));

const report = `${OUT}/report.html`;
await writeReport(report, {
  title: "nanolm: learning-rate sweep and RMSNorm ablation",
  notes: `${steps} steps per run of a 2-layer, d_model 64 model on Moby-Dick (${backend.info.description}).`,
  runs: [...sweep, ...(sweep.includes(normedHigh) ? [] : [normedHigh]), ...ablation].map((o) => ({
    name: o.name,
    records: o.events,
  })),
});
console.log(`\nreport with the overlaid loss curves: ${report}`);

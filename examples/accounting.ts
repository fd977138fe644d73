/**
 * The accounting notebook (`notebooks/05_accounting.ipynb`) as a terminal script: parameters and forward FLOPs by
 * component for GPT-2 small to XL (CS336 architecture), FLOP shares against context length, training memory against
 * batch size, and the time of a long training run at a given MFU.
 *
 * Usage: `deno run -A examples/accounting.ts [--peak-tflops 67] [--mfu 0.5] [--gpu-gb 80]`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { forwardFlops, memoryUsage, type ModelShape, parameterCounts, trainingFlops } from "../lib/nn/accounting.ts";
import { textTable } from "../lib/notebook/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "peak-tflops": { type: "string", default: "67" },
    mfu: { type: "string", default: "0.5" },
    "gpu-gb": { type: "string", default: "80" },
  },
});
function positive(name: "peak-tflops" | "mfu" | "gpu-gb"): number {
  const v = Number(values[name]);
  if (!(v > 0)) throw new Error(`--${name} must be a positive number, got ${JSON.stringify(values[name])}`);
  return v;
}
const peak = positive("peak-tflops") * 1e12, mfu = positive("mfu"), gpuBytes = positive("gpu-gb") * 1e9;

const gpt2 = (dModel: number, numLayers: number, numHeads: number): ModelShape => ({
  vocabSize: 50257,
  contextLength: 1024,
  dModel,
  numLayers,
  numHeads,
  dFf: 4 * dModel,
});
const models: [string, ModelShape][] = [
  ["GPT-2 small", gpt2(768, 12, 12)],
  ["GPT-2 medium", gpt2(1024, 24, 16)],
  ["GPT-2 large", gpt2(1280, 36, 20)],
  ["GPT-2 XL", gpt2(1600, 48, 25)],
];
const xl = models[3][1];

console.log(textTable(
  models.map(([model, shape]) => {
    const p = parameterCounts(shape);
    return {
      model,
      embedding: p.embedding,
      attention: p.attention,
      "feed-forward": p.feedForward,
      norms: p.norms,
      "LM head": p.lmHead,
      total: p.total,
      "float32 GB": (4 * p.total) / 1e9,
    };
  }),
  { title: "Parameters" },
));

const share = (part: number, total: number) => `${((100 * part) / total).toFixed(1)}%`;
console.log(
  "\n" + textTable(
    models.map(([model, shape]) => {
      const f = forwardFlops(shape);
      return {
        model,
        "TFLOPs / sequence": f.total / 1e12,
        "Q/K/V + output": share(f.qkvProjections + f.outputProjection, f.total),
        "scores + AV": share(f.attentionScores + f.attentionValues, f.total),
        "feed-forward": share(f.feedForward, f.total),
        "LM head": share(f.lmHead, f.total),
        "non-matmul": share(f.nonMatmul, f.total),
      };
    }),
    { title: "Forward FLOPs of one 1,024-token sequence, by component" },
  ),
);

console.log(
  "\n" + textTable(
    [1024, 4096, 16384].map((T) => {
      const f = forwardFlops({ ...xl, contextLength: T });
      return {
        context: T,
        "scores + AV": share(f.attentionScores + f.attentionValues, f.total),
        "feed-forward": share(f.feedForward, f.total),
        "TFLOPs / sequence": f.total / 1e12,
      };
    }),
    { title: "GPT-2 XL: FLOP shares against context length" },
  ),
);

const mem = [1, 2, 4, 8, 16].map((batchSize) => ({ batchSize, ...memoryUsage(xl, { batchSize }) }));
const fixed = mem[0].parameters + mem[0].gradients + mem[0].optimizerState;
console.log(
  "\n" + textTable(
    mem.map((m) => ({
      batch: m.batchSize,
      "parameters+grads+AdamW GB": fixed / 1e9,
      "activations GB": m.activations / 1e9,
      "total GB": m.total / 1e9,
    })),
    { title: "GPT-2 XL training memory (float32)" },
  ),
);
console.log(`largest batch in ${gpuBytes / 1e9} GB: ${Math.floor((gpuBytes - fixed) / mem[0].activations)}`);

const step = trainingFlops(xl, { batchSize: 1024 });
const days = (400_000 * step.total) / (peak * mfu) / 86400;
console.log(
  `\nGPT-2 XL, 400,000 steps of 1,024 × 1,024 tokens: ${step.total.toExponential(3)} FLOPs per step, ` +
    `${days.toFixed(0)} days at ${(100 * mfu).toFixed(0)}% MFU of ${peak / 1e12} TFLOP/s`,
);

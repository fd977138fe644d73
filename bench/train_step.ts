/**
 * Training-step benchmark at CS336's TinyStories shape (vocab 10000, context 256, d_model 512, 4 layers, 16 heads,
 * d_ff 1344), batch 32: forward, cross-entropy, backward, global-norm clipping and AdamW, with one GPU round trip
 * per `--log` steps, read one interval late as in the trainer. Prints tokens/s and a per-kernel GPU-time breakdown
 * of one step.
 *
 * Run on the GPU machine beside `python3 .device/torch_train_step.py` (same shapes) and report the ratio.
 *
 * @module
 */
import { parseArgs } from "node:util";
// Modules, not mod.ts: the GPU machine has no network, and mod.ts pulls npm packages (plotly, corpora) in.
import type { AttentionVariant } from "../kernels/attention.ts";
import { crossEntropy, gpu, initGpu, keep, noGrad, readAll, type Tensor, tensor, tidy } from "../lib/tensor/mod.ts";
import { setAttentionVariant } from "../lib/tensor/ops/nn.ts";
import { AdamW } from "../lib/optim/adamw.ts";
import { TransformerLM } from "../lib/nn/transformer.ts";
import { type MatmulTuning, setMatmulTuning } from "../lib/tensor/ops/matmul.ts";
import { lmShapeConfig, lmShapeOptions } from "./lm_shape.ts";
import { Rng } from "../lib/util/random.ts";

const { values } = parseArgs({
  options: {
    ...lmShapeOptions,
    batch: { type: "string", default: "32" },
    steps: { type: "string", default: "30" },
    log: { type: "string", default: "10" },
    // The fused attention kernels' work split as JSON, e.g. '{"rowsPerThread":2,"keysPerThread":2}' (see
    // AttentionVariant in kernels/attention.ts); fields left out keep the default.
    "attention-variant": { type: "string", default: "{}" },
    // Inner loop of the x @ W^T matmuls: "outer" or "dot" (see MatmulTuning in lib/tensor/ops/matmul.ts).
    "transposed-b": { type: "string", default: "outer" },
    // Separate q/k/v and w1/w3 matmuls (fusedProjections: false), to time against the default fused ones.
    unfused: { type: "boolean", default: false },
    // Read each interval's loss as soon as it ends, as the trainer did before it read one interval late.
    drain: { type: "boolean", default: false },
    // Launch every matmul one workgroup per tile (no stream-K for partial last waves).
    "no-stream-k": { type: "boolean", default: false },
  },
});
setMatmulTuning({
  transposedBCompute: values["transposed-b"] as MatmulTuning["transposedBCompute"],
  autoStreamK: !values["no-stream-k"],
});
const attentionVariant = JSON.parse(values["attention-variant"]) as Partial<AttentionVariant>;
setAttentionVariant(attentionVariant);
const config = { ...lmShapeConfig(values), fusedProjections: !values.unfused };
const V = config.vocabSize, T = config.contextLength, B = Number(values.batch);
const steps = Number(values.steps), logEvery = Number(values.log);

const backend = await initGpu();
const model = new TransformerLM(config, { seed: 0 });
const opt = new AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.1, betas: [0.9, 0.95] });
const rng = new Rng(0);
// Batches are drawn on the host up front, as the data loader would hand them over.
const batches = Array.from({ length: 4 }, () => {
  const ids = Int32Array.from({ length: B * (T + 1) }, () => rng.int(V));
  const inputs = new Int32Array(B * T), targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    inputs.set(ids.subarray(b * (T + 1), b * (T + 1) + T), b * T);
    targets.set(ids.subarray(b * (T + 1) + 1, b * (T + 1) + T + 1), b * T);
  }
  return { inputs, targets };
});

function step(i: number): [Tensor, Tensor] {
  const { inputs, targets } = batches[i % batches.length];
  const loss = tidy(() => {
    const x = tensor(inputs, { shape: [B, T], dtype: "i32" }), y = tensor(targets, { shape: [B, T], dtype: "i32" });
    const l = crossEntropy(model.forward(x), y);
    l.backward();
    return keep(noGrad(() => l));
  });
  const norm = opt.step({ lr: 1e-3, maxGradNorm: 1.0, returnGradNorm: true });
  opt.zeroGrad();
  return [loss, norm];
}

// Warm-up compiles every kernel.
for (let i = 0; i < 3; i++) for (const t of step(i)) t.dispose();
await backend.sync();

const t0 = performance.now();
let pending: Tensor[] = [];
let lastLoss = NaN;
// CPU time spent recording steps (building the graph, encoding dispatches): the GPU runs behind it, so a step's
// wall time is about the larger of this and the GPU time.
let recordMs = 0;
// As the trainer: each interval's metrics are read when the next interval ends (--drain: at once, which leaves the
// GPU idle for the round trip and the next step's recording).
let inFlight: { tensors: Tensor[]; values: Promise<(Float32Array | Int32Array)[]> } | null = null;
const settle = async (batch: typeof inFlight) => {
  if (!batch) return;
  const vals = await batch.values;
  lastLoss = vals[vals.length - 2][0];
  for (const t of batch.tensors) t.dispose();
};
for (let i = 0; i < steps; i++) {
  const r0 = performance.now();
  pending.push(...step(i));
  recordMs += performance.now() - r0;
  if ((i + 1) % logEvery === 0 || i === steps - 1) {
    const previous = inFlight;
    inFlight = { tensors: pending, values: readAll(pending) };
    pending = [];
    await settle(previous);
    if (values.drain || i === steps - 1) {
      await settle(inFlight);
      inFlight = null;
    }
  }
}
const seconds = (performance.now() - t0) / 1000;
const msPerStep = (seconds * 1000) / steps;
const tokensPerSec = (steps * B * T) / seconds;

const timings = await backend.profile(() => {
  for (const t of step(0)) t.dispose();
});
const gpuMs = timings.reduce((s, t) => s + t.ms, 0);
console.log(
  `# ${backend.info.description}: ${model.numParameters().toLocaleString()} parameters, batch ${B} x ${T}, ` +
    `${config.fusedProjections ? "fused" : "unfused"} projections`,
);
console.log("| kernel | dispatches | GPU ms per step | share |");
console.log("| --- | ---: | ---: | ---: |");
for (const t of timings.slice(0, 16)) {
  console.log(`| ${t.name} | ${t.count} | ${t.ms.toFixed(3)} | ${(100 * t.ms / gpuMs).toFixed(1)}% |`);
}
console.log(
  `| all kernels (profiled, one pass per dispatch) | ${timings.reduce((s, t) => s + t.count, 0)} | ${
    gpuMs.toFixed(2)
  } | |`,
);
console.log(
  JSON.stringify({
    name: "nanolm webgpu f32",
    tokens_per_s: Math.round(tokensPerSec),
    ms_per_step: Number(msPerStep.toFixed(2)),
    record_ms_per_step: Number((recordMs / steps).toFixed(2)),
    last_loss: lastLoss,
    attention_variant: attentionVariant,
    transposed_b: values["transposed-b"],
    fused_projections: config.fusedProjections,
    stream_k: !values["no-stream-k"],
    reads: values.drain ? "drained" : "one interval late",
    memory: gpu().memory(),
  }),
);

/**
 * Training-step benchmark at CS336's TinyStories shape (vocab 10000, context 256, d_model 512, 4 layers, 16 heads,
 * d_ff 1344), batch 32, or any other through the flags of `torch_train_step.py` (`--vocab --ctx --d-model --layers
 * --heads --d-ff --batch --steps`): forward, the LM head's loss (`TransformerLM.loss`, in chunks of rows when the
 * logits are large), backward, global-norm clipping and AdamW, with one GPU round trip per `--log` steps, read one
 * interval late as in the trainer. Prints tokens/s and a per-kernel GPU-time breakdown of one step. Exits non-zero
 * when WebGPU reported an error or the loss is not a finite positive number, so that a step that silently computed
 * nothing cannot pass for a fast one.
 *
 * Run on the GPU machine beside `python3 .device/torch_train_step.py` (same shapes) and report the ratio, e.g. at the
 * GPT-2-small shape: `--vocab 50257 --ctx 1024 --d-model 768 --layers 12 --heads 12 --d-ff 2048 --batch 16`.
 *
 * @module
 */
import { parseArgs } from "node:util";
// Modules, not mod.ts: the GPU machine has no network, and mod.ts pulls npm packages (plotly, corpora) in.
import type { AttentionVariant } from "../kernels/attention.ts";
import { gpu, initGpu, keep, logitChunkRows, noGrad, readAll, type Tensor, tensor, tidy } from "../lib/tensor/mod.ts";
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
    // How the x @ W^T matmuls run: "copy", "outer" or "dot" (see MatmulTuning in lib/tensor/ops/matmul.ts); the
    // library's default when absent.
    "transposed-b": { type: "string" },
    // Separate q/k/v and w1/w3 matmuls (fusedProjections: false), to time against the default fused ones.
    unfused: { type: "boolean", default: false },
    // Read each interval's loss as soon as it ends, as the trainer did before it read one interval late.
    drain: { type: "boolean", default: false },
    // Launch every matmul one workgroup per tile (no stream-K for partial last waves).
    "no-stream-k": { type: "boolean", default: false },
    // Rows of logits the LM head's loss computes at once (see linearCrossEntropy); by default all of them up to
    // 512 MiB of logits, else equal chunks under that. Pass batch x ctx to time the unchunked head where it fits.
    "chunk-rows": { type: "string" },
    // Enforce a lower storage binding limit (bytes) than the device's: a small shape whose logits exceed it takes
    // the code path of a large one whose logits exceed 2 GiB (e.g. GPT-2 small at batch 16).
    "binding-limit": { type: "string" },
    // Rows of the per-kernel table: the kernels that took the most GPU time, or with "all" every one.
    kernels: { type: "string", default: "16" },
  },
});
const transposedB = values["transposed-b"];
if (transposedB !== undefined && !["copy", "outer", "dot"].includes(transposedB)) {
  throw new Error(`--transposed-b must be copy, outer or dot, got ${JSON.stringify(transposedB)}`);
}
const libraryTuning = setMatmulTuning({
  ...(transposedB ? { transposedBCompute: transposedB as MatmulTuning["transposedBCompute"] } : {}),
  autoStreamK: !values["no-stream-k"],
});
const attentionVariant = JSON.parse(values["attention-variant"]) as Partial<AttentionVariant>;
setAttentionVariant(attentionVariant);
const config = { ...lmShapeConfig(values), fusedProjections: !values.unfused };
const V = config.vocabSize, T = config.contextLength, B = Number(values.batch);
const steps = Number(values.steps), logEvery = Number(values.log);
const chunkRows = values["chunk-rows"] === undefined ? undefined : Number(values["chunk-rows"]);
const kernelRows = values.kernels === "all" ? Infinity : Number(values.kernels);
const counts = [["batch", B], ["steps", steps], ["log", logEvery], ["chunk-rows", chunkRows ?? 1]] as const;
for (const [flag, n] of [...counts, ["kernels", values.kernels === "all" ? 1 : kernelRows] as const]) {
  if (!Number.isInteger(n) || n <= 0) {
    throw new Error(
      `--${flag} must be a positive integer${flag === "kernels" ? ' or "all"' : ""}, got ${values[flag]}`,
    );
  }
}

const backend = await initGpu();
if (values["binding-limit"] !== undefined) {
  backend.setLimits({ maxStorageBufferBindingSize: Number(values["binding-limit"]) });
}
const gpuErrors: string[] = [];
backend.device.addEventListener("uncapturederror", (e) => {
  gpuErrors.push((e as GPUUncapturedErrorEvent).error.message);
});
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
    const l = model.loss(x, y, { chunkRows });
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
const headChunkRows = logitChunkRows(B * T, V, { chunkRows });
console.log(
  `# ${backend.info.description}: ${model.numParameters().toLocaleString()} parameters, batch ${B} x ${T}, ` +
    `${config.fusedProjections ? "fused" : "unfused"} projections, ` +
    `LM head in ${Math.ceil((B * T) / headChunkRows)} chunk(s) of ${headChunkRows} rows`,
);
console.log("| kernel | dispatches | GPU ms per step | share |");
console.log("| --- | ---: | ---: | ---: |");
for (const t of timings.slice(0, kernelRows)) {
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
    transposed_b: transposedB ?? libraryTuning.transposedBCompute,
    fused_projections: config.fusedProjections,
    stream_k: !values["no-stream-k"],
    reads: values.drain ? "drained" : "one interval late",
    head_chunk_rows: headChunkRows,
    parameters: model.numParameters(),
    shape: { vocab: V, ctx: T, d_model: config.dModel, layers: config.numLayers, heads: config.numHeads, batch: B },
    memory: gpu().memory(),
    binding_limit: backend.limits.maxStorageBufferBindingSize,
    gpu_errors: gpuErrors.length,
  }),
);
if (gpuErrors.length > 0 || !(lastLoss > 0 && Number.isFinite(lastLoss))) {
  console.error(
    `train_step: loss ${lastLoss}, ${gpuErrors.length} WebGPU errors${gpuErrors.length ? ": " : ""}${
      gpuErrors.slice(0, 3).join("; ")
    }`,
  );
  Deno.exit(1);
}

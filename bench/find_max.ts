/**
 * The biggest model that trains on this GPU in f32 with AdamW. Grows CS336's GPT-2 XL shape (vocab 50257, ctx 1024,
 * d_model 1600, 48 layers, 25 heads, d_ff 6400; any start through the shape flags of `torch_train_step.py`) in
 * layers (`--grow layers`, the default) or in width (`--grow width`: d_model in steps of the head dim, the heads and
 * d_ff growing with it). Each candidate runs in a child process that builds the model and AdamW, runs `--warmup`
 * and then `--steps` training steps of `--batch` sequences (`TransformerLM.loss`, clipping at 1.0, AdamW), and
 * reports tokens/s and the GPU memory it allocated; its memory goes back to the GPU when it exits.
 *
 * The search predicts, then checks: after two candidates that train, the memory measured is fitted against the
 * accounting's prediction (`memoryUsage`) and the next candidate is the largest the fit puts under 95% of the GPU's
 * memory (from `nvidia-smi`, or `--gpu-memory-gib`), then the size after it; without a prediction, or when that
 * one trains too, it grows by half. Once a candidate fails it bisects down to `--resolution`. A failure is anything but a clean run: an allocation the GPU refused (the
 * out-of-memory error scope), a WebGPU validation error, an exception, a lost device, a crash, a non-finite loss,
 * or `--timeout` seconds passing. The search stops by `--max-seconds` in any case.
 *
 * Prints one JSON line per candidate as it finishes, then one summary line `{"largest": ..., "smallest_failure":
 * ..., "torch": ...}`, whose `torch` field holds the commands that measure PyTorch at the same shapes
 * (`bench/torch_train_memory.py`, eager fp32 + AdamW, in the same call).
 *
 * ```sh
 * deno run -A --cached-only bench/find_max.ts                  # layers of the XL shape, batch 1
 * deno run -A --cached-only bench/find_max.ts --grow width --batch 4
 * ```
 *
 * Weights are drawn uniform with the standard deviation of the model's initialisation rather than truncated normal
 * (which takes minutes a billion parameters on the host): the speed and memory of a step do not depend on them.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { lmShapeConfig, lmShapeOptions } from "./lm_shape.ts";
import type { ModelConfigInput } from "../lib/nn/config.ts";
import { memoryUsage, parameterCounts } from "../lib/nn/accounting.ts";
import { TransformerLM } from "../lib/nn/transformer.ts";
import { AdamW } from "../lib/optim/adamw.ts";
import { initGpu, keep, noGrad, readAll, type Tensor, tensor, tidy } from "../lib/tensor/mod.ts";
import { Rng } from "../lib/util/random.ts";

const xl = { vocab: "50257", ctx: "1024", "d-model": "1600", layers: "48", heads: "25", "d-ff": "6400" };
const { values } = parseArgs({
  options: {
    ...Object.fromEntries(
      Object.entries(lmShapeOptions).map(([k, o]) => [k, { ...o, default: xl[k as keyof typeof xl] }]),
    ) as typeof lmShapeOptions,
    batch: { type: "string", default: "1" },
    grow: { type: "string", default: "layers" },
    resolution: { type: "string" },
    warmup: { type: "string", default: "1" },
    steps: { type: "string", default: "3" },
    timeout: { type: "string", default: "240" },
    "max-seconds": { type: "string", default: "540" },
    "gpu-memory-gib": { type: "string" },
    // Internal: run one candidate (the parent passes it as JSON) and print its result.
    child: { type: "string" },
  },
});

/** One candidate's run, as the child reports it. */
interface Trial {
  config: ModelConfigInput;
  batch: number;
  warmup: number;
  steps: number;
}

/** What a child reports: ok with figures, or the reason it failed. */
interface TrialResult {
  ok: boolean;
  error?: string;
  parameters?: number;
  tokens_per_s?: number;
  ms_per_step?: number;
  loss?: number;
  /** Bytes of all GPU buffers the run created (the backend's pool, which keeps freed buffers for reuse). */
  gpu_bytes?: number;
  seconds?: number;
}

// ---- The child: one candidate --------------------------------------------------------------------------------------

/** Uniform weights of unit standard deviation (|z| <= sqrt 3, inside truncNormal's bounds) at xorshift speed. */
class FastRng extends Rng {
  #s = 0x9e3779b9 | 0;

  override normal(): number {
    let s = this.#s;
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    this.#s = s;
    return (s / 2147483648) * Math.sqrt(3);
  }
}

async function runTrial(trial: Trial): Promise<TrialResult> {
  const start = performance.now();
  const backend = await initGpu();
  const device = backend.device;
  let lost = "";
  device.lost.then((info) => lost = info.message || String(info.reason));
  // Errors of what runs inside the scopes come back from popErrorScope instead of the console.
  const push = () => {
    device.pushErrorScope("out-of-memory");
    device.pushErrorScope("validation");
  };
  const check = async (phase: string) => {
    const validation = await device.popErrorScope(), memory = await device.popErrorScope();
    push();
    const errors = [memory && `out of memory: ${memory.message}`, validation && `validation: ${validation.message}`];
    if (lost) errors.push(`device lost: ${lost}`);
    const found = errors.filter((e) => e).map((e) => firstLine(e));
    if (found.length > 0) throw new Error(`${phase}: ${found.join("; ")}`);
  };
  push();
  const model = new TransformerLM(trial.config, { rng: new FastRng(0) });
  const opt = new AdamW(model.parameters(), { lr: 1e-4, weightDecay: 0.1, betas: [0.9, 0.95] });
  const { vocabSize: V, contextLength: T } = model.config, B = trial.batch;
  const rng = new Rng(1);
  const ids = Int32Array.from({ length: B * T }, () => rng.int(V));
  const targets = Int32Array.from({ length: B * T }, () => rng.int(V));
  await backend.sync();
  await check("building the model");
  const step = (): Tensor => {
    const loss = tidy(() => {
      const x = tensor(ids, { shape: [B, T], dtype: "i32" }), y = tensor(targets, { shape: [B, T], dtype: "i32" });
      const l = model.loss(x, y);
      l.backward();
      return keep(noGrad(() => l));
    });
    opt.step({ lr: 1e-4, maxGradNorm: 1.0 });
    opt.zeroGrad();
    return loss;
  };
  const run = async (n: number) => {
    const losses = Array.from({ length: n }, step);
    const read = await readAll(losses);
    for (const l of losses) l.dispose();
    return read.map((v) => v[0]);
  };
  await run(trial.warmup);
  await check("warm-up steps");
  const t0 = performance.now();
  const losses = await run(trial.steps);
  const seconds = (performance.now() - t0) / 1000;
  await check("timed steps");
  const loss = losses[losses.length - 1];
  if (!(Number.isFinite(loss) && loss > 0)) throw new Error(`the loss is ${loss}`);
  return {
    ok: true,
    parameters: model.numParameters(),
    tokens_per_s: Math.round((trial.steps * B * T) / seconds),
    ms_per_step: Number(((seconds * 1000) / trial.steps).toFixed(1)),
    loss,
    gpu_bytes: backend.memory().totalBytes,
    seconds: Number(((performance.now() - start) / 1000).toFixed(1)),
  };
}

function firstLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split("\n")[0].slice(0, 300);
}

// ---- The parent: the search ----------------------------------------------------------------------------------------

if (values.child !== undefined) {
  const result = await runTrial(JSON.parse(values.child) as Trial).catch((e): TrialResult => ({
    ok: false,
    error: firstLine(e),
  }));
  console.log(JSON.stringify(result));
  Deno.exit(0);
}

const positive = (flag: keyof typeof values) => {
  const n = Number(values[flag]);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${flag} must be a positive integer, got ${values[flag]}`);
  return n;
};
const start = lmShapeConfig(values);
const batch = positive("batch"), warmup = positive("warmup"), steps = positive("steps");
const timeoutMs = positive("timeout") * 1000, deadline = performance.now() + positive("max-seconds") * 1000;
if (values.grow !== "layers" && values.grow !== "width") {
  throw new Error(`--grow must be "layers" or "width", got ${values.grow}`);
}
const byWidth = values.grow === "width";
const headDim = start.dModel / start.numHeads;
if (!Number.isInteger(headDim)) throw new Error(`--heads ${start.numHeads} must divide --d-model ${start.dModel}`);
const resolution = values.resolution === undefined ? (byWidth ? headDim : 4) : positive("resolution");
if (byWidth && resolution % headDim !== 0) {
  throw new Error(`--resolution must be a multiple of the head dim ${headDim} when growing in width`);
}

/** The candidate of a size: layers, or d_model with heads of the start's head dim and d_ff in the start's ratio. */
function shapeAt(size: number): ModelConfigInput {
  if (!byWidth) return { ...start, numLayers: size };
  const dFf = Math.round((start.dFf! / start.dModel) * size / 64) * 64;
  return { ...start, dModel: size, numHeads: size / headDim, dFf };
}
const accounting = (size: number) => {
  const s = shapeAt(size) as Parameters<typeof memoryUsage>[0];
  return { predicted: memoryUsage(s, { batchSize: batch }).total, parameters: parameterCounts(s).total };
};
const roundDown = (size: number) => Math.floor(size / resolution) * resolution;

interface Attempt extends TrialResult {
  size: number;
}

async function attempt(size: number): Promise<Attempt> {
  const trial: Trial = { config: shapeAt(size), batch, warmup, steps };
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...denoRunFlags(), new URL(import.meta.url).pathname, "--child", JSON.stringify(trial)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  const stderr = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ").slice(-400);
  let result: TrialResult;
  try {
    result = JSON.parse(lines[lines.length - 1]);
  } catch {
    const why = timedOut ? `timed out after ${timeoutMs / 1000} s` : `exited with code ${out.code}, no result`;
    result = { ok: false, error: `${why}${stderr ? `: ${stderr}` : ""}` };
  }
  return { size, ...result };
}

/**
 * The flags this process was run with (`-A --cached-only --no-lock` on the GPU machine), for the children, read from
 * /proc; `-A` where there is no /proc.
 */
function denoRunFlags(): string[] {
  try {
    const argv = Deno.readTextFileSync("/proc/self/cmdline").split("\0").filter((a) => a);
    const run = argv.indexOf("run"), script = argv.findIndex((a, i) => i > run && a.endsWith("find_max.ts"));
    if (run >= 0 && script > run) return argv.slice(run + 1, script);
  } catch {
    // Not Linux: the defaults below.
  }
  return ["-A"];
}

/** GPU memory in bytes: `--gpu-memory-gib`, else nvidia-smi's total of the first GPU, else null (no prediction). */
async function gpuMemoryBytes(): Promise<number | null> {
  const gib = values["gpu-memory-gib"];
  if (gib !== undefined) {
    if (!(Number(gib) > 0)) throw new Error(`--gpu-memory-gib must be a positive number, got ${gib}`);
    return Number(gib) * 2 ** 30;
  }
  try {
    const out = await new Deno.Command("nvidia-smi", {
      args: ["--query-gpu=memory.total", "--format=csv,noheader,nounits"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const mib = Number(new TextDecoder().decode(out.stdout).trim().split("\n")[0]);
    return out.success && mib > 0 ? mib * 2 ** 20 : null;
  } catch {
    return null;
  }
}

/**
 * The largest size above `lo` that the fit of measured bytes against the accounting's prediction puts under 95% of
 * `capacity`, or null without two successful candidates of different sizes to fit.
 */
function predictLargest(ok: Attempt[], lo: number, capacity: number | null): number | null {
  const points = ok.map((a) => [accounting(a.size).predicted, a.gpu_bytes!]);
  if (capacity === null || points.length < 2) return null;
  const n = points.length, mx = points.reduce((s, p) => s + p[0], 0) / n, my = points.reduce((s, p) => s + p[1], 0) / n;
  const sxx = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  if (sxx === 0) return null;
  const slope = points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0) / sxx;
  const bytesAt = (size: number) => my + slope * (accounting(size).predicted - mx);
  let size = lo;
  while (bytesAt(size + resolution) <= 0.95 * capacity && size < 1e6) size += resolution;
  return size;
}

const capacity = await gpuMemoryBytes();
const attempts: Attempt[] = [];
let lo = 0, hi = Infinity; // the largest size that trained, the smallest that failed
let steppedPast = false;
let size = byWidth ? start.dModel : start.numLayers;
while (size > lo && size < hi) {
  const last = attempts[attempts.length - 1];
  if (last && performance.now() + 1.5 * (last.seconds ?? timeoutMs / 1000) * 1000 > deadline) break;
  const a = await attempt(size);
  attempts.push(a);
  console.log(JSON.stringify({ candidate: shapeAt(size), batch, ...accounting(size), ...a }));
  if (a.ok) lo = Math.max(lo, size);
  else hi = Math.min(hi, size);
  if (hi - lo <= resolution) break;
  if (hi === Infinity) {
    // The prediction first; when it was too low, the next size up once, then growth by half.
    const predicted = predictLargest(attempts.filter((x) => x.ok), lo, capacity);
    if (predicted !== null && predicted > lo) size = predicted;
    else if (predicted !== null && !steppedPast) [size, steppedPast] = [lo + resolution, true];
    else size = Math.max(lo + resolution, roundDown(lo * 1.5));
  } else {
    size = Math.max(lo + resolution, roundDown((lo + hi) / 2));
  }
}

const best = attempts.filter((a) => a.ok && a.size === lo)[0] ?? null;
const failure = attempts.filter((a) => !a.ok && a.size === hi)[0] ?? null;
const torch = (size: number) => {
  const c = shapeAt(size);
  return `python3 bench/torch_train_memory.py --vocab ${c.vocabSize} --ctx ${c.contextLength} --d-model ${c.dModel} ` +
    `--layers ${c.numLayers} --heads ${c.numHeads} --d-ff ${c.dFf} --batch ${batch} --steps ${steps}`;
};
console.log(JSON.stringify({
  grow: values.grow,
  batch,
  resolution,
  gpu_memory_bytes: capacity,
  settled: hi - lo <= resolution,
  largest: best && { shape: shapeAt(best.size), ...best },
  smallest_failure: failure && { shape: shapeAt(failure.size), ...failure },
  attempts: attempts.length,
  torch: [best, failure].filter((a) => a).map((a) => torch(a!.size)),
}));

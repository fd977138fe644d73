/**
 * A training step, profiled: program, predict, profile. {@linkcode profileStep} runs one full step (forward, loss,
 * backward, AdamW) of a {@linkcode Trainer} or of a model and optimizer on a batch, after a warm-up step, with GPU
 * timestamps on every dispatch. The {@linkcode StepProfile} it returns puts each kernel's measured GPU time beside
 * the FLOPs and bytes its generator predicted from the shapes (`KernelSource.cost`): achieved TFLOP/s and GB/s,
 * arithmetic intensity, and the fraction of the roofline, `min(peak FLOP/s, intensity x peak bandwidth)`, of the
 * adapter's peaks (`gpuPeaks`, or the caller's). It prints as a table, shows itself in a notebook, and writes a
 * Chrome trace (`trace.json`, for Perfetto or chrome://tracing) with one track for the GPU kernels and one for the
 * host recording them.
 *
 * @module
 */
import type { Trainer } from "./trainer.ts"; // a type only: the trainer imports this module
import type { TransformerLM } from "../nn/transformer.ts";
import type { AdamW } from "../optim/adamw.ts";
import { crossEntropy, keep, noGrad, type Tensor, tidy } from "../tensor/mod.ts";
import { type DispatchProfile, gpu } from "../gpu/backend.ts";
import { type GpuPeaks, gpuPeaks } from "../gpu/peaks.ts";
import { writeFileAtomic } from "../io/atomic_write.ts";
import { cellResult, escapeHtml, JUPYTER_DISPLAY, type MimeBundle } from "../notebook/display.ts";
import { formatCell, htmlTable, type TableRow, textTable } from "../notebook/table.ts";

/** One kernel's line of a {@linkcode StepProfile}: all its dispatches together. */
export interface KernelProfile {
  /** Kernel name (`"total"` for the totals line). */
  name: string;
  /** Dispatches of the kernel in the step. */
  dispatches: number;
  /** GPU time of those dispatches in ms (from pass timestamps; NaN without them). */
  gpuMs: number;
  /** Predicted FLOPs of those dispatches (of those with a predicted cost). */
  flops: number;
  /** Predicted bytes moved at least. */
  bytes: number;
  /** Dispatches with a predicted cost: less than `dispatches` for a hand-written kernel without one. */
  predicted: number;
  /** Achieved TFLOP/s: predicted FLOPs over measured time. */
  tflops: number;
  /** Achieved GB/s: predicted bytes over measured time. */
  gbps: number;
  /** Arithmetic intensity: predicted FLOPs per byte (NaN for no bytes). */
  intensity: number;
  /**
   * Fraction of the roofline: the time the predicted work takes at the peaks, `max(flops / peak FLOP/s, bytes /
   * peak bandwidth)`, over the measured time; equally, achieved FLOP/s over `min(peak FLOP/s, intensity x peak
   * bandwidth)`. The totals line sums that least time over the kernels. NaN without peaks, timings or costs.
   */
  roofline: number;
}

/** A span of host time in a profile: a phase of the step (`forward`, `backward`, `optimizer`). */
export interface HostPhase {
  /** Phase name. */
  name: string;
  /** Host time (`performance.now()`, ms) it started. */
  startMs: number;
  /** Host time it ended. */
  endMs: number;
}

/** What a {@linkcode StepProfile} is made of. */
export interface StepProfileParts {
  /** Adapter description. */
  adapter: string;
  /** Peaks of the roofline, or null when unknown (no roofline fractions then). */
  peaks: GpuPeaks | null;
  /** The step's dispatches, in order (see `Backend.profileDispatches`). */
  dispatches: readonly DispatchProfile[];
  /** Host phases of the step, in order. */
  phases: readonly HostPhase[];
}

/** One event of a Chrome trace (the Trace Event Format that Perfetto and chrome://tracing read). */
export interface TraceEvent {
  /** Event name. */
  name: string;
  /** Phase: `X` a complete event (with `dur`), `i` an instant, `M` metadata. */
  ph: "X" | "i" | "M";
  /** Start, in microseconds (0 for metadata). */
  ts: number;
  /** Process id. */
  pid: number;
  /** Thread id: the track. */
  tid: number;
  /** Duration in microseconds (complete events). */
  dur?: number;
  /** Category. */
  cat?: string;
  /** Scope of an instant event (`t`: its thread). */
  s?: "t";
  /** Details shown on selection. */
  args?: Record<string, unknown>;
}

/** A Chrome trace: JSON object form of the Trace Event Format. */
export interface ChromeTrace {
  /** The events. */
  traceEvents: TraceEvent[];
  /** Unit the viewer shows times in. */
  displayTimeUnit: "ms";
  /** What was profiled. */
  otherData: Record<string, unknown>;
}

/** The tracks of a {@linkcode ChromeTrace}. */
export const TRACE_TRACKS = { gpu: 1, host: 2 } as const;

/**
 * The profile of one training step: its dispatches, the per-kernel roofline table, totals, the GPU span and the
 * host phases. Made by {@linkcode profileStep}; constructed directly from recorded dispatches it computes the same
 * figures (tests give it fixed timings).
 *
 * @example
 * ```ts
 * import { StepProfile } from "@nanolm/nanolm/train";
 * const d = (start: number, end: number, flops: number, bytes: number) =>
 *   ({ name: "k", cost: { flops, bytes }, hostMs: 0, submitMs: 0, gpuStartMs: start, gpuEndMs: end });
 * const profile = new StepProfile({
 *   adapter: "test",
 *   peaks: { name: "test GPU", f32Tflops: 10, memoryGBps: 1000 },
 *   dispatches: [d(0, 1, 5e9, 1e6), d(1, 2, 5e9, 1e6)], // 10 GFLOP in 2 ms: 5 TFLOP/s of 10
 *   phases: [],
 * });
 * if (profile.kernels[0].tflops !== 5 || profile.kernels[0].roofline !== 0.5) throw new Error(profile.toText());
 * ```
 */
export class StepProfile {
  /** Adapter description. */
  readonly adapter: string;
  /** Peaks the roofline fractions are of (null: unknown adapter and none given). */
  readonly peaks: GpuPeaks | null;
  /** Every dispatch of the step, in order. */
  readonly dispatches: readonly DispatchProfile[];
  /** Host phases of the step. */
  readonly phases: readonly HostPhase[];
  /** One line per kernel name, most GPU time first. */
  readonly kernels: readonly KernelProfile[];
  /** All kernels together. */
  readonly totals: KernelProfile;
  /**
   * GPU time from the first dispatch's start to the last one's end (ms): the kernels' sum plus the gaps between
   * dependent dispatches. NaN without timestamps.
   */
  readonly spanMs: number;
  /** Host time (ms) from the start of the step's first phase (or its first dispatch) to the end of its last. */
  readonly hostMs: number;

  /** Summarises `parts` (see {@linkcode StepProfileParts}). */
  constructor(parts: StepProfileParts) {
    this.adapter = parts.adapter;
    this.peaks = parts.peaks;
    this.dispatches = parts.dispatches;
    this.phases = parts.phases;
    const byName = new Map<string, DispatchProfile[]>();
    for (const d of parts.dispatches) {
      const list = byName.get(d.name);
      if (list) list.push(d);
      else byName.set(d.name, [d]);
    }
    this.kernels = [...byName].map(([name, ds]) => summarize(name, ds, parts.peaks))
      .sort((a, b) => b.gpuMs - a.gpuMs || a.name.localeCompare(b.name));
    this.totals = totalOf(this.kernels, parts.peaks);
    this.spanMs = parts.dispatches.length ? maxOf(parts.dispatches.map((d) => d.gpuEndMs)) : NaN;
    const hostTimes = [...parts.phases.flatMap((p) => [p.startMs, p.endMs]), ...parts.dispatches.map((d) => d.hostMs)];
    this.hostMs = hostTimes.length ? maxOf(hostTimes) + maxOf(hostTimes.map((t) => -t)) : 0;
  }

  /** The table as rows (kernels, then the totals line), for `textTable`, `tableDisplay` or a report. */
  rows(): TableRow[] {
    const gpuMs = this.totals.gpuMs;
    return [...this.kernels, this.totals].map((k) => ({
      kernel: k.name,
      dispatches: k.dispatches,
      "GPU ms": finite(k.gpuMs),
      "GPU %": finite((100 * k.gpuMs) / gpuMs),
      GFLOP: k.flops / 1e9,
      MB: k.bytes / 1e6,
      "TFLOP/s": finite(k.tflops),
      "GB/s": finite(k.gbps),
      "FLOP/B": finite(k.intensity),
      "roofline %": finite(100 * k.roofline),
    }));
  }

  /** The table and a summary line, for a terminal. */
  toText(): string {
    return `${textTable(this.rows(), { title: this.#title() })}\n${this.#summary()}`;
  }

  /** The Chrome trace of the step (see {@linkcode chromeTrace}). */
  chromeTrace(): ChromeTrace {
    return chromeTrace(this);
  }

  /** The table as HTML in a notebook (text elsewhere). */
  [JUPYTER_DISPLAY](): Promise<MimeBundle> {
    const options = { title: this.#title() };
    return cellResult({
      "text/html": `${htmlTable(this.rows(), options)}<p>${escapeHtml(this.#summary())}</p>`,
      "text/plain": this.toText(),
    });
  }

  #title(): string {
    const p = this.peaks;
    const peaks = p
      ? `roofline of ${p.name}: ${formatCell(p.f32Tflops)} TFLOP/s, ${formatCell(p.memoryGBps)} GB/s`
      : "no peaks: no roofline";
    return `One training step on ${this.adapter} (${peaks})`;
  }

  #summary(): string {
    const gaps = this.spanMs - this.totals.gpuMs;
    return `GPU span ${this.spanMs.toFixed(3)} ms (kernels ${this.totals.gpuMs.toFixed(3)} ms, gaps ` +
      `${gaps.toFixed(3)} ms); ${this.totals.dispatches} dispatches recorded in ${
        this.hostMs.toFixed(1)
      } ms of host time`;
  }
}

/** The largest of `xs` (NaN if any is; -Infinity for none), without spreading a long list into arguments. */
function maxOf(xs: readonly number[]): number {
  return xs.reduce((m, x) => (x > m || Number.isNaN(x) ? x : m), -Infinity);
}

/** A number for a table cell: NaN (undefined) shows as an empty cell. */
function finite(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}

/** Least time (s) that `flops` and `bytes` take at the peaks. */
function rooflineSeconds(flops: number, bytes: number, peaks: GpuPeaks): number {
  return Math.max(flops / (peaks.f32Tflops * 1e12), bytes / (peaks.memoryGBps * 1e9));
}

function summarize(name: string, dispatches: readonly DispatchProfile[], peaks: GpuPeaks | null): KernelProfile {
  let gpuMs = 0, flops = 0, bytes = 0, predicted = 0;
  for (const d of dispatches) {
    gpuMs += d.gpuEndMs - d.gpuStartMs;
    if (!d.cost) continue;
    flops += d.cost.flops;
    bytes += d.cost.bytes;
    predicted++;
  }
  const least = peaks && predicted === dispatches.length ? rooflineSeconds(flops, bytes, peaks) : NaN;
  return withRates({ name, dispatches: dispatches.length, gpuMs, flops, bytes, predicted }, least);
}

/** The totals line: sums, and the kernels' least times summed over their measured times. */
function totalOf(kernels: readonly KernelProfile[], peaks: GpuPeaks | null): KernelProfile {
  const sum = (f: (k: KernelProfile) => number) => kernels.reduce((s, k) => s + f(k), 0);
  const least = peaks ? sum((k) => k.roofline * k.gpuMs / 1e3) : NaN;
  const parts = {
    name: "total",
    dispatches: sum((k) => k.dispatches),
    gpuMs: sum((k) => k.gpuMs),
    flops: sum((k) => k.flops),
    bytes: sum((k) => k.bytes),
    predicted: sum((k) => k.predicted),
  };
  return withRates(parts, least);
}

function withRates(
  k: Omit<KernelProfile, "tflops" | "gbps" | "intensity" | "roofline">,
  leastSeconds: number,
): KernelProfile {
  const seconds = k.gpuMs > 0 ? k.gpuMs / 1e3 : NaN;
  return {
    ...k,
    tflops: k.flops / seconds / 1e12,
    gbps: k.bytes / seconds / 1e9,
    intensity: k.bytes > 0 ? k.flops / k.bytes : NaN,
    roofline: leastSeconds / seconds,
  };
}

/**
 * The Chrome trace of a profile: track {@linkcode TRACE_TRACKS}.gpu holds a complete event per dispatch, its
 * duration from the GPU timestamps; track `host` holds the step's phases and an instant event where each dispatch
 * was recorded. Times are microseconds from the step's start on the host clock. The GPU clock is not the host's:
 * GPU times are placed by the smallest offset that starts no dispatch before the host submitted it.
 *
 * @example
 * ```ts
 * import { chromeTrace, StepProfile } from "@nanolm/nanolm/train";
 * const profile = new StepProfile({
 *   adapter: "test",
 *   peaks: null,
 *   dispatches: [{ name: "k", hostMs: 10, submitMs: 11, gpuStartMs: 0, gpuEndMs: 2 }],
 *   phases: [{ name: "forward", startMs: 9, endMs: 10.5 }],
 * });
 * const kernel = chromeTrace(profile).traceEvents.find((e) => e.ph === "X" && e.tid === 1)!;
 * if (kernel.ts !== 2000 || kernel.dur !== 2000) throw new Error(JSON.stringify(kernel)); // submitted at 11 ms
 * ```
 */
export function chromeTrace(profile: StepProfile): ChromeTrace {
  const { gpu: GPU, host: HOST } = TRACE_TRACKS;
  const ds = profile.dispatches;
  const timed = ds.filter((d) => Number.isFinite(d.gpuStartMs));
  const offset = maxOf(timed.map((d) => d.submitMs - d.gpuStartMs));
  const origin = -maxOf([...profile.phases.map((p) => -p.startMs), ...ds.map((d) => -d.hostMs)]);
  const us = (ms: number) => Math.round((ms - origin) * 1000 * 1000) / 1000;
  const meta = (tid: number, name: string): TraceEvent => ({
    name: "thread_name",
    ph: "M",
    ts: 0,
    pid: 1,
    tid,
    args: { name },
  });
  const events: TraceEvent[] = [
    {
      name: "process_name",
      ph: "M",
      ts: 0,
      pid: 1,
      tid: GPU,
      args: { name: `nanolm training step (${profile.adapter})` },
    },
    meta(GPU, "GPU kernels"),
    meta(HOST, "host recording"),
  ];
  for (const p of profile.phases) {
    events.push({
      name: p.name,
      ph: "X",
      ts: us(p.startMs),
      dur: us(p.endMs) - us(p.startMs),
      pid: 1,
      tid: HOST,
      cat: "phase",
    });
  }
  ds.forEach((d, i) => {
    events.push({
      name: d.name,
      ph: "i",
      s: "t",
      ts: us(d.hostMs),
      pid: 1,
      tid: HOST,
      cat: "record",
      args: { dispatch: i },
    });
    if (!Number.isFinite(d.gpuStartMs)) return;
    const ts = us(d.gpuStartMs + offset);
    const args = { dispatch: i, ...(d.cost ? { flops: d.cost.flops, bytes: d.cost.bytes } : {}) };
    events.push({
      name: d.name,
      ph: "X",
      ts,
      dur: us(d.gpuEndMs + offset) - ts,
      pid: 1,
      tid: GPU,
      cat: "kernel",
      args,
    });
  });
  return {
    traceEvents: events,
    displayTimeUnit: "ms",
    otherData: { adapter: profile.adapter, dispatches: ds.length, gpuSpanMs: profile.spanMs },
  };
}

/**
 * Writes a profile's {@linkcode chromeTrace} to `path` (conventionally `trace.json`) atomically: open it in
 * https://ui.perfetto.dev or chrome://tracing.
 *
 * @example
 * ```ts
 * import { StepProfile, writeChromeTrace } from "@nanolm/nanolm/train";
 * const profile = new StepProfile({ adapter: "test", peaks: null, dispatches: [], phases: [] });
 * const dir = await Deno.makeTempDir();
 * await writeChromeTrace(`${dir}/trace.json`, profile);
 * if (!Array.isArray(JSON.parse(await Deno.readTextFile(`${dir}/trace.json`)).traceEvents)) throw new Error();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeChromeTrace(path: string, profile: StepProfile): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(profile.chromeTrace()));
  await writeFileAtomic(path, async (file) => {
    for (let written = 0; written < bytes.length;) written += await file.write(bytes.subarray(written));
  });
}

/** A model, its optimizer and a batch: what one training step needs outside a {@linkcode Trainer}. */
export interface StepInputs {
  /** The model. */
  model: TransformerLM;
  /** Its optimizer. */
  optimizer: AdamW;
  /** Token ids (B, T), i32. */
  inputs: Tensor;
  /** Next-token targets (B, T), i32. */
  targets: Tensor;
  /** Learning rate of the step (default: the optimizer's). */
  lr?: number;
  /** Global gradient-norm clipping (default 1.0, the trainer's; 0 turns it off). */
  maxGradNorm?: number;
}

/** Options of {@linkcode profileStep}. */
export interface ProfileStepOptions {
  /**
   * Peaks of the roofline: fields given replace those of the adapter's entry in `gpuPeaks` (all three are needed
   * for an adapter that is not in the table; without them the profile has no roofline fractions).
   */
  peaks?: Partial<GpuPeaks>;
  /** Run one unprofiled step first, so that kernels are compiled and buffers pooled (default true). */
  warmup?: boolean;
}

/** Marks the start of a host phase of profiled work (`null`: the end of the last phase). */
export type PhaseMark = (phase: string | null) => void;

/**
 * Runs `work` with every dispatch profiled (see `Backend.profileDispatches`) and returns its result with the
 * {@linkcode StepProfile} of what it dispatched; `work` names its host phases through `mark`, for the trace.
 *
 * @example
 * ```ts
 * import { initGpu, matmul, randn, tidy } from "@nanolm/nanolm/tensor";
 * import { profileWork } from "@nanolm/nanolm/train";
 * await initGpu();
 * const a = randn([64, 64]);
 * const { profile } = await profileWork((mark) => {
 *   mark("square");
 *   tidy(() => void matmul(a, a));
 *   mark(null);
 * }, { peaks: { f32Tflops: 1, memoryGBps: 100 } });
 * if (profile.totals.flops !== 2 * 64 ** 3 || profile.phases[0].name !== "square") throw new Error(profile.toText());
 * ```
 */
export async function profileWork<T>(
  work: (mark: PhaseMark) => T | Promise<T>,
  options: { peaks?: Partial<GpuPeaks> } = {},
): Promise<{ result: T; profile: StepProfile }> {
  const backend = gpu(), peaks = resolvePeaks(options.peaks);
  const phases: HostPhase[] = [];
  const mark: PhaseMark = (name) => {
    const now = performance.now(), open = phases.at(-1);
    if (open && open.endMs < 0) open.endMs = now;
    if (name !== null) phases.push({ name, startMs: now, endMs: -1 });
  };
  let result: T | undefined;
  const dispatches = await backend.profileDispatches(async () => {
    result = await work(mark);
    mark(null); // before the wait for the GPU's timestamps
  });
  const profile = new StepProfile({ adapter: backend.info.description, peaks, dispatches, phases });
  return { result: result as T, profile };
}

/**
 * Profiles one training step: forward, loss, backward and the AdamW update (with gradient clipping), after a
 * warm-up step unless `warmup` is false. Of a {@linkcode Trainer}, both are steps of its run (it advances by two;
 * they are not reported as events: to profile a step of a running `fit`, use the trainer's `profile` option); of
 * {@linkcode StepInputs}, both update the model. Needs the GPU's `timestamp-query` for times (without it, times
 * are NaN and the predictions remain).
 *
 * @example
 * ```ts
 * import { AdamW, initGpu, tensor, TransformerLM } from "@nanolm/nanolm";
 * import { profileStep } from "@nanolm/nanolm/train";
 * await initGpu();
 * const model = new TransformerLM({ vocabSize: 64, contextLength: 8, dModel: 32, numLayers: 1, numHeads: 4 });
 * const ids = tensor(Int32Array.from({ length: 16 }, (_, i) => i % 64), { shape: [2, 8], dtype: "i32" });
 * const profile = await profileStep({ model, optimizer: new AdamW(model.parameters()), inputs: ids, targets: ids });
 * const names = profile.kernels.map((k) => k.name);
 * if (!names.includes("adamw_step") || !names.includes("attention_forward")) throw new Error(names.join());
 * console.log(profile.toText());
 * ```
 */
export async function profileStep(
  target: Trainer | StepInputs,
  options: ProfileStepOptions = {},
): Promise<StepProfile> {
  resolvePeaks(options.peaks); // bad peaks fail before any step runs
  const step = "trainStep" in target ? trainerStep(target) : modelStep(target);
  if (options.warmup ?? true) {
    await step(() => {});
    await gpu().sync();
  }
  return (await profileWork(step, options)).profile;
}

/** What a trainer's `profile` option asks of {@linkcode Trainer.fit}: one of its steps profiled. */
export interface FitProfileOptions {
  /** The optimizer step to profile, 1-based (default: the second step the trainer runs; the first compiles). */
  step?: number;
  /** Roofline peaks, as in {@linkcode ProfileStepOptions}. */
  peaks?: Partial<GpuPeaks>;
  /** Receives the profile and the step's number (the run's throughput clock is stopped meanwhile). */
  onProfile: (profile: StepProfile, step: number) => void | Promise<void>;
}

/**
 * The peaks of this adapter from `gpuPeaks`, with `given` fields in place of the table's; null when the adapter is
 * unknown and `given` does not name both rates.
 *
 * @example
 * ```ts
 * import { initGpu } from "@nanolm/nanolm/gpu";
 * import { resolvePeaks } from "@nanolm/nanolm/train";
 * await initGpu();
 * const peaks = resolvePeaks({ f32Tflops: 1, memoryGBps: 50 });
 * if (peaks?.f32Tflops !== 1 || peaks.memoryGBps !== 50) throw new Error(JSON.stringify(peaks));
 * ```
 */
export function resolvePeaks(given: Partial<GpuPeaks> = {}): GpuPeaks | null {
  const description = gpu().info.description;
  const peaks = { name: description, ...gpuPeaks(description), ...given };
  for (const rate of [peaks.f32Tflops, peaks.memoryGBps]) {
    if (rate === undefined) return null;
    if (!(rate > 0 && Number.isFinite(rate))) {
      throw new RangeError(`Roofline peaks must be positive and finite, got ${JSON.stringify(given)}`);
    }
  }
  return peaks as GpuPeaks;
}

/** A trainer's step (sampling its next batch), marked as one phase. */
function trainerStep(trainer: Trainer): (mark: PhaseMark) => Promise<void> {
  return async (mark) => {
    mark("train step");
    const { loss, gradNorm } = await trainer.trainStep();
    mark(null);
    loss.dispose();
    gradNorm.dispose();
  };
}

/** A step of a model and optimizer on one batch, marked by phase. */
function modelStep(parts: StepInputs): (mark: PhaseMark) => Promise<void> {
  const { model, optimizer, inputs, targets } = parts;
  const clip = parts.maxGradNorm ?? 1.0;
  return (mark) => {
    mark("forward");
    const loss = tidy(() => {
      const l = crossEntropy(model.forward(inputs), targets);
      mark("backward");
      l.backward();
      return keep(noGrad(() => l));
    });
    mark("optimizer");
    optimizer.step({ lr: parts.lr, maxGradNorm: clip > 0 ? clip : undefined });
    optimizer.zeroGrad();
    mark(null);
    loss.dispose();
    return Promise.resolve();
  };
}

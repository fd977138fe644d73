/**
 * The training loop shared by `deno task train` and notebooks: AdamW with the cosine schedule and clipping,
 * gradient accumulation, periodic evaluation and atomic checkpoints, exact resume, and metrics as events.
 *
 * The loop never waits on the GPU inside a step: each step's loss and gradient norm stay on the GPU and are
 * read back together once per log interval (one ~10 ms round trip), a few steps behind the work being
 * recorded. NaN/Inf detection therefore happens at log time, and the last checkpoint written before it is kept.
 *
 * @module
 */
import { type Config, type ConfigInput, parseConfig } from "../config.ts";
import { type ArrayMap, readCheckpointFile, writeCheckpointFile } from "../checkpoint_io.ts";
import { RandomBatchSampler, type SamplerState, TokenDataset } from "../data.ts";
import { Rng } from "../random.ts";
import { cosineLr } from "../schedule.ts";
import { AdamW } from "../optim/adamw.ts";
import { initGpu } from "../gpu/backend.ts";
import { add, crossEntropy, keep, mul, noGrad, readAll, type Tensor, tensor, tidy } from "../tensor/mod.ts";
import { TransformerLM } from "../model/transformer.ts";
import { JUPYTER_DISPLAY, type MimeBundle } from "../display.ts";
import { cellResult } from "../jupyter.ts";
import { runBundle } from "../views.ts";

/** One logged training step. */
export interface StepMetrics {
  /** Event kind. */
  type: "step";
  /** Optimizer step (1-based: the number of updates applied). */
  step: number;
  /** Mean training loss of the step's micro-batches. */
  loss: number;
  /** Learning rate used. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Training tokens per second over the last log interval (wall clock, GPU work included). */
  tokensPerSec: number;
  /** Seconds since the run (or resume) started. */
  elapsed: number;
}

/** An evaluation on the validation split. */
export interface EvalMetrics {
  /** Event kind. */
  type: "eval";
  /** Optimizer steps completed when it ran. */
  step: number;
  /** Mean validation loss over `evalIters` batches. */
  valLoss: number;
}

/** A checkpoint was written. */
export interface CheckpointEvent {
  /** Event kind. */
  type: "checkpoint";
  /** Optimizer steps completed at the checkpoint. */
  step: number;
  /** The file written. */
  path: string;
}

/** Everything a trainer reports. */
export type TrainEvent = StepMetrics | EvalMetrics | CheckpointEvent;

/** Options of {@linkcode Trainer.create}. */
export interface TrainerOptions {
  /** Called for every event (metrics, evals, checkpoints). */
  onEvent?: (event: TrainEvent) => void | Promise<void>;
  /** Resume from this checkpoint (overrides `config.train.resume`). */
  resume?: string;
}

/** How a {@linkcode Trainer.fit} ended. */
export interface FitResult {
  /** Steps completed. */
  step: number;
  /** Why the loop ended. */
  reason: "done" | "interrupted" | "diverged";
  /** Last training loss read back. */
  lastLoss: number;
  /** Path of the last checkpoint written, if any. */
  checkpoint?: string;
}

/**
 * Thrown by {@linkcode Trainer.saveCheckpoint} when the state to save holds NaN or Inf.
 *
 * @example
 * ```ts
 * import { DivergedError } from "./trainer.ts";
 * const e = new DivergedError("the parameters hold NaN");
 * console.log(String(e)); // DivergedError: the parameters hold NaN
 * ```
 */
export class DivergedError extends Error {
  /** The error's name. */
  override name = "DivergedError";
}

/** The file a trainer writes its latest checkpoint to inside `outDir`. */
export const CHECKPOINT_NAME = "checkpoint.safetensors";

/**
 * A training run.
 *
 * @example
 * ```ts ignore
 * const trainer = await Trainer.create({
 *   model: { vocabSize: 256, contextLength: 64, dModel: 64, numLayers: 2, numHeads: 4 },
 *   train: { trainData: "data/train.bin", steps: 100, outDir: "runs/tiny" },
 * }, { onEvent: (e) => console.log(e) });
 * await trainer.fit();
 * ```
 */
export class Trainer {
  /** The validated configuration. */
  readonly config: Config;
  /** The model being trained. */
  readonly model: TransformerLM;
  /** Its optimizer. */
  readonly optimizer: AdamW;
  /** Steps completed so far. */
  step = 0;
  #train: TokenDataset;
  #val: TokenDataset | null;
  #sampler: RandomBatchSampler;
  #rng: Rng;
  #onEvent: (event: TrainEvent) => void | Promise<void>;
  #stopRequested = false;
  #lastStep: StepMetrics | null = null;
  #lastEval: EvalMetrics | null = null;

  private constructor(
    config: Config,
    parts: {
      model: TransformerLM;
      train: TokenDataset;
      val: TokenDataset | null;
      rng: Rng;
      sampler: RandomBatchSampler;
    },
    onEvent: (event: TrainEvent) => void | Promise<void>,
  ) {
    this.config = config;
    this.model = parts.model;
    this.#train = parts.train;
    this.#val = parts.val;
    this.#rng = parts.rng;
    this.#sampler = parts.sampler;
    // The latest metrics are kept for the notebook view of the run.
    this.#onEvent = (event) => {
      if (event.type === "step") this.#lastStep = event;
      else if (event.type === "eval") this.#lastEval = event;
      return onEvent(event);
    };
    const t = config.train;
    this.optimizer = new AdamW(this.model.parameters(), {
      lr: t.lrMax,
      betas: t.betas,
      eps: t.eps,
      weightDecay: t.weightDecay,
    });
  }

  /** Builds a trainer: validates the config, opens the data, initialises (or restores) model and optimizer. */
  static async create(input: ConfigInput | Config, options: TrainerOptions = {}): Promise<Trainer> {
    await initGpu();
    const resume = options.resume ?? (input as ConfigInput).train?.resume;
    const ckpt = resume ? await readCheckpointFile(resume) : null;
    // A resumed run continues with the architecture it was trained with.
    const config = parseConfig(ckpt ? mergeResumedConfig(ckpt.config, input) : input);
    const t = config.train;
    const train = await TokenDataset.open(t.trainData);
    const val = t.valData ? await TokenDataset.open(t.valData) : null;
    const rng = ckpt?.rngState ? Rng.fromState(ckpt.rngState) : new Rng(t.seed);
    const sampler = new RandomBatchSampler(train, {
      batchSize: t.batchSize,
      contextLength: config.model.contextLength,
      seed: t.seed + 1,
      state: ckpt?.dataPosition as SamplerState | undefined,
    });
    const model = new TransformerLM(config.model, { seed: t.seed });
    const trainer = new Trainer(config, { model, train, val, rng, sampler }, options.onEvent ?? (() => {}));
    if (ckpt) {
      model.loadStateDict(ckpt.model);
      if (ckpt.optimizer) {
        const state = new Map<string, Float32Array>();
        for (const [name, a] of ckpt.optimizer.m) state.set(`m.${name}`, a.data);
        for (const [name, a] of ckpt.optimizer.v) state.set(`v.${name}`, a.data);
        trainer.optimizer.loadState(state, ckpt.optimizer.step);
      }
      trainer.step = ckpt.step;
    }
    return trainer;
  }

  /** Asks a running {@linkcode Trainer.fit} to stop after the current step (it then writes a checkpoint). */
  requestStop(): void {
    this.#stopRequested = true;
  }

  /** The learning rate of step `step` (0-based) under the configured schedule. */
  lrAt(step: number): number {
    const t = this.config.train;
    return cosineLr(step, {
      lrMax: t.lrMax,
      lrMin: t.lrMin,
      warmupSteps: t.warmupSteps,
      cosineCycleSteps: t.cosineCycleSteps,
    });
  }

  /**
   * Records one optimizer step (all micro-batches) on the GPU and returns its loss and gradient norm as GPU
   * tensors, without waiting for them.
   */
  async trainStep(): Promise<{ loss: Tensor; gradNorm: Tensor; lr: number }> {
    const t = this.config.train;
    const lr = this.lrAt(this.step);
    const micro: Tensor[] = [];
    for (let i = 0; i < t.gradAccumulation; i++) {
      const batch = await this.#sampler.next();
      const loss = tidy(() => {
        const [inputs, targets] = this.#batchTensors(batch);
        const l = crossEntropy(this.model.forward(inputs), targets);
        // Summed gradients of the mean over micro-batches: scale each micro-batch's loss.
        const scaled = t.gradAccumulation > 1 ? mul(l, 1 / t.gradAccumulation) : l;
        scaled.backward();
        return keep(noGrad(() => l));
      });
      micro.push(loss);
    }
    const gradNorm = this.optimizer.step({ lr, maxGradNorm: t.gradClip > 0 ? t.gradClip : undefined });
    this.optimizer.zeroGrad();
    this.step++;
    const loss = micro.length === 1 ? micro[0] : tidy(() => keep(meanOf(micro)));
    if (micro.length > 1) { for (const m of micro) m.dispose(); }
    return { loss, gradNorm, lr };
  }

  /** Mean loss over `evalIters` batches of the validation split (one GPU round trip). */
  async evaluate(): Promise<number> {
    if (!this.#val) throw new Error("No validation data: set train.valData");
    const t = this.config.train;
    const T = this.config.model.contextLength;
    const losses: Tensor[] = [];
    for await (const batch of this.#val.sequentialBatches(t.batchSize, T)) {
      if (losses.length >= t.evalIters) break;
      losses.push(tidy(() => {
        const [inputs, targets] = this.#batchTensors(batch);
        return keep(noGrad(() => crossEntropy(this.model.forward(inputs), targets)));
      }));
    }
    const values = await readAll(losses);
    for (const l of losses) l.dispose();
    return values.reduce((s, v) => s + v[0], 0) / Math.max(values.length, 1);
  }

  #batchTensors(batch: { inputs: Int32Array; targets: Int32Array }): [Tensor, Tensor] {
    const shape = [batch.inputs.length / this.config.model.contextLength, this.config.model.contextLength];
    return [tensor(batch.inputs, { shape, dtype: "i32" }), tensor(batch.targets, { shape, dtype: "i32" })];
  }

  /**
   * Runs until `train.steps`, a stop request (SIGINT in the CLI), or a non-finite loss. Metrics are read every
   * `logInterval` steps; evaluation and checkpoints follow their intervals; a final checkpoint is written unless
   * the loss diverged (then the last good checkpoint stays).
   */
  async fit(): Promise<FitResult> {
    const t = this.config.train;
    const tokensPerStep = t.batchSize * t.gradAccumulation * this.config.model.contextLength;
    const start = performance.now();
    let lastLoss = NaN, checkpoint: string | undefined;
    // Metrics are read one interval late: the read of interval n starts when it ends and is awaited when interval
    // n + 1 ends, so the GPU always has a whole interval queued while the host waits. Reading them as each interval
    // ended drained the GPU every time (it idled for the round trip and the recording of the next step): on the
    // H200 that cost 1.8 ms a step at a log interval of 10 (28.8 ms a step against 27.0). Checkpoints and
    // evaluations first read everything outstanding, so they never act on unchecked steps.
    type Pending = { step: number; loss: Tensor; gradNorm: Tensor; lr: number };
    let pending: Pending[] = [];
    type Batch = { entries: Pending[]; values: Promise<(Float32Array | Int32Array)[]> };
    let inFlight: Batch | null = null;
    let lastReport = start;
    /**
     * Reports read batches of metrics, tokens/s over the time since the last report. The batches of a final flush
     * are reported together: timed one by one, the last would count only the GPU's tail after the one before it.
     */
    const report = async (batches: Batch[]): Promise<boolean> => {
      const values = await Promise.all(batches.map((b) => b.values));
      const now = performance.now();
      const steps = batches.reduce((n, b) => n + b.entries.length, 0);
      const tokensPerSec = (steps * tokensPerStep) / Math.max((now - lastReport) / 1000, 1e-9);
      lastReport = now;
      let finite = true;
      for (const [j, batch] of batches.entries()) {
        for (let i = 0; i < batch.entries.length; i++) {
          const p = batch.entries[i], loss = values[j][2 * i][0], gradNorm = values[j][2 * i + 1][0];
          lastLoss = loss;
          if (!Number.isFinite(loss)) finite = false;
          await this.#onEvent({
            type: "step",
            step: p.step,
            loss,
            lr: p.lr,
            gradNorm,
            tokensPerSec,
            elapsed: (now - start) / 1000,
          });
          p.loss.dispose();
          p.gradNorm.dispose();
        }
      }
      return finite;
    };
    /** Starts reading the metrics recorded since the last read (null when there are none). */
    const startRead = (): Batch | null => {
      const entries = pending;
      pending = [];
      return entries.length ? { entries, values: readAll(entries.flatMap((p) => [p.loss, p.gradNorm])) } : null;
    };
    /** Starts reading this interval's metrics; reports the previous interval's (false: its loss was not finite). */
    const endInterval = async (): Promise<boolean> => {
      const previous = inFlight;
      inFlight = startRead();
      return previous ? await report([previous]) : true;
    };
    /** Reads and reports every outstanding metric (false: a loss was not finite). */
    const flushMetrics = async (): Promise<boolean> => {
      const batches = [inFlight, startRead()].filter((b): b is Batch => b !== null);
      inFlight = null;
      return batches.length ? await report(batches) : true;
    };
    let reason: FitResult["reason"] = "done";
    while (this.step < t.steps) {
      if (this.#stopRequested) {
        reason = "interrupted";
        break;
      }
      const r = await this.trainStep();
      pending.push({ step: this.step, ...r });
      const last = this.step === t.steps;
      if (this.step % t.logInterval === 0 || last) {
        if (!(await (last ? flushMetrics() : endInterval()))) {
          reason = "diverged";
          break;
        }
      }
      if (this.#val && t.evalInterval > 0 && (this.step % t.evalInterval === 0 || last)) {
        // Evaluation reads from the GPU anyway: report the steps before it first, so events stay in step order.
        if (!(await flushMetrics())) {
          reason = "diverged";
          break;
        }
        await this.#onEvent({ type: "eval", step: this.step, valLoss: await this.evaluate() });
      }
      if (t.checkpointInterval > 0 && this.step % t.checkpointInterval === 0 && !last) {
        if (!(await flushMetrics())) {
          reason = "diverged";
          break;
        }
        const saved = await this.#checkpointUnlessDiverged();
        if (!saved) {
          reason = "diverged";
          break;
        }
        checkpoint = saved;
      }
    }
    // What is still outstanding is read (and its tensors freed) also after a divergence.
    if (!(await flushMetrics())) reason = "diverged";
    if (reason !== "diverged") {
      const saved = await this.#checkpointUnlessDiverged();
      if (saved) checkpoint = saved;
      else reason = "diverged";
    }
    return { step: this.step, reason, lastLoss, checkpoint };
  }

  async #checkpointUnlessDiverged(): Promise<string | null> {
    try {
      return await this.saveCheckpoint();
    } catch (e) {
      if (e instanceof DivergedError) return null;
      throw e;
    }
  }

  /** Writes model, optimizer, RNG and data position atomically to `path` (default `outDir/checkpoint.safetensors`). */
  async saveCheckpoint(path = `${this.config.train.outDir}/${CHECKPOINT_NAME}`): Promise<string> {
    await Deno.mkdir(dirOf(path), { recursive: true });
    const params = [...this.model.stateDict()];
    const moments = [...this.optimizer.stateTensors()];
    const host = await readAll([...params.map(([, t]) => t), ...moments.map(([, t]) => t)]);
    // Never replace a good checkpoint with a diverged state.
    host.forEach((values, i) => {
      if (!values.every(Number.isFinite)) {
        const name = i < params.length ? params[i][0] : moments[i - params.length][0];
        throw new DivergedError(`Not writing checkpoint ${path}: ${name} holds non-finite values`);
      }
    });
    const model: ArrayMap = new Map(), m: ArrayMap = new Map(), v: ArrayMap = new Map();
    params.forEach(([name, t], i) => model.set(name, { shape: [...t.shape], data: host[i] as Float32Array }));
    moments.forEach(([key, t], i) => {
      const target = key.startsWith("m.") ? m : v;
      target.set(key.slice(2), { shape: [...t.shape], data: host[params.length + i] as Float32Array });
    });
    await writeCheckpointFile(path, {
      step: this.step,
      model,
      optimizer: { m, v, step: this.optimizer.t },
      rngState: this.#rng.state(),
      dataPosition: this.#sampler.state(),
      config: this.config,
      tokenizer: this.config.train.tokenizer,
    });
    await this.#onEvent({ type: "checkpoint", step: this.step, path });
    return path;
  }

  /** Rich display in Jupyter: progress, latest losses, learning rate and tokens/s. */
  [JUPYTER_DISPLAY](): Promise<MimeBundle> {
    const s = this.#lastStep, e = this.#lastEval;
    return cellResult(runBundle({
      step: this.step,
      steps: this.config.train.steps,
      loss: s?.loss,
      valLoss: e?.valLoss,
      valStep: e?.step,
      lr: s?.lr,
      tokensPerSec: s?.tokensPerSec,
      elapsed: s?.elapsed,
      parameters: this.model.numParameters(),
      outDir: this.config.train.outDir,
    }));
  }

  /** Frees GPU memory and closes the data files. */
  dispose(): void {
    this.optimizer.dispose();
    this.model.dispose();
    this.#train.close();
    this.#val?.close();
  }
}

function meanOf(ts: Tensor[]): Tensor {
  let acc = ts[0];
  for (let i = 1; i < ts.length; i++) acc = add(acc, ts[i]);
  return mul(acc, 1 / ts.length);
}

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "." : path.slice(0, i);
}

function mergeResumedConfig(saved: unknown, input: ConfigInput | Config): unknown {
  if (!saved || typeof saved !== "object") {
    throw new Error("Checkpoint has no config in its metadata: cannot resume");
  }
  const s = saved as { model: unknown; train: Record<string, unknown> };
  const i = input as { train?: Record<string, unknown> };
  // The saved architecture wins; training settings given now (e.g. more steps) override the saved ones.
  return { model: s.model, train: { ...s.train, ...(i.train ?? {}) } };
}

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
import { dirname, isAbsolute } from "node:path";
import { writeFileAtomicSync } from "../io/atomic_write.ts";
import { parseModelConfig } from "../nn/config.ts";
import { type Config, type ConfigInput, parseConfig } from "./config.ts";
import { type CheckpointState, readCheckpointFile } from "../io/checkpoint_file.ts";
import { DivergedError, restoreCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { StepThroughput } from "./meter.ts";
import { recordedConfig, type ResumePoint } from "./resume.ts";
import { RandomBatchSampler, type SamplerState, TokenDataset } from "../data/token_files.ts";
import { Rng } from "../util/random.ts";
import { cosineLr } from "../optim/schedule.ts";
import { AdamW } from "../optim/adamw.ts";
import { initGpu } from "../gpu/backend.ts";
import { add, keep, logitChunkRows, mul, noGrad, readAll, type Tensor, tensor, tidy } from "../tensor/mod.ts";
import { TransformerLM } from "../nn/transformer.ts";
import { JUPYTER_DISPLAY, type MimeBundle } from "../notebook/display.ts";
import { cellResult } from "../notebook/display.ts";
import { runBundle } from "./view.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { loadTokenizer } from "../data/tokenizer_files.ts";
import { BitsPerByte, targetLogProbs, tokenByteLengths } from "./bpb.ts";
import { type FitProfileOptions, profileWork, resolvePeaks } from "./profile.ts";
import { exists } from "../io/exists.ts";

/** One logged training step. */
export interface StepMetrics {
  /** Event kind. */
  type: "step";
  /** Optimizer step (1-based: the number of updates applied). */
  step: number;
  /** Mean training loss of the step's micro-batches. */
  loss: number;
  /** Learning rate this update used: the schedule at `step` (`Trainer.lrAt`). */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /**
   * Training tokens per second over the batch of steps read back with this one (evaluations and checkpoints
   * excluded; see `StepThroughput`).
   */
  tokensPerSec: number;
  /** Training tokens seen once this step is done. */
  tokens: number;
  /** Passes over the training file those tokens make (`tokens / training tokens`). */
  epoch: number;
  /** Seconds since the run (or resume) started. */
  elapsed: number;
}

/** An evaluation on the validation split. */
export interface EvalMetrics {
  /** Event kind. */
  type: "eval";
  /** Optimizer steps completed when it ran. */
  step: number;
  /** Mean validation loss per token (nats). */
  valLoss: number;
  /**
   * The same evaluation in bits per byte of the text the targets stand for (special tokens left out), comparable
   * across tokenizers and vocabulary sizes; absent when the run has no tokenizer (`train.tokenizer`).
   */
  valBpb?: number;
  /** Training tokens seen by then. */
  tokens: number;
  /** Whether this is the best validation loss of the run so far (then `best.safetensors` holds these weights). */
  best: boolean;
}

/** A checkpoint was written. */
export interface CheckpointEvent {
  /** Event kind. */
  type: "checkpoint";
  /** Optimizer steps completed at the checkpoint. */
  step: number;
  /** The file written. */
  path: string;
  /** `"latest"`: the run's state, to resume from; `"best"`: the weights of the best validation loss so far. */
  kind: "latest" | "best";
}

/** Everything a trainer reports. */
export type TrainEvent = StepMetrics | EvalMetrics | CheckpointEvent;

/** Options of {@linkcode Trainer.create}. */
export interface TrainerOptions {
  /** Called for every event (metrics, evals, checkpoints). */
  onEvent?: (event: TrainEvent) => void | Promise<void>;
  /**
   * Resume from this checkpoint: a path, or a {@linkcode ResumePoint} already read. The model in the config must be
   * the checkpoint's; see `resumePoint` for building a resumed run's config from the saved one.
   */
  resume?: string | ResumePoint;
  /** Profile one step of {@linkcode Trainer.fit} (a step of the run like any other, reported as usual). */
  profile?: FitProfileOptions;
}

/** Why {@linkcode Trainer.fit} ended. */
export type StopReason = "done" | "interrupted" | "diverged" | "early-stopped";

/** The best validation loss of a run and the checkpoint that holds its weights. */
export interface BestCheckpoint {
  /** Step of the evaluation. */
  step: number;
  /** Its validation loss. */
  valLoss: number;
  /** The file holding those weights (`best.safetensors` in the output folder). */
  path: string;
}

/** How a {@linkcode Trainer.fit} ended. */
export interface FitResult {
  /** Steps completed. */
  step: number;
  /** Why the loop ended. */
  reason: StopReason;
  /** Last training loss read back. */
  lastLoss: number;
  /** The run's latest checkpoint, if one was kept (none when the run diverged before its first). */
  checkpoint?: string;
  /** The best validation loss so far and its checkpoint, when the run has validation data. */
  best?: BestCheckpoint;
}

/** The file a trainer writes its latest checkpoint to inside `outDir`. */
export const CHECKPOINT_NAME = "checkpoint.safetensors";
/** The file a trainer keeps the weights of the best validation loss in, inside `outDir`. */
export const BEST_CHECKPOINT_NAME = "best.safetensors";

/** Checkpoint metadata of the early-stopping state, so that a resumed run keeps its best and its patience. */
const BEST_KEYS = { valLoss: "best_val_loss", step: "best_step", staleEvals: "evals_since_best" } as const;

/**
 * A training run.
 *
 * @example
 * ```ts
 * import { Trainer, writeTokenFile } from "@nanolm/nanolm";
 * const dir = await Deno.makeTempDir();
 * await writeTokenFile(`${dir}/train.bin`, Array.from({ length: 2000 }, (_, i) => (i * 7) % 32));
 * await writeTokenFile(`${dir}/val.bin`, Array.from({ length: 400 }, (_, i) => (i * 7) % 32));
 * const trainer = await Trainer.create({
 *   model: { vocabSize: 32, contextLength: 16, dModel: 16, numLayers: 1, numHeads: 2 },
 *   train: { trainData: `${dir}/train.bin`, valData: `${dir}/val.bin`, steps: 8, evalInterval: 4, outDir: dir },
 * });
 * const result = await trainer.fit();
 * trainer.dispose();
 * if (result.reason !== "done" || result.best?.path !== `${dir}/best.safetensors`) throw new Error(result.reason);
 * await Deno.remove(dir, { recursive: true });
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
  /** Tokens in the training file (an epoch). */
  readonly trainTokens: number;
  #train: TokenDataset;
  #val: TokenDataset | null;
  #sampler: RandomBatchSampler;
  #rng: Rng;
  #onEvent: (event: TrainEvent) => void | Promise<void>;
  #stopRequested = false;
  #lastStep: StepMetrics | null = null;
  #lastEval: EvalMetrics | null = null;
  #best: { step: number; valLoss: number } | null = null;
  #staleEvals = 0;
  /** A checkpoint written but not yet trusted: it replaces the latest one once the loss of its weights is finite. */
  #unconfirmed: { step: number; staging: string; path: string } | null = null;
  /** Step of the checkpoint this trainer last wrote to `checkpoint.safetensors` (-1: none). */
  #latestStep = -1;
  /** Step whose weights an evaluation saw give a finite loss (-1: none). */
  #evaluatedStep = -1;
  /** The folder this run's tokenizer was copied into, if it was. */
  #tokenizerCopiedTo: string | null = null;
  /** The byte length of each token id, for bits per byte (null: the run has no tokenizer). */
  #tokenBytes: Int32Array | null = null;
  /** The step of `fit` to profile and what receives its profile. */
  #profile: (FitProfileOptions & { step: number }) | null = null;

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
    this.trainTokens = parts.train.length;
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

  /**
   * Builds a trainer: validates the config and every input before anything runs (the data files: length, and that
   * every id is below the model's vocabulary; the tokenizer: no larger than that vocabulary; a checkpoint to resume:
   * the config's model), then initialises or restores model and optimizer. Nothing is written.
   */
  static async create(input: ConfigInput | Config, options: TrainerOptions = {}): Promise<Trainer> {
    await initGpu();
    const config = parseConfig(input);
    const t = config.train;
    const resume = options.resume ?? t.resume;
    const point = typeof resume === "string" ? { path: resume, state: await readCheckpointFile(resume) } : resume;
    if (point) checkSameModel(point.path, point.state, config);
    const { train, val } = await openData(config);
    const tokenizer = t.tokenizer ? await checkTokenizer(t.tokenizer, config.model.vocabSize) : null;
    const ckpt = point?.state;
    const rng = ckpt?.rngState ? Rng.fromState(ckpt.rngState) : new Rng(t.seed);
    const sampler = new RandomBatchSampler(train, {
      batchSize: t.batchSize,
      contextLength: config.model.contextLength,
      seed: t.seed + 1,
      state: ckpt?.dataPosition as SamplerState | undefined,
    });
    const model = new TransformerLM(config.model, { seed: t.seed });
    const trainer = new Trainer(config, { model, train, val, rng, sampler }, options.onEvent ?? (() => {}));
    if (ckpt) trainer.#restore(ckpt);
    if (tokenizer) trainer.#tokenBytes = tokenByteLengths(tokenizer, config.model.vocabSize);
    const profile = options.profile;
    if (profile) resolvePeaks(profile.peaks); // bad peaks fail now, not at the profiled step
    if (profile) trainer.#profile = { ...profile, step: profile.step ?? Math.min(trainer.step + 2, t.steps) };
    return trainer;
  }

  #restore(ckpt: CheckpointState): void {
    restoreCheckpoint(ckpt, { model: this.model, optimizer: this.optimizer });
    this.step = ckpt.step;
    const extra = ckpt.extra ?? {};
    const valLoss = Number(extra[BEST_KEYS.valLoss]), step = Number(extra[BEST_KEYS.step]);
    if (Number.isFinite(valLoss) && Number.isSafeInteger(step)) this.#best = { step, valLoss };
    this.#staleEvals = Math.max(0, Math.floor(Number(extra[BEST_KEYS.staleEvals]) || 0));
  }

  /** Asks a running {@linkcode Trainer.fit} to stop after the current step (it then writes a checkpoint). */
  requestStop(): void {
    this.#stopRequested = true;
  }

  /** Training tokens per optimizer step. */
  get tokensPerStep(): number {
    const t = this.config.train;
    return t.batchSize * t.gradAccumulation * this.config.model.contextLength;
  }

  /** The best validation loss so far and its checkpoint, if the run has evaluated. */
  get best(): BestCheckpoint | undefined {
    return this.#best ? { ...this.#best, path: this.#outPath(BEST_CHECKPOINT_NAME) } : undefined;
  }

  /**
   * The learning rate of update `step` (1-based: the `step`-th update, as {@linkcode StepMetrics.step} counts) under
   * the configured schedule: the schedule's value at `step`, so the first update trains at a non-zero rate (the
   * schedule's 0 at step 0 is the start of warm-up, not an update) and update `cosineCycleSteps` reaches `lrMin`.
   */
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
    const lr = this.lrAt(this.step + 1);
    const micro: Tensor[] = [];
    for (let i = 0; i < t.gradAccumulation; i++) {
      const batch = await this.#sampler.next();
      const loss = tidy(() => {
        const [inputs, targets] = this.#batchTensors(batch);
        const l = this.model.loss(inputs, targets);
        // Summed gradients of the mean over micro-batches: scale each micro-batch's loss.
        const scaled = t.gradAccumulation > 1 ? mul(l, 1 / t.gradAccumulation) : l;
        scaled.backward();
        return keep(noGrad(() => l));
      });
      micro.push(loss);
    }
    const gradNorm = this.optimizer.step({
      lr,
      maxGradNorm: t.gradClip > 0 ? t.gradClip : undefined,
      returnGradNorm: true,
    });
    this.optimizer.zeroGrad();
    this.step++;
    const loss = micro.length === 1 ? micro[0] : tidy(() => keep(meanOf(micro)));
    if (micro.length > 1) { for (const m of micro) m.dispose(); }
    return { loss, gradNorm, lr };
  }

  /**
   * Mean loss per token over the first `evalIters` batches of the validation split (one GPU round trip). A split
   * shorter than a batch is evaluated on the rows it has.
   */
  async evaluate(): Promise<number> {
    return (await this.#evaluate(false)).valLoss;
  }

  /**
   * {@linkcode Trainer.evaluate}, and the same batches in bits per byte when the run has a tokenizer (see
   * `BitsPerByte`): what each evaluation of {@linkcode Trainer.fit} reports.
   */
  evaluation(): Promise<{ valLoss: number; valBpb?: number }> {
    return this.#evaluate(this.#tokenBytes !== null);
  }

  async #evaluate(withBpb: boolean): Promise<{ valLoss: number; valBpb?: number }> {
    if (!this.#val) throw new Error("No validation data: set train.valData");
    const t = this.config.train;
    const losses: Tensor[] = [], rows: number[] = [];
    const logProbs: Tensor[][] = [], targets: Int32Array[] = [];
    for await (const batch of this.#val.evaluationBatches(t.batchSize, this.config.model.contextLength, t.evalIters)) {
      rows.push(batch.batchSize);
      if (withBpb) {
        // Bits per byte need each target's log-probability: the logits of as many sequences at a time as one chunk
        // of the chunked head holds, so the full (batch, T, vocab) logits never exist at once.
        const T = this.config.model.contextLength, V = this.config.model.vocabSize;
        const sequences = Math.max(1, Math.floor(logitChunkRows(batch.batchSize * T, V) / T));
        for (let first = 0; first < batch.batchSize; first += sequences) {
          const n = Math.min(sequences, batch.batchSize - first),
            part = batch.targets.subarray(first * T, (first + n) * T);
          tidy(() => {
            const inputs = tensor(batch.inputs.subarray(first * T, (first + n) * T), { shape: [n, T], dtype: "i32" });
            noGrad(() => logProbs.push(targetLogProbs(this.model.forward(inputs), part).map(keep)));
          });
          targets.push(part);
        }
      } else {
        losses.push(tidy(() => {
          const [inputs, y] = this.#batchTensors(batch);
          return keep(noGrad(() => this.model.loss(inputs, y)));
        }));
      }
    }
    const values = await readAll([...losses, ...logProbs.flat()]);
    for (const l of [...losses, ...logProbs.flat()]) l.dispose();
    if (!withBpb) {
      return { valLoss: values.reduce((s, v, i) => s + v[0] * rows[i], 0) / rows.reduce((a, b) => a + b, 0) };
    }
    // The loss is the mean of the targets' negative log-probabilities: the same numbers give both figures.
    const bpb = new BitsPerByte(this.#tokenBytes!);
    let next = 0, nats = 0, count = 0;
    logProbs.forEach((parts, b) => {
      const joined = parts.length === 1 ? values[next] : concatArrays(values.slice(next, next + parts.length));
      next += parts.length;
      bpb.add(targets[b], joined);
      for (const logp of joined) nats -= logp;
      count += joined.length;
    });
    return { valLoss: nats / count, valBpb: bpb.value() };
  }

  #batchTensors(batch: { inputs: Int32Array; targets: Int32Array }): [Tensor, Tensor] {
    const shape = [batch.inputs.length / this.config.model.contextLength, this.config.model.contextLength];
    return [tensor(batch.inputs, { shape, dtype: "i32" }), tensor(batch.targets, { shape, dtype: "i32" })];
  }

  /**
   * Runs until `train.steps`, a stop request (SIGINT in the CLI), `patience` evaluations without a new best, or a
   * non-finite loss. Metrics are read every `logInterval` steps; evaluation and checkpoints follow their intervals;
   * the weights of each new best validation loss go to `best.safetensors`; a final checkpoint is written unless the
   * loss diverged. A checkpoint replaces the previous one only once the loss of the weights it holds has been seen
   * finite, so a diverged run keeps its last good checkpoint.
   */
  async fit(): Promise<FitResult> {
    const t = this.config.train;
    const start = performance.now();
    // A checkpoint left unconfirmed by a run that was killed is not a checkpoint.
    await Deno.remove(`${this.#outPath(CHECKPOINT_NAME)}.unconfirmed`).catch(() => {});
    const metrics = new MetricsReader(
      this.step,
      this.tokensPerStep,
      (step, loss) => this.#reportStep(step, loss, start),
    );
    let reason: StopReason | null = null;
    while (reason === null) {
      if (this.#stopRequested) reason = "interrupted";
      else if (this.step >= t.steps) reason = "done";
      else reason = await this.#advance(metrics);
    }
    // What is still outstanding is read (and its tensors freed) also after a divergence.
    if (!(await metrics.flush())) reason = "diverged";
    if (reason !== "diverged") reason = await this.#finalCheckpoint(metrics, reason);
    else await this.#discardUnconfirmed();
    const latest = this.#outPath(CHECKPOINT_NAME);
    const kept = await exists(latest);
    return {
      step: this.step,
      reason,
      lastLoss: metrics.lastLoss,
      checkpoint: kept ? latest : undefined,
      best: this.best,
    };
  }

  /** One step and what its interval asks for; returns why the run must stop, or null to go on. */
  async #advance(metrics: MetricsReader): Promise<StopReason | null> {
    const t = this.config.train;
    metrics.push(this.step + 1, await this.#recordStep(metrics));
    const last = this.step === t.steps;
    if (this.step % t.logInterval === 0 || last) {
      if (!(await (last ? metrics.flush() : metrics.endInterval()))) return "diverged";
    }
    if (this.#val && t.evalInterval > 0 && (this.step % t.evalInterval === 0 || last)) {
      // Evaluation reads from the GPU anyway: report the steps before it first, so events stay in step order.
      if (!(await metrics.flush())) return "diverged";
      const { valLoss, valBpb } = await metrics.paused(() => this.evaluation());
      if (!Number.isFinite(valLoss)) return "diverged";
      if (await metrics.paused(() => this.#recordEval(valLoss, valBpb))) return "early-stopped";
    }
    if (t.checkpointInterval > 0 && this.step % t.checkpointInterval === 0 && !last) {
      if (!(await metrics.flush())) return "diverged";
      if (!(await metrics.paused(() => this.#stageCheckpoint()))) return "diverged";
    }
    return null;
  }

  /** {@linkcode Trainer.trainStep}, profiled when it is the step the `profile` option names. */
  async #recordStep(metrics: MetricsReader): Promise<{ loss: Tensor; gradNorm: Tensor; lr: number }> {
    const p = this.#profile;
    if (!p || this.step + 1 !== p.step) return this.trainStep();
    const { result, profile } = await profileWork((mark) => {
      mark("train step");
      return this.trainStep();
    }, p);
    await metrics.paused(async () => await p.onProfile(profile, p.step));
    return result;
  }

  async #reportStep(
    step: { step: number; lr: number },
    values: { loss: number; gradNorm: number; rate: number },
    start: number,
  ) {
    const tokens = step.step * this.tokensPerStep;
    await this.#onEvent({
      type: "step",
      step: step.step,
      loss: values.loss,
      lr: step.lr,
      gradNorm: values.gradNorm,
      tokensPerSec: values.rate,
      tokens,
      epoch: tokens / this.trainTokens,
      elapsed: (performance.now() - start) / 1000,
    });
    // The loss of step s + 1 is the loss of the weights a checkpoint at step s holds.
    if (this.#unconfirmed && step.step === this.#unconfirmed.step + 1) {
      if (Number.isFinite(values.loss)) await this.#confirm();
      else await this.#discardUnconfirmed();
    }
  }

  /** Reports an evaluation, keeps new best weights; true when patience has run out. */
  async #recordEval(valLoss: number, valBpb: number | undefined): Promise<boolean> {
    const best = this.#best === null || valLoss < this.#best.valLoss;
    if (best) {
      this.#best = { step: this.step, valLoss };
      this.#staleEvals = 0;
    } else {
      this.#staleEvals++;
    }
    const tokens = this.step * this.tokensPerStep;
    await this.#onEvent({
      type: "eval",
      step: this.step,
      valLoss,
      ...(valBpb === undefined ? {} : { valBpb }),
      tokens,
      best,
    });
    // The evaluation saw these weights give a finite loss.
    this.#evaluatedStep = this.step;
    if (this.#unconfirmed?.step === this.step) await this.#confirm();
    if (best) await this.#writeBest();
    const patience = this.config.train.patience;
    return patience > 0 && this.#staleEvals >= patience;
  }

  /** The checkpoint at the end of a run; confirms its weights with one forward pass if nothing has yet. */
  async #finalCheckpoint(metrics: MetricsReader, reason: StopReason): Promise<StopReason> {
    if (!(await metrics.paused(() => this.#stageCheckpoint()))) return "diverged";
    if (this.#unconfirmed?.step !== this.step) return reason;
    if (Number.isFinite(await this.#probeLoss())) {
      await this.#confirm();
      return reason;
    }
    await this.#discardUnconfirmed();
    return "diverged";
  }

  /** The training loss of the current weights on the next batch, without moving the run's data position. */
  async #probeLoss(): Promise<number> {
    const t = this.config.train;
    const probe = new RandomBatchSampler(this.#train, {
      batchSize: t.batchSize,
      contextLength: this.config.model.contextLength,
      state: this.#sampler.state(),
    });
    const batch = await probe.next();
    const loss = tidy(() => {
      const [inputs, targets] = this.#batchTensors(batch);
      return keep(noGrad(() => this.model.loss(inputs, targets)));
    });
    const [value] = await loss.data();
    loss.dispose();
    return value;
  }

  /**
   * Writes the run's state beside its latest checkpoint, to replace it once the loss of these weights is seen
   * finite (at once when an evaluation of them already was). False when the weights themselves are not finite.
   */
  async #stageCheckpoint(): Promise<boolean> {
    if (this.#latestStep === this.step || this.#unconfirmed?.step === this.step) return true;
    const path = this.#outPath(CHECKPOINT_NAME), staging = `${path}.unconfirmed`;
    try {
      await this.#write(staging, path, { optimizer: true });
    } catch (e) {
      if (e instanceof DivergedError) return false;
      throw e;
    }
    this.#unconfirmed = { step: this.step, staging, path };
    if (this.#evaluatedStep === this.step) await this.#confirm();
    return true;
  }

  /**
   * Writes model, optimizer, RNG, data position and early-stopping state atomically to `path` (default
   * `outDir/checkpoint.safetensors`). Throws {@linkcode DivergedError} rather than write non-finite weights.
   */
  async saveCheckpoint(path: string = this.#outPath(CHECKPOINT_NAME)): Promise<string> {
    await this.#write(path, path, { optimizer: true });
    if (path === this.#outPath(CHECKPOINT_NAME)) this.#latestStep = this.step;
    await this.#onEvent({ type: "checkpoint", step: this.step, path, kind: "latest" });
    return path;
  }

  async #confirm(): Promise<void> {
    const c = this.#unconfirmed;
    if (!c) return;
    this.#unconfirmed = null;
    await Deno.rename(c.staging, c.path);
    this.#latestStep = c.step;
    await this.#onEvent({ type: "checkpoint", step: c.step, path: c.path, kind: "latest" });
  }

  async #discardUnconfirmed(): Promise<void> {
    const c = this.#unconfirmed;
    this.#unconfirmed = null;
    if (c) await Deno.remove(c.staging).catch(() => {});
  }

  async #writeBest(): Promise<void> {
    const path = this.#outPath(BEST_CHECKPOINT_NAME);
    await this.#write(path, path, { optimizer: false });
    await this.#onEvent({ type: "checkpoint", step: this.step, path, kind: "best" });
  }

  /** Writes the state to `file`, recording paths relative to the folder of `path` (where it will live). */
  async #write(file: string, path: string, what: { optimizer: boolean }): Promise<void> {
    await Deno.mkdir(dirname(path), { recursive: true });
    const config = recordedConfig(this.config, path);
    if (typeof config.train.tokenizer === "string" && isAbsolute(config.train.tokenizer)) {
      config.train.tokenizer = await this.#copyTokenizer(dirname(path));
    }
    const extra: Record<string, string> = { [BEST_KEYS.staleEvals]: `${this.#staleEvals}` };
    if (this.#best) {
      extra[BEST_KEYS.valLoss] = `${this.#best.valLoss}`;
      extra[BEST_KEYS.step] = `${this.#best.step}`;
    }
    await saveCheckpoint(path, {
      model: this.model,
      optimizer: what.optimizer ? this.optimizer : undefined,
      step: this.step,
      rngState: this.#rng.state(),
      dataPosition: this.#sampler.state(),
      config,
      tokenizer: config.train.tokenizer as string | undefined,
      extra,
    }, { file });
  }

  /**
   * Copies a tokenizer that lives outside the run's folder into it, once, so that the folder holds everything
   * sampling needs (a checkpoint's recorded paths are followed only inside its folder).
   */
  async #copyTokenizer(folder: string): Promise<string> {
    const name = "tokenizer.json";
    if (this.#tokenizerCopiedTo !== folder) {
      writeFileAtomicSync(`${folder}/${name}`, await Deno.readFile(this.config.train.tokenizer!));
      this.#tokenizerCopiedTo = folder;
    }
    return name;
  }

  #outPath(name: string): string {
    return `${this.config.train.outDir}/${name}`;
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

/** A recorded step whose loss and gradient norm are still on the GPU. */
interface PendingStep {
  step: number;
  lr: number;
  loss: Tensor;
  gradNorm: Tensor;
}

/**
 * Reads step metrics back one log interval late: the read of interval n starts when it ends and is awaited when
 * interval n + 1 ends, so the GPU always has a whole interval queued while the host waits. Reading each interval as
 * it ended drained the GPU every time (it idled for the round trip and the recording of the next step): on the H200
 * that cost 1.8 ms a step at a log interval of 10. Checkpoints and evaluations first read everything outstanding
 * ({@linkcode MetricsReader.flush}), so they never act on unchecked steps.
 */
class MetricsReader {
  lastLoss = NaN;
  #pending: PendingStep[] = [];
  #inFlight: { steps: PendingStep[]; values: Promise<(Float32Array | Int32Array)[]> } | null = null;
  #clock: StepThroughput;
  #report: (step: PendingStep, values: { loss: number; gradNorm: number; rate: number }) => Promise<void>;

  constructor(
    startStep: number,
    tokensPerStep: number,
    report: (step: PendingStep, values: { loss: number; gradNorm: number; rate: number }) => Promise<void>,
  ) {
    this.#clock = new StepThroughput({ tokensPerStep, startStep });
    this.#report = report;
  }

  /** A step has been recorded. */
  push(step: number, r: { loss: Tensor; gradNorm: Tensor; lr: number }): void {
    this.#pending.push({ step, ...r });
    this.#clock.recorded(step);
  }

  /** Runs `work` with the throughput clock stopped. */
  paused<T>(work: () => Promise<T>): Promise<T> {
    return this.#clock.pause(work);
  }

  /** Starts reading this interval's metrics; reports the previous interval's (false: a loss was not finite). */
  async endInterval(): Promise<boolean> {
    const previous = this.#inFlight;
    this.#inFlight = this.#startRead();
    return previous ? await this.#reportBatch(previous) : true;
  }

  /** Reads and reports every outstanding metric (false: a loss was not finite). */
  async flush(): Promise<boolean> {
    const batches = [this.#inFlight, this.#startRead()];
    this.#inFlight = null;
    let finite = true;
    for (const b of batches) if (b && !(await this.#reportBatch(b))) finite = false;
    return finite;
  }

  #startRead() {
    const steps = this.#pending;
    this.#pending = [];
    if (steps.length === 0) return null;
    const last = steps[steps.length - 1].step;
    const values = readAll(steps.flatMap((p) => [p.loss, p.gradNorm]));
    values.then(() => this.#clock.completed(last), () => {});
    return { steps, values };
  }

  async #reportBatch(batch: { steps: PendingStep[]; values: Promise<(Float32Array | Int32Array)[]> }) {
    const values = await batch.values;
    const rate = this.#clock.rate(batch.steps[0].step, batch.steps[batch.steps.length - 1].step);
    let finite = true;
    for (const [i, p] of batch.steps.entries()) {
      const loss = values[2 * i][0], gradNorm = values[2 * i + 1][0];
      this.lastLoss = loss;
      if (!Number.isFinite(loss)) finite = false;
      p.loss.dispose();
      p.gradNorm.dispose();
      await this.#report(p, { loss, gradNorm, rate });
    }
    return finite;
  }
}

/** Opens the data files and checks them against the model: long enough, every id below its vocabulary. */
async function openData(config: Config): Promise<{ train: TokenDataset; val: TokenDataset | null }> {
  const t = config.train, T = config.model.contextLength;
  const train = await TokenDataset.open(t.trainData);
  let val: TokenDataset | null = null;
  try {
    val = t.valData ? await TokenDataset.open(t.valData) : null;
    for (const [what, ds] of [["training", train], ["validation", val]] as const) {
      if (!ds) continue;
      if (ds.length < T + 1) {
        throw new Error(
          `The ${what} file ${ds.path} has ${ds.length} tokens, fewer than one sequence of context length + 1 = ` +
            `${T + 1}: use more data or a shorter --context-length`,
        );
      }
      const max = await ds.maxTokenId();
      if (max >= config.model.vocabSize) {
        throw new Error(
          `The ${what} file ${ds.path} holds token id ${max}, but the model's vocabulary has ${config.model.vocabSize} ` +
            `ids (0-${config.model.vocabSize - 1}): set --vocab-size to the tokenizer's size (at least ${max + 1}), ` +
            `or re-encode the data with the matching tokenizer`,
        );
      }
    }
    return { train, val };
  } catch (e) {
    train.close();
    val?.close();
    throw e;
  }
}

/**
 * Checks a run's inputs as {@linkcode Trainer.create} does, without a GPU and without keeping anything open: the
 * data files (length, and every id below the model's vocabulary) and the tokenizer (no larger than that
 * vocabulary). A sweep checks every run's this way before its first run trains.
 *
 * @example
 * ```ts
 * import { parseConfig } from "@nanolm/nanolm";
 * import { writeTokenFile } from "@nanolm/nanolm/data";
 * import { checkRunInputs } from "@nanolm/nanolm/train";
 * const dir = await Deno.makeTempDir();
 * await writeTokenFile(`${dir}/train.bin`, Array.from({ length: 100 }, (_, i) => i % 40));
 * const model = { vocabSize: 32, contextLength: 16, dModel: 16, numLayers: 1, numHeads: 2 };
 * const config = parseConfig({ model, train: { trainData: `${dir}/train.bin` } });
 * const error = await checkRunInputs(config).then(() => "", (e) => (e as Error).message);
 * // Ids 32..39 have no row in a 32-token embedding: refused before any training.
 * if (!error.includes("holds token id 39")) throw new Error(`wrong or no error: ${error}`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkRunInputs(config: Config): Promise<void> {
  const { train, val } = await openData(config);
  train.close();
  val?.close();
  if (config.train.tokenizer) await checkTokenizer(config.train.tokenizer, config.model.vocabSize);
}

/** Loads the run's tokenizer; refuses one whose ids the model cannot embed. */
async function checkTokenizer(path: string, vocabSize: number): Promise<Tokenizer> {
  const tokenizer = await loadTokenizer(path);
  if (tokenizer.vocabSize > vocabSize) {
    throw new Error(
      `The tokenizer ${path} has ${tokenizer.vocabSize} tokens, more than the model's vocabulary of ${vocabSize}: ` +
        `set --vocab-size ${tokenizer.vocabSize}`,
    );
  }
  return tokenizer;
}

/** Refuses a config whose model differs from the checkpoint's (its weights fix the architecture). */
function checkSameModel(path: string, ckpt: CheckpointState, config: Config): void {
  const saved = (ckpt.config as { model?: unknown } | undefined)?.model;
  if (saved === undefined) return;
  let savedModel: Record<string, unknown>;
  try {
    savedModel = parseModelConfig(saved) as unknown as Record<string, unknown>;
  } catch (e) {
    throw new Error(`Checkpoint ${path} holds an invalid model config: ${(e as Error).message}`, { cause: e });
  }
  const now = config.model as unknown as Record<string, unknown>;
  const differ = Object.keys(savedModel).filter((k) => JSON.stringify(savedModel[k]) !== JSON.stringify(now[k]));
  if (differ.length > 0) {
    const list = differ.map((k) => `${k} ${JSON.stringify(now[k])} (checkpoint: ${JSON.stringify(savedModel[k])})`);
    throw new Error(`Cannot resume ${path} with a different model: ${list.join(", ")}`);
  }
}

function concatArrays(parts: ArrayLike<number>[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p as ArrayLike<number>, at);
    at += p.length;
  }
  return out;
}

function meanOf(ts: Tensor[]): Tensor {
  let acc = ts[0];
  for (let i = 1; i < ts.length; i++) acc = add(acc, ts[i]);
  return mul(acc, 1 / ts.length);
}

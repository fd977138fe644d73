/**
 * Training throughput: tokens per second over a sliding window of recent steps (so the first, slow step that
 * compiles kernels does not drag the figure for the whole run) and the model FLOPs utilisation it implies.
 *
 * @module
 */
import { formatCount } from "../util/format.ts";

/** Options of {@linkcode ThroughputMeter}. */
export interface ThroughputMeterOptions {
  /** Tokens processed per optimizer step (batch size × context length × accumulation steps). */
  tokensPerStep: number;
  /** Training FLOPs per token (see `trainingFlopsPerToken`), for MFU. */
  flopsPerToken?: number;
  /** Peak FLOP/s of the device, for MFU. */
  peakFlopsPerSecond?: number;
  /** Steps in the sliding window (default 20). */
  window?: number;
}

/**
 * Measures tokens/s and MFU from step completion times.
 *
 * @example
 * ```ts
 * import { ThroughputMeter } from "@nanolm/nanolm/train";
 * const meter = new ThroughputMeter({ tokensPerStep: 8192, flopsPerToken: 6e6, peakFlopsPerSecond: 1e12 });
 * meter.mark(0, 0);
 * meter.mark(1, 500); // one step of 8192 tokens in 0.5 s
 * if (meter.tokensPerSecond() !== 16384) throw new Error(`${meter.tokensPerSecond()} tokens/s`);
 * if (Math.abs(meter.mfu()! - 16384 * 6e6 / 1e12) > 1e-12) throw new Error(`MFU ${meter.mfu()}`);
 * ```
 */
export class ThroughputMeter {
  readonly #opts: ThroughputMeterOptions;
  readonly #window: number;
  #marks: [step: number, ms: number][] = [];

  /** Creates a meter; `tokensPerStep` must be positive. */
  constructor(options: ThroughputMeterOptions) {
    if (!(options.tokensPerStep > 0)) {
      throw new RangeError(`Tokens per step must be positive, got ${options.tokensPerStep}`);
    }
    this.#opts = options;
    this.#window = options.window ?? 20;
  }

  /** Records that `step` steps are complete at time `nowMs` (default `performance.now()`). */
  mark(step: number, nowMs: number = performance.now()): void {
    this.#marks.push([step, nowMs]);
    if (this.#marks.length > this.#window + 1) this.#marks.shift();
  }

  /** Tokens per second over the window, or 0 before two marks. */
  tokensPerSecond(): number {
    if (this.#marks.length < 2) return 0;
    const [s0, t0] = this.#marks[0], [s1, t1] = this.#marks[this.#marks.length - 1];
    return t1 > t0 ? ((s1 - s0) * this.#opts.tokensPerStep * 1000) / (t1 - t0) : 0;
  }

  /** Model FLOPs utilisation, or undefined without `flopsPerToken` and `peakFlopsPerSecond`. */
  mfu(): number | undefined {
    const { flopsPerToken, peakFlopsPerSecond } = this.#opts;
    if (!flopsPerToken || !peakFlopsPerSecond) return undefined;
    return (this.tokensPerSecond() * flopsPerToken) / peakFlopsPerSecond;
  }

  /** A progress-bar suffix such as `12.3k tok/s MFU 31.2%`. */
  describe(): string {
    const mfu = this.mfu();
    return `${formatCount(this.tokensPerSecond())} tok/s` +
      (mfu === undefined ? "" : ` MFU ${(mfu * 100).toFixed(1)}%`);
  }
}

/**
 * Tokens per second of training steps whose results are read back from a GPU that runs behind the host.
 *
 * The trainer records steps on the host and reads their losses back in batches, one interval late. Neither clock
 * alone gives the rate of a batch: when the GPU is the bottleneck, the host records the first interval after an
 * evaluation far faster than the GPU runs it; when the host is, a batch read right after another completes at once.
 * Over a batch of steps the slower of the two spans is the true one: from the host's recording of the step before
 * the batch to that of its last step, and from the completion of the previous read to that of this one. Time spent
 * in evaluations and checkpoints ({@linkcode StepThroughput.pause}) counts in neither.
 *
 * @example
 * ```ts
 * import { StepThroughput } from "@nanolm/nanolm/train";
 * let now = 0;
 * const clock = new StepThroughput({ tokensPerStep: 1000, startStep: 0, now: () => now });
 * now = 10; clock.recorded(1);
 * now = 20; clock.recorded(2); // the host recorded two steps in 20 ms
 * now = 100; clock.completed(2); // the GPU finished them at 100 ms
 * // Two steps of 1000 tokens in 0.1 s of GPU time:
 * if (clock.rate(1, 2) !== 20000) throw new Error(`${clock.rate(1, 2)} tokens/s`);
 * ```
 */
export class StepThroughput {
  readonly #tokensPerStep: number;
  readonly #now: () => number;
  #paused = 0;
  #recordedAt = new Map<number, number>();
  #completedAt = new Map<number, number>();
  #lastRecorded: number;

  /** Starts the clock; `startStep` is the step count before the first recorded step. */
  constructor(options: { tokensPerStep: number; startStep: number; now?: () => number }) {
    this.#tokensPerStep = options.tokensPerStep;
    this.#now = options.now ?? (() => performance.now());
    this.#lastRecorded = options.startStep;
    const t = this.#active();
    this.#recordedAt.set(options.startStep, t);
    this.#completedAt.set(options.startStep, t);
  }

  /** The clock without the paused time. */
  #active(): number {
    return this.#now() - this.#paused;
  }

  /** The host finished recording `step`. */
  recorded(step: number): void {
    this.#recordedAt.set(step, this.#active());
    this.#lastRecorded = step;
  }

  /**
   * The read of the batch ending at `lastStep` completed (the GPU is done with every step up to it). When that is
   * the last step recorded, the host has been waiting for the GPU (a drain before an evaluation or a checkpoint):
   * the wait belongs to this batch, so the next one's recording span starts now.
   */
  completed(lastStep: number): void {
    const t = this.#active();
    this.#completedAt.set(lastStep, t);
    if (lastStep === this.#lastRecorded) this.#recordedAt.set(lastStep, t);
  }

  /** Runs `work` (an evaluation, a checkpoint) with the clock stopped. */
  async pause<T>(work: () => Promise<T>): Promise<T> {
    const start = this.#now();
    try {
      return await work();
    } finally {
      this.#paused += this.#now() - start;
    }
  }

  /**
   * Tokens per second of the batch of steps `first..last`, the batch before it having ended at `first - 1`. Call it
   * once per batch, in order: it forgets the times it used.
   */
  rate(first: number, last: number): number {
    const span = (times: Map<number, number>) => {
      const from = times.get(first - 1), to = times.get(last);
      times.delete(first - 1);
      return from === undefined || to === undefined ? 0 : to - from;
    };
    const ms = Math.max(span(this.#recordedAt), span(this.#completedAt));
    return ms > 0 ? ((last - first + 1) * this.#tokensPerStep * 1000) / ms : 0;
  }
}

/**
 * Training throughput: tokens per second over a sliding window of recent steps (so the first, slow step that
 * compiles kernels does not drag the figure for the whole run) and the model FLOPs utilisation it implies.
 *
 * @module
 */
import { formatCount } from "./progress.ts";

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
 * import { ThroughputMeter } from "./meter.ts";
 * const meter = new ThroughputMeter({ tokensPerStep: 8192, flopsPerToken: 6e6, peakFlopsPerSecond: 1e12 });
 * meter.mark(0, 0);
 * meter.mark(1, 500); // one step of 8192 tokens in 0.5 s
 * console.assert(meter.tokensPerSecond() === 16384);
 * console.assert(Math.abs(meter.mfu()! - 16384 * 6e6 / 1e12) < 1e-12);
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

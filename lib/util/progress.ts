/**
 * A terminal progress bar for long jobs (tokenizer training, encoding, model training).
 *
 * On a terminal it redraws one line in place; when stderr is not a terminal (CI, logs, notebooks) it prints a
 * plain line at most every `logEverySeconds`, so logs stay readable.
 *
 * @module
 */
import { formatCount, formatDuration } from "./format.ts";

/** Options of {@linkcode ProgressBar}. */
export interface ProgressBarOptions {
  /** Label printed before the bar. */
  label?: string;
  /** Unit of the rate, e.g. `"merges"`, `"MB"`, `"tok"`. */
  unit?: string;
  /** Width of the bar in characters (terminal only). */
  width?: number;
  /** Minimum seconds between redraws on a terminal. */
  redrawSeconds?: number;
  /** Minimum seconds between lines when not on a terminal. */
  logEverySeconds?: number;
  /** Where to write; defaults to stderr. Tests pass a collector. */
  write?: (text: string) => void;
  /** Force terminal (in-place) mode on or off; defaults to whether stderr is a terminal. */
  interactive?: boolean;
}

/**
 * Progress of a job of known size, with rate and ETA.
 *
 * @example
 * ```ts
 * import { ProgressBar } from "./progress.ts";
 * const lines: string[] = [];
 * const bar = new ProgressBar(100, { label: "merges", unit: "merges", write: (text) => lines.push(text) });
 * for (let i = 0; i < 100; i++) bar.update(i + 1, "loss 1.23");
 * bar.done();
 * // Not a terminal: whole lines, the last one at 100%.
 * if (!/^merges █+ 100\.0% 100\/100 .* loss 1\.23\n$/.test(lines.at(-1)!)) throw new Error(lines.at(-1));
 * ```
 */
export class ProgressBar {
  /** The amount of work that means done. */
  readonly total: number;
  #opts: Required<Omit<ProgressBarOptions, "write" | "interactive">>;
  #write: (text: string) => void;
  #interactive: boolean;
  #start = performance.now();
  #lastDraw = -Infinity;
  #current = 0;
  #suffix = "";

  /** Creates a bar for `total` units of work (must be a non-negative finite number). */
  constructor(total: number, options: ProgressBarOptions = {}) {
    if (!Number.isFinite(total) || total < 0) {
      throw new RangeError(`Progress total must be a non-negative finite number, got ${total}`);
    }
    this.total = total;
    this.#opts = {
      label: options.label ?? "",
      unit: options.unit ?? "it",
      width: options.width ?? 28,
      redrawSeconds: options.redrawSeconds ?? 0.1,
      logEverySeconds: options.logEverySeconds ?? 10,
    };
    const encoder = new TextEncoder();
    this.#write = options.write ?? ((t) => Deno.stderr.writeSync(encoder.encode(t)));
    this.#interactive = options.interactive ?? (options.write === undefined && Deno.stderr.isTerminal());
  }

  /** Sets the amount done (absolute) and an optional suffix such as the current loss. */
  update(current: number, suffix?: string): void {
    this.#current = current;
    if (suffix !== undefined) this.#suffix = suffix;
    const now = performance.now();
    const every = this.#interactive ? this.#opts.redrawSeconds : this.#opts.logEverySeconds;
    if ((now - this.#lastDraw) / 1000 >= every) {
      this.#lastDraw = now;
      this.#draw(false);
    }
  }

  /** Seconds since the bar was created. */
  elapsed(): number {
    return (performance.now() - this.#start) / 1000;
  }

  /** Draws the final state and ends the line. */
  done(suffix?: string): void {
    if (suffix !== undefined) this.#suffix = suffix;
    this.#draw(true);
  }

  /** The text of the current state, without control characters. */
  render(): string {
    const { label, unit, width } = this.#opts;
    const elapsed = this.elapsed();
    const frac = this.total > 0 ? Math.min(1, this.#current / this.total) : 1;
    const rate = elapsed > 0 ? this.#current / elapsed : 0;
    const eta = rate > 0 ? (this.total - this.#current) / rate : Infinity;
    const filled = Math.round(frac * width);
    const bar = "█".repeat(filled) + "░".repeat(width - filled);
    const parts = [
      label ? `${label} ` : "",
      `${bar} ${(frac * 100).toFixed(1).padStart(5)}% `,
      `${formatCount(this.#current)}/${formatCount(this.total)} `,
      `${formatCount(rate)} ${unit}/s `,
      `elapsed ${formatDuration(elapsed)} eta ${formatDuration(eta)}`,
      this.#suffix ? ` ${this.#suffix}` : "",
    ];
    return parts.join("");
  }

  #draw(final: boolean): void {
    const text = this.render();
    if (this.#interactive) this.#write(`\r\x1b[2K${text}${final ? "\n" : ""}`);
    else this.#write(`${text}\n`);
  }
}

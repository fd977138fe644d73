/**
 * Graceful interruption of long runs: the first Ctrl-C (SIGINT, or SIGTERM) only sets a flag that the training
 * loop checks between steps, so it can write a checkpoint and exit cleanly; a second one exits at once, so a stuck
 * run can still be stopped.
 *
 * @module
 */

/**
 * Listens for SIGINT/SIGTERM until disposed.
 *
 * @example
 * ```ts
 * import { InterruptGuard } from "./interrupt.ts";
 * using guard = new InterruptGuard();
 * Deno.kill(Deno.pid, "SIGTERM"); // as `kill` sends it (Ctrl-C sends SIGINT): the process goes on
 * for (let step = 0; step < 1000 && !guard.requested; step++) {
 *   await new Promise((done) => setTimeout(done, 1)); // one training step
 * }
 * // The loop saw the request between steps: it would save a checkpoint and exit 130.
 * if (!guard.requested || guard.signal !== "SIGTERM") throw new Error("the signal was not seen");
 * ```
 */
export class InterruptGuard {
  #requested = false;
  #signal: Deno.Signal | null = null;
  #listeners: [Deno.Signal, () => void][] = [];
  readonly #onInterrupt?: (signal: Deno.Signal) => void;

  /** Starts listening; `onInterrupt` runs on the first signal (e.g. to print "saving checkpoint..."). */
  constructor(options: { onInterrupt?: (signal: Deno.Signal) => void; exitCode?: number } = {}) {
    this.#onInterrupt = options.onInterrupt;
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    for (const signal of signals) {
      const listener = () => {
        if (this.#requested) Deno.exit(options.exitCode ?? 128 + (signal === "SIGTERM" ? 15 : 2));
        this.#requested = true;
        this.#signal = signal;
        this.#onInterrupt?.(signal);
      };
      Deno.addSignalListener(signal, listener);
      this.#listeners.push([signal, listener]);
    }
  }

  /** Whether a stop was requested. */
  get requested(): boolean {
    return this.#requested;
  }

  /** The signal that requested the stop, if any. */
  get signal(): Deno.Signal | null {
    return this.#signal;
  }

  /** Stops listening (restoring the default behaviour of the signals). */
  dispose(): void {
    for (const [signal, listener] of this.#listeners) Deno.removeSignalListener(signal, listener);
    this.#listeners = [];
  }

  /** Stops listening (for `using`). */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * How a training run shows itself in a notebook: a progress bar and the latest step, losses, learning rate and
 * tokens/s.
 *
 * @module
 */
import { factsBundle, type MimeBundle } from "../notebook/display.ts";
import { formatCount, formatDuration } from "../util/format.ts";

/** The state of a training run, as a run view shows it. */
export interface RunStatus {
  /** A name for the run. */
  name?: string;
  /** Steps done. */
  step: number;
  /** Steps planned. */
  steps: number;
  /** Latest training loss. */
  loss?: number;
  /** Latest validation loss and the step it was measured at. */
  valLoss?: number;
  /** Step of `valLoss`. */
  valStep?: number;
  /** Learning rate of the latest step. */
  lr?: number;
  /** Training tokens per second (latest measurement). */
  tokensPerSec?: number;
  /** Seconds since the run started. */
  elapsed?: number;
  /** Model parameters. */
  parameters?: number;
  /** Where checkpoints go. */
  outDir?: string;
}

/**
 * The view of a training run: a progress bar and the latest step, losses, learning rate and tokens/s.
 *
 * @example
 * ```ts
 * import { runBundle } from "@nanolm/nanolm/train";
 * const b = runBundle({ name: "tiny", step: 50, steps: 100, loss: 3.2, lr: 1e-3, tokensPerSec: 1500, elapsed: 12 });
 * const lines = (b["text/plain"] as string).split("\n");
 * if (lines[0] !== "Training run tiny" || lines[1] !== "  step: 50 / 100 (50%)") throw new Error(lines.join("\n"));
 * for (const fact of ["  training loss: 3.2000", "  learning rate: 1.00e-3", "  tokens/s: 1500", "  elapsed: 12.0s"]) {
 *   if (!lines.includes(fact)) throw new Error(`no "${fact}" in:\n${lines.join("\n")}`);
 * }
 * if (!(b["text/html"] as string).startsWith('<progress value="50" max="100"')) throw new Error("a progress bar");
 * ```
 */
export function runBundle(status: RunStatus): MimeBundle {
  const pct = status.steps > 0 ? Math.min(100, Math.round((100 * status.step) / status.steps)) : 0;
  const facts: [string, string][] = [["step", `${status.step} / ${status.steps} (${pct}%)`]];
  if (status.loss !== undefined) facts.push(["training loss", status.loss.toFixed(4)]);
  if (status.valLoss !== undefined) {
    facts.push(["validation loss", `${status.valLoss.toFixed(4)} (step ${status.valStep ?? "?"})`]);
  }
  if (status.lr !== undefined) facts.push(["learning rate", status.lr.toExponential(2)]);
  if (status.tokensPerSec !== undefined) facts.push(["tokens/s", formatCount(Math.round(status.tokensPerSec))]);
  if (status.elapsed !== undefined) facts.push(["elapsed", formatDuration(status.elapsed)]);
  if (status.parameters !== undefined) facts.push(["parameters", status.parameters.toLocaleString("en-US")]);
  if (status.outDir !== undefined) facts.push(["output", status.outDir]);
  const base = factsBundle(`Training run${status.name ? ` ${status.name}` : ""}`, facts);
  const bar = `<progress value="${status.step}" max="${Math.max(status.steps, 1)}" style="width:20em"></progress>`;
  return { "text/plain": base["text/plain"], "text/html": `${bar}${base["text/html"]}` };
}

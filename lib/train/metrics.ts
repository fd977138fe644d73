/**
 * Training metrics as JSON Lines: one JSON object per line, appended as the run goes, readable while it runs and
 * after a crash (a torn last line is skipped).
 *
 * Conventions used by the trainer and the plots: every record has an integer `step`; training records carry `loss`
 * and `lr` (and whatever else, e.g. `tokensPerSec`, `gradNorm`, `mfu`), evaluation records carry `valLoss` — the
 * trainer's events can be logged as they are.
 * JSON has no NaN or infinities, so non-finite numbers are written as the strings `"NaN"`, `"Infinity"` and
 * `"-Infinity"` and read back as numbers.
 *
 * @module
 */

import { writeFileAtomicSync } from "../io/atomic_write.ts";

/** A value of a metric record. */
export type MetricValue = number | string | boolean | null;

/** One line of a metrics file. */
export interface MetricRecord {
  /** The optimizer step the record belongs to. */
  step: number;
  /** Any other named values (`undefined` ones are not written). */
  [key: string]: MetricValue | undefined;
}

/**
 * Anything with an integer `step` that can be logged or plotted: a {@linkcode MetricRecord}, or a trainer event
 * (`{ type: "step", step, loss, lr, gradNorm, tokensPerSec, ... }`), whose other fields are read by name.
 */
export interface Stepped {
  /** The optimizer step. */
  readonly step: number;
}

/** A metric as two parallel arrays, ready to plot. */
export interface Series {
  /** The steps (x values). */
  steps: number[];
  /** The metric's values (y values). */
  values: number[];
}

/** Options of {@linkcode MetricsLogger.open}. */
export interface MetricsLoggerOptions {
  /**
   * When resuming from a checkpoint taken after this step (that many updates applied), keep the records up to and
   * including it, drop the later ones (they were logged after the checkpoint and will be logged again), and append.
   * Without it an existing file is replaced.
   */
  resumeStep?: number;
  /** With `resumeStep`: the metrics file to keep the records from, when resuming into another folder. */
  from?: string;
}

const NON_FINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity };

function encodeRecord(record: MetricRecord | Stepped): string {
  if (!Number.isSafeInteger(record.step)) {
    throw new TypeError(`Metric record step must be an integer, got ${record.step}`);
  }
  return JSON.stringify(record, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v));
}

/**
 * Appends metric records to a JSONL file. Each {@linkcode MetricsLogger.log} is one write of one whole line, so a
 * reader (or a crash) never sees a partial record except at the very end.
 *
 * @example
 * ```ts
 * import { MetricsLogger } from "@nanolm/nanolm/train";
 * const path = await Deno.makeTempFile({ suffix: ".jsonl" });
 * const log = await MetricsLogger.open(path);
 * log.log({ step: 1, loss: 4.2, lr: 1e-3 });
 * log.log({ step: 1, valLoss: 4.3 });
 * await log.close();
 * const text = await Deno.readTextFile(path);
 * if (text !== '{"step":1,"loss":4.2,"lr":0.001}\n{"step":1,"valLoss":4.3}\n') throw new Error(text);
 * await Deno.remove(path);
 * ```
 */
export class MetricsLogger {
  /** The file path. */
  readonly path: string;
  #file: Deno.FsFile | null;
  #encoder = new TextEncoder();

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /** Opens (creating or replacing, or trimming for a resume) a metrics file. */
  static async open(path: string, options: MetricsLoggerOptions = {}): Promise<MetricsLogger> {
    if (options.resumeStep !== undefined) {
      const resumeStep = options.resumeStep;
      let old: MetricRecord[] = [];
      try {
        old = await readMetrics(options.from ?? path);
      } catch (e) {
        if (!((e as Error).cause instanceof Deno.errors.NotFound)) throw e;
      }
      // The kept records replace the file in one step, so a crash here loses nothing.
      writeFileAtomicSync(path, old.filter((r) => r.step <= resumeStep).map((r) => encodeRecord(r) + "\n").join(""));
    }
    let file: Deno.FsFile;
    try {
      file = await Deno.open(
        path,
        options.resumeStep === undefined ? { write: true, create: true, truncate: true } : { append: true },
      );
    } catch (e) {
      throw new Error(`Metrics file ${path} cannot be opened: ${(e as Error).message}`, { cause: e });
    }
    return new MetricsLogger(path, file);
  }

  #write(text: string): void {
    if (!this.#file) throw new Error(`Metrics file ${this.path} is closed`);
    const bytes = this.#encoder.encode(text);
    let done = 0;
    while (done < bytes.length) done += this.#file.writeSync(bytes.subarray(done));
  }

  /** Appends one record. */
  log(record: MetricRecord | Stepped): void {
    this.#write(encodeRecord(record) + "\n");
  }

  /** Flushes the file to disk (e.g. before a checkpoint). */
  async flush(): Promise<void> {
    await this.#file?.sync();
  }

  /** Flushes and closes the file. */
  async close(): Promise<void> {
    if (!this.#file) return;
    await this.#file.sync();
    this.#file.close();
    this.#file = null;
  }
}

/**
 * Parses JSONL metrics text. A torn last line (no newline at the end, invalid JSON: the writer was interrupted)
 * is skipped; any other bad line is an error naming the line.
 *
 * @example
 * ```ts
 * import { parseMetrics } from "@nanolm/nanolm/train";
 * // The last line was cut short by a crash: skipped.
 * const records = parseMetrics('{"step":0,"loss":"NaN"}\n{"step":1,"loss":2.5}\n{"step":2,"lo');
 * if (records.length !== 2 || records[1].loss !== 2.5) throw new Error("two whole records");
 * if (!Number.isNaN(records[0].loss)) throw new Error('"NaN" reads back as NaN');
 * let message = "";
 * try {
 *   parseMetrics('{"step":0}\n{"step":\n{"step":2}\n', { source: "m.jsonl" });
 * } catch (e) {
 *   message = (e as Error).message;
 * }
 * if (message !== "Metrics file m.jsonl has invalid JSON on line 2") throw new Error(`unclear error: ${message}`);
 * ```
 */
export function parseMetrics(text: string, options: { source?: string } = {}): MetricRecord[] {
  const where = options.source ? `Metrics file ${options.source}` : "Metrics text";
  const lines = text.split("\n");
  const out: MetricRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    let value: unknown;
    try {
      value = JSON.parse(line, (_k, v) => (typeof v === "string" && v in NON_FINITE ? NON_FINITE[v] : v));
    } catch {
      if (i === lines.length - 1) break; // torn final line
      throw new Error(`${where} has invalid JSON on line ${i + 1}`);
    }
    if (value === null || typeof value !== "object" || !Number.isSafeInteger((value as MetricRecord).step)) {
      throw new Error(`${where} line ${i + 1} is not a record with an integer step`);
    }
    out.push(value as MetricRecord);
  }
  return out;
}

/**
 * Reads a metrics file written by {@linkcode MetricsLogger}.
 *
 * @example
 * ```ts
 * import { MetricsLogger, readMetrics } from "@nanolm/nanolm/train";
 * const path = await Deno.makeTempFile({ suffix: ".jsonl" });
 * const log = await MetricsLogger.open(path);
 * log.log({ step: 3, loss: Infinity, lr: 1e-3 });
 * await log.close();
 * const records = await readMetrics(path);
 * if (records.length !== 1 || records[0].step !== 3 || records[0].lr !== 1e-3) throw new Error("one record back");
 * if (records[0].loss !== Infinity) throw new Error("JSON has no Infinity: written as a string, read as a number");
 * await Deno.remove(path);
 * ```
 */
export async function readMetrics(path: string): Promise<MetricRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`Metrics file ${path} does not exist`, { cause: e });
    throw new Error(`Metrics file ${path} cannot be read: ${(e as Error).message}`, { cause: e });
  }
  return parseMetrics(text, { source: path });
}

/**
 * The numeric values of `key` against `step`, over the records that have it, in record order.
 *
 * @example
 * ```ts
 * import { metricSeries } from "@nanolm/nanolm/train";
 * const s = metricSeries([{ step: 0, loss: 3 }, { step: 0, valLoss: 3.1 }, { step: 1, loss: 2 }], "loss");
 * if (s.steps.join() !== "0,1" || s.values.join() !== "3,2") throw new Error(`${s.steps} / ${s.values}`);
 * ```
 */
export function metricSeries(records: readonly (MetricRecord | Stepped)[], key: string): Series {
  const steps: number[] = [], values: number[] = [];
  for (const r of records) {
    const v = (r as unknown as Record<string, unknown>)[key];
    if (typeof v === "number") {
      steps.push(r.step);
      values.push(v);
    }
  }
  return { steps, values };
}

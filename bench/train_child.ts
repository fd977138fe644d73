/**
 * Child process of the training benchmark: trains on a file and prints seconds and the process's peak resident
 * memory (VmHWM) as JSON, so that the measurement covers exactly one training run.
 */
import { trainBpe } from "../mod.ts";

const [path, vocabSize, workers] = Deno.args;
const started = performance.now();
const { merges } = trainBpe(path, {
  vocabSize: Number(vocabSize),
  specialTokens: ["<|endoftext|>"],
  workers: workers === undefined ? undefined : Number(workers),
  progress: Deno.env.get("PROGRESS") === "1",
});
const seconds = (performance.now() - started) / 1000;
const status = Deno.readTextFileSync("/proc/self/status");
const peakKiB = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN);
console.log(JSON.stringify({ seconds, merges: merges.length, peakMB: peakKiB / 1024 }));

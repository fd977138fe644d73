/**
 * Worker entry for {@linkcode countPretokens}: counts the pre-tokens of its byte ranges and writes the serialized
 * counts into the shared result buffer, then wakes the waiting thread.
 *
 * @module
 */

import { PretokenCounter } from "../tokenizer/pretoken_counts.ts";
import { countPretokensOfFile } from "./corpus_counts.ts";
import {
  CONTROL_DONE_HIGH,
  CONTROL_DONE_LOW,
  CONTROL_LENGTH,
  CONTROL_STATE,
  type FileRange,
  serializeCounts,
  STATE_FAILED,
  STATE_FINISHED,
  STATE_RUNNING,
} from "./corpus_counts.ts";

interface Job {
  ranges: FileRange[];
  specialTokens: string[];
  control: SharedArrayBuffer;
  result: SharedArrayBuffer;
}

self.addEventListener("message", (message: Event) => {
  const job = (message as MessageEvent).data as Job;
  const { ranges, specialTokens, result } = job;
  const control = new Int32Array(job.control);
  Atomics.store(control, CONTROL_STATE, STATE_RUNNING);
  Atomics.notify(control, CONTROL_STATE);
  let output: Uint8Array;
  let state = STATE_FINISHED;
  try {
    const counts = new PretokenCounter();
    let before = 0;
    for (const range of ranges) {
      countPretokensOfFile(range.path, counts, {
        specialTokens,
        start: range.start,
        end: range.end,
        onProgress: (done) => {
          const total = before + done;
          Atomics.store(control, CONTROL_DONE_LOW, total % 2 ** 32);
          Atomics.store(control, CONTROL_DONE_HIGH, Math.floor(total / 2 ** 32));
        },
      });
      before += range.end - range.start;
    }
    output = serializeCounts(counts.toMap());
  } catch (e) {
    output = new TextEncoder().encode(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    state = STATE_FAILED;
  }
  result.grow(output.length);
  new Uint8Array(result).set(output);
  Atomics.store(control, CONTROL_LENGTH, output.length);
  Atomics.store(control, CONTROL_STATE, state);
  Atomics.notify(control, CONTROL_STATE);
});

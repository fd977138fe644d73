/**
 * Worker entry for {@linkcode encodeFile}: loads the tokenizer, encodes one byte range of the input into a part
 * file, and reports progress and the token count.
 *
 * @module
 */

import { encodeRange } from "./encode_file.ts";
import type { TokenDtype } from "./token_files.ts";
import { Tokenizer, type TokenizerSnapshot } from "../tokenizer/tokenizer.ts";

interface Job {
  snapshot: TokenizerSnapshot;
  range: { path: string; start: number; end: number };
  partPath: string;
  dtype: TokenDtype;
  blockBytes?: number;
}

/** The worker's `postMessage` (Deno's default types describe a window). */
const post = (message: unknown) => (self as unknown as { postMessage(message: unknown): void }).postMessage(message);

self.addEventListener("message", async (message: Event) => {
  const job = (message as MessageEvent).data as Job;
  try {
    const tokenizer = Tokenizer.fromSnapshot(job.snapshot);
    const output = await Deno.open(job.partPath, { write: true, create: true, truncate: true });
    try {
      const tokens = await encodeRange(job.range.path, output, tokenizer, {
        start: job.range.start,
        end: job.range.end,
        dtype: job.dtype,
        blockBytes: job.blockBytes,
        onProgress: (progress) => post({ progress }),
      });
      post({ tokens });
    } finally {
      output.close();
    }
  } catch (e) {
    post({ error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
  }
});

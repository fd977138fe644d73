/**
 * Streaming text generation on the GPU: prompts (text or ids, one or a batch) in, an async iterator of new tokens
 * and text out, with the KV-cached, GPU-sampled decode loop of {@linkcode KvCacheDecoder}.
 *
 * The host never waits on the GPU inside the loop: it records decode steps in chunks (1, 2, 4, ... up to
 * `readEvery` steps, so that the first tokens arrive at once), and after each chunk starts reading the ids that
 * chunk sampled; it awaits the oldest read only when the GPU is `readAhead` steps ahead (by default enough for
 * ~40 ms, measured as it goes) or there is nothing left to record. Stops (tokens, strings, length) are found on the host, so the GPU may compute a few steps past a
 * stop; those are discarded.
 *
 * Context overflow: with `overflow: "slide"` (the default) a sequence whose next position would reach the context
 * length is re-prefilled from its last `ceil(contextLength / 2)` tokens, at positions from 0 as in training, and
 * decoding goes on (one round trip per slide). RoPE positions therefore always lie in [0, contextLength). Prompts
 * longer than the context keep their last `contextLength` tokens. With `overflow: "error"`, a prompt plus
 * `maxNewTokens` that does not fit throws a RangeError before anything runs.
 *
 * Text: each sequence's bytes go through a streaming `TextDecoder`, so a character split across tokens appears
 * whole, in the event of the token that completes it; text that could be the start of a stop string is held back
 * until it cannot be.
 *
 * @module
 */
import type { TransformerLM } from "../nn/transformer.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { KvCacheDecoder } from "./decoder.ts";
import type { GpuSamplingOptions } from "./decoder.ts";

/** Decoding the adaptive readAhead keeps queued on the GPU, in ms: 3x the ~12 ms of a readback round trip. */
const AHEAD_MS = 40;
const MIN_AHEAD = 16, MAX_AHEAD = 1024;

/** A prompt: text (needs a tokenizer) or token ids. */
export type Prompt = string | readonly number[] | Int32Array;

/** Why a sequence stopped. */
export type FinishReason = "stop_token" | "stop_string" | "length";

/** Options of {@linkcode generateStream}. */
export interface GenerateStreamOptions extends GpuSamplingOptions {
  /** Turns text prompts into ids and new ids into text (events carry text only with a tokenizer). */
  tokenizer?: Tokenizer;
  /** New tokens per sequence at most (default 64). */
  maxNewTokens?: number;
  /** Ids that end a sequence; the stop id is yielded, its text is not. */
  stopTokens?: readonly number[];
  /** Strings that end a sequence (needs a tokenizer); the text stops right before the first one. */
  stopStrings?: readonly string[];
  /**
   * Only ids below this are sampled. Default: the tokenizer's vocabSize when there is a tokenizer and the model's
   * vocabulary is larger (the extra ids have no text), else the model's vocabSize.
   */
  vocabLimit?: number;
  /** Context overflow policy (default "slide"); see the module doc. */
  overflow?: "slide" | "error";
  /** Most decode steps recorded per readback (default 32). */
  readEvery?: number;
  /**
   * Most steps the GPU may run ahead of the ids the host has read. Default: adaptive, about 40 ms of decoding by
   * the measured rate (3x a readback's round trip, so the GPU never waits for the host), between 16 and 1024 steps.
   * It is also the most steps computed after a stop and thrown away.
   */
  readAhead?: number;
}

/** One new token of one sequence. */
export interface GenerationEvent {
  /** Index of the sequence's prompt in the batch (0 for a single prompt). */
  row: number;
  /** The new id. */
  token: number;
  /** 0-based number of the token among the sequence's new tokens. */
  index: number;
  /**
   * Text that became final with this token: "" without a tokenizer, while a multi-byte character is incomplete,
   * or while the text could still turn into a stop string. Concatenated over a row's events it is the row's text.
   */
  text: string;
  /** Set on a sequence's last event. */
  finishReason?: FinishReason;
}

/** Turns one sequence's ids into text incrementally: streaming UTF-8 and held-back stop-string prefixes. */
class TextStream {
  #decoder = new TextDecoder("utf-8");
  #pending = "";
  readonly #tokenizer: Tokenizer;
  readonly #stops: readonly string[];

  constructor(tokenizer: Tokenizer, stops: readonly string[]) {
    this.#tokenizer = tokenizer;
    this.#stops = stops;
  }

  /** Adds a token; returns the text now final, and whether a stop string ended the sequence. */
  push(id: number): { text: string; stopped: boolean } {
    const buf = this.#pending + this.#decoder.decode(this.#tokenizer.decodeBytes([id]), { stream: true });
    let cut = -1;
    for (const s of this.#stops) {
      const at = buf.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.#pending = "";
      return { text: buf.slice(0, cut), stopped: true };
    }
    // Hold back the longest suffix that is a proper prefix of a stop string.
    let hold = 0;
    for (const s of this.#stops) {
      for (let n = Math.min(s.length - 1, buf.length); n > hold; n--) {
        if (buf.endsWith(s.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    this.#pending = buf.slice(buf.length - hold);
    return { text: buf.slice(0, buf.length - hold), stopped: false };
  }

  /** The held-back text and any incomplete trailing bytes (as U+FFFD), at the end of the sequence. */
  flush(): string {
    const text = this.#pending + this.#decoder.decode();
    this.#pending = "";
    return text;
  }
}

function isIds(p: unknown): p is readonly number[] | Int32Array {
  return p instanceof Int32Array || (Array.isArray(p) && (p.length === 0 || typeof p[0] === "number"));
}

/**
 * Generates continuations of one prompt or a batch of prompts, yielding each new token as soon as the host has
 * read it back (see the module doc for batching, overflow and text). Events of a batch come step by step, rows in
 * order within a step. Breaking out of the loop stops generation and frees the cache.
 *
 * @example
 * ```ts ignore
 * import { generateStream } from "./stream.ts";
 * for await (const e of generateStream(model, "Once upon a time", { tokenizer, maxNewTokens: 100, topP: 0.9 })) {
 *   await Deno.stdout.write(new TextEncoder().encode(e.text));
 * }
 * ```
 */
export async function* generateStream(
  model: TransformerLM,
  prompts: Prompt | readonly Prompt[],
  options: GenerateStreamOptions = {},
): AsyncGenerator<GenerationEvent> {
  const list: Prompt[] = typeof prompts === "string" || isIds(prompts) ? [prompts as Prompt] : [...prompts];
  if (list.length === 0) throw new RangeError("generateStream: no prompts");
  const { tokenizer } = options;
  const { vocabSize, contextLength } = model.config;
  const maxNew = options.maxNewTokens ?? 64;
  if (!Number.isInteger(maxNew) || maxNew < 0) {
    throw new RangeError(`generateStream: maxNewTokens must be an integer >= 0, got ${maxNew}`);
  }
  const readEvery = options.readEvery ?? 32;
  const adaptive = options.readAhead === undefined;
  // Until the first rate is measured: enough for a fast GPU to stay busy through one round trip.
  let readAhead = options.readAhead ?? 64;
  if (!Number.isInteger(readAhead) || readAhead < 1) {
    throw new RangeError(`generateStream: readAhead must be an integer >= 1, got ${readAhead}`);
  }
  if (!Number.isInteger(readEvery) || readEvery < 1) {
    throw new RangeError(`generateStream: readEvery must be an integer >= 1, got ${readEvery}`);
  }
  const stopStrings = (options.stopStrings ?? []).filter((s) => s.length > 0);
  if (stopStrings.length && !tokenizer) throw new Error("generateStream: stopStrings need a tokenizer");
  const stopTokens = new Set(options.stopTokens ?? []);
  const overflow = options.overflow ?? "slide";
  if (overflow !== "slide" && overflow !== "error") {
    throw new RangeError(`generateStream: overflow must be "slide" or "error", got ${JSON.stringify(overflow)}`);
  }
  const seqs = list.map((p, b) => {
    let ids: number[];
    if (typeof p === "string") {
      if (!tokenizer) throw new Error(`generateStream: prompt ${b} is text; pass a tokenizer to encode it`);
      ids = tokenizer.encode(p);
    } else ids = Array.from(p);
    if (ids.length === 0) throw new RangeError(`generateStream: prompt ${b} has no tokens`);
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new RangeError(`generateStream: prompt ${b} has token ${id}, outside the vocabulary [0, ${vocabSize})`);
      }
    }
    if (overflow === "error" && ids.length + maxNew - 1 > contextLength) {
      throw new RangeError(
        `generateStream: prompt ${b} (${ids.length} tokens) + maxNewTokens ${maxNew} needs ${
          ids.length + maxNew - 1
        } positions; the context length is ${contextLength} (use overflow: "slide")`,
      );
    }
    return ids.length > contextLength ? ids.slice(-contextLength) : ids;
  });
  if (maxNew === 0) return;
  const B = seqs.length;
  const keep = Math.ceil(contextLength / 2);
  const texts = tokenizer ? seqs.map(() => new TextStream(tokenizer, stopStrings)) : null;
  // Each sequence's tokens from its cache start on, the last sampled (not yet fed) one included.
  const windows = seqs.map((s) => [...s]);
  const produced = new Array(B).fill(0);
  const done = new Array(B).fill(false);
  let active = B;

  const vocabLimit = options.vocabLimit ?? Math.min(vocabSize, tokenizer?.vocabSize ?? vocabSize);
  const dec = new KvCacheDecoder(model, { batch: B, ringSteps: readEvery, vocabLimit });
  try {
    dec.setSampling(options);
    dec.prefill(seqs);
    // Reads in flight: each covers draws [from, to) and resolves to the ring as it was right after them.
    const reads: { from: number; to: number; ring: Promise<Int32Array> }[] = [];
    reads.push({ from: 0, to: 1, ring: dec.readRing() });
    let issued = 1, chunk = 1;
    let firstRead: { time: number; draws: number } | null = null;
    while (true) {
      const read = reads.length ? reads[0].from : issued;
      // Record more steps while allowed: below the draw limit, not too far ahead, and within the context.
      while (active > 0 && issued < maxNew && issued - read < readAhead) {
        const room = contextLength - Math.max(...dec.positions.filter((_, b) => !done[b]));
        if (room <= 0) break;
        const n = Math.min(chunk, maxNew - issued, readAhead - (issued - read), room);
        dec.step(n);
        reads.push({ from: issued, to: issued + n, ring: dec.readRing() });
        issued += n;
        chunk = Math.min(chunk * 2, readEvery);
      }
      if (reads.length === 0) {
        if (active === 0 || issued >= maxNew) break;
        // Every read is in: slide the sequences that reached the context length and re-prefill.
        windows.forEach((w, b) => {
          if (dec.positions[b] >= contextLength) windows[b] = w.slice(-keep);
        });
        dec.prefill(windows);
        reads.push({ from: issued, to: issued + 1, ring: dec.readRing() });
        issued++;
        continue;
      }
      const { from, to, ring } = reads.shift()!;
      const ids = await ring;
      const now = performance.now();
      if (!firstRead) firstRead = { time: now, draws: to };
      else if (adaptive && to > firstRead.draws) {
        // Draws resolved per ms since the first read: the GPU's rate when it is kept busy, and a rate limited by
        // the round trip (which raises readAhead) when it is not.
        const msPerStep = Math.max((now - firstRead.time) / (to - firstRead.draws), 1e-3);
        readAhead = Math.min(MAX_AHEAD, Math.max(MIN_AHEAD, Math.ceil(AHEAD_MS / msPerStep)));
      }
      for (let draw = from; draw < to; draw++) {
        for (let b = 0; b < B; b++) {
          if (done[b]) continue;
          const token = ids[(draw % dec.ringSteps) * B + b];
          windows[b].push(token);
          const index = produced[b]++;
          let text = "", finishReason: FinishReason | undefined;
          if (stopTokens.has(token)) finishReason = "stop_token";
          else if (texts) {
            const r = texts[b].push(token);
            text = r.text;
            if (r.stopped) finishReason = "stop_string";
          }
          if (!finishReason && produced[b] >= maxNew) finishReason = "length";
          if (finishReason) {
            if (texts && finishReason !== "stop_string") text += texts[b].flush();
            done[b] = true;
            dec.retire(b);
            active--;
          }
          yield finishReason ? { row: b, token, index, text, finishReason } : { row: b, token, index, text };
        }
        if (active === 0) return;
      }
    }
  } finally {
    dec.dispose();
  }
}

/**
 * Generates and collects the text of each prompt (a convenience over {@linkcode generateStream}; needs a
 * tokenizer in the options).
 *
 * @example
 * ```ts ignore
 * const [story] = await generateText(model, ["Once upon a time"], { tokenizer, maxNewTokens: 50 });
 * ```
 */
export async function generateText(
  model: TransformerLM,
  prompts: readonly string[],
  options: GenerateStreamOptions & { tokenizer: Tokenizer },
): Promise<string[]> {
  const out = prompts.map(() => "");
  for await (const e of generateStream(model, prompts, options)) out[e.row] += e.text;
  return out;
}

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
import type { ModelConfig } from "../nn/config.ts";
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

/** generateStream's options, validated, with defaults filled in. */
interface StreamSettings {
  tokenizer?: Tokenizer;
  maxNew: number;
  readEvery: number;
  /** The first readAhead; adapted as reads come in when `adaptive`. */
  readAhead: number;
  adaptive: boolean;
  stopTokens: ReadonlySet<number>;
  stopStrings: readonly string[];
  overflow: "slide" | "error";
  vocabLimit: number;
}

function streamSettings(options: GenerateStreamOptions, vocabSize: number): StreamSettings {
  const maxNew = options.maxNewTokens ?? 64;
  if (!Number.isInteger(maxNew) || maxNew < 0) {
    throw new RangeError(`generateStream: maxNewTokens must be an integer >= 0, got ${maxNew}`);
  }
  const readEvery = options.readEvery ?? 32;
  // Until the first rate is measured: enough for a fast GPU to stay busy through one round trip.
  const readAhead = options.readAhead ?? 64;
  if (!Number.isInteger(readAhead) || readAhead < 1) {
    throw new RangeError(`generateStream: readAhead must be an integer >= 1, got ${readAhead}`);
  }
  if (!Number.isInteger(readEvery) || readEvery < 1) {
    throw new RangeError(`generateStream: readEvery must be an integer >= 1, got ${readEvery}`);
  }
  const { tokenizer } = options;
  const stopStrings = (options.stopStrings ?? []).filter((s) => s.length > 0);
  if (stopStrings.length && !tokenizer) throw new Error("generateStream: stopStrings need a tokenizer");
  const overflow = options.overflow ?? "slide";
  if (overflow !== "slide" && overflow !== "error") {
    throw new RangeError(`generateStream: overflow must be "slide" or "error", got ${JSON.stringify(overflow)}`);
  }
  const vocabLimit = options.vocabLimit ?? Math.min(vocabSize, tokenizer?.vocabSize ?? vocabSize);
  const stopTokens = new Set(options.stopTokens ?? []);
  const adaptive = options.readAhead === undefined;
  return { tokenizer, maxNew, readEvery, readAhead, adaptive, stopTokens, stopStrings, overflow, vocabLimit };
}

/** Each prompt's ids: encoded, checked against the vocabulary and the overflow policy, cropped to the context. */
function promptIds(list: readonly Prompt[], config: ModelConfig, settings: StreamSettings): number[][] {
  const { vocabSize, contextLength } = config;
  return list.map((p, b) => {
    let ids: number[];
    if (typeof p === "string") {
      if (!settings.tokenizer) throw new Error(`generateStream: prompt ${b} is text; pass a tokenizer to encode it`);
      ids = settings.tokenizer.encode(p);
    } else ids = Array.from(p);
    if (ids.length === 0) throw new RangeError(`generateStream: prompt ${b} has no tokens`);
    const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
    if (bad !== undefined) {
      throw new RangeError(`generateStream: prompt ${b} has token ${bad}, outside the vocabulary [0, ${vocabSize})`);
    }
    const needed = ids.length + settings.maxNew - 1;
    if (settings.overflow === "error" && needed > contextLength) {
      throw new RangeError(
        `generateStream: prompt ${b} (${ids.length} tokens) + maxNewTokens ${settings.maxNew} needs ${needed} ` +
          `positions; the context length is ${contextLength} (use overflow: "slide")`,
      );
    }
    return ids.length > contextLength ? ids.slice(-contextLength) : ids;
  });
}

/** The host's view of each sequence: its window of tokens, its count, its text, and whether it has finished. */
class Sequences {
  /** Each sequence's tokens from its cache start on, the last sampled (not yet fed) one included. */
  readonly windows: number[][];
  readonly #produced: number[];
  readonly done: boolean[];
  readonly #texts: TextStream[] | null;
  readonly #settings: StreamSettings;
  active: number;

  constructor(prompts: number[][], settings: StreamSettings) {
    this.windows = prompts.map((s) => [...s]);
    this.#produced = prompts.map(() => 0);
    this.done = prompts.map(() => false);
    const { tokenizer, stopStrings } = settings;
    this.#texts = tokenizer ? prompts.map(() => new TextStream(tokenizer, stopStrings)) : null;
    this.#settings = settings;
    this.active = prompts.length;
  }

  /** Takes sequence `row`'s next token and returns its event, with a finishReason when the sequence ends. */
  accept(row: number, token: number): GenerationEvent {
    this.windows[row].push(token);
    const index = this.#produced[row]++;
    let text = "", finishReason: FinishReason | undefined;
    if (this.#settings.stopTokens.has(token)) finishReason = "stop_token";
    else if (this.#texts) {
      const r = this.#texts[row].push(token);
      text = r.text;
      if (r.stopped) finishReason = "stop_string";
    }
    if (!finishReason && this.#produced[row] >= this.#settings.maxNew) finishReason = "length";
    if (!finishReason) return { row, token, index, text };
    if (this.#texts && finishReason !== "stop_string") text += this.#texts[row].flush();
    this.done[row] = true;
    this.active--;
    return { row, token, index, text, finishReason };
  }

  /** The windows to re-prefill: those of sequences at the context length keep their last `keep` tokens. */
  slide(positions: readonly number[], contextLength: number): number[][] {
    const keep = Math.ceil(contextLength / 2);
    this.windows.forEach((w, b) => {
      if (positions[b] >= contextLength) this.windows[b] = w.slice(-keep);
    });
    return this.windows;
  }
}

/** A readback in flight: the ring as it was right after draws [from, to). */
interface PendingRead {
  from: number;
  to: number;
  ring: Promise<Int32Array>;
}

/**
 * Records decode steps ahead of the host and keeps their readbacks in flight: chunks of 1, 2, 4, ... up to
 * `readEvery` steps, never more than `readAhead` steps past the oldest unread draw, and never past the context.
 */
class StepPacer {
  readonly #dec: KvCacheDecoder;
  readonly #settings: StreamSettings;
  readonly #contextLength: number;
  readonly #reads: PendingRead[] = [];
  #issued = 0;
  #chunk = 1;
  #readAhead: number;
  #firstRead: { time: number; draws: number } | null = null;

  constructor(dec: KvCacheDecoder, settings: StreamSettings, contextLength: number) {
    this.#dec = dec;
    this.#settings = settings;
    this.#contextLength = contextLength;
    this.#readAhead = settings.readAhead;
  }

  /** Draws recorded so far (prefills included). */
  get issued(): number {
    return this.#issued;
  }

  /** Whether no read is in flight. */
  get idle(): boolean {
    return this.#reads.length === 0;
  }

  /** Prefills `windows` (the draw it samples is read like a step's). */
  prefill(windows: number[][]): void {
    this.#dec.prefill(windows);
    this.#reads.push({ from: this.#issued, to: this.#issued + 1, ring: this.#dec.readRing() });
    this.#issued++;
  }

  /** Records more steps while allowed: below the draw limit, not too far ahead, and within the context. */
  recordAhead(seqs: Sequences): void {
    const read = this.#reads.length ? this.#reads[0].from : this.#issued;
    const { maxNew, readEvery } = this.#settings;
    while (seqs.active > 0 && this.#issued < maxNew && this.#issued - read < this.#readAhead) {
      const room = this.#contextLength - Math.max(...this.#dec.positions.filter((_, b) => !seqs.done[b]));
      if (room <= 0) break;
      const n = Math.min(this.#chunk, maxNew - this.#issued, this.#readAhead - (this.#issued - read), room);
      this.#dec.step(n);
      this.#reads.push({ from: this.#issued, to: this.#issued + n, ring: this.#dec.readRing() });
      this.#issued += n;
      this.#chunk = Math.min(this.#chunk * 2, readEvery);
    }
  }

  /** Awaits the oldest read; adapts readAhead to the rate reads come in at. */
  async next(): Promise<{ from: number; to: number; ids: Int32Array }> {
    const { from, to, ring } = this.#reads.shift()!;
    const ids = await ring;
    const now = performance.now();
    if (!this.#firstRead) this.#firstRead = { time: now, draws: to };
    else if (this.#settings.adaptive && to > this.#firstRead.draws) {
      // Draws resolved per ms since the first read: the GPU's rate when it is kept busy, and a rate limited by
      // the round trip (which raises readAhead) when it is not.
      const msPerStep = Math.max((now - this.#firstRead.time) / (to - this.#firstRead.draws), 1e-3);
      this.#readAhead = Math.min(MAX_AHEAD, Math.max(MIN_AHEAD, Math.ceil(AHEAD_MS / msPerStep)));
    }
    return { from, to, ids };
  }
}

/**
 * Generates continuations of one prompt or a batch of prompts, yielding each new token as soon as the host has
 * read it back (see the module doc for batching, overflow and text). Events of a batch come step by step, rows in
 * order within a step. Breaking out of the loop stops generation and frees the cache.
 *
 * @example
 * ```ts
 * import { initGpu } from "@nanolm/nanolm/tensor";
 * import { TransformerLM } from "@nanolm/nanolm/nn";
 * import { generateStream } from "@nanolm/nanolm/sample";
 * await initGpu();
 * const model = new TransformerLM({ vocabSize: 32, contextLength: 8, dModel: 16, numLayers: 1, numHeads: 2 });
 * const rows: number[][] = [[], []];
 * for await (const e of generateStream(model, [[1, 2, 3], [4]], { maxNewTokens: 10, temperature: 0.8, seed: 1 })) {
 *   rows[e.row].push(e.token); // 10 tokens each: the context of 8 is slid past on the way
 * }
 * if (rows.some((r) => r.length !== 10 || r.some((id) => id < 0 || id >= 32))) throw new Error(`${rows}`);
 * model.dispose();
 * ```
 */
export async function* generateStream(
  model: TransformerLM,
  prompts: Prompt | readonly Prompt[],
  options: GenerateStreamOptions = {},
): AsyncGenerator<GenerationEvent> {
  const list: Prompt[] = typeof prompts === "string" || isIds(prompts) ? [prompts as Prompt] : [...prompts];
  if (list.length === 0) throw new RangeError("generateStream: no prompts");
  const settings = streamSettings(options, model.config.vocabSize);
  const ids = promptIds(list, model.config, settings);
  if (settings.maxNew === 0) return;
  const { readEvery: ringSteps, vocabLimit } = settings;
  const dec = new KvCacheDecoder(model, { batch: ids.length, ringSteps, vocabLimit });
  try {
    dec.setSampling(options);
    yield* decodeLoop(dec, new Sequences(ids, settings), settings, model.config.contextLength);
  } finally {
    dec.dispose();
  }
}

/** Prefills, then steps, reads and slides until every sequence has finished; yields the events in order. */
async function* decodeLoop(
  dec: KvCacheDecoder,
  seqs: Sequences,
  settings: StreamSettings,
  contextLength: number,
): AsyncGenerator<GenerationEvent> {
  const pacer = new StepPacer(dec, settings, contextLength);
  pacer.prefill(seqs.windows);
  const B = seqs.windows.length;
  while (seqs.active > 0) {
    pacer.recordAhead(seqs);
    if (pacer.idle) {
      if (pacer.issued >= settings.maxNew) return;
      // Every read is in: slide the sequences that reached the context length and re-prefill.
      pacer.prefill(seqs.slide(dec.positions, contextLength));
      continue;
    }
    const { from, to, ids } = await pacer.next();
    for (let draw = from; draw < to && seqs.active > 0; draw++) {
      for (let b = 0; b < B; b++) {
        if (seqs.done[b]) continue;
        const event = seqs.accept(b, ids[(draw % dec.ringSteps) * B + b]);
        if (event.finishReason) dec.retire(b);
        yield event;
      }
    }
  }
}

/**
 * Generates and collects the text of each prompt (a convenience over {@linkcode generateStream}; needs a
 * tokenizer in the options).
 *
 * @example
 * ```ts
 * import { initGpu } from "@nanolm/nanolm/tensor";
 * import { TransformerLM } from "@nanolm/nanolm/nn";
 * import { Tokenizer } from "@nanolm/nanolm/tokenizer";
 * import { generateText } from "@nanolm/nanolm/sample";
 * await initGpu();
 * const bytes = new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), []);
 * const model = new TransformerLM({ vocabSize: 256, contextLength: 16, dModel: 16, numLayers: 1, numHeads: 2 });
 * const [story] = await generateText(model, ["Once"], { tokenizer: bytes, maxNewTokens: 5, temperature: 0 });
 * // Five greedy bytes of an untrained model: some text (invalid UTF-8 shows as U+FFFD), at most 5 characters.
 * if (story.length < 1 || story.length > 5) throw new Error(JSON.stringify(story));
 * model.dispose();
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

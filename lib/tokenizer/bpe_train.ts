/**
 * Byte-level BPE training (CS336 assignment 1): count pre-tokens once, then repeatedly merge the most frequent
 * adjacent pair, ties going to the lexicographically greater pair of byte strings.
 *
 * Each merge touches only the words that contain the merged pair (an index from pair to words), updates pair counts
 * incrementally, and finds the next best pair in a max-heap with lazy deletion. Counting a corpus's pre-tokens from
 * files, in parallel Workers, is `trainBpe` in the data layer.
 *
 * @module
 */

/** Options of {@linkcode bpeFromCounts} (and of `trainBpe`, which counts files first). */
export interface BpeOptions {
  /** Size of the final vocabulary: 256 bytes + special tokens + merges. */
  vocabSize: number;
  /** Special tokens: added to the vocabulary after the bytes, split out of the corpus and never merged. */
  specialTokens?: readonly string[];
  /** Called as merges are learned, with the number so far. */
  onProgress?: (merges: number, total: number) => void;
}

/** The result of BPE training: CS336's (vocab, merges). */
export interface BpeModel {
  /** Token id -> bytes: 0-255 the single bytes, then the special tokens, then one token per merge. */
  vocab: Map<number, Uint8Array>;
  /** The merges in the order they were learned. */
  merges: Array<[Uint8Array, Uint8Array]>;
}

/**
 * Checks BPE options: special tokens distinct non-empty strings, a vocabulary size that fits the bytes and them.
 * Returns the special tokens.
 *
 * @example
 * ```ts
 * import { checkBpeOptions } from "@nanolm/nanolm/tokenizer";
 * if (checkBpeOptions({ vocabSize: 300, specialTokens: ["<|endoftext|>"] }).length !== 1) throw new Error();
 * ```
 */
export function checkBpeOptions(options: BpeOptions): readonly string[] {
  const { vocabSize } = options ?? {};
  const specialTokens = options?.specialTokens ?? [];
  if (!Array.isArray(specialTokens)) {
    throw new TypeError(`Special tokens must be an array of strings, got ${JSON.stringify(specialTokens)}`);
  }
  const seen = new Set<string>();
  for (const s of specialTokens) {
    if (typeof s !== "string") throw new TypeError(`Special tokens must be strings, got ${describe(s)}`);
    if (s === "") throw new RangeError("Special tokens must not be empty strings");
    if (seen.has(s)) throw new RangeError(`Special token ${JSON.stringify(s)} is listed twice`);
    seen.add(s);
  }
  const minimum = 256 + specialTokens.length;
  if (!Number.isInteger(vocabSize) || vocabSize < minimum) {
    throw new RangeError(
      `Vocab size must be an integer of at least 256 + ${specialTokens.length} special tokens = ${minimum}, ` +
        `got ${vocabSize}`,
    );
  }
  return specialTokens;
}

/**
 * Trains byte-level BPE on pre-token counts (pre-token -> occurrences, as `PretokenCounter` gives them): the bytes,
 * then the special tokens, then merges until the vocabulary has `vocabSize` tokens or no pair is left.
 *
 * @example
 * ```ts
 * import { bpeFromCounts, countPretokensOfText, PretokenCounter } from "@nanolm/nanolm/tokenizer";
 * const counter = new PretokenCounter();
 * countPretokensOfText("low low low lower lowest newer newest", counter, null);
 * const { vocab, merges } = bpeFromCounts(counter.toMap(), { vocabSize: 259 });
 * if (vocab.size !== 259 || merges.length !== 3) throw new Error(`${vocab.size} tokens, ${merges.length} merges`);
 * ```
 */
export function bpeFromCounts(counts: ReadonlyMap<string, number>, options: BpeOptions): BpeModel {
  const specialTokens = checkBpeOptions(options);
  const vocab = new Map<number, Uint8Array>();
  for (let b = 0; b < 256; b++) vocab.set(b, new Uint8Array([b]));
  const encoder = new TextEncoder();
  specialTokens.forEach((s, i) => vocab.set(256 + i, encoder.encode(s)));
  const mergeCount = options.vocabSize - 256 - specialTokens.length;
  const onProgress = options.onProgress;
  const merges = learnMerges(counts, vocab, mergeCount, onProgress && ((n) => onProgress(n, mergeCount)));
  return { vocab, merges };
}

/** Per-pair statistics. */
interface PairStat {
  first: number;
  second: number;
  /** Weighted number of occurrences in the corpus. */
  count: number;
  /** Indices of words that contained the pair at some point (may repeat or be stale; checked on use). */
  words: number[];
  /** The merge step in which the count last grew (so the pair is re-queued once per step). */
  grewAt: number;
}

/**
 * Learns up to `mergeCount` merges from pre-token counts, adding each new token to `vocab` (ids continue after its
 * largest id). Stops early if no pair is left.
 *
 * @example
 * ```ts
 * import { learnMerges } from "@nanolm/nanolm/tokenizer";
 * const vocab = new Map<number, Uint8Array>();
 * for (let b = 0; b < 256; b++) vocab.set(b, new Uint8Array([b]));
 * const merges = learnMerges(new Map([["aaa", 2], ["ab", 1]]), vocab, 2);
 * if (merges.length !== 2 || vocab.size !== 258) throw new Error(`${merges.length} merges, ${vocab.size} tokens`);
 * ```
 */
export function learnMerges(
  counts: ReadonlyMap<string, number>,
  vocab: Map<number, Uint8Array>,
  mergeCount: number,
  onProgress?: (merges: number) => void,
): Array<[Uint8Array, Uint8Array]> {
  const tokens: Uint8Array[] = [];
  for (const [id, bytes] of vocab) tokens[id] = bytes;
  let nextId = Math.max(...vocab.keys()) + 1;
  const words = wordsOf(counts);
  const pairs = new PairCounts(nextId + mergeCount);
  pairs.countWords(words);
  const heap = new PairHeap(tokens);
  for (const stat of pairs.values()) heap.push(stat.count, stat);
  const merges: Array<[Uint8Array, Uint8Array]> = [];
  const visited = new Int32Array(words.count).fill(-1);
  while (merges.length < mergeCount && heap.size > 0) {
    const [count, best] = heap.pop();
    if (count !== best.count) {
      // Lazy deletion: an entry above the current count is re-queued at it; one below is a leftover.
      if (count > best.count && best.count > 0) heap.push(best.count, best);
      continue;
    }
    if (count <= 0) break;
    const a = best.first, b = best.second, merged = nextId++;
    const bytes = new Uint8Array(tokens[a].length + tokens[b].length);
    bytes.set(tokens[a]);
    bytes.set(tokens[b], tokens[a].length);
    tokens[merged] = bytes;
    vocab.set(merged, bytes);
    merges.push([tokens[a], tokens[b]]);
    const grown = mergeInWords(words, pairs, best, merged, merges.length, visited);
    pairs.delete(a, b);
    for (const stat of grown) if (stat.count > 0) heap.push(stat.count, stat);
    onProgress?.(merges.length);
  }
  return merges;
}

/** The corpus: one word per distinct pre-token, as token ids in one flat array, merged in place. */
interface Words {
  count: number;
  start: Int32Array;
  length: Int32Array;
  /** Occurrences of each word in the corpus. */
  freq: Float64Array;
  symbols: Int32Array;
}

/** The words of pre-token counts, as their UTF-8 bytes. */
function wordsOf(counts: ReadonlyMap<string, number>): Words {
  const encoder = new TextEncoder();
  const count = counts.size;
  const start = new Int32Array(count + 1), length = new Int32Array(count), freq = new Float64Array(count);
  let total = 0;
  for (const word of counts.keys()) total += word.length * 3;
  const symbols = new Int32Array(total);
  let w = 0, at = 0;
  for (const [word, occurrences] of counts) {
    start[w] = at;
    const bytes = encoder.encode(word);
    for (let i = 0; i < bytes.length; i++) symbols[at + i] = bytes[i];
    length[w] = bytes.length;
    freq[w] = occurrences;
    at += bytes.length;
    w++;
  }
  start[w] = at;
  return { count, start, length, freq, symbols: symbols.subarray(0, at) };
}

/** The statistics of every adjacent pair of token ids, keyed by `first * stride + second`. */
class PairCounts {
  readonly #pairs = new Map<number, PairStat>();
  readonly #stride: number;

  /** `stride`: more than any token id that will exist. */
  constructor(stride: number) {
    this.#stride = stride;
  }

  /** The statistics of (a, b), created at zero when absent. */
  get(a: number, b: number): PairStat {
    const key = a * this.#stride + b;
    let stat = this.#pairs.get(key);
    if (stat === undefined) {
      stat = { first: a, second: b, count: 0, words: [], grewAt: -1 };
      this.#pairs.set(key, stat);
    }
    return stat;
  }

  delete(a: number, b: number): void {
    this.#pairs.delete(a * this.#stride + b);
  }

  values(): IterableIterator<PairStat> {
    return this.#pairs.values();
  }

  /** Counts every pair of every word, weighted by the word's frequency. */
  countWords(words: Words): void {
    const { start, length, freq, symbols } = words;
    for (let word = 0; word < words.count; word++) {
      const end = start[word] + length[word];
      for (let i = start[word]; i + 1 < end; i++) {
        const stat = this.get(symbols[i], symbols[i + 1]);
        stat.count += freq[word];
        if (stat.words[stat.words.length - 1] !== word) stat.words.push(word);
      }
    }
  }
}

/**
 * Replaces every occurrence of `best`'s pair by `merged` in the words that contain it, updating the counts of the
 * neighbouring pairs. Returns the pairs whose count grew (each once), to be queued again. `stamp` (the merge's
 * number) marks the words already visited in `visited`.
 */
function mergeInWords(
  words: Words,
  pairs: PairCounts,
  best: PairStat,
  merged: number,
  stamp: number,
  visited: Int32Array,
): PairStat[] {
  const a = best.first, b = best.second, { start, length, freq, symbols } = words;
  const grown: PairStat[] = [];
  const change = (x: number, y: number, delta: number, word: number) => {
    const stat = pairs.get(x, y);
    stat.count += delta;
    if (delta > 0) {
      if (stat.words[stat.words.length - 1] !== word) stat.words.push(word);
      if (stat.grewAt !== stamp) {
        stat.grewAt = stamp;
        grown.push(stat);
      }
    }
  };
  for (const word of best.words) {
    if (visited[word] === stamp) continue;
    visited[word] = stamp;
    const first = start[word], f = freq[word];
    let end = first + length[word];
    for (let i = first; i + 1 < end; i++) {
      if (symbols[i] !== a || symbols[i + 1] !== b) continue;
      if (i > first) {
        change(symbols[i - 1], a, -f, word);
        change(symbols[i - 1], merged, f, word);
      }
      if (i + 2 < end) {
        change(b, symbols[i + 2], -f, word);
        change(merged, symbols[i + 2], f, word);
      }
      best.count -= f;
      symbols[i] = merged;
      symbols.copyWithin(i + 1, i + 2, end);
      end--;
    }
    length[word] = end - first;
  }
  return grown;
}

/**
 * A max-heap of (count, pair): higher count first, then the lexicographically greater (first, second) byte
 * strings. Entries go stale when a pair's count changes; the caller re-queues or drops them when they surface.
 */
class PairHeap {
  readonly #counts: number[] = [];
  readonly #stats: PairStat[] = [];
  readonly #tokens: Uint8Array[];

  /** `tokens`: the bytes of every token id, for ties. */
  constructor(tokens: Uint8Array[]) {
    this.#tokens = tokens;
  }

  get size(): number {
    return this.#counts.length;
  }

  push(count: number, stat: PairStat): void {
    const counts = this.#counts, stats = this.#stats;
    let i = counts.length;
    counts.push(count);
    stats.push(stat);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#above(count, stat, counts[parent], stats[parent])) break;
      counts[i] = counts[parent];
      stats[i] = stats[parent];
      i = parent;
    }
    counts[i] = count;
    stats[i] = stat;
  }

  /** Removes and returns the top entry (the heap must not be empty). */
  pop(): [number, PairStat] {
    const counts = this.#counts, stats = this.#stats;
    const top: [number, PairStat] = [counts[0], stats[0]];
    const lastCount = counts.pop()!, lastStat = stats.pop()!;
    const n = counts.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.#above(counts[child + 1], stats[child + 1], counts[child], stats[child])) child++;
      if (!this.#above(counts[child], stats[child], lastCount, lastStat)) break;
      counts[i] = counts[child];
      stats[i] = stats[child];
      i = child;
    }
    counts[i] = lastCount;
    stats[i] = lastStat;
    return top;
  }

  #above(c1: number, s1: PairStat, c2: number, s2: PairStat): boolean {
    if (c1 !== c2) return c1 > c2;
    const tokens = this.#tokens;
    const order = compareBytes(tokens[s1.first], tokens[s2.first]);
    return order !== 0 ? order > 0 : compareBytes(tokens[s1.second], tokens[s2.second]) > 0;
  }
}

/** Lexicographic order of byte strings (a proper prefix sorts first), as Python compares `bytes`. */
function compareBytes(x: Uint8Array, y: Uint8Array): number {
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

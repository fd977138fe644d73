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
 * const counts = new PretokenCounter();
 * countPretokensOfText("low low low lower lowest newer newest", counts, null);
 * const { vocab, merges } = bpeFromCounts(counts.toMap(), { vocabSize: 259 });
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
 * import { learnMerges } from "./bpe_train.ts";
 * const vocab = new Map<number, Uint8Array>();
 * for (let b = 0; b < 256; b++) vocab.set(b, new Uint8Array([b]));
 * const merges = learnMerges(new Map([["aaa", 2], ["ab", 1]]), vocab, 2);
 * console.assert(merges.length === 2 && vocab.size === 258);
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
  const stride = nextId + mergeCount;

  // Words as byte-id sequences in one flat array.
  const encoder = new TextEncoder();
  const wordCount = counts.size;
  const wordStart = new Int32Array(wordCount + 1);
  const wordLength = new Int32Array(wordCount);
  const wordFreq = new Float64Array(wordCount);
  let total = 0;
  for (const word of counts.keys()) total += word.length * 3;
  let symbols = new Int32Array(total);
  let w = 0, at = 0;
  for (const [word, freq] of counts) {
    wordStart[w] = at;
    const bytes = encoder.encode(word);
    for (let i = 0; i < bytes.length; i++) symbols[at + i] = bytes[i];
    wordLength[w] = bytes.length;
    wordFreq[w] = freq;
    at += bytes.length;
    w++;
  }
  wordStart[w] = at;
  symbols = symbols.subarray(0, at);

  const pairs = new Map<number, PairStat>();
  const statOf = (a: number, b: number): PairStat => {
    const key = a * stride + b;
    let stat = pairs.get(key);
    if (stat === undefined) {
      stat = { first: a, second: b, count: 0, words: [], grewAt: -1 };
      pairs.set(key, stat);
    }
    return stat;
  };
  for (let word = 0; word < wordCount; word++) {
    const start = wordStart[word], end = start + wordLength[word], freq = wordFreq[word];
    for (let i = start; i + 1 < end; i++) {
      const stat = statOf(symbols[i], symbols[i + 1]);
      stat.count += freq;
      if (stat.words[stat.words.length - 1] !== word) stat.words.push(word);
    }
  }

  // Max-heap of (count, pair): higher count first, then the lexicographically greater (first, second) bytes.
  const heapCounts: number[] = [];
  const heapStats: PairStat[] = [];
  const above = (c1: number, s1: PairStat, c2: number, s2: PairStat): boolean => {
    if (c1 !== c2) return c1 > c2;
    const order = compareBytes(tokens[s1.first], tokens[s2.first]);
    return order !== 0 ? order > 0 : compareBytes(tokens[s1.second], tokens[s2.second]) > 0;
  };
  const push = (count: number, stat: PairStat) => {
    let i = heapCounts.length;
    heapCounts.push(count);
    heapStats.push(stat);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!above(count, stat, heapCounts[parent], heapStats[parent])) break;
      heapCounts[i] = heapCounts[parent];
      heapStats[i] = heapStats[parent];
      i = parent;
    }
    heapCounts[i] = count;
    heapStats[i] = stat;
  };
  const pop = () => {
    const lastCount = heapCounts.pop()!, lastStat = heapStats.pop()!;
    const n = heapCounts.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && above(heapCounts[child + 1], heapStats[child + 1], heapCounts[child], heapStats[child])) {
        child++;
      }
      if (!above(heapCounts[child], heapStats[child], lastCount, lastStat)) break;
      heapCounts[i] = heapCounts[child];
      heapStats[i] = heapStats[child];
      i = child;
    }
    heapCounts[i] = lastCount;
    heapStats[i] = lastStat;
  };
  for (const stat of pairs.values()) push(stat.count, stat);

  const merges: Array<[Uint8Array, Uint8Array]> = [];
  const visited = new Int32Array(wordCount).fill(-1);
  const grown: PairStat[] = [];

  while (merges.length < mergeCount && heapCounts.length > 0) {
    const count = heapCounts[0], best = heapStats[0];
    pop();
    if (count !== best.count) {
      // Lazy deletion: an entry above the current count is re-queued at it; one below is a leftover.
      if (count > best.count && best.count > 0) push(best.count, best);
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
    grown.length = 0;
    const stamp = merges.length;
    const change = (x: number, y: number, delta: number, word: number) => {
      const stat = statOf(x, y);
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
      const start = wordStart[word], freq = wordFreq[word];
      let end = start + wordLength[word];
      for (let i = start; i + 1 < end; i++) {
        if (symbols[i] !== a || symbols[i + 1] !== b) continue;
        if (i > start) {
          change(symbols[i - 1], a, -freq, word);
          change(symbols[i - 1], merged, freq, word);
        }
        if (i + 2 < end) {
          change(b, symbols[i + 2], -freq, word);
          change(merged, symbols[i + 2], freq, word);
        }
        best.count -= freq;
        symbols[i] = merged;
        symbols.copyWithin(i + 1, i + 2, end);
        end--;
      }
      wordLength[word] = end - start;
    }
    pairs.delete(a * stride + b);
    for (const stat of grown) if (stat.count > 0) push(stat.count, stat);
    onProgress?.(merges.length);
  }
  return merges;
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

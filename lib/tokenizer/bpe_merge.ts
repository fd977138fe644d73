/**
 * Applying BPE merges to one pre-token: a hash table from token pairs to (rank, merged id), and a merge loop that
 * is quadratic-but-tiny on short pieces and O(n log n) (heap over a linked list) on long ones, so that a megabyte of
 * one repeated character stays fast.
 *
 * @module
 */

const EMPTY = -1;

/** The arrays of a {@linkcode PairTable}, as {@linkcode PairTable.toData} gives them. */
export interface PairTableData {
  /** First id of the pair in each slot (-1 for empty; the length is the capacity, a power of two). */
  first: Int32Array;
  /** Second id of the pair in each slot. */
  second: Int32Array;
  /** Rank of each slot's merge. */
  ranks: Int32Array;
  /** Id each slot's merge produces. */
  merged: Int32Array;
  /** Number of pairs stored. */
  size: number;
  /** Largest rank stored. */
  maxRank: number;
}

/**
 * Open-addressing hash table from a pair of token ids to the rank of their merge and the id it produces.
 *
 * @example
 * ```ts
 * import { PairTable } from "./bpe_merge.ts";
 * const table = new PairTable(4);
 * table.set(104, 105, 0, 256); // "h" + "i" -> 256, first merge
 * const slot = table.find(104, 105);
 * if (table.rank(slot) !== 0 || table.mergedId(slot) !== 256) throw new Error("merge not found");
 * ```
 */
export class PairTable {
  #mask: number;
  #first: Int32Array;
  #second: Int32Array;
  #ranks: Int32Array;
  #merged: Int32Array;
  #size = 0;
  #maxRank = 0;

  /** Creates a table sized for about `expected` pairs. */
  constructor(expected: number) {
    let capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    this.#mask = capacity - 1;
    this.#first = new Int32Array(capacity).fill(EMPTY);
    this.#second = new Int32Array(capacity);
    this.#ranks = new Int32Array(capacity);
    this.#merged = new Int32Array(capacity);
  }

  /** Number of pairs stored. */
  get size(): number {
    return this.#size;
  }

  /** The largest rank stored. */
  get maxRank(): number {
    return this.#maxRank;
  }

  /** Slot of the pair `(a, b)`, or -1 if it has no merge. */
  find(a: number, b: number): number {
    let slot = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x632be5ab, 0x85ebca77)) & this.#mask;
    const first = this.#first;
    for (;;) {
      const f = first[slot];
      if (f === a && this.#second[slot] === b) return slot;
      if (f === EMPTY) return -1;
      slot = (slot + 1) & this.#mask;
    }
  }

  /** Rank of the merge in `slot` (lower merges first). */
  rank(slot: number): number {
    return this.#ranks[slot];
  }

  /** Token id produced by the merge in `slot`. */
  mergedId(slot: number): number {
    return this.#merged[slot];
  }

  /** Adds the merge `(a, b) -> merged` with `rank`, keeping an existing entry of lower rank. */
  set(a: number, b: number, rank: number, merged: number): void {
    if (!Number.isInteger(rank) || rank < 0 || rank >= NO_RANK) throw new RangeError(`Invalid merge rank ${rank}`);
    if (rank > this.#maxRank) this.#maxRank = rank;
    if (this.#size * 2 >= this.#mask) this.#grow();
    let slot = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x632be5ab, 0x85ebca77)) & this.#mask;
    for (;;) {
      const f = this.#first[slot];
      if (f === EMPTY) break;
      if (f === a && this.#second[slot] === b) {
        if (rank < this.#ranks[slot]) {
          this.#ranks[slot] = rank;
          this.#merged[slot] = merged;
        }
        return;
      }
      slot = (slot + 1) & this.#mask;
    }
    this.#first[slot] = a;
    this.#second[slot] = b;
    this.#ranks[slot] = rank;
    this.#merged[slot] = merged;
    this.#size++;
  }

  /** The table's arrays, structured-cloneable (to hand the table to a Worker). */
  toData(): PairTableData {
    return {
      first: this.#first,
      second: this.#second,
      ranks: this.#ranks,
      merged: this.#merged,
      size: this.#size,
      maxRank: this.#maxRank,
    };
  }

  /** Rebuilds a table from {@linkcode PairTable.toData} (the arrays are taken over, not copied). */
  static fromData(data: PairTableData): PairTable {
    const table = new PairTable(0);
    table.#mask = data.first.length - 1;
    table.#first = data.first;
    table.#second = data.second;
    table.#ranks = data.ranks;
    table.#merged = data.merged;
    table.#size = data.size;
    table.#maxRank = data.maxRank;
    return table;
  }

  #grow(): void {
    const first = this.#first, second = this.#second, ranks = this.#ranks, merged = this.#merged;
    const capacity = first.length * 2;
    this.#mask = capacity - 1;
    this.#first = new Int32Array(capacity).fill(EMPTY);
    this.#second = new Int32Array(capacity);
    this.#ranks = new Int32Array(capacity);
    this.#merged = new Int32Array(capacity);
    this.#size = 0;
    for (let s = 0; s < first.length; s++) {
      if (first[s] !== EMPTY) this.set(first[s], second[s], ranks[s], merged[s]);
    }
  }
}

/** Pieces up to this many tokens use the simple scan; longer ones the heap. */
const SHORT_PIECE = 64;
const NO_RANK = 0x7fffffff;

/**
 * Merges `ids[0, length)` in place, always applying the lowest-ranked mergeable adjacent pair (the leftmost on
 * ties), and skipping merges of rank `>= maxRank`; returns the new length. `scratch` must hold `length` entries.
 *
 * @example
 * ```ts
 * import { mergePiece, PairTable } from "./bpe_merge.ts";
 * const table = new PairTable(2);
 * table.set(97, 97, 0, 256); // "aa"
 * const ids = new Int32Array([97, 97, 97]);
 * const n = mergePiece(ids, 3, table, new Int32Array(3));
 * // "aaa" -> "aa" "a": the leftmost pair merges first.
 * if (n !== 2 || ids[0] !== 256 || ids[1] !== 97) throw new Error(`${ids.subarray(0, n)}`);
 * ```
 */
export function mergePiece(
  ids: Int32Array,
  length: number,
  table: PairTable,
  scratch: Int32Array,
  maxRank: number = NO_RANK,
): number {
  if (length > SHORT_PIECE) return mergeLongPiece(ids, length, table, maxRank);
  const ranks = scratch;
  let n = length;
  for (let i = 0; i + 1 < n; i++) ranks[i] = rankOf(table, ids[i], ids[i + 1], maxRank);
  for (;;) {
    let best = NO_RANK, m = -1;
    for (let i = 0; i + 1 < n; i++) {
      if (ranks[i] < best) {
        best = ranks[i];
        m = i;
      }
    }
    if (m < 0) return n;
    ids[m] = table.mergedId(table.find(ids[m], ids[m + 1]));
    n--;
    for (let i = m + 1; i < n; i++) {
      ids[i] = ids[i + 1];
      ranks[i] = ranks[i + 1];
    }
    if (m + 1 < n) ranks[m] = rankOf(table, ids[m], ids[m + 1], maxRank);
    if (m > 0) ranks[m - 1] = rankOf(table, ids[m - 1], ids[m], maxRank);
  }
}

function rankOf(table: PairTable, a: number, b: number, maxRank: number): number {
  const slot = table.find(a, b);
  if (slot < 0) return NO_RANK;
  const rank = table.rank(slot);
  return rank < maxRank ? rank : NO_RANK;
}

/**
 * O(n log n) merging: a doubly linked list of tokens and a binary min-heap of candidate merges with lazy deletion.
 * A candidate is packed into one float, `rank * n + position`, so the heap compares plain numbers and the order is
 * rank first, leftmost on ties.
 */
function mergeLongPiece(ids: Int32Array, n: number, table: PairTable, maxRank: number): number {
  if ((table.maxRank + 1) * n > Number.MAX_SAFE_INTEGER) {
    throw new RangeError(`Piece of ${n} tokens is too long to merge with ${table.maxRank + 1} ranks`);
  }
  const next = new Int32Array(n), prev = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  let heap = new Float64Array(n + 16);
  let size = 0;
  const push = (key: number) => {
    if (size === heap.length) {
      const bigger = new Float64Array(size * 2);
      bigger.set(heap);
      heap = bigger;
    }
    let i = size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent] <= key) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = key;
  };
  const pop = (): number => {
    const top = heap[0], last = heap[--size];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && heap[child + 1] < heap[child]) child++;
      if (heap[child] >= last) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = last;
    return top;
  };
  for (let i = 0; i + 1 < n; i++) {
    const rank = rankOf(table, ids[i], ids[i + 1], maxRank);
    if (rank !== NO_RANK) push(rank * n + i);
  }
  const alive = new Uint8Array(n).fill(1);
  while (size > 0) {
    const key = pop();
    let rank = Math.floor(key / n);
    if (rank * n > key) rank--; // the division can round up when key is near 2^53
    const i = key - rank * n;
    if (!alive[i]) continue;
    const j = next[i];
    if (j >= n) continue;
    const slot = table.find(ids[i], ids[j]);
    if (slot < 0 || table.rank(slot) !== rank) continue; // stale entry
    ids[i] = table.mergedId(slot);
    alive[j] = 0;
    const k = next[j];
    next[i] = k;
    if (k < n) {
      prev[k] = i;
      const r = rankOf(table, ids[i], ids[k], maxRank);
      if (r !== NO_RANK) push(r * n + i);
    }
    const p = prev[i];
    if (p >= 0) {
      const r = rankOf(table, ids[p], ids[i], maxRank);
      if (r !== NO_RANK) push(r * n + p);
    }
  }
  let out = 0;
  for (let i = 0; i < n; i = next[i]) ids[out++] = ids[i];
  return out;
}

import { assertEquals } from "../../tests/assert.ts";
import { Rng } from "../util/random.ts";
import { mergePiece, PairTable } from "./bpe_merge.ts";

/** Textbook BPE: repeatedly merge the leftmost lowest-ranked pair, rebuilding the array each time. */
function naiveMerge(ids: number[], merges: Map<string, [number, number]>): number[] {
  let seq = ids.slice();
  for (;;) {
    let best = Infinity, at = -1;
    for (let i = 0; i + 1 < seq.length; i++) {
      const m = merges.get(`${seq[i]},${seq[i + 1]}`);
      if (m && m[0] < best) {
        best = m[0];
        at = i;
      }
    }
    if (at < 0) return seq;
    seq = [...seq.slice(0, at), merges.get(`${seq[at]},${seq[at + 1]}`)![1], ...seq.slice(at + 2)];
  }
}

Deno.test("short and long (heap) merging equal textbook BPE", () => {
  const rng = new Rng(11);
  for (let trial = 0; trial < 30; trial++) {
    const table = new PairTable(8);
    const merges = new Map<string, [number, number]>();
    let next = 4;
    for (let rank = 0; rank < 40; rank++) {
      const a = rng.int(next), b = rng.int(next);
      if (merges.has(`${a},${b}`)) continue;
      merges.set(`${a},${b}`, [rank, next]);
      table.set(a, b, rank, next++);
    }
    for (const length of [1, 2, 5, 63, 64, 65, 300]) {
      const input = Array.from({ length }, () => rng.int(4));
      const ids = Int32Array.from(input);
      const n = mergePiece(ids, length, table, new Int32Array(length));
      assertEquals(Array.from(ids.subarray(0, n)), naiveMerge(input, merges), `length ${length}`);
    }
  }
});

Deno.test("a long run of one symbol merges in n log n", () => {
  const table = new PairTable(4);
  table.set(0, 0, 0, 1);
  table.set(1, 1, 1, 2);
  const n = 1 << 20;
  const ids = new Int32Array(n);
  const started = performance.now();
  const length = mergePiece(ids, n, table, new Int32Array(n));
  assertEquals(length, n / 4);
  assertEquals(ids[0], 2);
  const ms = performance.now() - started;
  if (ms > 3000) throw new Error(`merging 1M symbols took ${ms} ms`);
});

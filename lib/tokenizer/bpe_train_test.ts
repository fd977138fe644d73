import { assertEquals } from "../../tests/assert.ts";
import { Rng } from "../util/random.ts";
import { bpeFromCounts, learnMerges } from "./bpe_train.ts";

/**
 * Textbook BPE training: recount every adjacent pair of every word from scratch before each merge, take the most
 * frequent, ties to the lexicographically greater pair of byte strings (as CS336's reference), and rewrite the words.
 */
function naiveMerges(counts: Map<string, number>, mergeCount: number): string[] {
  const hex = (bytes: number[]) => bytes.map((b) => b.toString(16).padStart(2, "0")).join("");
  let words = [...counts].map(([w, n]) => ({ tokens: [...new TextEncoder().encode(w)].map((b) => [b]), n }));
  const merges: string[] = [];
  const greater = (x: number[], y: number[]) => {
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] > y[i];
    return x.length > y.length;
  };
  while (merges.length < mergeCount) {
    const pairs = new Map<string, { a: number[]; b: number[]; n: number }>();
    for (const { tokens, n } of words) {
      for (let i = 0; i + 1 < tokens.length; i++) {
        const key = `${hex(tokens[i])} ${hex(tokens[i + 1])}`;
        const p = pairs.get(key) ?? { a: tokens[i], b: tokens[i + 1], n: 0 };
        p.n += n;
        pairs.set(key, p);
      }
    }
    let best: { a: number[]; b: number[]; n: number } | null = null;
    for (const p of pairs.values()) {
      if (
        !best || p.n > best.n ||
        (p.n === best.n && (greater(p.a, best.a) || (hex(p.a) === hex(best.a) && greater(p.b, best.b))))
      ) best = p;
    }
    if (!best) break;
    const { a, b } = best;
    merges.push(`${hex(a)} ${hex(b)}`);
    words = words.map(({ tokens, n }) => {
      const out: number[][] = [];
      for (let i = 0; i < tokens.length; i++) {
        if (i + 1 < tokens.length && hex(tokens[i]) === hex(a) && hex(tokens[i + 1]) === hex(b)) {
          out.push([...a, ...b]);
          i++;
        } else out.push(tokens[i]);
      }
      return { tokens: out, n };
    });
  }
  return merges;
}

const hexPair = ([a, b]: [Uint8Array, Uint8Array]) =>
  `${Array.from(a, (x) => x.toString(16).padStart(2, "0")).join("")} ${
    Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")
  }`;

Deno.test("learnMerges matches textbook BPE on random corpora full of ties and repeated pairs", () => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 30; trial++) {
    // Few letters (one of them two bytes in UTF-8) and short words: many equal counts, runs like "aaaa".
    const letters = ["a", "b", "c", "é", " "].slice(0, 2 + rng.int(4));
    const counts = new Map<string, number>();
    for (let w = 0; w < 1 + rng.int(12); w++) {
      const word = Array.from({ length: 1 + rng.int(7) }, () => letters[rng.int(letters.length)]).join("");
      counts.set(word, (counts.get(word) ?? 0) + 1 + rng.int(3));
    }
    const vocab = new Map<number, Uint8Array>();
    for (let b = 0; b < 256; b++) vocab.set(b, new Uint8Array([b]));
    const merges = learnMerges(counts, vocab, 40);
    assertEquals(merges.map(hexPair), naiveMerges(counts, 40), `corpus ${JSON.stringify([...counts])}`);
    assertEquals(vocab.size, 256 + merges.length);
  }
});

Deno.test("bpeFromCounts: bytes, then special tokens, then one token per merge; progress per merge", () => {
  const seen: number[] = [];
  const { vocab, merges } = bpeFromCounts(new Map([["low", 5], ["lower", 2], ["newest", 6], ["widest", 3]]), {
    vocabSize: 262,
    specialTokens: ["<|endoftext|>"],
    onProgress: (n, total) => seen.push(n, total),
  });
  assertEquals(new TextDecoder().decode(vocab.get(256)), "<|endoftext|>");
  assertEquals(merges.length, 5);
  assertEquals(merges.map(hexPair), naiveMerges(new Map([["low", 5], ["lower", 2], ["newest", 6], ["widest", 3]]), 5));
  assertEquals(seen, [1, 5, 2, 5, 3, 5, 4, 5, 5, 5]);
  assertEquals(
    new TextDecoder().decode(vocab.get(257)),
    new TextDecoder().decode(new Uint8Array([...merges[0][0], ...merges[0][1]])),
  );
});

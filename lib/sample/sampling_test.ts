import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { Rng } from "../util/random.ts";
import { candidateSet, sampleToken } from "./sampling.ts";

// Reference written independently: sort probabilities with float64 softmax, cut by k then by cumulative p.
function referenceSet(logits: number[], t: number, k: number, p: number): number[] {
  const probs = logits.map((l) => Math.exp(l / t));
  const z = probs.reduce((a, b) => a + b, 0);
  const ranked = probs.map((q, i) => ({ i, q: q / z })).sort((a, b) => b.q - a.q || a.i - b.i).slice(0, k);
  const zk = ranked.reduce((a, b) => a + b.q, 0);
  const out: number[] = [];
  let c = 0;
  for (const r of ranked) {
    out.push(r.i);
    c += r.q / zk;
    if (c >= p) break;
  }
  return out;
}

Deno.test("top-k and top-p keep exactly the reference candidate sets", () => {
  const rng = new Rng(5);
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + rng.int(40);
    const logits = Array.from({ length: n }, () => rng.normal() * 3);
    const t = [0.5, 1, 1.7][rng.int(3)], k = rng.int(n + 1), p = [0.1, 0.5, 0.9, 1][rng.int(4)];
    const got = candidateSet(logits, { temperature: t, topK: k, topP: p });
    assertEquals(got.ids, referenceSet(logits, t, k === 0 ? n : k, p), `trial ${trial}`);
    assert(Math.abs(got.probs.reduce((a, b) => a + b, 0) - 1) < 1e-9);
  }
});

Deno.test("sampling frequencies follow the renormalised distribution; greedy is argmax; seeds reproduce", () => {
  const logits = [1, 2, 0.5, 3];
  const rng = new Rng(1);
  const counts = [0, 0, 0, 0];
  const N = 40000;
  for (let i = 0; i < N; i++) counts[sampleToken(logits, rng, { topK: 3 })]++;
  const { ids, probs } = candidateSet(logits, { topK: 3 });
  assertEquals(counts[2], 0);
  ids.forEach((id, j) => assert(Math.abs(counts[id] / N - probs[j]) < 0.01, `token ${id}: ${counts[id] / N}`));
  assertEquals(sampleToken(logits, rng, { temperature: 0 }), 3);
  const a = new Rng(9), b = new Rng(9);
  for (let i = 0; i < 20; i++) assertEquals(sampleToken(logits, a), sampleToken(logits, b));
  assertThrows(() => candidateSet(logits, { topP: 0 }), "topP must be in (0, 1], got 0");
});

/**
 * Choosing the next token from logits: greedy, temperature, top-k and top-p (nucleus) sampling.
 *
 * @module
 */
import type { Rng } from "../util/random.ts";

/** Options of {@linkcode sampleToken}. */
export interface SamplingOptions {
  /** Softmax temperature; 0 means greedy (argmax). */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or absent: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 or absent: all). */
  topP?: number;
}

/**
 * The candidate set and renormalised probabilities that top-k then top-p keep, in descending probability
 * (ties broken by lower id). Exposed so that tests can check the exact sets.
 *
 * @example
 * ```ts
 * import { candidateSet } from "@nanolm/nanolm/sample";
 * // Top-k: the two largest logits, 2 and 1, renormalised: e / (e + 1) and 1 / (e + 1).
 * const topK = candidateSet(new Float32Array([0, 2, 1]), { temperature: 1, topK: 2 });
 * if (topK.ids.join() !== "1,2") throw new Error(`ids ${topK.ids}`);
 * if (Math.abs(topK.probs[0] - Math.E / (Math.E + 1)) > 1e-12) throw new Error(`probs ${topK.probs}`);
 * // Top-p: 0.5 + 0.3 reaches 0.75, so the two most likely stay, as 0.625 and 0.375.
 * const topP = candidateSet([0.5, 0.3, 0.2].map(Math.log), { topP: 0.75 });
 * if (topP.ids.join() !== "0,1" || Math.abs(topP.probs[0] - 0.625) > 1e-12) throw new Error(`${topP.probs}`);
 * ```
 */
export function candidateSet(logits: ArrayLike<number>, opts: SamplingOptions): { ids: number[]; probs: number[] } {
  const temperature = opts.temperature ?? 1;
  if (!(temperature > 0)) throw new RangeError(`candidateSet needs temperature > 0, got ${temperature}`);
  const n = logits.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  const k = opts.topK && opts.topK > 0 ? Math.min(opts.topK, n) : n;
  const top = order.slice(0, k);
  const maxLogit = logits[top[0]];
  let weights = top.map((i) => Math.exp((logits[i] - maxLogit) / temperature));
  let total = weights.reduce((a, b) => a + b, 0);
  const p = opts.topP ?? 1;
  if (!(p > 0 && p <= 1)) throw new RangeError(`topP must be in (0, 1], got ${p}`);
  let keep = top.length;
  if (p < 1) {
    let cumulative = 0;
    for (let j = 0; j < top.length; j++) {
      cumulative += weights[j] / total;
      if (cumulative >= p) {
        keep = j + 1;
        break;
      }
    }
  }
  const ids = top.slice(0, keep);
  weights = weights.slice(0, keep);
  total = weights.reduce((a, b) => a + b, 0);
  return { ids, probs: weights.map((w) => w / total) };
}

/**
 * Picks a token id from one row of logits.
 *
 * @example
 * ```ts
 * import { Rng } from "@nanolm/nanolm";
 * import { sampleToken } from "@nanolm/nanolm/sample";
 * const rng = new Rng(0);
 * if (sampleToken(new Float32Array([0.1, 3, 0.2]), rng, { temperature: 0 }) !== 1) throw new Error("greedy: argmax");
 * // At temperature 1 the ids come as often as the softmax of the logits says.
 * const probs = [0.7, 0.2, 0.1], logits = probs.map(Math.log), counts = [0, 0, 0];
 * for (let i = 0; i < 10_000; i++) counts[sampleToken(logits, rng)]++;
 * if (counts.some((c, i) => Math.abs(c / 10_000 - probs[i]) > 0.02)) throw new Error(`counts ${counts}`);
 * ```
 */
export function sampleToken(logits: ArrayLike<number>, rng: Rng, opts: SamplingOptions = {}): number {
  if (logits.length === 0) throw new Error("sampleToken: empty logits");
  if ((opts.temperature ?? 1) === 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  const { ids, probs } = candidateSet(logits, opts);
  let u = rng.uniform();
  for (let j = 0; j < ids.length; j++) {
    u -= probs[j];
    if (u < 0) return ids[j];
  }
  return ids[ids.length - 1];
}

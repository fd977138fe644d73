/**
 * Bits per byte: a validation loss that does not depend on the tokenizer. A loss in nats per token depends on how
 * much text a token holds (a larger vocabulary has longer tokens, and a higher loss per token for the same model of
 * the text); divided by the bytes the target tokens stand for, it becomes the cost of the text itself, so runs with
 * different tokenizers or vocabulary sizes compare fairly. As nanochat's `evaluate_bpb`: the summed loss of the
 * targets over ln 2 times their summed byte lengths, special tokens (which stand for no text) left out of both.
 *
 * @module
 */
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { embedding, logSoftmax, reshape, slice, type Tensor, tensor } from "../tensor/mod.ts";

/**
 * The UTF-8 byte length of each token id below `vocabSize`, 0 for special tokens (they stand for no text) and for
 * ids the tokenizer does not have.
 *
 * @example
 * ```ts
 * import { Tokenizer } from "@nanolm/nanolm";
 * import { tokenByteLengths } from "@nanolm/nanolm/train";
 * const vocab = new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])]));
 * vocab.set(256, new Uint8Array([104, 105]));
 * const tokenizer = new Tokenizer(vocab, [[new Uint8Array([104]), new Uint8Array([105])]], ["<|endoftext|>"]);
 * const lengths = tokenByteLengths(tokenizer, tokenizer.vocabSize + 2);
 * // "h" is one byte, "hi" two; the special token and the ids past the tokenizer's stand for no text.
 * if ([104, 256, 257, 258].map((id) => lengths[id]).join() !== "1,2,0,0") throw new Error(`${lengths.slice(256)}`);
 * ```
 */
export function tokenByteLengths(tokenizer: Tokenizer, vocabSize: number): Int32Array {
  const lengths = new Int32Array(vocabSize);
  for (let id = 0; id < Math.min(vocabSize, tokenizer.vocabSize); id++) {
    try {
      lengths[id] = tokenizer.tokenBytes(id).length;
    } catch {
      lengths[id] = 0; // an id the tokenizer leaves unused
    }
  }
  for (const id of tokenizer.specialTokens.values()) if (id < vocabSize) lengths[id] = 0;
  return lengths;
}

/**
 * Sums of a validation pass for bits per byte: the loss in nats of the targets that stand for text, and their bytes.
 *
 * @example
 * ```ts
 * import { BitsPerByte } from "@nanolm/nanolm/train";
 * const bpb = new BitsPerByte(new Int32Array([1, 3, 0]));
 * if (bpb.value() !== undefined) throw new Error("nothing added: no value");
 * bpb.add(new Int32Array([0, 1, 2]), [-Math.LN2, -2 * Math.LN2, -5]); // log-probs of the targets
 * // (1 + 2) bits over 1 + 3 bytes; the special token 2 counts for nothing.
 * if (Math.abs(bpb.value()! - 0.75) > 1e-12) throw new Error(`${bpb.value()} bits per byte, not 0.75`);
 * ```
 */
export class BitsPerByte {
  readonly #lengths: Int32Array;
  #nats = 0;
  #bytes = 0;

  /** Starts empty, with the byte length of every id (see {@linkcode tokenByteLengths}). */
  constructor(lengths: Int32Array) {
    this.#lengths = lengths;
  }

  /** Adds targets and the model's log-probabilities (natural log) of them, position by position. */
  add(targets: Int32Array, logProbs: ArrayLike<number>): void {
    if (targets.length !== logProbs.length) {
      throw new RangeError(`BitsPerByte.add: ${targets.length} targets but ${logProbs.length} log-probabilities`);
    }
    for (let i = 0; i < targets.length; i++) {
      const bytes = this.#lengths[targets[i]] ?? 0;
      if (bytes === 0) continue;
      this.#nats -= logProbs[i];
      this.#bytes += bytes;
    }
  }

  /** Bits per byte of what was added; undefined when no target stood for any text. */
  value(): number | undefined {
    return this.#bytes > 0 ? this.#nats / (Math.LN2 * this.#bytes) : undefined;
  }
}

/**
 * The model's log-probability of each target, one value per position, as GPU tensors (read them back and give them
 * to {@linkcode BitsPerByte.add}): log-softmax, then each row's target entry picked by an embedding lookup into the
 * flattened rows, in parts of at most `maxElements` log-probabilities so that a flat index stays far below 2^31.
 * Call it inside `noGrad` and `tidy`, and `keep` the parts.
 *
 * @example
 * ```ts
 * import { initGpu, noGrad, readAll, tensor } from "@nanolm/nanolm";
 * import { targetLogProbs } from "@nanolm/nanolm/train";
 * await initGpu();
 * const logits = tensor([[0, 0], [Math.log(3), 0]]); // rows: (1/2, 1/2) and (3/4, 1/4)
 * const parts = noGrad(() => targetLogProbs(logits, new Int32Array([1, 0])));
 * const [logp] = await readAll(parts);
 * const probs = Array.from(logp, Math.exp);
 * if (Math.abs(probs[0] - 0.5) > 1e-6 || Math.abs(probs[1] - 0.75) > 1e-6) throw new Error(`probabilities ${probs}`);
 * // In parts of at most 2 log-probabilities: a row each here, the same values.
 * const split = await readAll(noGrad(() => targetLogProbs(logits, new Int32Array([1, 0]), { maxElements: 2 })));
 * if (split.length !== 2 || split[0][0] !== logp[0] || split[1][0] !== logp[1]) throw new Error("parts differ");
 * ```
 */
export function targetLogProbs(logits: Tensor, targets: Int32Array, options: { maxElements?: number } = {}): Tensor[] {
  const vocab = logits.shape[logits.ndim - 1], rows = targets.length;
  if (logits.size !== rows * vocab) {
    throw new RangeError(`targetLogProbs: ${rows} targets for logits ${logits.describe()}`);
  }
  const logp = reshape(logSoftmax(logits), [rows, vocab]);
  const step = Math.max(1, Math.floor((options.maxElements ?? 1 << 26) / vocab));
  const parts: Tensor[] = [];
  for (let start = 0; start < rows; start += step) {
    const end = Math.min(rows, start + step), n = end - start;
    const part = n === rows ? logp : slice(logp, { axis: 0, start, end });
    const index = Int32Array.from({ length: n }, (_, i) => i * vocab + targets[start + i]);
    const picked = embedding(reshape(part, [n * vocab, 1]), tensor(index, { shape: [n], dtype: "i32" }));
    parts.push(reshape(picked, [n]));
  }
  return parts;
}

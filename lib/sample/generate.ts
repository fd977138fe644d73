/**
 * Autoregressive decoding from a {@linkcode TransformerLM}: prompt ids in, new ids out as an async iterator.
 *
 * This decoder re-runs the model over the (cropped) context for each new token and reads the last position's
 * logits back, one GPU round trip per token. It is the reference the cached, GPU-sampled decoder is tested
 * against, and fast enough for the samples a training run prints.
 *
 * @module
 */
import type { TransformerLM } from "../nn/transformer.ts";
import { Rng } from "../util/random.ts";
import { noGrad, reshape, slice, tensor, tidy } from "../tensor/mod.ts";
import { sampleToken, type SamplingOptions } from "./sampling.ts";

/** Options of {@linkcode generate}. */
export interface GenerateOptions extends SamplingOptions {
  /** Tokens to produce at most. */
  maxNewTokens?: number;
  /** Stop after producing any of these ids (the stop id is yielded). */
  stopTokens?: number[];
  /** Seed of the sampling generator (ignored when `rng` is given). */
  seed?: number;
  /** A generator to draw from. */
  rng?: Rng;
  /** Only ids below this are sampled (default: the model's vocabSize), e.g. the tokenizer's vocabSize. */
  vocabLimit?: number;
}

/**
 * Yields new token ids one at a time. Contexts longer than the model's context length slide: only the last
 * `contextLength` tokens are fed.
 *
 * @example
 * ```ts
 * import { initGpu, noGrad, tensor } from "@nanolm/nanolm/tensor";
 * import { TransformerLM } from "@nanolm/nanolm/nn";
 * import { generate } from "@nanolm/nanolm/sample";
 * await initGpu();
 * const model = new TransformerLM({ vocabSize: 32, contextLength: 8, dModel: 16, numLayers: 1, numHeads: 2 });
 * const ids: number[] = [];
 * for await (const id of generate(model, [1, 2, 3], { maxNewTokens: 10, topP: 0.9, seed: 1 })) ids.push(id);
 * // Ten new ids, past the context of 8: the context slides.
 * if (ids.length !== 10 || ids.some((id) => !(id >= 0 && id < 32))) throw new Error(`${ids}`);
 * // Greedy, the first new id is the argmax of the model's logits after the prompt.
 * const [first] = await Array.fromAsync(generate(model, [1, 2, 3], { maxNewTokens: 1, temperature: 0 }));
 * const logits = noGrad(() => model.forward(tensor(new Int32Array([1, 2, 3]), { shape: [1, 3], dtype: "i32" })));
 * const last = Array.from((await logits.data()).subarray(2 * 32));
 * if (first !== last.indexOf(Math.max(...last))) throw new Error(`greedy gave ${first}`);
 * logits.dispose();
 * model.dispose();
 * ```
 */
export async function* generate(
  model: TransformerLM,
  prompt: readonly number[],
  opts: GenerateOptions = {},
): AsyncGenerator<number> {
  if (prompt.length === 0) throw new Error("generate: the prompt needs at least one token");
  const { vocabSize, contextLength } = model.config;
  for (const id of prompt) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(`generate: prompt token ${id} is outside the vocabulary [0, ${vocabSize})`);
    }
  }
  const limit = opts.vocabLimit ?? vocabSize;
  if (!Number.isInteger(limit) || limit < 1 || limit > vocabSize) {
    throw new RangeError(`generate: vocabLimit must be an integer in [1, ${vocabSize}], got ${limit}`);
  }
  const rng = opts.rng ?? new Rng(opts.seed ?? 0);
  const stop = new Set(opts.stopTokens ?? []);
  const ids = [...prompt];
  const maxNew = opts.maxNewTokens ?? 64;
  for (let n = 0; n < maxNew; n++) {
    const context = ids.slice(-contextLength);
    // Causal attention ignores what follows a position, so the context is padded to a power of two: kernels are
    // generated per shape, and this bounds the distinct shapes (compilations) to log2(contextLength).
    const padded = Math.min(contextLength, 2 ** Math.ceil(Math.log2(context.length)));
    const input = new Int32Array(padded);
    input.set(context);
    const last = tidy(() =>
      noGrad(() => {
        const logits = model.forward(tensor(input, { shape: [1, padded], dtype: "i32" })); // (1, T, V)
        return reshape(slice(logits, { axis: 1, start: context.length - 1, end: context.length }), [vocabSize]); // (V)
      })
    );
    const row = await last.data();
    last.dispose();
    const id = sampleToken(limit < vocabSize ? row.subarray(0, limit) : row, rng, opts);
    ids.push(id);
    yield id;
    if (stop.has(id)) return;
  }
}

/**
 * The decoding tests' fixtures: the reference next token (the argmax of the last row of an unpadded, uncached full
 * forward pass) and a model built to continue a known chain of tokens.
 *
 * @module
 */
import { noGrad, readAll, slice, tensor, tidy } from "../lib/tensor/mod.ts";
import { TransformerLM } from "../lib/nn/transformer.ts";

/**
 * Argmax of the last row of a full forward pass over `ids` (ties go to the lower id), over the ids below `limit`
 * (all of them when absent).
 */
export async function argmaxNext(model: TransformerLM, ids: readonly number[], limit?: number): Promise<number> {
  const row = tidy(() =>
    noGrad(() =>
      slice(model.forward(tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: "i32" })), {
        axis: 1,
        start: ids.length - 1,
      })
    )
  );
  const [values] = await readAll([row]);
  row.dispose();
  let best = 0;
  for (let i = 1; i < (limit ?? values.length); i++) if (values[i] > values[best]) best = i;
  return best;
}

/** The shape of a {@linkcode chainModel} and the id it may prefer over the chain. */
export interface ChainModelOptions {
  vocabSize: number;
  dModel: number;
  /** Seed of the weights the construction leaves alone. */
  seed: number;
  /** An id the head scores twice the chain's next token after every chain token; it embeds as the first one. */
  extra?: number;
}

/**
 * A model that deterministically continues a chain of token ids: every block's output projections are zero (the
 * residual stream stays the current token's embedding), chain token j embeds as the unit vector e_j, and the LM
 * head maps e_j to the next chain token. So greedy decoding after the chain's first token spells out the rest (or,
 * with `extra`, repeats that id).
 */
export async function chainModel(chain: readonly number[], opts: ChainModelOptions): Promise<TransformerLM> {
  const D = opts.dModel;
  const m = new TransformerLM(
    { vocabSize: opts.vocabSize, contextLength: 32, dModel: D, numLayers: 1, numHeads: 2, dFf: 32 },
    { seed: opts.seed },
  );
  const state = m.stateDict();
  const names = [...state.keys()];
  const host = await readAll([...state.values()]);
  const weights = new Map(names.map((n, i) => [n, { shape: state.get(n)!.shape, data: host[i] as Float32Array }]));
  for (const n of names) {
    if (/output_proj|w2|token_embeddings|lm_head/.test(n)) weights.get(n)!.data.fill(0);
  }
  const emb = weights.get("token_embeddings.weight")!.data, head = weights.get("lm_head.weight")!.data;
  chain.forEach((id, j) => {
    emb[id * D + j] = 1;
    head[chain[Math.min(j + 1, chain.length - 1)] * D + j] = 1;
    if (opts.extra !== undefined) head[opts.extra * D + j] = 2;
  });
  if (opts.extra !== undefined) emb[opts.extra * D] = 1;
  m.loadStateDict(weights);
  return m;
}

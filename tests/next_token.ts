/**
 * The decoding tests' reference: the argmax of the last row of an unpadded, uncached full forward pass.
 *
 * @module
 */
import { noGrad, readAll, slice, tensor, tidy } from "../lib/tensor/mod.ts";
import type { TransformerLM } from "../lib/nn/transformer.ts";

/** Argmax of the last row of a full forward pass over `ids` (ties go to the lower id). */
export async function argmaxNext(model: TransformerLM, ids: readonly number[]): Promise<number> {
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
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/**
 * Embedding gather and its scatter-add backward.
 *
 * WGSL has no float atomics, so the backward adds with a compare-exchange loop on the float's bits. Collisions
 * only happen between positions holding the same token id, so the loop rarely retries.
 *
 * @module
 */
import { bindings, ELEMENT_BYTES, flatGrid, type KernelSource, memoized, read, readWrite } from "./common.ts";

const WG = 256;

/** An embedding lookup of `tokens` ids into a (vocab, dim) table. */
export interface EmbeddingSpec {
  tokens: number;
  dim: number;
  vocab: number;
}

/**
 * out[n, d] = table[ids[n], d]; ids outside [0, vocab) give zeros. Bindings: table, ids (read), out (write). Cost:
 * no FLOPs; the ids, at most min(tokens, vocab) distinct rows of the table, and the output.
 */
function generateEmbeddingForwardKernel({ tokens, dim, vocab }: EmbeddingSpec): KernelSource {
  const n = tokens * dim;
  const grid = flatGrid(Math.ceil(n / WG));
  return {
    name: "embedding_forward",
    workgroups: grid.workgroups,
    cost: { flops: 0, bytes: (tokens + Math.min(tokens, vocab) * dim + n) * ELEMENT_BYTES },
    source: `${bindings([read("table", "f32"), read("ids", "i32"), readWrite("out", "f32")])}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ${grid.index} * ${WG}u + lid.x;
  if (i >= ${n}u) { return; }
  let id = ids[i / ${dim}u];
  let ok = id >= 0 && id < ${vocab};
  out[i] = select(0.0, table[u32(select(0, id, ok)) * ${dim}u + i % ${dim}u], ok);
}
`,
  };
}

/**
 * grad[ids[n], d] += dy[n, d] (grad must be zeroed first). Bindings: dy, ids (read), grad (atomic u32 view). Cost:
 * an add per element of dy; dy and the ids read, at most min(tokens, vocab) rows of grad read and written.
 */
function generateEmbeddingBackwardKernel({ tokens, dim, vocab }: EmbeddingSpec): KernelSource {
  const n = tokens * dim;
  const grid = flatGrid(Math.ceil(n / WG));
  return {
    name: "embedding_backward",
    workgroups: grid.workgroups,
    cost: { flops: n, bytes: (n + tokens + 2 * Math.min(tokens, vocab) * dim) * ELEMENT_BYTES },
    source: `${bindings([read("dy", "f32"), read("ids", "i32"), readWrite("grad", "atomic<u32>")])}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = ${grid.index} * ${WG}u + lid.x;
  if (i >= ${n}u) { return; }
  let id = ids[i / ${dim}u];
  if (id < 0 || id >= ${vocab}) { return; }
  let g = dy[i];
  let p = u32(id) * ${dim}u + i % ${dim}u;
  var old = atomicLoad(&grad[p]);
  loop {
    let r = atomicCompareExchangeWeak(&grad[p], old, bitcast<u32>(bitcast<f32>(old) + g));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}
`,
  };
}

/**
 * {@linkcode generateEmbeddingForwardKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { embeddingForwardKernel } from "./embedding.ts";
 * const k = embeddingForwardKernel({ tokens: 256, dim: 64, vocab: 1000 }); // a thread an element
 * if (k.name !== "embedding_forward" || k.workgroups[0] !== 64) throw new Error(`${k.workgroups}`);
 * ```
 */
export const embeddingForwardKernel: (spec: EmbeddingSpec) => KernelSource = memoized(generateEmbeddingForwardKernel);

/**
 * {@linkcode generateEmbeddingBackwardKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { embeddingBackwardKernel } from "./embedding.ts";
 * const k = embeddingBackwardKernel({ tokens: 256, dim: 64, vocab: 1000 });
 * if (k.name !== "embedding_backward" || k.workgroups[0] !== 64) throw new Error(`${k.workgroups}`);
 * ```
 */
export const embeddingBackwardKernel: (spec: EmbeddingSpec) => KernelSource = memoized(
  generateEmbeddingBackwardKernel,
);

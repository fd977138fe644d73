/**
 * Embedding gather and its scatter-add backward.
 *
 * WGSL has no float atomics, so the backward adds with a compare-exchange loop on the float's bits. Collisions
 * only happen between positions holding the same token id, so the loop rarely retries.
 *
 * @module
 */
import { flatGrid, type KernelSource, memoized } from "./common.ts";

const WG = 256;

/** out[n, d] = table[ids[n], d]; ids outside [0, vocab) give zeros. Bindings: table, ids, out. */
function generateEmbeddingForwardKernel(tokens: number, dim: number, vocab: number): KernelSource {
  const n = tokens * dim;
  const grid = flatGrid(Math.ceil(n / WG));
  return {
    name: "embedding_forward",
    workgroups: grid.workgroups,
    source: `@group(0) @binding(0) var<storage, read> table: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
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

/** grad[ids[n], d] += dy[n, d] (grad must be zeroed first). Bindings: dy, ids, grad (atomic u32 view). */
function generateEmbeddingBackwardKernel(tokens: number, dim: number, vocab: number): KernelSource {
  const n = tokens * dim;
  const grid = flatGrid(Math.ceil(n / WG));
  return {
    name: "embedding_backward",
    workgroups: grid.workgroups,
    source: `@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> grad: array<atomic<u32>>;
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
 * const k = embeddingForwardKernel(256, 64, 1000); // 256 tokens, dim 64, vocab 1000
 * console.log(k.name, k.workgroups); // embedding_forward [ 64, 1, 1 ]
 * ```
 */
export const embeddingForwardKernel: (tokens: number, dim: number, vocab: number) => KernelSource = memoized(
  generateEmbeddingForwardKernel,
);

/**
 * {@linkcode generateEmbeddingBackwardKernel}, memoized by its arguments (see `memoized` in common.ts).
 *
 * @example
 * ```ts
 * import { embeddingBackwardKernel } from "./embedding.ts";
 * const k = embeddingBackwardKernel(256, 64, 1000);
 * console.log(k.name, k.workgroups); // embedding_backward [ 64, 1, 1 ]
 * ```
 */
export const embeddingBackwardKernel: (tokens: number, dim: number, vocab: number) => KernelSource = memoized(
  generateEmbeddingBackwardKernel,
);

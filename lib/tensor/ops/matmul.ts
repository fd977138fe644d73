/**
 * Matrix multiplication, batched, with either operand transposed in storage, on the generated tiled kernel.
 *
 * @module
 */
import { chooseTile, matmulKernel, type MatmulTile } from "../../../kernels/matmul.ts";
import { reduceKernel } from "../../../kernels/reduce.ts";
import { gpu } from "../../gpu/backend.ts";
import { record } from "../autograd.ts";
import { fmt, prod, sameShape } from "../shape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { reshape } from "./movement.ts";

/** Options of {@linkcode matmul}. */
export interface MatmulOptions {
  /** Treat `a`'s last two dims as transposed: `a` is (..., K, M). */
  transA?: boolean;
  /** Treat `b`'s last two dims as transposed: `b` is (..., N, K) (e.g. PyTorch linear weights). */
  transB?: boolean;
  /** Force a tile configuration (tests and benchmarks). */
  tile?: MatmulTile;
  /** Force a split-K factor (tests and benchmarks); chosen automatically when absent. */
  splitK?: number;
  /** Workgroup-memory layout of the kernel (benchmarks). */
  shared?: "vec4" | "f32";
}

/** Enough workgroups to fill a large GPU (132 SMs on an H100, a few workgroups each). */
const TARGET_WORKGROUPS = 264;

function chooseSplitK(spec: { batch: number; m: number; n: number; k: number }, tile: MatmulTile): number {
  const groups = spec.batch * Math.ceil(spec.m / tile.bm) * Math.ceil(spec.n / tile.bn);
  if (spec.batch !== 1 || groups >= TARGET_WORKGROUPS / 2 || spec.k < 1024) return 1;
  return Math.max(1, Math.min(Math.floor(spec.k / 256), Math.ceil(TARGET_WORKGROUPS / groups), 32));
}

/**
 * `a @ b` over the last two dims. Leading (batch) dims must match, or one operand may be 2-D and is shared
 * across the batch.
 *
 * @example
 * ```ts ignore
 * const y = matmul(x, w, { transB: true }); // x (B, T, in) @ w (out, in)^T -> (B, T, out)
 * ```
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const shapes = `${a.describe()} and ${b.describe()}${transA ? " (a transposed)" : ""}${
    transB ? " (b transposed)" : ""
  }`;
  if (a.ndim < 2 || b.ndim < 2) throw new Error(`matmul: needs tensors of at least 2 dims, got ${shapes}`);
  if (a.dtype !== "f32" || b.dtype !== "f32") throw new TypeError(`matmul: needs f32 tensors, got ${shapes}`);
  const [ar, ac] = a.shape.slice(-2), [br, bc] = b.shape.slice(-2);
  const M = transA ? ac : ar, K = transA ? ar : ac;
  const Kb = transB ? bc : br, N = transB ? br : bc;
  if (K !== Kb) throw new Error(`matmul: inner dims differ (${K} vs ${Kb}) for ${shapes}`);
  const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
  if (batchA.length && batchB.length && !sameShape(batchA, batchB)) {
    throw new Error(`matmul: batch dims ${fmt(batchA)} and ${fmt(batchB)} differ for ${shapes}`);
  }
  const batchShape = batchA.length ? batchA : batchB;
  let batch = prod(batchShape), m = M;
  let strideA = batchA.length ? M * K : 0;
  const strideB = batchB.length ? K * N : 0;
  // A batch of row-major A against a shared B is one big matmul: fold the batch into M.
  if (!transA && batchA.length && !batchB.length) {
    m = batch * M;
    batch = 1;
    strideA = 0;
  }
  const out = empty([...batchShape, M, N]);
  if (out.size > 0) {
    const spec = { batch, m, n: N, k: K, transA, transB, batchStrideA: strideA, batchStrideB: strideB };
    const tile = opts.tile ?? chooseTile(spec);
    const splits = opts.splitK ?? chooseSplitK(spec, tile);
    const backend = gpu();
    if (splits > 1) {
      // Few output tiles but a long K (weight gradients): split K across workgroups, then sum the layers.
      const k = matmulKernel({ ...spec, tile, splitK: splits, shared: opts.shared });
      const layers = k.workgroups[2];
      const partial = gpu().alloc(layers * m * N * 4);
      backend.dispatch(backend.prepare(k.name, k.source), {
        buffers: [a.buffer, b.buffer, partial],
        workgroups: k.workgroups,
      });
      const r = reduceKernel("sum", { outer: 1, reduced: layers, inner: m * N });
      backend.dispatch(backend.prepare(r.name, r.source), { buffers: [partial, out.buffer], workgroups: r.workgroups });
      backend.free(partial);
    } else {
      const k = matmulKernel({ ...spec, tile, shared: opts.shared });
      backend.dispatch(backend.prepare(k.name, k.source), {
        buffers: [a.buffer, b.buffer, out.buffer],
        workgroups: k.workgroups,
      });
    }
  }
  return record(out, "matmul", [a, b], (dc) => {
    // C = op(a) op(b): dA = dC op(b)^T, dB = op(a)^T dC, written back in each operand's storage layout.
    const ga = a.requiresGrad
      ? (transA ? matmul(b, dc, { transA: transB, transB: true }) : matmul(dc, b, { transB: !transB }))
      : null;
    const gb = b.requiresGrad
      ? (transB
        ? matmul(dc, a, { transA: true, transB: transA })
        : b.ndim === 2
        ? sharedWeightGrad(a, dc, transA)
        : matmul(a, dc, { transA: !transA }))
      : null;
    return [ga, gb];
  });
}

/**
 * `op(a)^T @ dc` for the gradient of a shared (2-D) B: the batch dims of `a` and `dc` are folded into K so that
 * the result is 2-D, with no per-batch copies to sum afterwards.
 */
function sharedWeightGrad(a: Tensor, dc: Tensor, transA: boolean): Tensor {
  if (!transA && a.ndim > 2) {
    const K = a.shape[a.ndim - 1], N = dc.shape[dc.ndim - 1];
    return matmul(reshape(a, [-1, K]), reshape(dc, [-1, N]), { transA: true });
  }
  return matmul(a, dc, { transA: !transA });
}

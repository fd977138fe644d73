/**
 * The RoPE cos/sin tables on the GPU, one per (theta, head dim, size), shared by the RoPE op and the matmul
 * epilogue that applies RoPE as it stores a projection.
 *
 * @module
 */
import { ropeTable } from "../../../kernels/rope.ts";
import { tensor } from "../create.ts";
import { keep, type Tensor } from "../tensor.ts";

const ropeTables = new Map<string, { table: Tensor; size: number }>();

/**
 * The table of positions 0..`maxPosition` (at least; rows grow in powers of two so that a longer sequence rarely
 * forces a new upload) for heads of `dim` values, kept for the life of the process, and its row count.
 *
 * @example
 * ```ts
 * import { initGpu } from "@nanolm/nanolm/tensor";
 * import { cachedRopeTable } from "./rope_table.ts"; // shared by the ops' files: no published name reaches it
 * await initGpu();
 * const { table, size } = cachedRopeTable(10000, 8, 100);
 * if (size !== 128 || table.shape.join() !== "128,8") throw new Error(`${size} ${table.describe()}`);
 * ```
 */
export function cachedRopeTable(theta: number, dim: number, maxPosition: number): { table: Tensor; size: number } {
  const size = 2 ** Math.ceil(Math.log2(Math.max(maxPosition + 1, 64)));
  const key = `${theta}/${dim}/${size}`;
  let t = ropeTables.get(key);
  if (!t) {
    t = { table: keep(tensor(ropeTable(theta, dim, size), { shape: [size, dim] })), size };
    ropeTables.set(key, t);
  }
  return t;
}

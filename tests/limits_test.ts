/**
 * Large tensors never give silently wrong results: ops past the GPU's limits (the storage binding size, lavapipe's
 * loop limit, 65,535 workgroups a grid dimension) either work, checked against float64, or throw an error that
 * names the op, the shape and the limit.
 */
import { assertThrows } from "./assert.ts";
import { expectClose, upload } from "./harness.ts";
import * as ref from "./reference.ts";
import { randNd, rngFor } from "./reference.ts";
import { add, type BackendLimits, gpu, matmul, softmax, sum, tensor, tidy, transpose } from "../lib/tensor/mod.ts";

/** Fails unless `fn` throws an error whose message contains every one of `parts`. */
function assertErrorNames(fn: () => unknown, ...parts: string[]): Error {
  const err = assertThrows(fn);
  for (const p of parts) {
    if (!err.message.includes(p)) throw new Error(`error ${JSON.stringify(err.message)} does not mention "${p}"`);
  }
  return err;
}

/** Runs `fn` with the backend enforcing `limits` (lower ones reach the paths of huge tensors at small sizes). */
async function withLimits<T>(limits: Partial<BackendLimits>, fn: () => Promise<T>): Promise<T> {
  const before = gpu().setLimits(limits);
  try {
    return await fn();
  } finally {
    gpu().setLimits(before);
  }
}

// ---- The storage binding limit --------------------------------------------------------------------------------------

Deno.test("a tensor just under the binding limit binds its own bytes, not its pool size class", async () => {
  // 1020 floats are 4080 bytes, in the 4096-byte size class: over a 4080-byte limit only if the class is bound.
  const x = randNd(rngFor("limits-size-class"), [1020]);
  await withLimits({ maxStorageBufferBindingSize: 4080 }, () =>
    tidy(async () => {
      const t = upload(x);
      await expectClose([add(t, 1), sum(t)], [ref.map(x, (v) => v + 1), ref.reduce(x, "sum")], { atol: 1e-5 });
    }));
});

Deno.test("ops that cannot split a tensor over the binding limit say so: op, shape, limit", async () => {
  await withLimits({ maxStorageBufferBindingSize: 4096 }, () =>
    tidy(() => {
      // Uploads: no kernel, so nothing to refuse yet.
      const wide = tensor(new Float32Array(6000), { shape: [2, 3000] });
      const square = tensor(new Float32Array(1600), { shape: [40, 40] });
      assertErrorNames(() => softmax(wide), "softmax", "(2, 3000)", "4096 bytes", "maxStorageBufferBindingSize");
      assertErrorNames(() => matmul(square, square), "matmul", "(40, 40)", "4096 bytes");
      assertErrorNames(() => transpose(wide), "(2, 3000)", "4096 bytes");
      assertErrorNames(() => sum(wide, { axis: 1 }), "sum", "(2, 3000)", "4096 bytes");
      return Promise.resolve();
    }));
});

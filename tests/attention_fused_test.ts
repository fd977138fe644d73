import { assert, assertClose } from "./assert.ts";
import { expectClose } from "./harness.ts";
import * as ref from "./reference.ts";
import { type Nd, randNd, rngFor } from "./reference.ts";
import { attention, type AttentionVariant, gpu, mul, sum, tensor } from "../lib/tensor/mod.ts";
import { initGpu, param, randn, readAll, type Tensor } from "../mod.ts";
import {
  ATTENTION_KERNELS,
  attentionBackwardDeltaKernel,
  attentionKernelBytes,
  DEFAULT_ATTENTION_VARIANT,
} from "../kernels/attention.ts";

await initGpu();

type Case = [bh: number, tq: number, tk: number, d: number, causal: boolean];

// The fused kernels against the composite path (matmul + fused masked softmax, itself checked against float64
// references in tensor_ops_test.ts), forward and all three gradients, on shapes that straddle the 64-query and
// 32-key blocks, with fewer queries than keys (decoding), non-causal attention and every supported head-dim class.
const cases: Case[] = [
  [3, 37, 37, 32, true],
  [2, 70, 70, 16, true],
  [2, 5, 40, 8, true],
  [1, 33, 65, 64, false],
  [2, 128, 128, 32, true],
  [1, 1, 9, 4, true],
];

/** Runs `sum(attention(q, k, v) * r)` forward and backward fused (under `variant`) and composite; compares them. */
async function checkFused([bh, tq, tk, d, causal]: Case, variant: Partial<AttentionVariant> = {}): Promise<void> {
  const q = param(randn([bh, tq, d], { seed: 1 })), k = param(randn([bh, tk, d], { seed: 2 }));
  const v = param(randn([bh, tk, d], { seed: 3 })), r = randn([bh, tq, d], { seed: 4 });
  const results: Float32Array[][] = [];
  for (const fused of [true, false]) {
    const out = attention(q, k, v, { causal, fused, variant });
    sum(mul(out, r)).backward();
    results.push(await readAll([out, q.grad!, k.grad!, v.grad!]) as Float32Array[]);
    for (const p of [q, k, v]) {
      p.grad!.dispose();
      p.grad = null;
    }
  }
  ["output", "dq", "dk", "dv"].forEach((name, i) =>
    assertClose(results[0][i], results[1][i], { atol: 2e-5, rtol: 1e-4, msg: `${name} ${JSON.stringify(variant)}` })
  );
  for (const t of [q, k, v, r] as Tensor[]) t.dispose();
}

for (const c of cases) {
  const [bh, tq, tk, d, causal] = c;
  Deno.test(`fused attention equals the composite: bh ${bh}, tq ${tq}, tk ${tk}, d ${d}, causal ${causal}`, async () => {
    await checkFused(c);
  });
}

// The register-tiled ("flash") kernels in each of their shapes. A kernel that needs more workgroup memory than the
// device has runs its row kernel instead (at d = 64 a software adapter's 32 KiB fit only the flash forward).
const flashVariants: Partial<AttentionVariant>[] = [
  { tile: 32, flashThreads: 64 },
  { tile: 16, flashThreads: 64 },
  { tile: 32, flashThreads: 128 },
  { tile: 16, flashThreads: 128 },
];

for (const shape of flashVariants) {
  Deno.test(`flash attention kernels ${JSON.stringify(shape)} equal the composite`, async () => {
    const limit = gpu().device.limits.maxComputeWorkgroupStorageSize;
    let flashed = 0;
    // Besides the cases above: non-causal and causal with more keys than queries, where every kernel fits 32 KiB.
    for (const c of [...cases, [2, 33, 65, 16, false], [1, 40, 75, 16, true]] as Case[]) {
      const variant: Partial<AttentionVariant> = { ...shape };
      for (const kernel of ATTENTION_KERNELS) {
        const fits = attentionKernelBytes(c[3], { ...DEFAULT_ATTENTION_VARIANT, ...shape, [kernel]: "flash" }, kernel);
        if (fits <= limit) variant[kernel] = "flash";
      }
      flashed += ATTENTION_KERNELS.filter((kernel) => variant[kernel] === "flash").length;
      await checkFused(c, variant);
    }
    assert(flashed >= 3 * cases.length, `only ${flashed} kernels fit this device's workgroup memory`);
  });
}

Deno.test("the delta kernel (rowsum(dO * O)) equals float64 on every head-dim class and ragged row counts", async () => {
  // Head dims of 1, 2, 3, 5, 7, 8, 15 and 16 vec4s (the lanes of a row, and idle lanes on the last step), row counts
  // that leave the last workgroup part full. Reads past the rows would meet NaN; writes past them, the sentinel.
  const rng = rngFor("attention-delta");
  const tail = 64, sentinel = 7;
  const outs: Tensor[] = [], expected: Nd[] = [];
  for (const d of [4, 8, 12, 20, 28, 32, 60, 64]) {
    for (const rows of [1, 37, 1000]) {
      const dout = randNd(rng, [rows, d]), o = randNd(rng, [rows, d]);
      const [tdout, to] = [dout, o].map((x) =>
        tensor(Float32Array.from([...x.data, ...new Array(4 * tail).fill(NaN)]))
      );
      const delta = tensor(new Float32Array(rows + tail).fill(sentinel));
      gpu().run(attentionBackwardDeltaKernel({ rows, d }), [tdout.buffer, to.buffer, delta.buffer]);
      outs.push(delta);
      const want = Array.from({ length: rows }, (_, r) => {
        let s = 0;
        for (let i = r * d; i < (r + 1) * d; i++) s += dout.data[i] * o.data[i];
        return s;
      });
      expected.push(ref.nd([rows + tail], [...want, ...new Array(tail).fill(sentinel)]));
    }
  }
  await expectClose(outs, expected, { atol: 1e-5, rtol: 1e-5 });
});

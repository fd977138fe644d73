import { assertClose } from "./assert.ts";
import { attention, mul, sum } from "../lib/tensor/mod.ts";
import { initGpu, param, randn, readAll, type Tensor } from "../mod.ts";

await initGpu();

// The fused kernels against the composite path (matmul + fused masked softmax, itself checked against float64
// references in tensor_ops_test.ts), forward and all three gradients, on shapes that straddle the 64-query and
// 32-key blocks, with fewer queries than keys (decoding), non-causal attention and every supported head-dim class.
const cases: [number, number, number, number, boolean][] = [
  [3, 37, 37, 32, true],
  [2, 70, 70, 16, true],
  [2, 5, 40, 8, true],
  [1, 33, 65, 64, false],
  [2, 128, 128, 32, true],
  [1, 1, 9, 4, true],
];

for (const [bh, tq, tk, d, causal] of cases) {
  Deno.test(`fused attention equals the composite: bh ${bh}, tq ${tq}, tk ${tk}, d ${d}, causal ${causal}`, async () => {
    const q = param(randn([bh, tq, d], { seed: 1 })), k = param(randn([bh, tk, d], { seed: 2 }));
    const v = param(randn([bh, tk, d], { seed: 3 })), r = randn([bh, tq, d], { seed: 4 });
    const results: Float32Array[][] = [];
    for (const fused of [true, false]) {
      const out = attention(q, k, v, { causal, fused });
      sum(mul(out, r)).backward();
      results.push(await readAll([out, q.grad!, k.grad!, v.grad!]) as Float32Array[]);
      for (const p of [q, k, v]) {
        p.grad!.dispose();
        p.grad = null;
      }
    }
    ["output", "dq", "dk", "dv"].forEach((name, i) =>
      assertClose(results[0][i], results[1][i], { atol: 2e-5, rtol: 1e-4, msg: name })
    );
    for (const t of [q, k, v, r] as Tensor[]) t.dispose();
  });
}

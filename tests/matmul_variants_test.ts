/**
 * Every code-generation variant of the matmul kernel (pipelining, padding, transposing loads, swizzled launch
 * order, tile layout) against the float64 reference on shapes that are not multiples of any tile.
 */
import { expectClose, upload } from "./harness.ts";
import * as ref from "./reference.ts";
import { type Nd, randNd, rngFor } from "./reference.ts";
import { gpu, initGpu, matmul, type Tensor, tensor } from "../lib/tensor/mod.ts";
import { withMatmulTuning } from "../lib/tensor/ops/matmul.ts";
import { largeTileDeepK, matmulKernel, type MatmulTile, matmulTiles, type MatmulVariant } from "../kernels/matmul.ts";

await initGpu();

const variants: Partial<MatmulVariant>[] = [
  { pipeline: "none" },
  { pipeline: "prefetch" },
  { pipeline: "double" },
  { pad: 4, layout: "flat" },
  { transpose: "block" },
  { swizzle: 2 },
  { swizzle: 3, layout: "flat", pipeline: "double" },
  { layout: "flat", pipeline: "none", transpose: "block", pad: 0 },
  { pipeline: "double2" },
  { pipeline: "double2", layout: "rows", transpose: "block" },
  { pipeline: "prefetch", layout: "rows", pad: 4 },
];

for (const variant of variants) {
  Deno.test(`matmul variant ${JSON.stringify(variant)}: odd shapes, transposes, tiles, batches`, async () => {
    const rng = rngFor(`matmul-variant/${JSON.stringify(variant)}`);
    const outs: Tensor[] = [], expected: Nd[] = [];
    const cases: [number[], number, number, number, boolean, boolean, MatmulTile][] = [
      [[], 33, 65, 17, false, false, matmulTiles.small],
      [[], 36, 20, 40, true, true, matmulTiles.small],
      [[2], 70, 9, 12, false, true, matmulTiles.medium],
      [[3], 100, 40, 12, true, false, matmulTiles.small], // 4 x 2 tiles: enough tile rows to swizzle
    ];
    for (const [batch, m, n, k, transA, transB, tile] of cases) {
      const a = randNd(rng, [...batch, ...(transA ? [k, m] : [m, k])]);
      const b = randNd(rng, [...batch, ...(transB ? [n, k] : [k, n])]);
      outs.push(withMatmulTuning({ tile, variant }, () => matmul(upload(a), upload(b), { transA, transB })));
      expected.push(ref.matmul(a, b, { transA, transB }));
    }
    // Split-K with the variant.
    const a = randNd(rng, [97, 300]), b = randNd(rng, [300, 10]);
    outs.push(withMatmulTuning({ tile: matmulTiles.small, splitK: 3, variant }, () => matmul(upload(a), upload(b))));
    expected.push(ref.matmul(a, b));
    await expectClose(outs, expected, { atol: 6e-4, rtol: 1e-5 });
  });
}

Deno.test("matmul large tiles (BK 16 and 32): odd shapes, transposes, with the default and other variants", async () => {
  const rng = rngFor("matmul-large-tiles");
  const outs: Tensor[] = [], expected: Nd[] = [];
  const cases: [number, number, number, boolean, boolean, MatmulTile, Partial<MatmulVariant> | undefined][] = [
    // Large tiles compile slowly on software adapters: few cases, each crossing tile boundaries in M, N and K.
    [129, 127, 31, false, false, largeTileDeepK, undefined],
    [130, 36, 70, true, true, largeTileDeepK, { layout: "flat", pad: 4, transpose: "block", pipeline: "double" }],
    [129, 40, 36, false, true, matmulTiles.large, { transpose: "block", pipeline: "prefetch" }],
  ];
  for (const [m, n, k, transA, transB, tile, variant] of cases) {
    const a = randNd(rng, transA ? [k, m] : [m, k]), b = randNd(rng, transB ? [n, k] : [k, n]);
    outs.push(withMatmulTuning({ tile, variant }, () => matmul(upload(a), upload(b), { transA, transB })));
    expected.push(ref.matmul(a, b, { transA, transB }));
  }
  await expectClose(outs, expected, { atol: 2e-4, rtol: 1e-5 });
});

Deno.test('matmul "dot" compute (x @ W^T with K-contiguous tiles): odd shapes, tiles, pipelines, split-K', async () => {
  const rng = rngFor("matmul-dot");
  const outs: Tensor[] = [], expected: Nd[] = [];
  const cases: [number, number, number, MatmulTile, Partial<MatmulVariant>, number?][] = [
    [33, 65, 20, matmulTiles.small, { compute: "dot" }],
    [70, 9, 12, matmulTiles.medium, { compute: "dot", pipeline: "prefetch" }],
    [129, 127, 36, matmulTiles.large, { compute: "dot", pipeline: "prefetch" }],
    [130, 40, 68, largeTileDeepK, { compute: "dot", pipeline: "prefetch" }],
    [131, 260, 24, { bm: 128, bn: 256, bk: 16, tm: 8, tn: 16 }, { compute: "dot", pipeline: "none" }],
    [40, 36, 1100, matmulTiles.small, { compute: "dot", pipeline: "double" }, 3],
    [70, 44, 1100, matmulTiles.medium, { compute: "dot", pipeline: "double2" }, 2],
  ];
  for (const [m, n, k, tile, variant, splitK] of cases) {
    const a = randNd(rng, [m, k]), b = randNd(rng, [n, k]);
    outs.push(withMatmulTuning({ tile, variant, splitK }, () => matmul(upload(a), upload(b), { transB: true })));
    expected.push(ref.matmul(a, b, { transB: true }));
  }
  await expectClose(outs, expected, { atol: 6e-4, rtol: 1e-5 });
});

Deno.test("matmul stream-K: the partial wave's tiles shared out along K, odd shapes, transposes, empty ranges", async () => {
  const rng = rngFor("matmul-stream-k");
  const outs: Tensor[] = [], expected: Nd[] = [];
  // [m, n, k, transA, transB, tile, units, addend]: 7 x 3 tiles of 32 x 32 leave tails of 1 (units 5) and 5
  // (units 8); K = 20 gives the one tail tile 2 iterations for 5 workgroups (empty ranges); N = 70 takes scalar
  // stores. An addend goes into the whole tiles in the main kernel and into the tail tiles in the fixup.
  const cases: [number, number, number, boolean, boolean, MatmulTile, number, boolean][] = [
    [200, 70, 300, false, false, matmulTiles.small, 5, false],
    [200, 72, 300, true, true, matmulTiles.small, 8, false],
    [200, 70, 20, false, true, matmulTiles.small, 5, false],
    [193, 96, 77, true, false, matmulTiles.small, 4, false],
    [260, 256, 40, false, false, { bm: 128, bn: 256, bk: 16, tm: 8, tn: 16 }, 2, false],
    [200, 72, 300, false, false, matmulTiles.small, 8, true],
    [200, 70, 20, false, true, matmulTiles.small, 5, true],
  ];
  for (const [m, n, k, transA, transB, tile, streamK, withAddend] of cases) {
    const a = randNd(rng, transA ? [k, m] : [m, k]), b = randNd(rng, transB ? [n, k] : [k, n]);
    const r = randNd(rng, [m, n]), addend = withAddend ? upload(r) : undefined;
    outs.push(withMatmulTuning({ tile, streamK }, () => matmul(upload(a), upload(b), { transA, transB, addend })));
    const product = ref.matmul(a, b, { transA, transB });
    expected.push(withAddend ? ref.zip([product, r], (x, y) => x + y) : product);
  }
  await expectClose(outs, expected, { atol: 6e-4, rtol: 1e-5 });
});

Deno.test("matmul loads past M and N (unchecked) change no stored output, and no store passes C", async () => {
  // Operands whose storage runs on past the matrix with NaN, and a C whose storage runs on with a sentinel: the
  // kernel reads the NaNs for the outputs past M and N (with A untransposed its loads are checked along K only),
  // which it never stores; with A transposed the loads stay checked.
  const rng = rngFor("matmul-unchecked-loads");
  const cases: [number, number, number, boolean, boolean, MatmulTile][] = [
    [130, 70, 40, false, false, matmulTiles.large],
    [130, 72, 40, true, true, matmulTiles.large],
    [131, 260, 24, false, false, { bm: 128, bn: 256, bk: 16, tm: 8, tn: 16 }],
    [70, 36, 33, true, false, largeTileDeepK],
    [33, 65, 20, false, true, matmulTiles.small],
  ];
  const tail = 4096, sentinel = 7;
  const withTail = (nd: Nd, fill: number) =>
    Float32Array.from({ length: nd.data.length + tail }, (_, i) => i < nd.data.length ? nd.data[i] : fill);
  const outs: Tensor[] = [], expected: Nd[] = [];
  for (const [m, n, k, transA, transB, tile] of cases) {
    const a = randNd(rng, transA ? [k, m] : [m, k]), b = randNd(rng, transB ? [n, k] : [k, n]);
    const spec = { batch: 1, m, n, k, transA, transB, batchStrideA: 0, batchStrideB: 0, tile };
    const [ta, tb] = [withTail(a, NaN), withTail(b, NaN)].map((data) => tensor(data));
    const tc = tensor(new Float32Array(m * n + tail).fill(sentinel));
    gpu().run(matmulKernel(spec), [ta.buffer, tb.buffer, tc.buffer]);
    outs.push(tc);
    const product = ref.matmul(a, b, { transA, transB });
    expected.push(ref.nd([m * n + tail], [...product.data, ...new Array(tail).fill(sentinel)]));
  }
  await expectClose(outs, expected, { atol: 2e-4, rtol: 1e-5 });
});

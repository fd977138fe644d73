/**
 * Matmul against the float64 reference: shapes that are not multiples of any tile, every tile configuration, both
 * transposes, batched and shared-operand forms; gradients against finite differences and the analytic reference.
 */
import { assertClose, assertEquals, assertThrows } from "./assert.ts";
import { checkGrad, dispatchedKernels, expectClose, upload, uploadInts } from "./harness.ts";
import * as ref from "./reference.ts";
import { type Nd, nd, numel, randNd, rngFor } from "./reference.ts";
import {
  concat,
  initGpu,
  matmul,
  mul,
  param,
  readAll,
  sum,
  type Tensor,
  tensor,
  tidy,
  withTransposedWeights,
} from "../lib/tensor/mod.ts";
import { rowRange } from "../lib/tensor/tensor.ts";
import { chooseTile, largeTiles, matmulTiles, streamKSchedule } from "../kernels/matmul.ts";
import {
  copiesTransposedB,
  matmulLaunch,
  type MatmulTuning,
  planMatmul,
  setMatmulSettings,
  setMatmulTuning,
  withMatmulTuning,
} from "../lib/tensor/ops/matmul.ts";

await initGpu();

/** Stored shape of an operand: (rows, cols) of op(x), swapped when transposed, with batch dims in front. */
function stored(batch: number[], rows: number, cols: number, trans: boolean): number[] {
  return [...batch, ...(trans ? [cols, rows] : [rows, cols])];
}

/** f32 dot products of K terms in [-1, 1]: the error grows with K. */
const tolFor = (k: number) => ({ atol: 2e-6 * Math.max(k, 1), rtol: 1e-5 });

const oddShapes: [number, number, number][] = [
  [1, 1, 1],
  [7, 13, 5],
  [33, 65, 17],
  [129, 127, 31],
  [3, 4, 8], // K a multiple of 4 but not 16: vector loads with a partial K tile
  [20, 12, 36],
  [64, 64, 64], // exact multiples of the medium/small tiles
];

for (const [tileName, tile] of Object.entries(matmulTiles)) {
  Deno.test(`matmul ${tileName} tile: M x N x K not multiples of the tile`, async () => {
    const rng = rngFor(`matmul/${tileName}`);
    const outs: Tensor[] = [], expected: Nd[] = [];
    // The large tile compiles slowly on software adapters: give it the shapes that cross its boundaries.
    const shapes = tileName === "large" ? [oddShapes[0], oddShapes[1], oddShapes[3], oddShapes[4]] : oddShapes;
    for (const [m, n, k] of shapes) {
      const a = randNd(rng, [m, k]), b = randNd(rng, [k, n]);
      outs.push(withMatmulTuning({ tile }, () => matmul(upload(a), upload(b))));
      expected.push(ref.matmul(a, b));
    }
    await expectClose(outs, expected, { ...tolFor(36), msg: tileName });
  });

  Deno.test(`matmul ${tileName} tile: transposed operands`, async () => {
    const rng = rngFor(`matmul-trans/${tileName}`);
    const shapes: [number, number, number][] = tileName === "large" ? [[33, 65, 17]] : [[7, 13, 5], [36, 8, 20]];
    for (const [m, n, k] of shapes) {
      const outs: Tensor[] = [], expected: Nd[] = [];
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          if (!transA && !transB) continue; // covered above
          const a = randNd(rng, stored([], m, k, transA)), b = randNd(rng, stored([], k, n, transB));
          outs.push(withMatmulTuning({ tile }, () => matmul(upload(a), upload(b), { transA, transB })));
          expected.push(ref.matmul(a, b, { transA, transB }));
        }
      }
      await expectClose(outs, expected, { ...tolFor(k), msg: `${tileName} ${m}x${n}x${k}` });
    }
  });
}

Deno.test("matmul: batched, shared 2-D operands on either side, transposes, several batch dims", async () => {
  const rng = rngFor("matmul-batched");
  const outs: Tensor[] = [], expected: Nd[] = [];
  const [m, n, k] = [5, 7, 9];
  const layouts = [[[3], [3]], [[2, 3], [2, 3]], [[4], []], [[], [4]], [[2, 2], []], [[1], [1]]];
  layouts.forEach(([batchA, batchB], i) => {
    // Each layout untransposed and with one of the three transposed combinations.
    for (const [transA, transB] of [[false, false], [[true, false], [false, true], [true, true]][i % 3]]) {
      const a = randNd(rng, stored(batchA, m, k, transA)), b = randNd(rng, stored(batchB, k, n, transB));
      outs.push(matmul(upload(a), upload(b), { transA, transB }));
      expected.push(ref.matmul(a, b, { transA, transB }));
    }
  });
  await expectClose(outs, expected, tolFor(k));
});

Deno.test("matmul: the default tile choice on small and wide problems", async () => {
  const rng = rngFor("matmul-default");
  const outs: Tensor[] = [], expected: Nd[] = [];
  // 132 batches pick the large tile, 70 x 70 the medium one, 10 x 10 the small one.
  for (const [batch, m, n, k] of [[132, 5, 3, 7], [1, 70, 70, 6], [1, 10, 10, 3], [40, 9, 17, 4]]) {
    const a = randNd(rng, [batch, m, k]), b = randNd(rng, [batch, k, n]);
    outs.push(matmul(upload(a), upload(b)));
    expected.push(ref.matmul(a, b));
  }
  assertEquals(chooseTile({ batch: 132, m: 5, n: 3 }), matmulTiles.large);
  assertEquals(chooseTile({ batch: 1, m: 70, n: 70 }), matmulTiles.medium);
  assertEquals(chooseTile({ batch: 1, m: 10, n: 10 }), matmulTiles.small);
  await expectClose(outs, expected, tolFor(7));
});

Deno.test("matmul: K = 0 gives zeros, M = 0 gives an empty result", async () => {
  const c = matmul(tensor(new Float32Array(0), { shape: [3, 0] }), tensor(new Float32Array(0), { shape: [0, 5] }));
  const e = matmul(tensor(new Float32Array(0), { shape: [0, 4] }), tensor(new Float32Array(20), { shape: [4, 5] }));
  const [cv] = await readAll([c]);
  assertEquals(c.shape, [3, 5]);
  assertEquals(Array.from(cv), new Array(15).fill(0));
  assertEquals(e.shape, [0, 5]);
});

Deno.test("matmul: backward matches finite differences for every layout", async () => {
  const rng = rngFor("matmul-grad");
  const [m, n, k] = [5, 7, 9];
  const cases: [number[], number[], boolean, boolean][] = [
    [[], [], false, false],
    [[], [], true, true],
    [[2], [2], true, false],
    [[2, 3], [], false, false], // batch folded into M, weight gradient folded into K
    [[2, 3], [], true, false],
    [[2, 3], [], false, true],
    [[], [3], false, true],
    [[2, 2], [2, 2], false, false],
  ];
  for (const [batchA, batchB, transA, transB] of cases) {
    await checkGrad({
      name: `matmul (${batchA}) x (${batchB}) transA ${transA} transB ${transB}`,
      inputs: [randNd(rng, stored(batchA, m, k, transA)), randNd(rng, stored(batchB, k, n, transB))],
      gpu: ([a, b]) => matmul(a, b, { transA, transB }),
      ref: ([a, b]) => ref.matmul(a, b, { transA, transB }),
      forward: tolFor(k),
    });
  }
});

Deno.test("matmul: gradients of odd-sized products equal the analytic reference", async () => {
  const rng = rngFor("matmul-grad-analytic");
  for (
    const [m, n, k, transA, transB] of [[33, 65, 17, false, false], [33, 65, 17, true, true], [
      129,
      31,
      7,
      false,
      true,
    ]] as [number, number, number, boolean, boolean][]
  ) {
    {
      const a = randNd(rng, stored([], m, k, transA)), b = randNd(rng, stored([], k, n, transB));
      const r = randNd(rng, [m, n]);
      const pa = param(upload(a)), pb = param(upload(b));
      const [ga, gb] = await tidy(async () => {
        const loss = sum(mul(matmul(pa, pb, { transA, transB }), upload(r)));
        loss.backward();
        return await readAll([pa.grad!, pb.grad!]);
      });
      pa.dispose();
      pb.dispose();
      // d/d op(a) = r op(b)^T and d/d op(b) = op(a)^T r, stored back in each operand's layout.
      const opA = transA ? ref.transpose(a) : a, opB = transB ? ref.transpose(b) : b;
      const dOpA = ref.matmul(r, opB, { transB: true }), dOpB = ref.matmul(opA, r, { transA: true });
      const expA = transA ? ref.transpose(dOpA) : dOpA, expB = transB ? ref.transpose(dOpB) : dOpB;
      assertClose(ga, expA.data, { ...tolFor(Math.max(n, m)), msg: `dA ${m}x${n}x${k} ${transA} ${transB}` });
      assertClose(gb, expB.data, { ...tolFor(Math.max(n, m)), msg: `dB ${m}x${n}x${k} ${transA} ${transB}` });
    }
  }
});

Deno.test("matmul: split-K, forced and automatic, K not a multiple of the chunk", async () => {
  const rng = rngFor("matmul-splitk");
  const outs: Tensor[] = [], expected: Nd[] = [];
  const cases: [number, number, number, number, boolean, boolean][] = [
    [7, 13, 50, 3, false, false],
    [7, 13, 50, 4, true, false],
    [9, 8, 20, 8, false, true],
    [33, 5, 70, 2, true, true],
    [12, 16, 64, 4, false, false],
  ];
  for (const [m, n, k, splitK, transA, transB] of cases) {
    const a = randNd(rng, stored([], m, k, transA)), b = randNd(rng, stored([], k, n, transB));
    outs.push(
      withMatmulTuning({ splitK, tile: matmulTiles.small }, () => matmul(upload(a), upload(b), { transA, transB })),
    );
    expected.push(ref.matmul(a, b, { transA, transB }));
  }
  // A long K with a single output tile is split automatically.
  const a = randNd(rng, [5, 1030]), b = randNd(rng, [1030, 7]);
  outs.push(matmul(upload(a), upload(b)));
  expected.push(ref.matmul(a, b));
  await expectClose(outs, expected, tolFor(1030));
});

Deno.test("matmul: the weight gradient over a long batch (split-K in the backward) matches the reference", async () => {
  const rng = rngFor("matmul-splitk-grad");
  const x = randNd(rng, [2, 515, 6]), w = randNd(rng, [6, 5]), r = randNd(rng, [2, 515, 5]);
  const pw = param(upload(w));
  const [gw] = await tidy(async () => {
    sum(mul(matmul(upload(x), pw), upload(r))).backward();
    return await readAll([pw.grad!]);
  });
  pw.dispose();
  const expected = ref.matmul(ref.nd([1030, 6], x.data), ref.nd([1030, 5], r.data), { transA: true });
  assertClose(gw, expected.data, { ...tolFor(1030), msg: "dW" });
});

Deno.test("matmul: the automatic large-tile plans (128 x 256 and 128 x 192 tiles, x @ W^T) match the reference", async () => {
  // Shapes big enough for planMatmul's large-tile choices: 8192 x 512 outputs take the 128 x 256 tile when B is
  // untransposed, N = 384 the 128 x 192 tile; x @ W^T keeps the 128-wide tile.
  const rng = rngFor("matmul-large-plans");
  const outs: Tensor[] = [], expected: Nd[] = [];
  const cases: [number, number, number, boolean, boolean][] = [
    [8192, 512, 36, false, false],
    [8192, 384, 20, false, false],
    [8192, 384, 20, false, true],
  ];
  for (const [m, n, k, transA, transB] of cases) {
    const a = randNd(rng, stored([], m, k, transA)), b = randNd(rng, stored([], k, n, transB));
    outs.push(matmul(upload(a), upload(b), { transA, transB }));
    expected.push(ref.matmul(a, b, { transA, transB }));
  }
  // The same x @ W^T with the "dot" inner loop switched on process-wide.
  const a = randNd(rng, [8192, 20]), b = randNd(rng, [384, 20]);
  outs.push(withMatmulTuning({ transposedBCompute: "dot" }, () => matmul(upload(a), upload(b), { transB: true })));
  expected.push(ref.matmul(a, b, { transB: true }));
  await expectClose(outs, expected, tolFor(36));
});

Deno.test("matmul: x @ W^T from a transposed copy of W matches the reference, with and without an addend", async () => {
  // Partial 32 x 32 transpose tiles (N, K not multiples of 32), the split-K and stream-K launches the untransposed
  // plan may take, and W shared by a batch folded into the rows; a residual added in the epilogue, also where
  // stream-K adds it to the tail tiles in its fixup.
  const rng = rngFor("matmul-transposed-copy");
  const outs: Tensor[] = [], expected: Nd[] = [];
  const cases: [number[], number, number, boolean][] = [
    [[4096], 67, 33, false],
    [[2, 2048], 300, 45, true],
    [[4099], 256, 1030, false],
    [[4099], 256, 1030, true],
  ];
  for (const [rows, n, k, withAddend] of cases) {
    const a = randNd(rng, [...rows, k]), b = randNd(rng, [n, k]), r = randNd(rng, [...rows, n]);
    const spec = { batch: 1, m: numel(rows), n, k, transA: false, transB: true, batchStrideA: 0, batchStrideB: 0 };
    withMatmulTuning({ transposedBCompute: "copy" }, () => {
      assertEquals(copiesTransposedB(spec), true);
      assertEquals(matmulLaunch(spec, withAddend, 32768).transposeB?.name, "transpose");
    });
    const addend = withAddend ? upload(r) : undefined;
    outs.push(
      withMatmulTuning({ transposedBCompute: "copy" }, () => matmul(upload(a), upload(b), { transB: true, addend })),
    );
    const product = ref.matmul(a, b, { transB: true });
    expected.push(withAddend ? { shape: product.shape, data: product.data.map((x, i) => x + r.data[i]) } : product);
  }
  await expectClose(outs, expected, tolFor(1030));
});

Deno.test("withTransposedWeights: the products find their copies made in one dispatch, packed pieces joined", async () => {
  // Three weights: two pieces of one buffer (a packed projection, multiplied as their concatenation), one on its own
  // with partial 32 x 32 tiles, and a weight that no product reads (its copy is freed). Each product's result must
  // equal the float64 reference, and the step must run one transpose_many and no per-product transpose.
  const rng = rngFor("matmul-transposed-ahead");
  const rows = 4096, k = 40;
  const x = randNd(rng, [rows, k]),
    wa = randNd(rng, [64, k]),
    wb = randNd(rng, [32, k]),
    wc = randNd(rng, [33, 64 + 32]);
  const unused = randNd(rng, [8, 8]);
  const packed = upload({ shape: [96, k], data: Float64Array.from([...wa.data, ...wb.data]) });
  const [a, b] = [rowRange(packed, 0, 64), rowRange(packed, 64, 96)];
  const c = upload(wc), spare = upload(unused), xt = upload(x);
  const outs: Tensor[] = [];
  const kernels = dispatchedKernels(() =>
    withMatmulTuning({ transposedBCompute: "copy" }, () =>
      withTransposedWeights([a, c, b, spare], rows, () => {
        const h = matmul(xt, concat([a, b], 0), { transB: true }); // (rows, 96)
        outs.push(h, matmul(h, c, { transB: true })); // (rows, 33)
      }))
  ).map((k) => k.name);
  assertEquals(kernels.filter((n) => n.startsWith("transpose")), ["transpose_many"]);
  const h = ref.matmul(x, nd([96, k], [...wa.data, ...wb.data]), { transB: true });
  await expectClose(outs, [h, ref.matmul(h, wc, { transB: true })], tolFor(96));
});

Deno.test("matmul: planMatmul picks the layout-specific large tiles and falls back when workgroup memory is short", () => {
  const fwd = { batch: 1, m: 8192, n: 512, k: 512, transA: false, transB: true };
  assertEquals(planMatmul(fwd).tile, largeTiles.deep);
  assertEquals(planMatmul({ ...fwd, transB: false }).tile, largeTiles.wide);
  assertEquals(planMatmul({ ...fwd, n: 1344, transB: false }).tile, largeTiles.n192);
  assertEquals(planMatmul({ batch: 1, m: 512, n: 1344, k: 8192, transA: true }).tile, largeTiles.n192Deep);
  assertEquals(planMatmul({ batch: 1, m: 10000, n: 512, k: 8192, transA: true }).tile, matmulTiles.large);
  // 32 KiB of workgroup memory (Mesa's lavapipe) cannot hold the BK-32 tiles: the BK-16 large tile stays.
  assertEquals(planMatmul(fwd, { maxSharedBytes: 32768 }).tile, matmulTiles.large);
  assertEquals(planMatmul({ ...fwd, transB: false }, { maxSharedBytes: 32768 }).tile, largeTiles.wide);
});

Deno.test("matmul: planMatmul takes stream-K for a partial last wave of large tiles, not for weight gradients", () => {
  const sq = { batch: 1, m: 4096, n: 4096, k: 4096 };
  // 512 tiles of 128 x 256 on 132 resident workgroups: 3 whole waves and a tail of 116 tiles.
  assertEquals(streamKSchedule(sq, largeTiles.wide, 132).dataParallel, 396);
  assertEquals(planMatmul(sq), { tile: largeTiles.wide, splitK: 1, streamK: 132 });
  // 528 tiles are 4 whole waves: nothing to balance.
  assertEquals(planMatmul({ ...sq, m: 4224 }).streamK, 0);
  // Transposed A (a weight gradient) keeps split-K; so does a forced split; the setting turns stream-K off.
  const dW = { batch: 1, m: 10000, n: 512, k: 8192, transA: true };
  assertEquals(planMatmul(dW).streamK, 0);
  assertEquals(planMatmul(dW).splitK > 1, true);
  assertEquals(planMatmul(sq, { splitK: 2 }), { tile: largeTiles.wide, splitK: 2, streamK: 0 });
  const before = setMatmulTuning({ autoStreamK: false });
  try {
    assertEquals(planMatmul(sq).streamK, 0);
  } finally {
    setMatmulTuning(before);
  }
  // An A100's 108 SMs: 4 whole waves of 108 and a tail of 80 tiles, shared by 108 workgroups.
  const settings = setMatmulSettings({ computeUnits: 108 });
  try {
    assertEquals(planMatmul(sq).streamK, 108);
  } finally {
    setMatmulSettings(settings);
  }
  assertThrows(() => setMatmulSettings({ computeUnits: 0 }), "computeUnits must be a positive integer, got 0");
  assertThrows(() => planMatmul(sq, { splitK: 2, streamK: 132 }), "cannot be combined");
  assertEquals(planMatmul({ ...sq, m: 4224 }, { streamK: 132 }).streamK, 0);
});

Deno.test("matmul with an addend: forward and the gradients of all three inputs, vec4 and scalar epilogues", async () => {
  const rng = rngFor("matmul-addend");
  const cases: [number[], number, number, number, boolean][] = [
    [[], 33, 20, 17, true], // N % 4 == 0: vec4 epilogue
    [[2], 9, 7, 12, false], // N % 4 != 0: scalar epilogue; batch folded into M
    [[], 5, 8, 1100, false], // a K that would split: runs unsplit with the addend
  ];
  for (const [batch, m, n, k, transB] of cases) {
    await checkGrad({
      name: `matmul addend (${batch}) ${m}x${n}x${k} transB ${transB}`,
      inputs: [randNd(rng, [...batch, m, k]), randNd(rng, transB ? [n, k] : [k, n]), randNd(rng, [...batch, m, n])],
      gpu: ([a, b, r]) => matmul(a, b, { transB, addend: r }),
      ref: ([a, b, r]) => ref.zip([ref.matmul(a, b, { transB }), r], (x, y) => x + y),
      forward: tolFor(k),
    });
  }
  assertThrows(() => matmul(tensor([[1, 2]]), tensor([[3], [4]]), { addend: tensor([1, 2]) }), "addend");
});

/**
 * RoPE over the result's rows in float64: row r's heads of `headDim` values among its first `columns` columns turn
 * by `positions[r]` (one per row) or `positions[r % m]` (a shared sequence of m rows).
 */
function ropeRows(y: Nd, positions: readonly number[], headDim: number, columns: number, theta = 10000): Nd {
  const n = y.shape[y.shape.length - 1], m = y.shape[y.shape.length - 2], rows = y.data.length / n;
  const out = nd(y.shape, y.data);
  for (let r = 0; r < rows; r++) {
    const p = positions.length === rows ? positions[r] : positions[r % m];
    for (let c = 0; c < columns; c += 2) {
      const angle = p * Math.pow(theta, -(c % headDim) / headDim);
      const [x0, x1] = [y.data[r * n + c], y.data[r * n + c + 1]];
      out.data[r * n + c] = x0 * Math.cos(angle) - x1 * Math.sin(angle);
      out.data[r * n + c + 1] = x0 * Math.sin(angle) + x1 * Math.cos(angle);
    }
  }
  return out;
}

Deno.test("matmul with RoPE: the epilogue's rotation and its gradients, plain, stream-K and unfused", async () => {
  const rng = rngFor("matmul-rope");
  const cases: {
    name: string;
    batch: number[];
    m: number;
    n: number;
    k: number;
    headDim: number;
    columns: number;
    perRow: boolean;
    tuning: Partial<MatmulTuning>;
    fused: boolean;
  }[] = [
    // A packed q/k/v projection: 3 heads of 8, the first two rotate; (2, 9) rows sharing 9 positions.
    { name: "plain", batch: [2], m: 9, n: 24, k: 12, headDim: 8, columns: 16, perRow: false, tuning: {}, fused: true },
    // 6 tiles of 32 x 32 on 4 stream-K units: 4 stored by the main kernel, 2 by the fixup.
    {
      name: "stream-K",
      batch: [],
      m: 70,
      n: 40,
      k: 20,
      headDim: 8,
      columns: 16,
      perRow: true,
      tuning: { tile: matmulTiles.small, streamK: 4 },
      fused: true,
    },
    // Whole 32 x 32 tiles (no bounds checks), as at the LM's shapes.
    {
      name: "whole tiles",
      batch: [2],
      m: 32,
      n: 64,
      k: 8,
      headDim: 16,
      columns: 32,
      perRow: false,
      tuning: { tile: matmulTiles.small },
      fused: true,
    },
    // A head dim that is not a multiple of 4: the RoPE kernel after the product.
    { name: "unfused", batch: [2], m: 5, n: 18, k: 7, headDim: 6, columns: 12, perRow: true, tuning: {}, fused: false },
  ];
  for (const c of cases) {
    const rows = numel([...c.batch, c.m]);
    const positions = Array.from({ length: c.perRow ? rows : c.m }, () => rng.int(3 * rows));
    const posShape = c.perRow ? [...c.batch, c.m] : [c.m];
    const rope = (p: Tensor) => ({ positions: p, headDim: c.headDim, columns: c.columns, maxPosition: 3 * rows });
    await withMatmulTuning(c.tuning, () =>
      checkGrad({
        name: `matmul rope ${c.name}`,
        inputs: [randNd(rng, [...c.batch, c.m, c.k]), randNd(rng, [c.n, c.k])],
        gpu: ([a, b]) => matmul(a, b, { transB: true, rope: rope(uploadInts(positions, posShape)) }),
        ref: ([a, b]) => ropeRows(ref.matmul(a, b, { transB: true }), positions, c.headDim, c.columns),
        forward: tolFor(c.k),
      }));
    const names = tidy(() =>
      withMatmulTuning(c.tuning, () =>
        dispatchedKernels(() => {
          const [a, b] = [upload(randNd(rng, [...c.batch, c.m, c.k])), upload(randNd(rng, [c.n, c.k]))];
          matmul(a, b, { transB: true, rope: rope(uploadInts(positions, posShape)) });
        }))
    ).map((k) => k.name);
    assertEquals(names.some((n) => n.includes("rope_forward")), !c.fused, `${c.name}: ${names}`);
    assertEquals(names.filter((n) => n.includes("_rope")).length, c.fused ? (c.name === "stream-K" ? 2 : 1) : 0);
  }
});

Deno.test("matmul with RoPE: positions outside the table give NaN rows; bad options are named", async () => {
  const a = upload(randNd(rngFor("matmul-rope-nan"), [4, 8])), b = upload(randNd(rngFor("matmul-rope-nan-b"), [8, 8]));
  const y = await matmul(a, b, { rope: { positions: uploadInts([0, -1, 64, 3], [4]), headDim: 4, columns: 4 } }).data();
  for (let r = 0; r < 4; r++) {
    const rotated = Array.from(y.slice(r * 8, r * 8 + 4)), passed = Array.from(y.slice(r * 8 + 4, r * 8 + 8));
    assertEquals(rotated.every(Number.isNaN), r === 1 || r === 2, `row ${r}: ${rotated}`);
    assertEquals(passed.some(Number.isNaN), false, `row ${r} past the rotated columns: ${passed}`);
  }
  const pos = uploadInts([0, 1, 2, 3], [4]);
  assertThrows(() => matmul(a, b, { addend: a, rope: { positions: pos, headDim: 4 } }), "cannot go together");
  assertThrows(() => matmul(a, b, { rope: { positions: pos, headDim: 3 } }), "headDim 3");
  assertThrows(() => matmul(a, b, { rope: { positions: uploadInts([0, 1], [2]), headDim: 4 } }), "must be (4)");
  assertThrows(() => matmul(a, b, { rope: { positions: a, headDim: 4 } }), "must be i32");
});

/**
 * `siluGateLinear` (SwiGLU's gate and the down projection as one node, the gate's backward in the epilogue of dG's
 * matmul) against the float64 reference, every element of the output and of each gradient: plain launches, tiles
 * with partial rows and columns, forced stream-K (the fixup's epilogue on the tail tiles) on the small tile and the
 * 128 x 192 tile of the LM's w2 dX, batch dims, with and without an addend, and the unfused fallback for a gate
 * width that is not a multiple of 4; finite differences on one small case; which kernels the backward dispatches.
 */
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { assertCloseInf, assertNoGpuErrors, checkGrad, dispatchedKernels, upload } from "./harness.ts";
import * as ref from "./reference.ts";
import { type Nd, randNd, rngFor } from "./reference.ts";
import { initGpu, mul, param, readAll, siluGateLinear, sum, type Tensor, tidy } from "../lib/tensor/mod.ts";
import { largeTiles, type MatmulTile, matmulTiles } from "../kernels/matmul.ts";
import { type MatmulTuning, setMatmulTuning } from "../lib/tensor/ops/matmul.ts";

await initGpu();

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** The gate over h (rows, 2F): silu(u) * v, u the first half of each row, v the second. */
function refGate(h: Nd, F: number): Nd {
  const rows = h.data.length / (2 * F), g = ref.nd([rows, F]);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < F; j++) {
      const u = h.data[r * 2 * F + j], v = h.data[r * 2 * F + F + j];
      g.data[r * F + j] = u * sigmoid(u) * v;
    }
  }
  return g;
}

/** `addend + gate(h) @ w^T` over the rows of h (..., 2F), as (rows, D). */
function refForward(h: Nd, w: Nd, addend?: Nd): Nd {
  const F = w.shape[1];
  const y = ref.matmul(refGate(h, F), w, { transB: true });
  return addend ? ref.nd(y.shape, y.data.map((x, i) => x + addend.data[i])) : y;
}

/** The gradients of `sum(r * y)`: dh (rows, 2F) from dG = r @ w, dW = r^T @ g, and r for the addend. */
function refGrads(h: Nd, w: Nd, r: Nd): { dh: Nd; dw: Nd } {
  const F = w.shape[1], rows = h.data.length / (2 * F);
  const dg = ref.matmul(r, w);
  const dh = ref.nd([rows, 2 * F]);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < F; j++) {
      const u = h.data[i * 2 * F + j], v = h.data[i * 2 * F + F + j], s = sigmoid(u), d = dg.data[i * F + j];
      dh.data[i * 2 * F + j] = d * v * s * (1 + u * (1 - s));
      dh.data[i * 2 * F + F + j] = d * u * s;
    }
  }
  return { dh, dw: ref.matmul(r, refGate(h, F), { transA: true }) };
}

interface Case {
  /** Leading dims of h and of the result. */
  lead: number[];
  F: number;
  D: number;
  addend: boolean;
  /** Forced tile and stream-K units (the planner's choice where absent). */
  tile?: MatmulTile;
  streamK?: number;
  /** The kernel dX is expected from: the fused epilogue, or the fallback's gate kernel. */
  fused: boolean;
}

const cases: [string, Case][] = [
  ["plain, batch dims, addend", { lead: [2, 5], F: 8, D: 6, addend: true, fused: true }],
  ["plain, no addend", { lead: [9], F: 12, D: 7, addend: false, fused: true }],
  [
    "partial rows and columns of the tile",
    { lead: [37], F: 36, D: 10, addend: true, tile: matmulTiles.small, fused: true },
  ],
  // Whole tiles in both directions, as at the LM's shapes (8192 rows, 1344 = 7 x 192 columns): no bounds checks.
  ["whole tiles", { lead: [64], F: 64, D: 12, addend: true, tile: matmulTiles.small, fused: true }],
  ["stream-K, whole tiles", {
    lead: [96],
    F: 64,
    D: 8,
    addend: false,
    tile: matmulTiles.small,
    streamK: 4,
    fused: true,
  }],
  // 3 x 2 small tiles over 4 units: 4 whole tiles, then 2 (partial rows, one also partial columns) shared out.
  [
    "stream-K, small tile, addend",
    { lead: [70], F: 36, D: 20, addend: true, tile: matmulTiles.small, streamK: 4, fused: true },
  ],
  ["stream-K, small tile", {
    lead: [2, 35],
    F: 36,
    D: 9,
    addend: false,
    tile: matmulTiles.small,
    streamK: 4,
    fused: true,
  }],
  // The 128 x 192 tile of the LM's w2 dX: 2 x 2 tiles over 3 units, the last (partial rows and columns) shared.
  ["stream-K, 128 x 192 tile", {
    lead: [130],
    F: 200,
    D: 16,
    addend: true,
    tile: largeTiles.n192,
    streamK: 3,
    fused: true,
  }],
  ["fallback, F % 4 != 0, addend", { lead: [7], F: 6, D: 5, addend: true, fused: false }],
  ["fallback, F % 4 != 0, batch dims", { lead: [3, 2], F: 3, D: 4, addend: false, fused: false }],
];

for (const [label, c] of cases) {
  Deno.test(`siluGateLinear: ${label}: the output and every gradient match the reference`, async () => {
    const rng = rngFor(`siluGateLinear ${label}`);
    const rows = c.lead.reduce((p, x) => p * x, 1);
    const h = randNd(rng, [...c.lead, 2 * c.F], { low: -4, high: 4 });
    const w = randNd(rng, [c.D, c.F]);
    const addend = c.addend ? randNd(rng, [...c.lead, c.D]) : undefined;
    const r = randNd(rng, [...c.lead, c.D]);
    const change: Partial<MatmulTuning> = c.tile ? { tile: c.tile, streamK: c.streamK } : {};
    const before = setMatmulTuning(change);
    const inputs = [h, w, ...(addend ? [addend] : [])].map((x) => param(upload(x)));
    let values: Float32Array[], kernels: string[] = [];
    try {
      values = await tidy(async () => {
        const [ht, wt, at] = inputs;
        const y = siluGateLinear(ht, wt, { addend: at });
        const loss = sum(mul(y, upload(r)));
        kernels = dispatchedKernels(() => loss.backward()).map((k) => k.name);
        return (await readAll([y, ...inputs.map((t) => t.grad as Tensor)])) as Float32Array[];
      });
    } finally {
      setMatmulTuning(before);
      for (const t of inputs) t.dispose();
    }
    assertNoGpuErrors();
    const [y, dh, dw, da] = values;
    const flat = (x: Nd, cols: number) => ref.nd([rows, cols], x.data);
    const expectedY = refForward(flat(h, 2 * c.F), w, addend && flat(addend, c.D));
    const grads = refGrads(flat(h, 2 * c.F), w, flat(r, c.D));
    const tol = (k: number) => ({ atol: 4e-6 * Math.max(k, 1), rtol: 1e-5 });
    assertCloseInf(y, expectedY.data, { ...tol(c.F), msg: `${label} forward` });
    assertCloseInf(dh, grads.dh.data, { ...tol(c.D), msg: `${label} dh` });
    assertCloseInf(dw, grads.dw.data, { ...tol(rows), msg: `${label} dW` });
    if (addend) assertCloseInf(da, r.data, { atol: 0, rtol: 0, msg: `${label} d addend` });
    // The fused path computes dh in dG's matmul: no gate kernel, and the epilogue's kernels (with their fixup).
    const gateKernels = kernels.filter((k) => k === "silu_gate_packed_backward");
    const fusedKernels = kernels.filter((k) => k.endsWith("_gateBwd") || k.includes("_gateBwd_"));
    if (c.fused) {
      assertEquals(gateKernels.length, 0, `${label}: ${kernels}`);
      assertEquals(fusedKernels.length, c.streamK ? 2 : 1, `${label}: ${kernels}`);
    } else {
      assertEquals([gateKernels.length, fusedKernels.length], [1, 0], `${label}: ${kernels}`);
    }
  });
}

Deno.test("siluGateLinear: finite differences of every input, and inputs without gradients", async () => {
  const rng = rngFor("siluGateLinear fd");
  for (const F of [4, 3]) {
    await checkGrad({
      name: `siluGateLinear fd F ${F}`,
      inputs: [randNd(rng, [5, 2 * F], { low: -3, high: 3 }), randNd(rng, [3, F]), randNd(rng, [5, 3])],
      gpu: ([h, w, a]) => siluGateLinear(h, w, { addend: a }),
      ref: ([h, w, a]) => refForward(h, w, a),
      forward: { atol: 1e-5 },
    });
    // Only w (the weight, with h a constant), then only h.
    for (const wrt of [[1], [0]]) {
      await checkGrad({
        name: `siluGateLinear fd F ${F} wrt ${wrt}`,
        inputs: [randNd(rng, [4, 2 * F], { low: -3, high: 3 }), randNd(rng, [2, F])],
        wrt,
        gpu: ([h, w]) => siluGateLinear(h, w),
        ref: ([h, w]) => refForward(h, w),
        forward: { atol: 1e-5 },
      });
    }
  }
});

Deno.test("siluGateLinear: rejects shapes that do not fit", () => {
  const h = upload(ref.nd([2, 8])), w = upload(ref.nd([3, 4]));
  assertThrows(() => siluGateLinear(h, upload(ref.nd([3, 5]))), "siluGateLinear: needs h (..., 2F) and w (D, F)");
  assertThrows(() => siluGateLinear(upload(ref.nd([8])), w), "siluGateLinear: needs h (..., 2F) and w (D, F)");
  assertThrows(() => siluGateLinear(h, w, { addend: upload(ref.nd([2, 4])) }), "addend");
  assert(siluGateLinear(h, w).shape.join() === "2,3");
});

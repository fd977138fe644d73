/**
 * Packed attention told that RoPE rotated its q and k (`packedAttention`'s `rope`): the gradient it returns is that
 * of the values before the rotation, which the fused backward kernels rotate back as they store dQ and dK. Checked
 * against the float64 reference (attention of the rotated q and k, its gradients rotated by the opposite angles) on
 * every backward kernel (row, flash and dQ-from-scores), shared and per-sequence positions, and the composite path;
 * and the q/k/v product that leaves the rotation's backward to attention.
 */
import { assertClose, assertEquals } from "./assert.ts";
import { assertNoGpuErrors, maxAbs, upload, uploadInts } from "./harness.ts";
import * as ref from "./reference.ts";
import { type Nd, nd, randNd, rngFor } from "./reference.ts";
import { initGpu, matmul, mul, packedAttention, param, readAll, sum, tidy } from "../lib/tensor/mod.ts";
import type { AttentionVariant } from "../kernels/attention.ts";

await initGpu();

/** q, k, v (B, H, T, d) as one packed (B, T, 3, H, d) array. */
function pack(parts: Nd[]): Nd {
  const [B, H, T, d] = parts[0].shape;
  const out = nd([B, T, 3, H, d]);
  parts.forEach((x, p) => {
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < T; t++) {
          for (let j = 0; j < d; j++) {
            out.data[(((b * T + t) * 3 + p) * H + h) * d + j] = x.data[((b * H + h) * T + t) * d + j];
          }
        }
      }
    }
  });
  return out;
}

interface Case {
  B: number;
  H: number;
  T: number;
  d: number;
  perSequence: boolean;
}

/**
 * The packed gradient from `packedAttention(rotated qkv, { rope })` against the reference: the attention of the
 * rotated q and k (and v), its q and k gradients rotated back by the opposite angles.
 */
async function checkUnrope(c: Case, opts: { variant?: Partial<AttentionVariant>; fused?: boolean }): Promise<void> {
  const msg = `${JSON.stringify(c)} ${JSON.stringify(opts)}`;
  const rng = rngFor(msg);
  const { B, H, T, d } = c;
  const [q, k, v, r] = [0, 1, 2, 3].map(() => randNd(rng, [B, H, T, d]));
  // Positions that are not 0..T-1: a shift per sequence, or a shared one.
  const positions = c.perSequence
    ? Array.from({ length: B * T }, (_, i) => (i % T) + 3 * Math.floor(i / T))
    : Array.from({ length: T }, (_, t) => t + 2);
  const perRow = Array.from({ length: B * H * T }, (_, i) => {
    const b = Math.floor(i / (H * T)), t = i % T;
    return c.perSequence ? positions[b * T + t] : positions[t];
  });
  const theta = 500;
  const [qr, kr] = [q, k].map((x) => ref.rope(x, perRow, theta));
  const [dq, dk, dv] = ref.attentionGrad(qr, kr, v, r, { causal: true });
  const back = (g: Nd) => ref.rope(g, perRow.map((p) => -p), theta);
  const expected = pack([back(dq), back(dk), dv]);
  const qkv = param(upload(pack([qr, kr, v])));
  const pos = uploadInts(positions, c.perSequence ? [B, T] : [T]);
  const got = await tidy(async () => {
    const out = packedAttention(qkv, {
      causal: true,
      ...opts,
      rope: { positions: pos, theta, maxPosition: T + 3 * B },
    });
    sum(mul(out, upload(ref.permute(r, [0, 2, 1, 3])))).backward(); // out is (B, T, H, d)
    return (await readAll([qkv.grad!]))[0] as Float32Array;
  });
  qkv.dispose();
  pos.dispose();
  assertNoGpuErrors();
  assertClose(got, expected.data, { atol: 2e-6 * Math.max(maxAbs(expected.data), 1), rtol: 1e-4, msg });
}

const cases: Case[] = [
  { B: 2, H: 2, T: 37, d: 8, perSequence: false }, // odd T, across key blocks
  { B: 2, H: 3, T: 19, d: 16, perSequence: true }, // a position list per sequence
  { B: 1, H: 2, T: 70, d: 4, perSequence: false }, // across 64-row blocks
];

Deno.test("packedAttention with rope: the row kernels store the gradient before the rotation", async () => {
  for (const c of cases) await checkUnrope(c, {});
  await checkUnrope({ B: 1, H: 2, T: 33, d: 32, perSequence: true }, {});
});

Deno.test("packedAttention with rope: flash and dQ-from-scores kernels, and the composite path", async () => {
  for (
    const variant of [
      { dq: "scores" },
      { dkv: "flash", dq: "flash", tile: 16 },
      { dkv: "flash", dq: "scores", tile: 16 },
    ] as Partial<AttentionVariant>[]
  ) {
    for (const c of cases) await checkUnrope(c, { variant });
  }
  // The composite (no fused kernels): the gradient is rotated back by a pass of its own.
  for (const c of cases.slice(0, 2)) await checkUnrope(c, { fused: false });
});

Deno.test("matmul with rope and gradientBeforeRotation: the backward rotates nothing back", async () => {
  const rng = rngFor("matmul-rope-gradient-before");
  const [T, K, N] = [8, 12, 16];
  const x = randNd(rng, [T, K]), w = randNd(rng, [N, K]), g = randNd(rng, [T, N]);
  const xt = param(upload(x)), wt = param(upload(w)), positions = uploadInts([...Array(T).keys()], [T]);
  const [dx, dw] = await tidy(async () => {
    const y = matmul(xt, wt, { transB: true, rope: { positions, headDim: 8, gradientBeforeRotation: true } });
    sum(mul(y, upload(g))).backward();
    return (await readAll([xt.grad!, wt.grad!])) as Float32Array[];
  });
  // The gradient arriving is taken as that of the product itself: dX = G W, dW = G^T X.
  const ex = ref.matmul(g, w), ew = ref.matmul(g, x, { transA: true });
  assertEquals(dx.length, ex.data.length);
  assertClose(dx, ex.data, { atol: 1e-5, rtol: 1e-5 });
  assertClose(dw, ew.data, { atol: 1e-5, rtol: 1e-5 });
  for (const t of [xt, wt, positions]) t.dispose();
});

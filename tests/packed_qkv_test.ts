/**
 * The fused q/k/v path: attention and RoPE over one packed (B, T, 3, H, d) projection output, read in place and
 * with one packed gradient, against the float64 reference (attention of the rotated parts; the gradients of the
 * rotated q and k rotated back), on odd lengths, a single position, causal and not, head dims 4 to 64 and the
 * work-split variants; RoPE alone (values copied, NaN past the table, both kernel paths); and the SwiGLU gate over
 * a fused w1/w3 output.
 */
import { assert, assertClose, assertThrows } from "./assert.ts";
import { assertNoGpuErrors, checkGrad, maxAbs, upload, uploadInts } from "./harness.ts";
import * as ref from "./reference.ts";
import { type Nd, randNd, rngFor } from "./reference.ts";
import type { AttentionVariant } from "../kernels/attention.ts";
import {
  gpu,
  initGpu,
  mul,
  packedAttention,
  packedSiluGate,
  param,
  readAll,
  rope,
  sum,
  tidy,
} from "../lib/tensor/mod.ts";
import { attentionWorkgroupBytes, DEFAULT_ATTENTION_VARIANT } from "../kernels/attention.ts";

await initGpu();

/** (B, H, T, d) -> (B, T, 1, H, d): one part of the packed tensor. */
const asPart = (x: Nd) => {
  const [B, H, T, d] = x.shape;
  return ref.nd([B, T, 1, H, d], ref.permute(x, [0, 2, 1, 3]).data);
};
/** q, k, v (B, H, T, d) -> (B, T, 3, H, d). */
const pack = (parts: Nd[]) => ref.concat(parts.map(asPart), 2);

interface Case {
  B: number;
  H: number;
  T: number;
  d: number;
  causal?: boolean;
  /** RoPE positions: "shared" (T), "perSequence" (B, T), or none (no rotation). */
  rope?: "shared" | "perSequence";
}

const cases: Case[] = [
  { B: 2, H: 3, T: 37, d: 32, rope: "shared" }, // odd T, across key blocks
  { B: 1, H: 2, T: 1, d: 8, rope: "shared" }, // T = 1
  { B: 2, H: 2, T: 9, d: 8, rope: "perSequence" },
  { B: 1, H: 3, T: 70, d: 4, rope: "perSequence" }, // across 64-query blocks and 64-key groups
  { B: 1, H: 2, T: 33, d: 64, causal: false }, // non-causal, the largest head dim, no RoPE
  { B: 2, H: 2, T: 17, d: 16, causal: false, rope: "shared" },
  { B: 1, H: 2, T: 131, d: 32, rope: "shared" }, // across 128-query blocks and 128-key groups
];

const name = (c: Case) => `B ${c.B} H ${c.H} T ${c.T} d ${c.d} causal ${c.causal ?? true} rope ${c.rope ?? "none"}`;

async function checkPacked(
  c: Case,
  opts: { variant?: Partial<AttentionVariant>; fused?: boolean } = {},
): Promise<void> {
  const msg = `${name(c)} ${JSON.stringify(opts)}`;
  const rng = rngFor(name(c));
  const [q, k, v] = [0, 1, 2].map(() => randNd(rng, [c.B, c.H, c.T, c.d]));
  const r = randNd(rng, [c.B, c.H, c.T, c.d]);
  const causal = c.causal ?? true, theta = 10000;
  const positions = c.rope === "perSequence"
    ? Array.from({ length: c.B * c.T }, (_, i) => (i * 7 + 3) % (2 * c.T))
    : Array.from({ length: c.T }, (_, i) => i);
  // Position of each (b, h, t) row of the (B, H, T, d) reference tensors.
  const perRow = Array.from({ length: c.B * c.H * c.T }, (_, row) => {
    const t = row % c.T, b = Math.floor(row / (c.H * c.T));
    return c.rope === "perSequence" ? positions[b * c.T + t] : positions[t];
  });
  const rot = (x: Nd, sign: 1 | -1) => c.rope ? ref.rope(x, perRow.map((p) => sign * p), theta) : x;
  const [qr, kr] = [rot(q, 1), rot(k, 1)];
  const out = ref.attention(qr, kr, v, { causal });
  const [dqr, dkr, dv] = ref.attentionGrad(qr, kr, v, r, { causal });
  const expected = [ref.permute(out, [0, 2, 1, 3]), pack([rot(dqr, -1), rot(dkr, -1), dv])];
  const qkv = param(upload(pack([q, k, v])));
  const actual = await tidy(async () => {
    const pos = uploadInts(positions, c.rope === "perSequence" ? [c.B, c.T] : [c.T]);
    const x = c.rope ? rope(qkv, pos, { theta, maxPosition: 2 * c.T, packed: true }) : qkv;
    const o = packedAttention(x, { causal, ...opts }); // (B, T, H, d)
    sum(mul(o, upload(ref.permute(r, [0, 2, 1, 3])))).backward();
    return (await readAll([o, qkv.grad!])) as Float32Array[];
  });
  qkv.dispose();
  assertNoGpuErrors();
  ["output", "dqkv"].forEach((what, i) => {
    const e = expected[i].data;
    assertClose(actual[i], e, { atol: 2e-6 * Math.max(maxAbs(e), 1), rtol: 1e-4, msg: `${msg} ${what}` });
  });
}

Deno.test("packed attention and RoPE: output and the packed gradient against the float64 reference", async () => {
  for (const c of cases) await checkPacked(c);
});

Deno.test("packed attention: the composite (forced, and a head dim the kernels lack)", async () => {
  for (const c of [cases[0], cases[2], cases[4]]) await checkPacked(c, { fused: false });
  await checkPacked({ B: 2, H: 2, T: 6, d: 6, rope: "shared" });
});

Deno.test("packed attention: work-split variants", async () => {
  const limit = gpu().device.limits.maxComputeWorkgroupStorageSize;
  for (
    const variant of [
      { rowsPerThread: 2, keysPerThread: 2 },
      { queryBlock: 128, keyBlock: 64, keyGroup: 128, queryTile: 64 },
      { unroll: "all" },
      { dkv: "flash", dq: "flash" },
      { dkv: "flash", tile: 32, flashThreads: 128 },
      { dkv: "flash", dq: "scores" },
      { dq: "scores", keysPerThread: 2 },
      { forward: "flash" },
      { forward: "flash", dkv: "flash", dq: "flash", tile: 32 },
      { forward: "flash", dkv: "flash", dq: "flash", flashThreads: 128 },
    ] as Partial<AttentionVariant>[]
  ) {
    // Unrolled kernels compile slowly on a software adapter: small head dims only for them.
    const pick = variant.unroll ? [cases[1], cases[2], cases[3]] : [cases[0], cases[1], cases[4], cases[5], cases[6]];
    for (const c of pick) {
      if (attentionWorkgroupBytes(c.d, { ...DEFAULT_ATTENTION_VARIANT, ...variant }) > limit) continue;
      await checkPacked(c, { variant });
    }
  }
});

Deno.test("packed RoPE alone: q and k rotate, values pass through, positions past the table give NaN", async () => {
  const rng = rngFor("packed-rope");
  const B = 2, T = 5, H = 3, theta = 10000;
  // maxPosition 8 makes a table of rows 0..63: 64 and -1 are outside it, 63 is its last row.
  const positions = [0, 3, 64, 63, -1], inTable = (p: number) => p >= 0 && p < 64;
  // d 8 and 32 take the kernel's two-pairs-a-thread (vec4) path, d 6 its one-pair (vec2) path.
  for (const d of [8, 32, 6]) {
    const x = randNd(rng, [B, T, 3, H, d]), r = randNd(rng, [B, T, 3, H, d]);
    const rows = B * T * 3 * H;
    const posOf = (row: number) => positions[Math.floor(row / (3 * H)) % T];
    const isValue = (row: number) => Math.floor(row / H) % 3 === 2;
    // The reference rotates every row, those outside the table by position 0: they are checked for NaN instead.
    const perRow = Array.from({ length: rows }, (_, row) => inTable(posOf(row)) ? posOf(row) : 0);
    const y64 = ref.rope(x, perRow, theta).data, dx64 = ref.rope(r, perRow.map((p) => -p), theta).data;
    const xp = param(upload(x));
    const [y, dx] = await tidy(async () => {
      const out = rope(xp, uploadInts(positions, [T]), { theta, maxPosition: 8, packed: true });
      sum(mul(out, upload(r))).backward(); // dx: r rotated back
      return (await readAll([out, xp.grad!])) as Float32Array[];
    });
    xp.dispose();
    assertNoGpuErrors();
    const checks = [["forward", y, y64, x.data], ["backward", dx, dx64, r.data]] as const;
    for (const [what, got, rotated, input] of checks) {
      for (let row = 0; row < rows; row++) {
        const at = (a: ArrayLike<number>) => Array.from(a).slice(row * d, (row + 1) * d);
        const msg = `d ${d} ${what} row ${row} (position ${posOf(row)}, ${isValue(row) ? "v" : "q/k"})`;
        if (isValue(row)) assertClose(at(got), at(input), { atol: 0, rtol: 0, msg });
        else if (!inTable(posOf(row))) assert(at(got).every(Number.isNaN), `${msg}: ${at(got)}`);
        else assertClose(at(got), at(rotated), { atol: 1e-6, rtol: 1e-5, msg });
      }
    }
  }
});

Deno.test("packed attention and RoPE: shape errors name the op and the shapes", () => {
  const f = (...shape: number[]) => upload(ref.nd(shape));
  assertThrows(() => packedAttention(f(2, 5, 2, 4, 8)), "packedAttention: qkv must be (..., T, 3, H, d), got");
  assertThrows(() => packedAttention(f(5, 3, 8)), "(5, 3, 8)");
  const pos = uploadInts([0, 1, 2], [3]);
  assertThrows(() => rope(f(2, 4, 2, 8), pos, { packed: true }), "packed q/k/v needs x (..., T, 3, H, dim)");
  assertThrows(() => rope(f(2, 4, 3, 2, 8), pos, { packed: true }), "must be (4) or (2, 4)");
});

// ---- SwiGLU gate ------------------------------------------------------------------------------------------------

/** `silu(a) * b` of the two halves of the last axis, in float64. */
function refSiluGate(h: Nd): Nd {
  const w2 = h.shape[h.shape.length - 1], w = w2 / 2, rows = h.data.length / w2;
  const y = ref.nd([...h.shape.slice(0, -1), w]);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < w; j++) {
      const a = h.data[r * w2 + j], b = h.data[r * w2 + w + j];
      y.data[r * w + j] = (a / (1 + Math.exp(-a))) * b;
    }
  }
  return y;
}

Deno.test("packedSiluGate: forward and the packed gradient (vec4 and scalar rows) against the reference", async () => {
  const rng = rngFor("packedSiluGate");
  for (const shape of [[3, 16], [2, 3, 6], [5, 2], [1, 2, 40], [4, 2688]]) {
    await checkGrad({
      name: `packedSiluGate ${JSON.stringify(shape)}`,
      inputs: [randNd(rng, shape, { low: -4, high: 4 })],
      gpu: ([h]) => packedSiluGate(h),
      ref: ([h]) => refSiluGate(h),
      sample: 64,
      gradTol: 2e-4,
    });
  }
  assertThrows(() => packedSiluGate(upload(ref.nd([2, 5]))), "packedSiluGate: needs h (..., 2F) with an even last dim");
});

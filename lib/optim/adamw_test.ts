import { assertClose, assertEquals, assertThrows } from "../../tests/assert.ts";
import { gpu, initGpu, param, readAll, square, sum, tensor, tidy } from "../tensor/mod.ts";
import { parseTrainConfig } from "../train/config.ts";
import { Rng } from "../util/random.ts";
import { AdamW } from "./adamw.ts";

await initGpu();

/** CS336 Algorithm 1 with global-norm clipping, in float64. */
function referenceAdamW(
  params: Float64Array[],
  gradsPerStep: Float64Array[][],
  o: { lrs: number[]; b1: number; b2: number; eps: number; wd: number; maxNorm?: number },
): { params: Float64Array[]; norms: number[] } {
  const m = params.map((p) => new Float64Array(p.length)), v = params.map((p) => new Float64Array(p.length));
  const norms: number[] = [];
  gradsPerStep.forEach((grads, s) => {
    const t = s + 1, lr = o.lrs[s];
    const norm = Math.sqrt(grads.reduce((acc, g) => acc + g.reduce((a, x) => a + x * x, 0), 0));
    norms.push(norm);
    const clip = o.maxNorm !== undefined && norm > o.maxNorm ? o.maxNorm / (norm + 1e-6) : 1;
    const lrT = lr * Math.sqrt(1 - o.b2 ** t) / (1 - o.b1 ** t);
    params.forEach((p, i) => {
      for (let j = 0; j < p.length; j++) {
        const g = grads[i][j] * clip;
        m[i][j] = o.b1 * m[i][j] + (1 - o.b1) * g;
        v[i][j] = o.b2 * v[i][j] + (1 - o.b2) * g * g;
        p[j] -= lrT * m[i][j] / (Math.sqrt(v[i][j]) + o.eps);
        p[j] -= lr * o.wd * p[j];
      }
    });
  });
  return { params, norms };
}

for (const maxNorm of [undefined, 0.5]) {
  Deno.test(`AdamW matches CS336 Algorithm 1 over 3 steps (clip ${maxNorm ?? "off"})`, async () => {
    const rng = new Rng(11);
    // More parameters than one update dispatch takes (7), of sizes that span several workgroups.
    const shapes = [[3, 5], [7], [1, 1], [300], [2, 2], [9, 31], [1], [5], [600], [4, 4]];
    const init = shapes.map((s) => Float32Array.from({ length: s.reduce((a, b) => a * b) }, () => rng.normal()));
    const ps = init.map((d, i) => param(tensor(d, { shape: shapes[i] }), `p${i}`));
    const opt = new AdamW(ps, { lr: 0.1, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.1 });
    const lrs = [0.1, 0.05, 0.02];
    const gradsPerStep: Float64Array[][] = [];
    const norms: number[] = [];
    for (let s = 0; s < 3; s++) {
      const grads = init.map((d) => Float32Array.from(d, () => rng.normal() * 0.7));
      gradsPerStep.push(grads.map((g) => Float64Array.from(g)));
      ps.forEach((p, i) => p.grad = tensor(grads[i], { shape: p.shape }));
      const norm = opt.step({ lr: lrs[s], maxGradNorm: maxNorm, returnGradNorm: true });
      norms.push((await norm.data())[0]);
      norm.dispose();
      opt.zeroGrad();
    }
    const ref = referenceAdamW(init.map((d) => Float64Array.from(d)), gradsPerStep, {
      lrs,
      b1: 0.9,
      b2: 0.95,
      eps: 1e-8,
      wd: 0.1,
      maxNorm,
    });
    const got = await readAll(ps);
    got.forEach((g, i) => assertClose(g, ref.params[i], { atol: 1e-5, rtol: 1e-5, msg: `param ${i}` }));
    assertClose(norms, ref.norms, { rtol: 1e-5 });
    opt.dispose();
    for (const p of ps) p.dispose();
  });
}

Deno.test("AdamW rejects bad hyperparameters and non-parameters", () => {
  const p = param(tensor([1, 2]));
  assertThrows(() => new AdamW([p], { lr: -1 }), "lr must be >= 0, got -1");
  assertThrows(() => new AdamW([p], { betas: [0.9, 1] }), "betas");
  assertThrows(() => new AdamW([tensor([1])]), "does not require grad");
  p.dispose();
});

Deno.test("the global gradient norm over many gradients of assorted sizes equals a float64 sum", async () => {
  // More gradients than one dispatch binds, and sizes that take several workgroups each.
  const rng = new Rng(3);
  // 128 * 16384 + 5 elements take 129 workgroups, read as scalars (40000, a multiple of 4, is read as vectors).
  const sizes = [
    1,
    7,
    512,
    40000,
    3,
    16384,
    16385,
    100,
    2_097_157,
    ...Array.from({ length: 14 }, (_, i) => 10 + i * 37),
  ];
  const ps = sizes.map((n, i) => param(tensor(new Float32Array(n), { shape: [n] }), `p${i}`));
  let expected = 0;
  ps.forEach((p, i) => {
    const g = Float32Array.from({ length: sizes[i] }, () => rng.normal());
    for (const v of g) expected += v * v;
    p.grad = tensor(g, { shape: p.shape });
  });
  const opt = new AdamW(ps);
  const norm = opt.gradNorm();
  assertClose([(await norm.data())[0]], [Math.sqrt(expected)], { rtol: 1e-5 });
  norm.dispose();
  opt.dispose();
  for (const p of ps) p.dispose();
});

Deno.test("AdamW's defaults are the training config's, and step() leaves nothing to dispose", async () => {
  await initGpu();
  const p = param(tensor([1, 2, 3]));
  const opt = new AdamW([p]);
  const train = parseTrainConfig({ trainData: "unused.bin" });
  assertEquals(
    [opt.options.lr, opt.options.betas, opt.options.eps, opt.options.weightDecay],
    [train.lrMax, train.betas, train.eps, train.weightDecay],
  );
  tidy(() => sum(square(p)).backward());
  const before = gpu().memory().inUseBuffers;
  opt.step({ maxGradNorm: 1 });
  assertEquals(gpu().memory().inUseBuffers, before);
  opt.dispose();
  p.dispose();
});

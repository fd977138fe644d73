import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  accountingTable,
  forwardFlops,
  memoryUsage,
  modelFlopsUtilization,
  type ModelShape,
  parameterCounts,
  trainingFlops,
  trainingFlopsPerToken,
} from "./accounting.ts";
import { parseModelConfig } from "./config.ts";

// Independent reference: the CS336 state dict, name by name, and the list of matmuls of a forward pass.
function stateDictShapes(s: ModelShape): Map<string, number[]> {
  const { vocabSize: V, dModel: d, dFf: f } = s;
  const out = new Map<string, number[]>([["token_embeddings.weight", [V, d]]]);
  for (let i = 0; i < s.numLayers; i++) {
    for (const p of ["q_proj", "k_proj", "v_proj", "output_proj"]) out.set(`layers.${i}.attn.${p}.weight`, [d, d]);
    if (s.norm !== "none") out.set(`layers.${i}.ln1.weight`, [d]);
    out.set(`layers.${i}.ffn.w1.weight`, [f, d]);
    out.set(`layers.${i}.ffn.w2.weight`, [d, f]);
    if ((s.ffn ?? "swiglu") === "swiglu") out.set(`layers.${i}.ffn.w3.weight`, [f, d]);
    if (s.norm !== "none" && !s.parallelLayers) out.set(`layers.${i}.ln2.weight`, [d]);
  }
  if (s.norm !== "none") out.set("ln_final.weight", [d]);
  if (!s.tieEmbeddings) out.set("lm_head.weight", [V, d]);
  return out;
}

function countFromStateDict(s: ModelShape): number {
  let n = 0;
  for (const shape of stateDictShapes(s).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/** Sum of 2·m·k·n over each matmul of one sequence, heads enumerated one by one. */
function matmulFlopsByHand(s: ModelShape, T: number): number {
  const { vocabSize: V, dModel: d, dFf: f, numHeads: h } = s;
  const dh = d / h;
  const mm = (m: number, k: number, n: number) => 2 * m * k * n;
  let total = 0;
  for (let l = 0; l < s.numLayers; l++) {
    total += 3 * mm(T, d, d); // x W_q^T, x W_k^T, x W_v^T
    for (let head = 0; head < h; head++) total += mm(T, dh, T) + mm(T, T, dh); // Q K^T, then softmax(.) V
    total += mm(T, d, d); // output projection
    total += ((s.ffn ?? "swiglu") === "swiglu" ? 2 : 1) * mm(T, d, f) + mm(T, f, d);
  }
  return total + mm(T, d, V);
}

const gpt2 = (dModel: number, numLayers: number, numHeads: number): ModelShape => ({
  vocabSize: 50257,
  contextLength: 1024,
  dModel,
  numLayers,
  numHeads,
  dFf: 4 * dModel,
});
const GPT2 = {
  small: gpt2(768, 12, 12),
  medium: gpt2(1024, 24, 16),
  large: gpt2(1280, 36, 20),
  xl: gpt2(1600, 48, 25),
};

Deno.test("GPT-2 XL reproduces the CS336 figures", () => {
  assertEquals(parameterCounts(GPT2.xl).total, 2_127_057_600);
  const f = forwardFlops(GPT2.xl);
  assert(Math.abs(f.matmul - 4.51e12) < 0.005e12, `XL forward matmul FLOPs ${f.matmul}`);
  assertEquals(f.matmul, matmulFlopsByHand(GPT2.xl, 1024));
  // The FFN dominates at this size: about two thirds of the forward matmul FLOPs.
  assert(f.feedForward / f.matmul > 0.66 && f.feedForward / f.matmul < 0.68);
});

Deno.test("parameter counts match the state dict for GPT-2 sizes and every variant", () => {
  for (const [name, shape] of Object.entries(GPT2)) {
    const c = parameterCounts(shape);
    assertEquals(c.total, countFromStateDict(shape), name);
    assertEquals(c.embedding + c.attention + c.feedForward + c.norms + c.lmHead, c.total, `${name} components`);
  }
  const base = { vocabSize: 97, contextLength: 16, dModel: 24, numLayers: 3, numHeads: 4, dFf: 40 };
  for (const norm of ["pre", "post", "none"] as const) {
    for (const ffn of ["swiglu", "silu"] as const) {
      for (const tieEmbeddings of [false, true]) {
        for (const parallelLayers of [false, true]) {
          const s = { ...base, norm, ffn, tieEmbeddings, parallelLayers };
          assertEquals(parameterCounts(s).total, countFromStateDict(s), JSON.stringify(s));
        }
      }
    }
  }
  // A parsed ModelConfig is accepted as is.
  assertEquals(parameterCounts(parseModelConfig(base)).total, countFromStateDict(base));
});

Deno.test("forward matmul FLOPs match an enumeration of the matmuls", () => {
  for (const shape of [...Object.values(GPT2), { ...GPT2.small, ffn: "silu" as const }]) {
    for (const T of [1, 128, 1024]) {
      assertEquals(forwardFlops(shape, { seqLen: T }).matmul, matmulFlopsByHand(shape, T));
      assertEquals(forwardFlops(shape, { seqLen: T, batchSize: 3 }).matmul, 3 * matmulFlopsByHand(shape, T));
    }
  }
  const f = forwardFlops(GPT2.small);
  assertEquals(f.attentionScores, 12 * 2 * 1024 * 1024 * 768);
  assertEquals(f.lmHead, 2 * 1024 * 768 * 50257);
  assert(f.nonMatmul > 0 && f.nonMatmul < 0.05 * f.matmul, `non-matmul share ${f.nonMatmul / f.matmul}`);
  assertEquals(f.total, f.matmul + f.nonMatmul);
  // NoPE drops RoPE's elementwise work only.
  const nope = forwardFlops({ ...GPT2.small, position: "none" });
  assertEquals(nope.matmul, f.matmul);
  assertEquals(f.nonMatmul - nope.nonMatmul, 12 * 3 * 2 * 1024 * 768);
});

Deno.test("training FLOPs, per-token FLOPs and MFU", () => {
  const ts = { vocabSize: 10000, contextLength: 256, dModel: 512, numLayers: 4, numHeads: 16, dFf: 1344 };
  const step = trainingFlops(ts, { batchSize: 32 });
  const fwd = matmulFlopsByHand(ts, 256) * 32;
  assertEquals(step, { forward: fwd, backward: 2 * fwd, total: 3 * fwd });
  assert(trainingFlops(ts, { includeNonMatmul: true }).total > trainingFlops(ts).total);
  assertEquals(trainingFlopsPerToken(ts), (3 * matmulFlopsByHand(ts, 256)) / 256);
  // Issue 4's PyTorch baseline: 31.8 ms per batch-32 step is about 29 TFLOP/s of matmul work.
  const tokensPerSecond = (32 * 256) / 0.0318;
  const achieved = tokensPerSecond * trainingFlopsPerToken(ts);
  assert(Math.abs(achieved / 29e12 - 1) < 0.05, `achieved ${achieved}`);
  assertEquals(modelFlopsUtilization(tokensPerSecond, ts, { peakFlopsPerSecond: achieved * 4 }), 0.25);
  assertThrows(() => modelFlopsUtilization(1, ts, { peakFlopsPerSecond: 0 }), "Peak FLOP/s must be positive");
});

Deno.test("memory counts parameters, gradients, AdamW moments and activations", () => {
  const s = GPT2.small;
  const P = parameterCounts(s).total;
  const m = memoryUsage(s, { batchSize: 2 });
  assertEquals([m.parameters, m.gradients, m.optimizerState], [4 * P, 4 * P, 8 * P]);
  // Activations by hand for B = 2, T = 1024 (elements), then 4 bytes each.
  const B = 2, T = 1024, d = 768, h = 12, f = 3072, V = 50257, L = 12;
  const perLayer = B * T * (2 * d + 3 * d + 2 * h * T + 2 * d + 4 * f + d);
  assertEquals(m.activations, 4 * (L * perLayer + B * T * d + 2 * B * T * V));
  assertEquals(m.total, 16 * P + m.activations);
  // Activations grow linearly in the batch size; the rest does not change.
  const m4 = memoryUsage(s, { batchSize: 4 });
  assertEquals(m4.activations, 2 * m.activations);
  assertEquals(m4.parameters, m.parameters);
  assertEquals(memoryUsage(s, { bytesPerElement: 2 }).parameters, 2 * P);
});

Deno.test("accounting rejects bad shapes", () => {
  assertThrows(() => parameterCounts({ ...GPT2.small, numHeads: 7 }), "numHeads (7) to divide dModel (768)");
  assertThrows(() => forwardFlops(GPT2.small, { batchSize: 0 }), "batchSize to be a positive integer, got 0");
  assertThrows(() => parameterCounts({ ...GPT2.small, dFf: 1.5 }), "dFf");
});

Deno.test("accountingTable rows add up to the totals", () => {
  const rows = accountingTable(GPT2.medium, { batchSize: 2 });
  const total = rows.at(-1)!;
  const parts = rows.slice(0, -1);
  assertEquals(total.parameters, parameterCounts(GPT2.medium).total);
  assertEquals(total.forwardFlops, forwardFlops(GPT2.medium, { batchSize: 2 }).total);
  assertEquals(parts.reduce((s, r) => s + r.parameters, 0), total.parameters);
  assert(Math.abs(parts.reduce((s, r) => s + r.forwardFlops, 0) / total.forwardFlops - 1) < 1e-12);
  assert(Math.abs(parts.reduce((s, r) => s + r.flopShare, 0) - 1) < 1e-12);
  assertEquals(rows.find((r) => r.component === "LM head")!.forwardFlops, 2 * 2 * 1024 * 1024 * 50257);
});

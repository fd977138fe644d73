/**
 * The transformer LM against PyTorch: golden files from `scripts/torch_golden.py` (a CS336-style PyTorch module,
 * float64 forward and backward on f32 weights) give logits, the mean cross-entropy and the gradient of every
 * parameter, for the default architecture and for each ablation variant. Also: parameter counts, state-dict names,
 * loadStateDict checks, config validation, RoPE positions, initialisation statistics and GPU memory.
 */
import { assert, assertClose, assertEquals, assertMatch, assertThrows } from "./assert.ts";
import { maxAbs } from "./harness.ts";
import {
  add,
  crossEntropy,
  gpu,
  initGpu,
  mul,
  noGrad,
  param,
  randn,
  readAll,
  sum,
  type Tensor,
  tensor,
  tidy,
} from "../lib/tensor/mod.ts";
import { Linear } from "../lib/nn/layers.ts";
import { Rng } from "../lib/util/random.ts";
import { TransformerLM } from "../lib/nn/mod.ts";
import { ConfigError } from "../lib/util/validate.ts";
import { type ModelConfig, type ModelConfigInput, parseModelConfig } from "../lib/nn/config.ts";
import { encodeSafetensors, readSafetensors, type TensorEntry, type TensorMap } from "../lib/io/safetensors.ts";
import { parameterCounts } from "../lib/nn/accounting.ts";

await initGpu();

const GOLDEN = new URL("./golden/", import.meta.url);

/** Several ablations at once, for the round trip through PyTorch. */
const variantMix: Partial<ModelConfigInput> = {
  norm: "post",
  ffn: "silu",
  dFf: 128,
  tieEmbeddings: true,
  parallelLayers: true,
};

interface Golden {
  config: ModelConfigInput;
  weights: Map<string, { shape: number[]; data: Float32Array }>;
  entries: Map<string, TensorEntry>;
}

async function loadGolden(name: string): Promise<Golden> {
  const { tensors, metadata } = await readSafetensors(new URL(name, GOLDEN).pathname);
  const config = JSON.parse(metadata.config) as ModelConfigInput;
  const weights = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [key, e] of tensors) {
    if (key.startsWith("grad.") || ["input_ids", "targets", "logits", "loss"].includes(key)) continue;
    assertEquals(e.dtype, "F32", `${key} dtype`);
    weights.set(key, { shape: e.shape, data: e.data as Float32Array });
  }
  return { config, weights, entries: tensors };
}

function entry(g: Golden, key: string): TensorEntry {
  const e = g.entries.get(key);
  if (!e) throw new Error(`Golden file has no ${key}`);
  return e;
}

function ids(e: TensorEntry): Tensor {
  assertEquals(e.dtype, "I32");
  return tensor(e.data as Int32Array, { shape: e.shape });
}

/**
 * Compares against a float64 reference: within 1e-4 relative per element, plus an absolute floor of 1e-5 of the
 * tensor's largest magnitude (elements that cancel to near zero carry the rounding of their large terms).
 */
function assertMatches(actual: ArrayLike<number>, expected: ArrayLike<number>, msg: string): void {
  assertClose(actual, expected, { rtol: 1e-4, atol: 1e-5 * Math.max(maxAbs(expected), 1e-30), msg });
}

/** Largest |a - e| / max|e| over a tensor, for the report of how close we are. */
function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  return worst / Math.max(maxAbs(expected), 1e-30);
}

/** `unfused`: the separate q/k/v and w1/w3 matmuls instead of the default fused projections (same values). */
async function checkAgainstTorch(file: string, unfused = false): Promise<void> {
  const g = await loadGolden(file);
  const model = new TransformerLM(unfused ? { ...g.config, fusedProjections: false } : g.config, { seed: 0 });
  try {
    assertEquals([...model.stateDict().keys()], [...g.weights.keys()], "parameter names and order");
    model.loadStateDict(g.weights);
    const params = [...model.parameters()];
    const [logits, loss, ...grads] = await tidy(() => {
      const out = model.forward(ids(entry(g, "input_ids")));
      const l = crossEntropy(out, ids(entry(g, "targets")));
      l.backward();
      return readAll([out, l, ...params.map(([, p]) => p.grad!)]);
    });
    const expectedLogits = entry(g, "logits");
    assertEquals([...expectedLogits.shape], [...entry(g, "input_ids").shape, g.config.vocabSize]);
    assertMatches(logits, expectedLogits.data as Float32Array, `${file} logits`);
    assertClose(loss, entry(g, "loss").data as Float32Array, { rtol: 1e-5, atol: 0, msg: `${file} loss` });
    let worst = relError(logits, expectedLogits.data as Float32Array);
    params.forEach(([name], i) => {
      const expected = entry(g, `grad.${name}`).data as Float32Array;
      assertMatches(grads[i], expected, `${file} grad.${name}`);
      worst = Math.max(worst, relError(grads[i], expected));
    });
    if (Deno.env.get("MODEL_TEST_VERBOSE")) {
      console.log(`${file}: largest error / max magnitude ${worst.toExponential(2)}`);
    }
  } finally {
    model.dispose();
  }
}

// ---- Against PyTorch --------------------------------------------------------------------------------------------

Deno.test("TransformerLM matches PyTorch: logits, loss and every parameter gradient (pre-norm, RoPE, SwiGLU)", async () => {
  await checkAgainstTorch("lm_small.safetensors");
});

for (const variant of ["post_silu_tied_nope", "parallel_pre", "norm_none", "parallel_post_tied", "head_dim_6"]) {
  Deno.test(`TransformerLM matches PyTorch: variant ${variant}`, async () => {
    await checkAgainstTorch(`lm_${variant}.safetensors`);
  });
}

Deno.test("TransformerLM matches PyTorch with unfused projections (fusedProjections: false), every variant", async () => {
  for (
    const variant of ["small", "post_silu_tied_nope", "parallel_pre", "norm_none", "parallel_post_tied", "head_dim_6"]
  ) {
    await checkAgainstTorch(`lm_${variant}.safetensors`, true);
  }
});

// The other direction: our weights, written to safetensors, load strictly into the PyTorch module and give our
// logits. Needs Debian's torch on /usr/bin/python3 (CI images without it skip this test and say so).
const PYTHON = "/usr/bin/python3";
const hasTorch = (() => {
  try {
    return new Deno.Command(PYTHON, { args: ["-c", "import torch"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
})();

for (const [name, v] of [["default", {}], ["post_silu_tied_parallel", variantMix]] as const) {
  Deno.test({
    name: `our weights load into the PyTorch module with load_state_dict(strict) and give our logits (${name})`,
    ignore: !hasTorch,
    fn: async () => {
      const model = new TransformerLM({ ...small, ...v }, { seed: 21 });
      const B = 2, T = 10;
      const x = tensor(Int32Array.from({ length: B * T }, (_, i) => (i * 17 + 1) % small.vocabSize), { shape: [B, T] });
      const dir = await Deno.makeTempDir();
      try {
        const dict = [...model.stateDict()];
        const [logits, ...weights] = await tidy(() =>
          noGrad(() => readAll([model.forward(x), ...dict.map(([, t]) => t)]))
        );
        const tensors: TensorMap = new Map(
          dict.map(([key, t], i) => [key, { dtype: "F32", shape: [...t.shape], data: weights[i] }]),
        );
        tensors.set("input_ids", { dtype: "I32", shape: [B, T], data: await x.data() });
        tensors.set("logits", { dtype: "F32", shape: [B, T, small.vocabSize], data: logits });
        const path = `${dir}/weights.safetensors`;
        await Deno.writeFile(path, encodeSafetensors(tensors, { metadata: { config: JSON.stringify(model.config) } }));
        const script = new URL("../scripts/torch_golden.py", import.meta.url).pathname;
        const out = await new Deno.Command(PYTHON, { args: [script, "--check", path] }).output();
        const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
        assert(out.success, `PyTorch check failed:\n${text}`);
        assertMatch(text, /weights loaded strictly/);
      } finally {
        await Deno.remove(dir, { recursive: true });
        x.dispose();
        model.dispose();
      }
    },
  });
}

// ---- Structure --------------------------------------------------------------------------------------------------

const small: ModelConfigInput = {
  vocabSize: 50,
  contextLength: 16,
  dModel: 32,
  numLayers: 2,
  numHeads: 4,
  dFf: 48,
  ropeTheta: 10000,
};

const variants: Record<string, Partial<ModelConfigInput>> = {
  post: { norm: "post" },
  none: { norm: "none" },
  nope: { position: "none" },
  silu: { ffn: "silu", dFf: 128 },
  parallel: { parallelLayers: true },
  tied: { tieEmbeddings: true },
};

/** The parameter count written out from the architecture, independently of the model's bookkeeping. */
function expectedCount(c: ModelConfig): number {
  const d = c.dModel, hasNorm = (c.norm ?? "pre") !== "none";
  const normsPerLayer = hasNorm ? (c.parallelLayers ? 1 : 2) : 0;
  const perLayer = 4 * d * d + (c.ffn === "silu" ? 2 : 3) * d * c.dFf + normsPerLayer * d;
  return c.vocabSize * d * (c.tieEmbeddings ? 1 : 2) + c.numLayers * perLayer + (hasNorm ? d : 0);
}

Deno.test("numParameters matches the formula and the accounting module, for every variant", () => {
  for (const [name, v] of [["default", {}], ...Object.entries(variants)] as const) {
    const c = { ...small, ...v };
    const model = new TransformerLM(c);
    try {
      assertEquals(model.numParameters(), expectedCount(model.config), name);
      assertEquals(model.numParameters(), parameterCounts(model.config).total, `${name} vs accounting`);
    } finally {
      model.dispose();
    }
  }
  // The CS336 GPT-2 XL figure, from the formula alone (the model itself would need 8.5 GB).
  const xl = { vocabSize: 50257, contextLength: 1024, dModel: 1600, numLayers: 48, numHeads: 25, dFf: 6400 };
  assertEquals(expectedCount(parseModelConfig(xl)), 2_127_057_600);
});

Deno.test("stateDict has exactly the CS336 names in module order, and the variants drop the right ones", () => {
  const names = (v: Partial<ModelConfigInput>) => {
    const model = new TransformerLM({ ...small, numLayers: 1, ...v });
    const keys = [...model.stateDict().keys()];
    const shapes = [...model.stateDict().values()].map((t) => [...t.shape]);
    model.dispose();
    return { keys, shapes };
  };
  const { keys, shapes } = names({});
  assertEquals(keys, [
    "token_embeddings.weight",
    "layers.0.attn.q_proj.weight",
    "layers.0.attn.k_proj.weight",
    "layers.0.attn.v_proj.weight",
    "layers.0.attn.output_proj.weight",
    "layers.0.ln1.weight",
    "layers.0.ffn.w1.weight",
    "layers.0.ffn.w2.weight",
    "layers.0.ffn.w3.weight",
    "layers.0.ln2.weight",
    "ln_final.weight",
    "lm_head.weight",
  ]);
  assertEquals(shapes, [[50, 32], [32, 32], [32, 32], [32, 32], [32, 32], [32], [48, 32], [32, 48], [48, 32], [32], [
    32,
  ], [50, 32]]);
  const without = (v: Partial<ModelConfigInput>) => keys.filter((k) => !names(v).keys.includes(k));
  assertEquals(without({ tieEmbeddings: true }), ["lm_head.weight"]);
  assertEquals(without({ ffn: "silu" }), ["layers.0.ffn.w3.weight"]);
  assertEquals(without({ norm: "none" }), ["layers.0.ln1.weight", "layers.0.ln2.weight", "ln_final.weight"]);
  assertEquals(without({ parallelLayers: true }), ["layers.0.ln2.weight"]);
  assertEquals(names({ norm: "post" }).keys, keys);
  assertEquals(names({ position: "none" }).keys, keys);
  // Parameters are named (errors and displays show the name) and trainable.
  const model = new TransformerLM(small);
  for (const [name, p] of model.parameters()) {
    assertEquals(p.name, name);
    assert(p.requiresGrad, `${name} requires grad`);
  }
  model.dispose();
});

Deno.test("loadStateDict: missing, unexpected, mis-shaped and mis-sized entries throw naming the key; nothing is written", async () => {
  const a = new TransformerLM(small, { seed: 1 }), b = new TransformerLM(small, { seed: 2 });
  try {
    const host = new Map((await readAll([...b.stateDict().values()])).map((data, i) => {
      const [name, t] = [...b.stateDict()][i];
      return [name, { shape: [...t.shape], data: data as Float32Array }];
    }));
    const before = await readAll([...a.stateDict().values()]);
    const without = new Map(host);
    without.delete("layers.1.ffn.w2.weight");
    assertThrows(() => a.loadStateDict(without), 'missing keys "layers.1.ffn.w2.weight"');
    assertThrows(
      () => a.loadStateDict(new Map([...host, ["layers.2.ln1.weight", host.get("ln_final.weight")!]])),
      'unexpected keys "layers.2.ln1.weight"',
    );
    const transposed = new Map(host);
    transposed.set("lm_head.weight", { shape: [32, 50], data: host.get("lm_head.weight")!.data });
    assertThrows(() => a.loadStateDict(transposed), '"lm_head.weight" has shape (32, 50), the model expects (50, 32)');
    const short = new Map(host);
    short.set("ln_final.weight", { shape: [32], data: new Float32Array(31) });
    assertThrows(() => a.loadStateDict(short), '"ln_final.weight" needs a Float32Array of 32 values, got 31 values');
    // A bad map must leave the weights alone, even the entries that were fine.
    const after = await readAll([...a.stateDict().values()]);
    after.forEach((x, i) => assertEquals(x, before[i]));

    // Host arrays and tensors both load, in place (the parameter objects an optimizer holds stay the same).
    const paramsBefore = [...a.parameters().values()];
    a.loadStateDict(host);
    assertEquals([...a.parameters().values()], paramsBefore);
    const loaded = await readAll([...a.stateDict().values()]);
    loaded.forEach((x, i) => assertEquals(x, [...host.values()][i].data));
    const c = new TransformerLM(small, { seed: 3 });
    c.loadStateDict(Object.fromEntries(a.stateDict()));
    const x = tensor(Int32Array.from({ length: 2 * 16 }, (_, i) => (i * 7) % 50), { shape: [2, 16] });
    const [la, lc] = await tidy(() => noGrad(() => readAll([a.forward(x), c.forward(x)])));
    assertEquals(lc, la);
    c.dispose();
    x.dispose();
  } finally {
    a.dispose();
    b.dispose();
  }
});

Deno.test("config validation names the field; defaults are filled in", () => {
  const fails = (input: ModelConfigInput, path: string, message: string) => {
    const e = assertThrows(() => new TransformerLM(input), message);
    assert(e instanceof ConfigError && e.issues.some((i) => i.path === path), `${e.message} names ${path}`);
  };
  fails({ ...small, numHeads: 5 }, "numHeads", "numHeads (5) must divide dModel (32)");
  fails({ ...small, numHeads: 32 }, "numHeads", "RoPE needs an even head dimension, got dModel / numHeads = 1");
  fails({ ...small, dFf: 0 }, "dFf", "dFf");
  fails({ ...small, vocabSize: 2.5 }, "vocabSize", "vocabSize");
  fails({ ...small, ropeTheta: -1 }, "ropeTheta", "ropeTheta");
  fails({ ...small, norm: "middle" as "pre" }, "norm", "norm");
  fails({ ...small, fusedProjections: "yes" as unknown as boolean }, "fusedProjections", "fusedProjections");
  // Without RoPE an odd head dim is fine.
  new TransformerLM({ ...small, numHeads: 32, position: "none" }).dispose();
  const model = new TransformerLM({ vocabSize: 10, contextLength: 8, dModel: 32, numLayers: 1, numHeads: 4 });
  assertEquals(model.config, {
    vocabSize: 10,
    contextLength: 8,
    dModel: 32,
    numLayers: 1,
    numHeads: 4,
    dFf: 128, // 8/3 dModel rounded up to a multiple of 64
    ropeTheta: 10000,
    normEps: 1e-5,
    norm: "pre",
    position: "rope",
    ffn: "swiglu",
    parallelLayers: false,
    tieEmbeddings: false,
    fusedProjections: true,
  });
  model.dispose();
});

Deno.test("forward rejects ids that are not i32 (batch, seq) within the context length", () => {
  const model = new TransformerLM(small);
  try {
    tidy(() => {
      assertThrows(() => model.forward(tensor([[1, 2, 3]])), "ids must be an i32 tensor (batch, seq)");
      assertThrows(() => model.forward(tensor(new Int32Array(3))), "ids must be an i32 tensor (batch, seq)");
      assertThrows(
        () => model.forward(tensor(new Int32Array(17), { shape: [1, 17] })),
        "sequence length 17 is outside [1, contextLength = 16]",
      );
      const idsT = tensor(new Int32Array(6), { shape: [2, 3] });
      assertThrows(
        () => model.forward(idsT, { positions: tensor(new Int32Array(4)) }),
        "positions (4) i32 must be (3) or (2, 3)",
      );
    });
  } finally {
    model.dispose();
  }
});

Deno.test("variants: right shape, finite, and each differs from the default", async () => {
  const B = 2, T = 9;
  const x = tensor(Int32Array.from({ length: B * T }, (_, i) => (i * 13 + 5) % small.vocabSize), { shape: [B, T] });
  const logitsOf = async (c: ModelConfigInput) => {
    const model = new TransformerLM(c, { seed: 7 });
    try {
      return await tidy(() => {
        const out = model.forward(x);
        assertEquals([...out.shape], [B, T, c.vocabSize]);
        return out.data();
      });
    } finally {
      model.dispose();
    }
  };
  const base = await logitsOf(small);
  assert(base.every(Number.isFinite), "default logits finite");
  for (const [name, v] of Object.entries(variants)) {
    const out = await logitsOf({ ...small, ...v });
    assert(out.every(Number.isFinite), `${name} logits finite`);
    const diff = maxAbs(out.map((y, i) => y - base[i]));
    assert(diff > 1e-3 * maxAbs(base), `${name} logits differ from the default (max difference ${diff})`);
  }
  x.dispose();
});

// ---- Positions ----------------------------------------------------------------------------------------------------

Deno.test("RoPE positions: a common shift leaves logits unchanged (relative encoding), a permutation does not", async () => {
  const B = 2, T = 8;
  const model = new TransformerLM({ ...small, contextLength: 32 }, { seed: 4 });
  try {
    const x = tensor(Int32Array.from({ length: B * T }, (_, i) => (i * 11 + 3) % small.vocabSize), { shape: [B, T] });
    const arange = (start: number) => Int32Array.from({ length: T }, (_, i) => start + i);
    const [base, explicit, shifted, perBatch, shuffled] = await tidy(() =>
      noGrad(() =>
        readAll([
          model.forward(x),
          model.forward(x, { positions: tensor(arange(0)) }),
          model.forward(x, { positions: tensor(arange(5)) }),
          model.forward(x, { positions: tensor(Int32Array.from([...arange(3), ...arange(20)]), { shape: [B, T] }) }),
          model.forward(x, { positions: tensor(Int32Array.from([0, 2, 1, 3, 4, 5, 6, 7])) }),
        ])
      )
    );
    assertEquals(explicit, base);
    // Rotations by the same angle cancel in q·k, so only relative positions matter (up to f32 rounding of cos/sin).
    assertClose(shifted, base, { atol: 1e-4, rtol: 1e-4, msg: "shift by 5" });
    assertClose(perBatch, base, { atol: 1e-4, rtol: 1e-4, msg: "per-sequence shifts 3 and 20" });
    assert(maxAbs(shuffled.map((y, i) => y - base[i])) > 1e-3, "permuted positions change the logits");
    x.dispose();
  } finally {
    model.dispose();
  }
});

// ---- Initialisation -----------------------------------------------------------------------------------------------

function stats(data: Float32Array): { mean: number; std: number; maxAbs: number } {
  let s = 0, s2 = 0;
  for (const v of data) s += v;
  const mean = s / data.length;
  for (const v of data) s2 += (v - mean) ** 2;
  return { mean, std: Math.sqrt(s2 / data.length), maxAbs: maxAbs(data) };
}

Deno.test("initialisation: truncated normal std sqrt(2/(in+out)) within ±3σ, embeddings N(0,1) within ±3, norms 1", async () => {
  const c: ModelConfigInput = { ...small, vocabSize: 512, dModel: 64, dFf: 192, numLayers: 1 };
  const model = new TransformerLM(c, { seed: 11 });
  try {
    const dict = model.stateDict();
    const values = await readAll([...dict.values()]);
    const byName = new Map([...dict.keys()].map((k, i) => [k, values[i] as Float32Array]));
    // A normal truncated at ±3σ has std 0.9866σ.
    const linear: [string, number, number][] = [
      ["layers.0.attn.q_proj.weight", 64, 64],
      ["layers.0.attn.output_proj.weight", 64, 64],
      ["layers.0.ffn.w1.weight", 64, 192],
      ["layers.0.ffn.w2.weight", 192, 64],
      ["lm_head.weight", 64, 512],
    ];
    for (const [name, fanIn, fanOut] of linear) {
      const sigma = Math.sqrt(2 / (fanIn + fanOut)), s = stats(byName.get(name)!);
      assert(Math.abs(s.std / (0.9866 * sigma) - 1) < 0.04, `${name}: std ${s.std}, expected about ${0.9866 * sigma}`);
      assert(Math.abs(s.mean) < 0.05 * sigma, `${name}: mean ${s.mean}`);
      assert(s.maxAbs <= 3 * sigma * (1 + 1e-6), `${name}: |w| reaches ${s.maxAbs} > 3σ = ${3 * sigma}`);
      assert(s.maxAbs > 2.5 * sigma, `${name}: |w| only reaches ${s.maxAbs}; the tails look cut too early`);
    }
    const emb = stats(byName.get("token_embeddings.weight")!);
    assert(
      Math.abs(emb.std / 0.9866 - 1) < 0.03 && emb.maxAbs <= 3 && emb.maxAbs > 2.8,
      `embedding ${JSON.stringify(emb)}`,
    );
    for (const name of ["layers.0.ln1.weight", "layers.0.ln2.weight", "ln_final.weight"]) {
      assert(byName.get(name)!.every((v) => v === 1), `${name} starts at ones`);
    }
    // The seed fixes the weights; another seed changes them.
    const again = new TransformerLM(c, { seed: 11 }), other = new TransformerLM(c, { seed: 12 });
    const [w0, w1] = await readAll([
      again.stateDict().get("layers.0.ffn.w3.weight")!,
      other.stateDict().get("layers.0.ffn.w3.weight")!,
    ]);
    assertEquals(w0, byName.get("layers.0.ffn.w3.weight"));
    assert(!w1.every((v, i) => v === w0[i]), "another seed gives other weights");
    again.dispose();
    other.dispose();
  } finally {
    model.dispose();
  }
});

// ---- Memory -------------------------------------------------------------------------------------------------------

Deno.test("a training step inside tidy leaves only the gradients; dispose frees the parameters", async () => {
  const model = new TransformerLM(small, { seed: 5 });
  const numParams = model.parameters().size;
  const x = tensor(Int32Array.from({ length: 2 * 16 }, (_, i) => i % 50), { shape: [2, 16] });
  const step = () => tidy(() => crossEntropy(model.forward(x), x).backward());
  // Buffers, not tensors: the fused projections' weights lie in one buffer (Linear.packRows), and the first
  // step's gradients of those weights are views of one buffer too.
  const buffers = (ts: Tensor[]) => new Set(ts.map((t) => t.buffer.buffer)).size;
  const params = [...model.parameters().values()];
  const paramBuffers = buffers(params);
  assert(paramBuffers < numParams, `${paramBuffers} buffers for ${numParams} parameters: none packed`);
  const beforeFirst = gpu().memory().inUseBuffers;
  step();
  const afterFirst = gpu().memory().inUseBuffers;
  // The first step adds the gradients, the cached positions 0..T-1 and (when new) RoPE's cos/sin table.
  const added = afterFirst - beforeFirst, firstGrads = buffers(params.map((p) => p.grad!));
  assert(
    added === firstGrads + 1 || added === firstGrads + 2,
    `the first step kept ${added} buffers, ${firstGrads} grads`,
  );
  step(); // from here on each gradient is a sum in its own buffer
  const steady = gpu().memory().inUseBuffers;
  assertEquals(steady - afterFirst, numParams - firstGrads, "the second step's sums replace the first's views");
  for (let i = 0; i < 3; i++) step();
  await readAll([model.stateDict().get("ln_final.weight")!.grad!]);
  assertEquals(gpu().memory().inUseBuffers, steady, "steady state: no buffer leaks across steps");
  // Disposing frees the parameters, their gradients and the cached positions.
  model.dispose();
  assertEquals(gpu().memory().inUseBuffers, steady - paramBuffers - numParams - 1);
  x.dispose();
});

Deno.test("Linear with a residual: residual + x W^T in one matmul, same values and gradients; mismatches throw", async () => {
  const proj = new Linear(6, 4, { rng: new Rng(3) });
  const x = param(randn([2, 3, 6], { seed: 1 })), r = param(randn([2, 3, 4], { seed: 2 }));
  const [fusedY, fusedGx, fusedGr, fusedGw] = await tidy(async () => {
    const y = proj.forward(x, { residual: r });
    sum(mul(y, y)).backward();
    const out = await readAll([y, x.grad!, r.grad!, proj.weight.grad!]);
    for (const t of [x, r, proj.weight]) {
      t.grad?.dispose();
      t.grad = null;
    }
    return out;
  });
  const [plainY, plainGx, plainGr, plainGw] = await tidy(async () => {
    const y = add(r, proj.forward(x));
    sum(mul(y, y)).backward();
    return await readAll([y, x.grad!, r.grad!, proj.weight.grad!]);
  });
  assertClose(fusedY, plainY, { atol: 1e-6, rtol: 1e-6, msg: "y" });
  assertClose(fusedGx, plainGx, { atol: 1e-5, rtol: 1e-5, msg: "dx" });
  assertClose(fusedGr, plainGr, { atol: 1e-5, rtol: 1e-5, msg: "dresidual" });
  assertClose(fusedGw, plainGw, { atol: 1e-5, rtol: 1e-5, msg: "dW" });
  assertThrows(() => proj.forward(x, { residual: randn([2, 3, 5]) }), "residual");
  for (const t of [x, r, proj.weight]) t.dispose();
});

/**
 * Checks the PyTorch golden files (scripts/torch_golden.py) against an independent float64 CPU reference, so the
 * model and optimizer tests can trust them: same parameter names and layouts, same logits, loss, gradients, and
 * AdamW trajectory.
 */
import { parseModelConfig } from "../lib/config.ts";
import { parameterCounts } from "../lib/accounting.ts";
import { readSafetensors, type TensorEntry } from "../lib/safetensors.ts";
import { assert, assertClose, assertEquals } from "./assert.ts";
import {
  referenceAdamWStep,
  type ReferenceConfig,
  referenceCrossEntropy,
  referenceLogits,
  type Weights,
} from "./cpu_reference.ts";

const dir = new URL("./golden/", import.meta.url);

function modelWeights(tensors: Map<string, TensorEntry>): Weights {
  const w: Weights = new Map();
  for (const [name, t] of tensors) {
    if (name.startsWith("grad.") || ["input_ids", "targets", "logits", "loss"].includes(name)) continue;
    w.set(name, { shape: t.shape, data: t.data as Float32Array });
  }
  return w;
}

Deno.test("lm_small golden: names, shapes and metadata follow the CS336 state dict", async () => {
  const { tensors, metadata } = await readSafetensors(new URL("lm_small.safetensors", dir).pathname);
  const cfg = parseModelConfig(JSON.parse(metadata.config));
  assertEquals([cfg.vocabSize, cfg.contextLength, cfg.dModel, cfg.numLayers, cfg.numHeads, cfg.dFf], [
    61,
    12,
    32,
    2,
    4,
    40,
  ]);
  const w = modelWeights(tensors);
  const d = cfg.dModel, f = cfg.dFf, V = cfg.vocabSize;
  const expected: [string, number[]][] = [["token_embeddings.weight", [V, d]]];
  for (let i = 0; i < cfg.numLayers; i++) {
    for (const p of ["q_proj", "k_proj", "v_proj", "output_proj"]) {
      expected.push([`layers.${i}.attn.${p}.weight`, [d, d]]);
    }
    expected.push([`layers.${i}.ln1.weight`, [d]], [`layers.${i}.ln2.weight`, [d]]);
    expected.push([`layers.${i}.ffn.w1.weight`, [f, d]], [`layers.${i}.ffn.w2.weight`, [d, f]]);
    expected.push([`layers.${i}.ffn.w3.weight`, [f, d]]);
  }
  expected.push(["ln_final.weight", [d]], ["lm_head.weight", [V, d]]);
  assertEquals(new Map([...w].map(([n, t]) => [n, t.shape])), new Map(expected));
  let count = 0;
  for (const t of w.values()) count += t.data.length;
  assertEquals(count, parameterCounts(cfg).total);
  for (const [name] of expected) assertEquals(tensors.get(`grad.${name}`)!.shape, w.get(name)!.shape, `grad.${name}`);
  assertEquals(tensors.get("input_ids")!.dtype, "I32");
  assertEquals(tensors.get("input_ids")!.shape, [2, 11]);
  assertEquals(tensors.get("logits")!.shape, [2, 11, 61]);
  assertEquals(tensors.get("loss")!.shape, []);
});

Deno.test("lm_small golden: an independent CPU forward pass gives the same logits and loss", async () => {
  const { tensors, metadata } = await readSafetensors(new URL("lm_small.safetensors", dir).pathname);
  const cfg = parseModelConfig(JSON.parse(metadata.config)) as ReferenceConfig;
  const w = modelWeights(tensors);
  const ids = tensors.get("input_ids")!.data as Int32Array, targets = tensors.get("targets")!.data as Int32Array;
  const [B, T] = tensors.get("input_ids")!.shape, V = cfg.vocabSize;
  const logits = new Float64Array(B * T * V);
  for (let b = 0; b < B; b++) logits.set(referenceLogits(w, cfg, ids.subarray(b * T, (b + 1) * T)), b * T * V);
  assertClose(logits, tensors.get("logits")!.data as Float32Array, { atol: 2e-5, rtol: 1e-5, msg: "logits" });
  const loss = referenceCrossEntropy(logits, targets, V);
  assertClose([loss], tensors.get("loss")!.data as Float32Array, { atol: 1e-6, rtol: 1e-6, msg: "loss" });
});

Deno.test("lm_small golden: gradients agree with central differences of the CPU loss", async () => {
  const { tensors, metadata } = await readSafetensors(new URL("lm_small.safetensors", dir).pathname);
  const cfg = parseModelConfig(JSON.parse(metadata.config)) as ReferenceConfig;
  const ids = tensors.get("input_ids")!.data as Int32Array, targets = tensors.get("targets")!.data as Int32Array;
  const [B, T] = tensors.get("input_ids")!.shape, V = cfg.vocabSize;
  // float64 copies, so perturbations are exact.
  const w: Weights = new Map(
    [...modelWeights(tensors)].map(([n, t]) => [n, { shape: t.shape, data: Float64Array.from(t.data) }]),
  );
  const loss = () => {
    const logits = new Float64Array(B * T * V);
    for (let b = 0; b < B; b++) logits.set(referenceLogits(w, cfg, ids.subarray(b * T, (b + 1) * T)), b * T * V);
    return referenceCrossEntropy(logits, targets, V);
  };
  // A few elements of every kind of weight, including one embedding row actually used by the input.
  const probes: [string, number][] = [
    ["token_embeddings.weight", ids[0] * cfg.dModel + 3],
    ["layers.0.attn.q_proj.weight", 17],
    ["layers.0.attn.k_proj.weight", 200],
    ["layers.1.attn.v_proj.weight", 5],
    ["layers.1.attn.output_proj.weight", 900],
    ["layers.0.ln1.weight", 7],
    ["layers.1.ln2.weight", 30],
    ["layers.0.ffn.w1.weight", 101],
    ["layers.1.ffn.w2.weight", 333],
    ["layers.0.ffn.w3.weight", 640],
    ["ln_final.weight", 0],
    ["lm_head.weight", targets[0] * cfg.dModel + 1],
  ];
  const h = 1e-5;
  for (const [name, i] of probes) {
    const data = w.get(name)!.data as Float64Array, orig = data[i];
    data[i] = orig + h;
    const up = loss();
    data[i] = orig - h;
    const down = loss();
    data[i] = orig;
    const numeric = (up - down) / (2 * h);
    const golden = (tensors.get(`grad.${name}`)!.data as Float32Array)[i];
    assertClose([numeric], [golden], { atol: 1e-6, rtol: 1e-3, msg: `grad.${name}[${i}]` });
    assert(name === "token_embeddings.weight" || Math.abs(golden) > 1e-7, `probe ${name}[${i}] has a zero gradient`);
  }
});

Deno.test("adamw_step golden: the CPU reference reproduces three clipped AdamW steps", async () => {
  const { tensors, metadata } = await readSafetensors(new URL("adamw_step.safetensors", dir).pathname);
  const hp = {
    lr: Number(metadata.lr),
    beta1: Number(metadata.beta1),
    beta2: Number(metadata.beta2),
    eps: Number(metadata.eps),
    weightDecay: Number(metadata.weight_decay),
    maxNorm: Number(metadata.max_norm),
  };
  assertEquals(hp, { lr: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, maxNorm: 2 });
  const names = [...tensors.keys()].filter((k) => k.startsWith("param.")).map((k) => k.slice(6));
  assertEquals(names.length, 3);
  const params = new Map(names.map((n) => [n, Float64Array.from(tensors.get(`param.${n}`)!.data as Float32Array)]));
  const state = {
    m: new Map(names.map((n) => [n, new Float64Array(params.get(n)!.length)])),
    v: new Map(names.map((n) => [n, new Float64Array(params.get(n)!.length)])),
    t: 0,
  };
  const norms: number[] = [];
  for (let t = 1; t <= Number(metadata.steps); t++) {
    state.t = t;
    const grads = new Map(names.map((n) => [n, tensors.get(`grad.${t}.${n}`)!.data as Float32Array]));
    norms.push(referenceAdamWStep(params, grads, state, hp));
  }
  assertClose(norms, JSON.parse(metadata.grad_norms), { atol: 0, rtol: 1e-6, msg: "gradient norms" });
  assert(norms[0] > hp.maxNorm && norms[1] < hp.maxNorm, "golden exercises clipped and unclipped steps");
  for (const n of names) {
    assertClose(params.get(n)!, tensors.get(`param_after.${n}`)!.data as Float32Array, {
      atol: 1e-6,
      rtol: 1e-5,
      msg: n,
    });
    assertClose(state.m.get(n)!, tensors.get(`m.${n}`)!.data as Float32Array, {
      atol: 1e-7,
      rtol: 1e-5,
      msg: `m ${n}`,
    });
    assertClose(state.v.get(n)!, tensors.get(`v.${n}`)!.data as Float32Array, {
      atol: 1e-8,
      rtol: 1e-5,
      msg: `v ${n}`,
    });
  }
});

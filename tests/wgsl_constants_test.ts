/**
 * The WGSL the backend compiles must be valid for every WebGPU implementation, not only for Deno's (wgpu/naga). The
 * WGSL spec makes a constant expression whose value is not finite a shader-creation error, and Chrome's compiler
 * (Tint) enforces it: `bitcast<f32>(0xff800000u)` (-inf, the start of a running maximum) failed to compile there, so
 * softmax, attention, cross-entropy, RoPE and sampling wrote nothing in a browser while passing every test here.
 * These tests record the source of every shader module the ops create and look for such constants.
 */
import { assert } from "./assert.ts";
import { assertNoGpuErrors } from "./harness.ts";
import { crossEntropy, gpu, initGpu, logSoftmax, max, pow, readAll, softmax, tensor, tidy } from "../lib/tensor/mod.ts";
import { TransformerLM } from "../lib/nn/mod.ts";
import { generateStream } from "../lib/sample/mod.ts";

await initGpu();

/** Every shader the backend hands to WebGPU from now on: its label (the kernel's name) and source. */
const shaders: { label: string; code: string }[] = [];
const device = gpu().device;
const createShaderModule = device.createShaderModule.bind(device);
device.createShaderModule = (descriptor: GPUShaderModuleDescriptor) => {
  shaders.push({ label: descriptor.label ?? "", code: descriptor.code });
  return createShaderModule(descriptor);
};

/** `bitcast<f32>(<integer literal>)` expressions whose bits are an infinity or a NaN (all exponent bits set). */
function nonFiniteConstants(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(/bitcast<f32>\(\s*(0[xX][0-9a-fA-F]+|[0-9]+)[uiU]?\s*\)/g)) {
    const bits = Number(m[1]) >>> 0;
    if (((bits >>> 23) & 0xff) === 0xff) found.push(m[0]);
  }
  return found;
}

Deno.test("nonFiniteConstants finds -inf, +inf and NaN bit patterns and nothing else", () => {
  const source = "let a = bitcast<f32>(0xff800000u); let b = bitcast<f32>(0x7f800000u);" +
    "let c = bitcast<f32>(0x7fc00000u); let d = bitcast<f32>(0x3f800000u); let e = bitcast<f32>(bits);";
  assert(nonFiniteConstants(source).length === 3, `${nonFiniteConstants(source)}`);
});

Deno.test("shaders hold no constant infinity or NaN: softmax, reductions, cross-entropy, pow, a model, decoding", async () => {
  const x = tensor(Float32Array.from([1, 2, 3, -1, 0, 5]), { shape: [2, 3] });
  const targets = tensor(Int32Array.from([2, 0]), { shape: [2], dtype: "i32" });
  await readAll([softmax(x), logSoftmax(x), max(x, { axis: -1 }), crossEntropy(x, targets), pow(x, x)]);
  const model = new TransformerLM({ vocabSize: 16, contextLength: 8, dModel: 8, numLayers: 1, numHeads: 2 }, {
    seed: 1,
  });
  const ids = tensor(Int32Array.from([1, 2, 3, 4]), { shape: [1, 4], dtype: "i32" });
  tidy(() => crossEntropy(model.forward(ids), ids).backward());
  for (const p of model.parameters().values()) await p.grad!.data();
  for await (const _ of generateStream(model, [1, 2], { maxNewTokens: 2, topK: 4, topP: 0.9, seed: 3 })) {
    // decoding with sampling: the decode and sample kernels
  }
  assertNoGpuErrors();
  assert(shaders.length > 10, `only ${shaders.length} shaders were created`);
  const bad = shaders.flatMap((s) => nonFiniteConstants(s.code).map((c) => `${s.label}: ${c}`));
  assert(
    bad.length === 0,
    `shaders with constant non-finite values (invalid WGSL for Tint):\n${[...new Set(bad)].join("\n")}`,
  );
});

import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import { writeTokenFile } from "../data/token_files.ts";
import { gpu, initGpu } from "../gpu/backend.ts";
import type { DispatchProfile } from "../gpu/backend.ts";
import { gpuPeaks } from "../gpu/peaks.ts";
import { forwardFlops, trainingFlops } from "../nn/accounting.ts";
import { TransformerLM } from "../nn/transformer.ts";
import { AdamW } from "../optim/adamw.ts";
import { crossEntropy, keep, noGrad, tensor, tidy } from "../tensor/mod.ts";
import {
  type ChromeTrace,
  profileStep,
  resolvePeaks,
  type StepInputs,
  StepProfile,
  TRACE_TRACKS,
  writeChromeTrace,
} from "./profile.ts";
import { type StepMetrics, Trainer } from "./trainer.ts";

await initGpu();
const timestamps = gpu().info.timestamps;

const dispatch = (
  name: string,
  [start, end]: [number, number],
  cost?: { flops: number; bytes: number },
  hostMs = 0,
): DispatchProfile => ({ name, ...(cost ? { cost } : {}), hostMs, submitMs: hostMs, gpuStartMs: start, gpuEndMs: end });

Deno.test("the roofline table: achieved rates, intensity and the fraction of min(peak, intensity x bandwidth)", () => {
  // Peaks 10 TFLOP/s and 1000 GB/s: the ridge is at 10 FLOP/B.
  const peaks = { name: "test GPU", f32Tflops: 10, memoryGBps: 1000 };
  const profile = new StepProfile({
    adapter: "test",
    peaks,
    dispatches: [
      // Two dispatches of a compute-bound kernel: 4 GFLOP, 40 MB (100 FLOP/B) in 1 ms: 4 TFLOP/s of 10.
      dispatch("mm", [0, 0.5], { flops: 2e9, bytes: 2e7 }),
      // A memory-bound one: 1 MFLOP, 100 MB (0.01 FLOP/B) in 0.4 ms: 250 GB/s of 1000.
      dispatch("copy", [0.6, 1.0], { flops: 1e6, bytes: 1e8 }),
      dispatch("mm", [1.2, 1.7], { flops: 2e9, bytes: 2e7 }),
      // A hand-written kernel without a predicted cost: timed, but no rates.
      dispatch("custom", [1.7, 1.8]),
    ],
    phases: [],
  });
  const [mm, copy, custom] = profile.kernels;
  assertEquals(profile.kernels.map((k) => k.name), ["mm", "copy", "custom"]); // most GPU time first
  assertEquals([mm.dispatches, mm.gpuMs, mm.flops, mm.bytes, mm.predicted], [2, 1, 4e9, 4e7, 2]);
  const near = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.abs(b);
  assert(near(mm.tflops, 4) && near(mm.gbps, 40) && near(mm.intensity, 100), JSON.stringify(mm));
  assert(near(mm.roofline, 0.4), `compute-bound: 4 of 10 TFLOP/s, got ${mm.roofline}`);
  assert(near(copy.gbps, 250) && near(copy.intensity, 0.01), JSON.stringify(copy));
  // Attainable at 0.01 FLOP/B: 0.01 x 1000 GB/s = 10 GFLOP/s; achieved 2.5 GFLOP/s.
  assert(near(copy.roofline, 0.25) && near(copy.tflops / (0.01 * 1000 / 1000), 0.25), JSON.stringify(copy));
  assert(near(custom.gpuMs, 0.1) && custom.predicted === 0 && Number.isNaN(custom.roofline));
  const t = profile.totals;
  assertEquals([t.name, t.dispatches, t.predicted], ["total", 4, 3]);
  assert(near(t.gpuMs, 1.5) && near(t.flops, 4.001e9) && near(profile.spanMs, 1.8), JSON.stringify(t));
  assert(Number.isNaN(t.roofline), "a kernel without a cost leaves the total fraction unknown");
  const rows = profile.rows();
  assertEquals(rows.map((r) => r.kernel), ["mm", "copy", "custom", "total"]);
  assertEquals([rows[2]["TFLOP/s"], rows[2]["roofline %"]], [0, null]);
  assert(near(rows[0]["roofline %"] as number, 40) && near(rows[0]["GPU %"] as number, 100 / 1.5));
  assert(profile.toText().includes("GPU span 1.800 ms (kernels 1.500 ms, gaps 0.300 ms)"), profile.toText());
  // Without the custom kernel the total is the kernels' least time over their measured time: (0.4 + 0.1) / 1.4.
  const costed = new StepProfile({ ...profile, dispatches: profile.dispatches.slice(0, 3) });
  assert(near(costed.totals.roofline, (0.4 * 1 + 0.25 * 0.4) / 1.4), `${costed.totals.roofline}`);
  // No peaks: rates, but no fractions.
  const unknown = new StepProfile({ ...profile, peaks: null });
  assert(near(unknown.kernels[0].tflops, 4) && Number.isNaN(unknown.kernels[0].roofline));
});

/** Checks the trace's structure; returns its GPU and host-instant events. */
function checkTrace(trace: ChromeTrace, profile: StepProfile) {
  const parsed = JSON.parse(JSON.stringify(trace)) as ChromeTrace;
  assertEquals(parsed.displayTimeUnit, "ms");
  for (const e of parsed.traceEvents) {
    assert(["X", "i", "M"].includes(e.ph) && typeof e.name === "string", JSON.stringify(e));
    assert(e.pid === 1 && (e.tid === TRACE_TRACKS.gpu || e.tid === TRACE_TRACKS.host), JSON.stringify(e));
    assert(Number.isFinite(e.ts) && e.ts >= 0, `bad ts ${JSON.stringify(e)}`);
    if (e.ph === "X") assert(Number.isFinite(e.dur) && e.dur! >= 0, `bad dur ${JSON.stringify(e)}`);
  }
  const threads = parsed.traceEvents.filter((e) => e.ph === "M" && e.name === "thread_name");
  assertEquals(threads.map((e) => [e.tid, e.args?.name]), [[1, "GPU kernels"], [2, "host recording"]]);
  const kernels = parsed.traceEvents.filter((e) => e.ph === "X" && e.tid === TRACE_TRACKS.gpu);
  const records = parsed.traceEvents.filter((e) => e.ph === "i" && e.tid === TRACE_TRACKS.host);
  assertEquals(records.map((e) => e.name), profile.dispatches.map((d) => d.name));
  return { parsed, kernels, records };
}

Deno.test("the Chrome trace: GPU kernels from the timestamps, placed after their submission; host records", () => {
  const profile = new StepProfile({
    adapter: "test",
    peaks: null,
    dispatches: [
      { ...dispatch("a", [0, 1], { flops: 1, bytes: 4 }, 100), submitMs: 103 },
      { ...dispatch("b", [1.5, 2], undefined, 101), submitMs: 103 },
      // A second batch, submitted late: it sets the offset (GPU 10 ms = host 105 ms at the earliest).
      { ...dispatch("c", [10, 10.25], { flops: 2, bytes: 8 }, 104), submitMs: 115 },
    ],
    phases: [{ name: "forward", startMs: 99.5, endMs: 102 }, { name: "optimizer", startMs: 102, endMs: 104.5 }],
  });
  const { parsed, kernels, records } = checkTrace(profile.chromeTrace(), profile);
  // Origin 99.5 ms (the first phase); GPU offset 105 ms.
  assertEquals(kernels.map((e) => [e.name, e.ts, e.dur]), [["a", 5500, 1000], ["b", 7000, 500], ["c", 15500, 250]]);
  assertEquals(kernels.map((e) => e.args), [{ dispatch: 0, flops: 1, bytes: 4 }, { dispatch: 1 }, {
    dispatch: 2,
    flops: 2,
    bytes: 8,
  }]);
  assertEquals(records.map((e) => e.ts), [500, 1500, 4500]);
  const phases = parsed.traceEvents.filter((e) => e.ph === "X" && e.tid === TRACE_TRACKS.host);
  assertEquals(phases.map((e) => [e.name, e.ts, e.dur]), [["forward", 0, 2500], ["optimizer", 2500, 2500]]);
  // Without timestamps: no GPU events, the host track stays.
  const untimed = new StepProfile({
    ...profile,
    dispatches: profile.dispatches.map((d) => ({ ...d, gpuStartMs: NaN, gpuEndMs: NaN })),
  });
  assertEquals(checkTrace(untimed.chromeTrace(), untimed).kernels, []);
});

/** A tiny model, its optimizer and a batch. */
function tinyStep(shape = { vocabSize: 96, contextLength: 16, dModel: 32, numLayers: 2, numHeads: 4, dFf: 64 }) {
  const B = 3, T = shape.contextLength;
  const model = new TransformerLM(shape, { seed: 1 });
  const ids = (k: number) =>
    tensor(Int32Array.from({ length: B * T }, (_, i) => (i * k) % shape.vocabSize), {
      shape: [B, T],
      dtype: "i32",
    });
  const parts: StepInputs = { model, optimizer: new AdamW(model.parameters()), inputs: ids(7), targets: ids(5) };
  const dispose = () => {
    parts.optimizer.dispose();
    model.dispose();
    parts.inputs.dispose();
    parts.targets.dispose();
  };
  return { shape, B, T, parts, dispose };
}

Deno.test("profileStep of a tiny model: every kernel of the step, in order, with non-negative GPU times", async () => {
  const { parts, dispose } = tinyStep();
  const profile = await profileStep(parts, { peaks: { f32Tflops: 1, memoryGBps: 100 } });
  // The same step recorded instead of run lists the kernels the backend would dispatch: the independent reference.
  const recording = gpu().record(() => {
    const loss = tidy(() => {
      const l = crossEntropy(parts.model.forward(parts.inputs), parts.targets);
      l.backward();
      return keep(noGrad(() => l));
    });
    parts.optimizer.step({ maxGradNorm: 1.0 });
    parts.optimizer.zeroGrad();
    loss.dispose();
  });
  assertEquals(profile.dispatches.map((d) => d.name), recording.names);
  recording.dispose();
  for (const name of ["embedding_forward", "attention_forward", "attention_backward_dkv", "adamw_step"]) {
    assert(profile.kernels.some((k) => k.name === name), `${name} missing`);
  }
  assertEquals(profile.totals.dispatches, profile.dispatches.length);
  assertEquals(profile.totals.predicted, profile.dispatches.length); // every kernel of a step predicts its cost
  assertEquals(profile.phases.map((p) => p.name), ["forward", "backward", "optimizer"]);
  if (timestamps) {
    for (const k of [...profile.kernels, profile.totals]) assert(k.gpuMs >= 0 && k.roofline >= 0, JSON.stringify(k));
    assert(profile.spanMs >= profile.totals.gpuMs * 0.999, `span ${profile.spanMs} < ${profile.totals.gpuMs}`);
    const { kernels, records } = checkTrace(profile.chromeTrace(), profile);
    assertEquals(kernels.length, profile.dispatches.length);
    kernels.forEach((e, i) => {
      assert(e.ts >= records[i].ts, `dispatch ${i} runs on the GPU before it was recorded`);
      if (i > 0) assert(e.ts >= kernels[i - 1].ts, `dispatch ${i} starts before dispatch ${i - 1}`);
    });
  }
  const dir = await Deno.makeTempDir();
  await writeChromeTrace(`${dir}/trace.json`, profile);
  const written = JSON.parse(await Deno.readTextFile(`${dir}/trace.json`)) as ChromeTrace;
  assertEquals(written.traceEvents.length, profile.chromeTrace().traceEvents.length);
  await Deno.remove(dir, { recursive: true });
  dispose();
});

Deno.test("predicted matmul and attention FLOPs of a step equal the accounting's training FLOPs, as stated", async () => {
  const { shape, B, T, parts, dispose } = tinyStep();
  const profile = await profileStep(parts, { warmup: false });
  const sum = (pattern: RegExp) =>
    profile.dispatches.filter((d) => pattern.test(d.name)).reduce((s, d) => s + d.cost!.flops, 0);
  const matmuls = sum(/^matmul_(?!streamK_fixup)/), attention = sum(/^attention_(forward|backward_dq|backward_dkv)$/);
  const f = forwardFlops(shape, { batchSize: B, seqLen: T });
  const scoresAndValues = f.attentionScores + f.attentionValues;
  const training = trainingFlops(shape, { batchSize: B, seqLen: T }).total;
  // What the accounting leaves out or counts otherwise: (1) the matmul epilogues add the residual stream to the
  // output projection's and w2's products, one FLOP per element of (B, T, d) each, per layer, w2's dX applies
  // the SwiGLU gate's backward, 12 FLOPs per element of (B, T, d_ff) per layer, and the q/k/v product applies RoPE
  // to its query and key columns, 3 FLOPs per element of (B, T, 2d) per layer; (2) it counts the attention scores
  // and values in full and the backward at twice the forward, where the fused kernels count FlashAttention's way:
  // the causal half, and a backward of 2.5 times the forward.
  const epilogues = shape.numLayers * B * T * (2 * shape.dModel + 12 * shape.dFf + 3 * 2 * shape.dModel);
  assertEquals(matmuls, training - 3 * scoresAndValues + epilogues);
  assertEquals(attention, (scoresAndValues / 2) * (1 + 2.5));
  assertEquals(matmuls + attention, training - 1.25 * scoresAndValues + epilogues);
  dispose();
});

/** Token files and a config for a trainer in `dir`. */
async function trainerConfig(dir: string, steps: number) {
  const ids = Array.from({ length: 3000 }, (_, i) => (i * 5) % 31);
  await writeTokenFile(`${dir}/train.bin`, ids);
  return {
    model: { vocabSize: 32, contextLength: 16, dModel: 32, numLayers: 1, numHeads: 4, dFf: 48 },
    train: { trainData: `${dir}/train.bin`, outDir: dir, steps, batchSize: 2, logInterval: 2, seed: 1 },
  };
}

Deno.test("a trainer's profile option profiles the step it names inside fit, which reports it as usual", async () => {
  const dir = await Deno.makeTempDir();
  const steps: number[] = [], profiled: [StepProfile, number][] = [];
  const trainer = await Trainer.create(await trainerConfig(dir, 4), {
    onEvent: (e) => void (e.type === "step" && steps.push((e as StepMetrics).step)),
    profile: { step: 3, onProfile: (p, step) => void profiled.push([p, step]) },
  });
  const result = await trainer.fit();
  trainer.dispose();
  assertEquals([result.step, steps], [4, [1, 2, 3, 4]]);
  assertEquals(profiled.map(([, step]) => step), [3]);
  const [profile] = profiled[0];
  assertEquals(profile.phases.map((p) => p.name), ["train step"]);
  const onProfile = () => {};
  await assertRejects(
    async () => await Trainer.create(await trainerConfig(dir, 4), { profile: { peaks: { f32Tflops: 0 }, onProfile } }),
    "peaks must be positive",
  );
  assert(
    profile.kernels.some((k) => k.name === "adamw_step") && profile.totals.predicted === profile.dispatches.length,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("profileStep of a trainer runs two steps of its run; peaks are validated", async () => {
  const dir = await Deno.makeTempDir();
  const trainer = await Trainer.create(await trainerConfig(dir, 10));
  const profile = await profileStep(trainer);
  assertEquals(trainer.step, 2);
  assert(profile.dispatches.length > 0 && profile.phases.length === 1);
  await assertRejects(() => profileStep(trainer, { peaks: { memoryGBps: 0, f32Tflops: 1 } }), "must be positive");
  assertEquals(trainer.step, 2); // refused before any step ran
  trainer.dispose();
  await Deno.remove(dir, { recursive: true });
  assertThrows(() => resolvePeaks({ f32Tflops: -1, memoryGBps: 10 }), "peaks must be positive");
  assertEquals(resolvePeaks({ name: "mine", f32Tflops: 2, memoryGBps: 30 }), {
    name: "mine",
    f32Tflops: 2,
    memoryGBps: 30,
  });
  if (!gpuPeaks(gpu().info.description)) assertEquals(resolvePeaks({ f32Tflops: 2 }), null);
});

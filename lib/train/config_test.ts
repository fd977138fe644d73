import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { ConfigError } from "../util/validate.ts";
import { parseModelConfig } from "../nn/config.ts";
import { parseConfig, parseTrainConfig } from "./config.ts";

const tinyStories = { vocabSize: 10000, contextLength: 256, dModel: 512, numLayers: 4, numHeads: 16, dFf: 1344 };

Deno.test("parseModelConfig fills the CS336 defaults", () => {
  assertEquals(parseModelConfig(tinyStories), {
    ...tinyStories,
    ropeTheta: 10000,
    normEps: 1e-5,
    norm: "pre",
    position: "rope",
    ffn: "swiglu",
    parallelLayers: false,
    tieEmbeddings: false,
    fusedProjections: true,
  });
});

Deno.test("parseModelConfig derives dFf per feed-forward kind", () => {
  const base = { vocabSize: 10, contextLength: 8, dModel: 512, numLayers: 1, numHeads: 8 };
  // 8/3 * 512 = 1365.3 -> next multiple of 64 is 1408.
  assertEquals(parseModelConfig(base).dFf, 1408);
  assertEquals(parseModelConfig({ ...base, ffn: "silu" }).dFf, 2048);
  assertEquals(parseModelConfig({ ...base, dFf: 100 }).dFf, 100);
});

Deno.test("parseModelConfig keeps the variants", () => {
  const cfg = parseModelConfig({
    ...tinyStories,
    norm: "none",
    position: "none",
    ffn: "silu",
    parallelLayers: true,
    tieEmbeddings: true,
    ropeTheta: 500000,
  });
  assertEquals(
    [cfg.norm, cfg.position, cfg.ffn, cfg.parallelLayers, cfg.tieEmbeddings, cfg.ropeTheta],
    ["none", "none", "silu", true, true, 500000],
  );
});

Deno.test("parseModelConfig names the field at fault", () => {
  const e = assertThrows(() => parseModelConfig({ ...tinyStories, numHeads: 7 }), "numHeads") as ConfigError;
  assert(e instanceof ConfigError);
  assertEquals(e.issues.map((i) => i.path), ["numHeads"]);
  assertThrows(() => parseModelConfig({ ...tinyStories, dModel: 0 }), "dModel");
  assertThrows(() => parseModelConfig({ ...tinyStories, vocabSize: 1.5 }), "vocabSize");
  assertThrows(() => parseModelConfig({ ...tinyStories, norm: "layer" }), "norm");
  assertThrows(() => parseModelConfig({ ...tinyStories, numHead: 4 }), "numHead");
  const missing = assertThrows(() => parseModelConfig({ vocabSize: 5 })) as ConfigError;
  assertEquals(missing.issues.map((i) => i.path).sort(), ["contextLength", "dModel", "numHeads", "numLayers"]);
});

Deno.test("parseModelConfig requires an even head dimension for RoPE only", () => {
  const odd = { vocabSize: 10, contextLength: 8, dModel: 12, numLayers: 1, numHeads: 4 }; // head dim 3
  assertThrows(() => parseModelConfig(odd), /numHeads: RoPE needs an even head dimension/);
  assertEquals(parseModelConfig({ ...odd, position: "none" }).dModel, 12);
});

Deno.test("parseTrainConfig fills defaults and cross-checks", () => {
  const cfg = parseTrainConfig({ trainData: "a.u16", steps: 200, warmupSteps: 20 });
  assertEquals(cfg.cosineCycleSteps, 200);
  assertEquals(cfg.betas, [0.9, 0.95]);
  assertEquals(cfg.gradAccumulation, 1);
  assertEquals(cfg.valData, undefined);
  assertEquals(parseTrainConfig({ trainData: "a", cosineCycleSteps: 50 }).cosineCycleSteps, 50);
  assertEquals(parseTrainConfig({ trainData: "a", cosineCycleSteps: 50 }).warmupSteps, 5);
  assertEquals(parseTrainConfig({ trainData: "a", steps: 10000 }).warmupSteps, 100);
  assertThrows(() => parseTrainConfig({ trainData: "a", lrMax: 1e-4, lrMin: 1e-3 }), "lrMin");
  assertThrows(() => parseTrainConfig({ trainData: "a", steps: 10, warmupSteps: 11 }), "warmupSteps");
  assertThrows(() => parseTrainConfig({ trainData: "a", betas: [0.9, 1] }), "betas.1");
  assertThrows(() => parseTrainConfig({}), "trainData");
  assertThrows(() => parseTrainConfig({ trainData: "a", batchSize: -1 }), "batchSize");
});

Deno.test("parseConfig prefixes paths with the section", () => {
  const cfg = parseConfig({ model: tinyStories, train: { trainData: "t.u16" } });
  assertEquals(cfg.model.dFf, 1344);
  assertEquals(cfg.train.trainData, "t.u16");
  const e = assertThrows(() => parseConfig({ model: { ...tinyStories, numLayers: 0 }, train: {} })) as ConfigError;
  assertEquals(e.issues.map((i) => i.path).sort(), ["model.numLayers", "train.trainData"]);
  assertThrows(() => parseConfig({ model: tinyStories, train: { trainData: "x" }, extra: 1 }), "(top level)");
  // A parsed config round-trips through JSON (checkpoint metadata) unchanged.
  assertEquals(parseConfig(JSON.parse(JSON.stringify(cfg))), cfg);
});

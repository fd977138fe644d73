import { assert, assertEquals, assertMatch, assertRejects } from "../tests/assert.ts";
import { parseTrainCli, trainHelpText } from "./cli.ts";
import { type Config, ConfigError, parseConfig } from "./config.ts";

const defaults = {
  model: { vocabSize: 256, contextLength: 64, dModel: 64, numLayers: 2, numHeads: 4 },
  train: { trainData: "data/default.u16", steps: 100 },
};

async function config(args: string[]): Promise<Config> {
  const r = await parseTrainCli(args, { defaults });
  if (r.help) throw new Error("unexpected help");
  return r.config;
}

Deno.test("every config field has a flag, and flags set them", async () => {
  const c = await config([
    ...["--vocab-size", "1000", "--context-length", "128", "--d-model", "96", "--num-layers", "3"],
    ...["--num-heads", "6", "--d-ff", "256", "--rope-theta", "5e5", "--norm-eps", "1e-6", "--norm", "post"],
    ...["--position", "none", "--ffn", "silu", "--parallel-layers", "--tie-embeddings", "--no-fused-projections"],
    ...["--batch-size", "8", "--grad-accumulation", "2", "--steps", "50", "--lr-max", "3e-3", "--lr-min", "0"],
    ...["--warmup-steps", "5", "--cosine-cycle-steps", "40", "--weight-decay", "0.01", "--betas", "0.8,0.99"],
    ...["--eps", "1e-9", "--grad-clip", "0.5", "--eval-interval", "10", "--eval-iters", "3"],
    ...["--checkpoint-interval", "25", "--log-interval", "1", "--seed=-7", "--train-data", "t.u32"],
    ...["--val-data", "v.u32", "--out-dir", "runs/x", "--resume", "runs/x/ckpt.safetensors", "--tokenizer", "tok.json"],
  ]);
  assertEquals(c, {
    model: {
      vocabSize: 1000,
      contextLength: 128,
      dModel: 96,
      numLayers: 3,
      numHeads: 6,
      dFf: 256,
      ropeTheta: 500000,
      normEps: 1e-6,
      norm: "post",
      position: "none",
      ffn: "silu",
      parallelLayers: true,
      tieEmbeddings: true,
      fusedProjections: false,
    },
    train: {
      batchSize: 8,
      gradAccumulation: 2,
      steps: 50,
      lrMax: 3e-3,
      lrMin: 0,
      warmupSteps: 5,
      cosineCycleSteps: 40,
      weightDecay: 0.01,
      betas: [0.8, 0.99],
      eps: 1e-9,
      gradClip: 0.5,
      evalInterval: 10,
      evalIters: 3,
      checkpointInterval: 25,
      logInterval: 1,
      seed: -7,
      trainData: "t.u32",
      valData: "v.u32",
      outDir: "runs/x",
      resume: "runs/x/ckpt.safetensors",
      tokenizer: "tok.json",
    },
  });
  // Every field of a full config is covered above (a new config field without a flag fails here).
  const full = parseConfig({
    model: defaults.model,
    train: { ...defaults.train, valData: "v", resume: "r", tokenizer: "t" },
  });
  assertEquals(Object.keys(c.model).sort(), Object.keys(full.model).sort());
  assertEquals(Object.keys(c.train).sort(), Object.keys(full.train).sort());
});

Deno.test("precedence: defaults < config file < flags", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/run.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify({ model: { dModel: 128, numHeads: 8 }, train: { steps: 300, lrMax: 0.01 } }),
  );
  const r = await parseTrainCli(["--config", file, "--steps", "400", "--no-tie-embeddings"], { defaults });
  assert(!r.help);
  assertEquals(r.configFile, file);
  assertEquals([r.config.model.dModel, r.config.model.numHeads, r.config.model.numLayers], [128, 8, 2]);
  assertEquals([r.config.train.steps, r.config.train.lrMax, r.config.train.trainData], [400, 0.01, "data/default.u16"]);
  assertEquals(r.config.model.tieEmbeddings, false);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("--help lists flags with defaults", async () => {
  const r = await parseTrainCli(["--help", "--bogus-is-ignored-after-help"], { defaults }).catch((e) => e);
  // Unknown flags are still an error, even with --help.
  assert(r instanceof Error);
  const h = await parseTrainCli(["-h"], { defaults, command: "nanolm-train" });
  assert(h.help);
  assertMatch(h.text, /^Usage: nanolm-train /);
  assertMatch(h.text, /--d-model <value> +residual stream width \(default 64\)/);
  assertMatch(h.text, /--norm <pre\|post\|none>/);
  assertMatch(h.text, /--tie-embeddings, --no-tie-embeddings/);
  assert(trainHelpText().includes("--train-data <value>"));
});

Deno.test("bad flags and files are named", async () => {
  await assertRejects(() => parseTrainCli(["--dmodel", "3"]), "Unknown option '--dmodel'; see --help");
  await assertRejects(
    () => parseTrainCli(["--d-model", "x"], { defaults }),
    'Flag --d-model expects an integer, got "x"',
  );
  await assertRejects(() => parseTrainCli(["--lr-max", "fast"], { defaults }), "Flag --lr-max expects a number");
  await assertRejects(() => parseTrainCli(["--betas", "0.9"], { defaults }), "two comma-separated numbers");
  await assertRejects(() => parseTrainCli(["--norm", "layer"], { defaults }), "one of pre, post, none");
  await assertRejects(() => parseTrainCli(["extra"], { defaults }), 'Unexpected argument "extra"');
  await assertRejects(
    () => parseTrainCli(["--steps"], { defaults }),
    "Option '--steps <value>' argument missing; see --help",
  );
  await assertRejects(
    () => parseTrainCli(["--config", "/nonexistent/run.json"]),
    "Config file /nonexistent/run.json does not exist",
  );
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/bad.json`, "{");
  await assertRejects(() => parseTrainCli(["--config", `${dir}/bad.json`]), "is not valid JSON");
  await Deno.writeTextFile(`${dir}/sec.json`, '{"optim": {}}');
  await assertRejects(() => parseTrainCli(["--config", `${dir}/sec.json`]), 'unknown section "optim"');
  const e = await assertRejects(() => parseTrainCli(["--num-heads", "5"], { defaults }));
  assert(e instanceof ConfigError);
  assertMatch(e.message, /model\.numHeads \(--num-heads\): numHeads \(5\) must divide dModel \(64\)/);
  // Missing required fields point at their flag.
  await assertRejects(() => parseTrainCli([]), "model.vocabSize (--vocab-size)");
  await Deno.remove(dir, { recursive: true });
});

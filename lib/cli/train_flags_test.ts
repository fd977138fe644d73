import { assert, assertEquals, assertMatch, assertRejects, assertThrows } from "../../tests/assert.ts";
import { buildConfig, type GivenConfig, parseTrainCli, trainHelpText, type TrainOutputOptions } from "./train_flags.ts";
import { UsageError } from "./flags.ts";
import { ConfigError } from "../util/validate.ts";
import { type Config, parseConfig, parseTrainConfig } from "../train/config.ts";

const defaults = {
  model: { vocabSize: 256, contextLength: 64, dModel: 64, numLayers: 2, numHeads: 4 },
  train: { trainData: "data/default.u16", steps: 100 },
};

/** Whether lib/config.ts has the early-stopping field yet (the --patience flag validates once it does). */
const hasPatience = "patience" in parseTrainConfig({ trainData: "x" });

async function parse(args: string[]) {
  const r = await parseTrainCli(args, { defaults });
  if (r.help) throw new Error("unexpected help");
  return r;
}

async function config(args: string[]): Promise<Config> {
  const r = await parse(args);
  return buildConfig(defaults, r.given, { origin: r.origin });
}

Deno.test("every config field has a flag, and flags set them; negative numbers are values", async () => {
  const c = await config([
    ...["--vocab-size", "1000", "--context-length", "128", "--d-model", "96", "--num-layers", "3"],
    ...["--num-heads", "6", "--d-ff", "256", "--rope-theta", "5e5", "--norm-eps", "1e-6", "--norm", "post"],
    ...["--position", "none", "--ffn", "silu", "--parallel-layers", "--tie-embeddings", "--no-fused-projections"],
    ...["--batch-size", "8", "--grad-accumulation", "2", "--steps", "50", "--lr-max", "3e-3", "--lr-min", "0"],
    ...["--warmup-steps", "5", "--cosine-cycle-steps", "40", "--weight-decay", "0.01", "--betas", "0.8,0.99"],
    ...["--eps", "1e-9", "--grad-clip", "0.5", "--eval-interval", "10", "--eval-iters", "3"],
    ...["--checkpoint-interval", "25", "--log-interval", "1", "--seed", "-7", "--train-data", "t.u32"],
    ...["--val-data", "v.u32", "--out-dir", "runs/x", "--resume", "runs/x/ckpt.safetensors", "--tokenizer", "tok.json"],
    ...(hasPatience ? ["--patience", "4"] : []),
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
      ...(hasPatience ? { patience: 4 } : {}),
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

Deno.test({
  name: "--patience sets train.patience and is validated by the config schema",
  ignore: !hasPatience,
  fn: async () => {
    assertEquals((await config(["--patience", "3"])).train as unknown as { patience: number }, {
      ...(await config([])).train,
      patience: 3,
    });
    const e = await assertRejects(() => config(["--patience", "-1"]));
    assertMatch(e.message, /train\.patience \(--patience\)/);
  },
});

Deno.test("parseTrainCli returns only what the user gave, and where each field came from", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/run.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify({ model: { dModel: 128, numHeads: 8 }, train: { steps: 300, lrMax: 0.01 } }),
  );
  const r = await parse(["--config", file, "--steps", "400", "--no-tie-embeddings", "--lr-min=-0"]);
  assertEquals(r.configFile, file);
  assertEquals(
    r.given,
    {
      model: { dModel: 128, numHeads: 8, tieEmbeddings: false },
      train: { steps: 400, lrMax: 0.01, lrMin: -0 },
    } satisfies GivenConfig,
  );
  assertEquals(
    ["model.dModel", "model.tieEmbeddings", "train.steps", "train.lrMax", "train.seed"].map(r.origin),
    [file, "--tie-embeddings", "--steps", file, undefined],
  );
  // Precedence: defaults < config file < flags.
  const c = buildConfig(defaults, r.given, { origin: r.origin });
  assertEquals([c.model.dModel, c.model.numHeads, c.model.numLayers], [128, 8, 2]);
  assertEquals([c.train.steps, c.train.lrMax, c.train.trainData], [400, 0.01, "data/default.u16"]);
  assertEquals(c.model.tieEmbeddings, false);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("buildConfig on a resumed run's saved config changes only the given fields", async () => {
  const saved = await config(["--steps", "1000", "--lr-max", "0.002", "--seed", "9"]);
  const r = await parse(["--steps", "2000", "--eval-interval", "50"]);
  const resumed = buildConfig(saved, r.given, { origin: r.origin, baseName: "checkpoint" });
  assertEquals(resumed, {
    model: saved.model,
    train: { ...saved.train, steps: 2000, evalInterval: 50 },
  });
  // A problem between a given field and a saved one names both sources.
  const bad = await parse(["--lr-max", "0.0001"]);
  const e = assertThrows(() =>
    buildConfig({ ...saved, train: { ...saved.train, lrMin: 0.001 } }, bad.given, {
      origin: bad.origin,
      baseName: "checkpoint",
    })
  );
  assert(e instanceof ConfigError);
  assertEquals(e.issues, [
    { path: "train.lrMin (checkpoint, --lr-min)", message: "lrMin (0.001) exceeds lrMax (0.0001)" },
  ]);
});

Deno.test("output flags are part of the spec and validated when parsing", async () => {
  assertEquals((await parse([])).output, { samples: 3, sampleTokens: 80, report: true } satisfies TrainOutputOptions);
  assertEquals(
    (await parse(["--samples", "0", "--sample-tokens", "5", "--peak-tflops", "989", "--no-report"])).output,
    {
      samples: 0,
      sampleTokens: 5,
      peakTflops: 989,
      report: false,
    },
  );
  for (
    const [args, message] of [
      [["--samples", "-1"], "--samples must be an integer >= 0, got -1"],
      [["--sample-tokens", "0"], "--sample-tokens must be an integer >= 1, got 0"],
      [["--peak-tflops", "-5"], "--peak-tflops must be > 0, got -5"],
      [["--report=no"], '--report takes no value (got "no")'],
    ]
  ) {
    const e = await assertRejects(() => parse(args as string[]));
    assert(e instanceof UsageError);
    assertEquals(e.message, message);
  }
});

Deno.test("--help lists every flag with its type and default, aligned", async () => {
  const h = await parseTrainCli(["-h", "--d-model", "3"], { defaults, command: "nanolm-train" });
  assert(h.help);
  assertMatch(h.text, /^Usage: nanolm-train \[--config run\.json\] \[flags\]\n/);
  const lines = h.text.split("\n").filter((l) => l.startsWith("  -"));
  const columns = new Set(lines.map((l) => /^ {2}\S.*? {2,}(?=\S)/.exec(l)![0].length));
  assertEquals(columns.size, 1);
  assertMatch(h.text, /--d-model <int> +residual stream width \(default: 64\)\n/);
  assertMatch(h.text, /--lr-max <float> +peak learning rate \(default: 0\.001\)\n/);
  assertMatch(h.text, /--norm <pre\|post\|none> +norm placement \(default: pre\)\n/);
  assertMatch(h.text, /--\[no-\]tie-embeddings +LM head = embedding \(default: false\)\n/);
  assertMatch(h.text, /--betas <float,float> +AdamW beta1,beta2 \(default: 0\.9,0\.95\)\n/);
  assertMatch(h.text, /--cosine-cycle-steps <int> +.*\(default: steps\)\n/);
  // What the run does: the floor follows the peak, and every step is recorded whatever the interval.
  assertMatch(h.text, /--lr-min <float> +final learning rate \(default: a tenth of --lr-max\)\n/);
  assertMatch(h.text, /--log-interval <int> +steps between reads of the metrics \(every step is recorded\)/);
  assertMatch(h.text, /--val-data <path> +validation token file \(default: the embedded data.s, else none\)\n/);
  assertMatch(h.text, /--samples <int> +sample texts printed at the end \(default: 3\)\n/);
  assertMatch(h.text, /--\[no-\]report +write the HTML report \(default: true\)\n/);
  assert(
    h.text.indexOf("Model:") < h.text.indexOf("Training:") && h.text.indexOf("Training:") < h.text.indexOf("Output:"),
  );
  // Without program defaults, the shape fields are required.
  assertMatch(trainHelpText(), /--vocab-size <int> +number of token ids \(required\)\n/);
  assertMatch(
    trainHelpText(),
    /--train-data <path> +training token file \(default: the embedded Moby-Dick data, prepared under --out-dir\)\n/,
  );
  assertMatch(trainHelpText(), /--steps <int> +optimizer steps \(default: 5000\)\n/);
});

Deno.test("bad flags and files are named, with the nearest flag or field", async () => {
  const usage = async (args: string[], message: string) => {
    const e = await assertRejects(() => parseTrainCli(args, { defaults }));
    assert(e instanceof UsageError, `${e}`);
    assertEquals(e.message, message);
  };
  await usage(["--dmodel", "3"], "unknown flag --dmodel; did you mean --d-model? (see --help)");
  await usage(["--lr_max", "3"], "unknown flag --lr_max; did you mean --lr-max? (see --help)");
  await usage(["--help", "--bogus"], "unknown flag --bogus (see --help)");
  await usage(["--d-model", "x"], '--d-model must be an integer, got "x"');
  await usage(["--lr-max", "fast"], '--lr-max must be a number, got "fast"');
  await usage(["--betas", "0.9"], '--betas must be two comma-separated numbers (0.9,0.95), got "0.9"');
  await usage(["--norm", "layer"], '--norm must be one of pre, post, none, got "layer"');
  await usage(["extra"], 'unexpected argument "extra" (flags start with --; see --help)');
  await usage(["--steps"], "--steps needs a value: --steps <int>");
  await assertRejects(
    () => parseTrainCli(["--config", "/nonexistent/run.json"]),
    "config file /nonexistent/run.json does not exist",
  );
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/bad.json`, "secret-token {");
  const e = await assertRejects(
    () => parseTrainCli(["--config", `${dir}/bad.json`]),
    "invalid JSON: unexpected character at line 1",
  );
  assert(!e.message.includes("secret"), e.message);
  await Deno.writeTextFile(`${dir}/sec.json`, '{"optim": {}}');
  await assertRejects(() => parseTrainCli(["--config", `${dir}/sec.json`]), 'unknown section "optim"');
  await Deno.writeTextFile(`${dir}/typo.json`, '{"train": {"lrmax": 0.1}}');
  await assertRejects(
    () => parseTrainCli(["--config", `${dir}/typo.json`]),
    `config file ${dir}/typo.json has unknown field train.lrmax; did you mean lrMax?`,
  );
  // Values are checked against the schema when the config is built, naming the flag or the file.
  const heads = await assertRejects(() => config(["--num-heads", "5"]));
  assert(heads instanceof ConfigError);
  assertMatch(heads.message, /model\.numHeads \(--num-heads\): numHeads \(5\) must divide dModel \(64\)/);
  await Deno.writeTextFile(`${dir}/neg.json`, '{"train": {"lrMax": -1}}');
  await assertRejects(() => config(["--config", `${dir}/neg.json`]), `train.lrMax (${dir}/neg.json, --lr-max)`);
  await assertRejects(() => config(["--lr-min", "-1"]), "train.lrMin (--lr-min)");
  // Missing required fields point at their flag.
  const cli = await parseTrainCli([]);
  assert(!cli.help);
  assertThrows(() => buildConfig({}, cli.given, { origin: cli.origin }), "model.vocabSize (--vocab-size)");
  await Deno.remove(dir, { recursive: true });
});

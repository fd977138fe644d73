/**
 * `deno task prepare-data`: turn a text corpus into token files for `deno task train`.
 *
 * ```sh
 * deno task prepare-data --tinystories --out data/tinystories --vocab-size 10000
 * deno task prepare-data --input my_corpus.txt --out data/mine --vocab-size 4096
 * deno task train --train-data data/tinystories/train.bin --val-data data/tinystories/val.bin \
 *   --tokenizer data/tinystories/tokenizer-10000.json --vocab-size 10000 --context-length 256 ...
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { prepareTextData, TINYSTORIES_URLS } from "../mod.ts";

const { values } = parseArgs({
  options: {
    input: { type: "string" },
    "val-input": { type: "string" },
    tinystories: { type: "boolean", default: false },
    out: { type: "string" },
    "vocab-size": { type: "string", default: "10000" },
    "val-fraction": { type: "string", default: "0.01" },
    special: { type: "string", multiple: true },
    help: { type: "boolean", short: "h", default: false },
  },
});

const usage = `Usage: deno task prepare-data (--tinystories | --input FILE_OR_URL [--val-input FILE_OR_URL])
       --out DIR [--vocab-size 10000] [--val-fraction 0.01] [--special "<|endoftext|>"]...

Downloads URLs, trains a BPE tokenizer on the training text and writes DIR/train.bin, DIR/val.bin (uint16 ids, or
.u32 files above 65536 tokens) and DIR/tokenizer-<vocab>.json. Without a validation input, the last
--val-fraction of the training text is held out.`;

if (values.help) {
  console.log(usage);
  Deno.exit(0);
}
try {
  const train = values.tinystories ? TINYSTORIES_URLS.train : values.input;
  const val = values.tinystories ? TINYSTORIES_URLS.val : values["val-input"];
  if (!train || !values.out) throw new Error(`--input (or --tinystories) and --out are required\n\n${usage}`);
  const vocabSize = Number(values["vocab-size"]), valFraction = Number(values["val-fraction"]);
  if (!Number.isInteger(vocabSize) || vocabSize < 257) {
    throw new Error(`--vocab-size must be an integer above 256, got ${values["vocab-size"]}`);
  }
  const data = await prepareTextData({
    train,
    val,
    outDir: values.out,
    vocabSize,
    valFraction,
    specialTokens: values.special,
    progress: true,
    log: (line) => console.error(`nanolm: ${line}`),
  });
  console.log(JSON.stringify(data, null, 2));
} catch (e) {
  console.error(`nanolm: ${e instanceof Error ? e.message : e}`);
  Deno.exit(1);
}

/**
 * `deno task prepare-data`: turn a text corpus into token files for `deno task train`.
 *
 * @example
 * ```sh
 * deno task prepare-data --tinystories --out data/tinystories --vocab-size 10000
 * deno task prepare-data --input my_corpus.txt --out data/mine --vocab-size 4096
 * deno task train --train-data data/tinystories/train.bin --val-data data/tinystories/val.bin \
 *   --tokenizer data/tinystories/tokenizer-10000.json --vocab-size 10000 --context-length 256 ...
 * ```
 *
 * Every flag and input is checked before anything is written; problems with the corpus that do not stop the run
 * (bytes that are not UTF-8, a tiny or whitespace-only corpus) are `nanolm: warning: ...` lines on stderr.
 *
 * @module
 */
import { prepareTextData } from "../../mod.ts";
import { TINYSTORIES_URLS } from "../data/mod.ts";
import { type FlagSpec, helpText, parseFlags, runMain, UsageError } from "./flags.ts";
import { checkOutputDir } from "./input_files.ts";

const FLAGS = [
  { name: "input", type: "string", valueName: "file|url", help: "training text" },
  {
    name: "val-input",
    type: "string",
    valueName: "file|url",
    defaultText: "the last --val-fraction of the input",
    help: "validation text",
  },
  { name: "tinystories", type: "bool", default: false, help: "download TinyStories V2 as input and val-input" },
  { name: "out", type: "string", valueName: "dir", required: true, help: "output directory" },
  { name: "vocab-size", type: "int", default: 10000, help: "tokenizer vocabulary size, above 256 + special tokens" },
  {
    name: "val-fraction",
    type: "float",
    min: 0,
    minExclusive: true,
    max: 1,
    maxExclusive: true,
    default: 0.01,
    help: "share of the input held out without --val-input",
  },
  {
    name: "special",
    type: "string",
    multiple: true,
    valueName: "text",
    default: ["<|endoftext|>"],
    help: "special token (repeat for several)",
  },
] as const satisfies readonly FlagSpec[];

const USAGE = "deno task prepare-data (--tinystories | --input FILE_OR_URL [--val-input FILE_OR_URL]) --out DIR";
const DESCRIPTION =
  `Downloads URLs, trains a BPE tokenizer on the training text and writes DIR/train.bin, DIR/val.bin (uint16
ids, or .u32 files above 65536 tokens) and DIR/tokenizer-<vocab>.json. Without a validation input, the last
--val-fraction of the training text is held out (written as DIR/train-split.txt and DIR/val-split.txt).`;

async function main(): Promise<void> {
  const { help, values: flags, given } = parseFlags(Deno.args, FLAGS);
  if (help) {
    console.log(helpText(USAGE, DESCRIPTION, FLAGS));
    return;
  }
  if (flags.tinystories && (flags.input || flags["val-input"])) {
    throw new UsageError("--tinystories sets both inputs: leave out --input and --val-input");
  }
  const train = flags.tinystories ? TINYSTORIES_URLS.train : flags.input;
  const val = flags.tinystories ? TINYSTORIES_URLS.val : flags["val-input"];
  if (!train) throw new UsageError("no training text: pass --input <file|url> or --tinystories (see --help)");
  const specials = flags.special!;
  const empty = specials.find((t, i) => t === "" || specials.indexOf(t) !== i);
  if (empty !== undefined) {
    throw new UsageError(
      `--special must be a non-empty text, each special token once; got ${JSON.stringify(empty)}`,
    );
  }
  await checkOutputDir(flags.out!, "--out", "pick a folder for the token files");
  const least = 256 + specials.length + 1;
  if (flags["vocab-size"]! < least) {
    throw new UsageError(
      `--vocab-size must be at least 256 bytes + ${specials.length} special tokens + 1 = ${least}, ` +
        `got ${flags["vocab-size"]}`,
    );
  }
  if (val && given.includes("val-fraction")) {
    throw new UsageError("--val-fraction applies only without a validation input: leave it out or drop --val-input");
  }
  const data = await prepareTextData({
    train,
    val,
    outDir: flags.out!,
    vocabSize: flags["vocab-size"]!,
    valFraction: flags["val-fraction"],
    specialTokens: specials,
    progress: true,
    log: (line) => console.error(`nanolm: ${line}`),
    warn: (line) => console.error(`nanolm: warning: ${line}`),
  });
  console.log(JSON.stringify(data, null, 2));
}

await runMain(main);

/**
 * Command line for the tokenizer: train on text files, then encode text files into token files.
 *
 * ```sh
 * deno run -A scripts/tokenizer.ts train corpus.txt --vocab-size 10000 --special "<|endoftext|>" --out tok.json
 * deno run -A scripts/tokenizer.ts encode train.txt train.bin --tokenizer tok.json
 * deno run -A scripts/tokenizer.ts encode train.txt train.bin --gpt2   # GPT-2's ranks from the tiktoken package
 * ```
 *
 * `train` writes nanolm's single-file JSON (`--out`), and with `--gpt2-files DIR` also `DIR/vocab.json` and
 * `DIR/merges.txt`. `encode` writes uint16 ids, or uint32 when the output name ends in `.u32`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { encodeFile } from "../lib/data/mod.ts";
import { Tokenizer, trainBpe } from "../mod.ts";
import { loadGpt2Tokenizer, loadTokenizer, saveGpt2Tokenizer, saveTokenizer } from "../lib/data/tokenizer_files.ts";

const usage = `usage:
  tokenizer.ts train FILE... --vocab-size N [--special TOKEN]... --out tokenizer.json [--gpt2-files DIR] [--workers N]
  tokenizer.ts encode INPUT OUTPUT (--tokenizer tokenizer.json | --vocab vocab.json --merges merges.txt | --gpt2)
                      [--special TOKEN]... [--workers N]`;

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    "vocab-size": { type: "string" },
    special: { type: "string", multiple: true },
    out: { type: "string" },
    "gpt2-files": { type: "string" },
    workers: { type: "string" },
    tokenizer: { type: "string" },
    vocab: { type: "string" },
    merges: { type: "string" },
    gpt2: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

function fail(message: string): never {
  console.error(`${message}\n${usage}`);
  Deno.exit(2);
}

const [command, ...files] = positionals;
const workers = values.workers === undefined ? undefined : Number(values.workers);
if (values.help) {
  console.log(usage);
} else if (command === "train") {
  const vocabSize = Number(values["vocab-size"]);
  if (files.length === 0) fail("train needs at least one input file");
  if (!values.out) fail("train needs --out");
  const specialTokens = values.special ?? [];
  const started = performance.now();
  const { vocab, merges } = trainBpe(files, { vocabSize, specialTokens, workers, progress: true });
  const tokenizer = new Tokenizer(vocab, merges, specialTokens);
  saveTokenizer(tokenizer, values.out);
  if (values["gpt2-files"]) {
    Deno.mkdirSync(values["gpt2-files"], { recursive: true });
    saveGpt2Tokenizer(tokenizer, `${values["gpt2-files"]}/vocab.json`, `${values["gpt2-files"]}/merges.txt`);
  }
  console.error(
    `trained ${vocab.size} tokens (${merges.length} merges) in ${((performance.now() - started) / 1000).toFixed(1)} s` +
      ` -> ${values.out}`,
  );
} else if (command === "encode") {
  if (files.length !== 2) fail("encode needs INPUT and OUTPUT");
  const specialTokens = values.special ?? ["<|endoftext|>"];
  let tokenizer: Tokenizer;
  if (values.tokenizer) tokenizer = loadTokenizer(values.tokenizer);
  else if (values.vocab && values.merges) tokenizer = loadGpt2Tokenizer(values.vocab, values.merges, specialTokens);
  else if (values.gpt2) {
    const { gpt2Tokenizer } = await import("../tests/gpt2_oracle.ts");
    tokenizer = gpt2Tokenizer();
  } else fail("encode needs --tokenizer, --vocab with --merges, or --gpt2");
  const result = await encodeFile(files[0], files[1], tokenizer, { workers, progress: true });
  console.error(
    `${result.tokens} tokens (${result.dtype}) from ${(result.textBytes / 1e6).toFixed(1)} MB in ` +
      `${result.seconds.toFixed(1)} s -> ${files[1]}`,
  );
} else {
  fail(command ? `unknown command ${JSON.stringify(command)}` : "missing command");
}

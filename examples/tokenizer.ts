/**
 * The tokenizer notebook (`notebooks/01_tokenizer.ipynb`) as a terminal script: train a byte-level BPE tokenizer on
 * the default corpus (Moby-Dick), show its first merges and how it splits a sentence, measure the compression of
 * several vocabulary sizes (GPT-2's tokenizer for reference) and the token lengths.
 *
 * Usage: `deno run -A examples/tokenizer.ts [--vocab-size 512] [--text "some text"]`. Files go to
 * `runs/examples/data/` (the trained tokenizer is saved there).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { getEncoding } from "js-tiktoken";
import { defaultCorpus } from "../lib/data/mod.ts";
import { END_OF_TEXT, Tokenizer, trainBpe } from "../mod.ts";
import { type TableRow, textTable } from "../lib/notebook/mod.ts";
import { tokenSplitBundle, tokenText } from "../lib/tokenizer/mod.ts";
import { saveTokenizer } from "../lib/data/tokenizer_files.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { "vocab-size": { type: "string", default: "512" }, text: { type: "string" } },
});
const vocabSize = Number(values["vocab-size"]);
if (!Number.isInteger(vocabSize) || vocabSize < 257) {
  throw new Error(
    `--vocab-size must be an integer of at least 257 (256 bytes and <|endoftext|>), got ${values["vocab-size"]}`,
  );
}
const DATA = "runs/examples/data";
await Deno.mkdir(DATA, { recursive: true });
const corpus = await defaultCorpus();
const corpusPath = `${DATA}/corpus.txt`;
await Deno.writeTextFile(corpusPath, corpus);

function train(size: number): { tokenizer: Tokenizer; seconds: number } {
  const t0 = performance.now();
  const { vocab, merges } = trainBpe(corpusPath, { vocabSize: size, specialTokens: [END_OF_TEXT] });
  return { tokenizer: new Tokenizer(vocab, merges, [END_OF_TEXT]), seconds: (performance.now() - t0) / 1000 };
}

const { tokenizer, seconds } = train(vocabSize);
saveTokenizer(tokenizer, `${DATA}/tokenizer-${vocabSize}.json`);
console.log(
  `Trained a ${tokenizer.vocabSize}-token BPE tokenizer on ${corpus.length.toLocaleString()} characters in ` +
    `${seconds.toFixed(2)} s; saved to ${DATA}/tokenizer-${vocabSize}.json\n`,
);

// Spaces shown as "·" so that merges with a leading space are visible.
const show = (b: Uint8Array) => tokenText(b).replace(/ /g, "·").replace(/\n/g, "↵");
const merges = tokenizer.merges();
console.log(textTable(
  merges.slice(0, 10).map(([a, b], rank) => ({
    rank,
    left: show(a),
    right: show(b),
    token: show(new Uint8Array([...a, ...b])),
  })),
  { title: "First merges" },
));

const sample = values.text ?? "Call me Ishmael. The whale, the sea, and the tokenizer!";
console.log(`\nSplit of the sample: ${tokenSplitBundle(tokenizer, sample)["text/plain"]}\n`);

// Compression on the held-out end of the corpus: bytes per token for several vocabulary sizes.
const heldOut = corpus.slice(Math.floor(corpus.length * 0.95));
if (tokenizer.decode(tokenizer.encode(heldOut)) !== heldOut) throw new Error("The round trip changed the text");
const bytes = new TextEncoder().encode(heldOut).length;
const rows: TableRow[] = [];
for (const size of [257, 512, 1024, 2048]) {
  const tok = size === vocabSize ? tokenizer : train(size).tokenizer;
  const n = tok.encode(heldOut).length;
  rows.push({ tokenizer: `BPE ${size}`, tokens: n, "bytes/token": bytes / n });
}
const gpt2 = getEncoding("gpt2").encode(heldOut, "all").length;
rows.push({ tokenizer: "GPT-2 (50,257)", tokens: gpt2, "bytes/token": bytes / gpt2 });
console.log(textTable(rows, { title: `Compression of the held-out text (${bytes.toLocaleString()} bytes)` }));

// Token lengths over the encoded corpus, as a text histogram.
const counts = new Map<number, number>();
const ids = tokenizer.encode(corpus);
for (const id of ids) {
  const len = tokenizer.tokenBytes(id).length;
  counts.set(len, (counts.get(len) ?? 0) + 1);
}
const maxCount = Math.max(...counts.values());
console.log(`\nToken length over the encoded corpus (${ids.length.toLocaleString()} tokens):`);
for (const len of [...counts.keys()].sort((a, b) => a - b)) {
  const n = counts.get(len)!;
  console.log(
    `${String(len).padStart(3)} bytes ${
      "█".repeat(Math.max(1, Math.round((50 * n) / maxCount)))
    } ${n.toLocaleString()}`,
  );
}

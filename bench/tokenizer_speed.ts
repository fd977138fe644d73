/**
 * Tokenizer speed, with the `tiktoken` npm package (WASM of OpenAI's Rust) measured in the same run (and
 * `js-tiktoken`, pure JavaScript, for encoding):
 *
 * - encode ~12 MB of English (US State of the Union addresses + Moby-Dick) with GPT-2's ranks, one thread;
 * - encode 1 MB of one repeated character (tiktoken is quadratic there, so it gets 100 KB);
 * - train on CS336's corpus.en, vocab 500 (needs ../shared/cs336);
 * - train a 10K vocab on the English text repeated 10 times (~120 MB), in a child process for its peak memory;
 * - encode that 120 MB file to a token file with 1 and 2 Workers.
 *
 * Usage: `deno run -A bench/tokenizer_speed.ts [--quick]` (`--quick` skips the 120 MB runs).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { get_encoding } from "tiktoken";
import { Tiktoken as JsTiktoken } from "js-tiktoken/lite";
import jsGpt2Ranks from "js-tiktoken/ranks/gpt2";
import { encodeFile } from "../lib/data/mod.ts";
import { trainBpe } from "../mod.ts";
import { gpt2Tokenizer } from "../tests/gpt2_oracle.ts";
import { englishCorpus, writeEnglishCorpus } from "./english_corpus.ts";

const { values: args } = parseArgs({ args: Deno.args, options: { quick: { type: "boolean", default: false } } });

function time<T>(fn: () => T): [T, number] {
  const started = performance.now();
  const result = fn();
  return [result, (performance.now() - started) / 1000];
}

function best(runs: number, fn: () => unknown): number {
  let fastest = Infinity;
  for (let i = 0; i < runs; i++) fastest = Math.min(fastest, time(fn)[1]);
  return fastest;
}

const lines: string[] = [];
function report(line: string): void {
  lines.push(line);
  console.log(line);
}

/** 1-minute load average: this 2-core box is shared, so other jobs can slow a run (reported with it). */
function load(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
  } catch {
    return "?";
  }
}
const loadAtStart = load();

const text = englishCorpus();
const megabytes = new TextEncoder().encode(text).length / 1e6;
report(`English corpus: ${megabytes.toFixed(2)} MB`);

// Encoding, one thread. "cold" is a fresh tokenizer's first pass (empty cache), "warm" the best of three.
const tiktoken = get_encoding("gpt2");
const [theirIds, theirFirst] = time(() => tiktoken.encode(text, ["<|endoftext|>"]));
const theirBest = Math.min(theirFirst, best(2, () => tiktoken.encode(text, ["<|endoftext|>"])));
const ours = gpt2Tokenizer();
const [ourIds, ourCold] = time(() => ours.encode(text));
const ourWarm = Math.min(ourCold, best(3, () => ours.encode(text)));
const same = ourIds.length === theirIds.length && ourIds.every((id, i) => id === theirIds[i]);
report(
  `encode GPT-2, ${megabytes.toFixed(1)} MB English, 1 thread: ours ${(megabytes / ourCold).toFixed(1)} MB/s cold, ` +
    `${(megabytes / ourWarm).toFixed(1)} MB/s warm; tiktoken ${(megabytes / theirBest).toFixed(1)} MB/s; ` +
    `ratio ${(theirBest / ourCold).toFixed(2)}x cold, ${(theirBest / ourWarm).toFixed(2)}x warm; ` +
    `${ourIds.length} tokens, ids identical: ${same}`,
);
if (!same) throw new Error("Our ids differ from tiktoken's");
const jsTiktoken = new JsTiktoken(jsGpt2Ranks);
const [jsIds, jsSeconds] = time(() => jsTiktoken.encode(text, ["<|endoftext|>"]));
report(
  `encode GPT-2, same text: js-tiktoken (pure JS) ${(megabytes / jsSeconds).toFixed(1)} MB/s, one run; ` +
    `ids identical: ${jsIds.length === ourIds.length && jsIds.every((id, i) => id === ourIds[i])}`,
);

const repeated = "a".repeat(1 << 20);
const [, oneMb] = time(() => ours.encode(repeated));
const [, tiktoken100k] = time(() => tiktoken.encode("a".repeat(100_000)));
report(
  `pathological, one repeated character: ours 1 MB in ${oneMb.toFixed(3)} s; tiktoken 100 KB in ` +
    `${tiktoken100k.toFixed(2)} s (quadratic, so ~${(tiktoken100k * 100).toFixed(0)} s projected for 1 MB)`,
);

const corpusEn = new URL("../../shared/cs336/corpus.en", import.meta.url);
try {
  Deno.statSync(corpusEn);
  const seconds = best(5, () => trainBpe(corpusEn.pathname, { vocabSize: 500, specialTokens: ["<|endoftext|>"] }));
  report(
    `train corpus.en (${(Deno.statSync(corpusEn).size / 1e3).toFixed(0)} KB), vocab 500: ${
      seconds.toFixed(3)
    } s (best of 5)`,
  );
} catch (e) {
  if (!(e instanceof Deno.errors.NotFound)) throw e;
  report("train corpus.en: skipped (../shared/cs336 not found)");
}

if (!args.quick) {
  const dir = Deno.makeTempDirSync({ prefix: "nanolm-bench-" });
  try {
    const big = writeEnglishCorpus(`${dir}/english120.txt`, 10);
    const bigMb = Deno.statSync(big).size / 1e6;
    for (const workers of [2, 1]) {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL("./train_child.ts", import.meta.url).pathname, big, "10000", String(workers)],
        stderr: "inherit",
      }).outputSync();
      if (!child.success) throw new Error("training child failed");
      const result = JSON.parse(new TextDecoder().decode(child.stdout));
      report(
        `train vocab 10K on ${bigMb.toFixed(0)} MB, ${workers} worker(s): ${result.seconds.toFixed(2)} s, ` +
          `peak RSS ${result.peakMB.toFixed(0)} MB, ${result.merges} merges`,
      );
    }
    for (const workers of [1, 2]) {
      const fresh = gpt2Tokenizer();
      const result = await encodeFile(big, `${dir}/english120.bin`, fresh, { workers });
      report(
        `encodeFile ${bigMb.toFixed(0)} MB -> uint16, ${workers} worker(s): ${result.seconds.toFixed(2)} s, ` +
          `${(bigMb / result.seconds).toFixed(1)} MB/s, ${result.tokens} tokens`,
      );
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

report(
  `machine: ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}, ${new Date().toISOString()}, ` +
    `load average ${loadAtStart} at start, ${load()} at end`,
);

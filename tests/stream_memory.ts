/**
 * Child process of the bounded-memory streaming test: streams a file through `encodeIterable` and prints, as JSON,
 * the id count and the largest heap growth seen after full garbage collections. Run with
 * `--v8-flags=--expose-gc`.
 */
import { gpt2Tokenizer } from "./gpt2_oracle.ts";

const [path, warmText] = Deno.args;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("Run with --v8-flags=--expose-gc");
const tok = gpt2Tokenizer();
for (const _ of tok.encodeIterable([Deno.readTextFileSync(warmText)])) { /* warm up the JIT and the cache */ }
gc();
const before = Deno.memoryUsage().heapUsed;
let count = 0, peak = 0;
const file = await Deno.open(path);
for await (const _ of tok.encodeIterable(file.readable)) {
  if (++count % 250_000 === 0) {
    gc();
    peak = Math.max(peak, Deno.memoryUsage().heapUsed - before);
  }
}
console.log(JSON.stringify({ count, peak }));

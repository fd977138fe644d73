/**
 * The computation the browser check runs twice, in Chromium and in Deno, with the same seeds: a byte-level BPE
 * tokenizer trained on a sentence, the forward pass of a tiny TransformerLM on an encoded prompt, and a greedy
 * continuation with the KV-cached decoder. It imports only the core layers (tensor, nn, tokenizer, sample), the
 * ones `scripts/check_layers.ts` keeps free of `Deno.*` and `node:*`.
 *
 * @module
 */
import { initGpu, noGrad, readAll, tensor } from "@nanolm/nanolm/tensor";
import { TransformerLM } from "@nanolm/nanolm/nn";
import { bpeFromCounts, countPretokensOfText, PretokenCounter, Tokenizer } from "@nanolm/nanolm/tokenizer";
import { generateStream } from "@nanolm/nanolm/sample";

/** What one run produced. */
export interface TinyRunResult {
  /** The adapter, as WebGPU describes it. */
  adapter: string;
  /** The prompt's ids. */
  ids: number[];
  /** Shape of the logits: [1, prompt length, vocabulary size]. */
  shape: number[];
  /** The logits of the prompt, flat. */
  logits: number[];
  /** The greedy continuation's ids. */
  generated: number[];
}

const CORPUS = "the cat sat on the mat. the dog sat on the log. the cat saw the dog.";

/** Trains the tokenizer, runs the forward pass and a greedy continuation; reads the GPU twice. */
export async function tinyRun(): Promise<TinyRunResult> {
  const backend = await initGpu();
  const counts = new PretokenCounter();
  countPretokensOfText(CORPUS, counts, null);
  const { vocab, merges } = bpeFromCounts(counts.toMap(), { vocabSize: 280 });
  const tokenizer = new Tokenizer(vocab, merges);
  const model = new TransformerLM(
    { vocabSize: tokenizer.vocabSize, contextLength: 32, dModel: 32, numLayers: 2, numHeads: 4 },
    { seed: 7 },
  );
  const ids = tokenizer.encode("the cat sat on");
  const input = tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: "i32" });
  const logits = noGrad(() => model.forward(input));
  const [values] = await readAll([logits]);
  const generated: number[] = [];
  for await (const e of generateStream(model, ids, { tokenizer, maxNewTokens: 8, temperature: 0 })) {
    generated.push(e.token);
  }
  return {
    adapter: backend.info.description,
    ids,
    shape: [...logits.shape],
    logits: Array.from(values),
    generated,
  };
}

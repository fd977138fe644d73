import { assert, assertClose, assertEquals } from "../../tests/assert.ts";
import { writeTokenFile } from "../data/token_files.ts";
import { saveTokenizer } from "../data/tokenizer_files.ts";
import { initGpu, keep, noGrad, readAll, tensor, tidy } from "../tensor/mod.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { Rng } from "../util/random.ts";
import { BitsPerByte, targetLogProbs, tokenByteLengths } from "./bpb.ts";
import { Trainer, type TrainEvent } from "./trainer.ts";

/** 256 bytes, "ab" (256), "abc" (257) and the special <|endoftext|> (258). */
function smallTokenizer(): Tokenizer {
  const vocab = new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])]));
  vocab.set(256, new Uint8Array([97, 98]));
  vocab.set(257, new Uint8Array([97, 98, 99]));
  const merges: [Uint8Array, Uint8Array][] = [
    [new Uint8Array([97]), new Uint8Array([98])],
    [new Uint8Array([97, 98]), new Uint8Array([99])],
  ];
  return new Tokenizer(vocab, merges, ["<|endoftext|>"]);
}

/** log-softmax of one row in float64. */
function logSoftmax64(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (v) => v - lse);
}

Deno.test("token byte lengths: UTF-8 bytes of each id, 0 for special tokens and ids past the tokenizer", () => {
  const tok = smallTokenizer();
  const lengths = tokenByteLengths(tok, 260);
  assertEquals([lengths[0], lengths[97], lengths[256], lengths[257], lengths[258], lengths[259]], [1, 1, 2, 3, 0, 0]);
});

Deno.test("bits per byte by hand: summed nats of the text targets over ln 2 and their bytes", () => {
  const bpb = new BitsPerByte(new Int32Array([1, 2, 3, 0]));
  assertEquals(bpb.value(), undefined);
  // Targets 0 (1 byte), 2 (3 bytes), 3 (special: nothing), 1 (2 bytes), with probabilities 1/2, 1/8, 1/1000, 1/4.
  bpb.add(new Int32Array([0, 2, 3, 1]), [Math.log(1 / 2), Math.log(1 / 8), Math.log(1 / 1000), Math.log(1 / 4)]);
  // 1 + 3 + 2 bits over 1 + 3 + 2 bytes.
  assertClose([bpb.value()!], [1], { atol: 1e-15 });
});

Deno.test("targetLogProbs picks each target's log-probability, also in parts", async () => {
  await initGpu();
  const rng = new Rng(3);
  const rows = 7, vocab = 5;
  const logits = Array.from({ length: rows * vocab }, () => rng.normal() * 3);
  const targets = Int32Array.from({ length: rows }, () => rng.int(vocab));
  const expected = Array.from(
    { length: rows },
    (_, r) => logSoftmax64(logits.slice(r * vocab, (r + 1) * vocab))[targets[r]],
  );
  for (const maxElements of [undefined, 2 * vocab, 3]) {
    const parts = tidy(() =>
      noGrad(() =>
        targetLogProbs(tensor(Float32Array.from(logits), { shape: [1, rows, vocab] }), targets, { maxElements })
      ).map(keep)
    );
    assertEquals(parts.length, maxElements === undefined ? 1 : maxElements === 3 ? rows : 4);
    const values = (await readAll(parts)).flatMap((p) => [...p]);
    for (const p of parts) p.dispose();
    assertClose(values, expected, { atol: 1e-5 });
  }
});

Deno.test("evaluations report bits per byte against a float64 computation from the model's logits", async () => {
  const dir = await Deno.makeTempDir();
  const rng = new Rng(7);
  // Byte tokens, the two merged tokens and the special token, so every kind of byte length occurs.
  const ids = Array.from({ length: 600 }, () => [97, 98, 99, 256, 257, 258, 32][rng.int(7)]);
  await writeTokenFile(`${dir}/train.bin`, ids);
  await writeTokenFile(`${dir}/val.bin`, ids.slice(0, 16 * 5 + 1));
  saveTokenizer(smallTokenizer(), `${dir}/tok.json`);
  const config = {
    model: { vocabSize: 259, contextLength: 16, dModel: 16, numLayers: 1, numHeads: 2 },
    train: {
      trainData: `${dir}/train.bin`,
      valData: `${dir}/val.bin`,
      tokenizer: `${dir}/tok.json`,
      outDir: `${dir}/run`,
      steps: 4,
      batchSize: 2,
      evalInterval: 2,
      evalIters: 3,
      logInterval: 2,
    },
  };
  const events: TrainEvent[] = [];
  const trainer = await Trainer.create(config, { onEvent: (e) => void events.push(e) });
  const { valLoss, valBpb } = await trainer.evaluation();

  // The reference: every validation row (5 rows of 16, batches of 2, so 3 batches), logits read back, log-softmax
  // and the sums in float64.
  const lengths = tokenByteLengths(smallTokenizer(), 259);
  const val = ids.slice(0, 16 * 5 + 1);
  const inputs = tensor(Int32Array.from(val.slice(0, 80)), { shape: [5, 16], dtype: "i32" });
  const logits = noGrad(() => trainer.model.forward(inputs));
  const flat = (await logits.data()) as Float32Array;
  logits.dispose();
  inputs.dispose();
  let nats = 0, bytes = 0, allNats = 0;
  for (let i = 0; i < 80; i++) {
    const target = val[i + 1];
    const logp = logSoftmax64(flat.subarray(i * 259, (i + 1) * 259))[target];
    allNats -= logp;
    if (lengths[target] === 0) continue;
    nats -= logp;
    bytes += lengths[target];
  }
  assert(val.slice(1).includes(258), "the validation targets hold a special token");
  assertClose([valBpb!], [nats / (Math.LN2 * bytes)], { rtol: 1e-5 });
  assertClose([valLoss], [allNats / 80], { rtol: 1e-5 });

  await trainer.fit();
  trainer.dispose();
  const evals = events.filter((e) => e.type === "eval");
  assertEquals(evals.length, 2);
  assert(evals.every((e) => e.type === "eval" && typeof e.valBpb === "number" && e.valBpb > 0));

  // Without a tokenizer there are no byte lengths, so no bits per byte.
  const bare = await Trainer.create({ ...config, train: { ...config.train, tokenizer: undefined } });
  assertEquals((await bare.evaluation()).valBpb, undefined);
  bare.dispose();
  await Deno.remove(dir, { recursive: true });
});

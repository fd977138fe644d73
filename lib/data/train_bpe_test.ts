import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { Rng } from "../util/random.ts";
import { trainBpe } from "./train_bpe.ts";
import { pretokenizeRegex } from "../tokenizer/pretokenize.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";

const encoder = new TextEncoder();
const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/**
 * CS336's algorithm written the slow, obvious way: split on specials, pre-tokenize with the reference regex, then
 * per merge recount every pair and take the max count, ties to the greater (first, second) byte strings.
 */
function naiveTrain(text: string, vocabSize: number, specials: string[]): string[] {
  const words = new Map<string, number>();
  const parts = specials.length
    ? text.split(
      new RegExp(
        [...specials].sort((a, b) => b.length - a.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(
          "|",
        ),
      ),
    )
    : [text];
  for (const part of parts) for (const w of pretokenizeRegex(part)) words.set(w, (words.get(w) ?? 0) + 1);
  let seqs = [...words].map(([w, c]) => ({ seq: Array.from(encoder.encode(w), (b) => [b]), count: c }));
  const merges: string[] = [];
  const cmp = (x: number[], y: number[]) => {
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length;
  };
  while (256 + specials.length + merges.length < vocabSize) {
    const counts = new Map<string, { a: number[]; b: number[]; n: number }>();
    for (const { seq, count } of seqs) {
      for (let i = 0; i + 1 < seq.length; i++) {
        const key = `${seq[i]}|${seq[i + 1]}`;
        const entry = counts.get(key) ?? { a: seq[i], b: seq[i + 1], n: 0 };
        entry.n += count;
        counts.set(key, entry);
      }
    }
    let best: { a: number[]; b: number[]; n: number } | undefined;
    for (const e of counts.values()) {
      if (!best || e.n > best.n || (e.n === best.n && (cmp(e.a, best.a) || cmp(e.b, best.b)) > 0)) best = e;
    }
    if (!best) break;
    const { a, b } = best;
    merges.push(`${hex(Uint8Array.from(a))} ${hex(Uint8Array.from(b))}`);
    seqs = seqs.map(({ seq, count }) => {
      const out: number[][] = [];
      for (let i = 0; i < seq.length; i++) {
        if (i + 1 < seq.length && cmp(seq[i], a) === 0 && cmp(seq[i + 1], b) === 0) {
          out.push([...a, ...b]);
          i++;
        } else out.push(seq[i]);
      }
      return { seq: out, count };
    });
  }
  return merges;
}

function randomCorpus(rng: Rng, length: number): string {
  const words = [
    "the",
    " the",
    " cat",
    " cats",
    "at",
    " at",
    "'s",
    " a",
    "aa",
    "aaa",
    " 12",
    "3",
    "!",
    "..",
    "\n",
    "  ",
    "é",
    "中文",
    "🙃",
  ];
  let text = "";
  while (text.length < length) {
    text += rng.uniform() < 0.03 ? "<|endoftext|>" : words[rng.int(words.length)];
  }
  return text;
}

Deno.test("training equals the obvious algorithm on random corpora, ties included", () => {
  const rng = new Rng(21);
  const dir = Deno.makeTempDirSync();
  try {
    for (let trial = 0; trial < 6; trial++) {
      const text = randomCorpus(rng, 2000 + rng.int(3000));
      const path = `${dir}/c${trial}.txt`;
      Deno.writeTextFileSync(path, text);
      const vocabSize = 300 + rng.int(60);
      const { vocab, merges } = trainBpe(path, { vocabSize, specialTokens: ["<|endoftext|>"] });
      const expected = naiveTrain(text, vocabSize, ["<|endoftext|>"]);
      assertEquals(merges.map(([a, b]) => `${hex(a)} ${hex(b)}`), expected, `trial ${trial}`);
      assertEquals(vocab.size, 257 + expected.length);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("Workers and several input files give the same merges as one thread on their concatenation", () => {
  const rng = new Rng(8);
  const dir = Deno.makeTempDirSync();
  try {
    const parts = [randomCorpus(rng, 300_000) + "\n", randomCorpus(rng, 200_000) + "\n"];
    parts.forEach((p, i) => Deno.writeTextFileSync(`${dir}/p${i}.txt`, p));
    Deno.writeTextFileSync(`${dir}/all.txt`, parts.join(""));
    const options = { vocabSize: 400, specialTokens: ["<|endoftext|>"] };
    const one = trainBpe(`${dir}/all.txt`, { ...options, workers: 1 });
    const many = trainBpe([new URL(`file://${dir}/p0.txt`), `${dir}/p1.txt`], { ...options, workers: 2 });
    const key = (m: Array<[Uint8Array, Uint8Array]>) => m.map(([a, b]) => `${hex(a)} ${hex(b)}`);
    assertEquals(key(many.merges), key(one.merges));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a trained model round-trips text through Tokenizer, specials kept whole", () => {
  const path = Deno.makeTempFileSync();
  try {
    const text = randomCorpus(new Rng(2), 20_000);
    Deno.writeTextFileSync(path, text);
    const { vocab, merges } = trainBpe(path, { vocabSize: 320, specialTokens: ["<|endoftext|>"] });
    const tok = new Tokenizer(vocab, merges, ["<|endoftext|>"]);
    const ids = tok.encode(text);
    assertEquals(tok.decode(ids), text);
    assertEquals(ids.filter((id) => id === 256).length, text.split("<|endoftext|>").length - 1);
  } finally {
    Deno.removeSync(path);
  }
});

Deno.test("several special tokens, with regex metacharacters, are split out and never merged", () => {
  const path = Deno.makeTempFileSync();
  try {
    const specials = ["[SEP]", "<|endoftext|>", "a|b"];
    const text = "the cat[SEP]the cat<|endoftext|>a|b a|b the[SEP][SEP]".repeat(50);
    Deno.writeTextFileSync(path, text);
    const { vocab, merges } = trainBpe(path, { vocabSize: 290, specialTokens: specials });
    assertEquals(specials.map((_, i) => new TextDecoder().decode(vocab.get(256 + i))), specials);
    assertEquals(merges.map(([a, b]) => `${hex(a)} ${hex(b)}`), naiveTrain(text, 290, specials));
    for (const [a, b] of merges) {
      const joined = new TextDecoder().decode(new Uint8Array([...a, ...b]));
      for (const s of specials) assertEquals(joined.includes(s), false, `merge ${joined} contains ${s}`);
    }
  } finally {
    Deno.removeSync(path);
  }
});

Deno.test("bad training input gives clear errors", () => {
  const path = Deno.makeTempFileSync();
  try {
    Deno.writeTextFileSync(path, "some text");
    assertThrows(() => trainBpe(path, { vocabSize: 256, specialTokens: ["<|endoftext|>"] }), "at least 256 + 1");
    assertThrows(() => trainBpe(path, { vocabSize: 100 }), "got 100");
    assertThrows(() => trainBpe(path, { vocabSize: 300, specialTokens: [7 as unknown as string] }), "got 7");
    assertThrows(() => trainBpe(`${path}.missing`, { vocabSize: 300 }), ".missing");
    Deno.writeTextFileSync(path, "");
    assertThrows(() => trainBpe(path, { vocabSize: 300 }), "empty");
  } finally {
    Deno.removeSync(path);
  }
});

Deno.test("progress bars report pre-tokenization MB/s and merges/s", () => {
  const path = Deno.makeTempFileSync();
  try {
    Deno.writeTextFileSync(path, randomCorpus(new Rng(4), 50_000));
    const lines: string[] = [];
    trainBpe(path, { vocabSize: 300, specialTokens: ["<|endoftext|>"], progress: { write: (t) => lines.push(t) } });
    const text = lines.join("");
    assertEquals(/pre-tokenize .*100\.0% .* MB\/s/.test(text), true, text);
    assertEquals(/bpe merges .*100\.0% 43\/43 .* merges\/s/.test(text), true, text);
  } finally {
    Deno.removeSync(path);
  }
});

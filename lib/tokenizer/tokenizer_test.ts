import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import {
  GPT2_EOT,
  gpt2TiktokenText,
  gpt2Tokenizer,
  tiktokenEncode,
  tiktokenEncodeOrdinary,
} from "../../tests/gpt2_oracle.ts";
import { Rng } from "../util/random.ts";
import { Tokenizer } from "./tokenizer.ts";
import {
  loadGpt2Tokenizer,
  loadTiktoken,
  loadTokenizer,
  saveGpt2Tokenizer,
  saveTiktoken,
  saveTokenizer,
} from "../data/tokenizer_files.ts";

/** Like assertEquals on id arrays, but reports the first difference instead of both whole arrays. */
function assertSameIds(actual: number[], expected: number[], what: string): void {
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  if (i < actual.length || i < expected.length) {
    throw new Error(
      `${what}: ids differ at index ${i} of ${actual.length} (expected ${expected.length}): ` +
        `${JSON.stringify(actual.slice(Math.max(0, i - 3), i + 4))} vs ${
          JSON.stringify(expected.slice(Math.max(0, i - 3), i + 4))
        }`,
    );
  }
}

const SAMPLES = [
  "",
  "s",
  "🙃",
  "Hello, world! It's a test: don't, won't, I'll, we've, they're, I'm, he'd.",
  "HE'S SHOUTING'LL 'tis 's 'S",
  "Numbers: 0 1 12 123 1234 12345 3.14159 1,000,000 -42 +7 1e10 0x1F ٣٤٥ ½ Ⅻ",
  "Whitespace:  two   three    four\t\ttabs\n\nnewlines\r\n\r\ncrlf \n \n  trailing   ",
  "   leading spaces and a lone \u00a0 nbsp, \u3000 ideographic, \u2028 line sep, \x85 nel, \ufeff bom, \x0b vt",
  "Deutsch: Größenänderung, Übermäßig, straße. Français: déjà vu, où, naïveté. Español: ¿Qué tal? ¡Olé!",
  "Русский текст с пунктуацией, и цифрами 2024. Ελληνικά: Καλημέρα κόσμε. עברית: שלום עולם. العربية: مرحبا بالعالم",
  "中文文本，没有空格。日本語のテキスト、カタカナとひらがな。한국어 텍스트입니다.",
  "हिन्दी पाठ। தமிழ் உரை. ไทยไม่มีช่องว่าง. ქართული. Հայերեն. አማርኛ",
  "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇺🇸🇫🇷 a😀b 1😀2 😀 😀",
  "Math: ∑∫∂ √2 ≤ ≥ ≠ ∞ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 x² y₁",
  "code: if (x == 1) { return y->z[0]; } // comment\n\tprint(f'{a!r}')  # done",
  "Special <|endoftext|> tokens<|endoftext|><|endoftext|>in text <|endoftext|>",
  "<|endoftext|>",
  "<|endoftext", // an unfinished special is ordinary text
  "a".repeat(300) + " " + "!".repeat(200) + " " + "9".repeat(150),
  "lone surrogates: \ud800 x \udfff y \ud83d",
  "\x00\x01\x1c\x1f control chars \x7f",
];

Deno.test("GPT-2 ids equal tiktoken's on many scripts, emoji, whitespace, digits and specials", () => {
  const tok = gpt2Tokenizer();
  for (const text of SAMPLES) assertSameIds(tok.encode(text), tiktokenEncode(text), JSON.stringify(text.slice(0, 50)));
});

Deno.test("GPT-2 ids equal tiktoken's around every BMP code point and a sample of astral ones", () => {
  const tok = gpt2Tokenizer();
  const pieces: string[] = [];
  for (let c = 0; c < 0x10000; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    const ch = String.fromCharCode(c);
    pieces.push(` ${ch}a${ch}${ch}1 ${ch}\n`);
  }
  for (let c = 0x10000; c < 0x110000; c += 97) {
    const ch = String.fromCodePoint(c);
    pieces.push(` ${ch}a${ch}1 ${ch}\n`);
  }
  // Encode in blocks so that a mismatch is reported near where it happens.
  for (let i = 0; i < pieces.length; i += 4096) {
    const text = pieces.slice(i, i + 4096).join("");
    const ours = tok.encode(text), theirs = tiktokenEncode(text);
    if (ours.join() !== theirs.join()) {
      for (const piece of pieces.slice(i, i + 4096)) {
        assertEquals(tok.encode(piece), tiktokenEncode(piece), JSON.stringify(piece));
      }
    }
  }
});

Deno.test("GPT-2 ids equal tiktoken's on random mixtures", () => {
  const tok = gpt2Tokenizer();
  const parts = [
    " ",
    "  ",
    "\n",
    "\t",
    "the",
    " cat",
    "'s",
    "'ll",
    "'",
    "1",
    "23",
    "!",
    "?!",
    "é",
    "中",
    "🙃",
    "\u00a0",
    "\x85",
    "\ufeff",
    "<|endoftext|>",
    "<|",
  ];
  const rng = new Rng(5);
  for (let t = 0; t < 3000; t++) {
    let text = "";
    const n = rng.int(16);
    for (let i = 0; i < n; i++) text += parts[rng.int(parts.length)];
    assertEquals(tok.encode(text), tiktokenEncode(text), JSON.stringify(text));
  }
});

Deno.test("decode inverts encode; invalid UTF-8 becomes U+FFFD", () => {
  const tok = gpt2Tokenizer();
  for (const text of SAMPLES) {
    if (/[\ud800-\udfff]/.test(text.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ""))) continue; // lone surrogates
    assertEquals(tok.decode(tok.encode(text)), text);
  }
  const emoji = tok.encode("🙃");
  assert(emoji.length > 1, "the emoji needs several byte tokens");
  assertEquals(tok.decode(emoji.slice(0, 1)), "\ufffd");
  assertEquals(tok.decode([GPT2_EOT]), "<|endoftext|>");
  assertThrows(() => tok.decode([1e9]), "1000000000");
});

Deno.test("a megabyte of one repeated character encodes in linear time, like tiktoken", () => {
  const tok = gpt2Tokenizer();
  for (const ch of ["a", " ", "!", "1"]) {
    const text = ch.repeat(1 << 20);
    const started = performance.now();
    const ids = tok.encode(text);
    const ms = performance.now() - started;
    assert(ms < 2500, `1 MB of ${JSON.stringify(ch)} took ${ms.toFixed(0)} ms`);
    assertEquals(tok.decode(ids), text);
  }
  const text = "a".repeat(10_000); // tiktoken itself is quadratic here
  assertEquals(tok.encode(text), tiktokenEncode(text));
});

function randomChunks(text: string, rng: Rng, maxChunk: number): string[] {
  const chunks: string[] = [];
  for (let i = 0; i < text.length;) {
    const n = 1 + rng.int(maxChunk);
    chunks.push(text.slice(i, i + n));
    i += n;
  }
  return chunks;
}

Deno.test("streaming equals one-shot encoding for any chunking", async () => {
  const tok = gpt2Tokenizer();
  const overlapping = new Tokenizer(tok.vocab(), tok.merges(), ["<|endoftext|>", "<|endoftext|><|endoftext|>"]);
  const rng = new Rng(9);
  const text = SAMPLES.join("\n   \n") + "<|endoftext|><|endoftext|>" + SAMPLES.join("<|endoftext|>");
  for (const t of [tok, overlapping]) {
    const whole = t.encode(text);
    for (const maxChunk of [1, 2, 3, 7, 50, 1000]) {
      assertSameIds([...t.encodeIterable(randomChunks(text, rng, maxChunk))], whole, `chunks up to ${maxChunk}`);
    }
    const bytes = new TextEncoder().encode(text);
    const stream = ReadableStream.from((function* () {
      for (let i = 0; i < bytes.length; i += 5) yield bytes.subarray(i, i + 5); // cuts inside UTF-8 sequences
    })());
    const streamed: number[] = [];
    for await (const id of t.encodeIterable(stream)) streamed.push(id);
    assertSameIds(streamed, whole, "byte stream");
    const byteChunks = [];
    for (let i = 0; i < bytes.length; i += 3) byteChunks.push(bytes.subarray(i, i + 3));
    assertSameIds([...t.encodeIterable(byteChunks)], whole, "sync byte chunks");
    const path = Deno.makeTempFileSync();
    try {
      Deno.writeFileSync(path, bytes);
      using file = Deno.openSync(path);
      const fromFile: number[] = [];
      for await (const id of t.encodeIterable(file)) fromFile.push(id);
      assertSameIds(fromFile, whole, "Deno.FsFile");
    } finally {
      Deno.removeSync(path);
    }
  }
});

Deno.test("streaming a large generated file keeps memory bounded", async () => {
  const tok = gpt2Tokenizer();
  const dir = await Deno.makeTempDir();
  try {
    const paragraph = SAMPLES.slice(3, 14).join("\n") + "<|endoftext|>\n";
    const unit = paragraph.repeat(Math.ceil((1 << 20) / paragraph.length)); // about 1 MB
    Deno.writeTextFileSync(`${dir}/unit.txt`, unit);
    const file = await Deno.open(`${dir}/big.txt`, { write: true, create: true });
    const bytes = new TextEncoder().encode(unit);
    const copies = 12;
    for (let i = 0; i < copies; i++) await file.write(bytes);
    file.close();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        new URL("../../tests/stream_memory.ts", import.meta.url).pathname,
        `${dir}/big.txt`,
        `${dir}/unit.txt`,
      ],
      stderr: "inherit",
    }).outputSync();
    assert(child.success, "the streaming child process failed");
    const { count, peak } = JSON.parse(new TextDecoder().decode(child.stdout));
    // Units end in "\n" and start with a letter, so the whole file encodes as the units one by one.
    assertEquals(count, tok.encode(unit).length * copies);
    // The ids alone would take ~25 MB and the text ~24 MB; the stream may only hold chunks and the cache.
    assert(peak < 6 * 2 ** 20, `heap grew by ${(peak / 2 ** 20).toFixed(1)} MB while streaming 12 MB`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("special tokens: longest match wins, unknown ones are appended, plain text never produces them", () => {
  const base = gpt2Tokenizer();
  const plain = new Tokenizer(base.vocab(), base.merges());
  assertEquals(plain.encode("a<|endoftext|>b"), tiktokenEncodeOrdinary("a<|endoftext|>b"));
  assert(!plain.encode("a<|endoftext|>b").includes(GPT2_EOT), "no specials: <|endoftext|> is plain text");
  const tok = new Tokenizer(base.vocab(), base.merges(), ["<|endoftext|>", "<|endoftext|><|endoftext|>", "<sep>"]);
  const ids = tok.encode("x<|endoftext|><|endoftext|><|endoftext|><sep>y");
  const sep = tok.specialTokens.get("<sep>")!;
  const double = tok.specialTokens.get("<|endoftext|><|endoftext|>")!;
  assertEquals(sep, base.vocabSize + 1);
  assertEquals(double, base.vocabSize);
  assertEquals(tok.specialTokens.get("<|endoftext|>"), GPT2_EOT);
  assertEquals(ids, [...tok.encode("x"), double, GPT2_EOT, sep, ...tok.encode("y")]);
  assertThrows(() => new Tokenizer(base.vocab(), base.merges(), [42 as unknown as string]), "42");
  assertThrows(() => new Tokenizer(base.vocab(), base.merges(), [""]), "empty");
});

Deno.test("special tokens with regex metacharacters are matched literally", () => {
  const base = gpt2Tokenizer();
  const specials = ["[SEP]", "a|b", "(.*)", "\\d+", "^$"];
  const tok = new Tokenizer(base.vocab(), base.merges(), specials);
  const text = "x[SEP]y a|b (.*) \\d+ ^$ [SEP [SEP]] ab a.b";
  const ids = tok.encode(text);
  assertEquals(tok.decode(ids), text);
  const specialIds = new Set(tok.specialTokens.values());
  assertEquals(ids.filter((id) => specialIds.has(id)).map((id) => tok.decode([id])), [
    "[SEP]",
    "a|b",
    "(.*)",
    "\\d+",
    "^$",
    "[SEP]",
  ]);
});

Deno.test("GPT-2 / HF, tiktoken and nanolm formats save and load to the same tokenizer", () => {
  const tok = gpt2Tokenizer();
  const dir = Deno.makeTempDirSync();
  try {
    const text = SAMPLES.join("\n");
    saveGpt2Tokenizer(tok, `${dir}/vocab.json`, `${dir}/merges.txt`);
    const hf = loadGpt2Tokenizer(`${dir}/vocab.json`, `${dir}/merges.txt`, ["<|endoftext|>"]);
    assertEquals(hf.encode(text), tok.encode(text));
    saveTiktoken(tok, `${dir}/gpt2.tiktoken`);
    assertEquals(Deno.readTextFileSync(`${dir}/gpt2.tiktoken`).trim(), gpt2TiktokenText().trim());
    const tt = loadTiktoken(`${dir}/gpt2.tiktoken`, { specialTokens: { "<|endoftext|>": GPT2_EOT } });
    assertEquals(tt.encode(text), tok.encode(text));
    saveTokenizer(tok, `${dir}/tok.json`);
    assertEquals(loadTokenizer(`${dir}/tok.json`).encode(text), tok.encode(text));
    saveTokenizer(hf, `${dir}/hf.json`);
    const again = loadTokenizer(`${dir}/hf.json`);
    assertEquals(again.encode(text), tok.encode(text));
    assertEquals(again.specialTokens.get("<|endoftext|>"), GPT2_EOT);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a structured-cloned snapshot rebuilds the same tokenizer (both merge rules)", () => {
  const ranks = gpt2Tokenizer();
  const merges = new Tokenizer(ranks.vocab(), ranks.merges(), ["<|endoftext|>"]);
  const text = SAMPLES.join("\n");
  for (const tok of [ranks, merges]) {
    const copy = Tokenizer.fromSnapshot(structuredClone(tok.snapshot()));
    assertSameIds(copy.encode(text), tok.encode(text), "snapshot copy");
    assertEquals(copy.vocabSize, tok.vocabSize);
  }
  assertThrows(() => Tokenizer.fromSnapshot({} as never), "Not a tokenizer snapshot");
});

Deno.test("malformed files and bad arguments give clear errors naming the file and line", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const vocab: Record<string, number> = {};
    for (let b = 0; b < 256; b++) vocab[String.fromCharCode(b < 33 ? 256 + b : b)] = b;
    const good = Tokenizer.fromTiktokenText(gpt2TiktokenText());
    saveGpt2Tokenizer(good, `${dir}/vocab.json`, `${dir}/merges.txt`);
    const merges = Deno.readTextFileSync(`${dir}/merges.txt`).split("\n");
    Deno.writeTextFileSync(`${dir}/bad_merges.txt`, [...merges.slice(0, 5), "Ġt", ...merges.slice(5)].join("\n"));
    assertThrows(() => loadGpt2Tokenizer(`${dir}/vocab.json`, `${dir}/bad_merges.txt`), "bad_merges.txt:6");
    Deno.writeTextFileSync(`${dir}/unknown_merges.txt`, [...merges.slice(0, 3), "zzq qqz"].join("\n"));
    assertThrows(() => loadGpt2Tokenizer(`${dir}/vocab.json`, `${dir}/unknown_merges.txt`), "unknown_merges.txt:4");
    const lines = Deno.readTextFileSync(`${dir}/vocab.json`).split("\n");
    lines[7] = lines[7].replace(/: \d+/, ": -3");
    Deno.writeTextFileSync(`${dir}/bad_vocab.json`, lines.join("\n"));
    assertThrows(() => loadGpt2Tokenizer(`${dir}/bad_vocab.json`, `${dir}/merges.txt`), "bad_vocab.json:8");
    Deno.writeTextFileSync(`${dir}/broken.json`, '{\n  "a": 1,\n  "b": \n}');
    assertThrows(() => loadGpt2Tokenizer(`${dir}/broken.json`, `${dir}/merges.txt`), "broken.json:");
    assertThrows(() => loadGpt2Tokenizer(`${dir}/missing.json`, `${dir}/merges.txt`), "missing.json");
    Deno.writeTextFileSync(`${dir}/bad.tiktoken`, "IQ== 0\nIg== 1\nnot-base64!! x\n");
    assertThrows(() => loadTiktoken(`${dir}/bad.tiktoken`), "bad.tiktoken:3");
    assertThrows(() => loadTiktoken(`${dir}/nope.tiktoken`), "nope.tiktoken");
    assertThrows(() => new Tokenizer(new Map([[0, new Uint8Array([0])]]), []), "byte 1 has no token");
    await assertRejects(async () => {
      for await (const _ of good.encodeIterable([1 as unknown as string])) { /* drain */ }
    }, "strings or Uint8Arrays, got 1");
    assertThrows(() => good.encodeIterable(5 as unknown as string[]), "got 5");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a CS336-style vocab (bytes, specials, merges) encodes with its merges", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  const vocab = new Map<number, Uint8Array>();
  for (let b = 0; b < 256; b++) vocab.set(b, new Uint8Array([b]));
  vocab.set(256, enc("<|endoftext|>"));
  const merges: Array<[Uint8Array, Uint8Array]> = [[enc(" "), enc("c")], [enc(" c"), enc("a")], [enc("t"), enc("h")]];
  [" c", " ca", "th"].forEach((s, i) => vocab.set(257 + i, enc(s)));
  const tok = new Tokenizer(vocab, merges, ["<|endoftext|>"]);
  assertEquals(tok.encode("the cat<|endoftext|>"), [259, 101, 258, 116, 256]);
  assertEquals(tok.decode([259, 101, 258, 116, 256]), "the cat<|endoftext|>");
  // Merges apply in list order, not by what is in the vocabulary: without merge 0, " ca" is unreachable.
  const partial = new Tokenizer(vocab, merges.slice(1), ["<|endoftext|>"]);
  assertEquals(partial.encode(" ca"), [32, 99, 97]);
});

/** A small merges-mode tokenizer: the 256 bytes, "th" (256), "the" (257) and <|endoftext|> (258). */
function smallTokenizer(): Tokenizer {
  const bytes = (s: string) => new TextEncoder().encode(s);
  const vocab = new Map<number, Uint8Array>();
  for (let b = 0; b < 256; b++) vocab.set(b, new Uint8Array([b]));
  vocab.set(256, bytes("th"));
  vocab.set(257, bytes("the"));
  return new Tokenizer(vocab, [[bytes("t"), bytes("h")], [bytes("th"), bytes("e")]], ["<|endoftext|>"]);
}

/** Fails unless `fn` throws one line that starts with `file`, includes `includes` and shows no planted secret. */
function assertFileError(fn: () => unknown, file: string, includes: string): void {
  const err = assertThrows(fn, includes);
  const where = `${file}: ${includes}`;
  if (!err.message.startsWith(file) || err.message.includes("\n") || /SECRET|root:x|hunter2/.test(err.message)) {
    throw new Error(`${where}: bad message ${JSON.stringify(err.message)}`);
  }
}

Deno.test("malformed nanolm tokenizer files give one line naming the file and the problem", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/tok.json`;
    saveTokenizer(smallTokenizer(), path);
    const text = Deno.readTextFileSync(path);
    const good = JSON.parse(text);
    const vocab = good.vocab as Array<[number, string]>;
    const cases: Array<[string, string | Uint8Array, string]> = [
      ["truncated", text.slice(0, text.length / 2), "invalid JSON: unterminated string at line 1, column"],
      ["not JSON", "root:x:0:0:SECRET:/root:/bin/bash\n", "invalid JSON: unexpected character at line 1, column 1"],
      ["a JSON array", "[1, 2]", 'not a nanolm tokenizer file (no "format": "nanolm-bpe")'],
      ["HF tokenizer.json", '{"model": {"type": "BPE", "vocab": {"SECRET": 0}}}', "not a nanolm tokenizer file"],
      ["newer version", { ...good, version: 2 }, "has version 2; this nanolm reads version 1"],
      ["unknown mode", { ...good, mode: "SECRET" }, 'mode must be "merges" or "ranks"'],
      ["no vocab", { ...good, vocab: undefined }, "vocab must be an array of [id, base64 bytes], got missing"],
      ["vocab an object", { ...good, vocab: { SECRET: 1 } }, "vocab must be an array"],
      ["vocab entry not a pair", { ...good, vocab: [[0], ...vocab] }, "vocab entry 0 must be [id, base64 bytes]"],
      ["string id", { ...good, vocab: [["SECRET", "AA=="], ...vocab] }, "vocab entry 0 has an id that is a string"],
      ["bad base64", { ...good, vocab: [[300, "SECRET!!"], ...vocab] }, "vocab entry 0 (id 300) is not base64"],
      ["duplicate id", { ...good, vocab: [...vocab, [5, "SECRET"]] }, "token id 5 appears twice"],
      ["id out of range", { ...good, vocab: [...vocab, [2 ** 31, "SECRET"]] }, "token id 2147483648 is above"],
      ["fractional id", { ...good, vocab: [...vocab, [3.5, "SECRET"]] }, "vocab entry 258 has an id that is 3.5"],
      ["missing byte", { ...good, vocab: vocab.filter(([id]) => id !== 7) }, "byte 7 has no token"],
      ["no merges", { ...good, merges: undefined }, "merges must be an array of [id, id], got missing"],
      ["merge not a pair", { ...good, merges: [["t", "h"]] }, "merge 0 must be a pair of token ids"],
      ["merge of an unknown id", { ...good, merges: [[116, 999]] }, "merge 0 names unknown token id 999"],
      ["merge result not in vocab", { ...good, merges: [[104, 116]] }, "the joined token of merge 0 is not in the"],
      ["no specials", { ...good, specialTokens: undefined }, "specialTokens must be an object of text -> id"],
      ["special id a string", { ...good, specialTokens: { x: "SECRET" } }, "special token 0 has an id that is a s"],
      ["special on a token id", { ...good, specialTokens: { "<|x|>": 65 } }, "special token 0 has id 65, an ordinary"],
      ["two specials, one id", { ...good, specialTokens: { a: 300, b: 300 } }, "special token 1 has id 300, as does"],
      ["empty special", { ...good, specialTokens: { "": 300 } }, "special token 0 is empty"],
      ["not UTF-8", new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), "not UTF-8 text"],
    ];
    for (const [what, content, message] of cases) {
      const file = `${dir}/${what.replaceAll(" ", "_")}.json`;
      if (content instanceof Uint8Array) Deno.writeFileSync(file, content);
      else Deno.writeTextFileSync(file, typeof content === "string" ? content : JSON.stringify(content));
      assertFileError(() => loadTokenizer(file), file, message);
    }
    // The ranks mode checks the same fields (merges are not used there).
    const ranks = { ...good, mode: "ranks", merges: [] };
    Deno.writeTextFileSync(path, JSON.stringify({ ...ranks, vocab: [...vocab, [1, "AA=="]] }));
    assertFileError(() => loadTokenizer(path), path, "token id 1 appears twice");
    Deno.writeTextFileSync(path, JSON.stringify(ranks));
    assertEquals(loadTokenizer(path).encode("the"), [257]);
    assertFileError(() => loadTokenizer(`${dir}/missing.json`), `${dir}/missing.json`, "does not exist");
    assertFileError(() => loadTokenizer(dir), dir, "is a directory, not a tokenizer file");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("malformed GPT-2 and tiktoken files give one line naming the file and line, never their text", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const tok = smallTokenizer();
    const vocab = `${dir}/vocab.json`, merges = `${dir}/merges.txt`;
    saveGpt2Tokenizer(tok, vocab, merges);
    const write = (name: string, content: string | Uint8Array) => {
      const file = `${dir}/${name}`;
      if (typeof content === "string") Deno.writeTextFileSync(file, content);
      else Deno.writeFileSync(file, content);
      return file;
    };
    const passwd = "root:x:0:0:SECRET:/root:/bin/bash\nSECRET hunter2\n";
    let file = write("v1.json", '{"user": "root:x", "password": "hunter2"}');
    assertFileError(
      () => loadGpt2Tokenizer(file, merges),
      file,
      `${file}:1: token id is a string, not a non-negative integer`,
    );
    file = write("v2.json", passwd);
    assertFileError(() => loadGpt2Tokenizer(file, merges), file, "invalid JSON: unexpected character at line 1");
    file = write("v3.json", new Uint8Array([0x7b, 0xc3, 0x28, 0x7d]));
    assertFileError(() => loadGpt2Tokenizer(file, merges), file, "not UTF-8 text");
    file = write("v4.json", '{"a": 0, "b": 1, "c": 1}');
    assertFileError(
      () => loadGpt2Tokenizer(file, merges),
      file,
      `${file}:1: id 1 is also the id of the token on line 1`,
    );
    file = write("m1.txt", passwd);
    assertFileError(() => loadGpt2Tokenizer(vocab, file), file, `${file}:1: expected two space-separated`);
    file = write("m2.txt", "#version: 0.2\nt h\nSECRET hunter2\n");
    assertFileError(() => loadGpt2Tokenizer(vocab, file), file, `${file}:3: the first token of merge 1 is not in`);
    file = write("m3.txt", "h t\n");
    assertFileError(() => loadGpt2Tokenizer(vocab, file), file, `${file}:1: the joined token of merge 0 is not in`);
    file = write("m4.txt", new Uint8Array([0x74, 0x20, 0x68, 0x0a, 0xff, 0x0a]));
    assertFileError(() => loadGpt2Tokenizer(vocab, file), file, "not UTF-8 text");
    file = write("t1.tiktoken", passwd);
    assertFileError(() => loadTiktoken(file), file, `${file}:1: expected "<base64 token> <rank>"`);
    file = write("t2.tiktoken", "AA== 0\nAA== SECRET\n");
    assertFileError(() => loadTiktoken(file), file, `${file}:2: expected "<base64 token> <rank>"`);
    file = write("t3.tiktoken", "AA== 0\nAQ== 0\n");
    assertFileError(() => loadTiktoken(file), file, "token id 0 appears twice");
    file = write("t4.tiktoken", "AA== 99999999999\n");
    assertFileError(() => loadTiktoken(file), file, "token id 99999999999 is above");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("saving a tokenizer replaces its files atomically", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const tok = smallTokenizer();
    const paths = [`${dir}/tok.json`, `${dir}/vocab.json`, `${dir}/merges.txt`, `${dir}/tok.tiktoken`];
    for (const p of paths) Deno.writeTextFileSync(p, "old contents");
    const readers = paths.map((p) => Deno.openSync(p));
    saveTokenizer(tok, paths[0]);
    saveGpt2Tokenizer(tok, paths[1], paths[2]);
    saveTiktoken(tok, paths[3]);
    // Readers of the old files still read them whole: the files were replaced, not rewritten in place.
    for (const reader of readers) {
      const buf = new Uint8Array(64);
      assertEquals(new TextDecoder().decode(buf.subarray(0, reader.readSync(buf)!)), "old contents");
      reader.close();
    }
    assertEquals(loadTokenizer(paths[0]).encode("the"), [257]);
    assertEquals(loadGpt2Tokenizer(paths[1], paths[2]).encode("the"), [257]);
    assertEquals(loadTiktoken(paths[3]).encode("the"), [257]);
    assertEquals([...Deno.readDirSync(dir)].length, 4);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

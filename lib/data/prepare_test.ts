import { assert, assertEquals, assertMatch, assertRejects } from "../../tests/assert.ts";
import { TokenDataset } from "./token_files.ts";
import { type PreparedTextData, prepareTextData, scanText } from "./prepare.ts";
import { loadTokenizer } from "./tokenizer_files.ts";

const stories = Array.from(
  { length: 60 },
  (_, i) => `Once upon a time, a little ${i % 2 ? "cat" : "dog"} named Tim found ${i} shiny stones.\n<|endoftext|>\n`,
).join("");

/** Both splits decoded back to text. */
async function decoded(data: PreparedTextData): Promise<string> {
  const tokenizer = loadTokenizer(data.tokenizerPath);
  using train = await TokenDataset.open(data.trainData);
  using val = await TokenDataset.open(data.valData);
  assertEquals([train.length, val.length], [data.tokens.train, data.tokens.val]);
  return tokenizer.decode(await train.readTokens(0, train.length)) +
    tokenizer.decode(await val.readTokens(0, val.length));
}

async function listing(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("a local corpus becomes a tokenizer and train/val token files that decode back to the text", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/corpus.txt`, stories);
  const data = await prepareTextData({
    train: `${dir}/corpus.txt`,
    outDir: `${dir}/out`,
    vocabSize: 300,
    valFraction: 0.1,
  });
  assertEquals(loadTokenizer(data.tokenizerPath).vocabSize, 300);
  assertEquals(await decoded(data), stories);
  assert(data.tokens.val > 0 && data.tokens.train > 5 * data.tokens.val);
  assertEquals(data.warnings, []);
  // Only the outputs are left: no temporary files.
  assertEquals(await listing(`${dir}/out`), [
    "tokenizer-300.json",
    "train-split.txt",
    "train.bin",
    "val-split.txt",
    "val.bin",
  ]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a corpus whose only line break ends it still gets a validation split of the asked size", async () => {
  const dir = await Deno.makeTempDir();
  const oneLine = stories.replaceAll("\n", " ").trimEnd() + "\n";
  await Deno.writeTextFile(`${dir}/corpus.txt`, oneLine);
  const data = await prepareTextData({
    train: `${dir}/corpus.txt`,
    outDir: `${dir}/out`,
    vocabSize: 300,
    valFraction: 0.1,
  });
  assertEquals(await decoded(data), oneLine);
  const share = (await Deno.stat(`${dir}/out/val-split.txt`)).size / oneLine.length;
  assert(share > 0.09 && share < 0.11, `the validation split holds ${share} of the text`);
  assertEquals(data.warnings, []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an input named OUT/train.txt is split without being overwritten", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/out`);
  await Deno.writeTextFile(`${dir}/out/train.txt`, stories);
  const data = await prepareTextData({ train: `${dir}/out/train.txt`, outDir: `${dir}/out`, vocabSize: 300 });
  assertEquals(await Deno.readTextFile(`${dir}/out/train.txt`), stories);
  assertEquals(await decoded(data), stories);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a downloaded corpus prepared twice gives the same splits (the download is not split in place)", async () => {
  const dir = await Deno.makeTempDir();
  await using server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () => new Response(stories));
  const url = `http://127.0.0.1:${server.addr.port}/corpus.txt`;
  const first = await prepareTextData({ train: url, outDir: `${dir}/out`, vocabSize: 300, valFraction: 0.1 });
  const second = await prepareTextData({ train: url, outDir: `${dir}/out`, vocabSize: 300, valFraction: 0.1 });
  assertEquals(second.tokens, first.tokens);
  assertEquals(await decoded(second), stories);
  assertEquals(await Deno.readTextFile(`${dir}/out/train.txt`), stories);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bad options and inputs that are outputs are refused before anything is written", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/out`);
  await Deno.writeTextFile(`${dir}/corpus.txt`, stories);
  await Deno.writeTextFile(`${dir}/out/train.bin`, stories);
  await Deno.writeTextFile(`${dir}/empty.txt`, "");
  const before = await listing(`${dir}/out`);
  const train = `${dir}/corpus.txt`, outDir = `${dir}/out`;
  const cases: [Parameters<typeof prepareTextData>[0], string][] = [
    [{ train, outDir, vocabSize: 257 }, "at least 256 bytes + 1 special tokens + 1 = 258, got 257"],
    [{ train, outDir, vocabSize: 300, valFraction: 1 }, "valFraction must be in (0, 1), got 1"],
    [{ train, outDir, vocabSize: 300, specialTokens: ["<a>", "<a>"] }, "special tokens must be non-empty and distinct"],
    [{ train: `${dir}/missing.txt`, outDir, vocabSize: 300 }, `input file ${dir}/missing.txt does not exist`],
    [{ train: dir, outDir, vocabSize: 300 }, `input ${dir} is a directory, not a file`],
    [{ train: `${dir}/empty.txt`, outDir, vocabSize: 300 }, `input file ${dir}/empty.txt is empty`],
    [{ train, val: `${dir}/out/train.bin`, outDir, vocabSize: 300 }, "is also an output of this run"],
    [{ train: `${dir}/out/train.bin`, outDir, vocabSize: 300 }, "and would be overwritten; move it or choose another"],
    [{ train, outDir: `${dir}/new`, vocabSize: 300, valFraction: 0 }, "valFraction"],
  ];
  for (const [options, message] of cases) await assertRejects(() => prepareTextData(options), message);
  assertEquals(await listing(`${dir}/out`), before);
  assertEquals(await Deno.readTextFile(`${dir}/out/train.bin`), stories);
  assert(!(await listing(dir)).includes("new"));
  await Deno.remove(dir, { recursive: true });
});

/** Reference: bytes not covered by sequences the platform's fatal UTF-8 decoder accepts as one code point. */
function invalidBytesReference(bytes: Uint8Array): number {
  const fatal = new TextDecoder("utf-8", { fatal: true });
  let invalid = 0;
  for (let i = 0; i < bytes.length;) {
    if (bytes[i] < 0x80) {
      i++;
      continue;
    }
    const len = [2, 3, 4].find((n) => {
      try {
        const s = fatal.decode(bytes.subarray(i, i + n));
        return i + n <= bytes.length && [...s].length === 1;
      } catch {
        return false;
      }
    });
    if (len) i += len;
    else [invalid, i] = [invalid + 1, i + 1];
  }
  return invalid;
}

Deno.test("scanText counts the bytes that are not UTF-8 as the platform decoder judges them, across chunks", async () => {
  const path = await Deno.makeTempFile();
  const pieces = ["é", "🙂", "中", "\u{10ffff}"].map((c) => new TextEncoder().encode(c));
  const bad = [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80]];
  // Characters, broken sequences and ASCII in random order, straddling the 1 MiB chunk boundary.
  let seed = 7;
  const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const parts: Uint8Array[] = [new Uint8Array((1 << 20) - 40).fill(0x61)];
  for (let k = 0; k < 60; k++) {
    const r = rand(3);
    parts.push(r === 0 ? pieces[rand(4)] : r === 1 ? new Uint8Array(bad[rand(bad.length)]) : new Uint8Array([0x20]));
  }
  parts.push(new Uint8Array([0xf0, 0x9f])); // a truncated character at the end
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (bytes.set(p, at), at + p.length), 0);
  await Deno.writeFile(path, bytes);
  const scan = await scanText(path);
  const expected = invalidBytesReference(bytes);
  assert(expected > 20, `${expected}`);
  assertEquals([scan.bytes, scan.invalid], [bytes.length, expected]);
  await Deno.writeTextFile(path, " \n\t\r\n ");
  assertEquals((await scanText(path)).blank, true);
  await Deno.remove(path);
});

Deno.test("non-UTF-8 bytes are counted in one warning; a file that is mostly not UTF-8 is refused", async () => {
  const dir = await Deno.makeTempDir();
  const text = new TextEncoder().encode(stories);
  const corpus = new Uint8Array([
    ...text.subarray(0, 100),
    0xff,
    0xfe,
    ...text.subarray(100, 200),
    0xc3,
    ...text.subarray(200),
  ]);
  await Deno.writeFile(`${dir}/latin.txt`, corpus);
  const warnings: string[] = [];
  const data = await prepareTextData({
    train: `${dir}/latin.txt`,
    outDir: `${dir}/out`,
    vocabSize: 300,
    warn: (l) => warnings.push(l),
  });
  assertEquals(warnings, data.warnings);
  assertEquals(data.warnings.length, 1);
  assertMatch(
    data.warnings[0],
    /latin\.txt: 3 of \d+ bytes \(0\.0\d*%\) are not valid UTF-8 \(the first at byte 100\)/,
  );
  assertEquals(await decoded(data), new TextDecoder().decode(corpus));
  await Deno.writeFile(`${dir}/binary.bin`, new Uint8Array(4096).map((_, i) => (i * 7919) % 256));
  await assertRejects(
    () => prepareTextData({ train: `${dir}/binary.bin`, outDir: `${dir}/out2`, vocabSize: 300 }),
    /binary\.bin is not UTF-8 text: \d+ of 4096 bytes \(\d+%\) are not UTF-8; convert it first/,
  );
  await Deno.writeTextFile(`${dir}/utf16.txt`, "\0h\0i\0 \0t\0h\0e\0r\0e");
  await assertRejects(
    () => prepareTextData({ train: `${dir}/utf16.txt`, outDir: `${dir}/out2`, vocabSize: 300 }),
    "utf16.txt is not UTF-8 text: 8 of 16 bytes (50%) are NUL",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a whitespace-only or tiny corpus is warned about, with the token count", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/blank.txt`, " \n".repeat(50));
  const blank = await prepareTextData({ train: `${dir}/blank.txt`, outDir: `${dir}/a`, vocabSize: 300 });
  assert(blank.warnings.some((w) => w.endsWith("blank.txt holds only whitespace: there is nothing to learn from it")));
  await Deno.writeTextFile(`${dir}/tiny.txt`, "hello hello world\nbye\n");
  const tiny = await prepareTextData({
    train: `${dir}/tiny.txt`,
    outDir: `${dir}/b`,
    vocabSize: 300,
    valFraction: 0.2,
  });
  const tokenizer = loadTokenizer(tiny.tokenizerPath);
  assertEquals(tiny.warnings, [
    `the corpus yields only ${tokenizer.vocabSize - 257} merges: the tokenizer has ${tokenizer.vocabSize} ids, ` +
    `not 300; train with --vocab-size ${tokenizer.vocabSize}`,
    `only ${tiny.tokens.train} training tokens: one sequence of context length 256 (deno task train's default) ` +
    "needs 257; use a larger corpus or a smaller --context-length",
  ]);
  assertEquals(await decoded(tiny), "hello hello world\nbye\n");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the partial files of a run that was killed are removed by the next run", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/corpus.txt`, stories);
  await Deno.mkdir(`${dir}/out`);
  // What a kill during the encoding, and one during a download, leave behind (an hour ago).
  const stale = [`${dir}/out/.train.bin.0123abcd.partial.bin`, `${dir}/out/.train.txt.89abcdef.partial.txt`];
  const recent = `${dir}/out/.val.bin.fedcba98.partial.bin`;
  for (const path of [...stale, recent]) await Deno.writeTextFile(path, "torn");
  const hourAgo = new Date(Date.now() - 3600_000);
  for (const path of stale) await Deno.utime(path, hourAgo, hourAgo);
  await prepareTextData({ train: `${dir}/corpus.txt`, outDir: `${dir}/out`, vocabSize: 300 });
  const left = await listing(`${dir}/out`);
  assert(!left.some((n) => stale.some((p) => p.endsWith(`/${n}`))), left.join());
  // A partial file that may still be written (by another process, now) is left alone.
  assert(left.includes(".val.bin.fedcba98.partial.bin"), left.join());
  await Deno.remove(dir, { recursive: true });
});

import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import { RandomBatchSampler, TokenDataset, tokenDtypeForPath, writeTokenFile } from "./token_files.ts";
import { Rng } from "../util/random.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function tokens(n: number, vocab: number, seed = 0): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => rng.int(vocab));
}

Deno.test("token files are raw little-endian integers, u16 unless named .u32", async () => {
  await withDir(async (dir) => {
    await writeTokenFile(`${dir}/a.bin`, [1, 258, 65535]);
    assertEquals(Array.from(await Deno.readFile(`${dir}/a.bin`)), [1, 0, 2, 1, 255, 255]);
    await writeTokenFile(`${dir}/b.u32`, [70000, 1]);
    assertEquals(Array.from(await Deno.readFile(`${dir}/b.u32`)), [0x70, 0x11, 0x01, 0, 1, 0, 0, 0]);
    assertEquals([tokenDtypeForPath("x.u32"), tokenDtypeForPath("x.u16"), tokenDtypeForPath("u32")], [
      "uint32",
      "uint16",
      "uint16",
    ]);
    await assertRejects(() => writeTokenFile(`${dir}/c.u16`, [65536]), "Token 65536 at index 0 does not fit a uint16");
    using b = await TokenDataset.open(`${dir}/b.u32`);
    assertEquals(await b.readTokens(0, 2), new Int32Array([70000, 1]));
    // The dtype can be forced: the same 8 bytes read as four uint16 tokens.
    using b16 = await TokenDataset.open(`${dir}/b.u32`, { dtype: "uint16" });
    assertEquals(await b16.readTokens(0, 4), new Int32Array([0x1170, 1, 1, 0]));
  });
});

Deno.test("sampleBatch follows CS336 get_batch, in memory and from disk alike", async () => {
  await withDir(async (dir) => {
    const data = tokens(1000, 5000, 1);
    for (const name of ["t.u16", "t.u32"]) {
      await writeTokenFile(`${dir}/${name}`, data);
      using mem = await TokenDataset.open(`${dir}/${name}`);
      using disk = await TokenDataset.open(`${dir}/${name}`, { cacheLimitBytes: 0 });
      assert(mem.inMemory && !disk.inMemory);
      assertEquals(mem.length, 1000);
      const B = 5, T = 17;
      const a = await mem.sampleBatch(new Rng(9), B, T);
      const b = await disk.sampleBatch(new Rng(9), B, T);
      assertEquals(a, b);
      // Reference: draw starts from the same stream and slice the array directly.
      const ref = new Rng(9);
      for (let row = 0; row < B; row++) {
        const s = ref.int(data.length - T);
        assertEquals(Array.from(a.inputs.subarray(row * T, row * T + T)), data.slice(s, s + T));
        assertEquals(Array.from(a.targets.subarray(row * T, row * T + T)), data.slice(s + 1, s + T + 1));
      }
      assertEquals([a.batchSize, a.contextLength, a.inputs.length], [B, T, B * T]);
    }
  });
});

Deno.test("sampleBatch starts are uniform over [0, n - T - 1]", async () => {
  await withDir(async (dir) => {
    // Token i is i, so a row's first input is its start offset.
    const n = 12, T = 8;
    await writeTokenFile(`${dir}/ramp.u16`, Array.from({ length: n }, (_, i) => i));
    using ds = await TokenDataset.open(`${dir}/ramp.u16`);
    const counts = new Array(n).fill(0);
    const rng = new Rng(3);
    for (let i = 0; i < 200; i++) {
      const { inputs, targets } = await ds.sampleBatch(rng, 4, T);
      for (let r = 0; r < 4; r++) {
        counts[inputs[r * T]]++;
        assertEquals(targets[r * T + T - 1], inputs[r * T] + T);
      }
    }
    // Starts 0..3 (= n - T - 1) each about 200 times, nothing else.
    assertEquals(counts.slice(4), new Array(n - 4).fill(0));
    for (const c of counts.slice(0, 4)) assert(c > 140 && c < 260, `start counts ${counts}`);
  });
});

Deno.test("sequentialBatches walks the file in order without overlap", async () => {
  await withDir(async (dir) => {
    await writeTokenFile(`${dir}/ramp.u16`, Array.from({ length: 50 }, (_, i) => i));
    using ds = await TokenDataset.open(`${dir}/ramp.u16`, { cacheLimitBytes: 0 });
    const seen: number[][] = [];
    for await (const b of ds.sequentialBatches(2, 5)) {
      seen.push(Array.from(b.inputs));
      assertEquals(Array.from(b.targets), Array.from(b.inputs, (x) => x + 1));
    }
    // 49 usable rows of 5 -> 9 rows -> 4 full batches of 2.
    assertEquals(ds.sequentialBatchCount(2, 5), 4);
    assertEquals(seen.length, 4);
    assertEquals(seen.flat(), Array.from({ length: 40 }, (_, i) => i));
    let n = 0;
    for await (const _ of ds.sequentialBatches(2, 5, { maxBatches: 3 })) n++;
    assertEquals(n, 3);
  });
});

Deno.test("RandomBatchSampler resumes to the same batches", async () => {
  await withDir(async (dir) => {
    await writeTokenFile(`${dir}/d.u16`, tokens(500, 300, 2));
    using ds = await TokenDataset.open(`${dir}/d.u16`);
    const straight = new RandomBatchSampler(ds, { batchSize: 3, contextLength: 10, seed: 5 });
    const firstHalf = new RandomBatchSampler(ds, { batchSize: 3, contextLength: 10, seed: 5 });
    const all = [];
    for (let i = 0; i < 6; i++) all.push(await straight.next());
    for (let i = 0; i < 3; i++) await firstHalf.next();
    const saved = JSON.parse(JSON.stringify(firstHalf.state()));
    assertEquals(saved.batches, 3);
    const resumed = new RandomBatchSampler(ds, { batchSize: 3, contextLength: 10, state: saved });
    for (let i = 3; i < 6; i++) assertEquals(await resumed.next(), all[i]);
    assertEquals(resumed.state(), straight.state());
    // Different seeds give different batches.
    const other = new RandomBatchSampler(ds, { batchSize: 3, contextLength: 10, seed: 6 });
    assert((await other.next()).inputs.join() !== all[0].inputs.join());
  });
});

Deno.test("TokenDataset errors name the file and the problem", async () => {
  await withDir(async (dir) => {
    await assertRejects(() => TokenDataset.open(`${dir}/missing.u16`), `Token file ${dir}/missing.u16 does not exist`);
    await Deno.writeFile(`${dir}/odd.u16`, new Uint8Array(7));
    await assertRejects(
      () => TokenDataset.open(`${dir}/odd.u16`),
      `Token file ${dir}/odd.u16 has 7 bytes, not a multiple of 2 (uint16 tokens)`,
    );
    await Deno.writeFile(`${dir}/six.u32`, new Uint8Array(6));
    await assertRejects(() => TokenDataset.open(`${dir}/six.u32`), "not a multiple of 4 (uint32 tokens)");
    await Deno.writeFile(`${dir}/empty.u16`, new Uint8Array(0));
    await assertRejects(() => TokenDataset.open(`${dir}/empty.u16`), "is empty");
    await writeTokenFile(`${dir}/short.u16`, [1, 2, 3, 4, 5]);
    using ds = await TokenDataset.open(`${dir}/short.u16`);
    await assertRejects(
      () => ds.sampleBatch(new Rng(0), 1, 5),
      `Token file ${dir}/short.u16 has 5 tokens, fewer than context length + 1 = 6`,
    );
    assertThrows(() => new RandomBatchSampler(ds, { batchSize: 1, contextLength: 8 }), "fewer than context length");
    await assertRejects(() => ds.sampleBatch(new Rng(0), 0, 2), "Batch size must be a positive integer, got 0");
    await assertRejects(() => ds.readTokens(3, 5), "past the end");
    assertEquals(await ds.sampleBatch(new Rng(0), 2, 4), {
      inputs: new Int32Array([1, 2, 3, 4, 1, 2, 3, 4]),
      targets: new Int32Array([2, 3, 4, 5, 2, 3, 4, 5]),
      batchSize: 2,
      contextLength: 4,
    });
  });
});

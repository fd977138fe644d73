import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import {
  bf16ToFloat32,
  decodeSafetensors,
  encodeSafetensors,
  float32ToBf16,
  readSafetensors,
  readSafetensorsHeader,
  type TensorMap,
  writeSafetensors,
} from "./safetensors.ts";

/** Builds a file by hand from the spec: u64 LE header length, JSON header, raw little-endian data. */
function handmade(headerJson: string, data: number[], lengthOverride?: number): Uint8Array {
  const json = new TextEncoder().encode(headerJson);
  const out = new Uint8Array(8 + json.length + data.length);
  const n = lengthOverride ?? json.length;
  for (let i = 0; i < 8; i++) out[i] = Math.floor(n / 2 ** (8 * i)) & 0xff;
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("encodeSafetensors writes the bytes the spec prescribes", () => {
  const tensors: TensorMap = new Map([
    ["a", { dtype: "F32", shape: [2], data: new Float32Array([1, -2]) }],
    ["b", { dtype: "U8", shape: [1, 3], data: new Uint8Array([7, 8, 9]) }],
  ]);
  const bytes = encodeSafetensors(tensors, { metadata: { k: "v" } });
  const json = '{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"U8","shape":[1,3],"data_offsets":[8,11]}}';
  const padded = Math.ceil(json.length / 8) * 8; // header padded with spaces to 8-byte alignment
  const expected = [
    ...[padded & 0xff, padded >> 8, 0, 0, 0, 0, 0, 0],
    ...new TextEncoder().encode(json.padEnd(padded, " ")),
    ...[0x00, 0x00, 0x80, 0x3f], // 1.0f little-endian
    ...[0x00, 0x00, 0x00, 0xc0], // -2.0f
    7,
    8,
    9,
  ];
  assertEquals(Array.from(bytes), expected);
});

Deno.test("decodeSafetensors reads a hand-made file", () => {
  // int32 [[1, 2], [3, -1]] and an i64 scalar 5; offsets written by hand, unpadded header.
  const bytes = handmade(
    '{"x":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]},"s":{"dtype":"I64","shape":[],"data_offsets":[16,24]}}',
    [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 255, 255, 255, 255, 5, 0, 0, 0, 0, 0, 0, 0],
  );
  const { tensors, metadata } = decodeSafetensors(bytes);
  assertEquals(metadata, {});
  assertEquals(tensors.get("x"), { dtype: "I32", shape: [2, 2], data: new Int32Array([1, 2, 3, -1]) });
  assertEquals(tensors.get("s"), { dtype: "I64", shape: [], data: new BigInt64Array([5n]) });
});

Deno.test("round trip of every dtype through a file", async () => {
  const tensors: TensorMap = new Map([
    ["f32", { dtype: "F32", shape: [2, 3], data: new Float32Array([0, 1.5, -2, 3.25, 1e-30, Infinity]) }],
    ["f16", { dtype: "F16", shape: [3], data: new Float16Array([0.5, -65504, 1e-7]) }],
    ["bf16", { dtype: "BF16", shape: [2], data: float32ToBf16(new Float32Array([1, -3.5])) }],
    ["f64", { dtype: "F64", shape: [1], data: new Float64Array([Math.PI]) }],
    ["i8", { dtype: "I8", shape: [2], data: new Int8Array([-128, 127]) }],
    ["u16", { dtype: "U16", shape: [2], data: new Uint16Array([0, 65535]) }],
    ["i16", { dtype: "I16", shape: [1], data: new Int16Array([-300]) }],
    ["i32", { dtype: "I32", shape: [2, 1], data: new Int32Array([-7, 2 ** 31 - 1]) }],
    ["u32", { dtype: "U32", shape: [1], data: new Uint32Array([2 ** 32 - 1]) }],
    ["i64", { dtype: "I64", shape: [2], data: new BigInt64Array([-(2n ** 40n), 3n]) }],
    ["u64", { dtype: "U64", shape: [1], data: new BigUint64Array([2n ** 63n]) }],
    ["bool", { dtype: "BOOL", shape: [2], data: new Uint8Array([1, 0]) }],
    ["empty", { dtype: "F32", shape: [0, 4], data: new Float32Array(0) }],
    ["u8", { dtype: "U8", shape: [5], data: new Uint8Array([1, 2, 3, 4, 5]) }],
  ]);
  const dir = await Deno.makeTempDir();
  const path = `${dir}/all.safetensors`;
  await writeSafetensors(path, tensors, { metadata: { step: "12", config: '{"a":1}' } });
  const back = await readSafetensors(path);
  assertEquals(back.tensors, tensors);
  assertEquals([...back.tensors.keys()], [...tensors.keys()]);
  assertEquals(back.metadata, { step: "12", config: '{"a":1}' });
  const header = await readSafetensorsHeader(path);
  assertEquals(header.tensors.get("u8")!.shape, [5]);
  assertEquals(header.metadata.step, "12");
  assertEquals(header.dataStart % 8, 0);
  // No temporary file is left behind.
  assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["all.safetensors"]);
  // A subarray view at an odd offset is written from its own bytes only.
  const big = new Float32Array([9, 8, 7, 6]);
  await writeSafetensors(path, new Map([["v", { dtype: "F32", shape: [2], data: big.subarray(1, 3) }]]));
  assertEquals((await readSafetensors(path)).tensors.get("v")!.data, new Float32Array([8, 7]));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bf16 conversions round to nearest even", () => {
  const x = new Float32Array([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -0, NaN, Infinity, 3.140625]);
  const bits = float32ToBf16(x);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even gives 1; 1 + 3*2^-8 rounds up to 1 + 2^-6.
  assertEquals(Array.from(bf16ToFloat32(bits)), [1, 1, 1 + 2 ** -6, -0, NaN, Infinity, 3.140625]);
});

Deno.test("encodeSafetensors rejects inconsistent tensors", () => {
  assertThrows(
    () => encodeSafetensors(new Map([["w", { dtype: "F32", shape: [3], data: new Float32Array(2) }]])),
    'Tensor "w" has shape [3] (3 elements) but 2 data elements',
  );
  assertThrows(
    () => encodeSafetensors(new Map([["w", { dtype: "F32", shape: [2], data: new Float64Array(2) }]])),
    "dtype F32 but its data is a Float64Array",
  );
  assertThrows(
    () => encodeSafetensors(new Map([["w", { dtype: "F32", shape: [-1], data: new Float32Array(0) }]])),
    "invalid shape",
  );
  assertThrows(() => encodeSafetensors(new Map(), { metadata: { a: 1 as unknown as string } }), '"a" must be a string');
});

Deno.test("decodeSafetensors names the problem in corrupt data", () => {
  const good = encodeSafetensors(new Map([["w", { dtype: "F32", shape: [4], data: new Float32Array(4) }]]));
  const src = { source: "ckpt.safetensors" };
  assertThrows(() => decodeSafetensors(good.subarray(0, 5), src), "ckpt.safetensors is truncated: 5 bytes");
  assertThrows(() => decodeSafetensors(good.subarray(0, 20), src), /truncated or corrupt: header length \d+ runs past/);
  assertThrows(() => decodeSafetensors(good.subarray(0, good.length - 1), src), 'truncated: tensor "w"');
  assertThrows(() => decodeSafetensors(new Uint8Array([...good, 0]), src), "1 bytes after the last tensor");
  const huge = good.slice();
  huge[7] = 0x10;
  assertThrows(() => decodeSafetensors(huge, src), "bad header length");
  assertThrows(() => decodeSafetensors(handmade("{not json", []), src), "invalid JSON");
  assertThrows(() => decodeSafetensors(handmade("[1]", []), src), 'does not start with "{"');
  assertThrows(
    () => decodeSafetensors(handmade('{"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0])),
    'tensor "w" has unknown dtype "F33"',
  );
  assertThrows(
    () => decodeSafetensors(handmade('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', [0, 0, 0, 0])),
    "spanning 4 bytes, but F32[2] needs 8",
  );
  assertThrows(
    () => decodeSafetensors(handmade('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Array(8).fill(0))),
    "starts at byte 4 of the data buffer, expected 0",
  );
  assertThrows(
    () =>
      decodeSafetensors(
        handmade(
          '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
          [0, 0, 0, 0],
        ),
      ),
    "overlap or leave a hole",
  );
  // An empty tensor listed after a non-empty one at the same offset is fine (other writers order entries by name).
  const withEmpty = handmade(
    '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}',
    [0, 0, 128, 63],
  );
  assertEquals(decodeSafetensors(withEmpty).tensors.get("w")!.data, new Float32Array([1]));
  assertThrows(
    () => decodeSafetensors(handmade('{"__metadata__":{"x":1}}', [])),
    'non-string __metadata__ value for "x"',
  );
});

Deno.test("readSafetensors names a missing or truncated file", async () => {
  const dir = await Deno.makeTempDir();
  await assertRejects(() => readSafetensors(`${dir}/nope.safetensors`), `${dir}/nope.safetensors does not exist`);
  await assertRejects(() => readSafetensorsHeader(`${dir}/nope.safetensors`), "does not exist");
  const path = `${dir}/cut.safetensors`;
  const bytes = encodeSafetensors(new Map([["w", { dtype: "F32", shape: [8], data: new Float32Array(8) }]]));
  await Deno.writeFile(path, bytes.subarray(0, bytes.length - 3));
  const err = await assertRejects(() => readSafetensors(path), `${path} is truncated`);
  assert(err.message.includes("out of range"));
  await assertRejects(() => readSafetensorsHeader(path), `${path} is truncated`);
  await Deno.writeFile(path, bytes.subarray(0, 3));
  await assertRejects(() => readSafetensorsHeader(path), "3 bytes, fewer than the 8-byte header length");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("writeSafetensors keeps the old file when writing fails", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/keep.safetensors`;
  const first: TensorMap = new Map([["w", { dtype: "F32", shape: [1], data: new Float32Array([1]) }]]);
  await writeSafetensors(path, first);
  // An invalid tensor fails before anything is written.
  await assertRejects(() =>
    writeSafetensors(path, new Map([["w", { dtype: "F32", shape: [2], data: new Float32Array(1) }]]))
  );
  assertEquals((await readSafetensors(path)).tensors, first);
  await assertRejects(() => writeSafetensors(`${dir}/no/such/dir/x.safetensors`, first), "x.safetensors");
  assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["keep.safetensors"]);
  await Deno.remove(dir, { recursive: true });
});

/** A header of `count` empty F32 tensors named t0000000, t0000001..., built straight into bytes (no big string). */
function manyTensorsHeader(count: number): Uint8Array {
  const entry = new TextEncoder().encode(`"t0000000":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},`);
  const out = new Uint8Array(8 + 1 + count * entry.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(out.length - 8), true);
  out[8] = 0x7b; // {
  for (let i = 0, at = 9; i < count; i++, at += entry.length) {
    out.set(entry, at);
    for (let k = 0, n = i; k < 7; k++, n = Math.floor(n / 10)) out[at + 8 - k] = 0x30 + (n % 10);
  }
  out[out.length - 1] = 0x7d; // } over the last comma
  return out;
}

Deno.test("a header of 1.5 M tensors under the 100 MB cap is refused quickly", () => {
  const bytes = manyTensorsHeader(1_500_000);
  assert(bytes.length < 100_000_000);
  const start = performance.now();
  assertThrows(() => decodeSafetensors(bytes, { source: "many.safetensors" }), "more than 100000 tensors");
  // Parsing it took ~20 s and 2 GB; the count is refused while scanning the first few megabytes.
  const ms = performance.now() - start;
  assert(ms < 1000, `refusing took ${ms.toFixed(0)} ms`);
  // A header at the cap is accepted.
  assertEquals(decodeSafetensors(manyTensorsHeader(100_000)).tensors.size, 100_000);
});

Deno.test("malicious headers are refused with one clear line that does not echo the header", () => {
  const src = { source: "evil.safetensors" };
  const cases: Array<[string, number[], string]> = [
    // Shape products beyond what a file can hold (they used to be compared as inexact floats).
    ['{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}', [0, 0, 0, 0], "too many elements"],
    ['{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', [0, 0, 0, 0], "invalid shape"],
    ['{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', [0, 0, 0, 0], "invalid shape"],
    // A duplicate name: JSON.parse keeps the last entry silently.
    [
      '{"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}',
      [],
      "a name appears more than once",
    ],
    ['{"__metadata__":{"x":{"y":1}}}', [], 'non-string __metadata__ value for "x"'],
    ['{"w":{"dtype":"F32","shape":[[[1]]],"data_offsets":[0,4]}}', [0, 0, 0, 0], "nested deeper"],
    ['  ["not an object"]', [], "does not start with"],
    [
      `{"__metadata__":{${Array.from({ length: 10_001 }, (_, i) => `"k${i}":""`)}}}`,
      [],
      "has a header entry of more than 20000 JSON items",
    ],
    // V8 quotes the text around a syntax error; ours names only the position.
    ['{"root:x:0:0:SECRET', [], "invalid JSON: unterminated string at byte 1 of the header"],
    ['{"w": SECRET}', [], "invalid JSON: unexpected character at byte 6 of the header"],
    ['{"w":{"dtype":"root:x:0:0","shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0], 'tensor "w" has unknown dtype'],
    ['{"w":{"dtype":"F32","shape":"SECRET","data_offsets":[0,4]}}', [0, 0, 0, 0], 'tensor "w" has an invalid shape'],
  ];
  for (const [json, data, message] of cases) {
    const err = assertThrows(() => decodeSafetensors(handmade(json, data), src), message);
    assert(err.message.startsWith("Safetensors file evil.safetensors"), err.message);
    assert(!/SECRET|root:x/.test(err.message) && !err.message.includes("\n"), err.message);
  }
});

Deno.test("writeSafetensors removes temporary files that a killed write of the same file left behind", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ckpt.safetensors`;
  const tensors: TensorMap = new Map([["w", { dtype: "F32", shape: [1], data: new Float32Array([1]) }]]);
  const hourAgo = new Date(Date.now() - 3600_000);
  const stale = `${dir}/.ckpt.safetensors.0123456789abcdef.tmp`; // a killed write of this target
  const live = `${dir}/.ckpt.safetensors.fedcba9876543210.tmp`; // a concurrent writer, still writing
  const other = `${dir}/.ckpt.safetensors.bak.0123456789abcdef.tmp`; // another target's
  const unrelated = `${dir}/.ckpt.safetensors.notes.tmp`;
  for (const p of [stale, live, other, unrelated]) await Deno.writeTextFile(p, "torn");
  for (const p of [stale, other, unrelated]) await Deno.utime(p, hourAgo, hourAgo);
  await writeSafetensors(path, tensors);
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  assertEquals(names, [
    ".ckpt.safetensors.bak.0123456789abcdef.tmp",
    ".ckpt.safetensors.fedcba9876543210.tmp",
    ".ckpt.safetensors.notes.tmp",
    "ckpt.safetensors",
  ]);
  assertEquals((await readSafetensors(path)).tensors, tensors);
  await Deno.remove(dir, { recursive: true });
});

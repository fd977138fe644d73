/**
 * Reading and writing the safetensors format (https://github.com/huggingface/safetensors), the file format of our
 * checkpoints and of the PyTorch golden files.
 *
 * Layout: an unsigned 64-bit little-endian header length N, then N bytes of UTF-8 JSON mapping each tensor name to
 * `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the byte buffer that follows the header)
 * plus an optional `"__metadata__"` map of strings, then the byte buffer. Like the reference implementation we
 * pad the header with spaces to a multiple of 8 bytes, store tensors contiguously without holes, and reject files
 * whose offsets leave holes, overlap, or run past the end. A header is scanned before it is parsed and refused past
 * 100,000 tensors (or other bounds on its size), so no file costs more than a linear pass and a bounded parse;
 * errors name the file and the problem, never quoting the header.
 *
 * In memory a tensor is `{ dtype, shape, data }` with `data` a typed array of the matching kind: `F32` is a
 * `Float32Array`, `F16` a `Float16Array`, `BF16` (which JavaScript has no array for) a `Uint16Array` of raw bits
 * (see {@linkcode bf16ToFloat32}), `I64` a `BigInt64Array`, `BOOL` and the 8-bit floats a `Uint8Array` of raw bytes.
 *
 * @module
 */
import { writeFileAtomic } from "./atomic_write.ts";
import { findJsonError, kindOf, quoteForMessage } from "../util/json.ts";

/** The element types of safetensors. */
export type SafetensorsDtype =
  | "BOOL"
  | "U8"
  | "I8"
  | "F8_E5M2"
  | "F8_E4M3"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "F64"
  | "I64"
  | "U64";

/** The typed arrays that hold tensor data. */
export type TensorData =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Float16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

/** One tensor of a safetensors file. `data.length` equals the product of `shape` (1 for a scalar `[]`). */
export interface TensorEntry {
  /** Element type on disk. */
  dtype: SafetensorsDtype;
  /** Dimensions, outermost first (row-major). */
  shape: number[];
  /** Elements in row-major order, as the typed array matching `dtype`. */
  data: TensorData;
}

/** Named tensors; the write order is the insertion order. */
export type TensorMap = Map<string, TensorEntry>;

/** The decoded contents of a safetensors file. */
export interface SafetensorsContents {
  /** The tensors, in file order. */
  tensors: TensorMap;
  /** The `__metadata__` string map (empty if absent). */
  metadata: Record<string, string>;
}

/** A tensor's header entry, without its data. */
export interface TensorInfo {
  /** Element type. */
  dtype: SafetensorsDtype;
  /** Dimensions. */
  shape: number[];
  /** Byte range `[begin, end)` in the data buffer that follows the header. */
  dataOffsets: [number, number];
}

/** The parsed header of a safetensors file. */
export interface SafetensorsHeader {
  /** Tensor entries by name, in file order. */
  tensors: Map<string, TensorInfo>;
  /** The `__metadata__` string map (empty if absent). */
  metadata: Record<string, string>;
  /** Byte offset of the data buffer in the file (8 + header length). */
  dataStart: number;
}

/** Options of the writers. */
export interface SafetensorsWriteOptions {
  /** String metadata stored under `__metadata__`. */
  metadata?: Record<string, string>;
}

/** Options of the readers. */
export interface SafetensorsReadOptions {
  /** The file name (or another label) used in error messages. */
  source?: string;
}

interface DtypeInfo {
  size: number;
  // deno-lint-ignore no-explicit-any
  array: new (buffer: ArrayBuffer, byteOffset: number, length: number) => any;
}

const DTYPES: Record<SafetensorsDtype, DtypeInfo> = {
  BOOL: { size: 1, array: Uint8Array },
  U8: { size: 1, array: Uint8Array },
  I8: { size: 1, array: Int8Array },
  F8_E5M2: { size: 1, array: Uint8Array },
  F8_E4M3: { size: 1, array: Uint8Array },
  I16: { size: 2, array: Int16Array },
  U16: { size: 2, array: Uint16Array },
  F16: { size: 2, array: Float16Array },
  BF16: { size: 2, array: Uint16Array },
  I32: { size: 4, array: Int32Array },
  U32: { size: 4, array: Uint32Array },
  F32: { size: 4, array: Float32Array },
  F64: { size: 8, array: Float64Array },
  I64: { size: 8, array: BigInt64Array },
  U64: { size: 8, array: BigUint64Array },
};

/** The reference implementation refuses headers above 100 MB; a larger length means a corrupt file. */
const MAX_HEADER_BYTES = 100_000_000;
/**
 * Tensors one file may hold. GPT-2 XL has under 600 and our checkpoint of it (weights and two moments) under
 * 1,800; the largest public models keep a few thousand per shard. A 100 MB header could list 1.5 M, costing ~20 s
 * and 2 GB to parse: with the bounds below, the costliest accepted header takes under a second.
 */
const MAX_TENSORS = 100_000;
/**
 * Commas and colons outside strings in a header: a tensor of rank r costs 7 + r, so this allows MAX_TENSORS
 * tensors of rank 5 (or fewer tensors of higher rank) and bounds what `JSON.parse` builds.
 */
const MAX_HEADER_ITEMS = 12 * MAX_TENSORS;
/**
 * Commas and colons in one entry of the header (a tensor's, or `__metadata__`): 10,000 metadata keys, where
 * nanolm writes about ten and other writers a handful. One object with a million keys costs seconds to build.
 */
const MAX_ENTRY_ITEMS = 20_000;

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  // Tensor bytes are copied straight from typed arrays, which use the platform's byte order.
  throw new Error("safetensors.ts needs a little-endian platform");
}

/**
 * The size in bytes of one element of `dtype`.
 *
 * @example
 * ```ts
 * import { dtypeSize } from "@nanolm/nanolm/io";
 * if (dtypeSize("BF16") !== 2 || dtypeSize("I64") !== 8) throw new Error("wrong sizes");
 * ```
 */
export function dtypeSize(dtype: SafetensorsDtype): number {
  const info = DTYPES[dtype];
  if (!info) throw new TypeError(`Unknown safetensors dtype ${JSON.stringify(dtype)}`);
  return info.size;
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function label(source: string | undefined): string {
  return source ? `Safetensors file ${source}` : "Safetensors data";
}

function checkEntry(name: string, t: TensorEntry): void {
  const info = DTYPES[t.dtype];
  if (!info) throw new TypeError(`Tensor "${name}" has unknown dtype ${JSON.stringify(t.dtype)}`);
  if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new TypeError(`Tensor "${name}" has an invalid shape ${JSON.stringify(t.shape)}`);
  }
  if (!(t.data instanceof info.array)) {
    throw new TypeError(`Tensor "${name}" has dtype ${t.dtype} but its data is a ${t.data?.constructor?.name}`);
  }
  if (t.data.length !== numel(t.shape)) {
    throw new RangeError(
      `Tensor "${name}" has shape [${t.shape}] (${numel(t.shape)} elements) but ${t.data.length} data elements`,
    );
  }
}

function buildHeader(tensors: TensorMap, metadata: Record<string, string> | undefined): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new TypeError(`Metadata value of "${k}" must be a string, got ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === "__metadata__") throw new TypeError(`Tensor name "__metadata__" is reserved`);
    checkEntry(name, t);
    const end = offset + t.data.byteLength;
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, end] };
    offset = end;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

function bytesOf(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Serialises tensors (in insertion order) and metadata to safetensors bytes.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "@nanolm/nanolm/io";
 * const bytes = encodeSafetensors(new Map([["w", { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) }]]));
 * const w = decodeSafetensors(bytes).tensors.get("w");
 * if (w?.dtype !== "F32" || w.data.join() !== "1,2") throw new Error("did not round-trip");
 * ```
 */
export function encodeSafetensors(tensors: TensorMap, options: SafetensorsWriteOptions = {}): Uint8Array {
  const header = buildHeader(tensors, options.metadata);
  let total = header.length;
  for (const t of tensors.values()) total += t.data.byteLength;
  const out = new Uint8Array(total);
  out.set(header);
  let pos = header.length;
  for (const t of tensors.values()) {
    out.set(bytesOf(t.data), pos);
    pos += t.data.byteLength;
  }
  return out;
}

/**
 * Parses and validates a header from the first bytes of a file. `prefix` must hold at least the 8 length bytes and
 * the header; `fileSize` is the size of the whole file, so truncation is detected without reading the data.
 *
 * Like the reference implementation (the Rust `safetensors` crate) it checks the header length, the dtypes, that
 * shape products do not overflow and match the byte ranges, and that the ranges tile the data buffer exactly. It
 * also bounds the work: the header is scanned for its size in entries and its nesting before `JSON.parse` builds
 * anything, so a hostile header costs at most one linear pass over its bytes.
 */
function parseHeader(prefix: Uint8Array, fileSize: number, source?: string): SafetensorsHeader {
  const what = label(source);
  const headerLen = readHeaderLength(prefix, fileSize, what);
  const bytes = prefix.subarray(8, 8 + headerLen);
  const entries = scanHeader(bytes, what);
  const parsed = parseHeaderJson(bytes, what);
  if (Object.keys(parsed).length !== entries) throw new Error(`${what}: a name appears more than once in the header`);
  const dataStart = 8 + headerLen;
  const bufferLen = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (name === "__metadata__") metadata = checkMetadata(value, what);
    else tensors.set(name, checkTensorInfo(name, value, bufferLen, what));
  }
  if (tensors.size > MAX_TENSORS) throw new Error(`${what} has more than ${MAX_TENSORS} tensors (corrupt?)`);
  checkTiling(tensors, bufferLen, what);
  return { tensors, metadata, dataStart };
}

function readHeaderLength(prefix: Uint8Array, fileSize: number, what: string): number {
  if (fileSize < 8) {
    throw new Error(`${what} is truncated: ${fileSize} bytes, fewer than the 8-byte header length`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new Error(`${what} has a bad header length ${n} (more than ${MAX_HEADER_BYTES} bytes): not safetensors?`);
  }
  const headerLen = Number(n);
  if (8 + headerLen > fileSize) {
    throw new Error(
      `${what} is truncated or corrupt: header length ${headerLen} runs past the end of the ${fileSize}-byte file`,
    );
  }
  return headerLen;
}

/**
 * One pass over the header bytes, before any parsing: it must be an object, nested at most 3 deep (header ->
 * tensor entry -> shape), with at most MAX_TENSORS + 1 entries, MAX_ENTRY_ITEMS separators in each and
 * MAX_HEADER_ITEMS in all. Returns the
 * number of top-level entries. JSON's structural characters are ASCII and never occur inside a multi-byte UTF-8
 * sequence, so the bytes need no decoding; malformed JSON is left for the parser to name.
 */
function scanHeader(bytes: Uint8Array, what: string): number {
  let first = 0;
  while (first < bytes.length && (bytes[first] === 0x20 || bytes[first] === 0x0a || bytes[first] === 0x0d)) first++;
  if (bytes[first] !== 0x7b) throw new Error(`${what} has a header that does not start with "{": not safetensors?`);
  let depth = 0, entries = 0, items = 0, entryItems = 0, inString = false;
  for (let i = first; i < bytes.length; i++) {
    const c = bytes[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > 3) throw new Error(`${what} has a header nested deeper than a safetensors header can be`);
      if (depth === 2) entryItems = 0;
    } else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x2c || c === 0x3a) {
      if (c === 0x3a && depth === 1 && ++entries > MAX_TENSORS + 1) {
        throw new Error(`${what} has more than ${MAX_TENSORS} tensors (corrupt?)`);
      }
      if (depth >= 2 && ++entryItems > MAX_ENTRY_ITEMS) {
        throw new Error(`${what} has a header entry of more than ${MAX_ENTRY_ITEMS} JSON items (corrupt?)`);
      }
      if (++items > MAX_HEADER_ITEMS) {
        throw new Error(`${what} has a header of more than ${MAX_HEADER_ITEMS} JSON items (corrupt?)`);
      }
    }
  }
  return entries;
}

function parseHeaderJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${what} has a header that is not valid UTF-8`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // V8's message quotes the text; name the byte offset and the problem instead.
    const found = findJsonError(text) ?? { offset: 0, problem: "not valid JSON" };
    const at = new TextEncoder().encode(text.slice(0, found.offset)).length;
    throw new Error(`${what} has a header that is invalid JSON: ${found.problem} at byte ${at} of the header`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error(`${what} has a header that is not a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

function checkMetadata(value: unknown, what: string): Record<string, string> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${what} has a __metadata__ that is ${kindOf(value)}, not an object`);
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      throw new Error(`${what} has a non-string __metadata__ value for ${quoteForMessage(k)}`);
    }
  }
  return value as Record<string, string>;
}

function checkTensorInfo(name: string, value: unknown, bufferLen: number, what: string): TensorInfo {
  const bad = (problem: string) => new Error(`${what}: tensor ${quoteForMessage(name)} ${problem}`);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw bad(`has a header entry that is ${kindOf(value)}, not an object`);
  }
  const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof e.dtype !== "string" || !Object.hasOwn(DTYPES, e.dtype)) {
    // A dtype-like name helps with files from a newer writer; anything else is not shown.
    const shown = typeof e.dtype === "string" && /^[A-Z0-9_]{1,16}$/.test(e.dtype) ? ` "${e.dtype}"` : "";
    throw bad(`has unknown dtype${shown}`);
  }
  const dtype = e.dtype as SafetensorsDtype;
  if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw bad("has an invalid shape (expected an array of non-negative integers)");
  }
  const shape = e.shape as number[];
  const off = e.data_offsets;
  if (
    !Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isSafeInteger(x) && x >= 0) ||
    off[1] < off[0]
  ) {
    throw bad("has invalid data_offsets (expected [begin, end] with 0 <= begin <= end)");
  }
  const [begin, end] = off as [number, number];
  // Checked products, as the reference does: a product past 2^53 is inexact and cannot fit in any file.
  let elements = 1;
  for (const d of shape) elements *= d;
  const expected = elements * DTYPES[dtype].size;
  if (!Number.isSafeInteger(expected)) throw bad(`has shape [${shape}] with too many elements for a file`);
  if (end - begin !== expected) {
    throw bad(
      `has data_offsets [${begin}, ${end}] spanning ${end - begin} bytes, but ${dtype}[${shape}] needs ${expected}`,
    );
  }
  if (end > bufferLen) {
    throw new Error(
      `${what} is truncated: tensor ${quoteForMessage(name)} has data_offsets [${begin}, ${end}] out of range of ` +
        `the ${bufferLen}-byte data buffer`,
    );
  }
  return { dtype, shape, dataOffsets: [begin, end] };
}

/** Like the reference implementation: tensors must tile the buffer exactly, with no overlap and no hole. */
function checkTiling(tensors: Map<string, TensorInfo>, bufferLen: number, what: string): void {
  const sorted = [...tensors.entries()].sort((a, b) =>
    a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]
  );
  let cursor = 0;
  for (const [name, info] of sorted) {
    if (info.dataOffsets[0] !== cursor) {
      throw new Error(
        `${what}: tensor ${quoteForMessage(name)} starts at byte ${info.dataOffsets[0]} of the data buffer, ` +
          `expected ${cursor} (tensors overlap or leave a hole)`,
      );
    }
    cursor = info.dataOffsets[1];
  }
  if (cursor !== bufferLen) {
    throw new Error(`${what} has ${bufferLen - cursor} bytes after the last tensor (corrupt or not safetensors)`);
  }
}

function materialise(header: SafetensorsHeader, bytes: Uint8Array): SafetensorsContents {
  const tensors: TensorMap = new Map();
  for (const [name, info] of header.tensors) {
    const [begin, end] = info.dataOffsets;
    // Copying gives each tensor its own aligned buffer (offsets in the file need not be aligned).
    const copy = bytes.slice(header.dataStart + begin, header.dataStart + end);
    const { array, size } = DTYPES[info.dtype];
    tensors.set(name, { dtype: info.dtype, shape: info.shape, data: new array(copy.buffer, 0, copy.length / size) });
  }
  return { tensors, metadata: header.metadata };
}

/**
 * Parses safetensors bytes, validating the header (length, JSON, dtypes, shapes, offsets).
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "@nanolm/nanolm/io";
 * const bytes = encodeSafetensors(new Map(), { metadata: { step: "3" } });
 * if (decodeSafetensors(bytes).metadata.step !== "3") throw new Error("metadata lost");
 * ```
 */
export function decodeSafetensors(bytes: Uint8Array, options: SafetensorsReadOptions = {}): SafetensorsContents {
  return materialise(parseHeader(bytes, bytes.length, options.source), bytes);
}

/**
 * Reads only the header of a safetensors file (names, dtypes, shapes, offsets, metadata), not the tensor data.
 *
 * @example
 * ```ts
 * import { readSafetensorsHeader, writeSafetensors } from "@nanolm/nanolm/io";
 * const dir = await Deno.makeTempDir();
 * await writeSafetensors(`${dir}/b.safetensors`, new Map([["b", { dtype: "I32", shape: [3], data: new Int32Array(3) }]]));
 * const b = (await readSafetensorsHeader(`${dir}/b.safetensors`)).tensors.get("b");
 * if (b?.dtype !== "I32" || b.shape.join() !== "3") throw new Error("wrong header");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  using file = await openForRead(path);
  return await readHeaderFrom(file, path);
}

async function readHeaderFrom(file: Deno.FsFile, path: string): Promise<SafetensorsHeader> {
  const size = (await file.stat()).size;
  const lenBytes = await readExactly(file, Math.min(8, size));
  if (size < 8) return parseHeader(lenBytes, size, path);
  const n = new DataView(lenBytes.buffer).getBigUint64(0, true);
  const want = n > BigInt(MAX_HEADER_BYTES) ? 0 : Math.min(Number(n), size - 8);
  const prefix = new Uint8Array(8 + want);
  prefix.set(lenBytes);
  prefix.set(await readExactly(file, want), 8);
  return parseHeader(prefix, size, path);
}

/**
 * Reads a whole safetensors file. Errors name the file and the problem (missing, truncated, bad header length,
 * offsets out of range...). The header is checked against the file size before any tensor is read, and each tensor
 * is read straight into its own buffer, so a checkpoint takes its own size in memory, not twice that.
 *
 * @example
 * ```ts
 * import { readSafetensors, writeSafetensors } from "@nanolm/nanolm/io";
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/w.safetensors`;
 * await writeSafetensors(path, new Map([["w", { dtype: "F32", shape: [1, 2], data: new Float32Array([3, 4]) }]]));
 * const w = (await readSafetensors(path)).tensors.get("w");
 * if (w?.shape.join() !== "1,2" || w.data.join() !== "3,4") throw new Error("did not round-trip");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  using file = await openForRead(path);
  const header = await readHeaderFrom(file, path);
  const tensors: TensorMap = new Map();
  for (const [name, info] of header.tensors) {
    const [begin, end] = info.dataOffsets;
    await file.seek(header.dataStart + begin, Deno.SeekMode.Start);
    const bytes = await readExactly(file, end - begin);
    if (bytes.length !== end - begin) {
      throw new Error(`Safetensors file ${path} ended while reading tensor "${name}" (changed on disk?)`);
    }
    const { array, size } = DTYPES[info.dtype];
    tensors.set(name, { dtype: info.dtype, shape: info.shape, data: new array(bytes.buffer, 0, bytes.length / size) });
  }
  return { tensors, metadata: header.metadata };
}

/**
 * Writes tensors and metadata to `path` atomically: the bytes go to a temporary file in the same directory, which
 * is flushed to disk and then renamed over `path`, so a crash leaves either the old file or the new one, never a
 * torn one; temporary files that killed writes of `path` left behind are removed (see `atomic_write.ts`). Tensor
 * data is streamed from the typed arrays (no second copy of a large checkpoint in memory).
 *
 * @example
 * ```ts
 * import { readSafetensors, writeSafetensors } from "@nanolm/nanolm/io";
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/ids.safetensors`;
 * await writeSafetensors(path, new Map([["ids", { dtype: "I64", shape: [2], data: new BigInt64Array([1n, 2n]) }]]), {
 *   metadata: { format: "pt" },
 * });
 * if ((await readSafetensors(path)).metadata.format !== "pt") throw new Error("metadata lost");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorMap,
  options: SafetensorsWriteOptions = {},
): Promise<void> {
  const header = buildHeader(tensors, options.metadata);
  try {
    await writeFileAtomic(path, async (file) => {
      await writeAll(file, header);
      for (const t of tensors.values()) await writeAll(file, bytesOf(t.data));
    });
  } catch (e) {
    throw fileError(path, e);
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

async function openForRead(path: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { read: true });
  } catch (e) {
    throw fileError(path, e);
  }
}

async function readExactly(file: Deno.FsFile, n: number): Promise<Uint8Array<ArrayBuffer>> {
  const out = new Uint8Array(n);
  let done = 0;
  while (done < n) {
    const got = await file.read(out.subarray(done));
    if (got === null) break;
    done += got;
  }
  return out.subarray(0, done);
}

function fileError(path: string, e: unknown): Error {
  if (e instanceof Deno.errors.NotFound) return new Error(`Safetensors file ${path} does not exist`, { cause: e });
  if (e instanceof Error && e.message.startsWith("Safetensors")) return e;
  return new Error(`Safetensors file ${path}: ${(e as Error)?.message ?? e}`, { cause: e });
}

/**
 * Widens bfloat16 bit patterns to float32 (exact: bf16 is the top half of an f32).
 *
 * @example
 * ```ts
 * import { bf16ToFloat32 } from "@nanolm/nanolm/io";
 * if (bf16ToFloat32(new Uint16Array([0x3fc0]))[0] !== 1.5) throw new Error("0x3fc0 is 1.5 in bfloat16");
 * ```
 */
export function bf16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
  return new Float32Array(out.buffer);
}

/**
 * Rounds float32 values to bfloat16 bit patterns (round to nearest, ties to even; NaN stays NaN).
 *
 * @example
 * ```ts
 * import { float32ToBf16 } from "@nanolm/nanolm/io";
 * if (float32ToBf16(new Float32Array([1.5]))[0] !== 0x3fc0) throw new Error("1.5 is 0x3fc0 in bfloat16");
 * ```
 */
export function float32ToBf16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = bits[i];
    if ((x & 0x7fffffff) > 0x7f800000) out[i] = (x >>> 16) | 0x40; // quiet NaN
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

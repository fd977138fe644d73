/**
 * GPT-2's printable encoding of bytes (`bytes_to_unicode`), used by `vocab.json` and `merges.txt` files.
 *
 * GPT-2 stores byte strings as text by mapping each of the 256 bytes to a visible Unicode character: printable
 * Latin-1 bytes map to themselves and the rest (control bytes, space, some Latin-1 blanks) to U+0100 onwards, so
 * that a space becomes `Ġ` and a newline `Ċ`.
 *
 * @module
 */

function buildByteToChar(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = new Array<string>(256);
  for (const b of printable) table[b] = String.fromCharCode(b);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCharCode(256 + next++);
  }
  return table;
}

/** The character GPT-2 uses for each byte value (index = byte). */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

const CHAR_TO_BYTE: Map<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/**
 * Encodes bytes as GPT-2 printable text.
 *
 * @example
 * ```ts
 * import { bytesToPrintable } from "@nanolm/nanolm/tokenizer";
 * // GPT-2's byte-to-unicode map: a space shows as "Ġ".
 * if (bytesToPrintable(new TextEncoder().encode(" the")) !== "Ġthe") throw new Error("not GPT-2's map");
 * ```
 */
export function bytesToPrintable(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += BYTE_TO_CHAR[bytes[i]];
  return out;
}

/**
 * Decodes GPT-2 printable text back to bytes, or returns `undefined` if a character is not one of the 256 byte
 * characters (the caller names the file and line in its error).
 *
 * @example
 * ```ts
 * import { printableToBytes } from "@nanolm/nanolm/tokenizer";
 * if (printableToBytes("Ġthe")?.join(",") !== "32,116,104,101") throw new Error("not GPT-2's map");
 * ```
 */
export function printableToBytes(text: string): Uint8Array | undefined {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const b = CHAR_TO_BYTE.get(text[i]);
    if (b === undefined) return undefined;
    out[i] = b;
  }
  return out;
}

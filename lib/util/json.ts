/**
 * JSON parsing for file contents, with errors that say where and what is wrong but never quote the text.
 *
 * V8's `JSON.parse` messages quote the input around the error (`Unexpected token 'r', "root:x:0:0"... is not valid
 * JSON`), so a file read by mistake (or by a path planted in a checkpoint) would leak into logs and stack traces.
 * {@linkcode parseJson} runs `JSON.parse` and, when it fails, finds the first error itself with
 * {@linkcode findJsonError}: a linear scan that reports the offset and a description from a fixed list.
 *
 * @module
 */

/** The first syntax error of a JSON text. */
export interface JsonError {
  /** Offset of the error, in UTF-16 units of the text. */
  offset: number;
  /** What is wrong, without any of the text: "unexpected character", "unterminated string"... */
  problem: string;
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const ESCAPES = new Set(['"', "\\", "/", "b", "f", "n", "r", "t"]);
const HEX4 = /[0-9a-fA-F]{4}/y;

/**
 * Finds the first syntax error of `text` by the grammar of ECMA-404 (the one `JSON.parse` accepts), or returns
 * `null` for valid JSON. Linear in the text; nesting is tracked on an explicit stack, so any depth is fine.
 *
 * @example
 * ```ts
 * import { findJsonError } from "./json.ts";
 * if (findJsonError('{"a": [1, 2]}') !== null) throw new Error("valid JSON reported as an error");
 * const error = findJsonError('{"a": tru}');
 * if (error?.offset !== 6 || error.problem !== "unexpected character") throw new Error(JSON.stringify(error));
 * ```
 */
export function findJsonError(text: string): JsonError | null {
  const closers: string[] = []; // the closing bracket of each open container
  let i = 0;
  const fail = (problem: string, at = i): JsonError => ({
    offset: at,
    problem: at >= text.length ? "unexpected end of input" : problem,
  });
  const skipSpace = () => {
    let c = text.charCodeAt(i);
    while (c === 32 || c === 9 || c === 10 || c === 13) c = text.charCodeAt(++i);
  };
  const string = (): JsonError | null => {
    const start = i++;
    for (;;) {
      if (i >= text.length) return { offset: start, problem: "unterminated string" };
      const c = text[i];
      if (c === '"') break;
      if (text.charCodeAt(i) < 0x20) return fail("control character in a string");
      if (c === "\\") {
        const e = text[i + 1];
        HEX4.lastIndex = i + 2;
        if (e === "u" ? !HEX4.test(text) : !ESCAPES.has(e)) return fail("invalid escape in a string");
        i += e === "u" ? 5 : 1;
      }
      i++;
    }
    i++;
    return null;
  };
  const key = (): JsonError | null => {
    skipSpace();
    if (text[i] !== '"') return fail("expected a property name in double quotes");
    const bad = string();
    if (bad) return bad;
    skipSpace();
    if (text[i] !== ":") return fail('expected ":" after a property name');
    i++;
    return null;
  };
  const scalar = (): JsonError | null => {
    const c = text[i];
    if (c === '"') return string();
    for (const word of ["true", "false", "null"]) {
      if (c === word[0]) {
        if (!text.startsWith(word, i)) return fail("unexpected character");
        i += word.length;
        return null;
      }
    }
    if (c !== "-" && !(c >= "0" && c <= "9")) return fail("unexpected character");
    NUMBER.lastIndex = i;
    // A number running on past its longest valid prefix ("01", "1.", "2e") is one bad number.
    if (!NUMBER.test(text) || /[0-9.eE]/.test(text[NUMBER.lastIndex] ?? "")) return fail("invalid number");
    i = NUMBER.lastIndex;
    return null;
  };
  for (;;) {
    // A value starts here.
    skipSpace();
    const c = text[i];
    if (c === "{" || c === "[") {
      i++;
      skipSpace();
      const close = c === "{" ? "}" : "]";
      if (text[i] !== close) {
        closers.push(close);
        const bad = close === "}" ? key() : null;
        if (bad) return bad;
        continue;
      }
      i++;
    } else {
      const bad = i >= text.length ? fail("") : scalar();
      if (bad) return bad;
    }
    // A value ended: close containers until a comma starts the next value.
    for (;;) {
      skipSpace();
      const close = closers.at(-1);
      if (close === undefined) return i < text.length ? fail("unexpected content after the JSON value") : null;
      if (text[i] === close) {
        closers.pop();
        i++;
        continue;
      }
      if (text[i] !== ",") return fail(`expected "," or "${close}"`);
      i++;
      const bad = close === "}" ? key() : null;
      if (bad) return bad;
      break;
    }
  }
}

/**
 * Line and column (both from 1) of `offset` in `text`.
 *
 * @example
 * ```ts
 * import { lineAndColumn } from "./json.ts";
 * const [line, column] = lineAndColumn("ab\ncd", 4); // the "d"
 * if (line !== 2 || column !== 2) throw new Error(`line ${line}, column ${column}`);
 * ```
 */
export function lineAndColumn(text: string, offset: number): [number, number] {
  let line = 1, lineStart = 0;
  for (let at = text.indexOf("\n"); at >= 0 && at < offset; at = text.indexOf("\n", at + 1)) {
    line++;
    lineStart = at + 1;
  }
  return [line, offset - lineStart + 1];
}

/**
 * Parses JSON text read from `source` (a file name, used in the error). A syntax error becomes one line naming the
 * source, the line and column and what is wrong, and never quotes the text.
 *
 * @example
 * ```ts
 * import { parseJson } from "./json.ts";
 * if ((parseJson('{"a": 1}', "a.json") as { a: number }).a !== 1) throw new Error("wrong value");
 * let message = "";
 * try {
 *   parseJson('{\n  "password": hunter2\n}', "secrets.json");
 * } catch (e) {
 *   message = (e as Error).message;
 * }
 * // Where and what, never the text itself:
 * if (message !== "secrets.json: invalid JSON: unexpected character at line 2, column 15") throw new Error(message);
 * ```
 */
export function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    const found = findJsonError(text) ?? { offset: 0, problem: "not valid JSON" };
    const [line, column] = lineAndColumn(text, found.offset);
    throw new SyntaxError(`${source}: invalid JSON: ${found.problem} at line ${line}, column ${column}`);
  }
}

/**
 * Names the kind of a parsed JSON value without showing it: "null", "a boolean", "a number", "a string",
 * "an array" or "an object", for error messages about values read from files.
 *
 * @example
 * ```ts
 * import { kindOf } from "./json.ts";
 * if (kindOf("secret") !== "a string" || kindOf([1]) !== "an array") throw new Error("wrong kind");
 * ```
 */
export function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "undefined") return "missing";
  return `a ${typeof value}`;
}

/**
 * Quotes a short string read from a file (a tensor name, a recorded path) for an error message: JSON-style, with
 * control and invisible formatting characters escaped, and cut to `maxLength` characters, so a hostile value can
 * neither flood the message nor drive the terminal.
 *
 * @example
 * ```ts
 * import { quoteForMessage } from "./json.ts";
 * // A terminal escape is shown, not obeyed; a long value is cut.
 * if (quoteForMessage("a\u001b[2Jb") !== '"a\\u001b[2Jb"') throw new Error(quoteForMessage("a\u001b[2Jb"));
 * if (quoteForMessage("x".repeat(100), 4) !== '"xxxx"…') throw new Error(quoteForMessage("x".repeat(100), 4));
 * ```
 */
export function quoteForMessage(text: string, maxLength = 80): string {
  const cut = text.length > maxLength ? text.slice(0, maxLength) : text;
  const quoted = JSON.stringify(cut).replace(
    /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return cut === text ? quoted : `${quoted}…`;
}

/**
 * The flag toolkit of nanolm's command-line programs (`deno task train`, `sample`, `prepare-data`): one list of
 * {@linkcode FlagSpec}s drives parsing, validation and the `--help` text, and {@linkcode runMain} turns any error
 * into a single `nanolm: <message>` line on stderr and a non-zero exit.
 *
 * Parsing uses `node:util`'s `parseArgs` in its non-strict mode, so that a value may start with a dash
 * (`--temperature -1` reaches validation instead of failing as "ambiguous"), and checks the tokens itself:
 * unknown flags are named with the nearest known one, values are converted and range-checked with messages that
 * name the flag.
 *
 * This module belongs to the CLI layer; the library (tensors, model, training) never imports it.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError } from "../util/validate.ts";

/** Exit status of a usage error (bad flag, bad value): the user can fix the command line. */
export const EXIT_USAGE = 2;
/** Exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

/**
 * Exit status of a run stopped by `signal`, as shells and job schedulers report a process the signal ended:
 * 128 + its number (130 for SIGINT, Ctrl-C; 143 for SIGTERM, what `kill` and Slurm send).
 *
 * @example
 * ```ts
 * import { interruptedExitCode } from "./flags.ts";
 * if (interruptedExitCode("SIGTERM") !== 143 || interruptedExitCode("SIGINT") !== 130) throw new Error("128 + signal");
 * ```
 */
export function interruptedExitCode(signal: Deno.Signal | null): number {
  return signal === "SIGTERM" ? 128 + 15 : EXIT_INTERRUPTED;
}

/**
 * An error in what the user typed: an unknown flag, a missing or malformed value. {@linkcode runMain} exits with
 * {@linkcode EXIT_USAGE} for it (and for a `ConfigError`), and with 1 for any other error.
 *
 * @example
 * ```ts
 * import { UsageError } from "./flags.ts";
 * const e = new UsageError("--top-k must be an integer >= 0, got -1");
 * if (e.exitCode !== 2 || !(e instanceof Error)) throw new Error("a usage error exits with status 2");
 * ```
 */
export class UsageError extends Error {
  /** The process exit status for this error. */
  readonly exitCode: number = EXIT_USAGE;

  /** Creates the error; `message` names the flag, the value and what is expected. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The value type of a flag. `pair` is two comma-separated numbers (`0.9,0.95`). */
export type FlagType = "int" | "float" | "string" | "bool" | "pair" | { readonly enum: readonly string[] };

/** One command-line flag. */
export interface FlagSpec {
  /** Kebab-case name without the dashes (`top-p`). Booleans also accept `--no-<name>`. */
  readonly name: string;
  /** Value type. */
  readonly type: FlagType;
  /** One-line description for `--help`. */
  readonly help: string;
  /** Value used when the flag is absent (shown in `--help`). */
  readonly default?: unknown;
  /** How `--help` describes the default when it is not a plain value ("recorded in the checkpoint"). */
  readonly defaultText?: string;
  /** Placeholder in `--help` instead of the type (`path` shows `<path>`). */
  readonly valueName?: string;
  /** Smallest allowed number. */
  readonly min?: number;
  /** The minimum itself is not allowed. */
  readonly minExclusive?: boolean;
  /** Largest allowed number. */
  readonly max?: number;
  /** The maximum itself is not allowed. */
  readonly maxExclusive?: boolean;
  /** The flag may be repeated; its value is the list of values (strings only). */
  readonly multiple?: boolean;
  /** One-letter alias (`h` for `-h`). */
  readonly short?: string;
  /** The flag must be given (unless `--help` is); `--help` shows "(required)" instead of a default. */
  readonly required?: boolean;
  /** Heading it is listed under in `--help` (flags without one come first). */
  readonly group?: string;
  /**
   * The value of the flag given alone: its value is then optional (`--profile` or `--profile 5`), taken from the
   * next argument only when that is not a flag. Not checked against `min`/`max`.
   */
  readonly implied?: unknown;
}

type ValueOf<F extends FlagSpec> = F extends { multiple: true } ? string[]
  : F["type"] extends "int" | "float" ? number
  : F["type"] extends "bool" ? boolean
  : F["type"] extends "pair" ? [number, number]
  : string;

/** Parsed values by flag name, typed from a spec list declared `as const`. */
export type FlagValues<S extends readonly FlagSpec[]> = { [F in S[number] as F["name"]]?: ValueOf<F> };

/** The outcome of {@linkcode parseFlags}. */
export interface ParsedFlags<S extends readonly FlagSpec[]> {
  /** `-h` or `--help` was given (every other flag was still checked). */
  help: boolean;
  /** Each flag's value: what the user gave, else its default; absent when neither. */
  values: FlagValues<S>;
  /** Names of the flags the user gave, in order of first appearance. */
  given: string[];
  /** Arguments that are not flags (only with `positionals: true`). */
  positionals: string[];
}

const HELP_FLAG: FlagSpec = { name: "help", short: "h", type: "bool", help: "show this help" };

/**
 * Parses `args` against `specs`: converts and range-checks every value, applies defaults, and throws a
 * {@linkcode UsageError} naming the flag for an unknown flag (with the nearest known one), a missing or malformed
 * value, a value out of range, or an unexpected positional argument. `-h`/`--help` is always known.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const specs = [
 *   { name: "temperature", type: "float", min: 0, default: 0.8, help: "softmax temperature" },
 *   { name: "top-k", type: "int", min: 0, default: 0, help: "keep the k most likely tokens" },
 * ] as const;
 * const { values } = parseFlags(["--temperature", "0.5"], specs);
 * if (values.temperature !== 0.5 || values["top-k"] !== 0) throw new Error(JSON.stringify(values));
 * let message = "";
 * try {
 *   parseFlags(["--temperature", "-1"], specs);
 * } catch (e) {
 *   message = (e as Error).message;
 * }
 * if (message !== "--temperature must be >= 0, got -1") throw new Error(`wrong or no error: ${message}`);
 * ```
 */
export function parseFlags<const S extends readonly FlagSpec[]>(
  args: readonly string[],
  specs: S,
  options: { positionals?: boolean } = {},
): ParsedFlags<S> {
  const all = [...specs, HELP_FLAG];
  const byName = new Map(all.map((s) => [s.name, s]));
  const parseOptions: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const s of all) {
    // A flag whose value is optional is parsed as a switch, so that it never swallows the next flag.
    const type = s.type === "bool" || s.implied !== undefined ? "boolean" : "string";
    parseOptions[s.name] = { type, ...(s.short ? { short: s.short } : {}) };
  }
  // Non-strict: values may start with "-" (negative numbers); the checks strict mode would do are done below.
  const { tokens } = parseArgs({ args: [...args], options: parseOptions, strict: false, tokens: true });
  const values: Record<string, unknown> = {};
  const given: string[] = [];
  const positionals: string[] = [];
  let help = false;
  for (let t = 0; t < tokens.length; t++) {
    const token = tokens[t];
    if (token.kind === "option-terminator") continue;
    if (token.kind === "positional") {
      if (!options.positionals) {
        throw new UsageError(`unexpected argument ${JSON.stringify(token.value)} (flags start with --; see --help)`);
      }
      positionals.push(token.value);
      continue;
    }
    const negated = token.name.startsWith("no-") && byName.get(token.name.slice(3))?.type === "bool";
    const spec = byName.get(negated ? token.name.slice(3) : token.name);
    if (!spec || (token.rawName.length === 2 && token.rawName !== `-${spec.short}`)) {
      throw new UsageError(unknownFlagMessage(token.rawName, all));
    }
    if (spec === HELP_FLAG) {
      help = true;
      continue;
    }
    let value: unknown;
    if (spec.implied !== undefined && token.value === undefined) {
      const next = tokens[t + 1];
      const attached = next?.kind === "positional" && next.index === token.index + 1;
      value = attached ? convertValue(spec, next.value) : spec.implied;
      if (attached) t++;
    } else if (negated) {
      if (token.value !== undefined) {
        throw new UsageError(`${token.rawName} takes no value (got ${JSON.stringify(token.value)})`);
      }
      value = false;
    } else value = convertToken(spec, token.rawName, token.value, token.inlineValue);
    if (spec.multiple) {
      values[spec.name] = [...(given.includes(spec.name) ? values[spec.name] as unknown[] : []), value];
    } else values[spec.name] = value;
    if (!given.includes(spec.name)) given.push(spec.name);
  }
  for (const s of specs) {
    if (values[s.name] === undefined && s.default !== undefined) values[s.name] = s.default;
    if (values[s.name] === undefined && s.required && !help) {
      throw new UsageError(`missing --${s.name} <${valueName(s)}> (see --help)`);
    }
  }
  return { help, values: values as FlagValues<S>, given, positionals };
}

function convertToken(spec: FlagSpec, rawName: string, raw: string | undefined, inline?: boolean): unknown {
  if (spec.type === "bool") {
    if (raw !== undefined) throw new UsageError(`${rawName} takes no value (got ${JSON.stringify(raw)})`);
    return true;
  }
  const placeholder = `<${valueName(spec)}>`;
  if (raw === undefined) throw new UsageError(`${rawName} needs a value: ${rawName} ${placeholder}`);
  // A separate value that looks like a flag is most likely a forgotten value, not a string starting with "-".
  if (!inline && /^--?[A-Za-z]/.test(raw) && !isNumber(raw)) {
    throw new UsageError(
      `${rawName} needs a value, got the flag ${raw} (write ${rawName}=${raw} if that is the value)`,
    );
  }
  return convertValue(spec, raw);
}

/** A finite number in decimal notation (`-1`, `.5`, `3e-4`); not hex, binary or octal, which `Number` also reads. */
function isNumber(text: string): boolean {
  return /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(text) && Number.isFinite(Number(text));
}

/**
 * Converts and range-checks one flag value as typed (`"-1"`, `"0.9,0.95"`); throws a {@linkcode UsageError} naming
 * the flag. {@linkcode parseFlags} calls it for every value; exported for values from other sources.
 *
 * @example
 * ```ts
 * import { convertValue } from "./flags.ts";
 * const topP = { name: "top-p", type: "float", min: 0, minExclusive: true, max: 1, help: "" } as const;
 * if (convertValue(topP, "0.9") !== 0.9) throw new Error("0.9 is a valid --top-p");
 * let refused = false;
 * try {
 *   convertValue(topP, "0"); // the bound itself is excluded
 * } catch {
 *   refused = true;
 * }
 * if (!refused) throw new Error("--top-p 0 passed");
 * ```
 */
export function convertValue(spec: FlagSpec, raw: string): unknown {
  const type = spec.type;
  if (type === "string") return raw;
  if (type === "bool") {
    if (raw === "true" || raw === "false") return raw === "true";
    throw new UsageError(`--${spec.name} must be true or false, got ${JSON.stringify(raw)}`);
  }
  if (typeof type === "object") {
    if (type.enum.includes(raw)) return raw;
    throw new UsageError(`--${spec.name} must be one of ${type.enum.join(", ")}, got ${JSON.stringify(raw)}`);
  }
  if (type === "pair") {
    const parts = raw.split(",");
    if (parts.length !== 2 || !parts.every(isNumber)) {
      throw new UsageError(`--${spec.name} must be two comma-separated numbers (0.9,0.95), got ${JSON.stringify(raw)}`);
    }
    return parts.map((p) => checkRange(spec, Number(p), p.trim())) as [number, number];
  }
  const x = Number(raw);
  const shown = isNumber(raw) ? raw.trim() : JSON.stringify(raw);
  if (!isNumber(raw) || (type === "int" && !Number.isSafeInteger(x))) {
    throw new UsageError(`--${spec.name} must be ${rangeText(spec)}, got ${shown}`);
  }
  return checkRange(spec, x, shown);
}

function checkRange(spec: FlagSpec, x: number, shown: string): number {
  const low = spec.min === undefined || (spec.minExclusive ? x > spec.min : x >= spec.min);
  const high = spec.max === undefined || (spec.maxExclusive ? x < spec.max : x <= spec.max);
  if (!low || !high) throw new UsageError(`--${spec.name} must be ${rangeText(spec)}, got ${shown}`);
  return x;
}

/** "an integer >= 0", "in (0, 1]", ">= 0", "a number". */
function rangeText(spec: FlagSpec): string {
  const { min, max } = spec;
  const kind = spec.type === "int" ? "an integer" : "a number";
  if (min !== undefined && max !== undefined) {
    const interval = `${spec.minExclusive ? "(" : "["}${min}, ${max}${spec.maxExclusive ? ")" : "]"}`;
    return spec.type === "int" ? `${kind} in ${interval}` : `in ${interval}`;
  }
  const bound = min !== undefined
    ? `${spec.minExclusive ? ">" : ">="} ${min}`
    : max !== undefined
    ? `${spec.maxExclusive ? "<" : "<="} ${max}`
    : "";
  if (!bound) return kind;
  return spec.type === "int" ? `${kind} ${bound}` : bound;
}

function unknownFlagMessage(rawName: string, specs: readonly FlagSpec[]): string {
  const near = nearestFlag(rawName.replace(/^--?/, ""), specs);
  return `unknown flag ${rawName}${near ? `; did you mean ${near}?` : ""} (see --help)`;
}

/**
 * The known flag (with its dashes) nearest to a mistyped `name`, or undefined when none is close: equal up to case
 * and `_`/`-`, a unique prefix, or within an edit distance of about a third of the name.
 *
 * @example
 * ```ts
 * import { nearestFlag } from "./flags.ts";
 * const specs = [{ name: "top-p", type: "float", help: "" }, { name: "top-k", type: "int", help: "" }] as const;
 * if (nearestFlag("top_p", specs) !== "--top-p") throw new Error(`suggested ${nearestFlag("top_p", specs)}`);
 * ```
 */
export function nearestFlag(name: string, specs: readonly FlagSpec[]): string | undefined {
  const wanted = name.toLowerCase().replaceAll("_", "-");
  const names = specs.flatMap((s) => s.type === "bool" && s !== HELP_FLAG ? [s.name, `no-${s.name}`] : [s.name]);
  // "--no-seed" for a flag that has no negation.
  if (wanted.startsWith("no-") && names.includes(wanted.slice(3))) return `--${wanted.slice(3)}`;
  const near = nearestWord(wanted, names);
  return near === undefined ? undefined : `--${near}`;
}

/**
 * The word of `words` nearest to a mistyped `word`, or undefined when none is close: equal up to case and
 * `_`/`-`, a unique prefix (of 3 or more characters), or within an edit distance of about a third of the word.
 *
 * @example
 * ```ts
 * import { nearestWord } from "./flags.ts";
 * if (nearestWord("lrmax", ["lrMax", "lrMin"]) !== "lrMax") throw new Error("no suggestion for a typo");
 * ```
 */
export function nearestWord(word: string, words: readonly string[]): string | undefined {
  const fold = (w: string) => w.toLowerCase().replaceAll("_", "-");
  const wanted = fold(word);
  const same = words.filter((w) => fold(w) === wanted || fold(w).replaceAll("-", "") === wanted.replaceAll("-", ""));
  if (same.length === 1) return same[0];
  const prefixed = words.filter((w) => fold(w).startsWith(wanted));
  if (wanted.length >= 3 && prefixed.length === 1) return prefixed[0];
  let best: string | undefined, bestDistance = Infinity;
  for (const w of words) {
    const d = editDistance(wanted, fold(w));
    if (d < bestDistance) [best, bestDistance] = [w, d];
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(wanted.length / 3)) ? best : undefined;
}

/** Damerau-Levenshtein distance (optimal string alignment): a swap of two neighbours counts as one edit. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i || j));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

function valueName(spec: FlagSpec): string {
  if (spec.valueName) return spec.valueName;
  if (typeof spec.type === "object") return spec.type.enum.join("|");
  return spec.type === "pair" ? "float,float" : spec.type;
}

function defaultText(spec: FlagSpec): string {
  if (spec.defaultText !== undefined) return spec.defaultText;
  const d = spec.default;
  if (d === undefined) return "none";
  if (Array.isArray(d)) return d.length ? d.join(spec.type === "pair" ? "," : " ") : "none";
  return d === "" ? '""' : String(d);
}

/**
 * The `--help` text: a usage line, a description, then every flag with its value type, description and default,
 * in aligned columns and grouped by {@linkcode FlagSpec.group}.
 *
 * @example
 * ```ts
 * import { helpText } from "./flags.ts";
 * const text = helpText("deno task sample [flags]", "Continues a prompt.", [
 *   { name: "top-p", type: "float", default: 0.95, help: "nucleus sampling threshold" },
 * ]);
 * if (!text.includes("--top-p <float>") || !text.includes("(default: 0.95)")) throw new Error(text);
 * ```
 */
export function helpText(usage: string, description: string, specs: readonly FlagSpec[]): string {
  const left = (s: FlagSpec) =>
    s === HELP_FLAG
      ? "-h, --help"
      : s.type === "bool"
      ? `--[no-]${s.name}`
      : s.implied !== undefined
      ? `--${s.name} [<${valueName(s)}>]`
      : `--${s.name} <${valueName(s)}>${s.multiple ? "..." : ""}`;
  const all = [...specs, HELP_FLAG];
  const width = Math.max(...all.map((s) => left(s).length)) + 2;
  const suffix = (s: FlagSpec) => s === HELP_FLAG ? "" : s.required ? " (required)" : ` (default: ${defaultText(s)})`;
  const line = (s: FlagSpec) => `  ${left(s).padEnd(width)}${s.help}${suffix(s)}`;
  const lines = [`Usage: ${usage}`, "", description, ""];
  const named = [...new Set(specs.map((s) => s.group).filter((g) => g !== undefined))];
  lines.push("Flags:", ...specs.filter((s) => s.group === undefined).map(line), line(HELP_FLAG));
  for (const group of named) lines.push("", `${group}:`, ...specs.filter((s) => s.group === group).map(line));
  return lines.join("\n") + "\n";
}

/**
 * One line for an error: a `ConfigError`'s issues joined with "; ", other multi-line messages joined the same
 * way, V8's quote of the text in a JSON syntax error removed (it may be the content of a file that was never meant
 * to be read), and at most 1000 characters.
 *
 * @example
 * ```ts
 * import { errorLine } from "./flags.ts";
 * let message = "";
 * try {
 *   JSON.parse("secret: 42");
 * } catch (e) {
 *   message = errorLine(e);
 * }
 * // One line that never echoes what was being parsed.
 * if (message === "" || message.includes("secret") || message.includes("\n")) throw new Error(message);
 * ```
 */
export function errorLine(error: unknown): string {
  let text: string;
  if (error instanceof ConfigError) {
    const head = error.message.split("\n")[0].replace(/:$/, "");
    text = `${head}: ${error.issues.map((i) => `${i.path || "(top level)"}: ${i.message}`).join("; ")}`;
  } else if (error instanceof Error) {
    text = error.message || error.name;
  } else {
    text = String(error);
  }
  text = text.replace(/(Unexpected token .{1,4}, )?"[\s\S]*?"(\.\.\.)? is not valid JSON/g, "is not valid JSON");
  const parts = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  text = parts.reduce((acc, p) => (acc === "" ? p : acc.endsWith(":") ? `${acc} ${p}` : `${acc}; ${p}`), "");
  return text.length > 1000 ? `${text.slice(0, 999)}…` : text;
}

/**
 * The exit status for an error: {@linkcode EXIT_USAGE} for a {@linkcode UsageError} or a `ConfigError` (the
 * command line or config file must change), else 1.
 *
 * @example
 * ```ts
 * import { exitCodeFor, UsageError } from "./flags.ts";
 * if (exitCodeFor(new UsageError("bad")) !== 2 || exitCodeFor(new Error("io")) !== 1) throw new Error("wrong codes");
 * ```
 */
export function exitCodeFor(error: unknown): number {
  return error instanceof UsageError || error instanceof ConfigError ? EXIT_USAGE : 1;
}

/**
 * Runs a program's `main` and exits: with the status `main` returns (0 when it returns nothing, e.g.
 * {@linkcode EXIT_INTERRUPTED} after a Ctrl-C), or, for any error (thrown, rejected, or unhandled elsewhere),
 * after printing exactly one line `nanolm: <message>` to stderr (see {@linkcode errorLine}), with
 * {@linkcode exitCodeFor} the error. No stack trace is printed.
 *
 * @example
 * It ends the process, so this example is not run by the doc tests:
 *
 * ```ts ignore
 * import { runMain } from "./flags.ts";
 * await runMain(async () => {
 *   // parse flags, do the work; throw to fail with one line
 * });
 * ```
 */
export async function runMain(main: () => Promise<number | void>): Promise<never> {
  const fail = (error: unknown): never => {
    console.error(`nanolm: ${errorLine(error)}`);
    Deno.exit(exitCodeFor(error));
  };
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    fail(e.reason);
  });
  globalThis.addEventListener("error", (e) => {
    e.preventDefault();
    fail(e.error ?? e.message);
  });
  let code: number;
  try {
    code = (await main()) ?? 0;
  } catch (e) {
    return fail(e);
  }
  Deno.exit(code);
}

import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  convertValue,
  errorLine,
  exitCodeFor,
  type FlagSpec,
  helpText,
  nearestFlag,
  parseFlags,
  UsageError,
} from "./flags.ts";
import { ConfigError } from "../util/validate.ts";

const specs = [
  { name: "temperature", type: "float", min: 0, default: 0.8, help: "softmax temperature" },
  { name: "top-p", type: "float", min: 0, minExclusive: true, max: 1, default: 0.95, help: "nucleus threshold" },
  { name: "top-k", type: "int", min: 0, default: 0, help: "keep the k most likely" },
  { name: "max-tokens", type: "int", min: 1, default: 256, help: "new tokens at most" },
  { name: "seed", type: "int", default: 0, help: "sampling seed" },
  { name: "prompt", type: "string", default: "", help: "text to continue" },
  { name: "checkpoint", type: "string", valueName: "path", default: "ckpt.safetensors", help: "checkpoint" },
  { name: "report", type: "bool", default: true, help: "write the report", group: "Output" },
  { name: "norm", type: { enum: ["pre", "post", "none"] }, help: "norm placement", group: "Output" },
  { name: "betas", type: "pair", min: 0, max: 1, maxExclusive: true, help: "AdamW betas", group: "Output" },
  { name: "special", type: "string", multiple: true, default: ["<|endoftext|>"], help: "special tokens" },
  { name: "out", type: "string", valueName: "dir", required: true, help: "output directory" },
] as const satisfies readonly FlagSpec[];

function usageError(args: string[]): string {
  const e = assertThrows(() => parseFlags(args, specs));
  assert(e instanceof UsageError, `${e}`);
  return e.message;
}

Deno.test("parseFlags converts every type, applies defaults and lists what was given", () => {
  const r = parseFlags(
    [
      ...["--temperature", "0", "--top-k=5", "--seed", "-7", "--prompt", "-3 degrees", "--no-report"],
      ...["--norm", "post", "--betas", "0.8,0.99", "--special", "<a>", "--special", "<b>", "--out", "d"],
    ],
    specs,
  );
  assertEquals(r.values, {
    temperature: 0,
    "top-p": 0.95,
    "top-k": 5,
    "max-tokens": 256,
    seed: -7,
    prompt: "-3 degrees",
    checkpoint: "ckpt.safetensors",
    report: false,
    norm: "post",
    betas: [0.8, 0.99],
    special: ["<a>", "<b>"],
    out: "d",
  });
  assertEquals(r.given, ["temperature", "top-k", "seed", "prompt", "report", "norm", "betas", "special", "out"]);
  assertEquals(r.help, false);
  assertEquals(parseFlags(["--report", "--out", "d"], specs).values.report, true);
  assertEquals(parseFlags(["-h", "--seed", "3"], specs).help, true);
});

Deno.test("negative numbers reach validation, whose message names the flag, the range and the value", () => {
  assertEquals(usageError(["--temperature", "-1"]), "--temperature must be >= 0, got -1");
  assertEquals(usageError(["--temperature=-1"]), "--temperature must be >= 0, got -1");
  assertEquals(usageError(["--top-p", "0"]), "--top-p must be in (0, 1], got 0");
  assertEquals(usageError(["--top-p", "1.5"]), "--top-p must be in (0, 1], got 1.5");
  assertEquals(usageError(["--top-k", "2.5"]), "--top-k must be an integer >= 0, got 2.5");
  assertEquals(usageError(["--top-k", "-1"]), "--top-k must be an integer >= 0, got -1");
  assertEquals(usageError(["--max-tokens", "0"]), "--max-tokens must be an integer >= 1, got 0");
  assertEquals(usageError(["--seed", "1e30"]), "--seed must be an integer, got 1e30");
  assertEquals(usageError(["--temperature", "warm"]), '--temperature must be >= 0, got "warm"');
  assertEquals(usageError(["--temperature", "Infinity"]), '--temperature must be >= 0, got "Infinity"');
  assertEquals(usageError(["--norm", "layer"]), '--norm must be one of pre, post, none, got "layer"');
  assertEquals(usageError(["--betas", "0.9"]), '--betas must be two comma-separated numbers (0.9,0.95), got "0.9"');
  assertEquals(usageError(["--betas", "0.9,1"]), "--betas must be in [0, 1), got 1");
  // Numbers are decimal, as the help shows them: JavaScript's other notations are not quietly converted.
  assertEquals(usageError(["--max-tokens", "0x10"]), '--max-tokens must be an integer >= 1, got "0x10"');
  assertEquals(usageError(["--temperature", "0b1"]), '--temperature must be >= 0, got "0b1"');
  assertEquals(usageError(["--top-k", " "]), '--top-k must be an integer >= 0, got " "');
  assertEquals(parseFlags(["--temperature", ".5", "--max-tokens", "1e3", "--out", "d"], specs).values, {
    ...parseFlags(["--out", "d"], specs).values,
    temperature: 0.5,
    "max-tokens": 1000,
  });
});

Deno.test("unknown flags suggest the nearest known one", () => {
  assertEquals(usageError(["--top_p", "0.5"]), "unknown flag --top_p; did you mean --top-p? (see --help)");
  assertEquals(
    usageError(["--temprature", "1"]),
    "unknown flag --temprature; did you mean --temperature? (see --help)",
  );
  assertEquals(usageError(["--max-token", "1"]), "unknown flag --max-token; did you mean --max-tokens? (see --help)");
  assertEquals(usageError(["--no-reprot"]), "unknown flag --no-reprot; did you mean --no-report? (see --help)");
  assertEquals(usageError(["--temp", "1"]), "unknown flag --temp; did you mean --temperature? (see --help)");
  assertEquals(usageError(["--banana"]), "unknown flag --banana (see --help)");
  assertEquals(usageError(["-x"]), "unknown flag -x (see --help)");
  // "top" is a prefix of two flags: no guess.
  assertEquals(nearestFlag("top", specs), undefined);
  // --no- exists only for booleans.
  assertEquals(usageError(["--no-seed"]), "unknown flag --no-seed; did you mean --seed? (see --help)");
});

Deno.test("missing values, values of switches and stray arguments are usage errors", () => {
  assertEquals(usageError(["--seed"]), "--seed needs a value: --seed <int>");
  assertEquals(
    usageError(["--prompt", "--seed", "3"]),
    "--prompt needs a value, got the flag --seed (write --prompt=--seed if that is the value)",
  );
  assertEquals(parseFlags(["--prompt=--seed", "--out=d"], specs).values.prompt, "--seed");
  assertEquals(usageError(["--seed", "1"]), "missing --out <dir> (see --help)");
  assertEquals(usageError(["--report=yes"]), '--report takes no value (got "yes")');
  // The negation takes no value either: --no-report=false must not quietly turn the report off.
  assertEquals(usageError(["--no-report=false"]), '--no-report takes no value (got "false")');
  assertEquals(usageError(["extra"]), 'unexpected argument "extra" (flags start with --; see --help)');
  assertEquals(parseFlags(["a", "--seed", "1", "b", "--out", "d"], specs, { positionals: true }).positionals, [
    "a",
    "b",
  ]);
  assertEquals(convertValue(specs[2], "7"), 7);
});

Deno.test("a flag with an implied value takes the next argument only when that is not a flag", () => {
  const optional = [
    { name: "profile", type: "int", min: 1, implied: 0, help: "profile a step" },
    { name: "steps", type: "int", default: 10, help: "steps" },
  ] as const;
  const profile = (args: string[]) => parseFlags(args, optional).values.profile;
  assertEquals(profile(["--profile"]), 0);
  assertEquals(profile(["--profile", "--steps", "3"]), 0);
  assertEquals(parseFlags(["--profile", "--steps", "3"], optional).values.steps, 3);
  assertEquals(profile(["--steps", "3", "--profile"]), 0);
  assertEquals(profile(["--profile", "5", "--steps", "3"]), 5);
  assertEquals(profile(["--profile=7"]), 7);
  assertEquals(profile([]), undefined);
  assertThrows(() => parseFlags(["--profile", "0"], optional), "--profile must be an integer >= 1, got 0");
  assertThrows(() => parseFlags(["--profile", "x"], optional), "--profile must be an integer >= 1, got");
  assertThrows(() => parseFlags(["--profile", "--", "5"], optional), 'unexpected argument "5"');
  assert(helpText("t", "d", optional).includes("--profile [<int>]"));
});

Deno.test("--help lists every flag with its value type and default, in aligned columns", () => {
  const text = helpText("deno task sample [flags]", "Continues a prompt.", specs);
  const lines = text.split("\n");
  assertEquals(lines.slice(0, 5), ["Usage: deno task sample [flags]", "", "Continues a prompt.", "", "Flags:"]);
  const flagLines = lines.filter((l) => /^ {2}-/.test(l));
  assertEquals(flagLines.length, specs.length + 1);
  // Every description starts in the same column.
  const columns = new Set(flagLines.map((l) => /^ {2}\S.*? {2,}(?=\S)/.exec(l)![0].length));
  assertEquals(columns.size, 1);
  for (const s of specs) assert(flagLines.some((l) => l.includes(`--${s.name}`) || l.includes(`--[no-]${s.name}`)));
  assert(text.includes("--temperature <float>"));
  assert(text.includes("--top-k <int>"));
  assert(text.includes("--checkpoint <path>"));
  assert(text.includes("--[no-]report"));
  assert(text.includes("--norm <pre|post|none>"));
  assert(text.includes("--betas <float,float>"));
  assert(text.includes("--special <string>..."));
  assert(flagLines.filter((l) => !/--help|--out/.test(l)).every((l) => /\(default: .+\)$/.test(l)));
  assert(text.includes("output directory (required)"));
  assert(text.includes('text to continue (default: "")'));
  assert(text.includes("norm placement (default: none)"));
  assert(text.indexOf("Output:") > text.indexOf("--special"), "grouped flags come after the ungrouped ones");
});

Deno.test("errorLine makes one line: config issues joined, JSON quotes of file contents dropped", () => {
  const config = new ConfigError("config", [
    { path: "model.numHeads (--num-heads)", message: "numHeads (5) must divide dModel (64)" },
    { path: "train.lrMin", message: "lrMin (1) exceeds lrMax (0.1)" },
  ]);
  assertEquals(
    errorLine(config),
    "Invalid config: model.numHeads (--num-heads): numHeads (5) must divide dModel (64); " +
      "train.lrMin: lrMin (1) exceeds lrMax (0.1)",
  );
  assertEquals(errorLine(new Error("first\n  second\n")), "first; second");
  let parseError: unknown;
  try {
    JSON.parse("root:x:0:0:root:/root:/bin/bash");
  } catch (e) {
    parseError = new SyntaxError(`/etc/passwd: ${(e as Error).message}`);
  }
  assertEquals(errorLine(parseError), "/etc/passwd: is not valid JSON");
  assertEquals(errorLine("plain"), "plain");
  assertEquals(errorLine(new Error("x".repeat(5000))).length, 1000);
  assertEquals([exitCodeFor(new UsageError("u")), exitCodeFor(config), exitCodeFor(new Error("io"))], [2, 2, 1]);
});

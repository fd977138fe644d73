/**
 * The command-line programs as a user runs them (subprocesses): every error a user can cause ends as exactly one
 * `nanolm: ...` line on stderr with a non-zero exit, never a stack trace, and never quotes a file's contents.
 * Inputs are tiny; only one test starts the GPU.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { writeCheckpointFile } from "../lib/io/checkpoint_file.ts";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { initGpu, readAll } from "../lib/tensor/mod.ts";
import { TransformerLM } from "../lib/nn/transformer.ts";
import { saveTokenizer } from "../lib/data/tokenizer_files.ts";

const root = new URL("../", import.meta.url).pathname;
const SECRET = "SECRET-CONTENTS-42";

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(program: "sample" | "prepare_data" | "train", args: string[]): Promise<Outcome> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", `${root}lib/cli/${program}.ts`, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}

/** Asserts a failure of exactly one stderr line `nanolm: <message>` and returns the message. */
function oneLine(r: Outcome, code: number): string {
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  assertEquals(lines.length, 1, `stderr is not one line:\n${r.stderr}`);
  assertMatch(lines[0], /^nanolm: /);
  assertEquals(r.code, code, r.stderr);
  assert(!r.stderr.includes(SECRET), `stderr quotes a file: ${r.stderr}`);
  return lines[0].slice("nanolm: ".length);
}

const byteTokenizer = () =>
  new Tokenizer(new Map(Array.from({ length: 256 }, (_, i) => [i, new Uint8Array([i])])), [], ["<|endoftext|>"]);
const tinyModel = { vocabSize: 257, contextLength: 8, dModel: 8, numLayers: 1, numHeads: 2, dFf: 16 };

/** A checkpoint whose config claims `model` and whose weights are an embedding of `weightsShape` and one layer. */
async function fakeCheckpoint(path: string, model: unknown, weightsShape: number[], tokenizer?: string) {
  const array = (shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b)) });
  await writeCheckpointFile(path, {
    step: 1,
    model: new Map([["token_embeddings.weight", array(weightsShape)], ["layers.0.ln1.weight", array([8])]]),
    config: { model, train: { trainData: "t.bin" } },
    tokenizer,
  });
}

Deno.test("sample: bad flag values and unknown flags are one line and exit 2, before anything is loaded", async () => {
  const missing = ["--checkpoint", "/nonexistent/ckpt.safetensors"];
  const cases: [string[], string][] = [
    [["--temperature", "-1"], "--temperature must be >= 0, got -1"],
    [["--top_p", "0.5"], "unknown flag --top_p; did you mean --top-p? (see --help)"],
    [["--top-k", "1.5"], "--top-k must be an integer >= 0, got 1.5"],
    [["--max-tokens", "0"], "--max-tokens must be an integer >= 1, got 0"],
  ];
  for (const [args, message] of cases) assertEquals(oneLine(await run("sample", [...missing, ...args]), 2), message);
  assertEquals(
    oneLine(await run("sample", missing), 1),
    "checkpoint /nonexistent/ckpt.safetensors does not exist; train one with `deno task train`, or pass --checkpoint <path>",
  );
});

Deno.test("sample: a config that does not match the weights, and bad tokenizers, are one line naming the file", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/run`);
  await Deno.writeTextFile(`${dir}/secret.txt`, `${SECRET} {`);
  const bad = `${dir}/run/mismatch.safetensors`;
  await fakeCheckpoint(bad, { ...tinyModel, dModel: 16, numHeads: 2 }, [257, 8], "tok.json");
  assertEquals(
    oneLine(await run("sample", ["--checkpoint", bad]), 1),
    `checkpoint ${bad}: its weights do not match its model config ` +
      "(token_embeddings.weight is [257,8], vocabSize x dModel is [257,16])",
  );

  const ckpt = `${dir}/run/ckpt.safetensors`;
  // Recorded paths that leave the checkpoint's folder are not followed, whatever they point at.
  for (const recorded of ["../secret.txt", `${dir}/secret.txt`, "../../../../../../../../etc/passwd"]) {
    await fakeCheckpoint(ckpt, tinyModel, [257, 8], recorded);
    const message = oneLine(await run("sample", ["--checkpoint", ckpt]), 1);
    assert(message.startsWith(`Checkpoint ${ckpt} records tokenizer ${JSON.stringify(recorded)}`), message);
    assert(message.endsWith("pass --tokenizer PATH") && !message.includes(SECRET), message);
  }
  // A tokenizer the user names is used as given, and its problems are named without its contents.
  await Deno.writeTextFile(`${dir}/shape.json`, '{"format": "nanolm-bpe", "version": 1, "mode": "merges"}');
  const tokenizerCases: [string, string][] = [
    [`${dir}/secret.txt`, "invalid JSON"],
    [`${dir}/shape.json`, "vocab must be an array"],
    [`${dir}/none.json`, "does not exist; check --tokenizer"],
    [dir, "is a directory, not a file; check --tokenizer"],
  ];
  // A tokenizer larger than the model's vocabulary, whose ids for the prompt the model cannot embed.
  saveTokenizer(byteTokenizer(), `${dir}/bytes.json`);
  const small = `${dir}/run/small.safetensors`;
  await fakeCheckpoint(small, { ...tinyModel, vocabSize: 100 }, [100, 8]);
  assertEquals(
    oneLine(await run("sample", ["--checkpoint", small, "--tokenizer", `${dir}/bytes.json`, "--prompt", "hi"]), 1),
    `tokenizer ${dir}/bytes.json gives the prompt id 104, and checkpoint ${small} has a vocabulary of 100 ids: ` +
      "pass the tokenizer the model was trained with (--tokenizer)",
  );
  for (const [path, problem] of tokenizerCases) {
    const message = oneLine(await run("sample", ["--checkpoint", ckpt, "--tokenizer", path]), 1);
    assert(message.includes(path) && message.includes(problem) && !message.includes(SECRET), message);
    // What the file is and which flag to fix.
    assert(message.startsWith(`tokenizer ${path}`) && message.endsWith("check --tokenizer"), message);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("sample: a model vocab larger than the tokenizer's samples only decodable ids; the recorded path is found", async () => {
  await initGpu();
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/run/data`, { recursive: true });
  saveTokenizer(byteTokenizer(), `${dir}/run/data/tok.json`);
  // 43 ids beyond the tokenizer's 257, with random weights: without the limit, about 1 token in 7 is undecodable.
  const config = { ...tinyModel, vocabSize: 300 };
  const model = new TransformerLM(config, { seed: 5 });
  const state = model.stateDict();
  const host = await readAll([...state.values()]);
  const weights = new Map(
    [...state.entries()].map(([n, t], i) => [n, { shape: [...t.shape], data: host[i] as Float32Array }]),
  );
  model.dispose();
  const ckpt = `${dir}/run/ckpt.safetensors`;
  // Recorded relative to the checkpoint's folder.
  await writeCheckpointFile(ckpt, { step: 1, model: weights, config: { model: config }, tokenizer: "data/tok.json" });
  const r = await run("sample", ["--checkpoint", ckpt, "--max-tokens", "60", "--temperature", "1.5", "--top-p", "1"]);
  assertEquals(r.code, 0, r.stderr);
  assertMatch(r.stderr, /\[\d+ tokens in /);

  // A signal once the prompt is out (the interrupt guard is in place) stops generation, which still reports, with the
  // status of a process the signal ended: Ctrl-C 128 + 2, SIGTERM (kill, a job scheduler's stop) 128 + 15.
  const spawnSample = (maxTokens: number) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--no-check",
        `${root}lib/cli/sample.ts`,
        "--checkpoint",
        ckpt,
        "--max-tokens",
        `${maxTokens}`,
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  const interrupted = async (signal: Deno.Signal) => {
    const child = spawnSample(1000000);
    const reader = child.stdout.getReader();
    await reader.read();
    child.kill(signal);
    while (!(await reader.read()).done);
    const { code } = await child.status;
    return { code, stderr: new TextDecoder().decode(await new Response(child.stderr).arrayBuffer()) };
  };
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    const r = await interrupted(signal);
    assertEquals(r.code, code, `${signal}: ${r.stderr}`);
    assertMatch(r.stderr, /\[\d+ tokens in /);
  }

  // A reader that stops early (`| head`) ends generation quietly: no error line.
  const early = spawnSample(100000);
  const head = early.stdout.getReader();
  await head.read();
  await head.cancel();
  const ended = await early.status;
  const said = new TextDecoder().decode(await new Response(early.stderr).arrayBuffer());
  assertEquals(ended.code, 0, said);
  assert(!said.includes("nanolm:"), said);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("sample --help: aligned, every flag with its type and default", async () => {
  const r = await run("sample", ["--help"]);
  assertEquals(r.code, 0);
  const flagLines = r.stdout.split("\n").filter((l) => l.startsWith("  -"));
  const columns = new Set(flagLines.map((l) => /^ {2}\S.*? {2,}(?=\S)/.exec(l)![0].length));
  assertEquals(columns.size, 1, r.stdout);
  assertMatch(r.stdout, /--temperature <float> +softmax temperature, 0 = greedy \(default: 0\.8\)/);
  assertMatch(r.stdout, /--top-k <int> .*\(default: 0\)/);
  assertMatch(r.stdout, /--tokenizer <path> .*\(default: the one recorded in the checkpoint\)/);
});

Deno.test("prepare-data: flag and input errors are one line; a corpus with stray bytes gets one warning", async () => {
  const dir = await Deno.makeTempDir();
  const out = ["--out", `${dir}/out`];
  assertEquals(
    oneLine(await run("prepare_data", ["--input", `${dir}/x.txt`, ...out, "--vocab_size", "300"]), 2),
    "unknown flag --vocab_size; did you mean --vocab-size? (see --help)",
  );
  assertEquals(
    oneLine(await run("prepare_data", ["--input", `${dir}/x.txt`, ...out, "--vocab-size", "257"]), 2),
    "--vocab-size must be at least 256 bytes + 1 special tokens + 1 = 258, got 257",
  );
  assertEquals(
    oneLine(await run("prepare_data", ["--input", `${dir}/x.txt`, ...out, "--val-fraction", "-0.5"]), 2),
    "--val-fraction must be in (0, 1), got -0.5",
  );
  assertEquals(
    oneLine(await run("prepare_data", ["--input", `${dir}/x.txt`]), 2),
    "missing --out <dir> (see --help)",
  );
  assertEquals(
    oneLine(await run("prepare_data", ["--input", `${dir}/x.txt`, ...out]), 1),
    `input file ${dir}/x.txt does not exist`,
  );
  const story = "Once upon a time there was a dog.\n".repeat(40);
  await Deno.writeFile(`${dir}/x.txt`, new Uint8Array([...new TextEncoder().encode(story), 0xff]));
  const r = await run("prepare_data", ["--input", `${dir}/x.txt`, ...out, "--vocab-size", "270"]);
  assertEquals(r.code, 0, r.stderr);
  const warnings = r.stderr.split("\n").filter((l) => l.startsWith("nanolm: warning: "));
  assertEquals(warnings.length, 1, r.stderr);
  assertMatch(warnings[0], /x\.txt: 1 of 1361 bytes \(0\.073%\) are not valid UTF-8 \(the first at byte 1360\)/);
  assertEquals(JSON.parse(r.stdout).tokens.train > 0, true);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train: flag errors, output flags included, are one line before the GPU starts", async () => {
  assertEquals(
    oneLine(await run("train", ["--lr_max", "3"]), 2),
    "unknown flag --lr_max; did you mean --lr-max? (see --help)",
  );
  assertEquals(oneLine(await run("train", ["--samples", "-1"]), 2), "--samples must be an integer >= 0, got -1");
});

Deno.test("prepare-data: an --out that is a file, a failed download and an empty --special are named", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/in.txt`, "Once upon a time there was a dog.\n".repeat(40));
  await Deno.writeTextFile(`${dir}/file`, "x");
  const input = ["--input", `${dir}/in.txt`, "--vocab-size", "270"];
  assertEquals(
    oneLine(await run("prepare_data", [...input, "--out", `${dir}/file`]), 1),
    `--out ${dir}/file is a file, not a folder; pick a folder for the token files`,
  );
  assertEquals(
    oneLine(await run("prepare_data", [...input, "--out", `${dir}/file/sub`]), 1),
    `--out ${dir}/file/sub cannot be made: ${dir}/file is a file, not a folder; pick a folder for the token files`,
  );
  assertEquals(
    oneLine(await run("prepare_data", [...input, "--out", `${dir}/o`, "--special", ""]), 2),
    '--special must be a non-empty text, each special token once; got ""',
  );
  // Nothing listens on a port just freed: the download fails, naming the URL, and leaves no folder behind.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${listener.addr.port}/corpus.txt`;
  listener.close();
  const message = oneLine(await run("prepare_data", ["--input", url, "--out", `${dir}/dl`]), 1);
  assert(message.startsWith(`download of ${url} failed: `), message);
  assertEquals(await Deno.stat(`${dir}/dl`).then(() => true, () => false), false);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train --help needs no GPU: without an adapter it still lists the flags", async () => {
  // wgpu finds no adapter of a backend this platform lacks.
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", `${root}lib/cli/train.ts`, "--help"],
    env: { NO_COLOR: "1", DENO_WEBGPU_BACKEND: Deno.build.os === "windows" ? "metal" : "dx12" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  assertEquals(code, 0, text.decode(stderr));
  assertMatch(text.decode(stdout), /^Usage: deno task train /);
  assertMatch(text.decode(stdout), /--steps <int> +optimizer steps \(default: \d+\)/);
});

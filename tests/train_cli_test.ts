/**
 * `deno task train` as a user runs it (subprocesses, a tiny model on a small token file): a resume keeps the run's
 * metrics and settings, a mistyped input loses nothing, Ctrl-C exits 130 with a checkpoint that resumes.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { readCheckpointFile } from "../lib/io/checkpoint_file.ts";
import { writeTokenFile } from "../lib/data/token_files.ts";
import { readMetrics } from "../lib/train/metrics.ts";
import { loadRun } from "../lib/train/runs.ts";
import { Rng } from "../lib/util/random.ts";

const root = new URL("../", import.meta.url).pathname;

function command(args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", `${root}lib/cli/train.ts`, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
}

async function train(args: string[]): Promise<{ code: number; stderr: string }> {
  const { code, stderr } = await command(args).output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}

/**
 * Token files with a learnable pattern inside the run's folder (a checkpoint follows recorded paths only there), and
 * flags for a model small enough to train in seconds on a CPU.
 */
async function tinyRun(dir: string): Promise<string[]> {
  const rng = new Rng(5);
  const data = `${dir}/run/data`;
  await Deno.mkdir(data, { recursive: true });
  await writeTokenFile(
    `${data}/train.bin`,
    Array.from({ length: 3000 }, (_, i) => (rng.uniform() < 0.8 ? (i * 3) % 29 : rng.int(32))),
  );
  await writeTokenFile(`${data}/val.bin`, Array.from({ length: 400 }, (_, i) => (i * 3) % 29));
  return [
    ...["--train-data", `${data}/train.bin`, "--val-data", `${data}/val.bin`, "--out-dir", `${dir}/run`],
    ...["--vocab-size", "32", "--context-length", "16", "--d-model", "16", "--num-layers", "1", "--num-heads", "2"],
    ...["--batch-size", "3", "--lr-max", "0.004", "--warmup-steps", "1", "--log-interval", "2"],
    ...["--eval-interval", "3", "--eval-iters", "2", "--checkpoint-interval", "3", "--samples", "0", "--no-report"],
  ];
}

const steps = async (path: string) => (await readMetrics(path)).filter((r) => r.type === "step").map((r) => r.step);

Deno.test("a resume keeps the run's metrics and its saved settings; mistyped inputs change nothing", async () => {
  const dir = await Deno.makeTempDir();
  const metrics = `${dir}/run/metrics.jsonl`, ckpt = `${dir}/run/checkpoint.safetensors`;
  const first = await train([...await tinyRun(dir), "--steps", "6"]);
  assertEquals(first.code, 0, first.stderr);
  assertEquals(await steps(metrics), [1, 2, 3, 4, 5, 6]);
  const before = await Deno.readFile(metrics);

  // A typo in --resume, a missing --train-data, or a fresh run over the folder: one line, and the file untouched.
  for (
    const args of [
      ["--resume", `${dir}/run/checkpont.safetensors`],
      ["--resume", ckpt, "--train-data", `${dir}/missing.bin`],
      ["--train-data", `${dir}/run/data/train.bin`, "--out-dir", `${dir}/run`],
    ]
  ) {
    const r = await train(args);
    assert(r.code !== 0, r.stderr);
    assertMatch(r.stderr.trim().split("\n").at(-1)!, /^nanolm: /);
    assertEquals(await Deno.readFile(metrics), before, `${args.join(" ")} changed the metrics`);
  }

  // --resume alone: the saved settings (batch 3, lr 0.004), not the defaults; the earlier steps stay in the metrics.
  const resumed = await train(["--resume", ckpt, "--steps", "9"]);
  assertEquals(resumed.code, 0, resumed.stderr);
  assertMatch(resumed.stderr, /resuming with --steps 9 \(the checkpoint had 6\)/);
  assertEquals(await steps(metrics), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const saved = (await readCheckpointFile(ckpt)).config as { train: { batchSize: number; lrMax: number } };
  assertEquals([saved.train.batchSize, saved.train.lrMax], [3, 0.004]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("Ctrl-C writes a checkpoint and exits 130; the run resumes from it", async () => {
  const dir = await Deno.makeTempDir();
  const child = command([...await tinyRun(dir), "--steps", "100000", "--checkpoint-interval", "0"]).spawn();
  // Wait for training to be under way (the first evaluation's line), then interrupt.
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("validation loss")) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += value;
  }
  child.kill("SIGINT");
  while (!(await reader.read()).done) { /* drain */ }
  const { code } = await child.status;
  child.stdout.cancel();
  assertEquals(code, 130, seen);
  const ckpt = await readCheckpointFile(`${dir}/run/checkpoint.safetensors`);
  assert(ckpt.step >= 3, `checkpoint at step ${ckpt.step}`);
  // The folder says so in run.json, as a sweep's run folders do.
  const stopped = await loadRun(`${dir}/run`);
  assertEquals([stopped.status, stopped.info?.step], ["interrupted", ckpt.step]);
  const resumed = await train(["--resume", `${dir}/run/checkpoint.safetensors`, "--steps", `${ckpt.step + 2}`]);
  assertEquals(resumed.code, 0, resumed.stderr);
  const done = await loadRun(`${dir}/run`);
  assertEquals([done.status, done.info?.step, done.info?.started], ["done", ckpt.step + 2, stopped.info?.started]);
  assert(done.info!.seconds >= stopped.info!.seconds);
  await Deno.remove(dir, { recursive: true });
});

/** Asserts a failure of exactly one stderr line `nanolm: <message>` with `code`, and returns the message. */
function oneLine(r: { code: number; stderr: string }, code: number): string {
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  assertEquals(lines.length, 1, `stderr is not one line:\n${r.stderr}`);
  assertMatch(lines[0], /^nanolm: /);
  assertEquals(r.code, code, r.stderr);
  return lines[0].slice("nanolm: ".length);
}

Deno.test("a bad value, file or folder is one line naming its flag, before anything is written", async () => {
  const dir = await Deno.makeTempDir();
  const flags = await tinyRun(dir);
  const fresh = (extra: string[]) => train([...flags, "--out-dir", `${dir}/new`, "--steps", "4", ...extra]);
  const nothingWritten = async () => assertEquals(await Deno.stat(`${dir}/new`).then(() => true, () => false), false);

  // The embedded default data is not prepared for a run whose flags are wrong.
  assertEquals(
    oneLine(await train(["--out-dir", `${dir}/new`, "--steps", "0"]), 2),
    "Invalid config: train.steps (--steps): Too small: expected number to be >0",
  );
  await nothingWritten();
  assertEquals(
    oneLine(await train(["--out-dir", `${dir}/new`, "--vocab-size", "100"]), 2),
    "--vocab-size 100 is too small for the embedded data's tokenizer: it has 256 byte tokens and <|endoftext|>, " +
      "so give at least 257 (or your own --train-data)",
  );
  await nothingWritten();
  assertMatch(oneLine(await fresh(["--lr-max", "-1"]), 2), /^Invalid config: train\.lrMax \(--lr-max\): /);
  await Deno.writeTextFile(`${dir}/file`, "x");
  assertEquals(
    oneLine(await fresh(["--out-dir", `${dir}/file`]), 1),
    `--out-dir ${dir}/file is a file, not a folder; pick a folder for the run`,
  );
  assertEquals(
    oneLine(await fresh(["--out-dir", `${dir}/file/run`]), 1),
    `--out-dir ${dir}/file/run cannot be made: ${dir}/file is a file, not a folder; pick a folder for the run`,
  );
  assertEquals(
    oneLine(await fresh(["--tokenizer", `${dir}/none.json`]), 1),
    `tokenizer ${dir}/none.json does not exist; check --tokenizer`,
  );
  await Deno.writeTextFile(`${dir}/tokenizer.json`, '{"format": "nanolm-bpe", "version": 1, "mode": "merges"');
  assertEquals(
    oneLine(await fresh(["--tokenizer", `${dir}/tokenizer.json`]), 1),
    `tokenizer ${dir}/tokenizer.json: invalid JSON: unexpected end of input at line 1, column 56; check --tokenizer`,
  );
  await Deno.writeFile(`${dir}/empty.bin`, new Uint8Array());
  assertEquals(
    oneLine(await fresh(["--train-data", `${dir}/empty.bin`]), 1),
    `training data ${dir}/empty.bin is empty; check --train-data`,
  );
  assertEquals(
    oneLine(await fresh(["--val-data", dir]), 1),
    `validation data ${dir} is a directory, not a file; check --val-data`,
  );
  // A config file that is wrong is a bad config: exit 2, like a bad flag.
  await Deno.writeTextFile(`${dir}/run.json`, '{"train": {"stepz": 3}}');
  assertEquals(
    oneLine(await fresh(["--config", `${dir}/run.json`]), 2),
    `config file ${dir}/run.json has unknown field train.stepz; did you mean steps?`,
  );
  await nothingWritten();

  // --lr-max alone: the floor follows it (a tenth), as in a sweep, instead of failing on the default --lr-min.
  const low = await fresh(["--lr-max", "0.0001"]);
  assertEquals(low.code, 0, low.stderr);
  const saved = (await readCheckpointFile(`${dir}/new/checkpoint.safetensors`)).config as {
    train: { lrMax: number; lrMin: number };
  };
  assertEquals([saved.train.lrMax, saved.train.lrMin], [0.0001, 0.00001]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a resume with no steps left is refused and changes nothing", async () => {
  const dir = await Deno.makeTempDir();
  const ckpt = `${dir}/run/checkpoint.safetensors`, metrics = `${dir}/run/metrics.jsonl`;
  const first = await train([...await tinyRun(dir), "--steps", "6"]);
  assertEquals(first.code, 0, first.stderr);
  const before = await Promise.all([ckpt, metrics, `${dir}/run/run.json`].map((p) => Deno.readFile(p)));
  assertEquals(
    oneLine(await train(["--resume", ckpt, "--steps", "4"]), 2),
    `the checkpoint ${ckpt} is at step 6 and --steps is 4: nothing to train; give --steps above 6 to train longer`,
  );
  assertEquals(
    oneLine(await train(["--resume", ckpt]), 2),
    `the checkpoint ${ckpt} is at step 6, the last of its 6 steps: nothing to train; ` +
      "give --steps above 6 to train longer",
  );
  const after = await Promise.all([ckpt, metrics, `${dir}/run/run.json`].map((p) => Deno.readFile(p)));
  assertEquals(after, before);
  // A flag of a resume that is wrong is one line too: nothing else is printed before it.
  assertMatch(oneLine(await train(["--resume", ckpt, "--eval-interval", "-1"]), 2), /--eval-interval/);
  assertEquals(
    oneLine(await train(["--resume", ckpt, "--steps", "9", "--out-dir", `${ckpt}/x`]), 1),
    `--out-dir ${ckpt}/x cannot be made: ${ckpt} is a file, not a folder; pick a folder for the run`,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("--patience without evaluations is refused, not ignored", async () => {
  const dir = await Deno.makeTempDir();
  const flags = (await tinyRun(dir)).filter((f, i, all) => f !== "--val-data" && all[i - 1] !== "--val-data");
  const noVal = await train([...flags, "--steps", "4", "--patience", "2"]);
  assertEquals(
    oneLine(noVal, 2),
    "--patience 2 counts evaluations, and this run makes none: give --val-data and an --eval-interval above 0, " +
      "or leave --patience out",
  );
  const noEvals = await train([...await tinyRun(dir), "--steps", "4", "--patience", "2", "--eval-interval", "0"]);
  assertMatch(oneLine(noEvals, 2), /^--patience 2 counts evaluations, and this run makes none/);
  assertEquals(await Deno.stat(`${dir}/run/metrics.jsonl`).then(() => true, () => false), false);
  // Without evaluations, the first lines do not promise any.
  const plain = await train([...flags, "--steps", "2"]);
  assertEquals(plain.code, 0, plain.stderr);
  assert(!/validation every|evaluations without/.test(plain.stderr), plain.stderr);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a resume into a folder that holds another run is refused; the folder is untouched", async () => {
  const dir = await Deno.makeTempDir();
  const flags = await tinyRun(dir);
  for (const out of ["run", "other"]) {
    const r = await train([...flags, "--steps", "3", "--out-dir", `${dir}/${out}`]);
    assertEquals(r.code, 0, r.stderr);
  }
  const files = ["checkpoint.safetensors", "metrics.jsonl", "run.json"].map((f) => `${dir}/other/${f}`);
  const before = await Promise.all(files.map((f) => Deno.readFile(f)));
  assertEquals(
    oneLine(
      await train(["--resume", `${dir}/run/checkpoint.safetensors`, "--steps", "6", "--out-dir", `${dir}/other`]),
      2,
    ),
    `${dir}/other already holds a run (${dir}/other/checkpoint.safetensors); continue it with --resume ` +
      `${dir}/other/checkpoint.safetensors, or start a new one with another --out-dir (or delete ${dir}/other)`,
  );
  assertEquals(await Promise.all(files.map((f) => Deno.readFile(f))), before);
  // A folder whose run kept no checkpoint (it diverged, or was killed early) has nothing to resume.
  await Deno.mkdir(`${dir}/diverged`);
  await Deno.writeTextFile(`${dir}/diverged/metrics.jsonl`, "");
  assertEquals(
    oneLine(await train([...flags, "--steps", "3", "--out-dir", `${dir}/diverged`]), 2),
    `${dir}/diverged already holds a run (${dir}/diverged/metrics.jsonl) that kept no checkpoint to resume; ` +
      `start a new one with another --out-dir (or delete ${dir}/diverged)`,
  );
  // Into a new folder, or its own, the resume goes on.
  const moved = await train([
    "--resume",
    `${dir}/run/checkpoint.safetensors`,
    "--steps",
    "6",
    "--out-dir",
    `${dir}/new`,
  ]);
  assertEquals(moved.code, 0, moved.stderr);
  assertEquals(await steps(`${dir}/new/metrics.jsonl`), [1, 2, 3, 4, 5, 6]);
  const own = await train([
    "--resume",
    `${dir}/run/checkpoint.safetensors`,
    "--steps",
    "5",
    "--out-dir",
    `${dir}/run/`,
  ]);
  assertEquals(own.code, 0, own.stderr);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a batch or model with a tensor too large for any GPU buffer is refused before anything is written", async () => {
  const dir = await Deno.makeTempDir();
  const flags = await tinyRun(dir);
  // 2^20 sequences x 64 positions x 64 wide: the batch's embeddings alone are 2^32 floats, over what one tensor holds.
  const big = await train([...flags, "--batch-size", "1048576", "--context-length", "64", "--d-model", "64"]);
  assertMatch(
    oneLine(big, 2),
    /^the batch's token embeddings, a \(1048576, 64, 64\) tensor, need 16\.00 GiB, more than one GPU buffer holds \(.+\): lower --batch-size, --context-length or --d-model$/,
  );
  assertEquals(await Deno.stat(`${dir}/run/metrics.jsonl`).then(() => true, () => false), false);
  const wide = await train([...flags, "--vocab-size", "70000000", "--d-model", "64"]);
  assertMatch(
    oneLine(wide, 2),
    /^the token embedding weights, a \(70000000, 64\) tensor, need .*: lower --vocab-size or --d-model$/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a resume from a checkpoint older than the folder's latest would lose it: refused", async () => {
  const dir = await Deno.makeTempDir();
  const first = await train([...await tinyRun(dir), "--steps", "3"]);
  assertEquals(first.code, 0, first.stderr);
  // A copy of the step-3 state (as best.safetensors is, once the run goes past its best), then the run goes on.
  const old = `${dir}/run/step3.safetensors`, latest = `${dir}/run/checkpoint.safetensors`;
  await Deno.copyFile(latest, old);
  assertEquals((await train(["--resume", latest, "--steps", "9"])).code, 0);
  const before = await Promise.all([latest, `${dir}/run/metrics.jsonl`].map((f) => Deno.readFile(f)));
  assertEquals(
    oneLine(await train(["--resume", old, "--steps", "12"]), 2),
    `${old} is at step 3; resuming it in ${dir}/run would replace ${latest} (step 9) and the metrics after step 3: ` +
      "resume that checkpoint, or give this one another --out-dir",
  );
  assertEquals(await Promise.all([latest, `${dir}/run/metrics.jsonl`].map((f) => Deno.readFile(f))), before);
  // Branching off into another folder is fine, and keeps the steps up to the branch point.
  const branch = await train(["--resume", old, "--steps", "5", "--out-dir", `${dir}/b`]);
  assertEquals(branch.code, 0, branch.stderr);
  assertEquals(await steps(`${dir}/b/metrics.jsonl`), [1, 2, 3, 4, 5]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a new run that fails before its first step leaves no run behind, so the same command can run again", async () => {
  const dir = await Deno.makeTempDir();
  const flags = [...await tinyRun(dir), "--steps", "2", "--profile", "1"];
  // The profile's trace cannot be written (a folder is in the way): the first step fails.
  await Deno.mkdir(`${dir}/run/trace.json`, { recursive: true });
  const failed = await train(flags);
  assertEquals(failed.code, 1, failed.stderr);
  assertMatch(failed.stderr.trim().split("\n").at(-1)!, /^nanolm: .*trace\.json/);
  assertEquals(await Deno.stat(`${dir}/run/metrics.jsonl`).then(() => true, () => false), false);
  assertEquals(await Deno.stat(`${dir}/run/run.json`).then(() => true, () => false), false);
  await Deno.remove(`${dir}/run/trace.json`);
  const again = await train(flags);
  assertEquals(again.code, 0, again.stderr);
  await Deno.remove(dir, { recursive: true });
});

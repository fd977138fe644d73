/**
 * `deno task sweep` as a user runs it (subprocesses): the CI-sized sweep file on the embedded data, a bad sweep file,
 * Ctrl-C in the middle of a run and the command run again, `--print-commands` and `--compare`.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { readMetrics } from "../lib/train/metrics.ts";
import { loadRuns, readRunInfo } from "../lib/train/runs.ts";

const root = new URL("../", import.meta.url).pathname;

function command(args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", `${root}lib/cli/sweep.ts`, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
}

async function sweep(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await command(args).output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}

Deno.test("the CI sweep: every run in its folder, the diverged one recorded, a report; run again, all skipped", async () => {
  const dir = await Deno.makeTempDir();
  const first = await sweep([`${root}tests/sweeps/ci.json`, "--out-dir", `${dir}/ci`]);
  assertEquals(first.code, 0, first.stderr);
  const runs = await loadRuns(`${dir}/ci`);
  assertEquals(runs.map((r) => [r.name, r.status]), [
    ["lrMax-0.003", "done"],
    ["lrMax-0.03", "done"],
    ["lrMax-1000000", "diverged"],
  ]);
  // The embedded data has a tokenizer: every evaluation has bits per byte.
  const evals = (await readMetrics(`${dir}/ci/lrMax-0.03/metrics.jsonl`)).filter((r) => r.type === "eval");
  assert(evals.length === 2 && evals.every((e) => typeof e.valBpb === "number"), JSON.stringify(evals));
  const report = await Deno.readTextFile(`${dir}/ci/report.html`);
  assert(report.includes("diverged at step") && report.includes("Validation loss against the peak learning rate"));

  const again = await sweep([`${root}tests/sweeps/ci.json`, "--out-dir", `${dir}/ci`]);
  assertEquals(again.code, 0, again.stderr);
  assertEquals((again.stderr.match(/; skipped/g) ?? []).length, 3, again.stderr);
  const commands = await sweep([`${root}tests/sweeps/ci.json`, "--out-dir", `${dir}/ci`, "--print-commands"]);
  assertEquals([commands.code, commands.stdout], [0, ""]); // nothing left to run

  // The report's folder is made if need be.
  const compared = await sweep(["--compare", `${dir}/ci/lrMax-0.0*`, "--report-file", `${dir}/new/two.html`]);
  assertEquals(compared.code, 0, compared.stderr);
  assert((await Deno.readTextFile(`${dir}/new/two.html`)).includes("lrMax-0.03"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a bad sweep file: one line naming the field, exit 2, nothing written", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/bad.json`, JSON.stringify({ grid: { train: { lrMax: [0.001, "fast"] } } }));
  const r = await sweep([`${dir}/bad.json`, "--out-dir", `${dir}/out`]);
  assertEquals(r.code, 2, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assertEquals(lines.length, 1, r.stderr);
  assertMatch(lines[0], /^nanolm: Invalid sweep file .*bad\.json: grid\.train\.lrMax\.1: /);
  assertEquals(await Deno.stat(`${dir}/out`).then(() => true, () => false), false);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("Ctrl-C stops the current run with a checkpoint (exit 130); the same command resumes it", async () => {
  const dir = await Deno.makeTempDir();
  const spec = JSON.parse(await Deno.readTextFile(`${root}tests/sweeps/ci.json`));
  Object.assign(spec.base.train, { steps: 150, evalInterval: 50, checkpointInterval: 0, gradClip: 1 });
  spec.grid.train.lrMax = [0.003, 0.01];
  await Deno.writeTextFile(`${dir}/long.json`, JSON.stringify(spec));
  const args = [`${dir}/long.json`, "--out-dir", `${dir}/runs`, "--no-report"];
  const child = command(args).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("lrMax-0.003: starting")) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += value;
  }
  await new Promise((r) => setTimeout(r, 1500));
  child.kill("SIGINT");
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += value;
  }
  const { code } = await child.status;
  child.stdout.cancel();
  assertEquals(code, 130, seen);
  const stopped = (await readRunInfo(`${dir}/runs/lrMax-0.003`))!;
  assertEquals(stopped.status, "interrupted");
  assert(stopped.step > 0 && stopped.step < 150, `stopped at ${stopped.step}`);
  assertEquals(await Deno.stat(`${dir}/runs/lrMax-0.01`).then(() => true, () => false), false);

  const resumed = await sweep(args);
  assertEquals(resumed.code, 0, resumed.stderr);
  assertMatch(resumed.stderr, new RegExp(`lrMax-0.003: resuming at step ${stopped.step}`));
  for (const name of ["lrMax-0.003", "lrMax-0.01"]) {
    const steps = (await readMetrics(`${dir}/runs/${name}/metrics.jsonl`)).filter((r) => r.type === "step");
    assertEquals(steps.map((r) => r.step), Array.from({ length: 150 }, (_, i) => i + 1), name);
    assertEquals((await readRunInfo(`${dir}/runs/${name}`))?.status, "done");
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bad inputs of a sweep are one line before any run trains: data, --out-dir, JSON, folders", async () => {
  const dir = await Deno.makeTempDir();
  const tokens = (n: number) => new Uint8Array(new Uint16Array(Array.from({ length: n }, (_, i) => i % 29)).buffer);
  await Deno.writeFile(`${dir}/train.bin`, tokens(3000));
  await Deno.writeFile(`${dir}/short.bin`, tokens(3));
  const model = { vocabSize: 32, contextLength: 16, dModel: 16, numLayers: 1, numHeads: 2 };
  const base = { model, train: { trainData: `${dir}/train.bin`, steps: 4, batchSize: 2, evalInterval: 2 } };
  const write = async (name: string, spec: unknown) => {
    await Deno.writeTextFile(`${dir}/${name}`, typeof spec === "string" ? spec : JSON.stringify(spec));
    return `${dir}/${name}`;
  };
  const oneLine = (r: { code: number; stderr: string }, code: number) => {
    const lines = r.stderr.split("\n").filter((l) => l !== "");
    assertEquals([r.code, lines.length], [code, 1], r.stderr);
    assertMatch(lines[0], /^nanolm: /);
    return lines[0].slice("nanolm: ".length);
  };
  // The second run's validation file is too short: the first run does not train.
  const val = await write("val.json", { base, grid: { train: { valData: [`${dir}/train.bin`, `${dir}/short.bin`] } } });
  assertMatch(oneLine(await sweep([val, "--out-dir", `${dir}/runs`]), 1), /short\.bin has 3 tokens, fewer than/);
  assertEquals(await Deno.stat(`${dir}/runs`).then(() => true, () => false), false);

  const lr = await write("lr.json", { base, grid: { train: { lrMax: [0.001, 0.01] } } });
  await Deno.writeTextFile(`${dir}/file`, "x");
  assertEquals(
    oneLine(await sweep([lr, "--out-dir", `${dir}/file`]), 1),
    `--out-dir ${dir}/file is a file, not a folder; pick a folder for the sweep's runs`,
  );
  assertEquals(
    oneLine(await sweep([await write("cut.json", '{"grid": ')]), 2),
    `sweep file ${dir}/cut.json: invalid JSON: unexpected end of input at line 1, column 10`,
  );
  // --compare writes its report into a folder it makes; a folder or a file in the way is named.
  const runs = [`${root}tests/sweeps`];
  assertEquals(
    oneLine(await sweep(["--compare", ...runs, "--report-file", dir]), 1),
    `--report-file ${dir} is a folder; give the path of an .html file`,
  );
  assertEquals(
    oneLine(await sweep(["--compare", ...runs, "--report-file", `${dir}/file/a.html`]), 1),
    `the folder of --report-file ${dir}/file is a file, not a folder`,
  );
  // Flags of the other mode are refused, not ignored.
  assertEquals(
    oneLine(await sweep(["--compare", `${dir}/runs`, "--out-dir", `${dir}/x`]), 2),
    "--out-dir applies to a sweep file, not to --compare (whose report goes to --report-file)",
  );
  assertEquals(
    oneLine(await sweep(["--compare", `${dir}/runs`, "--list"]), 2),
    "--list applies to a sweep file, not to --compare",
  );
  assertEquals(
    oneLine(await sweep([lr, "--print-commands", "--list"]), 2),
    "give one of --print-commands and --list",
  );
  const clash = await write("clash.json", { base, runs: [{ name: "a" }, { name: "a", train: { lrMax: 0.1 } }] });
  assertMatch(oneLine(await sweep([clash, "--out-dir", `${dir}/runs`]), 2), /two runs would share the folder a /);
  assertEquals(await Deno.stat(`${dir}/runs`).then(() => true, () => false), false);

  // A run that fails does not stop the others; the sweep ends with one line naming it, and a rerun retries it.
  await Deno.mkdir(`${dir}/runs/lrMax-0.001/metrics.jsonl`, { recursive: true });
  const broken = await sweep([lr, "--out-dir", `${dir}/runs`]);
  assertEquals(broken.code, 1, broken.stderr);
  assertMatch(broken.stderr, /nanolm: lrMax-0\.001: failed: .*metrics\.jsonl/);
  assertEquals(
    broken.stderr.trim().split("\n").at(-1),
    "nanolm: 1 of 2 runs failed: lrMax-0.001 (the errors are above); run the same command again to retry it",
  );
  assertEquals((await readRunInfo(`${dir}/runs/lrMax-0.01`))?.status, "done");
  await Deno.remove(`${dir}/runs/lrMax-0.001`, { recursive: true });
  await Deno.remove(`${dir}/runs/report.html`);

  // A sweep's report goes where --report-file says.
  const ran = await sweep([lr, "--out-dir", `${dir}/runs`, "--report-file", `${dir}/reports/lr.html`]);
  assertEquals(ran.code, 0, ran.stderr);
  assertMatch(ran.stderr, /lrMax-0\.01: done, 4 steps; .*skipped/);
  assert((await Deno.readTextFile(`${dir}/reports/lr.html`)).includes("lrMax-0.01"));
  assertEquals(await Deno.stat(`${dir}/runs/report.html`).then(() => true, () => false), false);
  const one = await sweep(["--compare", `${dir}/runs/lrMax-0.01`, "--report-file", `${dir}/one.html`]);
  assertEquals([one.code, one.stderr], [0, `nanolm: report of 1 run: ${dir}/one.html\n`]);
  await Deno.remove(dir, { recursive: true });
});

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

  const compared = await sweep(["--compare", `${dir}/ci/lrMax-0.0*`, "--report-file", `${dir}/two.html`]);
  assertEquals(compared.code, 0, compared.stderr);
  assert((await Deno.readTextFile(`${dir}/two.html`)).includes("lrMax-0.03"));
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

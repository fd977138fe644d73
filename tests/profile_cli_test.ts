/**
 * `deno task train --profile [step]` as a user runs it: the profiled step is a step of the run like any other, the
 * table goes to stdout, `trace.json` to the run's folder, and a step the run does not make is refused before
 * anything is written.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { writeTokenFile } from "../lib/data/token_files.ts";
import { readMetrics } from "../lib/train/metrics.ts";
import { TRACE_TRACKS, type TraceEvent } from "../lib/train/profile.ts";

const root = new URL("../", import.meta.url).pathname;

async function train(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", `${root}lib/cli/train.ts`, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}

/** A token file and the flags of a model small enough to train in seconds on a CPU. */
async function tinyRun(dir: string): Promise<string[]> {
  await writeTokenFile(`${dir}/train.bin`, Array.from({ length: 2000 }, (_, i) => (i * 3) % 29));
  return [
    ...["--train-data", `${dir}/train.bin`, "--out-dir", `${dir}/run`, "--steps", "4", "--log-interval", "2"],
    ...["--vocab-size", "32", "--context-length", "16", "--d-model", "16", "--num-layers", "1", "--num-heads", "2"],
    ...["--batch-size", "2", "--samples", "0", "--no-report"],
  ];
}

Deno.test("--profile prints the kernel table, writes trace.json into the run folder, and the run goes on", async () => {
  const dir = await Deno.makeTempDir();
  const r = await train([...await tinyRun(dir), "--profile"]);
  assertEquals(r.code, 0, r.stderr);
  assertMatch(r.stdout, /One training step on .*\n.*kernel +dispatches +GPU ms/);
  assertMatch(r.stdout, /\nadamw_step +\d+ /);
  assertMatch(r.stderr, new RegExp(`profile of step 2: ${dir}/run/trace.json`));
  const steps = (await readMetrics(`${dir}/run/metrics.jsonl`)).filter((m) => m.type === "step").map((m) => m.step);
  assertEquals(steps, [1, 2, 3, 4]);
  const trace = JSON.parse(await Deno.readTextFile(`${dir}/run/trace.json`)) as { traceEvents: TraceEvent[] };
  const records = trace.traceEvents.filter((e) => e.ph === "i" && e.tid === TRACE_TRACKS.host);
  assert(records.some((e) => e.name === "adamw_step"), "no AdamW dispatch in the trace");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("--profile of a step the run does not make is one line, and nothing is written", async () => {
  const dir = await Deno.makeTempDir();
  const r = await train([...await tinyRun(dir), "--profile", "9"]);
  assertEquals(r.code, 2, r.stderr);
  assertEquals(
    r.stderr.trim().split("\n").at(-1),
    "nanolm: --profile 9: this run makes steps 1 to 4; profile one of those",
  );
  assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["train.bin"]);
  await Deno.remove(dir, { recursive: true });
});

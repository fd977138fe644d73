/**
 * `deno task check`: runs every `check:*` task of deno.json in the order listed, each to the end even when an
 * earlier one failed, and closes with one line per task (passed or FAILED, and seconds), so a failure names its
 * check. Exits 1 if any failed. Names given on the command line run only those (`deno task check fmt lint`).
 *
 * @module
 */

const root = new URL("../", import.meta.url);

/** The `check:*` tasks of a deno.json, in order, optionally only those named (with or without `check:`). */
export function checkTasks(config: { tasks?: Record<string, unknown> }, only: string[] = []): string[] {
  const wanted = only.map((name) => name.startsWith("check:") ? name : `check:${name}`);
  const tasks = Object.keys(config.tasks ?? {}).filter((name) => name.startsWith("check:"));
  const unknown = wanted.filter((name) => !tasks.includes(name));
  if (unknown.length > 0) throw new Error(`no task ${unknown.join(", ")}; the checks are ${tasks.join(", ")}`);
  return wanted.length > 0 ? tasks.filter((name) => wanted.includes(name)) : tasks;
}

if (import.meta.main) {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  let tasks: string[];
  try {
    tasks = checkTasks(config, Deno.args);
  } catch (e) {
    console.error(`check: ${(e as Error).message}`);
    Deno.exit(2);
  }
  const outcomes: { task: string; ok: boolean; seconds: number }[] = [];
  for (const task of tasks) {
    const started = performance.now();
    const { success } = await new Deno.Command(Deno.execPath(), { args: ["task", task], cwd: root }).spawn().status;
    outcomes.push({ task, ok: success, seconds: (performance.now() - started) / 1000 });
  }
  console.log("\ncheck:");
  for (const { task, ok, seconds } of outcomes) {
    console.log(`  ${ok ? "ok    " : "FAILED"} ${task.padEnd(16)} ${seconds.toFixed(1).padStart(5)} s`);
  }
  const failed = outcomes.filter((o) => !o.ok).map((o) => o.task);
  if (failed.length > 0) {
    console.log(`check: ${failed.length} of ${outcomes.length} failed: ${failed.join(", ")}`);
    Deno.exit(1);
  }
  console.log(`check: all ${outcomes.length} passed`);
}

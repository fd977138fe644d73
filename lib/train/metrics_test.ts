import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import { type MetricRecord, metricSeries, MetricsLogger, parseMetrics, readMetrics } from "./metrics.ts";

Deno.test("MetricsLogger writes one JSON object per line, readable while open", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/metrics.jsonl`;
  const log = await MetricsLogger.open(path);
  log.log({ step: 0, loss: 5.5, lr: 0, note: "start" });
  log.log({ step: 0, valLoss: 5.6 });
  // Visible to a reader before flush/close (the write is not buffered in memory).
  assertEquals((await readMetrics(path)).length, 2);
  log.log({ step: 1, loss: NaN, gradNorm: -Infinity, ok: false, extra: null });
  await log.flush();
  await log.close();
  await log.close(); // idempotent
  const text = await Deno.readTextFile(path);
  assertEquals(text.split("\n"), [
    '{"step":0,"loss":5.5,"lr":0,"note":"start"}',
    '{"step":0,"valLoss":5.6}',
    '{"step":1,"loss":"NaN","gradNorm":"-Infinity","ok":false,"extra":null}',
    "",
  ]);
  const back = await readMetrics(path);
  assert(Number.isNaN(back[2].loss));
  assertEquals(back[2].gradNorm, -Infinity);
  assertEquals(back[0], { step: 0, loss: 5.5, lr: 0, note: "start" });
  assertThrows(() => log.log({ step: 2 }), "is closed");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("MetricsLogger replaces a file, or trims it when resuming", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/m.jsonl`;
  let log = await MetricsLogger.open(path);
  for (let s = 0; s < 6; s++) log.log({ step: s, loss: 10 - s });
  await log.close();
  log = await MetricsLogger.open(path);
  for (let s = 0; s < 6; s++) log.log({ step: s, loss: 10 - s });
  log.log({ step: 4, valLoss: 6.5 });
  await log.close();
  // Resume from a checkpoint taken after step 4 (4 updates applied): its records, the evaluation at step 4
  // included, stay; step 5 was logged after the checkpoint and will be logged again.
  log = await MetricsLogger.open(path, { resumeStep: 4 });
  log.log({ step: 5, loss: 0.5 });
  await log.close();
  assertEquals(
    (await readMetrics(path)).map((r) => [r.step, r.loss ?? r.valLoss]),
    [[0, 10], [1, 9], [2, 8], [3, 7], [4, 6], [4, 6.5], [5, 0.5]],
  );
  // Resuming into another folder starts from the run's records there.
  log = await MetricsLogger.open(`${dir}/moved.jsonl`, { resumeStep: 2, from: path });
  await log.close();
  assertEquals((await readMetrics(`${dir}/moved.jsonl`)).map((r) => r.step), [0, 1, 2]);
  // Resuming with no previous file starts an empty one.
  log = await MetricsLogger.open(`${dir}/new.jsonl`, { resumeStep: 4 });
  await log.close();
  assertEquals(await readMetrics(`${dir}/new.jsonl`), []);
  // Without resumeStep the old content is gone.
  log = await MetricsLogger.open(path);
  await log.close();
  assertEquals(await readMetrics(path), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("parseMetrics skips a torn last line and names bad lines", () => {
  assertEquals(parseMetrics('{"step":1,"loss":2}\n\n{"step":2,"lo'), [{ step: 1, loss: 2 }]);
  assertThrows(
    () => parseMetrics('{"step":1}\n{oops}\n{"step":2}', { source: "m.jsonl" }),
    "m.jsonl has invalid JSON on line 2",
  );
  assertThrows(() => parseMetrics('{"loss":1}\n'), "line 1 is not a record with an integer step");
  assertThrows(() => parseMetrics("[1,2]\n"), "line 1 is not a record");
});

Deno.test("readMetrics names a missing file", async () => {
  await assertRejects(
    () => readMetrics("/nonexistent/metrics.jsonl"),
    "Metrics file /nonexistent/metrics.jsonl does not exist",
  );
});

Deno.test("trainer events (interfaces without an index signature) log and plot as they are", async () => {
  interface StepEvent {
    type: "step";
    step: number;
    loss: number;
    tokensPerSec: number;
  }
  const events: StepEvent[] = [{ type: "step", step: 1, loss: 3, tokensPerSec: 10 }, {
    type: "step",
    step: 2,
    loss: 2,
    tokensPerSec: 20,
  }];
  const path = await Deno.makeTempFile();
  const log = await MetricsLogger.open(path);
  for (const e of events) log.log(e);
  await log.close();
  assertEquals(await readMetrics(path), events as unknown as MetricRecord[]);
  assertEquals(metricSeries(events, "tokensPerSec"), { steps: [1, 2], values: [10, 20] });
  await Deno.remove(path);
});

Deno.test("metricSeries extracts one numeric metric", () => {
  const records = [
    { step: 0, loss: 3, lr: 0 },
    { step: 0, valLoss: 3.5 },
    { step: 10, loss: 2, lr: 1e-3 },
    { step: 20, loss: "n/a" },
    { step: 20, valLoss: 2.5 },
  ];
  assertEquals(metricSeries(records, "loss"), { steps: [0, 10], values: [3, 2] });
  assertEquals(metricSeries(records, "valLoss"), { steps: [0, 20], values: [3.5, 2.5] });
  assertEquals(metricSeries(records, "missing"), { steps: [], values: [] });
});

import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import type { KernelSource } from "../../kernels/common.ts";
import { initGpu } from "./backend.ts";

const backend = await initGpu();

/** `x[i] = x[i] * scale + shift` over n elements, scale and shift from a uniform block. */
function affine(n: number): KernelSource {
  return {
    name: "test_affine",
    workgroups: [Math.ceil(n / 64), 1, 1],
    source: `struct U { scale: f32, shift: f32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> u: U;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x < ${n}u) { x[gid.x] = x[gid.x] * u.scale + u.shift; }
}`,
  };
}

function params(scale: number, shift: number): ArrayBuffer {
  return new Float32Array([scale, shift]).buffer;
}

/** The float64 reference of `steps` affine updates, each (scale, shift), applied in order. */
function reference(x: number[], steps: [number, number][]): number[] {
  return x.map((v) => steps.reduce((acc, [scale, shift]) => acc * scale + shift, v));
}

async function values(buf: ReturnType<typeof backend.alloc>, n: number): Promise<number[]> {
  return [...new Float32Array(await backend.read(buf, n * 4))];
}

Deno.test("record captures dispatches without running them; replay runs them in order with direct dispatches", async () => {
  const n = 100, start = Array.from({ length: n }, (_, i) => i - 50);
  const buf = backend.alloc(n * 4);
  backend.write(buf, new Float32Array(start));
  const double = backend.record(() => backend.run(affine(n), [buf], params(2, 0)));
  assertEquals(double.names, ["test_affine"]);
  assertEquals(await values(buf, n), start, "recording ran the kernel");
  backend.run(affine(n), [buf], params(1, 1));
  backend.replay(double, 2);
  backend.run(affine(n), [buf], params(1, -3));
  // The recorded uniforms outlive the submits between record and replay (direct ones are destroyed after them).
  backend.flush();
  backend.replay(double);
  assertEquals(await values(buf, n), reference(start, [[1, 1], [2, 0], [2, 0], [1, -3], [2, 0]]));
  double.dispose();
  backend.free(buf);
});

Deno.test("replay of many steps submits in batches and keeps the values; each dispatch sees the previous one", async () => {
  const n = 8, start = Array.from({ length: n }, (_, i) => i / 4);
  const buf = backend.alloc(n * 4);
  backend.write(buf, new Float32Array(start));
  const step = backend.record(() => {
    backend.run(affine(n), [buf], params(0.5, 1));
    backend.run(affine(n), [buf], params(2, -1.5));
  });
  const submits = backend.submits;
  backend.replay(step, 300); // 600 dispatches: over the 512 of one submission
  assert(backend.submits > submits, "600 dispatches were not submitted in a batch of their own");
  // Each pair adds 0.5 (exactly, in f32), so a dispatch lost or repeated anywhere shows.
  const steps = Array.from({ length: 300 }, () => [[0.5, 1], [2, -1.5]] as [number, number][]).flat();
  assertEquals(await values(buf, n), reference(start, steps));
  step.dispose();
  backend.free(buf);
});

Deno.test("after a read or a sync the GPU gets work in small batches that double up to 512 dispatches", async () => {
  // A read waits until the GPU is idle; a first batch of 512 would keep it idle while the host records them all.
  const n = 8, start = Array.from({ length: n }, (_, i) => i);
  const buf = backend.alloc(n * 4);
  backend.write(buf, new Float32Array(start));
  const steps: [number, number][] = [];
  const dispatch = (count: number) => {
    for (let i = 0; i < count; i++) {
      backend.run(affine(n), [buf], params(1, 0.25));
      steps.push([1, 0.25]);
    }
  };
  for (const wait of [() => values(buf, n), () => backend.sync()]) {
    await wait();
    const submits = backend.submits;
    dispatch(7);
    assertEquals(backend.submits, submits, "7 dispatches after the GPU went idle were submitted");
    dispatch(1);
    assertEquals(backend.submits, submits + 1, "the first 8 dispatches after the GPU went idle were not submitted");
    // Batches of 16, 32, ..., 512, then 512 again: 2040 dispatches in all end a ninth batch.
    dispatch(2040 - 8);
    assertEquals(backend.submits, submits + 9, "batches after the first do not double up to 512");
  }
  assertEquals(await values(buf, n), reference(start, steps));
  backend.free(buf);
});

Deno.test("record applies the backend's checks at record time and leaves nothing half-recorded", async () => {
  const buf = backend.alloc(4096);
  const before = backend.setLimits({ maxStorageBufferBindingSize: 1024 });
  try {
    assertThrows(
      () => backend.record(() => backend.run(affine(1024), [buf], params(1, 0))),
      "test_affine: binding 0 (a buffer) is 4096 bytes, over this GPU's 1024 bytes storage binding limit",
    );
  } finally {
    backend.setLimits(before);
  }
  const loops = backend.setLimits({ loopIterations: 10 });
  try {
    const looping = { ...affine(4), loops: { iterations: 11, of: "a test" } };
    assertThrows(() => backend.record(() => backend.run(looping, [buf])), "would take 11 loop iterations");
  } finally {
    backend.setLimits(loops);
  }
  // After a failed recording, dispatches run at once again.
  backend.write(buf, new Float32Array([5, 6, 7, 8]));
  backend.run(affine(4), [buf], params(10, 0));
  assertEquals(await values(buf, 4), [50, 60, 70, 80]);
  backend.free(buf);
});

Deno.test("recordings do not nest, take synchronous callbacks only, and cannot be replayed once disposed", () => {
  const buf = backend.alloc(16);
  const rec = backend.record(() => backend.run(affine(4), [buf], params(1, 0)));
  assertThrows(() => backend.record(() => void backend.record(() => {})), "recordings do not nest");
  assertThrows(() => backend.record((async () => {}) as () => void), "the callback must be synchronous");
  assertThrows(() => backend.record(() => backend.replay(rec)), "cannot replay while recording");
  assertThrows(() => backend.replay(rec, -1), "times must be an integer >= 0, got -1");
  rec.dispose();
  rec.dispose();
  assert(rec.disposed);
  assertThrows(() => backend.replay(rec), "the recording was disposed");
  backend.free(buf);
});

Deno.test({
  name: "the profiler sees replayed dispatches under their kernel names",
  ignore: !backend.info.timestamps,
  fn: async () => {
    const buf = backend.alloc(64);
    // Pipelines are cached by source: another name needs another source.
    const other: KernelSource = { ...affine(16), name: "test_affine_other", source: `${affine(16).source}\n// other` };
    const rec = backend.record(() => {
      backend.run(affine(16), [buf], params(1, 0));
      backend.run(other, [buf], params(1, 0));
      backend.run(affine(16), [buf], params(1, 0));
    });
    const timings = await backend.profile(() => backend.replay(rec, 3));
    const counts = Object.fromEntries(timings.map((t) => [t.name, t.count]));
    assertEquals(counts, { test_affine: 6, test_affine_other: 3 });
    rec.dispose();
    backend.free(buf);
  },
});

Deno.test("profileDispatches keeps every dispatch in order, replayed ones too, with its cost and host and GPU times", async () => {
  const buf = backend.alloc(64);
  const costed: KernelSource = { ...affine(16), cost: { flops: 32, bytes: 128 } };
  const other: KernelSource = { ...affine(16), name: "test_affine_other", source: `${affine(16).source}\n// other` };
  const rec = backend.record(() => backend.run(costed, [buf], params(1, 0)));
  const t0 = performance.now();
  const dispatches = await backend.profileDispatches(() => {
    backend.run(other, [buf], params(1, 0));
    backend.replay(rec, 2);
    backend.run(costed, [buf], params(1, 0));
  });
  assertEquals(dispatches.map((d) => d.name), ["test_affine_other", "test_affine", "test_affine", "test_affine"]);
  assertEquals(dispatches.map((d) => d.cost ?? null), [null, costed.cost, costed.cost, costed.cost]);
  dispatches.forEach((d, i) => {
    assert(d.hostMs >= t0 && d.submitMs >= d.hostMs, `dispatch ${i}: recorded ${d.hostMs}, submitted ${d.submitMs}`);
    if (i > 0) assert(d.hostMs >= dispatches[i - 1].hostMs, `dispatch ${i} recorded before the one before it`);
  });
  if (backend.info.timestamps) {
    assertEquals(Math.min(...dispatches.map((d) => d.gpuStartMs)), 0);
    dispatches.forEach((d, i) => {
      assert(d.gpuEndMs >= d.gpuStartMs, `dispatch ${i} ends before it starts`);
      if (i > 0) assert(d.gpuStartMs >= dispatches[i - 1].gpuStartMs, `dispatch ${i} ran before the one before it`);
    });
  } else {
    assert(dispatches.every((d) => Number.isNaN(d.gpuStartMs) && Number.isNaN(d.gpuEndMs)));
  }
  rec.dispose();
  backend.free(buf);
});

Deno.test("profiles do not nest, and dispatches outside a profile read no clock", async () => {
  const buf = backend.alloc(64);
  await assertRejects(
    () => backend.profileDispatches(() => backend.profileDispatches(() => {}).then(() => {})),
    "profiles do not nest",
  );
  const now = performance.now;
  let reads = 0;
  performance.now = () => (reads++, now.call(performance));
  try {
    for (let i = 0; i < 10; i++) backend.run(affine(16), [buf], params(1, 0));
    backend.flush();
  } finally {
    performance.now = now;
  }
  assertEquals(reads, 0);
  // The failed profile left nothing behind: the next one works.
  const after = await backend.profileDispatches(() => backend.run(affine(16), [buf], params(1, 0)));
  assertEquals(after.length, 1);
  backend.free(buf);
});

Deno.test("work profiled before an error runs, and leaves no timed pass behind for later submits", async () => {
  const n = 16, buf = backend.alloc(n * 4);
  backend.write(buf, new Float32Array(n).fill(1));
  const errors: string[] = [];
  const log = console.error;
  console.error = (...args: unknown[]) => void errors.push(args.join(" "));
  try {
    await assertRejects(() =>
      backend.profileDispatches(() => {
        backend.run(affine(n), [buf], params(2, 0));
        throw new Error("failed midway");
      }), "failed midway");
    backend.run(affine(n), [buf], params(1, 1));
    assertEquals(await values(buf, n), new Array(n).fill(3));
    await backend.sync();
  } finally {
    console.error = log;
  }
  assertEquals(errors, []);
  backend.free(buf);
});

Deno.test("only lib/gpu encodes GPU work: no other module creates command encoders, passes or bind groups", async () => {
  const root = new URL("../../", import.meta.url);
  const offenders: string[] = [];
  async function scan(dir: string): Promise<void> {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      const path = `${dir}${e.name}`;
      if (e.isDirectory && path !== "lib/gpu") await scan(`${path}/`);
      else if (e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
        const source = await Deno.readTextFile(new URL(path, root));
        for (const call of ["createCommandEncoder", "beginComputePass", "createBindGroup"]) {
          if (source.includes(`.${call}(`)) offenders.push(`${path}: ${call}`);
        }
      }
    }
  }
  for (const dir of ["lib/", "kernels/", "bench/", "examples/"]) await scan(dir);
  assertEquals(offenders, []);
});

Deno.test("a range reads, writes and binds its own bytes, not those at the start of the buffer", async () => {
  const align = backend.device.limits.minStorageBufferOffsetAlignment / 4;
  const buf = backend.alloc(3 * align * 4);
  try {
    backend.write(buf, Float32Array.from({ length: 3 * align }, (_, i) => i));
    const middle = backend.range(buf, align * 4, align * 4);
    assertEquals(await values(middle, 3), [align, align + 1, align + 2]);
    backend.write(middle, new Float32Array([-1, -2]), 4);
    backend.run(affine(align), [middle], params(2, 1));
    const all = await values(buf, 3 * align);
    assertEquals(all.slice(align - 1, align + 3), [align - 1, 2 * align + 1, -1, -3]);
    assertEquals(all[0], 0, "the first range untouched");
    assertEquals(all[2 * align], 2 * align, "the last range untouched");
    assertThrows(() => backend.write(middle, new Float32Array(3 * align)), "overflows");
  } finally {
    backend.free(buf);
  }
});

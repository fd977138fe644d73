import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { type ArrayMap, readCheckpointFile, writeCheckpointFile, writeWeightsFile } from "./checkpoint_file.ts";
import { Rng } from "../util/random.ts";
import { encodeSafetensors, readSafetensors, writeSafetensors } from "./safetensors.ts";

function randomArrays(rng: Rng, shapes: Record<string, number[]>): ArrayMap {
  const out: ArrayMap = new Map();
  for (const [name, shape] of Object.entries(shapes)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = rng.normal();
    out.set(name, { shape, data });
  }
  return out;
}

const shapes = {
  "token_embeddings.weight": [11, 4],
  "layers.0.attn.q_proj.weight": [4, 4],
  "layers.0.ln1.weight": [4],
  "lm_head.weight": [11, 4],
};

Deno.test("checkpoint round trip keeps arrays and every metadata field", async () => {
  const rng = new Rng(7);
  const model = randomArrays(rng, shapes), m = randomArrays(rng, shapes), v = randomArrays(rng, shapes);
  rng.uniform();
  const dir = await Deno.makeTempDir();
  const path = `${dir}/step_40.safetensors`;
  const state = {
    step: 40,
    model,
    optimizer: { m, v, step: 40 },
    rngState: rng.state(),
    dataPosition: { kind: "random", rng: [1, 2, 3, 4] },
    config: { model: { dModel: 4 }, train: { lrMax: 0.001 } },
    tokenizer: "tokenizers/tinystories.json",
    extra: { note: "hello" },
  };
  await writeCheckpointFile(path, state);
  const back = await readCheckpointFile(path);
  assertEquals(back, state);
  // The RNG continues the same stream after a resume.
  assertEquals(Rng.fromState(back.rngState!).uniform(), rng.uniform());
  // The layout on disk is the documented one.
  const raw = await readSafetensors(path);
  assertEquals([...raw.tensors.keys()].filter((k) => k.startsWith("optim.m.")).length, 4);
  assertEquals(raw.tensors.get("model.layers.0.ln1.weight")!.dtype, "F32");
  assertEquals(raw.metadata.step, "40");
  assertEquals(JSON.parse(raw.metadata.rng_state), state.rngState);
  // Weights-only checkpoints have no optimizer.
  await writeCheckpointFile(path, { step: 0, model });
  assertEquals(await readCheckpointFile(path), { step: 0, model });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("writeCheckpointFile rejects inconsistent state", async () => {
  const model = randomArrays(new Rng(1), shapes);
  const path = await Deno.makeTempFile();
  const wrong = new Map([["lm_head.weight", { shape: [4, 11], data: new Float32Array(44) }]]);
  await assertRejects(
    () => writeCheckpointFile(path, { step: 1, model, optimizer: { m: wrong, v: new Map(), step: 1 } }),
    'moment m of "lm_head.weight" has shape [4,11], the weight has [11,4]',
  );
  await assertRejects(
    () =>
      writeCheckpointFile(path, {
        step: 1,
        model,
        optimizer: { m: new Map(), v: randomArrays(new Rng(2), { x: [1] }), step: 1 },
      }),
    'moment v of "x" has no matching model weight',
  );
  await assertRejects(() => writeCheckpointFile(path, { step: -1, model }), "got -1");
  await assertRejects(() => writeCheckpointFile(path, { step: 1, model, extra: { step: "2" } }), '"step" is reserved');
  await assertRejects(
    () =>
      writeCheckpointFile(path, {
        step: 1,
        model: new Map([["w", { shape: [1], data: new Float64Array(1) as unknown as Float32Array }]]),
      }),
    "must be a Float32Array",
  );
  await Deno.remove(path);
});

Deno.test("readCheckpointFile names the file and the problem", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/c.safetensors`;
  await assertRejects(() => readCheckpointFile(path), `${path} does not exist`);
  await writeWeightsFile(path, randomArrays(new Rng(3), shapes));
  await assertRejects(() => readCheckpointFile(path), `Checkpoint ${path} is not a nanolm checkpoint`);
  const one = new Map([["model.w", { dtype: "F32" as const, shape: [1], data: new Float32Array(1) }]]);
  await writeSafetensors(path, one, { metadata: { format: "nanolm-checkpoint", format_version: "1", step: "x" } });
  await assertRejects(() => readCheckpointFile(path), "invalid step");
  await writeSafetensors(path, one, {
    metadata: { format: "nanolm-checkpoint", format_version: "1", step: "3", rng_state: "[1,2]" },
  });
  await assertRejects(() => readCheckpointFile(path), "invalid rng_state");
  await writeSafetensors(path, one, {
    metadata: { format: "nanolm-checkpoint", format_version: "1", step: "3", config: "{" },
  });
  await assertRejects(() => readCheckpointFile(path), "config that is not valid JSON");
  await writeSafetensors(path, new Map([...one, ["optim.m.q", one.get("model.w")!]]), {
    metadata: { format: "nanolm-checkpoint", format_version: "1", step: "3", optim_step: "3" },
  });
  await assertRejects(() => readCheckpointFile(path), "optim.m.q without a model weight");
  // A truncated checkpoint (e.g. a copy cut short) is reported as truncated.
  const good = `${dir}/good.safetensors`;
  await writeCheckpointFile(good, { step: 2, model: randomArrays(new Rng(4), shapes) });
  const bytes = await Deno.readFile(good);
  await Deno.writeFile(path, bytes.subarray(0, bytes.length - 10));
  await assertRejects(() => readCheckpointFile(path), `${path} is truncated`);
  await Deno.writeFile(path, encodeSafetensors(new Map()).subarray(0, 4));
  await assertRejects(() => readCheckpointFile(path), "truncated");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("writeWeightsFile stores bare state-dict names", async () => {
  const path = await Deno.makeTempFile();
  const weights = randomArrays(new Rng(5), shapes);
  await writeWeightsFile(path, weights, { metadata: { source: "test" } });
  const { tensors, metadata } = await readSafetensors(path);
  assertEquals([...tensors.keys()], Object.keys(shapes));
  assertEquals(tensors.get("lm_head.weight")!.data, weights.get("lm_head.weight")!.data);
  assertEquals(metadata, { format: "pt", source: "test" });
  await Deno.remove(path);
});

Deno.test("readCheckpointFile errors describe bad metadata without showing it", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/c.safetensors`;
  const one = new Map([["model.w", { dtype: "F32" as const, shape: [1], data: new Float32Array(1) }]]);
  const base = { format: "nanolm-checkpoint", format_version: "1", step: "3" };
  const cases: Array<[Record<string, string>, string]> = [
    [{ ...base, format: "root:x:0:0 SECRET" }, "is not a nanolm checkpoint (metadata format is a 17-character string)"],
    [{ ...base, format_version: "SECRET!" }, "has format version (a 7-character string), this nanolm reads version 1"],
    [{ ...base, step: "SECRET" }, "has an invalid step (expected decimal digits)"],
    [
      { ...base, rng_state: '["SECRET", 1, 2, 3]' },
      "has an invalid rng_state (expected four 32-bit unsigned integers)",
    ],
    [
      { ...base, config: '{"password": SECRET}' },
      "has metadata config that is not valid JSON: unexpected character at ",
    ],
    [
      { ...base, data_position: '"SECRET' },
      "has metadata data_position that is not valid JSON: unterminated string at line 1, column 1",
    ],
  ];
  for (const [metadata, message] of cases) {
    await writeSafetensors(path, one, { metadata });
    const err = await assertRejects(() => readCheckpointFile(path), `Checkpoint ${path} ${message}`);
    assert(!/SECRET|root:x/.test(err.message) && !err.message.includes("\n"), err.message);
  }
  // A plain weights file says what it is.
  await writeWeightsFile(path, new Map([["w", { shape: [1], data: new Float32Array(1) }]]));
  await assertRejects(() => readCheckpointFile(path), '(metadata format is "pt")');
  await Deno.remove(dir, { recursive: true });
});

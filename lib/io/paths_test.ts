import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { choosePath, pathToRecord, resolveRecordedPath } from "./paths.ts";

/**
 * A run folder `dir/run` holding a checkpoint, `tok.json`, `sub/tok2.json`, a link to a file outside and a link to
 * a folder outside, next to `dir/secret.txt`.
 */
function makeRun(): { dir: string; run: string; checkpoint: string } {
  const dir = Deno.realPathSync(Deno.makeTempDirSync());
  const run = `${dir}/run`;
  Deno.mkdirSync(`${run}/sub`, { recursive: true });
  Deno.mkdirSync(`${dir}/elsewhere`);
  for (const f of [`${run}/checkpoint.safetensors`, `${run}/tok.json`, `${run}/sub/tok2.json`, `${dir}/secret.txt`]) {
    Deno.writeTextFileSync(f, "x");
  }
  Deno.writeTextFileSync(`${dir}/elsewhere/tok.json`, "x");
  Deno.symlinkSync(`${dir}/secret.txt`, `${run}/link-out.json`);
  Deno.symlinkSync(`${dir}/elsewhere`, `${run}/linked-dir`);
  Deno.symlinkSync(`${run}/sub/tok2.json`, `${run}/link-in.json`);
  return { dir, run, checkpoint: `${run}/checkpoint.safetensors` };
}

Deno.test("resolveRecordedPath follows recorded paths only to files inside the checkpoint's folder", () => {
  const { dir, run, checkpoint } = makeRun();
  try {
    const options = { checkpoint, key: "tokenizer" };
    const accepted: Array<[string, string]> = [
      ["tok.json", "tok.json"],
      ["./tok.json", "tok.json"],
      ["sub/tok2.json", "sub/tok2.json"],
      ["sub//./../sub/tok2.json", "sub/tok2.json"],
      ["sub\\tok2.json", "sub/tok2.json"], // as Windows would read it
      ["link-in.json", "link-in.json"], // a link that stays inside
    ];
    for (const [recorded, relative] of accepted) {
      const resolved = resolveRecordedPath(recorded, options);
      assertEquals(resolved, `${run}/${relative}`, recorded);
      // The file system agrees that it is that file, inside the folder.
      assert(Deno.realPathSync(resolved).startsWith(`${run}/`), recorded);
    }
    const refused: Array<[string, string]> = [
      ["../../../../etc/passwd", "which leaves the checkpoint's folder"],
      ["../secret.txt", "which leaves the checkpoint's folder"],
      ["sub/../../secret.txt", "which leaves the checkpoint's folder"],
      ["..\\secret.txt", "which leaves the checkpoint's folder"],
      ["/etc/passwd", "an absolute path"],
      [`${dir}/secret.txt`, "an absolute path"],
      ["C:\\Windows\\win.ini", "an absolute path"],
      ["", "an empty path"],
      ["tok.json\0.txt", "a path with a NUL character"],
      [".", "which names the folder itself"],
      ["sub/..", "which names the folder itself"],
      ["link-out.json", "which links to outside the checkpoint's folder"],
      ["linked-dir/tok.json", "which links to outside the checkpoint's folder"],
      ["missing.json", `but ${run}/missing.json does not exist`],
      ["sub", `but ${run}/sub is not a file`],
    ];
    for (const [recorded, problem] of refused) {
      const err = assertThrows(() => resolveRecordedPath(recorded, options), problem);
      assert(err.message.startsWith(`Checkpoint ${checkpoint} records tokenizer `), err.message);
      assert(err.message.endsWith(": pass --tokenizer PATH") && !err.message.includes("\n"), err.message);
    }
    assertThrows(
      () => resolveRecordedPath("../x", { ...options, flag: "the tokenizer option" }),
      "pass the tokenizer option PATH",
    );
    // A hostile recorded value cannot drive the terminal through the message.
    const err = assertThrows(() => resolveRecordedPath("/\u001b[2J", options), "an absolute path");
    assert(!err.message.includes("\u001b"), err.message);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a recorded path resolves against the checkpoint's folder, not the working folder", () => {
  const { dir, run } = makeRun();
  const cwd = Deno.cwd();
  try {
    Deno.chdir(run);
    assertEquals(
      resolveRecordedPath("tok.json", { checkpoint: "checkpoint.safetensors", key: "tokenizer" }),
      "tok.json",
    );
    Deno.chdir(dir);
    assertEquals(
      resolveRecordedPath("sub/tok2.json", { checkpoint: "run/checkpoint.safetensors", key: "tokenizer" }),
      "run/sub/tok2.json",
    );
    // secret.txt sits in the working folder, but not in the checkpoint's.
    assertThrows(
      () => resolveRecordedPath("secret.txt", { checkpoint: "run/checkpoint.safetensors", key: "tokenizer" }),
      "run/secret.txt does not exist",
    );
  } finally {
    Deno.chdir(cwd);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("choosePath: the user's path is used as given; the recorded one is checked; neither is an error", () => {
  const { dir, run, checkpoint } = makeRun();
  try {
    const base = { checkpoint, key: "tokenizer" };
    assertEquals(choosePath({ ...base, given: `${dir}/secret.txt`, recorded: "tok.json" }), `${dir}/secret.txt`);
    assertEquals(choosePath({ ...base, given: "../anything", recorded: undefined }), "../anything");
    assertEquals(choosePath({ ...base, recorded: "tok.json" }), `${run}/tok.json`);
    assertThrows(() => choosePath({ ...base, recorded: "../secret.txt" }), "leaves the checkpoint's folder");
    assertThrows(() => choosePath(base), `Checkpoint ${checkpoint} records no tokenizer: pass --tokenizer PATH`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("pathToRecord records a path relative to the checkpoint's folder when the file sits under it", () => {
  const { dir, run, checkpoint } = makeRun();
  const cwd = Deno.cwd();
  try {
    assertEquals(pathToRecord(`${run}/tok.json`, checkpoint), "tok.json");
    assertEquals(pathToRecord(`${run}/sub/../sub/tok2.json`, checkpoint), "sub/tok2.json");
    assertEquals(pathToRecord(`${run}/not-yet-written.json`, checkpoint), "not-yet-written.json");
    assertEquals(pathToRecord(`${dir}/secret.txt`, checkpoint), `${dir}/secret.txt`);
    // Through a link, the lexical path is inside but the file is not: record the user's path.
    assertEquals(pathToRecord(`${run}/linked-dir/tok.json`, checkpoint), `${run}/linked-dir/tok.json`);
    Deno.chdir(dir);
    assertEquals(pathToRecord("run/sub/tok2.json", "run/checkpoint.safetensors"), "sub/tok2.json");
    assertEquals(pathToRecord("elsewhere/tok.json", "run/checkpoint.safetensors"), "elsewhere/tok.json");
    assertEquals(pathToRecord("run/tok.json", `${run}/checkpoint.safetensors`), "tok.json");
    // What is recorded resolves back to the same file.
    for (const file of ["run/tok.json", "run/sub/tok2.json"]) {
      const recorded = pathToRecord(file, "run/checkpoint.safetensors");
      const back = resolveRecordedPath(recorded, { checkpoint: "run/checkpoint.safetensors", key: "tokenizer" });
      assertEquals(Deno.realPathSync(back), Deno.realPathSync(file));
    }
  } finally {
    Deno.chdir(cwd);
    Deno.removeSync(dir, { recursive: true });
  }
});

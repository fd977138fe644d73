import { assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import { removeStaleTempFiles, STALE_TEMP_MS, writeFileAtomic, writeFileAtomicSync } from "./atomic_write.ts";

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test("removeStaleTempFiles removes only old temporary files of exactly this target", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const old = new Date(Date.now() - STALE_TEMP_MS - 60_000);
    const files = {
      stale: ".a.json.0123456789abcdef.tmp",
      fresh: ".a.json.00000000ffffffff.tmp", // a live writer's
      prefixTarget: ".a.json.x.0123456789abcdef.tmp", // target "a.json.x"
      shortHex: ".a.json.0123.tmp",
      upperHex: ".a.json.0123456789ABCDEF.tmp",
      noDot: "a.json.0123456789abcdef.tmp",
    };
    for (const name of Object.values(files)) Deno.writeTextFileSync(`${dir}/${name}`, "x");
    for (const [key, name] of Object.entries(files)) if (key !== "fresh") Deno.utimeSync(`${dir}/${name}`, old, old);
    Deno.mkdirSync(`${dir}/.a.json.fedcba9876543210.tmp`); // not a file
    assertEquals(removeStaleTempFiles(`${dir}/a.json`), [`${dir}/${files.stale}`]);
    assertEquals(names(dir).includes(files.fresh), true);
    assertEquals(names(dir).length, 6);
    // With a zero age the live writer's file would go too: the age is what protects it.
    assertEquals(removeStaleTempFiles(`${dir}/a.json`, { olderThanMs: -1000 }), [`${dir}/${files.fresh}`]);
    assertEquals(removeStaleTempFiles(`${dir}/missing/a.json`), []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("atomic writes replace the file whole; readers of the old file keep it; failures leave it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/t.txt`;
    writeFileAtomicSync(path, "old contents");
    using reader = await Deno.open(path);
    writeFileAtomicSync(path, new TextEncoder().encode("new"));
    assertEquals(Deno.readTextFileSync(path), "new");
    // A reader that opened the old file still reads all of it (an in-place rewrite would have truncated it).
    const buf = new Uint8Array(64);
    assertEquals(new TextDecoder().decode(buf.subarray(0, (await reader.read(buf))!)), "old contents");
    await assertRejects(
      () =>
        writeFileAtomic(path, async (file) => {
          await file.write(new TextEncoder().encode("partial"));
          throw new Error("disk full");
        }),
      "disk full",
    );
    assertEquals(Deno.readTextFileSync(path), "new");
    assertEquals(names(dir), ["t.txt"]);
    assertThrows(() => writeFileAtomicSync(`${dir}/no/such/t.txt`, "x"));
    writeFileAtomicSync(`${dir}/t.txt`, "");
    assertEquals(Deno.readTextFileSync(path), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

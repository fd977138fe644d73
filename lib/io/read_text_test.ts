import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { readNamedTextFile } from "./read_text.ts";

Deno.test("readNamedTextFile: the text, or one line naming a missing file or a folder", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/a.json`, "{}");
    assertEquals(await readNamedTextFile(`${dir}/a.json`, "config file"), "{}");
    await assertRejects(
      () => readNamedTextFile(`${dir}/b.json`, "sweep file"),
      `sweep file ${dir}/b.json does not exist`,
    );
    await assertRejects(() => readNamedTextFile(dir, "config file"), `config file ${dir} is a directory, not a file`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

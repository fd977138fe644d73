import { assert, assertEquals } from "../../tests/assert.ts";
import { onGlFallback, vulkanDriverFiles } from "./vulkan.ts";

Deno.test("the GL fallback: no binding limit and no Vulkan driver, on Linux only", async () => {
  const dir = await Deno.makeTempDir();
  const icd = `${dir}/nvidia_icd.json`;
  await Deno.writeTextFile(icd, "{}");
  const none = { VK_DRIVER_FILES: `${dir}/missing.json` };
  assertEquals(vulkanDriverFiles(none), []);
  assertEquals(vulkanDriverFiles({ VK_DRIVER_FILES: icd }), [icd]);
  assertEquals(vulkanDriverFiles({ VK_ICD_FILENAMES: icd }), [icd]);
  // The standard folders, found through XDG_DATA_DIRS.
  await Deno.mkdir(`${dir}/share/vulkan/icd.d`, { recursive: true });
  await Deno.writeTextFile(`${dir}/share/vulkan/icd.d/lvp_icd.json`, "{}");
  assert(vulkanDriverFiles({ XDG_DATA_DIRS: `${dir}/share` }).includes(`${dir}/share/vulkan/icd.d/lvp_icd.json`));
  const unbounded = { maxBindingsPerBindGroup: 0xffffffff };
  assert(onGlFallback(unbounded, { os: "linux", env: none }));
  // NVIDIA's Vulkan backend reports no binding limit either: a driver on the loader's path tells them apart.
  assert(!onGlFallback(unbounded, { os: "linux", env: { VK_DRIVER_FILES: icd } }));
  assert(!onGlFallback({ maxBindingsPerBindGroup: 1000 }, { os: "linux", env: none }));
  assert(!onGlFallback(unbounded, { os: "darwin", env: none }));
  await Deno.remove(dir, { recursive: true });
});

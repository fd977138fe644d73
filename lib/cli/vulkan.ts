/**
 * Whether Deno's WebGPU runs on wgpu's OpenGL fallback. On Linux, wgpu uses Vulkan when the Vulkan loader finds a
 * driver and falls back to OpenGL otherwise; that backend is correct but far too slow to train or sample (minutes
 * before a first step), so the command-line programs stop at once and name the package that fixes it. WebGPU does
 * not name the backend: the check combines the adapter (the GL backend reports no limit on bindings per bind group)
 * with the loader's driver manifests, read where the Vulkan loader reads them.
 *
 * @module
 */

/** What to tell a user whose WebGPU runs on the OpenGL fallback. */
export const GL_FALLBACK_ADVICE =
  "Deno's WebGPU is running on its OpenGL fallback because no Vulkan driver was found; it is far too slow to " +
  "train or sample. Install one: `sudo apt-get install mesa-vulkan-drivers` (CPU, or Intel/AMD GPUs), or your " +
  "GPU vendor's Vulkan driver (NVIDIA: the driver's libnvidia-gl package), then run again.";

/**
 * The Vulkan driver manifests (ICD JSON files) the loader would use: those named by `VK_DRIVER_FILES` (or the older
 * `VK_ICD_FILENAMES`) when set, else the `*.json` files of the standard `vulkan/icd.d` folders, plus
 * `VK_ADD_DRIVER_FILES`. Only files that exist count.
 *
 * @example
 * ```ts
 * import { vulkanDriverFiles } from "./vulkan.ts";
 * if (vulkanDriverFiles({ VK_DRIVER_FILES: "/nonexistent/icd.json" }).length !== 0) throw new Error("a missing file counted");
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/lvp_icd.json`, "{}");
 * const found = vulkanDriverFiles({ VK_DRIVER_FILES: `${dir}/lvp_icd.json:/nonexistent/icd.json` });
 * if (found.join() !== `${dir}/lvp_icd.json`) throw new Error(`${found}`);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function vulkanDriverFiles(env: Record<string, string | undefined> = Deno.env.toObject()): string[] {
  const list = (value: string | undefined) => (value ?? "").split(":").filter((p) => p !== "");
  const override = list(env.VK_DRIVER_FILES ?? env.VK_ICD_FILENAMES);
  const folders = [
    ...list(env.XDG_CONFIG_DIRS ?? "/etc/xdg"),
    "/etc",
    ...(env.HOME ? [`${env.HOME}/.local/share`] : []),
    ...list(env.XDG_DATA_DIRS ?? "/usr/local/share:/usr/share"),
    "/usr/local/share",
    "/usr/share",
  ].map((d) => `${d}/vulkan/icd.d`);
  const candidates = override.length > 0 ? override : folders.flatMap(jsonFiles);
  return [...candidates, ...list(env.VK_ADD_DRIVER_FILES)].filter(isFile);
}

/**
 * Whether an adapter is wgpu's OpenGL fallback: on Linux, an adapter reporting no binding limit while the Vulkan
 * loader has no driver to load.
 *
 * @example
 * ```ts
 * import { onGlFallback } from "./vulkan.ts";
 * if (onGlFallback({ maxBindingsPerBindGroup: 1000 })) throw new Error("a Vulkan adapter reports a finite limit");
 * // No binding limit and no Vulkan driver to load: the OpenGL fallback.
 * const noDriver = { os: "linux", env: { VK_DRIVER_FILES: "/nonexistent/icd.json" } };
 * if (!onGlFallback({ maxBindingsPerBindGroup: 0xffffffff }, noDriver)) throw new Error("the fallback was missed");
 * ```
 */
export function onGlFallback(
  adapter: { maxBindingsPerBindGroup: number },
  options: { os?: string; env?: Record<string, string | undefined> } = {},
): boolean {
  if ((options.os ?? Deno.build.os) !== "linux" || adapter.maxBindingsPerBindGroup < 0xffffffff) return false;
  return vulkanDriverFiles(options.env).length === 0;
}

function jsonFiles(folder: string): string[] {
  try {
    return [...Deno.readDirSync(folder)].filter((e) => e.name.endsWith(".json")).map((e) => `${folder}/${e.name}`);
  } catch {
    return [];
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

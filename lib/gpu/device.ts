/**
 * WebGPU adapter and device acquisition.
 *
 * Asks for the features nanolm can use (timestamp queries for kernel profiling, f16 shaders) when the adapter has
 * them, and raises the limits that matter for big tensors (buffer sizes, storage bindings, workgroup memory) to
 * whatever the adapter allows, since WebGPU's defaults (128 MiB bindings, 16 KiB workgroup memory) are far below
 * what real GPUs offer.
 *
 * @module
 */

/** What a {@linkcode GpuContext} knows about the hardware. */
export interface GpuInfo {
  /** Adapter description, e.g. `"NVIDIA H100 80GB HBM3"` or `"llvmpipe (LLVM 15.0.6, 256 bits)"`. */
  description: string;
  /** True for software adapters (Mesa llvmpipe/lavapipe): correct but slow, so defaults shrink. */
  isSoftware: boolean;
  /** Whether `timestamp-query` was enabled (GPU-side kernel timings). */
  timestamps: boolean;
  /** Whether `shader-f16` was enabled. */
  f16: boolean;
  /**
   * True when Deno's WebGPU runs on its OpenGL fallback, which it picks on Linux when no Vulkan driver is
   * installed. That backend is correct but far too slow to train or sample (minutes before a first step), so the
   * command-line programs stop and name the package that fixes it ({@linkcode GL_FALLBACK_ADVICE}).
   */
  glFallback: boolean;
}

/** What to tell a user whose WebGPU runs on the OpenGL fallback. */
export const GL_FALLBACK_ADVICE =
  "Deno's WebGPU is running on its OpenGL fallback because no Vulkan driver was found; it is far too slow to " +
  "train or sample. Install one: `sudo apt-get install mesa-vulkan-drivers` (CPU, or Intel/AMD GPUs), or your " +
  "GPU vendor's Vulkan driver (NVIDIA: the driver's libnvidia-gl package), then run again.";

/**
 * Whether an adapter is wgpu's OpenGL backend. WebGPU does not name the backend, but wgpu's GL backend reports no
 * limit on bindings per bind group (u32::MAX), which its Vulkan backend never does; on Linux the other backend is
 * Vulkan, so the test is exact there (Metal and D3D12 report the same maximum, hence the platform check).
 *
 * @example
 * ```ts
 * import { isGlFallback } from "./device.ts";
 * console.log(isGlFallback({ maxBindingsPerBindGroup: 1000 }, "linux")); // false
 * console.log(isGlFallback({ maxBindingsPerBindGroup: 4294967295 }, "linux")); // true
 * ```
 */
export function isGlFallback(limits: { maxBindingsPerBindGroup: number }, os: string): boolean {
  return os === "linux" && limits.maxBindingsPerBindGroup >= 0xffffffff;
}

/** An acquired device and what it can do. */
export interface GpuContext {
  /** The WebGPU device all tensors live on. */
  device: GPUDevice;
  /** Facts about the adapter. */
  info: GpuInfo;
}

const wantedLimits = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
] as const;

/** The host's OS as Deno names it, or "" outside Deno (a browser page never runs wgpu's GL backend). */
function hostOs(): string {
  return (globalThis as { Deno?: { build: { os: string } } }).Deno?.build.os ?? "";
}

/**
 * Requests a WebGPU device with the features and limits nanolm wants.
 *
 * @example
 * ```ts ignore
 * import { requestGpu } from "./device.ts";
 * const { device, info } = await requestGpu();
 * console.log(info.description, device.limits.maxBufferSize);
 * ```
 */
export async function requestGpu(options: { powerPreference?: GPUPowerPreference } = {}): Promise<GpuContext> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) {
    throw new Error("WebGPU is not available in this runtime: run nanolm with Deno 2 or newer (navigator.gpu)");
  }
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: options.powerPreference ?? "high-performance",
  });
  if (!adapter) {
    throw new Error(
      "No WebGPU adapter found. On a machine without a GPU install a Vulkan software driver " +
        "(Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`); on a GPU machine make sure the Vulkan loader " +
        "(libvulkan1) and the vendor's Vulkan driver are installed.",
    );
  }
  const features: GPUFeatureName[] = [];
  for (const f of ["timestamp-query", "shader-f16"] as const) if (adapter.features.has(f)) features.push(f);
  const requiredLimits: Record<string, number> = {};
  for (const name of wantedLimits) requiredLimits[name] = adapter.limits[name];
  const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  const description = adapter.info.description || adapter.info.device || adapter.info.vendor || "unknown adapter";
  return {
    device,
    info: {
      description,
      isSoftware: adapter.info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|software/i.test(description),
      timestamps: device.features.has("timestamp-query"),
      f16: device.features.has("shader-f16"),
      glFallback: isGlFallback(adapter.limits, hostOs()),
    },
  };
}
